"""Scoring a detector against hand-marked boxes: IoU, one-to-one greedy matching, precision and
recall. Used by the tests and by `python -m animerec.bench`."""

import csv
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

from animerec.detect import Box


class DetectionScore(NamedTuple):
    """Counts and rates at one IoU threshold."""

    iou: float
    true_positives: int
    detections: int
    marked: int

    @property
    def precision(self):
        return self.true_positives / self.detections if self.detections else 0.0

    @property
    def recall(self):
        return self.true_positives / self.marked if self.marked else 0.0


def read_boxes(csv_path):
    """{file name: [Box, ...]} from a `file,x,y,w,h` CSV."""
    boxes = defaultdict(list)
    with Path(csv_path).open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            boxes[row["file"]].append(Box(int(row["x"]), int(row["y"]), int(row["w"]), int(row["h"])))
    return dict(boxes)


def iou(a, b):
    """Intersection over union of two (x, y, w, h) boxes, in [0, 1]."""
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def match(found, marked, threshold):
    """Number of one-to-one matches between found and marked boxes with IoU >= threshold,
    taking the pairs with the highest IoU first."""
    pairs = sorted(
        ((iou(f, m), i, j) for i, f in enumerate(found) for j, m in enumerate(marked)),
        reverse=True,
    )
    used_found, used_marked, matches = set(), set(), 0
    for overlap, i, j in pairs:
        if overlap < threshold:
            break
        if i not in used_found and j not in used_marked:
            used_found.add(i)
            used_marked.add(j)
            matches += 1
    return matches


def score_detections(found_by_file, marked_by_file, thresholds=(0.3, 0.5)):
    """Precision and recall over all files, one DetectionScore per IoU threshold.

    found_by_file / marked_by_file: {file: [boxes]}; files missing from `found_by_file` count as
    having no detection.
    """
    files = set(marked_by_file) | set(found_by_file)
    detections = sum(len(found_by_file.get(f, [])) for f in files)
    marked = sum(len(marked_by_file.get(f, [])) for f in files)
    return [
        DetectionScore(t, sum(match(found_by_file.get(f, []), marked_by_file.get(f, []), t) for f in files),
                       detections, marked)
        for t in thresholds
    ]
