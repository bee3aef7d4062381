"""`python -m train fit`: train a network on folder-per-class crops and write a model directory.

The model, the data and the loop are plain Keras 3 and NumPy, so the same code trains under
TensorFlow (the page's backend) and under JAX (the GPU machine, which has no TensorFlow).
"""

import contextlib
import datetime
import json
import platform
import time
from pathlib import Path

import keras
import numpy as np

from animerec.model import predict_probabilities
from train.architectures import make_model
from train.batchnorm import recalibrate_batch_norm
from train.dataset import load_faces, split_indices
from train.evaluate import classification_metrics, confusion_matrix, confusion_png
from train.export import write_model_dir

WORK_DIR = "training"  # inside the output directory: checkpoints and the resume state


def fit(data, out, arch="default", epochs=40, image_size=80, batch_size=64, seed=0,
        learning_rate=2e-3, patience=10, cache_dir=".cache", split_file=None, log=print):
    """Train `arch` on the crops under `data` and write the model directory `out`.

    Splits per class with `seed` (near-duplicates kept together), weighs classes by the inverse
    square root of their size, keeps the checkpoint with the best validation macro accuracy,
    stops after `patience` epochs without progress, and resumes from `out/training/` if a
    previous run was interrupted. The test split alone gives the card's numbers. `split_file`
    (a model directory's `split.json`) reuses another run's split, so two networks are compared
    on the same faces.
    Returns the card (a dict).
    """
    started = time.time()
    out = Path(out)
    work = out / WORK_DIR
    work.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)

    faces = load_faces(data, image_size, cache_dir=cache_dir)
    split = read_split(split_file, faces.files) if split_file else split_indices(faces.labels, faces.images, seed=seed)
    x = {name: faces.images[idx] for name, idx in split.items()}
    y = {name: faces.labels[idx] for name, idx in split.items()}
    num_classes = len(faces.classes)
    log(f"{len(faces.labels)} crops of {num_classes} characters at {image_size} px; "
        + ", ".join(f"{name} {len(idx)}" for name, idx in split.items()))

    devices, scope, policy = _setup_devices()
    log(f"backend {keras.backend.backend()}, devices {devices}, policy {policy}")
    with scope:
        model = make_model(arch, image_size, num_classes, seed=seed)
        steps = epochs * int(np.ceil(len(y["train"]) / batch_size))
        schedule = keras.optimizers.schedules.CosineDecay(
            learning_rate / 10, steps, warmup_target=learning_rate, warmup_steps=min(steps // 10, 500)
        )
        model.compile(
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.05),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
            metrics=["accuracy"],
        )

    counts = np.bincount(y["train"], minlength=num_classes)
    weights = (counts.mean() / np.maximum(counts, 1)) ** 0.5
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
    model.fit(
        x["train"], keras.utils.to_categorical(y["train"], num_classes),
        validation_data=(x["val"], keras.utils.to_categorical(y["val"], num_classes)),
        epochs=epochs, batch_size=batch_size, class_weight=dict(enumerate(weights)),
        callbacks=callbacks, verbose=2,
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
        "score": "top softmax probability",
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
            "loss": "categorical cross-entropy, label smoothing 0.1, class weights (mean/n)^0.5",
            "backend": keras.backend.backend(),
            "devices": devices,
            "policy": policy,
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {_cpu_count()} cores",
            "date": datetime.date.today().isoformat(),
        },
        "metrics": {"test": metrics, "validation": val_metrics},
    }
    matrix = confusion_matrix(test_probabilities, y["test"], num_classes)
    write_model_dir(out, final, faces.classes, card, data, split_files={
        name: [faces.files[i] for i in idx] for name, idx in split.items()
    })
    confusion_png(matrix, faces.classes, out / "confusion.png", title=f"{out.name}: test split")
    return card


def _probabilities(model, images, flip_average, batch_size=256):
    """Probabilities through the page's own function, in batches."""
    return np.concatenate([predict_probabilities(model, images[i:i + batch_size], flip_average)
                           for i in range(0, len(images), batch_size)])


def read_split(path, files):
    """Indices of `files` in each part of a `split.json` ({"train": [file, ...], ...})."""
    named = json.loads(Path(path).read_text())
    index = {f: i for i, f in enumerate(files)}
    missing = [f for part in named.values() for f in part if f not in index]
    if missing:
        raise FileNotFoundError(f"{len(missing)} files of the split {path} are not in the data, e.g. {missing[0]}.")
    return {part: np.array(sorted(index[f] for f in named[part]), dtype=np.int64) for part in ("train", "val", "test")}


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
        predicted = self.model.predict(self.x, batch_size=256, verbose=0).argmax(axis=1)
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

