"""A saved Keras model run with NumPy alone, for serving.

Importing Keras imports TensorFlow, which takes most of the command line's cold start and of a
fresh page's first visit. The page only ever runs the network forward, on a few crops, so this
module reads the `.keras` file itself (its `config.json` graph and `model.weights.h5`) and
evaluates the layers the project's networks use: convolutions (depthwise too, for MobileNetV2),
batch normalisation, pooling, dense layers, residual additions, the cosine head and an
ensemble's concatenated embedding. Training-only layers (augmentation,
dropout) pass their input through, as Keras does at inference. A model with any other layer
raises UnsupportedModel, and `animerec.model` then loads it with Keras.
"""

import io
import json
import zipfile
from collections import Counter

import numpy as np


class UnsupportedModel(Exception):
    """The model holds a layer this module cannot evaluate."""


PASS_THROUGH = {"InputLayer", "Dropout", "Sequential"}  # the Sequential is the augmentation block
WEIGHTED = {"Conv2D", "DepthwiseConv2D", "BatchNormalization", "Dense"}


class NumpyNetwork:
    """The functional graph of a `.keras` file, evaluated on (N, S, S, 3) uint8 crops.

    `outputs` are layer names (default: `output_names()`); `__call__` returns one float32 array
    per name, in that order.
    """

    def __init__(self, path, outputs=None, embedding_layer=None):
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights = archive.read("model.weights.h5")
        if config.get("class_name") != "Functional":
            raise UnsupportedModel(f"a {config.get('class_name')} model")
        import h5py  # Keras's own dependency, light beside it

        self.layers = config["config"]["layers"]
        self.input_name = config["config"]["input_layers"][0]
        self.input_shape = tuple(self.layers[0]["config"]["batch_shape"])
        # The first output is the probabilities (an ensemble's second is its embedding).
        declared = config["config"]["output_layers"]
        self.probabilities = (declared[0] if isinstance(declared[0], list) else declared)[0]
        self.outputs = list(outputs) if outputs else self.output_names(embedding_layer)
        # The shape Keras recorded for the softmax's input.
        softmax = next(layer for layer in self.layers if layer["name"] == self.probabilities)
        self.output_shape = tuple(next(_tensors(softmax["inbound_nodes"][0]["args"]))["config"]["shape"])
        counts = Counter()
        self.params = {}
        with h5py.File(io.BytesIO(weights), "r") as saved:
            for layer in self.layers:
                kind = layer["class_name"]
                _check_supported(kind, layer["config"])
                # Keras saves each layer's variables under its class name in snake case,
                # numbered in the order the layers appear: conv2d, conv2d_1, ...
                key = _snake(kind)
                path = f"layers/{key}" + (f"_{counts[key]}" if counts[key] else "")
                counts[key] += 1
                if kind in WEIGHTED:
                    group = saved[path]["vars"]
                    self.params[layer["name"]] = [np.asarray(group[str(i)], np.float32) for i in range(len(group))]

    def output_names(self, embedding_layer=None):
        """The layers `animerec.model.outputs_model` would read: the probabilities, the face
        embedding (`embedding_layer`, else "embedding", else the layer before the last) and,
        for a cosine head, the cosines of "prototypes"."""
        names = [layer["name"] for layer in self.layers]
        name = embedding_layer or ("embedding" if "embedding" in names else names[-2])
        if name not in names:  # Keras's loader says so in a sentence
            raise UnsupportedModel(f"no layer {name!r}")
        return [self.probabilities, name] + (["prototypes"] if "prototypes" in names else [])

    def predict_on_batch(self, crops):
        """The outputs for a batch of crops, as Keras's method of the same name gives them."""
        return self(crops)

    def __call__(self, crops):
        values = {}
        for layer in self.layers:
            name, kind, config = layer["name"], layer["class_name"], layer["config"]
            if kind == "InputLayer":
                values[name] = np.asarray(crops, np.float32)
                continue
            inputs = [values[_source(arg)] for node in layer["inbound_nodes"] for arg in _tensors(node["args"])]
            values[name] = _evaluate(kind, config, inputs, self.params.get(name))
        return [values[name] for name in self.outputs]


AUGMENTATION = {"InputLayer", "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomBrightness",
                "RandomContrast", "RandomSaturation"}  # inactive at inference
ACTIVATIONS = {"relu", "softmax", "linear"}


def _check_supported(kind, config):
    """Raise UnsupportedModel unless `_evaluate` computes this layer exactly as Keras does,
    so that a model it cannot run is loaded with Keras at once, never answered wrongly."""
    unsupported = (
        kind not in PASS_THROUGH | WEIGHTED | SIMPLE
        or kind == "Sequential" and any(inner["class_name"] not in AUGMENTATION for inner in config["layers"])
        or config.get("activation", "linear") not in ACTIVATIONS
        or kind in ("Conv2D", "DepthwiseConv2D") and (tuple(config["dilation_rate"]) != (1, 1)
                                                      or config.get("groups", 1) != 1
                                                      or config.get("depth_multiplier", 1) != 1
                                                      or config["data_format"] != "channels_last")
        or kind == "ReLU" and (config.get("negative_slope", 0) != 0 or config.get("threshold", 0) != 0)
        or kind == "ZeroPadding2D" and config["data_format"] != "channels_last"
        or kind == "Concatenate" and config.get("axis", -1) not in (-1, 1)
        or kind == "BatchNormalization" and (config["axis"] not in (-1, [-1], 3, [3]) or not config["center"]
                                             or not config["scale"])
        or kind == "MaxPooling2D" and (config["padding"] != "valid"
                                       or tuple(config["strides"] or config["pool_size"]) != tuple(config["pool_size"]))
        or kind == "GlobalAveragePooling2D" and config.get("keepdims", False)
        or kind == "UnitNormalization" and config.get("axis", -1) not in (-1, [-1])
    )
    if unsupported:
        raise UnsupportedModel(f"the {kind} layer {config.get('name')!r}")


def _snake(name):
    out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return out.replace("conv2_d", "conv2d").replace("global_average_pooling2_d", "global_average_pooling2d") \
        .replace("max_pooling2_d", "max_pooling2d").replace("padding2_d", "padding2d").replace("re_l_u", "re_lu")


def _tensors(args):
    """The Keras tensors among a node's arguments (an Add takes a list of them)."""
    for arg in args:
        if isinstance(arg, list):
            yield from _tensors(arg)
        elif isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
            yield arg


def _source(tensor):
    return tensor["config"]["keras_history"][0]


def _conv(x, kernel, strides, padding):
    """2-D convolution, NHWC, as Keras does it ('same' pads the extra row and column at the
    bottom and right)."""
    kh, kw, cin, cout = kernel.shape
    n, h, w, _ = x.shape
    sh, sw = strides
    if padding == "same":
        x, out_h, out_w = _same_padding(x, kh, kw, strides)
    else:
        out_h, out_w = (h - kh) // sh + 1, (w - kw) // sw + 1
    if kh == kw == 1:
        patches = x[:, : (out_h - 1) * sh + 1 : sh, : (out_w - 1) * sw + 1 : sw, :]
        return patches @ kernel[0, 0]
    s = x.strides
    windows = np.lib.stride_tricks.as_strided(
        x, (n, out_h, out_w, kh, kw, cin), (s[0], s[1] * sh, s[2] * sw, s[1], s[2], s[3]), writeable=False)
    return (windows.reshape(n * out_h * out_w, kh * kw * cin) @ kernel.reshape(-1, cout)).reshape(n, out_h, out_w, cout)


def _same_padding(x, kh, kw, strides):
    """`x` padded as Keras's 'same' does (the extra row and column at the bottom and right),
    and the output's height and width."""
    n, h, w, _ = x.shape
    sh, sw = strides
    out_h, out_w = -(-h // sh), -(-w // sw)
    pad_h, pad_w = max(0, (out_h - 1) * sh + kh - h), max(0, (out_w - 1) * sw + kw - w)
    return np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))), out_h, out_w


def _depthwise(x, kernel, strides, padding):
    """Depthwise 2-D convolution (one filter per channel), NHWC: a sum over the kernel's taps."""
    kh, kw = kernel.shape[:2]
    sh, sw = strides
    if padding == "same":
        x, out_h, out_w = _same_padding(x, kh, kw, strides)
    else:
        out_h, out_w = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    out = np.zeros((x.shape[0], out_h, out_w, x.shape[3]), np.float32)
    for i in range(kh):
        for j in range(kw):
            out += x[:, i : i + (out_h - 1) * sh + 1 : sh, j : j + (out_w - 1) * sw + 1 : sw, :] * kernel[i, j, :, 0]
    return out


def _activation(x, name):
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "linear":
        return x
    raise UnsupportedModel(f"the activation {name!r}")


def _evaluate(kind, config, inputs, params):
    x = inputs[0] if inputs else None
    if kind in PASS_THROUGH:
        return x
    if kind == "Rescaling":
        return x * np.float32(config["scale"]) + np.float32(config["offset"])
    if kind == "Conv2D":
        out = _conv(x, params[0], config["strides"], config["padding"])
        if config["use_bias"]:
            out = out + params[1]
        return _activation(out, config["activation"])
    if kind == "DepthwiseConv2D":
        out = _depthwise(x, params[0], config["strides"], config["padding"])
        if config["use_bias"]:
            out = out + params[1]
        return _activation(out, config["activation"])
    if kind == "ReLU":
        top = config.get("max_value")
        return np.maximum(x, 0.0) if top is None else np.clip(x, 0.0, np.float32(top))
    if kind == "ZeroPadding2D":
        (top, bottom), (left, right) = config["padding"]
        return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    if kind == "Concatenate":
        return np.concatenate(inputs, axis=-1)
    if kind == "BatchNormalization":
        gamma, beta, mean, variance = params  # center and scale are on in every network here
        scale = gamma / np.sqrt(variance + np.float32(config["epsilon"]))
        return x * scale + (beta - mean * scale)
    if kind == "Dense":
        out = x @ params[0]
        if config["use_bias"]:
            out = out + params[1]
        return _activation(out, config["activation"])
    if kind == "Activation":
        return _activation(x, config["activation"])
    if kind == "Add":
        return sum(inputs[1:], inputs[0])
    if kind == "GlobalAveragePooling2D":
        return x.mean(axis=(1, 2))
    if kind == "MaxPooling2D":
        ph, pw = config["pool_size"]
        n, h, w, c = x.shape
        x = x[:, : h - h % ph, : w - w % pw]
        return x.reshape(n, h // ph, ph, w // pw, pw, c).max(axis=(2, 4))
    if kind == "Flatten":
        return x.reshape(len(x), -1)
    if kind == "UnitNormalization":
        return x / np.maximum(np.sqrt((x * x).sum(axis=-1, keepdims=True)), 1e-12)
    raise UnsupportedModel(f"a {kind} layer")


SIMPLE = {"Rescaling", "Activation", "Add", "GlobalAveragePooling2D", "MaxPooling2D", "Flatten", "UnitNormalization",
          "ReLU", "ZeroPadding2D", "Concatenate"}
