"""gunicorn's configuration for the web role: `gunicorn --config python:dashboard.project.gunicorn_conf
dashboard.project.wsgi` (the Dockerfile's CMD, compose's `web`).

gunicorn logs through Django's LOGGING (dashboard/observability/logs.py), from its first line
on: under LOG_FORMAT=json every line the arbiter and its workers write is one JSON object, and
LOG_LEVEL is gunicorn's level too. Everything else (bind, workers, threads) stays on the command
line, where compose's variables reach it.
"""

import logging
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.project.settings")

from django.conf import settings

from dashboard.observability.logs import gunicorn_logging_config

logconfig_dict = gunicorn_logging_config(settings.LOGGING)
loglevel = str(settings.LOGGING["root"]["level"]).lower()
# Python warnings (WhiteNoise's, Django's) as log lines too, not plain text on stderr.
logging.captureWarnings(True)
