"""`train calibrate`: the unknown rule and the gallery's score written into the card, the scenes
split by illustration, and what it says about unreadable or too few illustrations."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import QUIET
from synthetic import write_shapes

pytestmark = pytest.mark.slow


def _tiny_scenes(root):
    """Six 96 x 80 'illustrations' with a marked box in each, as `scenes/` holds them."""
    root.mkdir()
    rows = ["file,x,y,w,h"]
    for i in range(6):
        Image.fromarray(np.full((80, 96, 3), 40 * i, np.uint8)).save(root / f"{i}.jpg")
        rows.append(f"{i}.jpg,10,10,20,20")
    (root / "boxes.csv").write_text("\n".join(rows) + "\n")
    return root


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
    by_kind = result["threshold_by_kind"]
    assert set(by_kind) == {"unknown", "fewshot_before_enrolment", "strangers"}
    assert result["threshold"] - 0.01 < max(by_kind.values()) <= result["threshold"], "the strictest kind sets it"
    from train.export import STRANGER_KINDS

    assert f"; {STRANGER_KINDS[max(by_kind, key=by_kind.get)]} set it (each kind's own: " in (out / "card.md").read_text()
    assert result["test"]["strangers"] == len(split["strangers"]["test"])
    assert 0 <= result["test"]["strangers_labelled_unknown"] <= 1
    assert result["gallery_cohort"]["faces"] == len(split["unknown"]["train"]) + len(split["strangers"]["calibration"])
    assert "official portraits of other characters" in (out / "card.md").read_text()
    assert {"1-shot", "3-shot", "5-shot"} <= set(result["fewshot"])
    assert result["fewshot"]["near_duplicates_dropped"] == 0
    assert result["target_by_kind"] == {"unknown": 0.92, "fewshot_before_enrolment": 0.92, "strangers": 0.97}
    assert "and 97% of a fifth of `strangers/` (official portraits)" in (out / "card.md").read_text()
    assert (out / "roc.png").is_file()
    recognizer = load_recognizer(out)
    assert recognizer.card["threshold"] == result["threshold"] and recognizer.scorer.model_curve is not None
    by_size = result["gallery_threshold_normalised_cosine_by_characters"]
    assert list(by_size) == ["1", "2", "4", "8", "16", "32"] and list(by_size.values()) == sorted(by_size.values())
    assert recognizer.scorer.gallery_curve.raw_at(result["threshold"], 8) == pytest.approx(by_size["8"], abs=1e-3)
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


def test_the_gallery_threshold_keeps_its_share_of_strangers_out_of_galleries_of_every_size():
    """Strangers' cosines to enrolled characters, drawn at random: at each size's threshold, a
    gallery of that many characters drawn from the same kind rejects `target` of them."""
    from train.calibrate import gallery_thresholds

    rng = np.random.default_rng(0)
    looks = rng.normal(0, 0.1, (400, 1))  # some strangers look like anyone
    pairs = looks + rng.normal(0, 0.1, (400, 300))
    thresholds = gallery_thresholds([pairs, pairs - 0.05], 0.9, sizes=(1, 4, 8))
    assert thresholds[1] < thresholds[4] < thresholds[8], "more characters, more chances to come close"
    for size, raw in thresholds.items():
        galleries = [pairs[:, rng.choice(300, size, replace=False)].max(axis=1) for _ in range(200)]
        assert np.mean([(best < raw).mean() for best in galleries]) == pytest.approx(0.9, abs=0.02)
    assert thresholds == gallery_thresholds([pairs], 0.9, sizes=(1, 4, 8)), "the kind nearest the characters sets it"


def test_the_model_cohort_weight_is_the_one_that_keeps_most_known_faces_without_letting_strangers_in():
    """Known faces that sit among strangers in the embedding score low on the plain cosine;
    subtracting their closeness to the cohort lifts the ones that do not. The weight chosen is
    the best for the known faces among those that cost no kind of stranger more than its
    allowance; with no allowance a weight that lets strangers in is refused."""
    from animerec.model import Outputs
    from animerec.scoring import Scorer
    from train.calibrate import model_cohort_weights

    rng = np.random.default_rng(0)
    cohort = np.eye(4, dtype=np.float32)[:2]  # strangers live along the first two axes

    def faces(n, near_strangers, cosine):  # embeddings on a mix of a stranger axis and axis 3
        e = np.zeros((n, 4), np.float32)
        e[:, 0], e[:, 3] = near_strangers, np.sqrt(1 - near_strangers ** 2)
        c = np.stack([cosine, cosine - 0.3], axis=1).astype(np.float32)
        return Outputs(c, e, c)

    closeness = rng.uniform(0.0, 0.9, 400)
    known = faces(400, closeness, 0.4 + 0.3 * (1 - closeness) - 0.1 + rng.normal(0, 0.02, 400))
    labels = np.zeros(400, int)
    strangers = {"look_alikes": faces(200, rng.uniform(0.6, 0.9, 200), rng.uniform(0.1, 0.45, 200))}
    scorer = Scorer(cohort=cohort, top=1)
    chosen = model_cohort_weights(scorer, known, labels, strangers, 0.92, weights=(0.0, 0.5, 1.0), most_lost=0.01)
    tried = {t["weight"]: t for t in chosen["tried"]}
    assert tried[0.0]["validation_kept"] < tried[chosen["chosen"]]["validation_kept"]
    assert chosen["chosen"] > 0
    for t in chosen["tried"]:
        assert t["rejected"]["look_alikes"] >= 0.92 - 0.01, "the threshold rejects the target of each kind"
    # Portraits far from the cohort, a few of them close to a character: a small weight lowers
    # the threshold past those few while it still lifts known faces.
    portraits = faces(200, np.zeros(200), np.r_[rng.uniform(0.0, 0.3, 194), rng.uniform(0.35, 0.4, 6)])
    both = {**strangers, "portraits": portraits}
    loose = model_cohort_weights(scorer, known, labels, both, 0.92, weights=(0.0, 0.1), most_lost=0.05)
    strict = model_cohort_weights(scorer, known, labels, both, 0.92, weights=(0.0, 0.1), most_lost=0.01)
    assert loose["tried"][1]["rejected"]["portraits"] == pytest.approx(0.97)
    assert (loose["chosen"], strict["chosen"]) == (0.1, 0.0), "3 points of portraits lost: refused at 1, allowed at 5"
    # Weights within the tie of the most known faces kept count as tied, and the smallest wins.
    kept = {t["weight"]: t["validation_kept"] for t in chosen["tried"]}
    best = max(kept, key=kept.get)
    assert best == 0.5 and chosen["chosen"] == 0.5, kept
    for tie, expected in ((0.0, 0.5), (kept[0.5] - kept[1.0], 0.5), (kept[0.5] - kept[0.0], 0.0)):
        assert model_cohort_weights(scorer, known, labels, strangers, 0.92, weights=(0.0, 0.5, 1.0),
                                    most_lost=0.01, tie=tie)["chosen"] == expected, tie
    # Pictures with no face, unlike every stranger (a negative closeness) and under the plain
    # threshold: the cohort term lifts them over it, so guarding them keeps the plain cosine.
    e = np.tile(np.float32([-0.5, -0.5, 0.0, np.sqrt(0.5)]), (100, 1))
    c = np.stack([rng.uniform(0.2, 0.35, 100), np.zeros(100)], axis=1).astype(np.float32)
    guarded = model_cohort_weights(scorer, known, labels, strangers, 0.92, guards={"non_faces": Outputs(c, e, c)},
                                   weights=(0.0, 0.5, 1.0), most_lost=0.01)
    assert [t["rejected"]["non_faces"] for t in guarded["tried"]] == [1.0, 0.0, 0.0]
    assert guarded["chosen"] == 0.0
    assert [t["validation_kept"] for t in guarded["tried"]] == [t["validation_kept"] for t in chosen["tried"]]


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


def _calibrate_command(tmp_path, *more):
    """`train calibrate` on empty folders, with `more` arguments; its exit status."""
    from train.cli import main

    for folder in ("model", "data", "unknown", "fewshot"):
        (tmp_path / folder).mkdir()
    given = ["calibrate", "--model", tmp_path / "model", "--data", tmp_path / "data", "--unknown",
             tmp_path / "unknown", "--fewshot", tmp_path / "fewshot", *more]
    return main([str(a) for a in given])


def test_calibrate_names_the_option_whose_folder_is_missing(tmp_path, capsys):
    assert _calibrate_command(tmp_path, "--strangers", tmp_path / "nowhere") == 1
    assert capsys.readouterr().err == f"error: --strangers {tmp_path / 'nowhere'}: no such folder.\n"


@pytest.mark.parametrize("option, value", [("--target", "1.5"), ("--portrait-target", "nan"), ("--target", "0")])
def test_calibrate_refuses_a_target_that_is_no_share_in_one_line(tmp_path, capsys, option, value):
    assert _calibrate_command(tmp_path, option, value) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {option} ") and "between 0 and 1" in err and err.count("\n") == 1
