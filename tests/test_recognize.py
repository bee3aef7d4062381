"""Recognition mechanics: one batched forward pass per image, threshold and top-k, no model."""

import numpy as np
import pytest

from animerec import Box, analyse, decode_image, name_faces, recognize
from measure.detection import read_boxes
from animerec.model import Character
from animerec.recognize import Analysis, to_dict

CHARACTERS = [Character("a", "Alice", "S"), Character("b", "Bea", "S"), Character("c", "Cy", "T")]


def fake_analysis(rows):
    rows = np.asarray(rows, np.float32)
    boxes = [Box(10 * i, 0, 10, 10) for i in range(len(rows))]
    return Analysis(boxes, np.zeros((len(rows), 8, 8, 3), np.uint8), rows)


def test_threshold_turns_low_scores_unknown_but_keeps_the_closest():
    faces = name_faces(fake_analysis([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]]), CHARACTERS, threshold=0.5, top_k=2)
    assert [f.label for f in faces] == ["a", "unknown"]
    assert [f.name for f in faces] == ["Alice", "Unknown"]
    assert faces[1].top_k[0] == ("a", "Alice", np.float32(0.4).item())
    assert [len(f.top_k) for f in faces] == [2, 2]


def test_each_face_carries_the_verdict_the_page_and_command_line_explain():
    from animerec.recognize import BELOW_THRESHOLD, NAMED, NO_LINE, NO_MODEL, NOBODY_CLOSE

    rows = [[0.7, 0.2, 0.1], [0.3, 0.1, 0.1], [0.2, 0.1, 0.1], [0.9, 0.05, 0.05]]
    analysis = fake_analysis(rows)._replace(featureless=np.array([False, False, False, True]))
    faces = name_faces(analysis, CHARACTERS, threshold=0.5)
    # 0.3 is a near miss of 0.5 (at least half of it); 0.2 is not.
    assert [f.verdict for f in faces] == [NAMED, BELOW_THRESHOLD, NOBODY_CLOSE, NO_LINE]
    assert [f.label for f in faces] == ["a", "unknown", "unknown", "unknown"]
    unmodelled = name_faces(Analysis([Box(1, 2, 3, 4)], np.zeros((1, 8, 8, 3), np.uint8), None), [])
    assert unmodelled[0].verdict == NO_MODEL


def test_score_equal_to_threshold_is_known_and_zero_threshold_names_everything():
    analysis = fake_analysis([[0.5, 0.3, 0.2]])
    assert name_faces(analysis, CHARACTERS, threshold=0.5)[0].label == "a"
    assert name_faces(fake_analysis([[0.34, 0.33, 0.33]]), CHARACTERS, threshold=0.0)[0].label == "a"


def test_top_k_is_sorted_and_capped_at_the_number_of_characters():
    faces = name_faces(fake_analysis([[0.1, 0.6, 0.3]]), CHARACTERS, top_k=10)
    assert [c.slug for c in faces[0].top_k] == ["b", "c", "a"]


def test_candidates_tied_on_the_calibrated_scale_keep_the_networks_order():
    analysis = fake_analysis([[0.1, 0.6, 0.3]])._replace(scores=np.zeros((1, 3), np.float32))
    assert [c.slug for c in name_faces(analysis, CHARACTERS, top_k=3)[0].top_k] == ["b", "c", "a"]


def test_the_vectorised_best_candidate_is_the_first_of_the_ranking_the_page_shows():
    """The trainer judges by `Candidates.best`, the page shows `ranked`: one order, ties by
    the network's own numbers."""
    from animerec.gallery import Gallery
    from animerec.recognize import candidates
    from animerec.scoring import Scorer

    rng = np.random.default_rng(1)
    probabilities = rng.dirichlet(np.ones(3), 50).astype(np.float32)
    scores = np.round(probabilities * 4) / 4  # many ties on the calibrated scale
    embeddings = rng.normal(size=(50, 4)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    gallery = Gallery("f", 4)
    gallery.add("New", embeddings[:3])
    analysis = Analysis([None] * 50, None, probabilities, embeddings, scores)
    table = candidates(analysis, CHARACTERS, gallery, Scorer())
    index, best = table.best()
    np.testing.assert_array_equal(index, table.ranked(4)[:, 0])
    np.testing.assert_array_equal(best, table.scores.max(axis=1))
    assert table.slugs == ["a", "b", "c", "new"] and table.sources[-1] == "gallery"


def test_without_a_model_faces_are_boxed_but_not_named():
    faces = name_faces(Analysis([Box(1, 2, 3, 4)], np.zeros((1, 8, 8, 3), np.uint8), None), [])
    assert faces[0].label is None and faces[0].name is None and faces[0].top_k == []
    assert to_dict(faces[0]) == {"box": [1, 2, 3, 4], "label": None, "name": None, "score": 0.0, "top_k": [],
                                 "source": None, "colourless": False, "verdict": "no_model"}


def test_no_faces_is_an_empty_list(detector, recognizer):
    blank = np.full((120, 160, 3), 255, np.uint8)
    calls = recognizer.calls
    assert recognize(blank, detector, recognizer) == []
    assert recognizer.calls == calls, "no face, no forward pass"


def test_whole_image_mode_gives_one_face_with_the_full_box(detector, recognizer):
    image = np.full((50, 70, 3), 200, np.uint8)
    faces = recognize(image, detector, recognizer, detect=False)
    assert len(faces) == 1 and faces[0].box == (0, 0, 70, 50)
    assert 0.0 <= faces[0].score <= 1.0


def test_a_picture_with_no_line_in_it_is_nobody_whatever_the_network_says(detector, recognizer):
    """A flat colour or a smooth gradient taken whole is Unknown with no candidates, whatever the
    network says (default-2026-11-24-nonfaces named this orange Takanashi Kiara at 0.93; the
    model trained with strangers no longer does, but the rule does not depend on it)."""
    orange = np.zeros((200, 200, 3), np.uint8) + np.array([255, 153, 0], np.uint8)
    ramp = np.linspace(0, 255, 200).astype(np.uint8)
    sky = np.stack(np.broadcast_arrays(ramp[:, None] // 3, ramp[:, None] // 2 + 60, np.full((200, 200), 230, np.uint8)), -1)
    for picture in (orange, sky):
        analysis = analyse(picture, detector, recognizer, detect=False)
        assert analysis.featureless.tolist() == [True]
        face, = recognize(picture, detector, recognizer, detect=False)
        assert (face.label, face.name, face.score, face.top_k, face.source) == ("unknown", "Unknown", 0.0, [], None)


@pytest.fixture(scope="module")
def test_split(data, recognizer):
    """The shipped model's test crops at its input size, and their characters' positions."""
    import json

    from animerec.crop import resize_square

    files = json.loads((recognizer.path / "split.json").read_text())["test"]
    crops = np.stack([resize_square(decode_image((data / "faces" / f).read_bytes()), recognizer.input_size)
                      for f in files])
    slugs = [c.slug for c in recognizer.characters]
    return crops, np.array([slugs.index(f.split("/")[0]) for f in files])


def test_no_face_crop_of_a_known_character_counts_as_featureless(test_split):
    """The rule's margin: every test crop, even shrunk to 64 px as the unknown rule judges them,
    has lines in it (the least detailed of all 10,131 crops measures 3 against a bar of 1)."""
    from animerec.recognize import featureless
    from train.dataset import degrade

    crops, _ = test_split
    assert not featureless(crops).any() and not featureless(degrade(crops, 64)).any()


def line_drawing(size=80):
    """Black lines on white paper: concentric rings and a cross, (size, size, 3) uint8."""
    y, x = np.mgrid[0:size, 0:size] - size // 2
    ink = ((np.hypot(x, y).astype(int) % 9) < 2) | (abs(x) < 2) | (abs(y) < 2)
    return np.repeat(np.where(ink, 20, 250).astype(np.uint8)[..., None], 3, axis=-1)


def test_black_and_white_or_one_tint_crops_are_colourless_and_a_coloured_patch_is_not():
    from animerec.recognize import colourless

    drawing = line_drawing()
    sepia = (drawing * np.array([1.0, 0.95, 0.88])).astype(np.uint8)  # old paper: R-B spread 30 levels
    violet = (drawing * np.array([0.92, 0.88, 1.0])).astype(np.uint8)  # one-tint art: spread 30
    pink_hair = drawing.copy()
    pink_hair[:12, :] = (250, 150, 190)  # 15 % of the crop in a colour
    speck = drawing.copy()
    speck[:2, :10] = (250, 150, 190)  # 0.3 %: a stray speck does not make art coloured
    dot = drawing.copy()
    dot[:4, :20] = (250, 150, 190)  # 1.25 %
    assert colourless(np.stack([drawing, sepia, violet, speck])).tolist() == [True] * 4
    assert colourless(np.stack([pink_hair, dot])).tolist() == [False, False]
    assert colourless(np.zeros((0, 80, 80, 3), np.uint8)).shape == (0,)


def test_colourless_faces_are_few_and_the_model_names_far_fewer_of_them(test_split, recognizer):
    """What the page's sentence about colourless faces rests on, on the shipped model's test
    split: such crops are a few percent, and it names them far worse (`train evaluate`'s
    "colourless_faces"); turned grey, every face is colourless."""
    from animerec.scoring import naming_scores
    from animerec.recognize import colourless
    from train.dataset import greyscale

    crops, labels = test_split
    plain = colourless(crops)
    assert 0.005 < plain.mean() < 0.05
    right = naming_scores(recognizer.run(crops)).argmax(axis=1) == labels
    assert right[plain].mean() < 0.75 and right[~plain].mean() > 0.93
    assert colourless(greyscale(crops)).all()


def test_a_colourless_face_is_flagged_in_the_recognition_and_the_json(detector, recognizer):
    drawing = line_drawing(120)
    coloured = drawing.copy()
    coloured[:30] = (40, 160, 230)
    grey_face, = recognize(drawing, detector, recognizer, detect=False)
    colour_face, = recognize(coloured, detector, recognizer, detect=False)
    assert grey_face.colourless and to_dict(grey_face)["colourless"] is True
    assert not colour_face.colourless and to_dict(colour_face)["colourless"] is False
    unnamed, = recognize(drawing, detector, None, detect=False)  # no model installed: still a fact of the crop
    assert unnamed.label is None and unnamed.colourless


def test_all_faces_of_an_image_go_through_one_forward_pass(data, detector, recognizer):
    marked = read_boxes(data / "scenes" / "boxes.csv")
    for name in sorted(marked, key=lambda n: -len(marked[n])):
        image = decode_image((data / "scenes" / name).read_bytes())
        if len(detector.detect(image)) >= 2:
            break
    calls = recognizer.calls
    analysis = analyse(image, detector, recognizer)
    n = len(analysis.boxes)
    assert n >= 2
    assert recognizer.calls == calls + 1
    assert analysis.crops.shape == (n, recognizer.input_size, recognizer.input_size, 3)
    assert analysis.probabilities.shape == (n, len(recognizer.characters))
    assert np.allclose(analysis.probabilities.sum(axis=1), 1.0, atol=1e-4)


def test_classify_checks_the_crop_shape(recognizer):
    with pytest.raises(ValueError, match="Crops must be"):
        recognizer.run(np.zeros((1, 7, 7, 3), np.uint8))
    assert recognizer.run(np.zeros((0, recognizer.input_size, recognizer.input_size, 3), np.uint8)).probabilities.shape == (
        0, len(recognizer.characters))


def test_each_face_lists_its_closest_characters_on_the_scale_of_its_verdict(data, detector, recognizer):
    """The chart and the verdict agree: the top entry's score is the face's score, the list is
    ranked by it, and a face is Unknown exactly when its top entry is below the threshold."""
    threshold = float(recognizer.card["threshold"])
    faces = []
    for name in ("101.jpg", "133.jpg", "105.jpg"):
        faces += recognize(decode_image((data / "scenes" / name).read_bytes()), detector, recognizer,
                           threshold=threshold, top_k=5)
    assert len(faces) >= 3
    for face in faces:
        scores = [c.score for c in face.top_k]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True)
        assert scores[0] == pytest.approx(face.score) and all(0.0 <= s <= 1.0 for s in scores)
        assert (face.label == "unknown") == (face.score < threshold)
        assert face.label in ("unknown", face.top_k[0].slug)
