"""Tests of store/datasets.py: uploaded datasets and their visibility.

Each test runs on SQLite and on PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

from store import get_dataset, list_datasets, load_dataset_bytes, save_dataset
from tests.helpers import make_user


def test_datasets(db):
    alice, bob = make_user(db, "alice"), make_user(db, "bob")
    admin = make_user(db, "root", admin=True)
    blob = bytes(range(256)) * 10
    ds = save_dataset(db, alice.id, "my digits", blob, samples=100, shape=(1, 8, 8), classes=10)
    assert len(ds["id"]) == 32 and ds["created_at"].endswith("Z")
    assert {k: ds[k] for k in ("name", "samples", "shape", "classes", "size_bytes", "user")} == {
        "name": "my digits",
        "samples": 100,
        "shape": [1, 8, 8],
        "classes": 10,
        "size_bytes": 2560,
        "user": "alice",
    }
    assert get_dataset(db, ds["id"], alice) == ds
    assert get_dataset(db, ds["id"], bob) is None
    assert get_dataset(db, ds["id"], admin) == ds
    assert load_dataset_bytes(db, ds["id"]) == blob
    assert load_dataset_bytes(db, "0" * 32) is None
    ds2 = save_dataset(db, alice.id, "second", b"x", samples=1, shape=[3, 4, 4], classes=2)
    assert [d["id"] for d in list_datasets(db, alice)] == [ds2["id"], ds["id"]]
    assert list_datasets(db, bob) == []
    assert len(list_datasets(db, admin)) == 2
