"""The face check: a small network, trained by `python -m train face-check`, that tells the
cascade's faces from its false hits (a hand, the folds of a dress). The detector drops a box
it scores under its card's threshold."""

import json
import zipfile
from pathlib import Path

import numpy as np

from animerec.crop import crop_faces
from animerec.errors import ModelError
from animerec.network import NumpyNetwork, UnsupportedModel
from animerec.paths import face_check_dir

MODEL_FILE = "model.keras"
CARD_FILE = "card.json"
INPUT_SIZE = 40  # the check sees the recogniser's crop (box and margin) at this size


class FaceCheck:
    """A loaded face check. `scores(image, boxes)` gives each box's chance of being a face,
    `keep(image, boxes)` the boxes that pass the threshold, in their order."""

    def __init__(self, network, threshold):
        self._network = network
        self.threshold = threshold
        self._blas = None

    def scores(self, image, boxes):
        if not boxes:
            return np.zeros(0, np.float32)
        if self._blas is None:
            from threadpoolctl import ThreadpoolController

            self._blas = ThreadpoolController()
        # One BLAS thread: the network is small, and OpenBLAS's threads keep spinning after a
        # call, which slowed the cascade's next search by more than the whole check costs.
        with self._blas.limit(limits=1, user_api="blas"):
            (probabilities,) = self._network(crop_faces(image, boxes, INPUT_SIZE))
        return probabilities[:, 1]

    def keep(self, image, boxes):
        return [box for box, score in zip(boxes, self.scores(image, boxes)) if score >= self.threshold]


def load_face_check(path=None):
    """The face check in the directory `path` (default `animerec.paths.face_check_dir()`).
    Raises ModelError with a sentence when its files are missing or unreadable."""
    path = Path(path or face_check_dir())
    try:
        card = json.loads((path / CARD_FILE).read_text(encoding="utf-8"))
        network = NumpyNetwork(path / MODEL_FILE, outputs=["probabilities"])
        return FaceCheck(network, float(card["threshold"]))
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, UnsupportedModel) as error:
        raise ModelError(f"The face check in {path} could not be read ({type(error).__name__}): restore "
                         "models/face_check/ from the repository.") from error
