"""Bytes in, RGB uint8 out: the one door every image comes through."""

import io
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from animerec.defaults import MAX_PIXELS
from animerec.errors import (
    EmptyImageError,
    ImageTooLargeError,
    NotAnImageError,
    TruncatedImageError,
)

# A cut-short file must be reported, not silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

FORMATS_HINT = "JPEG, PNG, WebP, AVIF, GIF, BMP or TIFF"


def decode_image(data, max_pixels=MAX_PIXELS):
    """Decode image file bytes to an RGB uint8 array of shape (H, W, 3).

    EXIF orientation is applied, so (H, W) is the image as a person sees it. Transparency is
    flattened onto white; grayscale, palette, 16-bit and CMYK images are converted; an animated
    image gives its first frame.

    Raises EmptyImageError, NotAnImageError, TruncatedImageError or ImageTooLargeError (all
    ImageError) with a sentence saying what to do. The pixel count is checked against
    `max_pixels` from the header, before any pixel is decoded.
    """
    if not data:
        raise EmptyImageError(f"The file is empty (0 bytes): choose an image file ({FORMATS_HINT}).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError(_too_large_message(None, max_pixels)) from None
    except UnidentifiedImageError:
        raise NotAnImageError(f"This file is not an image we can read: use {FORMATS_HINT}.") from None
    except Exception:  # Pillow's plugins raise many types on malformed headers
        raise TruncatedImageError(_corrupt_message()) from None

    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError(_too_large_message((width, height), max_pixels))
    if width < 1 or height < 1:
        raise TruncatedImageError(_corrupt_message("it declares no pixels"))

    try:
        image.load()
        try:
            image = ImageOps.exif_transpose(image)
        except Exception:  # a broken EXIF block should not cost the picture
            pass
        return _to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError(_too_large_message((width, height), max_pixels)) from None
    except MemoryError:
        raise ImageTooLargeError(_too_large_message((width, height), max_pixels)) from None
    except Exception:
        raise TruncatedImageError(_corrupt_message()) from None


def _to_rgb(image):
    """Any Pillow mode to a contiguous (H, W, 3) uint8 RGB array."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        gray = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        mode in ("P", "L", "RGB") and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def _too_large_message(size, max_pixels):
    declared = f"{size[0]:,} x {size[1]:,} pixels" if size else "more pixels than we decode"
    return (
        f"This image is too large ({declared}; the limit is {max_pixels / 1e6:.0f} megapixels): "
        "resize it and try again."
    )


def _corrupt_message(reason="it is cut short or damaged"):
    """The sentence for a file that is an image but cannot be decoded: in words for people, not
    the decoder's own text ("image file is truncated (85 bytes not processed)")."""
    return f"This image file is truncated or corrupt ({reason}): re-save or re-download it and try again."
