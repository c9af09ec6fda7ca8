"""The Celery app. Settings come from Django's settings (CELERY_* names); see docs/engine.md "Workers"."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.project.settings")

app = Celery("triggerdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The core keeps each domain's tasks beside it (dashboard/runs/tasks.py, accounts/, audit/,
# chat_webhooks/, recurring/).
app.autodiscover_tasks(
    [
        "dashboard.runs",
        "dashboard.accounts",
        "dashboard.audit",
        "dashboard.chat_webhooks",
        "dashboard.recurring",
    ]
)

# Each worker beats in Redis for /readyz and the container health check (dashboard/observability/heartbeat.py),
# and logs as the web does, with the run and request in every line (dashboard/observability).
from dashboard.observability.heartbeat import connect_worker_signals  # noqa: E402
from dashboard.observability.logs import (  # noqa: E402
    connect_celery_logging,
    connect_task_signals,
)

# A worker starts with what a send needs loaded and its start-up heap frozen (dashboard/runs/worker_start.py).
from dashboard.runs.worker_start import connect_worker_start  # noqa: E402

connect_worker_signals()
connect_task_signals()
connect_celery_logging()
connect_worker_start()
