"""A small PNG decoder for prediction inputs: 8-bit, non-interlaced grey, grey+alpha, RGB, RGBA and palette.

Uploaded images are untrusted, so nothing here trusts a size it has not
checked: the header's width × height is held against ``max_pixels`` *before*
a byte is inflated, and inflating stops one byte past the exact size the
header implies (``zlib``'s ``max_length``), so a decompression bomb costs at
most that bound.  Chunk CRCs are checked.  Pure Python and NumPy: no image
library is imported by the service for this.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel (palette: one index)
COLOUR_NAMES = {0: "grey", 2: "RGB", 3: "palette", 4: "grey+alpha", 6: "RGBA"}
# A 1 × 1,000,000 strip is within a pixel budget, but resizing it would need a matrix per side.
MAX_SIDE = 4096


class PngError(ValueError):
    """The bytes are not a PNG this decoder reads; the message says what is wrong."""


def _chunks(data: bytes):
    """Yield ``(type, body)`` of each chunk, CRC-checked, up to and including IEND."""
    pos = len(SIGNATURE)
    while True:
        if pos + 8 > len(data):
            raise PngError("truncated PNG: no IEND chunk")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length
        if end + 4 > len(data):
            raise PngError(f"truncated PNG: chunk {kind!r} runs past the end")
        body = data[pos + 8 : end]
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(kind + body) != crc:
            raise PngError(f"corrupt PNG: bad CRC in chunk {kind.decode('latin-1')!r}")
        yield kind, body
        if kind == b"IEND":
            return
        pos = end + 4


def png_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from the header alone (nothing is inflated)."""
    if not data.startswith(SIGNATURE):
        raise PngError("not a PNG (the signature is missing)")
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise PngError("not a PNG (no IHDR header)")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def decode_png(data: bytes, max_pixels: int, max_side: int = MAX_SIDE) -> np.ndarray:
    """Decode ``data`` to ``(H, W, C)`` uint8: C is 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA, palettes too).

    Raises :class:`PngError` for anything else, for an image of more than
    ``max_pixels`` pixels or a side over ``max_side`` (checked before
    inflating), or for damaged data.
    """
    width, height = png_size(data)
    if width == 0 or height == 0:
        raise PngError(f"the image is empty ({width}×{height})")
    if max(width, height) > max_side:
        raise PngError(f"the image is {width}×{height}: a side over {max_side} pixels")
    if width * height > max_pixels:
        raise PngError(f"the image is {width}×{height} = {width * height} pixels, over the limit of {max_pixels}")
    header = palette = transparency = None
    idat = []
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            header = body
        elif kind == b"PLTE":
            palette = body
        elif kind == b"tRNS":
            transparency = body
        elif kind == b"IDAT":
            idat.append(body)
    if header is None or len(header) != 13:
        raise PngError("corrupt PNG: bad IHDR")
    _, _, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", header)
    if colour not in CHANNELS:
        raise PngError(f"unknown PNG colour type {colour}")
    if depth != 8:
        raise PngError(f"{depth}-bit {COLOUR_NAMES[colour]} PNGs are not supported: save it as 8-bit")
    if compression != 0 or filtering != 0:
        raise PngError("unknown PNG compression or filter method")
    if interlace != 0:
        raise PngError("interlaced PNGs are not supported: save it without interlacing")
    if not idat:
        raise PngError("corrupt PNG: no image data")
    bpp = CHANNELS[colour]
    stride = width * bpp
    raw = _inflate(b"".join(idat), height * (stride + 1))
    pixels = _unfilter(raw, height, stride, bpp).reshape(height, width, bpp)
    if colour == 3:
        return _expand_palette(pixels[:, :, 0], palette, transparency)
    return pixels


def _inflate(compressed: bytes, expected: int) -> bytes:
    """Exactly ``expected`` bytes of zlib data: never more are produced, fewer is an error."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(compressed, expected + 1)
    except zlib.error as exc:
        raise PngError(f"corrupt PNG image data: {exc}") from None
    if len(raw) != expected:
        more = len(raw) > expected
        raise PngError(
            f"corrupt PNG: the image data holds {'more' if more else 'fewer'} bytes than its "
            f"header's size needs ({expected})"
        )
    return raw


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> np.ndarray:
    """Undo the per-row filters (PNG spec §9): ``(height, stride)`` uint8.

    None, Sub and Up are vectorised; Average and Paeth depend on the byte to
    their left, so they run byte by byte (bounded by ``max_pixels``).
    """
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:]
        if kind == 0:
            cur = line.copy()
        elif kind == 1:
            # a[i] = x[i] + a[i - bpp]: a running sum (mod 256) down each byte position of the pixels.
            cur = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:
            cur = line + prev
        elif kind in (3, 4):
            cur = np.frombuffer(_unfilter_sequential(kind, line.tobytes(), prev.tobytes(), bpp), dtype=np.uint8)
        else:
            raise PngError(f"corrupt PNG: unknown filter type {kind} in row {y}")
        out[y] = cur
        prev = cur
    return out


def _unfilter_sequential(kind: int, line: bytes, prev: bytes, bpp: int) -> bytearray:
    """Average (3) or Paeth (4) for one row."""
    cur = bytearray(line)
    for i in range(len(cur)):
        a = cur[i - bpp] if i >= bpp else 0
        b = prev[i]
        if kind == 3:
            cur[i] = (cur[i] + ((a + b) >> 1)) & 0xFF
        else:
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            predictor = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[i] = (cur[i] + predictor) & 0xFF
    return cur


def _expand_palette(index: np.ndarray, palette: bytes | None, transparency: bytes | None) -> np.ndarray:
    """Palette indices -> RGBA (``tRNS`` gives the alpha of the first entries; the rest are opaque)."""
    if palette is None or len(palette) % 3 or not palette:
        raise PngError("corrupt PNG: a palette image without a valid PLTE chunk")
    entries = len(palette) // 3
    table = np.full((256, 4), 255, dtype=np.uint8)
    table[:entries, :3] = np.frombuffer(palette, dtype=np.uint8).reshape(entries, 3)
    if transparency:
        alpha = np.frombuffer(transparency[:entries], dtype=np.uint8)
        table[: len(alpha), 3] = alpha
    if int(index.max()) >= entries:
        raise PngError(f"corrupt PNG: a pixel uses palette entry {int(index.max())} of {entries}")
    return table[index]
