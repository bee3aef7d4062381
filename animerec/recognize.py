"""From an image to named faces: detection, crops and the model, in one batched pass.

The expensive part (`analyse`) depends only on the image and the detector settings; naming the
faces (`name_faces`) depends on the threshold, top-k and the gallery and is cheap, so the page
can move its sliders and enrol characters without running the network again.
"""

from typing import NamedTuple

import cv2
import numpy as np

from animerec import defaults
from animerec.crop import crop_faces
from animerec.detect import Box, DetectorSettings, face_outline
from animerec.scoring import Scorer

UNKNOWN = "unknown"

# Why a face got the answer it got: every Recognition carries one, so the page and the command
# line say it without deciding it.
NAMED = "named"  # its best candidate reached the threshold
BELOW_THRESHOLD = "below_threshold"  # Unknown, but a near miss: the closest is worth naming
NOBODY_CLOSE = "nobody_close"  # Unknown, and no candidate came near the threshold
NO_LINE = "no_line"  # Unknown: a crop with no line in it is nobody's face (`featureless`)
NO_MODEL = "no_model"  # found, but no recogniser is installed


class Candidate(NamedTuple):
    """One of the closest characters to a face: its slug, display name and calibrated score."""

    slug: str
    name: str
    score: float


class Analysis(NamedTuple):
    """What the detector and the model made of one image.

    boxes: list of Box, each face's outline (`face_outline`: what is drawn and reported; the
    whole image when it is taken as one face).
    crops: (N, S, S, 3) uint8, what the model saw, cut around the cascade's boxes (S = 96
    without a model).
    probabilities: (N, C) float32, or None when no model is installed.
    embeddings: (N, D) unit-length float32, or None.
    scores: (N, C) the calibrated score of each face for each character (`Scorer.model`), or
    None to use the probabilities.
    featureless: (N,) bool, the crops with no line in them (see `featureless`), which are
    Unknown with score 0 and no candidates; or None.
    colourless: (N,) bool, the crops with almost no colour (see `colourless`); or None.
    """

    boxes: list
    crops: np.ndarray
    probabilities: object
    embeddings: object = None
    scores: object = None
    featureless: object = None
    colourless: object = None


class Recognition(NamedTuple):
    """One face, named.

    box: Box, (x, y, w, h) in pixels of the decoded RGB image: the face's outline (`face_outline`),
    or the whole image when it was taken as one face.
    label: the character's slug, "unknown" when `score` < threshold, None without a model.
    name: display name of `label` ("Unknown" for unknown), None without a model.
    score: calibrated confidence in [0, 1] that the best answer is right, compared with the
    threshold; 0.0 without a model.
    top_k: [Candidate(slug, name, score), ...] the closest characters, the model's and the
    gallery's together, best first, each with its calibrated score (the scale of `score` and the
    threshold); the first is the closest character even when the face is Unknown. [] without a
    model, and for a crop with no line in it (`featureless`: a flat colour, a smooth gradient),
    which is Unknown.
    source: "model" or "gallery", where the best answer came from; None without a model or
    candidates.
    colourless: whether the crop has almost no colour (`colourless`: black-and-white or one-tint
    art), which the model names far less often: the page and the command line say so when such
    a face is Unknown.
    verdict: why it got this answer: NAMED, BELOW_THRESHOLD (the closest scored at least
    `defaults.NEAR_MISS` of the threshold), NOBODY_CLOSE (it scored less), NO_LINE or NO_MODEL.
    """

    box: Box
    label: object
    name: object
    score: float
    top_k: list
    source: object = None
    colourless: bool = False
    verdict: str = NO_MODEL


def analyse(image, detector, recognizer=None, settings=DetectorSettings(), detect=True):
    """Detect faces in an (H, W, 3) uint8 RGB image (or take the whole image as one face when
    `detect` is False), crop them and classify all crops in one call.

    Returns an Analysis; no faces gives empty boxes and crops and (0, C) and (0, D) arrays.
    """
    height, width = image.shape[:2]
    boxes = detector.detect(image, settings) if detect else [Box(0, 0, width, height)]
    size = recognizer.input_size if recognizer else 96
    crops = crop_faces(image, boxes, size, margin=defaults.CROP_MARGIN if detect else 0.0)
    if detect:
        boxes = [face_outline(box, image.shape) for box in boxes]
    if recognizer is None:
        return Analysis(boxes, crops, None, colourless=colourless(crops))
    outputs = recognizer.run(crops)
    return Analysis(boxes, crops, outputs.probabilities, outputs.embeddings, recognizer.scorer.model(outputs),
                    featureless(crops), colourless(crops))


WITHOUT_LINES = "no line in it (one flat colour or a smooth gradient), so no face to learn from"
TAKEN_WHOLE = "no face found, so the whole picture was taken as the face"


class Enrolment(NamedTuple):
    """What `enrolment_crops` made of the pictures.

    crops: (K, S, S, 3) uint8, one per picture kept.
    left_out: {index of a picture left out: why} (WITHOUT_LINES).
    taken_whole: indices of the pictures in which the detector found no face, so that the whole
    picture is the face (most such pictures are already face crops).
    """

    crops: np.ndarray
    left_out: dict
    taken_whole: list


def enrolment_crops(images, detector, size, detect=True, settings=None):
    """One crop per image to enrol: the largest face the detector finds (with the page's
    margin), or the whole image when it finds none or `detect` is False. A crop that is
    nobody's face (`featureless`) is left out: it would only blur the character's mean.
    Returns an Enrolment."""
    crops, left_out, taken_whole = [], {}, []
    for i, image in enumerate(images):
        boxes = detector.detect(image, settings or DetectorSettings()) if detect else []
        if boxes:
            box = max(boxes, key=lambda b: b.w * b.h)
            crop = crop_faces(image, [box], size, margin=defaults.CROP_MARGIN)[0]
        else:
            height, width = image.shape[:2]
            crop = crop_faces(image, [Box(0, 0, width, height)], size, margin=0.0)[0]
        if featureless(crop[None])[0]:
            left_out[i] = WITHOUT_LINES
            continue
        if detect and not boxes:
            taken_whole.append(i)
        crops.append(crop)
    return Enrolment(np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8), left_out, taken_whole)


class Candidates(NamedTuple):
    """Every character a face could be named, the model's then the gallery's, for N faces.

    slugs, names, sources: one per character ("model" or "gallery"). scores: (N, K) calibrated
    scores. closeness: (N, K) the network's or the gallery's own numbers, which rank candidates
    whose scores tie (far from the face, where a curve is flat at 0).
    """

    slugs: list
    names: list
    sources: list
    scores: np.ndarray
    closeness: np.ndarray

    def ranked(self, top_k):
        """(N, top_k) column indices, best first: by score, ties by closeness."""
        return np.stack([np.lexsort((-near, -row))[:top_k] for row, near in zip(self.scores, self.closeness)]) \
            if len(self.scores) else np.zeros((0, top_k), np.int64)

    def best(self):
        """(indices (N,), scores (N,)): each face's best candidate, as `ranked` orders them."""
        top = self.scores.max(axis=1, keepdims=True)
        index = np.where(self.scores == top, self.closeness, -np.inf).argmax(axis=1)
        return index, self.scores[np.arange(len(index)), index]


def candidates(analysis, characters, gallery=None, scorer=None):
    """The Candidates of an Analysis with probabilities: the model's `characters`, then the
    `gallery`'s enrolled ones scored by `scorer` (the model card's: `Recognizer.scorer`)."""
    slugs = [c.slug for c in characters]
    names = [c.name for c in characters]
    scores = analysis.scores if analysis.scores is not None else analysis.probabilities
    closeness = np.asarray(analysis.probabilities)
    sources = ["model"] * len(slugs)
    if gallery is not None and len(gallery) and analysis.embeddings is not None and len(analysis.probabilities):
        cosines = gallery.cosines(analysis.embeddings)
        gallery_scores = (scorer or Scorer()).gallery(cosines, analysis.embeddings)
        scores = np.concatenate([scores, gallery_scores], axis=1)
        closeness = np.concatenate([closeness, cosines], axis=1)
        slugs, names = slugs + gallery.slugs, names + gallery.names
        sources = sources + ["gallery"] * len(gallery.slugs)
    return Candidates(slugs, names, sources, np.asarray(scores), closeness)


def outputs_analysis(outputs, scorer):
    """An Analysis of faces the trainer already ran through the network (no boxes, no crops, no
    checks), so that it judges them by the page's own naming (`candidates`)."""
    return Analysis([None] * len(outputs.probabilities), None, outputs.probabilities, outputs.embeddings,
                    scorer.model(outputs))


def name_faces(analysis, characters, threshold=defaults.THRESHOLD, top_k=defaults.TOP_K,
               gallery=None, scorer=None):
    """Turn an Analysis into one Recognition per face, applying the threshold and top-k.

    characters: the model's list of Character (ignored without probabilities). gallery: a
    Gallery of enrolled characters, compared with each face's embedding and scored by `scorer`
    (the model card's: `Recognizer.scorer`) on the same [0, 1] scale as the model's characters;
    the best candidate of either wins (`candidates`).
    """
    grey = np.zeros(len(analysis.boxes), bool) if analysis.colourless is None else analysis.colourless
    if analysis.probabilities is None:
        return [Recognition(box, None, None, 0.0, [], colourless=bool(g)) for box, g in zip(analysis.boxes, grey)]
    table = candidates(analysis, characters, gallery, scorer)
    blank = np.zeros(len(analysis.boxes), bool) if analysis.featureless is None else analysis.featureless
    faces = []
    for box, row, order, featureless_crop, colourless_crop in zip(analysis.boxes, table.scores,
                                                                   table.ranked(max(1, top_k)), blank, grey):
        if featureless_crop:  # nobody, whatever the network says: no candidates to rank
            faces.append(Recognition(box, UNKNOWN, "Unknown", 0.0, [], colourless=bool(colourless_crop),
                                     verdict=NO_LINE))
            continue
        ranked = [Candidate(table.slugs[j], table.names[j], float(row[j])) for j in order]
        best = ranked[0]
        if best.score >= threshold:
            label, name, verdict = best.slug, best.name, NAMED
        else:
            near = best.score >= defaults.NEAR_MISS * threshold
            label, name, verdict = UNKNOWN, "Unknown", BELOW_THRESHOLD if near else NOBODY_CLOSE
        faces.append(Recognition(box, label, name, best.score, ranked, table.sources[order[0]], bool(colourless_crop),
                                 verdict))
    return faces


def featureless(crops):
    """(N,) bool: which of (N, S, S, 3) uint8 crops have no line in them (a flat colour, a smooth
    gradient: see `defaults.MIN_DETAIL`). Such a crop is nobody's face, whatever the network
    says of it."""
    grey = [cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY) for crop in crops]
    return np.array([np.abs(cv2.Laplacian(g, cv2.CV_32F)).mean() < defaults.MIN_DETAIL for g in grey], bool)


def colourless(crops):
    """(N,) bool: which of (N, S, S, 3) uint8 RGB crops have almost no colour (black-and-white or
    one-tint art: see `defaults.MIN_COLOURFUL_SHARE`)."""
    crops = np.asarray(crops, np.uint8)
    red, green, blue = crops[..., 0], crops[..., 1], crops[..., 2]
    chroma = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)  # no wrap: max >= min
    return (chroma > defaults.COLOURFUL_CHROMA).mean(axis=(1, 2)) < defaults.MIN_COLOURFUL_SHARE


def recognize(image, detector, recognizer=None, settings=DetectorSettings(), detect=True,
              threshold=defaults.THRESHOLD, top_k=defaults.TOP_K, gallery=None):
    """`analyse` then `name_faces`: a list of Recognition for an RGB image, [] for no face."""
    analysis = analyse(image, detector, recognizer, settings, detect)
    if recognizer is None:
        return name_faces(analysis, [], threshold, top_k)
    return name_faces(analysis, recognizer.characters, threshold, top_k, gallery, recognizer.scorer)


def default_threshold(recognizer):
    """The model card's threshold, else the default in code, as the page's slider shows it
    (`round_threshold`)."""
    if recognizer is None:
        return defaults.THRESHOLD
    return round_threshold(recognizer.card.get("threshold", defaults.THRESHOLD))


def round_threshold(threshold):
    """A threshold in the page slider's steps (0.01), so the page, the command line and the JSON
    use and show the same value."""
    return round(float(threshold), 2)


def to_dict(face):
    """A Recognition as the JSON object the command line prints and the page downloads."""
    return {
        "box": [int(v) for v in face.box],
        "label": face.label,
        "name": face.name,
        "score": round(float(face.score), 4),
        "top_k": [[c.slug, round(c.score, 4)] for c in face.top_k],
        "source": face.source,
        "colourless": bool(face.colourless),
        "verdict": face.verdict,
    }
