"""The gallery: characters a visitor enrolled from a few pictures, without retraining.

Each enrolled face is kept as its embedding (see `Recognizer.run`); a character's prototype is
the normalised mean of its faces' embeddings, and a face is compared with every prototype by
cosine, the same kind of number the model's own cosine head gives. Saved as `.npz` holding only
arrays (no pickle): slugs, names, embeddings, which character each embedding belongs to, and
the fingerprint and embedding size of the model that made them, so a gallery from another model
is refused rather than silently wrong.
"""

import io
import re
import unicodedata
import zipfile
import numpy as np

from animerec.errors import GalleryError
from animerec.model import unit_rows

RESERVED = {"unknown"}
MAX_ENROL_IMAGES = 10
FORMAT = 1
# A gallery holds about 1 KB per enrolled face; refuse files that would unpack to more than this
# (a small compressed file can unpack to gigabytes).
MAX_UNPACKED_BYTES = 64 * 2**20


def slugify(name):
    """'Suzukaze Aoba' -> 'suzukaze_aoba': lower case, runs of anything but letters and digits
    become one underscore (letters of any script are kept)."""
    text = unicodedata.normalize("NFKC", str(name)).casefold()
    return re.sub(r"[\W_]+", "_", text).strip("_")


class Gallery:
    """Enrolled characters and their face embeddings, tied to one model."""

    def __init__(self, fingerprint, dimension, slugs=(), names=(), embeddings=None, owners=None, reserved=()):
        self.fingerprint = str(fingerprint)
        # Names no enrolled character may take: "unknown", and the model's own characters.
        self.reserved = set(RESERVED) | set(reserved)
        self.dimension = int(dimension)
        self.slugs = list(slugs)
        self.names = list(names)
        self.embeddings = np.zeros((0, self.dimension), np.float32) if embeddings is None \
            else np.asarray(embeddings, np.float32).reshape(-1, self.dimension)
        self.owners = np.zeros(0, np.int64) if owners is None else np.asarray(owners, np.int64)

    @classmethod
    def for_model(cls, recognizer):
        """An empty gallery for `recognizer`'s embeddings, which refuses its characters' names."""
        return cls(recognizer.fingerprint, recognizer.embedding_size, reserved=[c.slug for c in recognizer.characters])

    def __len__(self):
        return len(self.slugs)

    def counts(self):
        """{slug: number of enrolled faces}."""
        return {slug: int((self.owners == i).sum()) for i, slug in enumerate(self.slugs)}

    def add(self, name, embeddings, reserved=()):
        """Enrol `embeddings` ((K, D), K >= 1) under `name`; a name already enrolled gets the
        faces added. "unknown", the names of the model it was made for (`for_model`, `check`)
        and `reserved` cannot be used. Returns the slug."""
        slug = slugify(name)
        if not slug:
            raise GalleryError(f"{name!r} is not a usable name: give letters or digits.")
        if slug in self.reserved or slug in set(reserved):
            raise GalleryError(f"'{slug}' is already a name the model uses: choose another name.")
        embeddings = np.asarray(embeddings, np.float32)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.dimension or len(embeddings) == 0:
            raise GalleryError(f"Enrolling needs at least one face embedding of size {self.dimension}.")
        if slug not in self.slugs:
            self.slugs.append(slug)
            self.names.append(str(name).strip() or slug)
        owner = self.slugs.index(slug)
        self.embeddings = np.concatenate([self.embeddings, unit_rows(embeddings)])
        self.owners = np.concatenate([self.owners, np.full(len(embeddings), owner)])
        return slug

    def remove(self, slug):
        """Forget a character (no error when it is not there)."""
        if slug not in self.slugs:
            return
        index = self.slugs.index(slug)
        keep = self.owners != index
        self.embeddings, self.owners = self.embeddings[keep], self.owners[keep]
        self.owners[self.owners > index] -= 1
        del self.slugs[index], self.names[index]

    def prototypes(self):
        """(K, D): the unit-length mean embedding of each enrolled character."""
        if not self.slugs:
            return np.zeros((0, self.dimension), np.float32)
        sums = np.zeros((len(self.slugs), self.dimension), np.float32)
        np.add.at(sums, self.owners, self.embeddings)
        return unit_rows(sums)

    def cosines(self, embeddings):
        """(N, K): the cosine of each of N unit-length embeddings to each enrolled character's
        mean embedding, in the order of `slugs`. Raises GalleryError on an empty gallery."""
        if not self.slugs:
            raise GalleryError("The gallery is empty: enrol a character first.")
        return np.asarray(embeddings, np.float32) @ self.prototypes().T

    def check(self, recognizer):
        """Raise GalleryError unless this gallery was made by `recognizer`'s model; from then on
        its characters' names are refused, as for a gallery made by `for_model`."""
        if self.dimension != recognizer.embedding_size or self.fingerprint != recognizer.fingerprint:
            raise GalleryError(
                f"This gallery was made by another model (fingerprint {self.fingerprint}, embedding size "
                f"{self.dimension}; this model is {recognizer.fingerprint}, {recognizer.embedding_size}): "
                "enrol the characters again with this model.")
        self.reserved |= {c.slug for c in recognizer.characters}

    def merge(self, other):
        """A new gallery with the characters of both (faces of a shared name are pooled)."""
        if (other.fingerprint, other.dimension) != (self.fingerprint, self.dimension):
            raise GalleryError("These galleries were made by different models: they cannot be merged.")
        merged = Gallery(self.fingerprint, self.dimension, self.slugs, self.names, self.embeddings, self.owners,
                         self.reserved | other.reserved)
        for index, (slug, name) in enumerate(zip(other.slugs, other.names)):
            merged.add(name if slugify(name) == slug else slug, other.embeddings[other.owners == index])
        return merged

    def to_bytes(self):
        """The gallery as `.npz` bytes (arrays only, no pickle)."""
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer, format=np.int64(FORMAT), fingerprint=np.str_(self.fingerprint),
            dimension=np.int64(self.dimension), slugs=np.array(self.slugs, dtype=str),
            names=np.array(self.names, dtype=str), embeddings=self.embeddings, owners=self.owners,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data):
        """Read `.npz` bytes written by `to_bytes`; anything else raises GalleryError."""
        try:
            unpacked = sum(info.file_size for info in zipfile.ZipFile(io.BytesIO(data)).infolist())
        except (zipfile.BadZipFile, ValueError, OSError):
            unpacked = 0  # not a zip at all: np.load below says so
        if unpacked > MAX_UNPACKED_BYTES:
            raise GalleryError(f"This gallery file would unpack to {unpacked / 2**20:.0f} MB, more than a gallery "
                               f"can hold ({MAX_UNPACKED_BYTES // 2**20} MB): choose a .npz saved by animerec.")
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as saved:
                gallery = cls(str(saved["fingerprint"]), int(saved["dimension"]),
                              [str(s) for s in saved["slugs"]], [str(n) for n in saved["names"]],
                              saved["embeddings"], saved["owners"])
        except Exception as error:  # zip, npz and key errors alike: not a gallery we wrote
            raise GalleryError(f"This is not a gallery file ({type(error).__name__}): "
                               "choose a .npz saved by animerec.") from None
        consistent = (len(gallery.slugs) == len(gallery.names) and len(gallery.owners) == len(gallery.embeddings)
                      and (len(gallery.owners) == 0 or (gallery.owners.min() >= 0 and gallery.owners.max() < len(gallery.slugs)))
                      and np.isfinite(gallery.embeddings).all())
        if not consistent:
            raise GalleryError("This gallery file is damaged (its names and faces do not match): enrol again.")
        return gallery

    def save(self, path):
        with open(path, "wb") as f:
            f.write(self.to_bytes())

    @classmethod
    def load(cls, path):
        """Read a gallery file; a missing or unreadable one raises GalleryError."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as error:
            raise GalleryError(f"Cannot read the gallery {path} ({error.strerror or error}): check the path.") from None
        return cls.from_bytes(data)
