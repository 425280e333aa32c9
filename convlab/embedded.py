"""``convlab up``: the whole service on one machine with the embedded defaults.

Migrations, then the API under gunicorn and N Celery worker processes as
children, each in its own process group.  Ctrl-C or SIGTERM stops them all;
a worker that dies is started again (its job is resumed from its checkpoint
by the reaper), the API dying ends everything.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

from .config import Settings
from .processes import serve_argv, worker_argv

STOP_GRACE_S = 10


def _start(argv: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(argv, env=env, start_new_session=True)


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each child's process group, then SIGKILL what is left after the grace period."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_GRACE_S
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)   # also pool processes a dead parent left behind
        except ProcessLookupError:
            pass
        p.wait()


def _wait_healthy(url: str, api: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.poll() is not None:
            raise SystemExit("convlab up: the API process exited during start-up")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("convlab up: the API did not answer /healthz in time")


class _Stop(Exception):
    pass


def up(host: str, port: int, workers: int) -> int:
    import store
    from store.migrate import upgrade

    settings = Settings.from_env()
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    st = store.Store.from_url(settings.database_url)
    token = store.create_token(st, "admin", admin=True)
    st.dispose()

    env = dict(os.environ, CONVLAB_HOME=str(settings.home), CONVLAB_SECRET_KEY=settings.secret_key)
    env.setdefault("CONVLAB_BLAS_THREADS", str(max(1, (os.cpu_count() or 1) // max(workers, 1))))

    def on_signal(signum, _frame):
        raise _Stop(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    api = _start(serve_argv(host, port), env)
    pool = [_start(worker_argv(1, name=f"convlab-{i + 1}@%h"), env) for i in range(workers)]
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    try:
        _wait_healthy(url, api)
        print(f"\nconvlab is up: {url}/  (API {url}/api/v1, {workers} worker(s), home {settings.home})",
              flush=True)
        print(f"admin token (shown once): {token}\n", flush=True)
        while True:
            if api.poll() is not None:
                print("convlab up: the API exited; stopping", file=sys.stderr)
                return 1
            for i, w in enumerate(pool):
                if w.poll() is not None:
                    print(f"convlab up: worker {i + 1} exited ({w.returncode}); starting it again",
                          file=sys.stderr)
                    pool[i] = _start(worker_argv(1, name=f"convlab-{i + 1}@%h"), env)
            time.sleep(0.5)
    except _Stop:
        print("\nconvlab up: stopping", file=sys.stderr)
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop([api, *pool])
