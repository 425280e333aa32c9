"""Wake-up semantics with real processes on the embedded default (SQLite + the filesystem broker).

A broker message only says "work is available": a lost or unreadable one is
replaced by the monitors' sweep, a duplicate finds nothing to claim.  And the
reaper's rule that makes attempts count lost workers, not lost databases, and the
runner's patience with an unreachable database (in-process).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

import store
import workers.monitor
from convlab.config import Settings
from engine import validate_job_spec
from store.models import Job, utcnow
from tests.cluster import Cluster, wait_for
from tests.helpers import local_worker_env, tiny_train_spec
from workers.celery_app import make_celery, pending_wakeups, publish_wakeups
from workers.monitor import Monitor


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path / "home", f"sqlite:///{tmp_path / 'home' / 'convlab.db'}")
    yield c
    c.stop()


def _celery(cluster: Cluster):
    return make_celery(
        Settings(home=cluster.home, database_url=cluster.database_url, broker_url="filesystem://", secret_key="k")
    )


def _steps(client, job_id: str) -> list[int]:
    return [s for s, _ in client.request("GET", f"/jobs/{job_id}/metrics")["series"]["train_loss"]]


@pytest.mark.processes
@pytest.mark.processes
def test_a_lost_or_unreadable_message_costs_a_sweep_not_the_job(cluster):
    """Submitted while no worker runs; its message is then lost, and an unreadable file sits first
    in the queue. A worker started afterwards runs the job anyway and sets the file aside."""
    cluster.start_api()
    client = cluster.client()
    job = client.request("POST", "/jobs", tiny_train_spec(epochs=1))
    queue = cluster.home / "broker" / "queue"
    messages = list(queue.glob("*.msg"))
    assert len(messages) == 1
    messages[0].unlink()  # the message is lost
    (queue / "00000000000000000000_unreadable.convlab.msg").write_bytes(b"")  # what kombu #1551 leaves

    cluster.start_worker()
    done = cluster.wait_status(client, job["id"], timeout=60)
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert _steps(client, job["id"]) == list(range(1, done["progress"]["total_steps"] + 1))
    assert [p.name for p in (cluster.home / "broker" / "claimed").iterdir()] == [
        "00000000000000000000_unreadable.convlab.msg.bad"
    ]


@pytest.mark.processes
@pytest.mark.processes
def test_duplicate_wake_ups_run_the_job_once(cluster):
    """Five wake-ups for one queued job: it runs once (one attempt, no duplicate metric point),
    and the other four find nothing and are consumed."""
    cluster.start_api()
    client = cluster.client()
    job = client.request("POST", "/jobs", tiny_train_spec(epochs=2))
    app = _celery(cluster)
    publish_wakeups(app, 4)
    assert pending_wakeups(app) == 5

    cluster.start_worker()
    done = cluster.wait_status(client, job["id"], timeout=60)
    wait_for(lambda: pending_wakeups(app) == 0, 30, "every wake-up to be consumed")
    wait_for(
        lambda: cluster.log_tail("worker1", 400).count("woken up, but no job is queued") == 4,
        30,
        "the four extra wake-ups to find nothing",
    )
    again = client.request("GET", f"/jobs/{job['id']}")
    assert again["status"] == "succeeded" and again["attempts"] == 1 and again["finished_at"] == done["finished_at"]
    assert _steps(client, job["id"]) == list(range(1, done["progress"]["total_steps"] + 1))


def test_the_reaper_waits_a_stale_period_after_a_database_outage(tmp_path, monkeypatch):
    """After its own database calls failed, a monitor reaps only once the database has answered
    for a whole stale period: live workers have had time to heartbeat, so an outage is not
    taken for a lost worker."""
    url = f"sqlite:///{tmp_path / 'convlab.db'}"
    from migrations.runner import upgrade

    upgrade(url)
    st = store.Store.from_url(url)
    settings = Settings(
        home=tmp_path, database_url=url, broker_url="filesystem://", secret_key="k", heartbeat_s=1.0, stale_after_s=30.0
    )
    user = store.authenticate(st, store.create_token(st, "alice"))
    job = store.create_job(st, user.id, validate_job_spec(tiny_train_spec()))
    store.claim_job(st, job["id"], "silent:1")
    with st.session() as s:
        s.execute(update(Job).where(Job.id == job["id"]).values(heartbeat_at=utcnow() - timedelta(seconds=60)))

    clock = [time.monotonic()]
    monkeypatch.setattr(workers.monitor.time, "monotonic", lambda: clock[0])
    monitor = Monitor(st, settings, "me:1")
    real_beat = store.worker_heartbeat

    def unreachable(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("database restarting"))

    monkeypatch.setattr(store, "worker_heartbeat", unreachable)
    monitor.tick()
    assert not monitor.may_reap

    monkeypatch.setattr(store, "worker_heartbeat", real_beat)
    clock[0] += 1.0
    monitor.tick()  # the database answers again
    clock[0] += settings.stale_after_s - 1.0
    monitor.tick()
    assert store.get_job(st, job["id"], None)["status"] == "running"  # not yet a whole stale period

    clock[0] += 1.0
    assert monitor.may_reap
    monitor.tick()
    assert store.get_job(st, job["id"], None)["status"] == "queued"  # now the silent worker is lost
    st.dispose()


def _unreachable(*args, **kwargs):
    raise OperationalError("SELECT 1", {}, ConnectionRefusedError("database restarting"))


@pytest.fixture
def local(tmp_path):
    """A migrated SQLite store, settings with a short heartbeat, and a user."""
    st, settings, user = local_worker_env(tmp_path, heartbeat_s=0.2, stale_after_s=1.0)
    yield st, settings, user
    st.dispose()


def test_a_worker_waits_out_an_outage_with_its_job_and_counts_no_attempt(local, monkeypatch):
    """Progress and metric writes fail for a while (the database is restarting): the job waits,
    then finishes with one attempt, every metric point written once, nothing handed back."""
    from workers.runner import JobRunner

    st, settings, user = local
    job = store.create_job(st, user.id, validate_job_spec(tiny_train_spec(epochs=2)))
    failures = {"update_progress": 3, "record_metrics": 3}
    for name in failures:
        real = getattr(store, name)

        def flaky(*args, _name=name, _real=real, **kwargs):
            if failures[_name] > 0:
                failures[_name] -= 1
                _unreachable()
            return _real(*args, **kwargs)

        monkeypatch.setattr(store, name, flaky)

    assert JobRunner(st, settings, "me:1").run_next() == "succeeded"
    assert failures == {"update_progress": 0, "record_metrics": 0}
    done = store.get_job(st, job["id"], None)
    assert done["status"] == "succeeded" and done["attempts"] == 1
    steps = [s for s, _ in store.get_metrics(st, job["id"])["train_loss"]]
    assert steps == list(range(1, done["progress"]["total_steps"] + 1))


def test_a_worker_stopping_before_the_database_answers_gives_its_wake_up_back(local, monkeypatch):
    """Asked to stop while its claim cannot reach the database: it gives up with Interrupted (the task
    then rejects its message back to the broker) and has claimed nothing."""
    from workers.retry import Interrupted
    from workers.runner import JobRunner

    st, settings, user = local
    job = store.create_job(st, user.id, validate_job_spec(tiny_train_spec()))
    monitor = Monitor(st, settings, "me:1")
    tries = []

    def down(*args, **kwargs):
        tries.append(1)
        if len(tries) == 3:
            monitor.stop_for_shutdown()  # SIGTERM arrives during the outage
        _unreachable()

    monkeypatch.setattr(store, "claim_next_job", down)
    with pytest.raises(Interrupted):
        JobRunner(st, settings, "me:1", monitor).run_next()
    assert len(tries) == 3
    assert store.get_job(st, job["id"], None)["status"] == "queued"
