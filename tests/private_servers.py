"""PostgreSQL and Redis servers of a test's (or a benchmark's) own: own port, own data directory,
listening on an address it chooses, removed when stopped.

PostgreSQL runs from the Debian server binaries (``CONVLAB_TEST_PG_BIN``, default
``/usr/lib/postgresql/15/bin``) as the ``postgres`` user (it refuses to run as
root), through ``runuser``; its data directory is under the system temporary
directory, where that user can reach it.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import redis

from tests.cluster import free_port, redis_server_binary, wait_for

PG_BIN = Path(os.environ.get("CONVLAB_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"


def private_postgres_impossible() -> str | None:
    """Why :class:`PrivatePostgres` cannot run here (None: it can)."""
    if not (PG_BIN / "pg_ctl").exists():
        return f"no PostgreSQL server binaries in {PG_BIN} (set CONVLAB_TEST_PG_BIN)"
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "a private PostgreSQL is started as the postgres user: needs root and runuser"
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return f"no {PG_USER!r} user"
    return None


class PrivatePostgres:
    """A PostgreSQL cluster of our own on ``listen``:``port``, trusting ``trusted`` (CIDR) and loopback.

    ``settings`` are extra ``postgresql.conf`` lines (``{"name": "value"}``);
    ``durable=False`` turns fsync off (a throwaway test cluster; a benchmark keeps it on).
    """

    def __init__(self, listen: str = "127.0.0.1", trusted: str | None = None, durable: bool = True,
                 settings: dict[str, str] | None = None):
        self.listen, self.trusted, self.durable = listen, trusted, durable
        self.settings = dict(settings or {})
        self.port = free_port()
        self.dir: Path | None = None

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def _as_postgres(self, *argv: str, timeout: float = 120) -> None:
        subprocess.run(["runuser", "-u", PG_USER, "--", *argv], check=True, cwd=self.dir, timeout=timeout,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def start(self) -> PrivatePostgres:
        """initdb, configure, start; returns when the server accepts connections."""
        self.dir = Path(tempfile.mkdtemp(prefix="convlab-pg-"))
        shutil.chown(self.dir, PG_USER, PG_USER)
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                          "-E", "UTF8", "--no-sync")
        conf = {"listen_addresses": f"'{self.listen}'", "port": str(self.port),
                "unix_socket_directories": f"'{self.dir}'", "max_connections": "200"}
        if not self.durable:
            conf.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        conf.update(self.settings)
        with open(self.data / "postgresql.conf", "a") as f:
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())
        if self.trusted:
            with open(self.data / "pg_hba.conf", "a") as f:
                f.write(f"host all all {self.trusted} trust\n")
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"),
                          "-w", "-t", "60", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://postgres@{self.listen}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database ``name``; its URL."""
        from sqlalchemy import create_engine
        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            admin.dispose()
        return self.url(name)

    def log_tail(self, lines: int = 30) -> str:
        path = self.dir / "server.log" if self.dir else None
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path and path.exists() else ""

    def stop(self) -> None:
        """Stop the server (fast shutdown: clients are disconnected) and delete its directory."""
        if self.dir is None:
            return
        if (self.data / "postmaster.pid").exists():
            try:
                self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60",
                                  "stop")
            except subprocess.SubprocessError:
                self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None


class PrivateRedis:
    """A redis-server of our own on ``bind``:``port``, nothing persisted, removed when stopped."""

    def __init__(self, bind: str = "127.0.0.1"):
        self.bind, self.port = bind, free_port()
        self.dir: Path | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.bind}:{self.port}/0"

    def start(self) -> PrivateRedis:
        """Start it; returns when it answers PING."""
        self.dir = Path(tempfile.mkdtemp(prefix="convlab-redis-"))
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--bind", self.bind, "--port", str(self.port), "--dir", str(self.dir),
             "--save", "", "--appendonly", "no", "--protected-mode", "no", "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._ping, 20, "the private Redis to answer")
        return self

    def _ping(self) -> bool:
        assert self.proc.poll() is None, "redis-server exited"
        try:
            return redis.Redis(host=self.bind, port=self.port, socket_connect_timeout=0.5).ping()
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL) and delete its directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
