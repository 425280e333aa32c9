# convlab: one image for the API, the workers and the migration job.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CONVLAB_HOME=/var/lib/convlab

WORKDIR /app
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY store ./store
COPY migrations ./migrations
COPY workers ./workers
COPY service ./service
COPY convlab ./convlab
RUN pip install . && useradd --system --create-home convlab && mkdir -p "$CONVLAB_HOME" \
    && chown convlab "$CONVLAB_HOME"
USER convlab

EXPOSE 8000
# The API's probe (the default command serves the API); docker-compose gives the worker and the
# migrate job health checks of their own.
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
CMD ["convlab", "serve", "--host", "0.0.0.0", "--port", "8000"]
