"""A training run's directory (`out/training/`): whose it is, what it resumes from, and what it
records each epoch (validation macro accuracy, seconds)."""

import csv
import json
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from train.batchnorm import recalibrate_batch_norm

FINISH = ("finished", "wall_seconds")  # what a finished run's record adds to its arguments
WORK_DIR = "training"  # inside the output directory: checkpoints and the resume state
RUN_FILE = "run.json"  # in WORK_DIR: the arguments of the run whose checkpoints these are


def claim_work_dir(work, run, log, finished_only=False):
    """Make `work` this run's: an interrupted run with the same arguments resumes from it, and
    anything else there (another run's checkpoints, as when a model directory is fine-tuned from
    itself) is cleared, so that its best score and checkpoint cannot pass for this run's.
    Returns the record of this very run when `work` holds it finished (`finish_run`), whose
    checkpoints are then exported again (with another `export` choice) without training; else
    None."""
    path = work / RUN_FILE
    previous = json.loads(path.read_text()) if path.is_file() else None
    done = bool(previous and previous.get("finished") and {k: v for k, v in previous.items() if k not in FINISH} == run)
    if finished_only:
        if not done:
            raise FileNotFoundError(f"{work} holds no finished run with these arguments to export: run the "
                                    "command that trained it, with the same arguments.")
        return previous
    if previous != run and work.is_dir() and any(work.iterdir()):
        log(f"{work} holds the checkpoints of another run: starting afresh")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run, indent=1))
    return None


def finish_run(work, run, wall_seconds):
    """Mark `work`'s run finished: nothing is left to resume, and its checkpoints can be exported again."""
    (work / RUN_FILE).write_text(json.dumps({**run, "finished": True, "wall_seconds": wall_seconds}, indent=1))


class MacroAccuracy(keras.callbacks.Callback):
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


class EpochClock(keras.callbacks.Callback):
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


def read_history(path):
    """Validation macro accuracy per epoch from the CSV log ([] when there is none yet)."""
    if not Path(path).is_file():
        return []
    with open(path, newline="") as f:
        return [float(row["val_macro_accuracy"]) for row in csv.DictReader(f) if row.get("val_macro_accuracy")]
