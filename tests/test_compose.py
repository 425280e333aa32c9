"""docker-compose.yml: valid, shaped for scaling, and running the commands the process tests run.

No Docker engine runs here, so the file is validated with Debian's
docker-compose (``config -q``) and its commands are started as plain
processes against real Redis and PostgreSQL (here: `convlab db upgrade`; the
API and the workers in tests/test_e2e.py's distributed case and tests/test_faults.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from migrations.runner import current
from tests.cluster import Cluster, free_port, wait_for
from tests.helpers import skip_or_fail

pytestmark = pytest.mark.processes  # docker-compose and the CLI as child processes

ROOT = Path(__file__).resolve().parents[1]


def compose_config() -> dict:
    exe = shutil.which("docker-compose")
    if exe is None:
        skip_or_fail("docker-compose is not installed (scripts/services.sh installs it)")
    env = dict(os.environ, CONVLAB_SECRET_KEY="test-secret")
    quiet = subprocess.run([exe, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert quiet.returncode == 0, quiet.stderr
    out = subprocess.run([exe, "config"], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    return yaml.safe_load(out)  # the file as compose resolved it (anchors merged, defaults filled)


def test_compose_file_is_valid_and_scalable():
    cfg = compose_config()
    services = cfg["services"]
    assert set(services) == {"api", "worker", "redis", "postgres", "migrate"}
    worker = services["worker"]
    # --scale worker=N needs a service without a fixed name or host port.
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"][:2] == ["convlab", "worker"]
    assert services["api"]["command"][:2] == ["convlab", "serve"]
    assert services["migrate"]["command"] == ["convlab", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        env = services[name]["environment"]
        assert env["CONVLAB_BROKER_URL"].startswith("redis://")
        assert env["CONVLAB_DATABASE_URL"].startswith("postgresql+psycopg://")
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--maxmemory-policy noeviction" in redis_cmd and "--appendonly yes" in redis_cmd
    assert "healthcheck" in services["postgres"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_requires_a_secret_key():
    exe = shutil.which("docker-compose")
    if exe is None:
        skip_or_fail("docker-compose is not installed (scripts/services.sh installs it)")
    env = {k: v for k, v in os.environ.items() if k != "CONVLAB_SECRET_KEY"}
    proc = subprocess.run([exe, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "CONVLAB_SECRET_KEY" in proc.stderr


def test_migrate_command_as_a_process(pg_databases):
    """The `migrate` service's command, run as a process against a fresh PostgreSQL database."""
    url = pg_databases()
    env = dict(os.environ, CONVLAB_DATABASE_URL=url, CONVLAB_SECRET_KEY="x", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "convlab.cli", "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert current(url) is not None
    again = subprocess.run(
        [sys.executable, "-m", "convlab.cli", "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0  # idempotent: compose runs it on every `up`


def test_token_command_prints_a_working_token(tmp_path):
    """`convlab token create NAME --admin` prints one token that the API accepts."""
    c = Cluster(tmp_path, f"sqlite:///{tmp_path / 'convlab.db'}")
    try:
        c.start_api()
        proc = subprocess.run(
            [sys.executable, "-m", "convlab.cli", "token", "create", "carol", "--admin"],
            env=c.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        token = proc.stdout.strip()
        assert token.startswith("cl_") and len(proc.stdout.strip().splitlines()) == 1
        assert "shown once" in proc.stderr
        assert c.client(token).request("GET", "/jobs")["total"] == 0
    finally:
        c.stop()


def test_each_service_has_a_health_check_that_means_something_for_it():
    """The image's HEALTHCHECK probes the API port; a worker or the migrate job must not inherit it."""
    services = compose_config()["services"]
    api = " ".join(services["api"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/healthz" in api
    assert services["worker"]["healthcheck"]["test"] == ["CMD", "convlab", "worker-health"]
    assert "8000" not in " ".join(services["worker"]["healthcheck"]["test"])
    migrate = services["migrate"]["healthcheck"]  # compose 1.x spells `disable: true` as test: [NONE]
    assert migrate.get("disable") is True or migrate.get("test") == ["NONE"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile


def _worker_health(env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "convlab.cli", "worker-health"], env=env, capture_output=True, text=True, timeout=60
    )


def test_worker_health_command_against_a_real_worker(tmp_path):
    """The worker service's health command as a process: healthy with a worker on this host, not without."""
    c = Cluster(tmp_path, f"sqlite:///{tmp_path / 'convlab.db'}")
    try:
        none = _worker_health(c.env)
        assert none.returncode == 1 and "unhealthy" in none.stderr
        worker = c.start_worker()
        ok = _worker_health(c.env)
        assert ok.returncode == 0, ok.stderr
        assert "healthy" in ok.stdout
        c.kill(worker)  # SIGKILL: no goodbye, the row just goes stale
        wait_for(lambda: _worker_health(c.env).returncode == 1, 30, "the health check to notice the dead worker")
    finally:
        c.stop()


def test_worker_health_is_unhealthy_when_the_database_is_unreachable(tmp_path):
    env = dict(
        os.environ,
        CONVLAB_DATABASE_URL=f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none",
        CONVLAB_SECRET_KEY="x",
        PYTHONPATH=str(ROOT),
    )
    proc = _worker_health(env)
    assert proc.returncode == 1 and "database" in proc.stderr and "Traceback" not in proc.stderr
