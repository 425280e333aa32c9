"""PostgreSQL and Redis servers of a test's own (own port, own data directory), to stop and restart at will.

PostgreSQL runs from the distribution's binaries as the ``postgres`` user
(``runuser``), in a directory under the system temp folder handed to that user
(pytest's own temp folders are private to root).  Where that is impossible
the caller skips, except under ``CI=true``, where it fails.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import redis
from sqlalchemy import create_engine

from tests.cluster import free_port, redis_server_binary, wait_for

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def private_postgres_unavailable() -> str | None:
    """Why a private PostgreSQL cannot run here (None: it can)."""
    if not (PG_BIN / "pg_ctl").exists():
        return f"no PostgreSQL binaries in {PG_BIN}"
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "starting PostgreSQL as the postgres user needs root and runuser"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "there is no postgres user"
    return None


class PrivatePostgres:
    """``initdb`` once, then :meth:`start` / :meth:`stop` as often as a test likes; :meth:`remove` at the end."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="convlab-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self._run(PG_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, *args) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *map(str, args)], check=True, cwd=self.dir,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/convlab"

    def start(self) -> None:
        """Start the server and wait until it accepts connections (creating the database the first time)."""
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off -c max_connections=200")
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-l", self.dir / "server.log", "-o", options, "-w", "-t", "60",
                  "start")
        admin = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres",
                              isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                if conn.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = 'convlab'").first() is None:
                    conn.exec_driver_sql("CREATE DATABASE convlab")
        finally:
            admin.dispose()

    def stop(self, mode: str = "fast") -> None:
        """Stop it (``fast``: what a restart does; every connection is cut)."""
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def remove(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass                                   # not running
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A redis-server of our own. ``persistent=False``: a restart loses every message on it."""

    def __init__(self, directory: Path, persistent: bool = True) -> None:
        self.dir, self.port, self.persistent = directory, free_port(), persistent
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "", "--maxmemory-policy", "noeviction", *persistence],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._ping, 20, "the private Redis to answer")

    def _ping(self) -> bool:
        try:
            return redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
