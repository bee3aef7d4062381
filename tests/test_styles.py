"""The drawing-style shifts that training mixes in and `train evaluate --styles` judges under."""

import cv2
import numpy as np

from animerec.recognize import colourless
from train.styles import STYLE_SHIFTS, restyle


def portrait(size=64):
    """A flat-coloured 'face': pink hair, a skin oval, dark lines for eyes and outline."""
    image = np.full((size, size, 3), (240, 240, 250), np.uint8)
    cv2.circle(image, (size // 2, size // 2), size // 2 - 2, (230, 120, 170), -1)  # hair
    cv2.ellipse(image, (size // 2, size // 2 + 6), (size // 4, size // 3), 0, 0, 360, (250, 220, 200), -1)
    cv2.ellipse(image, (size // 2, size // 2 + 6), (size // 4, size // 3), 0, 0, 360, (40, 30, 30), 1)
    for x in (size // 2 - 8, size // 2 + 8):
        cv2.circle(image, (x, size // 2 + 2), 3, (40, 90, 200), -1)
    return image


def hue_of_hair(image):
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    return float(np.median(hsv[2:10, 28:36, 0]))


def test_each_shift_keeps_the_picture_and_every_one_but_grey_keeps_the_hair_colour():
    face = portrait()
    for name, shift in STYLE_SHIFTS.items():
        shifted = shift(face)
        assert shifted.shape == face.shape and shifted.dtype == np.uint8, name
        assert not np.array_equal(shifted, face), f"{name} changes the picture"
        if name == "grey":
            assert colourless(shifted[None])[0]
        else:
            assert abs(hue_of_hair(shifted) - hue_of_hair(face)) <= 6, name  # hue is identity: it stays


def test_thick_lines_darken_and_thin_lines_lighten_the_outline():
    face = portrait()
    assert STYLE_SHIFTS["thick_lines"](face).mean() < face.mean()


def test_restyle_redraws_the_share_asked_for_and_copies_the_rest():
    rng = np.random.default_rng(0)
    faces = np.stack([portrait()] * 40)
    untouched = restyle(faces, rng, 0.0)
    assert np.array_equal(untouched, faces) and untouched is not faces
    redrawn = restyle(faces, rng, 0.5)
    changed = sum(not np.array_equal(a, b) for a, b in zip(redrawn, faces))
    assert 10 <= changed <= 30 and redrawn.shape == faces.shape
    assert all(not np.array_equal(a, b) for a, b in zip(restyle(faces, rng, 1.0), faces))
