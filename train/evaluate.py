"""Classification metrics and the confusion-matrix picture, shared by `fit` and `evaluate`."""

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def naming_scores_of(model, images, flip_average, embedding_layer=None, batch_size=256):
    """The scores that name each face (`animerec.scoring.naming_scores`) of a Keras `model`,
    through the page's own functions, in batches."""
    from animerec.model import Outputs, outputs_model, predict
    from animerec.scoring import naming_scores

    outputs = outputs_model(model, embedding_layer)
    return np.concatenate([naming_scores(Outputs(*predict(outputs, images[i:i + batch_size], flip_average)))
                           for i in range(0, len(images), batch_size)])


def classification_metrics(scores, labels, classes):
    """Accuracy, macro accuracy (mean per-class recall), top-5 accuracy and per-class recall.

    scores: (N, C) float, the largest naming the face (`animerec.scoring.naming_scores`).
    labels: (N,) int indices into `classes`.
    Returns a JSON-ready dict; classes with no examples are left out of the macro mean.
    """
    labels = np.asarray(labels)
    predicted = scores.argmax(axis=1)
    top5 = np.argsort(-scores, axis=1)[:, :5]
    recall = {}
    for i, slug in enumerate(classes):
        members = labels == i
        if members.any():
            recall[slug] = round(float((predicted[members] == i).mean()), 4)
    return {
        "images": int(len(labels)),
        "accuracy": round(float((predicted == labels).mean()), 4) if len(labels) else 0.0,
        "macro_accuracy": round(float(np.mean(list(recall.values()))), 4) if recall else 0.0,
        "top5_accuracy": round(float((top5 == labels[:, None]).any(axis=1).mean()), 4) if len(labels) else 0.0,
        "per_class_recall": recall,
    }


def confusion_matrix(scores, labels, num_classes):
    """(C, C) int counts: row = true class, column = predicted class (the largest score)."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels), scores.argmax(axis=1)), 1)
    return matrix


def confusion_png(matrix, classes, path, title=""):
    """Draw a row-normalised confusion matrix with class names to a PNG at `path`."""
    cell, margin_left, margin_top = 22, 190, 200
    n = len(classes)
    size = (margin_left + n * cell + 20, margin_top + n * cell + 20)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=12)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    for i in range(n):
        for j in range(n):
            shade = int(255 * (1 - rows[i, j]))
            x, y = margin_left + j * cell, margin_top + i * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=(shade, shade, 255), outline=(225, 225, 225))
            if matrix[i, j]:
                text = str(matrix[i, j])
                draw.text((x + cell / 2, y + cell / 2), text, fill="white" if shade < 128 else "black",
                          font=ImageFont.load_default(size=9), anchor="mm")
        draw.text((margin_left - 6, margin_top + i * cell + cell / 2), classes[i], fill="black", font=font, anchor="rm")
    for j in range(n):  # column names, written vertically
        label = Image.new("RGB", (margin_top - 10, cell), "white")
        ImageDraw.Draw(label).text((margin_top - 12, cell / 2), classes[j], fill="black", font=font, anchor="rm")
        image.paste(label.rotate(90, expand=True), (margin_left + j * cell, 4))
    draw.text((8, 8), title or "rows: true, columns: predicted", fill="black", font=font)
    image.save(path)


def evaluate_folder(data, model_path, confusion_path=None, part=None, grey=False, styles=False, page_framing=False,
                    strangers=None, scenes=None):
    """Run a model directory over folder-per-class crops; returns the metrics dict and writes
    the confusion matrix PNG (default: `confusion.png` beside the model directory). Each face is
    named as the page names it (`animerec.scoring.naming_scores`).

    Folders whose name the model does not know are counted as always wrong. `part` ("train",
    "val" or "test") keeps only the crops the model directory's `split.json` put there, so
    `data` must then be the folder it trained on. With `grey`, every crop is turned grey first
    (`train.dataset.greyscale`): how the model does on black-and-white art; the picture is then
    `confusion-greyscale.png` by default, so the card's stays. The metrics gain
    "colourless_faces": the count and accuracy of the crops with almost no colour
    (`animerec.recognize.colourless`), the faces the page warns about. With `styles`, they also
    gain "styles": accuracy and macro accuracy with every crop redrawn in each of
    `train.styles.STYLE_SHIFTS`, a proxy for art from other sources, and "unseen_styles", the
    same under `train.styles.UNSEEN_SHIFTS`, kinds of shift training never draws; each with its
    means. "named_at_threshold" (for the crops and for each style) is the share named right
    with a score at or above the card's threshold: what the page shows a visitor, where
    accuracy ignores the threshold. With `page_framing`, they gain "page_framed": the same
    figures with every crop cut the way the page cuts a face in a picture (`train.framing`), the
    share named at the threshold once shrunk to calibration's size and back as well, and by
    source when `characters.csv` lies beside `data` (the two sources frame their crops unlike
    each other and unlike the page). Given `strangers/` or `scenes/`, they gain "trade": at each
    of `train.trade.TRADE_THRESHOLDS`, the share of these faces (and of those cut the page's
    way) named right at or above it and of the held-out strangers below it, to compare models
    along the whole curve rather than at their own thresholds.
    """
    from pathlib import Path

    from animerec.model import load_recognizer
    from animerec.scoring import naming_scores
    from animerec.recognize import colourless
    from train.dataset import FaceSet, greyscale, list_images, load_faces, read_split

    split_file = Path(model_path) / "split.json"
    if part and not split_file.is_file():
        raise FileNotFoundError(f"{model_path} has no split.json, so it has no {part} split: leave out --split "
                                "to judge it on the whole folder.")
    recognizer = load_recognizer(model_path)
    known = [c.slug for c in recognizer.characters]
    classes = known + sorted(set(list_images(data)) - set(known))
    faces = load_faces(data, recognizer.input_size, classes=classes)
    if part:
        kept = read_split(split_file, faces.files)[part]
        faces = FaceSet(faces.images[kept], faces.labels[kept], classes, [faces.files[i] for i in kept])
    if grey:
        faces = faces._replace(images=greyscale(faces.images))

    threshold = float(recognizer.card.get("threshold", 0.5))

    def scores_of(images):
        """Each face's naming scores, padded, and its best score (the page's)."""
        outputs = [recognizer.run(images[i : i + 256]) for i in range(0, len(images), 256)]
        scores = np.concatenate([naming_scores(o) for o in outputs] or [np.zeros((0, len(known)), np.float32)])
        best = np.concatenate([recognizer.scorer.best(o) for o in outputs] or [np.zeros(0)])
        # Folders the model does not know get a column no face can win.
        return np.pad(scores, ((0, 0), (0, len(classes) - len(known))), constant_values=-np.inf), best

    def named_at_threshold(padded, best):
        return round(float(np.mean((padded.argmax(axis=1) == faces.labels) & (best >= threshold))), 4) \
            if len(best) else None

    padded, best = scores_of(faces.images)
    result = classification_metrics(padded, faces.labels, classes)
    result["named_at_threshold"] = named_at_threshold(padded, best)
    plain = colourless(faces.images)
    named = padded.argmax(axis=1) == faces.labels
    result["colourless_faces"] = {"images": int(plain.sum()),
                                  "accuracy": round(float(named[plain].mean()), 4) if plain.any() else None}
    if styles:
        from train.styles import STYLE_SHIFTS, UNSEEN_SHIFTS

        for key, shifts in (("styles", STYLE_SHIFTS), ("unseen_styles", UNSEEN_SHIFTS)):
            result[key] = {}
            for name, shift in shifts.items():
                shifted_scores, shifted_best = scores_of(np.stack([shift(im) for im in faces.images]))
                shifted = classification_metrics(shifted_scores, faces.labels, classes)
                result[key][name] = {**{k: shifted[k] for k in ("accuracy", "macro_accuracy")},
                                     "named_at_threshold": named_at_threshold(shifted_scores, shifted_best)}
            for metric in ("accuracy", "named_at_threshold"):
                result[key][f"mean_{metric}"] = round(float(np.mean([v[metric] for v in result[key].values()
                                                                     if isinstance(v, dict)])), 4)
    named = {"faces": (padded.argmax(axis=1) == faces.labels, best)}
    if page_framing:
        result["page_framed"], named["page_framed"] = _page_framed_metrics(data, faces, classes, scores_of,
                                                                           named_at_threshold, threshold)
    if strangers or scenes:
        from train.trade import stranger_scores, trade_table

        result["trade"] = trade_table(named, stranger_scores(recognizer, split_file, strangers, scenes))
    result["model"] = recognizer.version
    if part:
        result["part"] = part
    if grey:
        result["greyscale"] = True
    path = Path(confusion_path) if confusion_path else Path(model_path) / ("confusion-greyscale.png" if grey else "confusion.png")
    confusion_png(confusion_matrix(padded, faces.labels, len(classes)), classes, path,
                  title=f"{recognizer.version} on {Path(data).name}" + (f", {part} split" if part else "")
                  + (", turned grey" if grey else ""))
    result["confusion_png"] = str(path)
    return result


def _page_framed_metrics(data, faces, classes, scores_of, named_at_threshold, threshold):
    """`evaluate_folder`'s figures for `faces` cut the page's way, overall and by source, and
    each face's (named right, best score)."""
    import csv
    from pathlib import Path

    from animerec.detect import load_detector
    from train.dataset import degrade
    from train.defaults import DEGRADED_SIZE
    from train.framing import framed_or_own, page_framed

    size = faces.images.shape[1]
    images, found, read = page_framed([Path(data) / f for f in faces.files], size, load_detector())
    framed = framed_or_own(faces.images, images, read)
    scores, best = scores_of(framed)
    metrics = classification_metrics(scores, faces.labels, classes)
    result = {"accuracy": metrics["accuracy"], "macro_accuracy": metrics["macro_accuracy"],
              "named_at_threshold": named_at_threshold(scores, best), "faces_found": int(found.sum()),
              f"named_at_threshold_at_{DEGRADED_SIZE}_px": named_at_threshold(*scores_of(degrade(framed, DEGRADED_SIZE)))}
    named = scores.argmax(axis=1) == faces.labels
    table = Path(data).parent / "characters.csv"
    if table.is_file():
        with open(table, newline="") as f:
            source = {row["slug"]: row["source"] for row in csv.DictReader(f)}
        of_face = np.array([source.get(classes[label], "?") for label in faces.labels])
        cleared = best >= threshold
        result["by_source"] = {name: {"faces": int((of_face == name).sum()),
                                      "accuracy": round(float(named[of_face == name].mean()), 4),
                                      "named_at_threshold": round(float((named & cleared)[of_face == name].mean()), 4)}
                               for name in sorted(set(of_face))}
    return result, (named, best)
