"""`python -m train fit`: train a network on folder-per-class crops and write a model directory.

The model, the data and the loop are plain Keras 3 and NumPy, so the same code trains under
TensorFlow (the page's backend) and under JAX (the GPU machine, which has no TensorFlow).
"""

import datetime
import platform
import time
from pathlib import Path

import keras
import numpy as np

from animerec.defaults import CROP_MARGIN
from train.architectures import COSINE_SCALE, MOBILENET_WEIGHTS, make_model
from train.batches import TrainingBatches
from train.batchnorm import recalibrate_batch_norm
from train.dataset import (STRANGER_FRACTIONS, list_images, load_faces, load_unlabelled, read_split, read_unknown_split, split_indices,
                           split_unlabelled)
from train.defaults import (BATCH_SIZE, DEGRADE_FRACTION, DEGRADE_SIZES, EPOCHS, IMAGE_SIZE, LEARNING_RATE,
                            NON_FACES_PER_BATCH, PATIENCE, STRANGERS_PER_BATCH, UNKNOWN_PER_BATCH, UNKNOWN_WEIGHT)
from train.devices import compile_whole_steps, cpu_count, restores_global_state, setup_devices
from train.ensemble import ENSEMBLE_INIT, is_ensemble
from train.evaluate import classification_metrics, confusion_matrix, confusion_png, naming_scores_of
from train.export import new_version, write_model_dir
from train.finetune import copy_weights, faces_with_init_classes, freeze_backbone
from train.losses import LABEL_SMOOTHING, MARGIN, contrastive_loss, margin_loss
from train.nonfaces import training_non_faces
from train.progress import WORK_DIR, EpochClock, MacroAccuracy, claim_work_dir, finish_run, read_history


@restores_global_state
def fit(data, out, arch="default", epochs=EPOCHS, image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, seed=0,
        learning_rate=LEARNING_RATE, patience=PATIENCE, cache_dir=".cache", split_file=None, unknown=None,
        init=None, init_data=None, contrastive=0.0, non_faces=None, frozen_backbone=False, precision=None,
        strangers=None, style_fraction=0.0, degrade_fraction=DEGRADE_FRACTION, degrade_sizes=DEGRADE_SIZES,
        export="best", export_only=False, negative_weight=UNKNOWN_WEIGHT, hard_strangers=0.0, grey_fraction=0.0,
        framing_fraction=0.0,
        log=print):
    """Train `arch` on the crops under `data` and write the model directory `out`.

    Splits per class with `seed` (near-duplicates kept together), weighs classes by the inverse
    square root of their size, keeps the checkpoint with the best validation macro accuracy,
    stops after `patience` epochs without progress, and resumes from `out/training/` if a
    previous run was interrupted. The test split alone gives the card's numbers. `split_file`
    (a model directory's `split.json`) reuses another run's split, so two networks are compared
    on the same faces. `unknown` is a folder of faces of characters in no class: half of them
    (near-duplicates together) join training with a uniform target (outlier exposure, Hendrycks
    et al. 2019), the rest is kept for calibrating and testing the unknown rule. `init` is a
    model directory whose weights start every layer of the same name and shape; characters it
    knows that `data` lacks are read from `init_data` (default: the shared data folder its card
    names) with its own split, so `data` may hold only new characters, which are added as classes.
    `non_faces` is a `scenes/` folder: squares of half its illustrations with no marked face,
    and synthetic pictures, join training with a uniform target (see `train.nonfaces`).
    `strangers` is a folder of one face per character (`strangers/`): 60 % of them join training
    with a uniform target, each its own identity for the contrastive loss; the rest is kept for
    calibrating and judging (see `train.dataset.STRANGER_FRACTIONS`). `style_fraction` of each
    batch is redrawn in another drawing style (`train.styles`), and `grey_fraction` of it turned
    grey besides; each face with a uniform target weighs `negative_weight` in the loss. With `hard_strangers` (and `init`), that share of the
    strangers is drawn by how close `init` puts them to a character (`stranger_odds`), the
    rest evenly. `degrade_fraction` of known faces
    are shrunk to a size drawn from `degrade_sizes` (smallest, largest) and enlarged back.
    `export` "best" writes the epoch with the best validation macro accuracy (on clean crops),
    "last" the last epoch (for a run whose aim, such as small faces, clean validation does not
    measure). With `export_only`, a finished run of the same arguments is exported again (for
    the other `export` choice) without training.
    `frozen_backbone` (with `init`) trains only the layers after the pooled features.
    `precision` forces the training policy (see `train.devices.setup_devices`); the saved model
    is float32 either way. Returns the card (a dict).
    """
    if frozen_backbone and not init:
        raise ValueError("A frozen backbone needs --init: the model directory whose backbone to keep.")
    if init and is_ensemble(init):
        raise ValueError(ENSEMBLE_INIT)
    if hard_strangers and arch == "seed":
        raise ValueError("Hard strangers are found by a cosine head's prototypes, which the seed network lacks.")
    # Before the work folder is claimed: a mistyped folder must not clear a run that could resume.
    list_images(data)  # a missing --data is told what the folder should hold
    for option, folder in (("--unknown", unknown), ("--strangers", strangers), ("--non-faces", non_faces),
                           ("--init", init), ("--init-data", init_data)):
        if folder is not None and not Path(folder).is_dir():
            raise FileNotFoundError(f"{option} {folder}: no such folder.")
    started = time.time()
    out = Path(out)
    work = out / WORK_DIR
    run = {"data": str(data), "arch": arch, "epochs": epochs, "image_size": image_size, "batch_size": batch_size,
           "seed": seed, "learning_rate": learning_rate, "split": str(split_file), "unknown": str(unknown),
           "init": str(init), "init_data": str(init_data), "contrastive": contrastive,
           "non_faces": str(non_faces), "frozen_backbone": frozen_backbone, "precision": str(precision),
           "strangers": str(strangers), "style_fraction": style_fraction,
           "degrade_fraction": degrade_fraction, "degrade_sizes": list(degrade_sizes),
           "negative_weight": negative_weight, "hard_strangers": hard_strangers,
           # Only when set: a run interrupted before the option existed still resumes.
           **({"grey_fraction": grey_fraction} if grey_fraction else {}),
           **({"framing_fraction": framing_fraction} if framing_fraction else {})}
    finished = claim_work_dir(work, run, log, finished_only=export_only)
    keras.utils.set_random_seed(seed)

    sources = None
    if init and not split_file:
        faces, split, sources = faces_with_init_classes(init, init_data, data, image_size, cache_dir, seed)
    else:
        faces = load_faces(data, image_size, cache_dir=cache_dir)
        split = read_split(split_file, faces.files) if split_file else split_indices(faces.labels, faces.images, seed=seed)
    x = {name: faces.images[idx] for name, idx in split.items()}
    y = {name: faces.labels[idx] for name, idx in split.items()}
    num_classes = len(faces.classes)
    log(f"{len(faces.labels)} crops of {num_classes} characters at {image_size} px; "
        + ", ".join(f"{name} {len(idx)}" for name, idx in split.items()))
    unknown_images, unknown_split = np.zeros((0, image_size, image_size, 3), np.uint8), None
    if unknown:
        unknown_images, unknown_files = load_unlabelled(unknown, image_size, cache_dir=cache_dir)
        unknown_split = (read_unknown_split(split_file, unknown_files) if split_file else None) \
            or split_unlabelled(unknown_images, seed=seed)
        log(f"{len(unknown_images)} unknown faces: " + ", ".join(f"{k} {len(v)}" for k, v in unknown_split.items()))
    stranger_images, stranger_split = unknown_images[:0], None
    if strangers:
        stranger_images, stranger_files = load_unlabelled(strangers, image_size, cache_dir=cache_dir)
        stranger_split = (read_unknown_split(split_file, stranger_files, "strangers") if split_file else None) \
            or split_unlabelled(stranger_images, seed=seed, fractions=STRANGER_FRACTIONS)
        log(f"{len(stranger_images)} strangers: " + ", ".join(f"{k} {len(v)}" for k, v in stranger_split.items()))
    non_face_images, non_face_scenes = unknown_images[:0], []
    if non_faces:
        non_face_images, non_face_scenes = training_non_faces(non_faces, image_size, seed)
        log(f"{len(non_face_images)} pictures with no face, from {len(non_face_scenes)} illustrations and synthetic")

    framed = None
    if framing_fraction:
        framed = _page_framed_pools(data, faces.files, split["train"], x["train"], image_size, cache_dir, log,
                                    (unknown, unknown_files, unknown_split, unknown_images) if unknown else None,
                                    (strangers, stranger_files, stranger_split, stranger_images) if strangers else None)

    devices, scope, policy = setup_devices(precision)
    log(f"backend {keras.backend.backend()}, devices {devices}, policy {policy}")
    with scope:
        model = make_model(arch, image_size, num_classes, seed=seed)
        compile_whole_steps(model)
        if init:
            log(f"initialised {copy_weights(init, model)} layers from {init}")
        if frozen_backbone:
            log(f"froze {freeze_backbone(model)} layers up to the pooled features")
        odds = None
        if hard_strangers and strangers and init and not finished:
            odds = stranger_odds(model, stranger_images[stranger_split["train"]], hard_strangers)
            log(f"{hard_strangers:.0%} of strangers drawn by closeness to a character; the closest tenth "
                f"{np.sort(odds)[-max(1, len(odds) // 10):].sum():.0%} of the draws")
        steps = epochs * int(np.ceil(len(y["train"]) / batch_size))
        schedule = keras.optimizers.schedules.CosineDecay(
            learning_rate / 10, steps, warmup_target=learning_rate, warmup_steps=min(steps // 10, 500)
        )
        trainee = model
        losses = margin_loss(MARGIN if arch != "seed" else 0.0)
        if contrastive:
            trainee = keras.Model(model.input, [model.outputs[0], model.get_layer("pooled").output])
            losses = [losses, contrastive_loss()]
        trainee.compile(
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.05),
            loss=losses, loss_weights=[1.0, contrastive] if contrastive else None,
        )

    counts = np.bincount(y["train"], minlength=num_classes)
    weights = (counts.mean() / np.maximum(counts, 1)) ** 0.5
    batches = TrainingBatches(x["train"], y["train"], num_classes, weights[y["train"]], batch_size,
                              unknown_images[unknown_split["train"]] if unknown else unknown_images, seed,
                              identities=bool(contrastive), non_faces=non_face_images,
                              strangers=stranger_images[stranger_split["train"]] if strangers else None,
                              style_fraction=style_fraction, degrade_fraction=degrade_fraction,
                              degrade_sizes=degrade_sizes, negative_weight=negative_weight, stranger_odds=odds,
                              grey_fraction=grey_fraction, framed=framed,
                              framing_fraction=framing_fraction)
    clock = EpochClock(work / "epoch_seconds.json")
    best, last = work / "best.weights.h5", work / "last.weights.h5"
    checkpoint = keras.callbacks.ModelCheckpoint(best, monitor="val_macro_accuracy", mode="max",
                                                 save_best_only=True, save_weights_only=True)
    history_so_far = read_history(work / "history.csv")
    if history_so_far and best.is_file():  # resuming: the best so far is not forgotten
        checkpoint.best = max(history_so_far)
    callbacks = [
        MacroAccuracy(x["val"], y["val"], num_classes, x["train"]),
        clock,
        checkpoint,
        keras.callbacks.ModelCheckpoint(last, save_weights_only=True),
        keras.callbacks.EarlyStopping(monitor="val_macro_accuracy", mode="max", patience=patience),
        keras.callbacks.CSVLogger(work / "history.csv", append=True),
        keras.callbacks.BackupAndRestore(work / "backup"),
    ]
    val_targets = keras.utils.to_categorical(y["val"], num_classes)
    if not finished:
        trainee.fit(
            batches,
            validation_data=(x["val"], (val_targets, y["val"].astype(np.float32)) if contrastive else val_targets),
            epochs=epochs, callbacks=callbacks, verbose=2,
        )

    # The saved model is float32 whatever the training policy, so a CPU can load it.
    keras.mixed_precision.set_global_policy("float32")
    final = make_model(arch, image_size, num_classes, seed=seed)
    compile_whole_steps(final)
    final.load_weights(last if export == "last" else best)
    recalibrate_batch_norm(final, x["train"])
    # Validation decides whether averaging each crop with its mirror image is worth its cost;
    # the test split only reports.
    flip = max((False, True), key=lambda f: classification_metrics(
        naming_scores_of(final, x["val"], f), y["val"], faces.classes)["macro_accuracy"])
    test_scores = naming_scores_of(final, x["test"], flip)
    metrics = classification_metrics(test_scores, y["test"], faces.classes)
    val_metrics = classification_metrics(naming_scores_of(final, x["val"], flip), y["val"], faces.classes)
    log(f"test: accuracy {metrics['accuracy']:.4f}, macro accuracy {metrics['macro_accuracy']:.4f}, "
        f"top-5 {metrics['top5_accuracy']:.4f}")

    val_macro = read_history(work / "history.csv")
    best_epoch = int(np.argmax(val_macro)) + 1
    exported_epoch = len(val_macro) if export == "last" else best_epoch
    seconds, untimed = clock.seconds_by_epoch(len(val_macro))
    card = {
        "version": new_version(out),
        "architecture": arch,
        "input_size": image_size,
        "parameters": int(final.count_params()),
        "score": "top softmax probability" if arch == "seed" else
        "uncalibrated: (cosine to the nearest prototype + 1) / 2; `python -m train calibrate` replaces it",
        "flip_average": flip,
        "threshold": 0.5,
        "training": {
            "data": str(Path(data).name),
            "classes": num_classes,
            "images": {name: int(len(idx)) for name, idx in split.items()},
            "split": f"the split of {split_file}" if split_file else
            "per class 70/15/15, near-duplicates (dHash within 6 bits) on one side",
            "seed": seed,
            "epochs_run": len(val_macro),
            "best_epoch": best_epoch,
            "exported_epoch": exported_epoch,
            "seconds_per_epoch": round(float(np.median(seconds)), 1),
            "train_images_per_second": round(len(y["train"]) / float(np.median(seconds)), 1),
            "seconds_to_best": round(float(sum(seconds[:best_epoch])), 1),
            "untimed_epochs": untimed,
            "batch_norm": "statistics recomputed on clean training crops before each validation and at export",
            "wall_seconds": finished["wall_seconds"] if finished else round(time.time() - started, 1),
            "batch_size": batch_size,
            "optimizer": f"AdamW, cosine decay from {learning_rate} with warm-up, weight decay 0.05",
            "loss": f"categorical cross-entropy, label smoothing {LABEL_SMOOTHING}, class weights (mean/n)^0.5"
            + (f", cosine margin {MARGIN} at scale {COSINE_SCALE}" if arch != "seed" else "")
            + (f"; {len(unknown_split['train'])} unknown faces with a uniform target, "
               f"{UNKNOWN_PER_BATCH:.0%} of each batch, weight {negative_weight}" if unknown else "")
            + (f"; {len(non_face_images)} pictures with no face (squares of {len(non_face_scenes)} illustrations "
               f"away from their faces, and synthetic) with a uniform target, {NON_FACES_PER_BATCH:.1%} of each batch, "
               f"weight {negative_weight}" if non_faces else "")
            + (f"; {len(stranger_split['train'])} strangers (one face per character) with a uniform target, "
               f"{STRANGERS_PER_BATCH:.0%} of each batch, weight {negative_weight}" if strangers else "")
            + (f"; {hard_strangers:.0%} of strangers drawn by closeness to a character of the initial model"
               if hard_strangers and strangers and init else "")
            + (f"; supervised contrastive loss on the pooled features (weight {contrastive}, temperature 0.1, "
               "each unknown face, stranger and picture with no face its own identity)" if contrastive else ""),
            "augmentation": f"in the model (flip, rotation, zoom, shift, brightness, contrast, saturation); "
            f"{degrade_fraction:.0%} of known faces shrunk to {_px(degrade_sizes)} and back"
            + (f"; {style_fraction:.0%} of every batch redrawn in another style (blur, sharpening, JPEG, "
               "line weight, posterised, grey)" if style_fraction else "")
            + (f"; {grey_fraction:.0%} of every batch turned grey" if grey_fraction else "")
            + (f"; {framing_fraction:.0%} of faces cut the page's way (the cascade's box widened by "
               f"{CROP_MARGIN:.0%}, or the whole crop where it finds none)" if framing_fraction else ""),
            "initialised_from": str(init) if init else _pretrained(arch),
            **({"frozen": "every layer up to the pooled features kept as initialised"} if frozen_backbone else {}),
            **({"characters_from": sources} if sources else {}),
            "backend": keras.backend.backend(),
            "devices": devices,
            "policy": policy,
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {cpu_count()} cores",
            "date": datetime.date.today().isoformat(),
        },
        "metrics": {"test": metrics, "validation": val_metrics,
                    "named_by": "the highest score, as the page names: the cosine to the nearest prototype for a "
                                "cosine head, else the probability"},
    }
    matrix = confusion_matrix(test_scores, y["test"], num_classes)
    split_files = {name: [faces.files[i] for i in idx] for name, idx in split.items()}
    if unknown:
        split_files["unknown"] = {part: [unknown_files[i] for i in idx] for part, idx in unknown_split.items()}
    if strangers:
        split_files["strangers"] = {part: [stranger_files[i] for i in idx] for part, idx in stranger_split.items()}
    if non_faces:
        split_files["non_faces"] = non_face_scenes
    write_model_dir(out, final, faces.classes, card, data, split_files=split_files)
    finish_run(work, run, card["training"]["wall_seconds"])
    confusion_png(matrix, faces.classes, out / "confusion.png", title=f"{out.name}: test split")
    return card


HARD_TEMPERATURE = 0.05  # of the cosines to the nearest prototype that draw hard strangers


def stranger_odds(model, images, share):
    """Each stranger's chance of a draw: `share` of the draws go by softmax(cosine to the
    nearest character's prototype / HARD_TEMPERATURE), the strangers `model` already finds most
    like a character (look-alikes), and the rest evenly."""
    cosines = keras.Model(model.input, model.get_layer("prototypes").output).predict(images, batch_size=256, verbose=0)
    closeness = np.asarray(cosines, np.float64).max(axis=1) / HARD_TEMPERATURE
    hard = np.exp(closeness - closeness.max())
    return (1 - share) / len(images) + share * hard / hard.sum()


def _page_framed_pools(data, files, train_idx, train_images, image_size, cache_dir, log, unknown, strangers):
    """The training faces, and the training parts of `unknown` and `strangers` (each (folder,
    files, split, images) or None), cut the page's way (`train.framing`): (known, unknown,
    strangers) arrays for `TrainingBatches`, None for a pool not given."""
    from animerec.detect import load_detector
    from train.framing import framed_or_own, page_framed

    detector = load_detector()

    def framed(name, root, names, own):
        images, found, read = page_framed([Path(root) / f for f in names], image_size, detector, cache_dir)
        log(f"{name}: {read.sum()} of {len(read)} training faces also cut the page's way, "
            f"{found.sum()} around the face the detector found, the rest around the whole crop")
        return framed_or_own(own, images, read)

    def framed_pool(name, pool):
        if pool is None:
            return None
        root, names, split, images = pool
        return framed(name, root, [names[i] for i in split["train"]], images[split["train"]])

    return (framed("known faces", data, [files[i] for i in train_idx], train_images),
            framed_pool("unknown", unknown), framed_pool("strangers", strangers))


def _pretrained(arch):
    """What a network not started from --init was started from, when not from scratch."""
    if arch == "mobilenet" and MOBILENET_WEIGHTS.is_file():
        return f"the MobileNetV2 of ../shared/backbones/{MOBILENET_WEIGHTS.name} (ImageNet up to block 10)"
    return None


def _px(sizes):
    low, high = sizes
    return f"{low} px" if low == high else f"{low}-{high} px"
