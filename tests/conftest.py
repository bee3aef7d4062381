"""Shared fixtures: tiny synthetic images for the mechanics, ../shared/data for the claims."""

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from animerec.paths import data_dir
from synthetic import write_shapes

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CALL_REPORT = pytest.StashKey()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each test's report on the test, so a fixture can tell at teardown that it failed."""
    report = yield
    if report.when == "call":
        item.stash[CALL_REPORT] = report
    return report


def encode(image, fmt="PNG", **options):
    """Encode a PIL image to bytes in memory."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def gradient(width=64, height=48):
    """An (H, W, 3) uint8 RGB test card whose corners differ, so rotations are detectable."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1),
                     np.full_like(x, 128)], axis=2).astype(np.uint8)


@pytest.fixture(scope="session")
def data():
    """../shared/data (or ANIMEREC_DATA); tests that need it skip with a reason when absent."""
    root = data_dir()
    if not (root / "scenes" / "boxes.csv").is_file():
        pytest.skip(f"the shared data folder is not at {root}: set ANIMEREC_DATA to run this test")
    return root


@pytest.fixture(scope="session")
def detector():
    from animerec import load_detector

    return load_detector()


@pytest.fixture(scope="session")
def recognizer():
    """The shipped default model."""
    from animerec import load_recognizer

    return load_recognizer()

ROOT = Path(__file__).resolve().parent.parent
QUIET = lambda *args: None  # noqa: E731  (a log that says nothing)


def run_python(code, env=None, timeout=600):
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            cwd=ROOT, timeout=timeout,
                            env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="session")
def shapes(tmp_path_factory):
    return write_shapes(tmp_path_factory.mktemp("shapes"), per_class=150, size=32)


@pytest.fixture(scope="session")
def trained(shapes, tmp_path_factory):
    """A tiny network trained on the synthetic shapes, once per test run: (model directory, card)."""
    from train.fit import fit

    out = tmp_path_factory.mktemp("models") / "shapes"
    card = fit(shapes, out, arch="seed", epochs=40, image_size=32, batch_size=32, learning_rate=3e-3,
               patience=40, cache_dir=None, log=QUIET)
    return out, card
