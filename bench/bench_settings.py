"""The production settings, plus what a benchmark run may try on top (never used otherwise).

BENCH_DB_REUSE_MAX=N sets CELERY_DB_REUSE_MAX: without it Celery's Django fixup closes the
database connection before and after every task, so each task opens a new PostgreSQL
connection. The benchmarks report figures with and without it.
"""

import os

from dashboard.settings import *  # noqa: F403

CELERY_DB_REUSE_MAX = int(os.environ.get("BENCH_DB_REUSE_MAX") or 0) or None
