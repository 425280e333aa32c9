"""``convlab serve``, ``convlab worker``, ``convlab db upgrade``, ``convlab token create|list|revoke``:
the parts one by one, as docker-compose runs them."""

from __future__ import annotations

import os
import secrets
import sys

from .config import Settings


def serve_argv(host: str, port: int, processes: int = 2, threads: int = 16) -> list[str]:
    """gunicorn with threads: the dashboard's live streams each hold one open request."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "service.wsgi:app",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(processes),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--timeout",
        "120",
        "--graceful-timeout",
        "10",
        "--access-logfile",
        "-",
        "--error-logfile",
        "-",
    ]


def worker_argv(concurrency: int = 1, name: str | None = None, loglevel: str = "INFO") -> list[str]:
    """A real Celery worker; prefork pool, one job per pool process."""
    name = name or f"convlab-{secrets.token_hex(3)}@%h"
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "worker",
        "--loglevel",
        loglevel,
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--hostname",
        name,
        "--queues",
        "convlab",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


def serve(host: str, port: int, processes: int) -> int:
    os.execv(sys.executable, serve_argv(host, port, processes))


def worker(concurrency: int) -> int:
    # The cores are shared by the pool's processes: split them unless told otherwise.
    os.environ.setdefault("CONVLAB_BLAS_THREADS", str(max(1, (os.cpu_count() or 1) // max(concurrency, 1))))
    os.execv(sys.executable, worker_argv(concurrency))


def worker_health() -> int:
    """A worker container's health check: 0 if a worker process of this host is alive and heartbeating.

    Each pool process writes its heartbeat row (``host:pid``) every
    ``CONVLAB_HEARTBEAT_S`` from its monitor thread, and stops when its main
    process stops consuming (it exits, or dies).  Healthy means: a row of this
    host, fresher than ``CONVLAB_WORKER_ALIVE_S``, whose process runs here.
    """
    import socket

    import store

    settings = Settings.from_env()
    st = store.Store.from_url(settings.database_url)
    try:
        workers = store.live_workers(st, settings.worker_alive_s)
    except Exception as exc:  # noqa: BLE001 - unreachable database: this worker cannot work either
        print(f"unhealthy: the database does not answer ({type(exc).__name__})", file=sys.stderr)
        return 1
    finally:
        st.dispose()
    host = socket.gethostname()
    mine = [w for w in workers if w["name"].rsplit(":", 1)[0] == host and _running(int(w["name"].rsplit(":", 1)[1]))]
    if not mine:
        print(
            f"unhealthy: no worker process on {host} sent a heartbeat in the last {settings.worker_alive_s:g} s",
            file=sys.stderr,
        )
        return 1
    print(f"healthy: {', '.join(w['name'] for w in mine)}")
    return 0


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists here (a row may come from a process that just died)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def db_upgrade() -> int:
    from migrations.runner import upgrade

    settings = Settings.from_env()
    upgrade(settings.database_url)
    print(f"database at head: {_safe_url(settings.database_url)}", file=sys.stderr)
    return 0


def _token_store():
    """The store of this deployment, migrated (idempotent; a fresh install has no tables yet)."""
    import store
    from migrations.runner import upgrade

    settings = Settings.from_env()
    upgrade(settings.database_url)
    return store.Store.from_url(settings.database_url)


def token_create(name: str, admin: bool, expires_in=None) -> int:
    """``convlab token create NAME [--admin] [--expires-in D]``: print a new token (shown once)."""
    import store

    st = _token_store()
    try:
        try:
            print(store.create_token(st, name, admin=admin, expires_in=expires_in))
        except ValueError as exc:
            print(f"convlab token create: {exc}", file=sys.stderr)
            return 2
    finally:
        st.dispose()
    until = f", expires in {expires_in}" if expires_in else ""
    print(f"token for {name!r}{' (admin)' if admin else ''}: shown once, stored hashed{until}", file=sys.stderr)
    return 0


def token_list() -> int:
    """``convlab token list``: every token, one line each (never the token itself)."""
    import store

    st = _token_store()
    try:
        tokens = store.list_tokens(st)
    finally:
        st.dispose()
    print(f"{'ID':>4}  {'USER':<16} {'PREFIX':<12} {'STATE':<8} {'EXPIRES':<20} {'LAST USED':<20} LABEL")
    for t in tokens:
        print(
            f"{t['id']:>4}  {t['user'][:16]:<16} {t['prefix']:<12} {t['state']:<8} "
            f"{(t['expires_at'] or '-')[:19]:<20} {(t['last_used_at'] or '-')[:19]:<20} {t['label'] or ''}"
        )
    return 0


def token_revoke(which: str) -> int:
    """``convlab token revoke ID|PREFIX|NAME``: revoke at once; 1 if nothing matched."""
    import store

    st = _token_store()
    try:
        revoked = store.revoke_tokens(st, which)
    finally:
        st.dispose()
    if not revoked:
        print(f"convlab token revoke: no active token matches {which!r}", file=sys.stderr)
        return 1
    for t in revoked:
        print(f"revoked token {t['id']} ({t['prefix']}..., user {t['user']})")
    return 0


def _safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
