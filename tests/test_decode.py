"""decode_image: every format a visitor may upload, and every way a file can be bad."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from animerec import (
    EmptyImageError,
    ImageTooLargeError,
    NotAnImageError,
    TruncatedImageError,
    decode_image,
)
from conftest import encode, gradient


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "AVIF", "GIF", "BMP", "TIFF"])
def test_common_formats_decode_to_rgb_uint8(fmt):
    data = encode(Image.fromarray(gradient(64, 48)), fmt)
    image = decode_image(data)
    assert image.shape == (48, 64, 3)
    assert image.dtype == np.uint8
    assert image.flags["C_CONTIGUOUS"]


def test_png_is_lossless():
    card = gradient(40, 30)
    assert np.array_equal(decode_image(encode(Image.fromarray(card))), card)


def test_grayscale_becomes_three_equal_channels():
    image = decode_image(encode(Image.fromarray(gradient()[:, :, 0]), "PNG"))
    assert image.shape == (48, 64, 3)
    assert np.array_equal(image[:, :, 0], image[:, :, 2])


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    image = decode_image(encode(Image.fromarray(values), "PNG"))
    assert image[0, :, 0].tolist() == [0, 128, 255]


def test_sixteen_bit_rgb_png():
    # Pillow has no writer for 48-bit RGB: build the PNG by hand (IHDR bit depth 16, colour type 2).
    height, width = 2, 3
    pixels = np.full((height, width, 3), 65535, dtype=">u2")
    pixels[0, 0] = (65535, 0, 0)
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    image = decode_image(data)
    assert image.shape == (2, 3, 3)
    assert image[0, 0].tolist() == [255, 0, 0]
    assert image[1, 2].tolist() == [255, 255, 255]


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.fromarray(gradient()).convert("CMYK")
    image = decode_image(encode(cmyk, "JPEG"))
    assert image.shape == (48, 64, 3)
    assert abs(int(image[0, 0, 2]) - 128) < 20  # the blue channel survives the round trip


def test_transparency_is_flattened_on_white():
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[:5, :, :] = (255, 0, 0, 255)  # opaque red top half, fully transparent bottom half
    image = decode_image(encode(Image.fromarray(rgba, "RGBA")))
    assert image[0, 0].tolist() == [255, 0, 0]
    assert image[9, 9].tolist() == [255, 255, 255]


def test_palette_with_transparency_is_flattened_on_white():
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    palette.paste(1, (0, 0, 4, 8))
    image = decode_image(encode(palette, "PNG", transparency=0))
    assert image[0, 0].tolist() == [0, 0, 255]
    assert image[0, 7].tolist() == [255, 255, 255]


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = decode_image(data)
    assert image[8, 8, 0] > 200 and image[8, 8, 2] < 50


@pytest.mark.parametrize("orientation, expected_shape", [(1, (48, 64, 3)), (6, (64, 48, 3)), (8, (64, 48, 3)), (3, (48, 64, 3))])
def test_exif_orientation_is_honoured(orientation, expected_shape):
    card = gradient(64, 48)
    exif = Image.Exif()
    exif[0x0112] = orientation
    image = decode_image(encode(Image.fromarray(card), "PNG", exif=exif))
    assert image.shape == expected_shape
    if orientation == 6:  # rotate 90 degrees clockwise to display: the old bottom-left is now top-left
        assert np.array_equal(image[0, 0], card[-1, 0])
    if orientation == 3:
        assert np.array_equal(image[0, 0], card[-1, -1])


def test_broken_exif_does_not_cost_the_picture():
    data = encode(Image.fromarray(gradient()), "JPEG", exif=b"Exif\x00\x00" + b"\xff" * 64)
    assert decode_image(data).shape == (48, 64, 3)


def test_long_thin_strip_is_fine():
    strip = Image.new("RGB", (20_000, 200), (10, 20, 30))
    assert decode_image(encode(strip, "PNG")).shape == (200, 20_000, 3)


def test_one_pixel_image():
    assert decode_image(encode(Image.new("RGB", (1, 1), (1, 2, 3)))).tolist() == [[[1, 2, 3]]]


def test_empty_input_is_refused():
    with pytest.raises(EmptyImageError, match="empty"):
        decode_image(b"")


@pytest.mark.parametrize("data", [b"hello, this is text", b"<svg xmlns='http://www.w3.org/2000/svg'/>",
                                  b"<html><body>not an image</body></html>", bytes(range(256)) * 4])
def test_non_images_are_refused(data):
    with pytest.raises(NotAnImageError, match="not an image"):
        decode_image(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_are_refused(fmt):
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8))
    data = encode(noisy, fmt)
    with pytest.raises(TruncatedImageError, match="truncated or corrupt") as raised:
        decode_image(data[: len(data) // 2])
    assert "bytes not processed" not in str(raised.value) and "cut short or damaged" in str(raised.value), \
        "a sentence for people, not the decoder's text"


def test_the_not_an_image_message_names_every_format_the_uploader_takes():
    with pytest.raises(NotAnImageError) as raised:
        decode_image(b"<html>not an image</html>")
    for name in ("JPEG", "PNG", "WebP", "AVIF", "GIF", "BMP", "TIFF"):
        assert name in str(raised.value)


def test_huge_declared_size_is_refused_before_decoding():
    # A valid PNG header declaring 100,000 x 100,000 pixels with next to no data behind it.
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))
    with pytest.raises(ImageTooLargeError, match="too large"):
        decode_image(data)


def test_the_pixel_limit_applies_to_the_header():
    data = encode(Image.new("RGB", (300, 200)), "PNG")
    with pytest.raises(ImageTooLargeError, match="300 x 200"):
        decode_image(data, max_pixels=50_000)
    assert decode_image(data, max_pixels=60_000).shape == (200, 300, 3)


def test_errors_are_sentences_saying_what_to_do():
    for data in (b"", b"junk"):
        with pytest.raises(Exception) as caught:
            decode_image(data)
        message = str(caught.value)
        assert message[0].isupper() and message.endswith(".")
        assert "JPEG" in message
