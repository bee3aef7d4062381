"""`python -m train prepare | fit | ensemble | calibrate | evaluate | face-check | pack | bench`: each a thin wrapper over one module."""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from train import defaults  # noqa: E402  (NumPy-free constants; the commands import Keras themselves)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m train", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("prepare", help="crop faces out of raw illustrations, one folder per character")
    p.add_argument("raw_dir", type=Path)
    p.add_argument("out_dir", type=Path)

    p = commands.add_parser("fit", help="train a network and write a model directory")
    p.add_argument("--data", type=Path, required=True, help="folder with one sub-folder of crops per character")
    p.add_argument("--out", type=Path, required=True, help="model directory to write, e.g. models/default")
    p.add_argument("--arch", choices=("seed", "default", "mobilenet"), default="default")
    p.add_argument("--epochs", type=int, default=defaults.EPOCHS)
    p.add_argument("--image-size", type=int, default=defaults.IMAGE_SIZE)
    p.add_argument("--batch-size", type=int, default=defaults.BATCH_SIZE)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--learning-rate", type=float, default=defaults.LEARNING_RATE)
    p.add_argument("--patience", type=int, default=defaults.PATIENCE, help="epochs without progress before stopping")
    p.add_argument("--cache", type=Path, default=Path(".cache"), help="where decoded crops are cached")
    p.add_argument("--split", type=Path, help="reuse another model's split.json (to compare networks on the same faces)")
    p.add_argument("--unknown", type=Path, help="folder of faces of characters in no class: half train the "
                   "network to be unsure of them, the rest calibrate the unknown rule")
    p.add_argument("--init", type=Path, help="model directory to start from: its weights, and its characters, "
                   "to which the new folders of --data are added")
    p.add_argument("--contrastive", type=float, default=0.0, help="weight of a supervised contrastive loss on the "
                   "pooled features, which keeps them telling apart characters the model never saw (default off)")
    p.add_argument("--non-faces", type=Path, help="scenes/ folder: squares of half its illustrations away from "
                   "their marked faces, and synthetic pictures, train the network to name no one in them")
    p.add_argument("--frozen-backbone", action="store_true", help="with --init: train only the layers after the "
                   "pooled features, so the face embedding the gallery uses stays as it was")
    p.add_argument("--precision", choices=("float32", "mixed_bfloat16"), help="the training policy (default: "
                   "mixed_bfloat16 on a GPU, else float32); the saved model is float32 either way")
    p.add_argument("--strangers", type=Path, help="folder of one face per character (strangers/): 60 %% train the "
                   "network to be unsure of them and to tell them apart, the rest calibrate and judge")
    p.add_argument("--styles", type=float, default=0.0, metavar="FRACTION", help="share of each batch redrawn in "
                   "another drawing style: blur, sharpening, JPEG, line weight, posterised, grey (default 0)")
    p.add_argument("--grey", type=float, default=0.0, metavar="FRACTION", help="share of each batch turned grey, "
                   "besides the grey among --styles: how manga pages and scans look (default 0)")
    p.add_argument("--page-framing", type=float, default=0.0, metavar="FRACTION", help="share of faces (known, "
                   "unknown and strangers alike) cut the way the page cuts them, around the box the detector finds "
                   "in each crop, so a source's framing is no sign of who it is (default 0)")
    p.add_argument("--degrade", type=float, default=defaults.DEGRADE_FRACTION, metavar="FRACTION",
                   help="share of known faces shrunk and enlarged back, as a small face reaches the model "
                   f"(default {defaults.DEGRADE_FRACTION})")
    p.add_argument("--degrade-sizes", type=int, nargs=2, default=defaults.DEGRADE_SIZES, metavar=("SMALLEST", "LARGEST"),
                   help="the pixel sizes they are shrunk to, drawn at random (default %(default)s)")
    p.add_argument("--negative-weight", type=float, default=defaults.UNKNOWN_WEIGHT, metavar="WEIGHT",
                   help="loss weight of each unknown face, stranger and picture with no face, against 1 for a known "
                   "face (default %(default)s)")
    p.add_argument("--hard-strangers", type=float, default=0.0, metavar="SHARE",
                   help="with --init and --strangers: that share of the strangers in each batch is drawn by how "
                   "close --init puts them to one of its characters, the rest evenly (default 0)")
    p.add_argument("--export", choices=("best", "last"), default="best", help="the epoch the model directory gets: "
                   "the best validation macro accuracy on clean crops (default), or the last")
    p.add_argument("--export-only", action="store_true", help="write the model directory again from a finished "
                   "run of the same arguments (for the other --export), without training")
    p.add_argument("--init-data", type=Path, help="where --init's characters are, when --data holds only new ones "
                   "(default: the shared data folder its card names)")

    p = commands.add_parser("ensemble", help="one model directory from several trained on the same split: their "
                            "cosines averaged, their embeddings side by side")
    p.add_argument("members", type=Path, nargs="+", help="model directories written by fit")
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--data", type=Path, required=True, help="the crops the members were trained on (faces/)")
    p.add_argument("--weights", type=float, nargs="+", help="one weight per member (default: equal)")
    p.add_argument("--cache", type=Path, default=Path(".cache"))

    p = commands.add_parser("evaluate", help="metrics JSON and a confusion-matrix PNG on folder-per-class data")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--confusion", type=Path, help="PNG to write (default: confusion.png beside --model, "
                   "confusion-greyscale.png with --greyscale)")
    p.add_argument("--split", choices=("train", "val", "test"), help="only the faces the model's split.json "
                   "put in this part (--data must be the folder it trained on)")
    p.add_argument("--greyscale", action="store_true", help="turn every face grey first: how the model does on "
                   "black-and-white art")
    p.add_argument("--styles", action="store_true", help="also judge every face redrawn in each of six drawing "
                   "styles (blur, sharpening, JPEG, thick lines, posterised, grey), a proxy for art from other sources, "
                   "and in seven kinds of shift training never draws (flat colour, warm light, vivid, pale, grain, "
                   "tilted, loose crop)")
    p.add_argument("--page-framing", action="store_true", help="also judge every face cut the way the page cuts a "
                   "face in a picture (the detector's box widened by the page's margin), by source")
    p.add_argument("--strangers", type=Path, help="strangers/ folder: with --scenes or alone, also give the trade "
                   "table, at thresholds 0.1 to 0.9, of faces named right against the held-out strangers (the test "
                   "part of this folder, by the model's split.json) called Unknown")
    p.add_argument("--scenes", type=Path, help="scenes/ folder: the faces the page's detector finds in its judging "
                   "half join the trade table")

    p = commands.add_parser("calibrate", help="fit the unknown rule and the gallery's score, judge them, write the card")
    p.add_argument("--model", type=Path, required=True, help="model directory written by fit (with its split.json)")
    p.add_argument("--data", type=Path, required=True, help="the crops the model was trained on (faces/)")
    p.add_argument("--unknown", type=Path, required=True, help="faces of characters in no class (unknown/)")
    p.add_argument("--fewshot", type=Path, required=True, help="one folder per character to enrol (fewshot/)")
    p.add_argument("--scenes", type=Path, help="illustrations whose detected faces should all be Unknown")
    p.add_argument("--strangers", type=Path, help="one face per character (strangers/): the parts the model did not "
                   "train on calibrate the threshold and the cohort, and judge")
    p.add_argument("--target", type=float, default=defaults.THRESHOLD_TARGET,
                   help="share of each kind of calibration stranger to reject")
    p.add_argument("--portrait-target", type=float, default=defaults.PORTRAIT_TARGET,
                   help="share of the calibration fifth of strangers/ (official portraits) to reject, "
                   "if more than --target (default %(default)s)")
    p.add_argument("--draws", type=int, default=100, help="random few-shot episodes per k")
    p.add_argument("--embedding-layer", help="layer whose output is the gallery's face embedding (default: embedding)")
    p.add_argument("--cache", type=Path, default=Path(".cache"))

    p = commands.add_parser("face-check", help="train the small network that drops the detector's boxes that are "
                            "no face, choose its threshold and judge it on the held-out scenes")
    p.add_argument("--data", type=Path, help="the shared data folder (default: ANIMEREC_DATA, else ../shared/data)")
    p.add_argument("--out", type=Path, default=Path("models/face_check"))
    p.add_argument("--split", type=Path, default=Path("models/default/split.json"),
                   help="a model's split.json: only the crops that trained it train the check")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=Path(".cache"), help="where the gathered examples are kept")

    p = commands.add_parser("pack", help="a compact copy of the data (and Keras's wheels) to send to a lent GPU")
    p.add_argument("out_dir", type=Path, help="folder to write, e.g. .pack (ignored by git)")
    p.add_argument("--data", type=Path, help="the shared data folder (default: ANIMEREC_DATA, else ../shared/data)")
    p.add_argument("--image-size", type=int, default=80, help="the input size of the network to train")
    p.add_argument("--wheels", action="store_true", help="also download Keras and the packages it needs that the "
                   "GPU machine lacks, for its Python 3.12")

    p = commands.add_parser("bench", help="compare trained model directories: training and inference speed, scores")
    p.add_argument("models", type=Path, nargs="+")
    p.add_argument("--runs", type=int, default=30)

    args = parser.parse_args(argv)
    if args.command == "prepare":
        from train.prepare import prepare

        prepare(args.raw_dir, args.out_dir)
    elif args.command == "fit":
        from train.fit import fit

        if args.frozen_backbone and not args.init:
            parser.error("--frozen-backbone needs --init: the model directory whose backbone to keep")
        if not args.negative_weight >= 0:  # NaN too
            parser.error(f"--negative-weight is a loss weight, 0 or more; got {args.negative_weight}")
        shares = {"--degrade": args.degrade, "--styles": args.styles, "--grey": args.grey,
                  "--page-framing": args.page_framing, "--hard-strangers": args.hard_strangers}
        if not all(0 <= share <= 1 for share in shares.values()):  # NaN too
            parser.error("--degrade, --styles, --grey, --page-framing and --hard-strangers are shares of a "
                         "batch, from 0 to 1; got "
                         + ", ".join(f"{option} {share}" for option, share in shares.items()))
        from train.ensemble import ENSEMBLE_INIT, is_ensemble

        if args.init and is_ensemble(args.init):
            parser.error(ENSEMBLE_INIT)
        if args.hard_strangers and not (args.init and args.strangers):
            parser.error("--hard-strangers needs --init (the model that finds them) and --strangers")
        if args.hard_strangers and args.arch == "seed":
            parser.error("--hard-strangers needs a cosine head (--arch default or mobilenet) to find them")
        smallest, largest = args.degrade_sizes
        if not 1 <= smallest <= largest:
            parser.error(f"--degrade-sizes needs 1 <= SMALLEST <= LARGEST pixels; got {smallest} {largest}")

        from animerec.errors import AnimerecError

        try:
            fit(args.data, args.out, arch=args.arch, epochs=args.epochs, image_size=args.image_size,
                batch_size=args.batch_size, seed=args.seed, learning_rate=args.learning_rate,
                patience=args.patience, cache_dir=args.cache, split_file=args.split, unknown=args.unknown,
                init=args.init, init_data=args.init_data, contrastive=args.contrastive, non_faces=args.non_faces,
                frozen_backbone=args.frozen_backbone, precision=args.precision, strangers=args.strangers,
                style_fraction=args.styles, degrade_fraction=args.degrade, degrade_sizes=tuple(args.degrade_sizes),
                export=args.export, export_only=args.export_only, negative_weight=args.negative_weight,
                hard_strangers=args.hard_strangers, grey_fraction=args.grey,
                framing_fraction=args.page_framing)
        except (AnimerecError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    elif args.command == "ensemble":
        from animerec.errors import AnimerecError
        from train.ensemble import ensemble

        for folder in (*args.members, args.data):
            if not folder.is_dir():
                print(f"error: {folder}: no such folder.", file=sys.stderr)
                return 1
        try:
            ensemble(args.members, args.out, args.data, weights=args.weights, cache_dir=args.cache)
        except (AnimerecError, ValueError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    elif args.command == "calibrate":
        from animerec.errors import AnimerecError
        from train.calibrate import calibrate

        for option in ("model", "data", "unknown", "fewshot", "scenes", "strangers"):
            folder = getattr(args, option)
            if folder is not None and not folder.is_dir():
                print(f"error: --{option} {folder}: no such folder.", file=sys.stderr)
                return 1
        for option in ("target", "portrait_target"):
            share = getattr(args, option)
            if not 0 < share < 1:  # also refuses NaN
                print(f"error: --{option.replace('_', '-')} {share}: a share of strangers to reject, between 0 "
                      "and 1 (such as 0.92).", file=sys.stderr)
                return 1
        try:
            calibrate(args.model, args.data, args.unknown, args.fewshot, args.scenes, target=args.target,
                      draws=args.draws, embedding_layer=args.embedding_layer, cache_dir=args.cache,
                      strangers=args.strangers, portrait_target=args.portrait_target)
        except (AnimerecError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    elif args.command == "face-check":
        from animerec.paths import data_dir
        from train.facecheck import train_face_check

        data = args.data or data_dir()
        for folder in ("faces", "unknown", "strangers", "scenes"):
            if not (data / folder).is_dir():
                print(f"error: {data / folder}: no such folder (--data is the shared data folder).", file=sys.stderr)
                return 1
        if not args.split.is_file():
            print(f"error: --split {args.split}: no such file.", file=sys.stderr)
            return 1
        train_face_check(data, args.out, args.split, epochs=args.epochs, seed=args.seed, cache_dir=args.cache)
    elif args.command == "pack":
        from animerec.paths import data_dir
        from train.pack import pack

        if args.image_size < 8:
            parser.error(f"--image-size must be at least 8 pixels; got {args.image_size}")
        try:
            pack(args.data or data_dir(), args.out_dir, image_size=args.image_size, wheels=args.wheels)
        except OSError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    elif args.command == "bench":
        from train.bench import bench

        bench(args.models, runs=args.runs)
    elif args.command == "evaluate":
        from animerec.errors import AnimerecError
        from train.evaluate import evaluate_folder

        try:
            result = evaluate_folder(args.data, args.model, args.confusion, part=args.split, grey=args.greyscale,
                                    styles=args.styles, page_framing=args.page_framing, strangers=args.strangers,
                                    scenes=args.scenes)
        except (AnimerecError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(json.dumps(result, indent=1))
    return 0
