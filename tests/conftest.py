"""Fixtures shared by the service tests: settings over a fresh migrated SQLite database, the app,
its test client, and tokens.

The app publishes through ``publisher``: here a fake that records job ids.
A test module that needs real workers overrides it to return ``None``
(``create_app`` then publishes through Celery on ``settings.broker_url``).
"""
from __future__ import annotations

import pytest

import store
from convlab.config import Settings
from service import create_app
from migrations.runner import upgrade


class FakePublisher:
    """Records published job ids; checks that each job is already committed when it is published."""

    def __init__(self) -> None:
        """No store yet (the ``app`` fixture attaches it), nothing published."""
        self.store: store.Store | None = None
        self.published: list[str] = []
        self.fail = False           # True: raise like an unreachable broker

    def __call__(self, job_id: str) -> None:
        """Publish ``job_id``: the row must be readable from another session already (docs/architecture.md)."""
        if self.store is not None:
            job = store.get_job(self.store, job_id, None)
            assert job is not None and job["status"] == "queued", "published before the commit"
        if self.fail:
            raise ConnectionError("broker unreachable")
        self.published.append(job_id)


class Auth:
    """Users and their ``Authorization`` headers, made on first use."""

    def __init__(self, db: store.Store) -> None:
        """Tokens are created in ``db``."""
        self._db = db
        self._tokens: dict[str, str] = {}

    def token(self, name: str = "alice", admin: bool = False) -> str:
        """The token of user ``name`` (created with ``admin`` the first time)."""
        if name not in self._tokens:
            self._tokens[name] = store.create_token(self._db, name, admin=admin)
        return self._tokens[name]

    def headers(self, name: str = "alice", admin: bool = False) -> dict[str, str]:
        """``{"Authorization": "Bearer <token>"}`` for user ``name``."""
        return {"Authorization": f"Bearer {self.token(name, admin)}"}

    def user(self, name: str = "alice") -> store.UserInfo:
        """The user ``name`` as the API sees them."""
        return store.authenticate(self._db, self.token(name))


@pytest.fixture
def database_url(tmp_path) -> str:
    """A fresh SQLite database, migrated to head."""
    url = f"sqlite:///{tmp_path / 'var' / 'convlab.db'}"
    upgrade(url)
    return url


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    """Settings for that database, the embedded broker under ``tmp_path``, default limits."""
    return Settings(home=tmp_path / "var", database_url=database_url, broker_url="filesystem://",
                    secret_key="test-secret-key")


@pytest.fixture
def test_config() -> dict:
    """Flask config overrides of the ``app`` fixture (override the fixture to change them)."""
    return {"TESTING": True}


@pytest.fixture
def publisher() -> FakePublisher | None:
    """The app's job publisher: a recording fake (None: real Celery)."""
    return FakePublisher()


@pytest.fixture
def app(settings, test_config, publisher):
    """The Flask app under test."""
    app = create_app(test_config, settings, publish=publisher)
    if isinstance(publisher, FakePublisher):
        publisher.store = app.extensions["convlab"].store
    yield app
    app.extensions["convlab"].store.dispose()


@pytest.fixture
def app_store(app) -> store.Store:
    """The app's data layer handle, to arrange and inspect the database directly."""
    return app.extensions["convlab"].store


@pytest.fixture
def client(app):
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def auth(app_store) -> Auth:
    """Tokens and headers of users (``auth.headers("bob")``, ``auth.headers("root", admin=True)``)."""
    return Auth(app_store)


@pytest.fixture
def headers(auth) -> dict[str, str]:
    """Authorization headers of the ordinary user ``alice``."""
    return auth.headers("alice")
