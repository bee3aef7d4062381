"""The training side: a real (tiny) training run, the model directory it writes, reloading it
through the page's loader, `evaluate`, `prepare`, and the multi-device and JAX paths."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthetic import SHAPES, write_shapes

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
QUIET = lambda *args: None  # noqa: E731


def run_python(code, env=None, timeout=600):
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            cwd=ROOT, timeout=timeout,
                            env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_shapes(tmp_path_factory.mktemp("shapes"), per_class=150, size=32)


@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory):
    from train.fit import fit

    out = tmp_path_factory.mktemp("models") / "shapes"
    card = fit(shapes, out, arch="seed", epochs=40, image_size=32, batch_size=32, learning_rate=3e-3,
               patience=40, cache_dir=None, log=QUIET)
    return out, card


def test_shapes_that_colour_cannot_tell_apart_train_to_90_percent(trained):
    _, card = trained
    print(f"\nsynthetic shapes: test accuracy {card['metrics']['test']['accuracy']:.3f}")
    assert card["metrics"]["test"]["accuracy"] >= 0.90


def test_the_model_directory_is_complete_and_valid(trained, shapes):
    out, card = trained
    for name in ("model.keras", "labels.json", "card.json", "card.md", "split.json", "confusion.png"):
        assert (out / name).is_file(), name
    labels = json.loads((out / "labels.json").read_text())
    assert [d["slug"] for d in labels] == sorted(SHAPES)
    assert all(set(d) == {"slug", "name", "series"} for d in labels)
    saved = json.loads((out / "card.json").read_text())
    assert saved == card
    assert {"version", "architecture", "input_size", "threshold", "score", "training", "metrics"} <= set(saved)
    assert 0 <= saved["threshold"] <= 1 and saved["input_size"] == 32
    split = json.loads((out / "split.json").read_text())
    parts = [set(split[p]) for p in ("train", "val", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sum(map(len, parts)) == 3 * 150
    assert f"{card['metrics']['test']['accuracy']:.1%}" in (out / "card.md").read_text()


def test_a_new_process_loads_it_through_the_page_loader_with_the_same_results(trained, shapes):
    out, card = trained
    from animerec.model import load_recognizer

    test_files = json.loads((out / "split.json").read_text())["test"]
    crops = np.stack([np.asarray(Image.open(shapes / f).convert("RGB")) for f in test_files])
    np.save(out.parent / "crops.npy", crops)
    here = load_recognizer(out).run(crops).probabilities
    run_python(f"""
        import numpy as np
        from animerec.model import load_recognizer
        r = load_recognizer({str(out)!r})
        np.save({str(out.parent / 'there.npy')!r}, r.run(np.load({str(out.parent / 'crops.npy')!r})).probabilities)
        """)
    there = np.load(out.parent / "there.npy")
    assert there.dtype == np.float32 and there.shape == (len(test_files), 3)
    np.testing.assert_allclose(here, there, atol=1e-5)
    labels = [sorted(SHAPES).index(f.split("/")[0]) for f in test_files]
    assert round(float((there.argmax(1) == labels).mean()), 4) == card["metrics"]["test"]["accuracy"]


def test_evaluate_returns_the_documented_json(trained, shapes, tmp_path):
    out, _ = trained
    stdout = run_python(f"""
        import sys
        from train.cli import main
        sys.exit(main(["evaluate", "--data", {str(shapes)!r}, "--model", {str(out)!r},
                       "--confusion", {str(tmp_path / 'cm.png')!r}]))
        """)
    result = json.loads(stdout)
    assert {"accuracy", "macro_accuracy", "top5_accuracy", "per_class_recall", "images", "model"} <= set(result)
    assert result["images"] == 450 and set(result["per_class_recall"]) == set(SHAPES)
    assert 0.9 <= result["accuracy"] <= 1.0
    assert Image.open(tmp_path / "cm.png").size[0] > 100


def test_evaluate_on_the_models_own_test_split_gives_the_cards_numbers(trained, shapes, tmp_path):
    from train.evaluate import evaluate_folder

    out, card = trained
    result = evaluate_folder(shapes, out, tmp_path / "test.png", part="test")
    expected = card["metrics"]["test"]
    assert result["part"] == "test" and result["images"] == expected["images"] == card["training"]["images"]["test"]
    assert (result["accuracy"], result["macro_accuracy"]) == (expected["accuracy"], expected["macro_accuracy"])

    import shutil

    bare = shutil.copytree(out, tmp_path / "bare", ignore=shutil.ignore_patterns("split.json", "training"))
    with pytest.raises(FileNotFoundError, match="has no split.json, so it has no test split"):
        evaluate_folder(shapes, bare, tmp_path / "bare.png", part="test")


def test_evaluate_greyscale_judges_grey_faces_and_keeps_the_cards_confusion_picture(trained, shapes, tmp_path):
    from train.dataset import greyscale
    from train.evaluate import evaluate_folder

    rgb = np.array([[[[255, 0, 0], [0, 255, 0], [0, 0, 255], [90, 90, 90]]]], np.uint8)
    assert greyscale(rgb).tolist() == [[[[76] * 3, [150] * 3, [29] * 3, [90] * 3]]]
    out, _ = trained
    card_picture = (out / "confusion.png").read_bytes()
    grey = evaluate_folder(shapes, out, grey=True)
    assert (out / "confusion.png").read_bytes() == card_picture, "judging grey faces leaves the card's picture"
    assert Path(grey["confusion_png"]) == out / "confusion-greyscale.png" and Path(grey["confusion_png"]).is_file()
    assert grey["greyscale"] is True and grey["colourless_faces"] == {"images": grey["images"], "accuracy": grey["accuracy"]}
    colour = evaluate_folder(shapes, out, tmp_path / "colour.png")
    assert "greyscale" not in colour and colour["colourless_faces"]["images"] < colour["images"]


def test_prepare_crops_a_real_scene_and_skips_a_corrupt_file(data, tmp_path, capsys):
    from train.prepare import prepare

    raw = tmp_path / "raw" / "someone"
    raw.mkdir(parents=True)
    (raw / "scene.jpg").write_bytes((data / "scenes" / "101.jpg").read_bytes())
    (raw / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this JPEG stops here")
    tally = prepare(tmp_path / "raw", tmp_path / "out", log=QUIET)
    assert tally["several"] == 1 and tally["unreadable"] == 1
    crops = sorted((tmp_path / "out" / "someone").iterdir())
    assert [p.name for p in crops] == ["scene-0.jpg", "scene-1.jpg"]
    assert Image.open(crops[0]).size == (128, 128)
    assert "skipped" in capsys.readouterr().err


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


def test_batch_norm_statistics_are_recomputed_on_clean_crops(shapes):
    import keras

    from train.architectures import make_model
    from train.batchnorm import recalibrate_batch_norm

    images = np.stack([np.asarray(Image.open(p)) for p in sorted(shapes.rglob("*.png"))[:96]])
    model = make_model("default", 32, 3, seed=0)
    first = model.get_layer("s0b0_bn1")
    first.moving_mean.assign(np.full(first.moving_mean.shape, 100.0))
    recalibrate_batch_norm(model, images, batch_size=32)
    # The first batch-norm layer sees the stem's output on un-augmented crops: its moving mean
    # must be exactly the mean of that output over the images.
    stem = keras.Model(model.inputs, model.get_layer("stem").output)
    expected = np.asarray(stem.predict(images, verbose=0)).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(np.asarray(first.moving_mean), expected, rtol=1e-3, atol=1e-4)
    assert first.momentum == 0.99, "the layer's own momentum is put back"


def test_unknown_faces_train_a_cosine_head_and_calibrate_writes_the_card(shapes, tmp_path):
    """The default network with outlier exposure on tiny shapes (crosses are the unknown faces,
    rings and bars the characters to enrol), then `calibrate`: the mechanics, end to end."""
    from animerec.model import load_recognizer
    from train.calibrate import calibrate
    from train.finetune import copy_weights
    from train.fit import fit

    unknown = write_shapes(tmp_path / "unknown", per_class=80, shapes=("cross",), flat=True)
    fewshot = write_shapes(tmp_path / "fewshot", per_class=16, shapes=("ring", "bar"), seed=1)
    scenes = _tiny_scenes(tmp_path / "scenes")
    out = tmp_path / "cosine"
    strangers = write_shapes(tmp_path / "strangers", per_class=20, shapes=("cross", "ring"), flat=True, seed=2)
    card = fit(shapes, out, arch="default", epochs=2, image_size=32, batch_size=32, cache_dir=None,
               unknown=unknown, contrastive=0.5, non_faces=scenes, strangers=strangers, style_fraction=0.3,
               log=QUIET)
    assert "strangers (one face per character)" in card["training"]["loss"]
    assert "redrawn in another style" in card["training"]["augmentation"]
    assert "uniform target" in card["training"]["loss"] and "cosine margin" in card["training"]["loss"]
    assert "contrastive" in card["training"]["loss"] and "pictures with no face" in card["training"]["loss"]
    split = json.loads((out / "split.json").read_text())
    from train.scenes import scene_halves

    halves = {part: [path.name for path in paths] for part, paths in scene_halves(scenes).items()}
    assert split["non_faces"] == halves["calibration"], "only the half calibrate does not judge on"
    parts = [set(split["unknown"][p]) for p in ("train", "calibration", "test")]
    assert sum(map(len, parts)) == 80 and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    parts = [set(split["strangers"][p]) for p in ("train", "calibration", "test")]
    assert sum(map(len, parts)) == 40 and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert len(parts[0]) >= len(parts[1]) + len(parts[2]) - 4, "most strangers train"

    import keras

    from train.architectures import make_model

    fresh = make_model("default", 32, 3)
    assert copy_weights(out, fresh) >= 20
    np.testing.assert_array_equal(fresh.get_layer("prototypes").get_weights()[0],
                                  keras.models.load_model(out / "model.keras").get_layer("prototypes").get_weights()[0])

    result = calibrate(out, shapes, unknown, fewshot, draws=5, cache_dir=None, strangers=strangers, log=QUIET)
    assert 0 < result["threshold"] < 1 and 0 <= result["auroc_known_vs_unknown"] <= 1
    assert result["threshold"] == round(result["threshold"], 2), "in the page slider's steps"
    assert result["test"]["strangers"] == len(split["strangers"]["test"])
    assert 0 <= result["test"]["strangers_labelled_unknown"] <= 1
    assert result["gallery_cohort"]["faces"] == len(split["unknown"]["train"]) + len(split["strangers"]["calibration"])
    assert "official portraits of other characters" in (out / "card.md").read_text()
    assert {"1-shot", "3-shot", "5-shot"} <= set(result["fewshot"])
    assert (out / "roc.png").is_file()
    recognizer = load_recognizer(out)
    assert recognizer.card["threshold"] == result["threshold"] and recognizer.scorer.model_curve is not None
    cohort = recognizer.scorer.cohort  # centres of the unknown crosses the network trained on
    assert (out / "cohort.npy").is_file() and cohort.shape == (result["gallery_cohort"]["centres"], 256)
    np.testing.assert_allclose(np.linalg.norm(cohort, axis=1), 1.0, atol=1e-5)
    outputs = recognizer.run(np.zeros((2, 32, 32, 3), np.uint8))
    assert outputs.embeddings.shape == (2, 256)
    np.testing.assert_allclose(np.linalg.norm(outputs.embeddings, axis=1), 1.0, atol=1e-5)
    assert np.all((recognizer.scorer.best(outputs) >= 0) & (recognizer.scorer.best(outputs) < 1))

    head = tmp_path / "head"  # only the layers after the pooled features learn
    fit(shapes, head, arch="default", epochs=1, image_size=32, batch_size=32, cache_dir=None,
        split_file=out / "split.json", unknown=unknown, init=out, frozen_backbone=True, log=QUIET)
    before, after = (keras.models.load_model(d / "model.keras") for d in (out, head))
    for layer in ("stem", "s3b1_conv2"):
        np.testing.assert_array_equal(after.get_layer(layer).get_weights()[0], before.get_layer(layer).get_weights()[0])
    assert not np.array_equal(after.get_layer("embedding").get_weights()[0], before.get_layer("embedding").get_weights()[0])
    with pytest.raises(ValueError, match="needs --init"):
        fit(shapes, tmp_path / "nothing", frozen_backbone=True, log=QUIET)

    split["non_faces"].append(halves["test"][0])  # as if it had trained on a picture that judges it
    (out / "split.json").write_text(json.dumps(split))
    from animerec.errors import ModelError

    with pytest.raises(ModelError, match="trained on backgrounds of 1 illustrations that calibrate keeps for judging"):
        calibrate(out, shapes, unknown, fewshot, scenes, draws=5, cache_dir=None, log=QUIET)


def _tiny_scenes(root):
    """Six 96 x 80 'illustrations' with a marked box in each, as `scenes/` holds them."""
    root.mkdir()
    rows = ["file,x,y,w,h"]
    for i in range(6):
        Image.fromarray(np.full((80, 96, 3), 40 * i, np.uint8)).save(root / f"{i}.jpg")
        rows.append(f"{i}.jpg,10,10,20,20")
    (root / "boxes.csv").write_text("\n".join(rows) + "\n")
    return root


def test_calibration_splits_the_scenes_by_illustration(data, recognizer, detector, tmp_path):
    """Half the illustrations of `scenes/` calibrate the unknown rule, the other half judge it:
    every face the page's detector finds lands in exactly one half, with its whole picture."""
    from animerec.decode import decode_image
    from train.scenes import detected_faces, scene_halves

    names = ["101.jpg", "102.jpg", "103.jpg", "105.jpg", "133.jpg"]
    for name in names:
        (tmp_path / name).write_bytes((data / "scenes" / name).read_bytes())
    found = detected_faces(recognizer, scene_halves(tmp_path))
    assert (found["calibration_images"], found["test_images"]) == (2, 3)
    faces = sum(len(detector.detect(decode_image((tmp_path / n).read_bytes()))) for n in names)
    calibration, test = found["calibration"], found["test"]
    assert len(calibration.probabilities) + len(test.probabilities) == faces > 0
    assert test.embeddings.shape[1] == calibration.embeddings.shape[1] == recognizer.embedding_size


def test_calibration_skips_an_unreadable_illustration_with_a_warning(data, recognizer, detector, tmp_path, capsys):
    from animerec.decode import decode_image
    from train.scenes import detected_faces, scene_halves

    names = ["101.jpg", "133.jpg"]
    for name in names:
        (tmp_path / name).write_bytes((data / "scenes" / name).read_bytes())
    (tmp_path / "broken.jpg").write_bytes((data / "scenes" / "102.jpg").read_bytes()[:200])
    found = detected_faces(recognizer, scene_halves(tmp_path))
    assert found["calibration_images"] + found["test_images"] == 2
    faces = sum(len(detector.detect(decode_image((tmp_path / n).read_bytes()))) for n in names)
    assert len(found["calibration"].probabilities) + len(found["test"].probabilities) == faces > 0
    err = capsys.readouterr().err
    assert "warning: skipped" in err and "broken.jpg" in err


def test_calibration_stops_with_a_sentence_when_no_illustration_of_a_half_can_be_read(recognizer, tmp_path, capsys):
    from animerec.errors import ImageError
    from train.scenes import detected_faces, scene_halves

    for i in range(4):
        (tmp_path / f"{i}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ImageError, match="None of the 2 illustrations from .* could be read"):
        detected_faces(recognizer, scene_halves(tmp_path))
    assert capsys.readouterr().err.count("warning: skipped") == 2, "the first half's two are tried, then it stops"


def test_calibration_says_when_the_scenes_folder_has_too_few_illustrations(tmp_path):
    from train.scenes import scene_halves

    (tmp_path / "only.jpg").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="has 1 illustrations .* at least two"):
        scene_halves(tmp_path)


def test_the_margin_loss_lowers_the_true_class_and_leaves_a_uniform_target_alone():
    import keras

    from train.losses import margin_loss

    probabilities = np.array([[0.7, 0.2, 0.1]], np.float32)
    plain, margin = margin_loss(0.0, smoothing=0.0), margin_loss(0.2, smoothing=0.0)
    one_hot, uniform = np.array([[1.0, 0, 0]], np.float32), np.full((1, 3), 1 / 3, np.float32)
    assert float(keras.ops.convert_to_numpy(plain(one_hot, probabilities))[0]) == pytest.approx(-np.log(0.7), rel=1e-5)
    assert float(keras.ops.convert_to_numpy(margin(one_hot, probabilities))[0]) > -np.log(0.7) + 1
    assert float(keras.ops.convert_to_numpy(margin(uniform, probabilities))[0]) == pytest.approx(
        float(keras.ops.convert_to_numpy(plain(uniform, probabilities))[0]), rel=1e-5)


def test_fine_tuning_adds_new_characters_after_the_old_ones_and_keeps_their_test_faces(trained, shapes, tmp_path):
    from train.fit import fit

    init, _ = trained
    newcomers = write_shapes(tmp_path / "new", per_class=60, shapes=("ring", "bar"), seed=2)
    out = tmp_path / "grown"
    card = fit(newcomers, out, arch="seed", epochs=3, image_size=32, batch_size=32, cache_dir=None,
               init=init, init_data=shapes, log=QUIET)
    slugs = [d["slug"] for d in json.loads((out / "labels.json").read_text())]
    assert slugs == sorted(SHAPES) + ["bar", "ring"]
    assert card["training"]["characters_from"] == {str(init): sorted(SHAPES), str(newcomers): ["bar", "ring"]}
    old_split, new_split = (json.loads((d / "split.json").read_text()) for d in (init, out))
    assert set(old_split["test"]) <= set(new_split["test"]), "the old model's test faces stay out of training"

    import keras

    from train.architectures import make_model
    from train.finetune import copy_weights

    grown = make_model("seed", 32, 5)
    copy_weights(init, grown)  # the old characters' columns of the class layer start where they were
    old = keras.models.load_model(init / "model.keras").get_layer("logits").get_weights()
    new = grown.get_layer("logits").get_weights()
    np.testing.assert_array_equal(new[0][:, :3], old[0])
    np.testing.assert_array_equal(new[1][:3], old[1])


def test_the_contrastive_loss_is_small_when_identities_cluster_and_large_when_they_do_not():
    import keras

    from train.losses import contrastive_loss

    features = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], np.float32)
    loss = contrastive_loss(temperature=0.1)
    together = keras.ops.convert_to_numpy(loss(np.array([0, 0, 1, 1], np.float32), features))
    apart = keras.ops.convert_to_numpy(loss(np.array([0, 1, 0, 1], np.float32), features))
    assert together.shape == (4,) and np.all(together < 0.01) and np.all(apart > 5)
    alone = keras.ops.convert_to_numpy(loss(np.array([0, 1, 2, 3], np.float32), features))
    assert np.all(alone == 0), "a face with no other face of its identity in the batch adds nothing"


def test_a_model_directory_trained_again_does_not_inherit_the_last_runs_checkpoints(tmp_path):
    """The same arguments resume an interrupted run; other arguments, or a finished run (as when
    the default is fine-tuned from itself), start afresh instead of keeping the old best score."""
    from train.progress import RUN_FILE, claim_work_dir

    work, said = tmp_path / "training", []
    run = {"epochs": 16, "contrastive": 0.0}
    claim_work_dir(work, run, said.append)
    (work / "history.csv").write_text("epoch,val_macro_accuracy\n0,0.94\n")
    claim_work_dir(work, run, said.append)  # interrupted, then the same command again
    assert (work / "history.csv").is_file() and said == []
    (work / RUN_FILE).write_text(json.dumps({**run, "finished": True}))
    claim_work_dir(work, {"epochs": 24, "contrastive": 0.5}, said.append)
    assert not (work / "history.csv").exists() and "starting afresh" in said[0]
    assert json.loads((work / RUN_FILE).read_text()) == {"epochs": 24, "contrastive": 0.5}


def test_each_training_batch_adds_a_quarter_of_unknown_faces_with_a_uniform_target():
    from train.batches import TrainingBatches
    from train.defaults import NON_FACES_PER_BATCH, UNKNOWN_PER_BATCH, UNKNOWN_WEIGHT

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    labels = np.arange(40) % 4
    unknown = rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
    weights = np.linspace(0.5, 2.0, 40)
    batches = TrainingBatches(images, labels, 4, weights, 16, unknown, seed=0)
    assert len(batches) == 3  # 16 + 16 + 8 known faces
    x, y, w = batches[0]
    extra = round(UNKNOWN_PER_BATCH * 16)
    assert x.shape == (16 + extra, 16, 16, 3) and x.dtype == np.uint8
    assert y.shape == (16 + extra, 4) and np.allclose(y.sum(axis=1), 1)
    assert np.all(y[:16].max(axis=1) == 1), "known faces are one-hot"
    assert np.allclose(y[16:], 0.25) and np.allclose(w[16:], UNKNOWN_WEIGHT)
    np.testing.assert_array_equal(y[:16].argmax(axis=1), labels[batches.order[:16]])
    np.testing.assert_allclose(w[:16], weights[batches.order[:16]].astype(np.float32))

    x, (y, ids), (w, contrastive_w) = TrainingBatches(images, labels, 4, weights, 16, unknown, seed=0,
                                                      identities=True)[0]
    assert np.all(ids[16:] >= 4), "unknown faces are identities of their own, after the classes"
    assert np.all(ids[16::2] == ids[17::2]), "each unknown face comes twice, so it has a positive"
    np.testing.assert_array_equal(x[16::2], x[17::2])
    assert len(contrastive_w) == len(ids)

    non_faces = np.zeros((5, 16, 16, 3), np.uint8)  # told apart from the random unknown faces by being black
    x, (y, ids), (w, _) = TrainingBatches(images, labels, 4, weights, 16, unknown, seed=0, identities=True,
                                          non_faces=non_faces)[0]
    more = round(NON_FACES_PER_BATCH * 16)
    assert len(x) == len(y) == len(w) == len(ids) == 16 + extra + more
    assert not x[16 + extra:].any() and x[16:16 + extra].any(), "the unknown faces, then the pictures with no face"
    assert np.allclose(y[16:], 0.25) and np.allclose(w[16:], UNKNOWN_WEIGHT)
    assert np.all(ids[16 + extra:] >= 4 + len(unknown)), "identities apart from the unknown faces'"
    assert np.all(ids[16 + extra::2] == ids[17 + extra::2])


def test_strangers_are_identities_of_their_own_and_a_share_of_each_batch_is_redrawn():
    from train.batches import TrainingBatches
    from train.defaults import NON_FACES_PER_BATCH, STRANGERS_PER_BATCH, UNKNOWN_PER_BATCH

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    labels = np.arange(40) % 4
    unknown, non_faces = rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8), np.zeros((5, 16, 16, 3), np.uint8)
    strangers = np.full((7, 16, 16, 3), 255, np.uint8)  # told apart by being white
    x, (y, ids), (w, _) = TrainingBatches(images, labels, 4, np.ones(40), 16, unknown, seed=0, identities=True,
                                          non_faces=non_faces, strangers=strangers)[0]
    first = 16 + round(UNKNOWN_PER_BATCH * 16) + round(NON_FACES_PER_BATCH * 16)
    assert len(x) == len(ids) == first + round(STRANGERS_PER_BATCH * 16)
    assert np.all(x[first:] == 255) and np.allclose(y[first:], 0.25)
    assert np.all(ids[first:] >= 4 + len(unknown) + len(non_faces)), "after the classes, unknown faces and non-faces"
    assert np.all(ids[first::2] == ids[first + 1::2]), "each stranger comes twice, so it has a positive"

    plain = TrainingBatches(images, labels, 4, np.ones(40), 16, unknown, seed=0)[0][0]
    styled = TrainingBatches(images, labels, 4, np.ones(40), 16, unknown, seed=0, style_fraction=1.0)[0][0]
    assert plain.shape == styled.shape and not np.array_equal(plain, styled)


def test_evaluate_styles_judges_the_faces_redrawn_in_each_style(trained, shapes):
    from train.evaluate import evaluate_folder
    from train.styles import STYLE_SHIFTS

    out, _ = trained
    result = evaluate_folder(shapes, out, part="test", styles=True)
    assert set(result["styles"]) == set(STYLE_SHIFTS) | {"mean_accuracy"}
    for name in STYLE_SHIFTS:
        assert 0.0 <= result["styles"][name]["macro_accuracy"] <= 1.0
    assert result["styles"]["mean_accuracy"] == pytest.approx(
        np.mean([result["styles"][n]["accuracy"] for n in STYLE_SHIFTS]), abs=1e-4)


def test_evaluate_and_fit_say_in_one_line_when_the_data_folder_is_missing(trained, tmp_path, capsys):
    from train.cli import main

    out, _ = trained
    for command in (["evaluate", "--model", str(out)], ["fit", "--out", str(tmp_path / "out"), "--cache", str(tmp_path)]):
        assert main([*command, "--data", str(tmp_path / "nowhere")]) == 1
        err = capsys.readouterr().err.strip()
        assert err == f"error: {tmp_path / 'nowhere'} is not a folder: give the folder of crops, one sub-folder per character."


def test_fit_says_in_one_line_when_the_scenes_for_non_faces_are_missing(shapes, tmp_path, capsys):
    from train.cli import main

    assert main(["fit", "--data", str(shapes), "--out", str(tmp_path / "out"), "--image-size", "32",
                 "--cache", str(tmp_path / "cache"), "--non-faces", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "has 0 illustrations" in err and "\n" not in err


def test_a_share_of_known_faces_is_shrunk_to_a_size_in_the_range_and_back():
    from train.batches import TrainingBatches
    from train.dataset import degrade

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(64) % 4
    none = TrainingBatches(images, labels, 4, np.ones(64), 64, images[:0], seed=0, degrade_fraction=0.0)
    np.testing.assert_array_equal(none[0][0], images[none.order])
    every = TrainingBatches(images, labels, 4, np.ones(64), 64, images[:0], seed=0, degrade_fraction=1.0,
                            degrade_sizes=(8, 16))
    x = every[0][0]
    originals = images[every.order]
    assert not any(np.array_equal(a, b) for a, b in zip(x, originals)), "every face blurred"
    # Each is exactly some size's round trip, and only sizes in the range occur.
    sizes = [next(s for s in range(4, 33) if np.array_equal(degrade(o[None], s)[0], b)) for o, b in zip(originals, x)]
    assert min(sizes) >= 8 and max(sizes) <= 16 and len(set(sizes)) > 3


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
