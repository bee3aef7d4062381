"""Face crops: the one function that makes what the model sees, at training and serving time."""

import cv2
import numpy as np

from animerec.defaults import CROP_MARGIN


def crop_faces(image, boxes, size, margin=CROP_MARGIN, stretch_edges=False):
    """Cut each box out of `image`, widened by `margin`, and resize it to `size` x `size`.

    image: (H, W, 3) uint8 RGB. boxes: sequence of (x, y, w, h) in pixels of `image`.
    The widened box adds `margin` * w on the left and right and `margin` * h above and below,
    and is clamped to the image (the page's way). With `stretch_edges` it is kept whole and
    what lies outside the image is filled by its stretched edges: for a picture that is already
    a crop, where the rest of the picture is not there to show (`train.framing`). Returns
    (N, size, size, 3) uint8; (0, size, size, 3) for no boxes.
    """
    crops = np.zeros((len(boxes), size, size, 3), np.uint8)
    height, width = image.shape[:2]
    for i, (x, y, w, h) in enumerate(boxes):
        dx, dy = round(w * margin), round(h * margin)
        left, top, right, bottom = x - dx, y - dy, x + w + dx, y + h + dy
        if stretch_edges:
            pad = max(0, -left, -top, right - width, bottom - height)
            framed = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else image
            crops[i] = resize_square(framed[top + pad:bottom + pad, left + pad:right + pad], size)
            continue
        left, top = max(0, left), max(0, top)
        right, bottom = min(width, right), min(height, bottom)
        if right <= left or bottom <= top:
            continue  # a box wholly outside the image gives a black crop, not a crash
        crops[i] = resize_square(image[top:bottom, left:right], size)
    return crops


def resize_square(image, size):
    """Resize an (H, W, 3) uint8 image to (size, size, 3): area averaging when shrinking
    (no aliasing on line art), bilinear when enlarging."""
    height, width = image.shape[:2]
    shrinking = height * width >= size * size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)
