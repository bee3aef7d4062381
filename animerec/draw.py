"""Drawing recognitions onto a copy of the image. Drawing is kept apart from detection."""

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from animerec import defaults

# Okabe & Ito's palette, distinguishable with the common colour-vision deficiencies. Each box
# is drawn colour-on-black so it stays visible on light and dark art alike.
PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"]
UNKNOWN_COLOUR = "#BBBBBB"


def face_colour(index, face):
    """The colour of face number `index` (0-based): grey when it is Unknown."""
    if face.label == "unknown":
        return UNKNOWN_COLOUR
    return PALETTE[index % len(PALETTE)]


def face_caption(index, face):
    """The text at a box: number, name and score, e.g. "1 Hatsune Miku 93%"."""
    if face.label is None:
        return f"{index + 1}"
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
    `image` when it is a resized copy of the analysed image (see `display_copy`). A caption wider
    than the image is drawn smaller, or as the face's number alone.
    """
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    short = min(canvas.size)
    line = max(2, round(short / 300))
    font_size = max(12, round(short / 40))
    for i, face in enumerate(faces):
        x, y, w, h = (round(v * scale) for v in face.box)
        colour = face_colour(i, face)
        draw.rectangle([x - line, y - line, x + w + line, y + h + line], outline="black", width=line)
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=line)
        pad = max(2, line)
        caption, caption_font = _fitting_caption(draw, i, face, font_size, canvas.size[0] - 2 * pad)
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=caption_font)
        text_h = bottom - top + 2 * pad
        text_y = y - line - text_h if y - line - text_h >= 0 else y + line
        text_x = min(max(0, x - line), max(0, canvas.size[0] - (right - left) - 2 * pad))
        draw.rectangle([text_x, text_y, text_x + right - left + 2 * pad, text_y + text_h],
                       fill=colour, outline="black")
        draw.text((text_x + pad - left, text_y + pad - top), caption, fill=_ink_for(colour), font=caption_font)
    return np.asarray(canvas)


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
