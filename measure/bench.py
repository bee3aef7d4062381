"""`python -m measure`: measured numbers for the README, reproducible by anyone.

    python -m measure detection [--images DIR] [--max-side N] [--angles A ...] ...
        precision and recall of the cascade against DIR/boxes.csv: upstream's settings before,
        the page's after, and the steps between (or one row with the settings given)
    python -m measure crops [--per-folder N]
        share of face crops (fewshot/ and faces/) found at 1-4 times their size, with and
        without the detector's margin retry: a face that fills the picture
    python -m measure classify [--model DIR] [--runs N]
        milliseconds per face for each way Keras offers to run a small batch
    python -m measure speed [--images DIR] [--limit N]
        end-to-end latency per image with a per-stage breakdown, the report's way in the same
        run, and the command line's cold start
"""

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from animerec.decode import decode_image  # noqa: E402
from animerec.defaults import UPRIGHT_ONLY  # noqa: E402
from animerec.detect import UPSTREAM_SETTINGS, DetectorSettings, face_outline, load_detector  # noqa: E402
from measure.detection import read_boxes, score_detections  # noqa: E402
from animerec.errors import AnimerecError  # noqa: E402
from animerec.paths import IMAGE_EXTENSIONS, data_dir  # noqa: E402


def machine():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.machine()} {cores}-core CPU, {datetime.date.today().isoformat()}"


def describe(settings):
    """The detector settings in a few words, for a table row."""
    bound = "full image" if settings.max_side >= 10**6 else f"{settings.max_side} px"
    turned = [f"{a:+g}" for a in settings.angles if a != 0]
    return (f"scale {settings.scale_factor:g}, neighbours {settings.min_neighbors}, {bound}"
            + (f"; turned {'/'.join(turned)} deg at {settings.turned_max_side} px" if turned else ""))


def detection_rows():
    """(label, settings) from upstream's to the page's, one change at a time (the face check last)."""
    page = DetectorSettings()
    unchecked = page._replace(face_check=False)
    upright = unchecked._replace(angles=UPRIGHT_ONLY)
    return [
        ("upstream, before", UPSTREAM_SETTINGS),
        ("upstream on a 640 px copy", UPSTREAM_SETTINGS._replace(max_side=640)),
        ("page's sensitivity, upright only", upright),
        ("turned passes at the upright copy's size", unchecked._replace(turned_max_side=page.max_side)),
        ("page default without the margin retry or the face check", unchecked._replace(retry_margin=0.0)),
        ("page default without the face check", unchecked),
        ("page default", page),
    ]


def detection(images, rows):
    """Print a Markdown table: settings, precision and recall at IoU 0.3 and 0.5, ms per image."""
    marked = read_boxes(images / "boxes.csv")
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    decoded = {p.name: decode_image(p.read_bytes()) for p in files}
    detector = load_detector()
    print(f"{len(files)} images, {sum(len(b) for b in marked.values())} marked faces in {images}; "
          f"min size {rows[0][1].min_size} px; {machine()}")
    print("| detector | settings | precision @0.3 | recall @0.3 | precision @0.5 | recall @0.5 | ms per image (median) |")
    print("|---|---|---|---|---|---|---|")
    for label, settings in rows:
        found, seconds = {}, []
        for name, image in decoded.items():
            start = time.perf_counter()
            found[name] = detector.detect(image, settings)
            seconds.append(time.perf_counter() - start)
        at3, at5 = score_detections(found, marked)
        print(f"| {label} | {describe(settings)} | {at3.precision:.3f} | {at3.recall:.3f} | {at5.precision:.3f} "
              f"| {at5.recall:.3f} | {statistics.median(seconds) * 1000:.0f} |", flush=True)
    # The last row's boxes as the page draws them (`face_outline`), then on the half of the
    # scenes whose matches fitted the outline's two numbers and on the other half, which judges it.
    outlined = {name: [face_outline(b, decoded[name].shape) for b in boxes] for name, boxes in found.items()}
    fitted, judged = sorted(found)[::2], sorted(found)[1::2]
    for label, boxes, names in (("face outlines, as drawn", outlined, sorted(found)),
                                ("cascade's boxes, half that fitted the outline", found, fitted),
                                ("face outlines, half that fitted them", outlined, fitted),
                                ("cascade's boxes, other half", found, judged),
                                ("face outlines, other half", outlined, judged)):
        at3, at5 = score_detections({n: boxes[n] for n in names}, {n: marked.get(n, []) for n in names})
        print(f"| {rows[-1][0]}: {label} ({len(names)} scenes) | {describe(rows[-1][1])} | {at3.precision:.3f} "
              f"| {at3.recall:.3f} | {at5.precision:.3f} | {at5.recall:.3f} | |", flush=True)
    # The face check trained on the calibration half of the shared scenes
    # (`train.scenes.scene_halves`): only the other half judges it.
    if Path(images).resolve() != (data_dir() / "scenes").resolve():
        return
    from train.scenes import scene_halves

    held_out = sorted(p.name for p in scene_halves(images)["test"] if p.name in decoded)
    for label, settings in (("without the face check", rows[-1][1]._replace(face_check=False)),
                            ("with the face check", rows[-1][1]._replace(face_check=True))):
        outlines = {n: [face_outline(b, decoded[n].shape) for b in detector.detect(decoded[n], settings)]
                    for n in held_out}
        at3, at5 = score_detections(outlines, {n: marked.get(n, []) for n in held_out})
        print(f"| {rows[-1][0]}: face outlines, {label}, the half the face check never saw ({len(held_out)} scenes) "
              f"| {describe(rows[-1][1])} | {at3.precision:.3f} | {at3.recall:.3f} | {at5.precision:.3f} "
              f"| {at5.recall:.3f} | |", flush=True)


def crops(data, per_folder=4, scales=(1, 2, 3, 4), seed=0):
    """Print a Markdown table: the share of face crops in which the detector finds a face, the
    crop enlarged `scales` times, with and without its margin retry. `per_folder` crops are
    drawn from each character's folder of `fewshot/` and `faces/`."""
    import random

    import cv2

    rng = random.Random(seed)
    paths = [p for root in ("fewshot", "faces") for folder in sorted((data / root).iterdir()) if folder.is_dir()
             for p in rng.sample(sorted(folder.iterdir()), min(per_folder, len(list(folder.iterdir()))))]
    images = [decode_image(p.read_bytes()) for p in paths]
    detector = load_detector()
    page = DetectorSettings()
    print(f"{len(images)} crops ({per_folder} per character of fewshot/ and faces/); {machine()}")
    print("| detector | " + " | ".join(f"found at {s}x" for s in scales) + " |")
    print("|---|" + "---|" * len(scales))
    for label, settings in (("page default without the margin retry or the face check",
                             page._replace(retry_margin=0.0, face_check=False)),
                            ("page default without the face check", page._replace(face_check=False)),
                            ("page default", page)):
        shares = []
        for scale in scales:
            found = sum(bool(detector.detect(cv2.resize(im, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC),
                                             settings)) for im in images)
            shares.append(f"{found / len(images):.1%}")
        print(f"| {label} | " + " | ".join(shares) + " |", flush=True)


def inference_ms(call, image, boxes, runs):
    """Median milliseconds per face of `call(image, boxes)` after three warm-up calls."""
    for _ in range(3):
        call(image, boxes)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call(image, boxes)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000 / len(boxes)


def page_call(recognizer):
    """What the page does per image once faces are found: crop, resize, one batched call."""
    from animerec.crop import crop_faces

    return lambda image, boxes: recognizer.run(crop_faces(image, boxes, recognizer.input_size))


def synthetic_scene(faces=8):
    """A 1024 x 768 noise image and `faces` boxes of 90 px, for timing without data."""
    import numpy as np

    from animerec.detect import Box

    image = np.random.default_rng(0).integers(0, 255, (768, 1024, 3), dtype=np.uint8)
    return image, [Box(40 + 110 * i, 200, 90, 90) for i in range(faces)]


def classify(model_path, runs):
    """Print median ms per face for batches of 1 and 8 with each way Keras offers to run a
    small batch, crop and resize included."""
    from animerec.crop import crop_faces
    from animerec.model import load_recognizer

    recognizer = load_recognizer(model_path)
    model, size = recognizer.model, recognizer.input_size
    image, boxes = synthetic_scene()
    ways = {
        "predict_on_batch (the page's way)": page_call(recognizer),
        "model(x) eager call": lambda im, b: model(crop_faces(im, b, size), training=False),
        "predict()": lambda im, b: model.predict(crop_faces(im, b, size), verbose=0),
    }
    print(f"model {recognizer.version}, input {size} px, median of {runs} runs; crop and resize included; {machine()}")
    print("| way | ms per image, 1 face | ms per face, batch of 8 |")
    print("|---|---|---|")
    for name, call in ways.items():
        one, eight = (inference_ms(call, image, b, runs) for b in (boxes[:1], boxes))
        print(f"| {name} | {one:.1f} | {eight:.1f} |")


def speed(images, limit, cold_runs=3):
    """Print end-to-end latency per image (p50, p95, stages) through the page's own functions,
    with the network run by Keras (the page) and by NumPy (the command line), the report's way
    beside them, and the cold start of the command line."""
    import subprocess

    import numpy as np

    from animerec.draw import draw_faces
    from animerec.model import load_recognizer
    from animerec.recognize import analyse, name_faces

    files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)[:limit]
    blobs = [p.read_bytes() for p in files]
    detector = load_detector()
    engines = {engine: load_recognizer(engine=engine) for engine in ("keras", "numpy")}
    recognizer = engines["keras"]
    size = recognizer.input_size

    def page_way(recognizer):
        def run(data, clock):
            image = decode_image(data)
            clock("decode")
            analysis = analyse(image, detector, recognizer)  # detect, crop, classify, the checks
            clock("analyse")
            faces = name_faces(analysis, recognizer.characters, float(recognizer.card.get("threshold", 0.5)),
                               scorer=recognizer.scorer)
            clock("name")
            draw_faces(image, faces)
            clock("draw")
        return run

    def report_way(data, clock):
        from animerec.crop import crop_faces
        from animerec.recognize import Analysis

        image = decode_image(data)
        boxes = detector.detect(image, UPSTREAM_SETTINGS)
        rows = [recognizer.model.predict(crop_faces(image, [box], size), verbose=0)[0] for box in boxes]
        probabilities = np.array(rows).reshape(len(boxes), len(recognizer.characters))
        draw_faces(image, name_faces(Analysis(boxes, np.zeros((len(boxes), 1, 1, 3)), probabilities),
                                     recognizer.characters))
        clock("total")

    def measure(pipeline):
        for data in blobs[:3]:  # warm-up
            pipeline(data, lambda stage: None)
        stages, totals = {}, []
        for data in blobs:
            marks = [("start", time.perf_counter())]
            pipeline(data, lambda stage: marks.append((stage, time.perf_counter())))
            for (_, before), (stage, after) in zip(marks, marks[1:]):
                stages.setdefault(stage, []).append((after - before) * 1000)
            totals.append((marks[-1][1] - marks[0][1]) * 1000)
        return totals, stages

    def p(values, q):
        return float(np.percentile(values, q))

    measured = {engine: measure(page_way(r)) for engine, r in engines.items()}
    report_totals, _ = measure(report_way)
    cold = []
    for _ in range(cold_runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "animerec", str(files[0]), "--json"], capture_output=True, check=True)
        cold.append(time.perf_counter() - start)

    stage_names = list(measured["keras"][1])
    print(f"{len(files)} images from {images}, after 3 warm-up images; model {recognizer.version}; {machine()}")
    print("| pipeline | p50 ms | p95 ms | " + " | ".join(f"{s} p50" for s in stage_names) + " |")
    print("|---|---|---|" + "---|" * len(stage_names))
    for engine, label in (("keras", "the page: analyse and name, network by Keras"),
                          ("numpy", "the command line: the same, network by NumPy")):
        totals, stages = measured[engine]
        print(f"| {label} ({describe(DetectorSettings())}; one batched call) | {p(totals, 50):.0f} | "
              f"{p(totals, 95):.0f} | " + " | ".join(f"{p(v, 50):.1f}" for v in stages.values()) + " |")
    print(f"| the report's way (full image, one predict() per face) | {p(report_totals, 50):.0f} | "
          f"{p(report_totals, 95):.0f} |" + " |" * len(stage_names))
    print(f"speed-up of the page, p50: {p(report_totals, 50) / p(measured['keras'][0], 50):.1f}x; "
          f"cold start of `python -m animerec FILE` (median of {cold_runs}): {statistics.median(cold):.1f} s")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m measure", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("detection")
    p.add_argument("--images", type=Path, default=None, help="folder with images and boxes.csv (default: the shared scenes)")
    page = DetectorSettings()
    p.add_argument("--max-side", type=int, help=f"one row: the upright copy's size (page: {page.max_side})")
    p.add_argument("--angles", type=float, nargs="+", help=f"one row: the passes' angles (page: {page.angles})")
    p.add_argument("--turned-max-side", type=int, help=f"one row: the turned copies' size (page: {page.turned_max_side})")
    p.add_argument("--scale-factor", type=float, help=f"one row: (page: {page.scale_factor})")
    p.add_argument("--min-neighbors", type=int, help=f"one row: (page: {page.min_neighbors})")
    p.add_argument("--retry-margin", type=float, help=f"one row: (page: {page.retry_margin})")
    p = commands.add_parser("crops")
    p.add_argument("--per-folder", type=int, default=4, help="crops drawn from each character's folder")
    p = commands.add_parser("speed")
    p.add_argument("--images", type=Path, default=None, help="folder of images (default: the shared scenes)")
    p.add_argument("--limit", type=int, default=60, help="how many images to time")
    p.add_argument("--cold-runs", type=int, default=3, help="new processes timed for the cold start")
    p = commands.add_parser("classify")
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    if args.command == "detection":
        images = args.images or data_dir() / "scenes"
        if not (images / "boxes.csv").is_file():
            print(f"error: no boxes.csv in {images}", file=sys.stderr)
            return 1
        given = {f: getattr(args, f) for f in DetectorSettings._fields if getattr(args, f, None) is not None}
        if "angles" in given:
            given["angles"] = tuple(given["angles"])
        rows = [("the settings given", DetectorSettings()._replace(**given))] if given else detection_rows()
        detection(images, rows)
        return 0
    if args.command == "crops":
        crops(data_dir(), args.per_folder)
        return 0
    try:
        if args.command == "speed":
            speed(args.images or data_dir() / "scenes", args.limit, args.cold_runs)
        elif args.command == "classify":
            classify(args.model, args.runs)
    except AnimerecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
