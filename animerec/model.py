"""The recogniser: a model directory on disk, loaded into something that classifies crops.

A model directory holds
- `model.keras`: a Keras 3 model from (N, S, S, 3) uint8 RGB crops to (N, C) probabilities;
- `labels.json`: `[{"slug", "name", "series"}, ...]`, one per output, in output order;
- `card.json`: how it was trained and what it scored (machine-readable), with `threshold`;
- `card.md`: the same for people.
"""

import contextlib
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
from animerec.paths import model_dir

log = logging.getLogger("animerec")
_load_counter = itertools.count(1)

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"
CARD_FILE = "card.json"
CARD_MARKDOWN = "card.md"


class Character(NamedTuple):
    """A character the model knows: `slug` is its training folder name."""

    slug: str
    name: str
    series: str


class Recognizer:
    """A loaded model directory. `classify(crops)` is the one call the page makes per image."""

    def __init__(self, model, characters, card, path):
        self.model = model
        self.characters = characters
        self.card = card
        self.path = Path(path)
        self.input_size = int(model.input_shape[1])
        self.version = str(card.get("version", "unversioned"))
        self.flip_average = bool(card.get("flip_average", False))
        # Keras models are not documented as safe to call from several threads at once, and
        # Streamlit serves each session on its own thread: one forward pass at a time.
        self._lock = threading.Lock()
        self.calls = 0  # forward passes so far: tests count them to prove the page's caching

    def classify(self, crops):
        """Probabilities for a batch of crops.

        crops: (N, S, S, 3) uint8 RGB with S == `input_size`. Returns (N, C) float32, rows
        summing to 1, in the order of `characters`; (0, C) for an empty batch. All faces go
        through one `predict_on_batch` call: for the small batches of a page it is several times
        faster than `predict` or a plain call (see `python -m animerec.bench`). When the card
        says `flip_average`, each crop's mirror image goes into the same call and the two
        answers are averaged.
        """
        crops = np.asarray(crops)
        if len(crops) == 0:
            return np.zeros((0, len(self.characters)), np.float32)
        if crops.shape[1:] != (self.input_size, self.input_size, 3):
            raise ValueError(
                f"Crops must be (N, {self.input_size}, {self.input_size}, 3); got {crops.shape}."
            )
        with self._lock:
            probabilities = predict_probabilities(self.model, crops, self.flip_average)
            self.calls += 1
        log.info("classified %d face(s) with %s (forward pass %d)", len(crops), self.version, self.calls)
        return probabilities


def predict_probabilities(model, crops, flip_average=False):
    """(N, C) float32 probabilities for (N, S, S, 3) uint8 crops in one `predict_on_batch` call;
    with `flip_average`, the mean of each crop's and its mirror image's probabilities. The
    trainer scores models through this same function."""
    if not flip_average:
        return np.asarray(model.predict_on_batch(crops), dtype=np.float32)
    both = np.asarray(model.predict_on_batch(np.concatenate([crops, crops[:, :, ::-1]])), dtype=np.float32)
    return (both[: len(crops)] + both[len(crops):]) / 2


def load_recognizer(path=None):
    """Load a model directory (default: `ANIMEREC_MODEL`, else `models/default/`).

    Raises ModelError with a sentence when the directory or one of its files is missing or
    unreadable. TensorFlow and Keras are imported here, not at the package's import.
    """
    path = Path(path) if path else model_dir()
    if not path.is_dir():
        raise ModelError(
            f"No model directory at {path}: train one with `python -m train fit` "
            "or set ANIMEREC_MODEL to a model directory."
        )
    for name in (MODEL_FILE, LABELS_FILE, CARD_FILE):
        if not (path / name).is_file():
            raise ModelError(f"The model directory {path} has no {name}: copy or retrain the whole directory.")
    try:
        labels = json.loads((path / LABELS_FILE).read_text(encoding="utf-8"))
        characters = [Character(d["slug"], d.get("name") or d["slug"], d.get("series", "")) for d in labels]
        card = json.loads((path / CARD_FILE).read_text(encoding="utf-8"))
    except (ValueError, KeyError, TypeError) as error:
        raise ModelError(f"The labels or card in {path} are not valid JSON of the expected shape ({error}).") from None

    try:
        with _quiet_native_stderr():
            import keras  # heavy: only when a model is actually loaded

            model = keras.models.load_model(path / MODEL_FILE, compile=False)
    except Exception as error:
        raise ModelError(f"Could not load {path / MODEL_FILE} ({type(error).__name__}: {error}).") from None
    outputs = int(model.output_shape[-1])
    if outputs != len(characters):
        raise ModelError(
            f"{path / MODEL_FILE} has {outputs} outputs but {LABELS_FILE} names {len(characters)} characters."
        )
    recognizer = Recognizer(model, characters, card, path)
    # The first call traces the prediction function, and the first call with another batch
    # size traces it once more with the batch size left open (about 0.3 s each): pay both here,
    # once, not in the first visitors' requests. Not counted as forward passes.
    size = recognizer.input_size
    for faces in (1, 2):
        predict_probabilities(model, np.zeros((faces, size, size, 3), np.uint8), recognizer.flip_average)
    log.info("loaded model %s from %s (model load %d in this process)", recognizer.version, path, next(_load_counter))
    return recognizer


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
