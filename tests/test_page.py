"""The page, driven headless with Streamlit's AppTest (the browser tests are elsewhere).

Forward passes are counted from the real recogniser's own log lines, not by timing.
"""

import json
import logging
import re
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from animerec import decode_image
from measure.detection import read_boxes
from animerec.paths import model_dir
from conftest import encode

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
TIMEOUT = 180  # TensorFlow's import alone takes seconds on a 2-core machine


@pytest.fixture(autouse=True)
def page_process_changes_undone():
    """The page tunes its process for a long-lived server (`animerec.server`: Keras's
    clear_session made a no-op, the loaded heap frozen); undone after each test here, so the
    tests that follow run in a process as they found it."""
    import gc

    import keras

    from animerec.server import untune

    clear_session = keras.backend.clear_session
    yield
    untune()
    assert keras.backend.clear_session is clear_session and gc.get_freeze_count() == 0


@pytest.fixture()
def page():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture()
def forward_passes(caplog):
    caplog.set_level(logging.INFO, logger="animerec")
    return lambda: sum("forward pass" in r.getMessage() for r in caplog.records)


def upload(at, *files):
    at.file_uploader(key="images").set_value(list(files)).run()
    assert not at.exception, at.exception
    return at


def test_the_page_opens_saying_who_it_knows_and_with_the_model_card(page):
    assert page.title[0].value
    assert not page.error
    who = next(m.value for m in page.markdown if m.value.startswith("It knows"))
    assert "**30 characters: 20 from hololive English" in who and "Unknown" in who and "Add a character" in who
    about = page.expander[0]
    text = " ".join(m.value for m in about.markdown)
    assert "held-out test faces" in text and "%" in text
    card = json.loads((model_dir() / "card.json").read_text(encoding="utf-8"))
    for member in card.get("members", []):  # two members of one architecture are told apart by version
        assert f"network `{member['version']}`: trained" in text
    for training in [m["training"] for m in card.get("members", [])] or [card["training"]]:
        start = training.get("initialised_from")
        assert (f"from the weights of `{start}`" if start else "from scratch") in text, "a fine-tuned model does not claim scratch"
    five = card["calibration"]["fewshot"]["5-shot"]  # what adding characters costs is said with what it gains
    assert (f"named right in {five['top1_accuracy']:.1%}" in text
            and f"{five['unknown_labelled_unknown']:.1%} of other characters' faces stay Unknown" in text)
    assert len(about.dataframe[0].value) >= 2  # the characters the model knows


def test_a_real_scene_gives_the_annotated_image_and_one_chart_per_face(page, data, forward_passes):
    scene = (data / "scenes" / "101.jpg").read_bytes()
    upload(page, ("101.jpg", scene, "image/jpeg"))
    assert not page.error
    verdicts = [m.value for m in page.markdown if m.value.startswith(("**1.", "**2."))]
    assert len(verdicts) == 2
    # A face nobody the model knows comes near gets a sentence and no chart; a name or a near miss a chart.
    nobody = [v for v in verdicts if "nobody it knows looks like this face" in v]
    assert len(page.get("vega_lite_chart")) == 2 - len(nobody)
    page.sidebar.slider[0].set_value(0.0).run()  # every face named
    assert len(page.get("vega_lite_chart")) == 2
    images = page.get("image")
    assert len(images) == 1 + 2  # the annotated picture and one crop per face
    assert forward_passes() == 1
    assert {b.label for b in page.get("download_button")} >= {
        "Download the annotated image (PNG)", "Download all results (JSON)", "Download all results (CSV)"}


def test_moving_the_threshold_or_top_k_never_runs_the_network_again(page, data, forward_passes):
    upload(page, ("101.jpg", (data / "scenes" / "101.jpg").read_bytes(), "image/jpeg"))
    before = forward_passes()
    page.sidebar.slider[0].set_value(1.0).run()
    verdicts = [m.value for m in page.markdown if re.match(r"\*\*\d+\. ", m.value)]
    assert len(verdicts) == 2 and all("Unknown" in v for v in verdicts)
    page.sidebar.slider[1].set_value(2).run()
    assert forward_passes() == before
    # A detector setting is a new question: the network runs once for it, then not again.
    page.sidebar.slider[3].set_value(4).run()  # min neighbours
    assert forward_passes() == before + 1
    page.sidebar.slider[0].set_value(0.2).run()
    assert forward_passes() == before + 1


def test_an_unknown_face_in_black_and_white_art_says_why_it_is_often_unknown(page, data):
    scene = Image.open(data / "scenes" / "101.jpg")
    upload(page, ("101.jpg", encode(scene, "JPEG"), "image/jpeg"))
    verdicts = [m.value for m in page.markdown if re.match(r"\*\*\d+\. ", m.value)]
    assert len(verdicts) == 2 and not any("almost no colour" in v for v in verdicts)
    upload(page, ("101-grey.png", encode(scene.convert("L")), "image/png"))
    verdicts = [m.value for m in page.markdown if re.match(r"\*\*\d+\. ", m.value)]
    assert len(verdicts) == 2 and all("Unknown" in v and "almost no colour" in v for v in verdicts)


def test_the_tilted_faces_switch_decides_whether_a_turned_face_is_found(page, data):
    from test_detect import tilted

    marked = read_boxes(data / "scenes" / "boxes.csv")
    image = decode_image((data / "scenes" / "133.jpg").read_bytes())
    turned, _ = tilted(image, marked["133.jpg"][0], 30)  # the upright pass alone misses it
    upload(page, ("turned.png", encode(Image.fromarray(turned)), "image/png"))
    assert len([m for m in page.markdown if m.value.startswith("**1.")]) == 1 and not page.info
    next(c for c in page.sidebar.checkbox if c.label == "Look for tilted faces").uncheck().run()
    assert not [m for m in page.markdown if m.value.startswith("**1.")]
    assert page.info[0].value.startswith("No face found in turned.png")


def test_the_face_check_switch_decides_whether_a_box_that_is_no_face_is_shown(page, data):
    # scenes/82.jpg (held out from the face check): the cascade also boxes something that is no face.
    upload(page, ("82.jpg", (data / "scenes" / "82.jpg").read_bytes(), "image/jpeg"))
    checked = len([m for m in page.markdown if re.match(r"\*\*\d+\. ", m.value)])
    next(c for c in page.sidebar.checkbox if c.label == "Drop boxes that are no face").uncheck().run()
    assert len([m for m in page.markdown if re.match(r"\*\*\d+\. ", m.value)]) == checked + 1


def test_junk_bytes_give_a_sentence_and_the_next_upload_works(page, data):
    upload(page, ("junk.png", b"definitely not a picture", "image/png"))
    assert len(page.error) == 1 and "not an image" in page.error[0].value
    assert not page.get("download_button"), "no results to download when no image was read"
    upload(page, ("empty.jpg", b"", "image/jpeg"), ("101.jpg", (data / "scenes" / "101.jpg").read_bytes(), "image/jpeg"))
    assert len(page.error) == 1 and "empty" in page.error[0].value
    assert len([m for m in page.markdown if re.match(r"\*\*\d+\. ", m.value)]) == 2


def test_a_blank_image_says_no_face_and_offers_the_whole_image(page):
    blank = encode(Image.new("RGB", (200, 150), "white"), "PNG")
    upload(page, ("blank.png", blank, "image/png"))
    assert any("No face found" in i.value for i in page.info)
    page.main.checkbox[0].check().run()
    assert not page.exception
    verdict = [m.value for m in page.markdown if m.value.startswith("**1.")]
    assert verdict == ["**1. Unknown**: this picture has no line in it (one flat colour or a smooth gradient), "
                       "so it is nobody's face."]
    assert not page.get("vega_lite_chart"), "no candidates to chart"


def test_several_uploads_give_one_block_each(page, data):
    blank = encode(Image.new("RGB", (64, 64), "white"), "PNG")
    upload(page, ("a.png", blank, "image/png"), ("101.jpg", (data / "scenes" / "101.jpg").read_bytes(), "image/jpeg"))
    assert [s.value for s in page.subheader] == ["a.png", "101.jpg"]


def verdict_of_whole_image(at, name, data):
    upload(at, (name, data, "image/jpeg"))
    if not [m for m in at.markdown if m.value.startswith("**1.")]:  # a tight crop: the cascade may miss it
        at.main.checkbox[0].check().run()
    return [m.value for m in at.markdown if m.value.startswith("**1.")][0]


def test_a_character_added_in_the_sidebar_is_named_in_this_session_only(page, data, forward_passes):
    aoba = sorted((data / "fewshot" / "suzukaze_aoba").glob("*.jpg"))
    panel = page.sidebar.expander[-1]
    assert "lost on reload unless you download" in " ".join(c.value for c in panel.caption)
    panel.text_input[0].input("Suzukaze Aoba")
    page.file_uploader(key="enrol-files").set_value([(p.name, p.read_bytes(), "image/jpeg") for p in aoba[:5]])
    panel.checkbox[0].check()
    before = forward_passes()
    panel.button[0].click().run()
    assert not page.exception and not page.error
    assert "Added 5 pictures of Suzukaze Aoba" in page.success[0].value
    assert forward_passes() == before + 1  # the five crops go through the network together
    assert page.sidebar.dataframe[0].value.to_dict("records") == [{"character": "Suzukaze Aoba", "pictures": 5}]
    assert "Download the gallery (.npz)" in {b.label for b in page.get("download_button")}

    verdict = verdict_of_whole_image(page, "aoba.jpg", aoba[9].read_bytes())
    assert verdict.startswith("**1. Suzukaze Aoba**") and "a character you added" in verdict

    other = AppTest.from_file(APP, default_timeout=TIMEOUT)  # another visitor's session
    other.run()
    assert "Suzukaze Aoba" not in verdict_of_whole_image(other, "aoba.jpg", aoba[9].read_bytes())


def test_a_model_name_or_a_broken_gallery_file_is_refused_with_a_sentence(page, data):
    panel = page.sidebar.expander[-1]
    panel.text_input[0].input("Gawr Gura")
    crop = sorted((data / "fewshot" / "sakura_nene").glob("*.jpg"))[0]
    page.file_uploader(key="enrol-files").set_value([(crop.name, crop.read_bytes(), "image/jpeg")])
    panel.checkbox[0].check()
    panel.button[0].click().run()
    assert "already a name the model uses" in page.error[0].value
    page.file_uploader(key="gallery-file").set_value(("g.npz", b"not a gallery", "application/octet-stream")).run()
    assert any("not a gallery file" in e.value for e in page.error)
    assert not page.exception


def test_a_missing_face_check_is_a_warning_and_faces_are_still_found_without_it(data, monkeypatch, tmp_path):
    import streamlit as st

    monkeypatch.setenv("ANIMEREC_FACE_CHECK", str(tmp_path / "no-such-check"))
    # The detector is cached per server: this "server" has no face check. Analyses cached with
    # it are not served (their key says the face check ran), so the cached data stays.
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.run()
        assert not at.exception and "The face check in" in at.warning[0].value
        assert "faces are found without it" in at.warning[0].value
        upload(at, ("82.jpg", (data / "scenes" / "82.jpg").read_bytes(), "image/jpeg"))
        assert not at.error
        assert len([m for m in at.markdown if re.match(r"\*\*\d+\. ", m.value)]) == 3
    finally:
        monkeypatch.undo()
        st.cache_resource.clear()
        st.cache_data.clear()


def test_a_missing_model_is_a_warning_and_faces_are_still_boxed(data, monkeypatch, tmp_path):
    import streamlit as st

    monkeypatch.setenv("ANIMEREC_MODEL", str(tmp_path / "no-such-model"))
    st.cache_resource.clear()  # the model is cached per server; this "server" has none
    try:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.run()
        assert not at.exception and "No model directory" in at.warning[0].value
        upload(at, ("101.jpg", (data / "scenes" / "101.jpg").read_bytes(), "image/jpeg"))
        assert not at.error
        assert sum("not named" in m.value for m in at.markdown) == 2
    finally:
        monkeypatch.undo()
        st.cache_resource.clear()
