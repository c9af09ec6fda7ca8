"""The production settings, plus what a benchmark run may try on top (never used otherwise).

BENCH_DB_REUSE_MAX=N overrides CELERY_DB_REUSE_MAX (production: 1000); 0 restores Celery's
default, which closes the database connection before and after every task.
"""

import os

from dashboard.settings import *  # noqa: F403

if os.environ.get("BENCH_DB_REUSE_MAX") is not None:
    CELERY_DB_REUSE_MAX = int(os.environ["BENCH_DB_REUSE_MAX"]) or None
