"""From an image to named faces: detection, crops and the model, in one batched pass.

The expensive part (`analyse`) depends only on the image and the detector settings; naming the
faces (`name_faces`) depends on the threshold and top-k and is cheap, so the page can move its
sliders without running the network again.
"""

from typing import NamedTuple

import numpy as np

from animerec import defaults
from animerec.crop import crop_faces
from animerec.detect import Box, DetectorSettings

UNKNOWN = "unknown"


class Analysis(NamedTuple):
    """What the detector and the model made of one image.

    boxes: list of Box. crops: (N, S, S, 3) uint8, what the model saw (S = 96 without a
    model). probabilities: (N, C) float32, or None when no model is installed.
    """

    boxes: list
    crops: np.ndarray
    probabilities: object


class Recognition(NamedTuple):
    """One face, named.

    box: Box, (x, y, w, h) in pixels of the decoded RGB image.
    label: the character's slug, "unknown" when `score` < threshold, None without a model.
    name: display name of `label` ("Unknown" for unknown), None without a model.
    score: confidence in [0, 1] compared with the threshold (the top probability); 0.0 without a model.
    top_k: [(slug, probability), ...], best first; its first entry is the closest known
    character even when the face is Unknown. [] without a model.
    """

    box: Box
    label: object
    name: object
    score: float
    top_k: list


def analyse(image, detector, recognizer=None, settings=DetectorSettings(), detect=True):
    """Detect faces in an (H, W, 3) uint8 RGB image (or take the whole image as one face when
    `detect` is False), crop them and classify all crops in one call.

    Returns an Analysis; no faces gives empty boxes and crops and a (0, C) array.
    """
    height, width = image.shape[:2]
    boxes = detector.detect(image, settings) if detect else [Box(0, 0, width, height)]
    size = recognizer.input_size if recognizer else 96
    crops = crop_faces(image, boxes, size, margin=defaults.CROP_MARGIN if detect else 0.0)
    probabilities = recognizer.classify(crops) if recognizer else None
    return Analysis(boxes, crops, probabilities)


def name_faces(analysis, characters, threshold=defaults.THRESHOLD, top_k=defaults.TOP_K):
    """Turn an Analysis into one Recognition per face, applying the threshold and top-k.

    characters: the model's list of Character (ignored without probabilities).
    """
    if analysis.probabilities is None:
        return [Recognition(box, None, None, 0.0, []) for box in analysis.boxes]
    names = {c.slug: c.name for c in characters}
    faces = []
    for box, row in zip(analysis.boxes, analysis.probabilities):
        order = np.argsort(-row)[: max(1, top_k)]
        ranked = [(characters[i].slug, float(row[i])) for i in order]
        score = ranked[0][1]
        label = ranked[0][0] if score >= threshold else UNKNOWN
        faces.append(Recognition(box, label, names.get(label, "Unknown"), score, ranked))
    return faces


def recognize(image, detector, recognizer=None, settings=DetectorSettings(), detect=True,
              threshold=defaults.THRESHOLD, top_k=defaults.TOP_K):
    """`analyse` then `name_faces`: a list of Recognition for an RGB image, [] for no face."""
    analysis = analyse(image, detector, recognizer, settings, detect)
    return name_faces(analysis, recognizer.characters if recognizer else [], threshold, top_k)


def default_threshold(recognizer):
    """The model card's threshold, else the default in code."""
    if recognizer is None:
        return defaults.THRESHOLD
    return float(recognizer.card.get("threshold", defaults.THRESHOLD))


def to_dict(face):
    """A Recognition as the JSON object the command line prints and the page downloads."""
    return {
        "box": [int(v) for v in face.box],
        "label": face.label,
        "name": face.name,
        "score": round(float(face.score), 4),
        "top_k": [[slug, round(p, 4)] for slug, p in face.top_k],
    }
