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
    from . import processes

    if a.action == "create":
        return processes.token_create(a.name, a.admin, a.expires_in)
    if a.action == "list":
        return processes.token_list()
    return processes.token_revoke(a.name)


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


def _summary(a):
    from .client import summary

    return summary(a.spec, a.api, a.json)


def _duration(text: str):
    """``30d``, ``12h``, ``90m``, ``3600s`` or ``2w`` as a timedelta (argparse reports a bad one)."""
    from datetime import timedelta

    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    number, unit = text[:-1], text[-1:].lower()
    if unit not in units or not number.isdigit() or int(number) == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a positive number and a unit s, m, h, d or w, e.g. 30d or 12h"
        )
    try:
        return timedelta(**{units[unit]: int(number)})
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text!r} is too long") from None


def _study(a):
    from . import study_cli

    if a.action == "create":
        return study_cli.create(a.target, a.wait)
    if a.action == "status":
        return study_cli.status(a.target, a.json)
    return study_cli.cancel(a.target)


def _delete(a):
    from .client import delete

    return delete(a.id, a.dataset)


def _user_limits(a):
    from .client import user_limits

    values = {k: getattr(a, k) for k in ("max_running", "max_queued", "max_compute", "max_storage")}
    return user_limits(a.name, {k: v for k, v in values.items() if v is not None}, a.clear)


def _optional(kind):
    """An argparse type: ``kind``, or None for ``none`` (back to the deployment's default)."""

    def parse(text: str):
        return "none" if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__
    return parse


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

    s = sub.add_parser("token", help="API tokens: create NAME, list, revoke ID|PREFIX|NAME")
    s.add_argument("action", choices=["create", "list", "revoke"])
    s.add_argument(
        "name",
        nargs="?",
        help="create: the user; revoke: a token id, a token prefix (cl_...) or a user name (all of that user's tokens)",
    )
    s.add_argument("--admin", action="store_true")
    s.add_argument(
        "--expires-in",
        type=_duration,
        metavar="DURATION",
        help="create: the token stops working after this long, e.g. 30d, 12h, 90m",
    )
    s.set_defaults(func=_token)

    s = sub.add_parser("run", help="run a job spec in this process (no service)")
    s.add_argument("spec", help="job spec JSON file, or - for stdin")
    s.add_argument("--out", help="directory for weights.npz")
    s.set_defaults(func=_run)

    s = sub.add_parser("summary", help="a job spec's model summary: shapes, parameters, multiply-adds, memory")
    s.add_argument("spec", help="job spec JSON file, or - for stdin")
    s.add_argument(
        "--api",
        action="store_true",
        help="ask the service (CONVLAB_URL, CONVLAB_TOKEN): its limits and your uploaded datasets",
    )
    s.add_argument("--json", action="store_true", help="the summary as JSON (as POST /api/v1/specs/summary)")
    s.set_defaults(func=_summary)

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

    s = sub.add_parser("study", help="hyperparameter studies: create STUDY.json, status ID, cancel ID")
    s.add_argument("action", choices=["create", "status", "cancel"])
    s.add_argument("target", help="the study JSON file (create; - for stdin) or the study id")
    s.add_argument("--wait", action="store_true", help="create: follow the study to its end, then summarise")
    s.add_argument("--json", action="store_true", help="status: the whole answer as JSON")
    s.set_defaults(func=_study)

    s = sub.add_parser("delete", help="delete a job (or --dataset: an uploaded dataset) with all it holds")
    s.add_argument("id")
    s.add_argument("--dataset", action="store_true", help="ID is an uploaded dataset's")
    s.set_defaults(func=_delete)

    s = sub.add_parser("user", help="users (admins: their limits)")
    user = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = user.add_parser("limits", help="show a user's limits; with options, set them (admins only)")
    s.add_argument("name")
    s.add_argument("--max-running", type=_optional(int), help="jobs running at once (none: the default)")
    s.add_argument("--max-queued", type=_optional(int), help="jobs queued at once")
    s.add_argument("--max-compute", type=_optional(float), help="estimated floating-point operations per job")
    s.add_argument("--max-storage", type=_optional(int), help="bytes of artifacts, datasets and metric points")
    s.add_argument("--clear", action="store_true", help="remove every override (back to the defaults)")
    s.set_defaults(func=_user_limits)

    s = sub.add_parser("reproduce", help="re-run a job on another worker and certify the two runs agree")
    s.add_argument("id")
    s.add_argument("--wait", action="store_true", help="follow it, then print the certificate (exit 1: diverged)")
    s.add_argument("--tolerance", type=float, help="the certificate's tolerance (default: the server's)")
    s.set_defaults(func=_reproduce)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "token" and args.action in ("create", "revoke") and not args.name:
        parser.error(f"token {args.action} needs a NAME")
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
