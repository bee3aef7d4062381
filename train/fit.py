"""`python -m train fit`: train a network on folder-per-class crops and write a model directory.

The model, the data and the loop are plain Keras 3 and NumPy, so the same code trains under
TensorFlow (the page's backend) and under JAX (the GPU machine, which has no TensorFlow).
"""

import contextlib
import datetime
import json
import platform
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from animerec.model import predict
from train.architectures import COSINE_SCALE, make_model
from train.batchnorm import recalibrate_batch_norm
from train.dataset import SPLITS, degrade, load_faces, load_unlabelled, split_indices, split_unlabelled
from train.evaluate import classification_metrics, confusion_matrix, confusion_png
from train.export import write_model_dir

WORK_DIR = "training"  # inside the output directory: checkpoints and the resume state
RUN_FILE = "run.json"  # in WORK_DIR: the arguments of the run whose checkpoints these are
MARGIN = 0.2  # subtracted from the true class's cosine in training (default network only)
LABEL_SMOOTHING = 0.1
UNKNOWN_PER_BATCH = 0.25  # unknown faces added to each batch, as a fraction of its known faces
UNKNOWN_WEIGHT = 0.5  # the loss weight of each unknown face
DEGRADE_SIZE, DEGRADE_FRACTION = 64, 0.3  # a share of known training faces is made this blurry


def fit(data, out, arch="default", epochs=40, image_size=80, batch_size=64, seed=0,
        learning_rate=2e-3, patience=10, cache_dir=".cache", split_file=None, unknown=None,
        init=None, init_data=None, contrastive=0.0, log=print):
    """Train `arch` on the crops under `data` and write the model directory `out`.

    Splits per class with `seed` (near-duplicates kept together), weighs classes by the inverse
    square root of their size, keeps the checkpoint with the best validation macro accuracy,
    stops after `patience` epochs without progress, and resumes from `out/training/` if a
    previous run was interrupted. The test split alone gives the card's numbers. `split_file`
    (a model directory's `split.json`) reuses another run's split, so two networks are compared
    on the same faces. `unknown` is a folder of faces of characters in no class: half of them
    (near-duplicates together) join training with a uniform target (outlier exposure, Hendrycks
    et al. 2019), the rest is kept for calibrating and testing the unknown rule. `init` is a
    model directory whose weights start every layer of the same name and shape; characters it
    knows that `data` lacks are read from `init_data` (default: the shared data folder its card
    names) with its own split, so `data` may hold only new characters, which are added as classes.
    Returns the card (a dict).
    """
    started = time.time()
    out = Path(out)
    work = out / WORK_DIR
    run = {"data": str(data), "arch": arch, "epochs": epochs, "image_size": image_size, "batch_size": batch_size,
           "seed": seed, "learning_rate": learning_rate, "split": str(split_file), "unknown": str(unknown),
           "init": str(init), "init_data": str(init_data), "contrastive": contrastive}
    _claim_work_dir(work, run, log)
    keras.utils.set_random_seed(seed)

    sources = None
    if init and not split_file:
        faces, split, sources = faces_with_init_classes(init, init_data, data, image_size, cache_dir, seed)
    else:
        faces = load_faces(data, image_size, cache_dir=cache_dir)
        split = read_split(split_file, faces.files) if split_file else split_indices(faces.labels, faces.images, seed=seed)
    x = {name: faces.images[idx] for name, idx in split.items()}
    y = {name: faces.labels[idx] for name, idx in split.items()}
    num_classes = len(faces.classes)
    log(f"{len(faces.labels)} crops of {num_classes} characters at {image_size} px; "
        + ", ".join(f"{name} {len(idx)}" for name, idx in split.items()))
    unknown_images, unknown_split = np.zeros((0, image_size, image_size, 3), np.uint8), None
    if unknown:
        unknown_images, unknown_files = load_unlabelled(unknown, image_size, cache_dir=cache_dir)
        unknown_split = (read_unknown_split(split_file, unknown_files) if split_file else None) \
            or split_unlabelled(unknown_images, seed=seed)
        log(f"{len(unknown_images)} unknown faces: " + ", ".join(f"{k} {len(v)}" for k, v in unknown_split.items()))

    devices, scope, policy = _setup_devices()
    log(f"backend {keras.backend.backend()}, devices {devices}, policy {policy}")
    with scope:
        model = make_model(arch, image_size, num_classes, seed=seed)
        if init:
            log(f"initialised {copy_weights(init, model)} layers from {init}")
        steps = epochs * int(np.ceil(len(y["train"]) / batch_size))
        schedule = keras.optimizers.schedules.CosineDecay(
            learning_rate / 10, steps, warmup_target=learning_rate, warmup_steps=min(steps // 10, 500)
        )
        trainee = model
        losses = margin_loss(MARGIN if arch == "default" else 0.0)
        if contrastive:
            trainee = keras.Model(model.inputs, [model.outputs[0], model.get_layer("pooled").output])
            losses = [losses, contrastive_loss()]
        trainee.compile(
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.05),
            loss=losses, loss_weights=[1.0, contrastive] if contrastive else None,
        )

    counts = np.bincount(y["train"], minlength=num_classes)
    weights = (counts.mean() / np.maximum(counts, 1)) ** 0.5
    batches = TrainingBatches(x["train"], y["train"], num_classes, weights[y["train"]], batch_size,
                              unknown_images[unknown_split["train"]] if unknown else unknown_images, seed,
                              identities=bool(contrastive))
    clock = _EpochClock(work / "epoch_seconds.json")
    best = work / "best.weights.h5"
    checkpoint = keras.callbacks.ModelCheckpoint(best, monitor="val_macro_accuracy", mode="max",
                                                 save_best_only=True, save_weights_only=True)
    history_so_far = _read_history(work / "history.csv")
    if history_so_far and best.is_file():  # resuming: the best so far is not forgotten
        checkpoint.best = max(history_so_far)
    callbacks = [
        _MacroAccuracy(x["val"], y["val"], num_classes, x["train"]),
        clock,
        checkpoint,
        keras.callbacks.EarlyStopping(monitor="val_macro_accuracy", mode="max", patience=patience),
        keras.callbacks.CSVLogger(work / "history.csv", append=True),
        keras.callbacks.BackupAndRestore(work / "backup"),
    ]
    val_targets = keras.utils.to_categorical(y["val"], num_classes)
    trainee.fit(
        batches,
        validation_data=(x["val"], (val_targets, y["val"].astype(np.float32)) if contrastive else val_targets),
        epochs=epochs, callbacks=callbacks, verbose=2,
    )

    # The saved model is float32 whatever the training policy, so a CPU can load it.
    keras.mixed_precision.set_global_policy("float32")
    final = make_model(arch, image_size, num_classes, seed=seed)
    final.load_weights(best)
    recalibrate_batch_norm(final, x["train"])
    # Validation decides whether averaging each crop with its mirror image is worth its cost;
    # the test split only reports.
    flip = max((False, True), key=lambda f: classification_metrics(
        _probabilities(final, x["val"], f), y["val"], faces.classes)["macro_accuracy"])
    test_probabilities = _probabilities(final, x["test"], flip)
    metrics = classification_metrics(test_probabilities, y["test"], faces.classes)
    val_metrics = classification_metrics(_probabilities(final, x["val"], flip), y["val"], faces.classes)
    log(f"test: accuracy {metrics['accuracy']:.4f}, macro accuracy {metrics['macro_accuracy']:.4f}, "
        f"top-5 {metrics['top5_accuracy']:.4f}")

    val_macro = _read_history(work / "history.csv")
    best_epoch = int(np.argmax(val_macro)) + 1
    seconds, untimed = clock.seconds_by_epoch(len(val_macro))
    card = {
        "version": f"{out.name}-{datetime.date.today().isoformat()}",
        "architecture": arch,
        "input_size": image_size,
        "parameters": int(final.count_params()),
        "score": "top softmax probability" if arch == "seed" else
        "uncalibrated: (cosine to the nearest prototype + 1) / 2; `python -m train calibrate` replaces it",
        "flip_average": flip,
        "threshold": 0.5,
        "training": {
            "data": str(Path(data).name),
            "classes": num_classes,
            "images": {name: int(len(idx)) for name, idx in split.items()},
            "split": f"the split of {split_file}" if split_file else
            "per class 70/15/15, near-duplicates (dHash within 6 bits) on one side",
            "seed": seed,
            "epochs_run": len(val_macro),
            "best_epoch": best_epoch,
            "seconds_per_epoch": round(float(np.median(seconds)), 1),
            "train_images_per_second": round(len(y["train"]) / float(np.median(seconds)), 1),
            "seconds_to_best": round(float(sum(seconds[:best_epoch])), 1),
            "untimed_epochs": untimed,
            "batch_norm": "statistics recomputed on clean training crops before each validation and at export",
            "wall_seconds": round(time.time() - started, 1),
            "batch_size": batch_size,
            "optimizer": f"AdamW, cosine decay from {learning_rate} with warm-up, weight decay 0.05",
            "loss": f"categorical cross-entropy, label smoothing {LABEL_SMOOTHING}, class weights (mean/n)^0.5"
            + (f", cosine margin {MARGIN} at scale {COSINE_SCALE}" if arch == "default" else "")
            + (f"; {len(unknown_split['train'])} unknown faces with a uniform target, "
               f"{UNKNOWN_PER_BATCH:.0%} of each batch, weight {UNKNOWN_WEIGHT}" if unknown else "")
            + (f"; supervised contrastive loss on the pooled features (weight {contrastive}, temperature 0.1, "
               "each unknown face its own identity)" if contrastive else ""),
            "augmentation": f"in the model (flip, rotation, zoom, shift, brightness, contrast, saturation); "
            f"{DEGRADE_FRACTION:.0%} of known faces shrunk to {DEGRADE_SIZE} px and back",
            "initialised_from": str(init) if init else None,
            **({"characters_from": sources} if sources else {}),
            "backend": keras.backend.backend(),
            "devices": devices,
            "policy": policy,
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {_cpu_count()} cores",
            "date": datetime.date.today().isoformat(),
        },
        "metrics": {"test": metrics, "validation": val_metrics},
    }
    matrix = confusion_matrix(test_probabilities, y["test"], num_classes)
    split_files = {name: [faces.files[i] for i in idx] for name, idx in split.items()}
    if unknown:
        split_files["unknown"] = {part: [unknown_files[i] for i in idx] for part, idx in unknown_split.items()}
    write_model_dir(out, final, faces.classes, card, data, split_files=split_files)
    (work / RUN_FILE).write_text(json.dumps({**run, "finished": True}, indent=1))  # nothing left to resume
    confusion_png(matrix, faces.classes, out / "confusion.png", title=f"{out.name}: test split")
    return card


def _probabilities(model, images, flip_average, batch_size=256):
    """Probabilities through the page's own function, in batches."""
    return np.concatenate([predict(model, images[i:i + batch_size], flip_average)
                           for i in range(0, len(images), batch_size)])


def _claim_work_dir(work, run, log):
    """Make `work` this run's: an interrupted run with the same arguments resumes from it, and
    anything else there (a finished run, or another run's checkpoints, as when a model directory
    is fine-tuned from itself) is cleared, so that its best score and checkpoint cannot pass for
    this run's."""
    path = work / RUN_FILE
    previous = json.loads(path.read_text()) if path.is_file() else None
    if previous != run and work.is_dir() and any(work.iterdir()):
        log(f"{work} holds the checkpoints of another run: starting afresh")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run, indent=1))


def read_split(path, files):
    """Indices of `files` in each part of a `split.json` ({"train": [file, ...], ...})."""
    named = json.loads(Path(path).read_text())
    return _indices(named, SPLITS, files, path)


def read_unknown_split(path, files):
    """Indices of the unknown faces `files` in each part of a `split.json`'s "unknown" entry,
    or None when it has none."""
    named = json.loads(Path(path).read_text()).get("unknown")
    return _indices(named, tuple(named), files, path) if named else None


def _indices(named, parts, files, path):
    index = {f: i for i, f in enumerate(files)}
    missing = [f for part in parts for f in named[part] if f not in index]
    if missing:
        raise FileNotFoundError(f"{len(missing)} files of the split {path} are not in the data, e.g. {missing[0]}.")
    return {part: np.array(sorted(index[f] for f in named[part]), dtype=np.int64) for part in parts}


def faces_with_init_classes(init, init_data, data, image_size, cache_dir, seed):
    """The crops for fine-tuning from the model directory `init`: its characters first, in its
    order (read from `data` when it has them, else from `init_data` with `init`'s own split, so
    its test faces stay unseen), then the new characters of `data`, split afresh.
    Returns (FaceSet, split, {source: [slugs]})."""
    from animerec.paths import data_dir
    from train.dataset import FaceSet, list_images

    init = Path(init)
    old = [d["slug"] for d in json.loads((init / "labels.json").read_text(encoding="utf-8"))]
    here = list_images(data)
    new = sorted(set(here) - set(old))
    if not set(old) - set(here):  # `data` has every old character: one folder, one split
        faces = load_faces(data, image_size, cache_dir=cache_dir, classes=old + new)
        return faces, split_indices(faces.labels, faces.images, seed=seed), {str(data): old + new}
    card = json.loads((init / "card.json").read_text(encoding="utf-8"))
    old_root = Path(init_data) if init_data else data_dir() / card["training"]["data"]
    if not old_root.is_dir():
        raise FileNotFoundError(f"The characters of {init} were trained on {old_root}, which is not there: "
                                "pass --init-data with that folder.")
    first = load_faces(old_root, image_size, cache_dir=cache_dir, classes=old)
    second = load_faces(data, image_size, cache_dir=cache_dir, classes=new)
    old_split = read_split(init / "split.json", first.files)
    new_split = split_indices(second.labels, second.images, seed=seed)
    faces = FaceSet(np.concatenate([first.images, second.images]),
                    np.concatenate([first.labels, second.labels + len(old)]).astype(np.int32),
                    old + new, first.files + second.files)
    split = {part: np.concatenate([old_split[part], new_split[part] + len(first.labels)]) for part in SPLITS}
    return faces, split, {str(init): old, str(data): new}


def margin_loss(margin, smoothing=LABEL_SMOOTHING):
    """Cross-entropy on the model's probabilities with the true class's logit lowered by
    `margin` * COSINE_SCALE (CosFace; 0 gives plain cross-entropy) and label smoothing.

    The model ends in a softmax, so log-probabilities stand in for logits: a softmax ignores the
    constant between them. A target of 1/C everywhere (an unknown face) is left uniform by the
    smoothing and unmoved by the margin, so it asks for equal cosines to every prototype.
    """
    ops = keras.ops

    def loss(y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        logits = ops.log(ops.maximum(ops.cast(y_pred, "float32"), 1e-30)) - margin * COSINE_SCALE * y_true
        target = y_true * (1 - smoothing) + smoothing / ops.cast(ops.shape(y_true)[-1], "float32")
        return -ops.sum(target * ops.log_softmax(logits, axis=-1), axis=-1)

    return loss


def contrastive_loss(temperature=0.1):
    """Supervised contrastive loss (Khosla et al. 2020) on L2-normalised features: each face is
    pulled toward the other faces of its identity in the batch (its character, or for an unknown
    face its own second copy) and pushed from the rest. Keeps the features telling apart
    characters the classifier never saw, which the gallery needs."""
    ops = keras.ops

    def loss(y_true, y_pred):
        ids = ops.reshape(ops.cast(y_true, "float32"), (-1,))
        f = ops.cast(y_pred, "float32")
        f = f / ops.maximum(ops.sqrt(ops.sum(f * f, axis=1, keepdims=True)), 1e-12)
        similarity = ops.matmul(f, ops.transpose(f)) / temperature
        n = ops.shape(similarity)[0]
        others = 1.0 - ops.eye(n)
        positives = ops.cast(ops.equal(ids[:, None], ids[None, :]), "float32") * others
        similarity = similarity - ops.max(similarity, axis=1, keepdims=True)
        log_prob = similarity - ops.log(ops.sum(ops.exp(similarity) * others, axis=1, keepdims=True))
        count = ops.sum(positives, axis=1)
        return -ops.sum(positives * log_prob, axis=1) / ops.maximum(count, 1.0)

    return loss


def copy_weights(model_path, model):
    """Copy into `model` the weights of every layer of a saved model directory that has the same
    name and weight shapes. A class layer that has grown (new characters added after the old
    ones) gets the old characters' columns. Returns how many layers were copied."""
    source = keras.models.load_model(Path(model_path) / "model.keras", compile=False)
    copied = 0
    for layer in model.layers:
        try:
            other = source.get_layer(layer.name)
        except ValueError:
            continue
        theirs, ours = other.get_weights(), layer.get_weights()
        if not ours or len(theirs) != len(ours):
            continue
        if all(a.shape == b.shape for a, b in zip(theirs, ours)):
            layer.set_weights(theirs)
        elif all(a.shape[:-1] == b.shape[:-1] and a.shape[-1] < b.shape[-1] for a, b in zip(theirs, ours)):
            for a, b in zip(theirs, ours):
                b[..., : a.shape[-1]] = a
            layer.set_weights(ours)
        else:
            continue
        copied += 1
    return copied


class TrainingBatches(keras.utils.PyDataset):
    """Shuffled batches of known faces (one-hot target, class weight), a share of them made
    blurry (see `train.dataset.degrade`), each joined by unknown faces with a uniform target.
    NumPy only, so it feeds any backend."""

    def __init__(self, images, labels, num_classes, weights, batch_size, unknown, seed, identities=False):
        super().__init__()
        self.identities = identities
        self.images, self.labels, self.num_classes = images, labels, num_classes
        self.weights, self.batch_size, self.unknown = weights.astype(np.float32), batch_size, unknown
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self):
        return int(np.ceil(len(self.labels) / self.batch_size))

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.labels))

    def __getitem__(self, index):
        idx = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        x = self.images[idx].copy()
        blur = self.rng.random(len(idx)) < DEGRADE_FRACTION
        if blur.any():
            x[blur] = degrade(x[blur], DEGRADE_SIZE)
        y = keras.utils.to_categorical(self.labels[idx], self.num_classes).astype(np.float32)
        w = self.weights[idx]
        ids = self.labels[idx].astype(np.float32)
        extra = int(round(UNKNOWN_PER_BATCH * len(idx))) if len(self.unknown) else 0
        if extra:
            chosen = self.rng.integers(0, len(self.unknown), extra)
            if self.identities:  # each unknown face twice: the model augments the copies differently
                chosen = np.repeat(chosen[: (extra + 1) // 2], 2)[:extra]
            x = np.concatenate([x, self.unknown[chosen]])
            y = np.concatenate([y, np.full((extra, self.num_classes), 1 / self.num_classes, np.float32)])
            w = np.concatenate([w, np.full(extra, UNKNOWN_WEIGHT, np.float32)])
            ids = np.concatenate([ids, (self.num_classes + chosen).astype(np.float32)])
        if self.identities:
            return x, (y, ids), (w, np.ones(len(ids), np.float32))
        return x, y, w


def _setup_devices():
    """Enter the backend's own data-parallel API over every visible accelerator.

    Returns (device names, a context manager to build and compile the model in, policy name).
    TensorFlow: `tf.distribute.MirroredStrategy` over all GPUs, or over the logical CPUs when
    more than one is configured (the tests do that to exercise this path). JAX:
    `keras.distribution.DataParallel` over all devices. Mixed precision (bfloat16) on GPUs.
    """
    backend = keras.backend.backend()
    policy = "float32"
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        cpus = tf.config.list_logical_devices("CPU")
        devices = [d.name for d in (gpus or cpus)]
        if gpus:
            policy = "mixed_bfloat16"
        scope = tf.distribute.MirroredStrategy(devices).scope() if len(devices) > 1 or gpus else contextlib.nullcontext()
    elif backend == "jax":
        import jax

        accelerators = [d for d in jax.devices() if d.platform != "cpu"]
        devices = [str(d) for d in (accelerators or jax.devices())]
        if accelerators:
            policy = "mixed_bfloat16"
        if len(devices) > 1:
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=accelerators or jax.devices()))
        scope = contextlib.nullcontext()
    else:
        devices, scope = [backend], contextlib.nullcontext()
    keras.mixed_precision.set_global_policy(policy)
    return devices, scope, policy


def _cpu_count():
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class _MacroAccuracy(keras.callbacks.Callback):
    """Adds `val_macro_accuracy` (mean per-class recall on validation) to each epoch's logs, so
    checkpointing and early stopping favour the small classes as much as the big ones. The
    batch-norm statistics are recomputed on clean training crops first (see train.batchnorm),
    so the score is that of the network as it will be served."""

    def __init__(self, x, y, num_classes, x_train):
        super().__init__()
        self.x, self.y, self.num_classes, self.x_train = x, y, num_classes, x_train

    def on_epoch_end(self, epoch, logs=None):
        recalibrate_batch_norm(self.model, self.x_train, seed=epoch)
        predicted = self.model.predict(self.x, batch_size=256, verbose=0)
        predicted = (predicted[0] if isinstance(predicted, (list, tuple)) else predicted).argmax(axis=1)
        recalls = [(predicted[self.y == c] == c).mean() for c in range(self.num_classes) if (self.y == c).any()]
        if logs is not None:
            logs["val_macro_accuracy"] = float(np.mean(recalls))
        print(f"  val_macro_accuracy: {np.mean(recalls):.4f}", flush=True)


class _EpochClock(keras.callbacks.Callback):
    """Seconds per epoch, kept in a JSON file beside the checkpoints so a resumed run still
    knows how long its earlier epochs took."""

    def __init__(self, path):
        super().__init__()
        self.path = Path(path)
        self.seconds = {int(k): v for k, v in json.loads(self.path.read_text()).items()} if self.path.is_file() else {}

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds[epoch] = time.perf_counter() - self._start
        self.path.write_text(json.dumps(self.seconds))

    def seconds_by_epoch(self, epochs):
        """Seconds of each of `epochs` epochs, the median standing in for any not timed (run
        by code older than this clock), and how many those were."""
        median = float(np.median(list(self.seconds.values())))
        return [self.seconds.get(e, median) for e in range(epochs)], sum(e not in self.seconds for e in range(epochs))


def _read_history(path):
    """Validation macro accuracy per epoch from the CSV log ([] when there is none yet)."""
    import csv

    if not Path(path).is_file():
        return []
    with open(path, newline="") as f:
        return [float(row["val_macro_accuracy"]) for row in csv.DictReader(f) if row.get("val_macro_accuracy")]

