"""The gallery: enrolling, matching, saving and merging, refusing what it must; and, on real
images, enrolling a character from a few pictures and finding it in others."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from animerec.calibration import Logistic
from animerec.detect import Box
from animerec.errors import GalleryError
from animerec.gallery import Gallery, slugify
from animerec.model import Character, Outputs
from animerec.recognize import Analysis, UNKNOWN, name_faces
from animerec.scoring import MAX_SCORE, Scorer
from measure.curves import auroc, fit_logistic

ROOT = Path(__file__).resolve().parent.parent


def unit(*rows):
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def small_gallery():
    gallery = Gallery("abc123", 3)
    gallery.add("Suzukaze Aoba", unit([1, 0, 0], [0.9, 0.1, 0]))
    gallery.add("Takimoto Hifumi", unit([0, 1, 0]))
    return gallery


def test_slugs_are_lower_case_words_joined_by_underscores():
    assert slugify("Suzukaze Aoba") == "suzukaze_aoba"
    assert slugify("  Hifumi-chan!! ") == "hifumi_chan"
    assert slugify("星街すいせい") == "星街すいせい"
    assert slugify("!!!") == ""


def test_nearest_prototype_wins_and_names_are_kept():
    gallery = small_gallery()
    assert gallery.slugs == ["suzukaze_aoba", "takimoto_hifumi"]
    assert gallery.names == ["Suzukaze Aoba", "Takimoto Hifumi"]
    assert gallery.counts() == {"suzukaze_aoba": 2, "takimoto_hifumi": 1}
    cosines = gallery.cosines(unit([0.2, 1, 0], [1, 0.05, 0]))
    assert cosines.shape == (2, 2) and cosines.argmax(axis=1).tolist() == [1, 0]
    assert np.all(cosines.max(axis=1) > 0.95) and np.all(cosines <= 1.0 + 1e-6)


def test_reserved_empty_and_wrong_sized_enrolments_are_refused_with_a_sentence():
    gallery = small_gallery()
    for name, reserved in (("Unknown", ()), ("Gawr Gura", ("gawr_gura",)), ("???", ())):
        with pytest.raises(GalleryError, match=r"name"):
            gallery.add(name, unit([1, 0, 0]), reserved=reserved)
    with pytest.raises(GalleryError, match="size 3"):
        gallery.add("Nene", np.ones((1, 4), np.float32))
    with pytest.raises(GalleryError, match="empty"):
        Gallery("abc123", 3).cosines(unit([1, 0, 0]))


def test_save_load_round_trip_merge_and_remove(tmp_path):
    gallery = small_gallery()
    path = tmp_path / "g.npz"
    gallery.save(path)
    loaded = Gallery.load(path)
    assert (loaded.slugs, loaded.names, loaded.fingerprint, loaded.dimension) == (
        gallery.slugs, gallery.names, "abc123", 3)
    np.testing.assert_allclose(loaded.embeddings, gallery.embeddings)

    other = Gallery("abc123", 3)
    other.add("Takimoto Hifumi", unit([0, 0.9, 0.1]))
    other.add("Sakura Nene", unit([0, 0, 1]))
    merged = loaded.merge(other)
    assert merged.counts() == {"suzukaze_aoba": 2, "takimoto_hifumi": 2, "sakura_nene": 1}
    assert loaded.counts() == {"suzukaze_aoba": 2, "takimoto_hifumi": 1}  # merging makes a new gallery
    merged.remove("takimoto_hifumi")
    assert merged.slugs == ["suzukaze_aoba", "sakura_nene"]
    assert merged.cosines(unit([0, 0, 1])).argmax(axis=1).tolist() == [1]
    with pytest.raises(GalleryError, match="different models"):
        merged.merge(Gallery("other", 3))


@pytest.mark.parametrize("content", [b"", b"not a zip file", b"PK\x03\x04broken zip"])
def test_a_corrupt_gallery_file_is_a_sentence_not_a_traceback(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(GalleryError, match="not a gallery file"):
        Gallery.load(path)
    with pytest.raises(GalleryError, match="Cannot read the gallery"):
        Gallery.load(tmp_path / "missing.npz")


def test_a_gallery_that_would_unpack_to_gigabytes_is_refused_before_unpacking():
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("embeddings.npy", bytes(200 * 2**20))  # 200 MB of zeros, about 200 KB packed
    assert len(buffer.getvalue()) < 2**20
    with pytest.raises(GalleryError, match="would unpack to 200 MB"):
        Gallery.from_bytes(buffer.getvalue())


def test_a_pickled_array_is_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, fingerprint=np.array([object()], dtype=object))
    with pytest.raises(GalleryError, match="not a gallery file"):
        Gallery.load(path)


def test_the_better_of_model_and_gallery_wins_on_one_scale():
    characters = [Character("a", "A", ""), Character("b", "B", "")]
    analysis = Analysis(
        [Box(0, 0, 10, 10)] * 3, np.zeros((3, 8, 8, 3), np.uint8),
        np.array([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5]], np.float32),
        embeddings=unit([1, 0, 0], [0, 1, 0], [0, 0, 1]),
        scores=np.array([[0.9, 0.05], [0.3, 0.1], [0.2, 0.2]], np.float32),
    )
    gallery = Gallery("f", 3)
    gallery.add("New One", unit([0.6, 0.8, 0]))
    curve = Logistic(10.0, -7.0)  # cosine 0.8 -> 0.73, 0.6 -> 0.27, 0 -> 0.001
    faces = name_faces(analysis, characters, threshold=0.5, top_k=2, gallery=gallery,
                       scorer=Scorer(gallery_curve=curve))
    assert [(f.label, f.source) for f in faces] == [("a", "model"), ("new_one", "gallery"), (UNKNOWN, "model")]
    assert faces[1].name == "New One" and faces[1].score == pytest.approx(curve(0.8))
    # One ranking on one scale: the enrolled character, then the model's closest at its own score.
    assert faces[1].top_k == [("new_one", "New One", pytest.approx(curve(0.8))), ("a", "A", pytest.approx(0.3))]
    assert faces[0].top_k == [("a", "A", pytest.approx(0.9)), ("new_one", "New One", pytest.approx(curve(0.6)))]
    assert all(0 <= f.score <= 1 for f in faces)


def test_the_gallery_cosine_is_lowered_by_how_close_a_face_is_to_the_strangers():
    """Two faces at the same cosine to an enrolled character: the one among the cohort's
    strangers scores lower by its mean cosine to its nearest `top` of them."""
    faces = unit([0.6, 0.8, 0], [0.6, 0, 0.8])
    cohort = unit([0, 0, 1], [0, 0.6, 0.8], [0, -1, 0])
    cosines = np.array([0.6, 0.6])
    rule = Scorer(gallery_curve=Logistic(10.0, -2.0), cohort=cohort, top=2)
    np.testing.assert_allclose(rule.gallery_raw(cosines, faces), [0.6 - (0.48 + 0.0) / 2, 0.6 - (0.8 + 0.64) / 2], atol=1e-6)
    # One column per enrolled character: each face's own cohort mean comes off every column.
    np.testing.assert_allclose(rule.gallery_raw(np.stack([cosines, cosines - 0.5], axis=1), faces),
                               np.stack([rule.gallery_raw(cosines, faces), rule.gallery_raw(cosines, faces) - 0.5], axis=1),
                               atol=1e-6)
    assert rule.gallery(cosines, faces)[0] > rule.gallery(cosines, faces)[1]
    np.testing.assert_allclose(rule._replace(cohort=None).gallery_raw(cosines, faces), cosines)
    assert rule._replace(top=10).gallery_raw(cosines, faces)[1] == pytest.approx(0.6 - (0.8 + 0.64 + 0.0) / 3)


def test_the_model_cosine_loses_its_share_of_the_closeness_to_strangers_without_changing_the_name():
    """With a cohort weight, each face's cosines to the model's characters lose that share of its
    mean cosine to its nearest strangers: the face among strangers falls, which character is
    closest stays; the card's weight is read, and a card without one keeps the plain cosine."""
    faces = unit([0.6, 0.8, 0], [0.6, 0, 0.8])
    cohort = unit([0, 0, 1], [0, 0.6, 0.8], [0, -1, 0])
    cosines = np.array([[0.5, 0.2], [0.5, 0.2]], np.float32)
    outputs = Outputs(np.full((2, 2), 0.5, np.float32), faces, cosines)
    rule = Scorer(cohort=cohort, top=2, model_cohort_weight=0.5)
    closeness = np.array([(0.48 + 0.0) / 2, (0.8 + 0.64) / 2])
    np.testing.assert_allclose(rule.model_raw(outputs), cosines - 0.5 * closeness[:, None], atol=1e-6)
    assert (rule.model_raw(outputs).argmax(axis=1) == cosines.argmax(axis=1)).all()
    assert rule.model(outputs)[0, 0] > rule.model(outputs)[1, 0]
    np.testing.assert_allclose(rule._replace(model_cohort_weight=0.0).model_raw(outputs), cosines)
    np.testing.assert_allclose(rule._replace(cohort=None).model_raw(outputs), cosines)
    card = {"calibration": {"model_cohort_weight": 0.5, "gallery_cohort": {"top": 2}}}
    assert Scorer.from_card(card, cohort).model_cohort_weight == 0.5
    assert Scorer.from_card({"calibration": {}}, cohort).model_cohort_weight == 0.0


def test_a_larger_gallery_needs_a_closer_face_for_the_same_score():
    """The card's gallery curve is placed for each number of enrolled characters: the same
    cosine scores lower in a gallery of three than in a gallery of one (sizes between the
    fitted ones interpolated, beyond them held); older cards' single curve serves every size."""
    from animerec.calibration import BySize, gallery_curve_from_dict

    curve = BySize(10.0, (1, 2, 4), (-5.0, -6.0, -7.0))  # cosine 0.6: 0.73 alone, 0.36 among three
    assert gallery_curve_from_dict(json.loads(json.dumps(curve.to_dict()))) == curve
    assert gallery_curve_from_dict(Logistic(10.0, -2.0).to_dict()) == Logistic(10.0, -2.0)
    assert [curve.intercept(n) for n in (1, 3, 4, 9)] == pytest.approx([-5.0, -6.0 - np.log(1.5) / np.log(2), -7.0, -7.0])
    assert curve.raw_at(0.5, 4) == pytest.approx(0.7)

    face = unit([0.6, 0.8, 0, 0])
    one, three = Gallery("f", 4), Gallery("f", 4)
    one.add("Aoba", unit([1, 0, 0, 0]))
    for name, row in (("Aoba", [1, 0, 0, 0]), ("Hifumi", [0, 0, 1, 0]), ("Kou", [0, 0, 0, 1])):
        three.add(name, unit(row))
    analysis = Analysis([Box(0, 0, 10, 10)], np.zeros((1, 8, 8, 3), np.uint8), np.array([[0.1]], np.float32),
                        face, np.array([[0.05]], np.float32))
    scorer = Scorer(gallery_curve=curve)
    alone, among = (name_faces(analysis, [Character("a", "A", "")], threshold=0.5, top_k=1, gallery=g,
                               scorer=scorer)[0] for g in (one, three))
    assert alone.score == pytest.approx(curve(0.6, 1)) and among.score == pytest.approx(curve(0.6, 3))
    assert (alone.label, among.label) == ("aoba", UNKNOWN)


def test_the_monotone_fit_follows_how_often_names_were_right_and_inverts():
    from animerec.calibration import Monotone, curve_from_dict
    from measure.curves import fit_monotone

    rng = np.random.default_rng(0)
    raw = rng.uniform(-1, 1, 20000)
    truth = Logistic(6.0, -1.0)
    curve = fit_monotone(raw, rng.random(20000) < truth(raw))
    grid = np.linspace(-0.8, 0.8, 9)
    assert np.all(np.diff(curve(np.linspace(-1, 1, 200))) >= 0)
    np.testing.assert_allclose(curve(grid), truth(grid), atol=0.05)
    assert abs(curve(curve.raw_at(0.5)) - 0.5) < 1e-6
    assert isinstance(curve_from_dict(curve.to_dict()), Monotone)
    assert isinstance(curve_from_dict(Logistic(1.0, 0.0).to_dict()), Logistic), "older cards keep their curve"
    assert Scorer(curve).model(Outputs(np.ones((1, 1)), np.ones((1, 1)), np.full((1, 1), 10.0))) <= MAX_SCORE


def test_logistic_fit_recovers_a_known_curve_and_auroc_counts_pairs():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=20000)
    right = rng.random(20000) < Logistic(3.0, -1.0)(raw)
    curve = fit_logistic(raw, right)
    assert curve.slope == pytest.approx(3.0, rel=0.1) and curve.intercept == pytest.approx(-1.0, abs=0.1)
    assert curve.raw_at(0.5) == pytest.approx(-curve.intercept / curve.slope)
    assert Scorer(gallery_curve=Logistic(100.0, 0.0)).gallery(np.array([10.0]), np.ones((1, 1))) == pytest.approx(MAX_SCORE)
    assert auroc(np.array([1.0, 2.0, 3.0]), np.array([0.0, 2.0])) == pytest.approx(4.5 / 6)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "animerec", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)


def test_enrol_from_real_crops_then_find_that_character_among_a_distractor(data, tmp_path, recognizer):
    """Enrol two New Game! characters (none is in the model) from 5 crops each, then look at
    other crops of them: each is named from the gallery, and an unknown face stays unknown."""
    aoba = sorted((data / "fewshot" / "suzukaze_aoba").glob("*.jpg"))
    hifumi = sorted((data / "fewshot" / "takimoto_hifumi").glob("*.jpg"))
    gallery = tmp_path / "newgame.npz"
    result = run_cli("enroll", "Suzukaze Aoba", *aoba[:5], "--gallery", gallery, "--no-detect")
    assert result.returncode == 0, result.stderr
    assert "enrolled 5 faces of Suzukaze Aoba as 'suzukaze_aoba'" in result.stdout
    result = run_cli("enroll", "Takimoto Hifumi", *hifumi[:5], "--gallery", gallery, "--no-detect")
    assert result.returncode == 0 and "2 characters" in result.stdout, result.stderr

    queries = aoba[5:15] + hifumi[5:15]
    result = run_cli(*queries, "--gallery", gallery, "--no-detect", "--json")
    assert result.returncode == 0, result.stderr
    faces = [r["faces"][0] for r in json.loads(result.stdout)]
    expected = ["suzukaze_aoba"] * 10 + ["takimoto_hifumi"] * 10
    right = sum(f["label"] == e and f["source"] == "gallery" for f, e in zip(faces, expected))
    print(f"\nenrolled from 5 crops each: {right}/20 other crops named from the gallery")
    assert right >= 15
    assert not any(f["label"] == ("takimoto_hifumi" if e == "suzukaze_aoba" else "suzukaze_aoba")
                   for f, e in zip(faces, expected)), "a face was given the distractor's name"

    unknown = sorted((data / "unknown").glob("*.jpg"))[:40]
    result = run_cli(*unknown, "--gallery", gallery, "--no-detect", "--json")
    labels = [r["faces"][0]["label"] for r in json.loads(result.stdout)]
    print(f"unknown faces called unknown with the gallery in play: {labels.count('unknown')}/40")
    assert labels.count("unknown") >= 30


def test_enrol_refuses_bad_names_foreign_galleries_and_faceless_pictures(data, tmp_path, recognizer):
    crop = sorted((data / "fewshot" / "sakura_nene").glob("*.jpg"))[0]
    result = run_cli("enroll", "Gawr Gura", crop, "--gallery", tmp_path / "g.npz", "--no-detect")
    assert result.returncode == 1 and "already a name the model uses" in result.stderr
    assert not (tmp_path / "g.npz").exists()

    foreign = Gallery("0000000000000000", recognizer.embedding_size)
    foreign.add("Someone", np.eye(1, recognizer.embedding_size, dtype=np.float32))
    foreign.save(tmp_path / "foreign.npz")
    for args in (("enroll", "Nene", crop), (crop,)):
        result = run_cli(*args, "--gallery", tmp_path / "foreign.npz", "--no-detect")
        assert result.returncode == 1 and "made by another model" in result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1

    (tmp_path / "broken.npz").write_bytes(b"garbage")
    result = run_cli(crop, "--gallery", tmp_path / "broken.npz")
    assert result.returncode == 1 and "not a gallery file" in result.stderr

    result = run_cli("enroll", "Nene", crop, "--gallery", tmp_path / "no" / "such" / "folder.npz", "--no-detect")
    assert result.returncode == 1 and "cannot write the gallery" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("RGB", (200, 200), "white").save(blank)
    result = run_cli("enroll", "Nene", blank, "--gallery", tmp_path / "g.npz")
    assert result.returncode == 1 and "whole picture" not in result.stderr, "a blank page is not taken as a face"
    assert "no line in it" in result.stderr and "nothing was written" in result.stderr
    result = run_cli("enroll", "Nene", blank, "--gallery", tmp_path / "g.npz", "--no-detect")
    assert result.returncode == 1 and "no line in it" in result.stderr and "nothing was written" in result.stderr
    assert "--no-detect if" not in result.stderr, "no hint to use the option already given"

    result = run_cli("enroll", "Nene", crop, blank, "--gallery", tmp_path / "g.npz", "--no-detect")
    assert result.returncode == 1 and "blank.png: no line in it" in result.stderr
    assert Gallery.load(tmp_path / "g.npz").counts() == {"nene": 1}, "the real face is enrolled, the blank one left out"


def test_a_picture_with_no_face_found_is_enrolled_whole_and_a_blank_one_is_left_out(detector):
    from animerec.recognize import WITHOUT_LINES, enrolment_crops

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (120, 100, 3), dtype=np.uint8)  # lines everywhere, no face
    blank = np.full((120, 100, 3), 200, np.uint8)
    enrolment = enrolment_crops([noise, blank], detector, 80)
    assert enrolment.crops.shape == (1, 80, 80, 3)
    assert enrolment.taken_whole == [0] and enrolment.left_out == {1: WITHOUT_LINES}
    assert enrolment_crops([noise], detector, 80, detect=False).taken_whole == [], "asked for the whole picture"


def test_a_gallery_for_a_model_refuses_its_characters_names_by_itself(recognizer, tmp_path):
    gallery = Gallery.for_model(recognizer)
    face = np.eye(recognizer.embedding_size, dtype=np.float32)[:1]
    with pytest.raises(GalleryError, match="already a name the model uses"):
        gallery.add("Gawr Gura", face)
    with pytest.raises(GalleryError, match="already a name the model uses"):
        gallery.add("Unknown", face)
    gallery.add("Suzukaze Aoba", face)
    gallery.save(tmp_path / "g.npz")
    loaded = Gallery.load(tmp_path / "g.npz")
    loaded.check(recognizer)  # a gallery read from a file learns the model's names when checked
    with pytest.raises(GalleryError, match="already a name the model uses"):
        loaded.add("Hatsune Miku", face)
    assert loaded.merge(Gallery.for_model(recognizer)).slugs == ["suzukaze_aoba"]

