"""The ``convlab`` command (SPEC §4).  Each subcommand imports what it needs when it runs,
so ``convlab run`` never loads Flask or Celery."""
from __future__ import annotations

import argparse
import sys


def _run(args) -> int:
    from .local import run
    return run(args.spec, args.out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convlab", description="Train and gradient-check CNNs.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a job spec in this process (no service)")
    run.add_argument("spec", help="job spec JSON file, or - for stdin")
    run.add_argument("--out", help="directory for weights.npz")
    run.set_defaults(func=_run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
