"""Anime face detection with nagadomi's `lbpcascade_animeface` OpenCV cascade."""

import threading
from typing import NamedTuple

import cv2
import numpy as np

from animerec import defaults
from animerec.cascade import cascade_path
from animerec.errors import CascadeError
from animerec.facecheck import load_face_check


class Box(NamedTuple):
    """A face box in pixels of the decoded RGB image, in OpenCV's order: left, top, width,
    height."""

    x: int
    y: int
    w: int
    h: int


def iou(a, b):
    """Intersection over union of two (x, y, w, h) boxes, in [0, 1]."""
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


class DetectorSettings(NamedTuple):
    """Where and how hard the cascade looks. The defaults are the page's (chosen by
    `python -m measure detection`); the sidebar and the command line read them from here.

    scale_factor: step between the cascade's scales (smaller finds more, slower).
    min_neighbors: overlapping hits a face needs (fewer finds more, with more false faces).
    min_size: smallest face, in pixels of the decoded image.
    max_side: the upright pass searches a copy whose longer side is at most this.
    angles: the search passes, in degrees; 0 is the upright pass, the others search a copy
    turned by that angle for tilted faces. Hits from all passes are merged.
    turned_max_side: the turned passes search a copy at most this large (they cost less there).
    retry_margin: when nothing is found, search again in a copy framed by a plain margin of this
    share of the longer side (0: no second search).
    face_check: drop the boxes the face check (`animerec.facecheck`) says are not faces.
    """

    scale_factor: float = defaults.SCALE_FACTOR
    min_neighbors: int = defaults.MIN_NEIGHBORS
    min_size: int = defaults.MIN_SIZE
    max_side: int = defaults.DETECT_MAX_SIDE
    angles: tuple = defaults.DETECT_ANGLES
    turned_max_side: int = defaults.DETECT_TURNED_MAX_SIDE
    retry_margin: float = defaults.RETRY_MARGIN
    face_check: bool = True


# The report's way, and lbpcascade_animeface's own example: upstream's settings, one upright pass
# on the full image. The benchmark's "before".
UPSTREAM_SETTINGS = DetectorSettings(scale_factor=1.1, min_neighbors=5, min_size=24, max_side=10**9, angles=(0,),
                                     retry_margin=0.0, face_check=False)


class FaceDetector:
    """A loaded cascade and face check. Load it once (`load_detector`) and call `detect` per
    image."""

    def __init__(self, cascade, face_check=None):
        self._cascade = cascade
        self._face_check = face_check
        # CascadeClassifier keeps per-image state inside the object: one image at a time, so
        # the page's sessions can share one detector.
        self._lock = threading.Lock()

    def detect(self, image, settings=DetectorSettings(), check=True):
        """Find anime faces in an (H, W, 3) uint8 RGB image.

        Returns a list of Box in reading order (`reading_order`), in pixels of `image`; [] when
        there is none. These are the cascade's boxes, brows to chin: the model's crops are cut
        around them (`crop_faces`), and `face_outline` turns one into the whole face as the page
        draws it. With `settings.face_check` (and `check`), boxes the face check scores as no
        face are dropped. When no face is found and `settings.retry_margin` is set, a copy framed
        by a plain margin is searched too: the cascade needs some room around a face, so a face
        that fills the picture (an enlarged crop) is otherwise missed.
        """
        check = self._face_check if check and settings.face_check else None
        height, width = image.shape[:2]
        boxes = self._checked(image, self._search(image, settings), check)
        if not boxes and settings.retry_margin:
            # Framed at the size the upright pass searches anyway, so a huge picture costs no more.
            scale = min(1.0, settings.max_side / max(height, width))
            small = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                               interpolation=cv2.INTER_AREA) if scale < 1.0 else image
            offset = round(settings.retry_margin * max(small.shape[:2]))
            colour = [int(c) for c in small.reshape(-1, 3).mean(axis=0)]
            framed = cv2.copyMakeBorder(small, offset, offset, offset, offset, cv2.BORDER_CONSTANT, value=colour)
            hits = self._search(framed, settings._replace(min_size=max(1, round(settings.min_size * scale))))
            boxes = self._checked(image, hits, check, offset, scale)
        return reading_order(boxes)

    @staticmethod
    def _checked(image, hits, check, offset=0, scale=1.0):
        """The hits found in a copy of `image` (framed by `offset`, then scaled by `scale`) as
        boxes in pixels of `image`, clamped to it; those `check` rejects are left out."""
        height, width = image.shape[:2]
        boxes = []
        for x, y, w, h, _, _ in hits:
            x, y, w, h = (x - offset) / scale, (y - offset) / scale, w / scale, h / scale
            left, top = max(0, round(x)), max(0, round(y))
            right, bottom = min(width, round(x + w)), min(height, round(y + h))
            if right > left and bottom > top:
                boxes.append(Box(left, top, right - left, bottom - top))
        return check.keep(image, boxes) if check and boxes else boxes

    def _search(self, image, settings):
        """The cascade's passes over `image`, merged: [(x, y, w, h, neighbours, upright)]."""
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        hits = []  # (x, y, w, h, neighbours, upright) in pixels of `image`
        copies = {}  # longer side -> (equalised grey copy, its scale)
        for angle in settings.angles or (0,):
            bound = settings.max_side if angle == 0 else min(settings.max_side, settings.turned_max_side)
            if bound not in copies:
                copies[bound] = _equalised_copy(grey, bound)
            copy, scale = copies[bound]
            searched, back = _turned(copy, angle)
            min_side = max(1, round(settings.min_size * scale))
            with self._lock:
                found, neighbours = self._cascade.detectMultiScale2(
                    searched,
                    scaleFactor=settings.scale_factor,
                    minNeighbors=settings.min_neighbors,
                    minSize=(min_side, min_side),
                )
            for (x, y, w, h), n in zip(found, neighbours):
                # A turned pass's hit keeps its size; its centre is turned back onto the copy.
                cx, cy = back @ (x + w / 2, y + h / 2, 1.0)
                hits.append(((cx - w / 2) / scale, (cy - h / 2) / scale, w / scale, h / scale, int(n), angle == 0))
        return _suppress_overlaps(hits)


def reading_order(boxes):
    """`boxes` as a reader meets them: rows from the top, each row left to right. A box joins
    the row above when its centre is higher than that row's lowest edge."""
    rows = []
    for box in sorted(boxes, key=lambda b: b.y + b.h / 2):
        centre = box.y + box.h / 2
        if rows and centre < max(b.y + b.h for b in rows[-1]):
            rows[-1].append(box)
        else:
            rows.append([box])
    return [box for row in rows for box in sorted(row)]


def face_outline(box, image_shape, scale=defaults.OUTLINE_SCALE, raise_by=defaults.OUTLINE_RAISE):
    """The whole face around one of the cascade's boxes, as people mark a face and as the page
    draws and reports it: `scale` times the box's side, its centre raised by `raise_by` of the
    box's height (see `defaults.OUTLINE_SCALE`), clamped to an image of `image_shape` (H, W, ...).
    Returns a Box."""
    x, y, w, h = box
    height, width = image_shape[:2]
    cx, cy = x + w / 2, y + h / 2 - raise_by * h
    left, top = max(0, round(cx - scale * w / 2)), max(0, round(cy - scale * h / 2))
    right, bottom = min(width, round(cx + scale * w / 2)), min(height, round(cy + scale * h / 2))
    return Box(left, top, max(1, right - left), max(1, bottom - top))


def _equalised_copy(grey, max_side):
    """(histogram-equalised copy of a grey image, longer side at most `max_side`; its scale)."""
    height, width = grey.shape
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return cv2.equalizeHist(grey), scale


def _turned(gray, angle):
    """The image turned by `angle` degrees about its centre on a canvas large enough to hold
    it, and the 2x3 matrix that maps the turned image's pixels back onto the original."""
    if angle == 0:
        return gray, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    height, width = gray.shape
    forward = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    cos, sin = abs(forward[0, 0]), abs(forward[0, 1])
    new_width, new_height = int(height * sin + width * cos), int(height * cos + width * sin)
    forward[0, 2] += new_width / 2 - width / 2
    forward[1, 2] += new_height / 2 - height / 2
    turned = cv2.warpAffine(gray, forward, (new_width, new_height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    return turned, cv2.invertAffineTransform(forward)


def _suppress_overlaps(hits, threshold=0.3):
    """Greedy non-maximum suppression: keep the hits with most neighbours (upright first on a
    tie), dropping any that overlaps a kept one by IoU >= threshold."""
    kept = []
    for hit in sorted(hits, key=lambda h: (h[5], h[4]), reverse=True):
        if all(iou(hit[:4], k[:4]) < threshold for k in kept):
            kept.append(hit)
    return kept


def load_detector(path=None, face_check=True):
    """Load the cascade (see `animerec.cascade.cascade_path` for where it comes from) and the
    face check: `face_check` True loads the default one (`animerec.paths.face_check_dir`), a path
    the one in that directory, None or False none.

    Raises CascadeError when the file is missing, cannot be fetched, or is not a cascade
    (OpenCV does not raise on a bad file; it gives an empty classifier), and ModelError when
    the face check cannot be read.
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
    if not face_check:
        return FaceDetector(cascade)
    return FaceDetector(cascade, load_face_check(None if face_check is True else face_check))
