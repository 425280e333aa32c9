"""Uploads' memory and size bounds, and files created private (0600)."""

from __future__ import annotations

import io
import os
import stat

import numpy as np
import pytest

import store
from convlab.config import Settings
from convlab.limits import dataset_limits
from service.datasets_api import upload_cost

API = "/api/v1"


def npz(X, y) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, X=X, y=y)
    return buf.getvalue()


def upload(client, headers, data: bytes):
    return client.post(
        f"{API}/datasets",
        headers=headers,
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(data), "d.npz")},
    )


def test_the_decompressed_bound_follows_the_request_limit(settings):
    assert dataset_limits(settings).max_bytes == 4 * settings.max_request_bytes
    settings.max_dataset_bytes = 1000
    assert dataset_limits(settings).max_bytes == 1000


class TestDecompressedBound:
    @pytest.fixture
    def settings(self, settings):
        settings.max_request_bytes = 64 * 1024  # so the decompressed bound is 256 KiB
        return settings

    def test_a_small_file_that_inflates_past_the_bound_is_refused(self, client, headers, app_store):
        # 300 KiB of zeros compresses to well under a KiB: only the decompressed size can refuse it.
        data = npz(np.zeros((300, 32, 32), np.uint8), np.arange(300) % 2)
        assert len(data) < 4096
        resp = upload(client, headers, data)
        assert resp.status_code in (413, 422), resp.get_json()
        assert "262144" in resp.get_json()["error"]["message"] + str(resp.get_json()["error"]["details"])
        assert store.list_datasets(app_store, None) == []
        small = npz(np.zeros((100, 16, 16), np.uint8), np.arange(100) % 2)  # 25 KiB inflated: fine
        assert upload(client, headers, small).status_code == 201


def test_uploads_over_the_memory_budget_get_503_and_the_budget_comes_back(client, headers, app, app_store):
    ext = app.extensions["convlab"]
    data = npz(np.zeros((40, 8, 8), np.uint8), np.arange(40) % 2)
    cost = upload_cost(len(data) + 300, ext.settings.max_request_bytes, ext.dataset_limits)
    assert cost < ext.upload_memory.capacity
    # Other uploads in flight hold all but less than one upload's worth.
    held = ext.upload_memory.capacity - cost // 2
    assert ext.upload_memory.try_reserve(held)
    resp = upload(client, headers, data)
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
    assert resp.get_json()["error"]["code"] == "busy"
    assert store.list_datasets(app_store, None) == []
    ext.upload_memory.release(held)
    assert upload(client, headers, data).status_code == 201
    assert ext.upload_memory.in_use == 0  # released after the answer
    assert upload(client, headers, b"not a zip").status_code == 422
    assert ext.upload_memory.in_use == 0  # and after an error


def private(path) -> bool:
    return stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0


def test_the_sqlite_file_is_created_private(tmp_path):
    old = os.umask(0o022)
    try:
        db = store.Store.from_url(f"sqlite:///{tmp_path / 'sub' / 'convlab.db'}")
        try:
            from migrations.runner import upgrade

            upgrade(f"sqlite:///{tmp_path / 'sub' / 'convlab.db'}")
            store.create_token(db, "alice")
            files = [p for p in (tmp_path / "sub").iterdir()]
            assert {p.name for p in files} >= {"convlab.db"}
            assert all(private(p) for p in files), {p.name: oct(os.stat(p).st_mode) for p in files}
        finally:
            db.dispose()
    finally:
        os.umask(old)


def test_the_secret_key_is_created_private(tmp_path, monkeypatch):
    old = os.umask(0o022)
    try:
        monkeypatch.setenv("CONVLAB_HOME", str(tmp_path / "home"))
        monkeypatch.delenv("CONVLAB_SECRET_KEY", raising=False)
        key = Settings.from_env().secret_key
        path = tmp_path / "home" / "secret_key"
        assert path.read_text().strip() == key and private(path)
    finally:
        os.umask(old)
