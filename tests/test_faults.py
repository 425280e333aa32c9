"""Faults with private processes: a worker killed with SIGKILL mid-job, Redis restarted mid-run.

Each test starts its own Redis (own port, own data directory, append-only
file on) so that restarting it touches nothing shared; PostgreSQL is a fresh
database of the shared server.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.cluster import Cluster, redis_server_binary, wait_for
from tests.helpers import mnist_cnn_spec, run_in_process, skip_or_fail
from tests.private_servers import PrivateRedis

pytestmark = [pytest.mark.processes, pytest.mark.slow]  # workers and redis-server, trained for several epochs


@pytest.fixture
def private_redis(tmp_path):
    if redis_server_binary() is None:
        skip_or_fail("redis-server is not installed")
    r = PrivateRedis(tmp_path, persistent=True).start()
    yield r
    r.remove()


@pytest.fixture
def cluster(tmp_path, private_redis, pg_databases):
    c = Cluster(tmp_path / "home", pg_databases(), private_redis.url)
    yield c
    c.stop()


def test_killed_worker_job_resumes_elsewhere_from_checkpoint(cluster):
    """SIGKILL the worker mid-job: another worker takes it over from the last checkpoint,
    writes no duplicate points, and ends with exactly the uninterrupted run's numbers."""
    cluster.start(workers=2)
    client = cluster.client()
    spec = mnist_cnn_spec("fault")
    job = client.request("POST", "/jobs", spec)
    job_id = job["id"]

    def past_first_checkpoint():
        j = client.request("GET", f"/jobs/{job_id}")
        assert j["status"] in ("queued", "running"), j
        return j if j["progress"]["epoch"] >= 2 else None

    wait_for(past_first_checkpoint, 120, "the job to finish two epochs")

    runner = next(w for w in client.request("GET", "/workers")["workers"] if w["job_id"] == job_id)
    pool_pid = int(runner["name"].rsplit(":", 1)[1])
    victim = next(p for p in cluster.workers if p.pid == os.getpgid(pool_pid))
    Cluster.kill(victim, signal.SIGKILL)

    done = cluster.wait_status(client, job_id, timeout=180)
    assert done["status"] == "succeeded", done["error"]
    assert done["attempts"] == 2

    series = client.request("GET", f"/jobs/{job_id}/metrics")["series"]
    steps = [s for s, _ in series["train_loss"]]
    assert steps == list(range(1, done["progress"]["total_steps"] + 1))  # no duplicates, no gaps
    assert len(series["val_accuracy"]) == spec["train"]["epochs"]

    # Same numbers as an uninterrupted run with the workers' BLAS thread count (a GEMM's
    # summation order, and so its last bits, depends on how many threads share it).
    uninterrupted = run_in_process(spec, int(cluster.env["CONVLAB_BLAS_THREADS"]))
    assert done["result"]["test_accuracy"] == uninterrupted.result["test_accuracy"]
    assert done["result"]["confusion_matrix"] == uninterrupted.result["confusion_matrix"]


def test_redis_restart_loses_no_job(cluster, private_redis):
    """Redis goes away mid-run and comes back: the running job finishes, and a job
    submitted while the broker was down is accepted (the database is the truth) and runs."""
    cluster.start(workers=2)
    client = cluster.client()
    first = client.request("POST", "/jobs", mnist_cnn_spec("fault", epochs=6))
    cluster.wait_status(client, first["id"], ("running",), timeout=60)

    private_redis.stop()
    during = client.request("POST", "/jobs", mnist_cnn_spec("fault", epochs=2))
    assert during["status"] == "queued"
    private_redis.start()

    for job in (first, during):
        done = cluster.wait_status(client, job["id"], timeout=240)
        assert done["status"] == "succeeded", done["error"]


def test_stopped_worker_hands_its_job_back(cluster):
    """SIGTERM to a worker (what `docker stop` sends): its job stops at the next batch and goes
    back to the queue without using up an attempt; another worker resumes it from its checkpoint."""
    first = cluster.start_api() or cluster.start_worker()
    client = cluster.client()
    spec = mnist_cnn_spec("fault")
    job_id = client.request("POST", "/jobs", spec)["id"]
    wait_for(
        lambda: client.request("GET", f"/jobs/{job_id}")["progress"]["epoch"] >= 2, 120, "the job to finish two epochs"
    )

    first.send_signal(signal.SIGTERM)  # the Celery parent only, as docker does
    first.wait(timeout=60)
    handed_back = client.request("GET", f"/jobs/{job_id}")
    assert handed_back["status"] == "queued" and handed_back["attempts"] == 0

    cluster.start_worker()
    done = cluster.wait_status(client, job_id, timeout=180)
    assert done["status"] == "succeeded", done["error"]
    assert done["attempts"] == 1
    steps = [s for s, _ in client.request("GET", f"/jobs/{job_id}/metrics")["series"]["train_loss"]]
    assert steps == list(range(1, done["progress"]["total_steps"] + 1))
    uninterrupted = run_in_process(spec, int(cluster.env["CONVLAB_BLAS_THREADS"]))
    assert done["result"]["test_accuracy"] == uninterrupted.result["test_accuracy"]
