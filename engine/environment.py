"""Where a run happens: the facts that can change its numbers (docs/trust.md).

A reproduction certificate names the differences between two runs'
environments; the BLAS library, its version and its thread count matter
most (a GEMM's reduction order depends on how it is split over threads).
"""

from __future__ import annotations

import platform
from functools import lru_cache
from importlib import metadata

import numpy as np
from threadpoolctl import threadpool_info

#: CPU flags that decide which kernels a BLAS picks (the full list is long and says little more).
CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_tile", "neon", "asimd")


@lru_cache(maxsize=1)
def _cpu() -> tuple[str, list[str]]:
    """The CPU model name and its kernel-relevant flags, from /proc/cpuinfo where there is one."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key in ("flags", "Features"):
                    flags.update(value.split())
    except OSError:
        pass
    return model, [f for f in CPU_FLAGS if f in flags]


def _version() -> str:
    try:
        return metadata.version("convlab")
    except metadata.PackageNotFoundError:
        return "unknown"


def environment(worker: str | None = None) -> dict:
    """The environment of this process now: ``convlab``, ``python``, ``numpy``, ``blas``, ``blas_threads``,
    ``cpu``, ``cpu_flags``, ``machine``, ``worker`` (JSON-ready)."""
    blas = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    first = blas[0] if blas else {}
    model, flags = _cpu()
    return {
        "convlab": _version(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": (
            f"{first.get('internal_api')} {first.get('version')}"
            + (f" ({first['architecture']})" if first.get("architecture") else "")
        )
        if first
        else None,
        "blas_threads": first.get("num_threads"),
        "cpu": model,
        "cpu_flags": flags,
        "machine": platform.machine(),
        "worker": worker,
    }
