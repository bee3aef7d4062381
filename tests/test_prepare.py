"""`train prepare`: faces cropped out of raw illustrations."""

import pytest
from PIL import Image

from conftest import QUIET

pytestmark = pytest.mark.slow


def test_prepare_crops_a_real_scene_and_skips_a_corrupt_file(data, tmp_path, capsys):
    from train.prepare import prepare

    raw = tmp_path / "raw" / "someone"
    raw.mkdir(parents=True)
    (raw / "scene.jpg").write_bytes((data / "scenes" / "101.jpg").read_bytes())
    (raw / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this JPEG stops here")
    tally = prepare(tmp_path / "raw", tmp_path / "out", log=QUIET)
    assert tally["several"] == 1 and tally["unreadable"] == 1
    crops = sorted((tmp_path / "out" / "someone").iterdir())
    assert [p.name for p in crops] == ["scene-0.jpg", "scene-1.jpg"]
    assert Image.open(crops[0]).size == (128, 128)
    assert "skipped" in capsys.readouterr().err
