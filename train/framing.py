"""Training faces framed the way the page frames them.

The page cuts each face as the cascade's box widened by `CROP_MARGIN` on every side. The two
sources of the 30 characters frame their crops otherwise: a Danbooru crop is about the box
itself, an AnimeFace crop about twice it. A network trained on the crops as they are learns the
framing as a sign of the source, and so of the character, and names the faces the page cuts
far less often (`docs/model.md`). `page_framed` cuts every crop the page's way, the part of the
widened box outside the crop filled by stretching its edges, since the crop is all of the
picture there is (`animerec.crop.crop_faces` with `stretch_edges`).
Where the cascade finds no face, the face fills the crop (the case the detector's retry is for),
so the whole crop is taken for the box.
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from animerec.crop import crop_faces
from animerec.decode import decode_image
from animerec.defaults import CROP_MARGIN
from animerec.errors import ImageError


def page_framed(paths, image_size, detector, cache_dir=None):
    """Each image of `paths` cut the page's way around the largest face `detector` finds in it,
    or around the whole image where it finds none.

    Returns (images (N, S, S, 3) uint8, found (N,) bool: where a face was found, read (N,) bool);
    a file that cannot be read leaves a row of zeros, which `framed_or_own` replaces by the
    caller's crop.
    With `cache_dir`, the result is kept as a .npz keyed by the paths and size.
    """
    paths = [Path(p) for p in paths]
    key = hashlib.sha1(json.dumps([image_size, CROP_MARGIN] + [str(p) for p in paths]).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"page-framed-{image_size}-{key}.npz" if cache_dir else None
    if cache and cache.exists():
        with np.load(cache, allow_pickle=False) as saved:
            return saved["images"], saved["found"], saved["read"]
    images = np.zeros((len(paths), image_size, image_size, 3), np.uint8)
    found, read = np.zeros(len(paths), bool), np.zeros(len(paths), bool)
    for i, path in enumerate(paths):
        try:
            rgb = decode_image(path.read_bytes())
        except (ImageError, OSError) as error:
            print(f"warning: not framed {path}: {error}", file=sys.stderr)
            continue
        boxes = detector.detect(rgb)
        found[i], read[i] = bool(boxes), True
        box = max(boxes, key=lambda b: b.w * b.h) if boxes else (0, 0, rgb.shape[1], rgb.shape[0])
        images[i] = crop_faces(rgb, [box], image_size, stretch_edges=True)[0]
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, images=images, found=found, read=read)
    return images, found, read


def framed_or_own(own, framed, read):
    """`framed` where its file was read, else the crop as it was: a copy of `own` (N, S, S, 3)."""
    out = own.copy()
    out[read] = framed[read]
    return out
