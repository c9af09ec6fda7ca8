"""The production settings, plus what a benchmark run may try on top (never used otherwise).

BENCH_DB_REUSE_MAX=N overrides CELERY_DB_REUSE_MAX (production: 1000); 0 restores Celery's
default, which closes the database connection before and after every task.

BENCH_AUDIT_OFF=1 (set by bench_audit_throughput.py in its "audit OFF" workers only) turns the
audit appends into no-ops in this process, to measure what the audit costs the engine. It is a
benchmark's switch, not a product setting: the product has no way to turn the audit off.
"""

import os

from dashboard.project.settings import *  # noqa: F403

# Static files from the app folders, as in the tests: the benchmarks run no collectstatic, and
# production's manifest storage refuses to name a file it has not collected.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

if os.environ.get("BENCH_DB_REUSE_MAX") is not None:
    CELERY_DB_REUSE_MAX = int(os.environ["BENCH_DB_REUSE_MAX"]) or None

if os.environ.get("BENCH_AUDIT_OFF") == "1":
    from celery.signals import task_prerun

    def _skip_audit(*args, **kwargs):
        return None

    def _turn_audit_off(**_):
        # Swapping the functions' code reaches every module that imported them by name
        # (`from dashboard.audit.trail import record_audit_event`). Before the first task runs, in
        # whichever process runs it (prefork children included); idempotent.
        from dashboard.audit import trail as audit

        for function in (audit.record_audit_event, audit.record_audit_events):
            function.__code__ = _skip_audit.__code__

    task_prerun.connect(_turn_audit_off, weak=False)
