"""Stopping workers and `convlab up` with real processes: SIGTERM to an idle worker ends it
cleanly, a busy one hands its job back first, `convlab up` stops every child on Ctrl-C or
SIGTERM, and when `convlab up` is SIGKILLed its children go too.

The tests assert outcomes (exit codes, no ERROR lines, no process left, where the job
is); time is only bounded by deadlines.  The durations are measured in docs/failure-modes.md.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

import store
from tests.cluster import Cluster, free_port, redis_server_binary, start_convlab_up, wait_for
from tests.helpers import tiny_train_spec

pytestmark = pytest.mark.processes  # workers and `convlab up` as child processes

BAD_LINES = re.compile(r"ERROR|CRITICAL|Traceback|exited with")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children in their own sessions included)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@pytest.fixture
def redis_url(tmp_path):
    """A redis-server of the test's own (never the shared one: other tests' workers would eat the messages)."""
    exe = redis_server_binary()
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    wait_for(lambda: _pings(redis.Redis(port=port, socket_connect_timeout=0.5)), 20, "the private Redis")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=20)


def _pings(client) -> bool:
    try:
        return client.ping()
    except Exception:  # noqa: BLE001 - not up yet
        return False


@pytest.fixture(params=["embedded", "redis"])
def cluster(request, tmp_path):
    broker = None if request.param == "embedded" else request.getfixturevalue("redis_url")
    c = Cluster(tmp_path / "home", f"sqlite:///{tmp_path / 'home' / 'convlab.db'}", broker)
    yield c
    c.stop()


def _pool_pid(c: Cluster, before: set[str]) -> int:
    """The pool process of the worker that appeared since ``before`` (worker names are host:pid)."""
    names = wait_for(lambda: {w["name"] for w in store.live_workers(c.store, 3)} - before, 60, "a new worker")
    return int(next(iter(names)).rsplit(":", 1)[1])


def test_sigterm_to_an_idle_worker_ends_it_cleanly(cluster):
    worker = cluster.start_worker()
    pool = _pool_pid(cluster, set())
    os.kill(worker.pid, signal.SIGTERM)  # what docker stop sends: the main process only
    assert worker.wait(timeout=30) == 0
    assert not alive(pool)
    log = cluster.log_tail("worker1", 10_000)
    assert not BAD_LINES.search(log), log
    assert store.live_workers(cluster.store, 3) == []  # it said goodbye


def test_sigterm_to_a_busy_worker_hands_the_job_back_then_exits(cluster):
    cluster.start_api()
    client = cluster.client()
    worker = cluster.start_worker()
    job = client.submit(tiny_train_spec(epochs=400))
    wait_for(lambda: client.request("GET", f"/jobs/{job['id']}")["progress"]["step"] > 0, 120, "the job to run")
    os.kill(worker.pid, signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    handed_back = client.request("GET", f"/jobs/{job['id']}")
    assert handed_back["status"] == "queued"
    log = cluster.log_tail("worker1", 10_000)
    assert "handed back on shutdown" in log and not BAD_LINES.search(log), log
    client.request("POST", f"/jobs/{job['id']}/cancel")  # the next worker need not train it for long


def _start_up(tmp_path, workers: int = 2):
    up, log, _, _ = start_convlab_up(tmp_path, workers)
    return up, log


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_convlab_up_stops_every_child_on_ctrl_c_or_sigterm(tmp_path, sig):
    up, log = _start_up(tmp_path)
    children = descendants(up.pid)
    assert len(children) >= 5  # gunicorn master + worker, 2 Celery mains + 2 pool processes
    up.send_signal(sig)
    assert up.wait(timeout=60) == 0
    wait_for(lambda: not any(alive(p) for p in children), 30, "every child of convlab up to exit")
    text = log.read_text()
    assert not BAD_LINES.search(text), text


def test_convlab_up_killed_leaves_no_orphans(tmp_path):
    up, _ = _start_up(tmp_path)
    children = descendants(up.pid)
    up.send_signal(signal.SIGKILL)
    up.wait(timeout=30)
    wait_for(lambda: not any(alive(p) for p in children), 30, "the orphans of a killed convlab up to exit")
