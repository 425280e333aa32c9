"""Tests of convlab/config.py: ``Settings.from_env`` reads ``CONVLAB_*``, with defaults, overrides and refusals.

Only the public behaviour is tested (what ``from_env`` returns or raises), so the
module can be reorganised freely.
"""

from __future__ import annotations

import dataclasses
import os
import stat

import pytest

from convlab.config import Settings
from convlab.limits import dataset_limits, job_limits


@pytest.fixture
def env(monkeypatch, tmp_path):
    """No ``CONVLAB_*`` variable set and ``tmp_path`` as the working directory; returns a setter."""
    for name in list(os.environ):
        if name.startswith("CONVLAB_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"CONVLAB_{name}", value)

    return set_env


def test_defaults_put_sqlite_and_the_embedded_broker_under_home(env, tmp_path):
    settings = Settings.from_env()
    home = (tmp_path / "var").resolve()
    assert settings.home == home
    assert settings.database_url == f"sqlite:///{home / 'convlab.db'}"
    assert settings.broker_url == "filesystem://"
    assert settings.embedded_broker and settings.broker_folder == home / "broker"
    assert settings.blas_threads is None and settings.secure_cookies is False


def test_defaults_are_the_dataclass_defaults(env, tmp_path):
    """``from_env`` with nothing set and the constructor's field defaults agree on every setting."""
    from_env = Settings.from_env()
    constructed = Settings(
        home=from_env.home,
        database_url=from_env.database_url,
        broker_url=from_env.broker_url,
        secret_key=from_env.secret_key,
    )
    assert dataclasses.asdict(from_env) == dataclasses.asdict(constructed)
    assert (from_env.max_attempts, from_env.heartbeat_s, from_env.stale_after_s) == (3, 2.0, 30.0)


def test_secret_key_is_made_once_per_home_and_kept_private(env, tmp_path):
    first = Settings.from_env().secret_key
    path = tmp_path / "var" / "secret_key"
    assert len(first) >= 32 and path.read_text().strip() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings.from_env().secret_key == first  # every process of one install signs alike
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]  # no temporary file left behind

    env(HOME=str(tmp_path / "other"))
    assert Settings.from_env().secret_key != first


def test_a_set_secret_key_writes_no_file(env, tmp_path):
    env(SECRET_KEY="from-the-environment")
    assert Settings.from_env().secret_key == "from-the-environment"
    assert not (tmp_path / "var").exists()


def test_overrides(env, tmp_path):
    defaults = Settings.from_env()
    env(
        HOME=str(tmp_path / "h"),
        DATABASE_URL="postgresql+psycopg://u@db/convlab",
        BROKER_URL="redis://r:6379/0",
        SECRET_KEY="k",
        MAX_REQUEST_BYTES="1024",
        MAX_ATTEMPTS="5",
        HEARTBEAT_S="0.5",
        STALE_AFTER_S="4",
        WORKER_ALIVE_S="9",
        TASK_TIME_LIMIT_S="120",
        METRICS_FLUSH_S="0.25",
        BLAS_THREADS="2",
        SECURE_COOKIES="true",
        MAX_DATASET_BYTES="4096",
        LIMIT_MAX_EPOCHS="7",
        LIMIT_MAX_LAYERS="3",
    )
    s = Settings.from_env()
    assert s.home == tmp_path / "h"
    assert s.database_url == "postgresql+psycopg://u@db/convlab"
    assert (s.broker_url, s.secret_key) == ("redis://r:6379/0", "k")
    assert not s.embedded_broker
    assert (s.max_request_bytes, s.max_attempts, s.task_time_limit_s, s.blas_threads) == (1024, 5, 120, 2)
    assert (s.heartbeat_s, s.stale_after_s, s.worker_alive_s, s.metrics_flush_s) == (0.5, 4.0, 9.0, 0.25)
    assert s.secure_cookies is True
    assert dataset_limits(s).max_bytes == 4096
    assert dataset_limits(s).max_samples == dataset_limits(defaults).max_samples
    limits = job_limits(s)
    assert (limits.max_epochs, limits.max_layers) == (7, 3)
    assert limits.max_filters == job_limits(defaults).max_filters  # the others keep their defaults


@pytest.mark.parametrize(
    "value, expected", [("1", True), ("yes", True), ("TRUE", True), ("0", False), ("no", False), ("", False)]
)
def test_secure_cookies_spellings(env, value, expected):
    env(SECURE_COOKIES=value, SECRET_KEY="k")
    assert Settings.from_env().secure_cookies is expected


def test_empty_values_count_as_unset(env, tmp_path):
    env(DATABASE_URL="", BROKER_URL="", MAX_ATTEMPTS="", HEARTBEAT_S="", SECRET_KEY="k")
    s = Settings.from_env()
    assert s.broker_url == "filesystem://" and s.database_url.startswith("sqlite:///")
    assert (s.max_attempts, s.heartbeat_s) == (3, 2.0)


def test_a_stale_timeout_shorter_than_three_heartbeats_is_refused(env):
    env(HEARTBEAT_S="5", STALE_AFTER_S="10", SECRET_KEY="k")
    with pytest.raises(ValueError, match="CONVLAB_STALE_AFTER_S.*CONVLAB_HEARTBEAT_S"):
        Settings.from_env()
    env(STALE_AFTER_S="15")
    assert Settings.from_env().stale_after_s == 15.0


@pytest.mark.parametrize(
    "name, value",
    [("HEARTBEAT_S", "fast"), ("MAX_ATTEMPTS", "3.5"), ("MAX_REQUEST_BYTES", "16MB"), ("BLAS_THREADS", "all")],
)
def test_a_malformed_number_is_refused(env, name, value):
    env(**{name: value, "SECRET_KEY": "k"})
    with pytest.raises(ValueError, match=f"CONVLAB_{name}={value!r}"):
        Settings.from_env()


@pytest.mark.parametrize("value", ["0", "-3"])
def test_a_limit_below_one_is_refused(env, value):
    env(LIMIT_MAX_EPOCHS=value, SECRET_KEY="k")
    with pytest.raises(ValueError, match=f"max_epochs must be a positive integer, got {value}"):
        job_limits(Settings.from_env())


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("MAX_EPOCH", "5", "CONVLAB_LIMIT_MAX_EPOCH is not a limit"),
        ("MAX_EPOCHS", "ten", "CONVLAB_LIMIT_MAX_EPOCHS='ten'"),
    ],
)
def test_an_unknown_or_malformed_limit_is_refused_by_name(env, name, value, message):
    env(**{f"LIMIT_{name}": value, "SECRET_KEY": "k"})
    with pytest.raises(ValueError, match=message):
        job_limits(Settings.from_env())


def test_per_user_limits_parse_none_as_no_limit(env):
    from convlab.limits import user_quota

    env(MAX_QUEUED_JOBS="none", MAX_RUNNING_JOBS="3", MAX_COMPUTE_FLOPS="2.5e12", MAX_STORAGE_BYTES="Unlimited")
    quota = user_quota(Settings.from_env())
    assert (quota.max_queued, quota.max_running, quota.max_compute, quota.max_storage) == (None, 3, 2.5e12, None)
    env(MAX_RUNNING_JOBS="several")
    with pytest.raises(ValueError, match="CONVLAB_MAX_RUNNING_JOBS"):
        Settings.from_env()
    env(MAX_RUNNING_JOBS="1", MAX_ATTEMPTS="none")  # only optional settings may be none
    with pytest.raises(ValueError, match="CONVLAB_MAX_ATTEMPTS"):
        Settings.from_env()
