"""Scoring a detector against hand-marked boxes: IoU, one-to-one greedy matching, precision and
recall. Used by the tests and by `python -m measure`."""

import csv
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

from animerec.detect import Box, iou


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
