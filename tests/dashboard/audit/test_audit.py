import contextlib
import io
import itertools
import json
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection as db_connection
from django.db import transaction
from django.db.utils import DatabaseError
from django.utils import timezone

from dashboard.audit import trail as audit_module
from dashboard.audit.trail import (
    Actor,
    append_audit_events,
    audit_trail_gaps,
    audit_verify,
    chain_for,
    latest_audit_verification,
    record_audit_event,
    record_audit_events,
    scrub,
    verify_audit_chains,
)
from dashboard.models import AuditChainHead, AuditEvent, Role
from tests.conftest import backends_on_this_database
from tests.factories import AuditEventFactory, MembershipFactory, RunFactory, TenantFactory

pytestmark = pytest.mark.django_db


def _tamper(sql: str, params: list) -> None:
    """Change the audit table behind the app's back, as an attacker with database access would."""
    with db_connection.cursor() as cursor:
        # A superuser can switch triggers off for the session; the chain must still tell.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
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


# -- issue 9, item 1: the trail cannot be emptied or shortened unnoticed -----------------------


def _refused(sql: str, params: list | None = None) -> None:
    with (
        pytest.raises(DatabaseError, match=r"append-only|only moves forward"),
        transaction.atomic(),
        db_connection.cursor() as cursor,
    ):
        # The test's own inserts left deferred foreign-key checks pending, which TRUNCATE
        # refuses for its own reasons: fire them first, so the refusal seen is the trigger's.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(sql, params or [])


def test_database_refuses_truncating_the_trail_and_its_heads():
    _five_events()
    _refused("TRUNCATE dashboard_auditevent")
    _refused("TRUNCATE dashboard_auditchainhead")
    _refused("TRUNCATE dashboard_auditverification")
    assert AuditEvent.objects.count() == 5


def test_chain_heads_only_move_forward():
    events = _five_events()
    chain = events[0].chain
    _refused("DELETE FROM dashboard_auditchainhead WHERE chain = %s", [chain])
    _refused(
        "UPDATE dashboard_auditchainhead SET length = 0, last_hash = '' WHERE chain = %s", [chain]
    )
    _refused("UPDATE dashboard_auditchainhead SET last_hash = 'x' WHERE chain = %s", [chain])
    assert AuditChainHead.objects.get(chain=chain).length == 5
    AuditEventFactory(tenant=events[0].tenant)  # appending still moves it on
    assert AuditChainHead.objects.get(chain=chain).length == 6


def test_an_erased_trail_is_a_finding_when_the_tenant_has_members_and_runs():
    """The reproduction of issue 9: truncate the events, delete the heads, then verify."""
    run = RunFactory()
    MembershipFactory(tenant=run.tenant)
    record_audit_event(actor=Actor.system(), tenant=run.tenant, action="run.requested")
    with db_connection.cursor() as cursor:
        # Even past the triggers (a superuser switching them off), verify_audit must not say
        # "intact: 0 events".
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("TRUNCATE dashboard_auditevent")
        cursor.execute("DELETE FROM dashboard_auditchainhead")
        cursor.execute("SET session_replication_role = origin")
    report = audit_verify()
    assert not report.ok
    assert any("erased" in problem.reason for problem in report.problems)
    with pytest.raises(CommandError, match="finding"):
        call_command("verify_audit")


def test_a_trail_shorter_than_the_runs_is_a_finding():
    tenant = TenantFactory()
    RunFactory.create_batch(3, tenant=tenant)
    record_audit_event(actor=Actor.system(), tenant=tenant, action="run.requested")
    report = audit_verify()
    assert [problem.reason for problem in report.problems] == [
        "holds 1 rows for 3 runs, each of which was recorded: rows were removed"
    ]


def test_truncated_trail_behind_the_triggers_is_caught_by_the_head():
    events = _five_events()
    _tamper("TRUNCATE dashboard_auditevent", [])
    problems = verify_audit_chains()
    assert len(problems) == 1
    assert problems[0].chain == events[0].chain
    assert "ends early" in problems[0].reason


# -- verify_audit: checkpoints, batches, the recorded result -----------------------------------


def test_verification_resumes_from_its_checkpoint(monkeypatch):
    monkeypatch.setattr(audit_module, "VERIFY_BATCH_SIZE", 2)  # several batches per chain
    events = _five_events()
    first = audit_verify()
    assert first.ok and first.events_checked == 5
    for _ in range(3):
        AuditEventFactory(tenant=events[0].tenant)
    second = audit_verify()
    assert second.ok and second.events_checked == 3  # only what is new
    verification = latest_audit_verification(tenant=events[0].tenant)
    assert verification.ok and verification.through_sequence == 8 and not verification.full


def test_incremental_run_notices_a_rewritten_checkpoint_row_and_full_run_any_row():
    events = _five_events()
    audit_verify()
    _tamper(
        "UPDATE dashboard_auditevent SET summary = %s WHERE id = %s", ['{"n": 7}', events[1].pk]
    )
    assert audit_verify().ok  # row 2 is before the checkpoint: only a full run re-reads it
    full = audit_verify(full=True)
    assert not full.ok and full.problems[0].event_id == events[1].pk
    _tamper(
        "UPDATE dashboard_auditevent SET summary = %s WHERE id = %s", ['{"n": 7}', events[4].pk]
    )
    assert "checkpoint" in audit_verify().problems[0].reason


def test_beat_verifies_the_trail_nightly_and_in_full_weekly_on_the_poll_queue():
    """The nightly run resumes from its checkpoint; only the weekly full run re-reads the rows
    verified before, which is what finds one edited in place (test above)."""
    from celery.schedules import crontab
    from django.conf import settings

    from dashboard.audit.tasks import verify_audit_trail
    from dashboard.project.celery import app

    nightly = settings.CELERY_BEAT_SCHEDULE["verify-audit"]
    assert nightly["task"] == "audit.verify" and not nightly.get("kwargs", {}).get("full")
    assert nightly["schedule"] == crontab(hour=2, minute=15)
    weekly = settings.CELERY_BEAT_SCHEDULE["verify-audit-full"]
    assert weekly["task"] == verify_audit_trail.name and weekly["kwargs"] == {"full": True}
    assert weekly["schedule"] == crontab(day_of_week="sun", hour=3, minute=30)
    assert verify_audit_trail.name in app.tasks
    assert app.amqp.router.route({}, verify_audit_trail.name)["queue"].name == "poll"


def test_failed_verification_emails_the_tenant_admins(mailoutbox):
    events = _five_events()
    admin = MembershipFactory(tenant=events[0].tenant, role=Role.ADMIN, user__email="a@example.com")
    MembershipFactory(tenant=events[0].tenant, role=Role.MARKETER, user__email="m@example.com")
    _tamper("UPDATE dashboard_auditevent SET action = 'x' WHERE id = %s", [events[3].pk])
    report = audit_verify()
    assert not report.ok
    assert [mail.to for mail in mailoutbox] == [[admin.user.email]]
    assert "failed verification" in mailoutbox[0].subject
    verification = latest_audit_verification(tenant=events[0].tenant)
    assert verification.ok is False and verification.findings[0]["event_id"] == events[3].pk


def test_fast_row_hash_matches_event_hash():
    tenant = TenantFactory()
    odd = {"zé": ["ü", 1.5, None, {"b": True, "a": "\u2028"}], "quote": 'a"b\\c'}
    events = [
        record_audit_event(
            actor=Actor(label="cli:rø\u00f6t", ip_address="10.0.0.1"),
            tenant=tenant,
            action="run.approved",
            object_type="run",
            object_id=7,
            summary=odd,
        ),
        record_audit_event(actor=Actor.system(), action="login.failed"),
    ]
    for event in events:
        row = AuditEvent.objects.filter(pk=event.pk).values_list(*audit_module._VERIFY_FIELDS).get()
        assert audit_module._row_hash(event.chain, row) == event.hash
        # And as the verification reads them (PostgreSQL: raw, the summary as its JSON text).
        batch, raw = audit_module._verify_batch(event.chain, event.sequence)
        assert raw
        assert batch[0][0] == event.pk
        assert audit_module._row_hash(event.chain, batch[0], raw=True) == event.hash


# -- issue 12, item 7: appends hashed in the database, one statement per chain -----------------


def test_database_hash_is_event_hash_over_the_canonical_form():
    tenant = TenantFactory()
    odd = {"zé": ["ü", 1.5, None, {"b": True, "a": "\u2028"}], "quote": 'a"b\\c %s %(x)s'}
    event = record_audit_event(
        actor=Actor(label="cli:rø\u00f6t", ip_address="10.0.0.1"),
        tenant=tenant,
        action="run.approved",
        object_type="run",
        object_id='7"',
        summary=odd,
    )
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.hash == event.hash == audit_module.event_hash(stored)
    assert (stored.sequence, stored.previous_hash) == (1, "")
    before, between, after = audit_module._canonical_around_chain_place(stored)
    canonical = before + stored.previous_hash + between + str(stored.sequence) + after
    assert json.loads(canonical)["summary"] == odd


def test_many_events_in_one_call_chain_in_order_across_chains():
    first, second = TenantFactory(), TenantFactory()
    AuditEventFactory(tenant=first)
    lanes = audit_module.RUN_LANES
    # Runs 0, 8, 16... share the main chain (lane 0); run 3 has lane 3.
    events = record_audit_events(
        [
            {"actor": Actor.system(), "tenant": tenant, "action": "run.state_changed",
             "object_type": "run", "object_id": run_id, "summary": {"n": number}}
            for number in range(6)
            for tenant in (first, second)
            for run_id in (number * lanes, 3)
        ]
    )  # fmt: skip
    main = [e for e in events if e.tenant_id == first.pk and e.chain == chain_for(first)]
    assert [event.sequence for event in main] == [2, 3, 4, 5, 6, 7]
    assert [event.summary["n"] for event in main] == list(range(6))
    for earlier, later in itertools.pairwise(main):
        assert later.previous_hash == earlier.hash
    assert AuditChainHead.objects.get(chain=main[0].chain).last_hash == main[-1].hash
    lane = chain_for(second, object_type="run", object_id=3)
    assert lane == f"tenant:{second.pk}:runs:3"
    assert [e.sequence for e in events if e.chain == lane] == [1, 2, 3, 4, 5, 6]
    assert AuditChainHead.objects.get(chain=lane).length == 6
    assert verify_audit_chains() == []


def test_the_engines_append_without_instances_writes_the_same_verifiable_rows():
    """append_audit_events (the dispatcher's batches) chains rows exactly as
    record_audit_events does, interleaved with it, and the trail still verifies."""
    tenant = TenantFactory()
    user = MembershipFactory(tenant=tenant).user
    odd = {"zé": ["ü", 1.5, None], "api_key": "s3cret", "when": timezone.now()}
    record_audit_event(actor=Actor.system(), tenant=tenant, action="first", summary={"n": 0})
    append_audit_events(
        [
            {"actor": Actor.system("worker"), "tenant": tenant, "action": "run.state_changed",
             "object_type": "run", "object_id": run_id,
             "summary": {"from": "queued", "to": "sending", "n": run_id}}
            for run_id in range(1, 20)
        ]
        + [{"actor": Actor(user=user, ip_address="10.0.0.2"), "tenant": tenant,
            "action": "odd", "summary": odd}]
    )  # fmt: skip
    record_audit_events([{"actor": Actor.system(), "tenant": tenant, "action": "last"}])

    assert verify_audit_chains() == []
    main = list(AuditEvent.objects.filter(chain=chain_for(tenant)).order_by("sequence"))
    # Runs 8 and 16 are lane 0's: the tenant's main chain.
    actions = [event.action for event in main]
    assert actions == ["first", "run.state_changed", "run.state_changed", "odd", "last"]
    assert main[1].object_id == "8"
    assert main[1].summary == {"from": "queued", "to": "sending", "n": 8}
    odd_row = main[3]
    assert odd_row.actor_id == user.pk and odd_row.ip_address == "10.0.0.2"
    assert odd_row.summary["api_key"] == "[redacted]"
    assert odd_row.summary["zé"] == ["ü", 1.5, None]
    for event in main:
        assert event.hash == audit_module.event_hash(event)
    lanes = AuditEvent.objects.filter(chain__startswith=f"tenant:{tenant.pk}:runs:")
    assert lanes.count() == 17  # runs 1-19 but 8 and 16, which are lane 0's


def test_a_runs_events_share_one_lane_and_runs_spread_over_the_lanes():
    tenant = TenantFactory()
    for run_id in range(1, 17):
        for to_state in ("sending", "succeeded"):
            record_audit_event(
                actor=Actor.system(),
                tenant=tenant,
                action="run.state_changed",
                object_type="run",
                object_id=run_id,
                summary={"to": to_state},
            )
    chains_by_run = {}
    for chain, object_id in AuditEvent.objects.filter(object_type="run").values_list(
        "chain", "object_id"
    ):
        chains_by_run.setdefault(object_id, set()).add(chain)
    assert all(len(chains) == 1 for chains in chains_by_run.values())
    used = {chain for chains in chains_by_run.values() for chain in chains}
    assert used == set(audit_module.tenant_chains(tenant.pk))
    report = audit_verify(full=True)
    assert report.ok and report.events_checked == AuditEvent.objects.count()


def test_a_tenants_first_event_makes_every_lane_head():
    tenant = TenantFactory()
    AuditEventFactory(tenant=tenant)
    assert set(
        AuditChainHead.objects.filter(chain__startswith=f"tenant:{tenant.pk}").values_list(
            "chain", flat=True
        )
    ) == set(audit_module.tenant_chains(tenant.pk))


def _run_lane_events(tenant, run_id: int, count: int) -> list:
    return [
        record_audit_event(
            actor=Actor.system(),
            tenant=tenant,
            action="run.state_changed",
            object_type="run",
            object_id=run_id,
            summary={"n": n},
        )
        for n in range(count)
    ]


def test_an_edited_deleted_or_truncated_lane_row_is_found():
    tenant = TenantFactory()
    AuditEventFactory(tenant=tenant)
    events = _run_lane_events(tenant, 5, 4)
    _tamper(
        "UPDATE dashboard_auditevent SET summary = %s WHERE id = %s", ['{"n": 9}', events[1].pk]
    )
    [problem] = verify_audit_chains()
    assert (problem.chain, problem.event_id) == (events[1].chain, events[1].pk)
    assert "altered" in problem.reason

    other = TenantFactory()
    AuditEventFactory(tenant=other)
    kept = _run_lane_events(other, 6, 3)
    _tamper("DELETE FROM dashboard_auditevent WHERE id = %s", [kept[-1].pk])
    problems = {p.chain: p for p in verify_audit_chains()}
    assert "ends early" in problems[kept[0].chain].reason


def test_a_lane_erased_with_its_head_is_a_finding(mailoutbox):
    tenant = TenantFactory()
    AuditEventFactory(tenant=tenant)
    events = _run_lane_events(tenant, 2, 3)
    _tamper("DELETE FROM dashboard_auditevent WHERE chain = %s", [events[0].chain])
    _tamper("DELETE FROM dashboard_auditchainhead WHERE chain = %s", [events[0].chain])
    report = audit_verify(full=True)
    assert [p.chain for p in report.problems] == [events[0].chain]
    assert "removed" in report.problems[0].reason
    verification = latest_audit_verification(tenant=tenant)
    assert verification.ok is False and verification.chain == events[0].chain


def test_an_append_rolled_back_with_its_transaction_leaves_the_chain_as_it_was():
    tenant = TenantFactory()
    kept = AuditEventFactory(tenant=tenant)
    with pytest.raises(RuntimeError), transaction.atomic():
        AuditEventFactory(tenant=tenant)
        raise RuntimeError("the change failed")
    head = AuditChainHead.objects.get(chain=kept.chain)
    assert (head.length, head.last_hash) == (1, kept.hash)
    assert AuditEventFactory(tenant=tenant).sequence == 2
    assert verify_audit_chains() == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_unbroken_chain():
    tenant = TenantFactory()
    writers, each = 6, 15
    start = threading.Barrier(writers)
    failures = []

    def write(number: int) -> None:
        try:
            start.wait(timeout=60)
            for index in range(each):
                with transaction.atomic():
                    record_audit_event(
                        actor=Actor.system(f"writer {number}"),
                        tenant=tenant,
                        action="run.state_changed",
                        summary={"writer": number, "index": index},
                    )
                    # And one in a run lane, several writers per lane.
                    record_audit_event(
                        actor=Actor.system(f"writer {number}"),
                        tenant=tenant,
                        action="run.state_changed",
                        object_type="run",
                        object_id=index % 3 + 1,
                        summary={"writer": number, "index": index},
                    )
        except Exception as error:  # reported below, with the test's own assertion
            failures.append(error)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=write, args=(number,)) for number in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    head = AuditChainHead.objects.get(chain=chain_for(tenant))
    assert head.length == writers * each
    assert list(
        AuditEvent.objects.filter(chain=head.chain)
        .order_by("sequence")
        .values_list("sequence", flat=True)
    ) == list(range(1, writers * each + 1))
    lanes = AuditChainHead.objects.filter(chain__startswith=f"{head.chain}:runs:")
    assert sum(lane.length for lane in lanes) == writers * each
    assert verify_audit_chains() == []


def test_a_main_chain_made_by_hand_gets_its_lane_heads():
    # As generate_history does: it writes its rows and main head itself.
    tenant = TenantFactory()
    AuditChainHead.objects.create(chain=chain_for(tenant))
    assert audit_trail_gaps()  # the lanes' heads are missing
    audit_module.ensure_chain_heads([chain_for(tenant)])
    assert audit_trail_gaps() == []
    assert audit_verify(full=True).ok


# -- review item 3: forged rows, heads moved by hand, rows removed before the checkpoint --------


@pytest.fixture
def app_login():
    """A role like the README's app login (not the tables' owner, not a superuser, its grants
    and revokes), made in the test's transaction, so it goes with it; its name per database, so
    test sessions on other databases of the server do not wait on each other's."""
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        role = f"{cursor.fetchone()[0]}_app_login"
        cursor.execute(f'CREATE ROLE "{role}" NOLOGIN')
        cursor.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
        cursor.execute(
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"'
        )
        cursor.execute(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
        cursor.execute(
            "REVOKE UPDATE, DELETE, TRUNCATE ON dashboard_auditevent, "
            f'dashboard_auditverification FROM "{role}"'
        )
        cursor.execute(f'REVOKE DELETE, TRUNCATE ON dashboard_auditchainhead FROM "{role}"')
    return role


@contextlib.contextmanager
def _as(role: str):
    with db_connection.cursor() as cursor:
        cursor.execute(f'SET ROLE "{role}"')
    try:
        yield
    finally:
        with db_connection.cursor() as cursor:
            cursor.execute("RESET ROLE")


def _refused_to(role: str, match: str, sql: str, params: list) -> None:
    """`sql` as `role`, which PostgreSQL must refuse with a message matching `match`."""
    with (
        _as(role),
        pytest.raises(DatabaseError, match=match),
        transaction.atomic(),
        db_connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)


_INSERT_ROW = (
    "INSERT INTO dashboard_auditevent (chain, sequence, tenant_id, actor_label, action, "
    "object_type, object_id, summary, created_at, previous_hash, hash) "
    "VALUES (%s, %s, %s, 'mallory', 'member.added', '', '', '{}', %s, %s, %s)"
)
# The same row, and the head moved onto it, in one statement, as an append does.
_APPEND_ROW = (
    "WITH row AS (" + _INSERT_ROW + " RETURNING chain, sequence, hash) "
    "UPDATE dashboard_auditchainhead AS head SET length = row.sequence, last_hash = row.hash "
    "FROM row WHERE head.chain = row.chain"
)


def _forged(chain: str, sequence: int, tenant_id: int | None, previous_hash: str) -> list:
    """_INSERT_ROW's values for a row whose hash is right: anyone can compute it."""
    row = AuditEvent(
        chain=chain,
        sequence=sequence,
        tenant_id=tenant_id,
        actor_label="mallory",
        action="member.added",
        created_at=timezone.now(),
        previous_hash=previous_hash,
    )
    row.hash = audit_module.event_hash(row)
    return [chain, sequence, tenant_id, row.created_at, previous_hash, row.hash]


def test_the_app_login_cannot_insert_rows_outside_a_chain_head(app_login):
    events = _five_events()
    tenant_id, chain, last = events[0].tenant_id, events[0].chain, events[-1]
    # A chain without a head, whatever its name: the rows would show on the tenant's audit page.
    for name in ("forged", f"tenant:{tenant_id}:forged", f"tenant:{tenant_id + 1000}"):
        _refused_to(app_login, "has no head", _INSERT_ROW, _forged(name, 1, tenant_id, ""))
    # A head for a chain the trail does not have, or one that does not start empty.
    _refused_to(
        app_login,
        "no chain of the audit trail",
        "INSERT INTO dashboard_auditchainhead (chain, last_hash, length) VALUES (%s, '', 0)",
        ["forged"],
    )
    _refused_to(
        app_login,
        "starts empty",
        "INSERT INTO dashboard_auditchainhead (chain, last_hash, length) VALUES (%s, 'x', 3)",
        [f"tenant:{TenantFactory().pk}"],
    )
    # A row past its head, one that does not link, one of another tenant.
    _refused_to(app_login, "past its head", _INSERT_ROW, _forged(chain, 6, tenant_id, last.hash))
    other = TenantFactory()
    AuditEventFactory(tenant=other)
    _refused_to(
        app_login, "does not link", _APPEND_ROW, _forged(f"tenant:{other.pk}", 2, other.pk, "0")
    )
    _refused_to(
        app_login, "does not go in chain", _APPEND_ROW, _forged(chain, 6, other.pk, last.hash)
    )
    # The one append it may make: its rows onto their head, moving the head.
    with _as(app_login), db_connection.cursor() as cursor:
        cursor.execute(_APPEND_ROW, _forged(chain, 6, tenant_id, last.hash))
    assert AuditEvent.objects.filter(actor_label="mallory").count() == 1
    assert verify_audit_chains() == []


def test_the_app_login_cannot_move_a_chain_head_past_its_rows(app_login):
    events = _five_events()
    chain = events[0].chain
    _refused_to(
        app_login,
        "only moves onto its chain's appended rows",
        "UPDATE dashboard_auditchainhead SET length = length + 1 WHERE chain = %s",
        [chain],
    )
    _refused_to(
        app_login,
        "only moves onto its chain's appended rows",
        "UPDATE dashboard_auditchainhead SET length = 6, last_hash = %s WHERE chain = %s",
        [events[2].hash, chain],
    )
    head = AuditChainHead.objects.get(chain=chain)
    assert (head.length, head.last_hash) == (5, events[-1].hash)
    assert verify_audit_chains() == []


def test_the_app_login_still_appends_and_starts_new_tenants_trails(app_login):
    tenant = TenantFactory()
    with _as(app_login):
        first = record_audit_event(actor=Actor.system(), tenant=tenant, action="tenant.created")
        record_audit_events(
            [
                {"actor": Actor.system(), "tenant": tenant, "action": "run.state_changed",
                 "object_type": "run", "object_id": number}
                for number in range(1, 8)
            ]
            + [{"actor": Actor.system(), "action": "login.failed"}]
        )  # fmt: skip
    assert first.sequence == 1
    assert AuditChainHead.objects.get(chain=chain_for(tenant)).length == 1
    assert verify_audit_chains() == []


def test_rows_in_a_chain_the_trail_does_not_have_are_a_finding(mailoutbox):
    """As an owner with the triggers off, or a restored backup, would leave them."""
    events = _five_events()
    tenant = events[0].tenant
    MembershipFactory(tenant=tenant, role=Role.ADMIN, user__email="a@example.com")
    assert audit_verify(full=True).ok
    _tamper(_INSERT_ROW, _forged("forged", 1, tenant.pk, ""))
    _tamper(_INSERT_ROW, _forged(f"tenant:{tenant.pk}:forged", 1, tenant.pk, ""))
    _tamper(_INSERT_ROW, _forged("elsewhere", 1, None, ""))
    forged = {row.chain: row for row in AuditEvent.objects.filter(actor_label="mallory")}

    for full in (True, False):
        report = audit_verify(full=full)
        assert not report.ok
        assert sorted((p.chain, p.event_id) for p in report.problems) == sorted(
            [
                (events[0].chain, forged["forged"].pk),
                (events[0].chain, forged[f"tenant:{tenant.pk}:forged"].pk),
                ("global", forged["elsewhere"].pk),
            ]
        )
        assert all("no chain of the audit trail" in p.reason for p in report.problems)
    assert latest_audit_verification(tenant=tenant).ok is False  # on the audit page
    assert "no chain of the audit trail" in mailoutbox[0].body
    with pytest.raises(CommandError, match="finding"):
        call_command("verify_audit", "--full")


def test_a_head_of_a_chain_the_trail_does_not_have_is_a_finding():
    _five_events()
    _tamper(
        "INSERT INTO dashboard_auditchainhead (chain, last_hash, length) VALUES (%s, '', 0)",
        ["forged"],
    )
    [problem] = audit_verify(full=True).problems
    assert (problem.chain, "'forged'") == ("global", "'forged'")
    assert "no chain of the audit trail" in problem.reason


def test_rows_past_the_head_or_of_another_tenant_are_a_finding():
    events = _five_events()
    chain, last = events[0].chain, events[-1]
    _tamper(_INSERT_ROW, _forged(chain, 6, events[0].tenant_id, last.hash))
    [problem] = verify_audit_chains()
    assert (problem.chain, problem.sequence) == (chain, 6)
    assert "past the chain head" in problem.reason

    other = TenantFactory()
    kept = AuditEventFactory(tenant=other)
    # Rewritten with a well-formed hash, but of the first tenant: its page would show it.
    row = AuditEvent.objects.get(pk=kept.pk)
    row.tenant_id = events[0].tenant_id
    row.hash = audit_module.event_hash(row)
    _tamper(
        "UPDATE dashboard_auditevent SET tenant_id = %s, hash = %s WHERE id = %s",
        [row.tenant_id, row.hash, row.pk],
    )
    _tamper(
        "UPDATE dashboard_auditchainhead SET last_hash = %s WHERE chain = %s",
        [row.hash, row.chain],
    )
    problems = {p.chain: p for p in verify_audit_chains()}
    assert problems[kept.chain].event_id == kept.pk
    assert "belongs to tenant" in problems[kept.chain].reason


def test_incremental_run_finds_a_removed_row_it_verified_before():
    events = _five_events()
    assert audit_verify().ok
    AuditEventFactory(tenant=events[0].tenant)
    _tamper("DELETE FROM dashboard_auditevent WHERE id = %s", [events[1].pk])
    report = audit_verify()  # not --full: rows 1-5 were verified last time
    [problem] = report.problems
    assert (problem.chain, problem.event_id) == (events[2].chain, events[2].pk)
    assert "sequence 2 was removed" in problem.reason
    assert audit_verify().problems == report.problems  # and again, until someone looks


def test_a_chain_rewritten_behind_an_earlier_checkpoint_is_a_finding():
    """Row 2 removed, the rest renumbered and re-hashed, and the head set to match: the chain
    links up from row 1 again, but its earlier checkpoint's row is not the one verified."""
    events = _five_events()
    assert audit_verify().ok
    _tamper("DELETE FROM dashboard_auditevent WHERE id = %s", [events[1].pk])
    previous = events[0].hash
    for event in events[2:]:
        row = AuditEvent.objects.get(pk=event.pk)
        row.sequence -= 1
        row.previous_hash = previous
        row.hash = audit_module.event_hash(row)
        _tamper(
            "UPDATE dashboard_auditevent SET sequence = %s, previous_hash = %s, hash = %s "
            "WHERE id = %s",
            [row.sequence, row.previous_hash, row.hash, row.pk],
        )
        previous = row.hash
    _tamper(
        "UPDATE dashboard_auditchainhead SET length = 4, last_hash = %s WHERE chain = %s",
        [previous, events[0].chain],
    )
    assert verify_audit_chains() == []  # a walk alone cannot tell
    for full in (True, False):
        problems = audit_verify(full=full).problems
        assert any("earlier verification's checkpoint" in p.reason for p in problems)


def test_generated_history_appends_onto_its_heads_and_verifies():
    # generate_history (the benches' data) writes its rows past the same triggers as the app.
    call_command("generate_history", runs=60, audit=150, tenants=2, stdout=io.StringIO())
    report = audit_verify(full=True)
    assert report.ok and report.events_checked >= 100


def test_a_tenant_made_while_verifying_is_not_an_unknown_chain(monkeypatch):
    _five_events()
    late = AuditEventFactory(tenant=TenantFactory())
    listed = audit_module._all_chains

    def listed_before_the_late_tenant_was_made():
        chains = listed()
        if not listings:
            chains = [chain for chain in chains if not chain.startswith(f"tenant:{late.tenant_id}")]
        listings.append(chains)
        return chains

    for verify in (audit_verify, verify_audit_chains):
        listings: list[list[str]] = []
        monkeypatch.setattr(audit_module, "_all_chains", listed_before_the_late_tenant_was_made)
        result = verify()
        assert (result.problems if verify is audit_verify else result) == []
        assert len(listings) == 2  # read again before calling its chains unknown


@pytest.mark.django_db(transaction=True)
def test_a_long_chain_read_ahead_on_its_own_connection_verifies_and_finds_tampering(
    monkeypatch,
):
    """A chain past PREFETCH_MIN_ROWS is read a batch ahead by a helper thread on its own
    connection (outside a transaction, as the nightly task and the command run): it verifies the
    same rows, finds the same first altered row, and leaves no connection behind."""
    monkeypatch.setattr(audit_module, "VERIFY_BATCH_SIZE", 2)  # many batches
    monkeypatch.setattr(audit_module, "PREFETCH_MIN_ROWS", 1)
    read_by = set()
    read_batch = audit_module._verify_batch

    def spying_batch(chain, from_sequence):
        read_by.add(threading.current_thread().name)
        return read_batch(chain, from_sequence)

    monkeypatch.setattr(audit_module, "_verify_batch", spying_batch)
    tenant = TenantFactory()
    events = [AuditEventFactory(tenant=tenant, summary={"n": n}) for n in range(9)]
    connections_before = _other_connections()
    report = audit_verify(full=True)
    assert report.ok and report.events_checked >= 9
    assert any(name.startswith("verify-") for name in read_by)  # the helper thread read them
    _tamper(
        "UPDATE dashboard_auditevent SET summary = %s WHERE id = %s", ['{"n": 70}', events[6].pk]
    )
    full = audit_verify(full=True)
    assert not full.ok
    assert full.problems[0].event_id == events[6].pk
    assert "altered" in full.problems[0].reason
    assert _other_connections() <= connections_before  # the helper's connections were closed


def _other_connections() -> int:
    """Other sessions on this test database (a helper thread's connection, while it is open)."""
    return backends_on_this_database("pid <> pg_backend_pid() AND backend_type = 'client backend'")
