"""A worker starts ready for its first send: what a send needs is loaded, the heap frozen."""

from __future__ import annotations

import json

from tests.ops.test_process_footprint import last_line_of

STARTING_WORKER = """
import gc, json, sys
import django
django.setup()
from celery import signals
from dashboard.project.celery import app

before = gc.get_freeze_count()
loaded_before = "batchjobs.vendors.talkifai.operation" in sys.modules
signals.celeryd_after_setup.send(sender="worker@test", instance=object(), conf=app.conf)
print(json.dumps({
    "frozen_before": before,
    "frozen_after": gc.get_freeze_count(),
    "loaded_before": loaded_before,
    "loaded_after": [
        name in sys.modules
        for name in (
            "batchjobs.vendors.talkifai.operation",
            "campaigns.vendors.optimove_campaigns.operation",
            "requests",
            "cryptography.fernet",
        )
    ],
}))
"""


def test_a_starting_worker_loads_what_a_send_needs_and_freezes_its_heap():
    seen = json.loads(last_line_of(STARTING_WORKER))

    assert seen["frozen_before"] == 0
    # The start-up heap (~90,000 objects), out of every later collection.
    assert seen["frozen_after"] > 20_000
    # A person's first click after a restart does not load the vendor clients.
    assert not seen["loaded_before"]
    assert seen["loaded_after"] == [True, True, True, True]
