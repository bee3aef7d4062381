"""`python -m train calibrate`: the unknown rule and the gallery's score, fitted and judged.

For a model directory trained by `fit` (its `split.json` says which faces it never trained on):
- the model's raw score (see `Scorer.model_raw`: the cosine, less a share of the face's
  closeness to the cohort below, the share chosen by `model_cohort_weights`) is mapped to
  [0, 1] by a monotone curve (isotonic regression: `measure.curves.fit_monotone`) fitted on
  validation faces of known characters, the calibration part of `unknown/`, the calibration
  quarter of `fewshot/` and, given `scenes/`, the faces found in its calibration half, so the
  score reads as the chance that the name is right;
- the default threshold is the lowest score below which `target` of those unknown faces fall,
  `target` of the few-shot characters' calibration faces (characters from elsewhere) and, given
  `scenes/`, `target` of the faces the page's detector finds in half of its illustrations (faces
  of characters in no training set, as the page sees them, and the detector's false hits) and,
  given `strangers/`, `portrait_target` of its calibration fifth (one official portrait per
  character: the share the page promises for them);
- the gallery's cosine is normalised against a cohort of strangers (`Scorer.gallery_raw`): the
  centres of the embeddings of the unknown faces the network trained on and of the faces found
  in the calibration half of `scenes/` (and the calibration fifth of `strangers/`), found by
  spherical k-means and written to `cohort.npy`;
- the gallery's normalised cosine gets its own threshold for each number of enrolled
  characters (`gallery_thresholds`), rejecting `target` of the unknown faces and of the
  calibration scenes' faces (and portraits), from their cosines to each character enrolled in
  few-shot episodes drawn from a quarter of each `fewshot/` character (the rest is kept for
  judging; one character has only 7 faces; of each group of near-duplicates only one face is
  kept, `distinct_faces`), and a curve whose slope is fitted on those episodes
  (against the same unknown and known faces) placed so that each threshold lands on the
  model's: one slider serves both sources;
- everything is then judged on faces used for nothing above: the test split, the test parts of
  `unknown/` (and of `strangers/`), the held-out half of `fewshot/` (k = 1, 3, 5, many random draws, open-set: the
  model's characters and the unknown rule stay in play), the faces the page's detector finds
  in the other half of `scenes/`, and pictures with no face taken whole as one face (squares of
  that half away from its marked faces, and synthetic ones: `train.nonfaces`). A model that
  trained on squares of that half (`fit --non-faces` with other halves) is refused.

Unknown crops are mostly 64 px and known ones 128 px: every face is first shrunk to 64 px and
enlarged back (`train.dataset.degrade`), so the rule cannot just detect blur. The card gets the
curves, the threshold, the ROC area, the two rates at the default and the k-shot table, and a
picture of the ROC curve is written beside it.
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from animerec.calibration import BySize
from animerec.errors import ModelError
from animerec.model import CARD_FILE, CARD_MARKDOWN, COHORT_FILE, LABELS_FILE, Outputs, load_recognizer, unit_rows
from animerec.scoring import COHORT_TOP, Scorer
from measure.curves import auroc, fit_logistic, fit_monotone, roc_curve
from train.dataset import (STRANGER_FRACTIONS, degrade, load_faces, load_unlabelled, read_split, read_unknown_split,
                           split_unlabelled)
from train.defaults import (DEGRADED_SIZE, MODEL_COHORT_MOST_LOST, MODEL_COHORT_TIE, MODEL_COHORT_WEIGHTS,
                            PORTRAIT_TARGET, THRESHOLD_TARGET)
from train.export import card_markdown
from train.fewshot import (SHOTS, best_names, distinct_faces, draw_episode, enrol, judge_fewshot, split_each_class,
                           take)
from train.nonfaces import calibration_non_faces, judge_non_faces
from train.scenes import detected_faces, judge_scene_faces, scene_halves

ROC_FILE = "roc.png"
COHORT_CENTRES = 128  # centres of strangers' embeddings in the gallery's cohort
GALLERY_SIZES = (1, 2, 4, 8, 16, 32)  # numbers of enrolled characters the gallery's threshold is fitted for


def calibrate(model_path, data, unknown, fewshot, scenes=None, target=THRESHOLD_TARGET, draws=100, seed=0,
              embedding_layer=None, cache_dir=".cache", strangers=None, portrait_target=PORTRAIT_TARGET, log=print):
    """Fit the model's and the gallery's score curves and the default threshold, judge them,
    and write them into the model directory's card. `embedding_layer` (written into the card)
    chooses the layer whose output is the gallery's face embedding. Returns the card's
    `calibration` dict."""
    model_path = Path(model_path)
    if embedding_layer:
        card = json.loads((model_path / CARD_FILE).read_text(encoding="utf-8"))
        card["embedding_layer"] = embedding_layer
        (model_path / CARD_FILE).write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    recognizer = load_recognizer(model_path)
    size = recognizer.input_size
    slugs = [c.slug for c in recognizer.characters]
    rng = np.random.default_rng(seed)

    faces = load_faces(data, size, cache_dir=cache_dir, classes=slugs)
    split = read_split(model_path / "split.json", faces.files)
    unknown_images, unknown_files = load_unlabelled(unknown, size, cache_dir=cache_dir)
    unknown_split = read_unknown_split(model_path / "split.json", unknown_files) or split_unlabelled(unknown_images, seed=seed)
    few, few_duplicates = distinct_faces(load_faces(fewshot, size, cache_dir=cache_dir))

    def run(images):
        parts = [recognizer.run(degrade(images[i:i + 256], DEGRADED_SIZE)) for i in range(0, len(images), 256)]
        return Outputs(*(None if parts[0][k] is None else np.concatenate([p[k] for p in parts]) for k in range(3)))

    scene_parts = scene_halves(scenes, seed) if scenes else None
    _check_non_faces(model_path / "split.json", scene_parts)
    scene_faces = detected_faces(recognizer, scene_parts) if scenes else None
    known = {part: (run(faces.images[split[part]]), faces.labels[split[part]]) for part in ("val", "test")}
    unknown_faces = {part: run(unknown_images[unknown_split[part]]) for part in ("calibration", "test")}
    portraits = None
    if strangers:  # the model never trained on these parts of `strangers/` (see `fit --strangers`)
        portrait_images, portrait_files = load_unlabelled(strangers, size, cache_dir=cache_dir)
        portrait_split = read_unknown_split(model_path / "split.json", portrait_files, "strangers") \
            or split_unlabelled(portrait_images, seed=seed, fractions=STRANGER_FRACTIONS)
        portraits = {part: run(portrait_images[portrait_split[part]]) for part in ("calibration", "test")}
    newcomers = run(few.images)
    cohort_faces = [run(unknown_images[unknown_split["train"]]).embeddings]
    if scene_faces:
        cohort_faces.append(scene_faces["calibration"].embeddings)
    if portraits:
        cohort_faces.append(portraits["calibration"].embeddings)
    cohort = spherical_kmeans(np.concatenate(cohort_faces), COHORT_CENTRES, np.random.default_rng(seed + 2))
    scorer = recognizer.scorer._replace(model_curve=None, gallery_curve=None, cohort=cohort, top=COHORT_TOP)
    log(f"known faces: validation {len(split['val'])}, test {len(split['test'])}; unknown faces: "
        f"calibration {len(unknown_split['calibration'])}, test {len(unknown_split['test'])}; "
        f"few-shot faces {len(few.labels)} of {len(few.classes)} characters (near-duplicates dropped: {few_duplicates}); "
        f"all at {DEGRADED_SIZE} px")

    # The model's curve and the threshold. Faces of the few-shot characters' calibration quarter
    # are negatives too: drawn unlike `unknown/`, they keep the curve honest about characters
    # from elsewhere, and about the faces the gallery should win.
    halves = split_each_class(few.labels, rng, share=0.25)
    val_outputs, val_labels = known["val"]
    calibration_strangers = {"unknown": unknown_faces["calibration"],
                             "fewshot_before_enrolment": take(newcomers, halves[0])}
    if scene_faces and len(scene_faces["calibration"].probabilities):
        calibration_strangers["scene_faces"] = scene_faces["calibration"]
    if portraits:
        calibration_strangers["strangers"] = portraits["calibration"]
    targets = {kind: max(target, portrait_target) if kind == "strangers" else target for kind in calibration_strangers}
    # Pictures with no face are unlike every stranger, so the cohort term lifts them: the weight
    # is also held to keeping `target` of them Unknown.
    guards = {}
    if scenes:
        non_faces = calibration_non_faces(scenes, scene_parts["calibration"], size, np.random.default_rng(seed + 3))
        guards["non_faces"] = Outputs(*(None if part[0] is None else np.concatenate(part) for part in zip(
            *[recognizer.run(non_faces[i:i + 256]) for i in range(0, len(non_faces), 256)])))
    weights = model_cohort_weights(scorer, val_outputs, val_labels, calibration_strangers, targets, guards=guards,
                                   guard_target=target)
    scorer = scorer._replace(model_cohort_weight=weights["chosen"])

    def raw_scores(outputs):  # each face's raw number for its closest model character
        return scorer.model_raw(outputs).max(axis=1)

    raw_known = raw_scores(val_outputs)
    raw_strangers = {kind: raw_scores(outputs) for kind, outputs in calibration_strangers.items()}
    right = scorer.model_raw(val_outputs).argmax(axis=1) == val_labels
    negatives = np.concatenate(list(raw_strangers.values()))
    model_curve = fit_monotone(np.r_[raw_known, negatives], np.r_[right, np.zeros(len(negatives), bool)])
    # The threshold rejects its target of each kind of stranger (`targets`): `unknown/`, the
    # few-shot characters before they are enrolled, the faces found in the calibration scenes and
    # the official portraits. The card keeps each kind's own, so it shows which kind sets it.
    # Rounded up to the page slider's steps (0.01), so the page, the command line and the card
    # show and use one value, and it still rejects at least the target.
    by_kind = {kind: float(model_curve(np.quantile(raw, targets[kind]))) for kind, raw in raw_strangers.items()}
    threshold = float(np.ceil(round(max(by_kind.values()) * 100, 6)) / 100)

    scorer = scorer._replace(model_curve=model_curve)  # the new curve, whatever the card said before

    # The gallery's curve, on episodes from the calibration quarter of each few-shot character.
    cosines, gallery_right = [], []
    stranger_kinds = [unknown_faces["calibration"].embeddings]
    if scene_faces and len(scene_faces["calibration"].embeddings):
        stranger_kinds.append(scene_faces["calibration"].embeddings)
    if portraits:
        stranger_kinds.append(portraits["calibration"].embeddings)
    stranger_cosines = [[] for _ in stranger_kinds]
    for shots in SHOTS:
        for _ in range(max(1, draws // 4)):
            episode = draw_episode(few.labels, halves[0], shots, rng, skip_small=True)
            if episode is None:
                continue
            classes, enrolled, queries, query_labels = episode
            gallery = enrol(newcomers.embeddings, enrolled, [few.classes[c] for c in classes],
                            newcomers.embeddings.shape[1])
            for embeddings, labels in ((newcomers.embeddings[queries], query_labels),
                                       (unknown_faces["calibration"].embeddings, None),
                                       (val_outputs.embeddings, None)):
                similarity = gallery.cosines(embeddings)
                cosines.append(scorer.gallery_raw(similarity.max(axis=1), embeddings))
                gallery_right.append(similarity.argmax(axis=1) == labels if labels is not None
                                     else np.zeros(len(embeddings), bool))
            for kind, embeddings in zip(stranger_cosines, stranger_kinds):  # each character on its own
                kind.append(scorer.gallery_raw(gallery.cosines(embeddings), embeddings))
    # The gallery's own threshold rejects `target` of each kind of stranger, for each size of
    # gallery (`gallery_thresholds`); its curve's slope is fitted on the episodes, and the curve
    # is placed so that each threshold lands on the model's: one slider then serves both sources.
    fitted = fit_logistic(np.concatenate(cosines), np.concatenate(gallery_right))
    slope = fitted.slope if fitted.slope > 0 else 10.0
    thresholds = gallery_thresholds([np.concatenate(kind, axis=1) for kind in stranger_cosines], target)
    logit = float(np.log(threshold / (1 - threshold)))
    gallery_curve = BySize(slope, tuple(thresholds), tuple(logit - slope * raw for raw in thresholds.values()))
    scorer = scorer._replace(gallery_curve=gallery_curve)
    characters = recognizer.characters

    def named(outputs, labels):  # named right and at least at the threshold, as the page names
        index, score = best_names(outputs, scorer, characters)
        return (index == labels) & (score >= threshold)

    # Judged on faces used for nothing above.
    test_outputs, test_labels = known["test"]
    test_index, known_scores = best_names(test_outputs, scorer, characters)
    known_named = named(test_outputs, test_labels)
    _, unknown_scores = best_names(unknown_faces["test"], scorer, characters)
    clean_named = named(recognizer.run(faces.images[split["test"]]), test_labels)
    fpr, tpr, _ = roc_curve(known_scores, unknown_scores)
    _, named_tpr, _ = roc_curve(np.where(test_index == test_labels, known_scores, -1.0), unknown_scores)
    result = {
        "score": score_words(val_outputs.cosines is not None, weights["chosen"]),
        "threshold": threshold,
        "target_unknown_rejection": target,
        "target_by_kind": targets,
        "threshold_by_kind": {kind: round(value, 4) for kind, value in by_kind.items()},
        "model_cohort_weight": weights["chosen"],
        "model_cohort_weights_tried": weights["tried"],
        "degraded_to_px": DEGRADED_SIZE,
        "model": model_curve.to_dict(),
        "gallery": gallery_curve.to_dict(),
        "gallery_cohort": {"file": COHORT_FILE, "centres": int(len(cohort)), "top": COHORT_TOP,
                           "faces": int(sum(len(f) for f in cohort_faces))},
        "gallery_threshold_normalised_cosine_by_characters": {str(size): round(raw, 4) for size, raw in thresholds.items()},
        "model_threshold_raw": round(float(model_curve.raw_at(threshold)), 4),
        "auroc_known_vs_unknown": round(auroc(raw_scores(test_outputs), raw_scores(unknown_faces["test"])), 4),
        "test": {
            "known_faces": int(len(test_labels)),
            "unknown_faces": int(len(unknown_scores)),
            "unknown_labelled_unknown": round(float((unknown_scores < threshold).mean()), 4),
            "known_keep_correct_name": round(float(known_named.mean()), 4),
            "known_keep_correct_name_at_full_size": round(float(clean_named.mean()), 4),
            "known_accuracy_ignoring_threshold": round(float((test_index == test_labels).mean()), 4),
        },
    }
    if portraits:
        result["test"]["strangers"] = int(len(portraits["test"].embeddings))
        result["test"]["strangers_labelled_unknown"] = round(float((best_names(portraits["test"], scorer, characters)[1] < threshold).mean()), 4)
    result["fewshot"] = judge_fewshot(scorer, characters, newcomers, few, halves[1], unknown_faces["test"],
                                      (test_outputs, test_labels), threshold, draws, rng,
                                      scene_faces["test"] if scene_faces else None)
    result["fewshot"]["near_duplicates_dropped"] = few_duplicates
    if scene_faces:
        result["scenes"] = judge_scene_faces(scene_faces, scorer, characters, threshold, newcomers, few)
        result["non_faces"] = judge_non_faces(recognizer, scorer, threshold, scenes, scene_parts["test"],
                                              np.random.default_rng(seed + 3))
    np.save(model_path / COHORT_FILE, cohort.astype(np.float32), allow_pickle=False)
    _roc_png(fpr, tpr, named_tpr, result, model_path / ROC_FILE, recognizer.version)
    result["roc_png"] = ROC_FILE
    _write_card(model_path, recognizer.card, result)
    log(json.dumps(result, indent=1))
    return result


def score_words(cosine_head, cohort_weight=0.0):
    """What a calibrated score is, in the card's words."""
    if not cosine_head:
        return ("calibrated chance that the name is right: a monotone curve of the top softmax probability (or a "
                "logistic curve of the cosine to an enrolled character's mean embedding)")
    less = (f", less {cohort_weight:g} times the face's mean cosine to its nearest strangers of the cohort"
            if cohort_weight else "")
    return ("calibrated chance that the name is right: a monotone curve (isotonic regression) of the cosine to the "
            f"nearest prototype of the model's cosine head{less}, or a logistic curve of the normalised cosine to the "
            "mean embedding of an enrolled character")


def model_cohort_weights(scorer, known, labels, strangers, target, guards=None, weights=MODEL_COHORT_WEIGHTS,
                         most_lost=MODEL_COHORT_MOST_LOST, tie=MODEL_COHORT_TIE, guard_target=None):
    """The share of a face's closeness to the cohort that the model's raw number loses
    (`Scorer.model_raw`), chosen on calibration faces: of the `weights` at which no kind of
    stranger's calibration faces (`strangers`: kind -> Outputs) falls below the threshold by
    more than `most_lost` more than with the plain cosine, and each kind of `guards` (kind ->
    Outputs: pictures that must stay Unknown but set no threshold, such as pictures with no
    face, which the cohort term lifts for being unlike every stranger) keeps `guard_target` (by
    default the least target) of its pictures below it (or the plain cosine's share, if less),
    the one that keeps the most validation faces (`known`, `labels`) named right at or above
    the threshold, the smallest of those within `tie` of the most (a few faces are noise). The
    threshold here is the highest of the stranger kinds' target quantiles of the raw number
    (`target`: one share, or kind -> share): `calibrate`'s own, before its curve and the
    slider's rounding. The plain cosine (weight 0) is always among those tried.
    Returns {"chosen": weight, "tried": [per weight: the weight, validation faces kept, each
    kind's share below the threshold]}."""
    targets = target if isinstance(target, dict) else {kind: target for kind in strangers}
    guard_target = min(targets.values()) if guard_target is None else guard_target
    tried = []
    for weight in sorted({0.0, *map(float, weights)}):
        rule = scorer._replace(model_cohort_weight=float(weight))
        raw = {kind: rule.model_raw(outputs).max(axis=1) for kind, outputs in strangers.items()}
        threshold = max(np.quantile(values, targets[kind]) for kind, values in raw.items())
        raw.update({kind: rule.model_raw(outputs).max(axis=1) for kind, outputs in (guards or {}).items()})
        known_raw = rule.model_raw(known)
        kept = float(((known_raw.argmax(axis=1) == labels) & (known_raw.max(axis=1) >= threshold)).mean())
        tried.append({"weight": float(weight), "validation_kept": round(kept, 4),
                      "rejected": {kind: round(float((values < threshold).mean()), 4) for kind, values in raw.items()}})
    plain = tried[0]["rejected"]
    floor = {kind: plain[kind] - most_lost for kind in strangers}
    floor.update({kind: min(guard_target, plain[kind]) for kind in (guards or {})})
    allowed = [t for t in tried if all(t["rejected"][k] >= floor[k] - 1e-9 for k in floor)]
    most = max(t["validation_kept"] for t in allowed)
    best = min((t for t in allowed if t["validation_kept"] >= most - tie - 1e-9), key=lambda t: t["weight"])
    return {"chosen": best["weight"], "tried": tried}


def gallery_thresholds(kinds, target, sizes=GALLERY_SIZES):
    """{size: the lowest normalised cosine below which a gallery of `size` characters keeps
    `target` of every kind of stranger}, from each kind's (strangers, pairs) cosines to
    enrolled characters, one column per character of every episode. A stranger s that clears
    a threshold against a share p_s of the characters stays Unknown in a gallery of n of them
    with chance (1 - p_s)^n: characters count as independent, strangers are not (one who looks
    like anyone counts at his own p_s), so each kind rejects mean_s (1 - p_s)^n."""
    def keeps(pairs, size, raw):
        return ((1 - (pairs > raw).mean(axis=1)) ** size).mean() >= target

    return {size: max(_lowest(lambda raw: keeps(pairs, size, raw), pairs) for pairs in kinds) for size in sizes}


def _lowest(holds, pairs, steps=40):
    """The lowest value between `pairs`' extremes at which `holds` (monotone) is true, by bisection."""
    low, high = float(pairs.min()), float(pairs.max())
    for _ in range(steps):
        middle = (low + high) / 2
        low, high = (low, middle) if holds(middle) else (middle, high)
    return high


def _check_non_faces(split_file, scene_parts):
    """Refuse to judge on illustrations whose backgrounds the model trained on."""
    trained_on = set(json.loads(split_file.read_text()).get("non_faces", []))
    judging = {path.name for path in scene_parts["test"]} if scene_parts else set()
    if trained_on & judging:
        raise ModelError(f"The model trained on backgrounds of {len(trained_on & judging)} illustrations that "
                         "calibrate keeps for judging; train with `--non-faces` on the same scenes and seed.")


def spherical_kmeans(embeddings, centres, rng, iterations=30):
    """`centres` unit vectors summarising the unit rows of `embeddings` (fewer when there are
    fewer rows): k-means on the sphere, each centre the normalised mean of the rows nearest it."""
    embeddings = unit_rows(np.asarray(embeddings, np.float32))
    found = embeddings[rng.choice(len(embeddings), min(centres, len(embeddings)), replace=False)]
    for _ in range(iterations):
        nearest = (embeddings @ found.T).argmax(axis=1)
        found = unit_rows(np.stack([embeddings[nearest == j].mean(axis=0) if (nearest == j).any() else found[j]
                                    for j in range(len(found))]))
    return found


def _roc_png(fpr, tpr, named_tpr, result, path, version):
    """The ROC curve (known faces accepted, and accepted with the right name, against unknown
    faces accepted) with the default threshold marked."""
    size, pad = 420, 50
    image = Image.new("RGB", (size + 2 * pad, size + 2 * pad), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=12)

    def point(x, y):
        return pad + x * size, pad + (1 - y) * size

    draw.rectangle([pad, pad, pad + size, pad + size], outline="black")
    for v in np.linspace(0, 1, 6):
        draw.line([point(v, 0), point(v, 1)], fill=(230, 230, 230))
        draw.line([point(0, v), point(1, v)], fill=(230, 230, 230))
        draw.text((point(v, 0)[0], pad + size + 6), f"{v:.1f}", fill="black", font=font, anchor="mt")
        draw.text((pad - 6, point(0, v)[1]), f"{v:.1f}", fill="black", font=font, anchor="rm")
    draw.line([point(x, y) for x, y in zip(fpr, tpr)], fill=(0, 114, 178), width=2)  # Okabe-Ito blue
    draw.line([point(x, y) for x, y in zip(fpr, named_tpr)], fill=(213, 94, 0), width=2)  # vermillion
    t = result["test"]
    x, y = point(1 - t["unknown_labelled_unknown"], t["known_keep_correct_name"])
    draw.ellipse([x - 5, y - 5, x + 5, y + 5], outline="black", width=2)
    draw.text((pad, 10), f"{version}: AUROC {result['auroc_known_vs_unknown']:.3f}, threshold {result['threshold']}",
              fill="black", font=font)
    draw.text((pad, 26), "blue: known faces accepted; orange: accepted with the right name", fill="black", font=font)
    draw.text((pad + size / 2, pad + size + 24), "unknown faces accepted", fill="black", font=font, anchor="mt")
    image.save(path)


def _write_card(model_path, card, result):
    card = dict(card)
    card["score"] = result["score"]
    card["threshold"] = result["threshold"]
    card["calibration"] = result
    (model_path / CARD_FILE).write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    labels = json.loads((model_path / LABELS_FILE).read_text(encoding="utf-8"))
    (model_path / CARD_MARKDOWN).write_text(card_markdown(card, labels), encoding="utf-8")
