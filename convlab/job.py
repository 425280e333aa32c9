"""A job as the Python client sees it: its state, and what can be done with it (docs/reference/python-client.md).

NumPy is imported only by the methods that return arrays, so the client
itself (and the CLI that uses it) stays standard library.
"""

from __future__ import annotations

import base64
import copy
import http.client
import io
import json
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .errors import JobCancelled, JobFailed, JobTimeout
from .names import TERMINAL_STATUSES, WEIGHTS
from .progress import ProgressBar
from .resource import Resource
from .sse import EventReader

if TYPE_CHECKING:
    import numpy as np

    from engine.network import Network

STREAM_POINTS = 20_000  # the stream's largest max_points: a series is downsampled only past half of it
METRIC_POINTS = 100_000  # GET /metrics' largest max_points
PREDICT_BATCH = 256  # the API's default CONVLAB_MAX_PREDICT_BATCH


@dataclass
class StreamEvent:
    """One thing :meth:`Job.stream` saw happen.

    ``kind``: ``"progress"`` (the job's state changed: ``status``, ``progress``),
    ``"metrics"`` (``points``: new ``(step, value)`` pairs per series, value
    ``None`` if not finite), or ``"end"`` (the job ended: ``status``).
    ``state`` is the server's event data.
    """

    kind: Literal["progress", "metrics", "end"]
    status: str | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    points: dict[str, list[tuple[int, float | None]]] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)


def _merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied: nested dicts merge, ``a__b`` keys reach into ``a``, other values replace."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        *parents, leaf = key.split("__")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        if isinstance(value, Mapping) and isinstance(node.get(leaf), dict):
            node[leaf] = _merge(node[leaf], value)
        else:
            node[leaf] = copy.deepcopy(value)
    return out


class Job(Resource):
    """A submitted job.  ``data`` is the API's job object (docs/reference/http-api.md#the-job-object);
    the properties below read it, :meth:`refresh` reads it again."""

    collection = "/jobs"

    @property
    def status(self) -> str:
        """``queued``, ``running``, ``succeeded``, ``failed`` or ``cancelled`` (as of the last refresh)."""
        return self.data["status"]

    @property
    def spec(self) -> dict[str, Any]:
        """The normalised job spec (every default filled in)."""
        return self.data["spec"]

    @property
    def result(self) -> dict[str, Any] | None:
        """The result once it succeeded (docs/reference/results.md), else None."""
        return self.data.get("result")

    @property
    def error(self) -> str | None:
        """Why it failed, else None."""
        return self.data.get("error")

    @property
    def progress(self) -> dict[str, int]:
        """``{"epoch", "step", "total_steps"}``."""
        return self.data.get("progress") or {}

    @property
    def name(self) -> str:
        """The spec's name."""
        return self.data["name"]

    @property
    def done(self) -> bool:
        """Whether it has ended (succeeded, failed or cancelled)."""
        return self.status in TERMINAL_STATUSES

    # ------------------------------------------------------------------ waiting and following

    def wait(self, timeout: float | None = None, progress: bool = True, poll_s: float = 0.5) -> Job:
        """Wait until the job ends; returns ``self`` if it succeeded.

        ``progress`` draws a bar on stderr (redrawn in place on a terminal or
        in a notebook).  Raises :class:`~convlab.errors.JobFailed` carrying the
        job's error if it failed, :class:`~convlab.errors.JobCancelled` if it
        was cancelled, :class:`~convlab.errors.JobTimeout` if ``timeout``
        seconds pass first (the job goes on running).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = ProgressBar() if progress else None
        try:
            while True:
                self.refresh()
                p = self.progress
                if bar is not None and p.get("total_steps"):
                    epochs = (self.spec.get("train") or {}).get("epochs")
                    bar.update(p["epoch"], p["step"], p["total_steps"], epochs)
                if self.done:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    raise JobTimeout(self, timeout)
                time.sleep(poll_s if deadline is None else max(0.0, min(poll_s, deadline - time.monotonic())))
        finally:
            if bar is not None:
                bar.close()
        if self.status == "failed":
            raise JobFailed(self)
        if self.status == "cancelled":
            raise JobCancelled(self)
        return self

    def stream(self, max_points: int = STREAM_POINTS) -> Iterator[StreamEvent]:
        """Follow the job as it runs: yields :class:`StreamEvent` s until it ends.

        Reads the Server-Sent Events the dashboard reads
        (``GET /api/v1/jobs/{id}/events``): a ``progress`` event when the
        status, step, epoch or queue place changes, ``metrics`` with the points
        not yielded before, then one ``end``.  A series longer than
        ``max_points / 2`` arrives downsampled (use :meth:`metrics` for every
        point).  Reconnects when the server ends a stream early (its 10 minute
        lifetime, a restart) and never yields a point twice.
        """
        last: dict[str, int] = {}
        path = f"{self.path}/events?max_points={int(max_points)}"
        while True:
            response = self.client.open_stream(path)
            reader = EventReader(response)
            try:
                for name, data in reader:
                    if not name:
                        continue
                    payload = json.loads(data)
                    if name == "job":
                        self.data.update(
                            {
                                k: payload[k]
                                for k in ("status", "progress", "result", "error", "cancel_requested")
                                if k in payload
                            }
                        )
                        yield StreamEvent("progress", status=self.status, progress=dict(self.progress), state=payload)
                    elif name in ("series", "points"):
                        new = {
                            s: [(int(st), v) for st, v in pts if st > last.get(s, -1)]
                            for s, pts in payload["series"].items()
                        }
                        new = {s: pts for s, pts in new.items() if pts}
                        if new:
                            last.update({s: pts[-1][0] for s, pts in new.items()})
                            yield StreamEvent("metrics", status=self.status, points=new, state=payload)
                    elif name == "end":
                        self.refresh()
                        yield StreamEvent("end", status=self.status, progress=dict(self.progress), state=payload)
                        return
                    elif name == "unavailable":
                        break  # the database went away: reconnect after the server's retry
            except (ConnectionError, TimeoutError, http.client.HTTPException, OSError):
                pass  # the API restarted mid-stream: reconnect (a GET, safe to repeat)
            finally:
                response.close()
            time.sleep(reader.retry_ms / 1000)

    # ------------------------------------------------------------------ what it made

    def metrics(self, names: Sequence[str] | None = None, max_points: int = METRIC_POINTS) -> dict[str, np.ndarray]:
        """The metric series (docs/reference/results.md#metric-series) as ``{name: array}``.

        Each array is ``(n, 2)`` float64: column 0 the step, column 1 the value
        (NaN where it was not finite): ``steps, values = job.metrics()["val_loss"].T``.
        Every point up to ``max_points`` per series; past that min/max-downsampled.
        """
        import numpy as np

        query = {"max_points": int(max_points)}
        if names is not None:
            query["names"] = ",".join(names)
        series = self.client.request("GET", f"{self.path}/metrics?{urllib.parse.urlencode(query)}")["series"]
        return {
            name: np.array([(s, np.nan if v is None else v) for s, v in pts], dtype=np.float64).reshape(-1, 2)
            for name, pts in series.items()
        }

    def weights(self) -> dict[str, np.ndarray]:
        """The trained weights (docs/reference/weights.md) as ``{"layers.{i}.W": array, ...}``.

        Read with ``allow_pickle=False``.  :class:`~convlab.errors.NotFound` until the job has weights.
        """
        import numpy as np

        data = self.client.request_bytes(f"{self.path}/artifacts/{WEIGHTS}")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}

    def network(self) -> Network:
        """An ``engine.Network`` of the job's model with the trained weights, in the job's dtype."""
        from engine import Network

        dtype = (self.spec.get("train") or {}).get("dtype", "float32")
        net = Network.from_spec(self.spec["model"], dtype=dtype)
        net.load_params(self.weights())
        return net

    def predict(self, x: Any, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """Probabilities (the output layer's activations) for inputs ``x``, computed by the API.

        ``x``: an ``(N, C, H, W)`` (or one ``(C, H, W)``) array scaled as the
        job's dataset (``[0, 1]``), or a list of PNG images (``bytes``, or
        base64 strings).  Sent in batches of ``batch_size``.  Returns ``(N,
        classes)`` float64 (NaN where not finite); ``argmax(axis=1)`` is the
        prediction.  422 (bad shape or values) raises
        :class:`~convlab.errors.InvalidRequest` with paths ``inputs[i]...``.
        """
        import numpy as np

        if isinstance(x, (list, tuple)) and x and isinstance(x[0], (bytes, bytearray, str)):
            inputs: list[Any] = [base64.b64encode(i).decode() if isinstance(i, (bytes, bytearray)) else i for i in x]
        else:
            arr = np.asarray(x, dtype=np.float64)
            if arr.ndim == 3:
                arr = arr[None]
            inputs = arr.tolist()
        rows: list[list[float | None]] = []
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start : start + batch_size]
            rows += self.client.request("POST", f"{self.path}/predict", {"inputs": chunk}, safe=True)["probabilities"]
        return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)

    # ------------------------------------------------------------------ acting on it

    def cancel(self) -> Job:
        """Cancel it: a queued job is cancelled now, a running one at its next heartbeat.

        Returns ``self`` (refreshed); :class:`~convlab.errors.Conflict` if it had already finished.
        """
        self.data = self.client.request("POST", f"{self.path}/cancel")["job"]
        return self

    def reproduce(self, tolerance: float | None = None) -> Job:
        """Run the same spec and seed again as a new job, on another worker when one is alive; returns it.

        Once both have ended, the new job's :attr:`certificate` says whether the runs agree
        (``bitwise``, ``within_tolerance`` of ``tolerance``, or ``diverged``: docs/trust.md).
        """
        body = {} if tolerance is None else {"tolerance": tolerance}
        key = str(uuid.uuid4())
        return Job(self.client, self.client.request("POST", f"{self.path}/reproduce", body, idempotency_key=key))

    @property
    def certificate(self) -> dict[str, Any] | None:
        """A reproduction's certificate (verdict, largest difference, where the runs part, environment
        differences), once both runs have ended; None before, and for a job that reproduces nothing.
        Read from the last :meth:`refresh` / :meth:`wait`."""
        return self.data.get("certificate")

    def clone(self, **changes: Any) -> Job:
        """Submit a copy of this job's spec with ``changes``; returns the new job.

        ``clone(name="b", train={"epochs": 5})`` merges nested dicts;
        ``clone(train__optimizer__lr=0.01)`` reaches into them by ``__``.
        """
        return self.client.submit(_merge(self.spec, changes))
