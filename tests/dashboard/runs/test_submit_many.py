"""run_submit_many: run_submit's rules for many runs at once, all or nothing."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from dashboard.audit.trail import Actor, verify_audit_chains
from dashboard.models import AuditEvent, VendorKind
from dashboard.runs.models import Operation, Run
from dashboard.runs.services import ProbableDuplicate, run_submit, run_submit_many
from dashboard.runs.states import RunState
from tests.factories import VendorConnectionFactory

pytestmark = pytest.mark.django_db
OPERATION = Operation.OPTIMOVE_RUN_EVENT_GENERATOR
GENERATOR = "00000000-abcd-abcd-abcd-000000000000"


@pytest.fixture
def connection(team):
    return VendorConnectionFactory(tenant=team.tenant, kind=VendorKind.OPTIMOVE_CAMPAIGNS)


def parameters(topic: str) -> dict:
    return {"event_generator_id": GENERATOR, "topic_key": topic, "context": {"a": 1}}


def submit_many(team, connection, topics, **options):
    options.setdefault("approval_required", False)
    return run_submit_many(
        actor=Actor(user=team.marketer.user),
        tenant=team.tenant,
        connection=connection,
        operation=OPERATION,
        requests=[(f"key-{topic}", parameters(topic)) for topic in topics],
        **options,
    )


def test_many_runs_are_queued_in_order_with_an_audit_row_each(team, connection):
    runs = submit_many(team, connection, ["a", "b", "c"])
    assert [run.parameters["topic_key"] for run in runs] == ["a", "b", "c"]
    assert all(
        run.state == RunState.QUEUED and run.requested_by == team.marketer.user for run in runs
    )
    assert AuditEvent.objects.filter(action="run.requested").count() == 3
    assert verify_audit_chains() == []
    # The same keys again are the same runs.
    assert [run.pk for run in submit_many(team, connection, ["a", "b", "c"])] == [
        r.pk for r in runs
    ]
    assert Run.objects.count() == 3


def test_a_duplicate_stops_all_of_them_unless_sent_anyway(team, connection):
    earlier = run_submit(
        actor=Actor(user=team.marketer.user),
        tenant=team.tenant,
        connection=connection,
        operation=OPERATION,
        parameters=parameters("b"),
        idempotency_key="earlier",
        approval_required=False,
    )
    with pytest.raises(ProbableDuplicate) as raised:
        submit_many(team, connection, ["a", "b"])
    assert raised.value.existing == earlier
    assert Run.objects.count() == 1
    runs = submit_many(team, connection, ["a", "b"], send_anyway=True)
    assert [run.send_anyway for run in runs] == [False, True]
    assert runs[1].duplicate_of == earlier


def test_approval_and_bad_parameters(team, connection):
    runs = submit_many(team, connection, ["a"], approval_required=True)
    assert runs[0].state == RunState.AWAITING_APPROVAL and runs[0].approval_expires_at
    with pytest.raises(ValidationError):
        submit_many(team, connection, ["ok", " padded "])
    assert Run.objects.count() == 1
