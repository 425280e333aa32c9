"""convlab's engine: a pure-NumPy CNN whose backpropagation reads like its derivation.

Public API (docs/reference/engine-api.md)::

    from engine import Network, gradcheck
    net = Network.from_spec(model_spec, seed=0, dtype="float64")

The names are resolved on first use, so ``import engine.spec`` (the job-spec
contract, standard library only) does not drag NumPy into the API process.
``gradcheck`` is the function; its module is :mod:`engine.gradient_check`.
See ``docs/engine-modules.md`` for the module map.
"""

from __future__ import annotations

import importlib

__all__ = ["Network", "gradcheck", "Limits", "SpecError", "validate_job_spec", "validate_model_spec"]

_HOMES = {
    "Network": "network",
    "gradcheck": "gradient_check",
    "Limits": "spec",
    "SpecError": "errors",
    "validate_job_spec": "spec",
    "validate_model_spec": "spec",
}


def __getattr__(name: str):
    """Import a public name's module on first use (PEP 562)."""
    if name not in _HOMES:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
