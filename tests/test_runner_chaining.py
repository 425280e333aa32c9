"""The worker's per-job costs, in process (the real workers: tests/test_studies_cluster.py, test_faults.py):
one wake-up runs the queued jobs one after another within its bound, checkpoints are saved on a time
basis and when a job stops early, progress ends where the job ended, uploads are loaded once per
process, and a study's top-up wakes no one for the trial its worker takes itself."""

from __future__ import annotations

import dataclasses
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest

import store
import workers.runner as runner_module
from convlab.names import CHECKPOINT
from convlab.studies.space import validate_study
from convlab.studies.trials import plan, spec_maker
from engine.datasets import Dataset
from engine.spec import validate_job_spec
from tests.helpers import local_worker_env, tiny_train_spec
from workers.dataset_cache import DatasetCache
from workers.monitor import Monitor
from workers.phases import ORDER, PhaseTimes, parse
from workers.runner import Checkpoints, JobRunner


@pytest.fixture
def local(tmp_path):
    """A migrated SQLite store, settings (checkpoints on a time basis, long), and a user."""
    st, settings, user = local_worker_env(tmp_path, checkpoint_s=3600, blas_threads=1)
    yield st, settings, user
    st.dispose()


def _submit(st, user, spec) -> str:
    return store.create_job(st, user.id, validate_job_spec(spec))["id"]


def test_one_wake_up_runs_the_queued_jobs_one_after_another(local):
    st, settings, user = local
    ids = [_submit(st, user, tiny_train_spec(epochs=2, seed=s)) for s in range(3)]
    assert JobRunner(st, settings, "me:1").run_wakeup() == 3
    for job_id in ids:
        done = store.get_job(st, job_id, None)
        assert done["status"] == "succeeded" and done["attempts"] == 1
        # Progress is written at most every 0.25 s; the last value goes with the finish.
        assert done["progress"]["epoch"] == 2
        assert done["progress"]["step"] == done["progress"]["total_steps"] > 0


def test_chaining_stops_at_its_bound_and_when_the_process_stops(local):
    st, settings, user = local
    ids = [_submit(st, user, tiny_train_spec(epochs=1, seed=s)) for s in range(3)]
    assert JobRunner(st, dataclasses.replace(settings, chain_s=0), "me:1").run_wakeup() == 1
    stopping = JobRunner(st, settings, "me:2")
    stopping.shutting_down.set()  # SIGTERM: the job claimed runs (no monitor here), no further one is claimed
    assert stopping.run_wakeup() == 1
    assert [store.get_job(st, i, None)["status"] for i in ids] == ["succeeded", "succeeded", "queued"]


def test_a_claim_that_finds_nothing_ends_the_chain_quietly(local, caplog):
    st, settings, user = local
    _submit(st, user, tiny_train_spec(epochs=1))
    with caplog.at_level("INFO", logger="workers.runner"):
        assert JobRunner(st, settings, "me:1").run_wakeup() == 1
    # Only a wake-up that found nothing says so (tests/test_wakeups.py counts those lines).
    assert "no job is queued" not in caplog.text


class _Recorder:
    def __init__(self):
        self.events: list = []

    def flush(self):
        self.events.append("flush")

    def save(self, blob):
        self.events.append(("save", blob))


def test_checkpoints_are_held_until_their_time_and_saved_when_the_job_stops_early():
    r = _Recorder()
    cp = Checkpoints(r.save, r, every_s=3600, times=PhaseTimes())
    cp.offer(b"epoch1")
    cp.offer(b"epoch2")
    assert r.events == []  # not yet time
    cp.save_pending()
    cp.save_pending()  # once
    assert r.events == ["flush", ("save", b"epoch2")]  # the newest, after the points before it
    cp.offer(b"epoch3", now=True)
    assert r.events[-2:] == ["flush", ("save", b"epoch3")]

    every = _Recorder()
    cp = Checkpoints(every.save, every, every_s=0, times=PhaseTimes())
    cp.offer(b"a")
    cp.offer(b"b")
    assert every.events == ["flush", ("save", b"a"), "flush", ("save", b"b")]


def test_a_short_job_writes_no_checkpoint_unless_asked_every_epoch(local):
    st, settings, user = local
    held = _submit(st, user, tiny_train_spec(epochs=2))
    assert JobRunner(st, settings, "me:1").run_next() == "succeeded"
    assert store.load_artifact(st, held, CHECKPOINT) is None
    every = _submit(st, user, tiny_train_spec(epochs=2))
    assert JobRunner(st, dataclasses.replace(settings, checkpoint_s=0), "me:1").run_next() == "succeeded"
    assert _checkpoint_epoch(st, every) == 2


def _checkpoint_epoch(st, job_id) -> int:
    with np.load(io.BytesIO(store.load_artifact(st, job_id, CHECKPOINT)), allow_pickle=False) as z:
        return json.loads(z["meta"].tobytes().decode())["epoch"]


def test_a_job_stopped_for_shutdown_saves_its_held_checkpoint_and_resumes_exactly(local, monkeypatch):
    """SIGTERM after the first epoch, whose checkpoint the time rule held back: it is saved with the
    hand-back, and the resumed run ends with the uninterrupted run's numbers."""
    st, settings, user = local
    spec = tiny_train_spec(epochs=3)
    job_id = _submit(st, user, spec)
    monitor = Monitor(st, settings, "me:1")  # not started: only its stop flag is used
    real_run_job = runner_module.run_job

    def sigterm_after_first_epoch(spec, hooks, **kw):
        offer = hooks.on_checkpoint

        def on_checkpoint(blob, epoch):
            offer(blob, epoch)
            if epoch == 1:
                monitor.stop_for_shutdown()

        return real_run_job(spec, dataclasses.replace(hooks, on_checkpoint=on_checkpoint), **kw)

    monkeypatch.setattr(runner_module, "run_job", sigterm_after_first_epoch)
    assert JobRunner(st, settings, "me:1", monitor).run_wakeup() == 1
    handed_back = store.get_job(st, job_id, None)
    assert handed_back["status"] == "queued" and handed_back["attempts"] == 0
    assert _checkpoint_epoch(st, job_id) == 1

    monkeypatch.setattr(runner_module, "run_job", real_run_job)
    assert JobRunner(st, settings, "me:2").run_next() == "succeeded"
    done = store.get_job(st, job_id, None)
    assert done["attempts"] == 1
    # The same spec run through without a stop, in this process (same BLAS threads).
    uninterrupted = _submit(st, user, spec)
    assert JobRunner(st, settings, "me:3").run_next() == "succeeded"
    reference = store.get_job(st, uninterrupted, None)["result"]
    for key in ("test_accuracy", "test_loss", "confusion_matrix", "val_loss"):
        assert done["result"][key] == reference[key]
    steps = [s for s, _ in store.get_metrics(st, job_id)["train_loss"]]
    assert steps == list(range(1, done["progress"]["total_steps"] + 1))


def test_the_dataset_cache_keeps_recent_uploads_within_its_bytes():
    def ds(n):
        return Dataset(X=np.zeros((n, 1, 2, 2)), y=np.zeros(n, dtype=np.int64), classes=1, name="d")

    one = DatasetCache.size(ds(10))
    cache = DatasetCache(max_bytes=2 * one)
    a = cache.put("a", ds(10))
    assert not a.X.flags.writeable and not a.y.flags.writeable  # the engine only reads them
    cache.put("b", ds(10))
    assert cache.get("a") is a  # now the most recently used
    cache.put("c", ds(10))
    assert cache.get("b") is None and cache.get("a") is a and len(cache) == 2
    big = cache.put("big", ds(30))  # larger than the whole cache: used once, not kept
    assert big.X.flags.writeable and cache.get("big") is None and len(cache) == 2


def test_trials_on_one_upload_read_it_once_per_process(local, monkeypatch):
    st, settings, user = local
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, X=rng.integers(0, 256, (60, 12, 12), dtype=np.uint8), y=np.arange(60) % 4)
    ds = store.save_dataset(st, user.id, "shapes", buf.getvalue(), 60, [1, 12, 12], 4)
    reads = []
    real = store.load_dataset_bytes
    monkeypatch.setattr(store, "load_dataset_bytes", lambda *a: reads.append(1) or real(*a))
    ids = [_submit(st, user, tiny_train_spec(epochs=1, dataset=ds["id"], seed=s)) for s in range(2)]
    assert JobRunner(st, settings, "me:1").run_wakeup() == 2
    assert [store.get_job(st, i, None)["status"] for i in ids] == ["succeeded", "succeeded"]
    assert len(reads) == 1


def test_a_chaining_worker_wakes_no_one_for_the_trial_it_takes_itself(local, monkeypatch):
    st, settings, user = local
    published = []
    monkeypatch.setattr(runner_module, "publish_wakeups", lambda app, n: published.append(n))
    body = {
        "base": tiny_train_spec(epochs=1),
        "algorithm": "random",
        "max_trials": 4,
        "max_concurrent": 2,
        "space": {"train.optimizer.lr": {"type": "log_uniform", "low": 0.01, "high": 0.1}},
    }
    make = spec_maker(validate_job_spec)
    study, _ = store.create_study(st, user.id, validate_study(body, validate_job_spec, 1), plan, make)
    monitor = Monitor(st, settings, "me:1", wakeups=SimpleNamespace(app=None))  # not started
    assert JobRunner(st, settings, "me:1", monitor).run_wakeup() == 4
    assert published == []  # each top-up made one trial, and this worker took it
    assert store.get_study(st, study["id"], None)[0]["status"] == "succeeded"

    again, _ = store.create_study(st, user.id, validate_study(body, validate_job_spec, 1), plan, make)
    one_each = JobRunner(st, dataclasses.replace(settings, chain_s=0), "me:2", monitor)
    while one_each.run_wakeup():
        pass
    assert published == [1, 1]  # without chaining, every new trial gets its wake-up


def test_each_job_logs_its_phases(local, caplog):
    st, settings, user = local
    job_id = _submit(st, user, tiny_train_spec(epochs=1))
    with caplog.at_level("INFO", logger="workers.runner"):
        JobRunner(st, settings, "me:1").run_next()
    line = next(r.getMessage() for r in caplog.records if "phases:" in r.getMessage())
    assert line.startswith(f"job {job_id} phases: ")
    phases = parse(line.split("phases: ", 1)[1])
    assert {"claim", "setup", "engine", "finish"} <= set(phases) <= set(ORDER)
    assert phases["engine"] > 0


def test_the_monitor_shows_a_job_starting_and_ending_at_once_not_at_its_next_heartbeat(local):
    """watch/unwatch poke the monitor thread, which writes the worker's row right away (the task's
    thread does not wait for it); the regular heartbeat here is a minute away."""
    from tests.cluster import wait_for
    from workers.control import JobControl

    st, settings, user = local
    slow = dataclasses.replace(settings, heartbeat_s=60, stale_after_s=180, worker_alive_s=180)
    job_id = _submit(st, user, tiny_train_spec(epochs=1))
    monitor = Monitor(st, slow, "me:1")
    monitor.start()
    try:

        def shown():
            return next(w["job_id"] for w in store.live_workers(st, 180) if w["name"] == "me:1")

        assert shown() is None
        monitor.watch(JobControl(job_id))
        wait_for(lambda: shown() == job_id, 10, "the worker row to show the job")
        monitor.unwatch()
        wait_for(lambda: shown() is None, 10, "the worker row to show the worker idle")
    finally:
        monitor.stop()


def test_a_task_s_time_limit_leaves_every_chained_run_the_configured_limit(local):
    from workers.celery_app import make_celery

    _, settings, _ = local
    conf = make_celery(dataclasses.replace(settings, task_time_limit_s=3600, chain_s=60)).conf
    # No job starts past chain_s into a task, so each run still has 3600 s (less the soft limit's 60).
    assert conf.task_time_limit == 3600 + 60
    assert conf.task_soft_time_limit == 3600
