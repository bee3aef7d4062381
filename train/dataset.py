"""Folder-per-class face crops: loading, near-duplicate grouping and the seeded split.

Everything here is NumPy, OpenCV and Pillow, so the same pipeline feeds Keras under TensorFlow
on a laptop and under JAX on a GPU machine that has no TensorFlow.
"""

import hashlib
import json
import sys
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from animerec.crop import resize_square
from animerec.decode import decode_image
from animerec.errors import ImageError
from animerec.paths import IMAGE_EXTENSIONS

SPLITS = ("train", "val", "test")
STRANGER_FRACTIONS = (0.6, 0.2, 0.2)  # strangers/: train, calibration (and the cohort), test


class FaceSet(NamedTuple):
    """Face crops of several characters, all resized to one square size.

    images: (N, S, S, 3) uint8 RGB. labels: (N,) int32 indices into `classes`.
    classes: the class slugs (folder names), sorted. files: (N,) paths relative to the root.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list
    files: list


def list_images(root):
    """Return {class slug: [image paths]} for each sub-folder of `root` that holds images.
    Raises FileNotFoundError, with a sentence, when `root` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder: give the folder of crops, one sub-folder per character.")
    classes = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if files:
            classes[folder.name] = files
    return classes


def load_faces(root, image_size, cache_dir=None, classes=None):
    """Read every crop under `root` (one sub-folder per character), resized to `image_size`.

    Unreadable files are skipped with a warning on stderr. With `cache_dir`, the decoded array
    is kept as a compressed .npz keyed by the file list and size, so later runs (and the copy
    sent to a GPU machine) skip decoding. `classes` fixes the class order (for evaluating a model
    on data whose folders are a subset or superset); by default it is the sorted folder names.
    """
    root = Path(root)
    by_class = list_images(root)
    if not by_class:
        raise FileNotFoundError(f"No images in sub-folders of {root}: expected one folder per character.")
    classes = list(classes) if classes is not None else sorted(by_class)
    entries = [(c, p) for c in classes for p in by_class.get(c, [])]
    key = hashlib.sha1(
        json.dumps([image_size] + [str(p.relative_to(root)) for _, p in entries]).encode()
    ).hexdigest()[:16]
    cache = Path(cache_dir) / f"faces-{image_size}-{key}.npz" if cache_dir else None
    if cache and cache.exists():
        with np.load(cache, allow_pickle=False) as saved:
            return FaceSet(saved["images"], saved["labels"], classes, list(saved["files"]))

    images, kept = _read_resized([p for _, p in entries], image_size)
    faces = FaceSet(
        images,
        np.asarray([classes.index(entries[i][0]) for i in kept], np.int32),
        classes,
        [str(entries[i][1].relative_to(root)) for i in kept],
    )
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, images=faces.images, labels=faces.labels, files=np.asarray(faces.files))
    return faces


def load_unlabelled(root, image_size, cache_dir=None):
    """Every image directly in the folder `root` (such as `unknown/`: faces of characters in no
    class), resized to `image_size`. Returns (images (N, S, S, 3) uint8, file names)."""
    root = Path(root)
    paths = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS) if root.is_dir() else []
    if not paths:
        raise FileNotFoundError(f"No images in {root}.")
    key = hashlib.sha1(json.dumps([image_size] + [p.name for p in paths]).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"unlabelled-{image_size}-{key}.npz" if cache_dir else None
    if cache and cache.exists():
        with np.load(cache, allow_pickle=False) as saved:
            return saved["images"], list(saved["files"])
    images, kept = _read_resized(paths, image_size)
    files = [paths[i].name for i in kept]
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, images=images, files=np.asarray(files))
    return images, files


def _read_resized(paths, image_size):
    """Decode and resize each path; unreadable files are skipped with a warning on stderr.
    Returns (images, indices of the paths kept)."""
    images, kept = [], []
    for i, path in enumerate(paths):
        try:
            rgb = decode_image(Path(path).read_bytes())
        except ImageError as error:
            print(f"warning: skipped {path}: {error}", file=sys.stderr)
            continue
        images.append(resize_square(rgb, image_size))
        kept.append(i)
    stacked = np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8)
    return stacked, kept


def degrade(images, size):
    """Each (S, S, 3) image shrunk to `size` px and enlarged back to S, the way a `size` px
    crop reaches the model: known faces made as blurry as the 64 px unknown ones, so that a rule
    told to separate the two cannot just detect blur."""
    if size >= images.shape[1]:
        return images.copy()
    return np.stack([resize_square(resize_square(im, size), images.shape[1]) for im in images]) \
        if len(images) else images.copy()


def greyscale(images):
    """(N, S, S, 3) uint8 RGB images turned grey (Rec. 601 luma in all three channels), as
    black-and-white art reaches the model."""
    luma = np.asarray(images, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def split_unlabelled(images, seed=0, fractions=(0.5, 0.25, 0.25), parts=("train", "calibration", "test")):
    """Deal groups of near-duplicate `images` to `parts` in `fractions`, with `seed`.
    Returns {part: sorted int array of indices}."""
    rng = np.random.default_rng(seed)
    groups = near_duplicate_groups(images)
    order = rng.permutation(np.unique(groups))
    bounds = np.cumsum(fractions) * len(images)
    taken, dealt = 0, {part: [] for part in parts}
    for g in order:
        members = np.nonzero(groups == g)[0]
        part = parts[min(int(np.searchsorted(bounds, taken, side="right")), len(parts) - 1)]
        dealt[part].extend(members.tolist())
        taken += len(members)
    return {part: np.array(sorted(idx), dtype=np.int64) for part, idx in dealt.items()}


def dhash(image, bits=8):
    """Difference hash of an RGB image: a `bits`*`bits`-bit integer that near-duplicates share
    (or differ in only a few bits), robust to resizing and re-encoding."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (bits + 1, bits), interpolation=cv2.INTER_AREA)
    diff = (small[:, 1:] > small[:, :-1]).flatten()
    return int("".join("1" if d else "0" for d in diff), 2)


def near_duplicate_groups(images, max_bits=6):
    """Group indices of `images` whose dHashes differ in at most `max_bits` bits (transitively).

    Returns an (N,) int array of group ids.
    """
    hashes = np.array([dhash(im) for im in images], dtype=np.uint64)
    parent = np.arange(len(images))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(hashes)):
        xor = np.bitwise_xor(hashes[i + 1 :], hashes[i])
        distance = np.unpackbits(xor.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
        for j in np.nonzero(distance <= max_bits)[0] + i + 1:
            parent[find(j)] = find(i)
    return np.array([find(i) for i in range(len(images))])


def split_indices(labels, images, seed=0, fractions=(0.70, 0.15, 0.15)):
    """Split per class into train / val / test, keeping near-duplicates on one side.

    Groups of near-duplicates (see `near_duplicate_groups`) are shuffled with `seed` and dealt
    to test, then validation, until each holds its fraction of the class; the rest train.
    Returns {"train": idx, "val": idx, "test": idx}, each a sorted int array.
    """
    rng = np.random.default_rng(seed)
    parts = {name: [] for name in SPLITS}
    for c in np.unique(labels):
        members = np.nonzero(labels == c)[0]
        groups = near_duplicate_groups(images[members])
        group_ids = rng.permutation(np.unique(groups))
        quotas = {"test": fractions[2] * len(members), "val": fractions[1] * len(members)}
        taken = {"test": 0, "val": 0}
        for g in group_ids:
            idx = members[groups == g]
            target = next((s for s in ("test", "val") if taken[s] < quotas[s]), "train")
            if target != "train":
                taken[target] += len(idx)
            parts[target].extend(idx.tolist())
    return {name: np.array(sorted(parts[name]), dtype=np.int64) for name in SPLITS}


def read_split(path, files):
    """Indices of `files` in each part of a `split.json` ({"train": [file, ...], ...})."""
    named = json.loads(Path(path).read_text())
    return _indices(named, SPLITS, files, path)


def read_unknown_split(path, files, entry="unknown"):
    """Indices of the unlabelled faces `files` in each part of a `split.json`'s `entry`
    ("unknown" or "strangers"), or None when it has none."""
    named = json.loads(Path(path).read_text()).get(entry)
    return _indices(named, tuple(named), files, path) if named else None


def _indices(named, parts, files, path):
    index = {f: i for i, f in enumerate(files)}
    missing = [f for part in parts for f in named[part] if f not in index]
    if missing:
        raise FileNotFoundError(f"{len(missing)} files of the split {path} are not in the data, e.g. {missing[0]}.")
    return {part: np.array(sorted(index[f] for f in named[part]), dtype=np.int64) for part in parts}
