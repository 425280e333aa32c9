"""Training-step speed of the engine against PyTorch CPU, measured in the same process.

For the reference network of docs/reference/job-spec.md (LeNet on 1×28×28, without dropout), each
configuration (dtype × batch size) times one training step (forward, backward,
SGD update) of the engine and of the same network in PyTorch, interleaved,
and prints the median ratio engine/PyTorch.  Machines here are noisy: only the
ratios, measured side by side, mean anything.

    python benchmarks/bench_engine.py [--repeats 15] [--batches 10 64 256]

Also prints the GFLOP/s the engine reaches against NumPy's own GEMM rate on
the same machine, and the peak memory of a batch-256 step.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import Network
from engine.optimizers import SGD

REFERENCE = {
    "input_shape": [1, 28, 28],
    "layers": [
        {"type": "conv", "filters": 20, "kernel": 5, "activation": "relu"},
        {"type": "maxpool", "size": 2},
        {"type": "conv", "filters": 40, "kernel": 5, "activation": "relu"},
        {"type": "maxpool", "size": 2},
        {"type": "dense", "units": 100, "activation": "relu"},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ],
    "loss": "cross_entropy",
}


def step_flops(batch: int) -> float:
    """Multiply-adds ×2 of one training step: forward, input delta (not for the first layer), weight gradient."""
    conv1 = 24 * 24 * 20 * 25          # per sample, forward
    conv2 = 8 * 8 * 40 * 500
    dense = 640 * 100 + 100 * 10
    fwd = conv1 + conv2 + dense
    bwd = conv1 + 2 * conv2 + 2 * dense  # weight grads everywhere, input grads past the first layer
    return 2.0 * batch * (fwd + bwd)


def torch_model(net: Network, dtype):
    import torch
    m = torch.nn.Sequential(
        torch.nn.Conv2d(1, 20, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(20, 40, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(640, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10),
    ).to(dtype)
    with torch.no_grad():
        for (i, j) in [(0, 0), (3, 2), (7, 4), (9, 5)]:
            m[i].weight.copy_(torch.from_numpy(net.params[f"layers.{j}.W"].copy()))
            m[i].bias.copy_(torch.from_numpy(net.params[f"layers.{j}.b"].copy()))
    return m


def gemm_rate(dtype, repeats: int) -> float:
    """NumPy's own GEMM throughput (GFLOP/s) on a square product of a size typical of the engine's GEMMs."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((512, 512)).astype(dtype)
    b = rng.standard_normal((512, 512)).astype(dtype)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * 512 ** 3 / statistics.median(times) / 1e9


def engine_peak_memory() -> None:
    """Runs in a fresh process (no torch): peak RSS of batch-256 training steps in both dtypes."""
    for dtype in ("float32", "float64"):
        net = Network.from_spec(copy.deepcopy(REFERENCE), seed=0, dtype=dtype)
        opt = SGD(net.params, lr=0.01, momentum=0.9)
        rng = np.random.default_rng(1)
        x = rng.random((256, 1, 28, 28)).astype(dtype)
        y = rng.integers(0, 10, 256)
        for _ in range(3):
            _, grads = net.loss_and_gradients(x, y, training=True)
            opt.step(grads)
    # VmHWM, not ru_maxrss: the latter survives exec, so it would report the parent's peak (torch).
    with open("/proc/self/status") as status:
        hwm = next(line for line in status if line.startswith("VmHWM:"))
    print(int(hwm.split()[1]) / 1024)


def _engine_step(net, opt, x, y) -> None:
    """One training step of the engine."""
    _, grads = net.loss_and_gradients(x, y, training=True)
    opt.step(grads)


def _torch_step(model, opt, lossf, x, y) -> None:
    """One training step of the PyTorch twin."""
    opt.zero_grad(set_to_none=True)
    lossf(model(x), y).backward()
    opt.step()


def _timed(step) -> float:
    """Seconds one call of ``step`` takes."""
    t = time.perf_counter()
    step()
    return time.perf_counter() - t


def watch_overhead(dtypes, batches, repeats: int) -> None:
    """The divergence watch's cost (docs/trust.md): a watched Trainer step against the bare step, interleaved."""
    from engine.training import Trainer

    for dtype in dtypes:
        for batch in batches:
            net = Network.from_spec(copy.deepcopy(REFERENCE), seed=0, dtype=dtype)
            opt = SGD(net.params, lr=0.01, momentum=0.9)
            trainer = Trainer(net, opt, epochs=1, batch_size=batch, seed=0)
            rng = np.random.default_rng(1)
            x = rng.random((batch, 1, 28, 28)).astype(dtype)
            y = rng.integers(0, 10, batch)

            def watched(trainer=trainer, x=x, y=y):
                with np.errstate(over="ignore", invalid="ignore"):     # as Trainer.run
                    trainer._step(x, y, False)
            bare = partial(_engine_step, net, opt, x, y)
            for _ in range(3):
                bare()
                watched()
            tb, tw = [], []
            for _ in range(repeats):
                tb.append(_timed(bare))
                tw.append(_timed(watched))
            mb, mw = statistics.median(tb), statistics.median(tw)
            print(f"divergence watch {dtype:8} batch {batch:4d}: {mb * 1e3:8.2f} ms bare, {mw * 1e3:8.2f} ms "
                  f"watched, {100 * (mw / mb - 1):+.1f} % of step time")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batches", type=int, nargs="+", default=[10, 64, 256])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    ap.add_argument("--peak-memory-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--watch-only", action="store_true", help="only the divergence watch's cost")
    args = ap.parse_args(argv)
    if args.peak_memory_only:
        engine_peak_memory()
        return 0
    if args.watch_only:
        watch_overhead(args.dtypes, args.batches, args.repeats)
        return 0

    import torch
    print(f"numpy {np.__version__}, torch {torch.__version__}, torch threads {torch.get_num_threads()}")
    ratios = []
    print(f"{'dtype':8} {'batch':>5} {'engine ms':>10} {'torch ms':>9} {'ratio':>6} {'GFLOP/s':>8} "
          f"{'GEMM GFLOP/s':>12}")
    for dtype in args.dtypes:
        npdt = np.dtype(dtype)
        tdt = torch.float32 if dtype == "float32" else torch.float64
        for batch in args.batches:
            net = Network.from_spec(copy.deepcopy(REFERENCE), seed=0, dtype=dtype)
            opt = SGD(net.params, lr=0.01, momentum=0.9)
            model = torch_model(net, tdt)
            topt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            lossf = torch.nn.CrossEntropyLoss()
            rng = np.random.default_rng(1)
            x = rng.random((batch, 1, 28, 28)).astype(npdt)
            y = rng.integers(0, 10, batch)
            xt, yt = torch.from_numpy(x), torch.from_numpy(y)

            engine_step = partial(_engine_step, net, opt, x, y)
            torch_step = partial(_torch_step, model, topt, lossf, xt, yt)
            for _ in range(3):
                engine_step()
                torch_step()
            te, tt = [], []
            for _ in range(args.repeats):
                te.append(_timed(engine_step))
                tt.append(_timed(torch_step))
            me, mt = statistics.median(te), statistics.median(tt)
            ratio = me / mt
            ratios.append(ratio)
            print(f"{dtype:8} {batch:5d} {me * 1e3:10.2f} {mt * 1e3:9.2f} {ratio:6.2f} "
                  f"{step_flops(batch) / me / 1e9:8.2f} {gemm_rate(npdt, 5):12.2f}")
    geo = float(np.exp(np.mean(np.log(ratios))))
    print(f"geometric mean engine/torch: {geo:.3f}")
    watch_overhead(args.dtypes, args.batches, args.repeats)
    import subprocess
    out = subprocess.run([sys.executable, __file__, "--peak-memory-only"], capture_output=True, text=True,
                         check=True).stdout
    print(f"peak RSS of the engine alone, batch 256 training steps, float32 then float64: {float(out):.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
