"""Drawing recognitions onto a copy of the image. Drawing is kept apart from detection."""

from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from animerec import defaults

# Okabe & Ito's palette, distinguishable with the common colour-vision deficiencies. Each box
# is drawn colour-on-black so it stays visible on light and dark art alike.
PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"]
UNKNOWN_COLOUR = "#BBBBBB"
# A caption's font is this fraction of the image's width: the page shows each image at its
# column's width, about 360 px on a phone and 550 px on a desktop.
CAPTION_FONT_PER_WIDTH = 1 / 30


def face_colour(index, face):
    """The colour of face number `index` (0-based): grey when it is Unknown."""
    if face.label == "unknown":
        return UNKNOWN_COLOUR
    return PALETTE[index % len(PALETTE)]


def face_caption(index, face):
    """The text at a box: number, name and score, e.g. "1 Hatsune Miku 93%". An Unknown face's
    is "2 Unknown": its score is the closest character's, which "Unknown 3%" would misstate as
    how sure the model is that the face is nobody it knows (the page's per-face line gives it)."""
    if face.label is None:
        return f"{index + 1}"
    if face.label == "unknown":
        return f"{index + 1} {face.name}"
    return f"{index + 1} {face.name} {face.score:.0%}"


def display_copy(image, max_side=None, min_side=defaults.ANNOTATED_MIN_SIDE):
    """(copy, scale): `image` shrunk so that its longer side is at most `max_side` (None: any),
    or enlarged so that it is at least `min_side`, and the factor that maps the original's
    pixels onto the copy's (1.0, and the image itself, when neither applies)."""
    height, width = image.shape[:2]
    longer = max(height, width)
    if max_side is not None and longer > max_side:
        scale, interpolation = max_side / longer, cv2.INTER_AREA
    elif longer < min_side:
        scale, interpolation = min_side / longer, cv2.INTER_CUBIC
    else:
        return image, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=interpolation), scale


def draw_faces(image, faces, scale=1.0):
    """Return a copy of an (H, W, 3) uint8 RGB image with each face's numbered box and caption.

    faces: a list of Recognition, numbered from 1 in list order. `scale` maps their boxes onto
    `image` when it is a resized copy of the analysed image (see `display_copy`). Captions are
    placed by `caption_layout`: sized to the image's width, and kept off the other faces.
    """
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    line = _line_width(canvas.size[0])
    for i, face in enumerate(faces):
        x, y, w, h = (round(v * scale) for v in face.box)
        draw.rectangle([x - line, y - line, x + w + line, y + h + line], outline="black", width=line)
        draw.rectangle([x, y, x + w, y + h], outline=face_colour(i, face), width=line)
    for i, (face, caption) in enumerate(zip(faces, caption_layout(faces, image.shape, scale))):
        colour = face_colour(i, face)
        draw.rectangle(caption.rectangle, fill=colour, outline="black")
        draw.text(caption.origin, caption.text, fill=_ink_for(colour), font=ImageFont.load_default(size=caption.font_size))
    return np.asarray(canvas)


class Caption(NamedTuple):
    """Where a face's caption goes, in pixels of the image drawn on: its text, the font size,
    the (x0, y0, x1, y1) rectangle of its label, and the (x, y) its text is drawn at."""

    text: str
    font_size: int
    rectangle: tuple
    origin: tuple


def caption_layout(faces, image_shape, scale=1.0):
    """One Caption per face, for an image of `image_shape` ((H, W) or (H, W, 3)) and faces
    whose boxes `scale` maps onto it.

    The font is 1/30 of the image's width (at least 12 px): the page shows each image at its
    column's width, so a caption reads at about 12 px on a phone and 18 px on a desktop, however
    large the image. Each caption goes above its box, else below it, else inside its top edge,
    flush with the box's left edge, else its right one: the first of those inside the image
    that covers no other face's box and no caption placed before it. Where none is free, the
    face's number alone goes there (the page's per-face lines and the JSON carry the name);
    where not even that fits, the number goes where it covers no other caption, over a face
    if it must.
    A caption wider than the image is drawn smaller, or as the number alone.
    """
    height, width = image_shape[:2]
    line = pad = _line_width(width)  # a label's text is inset by the boxes' line width
    size = max(12, round(width * CAPTION_FONT_PER_WIDTH))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [tuple(round(v * scale) for v in face.box) for face in faces]
    outlines = [(x - line, y - line, x + w + line, y + h + line) for x, y, w, h in boxes]

    def spots(text, font, box):
        """The Captions for `text` above the box, below it and inside its top edge, each flush
        with the box's left edge, then with its right one; those inside the image (else one)."""
        x, y, w, h = box
        left, top, right, bottom = measure.textbbox((0, 0), text, font=font)
        label_w, label_h = right - left + 2 * pad, bottom - top + 2 * pad
        columns = dict.fromkeys(min(max(0, column), max(0, width - label_w)) for column in (x - line, x + w + line - label_w))
        rows = [row for row in (y - line - label_h, y + h + line, y + line) if 0 <= row <= height - label_h]
        return [Caption(text, font.size, (column, row, column + label_w, row + label_h), (column + pad - left, row + pad - top))
                for row in rows or [max(0, y + line)] for column in columns]

    placed = []
    for i, (face, box) in enumerate(zip(faces, boxes)):
        captions = [caption.rectangle for caption in placed]
        faces_and_captions = outlines[:i] + outlines[i + 1:] + captions
        named = spots(*_fitting_caption(measure, i, face, size, width - 2 * pad), box)
        number = spots(f"{i + 1}", ImageFont.load_default(size=size), box)
        placed.append(_first_free(named, faces_and_captions) or _first_free(number, faces_and_captions)
                      or _first_free(number, captions) or number[0])
    return placed


def _line_width(width):
    """The boxes' line width in pixels, for an image `width` pixels wide."""
    return max(2, round(width / 250))


def _first_free(captions, blockers):
    """The first of `captions` whose rectangle overlaps none of `blockers`, else None."""
    return next((c for c in captions if not any(_overlap(c.rectangle, b) for b in blockers)), None)


def _overlap(a, b):
    """Whether rectangles (x0, y0, x1, y1) share any area."""
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _fitting_caption(draw, index, face, size, width, smallest=10):
    """(caption, font): the face's caption in the default font at `size`, or smaller (down to
    `smallest`) so that it is at most `width` pixels wide; on an image too narrow even for that,
    the face's number alone, which the page's and the JSON's per-face lines also carry."""
    caption = face_caption(index, face)
    font = ImageFont.load_default(size=size)
    left, _, right, _ = draw.textbbox((0, 0), caption, font=font)
    if right - left <= width:
        return caption, font
    smaller = int(size * width / (right - left))
    if smaller >= smallest:
        return caption, ImageFont.load_default(size=smaller)
    return f"{index + 1}", font


def _ink_for(colour):
    """Black or white text, whichever contrasts more with the fill."""
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "black" if luminance > 0.4 else "white"
