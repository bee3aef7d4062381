"""Drawing recognitions onto a copy of the image. Drawing is kept apart from detection."""

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

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


def display_copy(image, max_side):
    """(copy, scale): `image` shrunk so its longer side is at most `max_side` (unchanged when
    already small), and the factor that maps the original's pixels onto the copy's."""
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale == 1.0:
        return image, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def draw_faces(image, faces, scale=1.0):
    """Return a copy of an (H, W, 3) uint8 RGB image with each face's numbered box and caption.

    faces: a list of Recognition, numbered from 1 in list order. `scale` maps their boxes onto
    `image` when it is a reduced copy of the analysed image (see `display_copy`).
    """
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    short = min(canvas.size)
    line = max(2, round(short / 300))
    font = ImageFont.load_default(size=max(12, round(short / 40)))
    for i, face in enumerate(faces):
        x, y, w, h = (round(v * scale) for v in face.box)
        colour = face_colour(i, face)
        draw.rectangle([x - line, y - line, x + w + line, y + h + line], outline="black", width=line)
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=line)
        caption = face_caption(i, face)
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        pad = max(2, line)
        text_h = bottom - top + 2 * pad
        text_y = y - line - text_h if y - line - text_h >= 0 else y + line
        text_x = min(max(0, x - line), max(0, canvas.size[0] - (right - left) - 2 * pad))
        draw.rectangle([text_x, text_y, text_x + right - left + 2 * pad, text_y + text_h],
                       fill=colour, outline="black")
        draw.text((text_x + pad - left, text_y + pad - top), caption, fill=_ink_for(colour), font=font)
    return np.asarray(canvas)


def _ink_for(colour):
    """Black or white text, whichever contrasts more with the fill."""
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "black" if luminance > 0.4 else "white"
