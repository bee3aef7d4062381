"""Finding, fetching and checking nagadomi's `lbpcascade_animeface.xml` (MIT licence).

The file is not committed: it is read from `ANIMEREC_CASCADE` when that is set, else from
`cascades/lbpcascade_animeface.xml` beside the package, and downloaded there once from upstream
at a pinned commit, checked against its SHA-256, when absent.
"""

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from animerec.errors import CascadeError
from animerec.paths import DEFAULT_CASCADE

CASCADE_COMMIT = "4433ab1ae1166ea75acfe99eb0f18709dac329a0"
CASCADE_SHA256 = "9376d30ac38db6bda2a68b88b3b76bbd7e6aa33af47f7f5c76bc88ca75f1ce30"
CASCADE_URL = (
    f"https://raw.githubusercontent.com/nagadomi/lbpcascade_animeface/{CASCADE_COMMIT}/lbpcascade_animeface.xml"
)


def cascade_path(download=True):
    """Path of a cascade file to load, downloading it first if it is nowhere to be found.

    `ANIMEREC_CASCADE` names a local file and is used as it is (no checksum: it may be a
    retrained cascade); `ANIMEREC_CASCADE_URL` replaces the download address. Raises
    CascadeError with a sentence saying where to put the file when it cannot be had.
    """
    chosen = os.environ.get("ANIMEREC_CASCADE")
    if chosen:
        if not Path(chosen).is_file():
            raise CascadeError(f"ANIMEREC_CASCADE names {chosen}, which is not a file: point it at lbpcascade_animeface.xml.")
        return Path(chosen)
    if DEFAULT_CASCADE.is_file():
        return DEFAULT_CASCADE
    if not download:
        raise CascadeError(_where_to_put_it("it is not there"))
    fetch_cascade(os.environ.get("ANIMEREC_CASCADE_URL") or CASCADE_URL, DEFAULT_CASCADE)
    return DEFAULT_CASCADE


def fetch_cascade(url, destination, timeout=30):
    """Download the cascade from `url` to `destination` if its SHA-256 is the pinned one.

    The file is written to a temporary name and moved into place only once checked, so a
    failed or wrong download never leaves a file behind.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise CascadeError(_where_to_put_it(f"downloading it from {url} failed: {reason}")) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != CASCADE_SHA256:
        raise CascadeError(
            f"The cascade downloaded from {url} has SHA-256 {digest[:12]}..., not the expected "
            f"{CASCADE_SHA256[:12]}...; it was not saved. " + _where_to_put_it(None)
        )
    destination = Path(destination)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=destination.parent, delete=False, suffix=".part") as f:
            f.write(data)
        os.replace(f.name, destination)
    except OSError as error:
        raise CascadeError(f"Could not save the cascade to {destination} ({error}). " + _where_to_put_it(None)) from None


def _where_to_put_it(what_happened):
    prefix = f"The anime-face cascade is missing ({what_happened}). " if what_happened else ""
    return (
        f"{prefix}Download lbpcascade_animeface.xml from github.com/nagadomi/lbpcascade_animeface "
        f"and put it at {DEFAULT_CASCADE}, or set ANIMEREC_CASCADE to its path."
    )
