"""gunicorn's configuration for the web role: `gunicorn --config python:dashboard.project.gunicorn_conf
dashboard.project.wsgi` (the Dockerfile's CMD, compose's `web`).

gunicorn logs through Django's LOGGING (dashboard/observability/logs.py), from its first line
on: under LOG_FORMAT=json every line the arbiter and its workers write is one JSON object, and
LOG_LEVEL is gunicorn's level too. Everything else (bind, workers, threads) stays on the command
line, where compose's variables reach it.
"""

import gc
import logging
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.project.settings")

from django.conf import settings

from dashboard.observability.logs import gunicorn_logging_config

logconfig_dict = gunicorn_logging_config(settings.LOGGING)
loglevel = str(settings.LOGGING["root"]["level"]).lower()
# Python warnings (WhiteNoise's, Django's) as log lines too, not plain text on stderr.
logging.captureWarnings(True)


def post_worker_init(worker) -> None:
    """What a worker loaded at start (Django, the apps, their modules) lives as long as the
    worker: frozen, it leaves the garbage collector's generations, so a full collection no
    longer walks it. Unfrozen, one request in a few hundred paid 70-100 ms for such a collection
    (bench/bench_history.py's slowest requests)."""
    gc.freeze()
