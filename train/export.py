"""Write a model directory in the format `animerec.model` loads."""

import csv
import datetime
import io
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np

from animerec.model import CARD_FILE, CARD_MARKDOWN, LABELS_FILE, MODEL_FILE


def read_characters(data):
    """{slug: (name, series)} from the `characters.csv` beside or above the data folder."""
    for candidate in (Path(data) / "characters.csv", Path(data).parent / "characters.csv"):
        if candidate.is_file():
            with candidate.open(newline="", encoding="utf-8") as f:
                return {row["slug"]: (row["name"], row.get("series", "")) for row in csv.DictReader(f)}
    return {}


def new_version(out):
    """The version of a model about to be written to `out`: `<folder>-<date>`, then `-2`, `-3`
    when the card already there has that day's name, so two models never share a version."""
    out = Path(out)
    version = f"{out.name}-{datetime.date.today().isoformat()}"
    try:
        previous = json.loads((out / CARD_FILE).read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return version
    if previous == version:
        return version + "-2"
    count = previous[len(version) + 1:] if previous.startswith(version + "-") else ""
    return f"{version}-{int(count) + 1}" if count.isdigit() else version


def round_to_half(model):
    """Round `model`'s kernels (every weight of two or more dimensions) to the nearest float16,
    in place, so that `write_model_dir(..., half=True)` stores them without changing an answer:
    measure the model after this, not before. Batch-norm and bias vectors stay float32."""
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([w.astype(np.float16).astype(np.float32) if w.ndim >= 2 else w
                               for w in layer.get_weights()])


def write_model_dir(out, model, classes, card, data, split_files=None, half=False):
    """Save `model` with its labels, card and, if given, the split's file lists. Its weights are
    float32; with `half`, its kernels are stored as float16 (`round_to_half` first), which halves
    the file: both loaders compute in float32 whatever the stored type."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    known = read_characters(data)
    labels = [
        {"slug": slug, "name": known.get(slug, (slug.replace("_", " ").title(), ""))[0],
         "series": known.get(slug, ("", ""))[1]}
        for slug in classes
    ]
    model.save(out / MODEL_FILE)
    if half:
        _store_kernels_as_half(out / MODEL_FILE)
    (out / LABELS_FILE).write_text(json.dumps(labels, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / CARD_FILE).write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / CARD_MARKDOWN).write_text(card_markdown(card, labels), encoding="utf-8")
    if split_files is not None:
        (out / "split.json").write_text(json.dumps(split_files) + "\n", encoding="utf-8")


def _store_kernels_as_half(path):
    """Rewrite the `.keras` archive `path` with its float32 weights of two or more dimensions
    stored as float16 (lossless after `round_to_half`); every other entry is copied as it is."""
    with zipfile.ZipFile(path) as archive:
        entries = {info: archive.read(info) for info in archive.infolist()}
    for info, payload in entries.items():
        if info.filename == "model.weights.h5":
            source, halved = h5py.File(io.BytesIO(payload), "r"), io.BytesIO()
            with source, h5py.File(halved, "w") as target:
                _copy_halving(source, target)
            entries[info] = halved.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        for info, payload in entries.items():
            archive.writestr(info, payload)


def _copy_halving(source, target):
    target.attrs.update(source.attrs)
    for name, item in source.items():
        if isinstance(item, h5py.Group):
            _copy_halving(item, target.create_group(name))
        else:
            data = item[()]
            if isinstance(data, np.ndarray) and data.dtype == np.float32 and data.ndim >= 2:
                data = data.astype(np.float16)
            target.create_dataset(name, data=data).attrs.update(item.attrs)


def card_markdown(card, labels):
    """The card for people: what it is, how it was trained, what it scored."""
    t, m = card["training"], card["metrics"]["test"]
    worst = sorted(m["per_class_recall"].items(), key=lambda kv: kv[1])[:5]
    lines = [
        f"# Model card: {card['version']}",
        "",
        (f"An ensemble of {len(card['members'])} networks ({card['parameters']:,} parameters in all) "
         if card.get("members") else
         f"A `{card['architecture']}` network ({card['parameters']:,} parameters) trained "
         + (f"from the weights of {t['initialised_from']} " if t.get("initialised_from") else "from scratch "))
        + f"on {t['classes']} characters' face crops (`{t['data']}`), input {card['input_size']} x "
        f"{card['input_size']} RGB.",
        "",
        "## Scores on the held-out test split",
        "",
        "| accuracy | macro accuracy | top-5 | test images |",
        "|---|---|---|---|",
        f"| {m['accuracy']:.1%} | {m['macro_accuracy']:.1%} | {m['top5_accuracy']:.1%} | {m['images']} |",
        "",
        "Lowest per-class recall: " + ", ".join(f"{slug} {r:.0%}" for slug, r in worst) + ".",
        "",
        f"Score: {card['score']}; a face is Unknown below the threshold {card['threshold']}."
        + (" Each face is classified together with its mirror image and the two answers averaged "
           "(validation chose this)." if card.get("flip_average") else ""),
        "",
        *_calibration_lines(card.get("calibration")),
        *(_members_lines(card) if card.get("members") else ["## Training", "", *_training_lines(t), ""]),
        "## Characters",
        "",
        "| slug | name | series |",
        "|---|---|---|",
        *[f"| {d['slug']} | {d['name']} | {d['series']} |" for d in labels],
        "",
    ]
    return "\n".join(lines)


def _training_lines(t):
    return [
        f"- Split: {t['split']}, seed {t['seed']}: " + ", ".join(f"{k} {v}" for k, v in t["images"].items()) + ".",
        f"- {t['optimizer']}; {t['loss']}; batch {t['batch_size']}.",
        f"- {t['epochs_run']} epochs run, best validation macro accuracy at epoch {t['best_epoch']} "
        f"({t['seconds_to_best']} s); {t['seconds_per_epoch']} s per epoch, "
        f"{t['train_images_per_second']} training images per second.",
        *([f"- Started from the weights of {t['initialised_from']}."] if t.get("initialised_from") else []),
        *([f"- Frozen: {t['frozen']}."] if t.get("frozen") else []),
        f"- Backend {t['backend']} on {', '.join(t['devices'])} ({t['machine']}), policy {t['policy']}, {t['date']}.",
    ]


def _members_lines(card):
    """An ensemble's members (`train.ensemble`), each with how it was trained."""
    lines = [f"## Members: {card['training']['combined']}", ""]
    for member in card["members"]:
        test = member["test"]
        lines += [f"### `{member['version']}`: a `{member['architecture']}` network, weight {member['weight']:g}",
                  "", f"- Alone on the test split: accuracy {test['accuracy']:.1%}, macro accuracy "
                  f"{test['macro_accuracy']:.1%}.", *_training_lines(member["training"]), ""]
    return lines


STRANGER_KINDS = {"unknown": "`unknown/`", "fewshot_before_enrolment": "the few-shot characters before enrolment",
                  "scene_faces": "the scenes' faces", "strangers": "the official portraits"}


def _strictest_kind(by_kind):
    """Which kind of stranger sets the default threshold, and each kind's own, for the card."""
    strictest = max(by_kind, key=by_kind.get)
    return (f"; {STRANGER_KINDS.get(strictest, strictest)} set it (each kind's own: "
            + ", ".join(f"{STRANGER_KINDS.get(kind, kind)} {value:.2f}" for kind, value in by_kind.items()) + ")")


def _portraits_target(c):
    """The portraits' own target, where it is above the other kinds' (else None)."""
    own = c.get("target_by_kind", {}).get("strangers")
    return own if own and own > c["target_unknown_rejection"] else None


def _calibration_lines(c):
    """The unknown rule and the gallery, from `train calibrate`'s result."""
    if not c:
        return []
    t = c["test"]
    portraits = _portraits_target(c)
    lines = [
        "## Unknown faces and enrolled characters",
        "",
        f"Calibrated by `python -m train calibrate` (all faces shrunk to {c['degraded_to_px']} px first): "
        f"the default threshold {c['threshold']} rejects at least {c['target_unknown_rejection']:.0%} of the "
        "calibration faces of characters outside the model (`unknown/`, a quarter of `fewshot/` before "
        "enrolment" + (f", and the {c['scenes']['calibration_faces']} faces the detector finds in half of "
                       "`scenes/`" if "calibration_faces" in c.get("scenes", {}) else "")
        + (", a fifth of `strangers/`" if "strangers" in t and not portraits else "")
        + ")" + (f", and {portraits:.0%} of a fifth of `strangers/` (official portraits)" if portraits else "")
        + (_strictest_kind(c["threshold_by_kind"]) if "threshold_by_kind" in c else "")
        + "." + (f" Before its curve, the cosine to a character loses {c['model_cohort_weight']:g} times the face's "
                 "closeness to the cohort of strangers below (its mean cosine to the nearest centres): of the shares "
                 "that lose no more than a point of any kind's rejection, the smallest that keeps within 0.2 points "
                 "of the most validation faces named." if c.get("model_cohort_weight") else "")
        + " On faces used for nothing else:",
        "",
        "| | value |",
        "|---|---|",
        f"| AUROC, known vs unknown faces | {c['auroc_known_vs_unknown']:.3f} |",
        f"| unknown faces labelled unknown ({t['unknown_faces']}) | {t['unknown_labelled_unknown']:.1%} |",
        f"| known faces keeping their correct name ({t['known_faces']}) | {t['known_keep_correct_name']:.1%} |",
        f"| the same at full size | {t['known_keep_correct_name_at_full_size']:.1%} |",
    ]
    if "strangers" in t:
        lines.append(f"| official portraits of other characters (a fifth of `strangers/`) labelled unknown "
                     f"({t['strangers']}) | {t['strangers_labelled_unknown']:.1%} |")
    if "scenes" in c:
        held_out = "the other half of " if "calibration_faces" in c["scenes"] else ""
        lines.append(f"| faces found in {held_out}`scenes/` labelled unknown ({c['scenes']['faces_found']}) | "
                     f"{c['scenes']['labelled_unknown']:.1%} |")
    for kind, what in (("scene_backgrounds", "squares of those illustrations with no marked face"),
                       ("synthetic", "flat colours, gradients, noise and blobs")):
        if kind in c.get("non_faces", {}):
            judged = c["non_faces"][kind]
            lines.append(f"| {what}, taken whole as one face, labelled unknown ({judged['pictures']}) | "
                         f"{judged['labelled_unknown']:.1%} |")
    few = c.get("fewshot", {})
    shots = [k for k in few if k.endswith("-shot")]
    scenes = all("scene_faces_labelled_unknown" in few[k] for k in shots)
    if shots:
        lines += [
            "",
            f"Enrolling the {few['characters']} `fewshot/` characters (random draws, open-set: the model's "
            f"characters and the unknown rule in play), on {few['held_out_faces']} held-out faces"
            + (f" ({few['near_duplicates_dropped']} near-duplicates of other faces left out of calibration and judging)"
               if few.get("near_duplicates_dropped") else "") + ":",
            "",
            "| enrolled per character | top-1 | among new characters only | unknown labelled unknown | "
            "known keep their name |" + (" held-out scene faces labelled unknown |" if scenes else ""),
            "|---|---|---|---|---|" + ("---|" if scenes else ""),
            *[f"| {k} | {few[k]['top1_accuracy']:.1%} | {few[k]['top1_among_new_characters_only']:.1%} | "
              f"{few[k]['unknown_labelled_unknown']:.1%} | {few[k]['known_keep_correct_name']:.1%} |"
              + (f" {few[k]['scene_faces_labelled_unknown']:.1%} |" if scenes else "") for k in shots],
        ]
        if "gallery_cohort" in c:
            g = c["gallery_cohort"]
            lines += ["", f"The gallery's cosine is normalised against {g['centres']} centres of strangers' embeddings "
                      f"(`{g['file']}`, from {g['faces']} faces the calibration may use): each face's mean cosine to "
                      f"its {g['top']} nearest centres is subtracted before the curve."]
        by_size = c.get("gallery_threshold_normalised_cosine_by_characters")
        if by_size:
            lines += ["", "Its threshold rises with the number of enrolled characters, since a stranger has one "
                      f"chance per character to come close to one; each keeps {c['target_unknown_rejection']:.0%} "
                      "of the calibration's strangers Unknown: normalised cosine "
                      + ", ".join(f"{raw:+.3f} for {size}" for size, raw in by_size.items()) + " characters."]
    return lines + ["", f"![ROC curve]({c.get('roc_png', 'roc.png')})", ""]
