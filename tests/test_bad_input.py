"""Every bad input of issue 10 gets a 4xx with a field path, never a 500, on SQLite and PostgreSQL.

One table: each row is a request a client can send (API and dashboard) and the answer it must get.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from tests.helpers import example

API = "/api/v1"
DEEP = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a":' * 5_000 + "1" + "}" * 5_000
HUGE_INT = "1" + "0" * 400  # an integer no float holds


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path, migrated_sqlite):
    """The app's database on each backend (overrides conftest's SQLite-only one)."""
    from tests.conftest import sqlite_copy

    if request.param == "sqlite":
        return sqlite_copy(migrated_sqlite, tmp_path / "var" / "convlab.db")
    return request.getfixturevalue("pg_store_url")


def spec_text(**changes) -> str:
    """The digits example spec with top-level or ``train`` fields replaced, as raw JSON text."""
    spec = example("cnn-digits")
    for key, value in changes.items():
        if key == "lr":
            spec["train"]["optimizer"][key] = value
        elif key in spec.get("train", {}):
            spec["train"][key] = value
        else:
            spec[key] = value
    return json.dumps(spec)


def with_raw(text: str, key: str, raw: str) -> str:
    """``text`` with the JSON value of ``"key": <placeholder>`` replaced by raw JSON text."""
    return text.replace(f'"{key}": "@@"', f'"{key}": {raw}')


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


DIGITS = {"X": np.zeros((4, 8, 8), np.uint8), "y": np.arange(4) % 2}

# (id, method, path, body kind, body, expected status, a path the details must name (None: any 4xx body))
CASES = [
    (
        "float field: integer too large",
        "POST",
        f"{API}/jobs",
        "json",
        lambda: with_raw(spec_text(lr="@@"), "lr", HUGE_INT),
        422,
        "train.optimizer.lr",
    ),
    (
        "float field: 1e400",
        "POST",
        f"{API}/jobs",
        "json",
        lambda: with_raw(spec_text(lr="@@"), "lr", "1e400"),
        422,
        "train.optimizer.lr",
    ),
    (
        "int field: integer too large",
        "POST",
        f"{API}/jobs",
        "json",
        lambda: with_raw(spec_text(epochs="@@"), "epochs", HUGE_INT),
        422,
        "train.epochs",
    ),
    ("name with NUL", "POST", f"{API}/jobs", "json", lambda: spec_text(name="a\x00b"), 422, "name"),
    (
        "name with lone surrogate",
        "POST",
        f"{API}/jobs",
        "json",
        lambda: spec_text(name="@@").replace('"@@"', '"a\\ud800b"'),
        422,
        "name",
    ),
    ("tag with NUL", "POST", f"{API}/jobs", "json", lambda: spec_text(tags=["ok", "x\x00"]), 422, "tags[1]"),
    ("key with NUL", "POST", f"{API}/jobs", "json", lambda: spec_text()[:-1] + ', "k\\u0000": 1}', 422, "k\\x00"),
    ("deep JSON array", "POST", f"{API}/jobs", "json", lambda: DEEP, 400, None),
    ("deep JSON object", "POST", f"{API}/jobs", "json", lambda: DEEP_OBJECT, 400, None),
    ("deep JSON: predict", "POST", f"{API}/jobs/JOB/predict", "json", lambda: DEEP_OBJECT, 400, None),
    (
        "predict input too large",
        "POST",
        f"{API}/jobs/JOB/predict",
        "json",
        lambda: '{"inputs": [' + HUGE_INT + "]}",
        422,
        "inputs[0]",
    ),
    ("search with NUL", "GET", f"{API}/jobs?search=a%00b", None, None, 422, "query.search"),
    ("tag filter with NUL", "GET", f"{API}/jobs?tag=%00", None, None, 422, "query.tag"),
    ("metrics names with NUL", "GET", f"{API}/jobs/JOB/metrics?names=loss%00", None, None, 422, "query.names"),
    ("job id with NUL", "GET", f"{API}/jobs/ab%00cd", None, None, 404, None),
    ("job id with NUL: cancel", "POST", f"{API}/jobs/ab%00cd/cancel", None, None, 404, None),
    ("job id with NUL: weights", "GET", f"{API}/jobs/ab%00cd/artifacts/weights.npz", None, None, 404, None),
    ("dataset id with NUL", "GET", f"{API}/datasets/ab%00cd", None, None, 404, None),
    ("dataset name with NUL", "POST", f"{API}/datasets", "upload", {"name": "a\x00b"}, 422, "name"),
    ("dataset file name with NUL", "POST", f"{API}/datasets", "upload", {"filename": "a\x00b.npz"}, 422, "name"),
    ("Idempotency-Key with NUL", "POST", f"{API}/jobs", "json-key", "a\x00b", 400, "headers.Idempotency-Key"),
    ("body over the limit, declared", "POST", f"{API}/jobs", "big", True, 413, None),
    ("body over the limit, chunked", "POST", f"{API}/jobs", "big", False, 413, None),
    ("upload over the limit, chunked", "POST", f"{API}/datasets", "big-upload", False, 413, None),
    ("dashboard: deep JSON submit", "POST", "/submit", "dash-json", lambda: DEEP, 400, None),
    ("dashboard: name with NUL", "POST", "/submit", "dash-json", lambda: spec_text(name="a\x00"), 422, "name"),
    (
        "dashboard: float too large",
        "POST",
        "/submit",
        "dash-json",
        lambda: with_raw(spec_text(lr="@@"), "lr", HUGE_INT),
        422,
        "train.optimizer.lr",
    ),
    ("dashboard: deep JSON try-it", "POST", "/jobs/JOB/predict", "dash-json", lambda: DEEP_OBJECT, 400, None),
    ("dashboard: search with NUL (dropped, as bad filters are)", "GET", "/jobs.json?search=%00", None, None, 200, None),
    ("dashboard: body over the limit, chunked", "POST", "/submit", "dash-big", False, 413, None),
]


@pytest.fixture
def job_id(client, headers):
    resp = client.post(f"{API}/jobs", data=spec_text(), headers=headers, content_type="application/json")
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"]


@pytest.fixture
def browser(client, auth):
    """The test client signed in to the dashboard; returns its CSRF token."""
    import re

    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"token": auth.token("alice"), "csrf_token": csrf}).status_code == 302
    page = client.get("/jobs").get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)


def chunked(kw: dict, data: bytes) -> None:
    """Send ``data`` without a Content-Length, as gunicorn hands over a chunked body (``wsgi.input_terminated``)."""
    kw["input_stream"] = io.BytesIO(data)
    kw["environ_overrides"] = {"wsgi.input_terminated": True}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_4xx_with_a_path(case, client, headers, job_id, browser, settings):
    name, method, path, kind, body, status, detail_path = case
    path = path.replace("JOB", job_id)
    kw: dict = {"headers": dict(headers)}
    limit = settings.max_request_bytes
    if kind in ("json", "dash-json"):
        kw["data"], kw["content_type"] = body().encode("utf-8", "surrogatepass"), "application/json"
    elif kind == "json-key":
        kw["data"], kw["content_type"] = spec_text().encode(), "application/json"
        kw["headers"]["Idempotency-Key"] = body
    elif kind == "upload":
        kw["data"] = {"file": (io.BytesIO(npz(**DIGITS)), body.get("filename", "d.npz"))}
        if "name" in body:
            kw["data"]["name"] = body["name"]
        kw["content_type"] = "multipart/form-data"
    elif kind in ("big", "dash-big"):
        data = b'{"name": "' + b"x" * (limit + 10) + b'"}'
        if body:
            kw["data"] = data
        else:
            chunked(kw, data)
        kw["content_type"] = "application/json"
    elif kind == "big-upload":
        data = npz(X=np.zeros((1, 8, 8)), y=np.zeros(1))
        boundary = "b0undary"
        whole = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.npz"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + b"\0" * (limit + 10)
            + f"\r\n--{boundary}--\r\n".encode()
        )
        chunked(kw, whole)
        kw["content_type"] = f"multipart/form-data; boundary={boundary}"
    if kind and kind.startswith("dash"):
        kw["headers"] = {"X-CSRF-Token": browser}
    if path.startswith("/jobs.json"):
        kw["headers"] = {"Accept": "application/json"}
    resp = client.open(path, method=method, **kw)
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:500])
    if status < 400:
        return
    answer = resp.get_json()
    assert answer is not None and "error" in answer, resp.get_data(as_text=True)[:300]
    if detail_path is not None:
        paths = [d["path"] for d in answer["error"]["details"]]
        assert detail_path in paths, answer


@pytest.mark.parametrize(
    "path",
    [
        "/gradcheck?ids=a%00b",
        "/compare?ids=a%00b,c",
        "/submit?from=a%00b",
        "/jobs/JOB/series.json?names=loss%00",
        "/jobs/a%00b",
        "/jobs/a%00b/series.json",
    ],
)
def test_dashboard_query_strings_with_nul_are_never_500(path, client, job_id, browser):
    resp = client.get(path.replace("JOB", job_id), headers={"Accept": "application/json"})
    assert resp.status_code in (200, 404), (resp.status_code, resp.get_data(as_text=True)[:300])
