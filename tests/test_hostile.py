"""Hostile and odd files: each gives a result or the documented error, never a crash or a hang,
within a stated memory bound. The library runs in worker processes with a timeout per file; the
command line takes all of them in one call."""

import concurrent.futures
import io
import json
import multiprocessing
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import encode, gradient

ROOT = Path(__file__).resolve().parent.parent
SECONDS_PER_FILE = 30
PEAK_MEMORY_MB = 1024  # a worker's peak resident memory (decode, detect, crop; no TensorFlow)
MUTANTS = 300
AVIF_MUTANTS = 100


def _png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def odd_files():
    """{name: bytes} for every odd or hostile kind of file the issue names, made in memory."""
    rng = np.random.default_rng(1)
    noisy = Image.fromarray(rng.integers(0, 255, (300, 300, 3), dtype=np.uint8))
    jpeg, png = encode(noisy, "JPEG"), encode(noisy, "PNG")
    palette = Image.new("P", (32, 32), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    frames = [Image.new("RGB", (40, 40), c) for c in ("red", "blue", "green")]
    exif = Image.Exif()
    exif[0x0112] = 6
    huge_exif = Image.Exif()
    huge_exif[0x010E] = "x" * 60_000  # ImageDescription: a 60 kB EXIF block
    return {
        "empty.jpg": b"",
        "random.jpg": rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "truncated.jpg": jpeg[: len(jpeg) // 3],
        "truncated.png": png[: len(png) // 3],
        "bomb.png": b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + _png_chunk(b"IEND", b""),
        "one-pixel.png": encode(Image.new("RGB", (1, 1), "white")),
        "strip.png": encode(Image.new("RGB", (20_000, 200), (200, 100, 50))),
        "sixteen-bit.png": encode(Image.fromarray((gradient()[:, :, 0].astype(np.uint16) * 257))),
        "cmyk.jpg": encode(Image.fromarray(gradient()).convert("CMYK"), "JPEG"),
        "palette-transparent.png": encode(palette, "PNG", transparency=0),
        "grayscale.png": encode(Image.fromarray(gradient()[:, :, 1])),
        "animated.gif": encode(frames[0], "GIF", save_all=True, append_images=frames[1:], loop=0),
        "exif-rotated.jpg": encode(Image.fromarray(gradient(64, 48)), "JPEG", exif=exif),
        "svg.png": b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>",
        "html.png": b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>",
        "huge-exif.jpg": encode(Image.fromarray(gradient()), "JPEG", exif=huge_exif),
        "noise.avif": encode(noisy, "AVIF"),
        "transparent.avif": encode(Image.new("RGBA", (40, 40), (255, 0, 0, 0)), "AVIF"),
        "truncated.avif": encode(noisy, "AVIF")[:400],
    }


def mutants(original, count, seed=0, suffix="jpg"):
    """Copies of a real image file with flipped bytes or cut tails, made in memory."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(count):
        data = bytearray(original)
        if i % 3 == 2:
            data = data[: int(rng.integers(2, len(data)))]
        else:
            for position in rng.integers(2, len(data), int(rng.integers(1, 40))):
                data[position] = int(rng.integers(0, 256))
        out[f"mutant-{i:03d}.{suffix}"] = bytes(data)
    return out


def _work(data):
    """In a worker: decode, detect, crop. Returns (outcome, detail, peak RSS in MB)."""
    import resource

    from animerec import ImageError, crop_faces, decode_image, load_detector

    global _DETECTOR
    if "_DETECTOR" not in globals():
        _DETECTOR = load_detector()
    try:
        image = decode_image(data)
        boxes = _DETECTOR.detect(image)
        crops = crop_faces(image, boxes, 64)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        outcome, detail = "ok", (image.shape, crops.shape)
    except ImageError as error:
        outcome, detail = "refused", f"{type(error).__name__}: {error}"
    except Exception as error:  # the test fails on these
        outcome, detail = "crash", f"{type(error).__name__}: {error}"
    return outcome, detail, _peak_megabytes(resource)


def _peak_megabytes(resource):
    """This process's peak resident memory. Linux's VmHWM belongs to the process's own memory
    map, made anew when the worker started; `ru_maxrss` also counts the parent's size at the
    fork, which after the training tests is the whole pytest process with TensorFlow."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module")
def real_jpeg(data):
    return (data / "scenes" / "101.jpg").read_bytes()


@pytest.fixture(scope="module")
def real_avif(real_jpeg):
    """The same illustration as AVIF, encoded in memory: AVIF goes through another decoder."""
    return encode(Image.open(io.BytesIO(real_jpeg)), "AVIF", quality=60)


def test_every_odd_file_gives_a_result_or_a_sentence_within_time_and_memory(real_jpeg, real_avif):
    files = {**odd_files(), **mutants(real_jpeg, MUTANTS), **mutants(real_avif, AVIF_MUTANTS, suffix="avif")}
    context = multiprocessing.get_context("spawn")
    outcomes, peaks = {}, []
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        futures = {name: pool.submit(_work, data) for name, data in files.items()}
        for name, future in futures.items():
            try:
                outcome, detail, peak = future.result(timeout=SECONDS_PER_FILE * len(files) / 2)
            except concurrent.futures.TimeoutError:
                pytest.fail(f"{name} did not finish in time")
            outcomes[name] = (outcome, detail)
            peaks.append(peak)
    crashes = {n: d for n, (o, d) in outcomes.items() if o == "crash"}
    assert not crashes, crashes
    expected_refusals = {"empty.jpg", "random.jpg", "truncated.jpg", "truncated.png", "bomb.png", "svg.png", "html.png",
                         "truncated.avif"}
    assert {n for n, (o, _) in outcomes.items() if o == "refused" and not n.startswith("mutant")} == expected_refusals
    for name in ("strip.png", "sixteen-bit.png", "cmyk.jpg", "palette-transparent.png", "animated.gif", "huge-exif.jpg",
                 "noise.avif", "transparent.avif"):
        assert outcomes[name][0] == "ok", (name, outcomes[name])
    assert outcomes["exif-rotated.jpg"][1][0] == (64, 48, 3)
    for name, (outcome, detail) in outcomes.items():
        if outcome == "refused":
            message = detail.split(": ", 1)[1]
            assert message[0].isupper() and message.rstrip().endswith("."), (name, message)
    for suffix, count in (("jpg", MUTANTS), ("avif", AVIF_MUTANTS)):
        refused = sum(o == "refused" for n, (o, _) in outcomes.items() if n.startswith("mutant") and n.endswith(suffix))
        print(f"\n{count} mutated .{suffix} files: {count - refused} decoded, {refused} refused with a sentence")
    print(f"peak worker memory {max(peaks):.0f} MB")
    assert max(peaks) < PEAK_MEMORY_MB


def test_the_command_line_takes_them_all_in_one_call(real_jpeg, tmp_path):
    files = {**odd_files(), **mutants(real_jpeg, 30, seed=1)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    result = subprocess.run([sys.executable, "-m", "animerec", str(tmp_path), "--json"], capture_output=True,
                            text=True, cwd=ROOT, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert len(report) == len(files)
    errors = [r for r in report if "error" in r]
    assert result.returncode == (1 if errors else 0)
    assert len(result.stderr.strip().splitlines()) == len(errors)
    assert all("faces" in r or "error" in r for r in report)
