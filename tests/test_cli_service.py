"""The command line against a running service: `convlab up`, and the HTTP client commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from convlab.client import Client
from tests.cluster import Cluster, start_convlab_up, wait_for
from tests.helpers import EXAMPLES, tiny_train_spec

pytestmark = pytest.mark.processes  # `convlab up` and its children


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is as good as gone: it runs nothing.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def test_convlab_up_runs_everything_and_stops_every_child(tmp_path):
    """`convlab up` on a fresh home: migrations, API, two workers, an admin token; SIGTERM stops all."""
    up, log, url, token = start_convlab_up(tmp_path, workers=2)
    try:
        assert f"{url}/" in log.read_text()
        client = Client(url, token)
        workers = wait_for(
            lambda: (w := client.request("GET", "/workers")["workers"]) and len(w) == 2 and w, 60, "two workers"
        )
        job = client.request("POST", "/jobs", tiny_train_spec(epochs=1))
        done = wait_for(
            lambda: (j := client.request("GET", f"/jobs/{job['id']}"))["status"] == "succeeded" and j,
            120,
            "the job to succeed",
        )
        assert done["result"]["epochs_completed"] == 1
        assert (tmp_path / "home" / "convlab.db").exists()  # SQLite under CONVLAB_HOME
        pool_pids = [int(w["name"].rsplit(":", 1)[1]) for w in workers]
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
    assert up.returncode == 0
    wait_for(lambda: not any(_alive(p) for p in pool_pids), 20, "the worker processes to exit")
    with pytest.raises(OSError):
        Client(url, token, timeout=2).request("GET", "/jobs")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    home = tmp_path_factory.mktemp("cli-home")
    c = Cluster(home, f"sqlite:///{home / 'convlab.db'}").start(workers=1)
    yield c
    c.stop()


def _cli(cluster, *args, stdin=None):
    env = dict(cluster.env, CONVLAB_URL=cluster.url, CONVLAB_TOKEN=cluster.token("cli-user"))
    return subprocess.run(
        [sys.executable, "-m", "convlab.cli", *args], env=env, input=stdin, capture_output=True, text=True, timeout=300
    )


def test_submit_wait_jobs_status_cancel(cluster, tmp_path):
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(tiny_train_spec(epochs=2)))
    done = _cli(cluster, "submit", str(spec_path), "--wait")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "succeeded" and job["result"]["epochs_completed"] == 2
    assert "epoch" in done.stderr  # progress was shown

    listed = _cli(cluster, "jobs")
    assert listed.returncode == 0 and job["id"] in listed.stdout
    status = _cli(cluster, "status", job["id"])
    assert json.loads(status.stdout)["id"] == job["id"]
    again = _cli(cluster, "cancel", job["id"])
    assert again.returncode == 1 and "already finished" in again.stderr  # 409


def test_submit_invalid_spec_shows_field_paths(cluster):
    bad = _cli(cluster, "submit", str(EXAMPLES / "cnn-digits.json").replace("cnn-digits", "nope"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    spec = tiny_train_spec()
    spec["train"]["epochs"] = 10**9
    path = Path(cluster.home) / "bad.json"
    path.write_text(json.dumps(spec))
    bad = _cli(cluster, "submit", str(path))
    assert bad.returncode == 2
    assert "train.epochs" in bad.stderr and "HTTP 422" in bad.stderr
