# The bot's image: `python -m bot` (bot + web server + dispatcher), `python -m bot migrate`,
# `python -m bot dispatcher`. Used by docker-compose.yml (the scaled layout, docs/DEPLOYMENT.md).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, cached while only the code changes: exactly the versions of
# requirements.lock (`make lock`, README "Dependencies"), each file checked against its hash,
# wheels only. Then the project itself, without dependencies, built with the locked setuptools.
COPY requirements.lock ./
RUN pip install --require-hashes --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY services ./services
COPY storage ./storage
RUN pip install --no-deps --no-build-isolation . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin dpo \
    && mkdir -p /app/data \
    && chown dpo /app/data

USER dpo

# Inside a container the web server listens on every interface; nginx publishes it.
ENV WEB_HOST=0.0.0.0 \
    WEB_PORT=8080
EXPOSE 8080

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

# SIGTERM (docker stop): the bot stops taking updates, finishes those in progress, exits 0.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot"]
