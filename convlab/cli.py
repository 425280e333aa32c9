"""The ``convlab`` command (docs/reference/cli.md).  Each subcommand imports what it needs when it runs,
so ``convlab run`` never loads Flask or Celery."""
from __future__ import annotations

import argparse
import sys


def _run(a):
    from .local import run
    return run(a.spec, a.out)


def _up(a):
    from .embedded import up
    return up(a.host, a.port, a.workers)


def _serve(a):
    from .processes import serve
    return serve(a.host, a.port, a.processes)


def _worker(a):
    from .processes import worker
    return worker(a.concurrency)


def _worker_health(a):
    from .processes import worker_health
    return worker_health()


def _db(a):
    from .processes import db_upgrade
    return db_upgrade()


def _token(a):
    from .processes import token_create
    return token_create(a.name, a.admin)


def _submit(a):
    from .client import submit
    return submit(a.spec, a.wait)


def _jobs(a):
    from .client import jobs
    return jobs(a.status, a.limit)


def _status(a):
    from .client import status
    return status(a.id)


def _cancel(a):
    from .client import cancel
    return cancel(a.id)


def _reproduce(a):
    from .trust_cli import reproduce
    return reproduce(a.id, a.wait, a.tolerance)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convlab", description="Train and gradient-check CNNs, as a service.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("up", help="everything on this machine (embedded defaults)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=2)
    s.set_defaults(func=_up)

    s = sub.add_parser("serve", help="the API under gunicorn")
    s.add_argument("--host", default="0.0.0.0")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--processes", type=int, default=2)
    s.set_defaults(func=_serve)

    s = sub.add_parser("worker", help="a Celery worker that runs jobs")
    s.add_argument("--concurrency", type=int, default=1, help="jobs at once (one process each)")
    s.set_defaults(func=_worker)

    s = sub.add_parser("worker-health", help="exit 0 if a worker on this host sends heartbeats (health checks)")
    s.set_defaults(func=_worker_health)

    s = sub.add_parser("db", help="database migrations")
    s.add_argument("action", choices=["upgrade"])
    s.set_defaults(func=_db)

    s = sub.add_parser("token", help="API tokens")
    s.add_argument("action", choices=["create"])
    s.add_argument("name")
    s.add_argument("--admin", action="store_true")
    s.set_defaults(func=_token)

    s = sub.add_parser("run", help="run a job spec in this process (no service)")
    s.add_argument("spec", help="job spec JSON file, or - for stdin")
    s.add_argument("--out", help="directory for weights.npz")
    s.set_defaults(func=_run)

    s = sub.add_parser("submit", help="submit a job spec over HTTP (CONVLAB_URL, CONVLAB_TOKEN)")
    s.add_argument("spec")
    s.add_argument("--wait", action="store_true", help="show progress, then the result")
    s.set_defaults(func=_submit)

    s = sub.add_parser("jobs", help="list jobs")
    s.add_argument("--status")
    s.add_argument("--limit", type=int, default=50)
    s.set_defaults(func=_jobs)

    s = sub.add_parser("status", help="one job")
    s.add_argument("id")
    s.set_defaults(func=_status)

    s = sub.add_parser("cancel", help="cancel a job")
    s.add_argument("id")
    s.set_defaults(func=_cancel)

    s = sub.add_parser("reproduce", help="re-run a job on another worker and certify the two runs agree")
    s.add_argument("id")
    s.add_argument("--wait", action="store_true", help="follow it, then print the certificate (exit 1: diverged)")
    s.add_argument("--tolerance", type=float, help="the certificate's tolerance (default: the server's)")
    s.set_defaults(func=_reproduce)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
