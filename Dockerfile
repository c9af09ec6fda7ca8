# TriggerDesk web image. The same image runs the worker and beat with another command:
#   docker run ... triggerdesk celery -A dashboard worker -Q send,poll
#   docker run ... triggerdesk celery -A dashboard beat
# Needs DATABASE_URL, REDIS_URL, SECRET_KEY (or SECRET_KEY_FILE) and CREDENTIALS_KEYS (or
# CREDENTIALS_KEYS_FILE); it refuses to start without the credentials keys.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=dashboard.settings

RUN groupadd --system app && useradd --system --gid app --home /app app
WORKDIR /app

COPY pyproject.toml ./
# The project's own dependency list (pyproject.toml declares no package to install).
RUN pip install --upgrade pip && pip install .

COPY manage.py ./
COPY dashboard ./dashboard
COPY campaigns ./campaigns
COPY batchjobs ./batchjobs
COPY templates ./templates
COPY static ./static

# collectstatic needs settings that import; the real keys come at run time.
RUN SECRET_KEY=build-only CREDENTIALS_KEYS=$(python -c "import base64; print(base64.urlsafe_b64encode(b'0'*32).decode())") \
    python manage.py collectstatic --no-input -v0

USER app
EXPOSE 8000
CMD ["gunicorn", "dashboard.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
