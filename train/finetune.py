"""Starting a run from a model directory (`train fit --init`): its weights, and its characters,
to which new ones are added."""

import json
from pathlib import Path

import keras
import numpy as np

from animerec.paths import data_dir
from train.dataset import SPLITS, FaceSet, list_images, load_faces, read_split, split_indices


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


def freeze_backbone(model, last="pooled"):
    """Stop every layer with weights up to and including `last` from learning (batch
    normalisation in them then keeps its statistics too), so only the head trains and the
    features `last` gives (the gallery's embedding) stay as they were. Returns how many layers
    were frozen."""
    frozen = 0
    for layer in model.layers:
        if layer.weights:
            layer.trainable = False
            frozen += 1
        if layer.name == last:
            return frozen
    raise ValueError(f"The network has no layer named {last!r} to freeze up to.")


def faces_with_init_classes(init, init_data, data, image_size, cache_dir, seed):
    """The crops for fine-tuning from the model directory `init`: its characters first, in its
    order (read from `data` when it has them, else from `init_data` with `init`'s own split, so
    its test faces stay unseen), then the new characters of `data`, split afresh.
    Returns (FaceSet, split, {source: [slugs]})."""
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
