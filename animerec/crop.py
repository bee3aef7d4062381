"""Face crops: the one function that makes what the model sees, at training and serving time."""

import cv2
import numpy as np

from animerec.defaults import CROP_MARGIN


def crop_faces(image, boxes, size, margin=CROP_MARGIN):
    """Cut each box out of `image`, widened by `margin`, and resize it to `size` x `size`.

    image: (H, W, 3) uint8 RGB. boxes: sequence of (x, y, w, h) in pixels of `image`.
    The widened box adds `margin` * w on the left and right and `margin` * h above and below,
    and is clamped to the image. Returns (N, size, size, 3) uint8; (0, size, size, 3) for no
    boxes.
    """
    crops = np.zeros((len(boxes), size, size, 3), np.uint8)
    height, width = image.shape[:2]
    for i, (x, y, w, h) in enumerate(boxes):
        dx, dy = round(w * margin), round(h * margin)
        left, top = max(0, x - dx), max(0, y - dy)
        right, bottom = min(width, x + w + dx), min(height, y + h + dy)
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
