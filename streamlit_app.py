"""animerec's page: upload a picture or take a snapshot, see every anime face boxed and named.

Run with `streamlit run streamlit_app.py`. Widgets live in the `*_ui()` functions, which return
plain values; the compute is the `animerec` library's; the detector and the model are loaded
once per server, and the network runs once per (image, detector settings).
"""

import hashlib
import io
import json
import logging
import time

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from animerec import defaults
from animerec.decode import decode_image
from animerec.detect import DetectorSettings, load_detector
from animerec.draw import display_copy, draw_faces, face_colour
from animerec.errors import AnimerecError, ModelError
from animerec.gallery import MAX_ENROL_IMAGES, Gallery
from animerec.model import known_in_words, load_recognizer, read_card
from animerec.paths import DEFAULT_MODEL_DIR, IMAGE_EXTENSIONS, model_dir
from animerec.recognize import (BELOW_THRESHOLD, NO_LINE, NO_MODEL, NOBODY_CLOSE, TAKEN_WHOLE, analyse, default_threshold,
                                enrolment_crops, name_faces, round_threshold, to_dict)
from animerec.server import tune_for_one_model

log = logging.getLogger("animerec")
if not log.handlers:  # show the library's load and forward-pass lines in the server's log
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s animerec: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)

UPLOAD_TYPES = sorted(suffix.lstrip(".") for suffix in IMAGE_EXTENSIONS)
# The page shows (and caches) a copy of each upload no larger than this: a 40-megapixel upload
# would otherwise cost 120 MB per cache entry and as much again in the browser.
DISPLAY_MAX_SIDE = 2048
# An annotated picture narrower than this is shown at its own size, not stretched over its
# column (about 550 px wide on a desktop).
SMALL_IMAGE_WIDTH = 550
# Choices for the detector's search size; the default is defaults.DETECT_MAX_SIDE.
SEARCH_SIZES = sorted({320, defaults.DETECT_MAX_SIDE, 640, 1024, 2048})
# Said of an Unknown face with almost no colour (`animerec.recognize.colourless`).
COLOURLESS = ("This face has almost no colour (black-and-white or one-tint art): the model tells characters "
              "apart mostly by hair and eye colour, so such faces are often Unknown.")


@st.cache_resource(show_spinner="Loading the face detector...")
def load_the_detector():
    """(the detector, why it has no face check or None): when the face check cannot be read, the
    page finds faces without it rather than not at all."""
    try:
        return load_detector(), None
    except ModelError as error:
        return load_detector(face_check=None), f"{error} Until then, faces are found without it: some boxes may be no face."


def get_detector():
    return load_the_detector()[0]


@st.cache_resource(show_spinner="Loading the recogniser...")
def get_recognizer():
    """The model, or None when the default model directory is simply not there yet."""
    if model_dir() == DEFAULT_MODEL_DIR and not DEFAULT_MODEL_DIR.exists():
        return None
    return load_recognizer()


@st.cache_resource(show_spinner=False)
def tune_the_server():
    """Once per server, when the model is loaded: Keras's clear_session, which Streamlit calls
    after every run, made a no-op, and the loaded heap frozen (`animerec.server`)."""
    tune_for_one_model()


def current_recognizer():
    """The loaded model, or None when there is none or it cannot be loaded (recognizer_ui
    tells the user why); faces are then still found and boxed."""
    try:
        return get_recognizer()
    except ModelError:
        return None


@st.cache_data(max_entries=32, ttl=3600, show_spinner="Finding and naming faces...")
def analyse_upload(data, settings, detect, model_version):
    """Decode, detect, crop and classify: cached per (bytes, settings, whole-image, model), so
    moving the threshold or top-k never runs the network again. `model_version` is part of the
    key so that a new model is not served old answers.

    Returns (display copy, its scale, Analysis); the Analysis's boxes are in the full image's pixels.
    """
    start = time.perf_counter()
    image = decode_image(data)
    analysis = analyse(image, get_detector(), current_recognizer(), settings, detect)
    log.info("analysed an image of %d bytes in %.0f ms: %d face(s)", len(data),
             (time.perf_counter() - start) * 1000, len(analysis.boxes))
    # A small picture (a face crop, a thumbnail) is drawn on at twice its size, not blown up.
    return *display_copy(image, DISPLAY_MAX_SIDE, min(defaults.ANNOTATED_MIN_SIDE, 2 * max(image.shape[:2]))), analysis


@st.cache_data(ttl=60, show_spinner=False)
def model_card():
    """(characters, card) from the model directory's JSON alone, without loading the model, so
    the page can say who it knows before anything heavy; None when there is no readable card."""
    try:
        return read_card()
    except ModelError:
        return None


def main():
    started = time.perf_counter()
    st.set_page_config(page_title="animerec: who is that anime character?", page_icon=":mag:", layout="wide")
    st.title("Who is that anime character?")
    card = model_card()
    st.caption(
        "Upload a picture or take a snapshot: every anime face is boxed, and the characters the model knows are "
        "named, with how sure it is. Your pictures stay in this server's memory and are never written to disk."
    )
    if card:
        st.markdown(f"It knows **{known_in_words(card[0])}**. Anyone else is **Unknown**, unless you teach it "
                    "in *Add a character* (in the sidebar).")
    about_ui(card)
    # What is missing (the model, the face check) is said above the uploader, though it is only
    # known once they have loaded.
    notices = st.container()
    # The uploader comes before anything heavy, so a visitor can choose a picture while the
    # detector and the model load.
    upload_tab, camera_tab = st.tabs(["Upload", "Webcam"])
    with upload_tab:
        files = st.file_uploader("Images (JPEG, PNG, WebP, AVIF, GIF, BMP, TIFF)", type=UPLOAD_TYPES,
                                 accept_multiple_files=True, key="images")
    with camera_tab:
        st.caption("The camera works when the page is opened on localhost or over HTTPS.")
        snapshot = st.camera_input("Take a snapshot")
    log.info("sent the uploader %.0f ms into the script run", (time.perf_counter() - started) * 1000)
    with notices:
        try:
            _, no_face_check = load_the_detector()
        except AnimerecError as error:
            st.error(str(error))
            st.stop()
        if no_face_check:
            st.warning(no_face_check)
        recognizer = recognizer_ui()
    if recognizer is not None:
        tune_the_server()
    threshold, top_k, settings = sidebar_ui(recognizer)
    if no_face_check:  # so that the cache's key says what was done, and answers change when it comes back
        settings = settings._replace(face_check=False)
    gallery_ui(recognizer, settings)
    with upload_tab:
        if not files:
            st.info("Choose one or several images. Illustrations with visible faces work best.")
        results_ui([(f.name, f.getvalue()) for f in files or []], recognizer, threshold, top_k, settings)
    with camera_tab:
        results_ui([("webcam snapshot", snapshot.getvalue())] if snapshot else [],
                   recognizer, threshold, top_k, settings)


def recognizer_ui():
    """Load the model once per server; without one, say so and keep finding faces."""
    try:
        recognizer = get_recognizer()
    except ModelError as error:
        st.warning(f"{error} Faces are still found, but not named.")
        return None
    if recognizer is None:
        st.warning(f"No recogniser is installed ({DEFAULT_MODEL_DIR} is missing): faces are found but not named.")
    return recognizer


def sidebar_ui(recognizer):
    """The sidebar's controls, as (threshold, top_k, DetectorSettings)."""
    sidebar = st.sidebar
    sidebar.header("Settings")
    threshold = sidebar.slider(
        "Confidence threshold", 0.0, 1.0, default_threshold(recognizer), 0.01,
        help="A face whose score is below this is called Unknown. The default is the model's calibrated one.",
    )
    classes = len(recognizer.characters) if recognizer else defaults.TOP_K
    top_k = sidebar.slider("Characters per face", 1, max(2, min(10, classes)), min(defaults.TOP_K, classes),
                           help="How many of the closest characters each chart shows.")
    with sidebar.expander("Detector sensitivity"):
        tilted = st.checkbox("Look for tilted faces", True,
                             help="Also search copies turned 20 degrees each way; a little slower.")
        max_side = st.select_slider("Search size (px)", SEARCH_SIZES, defaults.DETECT_MAX_SIDE,
                                    help="The picture is shrunk to this for the search: larger finds smaller "
                                         "faces, slower.")
        scale_factor = st.slider("Scale factor", 1.02, 1.5, defaults.SCALE_FACTOR, 0.01,
                                 help="Step between the sizes searched: smaller finds more faces, slower.")
        min_neighbors = st.slider("Min neighbours", 1, 10, defaults.MIN_NEIGHBORS,
                                  help="Overlapping hits a face needs: fewer finds more, with more mistakes.")
        min_size = st.slider("Min face size (px)", 8, 256, defaults.MIN_SIZE,
                             help="Smallest face searched for, in pixels of your image.")
        face_check = st.checkbox("Drop boxes that are no face", True,
                                 help="A small network checks each box the detector finds and drops those "
                                      "that are not a face (a hand, folds of cloth).")
    angles = defaults.DETECT_ANGLES if tilted else defaults.UPRIGHT_ONLY
    return threshold, top_k, DetectorSettings(scale_factor, min_neighbors, min_size, max_side, angles,
                                              face_check=face_check)


def session_gallery(recognizer):
    """This browser session's gallery of enrolled characters (never shared between sessions),
    or None without a model."""
    if recognizer is None:
        return None
    gallery = st.session_state.get("gallery")
    if gallery is None or gallery.fingerprint != recognizer.fingerprint:
        gallery = st.session_state["gallery"] = Gallery.for_model(recognizer)
    return gallery


def gallery_ui(recognizer, settings):
    """The sidebar's "Add a character" panel: enrol from a few pictures, list, save and load."""
    gallery = session_gallery(recognizer)
    if gallery is None:
        return
    with st.sidebar.expander("Add a character", expanded=bool(len(gallery))):
        st.caption("Teach the page a character from 1-10 pictures. It is known only in this browser session "
                   "and lost on reload unless you download the gallery.")
        with st.form("enrol", clear_on_submit=True):
            name = st.text_input("Name", max_chars=80)
            files = st.file_uploader("Pictures of that character", type=UPLOAD_TYPES, accept_multiple_files=True,
                                     key="enrol-files")
            crops_only = st.checkbox("These pictures are already face crops")
            submitted = st.form_submit_button("Add")
        if submitted:
            enrol(gallery, recognizer, name, files or [], not crops_only, settings)
        if len(gallery):
            st.dataframe(pd.DataFrame([{"character": n, "pictures": c} for n, c in
                                       zip(gallery.names, gallery.counts().values())]),
                         hide_index=True, width="stretch")
            st.download_button("Download the gallery (.npz)", gallery.to_bytes, file_name="animerec-gallery.npz",
                               mime="application/octet-stream")
            if st.button("Forget all added characters"):
                st.session_state["gallery"] = Gallery.for_model(recognizer)
                st.rerun()
        saved = st.file_uploader("Load a gallery you downloaded before", type=["npz"], key="gallery-file")
        if saved is not None:
            load_gallery(gallery, recognizer, saved.getvalue())


def enrol(gallery, recognizer, name, files, detect, settings):
    """Add `name` from the uploaded `files` to the session's gallery, saying what happened."""
    if not name.strip() or not files:
        st.warning("Give a name and at least one picture.")
        return
    if len(files) > MAX_ENROL_IMAGES:
        st.warning(f"Add at most {MAX_ENROL_IMAGES} pictures at a time.")
        return
    images = []
    for f in files:
        try:
            images.append((f.name, decode_image(f.getvalue())))
        except AnimerecError as error:
            st.warning(f"{f.name}: {error}")
    crops, left_out, taken_whole = enrolment_crops([image for _, image in images], get_detector(),
                                                   recognizer.input_size, detect, settings)
    for i in taken_whole:
        st.info(f"{images[i][0]}: {TAKEN_WHOLE}.")
    for i, why in left_out.items():
        st.warning(f"{images[i][0]}: {why}.")
    if len(crops) == 0:
        st.error(f"Nothing was added: no face to learn {name.strip()} from.")
        return
    try:
        slug = gallery.add(name, recognizer.run(crops).embeddings)
    except AnimerecError as error:
        st.error(str(error))
        return
    st.success(f"Added {len(crops)} picture{'s' if len(crops) != 1 else ''} of {name.strip()} (label `{slug}`).")


def load_gallery(gallery, recognizer, data):
    """Merge an uploaded gallery file into the session's, once per file."""
    digest = hashlib.sha1(data).hexdigest()
    if st.session_state.get("gallery-loaded") == digest:
        return
    try:
        loaded = Gallery.from_bytes(data)
        loaded.check(recognizer)
        st.session_state["gallery"] = gallery.merge(loaded)
    except AnimerecError as error:
        st.error(str(error))
        return
    st.session_state["gallery-loaded"] = digest
    st.rerun()


def about_ui(card):
    """What the model knows and how far to trust it, in plain words first, then the figures;
    read from the card alone, so it shows before the model is loaded."""
    with st.expander("About the model"):
        if card is None:
            st.write("No recogniser is installed. Train one with `python -m train fit` (see the README).")
            return
        characters, card = card
        test = card.get("metrics", {}).get("test", {})
        calibration = card.get("calibration") or {}
        t = calibration.get("test", {})
        few = calibration.get("fewshot", {}).get("5-shot")
        plain = [f"**What it knows**: {known_in_words(characters)} (the table below)."]
        if test:
            plain.append(f"**How often it is right**: of faces of those characters drawn like its training pictures, "
                         f"it names {test.get('accuracy', 0):.1%} right. In other styles of art it does worse.")
        if t:
            plain.append(f"**Strangers**: anyone else should be Unknown; on held-out faces of other characters it "
                         f"is {t.get('unknown_labelled_unknown', 0):.1%} of the time"
                         + (f", and {t['strangers_labelled_unknown']:.1%} for official portraits of other characters"
                            if "strangers_labelled_unknown" in t else "") + ".")
        if few:
            added = calibration["fewshot"].get("characters")
            plain.append(f"**Characters you add**: a character taught from 5 pictures is named right in "
                         f"{few['top1_accuracy']:.1%} of its other pictures"
                         + (f"; each one added is one more to mistake a stranger for: with {added} added, "
                            f"{few['unknown_labelled_unknown']:.1%} of other characters' faces stay Unknown"
                            if added and "unknown_labelled_unknown" in few else "") + ".")
        plain.append("**What it cannot do**: black-and-white and one-tint art is often Unknown or misnamed, because it tells "
                     "characters apart mostly by hair and eye colour; very small, turned or half-hidden faces are "
                     "often missed or Unknown.")
        st.markdown("\n\n".join(plain))
        training = card.get("training", {})
        members = card.get("members") or []
        classes = training.get("classes", len(characters))
        networks = (f"an ensemble of {len(members)} networks trained on {classes} characters' face crops, whose "
                    "cosines to each character are averaged: "
                    + "; ".join(f"a `{m.get('architecture', '?')}` network (`{m.get('version', '?')}`) "
                                f"{trained_from(m.get('training', {}))}" for m in members) if members else
                    f"a `{card.get('architecture', '?')}` network {trained_from(training)} on {classes} "
                    "characters' face crops")
        st.markdown(f"**The figures.** Version `{card.get('version', 'unversioned')}`: {networks}. "
                    f"Input {card.get('input_size', '?')} px.")
        if test:
            st.markdown(
                f"On {test.get('images', '?')} held-out test faces: **{test.get('accuracy', 0):.1%}** accuracy, "
                f"**{test.get('macro_accuracy', 0):.1%}** macro accuracy (mean per-character recall), "
                f"{test.get('top5_accuracy', 0):.1%} top-5."
            )
        for network, member in [(f"The `{m.get('architecture', '?')}` network `{m.get('version', '?')}`: t",
                                 m.get("training", {})) for m in members] or [("T", training)]:
            start = member.get("initialised_from")
            st.markdown(
                f"{network}rained for {member.get('epochs_run', '?')}{' more' if start else ''} epochs "
                f"(best at {member.get('best_epoch', '?')}) "
                f"with {member.get('optimizer', '?')}; {member.get('loss', '')}."
            )
        st.markdown(f"Score: {card.get('score', '?')}.")
        if calibration:
            st.markdown(
                f"**Unknown faces**: the score is the calibrated chance that a name is right. At the default "
                f"threshold {round_threshold(calibration['threshold']):.0%}, {t['unknown_labelled_unknown']:.1%} of "
                f"held-out faces of other characters are called Unknown and {t['known_keep_correct_name']:.1%} of "
                "known faces (shrunk to 64 px) keep their right name."
                + (f" A character added from 5 pictures is named right {few['top1_accuracy']:.1%} of the time."
                   if few else "")
            )
        st.dataframe(
            pd.DataFrame([{"character": c.name, "series": c.series} for c in characters]),
            hide_index=True, width="stretch",
        )


def trained_from(training):
    start = training.get("initialised_from")
    return f"trained from the weights of `{start}`" if start else "trained from scratch"


def results_ui(inputs, recognizer, threshold, top_k, settings):
    """One result block per (name, bytes), then downloads of all results when any image was read."""
    rows = []
    for index, (name, data) in enumerate(inputs):
        try:
            rows.append(result_ui(index, name, data, recognizer, threshold, top_k, settings))
        except AnimerecError as error:
            st.error(f"{name}: {error}")
            rows.append({"file": name, "error": str(error)})
        except Exception as error:  # a bug must not take the page down
            log.exception("failed on %s", name)
            st.error(f"{name}: something went wrong while reading this image ({type(error).__name__}). "
                     "Try another file; the rest of the page still works.")
            rows.append({"file": name, "error": f"internal error ({type(error).__name__})"})
    if any("faces" in row for row in rows):  # nothing to download when no image could be read
        downloads_ui(rows, key=hashlib.sha1("".join(n for n, _ in inputs).encode()).hexdigest()[:8])


def result_ui(index, name, data, recognizer, threshold, top_k, settings):
    """Show one image's annotated picture and per-face charts; return its JSON-ready result."""
    digest = hashlib.sha1(data).hexdigest()[:12]
    version = recognizer.version if recognizer else None
    st.subheader(name)
    whole = st.session_state.get(f"whole-{digest}", False)
    shown, scale, analysis = analyse_upload(data, settings, not whole, version)
    characters = recognizer.characters if recognizer else []
    faces = name_faces(analysis, characters, threshold, top_k, session_gallery(recognizer),
                       recognizer.scorer if recognizer else None)
    if not faces:
        st.info(f"No face found in {name}. Try a lower min face size or fewer min neighbours in the "
                "sidebar, or classify the whole image as one face.")
    if not faces or whole:
        st.checkbox("Classify the whole image as one face", key=f"whole-{digest}",
                    help="For pictures that are already a face crop.")
    annotated = draw_faces(shown, faces, scale)
    left, right = st.columns([3, 2])
    with left:
        # A small picture keeps its (doubled) size instead of being stretched, blurry, over the column.
        st.image(annotated, caption=f"{name}: {len(faces)} face{'s' if len(faces) != 1 else ''}",
                 width=annotated.shape[1] if annotated.shape[1] < SMALL_IMAGE_WIDTH else "stretch")
        st.download_button("Download the annotated image (PNG)", lambda: _png(annotated),
                           file_name=f"{name.rsplit('.', 1)[0]}.annotated.png", mime="image/png",
                           key=f"png-{index}-{digest}")
    with right:
        for i, face in enumerate(faces):
            face_ui(i, face, analysis.crops[i], threshold)
    return {"file": name, "faces": [to_dict(f) for f in faces], "model": version, "threshold": threshold}


def face_ui(i, face, crop, threshold):
    """The crop, the verdict and (for a name or a near miss) the top-k chart of face number i + 1."""
    crop_column, chart_column = st.columns([1, 3])
    # As wide as its column (a quarter of the faces column), so it never runs under the text.
    crop_column.image(crop, caption=f"face {i + 1}", width="stretch")
    with chart_column:
        if face.verdict == NO_MODEL:
            st.markdown(f"**{i + 1}.** A face, not named: no recogniser is installed.")
            return
        if face.verdict == NO_LINE:
            st.markdown(f"**{i + 1}. Unknown**: this picture has no line in it (one flat colour or a smooth "
                        "gradient), so it is nobody's face.")
            return
        colourless = f" {COLOURLESS}" if face.colourless else ""
        if face.verdict == NOBODY_CLOSE:
            st.markdown(f"**{i + 1}. Unknown**: nobody it knows looks like this face.{colourless}")
            return
        closest = face.top_k[0]
        added = " (a character you added)" if face.source == "gallery" else ""
        if face.verdict == BELOW_THRESHOLD:
            st.markdown(f"**{i + 1}. Unknown**: the closest is {closest.name}{added}, scoring {closest.score:.0%}, "
                        f"below the threshold {threshold:.0%}.{colourless}")
        else:
            st.markdown(f"**{i + 1}. {face.name}**{added}: score {face.score:.0%}")
        st.vega_lite_chart(_chart(face, face_colour(i, face), threshold), width="stretch")


def _chart(face, colour, threshold):
    """A Vega-Lite spec: horizontal bars of the closest characters' scores (`face.top_k`, under
    their display names), best on top, with the threshold as a dashed mid-grey line, seen on
    light and dark themes, drawn over them (there are no gridlines for it to hide on): a face is
    named only when its top bar reaches the line. Written as a plain dict, not built with
    Altair: Altair's objects and schema check cost time per chart on the server, and every
    session's rerun waits for them."""
    rows = [{"character": c.name, "score": c.score} for c in face.top_k]
    # The same ticks on every chart, and no gridlines.
    score_axis = {"format": "%", "title": None, "values": [0, 0.5, 1], "grid": False}
    return {
        "height": 30 * len(rows) + 24,
        "layer": [
            {"data": {"values": rows},
             "mark": {"type": "bar", "color": colour, "stroke": "black", "strokeWidth": 0.5},
             "encoding": {
                 "x": {"field": "score", "type": "quantitative", "scale": {"domain": [0, 1]}, "axis": score_axis},
                 "y": {"field": "character", "type": "nominal", "sort": "-x", "title": None,
                       "axis": {"labelOverlap": False, "labelLimit": 180}},
                 "tooltip": [{"field": "character", "type": "nominal"},
                             {"field": "score", "type": "quantitative", "format": ".1%"}]}},
            {"data": {"values": [{"threshold": threshold}]},
             "mark": {"type": "rule", "strokeDash": [5, 3], "color": "#7F7F7F", "strokeWidth": 2},
             "encoding": {
                 "x": {"field": "threshold", "type": "quantitative"},
                 "tooltip": [{"field": "threshold", "type": "quantitative", "format": ".0%", "title": "threshold"}]}},
        ],
    }


def downloads_ui(rows, key):
    """All results of this tab as JSON and CSV (one row per face)."""
    table = [
        {"file": r["file"], "face": i + 1, "x": f["box"][0], "y": f["box"][1], "w": f["box"][2], "h": f["box"][3],
         "label": f["label"], "name": f["name"], "score": f["score"]}
        for r in rows for i, f in enumerate(r.get("faces", []))
    ]
    columns = ["file", "face", "x", "y", "w", "h", "label", "name", "score"]
    left, right = st.columns(2)
    # The files are made only when a button is clicked, not on every rerun.
    left.download_button("Download all results (JSON)", lambda: json.dumps(rows, indent=1, ensure_ascii=False),
                         file_name="animerec-results.json", mime="application/json", key=f"json-{key}")
    right.download_button("Download all results (CSV)", lambda: pd.DataFrame(table, columns=columns).to_csv(index=False),
                          file_name="animerec-results.csv", mime="text/csv", key=f"csv-{key}")


def _png(image):
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


main()
