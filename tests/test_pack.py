"""`python -m train pack`: the compact copy of the data for a lent GPU keeps every name, shrinks
to the input size and stays close to the original, pixel for pixel and in what the model says."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthetic import SHAPES, write_shapes
from train.dataset import load_faces, load_unlabelled
from train.pack import pack

ROOT = Path(__file__).resolve().parent.parent
QUIET = lambda *args: None  # noqa: E731


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """faces/ at 128 px (three classes, one corrupt file), unknown/ at 64 px, fewshot/."""
    root = tmp_path_factory.mktemp("data")
    write_shapes(root / "faces", per_class=6, size=128)
    (root / "faces" / "disc" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    write_shapes(root / "unknown", per_class=5, size=64, shapes=("cross",), flat=True, seed=1)
    write_shapes(root / "fewshot", per_class=4, size=96, shapes=("ring",), seed=2)
    (root / "characters.csv").write_text("slug,name,series,source,role\ndisc,Disc,Shapes,test,known\n")
    return root


def test_the_copy_keeps_every_readable_name_at_the_input_size(small_data, tmp_path, capsys):
    (tmp_path / "pack" / "faces" / "gone").mkdir(parents=True)
    (tmp_path / "pack" / "faces" / "gone" / "left-from-before.png").write_bytes(b"old")
    size = pack(small_data, tmp_path / "pack", image_size=40, log=QUIET)
    assert not (tmp_path / "pack" / "faces" / "gone").exists(), "a copy made again holds nothing from before"
    assert "skipped" in capsys.readouterr().err and not (tmp_path / "pack" / "faces" / "disc" / "broken.jpg").exists()
    for folder in ("faces", "unknown", "fewshot"):
        originals = {p.relative_to(small_data / folder) for p in (small_data / folder).rglob("*.png")}
        assert {p.relative_to(tmp_path / "pack" / folder) for p in (tmp_path / "pack" / folder).rglob("*.png")} \
            == originals, folder
    assert Image.open(tmp_path / "pack" / "faces" / "disc" / "disc-000.png").size == (40, 40)
    assert Image.open(tmp_path / "pack" / "unknown" / "cross-000.png").size == (40, 40)
    assert (tmp_path / "pack" / "characters.csv").read_bytes() == (small_data / "characters.csv").read_bytes()
    assert size == sum(p.stat().st_size for p in (tmp_path / "pack").rglob("*") if p.is_file())


def test_a_crop_smaller_than_the_input_keeps_its_size_so_loading_enlarges_it_as_before(small_data, tmp_path):
    pack(small_data, tmp_path / "pack", image_size=80, log=QUIET)
    assert Image.open(tmp_path / "pack" / "unknown" / "cross-000.png").size == (64, 64)
    original, files = load_unlabelled(small_data / "unknown", 80)
    copy, copied_files = load_unlabelled(tmp_path / "pack" / "unknown", 80)
    assert copied_files == files
    assert np.abs(copy.astype(int) - original).mean() < 4  # grey levels, after the same enlargement


def test_loading_the_copy_gives_the_same_faces_within_a_few_grey_levels(small_data, tmp_path):
    pack(small_data, tmp_path / "pack", image_size=48, log=QUIET)
    original = load_faces(small_data / "faces", 48)
    copy = load_faces(tmp_path / "pack" / "faces", 48)
    assert copy.files == original.files and copy.classes == sorted(SHAPES)
    np.testing.assert_array_equal(copy.labels, original.labels)
    assert np.abs(copy.images.astype(int) - original.images).mean() < 4


def test_a_file_in_place_of_the_copy_is_one_line_and_exit_1(small_data, tmp_path):
    (tmp_path / "taken").write_text("")
    result = subprocess.run([sys.executable, "-m", "train", "pack", str(tmp_path / "taken"), "--data", str(small_data)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'taken'} is a file: give a folder to write "
                                                  "the copy into."]


def test_a_folder_without_faces_is_one_line_and_exit_1(tmp_path):
    result = subprocess.run([sys.executable, "-m", "train", "pack", str(tmp_path / "out"), "--data", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path} has no faces/ folder: give the shared data "
                                                  "folder (../shared/data)."]


def test_real_faces_keep_their_colours_and_their_names(data, recognizer, tmp_path):
    """Hair and eye colour tell characters apart: the copy keeps full-resolution colour, so the
    shipped model names packed crops as it names the originals."""
    from animerec.scoring import naming_scores

    source = tmp_path / "data"
    for folder in sorted((data / "faces").iterdir())[:10]:  # ten characters, eight crops each
        (source / "faces" / folder.name).mkdir(parents=True)
        for path in sorted(folder.glob("*.jpg"))[:8]:
            (source / "faces" / folder.name / path.name).symlink_to(path)
    pack(source, tmp_path / "pack", image_size=recognizer.input_size, log=QUIET)
    original = load_faces(source / "faces", recognizer.input_size)
    copy = load_faces(tmp_path / "pack" / "faces", recognizer.input_size)
    assert copy.files == original.files and len(copy.files) == 80
    difference = np.abs(copy.images.astype(int) - original.images)
    assert difference.mean() < 3.5, difference.mean()
    named = [naming_scores(recognizer.run(faces.images)).argmax(axis=1) for faces in (original, copy)]
    assert (named[0] == named[1]).mean() >= 0.97
