"""Reading a Server-Sent Events stream (the WHATWG ``text/event-stream`` format), standard library only."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class EventReader:
    """Iterates ``(event, data)`` pairs of a stream's lines; remembers the server's ``retry`` (ms).

    Comment lines (``: keepalive``) are yielded as ``("", "")`` so that a
    consumer waiting on a deadline gets a chance to look at the clock.
    """

    def __init__(self, lines: Iterable[bytes], retry_ms: int = 2000):
        """Read ``lines`` (a response object iterates its lines); ``retry_ms`` until the server sets one."""
        self.lines, self.retry_ms = lines, retry_ms

    def __iter__(self) -> Iterator[tuple[str, str]]:
        event, data = "", []
        for raw in self.lines:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not line:  # a blank line dispatches the event
                if data:
                    yield event or "message", "\n".join(data)
                event, data = "", []
                continue
            if line.startswith(":"):
                yield "", ""
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "retry" and value.isdigit():
                self.retry_ms = int(value)
