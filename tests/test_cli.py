"""The command line, run as a user runs it: exit codes, the JSON's shape, one line per problem."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import encode, gradient

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, env=None, cwd=ROOT):
    result = subprocess.run([sys.executable, "-m", "animerec", *map(str, args)], capture_output=True, text=True,
                            cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=300)
    return result


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    stripes = (np.arange(80) // 4 % 2 * 60).astype(np.uint8)[None, :, None]  # lines, so the network is asked
    (folder / "card.png").write_bytes(encode(Image.fromarray(gradient(80, 60) // 2 + stripes)))
    (folder / "blank.jpg").write_bytes(encode(Image.new("RGB", (120, 90), "white"), "JPEG"))
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_bytes(b"<html>this is not a picture</html>")
    (folder / "saved.jfif").write_bytes(encode(Image.new("RGB", (60, 40), "white"), "JPEG"))  # Windows' JPEG name
    (folder / "notes.txt").write_text("not an image, and not taken from a folder")
    return folder


def check_face_shape(face):
    assert set(face) == {"box", "label", "name", "score", "top_k", "source", "colourless", "verdict"}
    assert isinstance(face["colourless"], bool)
    assert face["verdict"] in ("named", "below_threshold", "nobody_close", "no_line", "no_model")
    assert (face["verdict"] == "named") == (face["label"] not in ("unknown", None))
    assert face["source"] in ("model", "gallery", None)
    assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
    assert 0.0 <= face["score"] <= 1.0
    for slug, p in face["top_k"]:
        assert isinstance(slug, str) and 0.0 <= p <= 1.0


def test_json_for_good_and_bad_files_with_exit_status_1(files):
    result = run_cli(files / "card.png", files / "empty.png", files / "text.png", files / "missing.png", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert [Path(r["file"]).name for r in report] == ["card.png", "empty.png", "text.png", "missing.png"]
    assert report[0]["faces"] == [] and isinstance(report[0]["model"], str) and 0 <= report[0]["threshold"] <= 1
    assert all(set(r) == {"file", "error"} for r in report[1:])
    problems = result.stderr.strip().splitlines()
    assert len(problems) == 3, result.stderr
    assert "empty" in problems[0] and "not an image" in problems[1] and "check the path" in problems[2]
    assert "Traceback" not in result.stderr


def test_no_detect_gives_one_face_per_image_with_the_full_box(files):
    result = run_cli(files / "card.png", "--no-detect", "--json", "--top-k", "4")
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)
    [face] = entry["faces"]
    check_face_shape(face)
    assert face["box"] == [0, 0, 80, 60]
    assert len(face["top_k"]) == 4
    assert face["label"] == ("unknown" if face["score"] < entry["threshold"] else face["top_k"][0][0])


def test_a_flat_picture_taken_whole_is_unknown_with_no_candidates(files):
    result = run_cli(files / "blank.jpg", "--no-detect", "--json")
    assert result.returncode == 0, result.stderr
    [face] = json.loads(result.stdout)[0]["faces"]
    check_face_shape(face)
    assert (face["label"], face["score"], face["top_k"], face["source"]) == ("unknown", 0.0, [], None)


def test_threshold_one_makes_every_face_unknown(files):
    [entry] = json.loads(run_cli(files / "card.png", "--no-detect", "--json", "--threshold", "1").stdout)
    assert entry["threshold"] == 1.0 and entry["faces"][0]["label"] == "unknown"
    assert entry["faces"][0]["name"] == "Unknown"
    text = run_cli(files / "card.png", "--no-detect", "--threshold", "1").stdout
    near_miss = entry["faces"][0]["score"] >= 0.5
    assert ("Unknown, below the threshold 100%  [" in text) == near_miss, text
    assert ("Unknown, nobody it knows looks like this face  [" in text) == (not near_miss), text
    assert "%)" not in text and "_" not in text.split("[")[1], "names, not slugs, and no score of its own"
    text = run_cli(files / "blank.jpg", "--no-detect").stdout
    assert "Unknown, no line in it" in text, text


def test_a_folder_means_every_image_in_it(files):
    result = run_cli(files, "--json")
    names = [Path(r["file"]).name for r in json.loads(result.stdout)]
    assert names == ["blank.jpg", "card.png", "empty.png", "saved.jfif", "text.png"]


def test_real_scene_text_output_and_annotated_png(data, tmp_path):
    scene = data / "scenes" / "101.jpg"
    result = run_cli(scene, "--save-annotated", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{scene}: 2 faces")
    annotated = Image.open(tmp_path / "101.annotated.png")
    assert annotated.size == Image.open(scene).size


def test_real_scene_json_names_every_face(data):
    result = run_cli(data / "scenes" / "101.jpg", "--json")
    [entry] = json.loads(result.stdout)
    assert len(entry["faces"]) == 2
    for face in entry["faces"]:
        check_face_shape(face)
        assert face["label"] in {"unknown", face["top_k"][0][0]}


def test_no_face_check_keeps_the_box_that_is_no_face(data):
    # scenes/82.jpg (held out from the face check): the cascade also boxes a kimono's sash.
    counts = [len(json.loads(run_cli(data / "scenes" / "82.jpg", "--json", *extra).stdout)[0]["faces"])
              for extra in ((), ("--no-face-check",))]
    assert counts == [2, 3]


def test_a_missing_face_check_is_one_line_and_exit_1_unless_turned_off(data, tmp_path):
    scene, env = data / "scenes" / "82.jpg", {"ANIMEREC_FACE_CHECK": str(tmp_path / "no-such-check")}
    result = run_cli(scene, env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: The face check in") and result.stderr.strip().endswith(
        "Or pass --no-face-check.") and result.stderr.count("\n") == 1
    result = run_cli(scene, "--json", "--no-face-check", env=env)
    assert result.returncode == 0 and len(json.loads(result.stdout)[0]["faces"]) == 3


def test_an_unknown_face_in_black_and_white_art_says_it_has_almost_no_colour(data, tmp_path):
    grey = tmp_path / "101-grey.png"
    Image.open(data / "scenes" / "101.jpg").convert("L").save(grey)
    coloured = run_cli(data / "scenes" / "101.jpg")
    result = run_cli(grey)
    assert result.returncode == 0 and coloured.returncode == 0, result.stderr + coloured.stderr
    lines = result.stdout.splitlines()[1:]
    assert len(lines) == 2 and all("Unknown, " in line and "; it has almost no colour" in line for line in lines)
    assert "almost no colour" not in coloured.stdout
    [entry] = json.loads(run_cli(grey, "--json").stdout)
    assert [face["colourless"] for face in entry["faces"]] == [True, True]


def test_a_missing_model_named_explicitly_is_one_line_and_exit_1(files, tmp_path):
    result = run_cli(files / "card.png", env={"ANIMEREC_MODEL": str(tmp_path / "nothing")})
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "No model directory" in result.stderr


def test_a_broken_model_file_is_one_line_and_exit_1(files, tmp_path, recognizer):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("labels.json", "card.json"):
        (broken / name).write_bytes((recognizer.path / name).read_bytes())
    (broken / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    result = run_cli(files / "card.png", "--model", broken)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "Could not load" in result.stderr


@pytest.mark.parametrize("args, message", [(["--threshold", "2"], "--threshold"), (["--top-k", "0"], "--top-k"),
                                           (["--scale-factor", "1"], "--scale-factor")])
def test_bad_options_are_one_line_and_exit_2(files, args, message):
    result = run_cli(files / "card.png", *args)
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1


def test_a_file_named_like_a_subcommand_can_be_passed_with_a_path(files, tmp_path):
    (tmp_path / "enroll").write_bytes((files / "card.png").read_bytes())
    result = run_cli("./enroll", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["file"] == "enroll"


def test_a_folder_without_images_is_one_line_and_exit_1(tmp_path):
    (tmp_path / "notes.txt").write_text("no pictures here")
    result = run_cli(tmp_path, "--json")
    assert result.returncode == 1
    [entry] = json.loads(result.stdout)
    assert "holds no image" in entry["error"]
    assert result.stderr.strip().count("\n") == 0
