"""Pictures with no face in them, which the network must not name: when a visitor asks the page
to take a whole picture as one face, it may be a landscape, a logo or a flat colour.

Two kinds, both given a uniform target in training (`train.batches`) and judged by
`train calibrate`: squares cut from illustrations away from every marked face, and synthetic
flat colours, gradients, noise and smooth blobs.
"""

from pathlib import Path

import cv2
import numpy as np

from animerec.crop import crop_faces
from measure.detection import read_boxes
from animerec.recognize import featureless
from train.scenes import read_scenes, scene_halves

BACKGROUNDS_PER_SCENE = 8
SYNTHETIC_FOR_TRAINING = 1000
SYNTHETIC_KINDS = ("flat", "gradient", "noise", "blobs")
FACE_CLEARANCE = 0.5  # a background square keeps this share of a marked face's size away from it
MIN_SIDE = 48  # the smallest background square, in pixels of the illustration


def training_non_faces(scenes, size, seed):
    """The pictures with no face that `train fit --non-faces` trains on: backgrounds of the
    calibration half of `scenes` (the half `train calibrate` does not judge on) and synthetic
    pictures. Returns (images (N, size, size, 3) uint8, names of the illustrations used)."""
    paths = scene_halves(scenes)["calibration"]
    rng = np.random.default_rng(seed)
    images = np.concatenate([scene_backgrounds(paths, Path(scenes) / "boxes.csv", size, rng),
                             synthetic_non_faces(SYNTHETIC_FOR_TRAINING, size, rng)])
    return images, [path.name for path in paths]


def synthetic_non_faces(count, size, rng):
    """(count, size, size, 3) uint8: flat colours, two-colour gradients in any of four
    directions, per-pixel noise and smooth colour blobs, in equal shares. Colours are drawn
    evenly in hue, saturation and value, so vivid ones (an orange, a sky blue) are as common as
    greys."""
    kinds = np.arange(count) % len(SYNTHETIC_KINDS)
    images = np.empty((count, size, size, 3), np.uint8)
    ramp = np.linspace(0.0, 1.0, size)[:, None, None] * np.ones((1, size, 1))
    for i, kind in enumerate(kinds):
        a, b = _colours(2, rng)
        if SYNTHETIC_KINDS[kind] == "flat":
            images[i] = a
        elif SYNTHETIC_KINDS[kind] == "gradient":
            images[i] = np.rot90(a + (b - a) * ramp, rng.integers(4))
        elif SYNTHETIC_KINDS[kind] == "noise":
            images[i] = rng.integers(0, 256, (size, size, 3))
        else:
            cells = int(rng.integers(2, 9))
            images[i] = cv2.resize(rng.integers(0, 256, (cells, cells, 3)).astype(np.uint8), (size, size),
                                   interpolation=cv2.INTER_CUBIC)
    return images


def calibration_non_faces(scenes, paths, size, rng, synthetic=400):
    """Pictures with no face for `train calibrate` to choose its rule on: squares of the
    calibration half of `scenes` (`paths`; other squares of it than training drew, mostly) and
    fresh synthetic pictures, without those that have no line in them (the page scores those 0
    whatever the rule: `animerec.recognize.featureless`). Returns (N, size, size, 3) uint8."""
    images = np.concatenate([scene_backgrounds(paths, Path(scenes) / "boxes.csv", size, rng),
                             synthetic_non_faces(synthetic, size, rng)])
    return images[~featureless(images)]


def scene_backgrounds(paths, boxes_csv, size, rng, per_scene=BACKGROUNDS_PER_SCENE):
    """Up to `per_scene` random squares from each illustration in `paths`, none of them within
    `FACE_CLEARANCE` of a face marked in `boxes_csv` (`scenes/boxes.csv`), resized to `size`.
    Unmarked faces (profiles) may remain in them: they are nobody the model knows either.
    An unreadable illustration is skipped with a warning on stderr.
    Returns (N, size, size, 3) uint8."""
    if not Path(boxes_csv).is_file():
        raise FileNotFoundError(f"{boxes_csv} is missing: the scenes' marked faces are needed to cut squares away "
                                "from them.")
    marked = read_boxes(boxes_csv)
    crops = []
    for path, image in read_scenes(paths):
        boxes = background_boxes(image.shape[1], image.shape[0], marked.get(Path(path).name, []), per_scene, rng)
        crops.append(crop_faces(image, boxes, size, margin=0.0))
    return np.concatenate(crops) if crops else np.zeros((0, size, size, 3), np.uint8)


def background_boxes(width, height, faces, count, rng):
    """Up to `count` random squares (x, y, side, side) inside a `width` x `height` picture,
    `MIN_SIDE` to half its shorter side, none within `FACE_CLEARANCE` of a box of `faces`."""
    if min(width, height) < MIN_SIDE:
        return []
    keep_out = [_widened(face, FACE_CLEARANCE) for face in faces]
    found = []
    for _ in range(20 * count):
        side = int(rng.integers(MIN_SIDE, max(MIN_SIDE, min(width, height) // 2) + 1))
        x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        if not any(_overlap((x, y, side, side), box) for box in keep_out):
            found.append((x, y, side, side))
            if len(found) == count:
                break
    return found


def _colours(count, rng):
    """`count` RGB colours drawn evenly in OpenCV's HSV space."""
    hsv = np.stack([rng.integers(0, 180, count), rng.integers(0, 256, count), rng.integers(0, 256, count)], axis=1)
    return cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0].astype(np.int64)


def _widened(box, share):
    x, y, w, h = box
    return x - share * w, y - share * h, w * (1 + 2 * share), h * (1 + 2 * share)


def _overlap(a, b):
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def judge_non_faces(recognizer, scorer, threshold, scenes, test_paths, rng, synthetic=400):
    """How many pictures with no face are called Unknown when taken whole as one face: squares
    from the held-out illustrations `test_paths` and fresh synthetic pictures, scored as the page
    scores them (a picture with no line in it scores 0: `animerec.recognize.featureless`)."""
    size = recognizer.input_size
    kinds = {"scene_backgrounds": scene_backgrounds(test_paths, Path(scenes) / "boxes.csv", size, rng),
             "synthetic": synthetic_non_faces(synthetic, size, rng)}
    judged = {}
    for kind, images in kinds.items():
        scores = np.concatenate([scorer.best(recognizer.run(images[i:i + 256])) for i in range(0, len(images), 256)])
        scores[featureless(images)] = 0.0  # as the page scores them (`animerec.recognize.name_faces`)
        judged[kind] = {"pictures": int(len(images)), "labelled_unknown": round(float((scores < threshold).mean()), 4)}
    return judged
