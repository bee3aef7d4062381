"""`train evaluate`: its JSON, the card's own numbers on the test split, grey and restyled faces,
and the one line for a missing folder."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_python
from synthetic import SHAPES

pytestmark = pytest.mark.slow


def test_evaluate_returns_the_documented_json(trained, shapes, tmp_path):
    out, _ = trained
    stdout = run_python(f"""
        import sys
        from train.cli import main
        sys.exit(main(["evaluate", "--data", {str(shapes)!r}, "--model", {str(out)!r},
                       "--confusion", {str(tmp_path / 'cm.png')!r}]))
        """)
    result = json.loads(stdout)
    assert {"accuracy", "macro_accuracy", "top5_accuracy", "per_class_recall", "images", "model"} <= set(result)
    assert result["images"] == 450 and set(result["per_class_recall"]) == set(SHAPES)
    assert 0.9 <= result["accuracy"] <= 1.0
    assert Image.open(tmp_path / "cm.png").size[0] > 100


def test_evaluate_on_the_models_own_test_split_gives_the_cards_numbers(trained, shapes, tmp_path):
    from train.evaluate import evaluate_folder

    out, card = trained
    result = evaluate_folder(shapes, out, tmp_path / "test.png", part="test")
    expected = card["metrics"]["test"]
    assert result["part"] == "test" and result["images"] == expected["images"] == card["training"]["images"]["test"]
    assert (result["accuracy"], result["macro_accuracy"]) == (expected["accuracy"], expected["macro_accuracy"])

    import shutil

    bare = shutil.copytree(out, tmp_path / "bare", ignore=shutil.ignore_patterns("split.json", "training"))
    with pytest.raises(FileNotFoundError, match="has no split.json, so it has no test split"):
        evaluate_folder(shapes, bare, tmp_path / "bare.png", part="test")


def test_evaluate_greyscale_judges_grey_faces_and_keeps_the_cards_confusion_picture(trained, shapes, tmp_path):
    from train.dataset import greyscale
    from train.evaluate import evaluate_folder

    rgb = np.array([[[[255, 0, 0], [0, 255, 0], [0, 0, 255], [90, 90, 90]]]], np.uint8)
    assert greyscale(rgb).tolist() == [[[[76] * 3, [150] * 3, [29] * 3, [90] * 3]]]
    out, _ = trained
    card_picture = (out / "confusion.png").read_bytes()
    grey = evaluate_folder(shapes, out, grey=True)
    assert (out / "confusion.png").read_bytes() == card_picture, "judging grey faces leaves the card's picture"
    assert Path(grey["confusion_png"]) == out / "confusion-greyscale.png" and Path(grey["confusion_png"]).is_file()
    assert grey["greyscale"] is True and grey["colourless_faces"] == {"images": grey["images"], "accuracy": grey["accuracy"]}
    colour = evaluate_folder(shapes, out, tmp_path / "colour.png")
    assert "greyscale" not in colour and colour["colourless_faces"]["images"] < colour["images"]


def test_evaluate_styles_judges_the_faces_redrawn_in_each_style_seen_and_unseen(trained, shapes):
    from train.evaluate import evaluate_folder
    from train.styles import STYLE_SHIFTS, UNSEEN_SHIFTS

    out, _ = trained
    result = evaluate_folder(shapes, out, part="test", styles=True)
    assert 0.0 <= result["named_at_threshold"] <= result["accuracy"]
    for key, shifts in (("styles", STYLE_SHIFTS), ("unseen_styles", UNSEEN_SHIFTS)):
        assert set(result[key]) == set(shifts) | {"mean_accuracy", "mean_named_at_threshold"}
        for name in shifts:
            assert 0.0 <= result[key][name]["macro_accuracy"] <= 1.0
            # Named right and sure enough is never more than named right.
            assert 0.0 <= result[key][name]["named_at_threshold"] <= result[key][name]["accuracy"]
        for metric in ("accuracy", "named_at_threshold"):
            assert result[key][f"mean_{metric}"] == pytest.approx(
                np.mean([result[key][n][metric] for n in shifts]), abs=1e-4)


def test_evaluate_page_framing_judges_the_faces_cut_the_pages_way_overall_and_by_source(trained, shapes):
    from synthetic import SHAPES
    from train.evaluate import evaluate_folder

    out, _ = trained
    table = shapes.parent / "characters.csv"  # the shapes' folder has a parent of its own
    classes = sorted(SHAPES)
    table.write_text("slug,name,series,source,role\n" + "".join(
        f"{c},{c},shapes,{'round' if i % 2 else 'square'} ones,known\n" for i, c in enumerate(classes)))
    try:
        result = evaluate_folder(shapes, out, part="test", page_framing=True)
    finally:
        table.unlink()
    framed = result["page_framed"]
    assert 0.0 <= framed["named_at_threshold"] <= framed["accuracy"] <= 1.0
    assert 0.0 <= framed["named_at_threshold_at_64_px"] <= 1.0
    assert 0 <= framed["faces_found"] <= result["images"]
    assert set(framed["by_source"]) == {"round ones", "square ones"}
    assert sum(v["faces"] for v in framed["by_source"].values()) == result["images"]
    for figures in framed["by_source"].values():
        assert 0.0 <= figures["named_at_threshold"] <= figures["accuracy"] <= 1.0
    assert "page_framed" not in evaluate_folder(shapes, out, part="test")


def test_evaluate_and_fit_say_in_one_line_when_the_data_folder_is_missing(trained, tmp_path, capsys):
    from train.cli import main

    out, _ = trained
    for command in (["evaluate", "--model", str(out)], ["fit", "--out", str(tmp_path / "out"), "--cache", str(tmp_path)]):
        assert main([*command, "--data", str(tmp_path / "nowhere")]) == 1
        err = capsys.readouterr().err.strip()
        assert err == f"error: {tmp_path / 'nowhere'} is not a folder: give the folder of crops, one sub-folder per character."


def test_the_trade_table_gives_each_kinds_share_at_every_threshold():
    from train.trade import trade_table

    right = np.array([True, True, True, False])
    table = trade_table({"faces": (right, np.array([0.15, 0.55, 0.95, 0.99]))},
                        {"portraits": np.array([0.05, 0.25, 0.65]), "scene_faces": np.zeros(0)},
                        thresholds=(0.1, 0.5, 0.9))
    assert table == [{"threshold": 0.1, "faces_named": 0.75, "portraits_unknown": round(1 / 3, 4), "scene_faces_unknown": None},
                     {"threshold": 0.5, "faces_named": 0.5, "portraits_unknown": round(2 / 3, 4), "scene_faces_unknown": None},
                     {"threshold": 0.9, "faces_named": 0.25, "portraits_unknown": 1.0, "scene_faces_unknown": None}]


def test_the_trade_table_needs_a_model_that_kept_strangers_aside(trained, shapes, tmp_path):
    from train.evaluate import evaluate_folder

    out, _ = trained
    (tmp_path / "strangers").mkdir()
    Image.new("RGB", (40, 40), "white").save(tmp_path / "strangers" / "1.jpg")
    with pytest.raises(FileNotFoundError, match="names no strangers: the model did not train with --strangers"):
        evaluate_folder(shapes, out, tmp_path / "c.png", strangers=tmp_path / "strangers")
