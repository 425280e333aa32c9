"""The Python client of the HTTP API (``from convlab import Client``; docs/reference/python-client.md), and the
``convlab submit / jobs / status / cancel / summary`` commands built on it: one HTTP code path.

Standard library only; NumPy is imported by the methods that take or return arrays.
"""

from __future__ import annotations

import functools
import http.client
import io
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

from .errors import ApiError, ConfigurationError, ConnectionFailed, ConvlabError, JobFailed, api_error
from .job import Job
from .names import TERMINAL_STATUSES
from .progress import ProgressBar

__all__ = ["Client", "ApiError"]

RETRY_STATUSES = (502, 503, 504)  # the API or its database is away for a moment
MAX_RETRY_DELAY_S = 10.0
# The request may have reached the server (and committed) even though no answer came back.
CONNECTION_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException)
JOBS_PAGE = 100


def _read_all(response: http.client.HTTPResponse) -> bytes:
    """The whole body, and the connection closed."""
    with response:
        return response.read()


class Client:
    """A client of the HTTP API (docs/reference/http-api.md).

    ``url`` and ``token`` default to ``CONVLAB_URL`` (else
    ``http://127.0.0.1:8000``) and ``CONVLAB_TOKEN``.  Every failure is a
    :class:`~convlab.errors.ConvlabError`: API errors as
    :class:`~convlab.errors.ApiError` subclasses with the API's message and
    field paths, an unreachable service as
    :class:`~convlab.errors.ConnectionFailed`.

    Requests that are safe to repeat (GETs, POSTs with an ``Idempotency-Key``,
    and calls that change nothing such as predictions) are retried up to
    ``retries`` times when the connection fails or the API answers
    502/503/504, after its ``Retry-After`` or an exponential back-off.  Other
    POSTs are sent once: they may have reached the server.

    Extension point: a new kind of API object is a :class:`~convlab.resource.Resource`
    subclass, and a method here that makes or finds it through :meth:`request`.
    """

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30, retries: int = 4):
        """Raises :class:`~convlab.errors.ConfigurationError` without a token."""
        self.url = (url or os.environ.get("CONVLAB_URL") or "http://127.0.0.1:8000").rstrip("/")
        self.token = token or os.environ.get("CONVLAB_TOKEN")
        self.timeout = timeout
        self.retries = retries
        if not self.token:
            raise ConfigurationError("set CONVLAB_TOKEN or pass token= (make one with `convlab token create NAME`)")

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # ------------------------------------------------------------------ jobs

    def submit(self, spec: dict[str, Any] | str | os.PathLike[str], idempotency_key: str | None = None) -> Job:
        """Submit a job spec (a dict, or the path of a JSON file); returns the queued :class:`~convlab.job.Job`.

        ``POST /jobs`` once per call: a fresh ``Idempotency-Key`` (or the one
        given), the same on every retry of it, so a retry never makes a second
        job.  An invalid spec raises :class:`~convlab.errors.SpecError` with
        ``details``: ``[{"path": "train.epochs", "message": ...}]``.
        """
        if not isinstance(spec, dict):
            with open(spec, encoding="utf-8") as f:
                spec = json.load(f)
        return Job(self, self.request("POST", "/jobs", spec, idempotency_key=idempotency_key or str(uuid.uuid4())))

    def create_study(self, spec: dict[str, Any] | str | os.PathLike[str], idempotency_key: str | None = None):
        """Create a study (a dict, or the path of a JSON file: docs/reference/studies.md); returns the
        :class:`~convlab.study.Study`, its first trials queued.  ``POST /studies`` once per call, as
        :meth:`submit`; an invalid space or trial spec raises :class:`~convlab.errors.InvalidRequest`
        with the paths."""
        from .study import Study

        if not isinstance(spec, dict):
            with open(spec, encoding="utf-8") as f:
                spec = json.load(f)
        key = idempotency_key or str(uuid.uuid4())
        return Study(self, self.request("POST", "/studies", spec, idempotency_key=key))

    def study(self, study_id: str):
        """One study by id (:class:`~convlab.errors.NotFound` if there is none, or it is not yours)."""
        from .study import Study

        return Study(self, self.request("GET", f"/studies/{urllib.parse.quote(study_id, safe='')}"))

    def job(self, job_id: str) -> Job:
        """One job by id (:class:`~convlab.errors.NotFound` if there is none, or it is not yours)."""
        return Job(self, self.request("GET", f"/jobs/{urllib.parse.quote(job_id, safe='')}"))

    def jobs(
        self,
        status: str | None = None,
        type: str | None = None,
        tag: str | None = None,
        search: str | None = None,
        page_size: int = JOBS_PAGE,
    ) -> Iterator[Job]:
        """Every job matching the filters, newest first, page after page (``GET /jobs``).

        ``status``, ``type``, ``tag`` match exactly; ``search`` is part of the
        name or the start of the id.  A job submitted while iterating may shift
        the pages: no job is yielded twice.
        """
        filters = {k: v for k, v in (("status", status), ("type", type), ("tag", tag), ("search", search)) if v}
        seen: set[str] = set()
        offset = 0
        while True:
            query = urllib.parse.urlencode({**filters, "limit": page_size, "offset": offset})
            page = self.request("GET", f"/jobs?{query}")
            for data in page["jobs"]:
                if data["id"] not in seen:
                    seen.add(data["id"])
                    yield Job(self, data)
            offset += len(page["jobs"])
            if not page["jobs"] or offset >= page["total"]:
                return

    def summary(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The model summary of a job spec (``POST /specs/summary``; docs/reference/http-api.md#model-summary):
        per layer output shape, parameters, multiply-adds, memory per batch, with totals, limits and errors."""
        return self.request("POST", "/specs/summary", spec, safe=True)

    # ------------------------------------------------------------------ datasets and workers

    def upload_dataset(self, X: Any, y: Any, name: str | None = None) -> dict[str, Any]:
        """Upload arrays as a dataset (``X``: (N, H, W) or (N, C, H, W); ``y``: (N,) integer labels).

        Returns the dataset (``{"id", "name", "samples", "shape", "classes", ...}``);
        its ``id`` goes in a spec's ``data.dataset``.  Sent as an ``.npz``
        with an ``Idempotency-Key``, so a retry stores it once.  An unusable
        dataset raises :class:`~convlab.errors.InvalidRequest` with the engine's message.
        """
        import numpy as np

        buf = io.BytesIO()
        np.savez(buf, X=np.asarray(X), y=np.asarray(y))
        boundary = uuid.uuid4().hex
        parts = []
        if name is not None:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n{name}\r\n'.encode())
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{uuid.uuid4().hex}.npz"'
            f"\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        )
        body = b"".join(parts) + buf.getvalue() + f"\r\n--{boundary}--\r\n".encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        raw = self._call("POST", "/datasets", body, headers, str(uuid.uuid4()), False, _read_all)
        return json.loads(raw)

    def datasets(self) -> list[dict[str, Any]]:
        """The datasets you uploaded, newest first."""
        return self.request("GET", "/datasets")["datasets"]

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        """One uploaded dataset."""
        return self.request("GET", f"/datasets/{urllib.parse.quote(dataset_id, safe='')}")

    def workers(self) -> list[dict[str, Any]]:
        """Live workers: ``{"name", "heartbeat_age_s", "job_id"}``."""
        return self.request("GET", "/workers")["workers"]

    # ------------------------------------------------------------------ HTTP: the one code path

    def request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        idempotency_key: str | None = None,
        *,
        safe: bool = False,
    ):
        """One API call (``path`` under ``/api/v1``); the decoded JSON answer, or an
        :class:`~convlab.errors.ApiError`.  Retried when safe (see the class); ``safe``:
        this POST changes nothing, retry it as a GET."""
        data = None if body is None else json.dumps(body).encode()
        headers = {} if data is None else {"Content-Type": "application/json"}
        raw = self._call(method, path, data, headers, idempotency_key, safe, _read_all)
        return json.loads(raw) if raw else None

    def request_bytes(self, path: str) -> bytes:
        """``GET path`` (under ``/api/v1``) answered with bytes (an artifact), retried as any GET."""
        return self._call("GET", path, None, {}, None, True, _read_all)

    def open_stream(self, path: str) -> http.client.HTTPResponse:
        """``GET path`` left open for reading (an event stream); the caller closes it.  Connecting is retried."""
        return self._call("GET", path, None, {"Accept": "text/event-stream"}, None, True, lambda r: r)

    def _call(
        self,
        method: str,
        path: str,
        data: bytes | None,
        headers: dict[str, str],
        idempotency_key: str | None,
        safe: bool,
        read,
    ):
        """Send, retrying when safe; ``read(response)`` makes the result (inside the retry: a cut-off body retries)."""
        retryable = method in ("GET", "HEAD") or idempotency_key is not None or safe
        for attempt in range(self.retries + 1):
            delay = min(0.5 * 2**attempt, MAX_RETRY_DELAY_S)
            try:
                response = self._open(method, path, data, headers, idempotency_key)
                try:
                    return read(response)
                except BaseException:
                    response.close()
                    raise
            except ApiError as exc:
                if not retryable or exc.status not in RETRY_STATUSES or attempt == self.retries:
                    raise
                if exc.retry_after is not None:
                    delay = min(exc.retry_after, MAX_RETRY_DELAY_S)
            except CONNECTION_ERRORS as exc:
                if not retryable or attempt == self.retries:
                    raise ConnectionFailed(self.url, getattr(exc, "reason", None) or exc) from exc
            time.sleep(delay)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _open(
        self, method: str, path: str, data: bytes | None, headers: dict[str, str], idempotency_key: str | None
    ) -> http.client.HTTPResponse:
        """One HTTP exchange; an error status becomes its :class:`~convlab.errors.ApiError`."""
        req = urllib.request.Request(f"{self.url}/api/v1{path}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        for key, value in headers.items():
            req.add_header(key, value)
        if idempotency_key is not None:
            req.add_header("Idempotency-Key", idempotency_key)
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raw = exc.read().decode(errors="replace")
            retry_after = exc.headers.get("Retry-After", "")
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                body = raw
            raise api_error(exc.code, body, float(retry_after) if retry_after.isdigit() else None) from None

    def wait(self, job_id: str, poll_s: float = 0.5, bar: ProgressBar | None = None) -> dict:
        """Poll until the job ends, drawing its progress; the job's JSON (see :meth:`Job.wait` for the object's)."""
        while True:
            job = self.request("GET", f"/jobs/{job_id}")
            if bar is not None and job["progress"]["total_steps"]:
                p = job["progress"]
                bar.update(p["epoch"], p["step"], p["total_steps"])
            if job["status"] in TERMINAL_STATUSES:
                return job
            time.sleep(poll_s)


def _print(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _command(name: str):
    """Turn the client's errors in a command into a message and an exit code.

    409 (a conflict, e.g. cancelling a finished job) exits 1; other errors 2.
    """

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs) -> int:
            try:
                return fn(*args, **kwargs)
            except ApiError as exc:
                print(f"convlab {name}: {exc}", file=sys.stderr)
                return 1 if exc.status == 409 else 2
            except ConvlabError as exc:  # ConnectionFailed, ConfigurationError
                print(f"convlab {name}: {exc}", file=sys.stderr)
                return 2
            except CONNECTION_ERRORS as exc:
                print(
                    f"convlab {name}: cannot reach the API ({getattr(exc, 'reason', exc)}); is CONVLAB_URL right?",
                    file=sys.stderr,
                )
                return 2

        return run

    return wrap


@_command("submit")
def submit(path: str, wait: bool) -> int:
    """``convlab submit SPEC [--wait]``: the job's JSON on stdout; with ``--wait`` its progress, then its end."""
    from .local import read_json

    try:
        spec = read_json(path)
    except (OSError, ValueError) as exc:
        print(f"convlab submit: {exc}", file=sys.stderr)
        return 2
    job = Client().submit(spec)
    print(f"job {job.id} {job.status}", file=sys.stderr)
    if not wait:
        _print(job.data)
        return 0
    try:
        job.wait(progress=True)
    except JobFailed:
        _print(job.data)
        return 1
    _print(job.data)
    return 0


@_command("jobs")
def jobs(status: str | None, limit: int) -> int:
    """``convlab jobs``: a table of the newest jobs."""
    query = urllib.parse.urlencode({"limit": limit, **({"status": status} if status else {})})
    out = Client().request("GET", f"/jobs?{query}")
    print(f"{'id':32}  {'type':9}  {'status':9}  {'progress':>9}  name")
    for j in out["jobs"]:
        p = j["progress"]
        prog = f"{p['step']}/{p['total_steps']}" if p["total_steps"] else "-"
        print(f"{j['id']:32}  {j['type']:9}  {j['status']:9}  {prog:>9}  {j['name']}")
    print(f"({len(out['jobs'])} of {out['total']})", file=sys.stderr)
    return 0


@_command("status")
def status(job_id: str) -> int:
    """``convlab status ID``: the job's JSON."""
    _print(Client().request("GET", f"/jobs/{urllib.parse.quote(job_id)}"))
    return 0


@_command("cancel")
def cancel(job_id: str) -> int:
    """``convlab cancel ID``: cancel; the answer's JSON."""
    _print(Client().request("POST", f"/jobs/{urllib.parse.quote(job_id)}/cancel"))
    return 0


def _size(n: int) -> str:
    """Bytes for people: 1.5 MiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def _shape(shape: list[int] | None) -> str:
    return "×".join(map(str, shape)) if shape else "?"


def _layer_text(row: dict) -> str:
    """A layer in a few words: ``conv 5×5 ×20 relu``."""
    layer = row["layer"] or {}
    t = row["type"] or "?"
    if t == "conv" and layer:
        kh, kw = layer["kernel"]
        extra = "".join(f" {k} {layer[k]}" for k in ("stride", "padding") if layer[k] != (1 if k == "stride" else 0))
        return f"conv {kh}×{kw} ×{layer['filters']}{extra} {layer['activation']}"
    if t in ("maxpool", "avgpool") and layer:
        return f"{t} {layer['size']}" + (f" stride {layer['stride']}" if layer["stride"] != layer["size"] else "")
    if t == "dense" and layer:
        return f"dense {layer['units']} {layer['activation']}"
    if t == "dropout" and layer:
        return f"dropout {layer['rate']:g}"
    return t


def format_summary(out: dict) -> str:
    """The model summary as a table (``convlab summary``): a ``!`` marks a layer with errors, listed under it."""

    def num(v):
        return "-" if v is None else f"{v:,}"

    lines = [
        f"  {'layer':<28} {'output':>12} {'params':>11} {'mult-adds':>14} {'memory/batch':>13}",
        f"  {'input':<28} {_shape(out['input_shape']):>12}",
    ]
    for row in out["layers"]:
        mark = "!" if row["errors"] else " "
        mem = "-" if row["memory_bytes"] is None else _size(row["memory_bytes"])
        lines.append(
            f"{mark} {str(row['index']) + ' ' + _layer_text(row):<28} {_shape(row['output_shape']):>12} "
            f"{num(row['parameters']):>11} {num(row['multiply_adds']):>14} {mem:>13}"
        )
        lines += [f"      {e['path']}: {e['message']}" for e in row["errors"]]
    t, lim = out["totals"], out["limits"]
    batch = f"batch of {out['batch_size']}" if out["batch_size"] else "per sample"
    lines.append(
        f"  {'total' + ('' if t['complete'] else ' (incomplete)'):<28} {'':>12} {t['parameters']:>11,} "
        f"{t['multiply_adds']:>14,} {_size(t['memory_bytes']):>13}   ({batch}, {out['dtype']}; "
        "mult-adds per sample, memory incl. 4 copies of the parameters)"
    )
    lines.append(
        f"  {'limits':<28} {'':>12} {lim['max_parameters']:>11,} {'':>14} {_size(lim['max_batch_memory_bytes']):>13}"
    )
    others = [e for e in out["errors"] if not any(e in row["errors"] for row in out["layers"])]
    if others:
        lines.append("errors:")
        lines += [f"  {e['path'] or '(spec)'}: {e['message']}" for e in others]
    lines.append("valid" if out["valid"] else f"invalid: {len(out['errors'])} problem(s)")
    return "\n".join(lines)


def summary(path: str, api: bool, as_json: bool) -> int:
    """``convlab summary SPEC``: the model summary, computed here (the service's limits from ``CONVLAB_LIMIT_*``)
    or, with ``api``, by the service (its limits and your uploaded datasets).  Exit 0 valid, 1 invalid, 2 unusable."""
    from .local import read_json

    try:
        spec = read_json(path)
    except (OSError, ValueError) as exc:
        print(f"convlab summary: {exc}", file=sys.stderr)
        return 2
    if api:
        out = _command("summary")(lambda: Client().summary(spec))()
        if isinstance(out, int):
            return out
    else:
        from engine.summary import model_summary

        from .config import limit_overrides_from_env
        from .limits import limits_from_overrides

        try:
            limits = limits_from_overrides(limit_overrides_from_env())
        except ValueError as exc:
            print(f"convlab summary: {exc}", file=sys.stderr)
            return 2
        from .local import _npz_shape

        data = spec.get("data") if isinstance(spec, dict) else None
        dataset = data.get("dataset") if isinstance(data, dict) else None
        # A local .npz is checked as `convlab run` checks it; an uploaded dataset's id only the service knows.
        local = isinstance(dataset, str) and dataset.endswith(".npz")
        out = model_summary(spec, limits, datasets=_npz_shape if local else None)
    if as_json:
        _print(out)
    else:
        print(format_summary(out))
    return 0 if out["valid"] else 1


@_command("delete")
def delete(item_id: str, dataset: bool = False) -> int:
    """Delete a job (409, exit 1, while it runs: cancel it first) or an uploaded dataset."""
    kind = "datasets" if dataset else "jobs"
    Client().request("DELETE", f"/{kind}/{urllib.parse.quote(item_id)}")
    print(f"deleted {kind[:-1]} {item_id}", file=sys.stderr)
    return 0


@_command("user limits")
def user_limits(name: str, values: dict, clear: bool = False) -> int:
    """Show user ``name``'s limits, or set ``values`` (``"none"``: back to the default) first; admins only."""
    path = f"/users/{urllib.parse.quote(name, safe='')}/limits"
    client = Client()
    if clear:
        values = {**dict.fromkeys(("max_running", "max_queued", "max_compute", "max_storage")), **values}
    body = {k: (None if v == "none" else v) for k, v in values.items()}
    _print(client.request("PUT", path, body) if body else client.request("GET", path))
    return 0
