"""The recogniser: a model directory on disk, loaded into something that classifies crops.

A model directory holds
- `model.keras`: a Keras 3 model from (N, S, S, 3) uint8 RGB crops to (N, C) probabilities;
  the card's `embedding_layer` (else "embedding") names the layer whose output, L2-normalised,
  is the face embedding, and a cosine head has a layer "prototypes" giving each face's cosine
  to each character;
- `labels.json`: `[{"slug", "name", "series"}, ...]`, one per output, in output order;
- `card.json`: how it was trained and what it scored (machine-readable), with `threshold` and,
  once calibrated, `calibration` (see train.calibrate);
- `card.md`: the same for people;
- once calibrated, `cohort.npy`: (M, D) float32, centres of strangers' embeddings that the
  gallery's cosines are normalised against (see `animerec.scoring.Scorer.gallery_raw`).
"""

import contextlib
import functools
import hashlib
import itertools
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np

from animerec.errors import ModelError
from animerec.network import NumpyNetwork, UnsupportedModel
from animerec.paths import model_dir
from animerec.scoring import Scorer

log = logging.getLogger("animerec")
_load_counter = itertools.count(1)

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"
CARD_FILE = "card.json"
CARD_MARKDOWN = "card.md"
COHORT_FILE = "cohort.npy"


class Character(NamedTuple):
    """A character the model knows: `slug` is its training folder name."""

    slug: str
    name: str
    series: str


class Outputs(NamedTuple):
    """What one forward pass says about N crops.

    probabilities: (N, C) float32, rows summing to 1, in the order of `characters`.
    embeddings: (N, D) float32, each of unit length: faces of one character lie close together.
    cosines: (N, C) float32 cosine to each character's prototype (a cosine head), else None.
    """

    probabilities: np.ndarray
    embeddings: np.ndarray
    cosines: object = None


class Recognizer:
    """A loaded model directory. `run(crops)` is the one call the page makes per image.

    `model` is the Keras model, or a NumpyNetwork (`animerec.network`) of the same file, which
    gives the same answers without importing TensorFlow.
    """

    def __init__(self, model, characters, card, path, fingerprint="", cohort=None):
        self.model = model
        self.characters = characters
        self.card = card
        self.path = Path(path)
        self.fingerprint = fingerprint  # of model.keras: a gallery remembers which model made it
        self.input_size = int(model.input_shape[1])
        self.version = str(card.get("version", "unversioned"))
        self.flip_average = bool(card.get("flip_average", False))
        self.engine = "numpy" if isinstance(model, NumpyNetwork) else "keras"
        self._outputs = model if self.engine == "numpy" else outputs_model(model, card.get("embedding_layer"))
        self._has_cosines = len(model.outputs if self.engine == "numpy" else self._outputs.outputs) > 2
        try:  # the card's calibration: faces' numbers to scores
            self.scorer = Scorer.from_card(card, cohort)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ModelError(f"The calibration in {self.path / CARD_FILE} is not of the expected shape "
                             f"({type(error).__name__}: {error}): recalibrate it with `python -m train calibrate`.") from None
        # Keras models are not documented as safe to call from several threads at once, and
        # Streamlit serves each session on its own thread: one forward pass at a time.
        self._lock = threading.Lock()
        self.calls = 0  # forward passes so far: tests count them to prove the page's caching

    @functools.cached_property
    def embedding_size(self):
        if self.engine == "numpy":
            return int(predict(self._outputs, np.zeros((1, self.input_size, self.input_size, 3), np.uint8))[1].shape[1])
        return int(self._outputs.output_shape[1][-1])

    def run(self, crops):
        """Probabilities and embeddings for a batch of crops, in one forward pass.

        crops: (N, S, S, 3) uint8 RGB with S == `input_size`. Returns Outputs; (0, C) and (0, D)
        for an empty batch. All faces go through one `predict_on_batch` call: for the small
        batches of a page it is several times faster than `predict` or a plain call (see
        `python -m measure`). When the card says `flip_average`, each crop's mirror image
        goes into the same call and the two answers are averaged.
        """
        crops = np.asarray(crops)
        if len(crops) == 0:
            empty = np.zeros((0, len(self.characters)), np.float32)
            return Outputs(empty, np.zeros((0, self.embedding_size), np.float32),
                           empty if self._has_cosines else None)
        if crops.shape[1:] != (self.input_size, self.input_size, 3):
            raise ValueError(
                f"Crops must be (N, {self.input_size}, {self.input_size}, 3); got {crops.shape}."
            )
        with self._lock:
            outputs = Outputs(*predict(self._outputs, crops, self.flip_average))
            self.calls += 1
        log.info("classified %d face(s) with %s (forward pass %d)", len(crops), self.version, self.calls)
        return outputs


def predict(model, crops, flip_average=False):
    """One `predict_on_batch` call of `model` on (N, S, S, 3) uint8 crops, returning each output
    as float32 (a list for several outputs); with `flip_average`, the mean of each crop's and
    its mirror image's answers, embeddings scaled back to unit length. The trainer scores models
    through this same function."""
    batch = np.concatenate([crops, crops[:, :, ::-1]]) if flip_average else crops
    answers = model.predict_on_batch(batch)
    single = not isinstance(answers, (list, tuple))
    answers = [np.asarray(a, dtype=np.float32) for a in ([answers] if single else answers)]
    if flip_average:
        answers = [(a[: len(crops)] + a[len(crops):]) / 2 for a in answers]
    if not single:
        answers[1] = unit_rows(answers[1].reshape(len(crops), -1))
    return answers[0] if single else answers


def unit_rows(x):
    """Rows of `x` scaled to unit length (zero rows stay zero)."""
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def outputs_model(model, embedding_layer=None):
    """A model sharing `model`'s layers whose outputs are its probabilities, its face embedding
    (the output of `embedding_layer`, else of "embedding", else of the layer before the last)
    and, for a cosine head, the cosines of the layer "prototypes"."""
    import keras

    names = [layer.name for layer in model.layers]
    if embedding_layer and embedding_layer not in names:
        raise ModelError(f"The card names the embedding layer {embedding_layer!r}, which the model does not have.")
    name = embedding_layer or ("embedding" if "embedding" in names else names[-2])
    outputs = [model.outputs[0], model.get_layer(name).output]
    if "prototypes" in names:
        outputs.append(model.get_layer("prototypes").output)
    return keras.Model(model.input, outputs)


def read_card(path=None):
    """(characters, card) of a model directory, read from its JSON files alone: what the model
    knows and scored, without importing Keras (the page shows it before the model is loaded).
    Raises ModelError with a sentence when the directory or a file is missing or unreadable."""
    path = Path(path) if path else model_dir()
    if not path.is_dir():
        raise ModelError(
            f"No model directory at {path}: train one with `python -m train fit` "
            "or set ANIMEREC_MODEL to a model directory."
        )
    for name in (LABELS_FILE, CARD_FILE):
        if not (path / name).is_file():
            raise ModelError(f"The model directory {path} has no {name}: copy or retrain the whole directory.")
    try:
        labels = json.loads((path / LABELS_FILE).read_text(encoding="utf-8"))
        characters = [Character(d["slug"], d.get("name") or d["slug"], d.get("series", "")) for d in labels]
        card = json.loads((path / CARD_FILE).read_text(encoding="utf-8"))
    except (ValueError, KeyError, TypeError) as error:
        raise ModelError(f"The labels or card in {path} are not valid JSON of the expected shape ({error}).") from None
    return characters, card


def by_series(characters):
    """[(series, [names])], the series with most characters first (ties by name): who a model
    knows, as the page and the command line tell a visitor."""
    groups = {}
    for character in characters:
        groups.setdefault(character.series or "other", []).append(character.name)
    return sorted(groups.items(), key=lambda item: (-len(item[1]), item[0].casefold()))


def known_in_words(characters):
    """"30 characters: 20 from hololive English, 2 from Magical Girl Lyrical Nanoha and one
    each from Cardcaptor Sakura, ...": who a model knows, in one phrase."""
    groups = by_series(characters)
    several = [f"{len(names)} from {series}" for series, names in groups if len(names) > 1]
    single = [series for series, names in groups if len(names) == 1]
    if single:
        several.append(("one each from " if len(single) > 1 else "one from ") + ", ".join(single))
    parts = ", ".join(several[:-1]) + (" and " if len(several) > 1 else "") + several[-1] if several else "none"
    return f"{len(characters)} character{'s' if len(characters) != 1 else ''}: {parts}"


def load_recognizer(path=None, engine="keras"):
    """Load a model directory (default: `ANIMEREC_MODEL`, else `models/default/`).

    `engine` "keras" runs the network with Keras (TensorFlow is imported here, not at the
    package's import): the fastest per face, for the page. "numpy" runs the same file with
    NumPy (`animerec.network`): the same answers, a few times slower per face, but without
    TensorFlow's import, so a command that names a few pictures answers seconds sooner; a model
    with a layer it does not know is loaded with Keras instead.
    Raises ModelError with a sentence when the directory or one of its files is missing or
    unreadable.
    """
    path = Path(path) if path else model_dir()
    if path.is_dir() and not (path / MODEL_FILE).is_file():
        raise ModelError(f"The model directory {path} has no {MODEL_FILE}: copy or retrain the whole directory.")
    characters, card = read_card(path)
    model = None
    if engine == "numpy":
        try:
            model = NumpyNetwork(path / MODEL_FILE, embedding_layer=card.get("embedding_layer"))
        except UnsupportedModel:
            model = None
        except Exception as error:
            raise ModelError(f"Could not load {path / MODEL_FILE} ({type(error).__name__}: {error}).") from None
    try:
        if model is None:
            with _quiet_native_stderr():
                import keras  # heavy: only when a model is actually loaded

                model = keras.models.load_model(path / MODEL_FILE, compile=False)
    except Exception as error:
        raise ModelError(f"Could not load {path / MODEL_FILE} ({type(error).__name__}: {error}).") from None
    shape = model.output_shape  # an ensemble's is a list: the probabilities', then its embedding's
    outputs = int((shape[0] if isinstance(shape, list) else shape)[-1])
    if outputs != len(characters):
        raise ModelError(
            f"{path / MODEL_FILE} has {outputs} outputs but {LABELS_FILE} names {len(characters)} characters."
        )
    fingerprint = hashlib.sha256((path / MODEL_FILE).read_bytes()).hexdigest()[:16]
    recognizer = Recognizer(model, characters, card, path, fingerprint, _load_cohort(path, card))
    cohort = recognizer.scorer.cohort
    if cohort is not None and cohort.shape[1] != recognizer.embedding_size:
        raise ModelError(f"{path / COHORT_FILE} holds embeddings of size {cohort.shape[1]} but the model's are of size "
                         f"{recognizer.embedding_size}: recalibrate it with `python -m train calibrate`.")
    # The first call traces the prediction function, and the first call with another batch
    # size traces it once more with the batch size left open: pay both here,
    # once, not in the first visitors' requests. Not counted as forward passes.
    size = recognizer.input_size
    for faces in (1, 2) if recognizer.engine == "keras" else ():
        predict(recognizer._outputs, np.zeros((faces, size, size, 3), np.uint8), recognizer.flip_average)
    log.info("loaded model %s from %s (model load %d in this process)", recognizer.version, path, next(_load_counter))
    return recognizer


def _load_cohort(path, card):
    """The gallery's cohort (see `Scorer.gallery_raw`) when the card's calibration names one, else None."""
    named = ((card.get("calibration") or {}).get("gallery_cohort") or {}).get("file")
    if not named:
        return None
    try:
        cohort = np.load(path / named, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ModelError(f"The model directory {path} names {named} but it cannot be read ({error}): "
                         "copy the whole directory again, or recalibrate it with `python -m train calibrate`.") from None
    if cohort.ndim != 2 or not np.issubdtype(cohort.dtype, np.floating):
        raise ModelError(f"{path / named} should hold one embedding per row, as floats; it holds {cohort.dtype} "
                         f"of shape {cohort.shape}: recalibrate it with `python -m train calibrate`.")
    return unit_rows(cohort)


@contextlib.contextmanager
def _quiet_native_stderr():
    """Hide what TensorFlow's C++ runtime writes while it starts (oneDNN and CUDA notes).

    It writes straight to file descriptor 2, past Python's logging and TF_CPP_MIN_LOG_LEVEL,
    and would bury the one line the command line owes a user. Python exceptions are not
    affected: they are raised as objects and reported after the descriptor is restored.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(fd), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
