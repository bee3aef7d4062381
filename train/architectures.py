"""The networks `train fit --arch` can build.

Both take uint8 RGB crops of shape (S, S, 3) and end in a softmax over the characters. Scaling
to 0..1 and the training-time augmentation live inside the model (keras-io's
`image_classification_from_scratch` does the same), so the page feeds it raw crops and one
preprocessing path serves training and serving alike. Augmentation layers are inactive at
inference, so they cost nothing there.
"""

from pathlib import Path

import keras
import numpy as np
from keras import layers

from animerec.paths import data_dir

ARCHITECTURES = ("seed", "default", "mobilenet")


def make_augmentation(seed=None):
    """Augmentation for anime face crops, as a Sequential that only acts in training.

    Flip (faces are roughly symmetric; hair partings are not, but flipped fan art is common),
    zoom and shift wide enough to cover the gap between the tight Danbooru crops, the looser
    AnimeFace crops and the cascade-plus-margin crop the page makes, a small rotation for tilted
    heads, and mild colour jitter: hair and eye colour are what tell characters apart, so hue is
    left alone and only brightness, contrast and saturation move.
    """
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.04, fill_mode="reflect", seed=seed),
            layers.RandomZoom((-0.25, 0.15), fill_mode="reflect", seed=seed),
            layers.RandomTranslation(0.08, 0.08, fill_mode="reflect", seed=seed),
            layers.RandomBrightness(0.15, value_range=(0.0, 1.0), seed=seed),
            layers.RandomContrast(0.2, seed=seed),
            layers.RandomSaturation((0.35, 0.65), value_range=(0.0, 1.0), seed=seed),
        ],
        name="augment",
    )


def make_model(arch, image_size, num_classes, seed=None):
    """Build the named network for (image_size, image_size, 3) uint8 input.

    Returns an uncompiled `keras.Model` whose output is (N, num_classes) softmax probabilities
    (float32 even under a mixed-precision policy). Its face embedding is the output of the layer
    named "embedding_unit" (`default`, `mobilenet`: L2-normalised) or else "embedding" (`seed`).
    `mobilenet` starts from the pretrained weights of `MOBILENET_WEIGHTS` when that file is there.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {arch!r}: choose one of {', '.join(ARCHITECTURES)}.")
    inputs = keras.Input((image_size, image_size, 3), name="crop")
    x = layers.Rescaling(1.0 / 255, name="scale")(inputs)
    x = make_augmentation(seed)(x)
    if arch == "seed":
        logits = layers.Dense(num_classes, name="logits")(_seed_body(x))
    elif arch == "mobilenet":
        logits = _cosine_head(_mobilenet_body(x, image_size), num_classes)
    else:
        logits = _cosine_head(_default_body(x), num_classes)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, outputs, name=arch)


# The default network's logits are COSINE_SCALE times the cosine between the unit-length face
# embedding and one unit-length prototype per character (CosFace, Wang et al. 2018). Training
# subtracts a margin from the true class's cosine (train.losses.margin_loss), which packs each
# character's faces around its prototype: the cosine then says how close a face is to a known
# character, and a face enrolled later is compared with the same kind of number.
COSINE_SCALE = 30.0


def _cosine_head(x, num_classes):
    x = layers.Dense(256, name="embedding")(x)
    x = layers.BatchNormalization(name="embedding_bn")(x)
    x = layers.UnitNormalization(name="embedding_unit")(x)
    cosines = layers.Dense(num_classes, use_bias=False, kernel_constraint=keras.constraints.UnitNorm(axis=0),
                           name="prototypes")(x)
    return layers.Rescaling(COSINE_SCALE, name="logits")(cosines)


def _seed_body(x):
    """The student report's network: three 3x3 convolutions 32/32/64 with 2x2 pooling,
    a dense layer of 64 and dropout 0.3."""
    for filters in (32, 32, 64):
        x = layers.Conv2D(filters, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu", name="embedding")(x)
    return layers.Dropout(0.3)(x)


DEFAULT_WIDTHS = (32, 64, 128, 256)


def _default_body(x):
    """A small pre-activation ResNet: a strided stem, four stages of two residual blocks
    (the first of each stage from the second on halves the resolution), global average
    pooling. With its cosine head, about 2.8 M parameters."""
    x = layers.Conv2D(DEFAULT_WIDTHS[0], 3, strides=2, padding="same", use_bias=False, name="stem")(x)
    for stage, filters in enumerate(DEFAULT_WIDTHS):
        for block in range(2):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _residual_block(x, filters, strides, name=f"s{stage}b{block}")
    x = layers.BatchNormalization(name="head_bn")(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D(name="pooled")(x)
    return layers.Dropout(0.3)(x)


def _residual_block(x, filters, strides, name):
    shortcut = x
    x = layers.BatchNormalization(name=f"{name}_bn1")(x)
    x = layers.Activation("relu")(x)
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_proj")(x)
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    x = layers.BatchNormalization(name=f"{name}_bn2")(x)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(x)
    return layers.Add(name=f"{name}_add")([shortcut, x])


# ../shared/backbones' MobileNetV2: ImageNet weights up to block 10, the rest fine-tuned by nsfwjs.
MOBILENET_WEIGHTS = data_dir().parent / "backbones" / "mobilenet_v2_nsfwjs.npz"


def _mobilenet_body(x, image_size):
    """Keras's MobileNetV2 (width 1.0) on the augmented crop scaled to -1..1, global average
    pooling, dropout 0.3; its layers join the model itself (not a nested model), so weights
    copy and freeze by layer name as for `default`."""
    x = layers.Rescaling(2.0, offset=-1.0, name="centre")(x)
    trunk = keras.applications.MobileNetV2(input_shape=(image_size, image_size, 3), input_tensor=x,
                                           include_top=False, weights=None)
    if Path(MOBILENET_WEIGHTS).is_file():
        load_mobilenet_weights(trunk, MOBILENET_WEIGHTS)
    x = layers.GlobalAveragePooling2D(name="pooled")(trunk.output)
    return layers.Dropout(0.3)(x)


def load_mobilenet_weights(model, path):
    """Set the layers of `model` named in the backbones folder's .npz (uint8 per tensor: value
    = q * scale + min). Returns how many layers were set."""
    stored = np.load(path)
    order = {"Conv2D": ("kernel", "bias"), "DepthwiseConv2D": ("depthwise_kernel", "bias"),
             "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance")}
    set_layers = 0
    for layer in model.layers:
        names = order.get(type(layer).__name__)
        if not names or f"{layer.name}/{names[0]}:q" not in stored:
            continue
        values = [stored[f"{layer.name}/{n}:q"].astype(np.float32) * stored[f"{layer.name}/{n}:scale"]
                  + stored[f"{layer.name}/{n}:min"] for n in names if f"{layer.name}/{n}:q" in stored]
        layer.set_weights(values)
        set_layers += 1
    return set_layers
