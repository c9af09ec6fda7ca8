"""A run awaiting approval whose mails (locmem) carry each approver's one-time link."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.runs import services

LINK = re.compile(r"https?://\S+/approval-links/(?P<token>[^/\s]+)/")


@pytest.fixture
def connection(team, sandbox_connection):
    return sandbox_connection(team.tenant, "optimove_batch", name="Optimove EU")


@pytest.fixture
def requested(team, connection, django_capture_on_commit_callbacks):
    """A daily trigger requested by the marketer; returns (run, {address: token})."""
    with django_capture_on_commit_callbacks(execute=True):
        run = services.run_submit(
            actor=Actor(user=team.marketer.user),
            tenant=team.tenant,
            connection=connection,
            operation="optimove_trigger_daily",
            parameters={"wait_time_for_validation_seconds": None},
            idempotency_key="link-1",
            approval_required=True,
            attestation="All of today's files have finished uploading.",
            utc_date=utc_now().date(),
            check_duplicates=False,
        )
    return run, tokens_in_outbox()


def tokens_in_outbox() -> dict[str, str]:
    """Each recipient's link token, from the mails sent so far."""
    tokens = {}
    for message in mail.outbox:
        found = LINK.search(message.body)
        if found:
            tokens[message.to[0]] = found["token"]
    return tokens
