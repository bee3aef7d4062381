"""The benchmark commands run end to end on two real images (their numbers go in the README)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from animerec import DetectorSettings
from measure.bench import describe

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
    result = subprocess.run([sys.executable, "-m", "measure", *map(str, args)], capture_output=True,
                            text=True, cwd=ROOT, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def table_rows(out):
    """{label: (precision, recall) at IoU 0.3} from the detection benchmark's table."""
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ") and "precision" not in line]
    return {cells[0].strip(): (float(cells[2]), float(cells[3])) for cells in rows}


def test_detection_benchmark_goes_from_upstream_to_the_page_default(two_scenes):
    out = bench("detection", "--images", two_scenes)
    assert "2 images, 3 marked faces" in out
    rows = table_rows(out)
    labels = list(rows)
    assert labels[0] == "upstream, before"
    assert labels[4:7] == ["page default without the margin retry or the face check",
                           "page default without the face check", "page default"]
    # Then the page default's boxes as drawn, and the halves that fitted and judged the outline
    # (the face check's held-out half is only that of the shared scenes).
    assert labels[7] == "page default: face outlines, as drawn (2 scenes)" and len(labels) == 12
    assert all(0.0 <= p <= 1.0 and 0.0 <= r <= 1.0 for p, r in rows.values())


def test_detection_benchmark_with_settings_given(two_scenes):
    out = bench("detection", "--images", two_scenes, "--max-side", "640", "--angles", "0")
    labels = list(table_rows(out))
    assert labels[0] == "the settings given" and labels[1] == "the settings given: face outlines, as drawn (2 scenes)"
    assert f"| {describe(DetectorSettings(max_side=640, angles=(0,)))} |" in out


def test_speed_benchmark(two_scenes):
    out = bench("speed", "--images", two_scenes, "--limit", "2", "--cold-runs", "1")
    settings = describe(DetectorSettings())
    assert f"| the page: analyse and name, network by Keras ({settings}; one batched call) |" in out
    assert f"| the command line: the same, network by NumPy ({settings}; one batched call) |" in out
    assert "| the report's way" in out and "speed-up of the page, p50:" in out and "cold start" in out


def test_crops_benchmark_counts_faces_found_at_each_enlargement(data):
    out = bench("crops", "--per-folder", "1")
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| page default")]
    assert [r[0].strip() for r in rows] == ["page default without the margin retry or the face check",
                                            "page default without the face check", "page default"]
    assert all(0.0 <= float(cell.strip().rstrip("%")) <= 100.0 for r in rows for cell in r[1:])
