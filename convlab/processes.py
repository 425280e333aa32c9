"""``convlab serve``, ``convlab worker``, ``convlab db upgrade``, ``convlab token create``:
the parts one by one, as docker-compose runs them."""
from __future__ import annotations

import os
import secrets
import sys

from .config import Settings


def serve_argv(host: str, port: int, processes: int = 2, threads: int = 16) -> list[str]:
    """gunicorn with threads: the dashboard's live streams each hold one open request."""
    return [sys.executable, "-m", "gunicorn", "service.wsgi:app",
            "--bind", f"{host}:{port}", "--workers", str(processes),
            "--worker-class", "gthread", "--threads", str(threads),
            "--timeout", "120", "--graceful-timeout", "10",
            "--access-logfile", "-", "--error-logfile", "-"]


def worker_argv(concurrency: int = 1, name: str | None = None, loglevel: str = "INFO") -> list[str]:
    """A real Celery worker; prefork pool, one job per pool process."""
    name = name or f"convlab-{secrets.token_hex(3)}@%h"
    return [sys.executable, "-m", "celery", "-A", "workers.app", "worker",
            "--loglevel", loglevel, "--pool", "prefork", "--concurrency", str(concurrency),
            "--hostname", name, "--queues", "convlab",
            "--without-gossip", "--without-mingle", "--without-heartbeat"]


def serve(host: str, port: int, processes: int) -> int:
    os.execv(sys.executable, serve_argv(host, port, processes))


def worker(concurrency: int) -> int:
    # The cores are shared by the pool's processes: split them unless told otherwise.
    os.environ.setdefault("CONVLAB_BLAS_THREADS", str(max(1, (os.cpu_count() or 1) // max(concurrency, 1))))
    os.execv(sys.executable, worker_argv(concurrency))


def db_upgrade() -> int:
    from migrations.runner import upgrade
    settings = Settings.from_env()
    upgrade(settings.database_url)
    print(f"database at head: {_safe_url(settings.database_url)}", file=sys.stderr)
    return 0


def token_create(name: str, admin: bool) -> int:
    import store
    from migrations.runner import upgrade
    settings = Settings.from_env()
    upgrade(settings.database_url)     # idempotent; a fresh install has no tables yet
    st = store.Store.from_url(settings.database_url)
    try:
        print(store.create_token(st, name, admin=admin))
    finally:
        st.dispose()
    print(f"token for {name!r}{' (admin)' if admin else ''}: shown once, stored hashed", file=sys.stderr)
    return 0


def _safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)
