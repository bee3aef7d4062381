"""Uploads stay in memory: a server run from a fresh working copy with its own fresh TMPDIR
leaves no new file in either after a browser session with uploads."""

import re
import shutil
from pathlib import Path

import pytest

from webtest.server import chromium_available, launch, serve, upload_and_wait

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not chromium_available(), reason="needs Playwright and Debian's chromium")]

ROOT = Path(__file__).resolve().parent.parent


def snapshot(*folders):
    """{path: (size, mtime)} of every file under the folders."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for folder in folders for p in folder.rglob("*")
            if p.is_file()}


def test_uploads_leave_no_file_behind(recognizer, data, tmp_path):
    work, tmp = tmp_path / "app", tmp_path / "tmp"
    tmp.mkdir()
    shutil.copytree(ROOT / "animerec", work / "animerec", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / ".streamlit", work / ".streamlit")
    shutil.copytree(recognizer.path, work / "model", ignore=shutil.ignore_patterns("training"))
    shutil.copytree(ROOT / "models" / "face_check", work / "models" / "face_check")
    shutil.copy(ROOT / "streamlit_app.py", work)
    shutil.copy(ROOT / "cascades" / "lbpcascade_animeface.xml", work / "cascade.xml")
    env = {"TMPDIR": str(tmp), "ANIMEREC_MODEL": str(work / "model"), "ANIMEREC_CASCADE": str(work / "cascade.xml"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    from playwright.sync_api import sync_playwright

    with serve(app_dir=work, log_path=tmp_path / "server.log", env=env) as server, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        page.goto(server.url)
        page.wait_for_selector("input[type=file]", state="attached", timeout=180_000)
        before = snapshot(work, tmp)
        upload_and_wait(page, [data / "scenes" / "101.jpg", data / "scenes" / "1.jpg"])
        page.get_by_text(re.compile(r"^1\.jpg: \d+ faces?$")).wait_for(timeout=180_000)
        after = snapshot(work, tmp)
        browser.close()
    assert "forward pass" in server.log(), "the uploads were analysed"
    new_or_changed = {path for path in after if before.get(path) != after[path]}
    assert not new_or_changed, f"files written while serving uploads: {sorted(new_or_changed)}"
