"""A tiny dataset where colour alone cannot tell the classes apart: the same random colours in
every class, different shapes. Written as PNG files, one folder per class."""

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("disc", "square", "triangle")


def draw_shape(shape, size, rng):
    background, foreground = (tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(2))
    while abs(sum(background) - sum(foreground)) < 150:  # same colours in every class, but visible
        foreground = tuple(int(v) for v in rng.integers(0, 256, 3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    r = rng.uniform(0.25, 0.4) * size
    cx, cy = rng.uniform(r, size - r, 2)
    if shape == "disc":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=foreground)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=foreground)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=foreground)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=foreground, width=max(2, int(r / 3)))
    elif shape == "bar":
        draw.rectangle([cx - r, cy - r / 3, cx + r, cy + r / 3], fill=foreground)
    else:  # cross
        draw.rectangle([cx - r, cy - r / 4, cx + r, cy + r / 4], fill=foreground)
        draw.rectangle([cx - r / 4, cy - r, cx + r / 4, cy + r], fill=foreground)
    # Sensor-like noise: flat synthetic images would otherwise all share one perceptual hash and
    # be kept together as near-duplicates by the split.
    noisy = np.asarray(image, np.float32) + rng.normal(0, 12, (size, size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def write_shapes(root, per_class=60, size=32, seed=0, shapes=SHAPES, flat=False):
    """Write `per_class` images of each shape under root/<shape>/ (or all in root with `flat`);
    returns root. Other shapes than SHAPES: "ring", "bar", "cross"."""
    rng = np.random.default_rng(seed)
    for shape in shapes:
        folder = root if flat else root / shape
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw_shape(shape, size, rng).save(folder / f"{shape}-{i:03d}.png")
    return root
