"""Score curves as a model card describes them: how often a name given at each raw similarity
was right on held-out faces (fitted by `measure.curves`), so a score of 0.8 means about 8 in 10
such names are right, whichever source gave it, and one threshold serves both.
`animerec.scoring.Scorer` applies them. NumPy only.
"""

from typing import NamedTuple

import numpy as np


class Logistic(NamedTuple):
    """score = 1 / (1 + exp(-(slope * raw + intercept)))."""

    slope: float
    intercept: float

    def __call__(self, raw):
        return 1.0 / (1.0 + np.exp(-(self.slope * np.asarray(raw, np.float64) + self.intercept)))

    def raw_at(self, score):
        """The raw value whose score is `score` (0 < score < 1)."""
        return (np.log(score / (1 - score)) - self.intercept) / self.slope

    @classmethod
    def from_dict(cls, d):
        return cls(float(d["slope"]), float(d["intercept"]))

    def to_dict(self):
        return {"slope": round(self.slope, 5), "intercept": round(self.intercept, 5)}


class BySize(NamedTuple):
    """The gallery's logistic curve, placed by how many characters are enrolled: a stranger
    has one chance per enrolled character to come close to one, so a larger gallery needs a
    closer face for the same score to keep rejecting as many strangers.
    score = 1 / (1 + exp(-(slope * raw + intercept(characters)))), intercepts[i] fitted for
    sizes[i] characters, interpolated in log(characters) between them and held beyond them."""

    slope: float
    sizes: tuple
    intercepts: tuple

    def intercept(self, characters):
        return float(np.interp(np.log(max(characters, 1)), np.log(self.sizes), self.intercepts))

    def __call__(self, raw, characters):
        """Scores of `raw` against a gallery of `characters` enrolled characters."""
        return 1.0 / (1.0 + np.exp(-(self.slope * np.asarray(raw, np.float64) + self.intercept(characters))))

    def raw_at(self, score, characters):
        """The raw value whose score is `score` (0 < score < 1) in a gallery of `characters`."""
        return (np.log(score / (1 - score)) - self.intercept(characters)) / self.slope

    @classmethod
    def from_dict(cls, d):
        pairs = sorted((int(k), float(v)) for k, v in d["intercept_by_characters"].items())
        return cls(float(d["slope"]), tuple(k for k, _ in pairs), tuple(v for _, v in pairs))

    def to_dict(self):
        return {"slope": round(self.slope, 5),
                "intercept_by_characters": {str(k): round(v, 5) for k, v in zip(self.sizes, self.intercepts)}}


def gallery_curve_from_dict(d):
    """The gallery's curve a card describes: a BySize, or (older cards) one Logistic for every
    size of gallery."""
    return BySize.from_dict(d) if "intercept_by_characters" in d else Logistic.from_dict(d)


class Monotone(NamedTuple):
    """score = the piecewise-linear curve through (raw[i], score[i]), both increasing, flat
    beyond its ends: how often a name given at each raw value was right,
    fitted by isotonic regression (`measure.curves.fit_monotone`). Unlike a logistic curve it is not bound to
    one shape: a model whose strangers pile up at one cosine and whose known faces spread over
    the rest is fitted where the faces are."""

    raw: tuple
    score: tuple

    def __call__(self, raw):
        return np.interp(np.asarray(raw, np.float64), self.raw, self.score)

    def raw_at(self, score):
        """The lowest raw value whose score is `score` (within the curve's range)."""
        return float(np.interp(score, self.score, self.raw))

    @classmethod
    def from_dict(cls, d):
        return cls(tuple(float(v) for v in d["raw"]), tuple(float(v) for v in d["score"]))

    def to_dict(self):
        return {"kind": "monotone", "raw": [round(v, 5) for v in self.raw], "score": [round(v, 5) for v in self.score]}


def curve_from_dict(d):
    """The score curve a card describes: a Monotone (`"kind": "monotone"`) or a Logistic."""
    return Monotone.from_dict(d) if d.get("kind") == "monotone" else Logistic.from_dict(d)
