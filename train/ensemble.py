"""One network from several trained ones (`train ensemble`).

Networks of different families trained on the same faces make different mistakes (the ResNet
trained from scratch and the MobileNetV2 started from ImageNet: `docs/model.md`), so their mean
names more faces right than either. The ensemble is a single Keras model (one graph, each
member's layers under its own prefix), so the page, the command line, `train evaluate` and
`train calibrate` use it as any other model directory:

- its cosine to each character is the weighted mean of the members' cosines, and its
  probabilities are the softmax of COSINE_SCALE times that, as for one cosine head;
- its face embedding, the layer "pooled" (the gallery's), is the members' pooled features,
  each scaled to unit length and by the square root of its weight, side by side: the cosine
  between two such embeddings is the weighted mean of the members' cosines;
- its kernels are rounded to float16 and stored so, which halves the file (a model file must
  stay under 25 MiB) and is measured: its figures are those of the rounded weights.

Its members must know the same characters in the same order and share one split.json, so that
no member has trained on a face the ensemble is judged on.
"""

import datetime
import json
import math
from pathlib import Path

import keras
from keras import layers

from animerec.model import load_recognizer, outputs_model
from train.architectures import COSINE_SCALE
from train.dataset import load_faces, read_split
from train.evaluate import classification_metrics, confusion_matrix, confusion_png, naming_scores_of
from train.export import new_version, round_to_half, write_model_dir

EMBEDDING_LAYER = "pooled"
ENSEMBLE_INIT = ("The --init model is an ensemble, which cannot be trained further: fine-tune each of its members "
                 "(the card lists them) and combine them again with `python -m train ensemble`.")


def is_ensemble(model_dir):
    """Whether the model directory was written by `ensemble` (it cannot be trained further:
    train its members and combine them again)."""
    try:
        return bool(json.loads((Path(model_dir) / "card.json").read_text(encoding="utf-8")).get("members"))
    except (OSError, ValueError, AttributeError):  # no card, or not one: the loader says so in its own words
        return False


def build_ensemble(models, weights):
    """A Keras model whose cosines are the `weights`-weighted mean of the cosine-head `models`'
    and whose "pooled" output is their weighted, unit-length pooled features side by side."""
    size = models[0].input_shape[1:]
    inputs = keras.Input(size, name="crop")
    total = float(sum(weights))
    cosines, pooled = [], []
    for i, (model, weight) in enumerate(zip(models, weights)):
        prefix = f"m{i}_"
        member = _prefixed_copy(outputs_model(model, EMBEDDING_LAYER), prefix, inputs)
        _, features, cosine = member.outputs
        cosines.append(layers.Rescaling(weight / total, name=f"{prefix}weight")(cosine))
        unit = layers.UnitNormalization(name=f"{prefix}unit")(features)
        pooled.append(layers.Rescaling(math.sqrt(weight / total), name=f"{prefix}share")(unit))
    cosine = layers.Add(name="prototypes")(cosines)
    logits = layers.Rescaling(COSINE_SCALE, name="logits")(cosine)
    probabilities = layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    embedding = layers.Concatenate(name=EMBEDDING_LAYER)(pooled)
    # The embedding is an output so that it stays in the graph; the page reads it by name.
    return keras.Model(inputs, [probabilities, embedding], name="ensemble")


def _in_words(names):
    """["a", "b", "c"] -> "a, b and c"."""
    return ", ".join(names[:-1]) + " and " + names[-1]


def _prefixed_copy(model, prefix, inputs):
    """`model`'s graph rebuilt on `inputs` with every layer renamed `prefix` + name and its
    weights copied, so several members live side by side in one flat graph."""

    def rename(layer):
        config = layer.get_config()
        config["name"] = prefix + layer.name
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, input_tensors=inputs, clone_function=rename)
    for layer in model.layers:
        if layer.weights:
            copy.get_layer(prefix + layer.name).set_weights(layer.get_weights())
    return copy


def ensemble(members, out, data, weights=None, cache_dir=".cache", log=print):
    """Write the model directory `out`: the ensemble of the model directories `members`
    (weighted by `weights`, default equal), its card and its test figures. Returns the card."""
    members, out = [Path(m) for m in members], Path(out)
    weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
    if len(members) < 2:
        raise ValueError("An ensemble needs two or more model directories.")
    if len(weights) != len(members) or min(weights) <= 0 or not all(map(math.isfinite, weights)):
        raise ValueError(f"Give one positive weight per member: {len(members)} members, weights {weights}.")
    if any(map(is_ensemble, members)):
        raise ValueError("A member is itself an ensemble: pass its members instead.")
    # The page's own loader: a missing or unreadable file of a member is a sentence (ModelError).
    recognizers = [load_recognizer(m) for m in members]
    cards = [r.card for r in recognizers]
    for m, card in zip(members, cards):
        if not isinstance(card.get("training"), dict) or "test" not in (card.get("metrics") or {}):
            raise ValueError(f"{m}/card.json lacks the training and test figures `python -m train fit` writes: "
                             "an ensemble's card is made of its members', so train each member with fit.")
    splits = []
    for m in members:
        if not (m / "split.json").is_file():
            raise FileNotFoundError(f"{m} has no split.json: an ensemble is judged on faces none of its members "
                                    "trained on, so each needs the split it was trained with.")
        splits.append(json.loads((m / "split.json").read_text(encoding="utf-8")))
    if any(r.characters != recognizers[0].characters for r in recognizers):
        raise ValueError("The members know different characters (their labels.json differ): train them on the same.")
    if any(split != splits[0] for split in splits):
        raise ValueError("The members were trained on different splits (their split.json differ): train them with "
                         "`--split` from one model, or the ensemble would be judged on faces a member trained on.")
    if len({r.input_size for r in recognizers}) > 1:
        raise ValueError("The members take crops of different sizes: train them at one --image-size.")
    models = [r.model for r in recognizers]
    if any("prototypes" not in [layer.name for layer in model.layers] for model in models):
        raise ValueError("Every member needs a cosine head (the default or mobilenet network, not the seed).")
    model = build_ensemble(models, weights)
    round_to_half(model)

    slugs = [c.slug for c in recognizers[0].characters]
    faces = load_faces(data, recognizers[0].input_size, cache_dir=cache_dir, classes=slugs)
    split = read_split(members[0] / "split.json", faces.files)
    # Validation decides whether the whole averages each crop with its mirror image, as `fit`
    # decides for one network: each member's own choice was made for it alone.
    val_images, val_labels = faces.images[split["val"]], faces.labels[split["val"]]
    flip = max((False, True), key=lambda f: classification_metrics(
        naming_scores_of(model, val_images, f, EMBEDDING_LAYER), val_labels, slugs)["macro_accuracy"])
    scored = {part: naming_scores_of(model, faces.images[split[part]], flip, EMBEDDING_LAYER) for part in ("val", "test")}
    metrics = {part: classification_metrics(scores, faces.labels[split[part]], slugs) for part, scores in scored.items()}
    log(f"test: accuracy {metrics['test']['accuracy']:.4f}, macro accuracy {metrics['test']['macro_accuracy']:.4f}, "
        f"top-5 {metrics['test']['top5_accuracy']:.4f}")
    first = cards[0]["training"]
    card = {
        "version": new_version(out),
        "architecture": "ensemble of " + _in_words([card["architecture"] for card in cards]),
        "input_size": recognizers[0].input_size,
        "parameters": int(model.count_params()),
        "score": "uncalibrated: (mean cosine to the nearest prototype + 1) / 2; `python -m train calibrate` replaces it",
        "flip_average": flip,
        "threshold": 0.5,
        "embedding_layer": EMBEDDING_LAYER,
        "weights_stored": "float16 kernels (rounded before every figure here was measured), computed in float32",
        "members": [{"model": str(m), "version": card["version"], "architecture": card["architecture"],
                     "weight": w, "test": {k: card["metrics"]["test"][k] for k in ("accuracy", "macro_accuracy")},
                     "training": card["training"]}
                    for m, card, w in zip(members, cards, weights)],
        "training": {"data": first["data"], "classes": first["classes"], "images": first["images"],
                     "split": first["split"], "combined": "the weighted mean of the members' cosines; no training "
                     "of its own", "date": datetime.date.today().isoformat()},
        "metrics": {"test": metrics["test"], "validation": metrics["val"],
                    "named_by": "the highest mean cosine to a character's prototypes, as the page names"},
    }
    write_model_dir(out, model, slugs, card, data, split_files=splits[0], half=True)
    confusion_png(confusion_matrix(scored["test"], faces.labels[split["test"]], len(slugs)), slugs,
                  out / "confusion.png", title=f"{out.name}: test split")
    return card
