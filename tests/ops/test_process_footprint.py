"""What a process of the project loads at start: the heavy libraries (django-ninja with pydantic,
cryptography, the vendor clients with requests) come with the first use that needs them, and
everything still works once they do. This is what keeps verify_audit and a web worker's export
under their memory goals (bench/bench_history.py measures those)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAZY = (
    "ninja",
    "pydantic",
    "cryptography",
    "campaigns.vendors.optimove_campaigns.operation",
    "campaigns.vendors.altcraft.operation",
    "batchjobs.vendors.optimove_daily.operation",
    "batchjobs.vendors.talkifai.operation",
)

PROBE = """
import json, os, sys
import django
django.setup()
loaded = {"setup": [name for name in LAZY if name in sys.modules]}
from django.urls import get_resolver, reverse
get_resolver().url_patterns
reverse("run_list", args=["acme"])
loaded["urls"] = [name for name in LAZY if name in sys.modules]
from dashboard.runs.operations import registered_operations
loaded["operations"] = sorted(registered_operations())
reverse("api_v1:openapi-json", urlconf="dashboard.api.urlconf")
loaded["api"] = [name for name in LAZY if name in sys.modules]
from dashboard.project.celery import app
app.loader.import_default_modules()
loaded["tasks"] = sorted(name for name in app.tasks if not name.startswith("celery."))
print(json.dumps(loaded))
"""


def last_line_of(code: str) -> str:
    """What a fresh process of the project running `code` printed last."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "dashboard.project.test_settings"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def probe() -> dict[str, list[str]]:
    return json.loads(last_line_of(f"LAZY = {LAZY!r}\n{PROBE}"))


def test_heavy_libraries_load_on_first_use_and_everything_is_there_when_they_do():
    from dashboard.runs.models import Operation

    loaded = probe()
    # Start (any manage.py command, a worker before its first task): none of them.
    assert loaded["setup"] == []
    # The site's URLs (their views load the vendor clients), one reversed: still no API, no Fernet.
    assert not {"ninja", "pydantic", "cryptography"} & set(loaded["urls"])
    # The run engine's first lookup registers every operation of every app.
    assert loaded["operations"] == sorted(Operation.values)
    # The API's URLconf (a request under /api/ uses it): django-ninja comes then.
    assert {"ninja", "pydantic"} <= set(loaded["api"])
    # A worker's autodiscovery finds every task, the Altcraft launches' included.
    assert "altcraft.expire_uploads" in loaded["tasks"]
    assert "campaigns.fire_due_schedules" in loaded["tasks"]


def test_a_web_worker_freezes_what_it_loaded_at_start():
    """A full garbage collection in a gunicorn worker walks only what requests made, not the
    startup heap (gunicorn calls post_worker_init once the worker has loaded the app)."""
    code = (
        "import gc, dashboard.project.wsgi\n"
        "from dashboard.project import gunicorn_conf\n"
        "before = gc.get_freeze_count()\n"
        "gunicorn_conf.post_worker_init(None)\n"
        "print(before, gc.get_freeze_count())"
    )
    before, after = map(int, last_line_of(code).split())
    assert before == 0 and after > 10_000
