"""`python -m train face-check`: the small network that tells a face from the cascade's false
hits (a hand, the folds of a dress), and the figures that judge it.

The cascade's own confidence does not separate them (see docs/model.md), nor does the
recogniser's embedding, which was trained to tell characters apart, not faces from the rest.
So a network of its own learns face-ness from what the cascade finds:

- faces: the cascade's boxes on the marked faces of the calibration half of `scenes/` (the half
  `train calibrate` does not judge on), and its boxes in the training crops of `faces/`,
  `unknown/` and `strangers/` (many characters, styles and framings);
- not faces: the hits of a far more eager cascade (`EAGER`) in those illustrations away from
  every marked face, which look to the cascade as much like faces as its false boxes do, and
  random squares of them.

A quarter of the calibration half's illustrations (and a tenth of the crops) is kept out of
training to choose the threshold; the test half of `scenes/` only judges.
"""

import json
from pathlib import Path

import keras
import numpy as np
from keras import layers

from animerec.crop import crop_faces
from animerec.decode import decode_image
from animerec.detect import DetectorSettings, face_outline, iou, load_detector
from animerec.errors import ImageError
from animerec.facecheck import CARD_FILE, INPUT_SIZE, MODEL_FILE
from measure.detection import read_boxes, score_detections
from train.batchnorm import recalibrate_batch_norm
from train.nonfaces import scene_backgrounds
from train.scenes import read_scenes, scene_halves

# Many more hits than the page's detector: the cascade's near misses are the hardest non-faces.
EAGER = DetectorSettings(scale_factor=1.05, min_neighbors=0)
FACE_IOU = 0.3  # a hit whose outline overlaps a marked face this much is that face
CLEAR_IOU = 0.05  # a hit whose outline overlaps every marked face less than this is no face
KEEP_FACES = 0.995  # the threshold keeps at least this share of the held-out faces of each kind
WIDTHS = (24, 48, 96, 128)  # filters of the convolutions, at 20, 20, 10 and 5 px
JITTER = 0.08  # training copies of a box move and resize by up to this share of its side


def labelled_hits(image, marked, detector, settings_list=(DetectorSettings(), EAGER)):
    """The detector's boxes in `image` under each of `settings_list`, merged: (faces, not faces,
    faces marked), as lists of boxes. A hit is a face when its outline overlaps a box of `marked`
    by `FACE_IOU`, not a face when it overlaps none by `CLEAR_IOU`; the rest is left out."""
    found = []
    for settings in settings_list:
        for box in detector.detect(image, settings, check=False):
            if all(iou(box, other) < 0.5 for other in found):
                found.append(box)
    faces, not_faces = [], []
    for box in found:
        overlap = max((iou(face_outline(box, image.shape), m) for m in marked), default=0.0)
        if overlap >= FACE_IOU:
            faces.append(box)
        elif overlap < CLEAR_IOU:
            not_faces.append(box)
    return faces, not_faces


def jittered(boxes, copies, rng):
    """`copies` moved and resized copies of each box (up to `JITTER` of its side)."""
    out = []
    for x, y, w, h in boxes:
        for _ in range(copies):
            side = w * (1 + rng.uniform(-JITTER, JITTER))
            cx, cy = x + w / 2 + rng.uniform(-JITTER, JITTER) * w, y + h / 2 + rng.uniform(-JITTER, JITTER) * h
            out.append((round(cx - side / 2), round(cy - side / 2), max(1, round(side)), max(1, round(side))))
    return out


def scene_examples(paths, boxes_csv, detector, rng, copies=1):
    """Crops of the detector's hits in the illustrations `paths`: (faces, not faces), each
    (N, INPUT_SIZE, INPUT_SIZE, 3) uint8. With `copies` > 1, each box is also taken `copies`
    times jittered (training); random squares away from the faces join the not-faces."""
    marked = read_boxes(boxes_csv)
    faces, not_faces = [_empty()], [_empty()]
    for path, image in read_scenes(paths):
        hits, misses = labelled_hits(image, marked.get(Path(path).name, []), detector)
        if copies > 1:
            hits, misses = hits + jittered(hits, copies - 1, rng), misses + jittered(misses, copies - 1, rng)
        faces.append(crop_faces(image, hits, INPUT_SIZE))
        not_faces.append(crop_faces(image, misses, INPUT_SIZE))
    not_faces.append(scene_backgrounds(paths, boxes_csv, INPUT_SIZE, rng))
    return np.concatenate(faces), np.concatenate(not_faces)


def crop_examples(paths, detector):
    """The page's crop of the detector's first box in each face crop of `paths` (where it finds
    one), as the page would cut it: (N, INPUT_SIZE, INPUT_SIZE, 3) uint8."""
    crops = [_empty()]
    for path in paths:
        try:
            image = decode_image(Path(path).read_bytes())
        except ImageError:
            continue
        boxes = detector.detect(image, check=False)
        if boxes:
            crops.append(crop_faces(image, boxes[:1], INPUT_SIZE))
    return np.concatenate(crops)


def _empty():
    return np.zeros((0, INPUT_SIZE, INPUT_SIZE, 3), np.uint8)


def make_face_check(seed=0):
    """A small convolutional network, (N, INPUT_SIZE, INPUT_SIZE, 3) uint8 -> (N, 2) softmax
    (not a face, a face), of the layers `animerec.network` runs with NumPy. A strided first
    convolution and one convolution per scale keep it to a few million multiply-adds a box."""
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="crop")
    x = layers.Rescaling(1.0 / 255, name="scale")(inputs)
    # Turned by up to 30 degrees: the detector's turned passes find tilted faces.
    x = keras.Sequential([layers.RandomFlip("horizontal", seed=seed),
                          layers.RandomRotation(30 / 360, fill_mode="reflect", seed=seed),
                          layers.RandomBrightness(0.2, value_range=(0.0, 1.0), seed=seed),
                          layers.RandomContrast(0.3, seed=seed)], name="augment")(x)
    for i, filters in enumerate(WIDTHS):
        x = layers.Conv2D(filters, 3, strides=2 if i == 0 else 1, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.Activation("relu")(x)
        if 0 < i < len(WIDTHS) - 1:
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="pooled")(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(2, name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="face_check")


def gather(data, split_file, seed=0):
    """The face check's examples: {"fit": (images, labels), "choose": {kind: images}} where
    labels are 1 for a face, and "choose" holds the held-out faces and not-faces the threshold
    is chosen on ("scene_faces", "crops", "not_faces"). `split_file` (a model directory's
    split.json) says which crops of `data`'s `faces/`, `unknown/` and `strangers/` trained that
    model: only those are used, so no face that judges the recogniser trains the check."""
    data, rng = Path(data), np.random.default_rng(seed)
    detector = load_detector(face_check=None)
    scenes = data / "scenes"
    calibration = scene_halves(scenes)["calibration"]
    order = rng.permutation(len(calibration))
    choose_scenes = [calibration[i] for i in sorted(order[: len(calibration) // 4])]
    fit_scenes = [calibration[i] for i in sorted(order[len(calibration) // 4:])]
    split = json.loads(Path(split_file).read_text(encoding="utf-8"))
    crop_paths = ([data / "faces" / name for name in split["train"]]
                  + [data / "unknown" / name for name in split["unknown"]["train"]]
                  + [data / "strangers" / name for name in split["strangers"]["train"]])
    crops = crop_examples(crop_paths, detector)
    crops = crops[rng.permutation(len(crops))]
    held = len(crops) // 10
    faces, not_faces = scene_examples(fit_scenes, scenes / "boxes.csv", detector, rng, copies=4)
    chosen_faces, chosen_not = scene_examples(choose_scenes, scenes / "boxes.csv", detector, rng)
    images = np.concatenate([crops[held:], faces, not_faces])
    labels = np.concatenate([np.ones(len(crops) - held + len(faces)), np.zeros(len(not_faces))]).astype(np.int32)
    return {"fit": (images, labels),
            "choose": {"scene_faces": chosen_faces, "crops": crops[:held], "not_faces": chosen_not},
            "counts": {"fit_scenes": len(fit_scenes), "choose_scenes": len(choose_scenes),
                       "crops": int(len(crops)), "scene_faces": int(len(faces)), "not_faces": int(len(not_faces))}}


def cached_examples(data, split_file, seed, cache_dir=None):
    """`gather(data, split_file, seed)`, read from or written to `cache_dir` when given."""
    cache = Path(cache_dir) / f"face-check-{INPUT_SIZE}-{seed}.npz" if cache_dir else None
    if cache and cache.is_file():
        with np.load(cache) as saved:
            return {"fit": (saved["fit_images"], saved["fit_labels"]),
                    "choose": {k: saved[f"choose_{k}"] for k in ("scene_faces", "crops", "not_faces")},
                    "counts": json.loads(str(saved["counts"]))}
    examples = gather(data, split_file, seed)
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, fit_images=examples["fit"][0], fit_labels=examples["fit"][1],
                 counts=json.dumps(examples["counts"]),
                 **{f"choose_{k}": v for k, v in examples["choose"].items()})
    return examples


def train_face_check(data, out, split_file, epochs=12, batch_size=128, seed=0, cache_dir=None, log=print):
    """Train the face check on `gather`'s examples, choose its threshold and write `out`
    (model.keras and card.json). With `cache_dir`, the examples are kept there for the next run
    of the same seed. Returns the card."""
    examples = cached_examples(data, split_file, seed, cache_dir)
    images, labels = examples["fit"]
    log("face check: " + ", ".join(f"{k} {v}" for k, v in examples["counts"].items()))
    keras.utils.set_random_seed(seed)
    model = make_face_check(seed)
    steps = epochs * int(np.ceil(len(labels) / batch_size))
    model.compile(optimizer=keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(2e-3, steps)),
                  loss="sparse_categorical_crossentropy")
    weights = np.where(labels == 1, 1.0, labels.sum() / max(1, len(labels) - labels.sum())).astype(np.float32)
    model.fit(images, labels, sample_weight=weights, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=2)
    recalibrate_batch_norm(model, images[labels == 1])
    scores = {kind: model.predict(x, batch_size=256, verbose=0)[:, 1] for kind, x in examples["choose"].items()}
    threshold = float(min(np.quantile(scores["scene_faces"], 1 - KEEP_FACES),
                          np.quantile(scores["crops"], 1 - KEEP_FACES)))
    card = {"threshold": round(threshold, 4), "input_size": INPUT_SIZE, "counts": examples["counts"],
            "held_out": {kind: {"pictures": int(len(s)), "passed": round(float((s >= threshold).mean()), 4)}
                         for kind, s in scores.items()},
            "epochs": epochs, "seed": seed}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    served = make_face_check(seed)  # uncompiled: the file holds no optimiser state
    served.set_weights(model.get_weights())
    served.save(out / MODEL_FILE)
    (out / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    card["test_scenes"] = judge_face_check(Path(data) / "scenes", out)
    (out / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    log(json.dumps({"held_out": card["held_out"], "test_scenes": card["test_scenes"]}, indent=1))
    return card


def judge_face_check(scenes, face_check_dir):
    """The page's detector with and without the face check in `face_check_dir`, on the test
    half of `scenes` (never seen by the check): {"without": ..., "with": ...}, each with the
    detections, the true ones at IoU 0.3 and 0.5 (face outlines against the marked faces) and
    the faces marked."""
    detector = load_detector(face_check=face_check_dir)
    marked = read_boxes(Path(scenes) / "boxes.csv")
    found = {"without": {}, "with": {}}
    names = []
    for path, image in read_scenes(scene_halves(scenes)["test"]):
        names.append(path.name)
        for key, on in (("without", False), ("with", True)):
            boxes = detector.detect(image, DetectorSettings(face_check=on))
            found[key][path.name] = [face_outline(box, image.shape) for box in boxes]
    judged = {"scenes": len(names)}
    for key, by_file in found.items():
        at3, at5 = score_detections(by_file, {n: marked.get(n, []) for n in names})
        judged[key] = {"detections": at3.detections, "marked": at3.marked,
                       "true_at_0.3": at3.true_positives, "true_at_0.5": at5.true_positives,
                       "precision_at_0.3": round(at3.precision, 4), "recall_at_0.3": round(at3.recall, 4),
                       "precision_at_0.5": round(at5.precision, 4), "recall_at_0.5": round(at5.recall, 4)}
    return judged
