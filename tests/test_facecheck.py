"""The face check: the small network that drops the detector's boxes that are no face."""

import numpy as np
import pytest

from animerec import DetectorSettings, decode_image, face_outline
from animerec.errors import ModelError
from animerec.facecheck import CARD_FILE, INPUT_SIZE, MODEL_FILE, load_face_check
from animerec.paths import DEFAULT_FACE_CHECK_DIR
from measure.detection import read_boxes, score_detections
from tests.test_detect import documented_figures
from train.scenes import scene_halves


def test_the_face_check_runs_with_numpy_as_keras_does():
    import keras

    crops = np.random.default_rng(0).integers(0, 256, (6, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    by_keras = keras.models.load_model(DEFAULT_FACE_CHECK_DIR / MODEL_FILE, compile=False).predict(crops, verbose=0)
    (by_numpy,) = load_face_check()._network(crops)
    assert by_numpy.shape == (6, 2)
    np.testing.assert_allclose(by_numpy, by_keras, atol=1e-4)


def test_a_missing_or_broken_face_check_says_what_to_do(tmp_path):
    with pytest.raises(ModelError, match="restore models/face_check/"):
        load_face_check(tmp_path)
    (tmp_path / CARD_FILE).write_text('{"threshold": 0.5}')
    for junk in (b"", b"not a zip file", (DEFAULT_FACE_CHECK_DIR / MODEL_FILE).read_bytes()[:5000]):
        (tmp_path / MODEL_FILE).write_bytes(junk)
        with pytest.raises(ModelError, match="could not be read"):
            load_face_check(tmp_path)
    (tmp_path / MODEL_FILE).write_bytes((DEFAULT_FACE_CHECK_DIR / MODEL_FILE).read_bytes())
    for card in ("", "[]", '{"threshold": "high"}', "{}"):
        (tmp_path / CARD_FILE).write_text(card)
        with pytest.raises(ModelError, match="could not be read"):
            load_face_check(tmp_path)


def test_scores_are_one_chance_per_box(detector):
    check = load_face_check()
    image = np.full((120, 160, 3), 200, np.uint8)
    assert check.scores(image, []).shape == (0,)
    scores = check.scores(image, [(10, 10, 40, 40), (60, 20, 50, 50)])
    assert scores.shape == (2,) and np.all((0 <= scores) & (scores <= 1))
    assert 0 < check.threshold < 1


def test_the_face_check_drops_no_more_faces_than_false_boxes_on_the_held_out_scenes(data, detector):
    scenes = data / "scenes"
    marked = read_boxes(scenes / "boxes.csv")
    found = {False: {}, True: {}}
    for path in scene_halves(scenes)["test"]:
        image = decode_image(path.read_bytes())
        for on in found:
            boxes = detector.detect(image, DetectorSettings(face_check=on))
            found[on][path.name] = [face_outline(b, image.shape) for b in boxes]
        assert set(found[True][path.name]) <= set(found[False][path.name])
    without, with_check = (score_detections(found[on], {n: marked.get(n, []) for n in found[on]})[0] for on in found)
    assert with_check.precision > without.precision
    assert with_check.recall >= without.recall - 0.01
    label = "page default: face outlines, with the face check, the half the face check never saw (134 scenes)"
    precision, recall, _, _ = documented_figures(label)
    assert with_check.precision == pytest.approx(precision, abs=0.005)
    assert with_check.recall == pytest.approx(recall, abs=0.005)
