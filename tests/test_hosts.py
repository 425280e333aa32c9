"""Two workers on two hosts, one of which drops off the network in the middle of a job.

The hosts are network namespaces of this test's own on a private /29 (see
``tests/hostnet.py``); PostgreSQL and Redis are private servers listening on
that network only (the API, in the root namespace, reaches them there too).
The workers are ordinary ``convlab worker`` processes, started with ``ip netns
exec``: same Python, same checkout, only their network and hostname differ.

What is proved: the cut-off host's job is taken back once its heartbeat is
stale and resumed on the other host from its checkpoint; when the cable is
back, whatever the cut-off worker still had to write (progress, metrics,
checkpoint, result) changes nothing: the job's owner, attempts, metric series
and result are those of one uninterrupted run; the worker notices it lost the
job, goes idle, and then runs new work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

import store
from engine.jobs import Hooks
from store.models import Job
from tests.cluster import ROOT, Cluster, redis_server_binary, wait_for
from tests.helpers import mnist_cnn_spec, run_in_process
from tests.hostnet import HostNetwork, namespaces_impossible
from tests.private_servers import PrivatePostgres, PrivateRedis, private_postgres_impossible

pytestmark = [pytest.mark.processes, pytest.mark.slow]

HOSTS = ["a", "b"]


def _unavailable(reason: str):
    """Skip, except in CI, where a proof that cannot run is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def lan():
    reason = (
        namespaces_impossible()
        or private_postgres_impossible()
        or (None if redis_server_binary() else "redis-server is not installed")
    )
    if reason:
        _unavailable(reason)
    net = HostNetwork(HOSTS)
    try:
        net.build()
        yield net
    finally:
        errors = net.close()
        assert not errors, errors


@pytest.fixture
def postgres(lan):
    # No server settings: a worker cut off mid-transaction has its row lock released because the
    # store's connections ask for keepalives and an idle-transaction bound (store.db).
    pg = PrivatePostgres(lan.server_address, trusted=str(lan.subnet), durable=False)
    try:
        yield pg.start()
    finally:
        pg.remove()


@pytest.fixture
def broker(lan):
    r = PrivateRedis(bind=lan.server_address)
    try:
        yield r.start()
    finally:
        r.remove()


@pytest.fixture
def cluster(tmp_path, lan, postgres, broker):
    c = Cluster(tmp_path / "home", postgres.create_database("convlab"), broker.url)
    try:
        yield c
    finally:
        for proc in c.workers:  # SIGKILL: an idle worker's shutdown is not what is tested here
            Cluster.kill(proc)
        c.stop()


def start_host_worker(cluster: Cluster, lan: HostNetwork, host: str) -> subprocess.Popen:
    """``convlab worker`` on ``host``; returns once it sends heartbeats (through the private network)."""
    argv = lan.argv(host, [sys.executable, "-m", "convlab.cli", "worker", "--concurrency", "1"])
    with open(cluster.logs / f"worker{len(cluster.workers) + 1}.log", "ab") as log:
        proc = subprocess.Popen(
            argv, env=cluster.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    cluster.workers.append(proc)
    wait_for(lambda: _worker_of(cluster, lan, host), 90, f"a worker on host {host} to send heartbeats")
    return proc


def _worker_of(cluster: Cluster, lan: HostNetwork, host: str) -> dict | None:
    """``host``'s live worker slot (name ``hostname:pid``, ``job_id``), None if it is not heard from."""
    prefix = lan.hostname(host) + ":"
    return next((w for w in store.live_workers(cluster.store, 3) if w["name"].startswith(prefix)), None)


def _row(cluster: Cluster, job_id: str):
    """The job as the database holds it: status, owner (worker), attempts."""
    with cluster.store.session() as s:
        return s.execute(select(Job.status, Job.worker, Job.attempts).where(Job.id == job_id)).one()


def _host_of(lan: HostNetwork, worker: str | None) -> str | None:
    return next((h for h in HOSTS if worker and worker.startswith(lan.hostname(h) + ":")), None)


def _uninterrupted(spec: dict, blas_threads: int) -> tuple[dict, dict]:
    """Result and metric series of the spec run once, in this process, with the workers' BLAS threads."""
    series: dict[str, list[list]] = {}
    hooks = Hooks(on_metric=lambda name, step, value: series.setdefault(name, []).append([step, float(value)]))
    outcome = run_in_process(spec, blas_threads, hooks)
    return outcome.result, series


def _comparable(result: dict) -> dict:
    """A result without its wall-clock fields, as JSON would store it."""
    return {k: v for k, v in json.loads(json.dumps(result)).items() if not k.endswith("_seconds")}


def test_cut_off_host_loses_its_job_to_the_other_and_then_takes_new_work(lan, cluster):
    cluster.start_api()
    procs = {h: start_host_worker(cluster, lan, h) for h in HOSTS}
    client = cluster.client()
    spec = mnist_cnn_spec("cut-off", epochs=8, seed=5)
    job_id = client.request("POST", "/jobs", spec)["id"]

    def past_a_checkpoint():
        j = client.request("GET", f"/jobs/{job_id}")
        assert j["status"] in ("queued", "running"), j
        return j if j["progress"]["epoch"] >= 2 else None

    wait_for(past_a_checkpoint, 120, "the job to finish two epochs (two checkpoints)")

    status, first_owner, attempts = _row(cluster, job_id)
    victim = _host_of(lan, first_owner)
    assert status == "running" and attempts == 1 and victim is not None, (status, first_owner, attempts)
    survivor = next(h for h in HOSTS if h != victim)

    lan.cut(victim)
    try:
        # Taken back after the stale period and claimed by the other host (a second attempt).
        def resumed_elsewhere():
            row = _row(cluster, job_id)
            assert row.status in ("queued", "running"), row
            return row if row.status == "running" and _host_of(lan, row.worker) == survivor else None

        row = wait_for(resumed_elsewhere, 60, f"host {survivor} to take the job over")
        assert row.attempts == 2
    finally:
        lan.restore(victim)

    # The cut-off worker's pending writes now reach the database; it must find out the job is gone,
    # stop, and go idle (its heartbeat row shows no job), with nothing of its own left on the job.
    done = cluster.wait_status(client, job_id, timeout=180)
    wait_for(
        lambda: (w := _worker_of(cluster, lan, victim)) and w["job_id"] is None,
        120,
        f"the worker on host {victim} to heartbeat again, idle",
    )
    assert procs[victim].poll() is None, cluster.log_tail("worker1") + cluster.log_tail("worker2")

    status, owner, attempts = _row(cluster, job_id)
    assert (status, attempts) == ("succeeded", 2), done["error"]
    assert owner == row.worker  # the survivor's slot wrote the end, and kept it
    job = client.request("GET", f"/jobs/{job_id}")
    assert job["progress"]["epoch"] == spec["train"]["epochs"]
    assert job["progress"]["step"] == job["progress"]["total_steps"]

    result, series = _uninterrupted(spec, int(cluster.env["CONVLAB_BLAS_THREADS"]))
    stored = store.get_metrics(cluster.store, job_id)
    assert sorted(stored) == sorted(series)
    for name, points in series.items():  # every point once, none missing, bit for bit
        assert stored[name] == points, name
    assert _comparable(job["result"]) == _comparable(result)

    # The cut-off host takes new work: with the other host gone, a new job can only run there.
    Cluster.kill(procs[survivor])
    wait_for(lambda: _worker_of(cluster, lan, survivor) is None, 30, f"host {survivor}'s worker to fall silent")
    small = mnist_cnn_spec("cut-off", epochs=1, seed=5)
    second = client.request("POST", "/jobs", small)["id"]
    finished = cluster.wait_status(client, second, timeout=120)
    assert finished["status"] == "succeeded", finished["error"]
    status, owner, attempts = _row(cluster, second)
    assert _host_of(lan, owner) == victim and attempts == 1, (owner, attempts)
