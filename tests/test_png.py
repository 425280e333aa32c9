"""The prediction inputs' PNG decoder (``service.png``) against Pillow as the oracle, every row filter,
damaged files, and decompression bombs refused without inflating them."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

from service.png import PngError, decode_png

RNG = np.random.default_rng(7)


def chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode(
    pixels: np.ndarray,
    colour: int,
    filters: list[int] | None = None,
    *,
    header_size=None,
    raw: bytes | None = None,
    palette: bytes | None = None,
    depth: int = 8,
    interlace: int = 0,
) -> bytes:
    """A PNG of ``pixels`` (H, W, k) uint8 with the given row filters (an independent encoder for the tests).

    ``header_size`` lies about (width, height); ``raw`` replaces the filtered data before compression.
    """
    h, w, bpp = pixels.shape
    rows = []
    prev = np.zeros(w * bpp, dtype=np.int64)
    for y in range(h):
        line = pixels[y].reshape(-1).astype(np.int64)
        kind = (filters or [0])[y % len(filters or [0])]
        left = np.concatenate([np.zeros(bpp, dtype=np.int64), line[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, dtype=np.int64), prev[:-bpp]])
        if kind == 0:
            pred = np.zeros_like(line)
        elif kind == 1:
            pred = left
        elif kind == 2:
            pred = prev
        elif kind == 3:
            pred = (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        rows.append(bytes([kind]) + ((line - pred) % 256).astype(np.uint8).tobytes())
        prev = line
    width, height = header_size or (w, h)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    body = zlib.compress(raw if raw is not None else b"".join(rows))
    extra = chunk(b"PLTE", palette) if palette is not None else b""
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", body) + chunk(b"IEND", b"")


@pytest.mark.parametrize("mode, k", [("L", 1), ("LA", 2), ("RGB", 3), ("RGBA", 4)])
def test_decodes_what_pillow_writes(mode, k):
    arr = RNG.integers(0, 256, (23, 31, k), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr[:, :, 0] if k == 1 else arr, mode).save(buf, "PNG")
    np.testing.assert_array_equal(decode_png(buf.getvalue(), 10_000), arr)


def test_palette_images_become_rgba_as_pillow_reads_them():
    im = Image.fromarray(RNG.integers(0, 256, (19, 17, 3), dtype=np.uint8), "RGB").quantize(50)
    im.info["transparency"] = 3
    buf = io.BytesIO()
    im.save(buf, "PNG", transparency=3)
    got = decode_png(buf.getvalue(), 10_000)
    np.testing.assert_array_equal(got, np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGBA")))
    assert (got[:, :, 3] == 0).any()


@pytest.mark.parametrize("filters", [[0], [1], [2], [3], [4], [4, 3, 2, 1, 0]])
@pytest.mark.parametrize("k, colour", [(1, 0), (3, 2), (4, 6)])
def test_every_row_filter_round_trips(filters, k, colour):
    arr = RNG.integers(0, 256, (9, 13, k), dtype=np.uint8)
    data = encode(arr, colour, filters)
    np.testing.assert_array_equal(decode_png(data, 10_000), arr)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))).reshape(arr.shape), arr)  # oracle


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: d[:8], "no IHDR"),
        (lambda d: b"GIF89a" + d[6:], "signature"),
        (lambda d: d[:-20] + bytes([d[-20] ^ 1]) + d[-19:], "bad CRC in chunk 'IDAT'"),
        (lambda d: d[:-30], "truncated"),
    ],
)
def test_damaged_files_are_refused(damage, message):
    data = encode(RNG.integers(0, 256, (4, 4, 1), dtype=np.uint8), 0)
    with pytest.raises(PngError, match=message):
        decode_png(damage(data), 10_000)


def test_unsupported_formats_say_what_to_do():
    arr = RNG.integers(0, 256, (4, 4, 1), dtype=np.uint8)
    with pytest.raises(PngError, match="16-bit grey PNGs are not supported: save it as 8-bit"):
        decode_png(encode(arr, 0, depth=16), 100)
    with pytest.raises(PngError, match="interlaced PNGs are not supported"):
        decode_png(encode(arr, 0, interlace=1), 100)
    buf = io.BytesIO()
    Image.fromarray(arr[:, :, 0] > 128).save(buf, "PNG")  # 1-bit
    with pytest.raises(PngError, match="1-bit grey PNGs are not supported"):
        decode_png(buf.getvalue(), 100)


def test_a_huge_declared_size_is_refused_from_the_header():
    data = encode(np.zeros((1, 1, 1), dtype=np.uint8), 0, header_size=(3000, 3000))
    with pytest.raises(PngError, match="3000×3000 = 9000000 pixels, over the limit of 4194304"):
        decode_png(data, 4 * 2**20)
    strip = encode(np.zeros((1, 1, 1), dtype=np.uint8), 0, header_size=(1, 100_000))
    with pytest.raises(PngError, match="a side over 4096"):
        decode_png(strip, 10**9)


def test_a_decompression_bomb_is_never_inflated_past_its_declared_size():
    """A 16×16 header over 64 MB of zeros (64 KB compressed): refused, having inflated ~16×17 bytes."""
    bomb = encode(np.zeros((16, 16, 1), dtype=np.uint8), 0, raw=bytes(64 * 2**20))
    assert len(bomb) < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(PngError, match="more bytes than its header's size needs"):
            decode_png(bomb, 10_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, f"decoding allocated {peak} bytes"


def test_too_little_data_is_refused():
    data = encode(np.zeros((16, 16, 1), dtype=np.uint8), 0, raw=bytes(100))
    with pytest.raises(PngError, match="fewer bytes"):
        decode_png(data, 10_000)
