"""``convlab up``: the whole service on one machine with the embedded defaults.

Migrations, then the API under gunicorn and N Celery worker processes as
children, each in its own process group.  Ctrl-C or SIGTERM stops them all;
a worker that dies is started again (its job is resumed from its checkpoint
by the reaper), the API dying ends everything.

Stopping sends SIGTERM to each child's main process only (gunicorn's master,
Celery's main process), as ``docker stop`` does: each stops its own children.
If ``convlab up`` itself is killed (SIGKILL: no handler runs), the kernel sends
each child SIGTERM (``PR_SET_PDEATHSIG``), so nothing is left behind.  A
death signal rather than a pipe the children watch: the children are gunicorn
and Celery, programs of their own that cannot be taught to watch a pipe, and
the death signal survives their ``exec``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.request

from .config import Settings
from .processes import serve_argv, worker_argv

STOP_GRACE_S = 30  # a running job stops at its next batch and goes back to the queue
RESTART_BACKOFF_S = 5
LOOP_S = 0.1  # how often the supervisor looks at its children and at a stop request
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
UP_TOKEN_LABEL = "convlab up"


def _die_with(parent: int):
    """A ``preexec_fn``: this child gets SIGTERM when ``parent`` dies (Linux; elsewhere a no-op)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # it died before the line above: nobody will tell us
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _start(argv: list[str], env: dict) -> subprocess.Popen:
    # preexec_fn is safe here: this process runs no other thread.
    return subprocess.Popen(argv, env=env, start_new_session=True, preexec_fn=_die_with(os.getpid()))


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each child's main process (it stops its own children), then SIGKILL each child's
    process group if anything is left after the grace period."""
    for p in procs:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
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
            os.killpg(p.pid, signal.SIGKILL)  # also pool processes a dead parent left behind
        except ProcessLookupError:
            pass
        p.wait()


def _wait_healthy(url: str, api: subprocess.Popen, stopping: list, timeout: float = 60) -> bool:
    """True once the API answers /healthz; False if a stop was asked for meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping:
        if api.poll() is not None:
            raise SystemExit("convlab up: the API process exited during start-up")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    if stopping:
        return False
    raise SystemExit("convlab up: the API did not answer /healthz in time")


def up(host: str, port: int, workers: int) -> int:
    import store
    from migrations.runner import upgrade

    settings = Settings.from_env()
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    st = store.Store.from_url(settings.database_url)
    # Rotated: each start replaces the previous start's token (its sessions end), so tokens do not pile up.
    token = store.rotate_token(st, "admin", label=UP_TOKEN_LABEL)
    st.dispose()

    env = dict(os.environ, CONVLAB_HOME=str(settings.home), CONVLAB_SECRET_KEY=settings.secret_key)
    env.setdefault("CONVLAB_BLAS_THREADS", str(max(1, (os.cpu_count() or 1) // max(workers, 1))))

    # The handler only records the signal; the loop below notices it between checks, so a
    # signal can never interrupt a child's start half-way and leave it without an owner.
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, _frame: stopping.append(signum))
    children: list[subprocess.Popen] = []
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    try:
        api = _start(serve_argv(host, port), env)
        children.append(api)
        pool = []
        for i in range(workers):
            pool.append(_start(worker_argv(1, name=f"convlab-{i + 1}@%h"), env))
            children.append(pool[-1])
        if not _wait_healthy(url, api, stopping):
            return 0
        print(f"\nconvlab is up: {url}/  (API {url}/api/v1, {workers} worker(s), home {settings.home})", flush=True)
        print(f"admin token (shown once): {token}\n(a new one replaces it on the next start)\n", flush=True)
        restarts = [0.0] * workers
        while not stopping:
            if api.poll() is not None:
                print("convlab up: the API exited; stopping", file=sys.stderr)
                return 1
            for i, w in enumerate(pool):
                # A worker that keeps dying is restarted at most every RESTART_BACKOFF_S.
                if w.poll() is not None and time.monotonic() - restarts[i] > RESTART_BACKOFF_S:
                    print(f"convlab up: worker {i + 1} exited ({w.returncode}); starting it again", file=sys.stderr)
                    restarts[i] = time.monotonic()
                    pool[i] = _start(worker_argv(1, name=f"convlab-{i + 1}@%h"), env)
                    children.append(pool[i])
            time.sleep(LOOP_S)
        print("\nconvlab up: stopping", file=sys.stderr)
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop(children)
