"""The benchmark commands run end to end on two real images (their numbers go in the README)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def two_scenes(data, tmp_path):
    lines = (data / "scenes" / "boxes.csv").read_text().splitlines()
    names = ["101.jpg", "1.jpg"]
    for name in names:
        (tmp_path / name).write_bytes((data / "scenes" / name).read_bytes())
    (tmp_path / "boxes.csv").write_text("\n".join([lines[0]] + [l for l in lines[1:] if l.split(",")[0] in names]))
    return tmp_path


def bench(*args):
    result = subprocess.run([sys.executable, "-m", "animerec.bench", *map(str, args)], capture_output=True,
                            text=True, cwd=ROOT, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_detection_benchmark(two_scenes):
    out = bench("detection", "--images", two_scenes, "--max-side", "640")
    assert "2 images, 3 marked faces" in out
    row = next(line for line in out.splitlines() if line.startswith("| 640 px |"))
    precision, recall = (float(v) for v in row.split("|")[2:4])
    assert 0.0 <= precision <= 1.0 and 0.0 <= recall <= 1.0


def test_speed_benchmark(two_scenes):
    out = bench("speed", "--images", two_scenes, "--limit", "2", "--cold-runs", "1")
    assert "| animerec (bound 640 px" in out and "| the report's way" in out
    assert "speed-up, p50:" in out and "cold start" in out
