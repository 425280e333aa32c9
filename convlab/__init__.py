"""convlab: the ``convlab`` command, its configuration, and the Python client of the service.

``from convlab import Client`` (docs/reference/python-client.md).  The client's names are imported
on first use (PEP 562), so ``import convlab`` and ``convlab.config`` stay light: no NumPy, no HTTP.
"""

from __future__ import annotations

import importlib

__all__ = ["Client", "Job", "StreamEvent", "Study", "errors"]

_HOMES = {"Client": "client", "Job": "job", "StreamEvent": "job", "Study": "study"}


def __getattr__(name: str):
    """Import a public name's module on first use."""
    if name == "errors":
        return importlib.import_module(".errors", __name__)
    if name not in _HOMES:
        raise AttributeError(f"module 'convlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
