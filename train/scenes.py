"""Faces the page's own detector finds in `scenes/` illustrations, whose characters are in no
training set: strangers as the page meets them, and the detector's false hits."""

import sys
from pathlib import Path

import numpy as np

from animerec import defaults
from animerec.crop import crop_faces
from animerec.decode import decode_image
from animerec.detect import load_detector
from animerec.errors import ImageError
from train.fewshot import best_names, enrol


def scene_halves(scenes, seed=0):
    """The illustrations of `scenes` (`*.jpg`) split at random into {"calibration": [paths],
    "test": [paths]}. `train calibrate` and `train fit --non-faces` draw the same halves from the
    same seed, so training never sees a picture that judges the model."""
    paths = sorted(Path(scenes).glob("*.jpg"))
    if len(paths) < 2:
        raise FileNotFoundError(f"{scenes} has {len(paths)} illustrations (*.jpg); the scenes need at least two, "
                                "one half to calibrate and one to judge.")
    order = np.random.default_rng(seed + 1).permutation(len(paths))
    return {"calibration": [paths[i] for i in sorted(order[: len(paths) // 2])],
            "test": [paths[i] for i in sorted(order[len(paths) // 2:])]}


def read_scenes(paths):
    """(path, (H, W, 3) uint8 RGB image) for each illustration in `paths` that decodes; an
    unreadable one is skipped with a warning on stderr. When none of them decodes, ImageError
    says so once they are all tried: rates judged on no picture at all would mean nothing."""
    read = 0
    for path in paths:
        try:
            image = decode_image(Path(path).read_bytes())
        except ImageError as error:
            print(f"warning: skipped {path}: {error}", file=sys.stderr)
            continue
        read += 1
        yield path, image
    if paths and not read:
        raise ImageError(f"None of the {len(paths)} illustrations from {Path(paths[0]).parent} could be read "
                         "(see the warnings above): replace them with readable JPEGs.")


def detected_faces(recognizer, halves):
    """The faces the page's detector finds in each half of the illustrations (`scene_halves`):
    {"calibration": Outputs, "test": Outputs, and the count of illustrations read in each}.
    Nobody in them is one of the model's characters."""
    detector = load_detector()
    size = recognizer.input_size
    found = {}
    for part, paths in halves.items():
        crops = [np.zeros((0, size, size, 3), np.uint8)]
        for _, image in read_scenes(paths):
            crops.append(crop_faces(image, detector.detect(image), size, margin=defaults.CROP_MARGIN))
        found[part] = recognizer.run(np.concatenate(crops))
        found[f"{part}_images"] = len(crops) - 1
    return found


def judge_scene_faces(scene_faces, scorer, characters, threshold, newcomers, few):
    """How many faces found in the held-out scenes are called Unknown, with the model alone
    and with all the few-shot characters enrolled from every one of their faces."""
    outputs = scene_faces["test"]
    _, alone = best_names(outputs, scorer, characters)
    gallery = enrol(newcomers.embeddings, [np.nonzero(few.labels == c)[0] for c in range(len(few.classes))],
                    few.classes, newcomers.embeddings.shape[1])
    _, both = best_names(outputs, scorer, characters, gallery)
    return {"images": scene_faces["test_images"], "faces_found": int(len(alone)),
            "calibration_images": scene_faces["calibration_images"],
            "calibration_faces": int(len(scene_faces["calibration"].probabilities)),
            "labelled_unknown": round(float((alone < threshold).mean()), 4),
            "labelled_unknown_with_fewshot_gallery": round(float((both < threshold).mean()), 4)}
