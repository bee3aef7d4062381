"""The page in a real browser: headless Debian Chromium through Playwright against
`streamlit run` on 127.0.0.1. Screenshots of each step go to the folder printed at the start."""

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from animerec import decode_image
from conftest import CALL_REPORT
from webtest.server import chromium_available, launch, serve, upload_and_wait, wait_idle

if not chromium_available() and os.environ.get("ANIMEREC_REQUIRE_BROWSER"):
    raise RuntimeError("ANIMEREC_REQUIRE_BROWSER is set but Playwright or /usr/bin/chromium is missing")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not chromium_available(), reason="needs Playwright and Debian's chromium (.ci/run installs both)")]

ROOT = Path(__file__).resolve().parent.parent
SCENE = "101.jpg"  # two frontal faces
WEBCAM_SCENE = "1.jpg"  # one large face, still large at webcam resolution


@pytest.fixture(scope="module")
def shots():
    folder = Path(os.environ.get("ANIMEREC_SCREENSHOTS") or tempfile.mkdtemp(prefix="animerec-screenshots-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve(log_path=tmp_path_factory.mktemp("server") / "server.log") as running:
        yield running


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    chromium = launch(playwright)
    yield chromium
    chromium.close()


@pytest.fixture(autouse=True)
def evidence_on_failure(request, shots):
    """When a test fails, what the browser and the server last showed, in the failure report
    (CI keeps no files): the end of each open page's text and of the server's log, and a
    screenshot of each page in the screenshots folder."""
    yield
    report = request.node.stash.get(CALL_REPORT, None)
    if report is None or not report.failed:
        return
    browser, server = request.node.funcargs.get("browser"), request.node.funcargs.get("server")
    for i, page in enumerate(p for context in (browser.contexts if browser else []) for p in context.pages):
        page.screenshot(path=shots / f"failed-{request.node.name}-{i}.png", full_page=True)
        print(f"--- page {i}, its text's end:\n{page.locator('body').inner_text()[-1500:]}")
        page.context.close()
    if server:
        print(f"--- the server's log, its end:\n{server.log()[-3000:]}")


def open_page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.goto(server.url)
    page.wait_for_selector("input[type=file]", state="attached", timeout=180_000)
    wait_idle(page)
    return context, page


def verdicts(page, panel=None):
    """The bold "N. Name" verdicts, in face order."""
    scope = panel or page
    return [t for t in scope.locator("strong").all_inner_texts() if re.match(r"^\d+\. ", t)]


def wait_for_charts(page, count, scope="document"):
    """Vega charts render a moment after the rest of the result: wait until `count` are there."""
    page.wait_for_function(
        f"n => {scope}.querySelectorAll('[data-testid=stVegaLiteChart]').length >= n", arg=count, timeout=60_000)


def cli_names(path):
    result = subprocess.run([sys.executable, "-m", "animerec", str(path), "--json"], capture_output=True, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    return [f["name"] for f in json.loads(result.stdout)[0]["faces"]]


def charted(page, scope=None):
    """How many faces should have a chart: all but those nobody the model knows comes near."""
    return len(verdicts(page, scope)) - (scope or page).get_by_text("nobody it knows looks like this face").count()


def test_the_page_says_who_it_knows_before_anything_is_uploaded(browser, server):
    context, page = open_page(browser, server)
    who = page.get_by_text(re.compile("^It knows 30 characters"))
    assert who.count() == 1 and "20 from hololive English" in who.inner_text()
    assert "Add a character" in who.inner_text() and "Unknown" in who.inner_text()
    context.close()


def test_upload_shows_boxes_charts_and_the_command_lines_names(browser, server, data, shots):
    context, page = open_page(browser, server)
    upload_and_wait(page, [data / "scenes" / SCENE])
    shown = verdicts(page)
    wait_for_charts(page, charted(page))
    page.screenshot(path=shots / "1-upload.png", full_page=True)
    assert len(page.locator("[data-testid=stVegaLiteChart]").all()) == charted(page) and len(shown) == 2
    assert page.get_by_text(f"{SCENE}: 2 faces").count() == 1  # the annotated image's caption
    assert [v.split(". ", 1)[1] for v in shown] == cli_names(data / "scenes" / SCENE)
    context.close()


def test_a_box_that_is_no_face_is_dropped_unless_the_face_check_is_turned_off(browser, server, data, shots):
    # scenes/82.jpg, which the face check never saw: the cascade also boxes a kimono's sash.
    context, page = open_page(browser, server)
    upload_and_wait(page, [data / "scenes" / "82.jpg"])
    assert page.get_by_text("82.jpg: 2 faces").count() == 1 and len(verdicts(page)) == 2
    page.screenshot(path=shots / "face-check-on.png")
    page.get_by_text("Detector sensitivity").click()
    switch = page.get_by_text("Drop boxes that are no face")
    switch.wait_for()
    page.wait_for_timeout(500)  # the panel's opening animation moves the switch
    switch.click()
    page.get_by_text("82.jpg: 3 faces").wait_for(timeout=120_000)
    wait_idle(page)
    assert len(verdicts(page)) == 3
    page.screenshot(path=shots / "face-check-off.png")
    context.close()


def test_a_small_picture_is_shown_at_most_twice_its_size(browser, server, data, tmp_path):
    small = tmp_path / "small.png"
    Image.open(sorted((data / "faces" / "hatsune_miku").glob("*.jpg"))[0]).resize((64, 64)).save(small)
    context, page = open_page(browser, server)
    upload_and_wait(page, [small])
    widths = page.locator("[data-testid=stMain] [data-testid=stImage] img").evaluate_all(
        "images => images.map(i => i.getBoundingClientRect().width)")
    assert widths and widths[0] <= 2 * 64 + 1, widths  # the annotated picture comes first
    context.close()


def test_threshold_above_every_score_makes_all_unknown_without_reloading_the_model(browser, server, data, shots):
    context, page = open_page(browser, server)
    upload_and_wait(page, [data / "scenes" / SCENE])
    passes = server.log().count("forward pass")
    page.locator('input[type=range][aria-label="Confidence threshold"]').focus()
    page.keyboard.press("End")  # 1.00: a calibrated score never exceeds 0.999
    thumb = page.locator("[data-testid=stSlider]").first.locator("[data-testid=stSliderThumbValue]")
    assert thumb.inner_text() == "1.00"
    # The verdicts change once the rerun is done: wait for them rather than for a fixed time.
    page.wait_for_function(
        "() => [...document.querySelectorAll('strong')].filter(e => /^\\d+\\. /.test(e.innerText))"
        ".every(e => e.innerText.endsWith('Unknown'))", timeout=60_000)
    wait_idle(page)
    page.screenshot(path=shots / "2-threshold.png", full_page=True)
    assert [v.split(". ", 1)[1] for v in verdicts(page)] == ["Unknown", "Unknown"]
    log = server.log()
    assert log.count("model load") == 1, "the model is loaded once per server"
    assert log.count("forward pass") == passes, "moving the threshold must not run the network"
    context.close()


def test_a_bad_file_gives_a_sentence_and_the_next_upload_works(browser, server, data, shots, tmp_path):
    context, page = open_page(browser, server)
    junk = tmp_path / "holiday.jpg"
    junk.write_bytes(b"this is not a picture, whatever its name says")
    upload_and_wait(page, [junk])
    page.screenshot(path=shots / "3-bad-file.png", full_page=True)
    assert page.get_by_text("not an image we can read").count() == 1
    avif = tmp_path / "scene.avif"  # the next one in another format, which the uploader must let through
    Image.open(data / "scenes" / SCENE).save(avif, quality=90)
    upload_and_wait(page, [avif])
    page.get_by_text("scene.avif: 2 faces").wait_for(timeout=180_000)
    wait_idle(page)
    assert len(verdicts(page)) == 2
    assert page.get_by_text("not an image we can read").count() == 1  # the bad file still says why
    context.close()


def fake_camera_video(scene, path, size=(640, 480), frames=10):
    """A YUV4MPEG2 file showing `scene` letterboxed to `size`, for Chromium's fake camera."""
    image = decode_image(scene.read_bytes())
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, (round(image.shape[1] * scale) // 2 * 2, round(image.shape[0] * scale) // 2 * 2))
    canvas = np.full((height, width, 3), 255, np.uint8)
    top, left = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    canvas[top: top + resized.shape[0], left: left + resized.shape[1]] = resized
    yuv = cv2.cvtColor(canvas, cv2.COLOR_RGB2YUV_I420).tobytes()
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + yuv)
    return path


def test_the_webcam_tab_takes_a_snapshot_and_names_the_face(playwright, server, data, shots, tmp_path):
    video = fake_camera_video(data / "scenes" / WEBCAM_SCENE, tmp_path / "camera.y4m")
    browser = launch(playwright, ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                                  f"--use-file-for-fake-video-capture={video}"])
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1100}, permissions=["camera"])
        page = context.new_page()
        page.goto(server.url)
        page.get_by_role("tab", name="Webcam").click()
        take = page.get_by_role("button", name="Take Photo")
        take.wait_for(timeout=180_000)
        page.wait_for_timeout(1500)  # let the fake camera deliver frames
        take.click()
        panel = page.get_by_role("tabpanel", name="Webcam")
        panel.get_by_text("webcam snapshot: 1 face").wait_for(timeout=180_000)
        wait_idle(page)
        wait_for_charts(page, charted(page, panel))
        page.screenshot(path=shots / "4-webcam.png", full_page=True)
        assert len(verdicts(page, panel)) == 1
        assert len(panel.locator("[data-testid=stVegaLiteChart]").all()) == charted(page, panel)
    finally:
        browser.close()


def test_a_character_added_from_five_pictures_is_named_in_a_new_picture(browser, server, data, shots):
    aoba = sorted((data / "fewshot" / "suzukaze_aoba").glob("*.jpg"))  # New Game!: not in the model
    context, page = open_page(browser, server)
    sidebar = page.locator("[data-testid=stSidebar]")
    sidebar.get_by_text("Add a character").click()
    sidebar.get_by_label("Name").fill("Suzukaze Aoba")
    sidebar.locator("input[type=file]").first.set_input_files([str(p) for p in aoba[:5]])
    sidebar.get_by_text("These pictures are already face crops").click()
    sidebar.get_by_role("button", name="Add", exact=True).click()
    sidebar.get_by_text("Added 5 pictures of Suzukaze Aoba").wait_for(timeout=180_000)
    wait_idle(page)
    upload_and_wait(page, [aoba[9]])
    wait_for_charts(page, 1)
    page.screenshot(path=shots / "5-added-character.png", full_page=True)
    assert verdicts(page) == ["1. Suzukaze Aoba"]
    assert page.get_by_text("a character you added").count() == 1
    context.close()


def test_the_load_benchmark_serves_two_sessions_at_once_with_one_model_load(data):
    result = subprocess.run([sys.executable, "-m", "webtest.load", "--sessions", "2", "--runs", "1"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "ANIMEREC_DATA": str(data)})
    assert result.returncode == 0, result.stderr[-2000:]
    row = next(line for line in result.stdout.splitlines() if line.startswith("| 2 |")).split("|")[1:-1]
    p50, p95, errors, peak, loads = float(row[1]), float(row[2]), int(row[3]), float(row[4]), int(row[7])
    assert errors == 0 and loads == 1
    assert 0 < p50 <= p95 < 120 and 0 < peak < 2500
