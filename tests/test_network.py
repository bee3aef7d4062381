"""The network run with NumPy alone (`animerec.network`) gives Keras's answers, for both shipped
networks, and a model it cannot run is loaded with Keras instead."""

import sys

import numpy as np
import pytest

from animerec.model import load_recognizer
from animerec.paths import REPO_ROOT


@pytest.mark.parametrize("name", ["default", "seed"])
def test_numpy_gives_kerass_probabilities_embeddings_and_cosines(name):
    keras_run = load_recognizer(REPO_ROOT / "models" / name)
    numpy_run = load_recognizer(REPO_ROOT / "models" / name, engine="numpy")
    assert (keras_run.engine, numpy_run.engine) == ("keras", "numpy")
    assert numpy_run.input_size == keras_run.input_size and numpy_run.embedding_size == keras_run.embedding_size
    size = keras_run.input_size
    rng = np.random.default_rng(0)
    crops = np.concatenate([rng.integers(0, 256, (6, size, size, 3), dtype=np.uint8),
                            np.full((1, size, size, 3), 255, np.uint8)])
    for batch in (crops[:1], crops):
        expected, got = keras_run.run(batch), numpy_run.run(batch)
        for a, b in zip(expected, got):
            if a is None:
                assert b is None
                continue
            np.testing.assert_allclose(b, a, atol=2e-5)
    np.testing.assert_allclose(numpy_run.scorer.model(got), keras_run.scorer.model(expected), atol=1e-4)


def test_a_model_with_a_layer_numpy_cannot_run_is_loaded_with_keras(tmp_path):
    import shutil

    import keras

    model_dir = shutil.copytree(REPO_ROOT / "models" / "seed", tmp_path / "odd")
    seed = keras.models.load_model(model_dir / "model.keras")
    inputs = keras.Input(seed.input_shape[1:])
    odd = keras.Model(inputs, keras.layers.Softmax(name="probabilities")(
        keras.layers.LayerNormalization()(keras.layers.Dense(seed.output_shape[-1], name="embedding")(
            keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))))))
    odd.save(model_dir / "model.keras")
    assert load_recognizer(model_dir, engine="numpy").engine == "keras"
    # Layers NumPy knows, configured in a way it does not compute: Keras again, never a wrong answer.
    tanh = keras.Model(inputs, keras.layers.Activation("softmax", name="probabilities")(
        keras.layers.Dense(seed.output_shape[-1], activation="tanh", name="embedding")(
            keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs)))))
    tanh.save(model_dir / "model.keras")
    assert load_recognizer(model_dir, engine="numpy").engine == "keras"


def test_the_command_line_never_imports_tensorflow(data):
    import subprocess

    code = ("import sys; from animerec.cli import main; status = main([sys.argv[1], '--json']); "
            "print(status, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, str(data / "scenes" / "101.jpg")], capture_output=True,
                            text=True, cwd=REPO_ROOT, timeout=300, env={"PYTHONPATH": str(REPO_ROOT), "PATH": ""})
    assert result.stdout.splitlines()[-1] == "0 False False", result.stderr[-2000:]


def _model_dir(path, model, card):
    import json

    path.mkdir()
    model.save(path / "model.keras")
    classes = model.outputs[0].shape[-1]
    (path / "labels.json").write_text(json.dumps([{"slug": f"c{i}", "name": f"C {i}", "series": "s"}
                                                  for i in range(classes)]))
    (path / "card.json").write_text(json.dumps({"version": path.name, "flip_average": True, **card}))
    return path


def test_numpy_runs_the_pretrained_mobilenet_and_an_ensemble_as_keras_does(tmp_path):
    """MobileNetV2's depthwise convolutions, ReLU6 and padding, and an ensemble's weighted
    cosines and joined embedding, with random weights (batch norm statistics moved off 0 and 1
    so that every term counts)."""
    from train.architectures import make_model
    from train.ensemble import build_ensemble

    rng = np.random.default_rng(1)
    members = [make_model("mobilenet", 40, 3, seed=0), make_model("default", 40, 3, seed=1)]
    for member in members:
        for layer in member.layers:
            if type(layer).__name__ == "BatchNormalization":
                gamma, beta, mean, variance = layer.get_weights()
                layer.set_weights([gamma * rng.uniform(0.5, 1.5, gamma.shape), beta + rng.normal(0, 0.1, beta.shape),
                                   rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2, variance.shape)])
    crops = rng.integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
    dirs = [_model_dir(tmp_path / "mobilenet", members[0], {"embedding_layer": "pooled"}),
            _model_dir(tmp_path / "ensemble", build_ensemble(members, [1.0, 3.0]), {"embedding_layer": "pooled"})]
    for model_dir in dirs:
        keras_run, numpy_run = load_recognizer(model_dir), load_recognizer(model_dir, engine="numpy")
        assert numpy_run.engine == "numpy", model_dir.name
        for a, b in zip(keras_run.run(crops), numpy_run.run(crops)):
            np.testing.assert_allclose(b, a, atol=3e-5)
