"""The Flask service: JSON API (``/api/v1``), health checks and Prometheus metrics.

``create_app`` is the only entry point; ``service.wsgi:app`` is what gunicorn runs.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from convlab.config import Settings
from convlab.limits import dataset_limits, job_limits, user_quota
from store import Store

from .extension import EXTENSION_KEY, CeleryPublisher, Convlab, Publisher
from .memory_budget import MemoryBudget

# A page may only load what its own origin serves; the dashboard may widen this in app.config.
DEFAULT_CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"


def create_app(
    test_config: dict[str, Any] | None = None,
    settings: Settings | None = None,
    *,
    publish: Publisher | None = None,
    store: Store | None = None,
) -> Flask:
    """Build the app: config from ``settings`` (default: the environment), then ``test_config``.

    ``publish(job_id)`` puts a job on the queue; the default sends it through
    Celery (built lazily from ``settings``). Unit tests of the API pass a fake;
    ``store`` may be given to share one engine. The database must already be
    migrated (``convlab db upgrade``): building the app touches neither the
    database nor the broker.
    """
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        CONTENT_SECURITY_POLICY=DEFAULT_CSP,
        SESSION_COOKIE_SECURE=settings.secure_cookies,
    )
    if test_config is not None:
        app.config.from_mapping(test_config)
    app.json.sort_keys = False  # keep the documented field order (id first)

    app.extensions[EXTENSION_KEY] = Convlab(
        settings=settings,
        store=store or Store.from_url(settings.database_url),
        publish=publish or CeleryPublisher(settings),
        limits=job_limits(settings),
        dataset_limits=dataset_limits(settings),
        upload_memory=MemoryBudget(settings.upload_memory_bytes),
        quota=user_quota(settings),
    )

    from . import api, errors, health, metrics, outage, params

    outage.init_app(app, app.extensions[EXTENSION_KEY].store.engine)
    errors.init_app(app)
    app.url_value_preprocessor(params.no_such_url_value)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    from .dashboard import init_dashboard

    init_dashboard(app)
    app.after_request(_security_headers)
    return app


def _security_headers(response):
    """Headers every response carries; a view that sets its own keeps them."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Content-Security-Policy", current_app.config["CONTENT_SECURITY_POLICY"])
    return response
