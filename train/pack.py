"""`python -m train pack OUT_DIR`: a copy of the training data small enough to send to a lent GPU.

The device machine takes at most 64 MiB per call and has no TensorFlow or Keras, while the
shared data is about 150 MB of 128 px JPEGs and the decoded cache several times that. The copy:
- every crop of `faces/`, `fewshot/` and `unknown/` shrunk to the model's input size (the same
  `resize_square` that `load_faces` applies; smaller crops keep their size, so loading the copy
  enlarges them exactly as loading the original does), re-encoded as AVIF with full-resolution
  colour (4:4:4: hair and eye colour tell characters apart, and WebP's half-resolution colour
  cost the shipped model 0.7 points of test accuracy where this costs 0.2);
- `characters.csv`, so the card names the characters;
- with `wheels`, Keras and the small packages it needs that the GPU machine lacks, and this
  machine's Pillow (which reads AVIF), for its Python 3.12 (`pip download`, from the package
  index this machine reaches).

Each file keeps its relative path and name, `.jpg` included, so a model's `split.json` applies
to the copy as it does to the original and a model trained on the copy is judged here on the
original; Pillow reads a file by its content, not its suffix. Nothing here leaves the machine
except through the device tool, and the copy stays out of git (`.gitignore`).
The folders it writes are emptied first, so a copy made again holds nothing left from before
(two versions of a wheel would stop the install there).
"""

import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from animerec.crop import resize_square
from animerec.decode import decode_image
from animerec.errors import ImageError
from animerec.paths import IMAGE_EXTENSIONS, REPO_ROOT

CROP_FOLDERS = ("faces", "fewshot", "unknown")
CROP_QUALITY = 80  # AVIF at 80 px: 2.6 grey levels from the crop on average, 2.6 KB a face
DEVICE_LIMIT = 64 * 2**20
# What Keras 3 needs beyond what the GPU machine's image holds (numpy, h5py, ml-dtypes, rich,
# absl-py and packaging are there; see the device tool's KINDS.md), and Pillow, whose version
# there is not known to read AVIF.
WHEELS = ("keras", "namex", "optree", "pillow")
DEVICE_PYTHON = "3.12"
MANYLINUX = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def pack(data, out_dir, image_size=80, wheels=False, log=print):
    """Write the compact copy of `data` (the shared data folder) to `out_dir` and return its
    size in bytes. Unreadable images are left out with a warning on stderr, as `load_faces`
    would leave them out."""
    data, out_dir = Path(data), Path(out_dir)
    if not (data / "faces").is_dir():
        raise FileNotFoundError(f"{data} has no faces/ folder: give the shared data folder (../shared/data).")
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir} is a file: give a folder to write the copy into.")
    for name in (*CROP_FOLDERS, "wheels"):
        if (out_dir / name).is_dir():
            shutil.rmtree(out_dir / name)
    for name in CROP_FOLDERS:
        if (data / name).is_dir():
            count = _pack_images(data / name, out_dir / name, image_size)
            log(f"{name}: {count} crops at up to {image_size} px")
    if (data / "characters.csv").is_file():
        shutil.copy2(data / "characters.csv", out_dir / "characters.csv")
    if wheels:
        _download_wheels(out_dir / "wheels")
        log(f"wheels: {', '.join(sorted(p.name for p in (out_dir / 'wheels').glob('*.whl')))}")
    size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    carried = size + _tracked_bytes()
    log(f"{out_dir}: {size / 2**20:.1f} MiB; with the repository's tracked files a device call carries "
        f"{carried / 2**20:.1f} MiB" + ("" if carried <= DEVICE_LIMIT else
                                       f", more than its limit of {DEVICE_LIMIT // 2**20} MiB: pack less"))
    return size


def _tracked_bytes():
    """The size of the files git tracks in this repository (0 outside a git checkout)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return 0
    files = (REPO_ROOT / name for name in listed.decode().split("\0") if name)
    return sum(path.stat().st_size for path in files if path.is_file())


def _shrunk(rgb, size):
    """A crop larger than `size` resized to it as `load_faces` would; a smaller one as it is."""
    return resize_square(rgb, size) if min(rgb.shape[:2]) > size else rgb


def _pack_images(source, target, size):
    """Re-encode every image under `source` (sub-folders kept) into `target` as AVIF under its
    own name, shrunk to `size` (see `_shrunk`). Returns how many were written."""
    written = 0
    for path in sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS):
        try:
            rgb = decode_image(path.read_bytes())
        except ImageError as error:
            print(f"warning: skipped {path}: {error}", file=sys.stderr)
            continue
        out = target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_shrunk(rgb, size)).save(out, "AVIF", quality=CROP_QUALITY, subsampling="4:4:4")
        written += 1
    return written


def _download_wheels(folder):
    """`WHEELS` at this machine's versions, for the GPU machine's Python, without their
    dependencies, which that machine has. Raises OSError with a sentence when pip cannot."""
    from importlib.metadata import version

    folder.mkdir(parents=True, exist_ok=True)
    platforms = [arg for platform in MANYLINUX for arg in ("--platform", platform)]
    wanted = [f"{name}=={version(name)}" for name in WHEELS]
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                           "--python-version", DEVICE_PYTHON, "--implementation", "cp", *platforms, "-d", str(folder),
                           *wanted])
    if done.returncode:
        raise OSError(f"pip could not download {', '.join(wanted)} for Python {DEVICE_PYTHON} (exit {done.returncode}): "
                      "check that this machine reaches the package index, or pack without --wheels.")

