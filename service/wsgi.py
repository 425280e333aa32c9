"""The WSGI entry point: ``gunicorn service.wsgi:app`` (configuration from ``CONVLAB_*``)."""

from service import create_app

app = create_app()
