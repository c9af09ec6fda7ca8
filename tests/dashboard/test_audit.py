import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection as db_connection
from django.db import transaction
from django.db.utils import DatabaseError

from dashboard.audit import Actor, record_audit_event, scrub, verify_audit_chains
from dashboard.models import AuditEvent
from tests.factories import AuditEventFactory, TenantFactory

pytestmark = pytest.mark.django_db


def _tamper(sql: str, params: list) -> None:
    """Change the audit table behind the app's back, as an attacker with database access would."""
    with db_connection.cursor() as cursor:
        # A superuser can switch triggers off for the session; the chain must still tell.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(sql, params)
        cursor.execute("SET session_replication_role = origin")


def _five_events():
    tenant = TenantFactory()
    return [AuditEventFactory(tenant=tenant, summary={"n": n}) for n in range(5)]


def test_intact_chain_verifies():
    _five_events()
    assert verify_audit_chains() == []
    call_command("verify_audit")


def test_edited_row_is_named():
    events = _five_events()
    _tamper(
        "UPDATE dashboard_auditevent SET summary = %s WHERE id = %s", ['{"n": 99}', events[2].pk]
    )
    problems = verify_audit_chains()
    assert len(problems) == 1
    assert problems[0].event_id == events[2].pk
    assert "altered" in problems[0].reason
    with pytest.raises(CommandError):
        call_command("verify_audit")


def test_deleted_row_is_named_by_its_successor():
    events = _five_events()
    _tamper("DELETE FROM dashboard_auditevent WHERE id = %s", [events[1].pk])
    problems = verify_audit_chains()
    assert len(problems) == 1
    assert problems[0].event_id == events[2].pk
    assert "sequence 2 was removed" in problems[0].reason


def test_deleted_last_row_is_caught_by_the_chain_head():
    events = _five_events()
    _tamper("DELETE FROM dashboard_auditevent WHERE id = %s", [events[-1].pk])
    problems = verify_audit_chains()
    assert len(problems) == 1
    assert "ends early" in problems[0].reason


def test_app_offers_no_way_to_change_audit_rows():
    event = _five_events()[0]
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).delete()


def test_database_refuses_updates_and_deletes():
    event = _five_events()[0]
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        db_connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE dashboard_auditevent SET action = 'x' WHERE id = %s", [event.pk])
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        db_connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM dashboard_auditevent WHERE id = %s", [event.pk])


def test_secret_looking_keys_are_scrubbed_from_summaries():
    event = record_audit_event(
        actor=Actor.system(),
        action="test",
        summary={"api_key": "abc", "nested": {"token": "t", "ok": 1}, "X-API-KEY": "k"},
    )
    assert event.summary == {
        "api_key": "[redacted]",
        "nested": {"token": "[redacted]", "ok": 1},
        "X-API-KEY": "[redacted]",
    }
    assert scrub([{"password": "p"}]) == [{"password": "[redacted]"}]


def test_tenants_have_separate_chains():
    first, second = TenantFactory(), TenantFactory()
    a = AuditEventFactory(tenant=first)
    b = AuditEventFactory(tenant=second)
    assert a.chain != b.chain
    assert a.sequence == b.sequence == 1
