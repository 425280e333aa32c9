"""Prediction inputs: PNG decoding (worst case and a canvas drawing), PNG -> model input, and
checking a full batch of numbers.  Prints the best of 5 runs of each; asserts nothing.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_predict.py
"""

from __future__ import annotations

import base64
import io
import time

import numpy as np
from PIL import Image  # writes the test images only (a test dependency)

from service.png import decode_png
from service.predict_inputs import image_input, number_input


def best(f, n: int = 5) -> float:
    """The fastest of ``n`` runs of ``f``, in seconds."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def png(pixels: np.ndarray) -> bytes:
    """``pixels`` (H, W, 4) as a PNG (Pillow picks the row filters, as a browser's encoder does)."""
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buf, "PNG")
    return buf.getvalue()


def main() -> None:
    """Print the timings."""
    rng = np.random.default_rng(0)
    noise = png(rng.integers(0, 256, (280, 280, 4), dtype=np.uint8))
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[..., 3] = 255
    canvas[60:220, 120:160, :3] = 255
    drawing = png(canvas)
    b64 = base64.b64encode(drawing).decode()
    x = rng.random((256, 1, 28, 28)).tolist()
    print(
        f"decode 280x280 RGBA noise (Paeth/Average rows, byte by byte): {best(lambda: decode_png(noise, 10**6)):.3f} s"
    )
    print(f"decode 280x280 RGBA drawing: {best(lambda: decode_png(drawing, 10**6)):.4f} s")
    print(f"one 280x280 PNG input -> 1x28x28: {best(lambda: image_input(b64, (1, 28, 28), [10**7], 'i')):.4f} s")
    print(f"check 256 inputs of 1x28x28 numbers: {best(lambda: [number_input(s, (1, 28, 28), 'i') for s in x]):.3f} s")


if __name__ == "__main__":
    main()
