"""Shifts of drawing style that keep who a face is: blur, sharpening, JPEG artefacts, thicker or
thinner lines, posterised colour, grey copies.

Our 30 characters come from two sources, so a network trained on them alone learns those
sources' look. Each crop made to look drawn, scanned or saved another way, while hue stays
(hair and eye colour are identity), teaches the embedding to keep a face's identity across
styles. `restyle` draws one shift at random for training; `STYLE_SHIFTS` are fixed versions of
the same shifts that `train evaluate --styles` judges the test split under, a proxy for art
from other sources (one that shares the training shifts' kinds, so it measures robustness to
them, not to every style). `UNSEEN_SHIFTS` are shifts of other kinds, which neither `restyle`
nor the model's augmentation draws (flat colour, tinted light, vivid and pale colour beyond
the augmentation's saturation, grain, a stronger tilt, a looser crop): judged beside them,
they say how far the robustness reaches past what training showed.
"""

import cv2
import numpy as np

from train.dataset import greyscale


def blur(image, sigma):
    return cv2.GaussianBlur(image, (0, 0), sigma)


def sharpen(image, amount):
    soft = cv2.GaussianBlur(image, (0, 0), 1.0)
    return cv2.addWeighted(image, 1 + amount, soft, -amount, 0)


def jpeg(image, quality):
    ok, encoded = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1] if ok else image


def line_weight(image, pixels):
    """Dark lines thickened (`pixels` > 0: a minimum filter) or thinned (< 0: a maximum filter)."""
    kernel = np.ones((abs(pixels) + 1,) * 2, np.uint8)
    return cv2.erode(image, kernel) if pixels > 0 else cv2.dilate(image, kernel)


def posterise(image, levels):
    step = 256 / levels
    return (np.floor(image / step) * step + step / 2).clip(0, 255).astype(np.uint8)


def grey(image):
    return greyscale(image[None])[0]


# (name, function drawing the shift's strength from a generator): what training mixes.
_RANDOM = (
    ("blur", lambda im, rng: blur(im, rng.uniform(0.6, 1.6))),
    ("sharpen", lambda im, rng: sharpen(im, rng.uniform(0.5, 1.5))),
    ("jpeg", lambda im, rng: jpeg(im, rng.integers(15, 50))),
    ("thick_lines", lambda im, rng: line_weight(im, 1)),
    ("thin_lines", lambda im, rng: line_weight(im, -1)),
    ("posterise", lambda im, rng: posterise(im, int(rng.integers(3, 7)))),
    ("grey", lambda im, rng: grey(im)),
)

# Fixed strengths for judging, each at the strong end of what training draws.
STYLE_SHIFTS = {
    "blur": lambda im: blur(im, 1.5),
    "sharpen": lambda im: sharpen(im, 1.5),
    "jpeg": lambda im: jpeg(im, 15),
    "thick_lines": lambda im: line_weight(im, 1),
    "posterise": lambda im: posterise(im, 4),
    "grey": grey,
}


def flat_colour(image):
    """Shading flattened into patches of one colour, as in cel-shaded or vector art."""
    return cv2.pyrMeanShiftFiltering(np.ascontiguousarray(image), 5, 28)


def tinted(image, gains):
    """Every channel scaled by its gain: the colour of the light, or of an old print."""
    return (image.astype(np.float32) * np.asarray(gains, np.float32)).clip(0, 255).astype(np.uint8)


def saturated(image, factor, lift=0.0):
    """Saturation times `factor`, and `lift` of the way from each pixel's value to white."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] *= factor
    hsv[..., 2] += (255 - hsv[..., 2]) * lift
    return cv2.cvtColor(hsv.clip(0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)


def grain(image, sigma):
    """Gaussian noise of `sigma` grey levels, the same pattern for every image of one size."""
    noise = np.random.default_rng(0).normal(0.0, sigma, image.shape)
    return (image + noise).clip(0, 255).astype(np.uint8)


def turned(image, degrees, scale=1.0):
    """Rotated by `degrees` and scaled by `scale` about the centre, the edges stretched out."""
    size = image.shape[0]
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), degrees, scale)
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, (size, size), borderMode=cv2.BORDER_REPLICATE)


# Kinds of shift training never draws, or past its reach (the augmentation tilts by at most 14
# degrees, zooms out by at most 15 % and scales saturation by 0.54 to 1.86): unseen by the networks.
UNSEEN_SHIFTS = {
    "flat_colour": flat_colour,
    "warm_light": lambda im: tinted(im, (1.12, 1.0, 0.82)),
    "vivid": lambda im: saturated(im, 2.5),
    "pale": lambda im: saturated(im, 0.35, 0.35),
    "grain": lambda im: grain(im, 14),
    "tilted": lambda im: turned(im, 25),
    "loose_crop": lambda im: turned(im, 0, 0.7),
}


def restyle(images, rng, fraction):
    """A copy of (N, S, S, 3) uint8 `images` with each one, with chance `fraction`, redrawn in
    one randomly chosen style shift."""
    out = images.copy()
    for i in np.nonzero(rng.random(len(images)) < fraction)[0]:
        _, shift = _RANDOM[rng.integers(len(_RANDOM))]
        out[i] = shift(np.ascontiguousarray(images[i]), rng)
    return out
