"""Celery workers that run the engine (never imports Flask)."""
