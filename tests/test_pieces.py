"""engine/pieces.py: a pass run in cache-sized pieces gives the same numbers as one call.

The network tests use small batches, below ``MIN_PIECES``, so their passes are
single calls; here every piecewise pass is forced into one-channel pieces and
the loss and every gradient must be bit-identical to the single-call run.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from engine import Network, pieces

MODEL = {
    "input_shape": [2, 13, 12],
    "layers": [
        {"type": "conv", "filters": 5, "kernel": [3, 2], "padding": 1, "activation": "relu"},
        {"type": "maxpool", "size": 2},  # tiles the input but floors a row away
        {"type": "conv", "filters": 4, "kernel": 3, "stride": 2, "activation": "relu"},
        {"type": "maxpool", "size": 2, "stride": 1},  # overlapping windows: the general path
        {"type": "dense", "units": 3, "activation": "softmax"},
    ],
    "loss": "cross_entropy",
}


def _run(dtype: str):
    net = Network.from_spec(copy.deepcopy(MODEL), seed=3, dtype=dtype)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 2, 13, 12)).astype(dtype)
    y = rng.integers(0, 3, 6)
    loss, grads, inputs = net.loss_and_all_gradients(x, y)
    return loss, grads, inputs


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_passes_in_pieces_give_identical_numbers(monkeypatch, dtype):
    """Loss, parameter gradients and every layer's input gradient are bit-identical with and without pieces."""
    whole = _run(dtype)
    calls = []
    real = pieces.over_pieces

    def counting(fn, count, size):
        calls.append(count)
        return real(fn, count, size)

    monkeypatch.setattr(pieces, "MIN_PIECES", 0)
    monkeypatch.setattr(pieces, "PIECE", 1)  # one unit (channel) a piece
    monkeypatch.setattr(pieces, "over_pieces", counting)
    cut = _run(dtype)
    assert calls and all(count > 1 for count in calls)  # passes really were cut
    assert cut[0] == whole[0]
    assert cut[1].keys() == whole[1].keys()
    for key in whole[1]:
        np.testing.assert_array_equal(cut[1][key], whole[1][key], err_msg=key)
    assert cut[2].keys() == whole[2].keys()
    for i in whole[2]:
        np.testing.assert_array_equal(cut[2][i], whole[2][i], err_msg=f"input of layer {i}")


def test_pieces_cover_the_range_once_in_order():
    """A large pass runs as consecutive pieces of about PIECE entries (at least one unit each)."""
    seen = []
    size = 10 * pieces.PIECE
    assert size >= pieces.MIN_PIECES
    pieces.over_pieces(lambda lo, hi: seen.append((lo, hi)), 7, size)
    assert seen == [(i, i + 1) for i in range(7)]  # one unit holds 10/7 PIECE entries: a piece each
    seen.clear()
    pieces.over_pieces(lambda lo, hi: seen.append((lo, hi)), 40, size)
    assert seen == [(i, i + 4) for i in range(0, 40, 4)]
    seen.clear()
    pieces.over_pieces(lambda lo, hi: seen.append((lo, hi)), 40, pieces.MIN_PIECES - 1)
    assert seen == [(0, 40)]  # a small pass stays one call
