"""The Python client's parts that need no service: error mapping, the SSE reader, clone's merge, light imports."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from convlab.client import Client
from convlab.errors import (
    ApiError,
    ConfigurationError,
    Conflict,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    SpecError,
    api_error,
)
from convlab.job import _merge
from convlab.sse import EventReader
from tests.cluster import ROOT


def _body(code: str, details=()) -> dict:
    return {"error": {"code": code, "message": f"{code} happened", "details": list(details)}}


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (404, "not_found", NotFound),
        (409, "conflict", Conflict),
        (422, "invalid_spec", SpecError),
        (422, "invalid_query", InvalidRequest),
        (429, "too_many_requests", RateLimited),
        (503, "unavailable", ServiceUnavailable),
        (418, "teapot", ApiError),
    ],
)
def test_errors_by_status_and_code(status, code, cls):
    err = api_error(status, _body(code, [{"path": "train.lr", "message": "must be > 0"}]), retry_after=3)
    assert type(err) is cls and err.status == status and err.code == code and err.retry_after == 3
    assert err.details == [{"path": "train.lr", "message": "must be > 0"}]
    assert str(err) == f"{code} happened (HTTP {status})\n  train.lr: must be > 0"
    if cls is SpecError:
        assert isinstance(err, InvalidRequest)


def test_a_body_that_is_not_json_still_makes_an_error():
    err = api_error(502, "<html>bad gateway</html>")
    assert isinstance(err, ServiceUnavailable) and err.code is None and "bad gateway" in str(err)


def test_no_token_is_a_configuration_error(monkeypatch):
    monkeypatch.delenv("CONVLAB_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="CONVLAB_TOKEN"):
        Client("http://127.0.0.1:1")
    monkeypatch.setenv("CONVLAB_TOKEN", "cl_abc")
    monkeypatch.setenv("CONVLAB_URL", "http://example.invalid:9/")
    client = Client()
    assert client.token == "cl_abc" and client.url == "http://example.invalid:9"


def test_event_reader():
    lines = [
        b"retry: 3000\n",
        b"\n",
        b"event: job\n",
        b'data: {"a": 1}\n',
        b"\n",
        b": keepalive\n",
        b"\n",
        b"event: points\n",
        b"data: [1,\n",
        b"data: 2]\n",
        b"\n",
        b"data: plain\n",
        b"\n",
    ]
    reader = EventReader(lines)
    assert list(reader) == [("job", '{"a": 1}'), ("", ""), ("points", "[1,\n2]"), ("message", "plain")]
    assert reader.retry_ms == 3000


def test_clone_merge():
    base = {"name": "a", "train": {"epochs": 1, "optimizer": {"type": "sgd", "lr": 0.1}}}
    out = _merge(base, {"name": "b", "train": {"epochs": 5}, "train__optimizer__lr": 0.01})
    assert out == {"name": "b", "train": {"epochs": 5, "optimizer": {"type": "sgd", "lr": 0.01}}}
    assert base["train"] == {"epochs": 1, "optimizer": {"type": "sgd", "lr": 0.1}}  # not changed


def test_import_convlab_is_light():
    code = (
        "import sys, convlab, convlab.config\n"
        "heavy = {'numpy', 'convlab.client', 'urllib.request', 'flask'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "from convlab import Client, Job\n"
        "assert 'numpy' not in sys.modules\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_the_package_is_typed():
    assert (ROOT / "convlab" / "py.typed").is_file()


class _CannedStreams:
    """A client whose event streams are canned: each open_stream() answers the next one."""

    def __init__(self, streams: list[str], final: dict):
        self.streams, self.final, self.opened = [s.encode() for s in streams], final, 0

    def open_stream(self, path: str):
        import io

        body = self.streams[self.opened]
        self.opened += 1
        return io.BytesIO(body)

    def request(self, method: str, path: str, body=None, idempotency_key=None, *, safe=False):
        assert (method, path) == ("GET", "/jobs/j1")
        return self.final


def _sse(event: str, data) -> str:
    import json

    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def test_stream_reconnects_without_repeating_points():
    """A stream the server ends early (its lifetime) is reopened; points already yielded are not yielded again."""
    from convlab.job import Job

    running = {"status": "running", "progress": {"epoch": 1, "step": 3, "total_steps": 6}}
    first = "retry: 0\n\n" + _sse("job", running) + _sse("series", {"series": {"loss": [[1, 0.9], [2, 0.8], [3, 0.7]]}})
    second = (
        "retry: 0\n\n"
        + _sse("job", {**running, "progress": {"epoch": 2, "step": 6, "total_steps": 6}})
        + _sse("series", {"series": {"loss": [[1, 0.9], [2, 0.8], [3, 0.7], [4, 0.6], [5, None]]}})
        + _sse("end", {"status": "succeeded"})
    )
    final = {"id": "j1", "status": "succeeded", "progress": {"epoch": 2, "step": 6, "total_steps": 6}, "result": {}}
    client = _CannedStreams([first, second], final)
    job = Job(client, {"id": "j1", "status": "queued", "progress": {}})
    events = list(job.stream())
    assert client.opened == 2
    assert [e.kind for e in events] == ["progress", "metrics", "progress", "metrics", "end"]
    assert events[1].points == {"loss": [(1, 0.9), (2, 0.8), (3, 0.7)]}
    assert events[3].points == {"loss": [(4, 0.6), (5, None)]}
    assert events[2].progress["step"] == 6 and events[-1].status == "succeeded" and job.status == "succeeded"


def test_progress_bar_redraws_in_place_on_a_terminal_or_notebook_and_prints_lines_otherwise():
    import io

    from convlab.progress import ProgressBar, in_notebook

    assert not in_notebook()  # plain Python here
    tty, log = io.StringIO(), io.StringIO()
    for stream, redraw in ((tty, True), (log, False)):
        bar = ProgressBar(stream, tty=redraw)
        bar.update(1, 5, 10, epochs=2)
        bar.update(1, 6, 10, epochs=2)
        bar.update(2, 10, 10, epochs=2)
        bar.close()
    assert tty.getvalue().count("\r") == 3 and tty.getvalue().endswith("\n")
    assert log.getvalue().count("\n") == 2 and "\r" not in log.getvalue()  # a line per epoch
