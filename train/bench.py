"""`python -m train bench MODEL_DIR [MODEL_DIR ...]`: networks side by side.

Training figures (images per second, seconds per epoch, epochs and wall time to the best
validation score) are the ones `fit` measured and wrote into each card (an ensemble's, its
members', joined by "+"); inference is timed now,
through the page's own call path (crop, resize, one batched `predict_on_batch`); test scores are
each card's, from its test split. Models trained with the same data, image size and seed, or
with `--split`, share their split, and the table says whether they do.
"""

import json
from pathlib import Path

from measure.bench import inference_ms, machine, page_call, synthetic_scene
from animerec.model import load_recognizer


def bench(model_dirs, runs=30, log=print):
    """Print a Markdown table with one row per model directory; returns the rows as dicts."""
    image, boxes = synthetic_scene()
    splits = {json.dumps(json.loads((Path(d) / "split.json").read_text())["test"]) for d in model_dirs
              if (Path(d) / "split.json").is_file()}
    log(f"{machine()}; inference: median of {runs} runs, crop and resize included; "
        f"same test split for all: {'yes' if len(splits) == 1 else 'no'}")
    log("| network | params | input | train img/s | s/epoch | best epoch | s to best | ms/face, batch 1 | "
        "ms/face, batch 8 | test accuracy | test macro accuracy |")
    log("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for model_dir in model_dirs:
        recognizer = load_recognizer(model_dir)
        card = recognizer.card
        call = page_call(recognizer)
        # An ensemble trained nothing itself: its members' figures, one per member.
        trained = [m["training"] for m in card.get("members", [])] or [card["training"]]
        figures = {key: " + ".join(f"{t[key]:.0f}" if key == "seconds_to_best" else str(t[key]) for t in trained)
                   for key in ("train_images_per_second", "seconds_per_epoch", "best_epoch", "seconds_to_best")}
        row = {
            "network": card["architecture"], "params": card["parameters"], "input": card["input_size"], **figures,
            "ms_batch_1": inference_ms(call, image, boxes[:1], runs),
            "ms_batch_8": inference_ms(call, image, boxes, runs),
            "accuracy": card["metrics"]["test"]["accuracy"],
            "macro_accuracy": card["metrics"]["test"]["macro_accuracy"],
        }
        rows.append(row)
        log(f"| `{row['network']}` | {row['params']:,} | {row['input']} px | {row['train_images_per_second']} | "
            f"{row['seconds_per_epoch']} | {row['best_epoch']} | {row['seconds_to_best']} | "
            f"{row['ms_batch_1']:.1f} | {row['ms_batch_8']:.1f} | {row['accuracy']:.1%} | {row['macro_accuracy']:.1%} |")
    return rows
