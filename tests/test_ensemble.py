"""`train ensemble`: two networks trained on the same split combined into one model directory
whose cosines are their weighted mean and whose embedding joins theirs, loaded as any other, and
the runs it refuses in one line."""

import json
import shutil

import numpy as np
import pytest

from conftest import QUIET

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def members(shapes, tmp_path_factory):
    """Two tiny cosine-head networks on the synthetic shapes, the second on the first's split."""
    from train.fit import fit

    root = tmp_path_factory.mktemp("members")
    first, second = root / "first", root / "second"
    fit(shapes, first, arch="default", epochs=2, image_size=32, batch_size=32, cache_dir=None, seed=0, log=QUIET)
    fit(shapes, second, arch="default", epochs=2, image_size=32, batch_size=32, cache_dir=None, seed=1,
        split_file=first / "split.json", log=QUIET)
    return first, second


def test_the_ensemble_averages_its_members_cosines_and_joins_their_embeddings(members, shapes, tmp_path):
    from PIL import Image

    from animerec.model import load_recognizer
    from train.ensemble import ensemble

    out = tmp_path / "both"
    card = ensemble(members, out, shapes, weights=[1.0, 3.0], cache_dir=None, log=QUIET)
    assert card["architecture"] == "ensemble of default and default" and card["embedding_layer"] == "pooled"
    assert [m["weight"] for m in card["members"]] == [1.0, 3.0]
    assert json.loads((out / "split.json").read_text()) == json.loads((members[0] / "split.json").read_text())
    assert "An ensemble of 2 networks" in (out / "card.md").read_text()

    test_files = json.loads((out / "split.json").read_text())["test"]
    crops = np.stack([np.asarray(Image.open(shapes / f).convert("RGB")) for f in test_files[:12]])
    # The graph's sums, on each crop alone (mirror averaging renormalises the joined embedding).
    both = _pooled_run(out, crops)
    alone = [_pooled_run(m, crops) for m in members]
    # Within what rounding the kernels to float16 moves a cosine.
    np.testing.assert_allclose(both.cosines, (alone[0].cosines + 3 * alone[1].cosines) / 4, atol=3e-3)
    # The cosine between two faces' joined embeddings is the weighted mean of the members'.
    np.testing.assert_allclose(both.embeddings @ both.embeddings.T,
                               (alone[0].embeddings @ alone[0].embeddings.T
                                + 3 * alone[1].embeddings @ alone[1].embeddings.T) / 4, atol=3e-3)
    assert both.probabilities.shape == (12, 3)
    by_numpy = load_recognizer(out, engine="numpy")
    assert by_numpy.engine == "numpy"
    np.testing.assert_allclose(by_numpy.run(crops).cosines, load_recognizer(out).run(crops).cosines, atol=1e-5)


def test_the_ensemble_stores_its_kernels_as_float16_and_its_figures_are_of_the_stored_weights(members, shapes,
                                                                                               tmp_path):
    import io
    import zipfile

    import h5py

    from train.dataset import load_faces, read_split
    from train.evaluate import classification_metrics, naming_scores_of
    from train.ensemble import ensemble
    from animerec.model import load_recognizer

    out = tmp_path / "both"
    card = ensemble(members, out, shapes, cache_dir=None, log=QUIET)
    with zipfile.ZipFile(out / "model.keras") as archive, \
            h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
        stored = []
        weights.visititems(lambda name, item: stored.append((item.ndim, item.dtype))
                           if isinstance(item, h5py.Dataset) else None)
    assert {dtype for ndim, dtype in stored if ndim >= 2} == {np.dtype(np.float16)}
    assert {dtype for ndim, dtype in stored if ndim == 1} == {np.dtype(np.float32)}  # batch norm, biases
    assert (out / "model.keras").stat().st_size < 0.6 * sum((m / "model.keras").stat().st_size for m in members)

    loaded = load_recognizer(out)
    slugs = [c.slug for c in loaded.characters]
    faces = load_faces(shapes, loaded.input_size, cache_dir=None, classes=slugs)
    test = read_split(out / "split.json", faces.files)["test"]
    scores = naming_scores_of(loaded.model, faces.images[test], loaded.flip_average, "pooled")
    assert classification_metrics(scores, faces.labels[test], slugs)["accuracy"] == card["metrics"]["test"]["accuracy"]


def test_members_of_different_mirror_choices_combine_and_validation_chooses_the_ensembles(members, shapes,
                                                                                          tmp_path):
    from animerec.model import load_recognizer
    from train.dataset import load_faces, read_split
    from train.ensemble import ensemble
    from train.evaluate import classification_metrics, naming_scores_of

    mirrored = shutil.copytree(members[1], tmp_path / "mirrored")
    card = json.loads((mirrored / "card.json").read_text())
    card["flip_average"] = not load_recognizer(members[0]).flip_average
    (mirrored / "card.json").write_text(json.dumps(card))
    out = tmp_path / "mixed"
    card = ensemble([members[0], mirrored], out, shapes, cache_dir=None, log=QUIET)

    loaded = load_recognizer(out)
    slugs = [c.slug for c in loaded.characters]
    faces = load_faces(shapes, loaded.input_size, cache_dir=None, classes=slugs)
    val = read_split(out / "split.json", faces.files)["val"]
    macro = {flip: classification_metrics(naming_scores_of(loaded.model, faces.images[val], flip, "pooled"),
                                          faces.labels[val], slugs)["macro_accuracy"] for flip in (False, True)}
    assert loaded.flip_average == card["flip_average"]
    assert macro[card["flip_average"]] == max(macro.values())
    assert not card["flip_average"] or macro[True] > macro[False]  # a tie goes to no mirror, the cheaper


def _pooled_run(model_dir, crops):
    """The model's outputs with its pooled features as the embedding, as the ensemble reads a
    member's, and without mirror averaging."""
    from animerec.model import Recognizer, load_recognizer

    loaded = load_recognizer(model_dir)
    return Recognizer(loaded.model, loaded.characters, {**loaded.card, "embedding_layer": "pooled", "flip_average": False}, model_dir).run(crops)


def test_members_of_different_splits_or_an_ensemble_to_train_are_refused_in_one_line(members, shapes, tmp_path,
                                                                                      capsys):
    from train.cli import main

    odd = shutil.copytree(members[1], tmp_path / "odd")
    split = json.loads((odd / "split.json").read_text())
    split["train"], split["test"] = split["test"], split["train"]
    (odd / "split.json").write_text(json.dumps(split))
    assert main(["ensemble", str(members[0]), str(odd), "--out", str(tmp_path / "no"), "--data", str(shapes)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "different splits" in err and "\n" not in err

    hand_made = shutil.copytree(members[1], tmp_path / "hand_made")
    card = json.loads((hand_made / "card.json").read_text())
    del card["metrics"]
    (hand_made / "card.json").write_text(json.dumps(card))
    assert main(["ensemble", str(members[0]), str(hand_made), "--out", str(tmp_path / "no"), "--data", str(shapes)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {hand_made}/card.json lacks the training and test figures") and "\n" not in err

    (tmp_path / "empty").mkdir()
    assert main(["ensemble", str(members[0]), str(tmp_path / "empty"), "--out", str(tmp_path / "no"),
                 "--data", str(shapes)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: The model directory {tmp_path / 'empty'} has no model.keras: copy or retrain the whole directory."
    assert main(["ensemble", *map(str, members), "--weights", "1", "--out", str(tmp_path / "no"), "--data",
                 str(shapes)]) == 1
    assert "one positive weight per member" in capsys.readouterr().err

    both = tmp_path / "both"
    assert main(["ensemble", *map(str, members), "--out", str(both), "--data", str(shapes), "--cache",
                 str(tmp_path / "cache")]) == 0
    with pytest.raises(SystemExit) as stopped:
        main(["fit", "--data", str(shapes), "--out", str(tmp_path / "more"), "--init", str(both)])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "is an ensemble, which cannot be trained further" in err


def test_bench_gives_an_ensemble_its_members_training_figures(members, shapes, tmp_path):
    from train.bench import bench
    from train.ensemble import ensemble

    out = tmp_path / "both"
    ensemble(members, out, shapes, cache_dir=None, log=QUIET)
    rows = bench([members[0], out], runs=1, log=QUIET)
    trained = [json.loads((m / "card.json").read_text())["training"] for m in members]
    assert rows[0]["best_epoch"] == str(trained[0]["best_epoch"])
    assert rows[1]["best_epoch"] == f"{trained[0]['best_epoch']} + {trained[1]['best_epoch']}"
    assert rows[1]["network"] == "ensemble of default and default" and rows[1]["ms_batch_8"] > 0


def test_a_model_written_over_one_of_the_same_day_gets_a_version_of_its_own(tmp_path):
    import datetime

    from train.export import new_version

    out, today = tmp_path / "default", datetime.date.today().isoformat()
    assert new_version(out) == f"default-{today}"
    out.mkdir()
    for previous, expected in [("default-2020-01-01", f"default-{today}"), (f"default-{today}", f"default-{today}-2"),
                               (f"default-{today}-2", f"default-{today}-3"), (f"default-{today}-x", f"default-{today}")]:
        (out / "card.json").write_text(json.dumps({"version": previous}))
        assert new_version(out) == expected
    (out / "card.json").write_text("{not json")
    assert new_version(out) == f"default-{today}"
