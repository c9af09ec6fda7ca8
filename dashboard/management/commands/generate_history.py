"""Build a realistic history fast, for benchmarks and for trying the history pages at scale.

    manage.py generate_history --runs 1000000 --audit 1000000 --tenant acme

Several tenants (the named one holds --share of the runs), their members and connections of every
vendor kind, runs over a year of dates in every state (one daily trigger per UTC day, ties on the
same timestamp as a burst makes them), approvals, one send attempt per sent run (latency and
outcome, for the dashboard's charts), and a valid audit chain per tenant (at least one row per
run and per membership, so `verify_audit` passes). Rows go in with COPY: a million runs take
about a minute on a small machine. Never run it against a production database.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils.text import slugify

from dashboard.audit.trail import chain_for, ensure_chain_heads
from dashboard.models import AuditChainHead, Membership, Role, Tenant, VendorConnection, VendorKind
from dashboard.runs.models import Operation, Run

KIND_OPERATIONS = {
    VendorKind.OPTIMOVE_CAMPAIGNS: [Operation.OPTIMOVE_RUN_EVENT_GENERATOR],
    VendorKind.ALTCRAFT: [Operation.ALTCRAFT_START_BATCH, Operation.ALTCRAFT_IMPORT_AND_START],
    VendorKind.TALKIFAI: [Operation.TALKIFAI_START_BATCH_JOB],
}
# Past runs are mostly finished; a few are still open (awaiting approval, outcome unknown).
STATE_WEIGHTS = {
    "succeeded": 80,
    "failed": 9,
    "cancelled": 8,
    "outcome_unknown": 1,
    "awaiting_approval": 1,
    "accepted": 1,
}
ROLES = [Role.ADMIN, Role.OPERATOR, Role.OPERATOR, Role.MARKETER, Role.MARKETER, Role.AUDITOR]
RUN_COLUMNS = (
    "id, tenant_id, connection_id, operation, parameters, parameters_hash, idempotency_key, state,"
    " utc_date, requested_by_id, requested_by_label, requested_at, approval_required,"
    " attestation, send_anyway, attempt_count, sent_at, needs_person, vendor_reference,"
    " vendor_status, progress, audience_size, result, poll_count, failure_class, failure_code,"
    " failure_message, created_at, updated_at, finished_at, title, connection_name"
)
AUDIT_COLUMNS = (
    "chain, sequence, tenant_id, actor_id, actor_label, action, object_type, object_id, summary,"
    " ip_address, created_at, previous_hash, hash"
)

SCRATCH_AUDIT_SQL = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS generated_audit ON COMMIT DROP AS "  # noqa: S608 - constants
    f"SELECT {AUDIT_COLUMNS} FROM dashboard_auditevent WITH NO DATA"
)
APPEND_SCRATCH_AUDIT_SQL = (
    f"WITH appended AS (INSERT INTO dashboard_auditevent ({AUDIT_COLUMNS}) "  # noqa: S608 - constants
    f"SELECT {AUDIT_COLUMNS} FROM generated_audit) "
    "UPDATE dashboard_auditchainhead SET length = %s, last_hash = %s WHERE id = %s"
)


CHUNK = 50_000


class AuditChain:
    """A tenant's audit chain being extended: hashes computed here, rows COPYed per chunk."""

    def __init__(self, command: Command, tenant: Tenant) -> None:
        self.command = command
        self.tenant = tenant
        self.chain = chain_for(tenant)
        # With its run lanes' heads, which verification expects beside every tenant's main one
        # (this writes every row to the main chain; the lanes stay empty).
        ensure_chain_heads([self.chain])
        self.head = AuditChainHead.objects.select_for_update().get(chain=self.chain)
        self.sequence, self.previous_hash = self.head.length, self.head.last_hash
        self.rows: list[tuple] = []
        self.per_run_extra = 0.0
        self.budget = 0.0

    def add(self, moment, actor, action, object_type, object_id, summary) -> None:
        moment = moment or self.command.now - timedelta(days=self.command.days + 1)
        self.sequence += 1
        actor_id = actor.pk if actor else None
        label = actor.username if actor else "system"
        content = {
            "chain": self.chain,
            "sequence": self.sequence,
            "tenant": self.tenant.pk,
            "actor": actor_id,
            "actor_label": label,
            "action": action,
            "object_type": object_type,
            "object_id": str(object_id),
            "summary": summary,
            "ip_address": None,
            "created_at": moment.isoformat(timespec="microseconds"),
            "previous_hash": self.previous_hash,
        }
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        self.rows.append(
            (self.chain, self.sequence, self.tenant.pk, actor_id, label, action, object_type,
             str(object_id), json.dumps(summary), None, moment, self.previous_hash, digest)
        )  # fmt: skip
        self.previous_hash = digest

    def add_runs(self, run_events) -> None:
        """Per run its request and, while the budget lasts, its decision and outcome."""
        for moment, run_id, requester, state, approver in run_events:
            self.add(moment, requester, "run.requested", "run", run_id, {"from": "draft", "to": "queued"})  # fmt: skip
            self.budget += self.per_run_extra
            if self.budget >= 1 and approver is not None:
                self.budget -= 1
                self.add(moment + timedelta(seconds=30), approver, "run.approved", "run", run_id, {"comment": ""})  # fmt: skip
            while self.budget >= 1:
                self.budget -= 1
                self.add(moment + timedelta(seconds=60), None, "run.state_changed", "run", run_id, {"from": "sending", "to": state})  # fmt: skip

    def flush(self) -> None:
        """Append the rows so far and move the head onto the last, in one statement: PostgreSQL
        takes audit rows only onto their chain's head, and moves a head only onto its rows
        (migration 0009), checking both at the statement's end. COPY cannot share a statement,
        so the rows are COPYed into a scratch table first."""
        if not self.rows:
            return
        with connection.cursor() as cursor:
            cursor.execute(SCRATCH_AUDIT_SQL)
            cursor.execute("TRUNCATE generated_audit")
        self.command._copy("generated_audit", AUDIT_COLUMNS, self.rows)
        with connection.cursor() as cursor:
            cursor.execute(
                APPEND_SCRATCH_AUDIT_SQL, [self.sequence, self.previous_hash, self.head.pk]
            )
        self.rows = []

    def close(self) -> None:
        self.flush()


class Command(BaseCommand):
    help = "Generate a large, realistic run history and a valid audit trail (COPY; for benches)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--runs", type=int, default=100_000)
        parser.add_argument("--audit", type=int, default=100_000)
        parser.add_argument("--tenant", default="acme", help="The tenant holding --share of runs.")
        parser.add_argument("--share", type=float, default=0.6)
        parser.add_argument("--tenants", type=int, default=4, help="How many tenants in all.")
        parser.add_argument("--days", type=int, default=365)
        parser.add_argument("--seed", type=int, default=12)

    def handle(self, *args, **options) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("generate_history needs PostgreSQL (it uses COPY).")
        started = time.monotonic()
        self.random = random.Random(options["seed"])
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.days = options["days"]
        runs_total, audit_total = options["runs"], options["audit"]
        slugs = [options["tenant"]] + [
            f"{options['tenant']}-{n}" for n in range(2, options["tenants"] + 1)
        ]
        share = options["share"] if len(slugs) > 1 else 1.0
        rest = (1 - share) / max(1, len(slugs) - 1)
        with transaction.atomic():
            self.next_run_id = self._max_id("dashboard_run") + 1
            self.next_approval_id = self._max_id("dashboard_approval") + 1
            self.next_attempt_id = self._max_id("dashboard_runattempt") + 1
            for index, slug in enumerate(slugs):
                runs = int(runs_total * (share if index == 0 else rest))
                audit = max(int(audit_total * (share if index == 0 else rest)), runs)
                self._tenant(slug, runs=runs, audit=audit)
            for table in ("dashboard_run", "dashboard_approval", "dashboard_runattempt"):
                self._reset_sequence(table)
        with connection.cursor() as cursor:
            # VACUUM too, as autovacuum would have done to a history built over a year: index-only
            # scans (the approvals badge) need the visibility map, which a fresh COPY leaves empty.
            for table in (
                "dashboard_run",
                "dashboard_auditevent",
                "dashboard_approval",
                "dashboard_runattempt",
            ):
                # VACUUM cannot run inside a transaction (a caller's atomic block): ANALYZE can.
                command = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
                cursor.execute(f"{command} {table}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Generated {runs_total} runs and ≥{audit_total} audit events over "
                f"{len(slugs)} tenants in {time.monotonic() - started:.1f} s."
            )
        )

    # -- one tenant -------------------------------------------------------------------------------

    def _tenant(self, slug: str, *, runs: int, audit: int) -> None:
        tenant, _ = Tenant.objects.get_or_create(
            slug=slug, defaults={"name": slug.replace("-", " ").title()}
        )
        users = []
        for n, role in enumerate(ROLES):
            user, _ = get_user_model().objects.get_or_create(
                username=f"{slugify(slug)}-{role}-{n}",
                defaults={"email": f"{slug}-{role}-{n}@example.com"},
            )
            Membership.objects.get_or_create(user=user, tenant=tenant, defaults={"role": role})
            users.append((user, role))
        connections = []
        for kind in (*KIND_OPERATIONS, VendorKind.OPTIMOVE_BATCH):
            connection_row, _ = VendorConnection.objects.get_or_create(
                tenant=tenant,
                name=f"{kind} (generated)",
                defaults={"kind": kind, "base_url": "https://vendor.invalid/"},
            )
            connections.append(connection_row)
        requesters = [user for user, role in users if role in (Role.MARKETER, Role.OPERATOR)]
        approvers = [user for user, role in users if role in (Role.OPERATOR, Role.ADMIN)]
        chain = AuditChain(self, tenant)
        for user, role in users:
            chain.add(None, None, "member.added", "membership", user.pk, {"user": user.username, "role": role})  # fmt: skip
        span = self.days * 86400
        # Oldest first, so ids and times grow together as they do in life; every tenth run
        # shares its predecessor's timestamp (a burst) to exercise keyset ties.
        moments = sorted(
            self.now - timedelta(seconds=self.random.uniform(60, span)) for _ in range(runs)
        )
        for i in range(1, len(moments), 10):
            moments[i] = moments[i - 1]
        # One daily trigger per UTC day, on days that do not have one yet (a second run of this
        # command adds to the history).
        taken = set(
            Run.objects.filter(
                tenant=tenant, operation=Operation.OPTIMOVE_TRIGGER_DAILY
            ).values_list("utc_date", flat=True)
        )
        self.daily_days = {
            (self.now - timedelta(days=day)).date() for day in range(1, min(self.days, runs) + 1)
        } - taken
        # Audit rows beyond one per run and membership: spread evenly over the runs.
        chain.per_run_extra = max(0, audit - runs - len(users)) / max(1, runs)
        approvals = 0
        for start in range(0, len(moments), CHUNK):
            run_rows, approval_rows, attempt_rows, run_events = self._runs(
                tenant, connections, requesters, approvers, moments[start : start + CHUNK]
            )
            self._copy("dashboard_run", RUN_COLUMNS, run_rows)
            self._copy(
                "dashboard_approval",
                "id, run_id, decided_by_id, decision, parameters_hash, comment, decided_at",
                approval_rows,
            )
            self._copy(
                "dashboard_runattempt",
                "id, run_id, number, purpose, started_at, latency_ms, exchange, status_code,"
                " failure_class, failure_code, outcome, worker, request, finished_at",
                attempt_rows,
            )
            chain.add_runs(run_events)
            chain.flush()
            approvals += len(approval_rows)
        chain.close()
        self.stdout.write(
            f"  {slug}: {runs} runs, {approvals} approvals, {chain.sequence} audit rows"
        )

    def _runs(self, tenant, connections, requesters, approvers, moments):
        states = list(STATE_WEIGHTS)
        weights = list(STATE_WEIGHTS.values())
        daily_connection = connections[-1]
        other_connections = connections[:-1]
        run_rows, approval_rows, attempt_rows, events = [], [], [], []
        daily_days = self.daily_days
        for moment in moments:
            run_id = self.next_run_id
            self.next_run_id += 1
            state = self.random.choices(states, weights)[0]
            utc_date = None
            if moment.date() in daily_days:
                daily_days.discard(moment.date())
                connection_row, operation, utc_date = daily_connection, Operation.OPTIMOVE_TRIGGER_DAILY, moment.date()  # fmt: skip
                if state not in ("succeeded", "failed", "cancelled"):
                    state = "succeeded"  # never an open daily run: the one-in-flight constraint
            else:
                connection_row = self.random.choice(other_connections)
                operation = self.random.choice(KIND_OPERATIONS[connection_row.kind])
            requester = self.random.choice(requesters)
            parameters = {"campaign": self.random.randint(1, 500), "note": "generated"}
            parameters_json = json.dumps(parameters, sort_keys=True)
            parameters_hash = hashlib.sha256(parameters_json.encode()).hexdigest()
            sent = state in ("succeeded", "failed", "outcome_unknown", "accepted")
            finished = moment + timedelta(seconds=self.random.randint(5, 900))
            reference = f"{operation[:3]}-{run_id:08d}" if sent else ""
            approval_required = operation == Operation.OPTIMOVE_TRIGGER_DAILY or (run_id % 5 == 0)
            run_rows.append(
                (
                    run_id,
                    tenant.pk,
                    connection_row.pk,
                    operation,
                    parameters_json,
                    parameters_hash,
                    f"gen-{run_id}",
                    state,
                    utc_date,
                    requester.pk,
                    requester.username,
                    moment,
                    approval_required,
                    "",
                    False,
                    1 if sent else 0,
                    moment + timedelta(seconds=2) if sent else None,
                    state == "outcome_unknown",
                    reference,
                    {"succeeded": "finished", "failed": "error"}.get(state, ""),
                    100 if state == "succeeded" else None,
                    self.random.randint(100, 130_000) if sent else None,
                    "{}",
                    self.random.randint(1, 6) if sent else 0,
                    "vendor_rejected" if state == "failed" else "",
                    "invalid_parameters" if state == "failed" else "",
                    "The vendor refused the parameters." if state == "failed" else "",
                    moment,
                    finished,
                    finished if state in ("succeeded", "failed", "cancelled") else None,
                    f"Daily batch · {utc_date:%Y-%m-%d}"
                    if utc_date
                    else f"Generated campaign {parameters['campaign']}",
                    connection_row.name,
                )
            )
            approver = None
            if approval_required and state not in ("awaiting_approval",):
                approver = self.random.choice([a for a in approvers if a != requester])
                approval_rows.append(
                    (
                        self.next_approval_id,
                        run_id,
                        approver.pk,
                        "rejected" if state == "cancelled" else "approved",
                        parameters_hash,
                        "",
                        moment + timedelta(seconds=30),
                    )
                )
                self.next_approval_id += 1
            if sent:
                latency = self.random.lognormvariate(5.3, 0.5)
                attempt_rows.append(
                    (
                        self.next_attempt_id,
                        run_id,
                        1,
                        "send",
                        moment + timedelta(seconds=1),
                        round(latency, 1),
                        "{}",
                        500 if state == "outcome_unknown" else 200,
                        "unknown" if state == "outcome_unknown" else "",
                        "",
                        "generated",
                        "generated",
                        "{}",
                        moment + timedelta(seconds=1, milliseconds=latency),
                    )
                )
                self.next_attempt_id += 1
            events.append((moment, run_id, requester, state, approver))
        return run_rows, approval_rows, attempt_rows, events

    # -- helpers ----------------------------------------------------------------------------------

    def _copy(self, table: str, columns: str, rows: list[tuple]) -> None:
        if not rows:
            return
        with connection.cursor() as cursor:
            raw = cursor.cursor  # psycopg 3
            with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def _max_id(self, table: str) -> int:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")  # noqa: S608 - constant
            return cursor.fetchone()[0]

    def _reset_sequence(self, table: str) -> None:
        with connection.cursor() as cursor:
            sql = f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT COALESCE(MAX(id), 1) FROM {table}))"  # noqa: S608 - table names are constants here
            cursor.execute(sql)
