"""Anime face detection with nagadomi's `lbpcascade_animeface` OpenCV cascade."""

import threading
from typing import NamedTuple

import cv2

from animerec import defaults
from animerec.cascade import cascade_path
from animerec.errors import CascadeError


class Box(NamedTuple):
    """A face box in pixels of the decoded RGB image, in OpenCV's order: left, top, width,
    height."""

    x: int
    y: int
    w: int
    h: int


class DetectorSettings(NamedTuple):
    """How hard the cascade looks. The defaults are upstream's; the sidebar and the command
    line read them from here.

    scale_factor: step between the cascade's scales (smaller finds more, slower).
    min_neighbors: overlapping hits a face needs (fewer finds more, with more false faces).
    min_size: smallest face, in pixels of the decoded image.
    max_side: the cascade runs on a copy whose longer side is at most this.
    """

    scale_factor: float = defaults.SCALE_FACTOR
    min_neighbors: int = defaults.MIN_NEIGHBORS
    min_size: int = defaults.MIN_SIZE
    max_side: int = defaults.DETECT_MAX_SIDE


class FaceDetector:
    """A loaded cascade. Load it once (`load_detector`) and call `detect` per image."""

    def __init__(self, cascade):
        self._cascade = cascade
        # CascadeClassifier keeps per-image state inside the object: one image at a time, so
        # the page's sessions can share one detector.
        self._lock = threading.Lock()

    def detect(self, image, settings=DetectorSettings()):
        """Find anime faces in an (H, W, 3) uint8 RGB image.

        Returns a list of Box sorted left to right, in pixels of `image`; [] when there is none.
        """
        height, width = image.shape[:2]
        scale = min(1.0, settings.max_side / max(height, width))
        small = image
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        min_side = max(1, round(settings.min_size * scale))
        with self._lock:
            found = self._cascade.detectMultiScale(
                gray,
                scaleFactor=settings.scale_factor,
                minNeighbors=settings.min_neighbors,
                minSize=(min_side, min_side),
            )
        boxes = []
        for x, y, w, h in found:
            left, top = round(x / scale), round(y / scale)
            right, bottom = min(width, round((x + w) / scale)), min(height, round((y + h) / scale))
            boxes.append(Box(left, top, right - left, bottom - top))
        return sorted(boxes)


def load_detector(path=None):
    """Load the cascade (see `animerec.cascade.cascade_path` for where it comes from).

    Raises CascadeError when the file is missing, cannot be fetched, or is not a cascade
    (OpenCV does not raise on a bad file; it gives an empty classifier).
    """
    path = path or cascade_path()
    try:
        cascade = cv2.CascadeClassifier(str(path))
    except (cv2.error, SystemError):  # a malformed or empty file can also raise while parsing
        cascade = None
    if cascade is None or cascade.empty():
        raise CascadeError(
            f"{path} is not a readable OpenCV cascade: replace it with lbpcascade_animeface.xml "
            "(delete it and it is downloaded again)."
        )
    return FaceDetector(cascade)
