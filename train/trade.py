"""`train evaluate --strangers --scenes`: a model judged along its whole trade between naming
known faces and calling strangers Unknown, not only at the threshold its calibration chose.

Calibration puts the threshold where the kind of stranger closest to the characters is
rejected at the target share, and that kind (the few-shot characters' calibration quarter) is
a few dozen faces: two networks of about the same power can land at thresholds far apart, and
one then looks better at naming and worse at refusing only because it sits elsewhere on the
same curve. This table puts them side by side at the same thresholds: for each, the share of
test faces named right at or above it and the share of each kind of held-out stranger below it.
"""

from pathlib import Path

import numpy as np

from train.dataset import degrade, load_unlabelled, read_unknown_split
from train.defaults import DEGRADED_SIZE

TRADE_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def stranger_scores(recognizer, split_file, strangers=None, scenes=None, seed=0):
    """Each held-out stranger's best score, as `train calibrate` judges them: {"portraits": the
    test part of `strangers/` (by the model's split.json) shrunk to its size and back,
    "scene_faces": the faces the page's detector finds in the judging half of `scenes/`}, for
    those folders given."""
    def best(images):
        return np.concatenate([recognizer.scorer.best(recognizer.run(images[i:i + 256]))
                               for i in range(0, len(images), 256)] or [np.zeros(0)])

    found = {}
    if strangers:
        images, files = load_unlabelled(strangers, recognizer.input_size)
        parts = read_unknown_split(split_file, files, "strangers")
        if parts is None:
            raise FileNotFoundError(f"{split_file} names no strangers: the model did not train with --strangers, so "
                                    "no part of that folder is known to be held out from it.")
        found["portraits"] = best(degrade(images[parts["test"]], DEGRADED_SIZE))
    if scenes:
        from train.scenes import detected_faces, scene_halves

        faces = detected_faces(recognizer, {"test": scene_halves(scenes, seed)["test"]})["test"]
        found["scene_faces"] = recognizer.scorer.best(faces) if len(faces.probabilities) else np.zeros(0)
    return found


def trade_table(named, strangers, thresholds=TRADE_THRESHOLDS):
    """One row per threshold: for each kind of known face (`named`: kind -> (right, best score)
    per face) the share named right at or above it, for each kind of stranger (`strangers`:
    kind -> best score per face) the share below it."""
    rows = []
    for threshold in thresholds:
        row = {"threshold": threshold}
        for kind, (right, score) in named.items():
            row[f"{kind}_named"] = round(float(np.mean(right & (score >= threshold))), 4)
        for kind, score in strangers.items():
            row[f"{kind}_unknown"] = round(float(np.mean(score < threshold)), 4) if len(score) else None
        rows.append(row)
    return rows
