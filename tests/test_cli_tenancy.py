"""``convlab delete`` and ``convlab user limits`` against a real API (gunicorn, no worker needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.cluster import Cluster
from tests.helpers import tiny_train_spec

pytestmark = pytest.mark.processes  # gunicorn


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    home = tmp_path_factory.mktemp("cli-tenancy")
    c = Cluster(home, f"sqlite:///{home / 'convlab.db'}").start(workers=0)
    yield c
    c.stop()


def _cli(cluster, token, *args):
    env = dict(cluster.env, CONVLAB_URL=cluster.url, CONVLAB_TOKEN=token)
    return subprocess.run(
        [sys.executable, "-m", "convlab.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_user_limits_are_set_and_shown_by_admins_only(cluster):
    admin, alice = cluster.token("root", admin=True), cluster.token("alice")
    out = _cli(cluster, admin, "user", "limits", "alice", "--max-queued", "1", "--max-compute", "1e12")
    assert out.returncode == 0, out.stderr
    view = json.loads(out.stdout)
    assert view["overrides"]["max_queued"] == 1 and view["effective"]["max_compute"] == 1e12
    shown = json.loads(_cli(cluster, admin, "user", "limits", "alice").stdout)
    assert shown == view
    denied = _cli(cluster, alice, "user", "limits", "alice", "--max-queued", "100")
    assert denied.returncode == 2 and "HTTP 403" in denied.stderr and "Traceback" not in denied.stderr
    client = cluster.client(alice)
    client.submit(tiny_train_spec())
    with pytest.raises(Exception, match="HTTP 429"):
        client.submit(tiny_train_spec())
    cleared = json.loads(_cli(cluster, admin, "user", "limits", "alice", "--clear").stdout)
    assert set(cleared["overrides"].values()) == {None}


def test_delete_a_job_and_a_dataset(cluster):
    token = cluster.token("bob")
    job = cluster.client(token).submit(tiny_train_spec())
    out = _cli(cluster, token, "delete", job["id"])
    assert out.returncode == 0 and "deleted job" in out.stderr
    again = _cli(cluster, token, "delete", job["id"])
    assert again.returncode == 2 and "HTTP 404" in again.stderr
    missing = _cli(cluster, token, "delete", "--dataset", "nope")
    assert missing.returncode == 2 and "no dataset" in missing.stderr
