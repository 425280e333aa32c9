"""The one error a spec can raise, and the list that collects its details.

Validation reports every problem at once, so checks add ``(path, message)``
pairs to an :class:`ErrorList` and the caller raises them together as one
:class:`SpecError`.  Standard library only.
"""

from __future__ import annotations


class SpecError(ValueError):
    """Invalid spec.

    ``details`` is a list of ``{"path": str, "message": str}``, one per problem
    (the API returns it verbatim under ``error.details``); ``str(err)`` joins
    them as ``path: message`` lines.
    """

    def __init__(self, details: list[dict]):
        self.details = [{"path": str(d["path"]), "message": str(d["message"])} for d in details]
        super().__init__("\n".join(_format_detail(d) for d in self.details))

    def __reduce__(self):
        # Celery/multiprocessing pickle exceptions; the default reduce would
        # call SpecError(str) and lose the structured details.
        return (type(self), (self.details,))


def _format_detail(d: dict) -> str:
    return f"{d['path']}: {d['message']}" if d["path"] else d["message"]


class ErrorList:
    """Accumulates ``(path, message)`` pairs so that validation can report everything at once."""

    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, path: str, message: str) -> None:
        """Record one problem at ``path`` (``""`` is the whole spec)."""
        self.items.append({"path": path, "message": message})

    def __len__(self) -> int:
        return len(self.items)

    def raise_if_any(self) -> None:
        """Raise every recorded problem as one :class:`SpecError`."""
        if self.items:
            raise SpecError(self.items)
