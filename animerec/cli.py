"""`python -m animerec IMAGE|DIR [...]`: the page's twin on the command line,
`python -m animerec enroll NAME IMAGE [...] --gallery PATH`: teach it a character, and
`python -m animerec characters`: who it knows.

Bad files are reported on one line each on stderr (and as `{"file", "error"}` in the JSON) while
the other files are still processed; the exit status is then 1. Never a traceback.
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from animerec import defaults  # noqa: E402
from animerec.decode import decode_image  # noqa: E402
from animerec.detect import DetectorSettings, load_detector  # noqa: E402
from animerec.errors import AnimerecError, ModelError  # noqa: E402
from animerec.paths import DEFAULT_MODEL_DIR, IMAGE_EXTENSIONS, model_dir  # noqa: E402
from animerec.recognize import (BELOW_THRESHOLD, NO_LINE, NO_MODEL, NOBODY_CLOSE, default_threshold,  # noqa: E402
                                recognize, to_dict)


def who_it_knows(path=None):
    """A paragraph on the characters the model knows, grouped by series (read from its card,
    without loading it), or a note that none is installed."""
    from animerec.model import known_in_words, read_card

    try:
        characters, _ = read_card(path)
    except AnimerecError:
        return "No recogniser is installed, so faces are found but not named."
    return (f"It knows {known_in_words(characters)}; 'python -m animerec characters' lists them. Anyone else "
            "is Unknown, unless taught with 'enroll'.")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m animerec",
        description="Find anime faces in images and name the characters. " + who_it_knows(),
        epilog="A file whose name is a subcommand ('enroll', 'characters') is passed as './enroll'.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="IMAGE|DIR",
                        help="image files, or folders whose images are all read")
    parser.add_argument("--top-k", type=int, default=defaults.TOP_K, help="characters listed per face (default %(default)s)")
    parser.add_argument("--threshold", type=float,
                        help="a face scoring below this is 'unknown' (default: the model card's, else %s)" % defaults.THRESHOLD)
    parser.add_argument("--no-detect", action="store_true", help="treat each whole image as one face")
    parser.add_argument("--json", action="store_true", help="print one JSON array instead of text")
    parser.add_argument("--save-annotated", type=Path, metavar="DIR", help="write each image with its boxes as PNG here")
    parser.add_argument("--model", type=Path, help="model directory (default: ANIMEREC_MODEL, else models/default)")
    parser.add_argument("--gallery", type=Path, help="a gallery of enrolled characters (see 'enroll') to compare faces with")
    _detector_arguments(parser)
    return parser


def build_enroll_parser():
    parser = argparse.ArgumentParser(
        prog="python -m animerec enroll",
        description="Add a character to a gallery from 1-10 pictures of it: the largest face found in each "
                    "picture (or, with --no-detect, the whole picture) is enrolled under NAME.",
    )
    parser.add_argument("name", help="the character's name; its slug (lower case, underscores) is the label")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    parser.add_argument("--gallery", type=Path, required=True, help="gallery file (.npz) to create or add to")
    parser.add_argument("--no-detect", action="store_true", help="each picture is already a face crop")
    parser.add_argument("--model", type=Path, help="model directory (default: ANIMEREC_MODEL, else models/default)")
    _detector_arguments(parser)
    return parser


def _detector_arguments(parser):
    detector = parser.add_argument_group("detector")
    detector.add_argument("--scale-factor", type=float, default=defaults.SCALE_FACTOR,
                          help="step between the sizes searched: smaller finds more faces, slower (default %(default)s)")
    detector.add_argument("--min-neighbors", type=int, default=defaults.MIN_NEIGHBORS,
                          help="overlapping hits a face needs: fewer finds more, with more mistakes "
                               "(default %(default)s)")
    detector.add_argument("--min-size", type=int, default=defaults.MIN_SIZE,
                          help="smallest face searched for, in pixels of the image (default %(default)s)")
    detector.add_argument("--max-side", type=int, default=defaults.DETECT_MAX_SIDE,
                          help="longest side of the copy the upright pass searches; turned passes use at most "
                               f"{defaults.DETECT_TURNED_MAX_SIDE} px (default %(default)s)")
    detector.add_argument("--upright-only", action="store_true",
                          help="skip the passes on turned copies that find tilted faces (faster)")
    detector.add_argument("--no-face-check", action="store_true",
                          help="keep every box the cascade finds, also those the face check says are no face "
                               "(a hand, folds of cloth)")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["enroll"]:
        return enroll_main(argv[1:])
    if argv[:1] == ["characters"]:
        return characters_main(argv[1:])
    args = build_parser().parse_args(argv)
    problem = _check_arguments(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        detector = _load_detector(args)
        recognizer = _load_model(args.model)
        gallery = _load_gallery(args.gallery, recognizer) if args.gallery else None
    except AnimerecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    threshold = args.threshold if args.threshold is not None else default_threshold(recognizer)
    settings = detector_settings(args)
    model_name = recognizer.version if recognizer else None

    results, failed = [], False
    for path, problem in _expand(args.paths):
        try:
            if problem:
                raise AnimerecError(problem)
            image = decode_image(path.read_bytes())
            faces = recognize(image, detector, recognizer, settings, not args.no_detect, threshold, args.top_k, gallery)
            if args.save_annotated:
                _save_annotated(image, faces, path, args.save_annotated)
        except (AnimerecError, OSError) as error:
            failed = True
            message = _message(error)
            print(f"{path}: {message}", file=sys.stderr)
            results.append({"file": str(path), "error": message})
            continue
        results.append({"file": str(path), "faces": [to_dict(f) for f in faces],
                        "model": model_name, "threshold": threshold})
        if not args.json:
            _print_text(path, faces, threshold)
    if args.json:
        print(json.dumps(results, indent=1, ensure_ascii=False))
    return 1 if failed else 0


def characters_main(argv):
    """`characters`: the characters the model knows, one per line with its series."""
    parser = argparse.ArgumentParser(prog="python -m animerec characters",
                                     description="List the characters the model knows, by series.")
    parser.add_argument("--model", type=Path, help="model directory (default: ANIMEREC_MODEL, else models/default)")
    args = parser.parse_args(argv)
    from animerec.model import by_series, read_card

    try:
        characters, _ = read_card(args.model)
    except AnimerecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for series, names in by_series(characters):
        print(f"{series} ({len(names)}): {', '.join(names)}")
    print(f"{len(characters)} characters; anyone else is Unknown unless taught with 'python -m animerec enroll'.")
    return 0


def enroll_main(argv):
    """`enroll`: add a character to a gallery file. Returns the exit status."""
    from animerec.gallery import MAX_ENROL_IMAGES, Gallery
    from animerec.recognize import TAKEN_WHOLE, enrolment_crops

    args = build_enroll_parser().parse_args(argv)
    problem = _check_detector_arguments(args) or (
        f"enrol from 1 to {MAX_ENROL_IMAGES} pictures at a time." if len(args.images) > MAX_ENROL_IMAGES else None)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        detector = _load_detector(args)
        from animerec.model import load_recognizer

        recognizer = load_recognizer(args.model or model_dir(), engine="numpy")
        gallery = _load_gallery(args.gallery, recognizer) if args.gallery.exists() else Gallery.for_model(recognizer)
    except AnimerecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    settings = detector_settings(args)
    images, failed = [], False
    for path in args.images:
        try:
            images.append((path, decode_image(path.read_bytes())))
        except (AnimerecError, OSError) as error:
            failed = True
            print(f"{path}: {_message(error)}", file=sys.stderr)
    crops, left_out, taken_whole = enrolment_crops([image for _, image in images], detector, recognizer.input_size,
                                                   not args.no_detect, settings)
    for i in taken_whole:
        print(f"{images[i][0]}: {TAKEN_WHOLE}.", file=sys.stderr)
    for i, why in left_out.items():
        failed = True
        print(f"{images[i][0]}: {why}.", file=sys.stderr)
    if len(crops) == 0:
        print(f"error: no face to enrol for {args.name!r}; nothing was written.", file=sys.stderr)
        return 1
    try:
        slug = gallery.add(args.name, recognizer.run(crops).embeddings)
        gallery.save(args.gallery)
    except AnimerecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: cannot write the gallery {args.gallery} ({error.strerror or error}): "
              "check that its folder exists and is writable.", file=sys.stderr)
        return 1
    print(f"enrolled {len(crops)} face{'s' if len(crops) != 1 else ''} of {args.name} as '{slug}' in {args.gallery} "
          f"({len(gallery)} character{'s' if len(gallery) != 1 else ''}: "
          + ", ".join(f"{s} {n}" for s, n in gallery.counts().items()) + ")")
    return 1 if failed else 0


def _load_gallery(path, recognizer):
    from animerec.errors import GalleryError
    from animerec.gallery import Gallery

    if recognizer is None:
        raise GalleryError("A gallery needs a model to compare faces with, and none is installed.")
    gallery = Gallery.load(path)
    gallery.check(recognizer)
    return gallery


def _message(error):
    if isinstance(error, OSError):
        return f"cannot read this file ({error.strerror or error}): check the path."
    return str(error)


def _check_arguments(args):
    if args.top_k < 1:
        return "--top-k must be at least 1."
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        return "--threshold must be between 0 and 1."
    return _check_detector_arguments(args)


def detector_settings(args):
    """The DetectorSettings the detector options ask for."""
    angles = defaults.UPRIGHT_ONLY if args.upright_only else defaults.DETECT_ANGLES
    return DetectorSettings(args.scale_factor, args.min_neighbors, args.min_size, args.max_side, angles,
                            face_check=not args.no_face_check)


def _check_detector_arguments(args):
    if args.scale_factor <= 1.0:
        return "--scale-factor must be greater than 1 (upstream uses 1.1)."
    if args.min_neighbors < 0 or args.min_size < 1 or args.max_side < 32:
        return "--min-neighbors must be >= 0, --min-size >= 1 and --max-side >= 32."
    return None


def _load_detector(args):
    """The detector, with the face check unless --no-face-check (then it is not even read)."""
    if args.no_face_check:
        return load_detector(face_check=None)
    try:
        return load_detector()
    except ModelError as error:
        raise ModelError(f"{error} Or pass --no-face-check.") from error


def _load_model(path):
    """The recogniser, or None (with a note) when the default model directory is absent. A
    model the user named explicitly must load."""
    chosen = path or model_dir()
    if path is None and not os.environ.get("ANIMEREC_MODEL") and not DEFAULT_MODEL_DIR.exists():
        print(f"note: no recogniser is installed ({DEFAULT_MODEL_DIR} is missing): faces are found but not named.",
              file=sys.stderr)
        return None
    from animerec.model import load_recognizer

    # A command reads a few pictures: NumPy runs the network without TensorFlow's import,
    # which would cost more than the pictures do (docs/benchmarks.md, "Cold start").
    return load_recognizer(chosen, engine="numpy")


def _expand(paths):
    """Files as given and folders as their images, sorted: [(path, problem or None)]. A folder
    with no image is a problem worth a sentence, not silence."""
    entries = []
    for path in paths:
        if not path.is_dir():
            entries.append((path, None))
            continue
        images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            kinds = ", ".join(sorted(IMAGE_EXTENSIONS))
            entries.append((path, f"this folder holds no image ({kinds}): check the path."))
        entries.extend((image, None) for image in images)
    return entries


def _save_annotated(image, faces, path, folder):
    from PIL import Image

    from animerec.draw import display_copy, draw_faces

    folder.mkdir(parents=True, exist_ok=True)
    shown, scale = display_copy(image)  # a thumbnail or a crop is enlarged so its captions fit
    Image.fromarray(draw_faces(shown, faces, scale)).save(folder / f"{path.stem}.annotated.png")


def _print_text(path, faces, threshold):
    print(f"{path}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
    for i, face in enumerate(faces, 1):
        box = "x={} y={} w={} h={}".format(*face.box)
        ranked = ", ".join(f"{c.name} {c.score:.1%}" for c in face.top_k)
        if face.verdict == NO_MODEL:
            print(f"  {i}. {box}")
        elif face.verdict == NO_LINE:
            print(f"  {i}. {box}: Unknown, no line in it (a flat colour or a smooth gradient)")
        elif face.verdict in (BELOW_THRESHOLD, NOBODY_CLOSE):  # its score is the closest character's
            why = (f"below the threshold {threshold:.0%}" if face.verdict == BELOW_THRESHOLD
                   else "nobody it knows looks like this face")
            if face.colourless:
                why += "; it has almost no colour, and black-and-white art is often Unknown"
            print(f"  {i}. {box}: Unknown, {why}  [{ranked}]")
        else:
            source = " from the gallery" if face.source == "gallery" else ""
            print(f"  {i}. {box}: {face.name} ({face.score:.1%}{source})  [{ranked}]")
