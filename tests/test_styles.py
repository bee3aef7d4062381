"""The drawing-style shifts that training mixes in and `train evaluate --styles` judges under."""

import cv2
import numpy as np

from animerec.recognize import colourless
from train.styles import _RANDOM, STYLE_SHIFTS, UNSEEN_SHIFTS, restyle


def portrait(size=64):
    """A flat-coloured 'face': pink hair, a skin oval, dark lines for eyes and outline."""
    image = np.full((size, size, 3), (240, 240, 250), np.uint8)
    cv2.circle(image, (size // 2, size // 2), size // 2 - 2, (230, 120, 170), -1)  # hair
    cv2.ellipse(image, (size // 2, size // 2 + 6), (size // 4, size // 3), 0, 0, 360, (250, 220, 200), -1)
    cv2.ellipse(image, (size // 2, size // 2 + 6), (size // 4, size // 3), 0, 0, 360, (40, 30, 30), 1)
    for x in (size // 2 - 8, size // 2 + 8):
        cv2.circle(image, (x, size // 2 + 2), 3, (40, 90, 200), -1)
    return image


def hue_of_hair(image, rows=slice(2, 10)):
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    return float(np.median(hsv[rows, 28:36, 0]))


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


def test_the_unseen_shifts_change_the_picture_keep_the_hair_colour_and_are_none_of_trainings():
    face = portrait()
    assert not set(UNSEEN_SHIFTS) & {name for name, _ in _RANDOM}
    for name, shift in UNSEEN_SHIFTS.items():
        shifted = shift(face)
        assert shifted.shape == face.shape and shifted.dtype == np.uint8, name
        assert not np.array_equal(shifted, face), f"{name} changes the picture"
        assert not colourless(shifted[None])[0], f"{name} keeps colour"
        # Tinted light moves the hue a little, as a lamp's colour does; the rest keep it.
        # The looser crop shrinks the hair toward the centre: look for it lower down.
        hair = hue_of_hair(shifted, slice(13, 19) if name == "loose_crop" else slice(2, 10))
        assert abs(hair - hue_of_hair(face)) <= (12 if name == "warm_light" else 6), name
    # The tilt and the looser crop move the picture; the pale copy is lighter, the vivid one more saturated.
    saturation = lambda im: float(cv2.cvtColor(im, cv2.COLOR_RGB2HSV)[..., 1].mean())
    assert saturation(UNSEEN_SHIFTS["vivid"](face)) > saturation(face) > saturation(UNSEEN_SHIFTS["pale"](face))
    assert UNSEEN_SHIFTS["pale"](face).mean() > face.mean()
    assert np.abs(UNSEEN_SHIFTS["loose_crop"](face).astype(int) - face).mean() > 5


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
