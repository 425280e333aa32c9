"""The base of the client's objects (jobs; studies and certificates as they land).

Extension point: an API object the client hands out subclasses
:class:`Resource`, names its ``collection`` (``"/studies"``), and adds its
methods, each one a call through ``self.client.request(...)`` (the one HTTP
code path, with its retries and errors); a ``Client`` method creates or
looks it up (``Client.job`` → :class:`~convlab.job.Job`).
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from .client import Client


class Resource:
    """An API object: the client it acts through and its latest JSON (``data``)."""

    collection: ClassVar[str] = ""  # e.g. "/jobs": the object lives at {collection}/{id}

    def __init__(self, client: Client, data: dict[str, Any]):
        """Wrap ``data`` as the API answered it."""
        self.client = client
        self.data = data

    @property
    def id(self) -> str:
        """The object's id."""
        return self.data["id"]

    @property
    def path(self) -> str:
        """Its path under ``/api/v1``."""
        return f"{self.collection}/{urllib.parse.quote(self.id, safe='')}"

    def refresh(self):
        """Read the object again from the API; returns ``self``."""
        self.data = self.client.request("GET", self.path)
        return self

    def __getitem__(self, key: str) -> Any:
        """The field ``key`` of the API's JSON (``job["status"]``), as before the client had classes."""
        return self.data[key]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and other.id == self.id

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.id))

    def __repr__(self) -> str:
        status = f" {self.data['status']}" if "status" in self.data else ""
        return f"<{type(self).__name__} {self.id}{status}>"
