"""The ``inputs`` of a prediction request, checked and converted to one ``(N, C, H, W)`` float64 batch.

Each input is either numbers (a ``C × H × W`` nested list, already scaled as
the job's dataset: ``[0, 1]``) or a base64 PNG, which is scaled as the
built-in datasets are (``pixel / 255``; alpha composited onto black, the
datasets' background), converted to the model's channels (grey: ITU-R 601
luma, as Pillow's ``L``; grey to RGB: repeated) and resized to its ``H × W``
by area averaging (how ``digits`` was made from 32×32 bitmaps).  Problems are
422 with a field path each (``inputs[3]``, ``inputs[0][0][5]``); too many
inputs is 413.  docs/predictions.md.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import numpy as np

from .errors import ApiError
from .png import PngError, decode_png

DATA_URL = "data:image/png;base64,"
MAX_DETAILS = 20  # a body of 10,000 bad values answers with the first few
# Values of one request's batch (64 MiB as float64): a tiny PNG becomes a whole C×H×W input, so the
# batch bound alone would let 256 small images of a 3×128×128 model take 100 MB.
MAX_VALUES = 2**23
LUMA = np.array([0.299, 0.587, 0.114])
_NUMBER = {int, float}


class InputError(Exception):
    """One bad input: a detail ``{"path", "message"}``."""

    def __init__(self, path: str, message: str):
        """``path`` as the API's details name fields."""
        super().__init__(message)
        self.detail = {"path": path, "message": message}


def parse_inputs(body: dict[str, Any], shape: tuple[int, int, int], max_batch: int, max_pixels: int) -> np.ndarray:
    """The request's inputs as ``(N, C, H, W)`` float64 for a model of input ``shape``.

    ``max_batch`` bounds N (413 past it); ``max_pixels`` bounds the pixels of
    all PNG inputs of the request together, checked before any is inflated.
    """
    unknown = sorted(set(body) - {"inputs"})
    if unknown:
        raise ApiError(
            422,
            "invalid prediction request",
            [{"path": k[:64], "message": "unknown field"} for k in unknown[:MAX_DETAILS]],
            code="invalid_inputs",
        )
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ApiError(
            422,
            "invalid prediction request",
            [
                {
                    "path": "inputs",
                    "message": ("a non-empty list of inputs is required (each C×H×W numbers or a base64 PNG)"),
                }
            ],
            code="invalid_inputs",
        )
    limit = max(1, min(max_batch, MAX_VALUES // math.prod(shape)))
    if len(inputs) > limit:
        raise ApiError(
            413,
            f"{len(inputs)} inputs are over the limit of {limit} per request for this model: send fewer",
            [{"path": "inputs", "message": f"at most {limit} inputs"}],
        )
    out = np.empty((len(inputs), *shape), dtype=np.float64)
    details: list[dict[str, str]] = []
    budget = [max_pixels]
    for i, item in enumerate(inputs):
        try:
            if isinstance(item, str):
                out[i] = image_input(item, shape, budget, f"inputs[{i}]")
            else:
                out[i] = number_input(item, shape, f"inputs[{i}]")
        except InputError as exc:
            details.append(exc.detail)
            if len(details) >= MAX_DETAILS:
                break
    if details:
        raise ApiError(
            422,
            f"{len(details)}{'+' if len(details) >= MAX_DETAILS else ''} invalid input(s)",
            details,
            code="invalid_inputs",
        )
    return out


def number_input(item: Any, shape: tuple[int, int, int], path: str) -> np.ndarray:
    """A ``C × H × W`` nested list of numbers in ``[0, 1]`` as float64 (``InputError`` with the first bad path)."""
    c, h, w = shape
    _expect_list(item, c, path, "channels")
    for ci, plane in enumerate(item):
        _expect_list(plane, h, f"{path}[{ci}]", "rows")
        for y, row in enumerate(plane):
            _expect_list(row, w, f"{path}[{ci}][{y}]", "values")
            if not set(map(type, row)) <= _NUMBER:  # bool is not a number here, nor None, nor a string
                x = next(x for x, v in enumerate(row) if type(v) not in _NUMBER)
                raise InputError(f"{path}[{ci}][{y}][{x}]", f"must be a number, not {_kind(row[x])}")
    try:
        arr = np.array(item, dtype=np.float64)
    except OverflowError:
        arr = np.array(
            [
                [[float(v) if not isinstance(v, int) or abs(v) < 2**1000 else math.inf for v in row] for row in plane]
                for plane in item
            ],
            dtype=np.float64,
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(path + "".join(f"[{i}]" for i in at), "must be a finite number")
    outside = (arr < 0) | (arr > 1)
    if outside.any():
        at = tuple(int(i) for i in np.argwhere(outside)[0])
        raise InputError(
            path + "".join(f"[{i}]" for i in at),
            f"{arr[at]!r} is outside [0, 1]: inputs are scaled as the job's dataset (pixel / 255)",
        )
    return arr


def _expect_list(value: Any, length: int, path: str, what: str) -> None:
    """``value`` must be a list of ``length`` items."""
    if not isinstance(value, list):
        raise InputError(
            path, f"must be a list of {length} {what} (or, for a whole input, a base64 PNG), not {_kind(value)}"
        )
    if len(value) != length:
        raise InputError(path, f"must have {length} {what}, not {len(value)}")


def _kind(value: Any) -> str:
    """The JSON name of ``value``'s type."""
    return {
        bool: "a boolean",
        str: "a string",
        type(None): "null",
        dict: "an object",
        list: "a list",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def image_input(text: str, shape: tuple[int, int, int], budget: list[int], path: str) -> np.ndarray:
    """A base64 PNG (optionally a ``data:image/png;base64,`` URL) as ``(C, H, W)`` float64 in ``[0, 1]``.

    ``budget[0]`` is the pixel allowance left for this request; the image's
    pixels are taken from it before it is inflated.
    """
    if text.startswith("data:"):
        if not text.startswith(DATA_URL):
            raise InputError(path, "only data:image/png;base64 URLs are read")
        text = text[len(DATA_URL) :]
    try:
        data = base64.b64decode("".join(text.split()), validate=True)  # line-wrapped base64 is fine
    except (binascii.Error, ValueError):
        raise InputError(path, "is neither a list of numbers nor valid base64 (of a PNG image)") from None
    try:
        pixels = decode_png(data, budget[0])
    except PngError as exc:
        raise InputError(
            path, f"{exc}" + (" (for the whole request)" if "over the limit" in str(exc) else "")
        ) from None
    budget[0] -= pixels.shape[0] * pixels.shape[1]
    return image_to_input(pixels, shape, path)


def image_to_input(pixels: np.ndarray, shape: tuple[int, int, int], path: str = "inputs[0]") -> np.ndarray:
    """``(h, w, k)`` uint8 pixels (k: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) -> ``(C, H, W)`` float64 in [0, 1]."""
    c, h, w = shape
    if c not in (1, 3):
        raise InputError(path, f"images feed models of 1 or 3 input channels; this model takes {c}: send numbers")
    img = pixels.astype(np.float64) / 255.0
    if img.shape[2] in (2, 4):  # alpha: composite onto black, the datasets' background
        img = img[:, :, :-1] * img[:, :, -1:]
    if c == 1 and img.shape[2] == 3:
        img = img @ LUMA[:, None]
    elif c == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    resized = area_matrix(img.shape[0], h) @ img.transpose(2, 0, 1) @ area_matrix(img.shape[1], w).T
    return np.clip(resized, 0.0, 1.0)  # sums of weights are 1 up to rounding: keep [0, 1] exact


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights of area averaging: output cell i is the mean of the input span it covers.

    Cells are split where a span ends inside one, so any size maps to any
    other (a 32 → 8 reduction is the mean of each 4 cells).
    """
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    cells = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, None)
    return overlap / (n_in / n_out)
