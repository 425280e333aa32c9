"""PostgreSQL and Redis servers of a test's (or a benchmark's) own: own port, own data directory,
listening on an address it chooses, to stop and restart at will and remove at the end.

PostgreSQL runs from the Debian server binaries (``CONVLAB_TEST_PG_BIN``, default
``/usr/lib/postgresql/15/bin``) as the ``postgres`` user (it refuses to run as
root), through ``runuser``; its data directory is under the system temporary
directory, where that user can reach it (pytest's own temp folders are private
to root).  Where that is impossible the caller skips, except under ``CI=true``,
where it fails.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from sqlalchemy import create_engine

from tests.cluster import Cluster, free_port, redis_server_binary, wait_for
from tests.helpers import skip_or_fail

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

    :meth:`start` creates it the first time and starts it; :meth:`stop` stops it
    (a restart is ``stop()`` then ``start()``: the data stays); :meth:`remove`
    stops it and deletes its directory.  ``settings`` are extra ``postgresql.conf``
    lines (``{"name": "value"}``); ``durable=False`` turns fsync off (a throwaway
    test cluster; a benchmark keeps it on).
    """

    def __init__(
        self,
        listen: str = "127.0.0.1",
        trusted: str | None = None,
        durable: bool = True,
        settings: dict[str, str] | None = None,
    ):
        self.listen, self.trusted, self.durable = listen, trusted, durable
        self.settings = dict(settings or {})
        self.port = free_port()
        self.dir: Path | None = None

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def _as_postgres(self, *argv, timeout: float = 120) -> None:
        subprocess.run(
            ["runuser", "-u", PG_USER, "--", *map(str, argv)],
            check=True,
            cwd=self.dir,
            timeout=timeout,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def _create(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="convlab-pg-"))
        shutil.chown(self.dir, PG_USER, PG_USER)
        self._as_postgres(
            PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        conf = {
            "listen_addresses": f"'{self.listen}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.dir}'",
            "max_connections": "200",
        }
        if not self.durable:
            conf.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        conf.update(self.settings)
        with open(self.data / "postgresql.conf", "a") as f:
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())
        if self.trusted:
            with open(self.data / "pg_hba.conf", "a") as f:
                f.write(f"host all all {self.trusted} trust\n")

    def start(self) -> PrivatePostgres:
        """Start the server (creating it the first time); returns when it accepts connections."""
        if self.dir is None:
            self._create()
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-l", self.dir / "server.log", "-w", "-t", "60", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://postgres@{self.listen}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database ``name``; its URL."""
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

    def stop(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data (``fast``: what a restart does; every connection is cut)."""
        if self.dir is not None and (self.data / "postmaster.pid").exists():
            self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def remove(self) -> None:
        """Stop the server if it runs and delete its directory."""
        if self.dir is None:
            return
        try:
            self.stop()
        except subprocess.SubprocessError:
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None


class PrivateRedis:
    """A redis-server of our own on ``bind``:``port``.

    ``directory``: where it keeps its files (default: a temporary directory,
    deleted by :meth:`remove`).  ``persistent``: an append-only file synced on
    every write, so a restart keeps the messages; without it a restart loses them.
    """

    def __init__(self, directory: Path | None = None, *, bind: str = "127.0.0.1", persistent: bool = False):
        self.bind, self.port, self.persistent = bind, free_port(), persistent
        self.own_dir = directory is None
        self.dir = Path(tempfile.mkdtemp(prefix="convlab-redis-")) if directory is None else Path(directory)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.bind}:{self.port}/0"

    def start(self) -> PrivateRedis:
        """Start it; returns when it answers PING."""
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--bind",
                self.bind,
                "--port",
                str(self.port),
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--protected-mode",
                "no",
                "--maxmemory-policy",
                "noeviction",
                *persistence,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._ping, 20, "the private Redis to answer")
        return self

    def _ping(self) -> bool:
        assert self.proc.poll() is None, "redis-server exited"
        try:
            return redis.Redis(host=self.bind, port=self.port, socket_connect_timeout=0.5).ping()
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL); its files stay for a restart."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def remove(self) -> None:
        """Stop it and delete its directory if it made it."""
        self.stop()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def cluster_on(backend: str, home: Path, pg_databases, workers: int = 2) -> Iterator[Cluster]:
    """The API and ``workers`` Celery workers on ``backend``, stopped (and their servers removed) on exit.

    ``"embedded"``: SQLite and the filesystem broker under ``home``; ``"distributed"``: a fresh
    database on the test PostgreSQL (``pg_databases``, the conftest fixture's factory) and a
    private Redis of its own.
    """
    redis_server = None
    if backend == "embedded":
        cluster = Cluster(home, f"sqlite:///{home / 'convlab.db'}")
    else:
        if redis_server_binary() is None:
            skip_or_fail("redis-server is not installed")
        redis_server = PrivateRedis().start()
        cluster = Cluster(home, pg_databases(), redis_server.url)
    try:
        yield cluster.start(workers=workers)
    finally:
        cluster.stop()
        if redis_server is not None:
            redis_server.remove()
