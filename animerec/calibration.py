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
