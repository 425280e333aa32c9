"""A PostgreSQL server of the test's own (own port, own data directory) that a test may stop and start.

The shared server at 5432 must never be restarted by a test; this one is made
with ``initdb`` and run with ``pg_ctl`` as the ``postgres`` user (PostgreSQL
refuses to run as root), in a directory that user owns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.cluster import free_port

BIN = Path(os.environ.get("CONVLAB_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _unavailable(reason: str) -> None:
    """Skip, except under CI=true where the test must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


class PrivatePostgres:
    """``start()``, ``stop()``, ``url``; ``close()`` stops it and removes its files."""

    def __init__(self) -> None:
        """initdb a fresh cluster (trust auth, listening on 127.0.0.1 only); not started yet."""
        if not (BIN / "pg_ctl").exists():
            _unavailable(f"PostgreSQL binaries not found in {BIN}")
        try:
            self.user = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("no 'postgres' user to run a private PostgreSQL")
        self.root = Path(tempfile.mkdtemp(prefix="convlab-pg-"))
        os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._run(BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def _run(self, *argv) -> None:
        as_postgres = [] if os.geteuid() == self.user.pw_uid else ["runuser", "-u", "postgres", "--"]
        proc = subprocess.run(
            [*as_postgres, *map(str, argv)], capture_output=True, text=True, timeout=120, cwd=self.root
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {proc.stdout}{proc.stderr}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(BIN / "pg_ctl", "-D", self.data, "-o", options, "-l", self.root / "server.log", "-w", "start")

    def stop(self) -> None:
        """Stop the server now (``-m fast``: open connections are cut, as in a restart)."""
        self._run(BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def close(self) -> None:
        """Stop the server if it runs and delete its files."""
        if (self.data / "postmaster.pid").exists():
            try:
                self._run(BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
            except RuntimeError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)
