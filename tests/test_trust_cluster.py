"""Trust with real processes (gunicorn API, Celery workers): a reproduction on a second worker is
certified bitwise, a worker with another BLAS thread count is named in the certificate, and a diverged
job carries its triage; on the embedded default and on PostgreSQL + a private Redis."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

import store
from tests.cluster import ROOT, wait_for
from tests.private_servers import cluster_on
from tests.test_trust_api import DIVERGING, SMALL

pytestmark = pytest.mark.processes


@pytest.fixture(params=["embedded", "distributed"])
def cluster(request, tmp_path):
    with cluster_on(request.param, tmp_path, lambda: request.getfixturevalue("pg_databases")()) as c:
        yield c


def _certified(client, job_id: str) -> dict:
    def check():
        job = client.request("GET", f"/jobs/{job_id}")
        return job if job.get("certificate") else None

    return wait_for(check, 120, f"the certificate of {job_id}")


def _weights(client, job_id: str) -> dict[str, np.ndarray]:
    req = urllib.request.Request(
        f"{client.url}/api/v1/jobs/{job_id}/artifacts/weights.npz", headers={"Authorization": f"Bearer {client.token}"}
    )
    with urllib.request.urlopen(req, timeout=30) as r, np.load(io.BytesIO(r.read()), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_reproductions_and_triage_on_real_workers(cluster):
    token = cluster.token("alice")
    client = cluster.client(token)
    original = client.submit(SMALL)
    original = cluster.wait_status(client, original["id"])
    assert original["status"] == "succeeded" and original["environment"]["blas_threads"] == 1

    # convlab reproduce --wait: the other worker runs it, the certificate is bitwise.
    env = {**os.environ, "CONVLAB_URL": cluster.url, "CONVLAB_TOKEN": token, "PYTHONPATH": str(ROOT)}
    cli = subprocess.run(
        [sys.executable, "-m", "convlab.cli", "reproduce", original["id"], "--wait"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert cli.returncode == 0, cli.stderr
    assert "verdict: bitwise" in cli.stderr
    out = json.loads(cli.stdout)
    copy = client.request("GET", f"/jobs/{out['id']}")
    cert = copy["certificate"]
    assert copy["reproduces"] == original["id"] and cert["verdict"] == "bitwise"
    assert copy["environment"]["worker"] != original["environment"]["worker"]
    assert set(cert["environment_differences"]) == {"worker"} and cert["explaining_differences"] == []

    # Every worker replaced by one with two BLAS threads: the reproduction runs there and says so.
    for proc in cluster.workers:
        proc.send_signal(signal.SIGTERM)
    for proc in cluster.workers:
        proc.wait(timeout=60)
    wait_for(lambda: not store.live_workers(cluster.store, 3), 30, "the workers to be gone")
    cluster.env["CONVLAB_BLAS_THREADS"] = "2"
    cluster.start_worker()
    again = client.request("POST", f"/jobs/{original['id']}/reproduce", {"tolerance": 1e-5}, idempotency_key="blas-2")
    cert = _certified(client, again["id"])["certificate"]
    assert cert["environment_differences"]["blas_threads"] == {"original": 1, "reproduction": 2}
    assert "blas_threads" in cert["explaining_differences"] and cert["tolerance"] == 1e-5
    # The verdict is what the numbers say: bitwise exactly when the weights are identical.
    wa, wb = _weights(client, original["id"]), _weights(client, again["id"])
    identical = all(wa[k].tobytes() == wb[k].tobytes() for k in wa)
    assert (cert["verdict"] == "bitwise") == identical
    if not identical:
        assert cert["verdict"] in ("within_tolerance", "diverged") and cert["first_difference"]

    # A diverged run: failed, with its triage, and its curves still answer.
    bad = cluster.wait_status(client, client.submit(DIVERGING)["id"])
    assert bad["status"] == "failed" and bad["error"].startswith("diverged")
    assert bad["triage"]["layer"] == 0 and bad["triage"]["phase"] in ("forward", "backward", "update")
    metrics = client.request("GET", f"/jobs/{bad['id']}/metrics")
    assert metrics["series"]["train_loss"][-1] == [bad["triage"]["step"], None]
    assert metrics["nonfinite"]["train_loss"][0][0] == bad["triage"]["step"]
