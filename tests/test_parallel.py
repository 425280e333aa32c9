"""engine/parallel.py: element-wise passes split over channel blocks give the same numbers as one pass.

The network tests use small batches, below ``MIN_SPLIT``, so they never split;
here every pass is forced to split (three blocks, more than the cores, so
uneven blocks and a block per pool thread are both exercised) and the loss and
every gradient must be bit-identical to the unsplit run.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from engine import Network, parallel

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
def test_split_passes_give_identical_numbers(monkeypatch, dtype):
    """Loss, parameter gradients and every layer's input gradient are bit-identical with and without splitting."""
    serial = _run(dtype)
    calls = []
    real = parallel.over_blocks

    def counting(fn, count, size, **kwargs):
        calls.append(count)
        return real(fn, count, size, **kwargs)

    monkeypatch.setattr(parallel, "MIN_SPLIT", 0)
    monkeypatch.setattr(parallel, "PIECE", 1)  # passes run in pieces do so one unit at a time
    monkeypatch.setattr(parallel, "budget", lambda: 3)
    monkeypatch.setattr(parallel, "over_blocks", counting)
    split = _run(dtype)
    assert any(count >= 3 for count in calls)  # passes really were split three ways
    assert split[0] == serial[0]
    assert split[1].keys() == serial[1].keys()
    for key in serial[1]:
        np.testing.assert_array_equal(split[1][key], serial[1][key], err_msg=key)
    assert split[2].keys() == serial[2].keys()
    for i in serial[2]:
        np.testing.assert_array_equal(split[2][i], serial[2][i], err_msg=f"input of layer {i}")


def test_one_thread_budget_runs_inline(monkeypatch):
    """With a budget of one thread the pass is the single call fn(0, count), on the calling thread."""
    import threading

    monkeypatch.setattr(parallel, "budget", lambda: 1)
    seen = []
    parallel.over_blocks(lambda lo, hi: seen.append((lo, hi, threading.current_thread())), 7, 1 << 30)
    assert seen == [(0, 7, threading.current_thread())]


def test_blocks_cover_the_range_once(monkeypatch):
    """Split three ways, the blocks are disjoint, contiguous and cover [0, count)."""
    monkeypatch.setattr(parallel, "budget", lambda: 3)
    seen = []
    parallel.over_blocks(lambda lo, hi: seen.append((lo, hi)), 8, 1 << 30)
    assert sorted(seen) == [(0, 2), (2, 5), (5, 8)]


def test_pieces_run_each_block_in_order(monkeypatch):
    """With ``pieces``, a large pass runs each thread's block as consecutive pieces of about PIECE entries."""
    monkeypatch.setattr(parallel, "budget", lambda: 1)
    seen = []
    size = 10 * parallel.PIECE
    parallel.over_blocks(lambda lo, hi: seen.append((lo, hi)), 7, size, pieces=True)
    assert seen == [(i, i + 1) for i in range(7)]  # one unit holds 10/7 PIECE entries: a piece each
    seen.clear()
    parallel.over_blocks(lambda lo, hi: seen.append((lo, hi)), 40, size, pieces=True)
    assert seen == [(i, i + 4) for i in range(0, 40, 4)]
    seen.clear()
    parallel.over_blocks(lambda lo, hi: seen.append((lo, hi)), 40, parallel.MIN_SPLIT - 1, pieces=True)
    assert seen == [(0, 40)]  # a small pass stays one call
