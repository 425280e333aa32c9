"""Training-step speed of the engine against PyTorch CPU, measured in the same process.

For the reference network of docs/reference/job-spec.md (LeNet on 1×28×28, without dropout), each
configuration (dtype × batch size) times one training step (forward, backward,
SGD update) of the engine and of the same network in PyTorch, in alternating
blocks (each library alone on the cores while it is timed, see
``_alternating_blocks``), and prints the median ratio engine/PyTorch.  Machines here are noisy: only the
ratios, measured side by side, mean anything.

    python benchmarks/bench_engine.py [--repeats 15] [--batches 10 64 256]

Timed in the same blocks is the step's matrix products alone (the derivation's
GEMMs, NumPy's ``@`` on contiguous operands, nothing around them): their time
over PyTorch's is the least ratio any engine built on NumPy's GEMMs could reach
on the machine.  Also prints the peak memory of a batch-256 step; then, per conv layer
and per operation (forward correlation with its im2col, input delta with the
rotated kernel, weight gradient), the GFLOP/s reached, NumPy's GEMM rate on the
same matrix shapes (the two timed alternately) and the ratio, next to the
memory-bandwidth bound of the operation; the share of max-pool and the
activations in a batch-256 step; and the training throughput of 1 and 2 worker
processes with the workers' BLAS thread setting (cores / workers), in images per
second per core.  The load average is printed first and last: on a shared
machine only the ratios measured side by side are meaningful.

    python benchmarks/bench_engine.py --only ops share   # parts: steps ops share profile memory workers
"""

from __future__ import annotations

import argparse
import copy
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import Network
from engine import convolution as conv
from engine.layers import Conv2D, Dense, MaxPool
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


def step_gemms(net: Network, batch: int) -> list[tuple[int, int, int]]:
    """The (m, k, n) of every matrix product in one training step of ``net``, in the derivation's shapes.

    A conv layer's forward correlation is ``W (F, C·kh·kw) @ cols (C·kh·kw, Ho·Wo·N)``, its weight
    gradient ``δ (F, Ho·Wo·N) @ colsᵀ`` and its input delta ``rot180(W)ᵀ (C·kh·kw, F) @ δ``; a dense
    layer's are ``a (N, in) @ Wᵀ``, ``aᵀ @ δ`` and ``δ @ W``.  The first layer needs no input delta.
    """
    gemms = []
    a = np.zeros((1, *net.input_shape), dtype=net.dtype)
    for i, layer in enumerate(net.layers):
        if isinstance(layer, Conv2D):
            f, c, kh, kw = layer.params["W"].shape
            h, w = a.shape[2] + 2 * layer.padding, a.shape[3] + 2 * layer.padding
            p = conv.output_size(h, kh, layer.stride) * conv.output_size(w, kw, layer.stride) * batch
            gemms += [(f, c * kh * kw, p), (f, p, c * kh * kw)] + ([(c * kh * kw, f, p)] if i else [])
        elif isinstance(layer, Dense):
            units, inputs = layer.params["W"].shape
            gemms += [(batch, inputs, units), (inputs, batch, units)] + ([(batch, units, inputs)] if i else [])
        a, _ = layer.forward(a, False)
    return gemms


def step_flops(net: Network, batch: int) -> float:
    """Multiplications and additions of one training step's matrix products (:func:`step_gemms`)."""
    return sum(2.0 * m * k * n for m, k, n in step_gemms(net, batch))


def gemm_floor(net: Network, batch: int, dtype) -> Callable[[], None]:
    """A call that computes one training step's matrix products and nothing else.

    Its time is a floor for any engine that computes a step as these GEMMs with NumPy: no im2col, no
    max-pool, no activation, no update, and C-contiguous operands, each product in whichever
    orientation (``A @ B`` or ``(Bᵀ @ Aᵀ)ᵀ``) this machine's BLAS runs faster.
    """
    rng = np.random.default_rng(3)
    products = []
    for m, k, n in step_gemms(net, batch):
        left, right = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
        left_t, right_t = np.ascontiguousarray(left.T), np.ascontiguousarray(right.T)
        ways = [lambda a=left, b=right: a @ b, lambda a=right_t, b=left_t: a @ b]
        products.append(min(ways, key=lambda fn: _median_ms(fn, 5)))

    def floor():
        for product in products:
            product()

    return floor


def torch_model(net: Network, dtype):
    import torch

    m = torch.nn.Sequential(
        torch.nn.Conv2d(1, 20, 5),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(20, 40, 5),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(640, 100),
        torch.nn.ReLU(),
        torch.nn.Linear(100, 10),
    ).to(dtype)
    with torch.no_grad():
        for i, j in [(0, 0), (3, 2), (7, 4), (9, 5)]:
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
    return 2 * 512**3 / statistics.median(times) / 1e9


def engine_peak_memory(dtype: str) -> None:
    """Runs in a fresh process (no torch): peak RSS of batch-256 training steps in ``dtype``.

    NumPy's transparent-huge-page hint is turned off here: with it, the kernel may back an array
    with 2 MB pages or not depending on the machine's fragmentation, and the peak varies by tens of
    MB from run to run; with 4 kB pages it is the memory actually touched.
    """
    from numpy._core.multiarray import _set_madvise_hugepage

    _set_madvise_hugepage(False)
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


def load() -> str:
    """The load average, as ``uptime`` prints it."""
    return "load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def copy_bandwidth(dtype, repeats: int) -> float:
    """Bytes per second NumPy moves in a large copy (read + write), the bound of memory-bound operations."""
    a = np.ones(1 << 24, dtype=dtype)
    b = np.empty_like(a)
    np.copyto(b, a)
    return 2 * a.nbytes / (_median_ms(lambda: np.copyto(b, a), repeats) / 1e3)


def conv_op_table(batch: int, dtype: str, repeats: int) -> None:
    """Per conv layer and operation: GFLOP/s, same-shape GEMM GFLOP/s, ratio, memory-bound time and ratio.

    Each operation is timed as the layer runs it (the forward pass includes its im2col; the weight
    gradient reuses the forward pass's im2col matrix; the input delta is the GEMM with the rotated
    kernel plus the tap-wise additions), alternately with a plain ``A @ B`` of C-contiguous operands of
    the same shapes.  The memory bound is the operation's unavoidable traffic (its inputs read once,
    its result written once) at the copy bandwidth; "mem" marks shapes whose GEMM is memory-bound
    (arithmetic intensity below the machine's GEMM rate / bandwidth).
    """
    net = Network.from_spec(copy.deepcopy(REFERENCE), seed=0, dtype=dtype)
    rng = np.random.default_rng(2)
    item = np.dtype(dtype).itemsize
    bandwidth = copy_bandwidth(dtype, repeats)
    balance = gemm_rate(np.dtype(dtype), repeats) * 1e9 / bandwidth  # flops per byte where GEMM turns compute-bound
    print(f"\nconv ops, {dtype}, batch {batch}: copy bandwidth {bandwidth / 1e9:.1f} GB/s, {load()}")
    print(
        f"{'layer op':24} {'GEMM m×k×n':>20} {'ms':>7} {'GFLOP/s':>8} {'GEMM GF/s':>9} {'ratio':>6} "
        f"{'bound ms':>8} {'/bound':>6}"
    )
    a = rng.random((batch, *net.input_shape)).astype(dtype)
    for i, layer in enumerate(net.layers):
        if isinstance(layer, Conv2D):
            w = layer.params["W"]
            f, c, kh, kw = w.shape
            s = layer.stride
            xp = conv.pad(a, layer.padding)
            cols = conv.im2col(xp, kh, kw, s)
            k, p = cols.shape
            ho, wo = conv.output_size(xp.shape[2], kh, s), conv.output_size(xp.shape[3], kw, s)
            delta = conv.channels_major(rng.standard_normal((batch, f, ho, wo)).astype(dtype))  # as the layers make it
            rows = conv.delta_rows(delta)
            ops = _conv_ops(xp, w, s, cols, delta, rows, with_input_delta=i > 0)
            for name, fn, (m, kk, n), elements in ops:
                left = rng.standard_normal((m, kk)).astype(dtype)
                right = rng.standard_normal((kk, n)).astype(dtype)
                fn()
                left @ right
                t_op, t_gemm = [], []
                for _ in range(repeats):
                    t_op.append(_seconds(fn))
                    t_gemm.append(_seconds(lambda: left @ right))  # noqa: B023 - called in this iteration
                op_s, gemm_s = statistics.median(t_op), statistics.median(t_gemm)
                flops = 2.0 * m * kk * n
                bound_s = elements * item / bandwidth
                memory_bound = flops / ((m * kk + kk * n + m * n) * item) < balance
                print(
                    f"{f'conv{i} {name}':24} {f'{m}×{kk}×{n}':>20} {op_s * 1e3:7.2f} {flops / op_s / 1e9:8.1f} "
                    f"{flops / gemm_s / 1e9:9.1f} {gemm_s / op_s:6.2f} {bound_s * 1e3:8.2f} {bound_s / op_s:6.2f}"
                    f"{'  mem' if memory_bound else ''}"
                )
        a, _ = layer.forward(a, False)


#: Seconds each library runs untimed before its timed steps in a block (see _alternating_blocks).
SETTLE_S = 0.2


def _alternating_blocks(fns, rounds: int, timed: int = 3) -> list[float]:
    """The median seconds of one call of each of ``fns``, timed in alternating blocks.

    Each round runs each function in turn: untimed for :data:`SETTLE_S`, then ``timed`` timed
    calls.  Alternating one step of each (as this benchmark did until issue 12's third round) let
    each library's idle threads busy-wait through the other's step (OpenBLAS's thread server,
    libgomp's workers), on a 2-core machine a whole core taken from the step being timed: PyTorch's
    batch-64 float32 step measured 48 ms interleaved and 18 ms alone (two threads each; with one
    thread each, where no thread is idle, both ways agree).  Rounds still interleave the libraries
    over the same minutes, so a change of the machine's load affects both.
    """
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, spent in zip(fns, times, strict=True):
            start = time.perf_counter()
            while time.perf_counter() - start < SETTLE_S:
                fn()
            spent += [_seconds(fn) for _ in range(timed)]
    return [statistics.median(t) for t in times]


def _seconds(fn) -> float:
    """Seconds one call of ``fn`` takes."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _conv_ops(xp, w, s, cols, delta, rows, with_input_delta: bool) -> list:
    """The conv layer's operations as (name, call, same-shape GEMM (m, k, n), elements touched)."""
    f, _, kh, kw = w.shape
    k, p = cols.shape
    ops = [
        (
            "forward",
            lambda: conv.correlate_valid(xp, w, s, cols=conv.im2col(xp, kh, kw, s)),
            (f, k, p),
            xp.size + w.size + f * p,
        ),
        (
            "weight gradient",
            lambda: conv.weight_gradient(None, delta, s, (kh, kw), cols=cols, rows=rows),
            (f, p, k),
            cols.size + rows.size + w.size,
        ),
    ]
    if with_input_delta:
        ops.append(
            (
                "input delta",
                lambda: conv.convolve_full_rotated(delta, conv.rot180(w), s, xp.shape[2:]),
                (k, f, p),
                rows.size + w.size + xp.size,
            )
        )
    return ops


def _steps(net, opt, x, y, model, topt, lossf, xt, yt):
    """One training step of the engine and one of its PyTorch twin, on the same batch."""

    def engine_step():
        _, grads = net.loss_and_gradients(x, y, training=True)
        opt.step(grads)

    def torch_step():
        topt.zero_grad(set_to_none=True)
        lossf(model(xt), yt).backward()
        topt.step()

    return engine_step, torch_step


class _Timed:
    """Wraps a layer's or an activation's forward and backward, adding their time to ``spent``."""

    def __init__(self, inner, spent: list):
        self.inner, self.spent = inner, spent

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if name not in ("forward", "backward"):
            return attr

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.spent[0] += time.perf_counter() - t

        return timed


def pool_activation_share(batch: int, dtype: str, repeats: int) -> None:
    """Max-pool and activation time (forward and backward) as a share of whole training steps."""
    net = Network.from_spec(copy.deepcopy(REFERENCE), seed=0, dtype=dtype)
    opt = SGD(net.params, lr=0.01, momentum=0.9)
    spent = [0.0]
    for i, layer in enumerate(net.layers):
        if isinstance(layer, MaxPool):
            net.layers[i] = _Timed(layer, spent)
        elif hasattr(layer, "act"):
            layer.act = _Timed(layer.act, spent)
    rng = np.random.default_rng(1)
    x = rng.random((batch, *net.input_shape)).astype(dtype)
    y = rng.integers(0, 10, batch)
    shares, steps = [], []
    for r in range(repeats + 2):
        spent[0] = 0.0
        t = time.perf_counter()
        _, grads = net.loss_and_gradients(x, y, training=True)
        opt.step(grads)
        step = time.perf_counter() - t
        if r >= 2:
            shares.append(spent[0] / step)
            steps.append(step)
    print(
        f"max-pool + activations, {dtype}, batch {batch}: {statistics.median(shares) * 100:.1f} % of a step "
        f"({statistics.median(steps) * 1e3:.1f} ms)"
    )


def profile_step(batch: int, dtype: str, steps: int = 10, top: int = 12) -> None:
    """The functions that take a batch-256 step's time: cProfile of ``steps`` steps, one BLAS thread.

    CPU time (``time.process_time``), not wall time, so that other processes on a loaded machine
    do not show up as time spent here; with one BLAS thread that is the step's own work.  "self" is
    the time inside the function itself (NumPy and BLAS calls made from it count as its own, since
    the profiler sees only Python functions and the C functions called by name).
    """
    import cProfile
    import pstats

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        net = Network.from_spec(copy.deepcopy(REFERENCE), seed=0, dtype=dtype)
        opt = SGD(net.params, lr=0.01, momentum=0.9)
        rng = np.random.default_rng(1)
        x = rng.random((batch, *net.input_shape)).astype(dtype)
        y = rng.integers(0, 10, batch)
        for _ in range(2):
            opt.step(net.loss_and_gradients(x, y, training=True)[1])
        prof = cProfile.Profile(timer=time.process_time)
        prof.enable()
        for _ in range(steps):
            opt.step(net.loss_and_gradients(x, y, training=True)[1])
        prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt
    print(f"\nprofile, {dtype}, batch {batch}, 1 BLAS thread: {total / steps * 1e3:.1f} ms CPU per step")
    print(f"{'self %':>7} {'ms/step':>8}  function")
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    for (filename, line, name), (_, _, tottime, _, _) in rows:
        where = f"{Path(filename).parent.name}/{Path(filename).name}:{line}" if line else "~"
        print(f"{tottime / total * 100:7.1f} {tottime / steps * 1e3:8.2f}  {where} {name}")


def _worker(threads: int, batch: int, steps: int, dtype: str, start, results) -> None:
    """One worker process: LeNet training steps with ``threads`` BLAS threads; reports images/s.

    ``start`` is a barrier of all worker processes, so they run their timed steps together.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        net = Network.from_spec(copy.deepcopy(REFERENCE), seed=0, dtype=dtype)
        opt = SGD(net.params, lr=0.01, momentum=0.9)
        rng = np.random.default_rng(1)
        x = rng.random((batch, *net.input_shape)).astype(dtype)
        y = rng.integers(0, 10, batch)
        for _ in range(3):
            opt.step(net.loss_and_gradients(x, y, training=True)[1])
        start.wait()
        t = time.perf_counter()
        for _ in range(steps):
            opt.step(net.loss_and_gradients(x, y, training=True)[1])
        results.put(steps * batch / (time.perf_counter() - t))


def worker_throughput(batch: int, steps: int, dtype: str) -> None:
    """Images per second per core of 1 and 2 concurrent worker processes, each with cores / workers BLAS threads."""
    cores = os.cpu_count() or 1
    ctx = mp.get_context("spawn")
    for workers in (1, 2):
        threads = max(1, cores // workers)
        start, results = ctx.Barrier(workers), ctx.Queue()
        procs = [
            ctx.Process(target=_worker, args=(threads, batch, steps, dtype, start, results)) for _ in range(workers)
        ]
        for proc in procs:
            proc.start()
        rates = [results.get(timeout=600) for _ in procs]
        for proc in procs:
            proc.join()
        print(
            f"{workers} worker process(es) × {threads} BLAS thread(s), {dtype}, batch {batch}: "
            f"{sum(rates):.0f} images/s, {sum(rates) / cores:.0f} images/s/core ({load()})"
        )


def watch_overhead(dtypes, batches, repeats: int) -> None:
    """The divergence watch's cost (docs/trust.md), interleaved against bare steps of the same network.

    A block is SNAPSHOT_EVERY consecutive steps, so the watched block pays for one snapshot, as
    training does; the block times are compared (median over ``repeats`` blocks).  The last step
    of each epoch runs under the full watch (layer health): its cost is printed per step and as a
    share of an epoch of the given length.
    """
    from engine.training import SNAPSHOT_EVERY, Trainer
    from engine.watch import first_nonfinite

    for dtype in dtypes:
        for batch in batches:
            net = Network.from_spec(copy.deepcopy(REFERENCE), seed=0, dtype=dtype)
            opt = SGD(net.params, lr=0.01, momentum=0.9)
            trainer = Trainer(net, opt, epochs=1, batch_size=batch, seed=0)
            rng = np.random.default_rng(1)
            x = rng.random((batch, 1, 28, 28)).astype(dtype)
            y = rng.integers(0, 10, batch)

            def watched(trainer=trainer, x=x, y=y):
                trainer._snapshot()
                for _ in range(SNAPSHOT_EVERY):
                    with np.errstate(over="ignore", invalid="ignore"):  # as Trainer.run
                        trainer._step(x, y)

            def one_bare(net=net, opt=opt, x=x, y=y):
                _, grads = net.loss_and_gradients(x, y, training=True)
                opt.step(grads)

            def bare():
                for _ in range(SNAPSHOT_EVERY):
                    one_bare()

            def full(trainer=trainer, x=x, y=y):
                with np.errstate(over="ignore", invalid="ignore"):
                    trainer._watched_step(x, y, health=True)

            def own(trainer=trainer, loss=2.3):
                # The watch's own work per step (100 steps' worth, timed together), alone: robust where
                # the difference of two whole steps drowns in the noise of a shared machine.
                for _ in range(100):
                    with np.errstate(over="ignore", invalid="ignore"):
                        math.isfinite(loss)
                        first_nonfinite(trainer.net.params)

            bare()
            watched()
            tb, tw, tf, t1, to, ts = [], [], [], [], [], []
            for _ in range(repeats):
                tb.append(_seconds(bare))
                tw.append(_seconds(watched))
                t1.append(_seconds(one_bare))
                tf.append(_seconds(full))
                to.append(_seconds(own))
                ts.append(_seconds(trainer._snapshot))
            mb, mw = statistics.median(tb) / SNAPSHOT_EVERY, statistics.median(tw) / SNAPSHOT_EVERY
            m1, mf = statistics.median(t1), statistics.median(tf)
            mo = statistics.median(to) / 100 + statistics.median(ts) / SNAPSHOT_EVERY
            epoch_steps = -(-5000 // batch)  # mnist-5k's training split is about this long
            print(
                f"divergence watch {dtype:8} batch {batch:4d}: {mb * 1e3:8.2f} ms bare, {mw * 1e3:8.2f} ms "
                f"watched, {100 * (mw / mb - 1):+.1f} % of step time; the epoch's last step (full watch, "
                f"layer health) {100 * (mf / m1 - 1):+.1f} %, {100 * (mf - m1) / (epoch_steps * mb):+.2f} % "
                f"of a {epoch_steps}-step epoch; the watch's own work alone {mo * 1e6:.0f} µs per step = "
                f"{100 * mo / mb:.2f} % of the bare step"
            )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batches", type=int, nargs="+", default=[10, 64, 256])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    ap.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="run only these parts")
    ap.add_argument("--op-batch", type=int, default=256, help="batch of the per-op table and the share")
    ap.add_argument("--worker-batch", type=int, default=64, help="batch of the worker throughput")
    ap.add_argument("--worker-steps", type=int, default=30)
    ap.add_argument("--threads", type=int, help="BLAS and torch threads (default: the libraries' own, all cores)")
    ap.add_argument("--peak-memory-only", metavar="DTYPE", help=argparse.SUPPRESS)
    ap.add_argument("--watch-only", action="store_true", help="only the divergence watch's cost")
    args = ap.parse_args(argv)
    if args.peak_memory_only:
        engine_peak_memory(args.peak_memory_only)
        return 0
    if args.threads:
        # On a loaded machine, threads of one GEMM wait for each other behind other processes;
        # one thread each gives ratios that mean something there.
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=args.threads)
    if args.watch_only:
        watch_overhead(args.dtypes, args.batches, args.repeats)
        return 0

    print(f"numpy {np.__version__}, {os.cpu_count()} cores, {load()}")
    if "steps" in args.only:
        steps_table(args)
    if "watch" in args.only:
        watch_overhead(args.dtypes, args.batches, args.repeats)
    if "ops" in args.only:
        for dtype in args.dtypes:
            conv_op_table(args.op_batch, dtype, args.repeats)
    if "share" in args.only:
        print()
        for dtype in args.dtypes:
            pool_activation_share(args.op_batch, dtype, args.repeats)
    if "profile" in args.only:
        for dtype in args.dtypes:
            profile_step(args.op_batch, dtype)
    if "memory" in args.only:
        import subprocess

        print()
        for dtype in args.dtypes:
            out = subprocess.run(
                [sys.executable, __file__, "--peak-memory-only", dtype], capture_output=True, text=True, check=True
            ).stdout
            print(f"peak RSS (VmHWM) of the engine alone, batch 256 training steps, {dtype}: {float(out):.0f} MB")
    if "workers" in args.only:
        print()
        for dtype in args.dtypes:
            worker_throughput(args.worker_batch, args.worker_steps, dtype)
    print(f"\n{load()}")
    return 0


PARTS = ("steps", "watch", "ops", "share", "profile", "memory", "workers")


def steps_table(args) -> None:
    """Engine against PyTorch, one training step, in alternating blocks; the ratios and their geometric mean.

    Timed in the same blocks: the step's GEMMs alone (:func:`gemm_floor`), and its ratio to PyTorch's
    step, the least ratio an engine built on NumPy's GEMMs can reach on this machine.
    """
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, torch threads {torch.get_num_threads()}")
    ratios, floors = [], []
    print(
        f"{'dtype':8} {'batch':>5} {'engine ms':>10} {'torch ms':>9} {'ratio':>6} {'GFLOP/s':>8} "
        f"{'GEMMs ms':>9} {'GEMMs/torch':>11}"
    )
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

            fns = [*_steps(net, opt, x, y, model, topt, lossf, xt, yt), gemm_floor(net, batch, npdt)]
            me, mt, mg = _alternating_blocks(fns, args.repeats)
            ratios.append(me / mt)
            floors.append(mg / mt)
            print(
                f"{dtype:8} {batch:5d} {me * 1e3:10.2f} {mt * 1e3:9.2f} {me / mt:6.2f} "
                f"{step_flops(net, batch) / me / 1e9:8.2f} {mg * 1e3:9.2f} {mg / mt:11.2f}"
            )
    print(f"geometric mean engine/torch: {_geomean(ratios):.3f}, worst {max(ratios):.2f} ({load()})")
    print(f"geometric mean GEMMs alone/torch: {_geomean(floors):.3f}, worst {max(floors):.2f}")


def _geomean(values) -> float:
    return float(np.exp(np.mean(np.log(values))))


if __name__ == "__main__":
    sys.exit(main())
