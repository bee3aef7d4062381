"""Where the package finds its files: everything relative to this file, never the working
directory, and each overridable by an environment variable."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "default"
DEFAULT_CASCADE = REPO_ROOT / "cascades" / "lbpcascade_animeface.xml"
DEFAULT_FACE_CHECK_DIR = REPO_ROOT / "models" / "face_check"
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"

# What the command line takes from a folder and the page's uploader accepts. ".jfif" is how
# browsers on Windows often save a JPEG; AVIF is what many sites now serve.
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jfif", ".png", ".webp", ".avif", ".gif", ".bmp", ".tif", ".tiff"}


def model_dir():
    """The model directory to load: `ANIMEREC_MODEL`, else `models/default/`."""
    return Path(os.environ.get("ANIMEREC_MODEL") or DEFAULT_MODEL_DIR)


def face_check_dir():
    """The detector's face check to load: `ANIMEREC_FACE_CHECK`, else `models/face_check/`."""
    return Path(os.environ.get("ANIMEREC_FACE_CHECK") or DEFAULT_FACE_CHECK_DIR)


def data_dir():
    """The shared training and test images: `ANIMEREC_DATA`, else `../shared/data`."""
    return Path(os.environ.get("ANIMEREC_DATA") or DEFAULT_DATA_DIR)
