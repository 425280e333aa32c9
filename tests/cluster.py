"""Real processes for end-to-end tests: the API under gunicorn and Celery workers.

A :class:`Cluster` starts exactly the commands docker-compose and ``convlab up``
run (``convlab serve``, ``convlab worker``), each in its own process group so a
test can ``kill -9`` one, against a database URL and a broker URL it is given.
Waiting is always on a condition with a deadline (:func:`wait_for`), never on
the clock alone.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import store
from convlab.client import Client
from migrations.runner import upgrade

ROOT = Path(__file__).resolve().parents[1]
TERMINAL = ("succeeded", "failed", "cancelled", "pruned")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Cluster:
    """The API and N workers as child processes, sharing one database and one broker."""

    def __init__(self, home: Path, database_url: str, broker_url: str | None = None, **env: str):
        self.home = home
        self.logs = home / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.database_url = database_url
        self.env = dict(os.environ)
        self.env.update(
            {
                "CONVLAB_HOME": str(home),
                "CONVLAB_DATABASE_URL": database_url,
                "CONVLAB_SECRET_KEY": secrets.token_urlsafe(32),
                # Short intervals so that fault tests finish quickly; the logic is the same.
                "CONVLAB_HEARTBEAT_S": "0.3",
                "CONVLAB_STALE_AFTER_S": "3",
                "CONVLAB_WORKER_ALIVE_S": "3",
                "CONVLAB_METRICS_FLUSH_S": "0.2",
                # A checkpoint after every epoch, so that a test can interrupt a job between two.
                "CONVLAB_CHECKPOINT_S": "0",
                "CONVLAB_BLAS_THREADS": "1",
                "PYTHONPATH": str(ROOT),
            }
        )
        if broker_url:
            self.env["CONVLAB_BROKER_URL"] = broker_url
        self.env.update(env)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        upgrade(database_url)
        self.store = store.Store.from_url(database_url)

    # --- processes ---------------------------------------------------------------------------

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
            return subprocess.Popen(
                [sys.executable, "-m", "convlab.cli", *args],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_api(self) -> None:
        self.api = self._spawn("api", "serve", "--host", "127.0.0.1", "--port", str(self.port), "--processes", "1")
        wait_for(self._healthy, 60, "the API to answer /healthz")

    def _healthy(self) -> bool:
        assert self.api.poll() is None, self.log_tail("api")
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def start_worker(self, wait: bool = True) -> subprocess.Popen:
        before = {w["name"] for w in store.live_workers(self.store, 3)}
        proc = self._spawn(f"worker{len(self.workers) + 1}", "worker", "--concurrency", "1")
        self.workers.append(proc)
        if wait:
            wait_for(
                lambda: len({w["name"] for w in store.live_workers(self.store, 3)} - before) >= 1,
                60,
                "a new worker to send heartbeats",
            )
        return proc

    def start(self, workers: int = 2) -> Cluster:
        self.start_api()
        for _ in range(workers):
            self.start_worker()
        return self

    @staticmethod
    def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        """Signal a process and its children (a Celery worker's pool processes)."""
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM each main process (as docker stop does; it stops its own children), SIGKILL leftovers."""
        procs = [p for p in [self.api, *self.workers] if p is not None]
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        self.store.dispose()

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # --- clients -----------------------------------------------------------------------------

    def token(self, name: str = "alice", admin: bool = False) -> str:
        return store.create_token(self.store, name, admin=admin)

    def client(self, token: str | None = None) -> Client:
        return Client(self.url, token or self.token())

    def wait_status(self, client: Client, job_id: str, statuses=TERMINAL, timeout: float = 120) -> dict:
        def check():
            job = client.request("GET", f"/jobs/{job_id}")
            return job if job["status"] in statuses else None

        try:
            return wait_for(check, timeout, f"job {job_id} to reach {statuses}", interval=0.1)
        except AssertionError:
            print(
                self.log_tail("api"),
                *[self.log_tail(f"worker{i + 1}") for i in range(len(self.workers))],
                sep="\n----\n",
            )
            raise


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def start_convlab_up(tmp_path: Path, workers: int = 2) -> tuple[subprocess.Popen, Path, str, str]:
    """`convlab up` on a fresh home under ``tmp_path`` (embedded defaults, short heartbeats), as a user runs it.

    Returns the process, its log, the API's URL and the admin token it printed, once the token is
    printed and ``workers`` workers are live.
    """
    port = free_port()
    env = dict(
        os.environ,
        CONVLAB_HOME=str(tmp_path / "home"),
        PYTHONPATH=str(ROOT),
        CONVLAB_HEARTBEAT_S="0.3",
        CONVLAB_WORKER_ALIVE_S="3",
    )
    for key in ("CONVLAB_DATABASE_URL", "CONVLAB_BROKER_URL", "CONVLAB_SECRET_KEY"):
        env.pop(key, None)
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "convlab.cli", "up", "--port", str(port), "--workers", str(workers)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        token = wait_for(
            lambda: (re.search(r"admin token \(shown once\): (\S+)", log.read_text()) or [None, None])[1],
            90,
            "convlab up to print its admin token",
        )
        client = Client(url, token)
        wait_for(lambda: len(client.request("GET", "/workers")["workers"]) == workers, 60, "the workers")
    except BaseException:
        up.terminate()  # never left running behind a failed start: it stops its children on SIGTERM
        up.wait()
        raise
    return up, log, url, token
