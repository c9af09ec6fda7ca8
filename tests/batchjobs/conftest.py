"""Fixtures of the batchjobs tests: a controllable clock, the team's daily trigger wired to the
Optimove sandbox, registered TalkifAI jobs.

The vendor contract tests under vendors/ run with and without Django, so nothing here is autouse
and Django is imported lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest


class Clock:
    """The app's clock (django.utils.timezone.now, which dashboard.clock.utc_now reads), frozen
    at a moment the test sets; the sandbox's clock follows it when given."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, sandbox_clock: Any = None) -> None:
        self.moment = datetime.now(UTC)
        self.sandbox_clock = sandbox_clock
        monkeypatch.setattr("django.utils.timezone.now", lambda: self.moment)

    def set(self, moment: datetime) -> datetime:
        self.moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if self.sandbox_clock is not None:
            self.sandbox_clock.set_scale(0)
            self.sandbox_clock.set(self.moment)
        return self.moment

    def advance(self, **delta: float) -> datetime:
        return self.set(self.moment + timedelta(**delta))


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """A frozen app clock (the sandboxes keep real time)."""
    return Clock(monkeypatch)


@pytest.fixture
def shared_clock(monkeypatch, sandboxes) -> Clock:
    """A frozen app clock that also moves the sandboxes' clock (UTC days, 10-minute windows)."""
    return Clock(monkeypatch, sandboxes.clock)


@dataclass
class Daily:
    team: Any
    connection: Any
    optimove: Any  # the Optimove TriggerDaily sandbox

    def actor(self, role: str) -> Any:
        from dashboard.audit.trail import Actor

        return Actor(user=getattr(self.team, role).user)

    def request(self, role: str = "marketer", *, wait: int | None = None, key: str = "") -> Any:
        """Request today's trigger through the service, as the team member in `role`."""
        import uuid

        from batchjobs.services import daily_trigger_request

        return daily_trigger_request(
            actor=self.actor(role),
            tenant=self.team.tenant,
            wait_time_for_validation_seconds=wait,
            idempotency_key=key or uuid.uuid4().hex,
            files_uploaded_attested=True,
        )

    def approve(self, run: Any, role: str = "operator", *, parameters_hash: str = "") -> Any:
        from batchjobs.services import daily_trigger_approve

        run.refresh_from_db()
        return daily_trigger_approve(
            actor=self.actor(role),
            tenant=self.team.tenant,
            run=run,
            parameters_hash_seen=parameters_hash or run.parameters_hash,
        )

    def send(self, run: Any) -> Any:
        """What a worker does with the queued run, here and now."""
        from dashboard.runs.services import run_send

        outcome = run_send(run_id=run.pk)
        run.refresh_from_db()
        return outcome

    def calls(self) -> int:
        """How many trigger requests reached the Optimove sandbox."""
        return len(self.optimove.received_on("trigger_daily"))


@pytest.fixture
def daily(team, sandboxes, sandbox_connection, clean_redis) -> Daily:
    """Team acme with an Optimove batch connection to the sandbox (tenant "demo", ApiRole key),
    an empty Redis (no rate window left by another test) and a fast validation wait."""
    optimove = sandboxes["optimove_batch"]
    optimove.control("set_timing", {"real_seconds_per_wait_second": 0.01})
    connection = sandbox_connection(
        team.tenant,
        "optimove_batch",
        name="Optimove",
        options={"key_role": "ApiRole", "real_seconds_per_wait_second": 0.01},
    )
    return Daily(team=team, connection=connection, optimove=optimove)


@pytest.fixture
def talkifai(team, sandboxes, sandbox_connection) -> Any:
    """Team acme with a TalkifAI connection to the sandbox; returns the sandbox."""
    sandbox_connection(team.tenant, "talkifai", name="TalkifAI")
    return sandboxes["talkifai"]


@pytest.fixture
def register_job(team, talkifai) -> Any:
    """register_job(batch_job_id, name=""): a registered job of acme (checked with the sandbox)."""
    from batchjobs.services import batch_job_register
    from dashboard.audit.trail import Actor
    from dashboard.models import VendorConnection

    def register(batch_job_id: str, name: str = "") -> Any:
        return batch_job_register(
            actor=Actor(user=team.operator.user),
            tenant=team.tenant,
            connection=VendorConnection.objects.get(tenant=team.tenant, kind="talkifai"),
            batch_job_id=batch_job_id,
            name=name,
        )

    return register
