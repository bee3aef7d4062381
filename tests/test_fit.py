"""`train fit`: a real (tiny) training run, the model directory it writes, reloading it through
the page's loader, fine-tuning, resuming, and the messages of a run that cannot start."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import QUIET, run_python
from synthetic import SHAPES, write_shapes

pytestmark = pytest.mark.slow


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
    # Options left at their default that came after a run was recorded are not in its record,
    # so a run interrupted before they existed still resumes.
    assert "grey_fraction" not in json.loads((out / "training" / "run.json").read_text())


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
    with pytest.raises(FileNotFoundError, match="no finished run with these arguments"):
        claim_work_dir(work, {"epochs": 24, "contrastive": 0.5}, said.append, finished_only=True)


def test_a_finished_run_exports_its_last_epoch_without_training_again(shapes, tmp_path):
    from train.fit import fit

    out = tmp_path / "model"
    options = dict(arch="seed", epochs=3, image_size=32, batch_size=32, patience=3, cache_dir=None, log=QUIET)
    first = fit(shapes, out, **options)
    assert first["training"]["exported_epoch"] == first["training"]["best_epoch"]
    trained_for = first["training"]["wall_seconds"]
    checkpoints = {f.name: f.stat().st_mtime_ns for f in (out / "training").glob("*.weights.h5")}
    assert set(checkpoints) == {"best.weights.h5", "last.weights.h5"}
    again = fit(shapes, out, export="last", export_only=True, **options)
    assert again["training"]["exported_epoch"] == 3 and again["training"]["epochs_run"] == 3
    assert again["training"]["wall_seconds"] == trained_for, "the training's own time, not the export's"
    assert {f.name: f.stat().st_mtime_ns for f in (out / "training").glob("*.weights.h5")} == checkpoints, \
        "no epoch was trained"
    assert (out / "model.keras").is_file()


def test_fit_says_in_one_line_when_the_scenes_for_non_faces_are_missing(shapes, tmp_path, capsys):
    from train.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["fit", "--data", str(shapes), "--out", str(tmp_path / "out"), "--image-size", "32",
                 "--cache", str(tmp_path / "cache"), "--non-faces", str(empty)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "has 0 illustrations" in err and "\n" not in err


def test_a_mistyped_folder_is_one_line_and_leaves_an_interrupted_run_to_resume(shapes, tmp_path, capsys):
    from train.cli import main

    work = tmp_path / "out" / "training"
    work.mkdir(parents=True)
    (work / "run.json").write_text('{"another": "run"}')
    for option in ("--data", "--unknown", "--strangers", "--non-faces", "--init"):
        folders = {"--data": str(shapes), option: str(tmp_path / "nowhere")}
        assert main(["fit", "--out", str(tmp_path / "out"), *[x for pair in folders.items() for x in pair]]) == 1
        err = capsys.readouterr().err.strip()
        assert err == (f"error: {tmp_path / 'nowhere'} is not a folder: give the folder of crops, one sub-folder per "
                       "character." if option == "--data" else f"error: {option} {tmp_path / 'nowhere'}: no such folder.")
    assert (work / "run.json").read_text() == '{"another": "run"}', "the interrupted run is still there"


def test_the_mobilenet_network_starts_from_the_shared_pretrained_weights():
    from train.architectures import MOBILENET_WEIGHTS, make_model

    if not MOBILENET_WEIGHTS.is_file():
        pytest.skip(f"{MOBILENET_WEIGHTS} is not there (../shared/backbones)")
    model = make_model("mobilenet", 48, 3, seed=0)
    stored = np.load(MOBILENET_WEIGHTS)
    expected = stored["block_3_expand/kernel:q"] * stored["block_3_expand/kernel:scale"] + stored["block_3_expand/kernel:min"]
    np.testing.assert_allclose(model.get_layer("block_3_expand").get_weights()[0], expected, rtol=1e-6)
    assert model.get_layer("pooled").output.shape == (None, 1280)
    probabilities = model.predict(np.zeros((2, 48, 48, 3), np.uint8), verbose=0)
    assert probabilities.shape == (2, 3) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_a_run_with_the_pages_framing_cuts_its_faces_so_and_says_so_on_its_card(shapes, tmp_path):
    from train.fit import fit

    said = []
    card = fit(shapes, tmp_path / "model", arch="seed", epochs=1, image_size=32, batch_size=32, patience=1,
               cache_dir=tmp_path / "cache", log=said.append, framing_fraction=0.5)
    faces = card["training"]["images"]["train"]
    assert any(line.startswith(f"known faces: {faces} of {faces} training faces also cut the page's way")
               for line in said), said
    assert "50% of faces cut the page's way" in card["training"]["augmentation"]
    assert list((tmp_path / "cache").glob("page-framed-32-*.npz")), "the framed copies are kept for the next run"
