"""`python -m train prepare RAW_DIR OUT_DIR`: the report's data step.

For raw illustrations in one sub-folder per character, find faces with the page's own detector
and cut them out with the page's own crop function, so training crops are framed exactly like
the crops the page classifies.
"""

import sys
from collections import Counter
from pathlib import Path

from PIL import Image

from animerec.crop import crop_faces
from animerec.decode import decode_image
from animerec.detect import load_detector
from animerec.errors import ImageError
from train.dataset import list_images

CROP_SIZE = 128  # the shared faces/ are 128 px; the model resizes to its own input


def prepare(raw_dir, out_dir, size=CROP_SIZE, log=print):
    """Write `out_dir/<character>/<image>-<n>.jpg` for every face found under `raw_dir`.

    Unreadable files are skipped with a warning on stderr. Returns a Counter of how many
    images gave "0", "1" and "several" faces, which is also printed.
    """
    detector = load_detector()
    tally = Counter({"0": 0, "1": 0, "several": 0, "unreadable": 0})
    for character, files in list_images(raw_dir).items():
        target = Path(out_dir) / character
        for path in files:
            try:
                image = decode_image(path.read_bytes())
            except ImageError as error:
                print(f"warning: skipped {path}: {error}", file=sys.stderr)
                tally["unreadable"] += 1
                continue
            boxes = detector.detect(image)
            tally["0" if not boxes else "1" if len(boxes) == 1 else "several"] += 1
            if boxes:
                target.mkdir(parents=True, exist_ok=True)
            for n, crop in enumerate(crop_faces(image, boxes, size)):
                Image.fromarray(crop).save(target / f"{path.stem}-{n}.jpg", quality=95)
    log(f"images with 0 faces: {tally['0']}, 1 face: {tally['1']}, several faces: {tally['several']}, "
        f"unreadable: {tally['unreadable']}")
    return tally
