"""Where training runs: several logical CPUs under TensorFlow, JAX compiled whole, the GPU
recipe in bfloat16, and the precision policy put back after a run."""

import json

import pytest

from conftest import run_python
from synthetic import write_shapes

pytestmark = pytest.mark.slow


def test_mirrored_strategy_on_two_logical_cpus(shapes, tmp_path):
    stdout = run_python(f"""
        import json
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from train.fit import fit
        card = fit({str(shapes)!r}, {str(tmp_path / 'm')!r}, arch="seed", epochs=2, image_size=32,
                   batch_size=32, cache_dir=None, log=lambda *a: None)
        print(json.dumps(card["training"]))
        """)
    training = json.loads(stdout.strip().splitlines()[-1])
    assert len(training["devices"]) == 2 and training["epochs_run"] == 2
    assert (tmp_path / "m" / "model.keras").is_file()


def test_jax_trains_and_tensorflow_loads(shapes, tmp_path):
    pytest.importorskip("jax", reason="JAX is installed by requirements-dev.txt")
    stdout = run_python(f"""
        import json
        from train.fit import fit
        card = fit({str(shapes)!r}, {str(tmp_path / 'jax')!r}, arch="seed", epochs=3, image_size=32,
                   batch_size=32, cache_dir=None, log=lambda *a: None)
        print(json.dumps(card["training"]))
        """, env={"KERAS_BACKEND": "jax"})
    assert json.loads(stdout.strip().splitlines()[-1])["backend"] == "jax"
    stdout = run_python(f"""
        import numpy as np, keras
        from animerec.model import load_recognizer
        r = load_recognizer({str(tmp_path / 'jax')!r})
        p = r.run(np.zeros((2, 32, 32, 3), np.uint8)).probabilities
        print(keras.backend.backend(), p.shape, float(p.sum()))
        """, env={"KERAS_BACKEND": "tensorflow"})
    backend, *_ = stdout.split()
    assert backend == "tensorflow" and "(2, 3)" in stdout


def test_under_jax_each_training_step_is_compiled_whole():
    """Keras would run a JAX step op by op, because its random zoom, rotation and translation
    layers say they cannot be compiled (true only of their TensorFlow kernel): 14 times slower
    per epoch on this CPU, and far worse on a GPU."""
    pytest.importorskip("jax", reason="JAX is installed by requirements-dev.txt")
    stdout = run_python("""
        from train.architectures import make_model
        from train.devices import compile_whole_steps
        for whole in (False, True):
            model = make_model("default", 32, 3, seed=0)
            if whole:
                compile_whole_steps(model)
            model.compile(optimizer="adam", loss="categorical_crossentropy")
            print(model.jit_compile)
        """, env={"KERAS_BACKEND": "jax"})
    assert stdout.split()[-2:] == ["False", "True"]


def test_the_gpu_recipe_trains_in_bfloat16_under_jax_and_saves_float32(tmp_path):
    """What a lent GPU runs (JAX, bfloat16, the default network with unknown faces and the
    contrastive loss), forced onto this CPU, where bfloat16 is slow: the arithmetic of the GPU
    path is checked here, on few shapes for one epoch."""
    pytest.importorskip("jax", reason="JAX is installed by requirements-dev.txt")
    shapes = write_shapes(tmp_path / "shapes", per_class=40, size=32)
    unknown = write_shapes(tmp_path / "unknown", per_class=20, shapes=("cross",), flat=True)
    stdout = run_python(f"""
        import json
        from train.fit import fit
        card = fit({str(shapes)!r}, {str(tmp_path / 'bf16')!r}, epochs=1, image_size=32, batch_size=32,
                   unknown={str(unknown)!r}, contrastive=0.5, precision="mixed_bfloat16", cache_dir=None,
                   log=lambda *a: None)
        print(json.dumps(card["training"]))
        """, env={"KERAS_BACKEND": "jax"})
    training = json.loads(stdout.strip().splitlines()[-1])
    assert (training["backend"], training["policy"]) == ("jax", "mixed_bfloat16")
    stdout = run_python(f"""
        import numpy as np
        from animerec.model import load_recognizer
        r = load_recognizer({str(tmp_path / 'bf16')!r})
        outputs = r.run(np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8))
        dtypes = sorted({{str(w.dtype) for w in r.model.weights}})
        print(dtypes, bool(np.isfinite(outputs.probabilities).all()), outputs.probabilities.sum(axis=1).round(3).tolist())
        """, env={"KERAS_BACKEND": "tensorflow"})
    assert stdout.strip().splitlines()[-1] == "['float32'] True [1.0, 1.0, 1.0, 1.0]"


def test_a_training_run_that_fails_leaves_the_precision_policy_as_it_found_it():
    import keras

    from train.devices import restores_global_state

    @restores_global_state
    def failing_run():
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        raise RuntimeError("stopped half-way")

    before = keras.mixed_precision.global_policy().name
    with pytest.raises(RuntimeError):
        failing_run()
    assert keras.mixed_precision.global_policy().name == before == "float32"
