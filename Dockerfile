# syntax=docker/dockerfile:1
# TriggerDesk: one image for every role; the command picks it (see docker-compose.yml):
#   web     gunicorn dashboard.project.wsgi                       (the default CMD)
#   worker  celery -A dashboard worker -Q send  (and services with -Q interactive, -Q poll)
#   beat    celery -A dashboard --quiet beat
# Every role logs through Django's LOGGING: LOG_FORMAT and LOG_LEVEL decide for gunicorn and
# Celery too (no --loglevel needed; see dashboard/observability/logs.py).
#   migrate python manage.py migrate
# Configuration comes from the environment only (README "Production settings"); with
# DJANGO_ENV=production the app refuses to start while a required setting is missing.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# --- build: install the dependencies into a virtualenv that the runtime stage copies ---------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# gettext's msgfmt compiles the translations (locale/); the runtime stage needs only the .mo files.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gettext \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, so a code change does not reinstall them (pyproject declares no package).
COPY pyproject.toml ./
RUN pip install .
COPY manage.py ./
COPY dashboard ./dashboard
COPY campaigns ./campaigns
COPY batchjobs ./batchjobs
COPY templates ./templates
COPY static ./static
COPY locale ./locale
# Static files are collected (and compressed by WhiteNoise) at build time. The settings only need
# to import: the real keys come at run time, these throwaway values never leave this stage.
RUN SECRET_KEY=collectstatic-only \
    CREDENTIALS_KEYS=MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA= \
    python manage.py collectstatic --no-input -v0 \
 && SECRET_KEY=compilemessages-only \
    CREDENTIALS_KEYS=MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA= \
    python manage.py compilemessages -v0 \
 && python -m compileall -q dashboard campaigns batchjobs

# --- runtime: slim, no compilers, no pip cache, a non-root user --------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=dashboard.project.settings \
    DJANGO_ENV=production \
    LOG_FORMAT=json
# The uploads folder (Altcraft recipient files, encrypted) is a volume shared by web and workers;
# created here so a new named volume starts owned by the app user.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/triggerdesk/uploads
ENV ALTCRAFT_UPLOAD_DIR=/var/lib/triggerdesk/uploads
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=root:root /src /app
USER 10001:10001
EXPOSE 8000
# Liveness of the web role (the worker and beat services override it in docker-compose.yml).
# The probe sends ALLOWED_HOSTS' first name as Host (Django answers any other Host 400) and
# needs no curl, which the slim image lacks (dashboard/observability/probe.py).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-m", "dashboard.observability.probe", "http://127.0.0.1:8000/healthz"]
# gunicorn logs through Django's LOGGING from its first line (dashboard/project/gunicorn_conf.py): one
# JSON object per line; each request is logged by the app with its request id, so gunicorn's
# access lines stay off.
CMD ["gunicorn", "--config", "python:dashboard.project.gunicorn_conf", "dashboard.project.wsgi", \
     "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", \
     "--worker-tmp-dir", "/dev/shm", "--graceful-timeout", "30"]
