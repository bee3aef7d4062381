"""The one rule that turns a face's numbers into the scores it is named by.

A face's score for a character is the calibrated chance that naming it so is right. For the
model's characters it comes from the network's cosine to each character's prototype (or its
probability, for a network without a cosine head), less a share of the face's closeness to the
card's cohort of strangers where the card says so, through the card's curve; for an enrolled
character, from the cosine to the character's mean embedding, normalised against the card's
cohort of strangers (`Scorer.gallery_raw`), through the gallery's curve. Both land on one
scale, so one threshold serves both, and no score claims certainty (`MAX_SCORE`). An
uncalibrated model maps cosines linearly to [0, 1]. NumPy only.
"""

from typing import NamedTuple

import numpy as np

from animerec.calibration import BySize, curve_from_dict, gallery_curve_from_dict

MAX_SCORE = 0.999  # a score never claims certainty, so a threshold of 1 rejects all
COHORT_TOP = 10  # a face's cosines to its nearest strangers of the cohort that are averaged


def naming_scores(outputs):
    """(N, C): the numbers whose largest names each face: the cosine to each character's
    prototype for a cosine head, else the probability. With mirror-image averaging the two can
    disagree (the mean of two softmaxes is not the softmax of the mean cosines); the page names
    by this, and so do the trainer's metrics."""
    return outputs.probabilities if outputs.cosines is None else outputs.cosines


class Scorer(NamedTuple):
    """Calibrated scores of the model's and the gallery's characters, read from a model card.

    model_curve: maps the model's raw number (see `model_raw`) to a score; None when
    uncalibrated. gallery_curve: maps the gallery's normalised cosine (see `gallery_raw`) to a
    score; None when uncalibrated. cohort: (M, D) unit rows, centres of strangers' embeddings,
    or None. top: how many of a face's nearest cohort centres its cosines are normalised by.
    model_cohort_weight: how much of that closeness to strangers the model's raw number loses
    (see `model_raw`; 0 leaves it the plain cosine). Calibration tries curves and weights
    through the same rule the page uses with `_replace`.
    """

    model_curve: object = None
    gallery_curve: object = None
    cohort: object = None
    top: int = COHORT_TOP
    model_cohort_weight: float = 0.0

    @classmethod
    def from_card(cls, card, cohort=None):
        """The scorer a model card's `calibration` describes (uncalibrated without one)."""
        calibration = card.get("calibration") or {}
        return cls(curve_from_dict(calibration["model"]) if "model" in calibration else None,
                   gallery_curve_from_dict(calibration["gallery"]) if "gallery" in calibration else None,
                   cohort, int(calibration.get("gallery_cohort", {}).get("top", COHORT_TOP)),
                   float(calibration.get("model_cohort_weight", 0.0)))

    def model_raw(self, outputs):
        """(N, C): the model's raw number for each face and character: `naming_scores`, less
        `model_cohort_weight` times the face's closeness to the cohort (`cohort_closeness`). A
        face drawn like many strangers then needs a higher cosine to be named, one unlike any
        stranger less; the closeness is one number per face, so which character is closest
        never changes."""
        raw = naming_scores(outputs)
        if not self.model_cohort_weight:
            return raw
        return raw - self.model_cohort_weight * self.cohort_closeness(outputs.embeddings)[:, None]

    def cohort_closeness(self, embeddings):
        """(N,): the mean of each face's `top` highest cosines to the cohort's centres (zeros
        without a cohort)."""
        embeddings = np.asarray(embeddings, np.float32)
        if self.cohort is None or len(self.cohort) == 0:
            return np.zeros(len(embeddings))
        similarity = embeddings @ self.cohort.T
        top = min(self.top, similarity.shape[1])
        return np.partition(similarity, similarity.shape[1] - top, axis=1)[:, -top:].mean(axis=1).astype(np.float64)

    def model(self, outputs):
        """(N, C) float32: each face's score for each of the model's characters."""
        raw = self.model_raw(outputs)
        if self.model_curve is not None:
            return _cap(self.model_curve(raw))
        return _cap(raw if outputs.cosines is None else _linear(raw))

    def best(self, outputs):
        """(N,): each face's score for its closest model character."""
        return self.model(outputs).max(axis=1, initial=0.0)

    def gallery_raw(self, cosines, embeddings):
        """Cosines to enrolled characters ((N,), or (N, K) one column per character) less the
        mean of each face's `top` highest cosines to the cohort: a face that sits close to many
        strangers gets less from a high cosine (cohort normalisation, Z-norm on the probe's
        side, as in face and speaker verification). The plain cosines without a cohort."""
        cosines = np.asarray(cosines, np.float64)
        if self.cohort is None or len(self.cohort) == 0 or len(cosines) == 0:
            return cosines
        return cosines - self.cohort_closeness(embeddings).reshape((-1,) + (1,) * (cosines.ndim - 1))

    def gallery(self, cosines, embeddings):
        """Scores of the enrolled characters, the same shape as `cosines` ((N, K): K enrolled
        characters; (N,): one), from the faces' cosines to them and the faces' `embeddings`."""
        if self.gallery_curve is None:
            return _cap(_linear(np.asarray(cosines, np.float64)))
        raw = self.gallery_raw(cosines, embeddings)
        if isinstance(self.gallery_curve, BySize):  # one column per enrolled character
            return _cap(self.gallery_curve(raw, raw.shape[1] if raw.ndim == 2 else 1))
        return _cap(self.gallery_curve(raw))


def _linear(cosines):
    return (cosines + 1) / 2


def _cap(scores):
    return np.minimum(scores, MAX_SCORE).astype(np.float32)
