"""The tamper-evident audit trail.

Every row carries the hash of its chain's previous row and a hash over its own content; the
chain head (AuditChainHead) carries the newest hash and the length. Editing a row breaks its own
hash, removing one breaks its successor's link (or the head's length and hash when it was the
last). `verify_audit_chains` walks every chain and names the first row that does not fit.

Each tenant has its own chain ("tenant:<id>"), so tenants do not wait on each other's appends;
events without a tenant (logins, failed logins) go to the "global" chain.

One tenant's appends do take turns on its chain head, whose row lock lasts until the appending
transaction commits. In PostgreSQL an append is therefore one statement (lock the head, number
and hash the rows, insert them, move the head; SHA-256 computed by the database over the same
canonical JSON as `event_hash`), and the engine appends last in its transactions, so the head is
held for that statement and the commit only (bench/bench_audit_throughput.py measures it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import Count, Min, OuterRef, Subquery
from django.utils import timezone

from dashboard.models import (
    AuditChainHead,
    AuditEvent,
    AuditVerification,
    Membership,
    Role,
    Tenant,
)
from dashboard.runs.models import Run

logger = logging.getLogger(__name__)

REDACTED = "[redacted]"
SECRET_KEY_WORDS = ("password", "secret", "token", "api_key", "apikey", "brand_key", "x-api-key")
GLOBAL_CHAIN = "global"
# Chains per tenant: the main one (lane 0) and the lanes runs' events are spread over. Every
# tenant has all their heads from its first event on (migration 0007 made them for the tenants
# before); changing the number needs such a migration too.
RUN_LANES = 8


@dataclass(frozen=True)
class Actor:
    """Who is acting and from where: a signed-in user, a command-line operator or the system."""

    user: AbstractBaseUser | None = None
    ip_address: str | None = None
    label: str = ""

    @property
    def display(self) -> str:
        if self.label:
            return self.label
        if self.user is not None:
            return self.user.get_username()
        return "system"

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(label=label)


def scrub(value: Any) -> Any:
    """A copy of a summary with the values of secret-looking keys replaced by a placeholder."""
    if isinstance(value, dict):
        return {
            key: REDACTED
            if any(word in str(key).lower() for word in SECRET_KEY_WORDS)
            else scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [scrub(item) for item in value]
    return value


def chain_for(tenant: Tenant | None, *, object_type: str = "", object_id: str | int = "") -> str:
    """The chain an event goes to: its tenant's, or for a run's events one of the tenant's run
    lanes (the run's id modulo RUN_LANES; lane 0 is the tenant's main chain), or the global one.

    A run's events all land in one lane, in order; runs spread over the lanes, so the engine's
    workers appending for different runs of one tenant do not all wait on one chain head.
    """
    if tenant is None:
        return GLOBAL_CHAIN
    lane = 0
    if object_type == "run" and str(object_id).isdigit():
        lane = int(object_id) % RUN_LANES
    return _tenant_chain(tenant.pk, lane)


def _tenant_chain(tenant_id: int, lane: int) -> str:
    return f"tenant:{tenant_id}" if lane == 0 else f"tenant:{tenant_id}:runs:{lane}"


def tenant_chains(tenant_id: int) -> list[str]:
    """Every chain of a tenant: its main chain, then its run lanes."""
    return [_tenant_chain(tenant_id, lane) for lane in range(RUN_LANES)]


def _hashed_content(event: AuditEvent) -> dict[str, Any]:
    """What a row's hash covers, but for its place in the chain (previous_hash, sequence)."""
    return {
        "chain": event.chain,
        "tenant": event.tenant_id,
        "actor": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "summary": event.summary,
        "ip_address": event.ip_address,
        "created_at": event.created_at.isoformat(timespec="microseconds"),
    }


def _canonical_json(content: dict[str, Any]) -> str:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)


def event_hash(event: AuditEvent) -> str:
    """SHA-256 over the row's content and its predecessor's hash, in a canonical JSON form."""
    content = _hashed_content(event)
    content["sequence"] = event.sequence
    content["previous_hash"] = event.previous_hash
    return hashlib.sha256(_canonical_json(content).encode("utf-8")).hexdigest()


def _canonical_around_chain_place(event: AuditEvent) -> tuple[str, str, str]:
    """event_hash's canonical JSON cut around its two chain-dependent values.

    `before + previous_hash + between + str(sequence) + after` is exactly the text event_hash
    hashes (keys sorted: ... object_type < previous_hash < sequence < summary ...), so the
    database can finish the hash once it knows the row's place (see _append_in_database).
    """
    content = _hashed_content(event)
    before = {key: value for key, value in content.items() if key < "previous_hash"}
    after = {key: value for key, value in content.items() if key > "sequence"}
    return (
        _canonical_json(before)[:-1] + ',"previous_hash":"',
        '","sequence":',
        "," + _canonical_json(after)[1:],
    )


def _locked_head(chain: str) -> AuditChainHead:
    """The chain's head row, locked until the caller's transaction ends (one query when it exists).

    A chain's first event creates its head; two first events at once race on the unique chain
    name, and the loser locks the winner's row.
    """
    try:
        return AuditChainHead.objects.select_for_update().get(chain=chain)
    except AuditChainHead.DoesNotExist:
        pass
    try:
        # A savepoint: the IntegrityError of a lost race must not break the caller's transaction.
        with transaction.atomic():
            return AuditChainHead.objects.create(chain=chain)
    except IntegrityError:
        return AuditChainHead.objects.select_for_update().get(chain=chain)


def _new_event(
    *,
    chain: str,
    actor: Actor,
    action: str,
    tenant: Tenant | None = None,
    object_type: str = "",
    object_id: str | int = "",
    summary: dict[str, Any] | None = None,
) -> AuditEvent:
    user = actor.user if actor.user is not None and actor.user.is_authenticated else None
    return AuditEvent(
        chain=chain,
        tenant=tenant,
        actor=user,
        actor_label=actor.display[:150],
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        summary=json.loads(json.dumps(scrub(summary or {}), default=str)),
        ip_address=actor.ip_address or None,
    )


def _chain_onto(head: AuditChainHead, events: list[AuditEvent]) -> None:
    """Give `events` their sequence numbers and hashes after the head, in order; move the head."""
    now = timezone.now()
    for event in events:
        event.sequence = head.length + 1
        event.created_at = now
        event.previous_hash = head.last_hash
        event.hash = event_hash(event)
        head.last_hash = event.hash
        head.length = event.sequence


# One statement appends events to their chains: it locks the chains' heads (in name order, so
# two appenders never wait on each other crosswise), numbers and hashes each chain's rows after
# its head (PostgreSQL's sha256 finishes event_hash's canonical JSON, each row's hash feeding the
# next through the recursion), inserts them and moves the heads. A head's row lock lasts until
# the caller's transaction ends, as every row lock does; what this saves is the round trips
# taken while holding it (lock, insert, update, savepoint release), each of which a worker
# thread waiting for the GIL or a CPU could stretch.
_APPEND_SQL = """
WITH RECURSIVE
head AS (
    SELECT chain, length, last_hash FROM dashboard_auditchainhead
    WHERE chain = ANY(%s::text[]) ORDER BY chain FOR UPDATE
),
given AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb) AS given(
        chain text, position integer, before text, between text, after text, tenant_id bigint,
        actor_id bigint, actor_label text, action text, object_type text, object_id text,
        summary jsonb, ip_address inet, created_at timestamptz)
),
placed (chain, position, sequence, previous_hash, hash) AS (
    SELECT given.chain, given.position, head.length + 1, head.last_hash::text,
           encode(sha256(convert_to(given.before || head.last_hash || given.between
                                    || (head.length + 1)::text || given.after, 'UTF8')), 'hex')
    FROM head JOIN given ON given.chain = head.chain AND given.position = 1
    UNION ALL
    SELECT given.chain, given.position, placed.sequence + 1, placed.hash,
           encode(sha256(convert_to(given.before || placed.hash || given.between
                                    || (placed.sequence + 1)::text || given.after, 'UTF8')), 'hex')
    FROM placed JOIN given ON given.chain = placed.chain AND given.position = placed.position + 1
),
inserted AS (
    INSERT INTO dashboard_auditevent (chain, sequence, tenant_id, actor_id, actor_label, action,
        object_type, object_id, summary, ip_address, created_at, previous_hash, hash)
    SELECT given.chain, placed.sequence, given.tenant_id, given.actor_id, given.actor_label,
           given.action, given.object_type, given.object_id, given.summary, given.ip_address,
           given.created_at, placed.previous_hash, placed.hash
    FROM given JOIN placed USING (chain, position)
    RETURNING id, chain, sequence, previous_hash, hash
),
moved AS (
    UPDATE dashboard_auditchainhead AS moving SET length = last.sequence, last_hash = last.hash
    FROM (SELECT DISTINCT ON (chain) chain, sequence, hash FROM placed
          ORDER BY chain, position DESC) AS last
    WHERE moving.chain = last.chain
)
SELECT id, chain, sequence, previous_hash, hash FROM inserted ORDER BY chain, sequence
"""


def _append_in_database(by_chain: dict[str, list[AuditEvent]]) -> set[str]:
    """Append each chain's events in one statement (see _APPEND_SQL); the chains it did.

    A chain without a head is left out (its events stay unsaved): the caller creates its head.
    The rows travel as one JSON parameter: a statement whose text is the same for any number
    of rows, rather than fourteen placeholders a row that the driver parses and adapts in
    Python (dashboard/runs/bulk.py says why that matters).
    """
    rows = []
    for chain, events in by_chain.items():
        for position, event in enumerate(events, start=1):
            before, between, after = _canonical_around_chain_place(event)
            rows.append(
                {
                    "chain": chain,
                    "position": position,
                    "before": before,
                    "between": between,
                    "after": after,
                    "tenant_id": event.tenant_id,
                    "actor_id": event.actor_id,
                    "actor_label": event.actor_label,
                    "action": event.action,
                    "object_type": event.object_type,
                    "object_id": event.object_id,
                    "summary": event.summary,
                    "ip_address": event.ip_address,
                    "created_at": event.created_at.isoformat(),
                }
            )
    with connection.cursor() as cursor:
        cursor.execute(_APPEND_SQL, [sorted(by_chain), json.dumps(rows, separators=(",", ":"))])
        placed = cursor.fetchall()
    by_chain_placed: dict[str, list[tuple]] = {}
    for row in placed:
        by_chain_placed.setdefault(row[1], []).append(row)
    for chain, chain_rows in by_chain_placed.items():
        for event, (pk, _, sequence, previous_hash, hash_) in zip(
            by_chain[chain], chain_rows, strict=True
        ):
            event.pk, event.sequence = pk, sequence
            event.previous_hash, event.hash = previous_hash, hash_
            if isinstance(event, AuditEvent):
                event._state.adding = False
                event._state.db = connection.alias
    return set(by_chain_placed)


def ensure_chain_heads(chains: Iterable[str]) -> None:
    """Create the heads these chains lack: a tenant's first event creates its main chain's head
    and every run lane's at once (verification expects them together)."""
    wanted: set[str] = set()
    for chain in chains:
        tenant_id = _tenant_id_of(chain)
        wanted |= set(tenant_chains(tenant_id)) if tenant_id is not None else {chain}
    missing = wanted - set(
        AuditChainHead.objects.filter(chain__in=wanted).values_list("chain", flat=True)
    )
    if not missing:
        return
    # A savepoint: a concurrent creation must not break the caller's transaction.
    with transaction.atomic():
        AuditChainHead.objects.bulk_create(
            [AuditChainHead(chain=chain) for chain in sorted(missing)], ignore_conflicts=True
        )


def _append(by_chain: dict[str, list[AuditEvent]]) -> None:
    """Number, hash and insert each chain's events after its head, and move the heads, in the
    caller's transaction."""
    now = timezone.now()
    for events in by_chain.values():
        for event in events:
            event.created_at = now
    if connection.vendor == "postgresql":
        done = _append_in_database(by_chain)
        if len(done) < len(by_chain):
            left = {chain: events for chain, events in by_chain.items() if chain not in done}
            ensure_chain_heads(left)
            if len(_append_in_database(left)) < len(left):
                raise RuntimeError(f"audit chains {sorted(left)} have no head")
        return
    # Other databases (SQLite for `make demo`): lock, hash here, insert, move the head.
    with transaction.atomic():
        for chain in sorted(by_chain):
            head = _locked_head(chain)
            _chain_onto(head, by_chain[chain])
            AuditEvent.objects.bulk_create(by_chain[chain])
            head.save(update_fields=["last_hash", "length"])
        for chain in by_chain:
            if _tenant_id_of(chain) is not None:
                ensure_chain_heads([chain])


def record_audit_event(
    *,
    actor: Actor,
    action: str,
    tenant: Tenant | None = None,
    object_type: str = "",
    object_id: str | int = "",
    summary: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to its chain (its tenant's, or its run's lane), in the caller's
    transaction.

    Call it inside the transaction that makes the change, so the change and its record commit or
    roll back together. The chain stays locked until that transaction ends: call it last.
    """
    chain = chain_for(tenant, object_type=object_type, object_id=object_id)
    event = _new_event(
        chain=chain,
        actor=actor,
        action=action,
        tenant=tenant,
        object_type=object_type,
        object_id=object_id,
        summary=summary,
    )
    _append({chain: [event]})
    return event


def save_with_audit(
    instance: Any,
    *,
    actor: Actor,
    action: str,
    tenant: Tenant | None,
    object_type: str,
    summary: dict[str, Any] | None = None,
) -> None:
    """Save a new `instance` and record `action` about it in one transaction: neither without
    the other. A unique constraint's IntegrityError reaches the caller, who knows what it means."""
    with transaction.atomic():
        instance.save()
        record_audit_event(
            actor=actor,
            action=action,
            tenant=tenant,
            object_type=object_type,
            object_id=instance.pk,
            summary=summary,
        )


def record_audit_events(events: Iterable[dict[str, Any]]) -> list[AuditEvent]:
    """Append many events, each given as record_audit_event's keyword arguments, in order.

    All of them go in one statement, each chain's rows in one go, so a worker recording a
    hundred state changes holds its tenant's chains for one round trip, not a hundred. Call it
    inside the transaction that makes the changes, last.
    """
    by_chain: dict[str, list[AuditEvent]] = {}
    ordered: list[AuditEvent] = []
    for fields in events:
        chain = chain_for(
            fields.get("tenant"),
            object_type=fields.get("object_type", ""),
            object_id=fields.get("object_id", ""),
        )
        event = _new_event(chain=chain, **fields)
        by_chain.setdefault(chain, []).append(event)
        ordered.append(event)
    if by_chain:
        _append(by_chain)
    return ordered


class _PendingRow:
    """An audit row on its way into the database: the fields the append reads and writes, without
    a model instance (Django's Model.__init__ and its signals cost more than the hashing)."""

    __slots__ = (
        "action",
        "actor_id",
        "actor_label",
        "chain",
        "created_at",
        "hash",
        "ip_address",
        "object_id",
        "object_type",
        "pk",
        "previous_hash",
        "sequence",
        "summary",
        "tenant_id",
    )


def _plain_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """_new_event's scrubbed, JSON-shaped copy; a summary of plain strings and numbers (the
    engine's state changes) is already JSON-shaped and skips the round trip."""
    scrubbed = scrub(summary)
    if all(
        isinstance(value, (str, int, float, bool)) or value is None for value in scrubbed.values()
    ):
        return scrubbed
    return json.loads(json.dumps(scrubbed, default=str))


def append_audit_events(events: Iterable[dict[str, Any]]) -> None:
    """record_audit_events for callers that do not need the rows back (the engine's batches).

    The same rows, chains, hashes and transaction rules; in PostgreSQL without building an
    AuditEvent per row.
    """
    if connection.vendor != "postgresql":
        record_audit_events(events)
        return
    by_chain: dict[str, list[Any]] = {}
    for fields in events:
        tenant = fields.get("tenant")
        object_type = fields.get("object_type", "")
        object_id = fields.get("object_id", "")
        actor: Actor = fields["actor"]
        user = actor.user if actor.user is not None and actor.user.is_authenticated else None
        chain = chain_for(tenant, object_type=object_type, object_id=object_id)
        row = _PendingRow()
        row.chain = chain
        row.tenant_id = tenant.pk if tenant is not None else None
        row.actor_id = user.pk if user is not None else None
        row.actor_label = actor.display[:150]
        row.action = fields["action"]
        row.object_type = object_type
        row.object_id = str(object_id)
        row.summary = _plain_summary(fields.get("summary") or {})
        row.ip_address = actor.ip_address or None
        by_chain.setdefault(chain, []).append(row)
    if by_chain:
        _append(by_chain)


@dataclass(frozen=True)
class AuditProblem:
    chain: str
    sequence: int | None
    event_id: int | None
    reason: str

    def __str__(self) -> str:
        where = f"row id {self.event_id} (sequence {self.sequence})" if self.event_id else ""
        return f"chain {self.chain}: {where} {self.reason}".replace("  ", " ")

    def as_finding(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "sequence": self.sequence,
            "event_id": self.event_id,
            "reason": self.reason,
        }


# Rows fetched per round trip while verifying: memory stays flat whatever the chain's length
# (5,000 rows are about 3 MB), and a long chain costs few round trips.
VERIFY_BATCH_SIZE = 5000
_VERIFY_FIELDS = (
    "pk",
    "sequence",
    "tenant_id",
    "actor_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "summary",
    "ip_address",
    "created_at",
    "previous_hash",
    "hash",
)
# The same columns read without the ORM (PostgreSQL): a million rows come in half the CPU time,
# with the summary as its JSON text (Django's psycopg setup loads jsonb as text) and the time as
# the text event_hash hashes (isoformat of the UTC time, microseconds): formatted by the
# database, on its own core, rather than parsed into a datetime and formatted again here.
_VERIFY_SQL = (
    "SELECT id, sequence, tenant_id, actor_id, actor_label, action, object_type, object_id,"
    " summary, ip_address,"
    " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'),"
    " previous_hash, hash FROM dashboard_auditevent"
    " WHERE chain = %s AND sequence >= %s ORDER BY sequence LIMIT %s"
)

_json_text = json.encoder.encode_basestring_ascii
_canonical_summary = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode
_load_summary = json.JSONDecoder().decode


def _row_hash(chain: str, row: tuple, *, raw: bool = False) -> str:
    """event_hash over a values_list row, without a model instance or a dict per row.

    The canonical JSON of event_hash written out by hand in its sorted key order (a million
    rows verify in a third of the time); test_audit checks both give the same hash. A `raw` row
    (_VERIFY_SQL's) holds the summary as its stored JSON text, parsed here, and the time as text.
    """
    (_, sequence, tenant, actor, actor_label, action, object_type, object_id, summary, ip,
     created_at, previous_hash, _) = row  # fmt: skip
    if raw:
        summary = _load_summary(summary)
    else:
        created_at = created_at.isoformat(timespec="microseconds")
    canonical = (
        f'{{"action":{_json_text(action)},"actor":{"null" if actor is None else actor},'
        f'"actor_label":{_json_text(actor_label)},"chain":{_json_text(chain)},'
        f'"created_at":"{created_at}",'
        f'"ip_address":{"null" if ip is None else _json_text(ip)},'
        f'"object_id":{_json_text(object_id)},"object_type":{_json_text(object_type)},'
        f'"previous_hash":{_json_text(previous_hash)},"sequence":{sequence},'
        f'"summary":{_canonical_summary(summary)},"tenant":{"null" if tenant is None else tenant}}}'
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# A chain at least this long is read by a helper thread, a batch ahead of the hashing.
PREFETCH_MIN_ROWS = 50_000


def _verify_batches(
    chain: str, from_sequence: int, expected_rows: int
) -> Iterator[tuple[list[tuple], bool]]:
    """The chain's rows from `from_sequence` on, batch after batch, each with whether it is raw
    (as _verify_batch returns them); a long chain read a batch ahead (_prefetched_batches)."""
    if expected_rows < PREFETCH_MIN_ROWS or connection.in_atomic_block:
        # Inside a transaction the walk must read what the transaction sees, which another
        # connection would not.
        return _batches_in_order(chain, from_sequence)
    return _prefetched_batches(chain, from_sequence)


def _batches_in_order(chain: str, from_sequence: int) -> Iterator[tuple[list[tuple], bool]]:
    """_verify_batch after _verify_batch, keyset on the sequence, until a short batch."""
    while True:
        batch, raw = _verify_batch(chain, from_sequence)
        yield batch, raw
        if len(batch) < VERIFY_BATCH_SIZE:
            return
        from_sequence = batch[-1][1] + 1


def _prefetched_batches(chain: str, from_sequence: int) -> Iterator[tuple[list[tuple], bool]]:
    """_batches_in_order read by a thread on its own connection, a batch ahead of the hashing:
    the database's reads (from disk, after a cold start) overlap the hashing, the longest part
    of a ten-million-row walk. At most two batches wait, so memory stays flat."""
    Item = tuple[list[tuple], bool] | BaseException
    ready: queue.Queue[Item] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def hand_over(item: Item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in _batches_in_order(chain, from_sequence):
                if not hand_over(item):
                    return
        except BaseException as error:
            # Whatever stopped the reader (the database gone, a bug) is raised in the walker.
            hand_over(error)
        finally:
            connections.close_all()  # this thread's own connection

    reader = threading.Thread(target=read, name=f"verify-{chain}", daemon=True)
    reader.start()
    try:
        while True:
            item = ready.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if len(item[0]) < VERIFY_BATCH_SIZE:
                return
    finally:
        stop.set()
        reader.join()


def _verify_batch(chain: str, from_sequence: int) -> tuple[list[tuple], bool]:
    """The next VERIFY_BATCH_SIZE rows of `chain` from `from_sequence` on, in sequence order;
    and whether they are raw rows (_VERIFY_SQL's, PostgreSQL) rather than the ORM's."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_VERIFY_SQL, [chain, from_sequence, VERIFY_BATCH_SIZE])
            return cursor.fetchall(), True
    rows = (
        AuditEvent.objects.filter(chain=chain, sequence__gte=from_sequence)
        .order_by("sequence")
        .values_list(*_VERIFY_FIELDS)[:VERIFY_BATCH_SIZE]
    )
    return list(rows), False


@dataclass
class ChainCheck:
    """What walking one chain found, and how far it got (the next checkpoint)."""

    chain: str
    problem: AuditProblem | None
    events_checked: int
    through_sequence: int
    through_hash: str


def verify_audit_chains() -> list[AuditProblem]:
    """Walk every chain from its first row; return the first problem of each broken chain, and
    the rows and heads of chains the trail does not have."""
    problems = []
    chains = _all_chains()  # before the heads, as in audit_verify
    heads = {head.chain: head for head in AuditChainHead.objects.all()}
    for chain in chains:
        check = _verify_chain(chain, heads.get(chain))
        if check.problem:
            problems.append(check.problem)
    return problems + _unknown_chain_problems(set(chains), heads)


def _all_chains() -> list[str]:
    # Every chain the trail has: one per tenant and run lane, plus the global one (a chain whose
    # head went missing still has rows to walk). Any other chain is a finding of its own
    # (_unknown_chain_problems), not a chain to walk.
    names = {GLOBAL_CHAIN} | {
        chain for pk in Tenant.objects.values_list("pk", flat=True) for chain in tenant_chains(pk)
    }
    return sorted(names)


def _chains_with_rows() -> list[str]:
    """The chain names the audit rows carry, without reading the rows: in PostgreSQL a skip scan
    of the (chain, sequence) index, one probe per chain."""
    if connection.vendor != "postgresql":
        return list(AuditEvent.objects.order_by("chain").values_list("chain", flat=True).distinct())
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH RECURSIVE chains (chain) AS (
                (SELECT chain FROM dashboard_auditevent ORDER BY chain LIMIT 1)
                UNION ALL
                SELECT (SELECT next.chain FROM dashboard_auditevent AS next
                        WHERE next.chain > chains.chain ORDER BY next.chain LIMIT 1)
                FROM chains WHERE chains.chain IS NOT NULL
            )
            SELECT chain FROM chains WHERE chain IS NOT NULL
            """
        )
        return [row[0] for row in cursor.fetchall()]


def _unknown_chain_problems(
    known: set[str], heads: dict[str, AuditChainHead]
) -> list[AuditProblem]:
    """Rows and heads of chains the trail does not have (no tenant's, not the global one).

    The audit service never writes them, and PostgreSQL refuses them to the app's login, so an
    owner, a superuser or a restored backup did. No walk would reach such rows, yet the audit
    page and the CSV show them under their tenant: each is reported on that tenant's main chain
    (the global one for rows without a tenant), where the audit page, the admins' email and the
    metrics tell.
    """
    problems = []
    unknown_rows = [chain for chain in _chains_with_rows() if chain not in known]
    if unknown_rows or set(heads) - known:
        # A tenant made since `known` was read may have written its first rows and heads since:
        # its chains are the trail's (the triggers give no other chain a head, so no rows).
        known = known | set(_all_chains())
    for chain in unknown_rows:
        if chain in known:
            continue
        per_tenant = (
            AuditEvent.objects.filter(chain=chain)
            .order_by("tenant_id")
            .values_list("tenant_id")
            .annotate(first_id=Min("id"), rows=Count("id"))
        )
        for tenant_id, first_id, rows in per_tenant:
            sequence = AuditEvent.objects.values_list("sequence", flat=True).get(pk=first_id)
            problems.append(
                AuditProblem(
                    GLOBAL_CHAIN if tenant_id is None else _tenant_chain(tenant_id, 0),
                    sequence,
                    first_id,
                    f"is in chain {chain!r}, which is no chain of the audit trail ({rows} such "
                    "row(s)): written outside the audit service",
                )
            )
    for chain in sorted(set(heads) - known):
        problems.append(
            AuditProblem(
                GLOBAL_CHAIN,
                None,
                None,
                f"holds a head for chain {chain!r}, which is no chain of the audit trail: "
                "written outside the audit service",
            )
        )
    return problems


def _verify_chain(
    chain: str,
    head: AuditChainHead | None,
    *,
    after_sequence: int = 0,
    after_hash: str = "",
) -> ChainCheck:
    """Walk `chain` after the checkpoint (`after_sequence`, whose row hashed to `after_hash`) in
    batches of VERIFY_BATCH_SIZE rows, keyset on the sequence; constant memory."""
    previous_hash = after_hash
    expected_sequence = after_sequence + 1
    checked = 0

    def result(problem: AuditProblem | None) -> ChainCheck:
        return ChainCheck(chain, problem, checked, expected_sequence - 1, previous_hash)

    if after_sequence:
        # The checkpoint's row must still be there, unchanged: a rewrite that reached back past
        # the checkpoint shows here even on an incremental run.
        anchor = (
            AuditEvent.objects.filter(chain=chain, sequence=after_sequence)
            .values_list(*_VERIFY_FIELDS)
            .first()
        )
        if anchor is None or anchor[-1] != after_hash or _row_hash(chain, anchor) != after_hash:
            return result(
                AuditProblem(
                    chain,
                    after_sequence,
                    anchor[0] if anchor else None,
                    "the row at the last checkpoint was removed or altered",
                )
            )
        # And every row before it must still be there. Removing one leaves the checkpoint's row
        # and every link after it intact, so count them instead of re-reading them: an
        # index-only scan of (chain, sequence), far cheaper than hashing the rows again.
        kept = AuditEvent.objects.filter(
            chain=chain, sequence__gte=1, sequence__lte=after_sequence
        ).count()
        if kept != after_sequence:
            return result(_first_gap(chain, after_sequence))
    expected_tenant = _tenant_id_of(chain)
    expected_rows = (head.length if head else 0) - after_sequence
    for batch, raw in _verify_batches(chain, expected_sequence, expected_rows):
        for row in batch:
            pk, sequence, stored_previous, stored_hash = row[0], row[1], row[-2], row[-1]
            if sequence != expected_sequence:
                return result(
                    AuditProblem(
                        chain,
                        sequence,
                        pk,
                        f"follows a gap: sequence {expected_sequence} was removed",
                    )
                )
            if stored_previous != previous_hash:
                return result(
                    AuditProblem(
                        chain,
                        sequence,
                        pk,
                        "does not link to the row before it (a row was removed or altered)",
                    )
                )
            if _row_hash(chain, row, raw=raw) != stored_hash:
                return result(AuditProblem(chain, sequence, pk, "was altered after it was written"))
            if row[2] != expected_tenant:
                # Hashed as it is, but the audit page shows it to another tenant than the chain's.
                return result(
                    AuditProblem(
                        chain,
                        sequence,
                        pk,
                        f"belongs to tenant {row[2]}, not to this chain's: "
                        "written outside the audit service",
                    )
                )
            previous_hash = stored_hash
            expected_sequence += 1
            checked += 1
    found = expected_sequence - 1
    if head is None:
        if found == 0:
            return result(None)  # a tenant with no trail yet (audit_trail_gaps judges that)
        return result(AuditProblem(chain, None, None, "has rows but no chain head"))
    if head.length < found:
        # Rows were appended while we walked (the head moved with them): verified up to where we
        # got, the rest next time. Rows past a head that did not move were written around it.
        length = AuditChainHead.objects.filter(chain=chain).values_list("length", flat=True).first()
        if length is not None and length < found:
            past = (
                AuditEvent.objects.filter(chain=chain, sequence=length + 1)
                .values_list("pk", flat=True)
                .first()
            )
            return result(
                AuditProblem(
                    chain,
                    length + 1,
                    past,
                    f"lies past the chain head ({length} rows): written outside the audit service",
                )
            )
        return result(None)
    if head.length != found or (head.length == found and head.last_hash != previous_hash):
        return result(
            AuditProblem(
                chain,
                head.length,
                None,
                f"ends early: the head expects {head.length} rows, found {found} "
                "(the last rows were removed or the trail was truncated)",
            )
        )
    return result(None)


def _first_gap(chain: str, through_sequence: int) -> AuditProblem:
    """The row after the first sequence missing from 1..through_sequence (whose row exists)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT id, sequence, expected FROM (
                SELECT id, sequence,
                       COALESCE(LAG(sequence) OVER (ORDER BY sequence), 0) + 1 AS expected
                FROM dashboard_auditevent
                WHERE chain = %s AND sequence >= 1 AND sequence <= %s
            ) AS numbered
            WHERE sequence <> expected ORDER BY sequence LIMIT 1
            """,
            [chain, through_sequence],
        )
        found = cursor.fetchone()
    if found is None:
        return AuditProblem(chain, None, None, "lost rows before the last checkpoint")
    pk, sequence, missing = found
    return AuditProblem(
        chain,
        sequence,
        pk,
        f"follows a gap: sequence {missing} was removed (before the last checkpoint)",
    )


def _checkpoints_problem(chain: str) -> AuditProblem | None:
    """The first earlier checkpoint of `chain` whose row is gone or no longer has the hash it had
    when it was verified; one indexed lookup per distinct checkpoint.

    Every verification recorded its checkpoint's hash, so a chain rewritten from some row on
    (renumbered after a removal, or re-hashed after an edit, up to its head) differs from them
    even when it links up again from row 1.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT checkpoint.through_sequence, event.id
            FROM (
                -- A chain nothing was appended to repeats its checkpoint night after night.
                SELECT DISTINCT through_sequence, through_hash FROM dashboard_auditverification
                WHERE chain = %s AND ok AND through_sequence > 0
            ) AS checkpoint
            LEFT JOIN dashboard_auditevent AS event
                ON event.chain = %s AND event.sequence = checkpoint.through_sequence
            WHERE event.hash IS NULL OR event.hash <> checkpoint.through_hash
            ORDER BY checkpoint.through_sequence LIMIT 1
            """,
            [chain, chain],
        )
        found = cursor.fetchone()
    if found is None:
        return None
    sequence, pk = found
    return AuditProblem(
        chain,
        sequence,
        pk,
        "differs from an earlier verification's checkpoint: the row was removed or the chain "
        "rewritten from it on",
    )


def audit_trail_gaps() -> list[AuditProblem]:
    """Tenants whose trail is shorter than what certainly happened to them.

    Every membership and every run was recorded when it was made, so a tenant with members but
    no chain at all, or with fewer audit rows than runs, lost rows: an emptied or truncated trail
    is a finding even when what is left of it links up.
    """
    problems = []
    lengths = dict(AuditChainHead.objects.values_list("chain", "length"))
    # Heads of tenants that do not exist are no chain of the trail (_unknown_chain_problems).
    tenant_ids = set(Tenant.objects.values_list("pk", flat=True))
    # A tenant's heads are made together with its first event: a main chain without all its run
    # lanes' heads lost one, rows and head, behind the triggers' back.
    for chain in sorted(lengths):
        tenant_id = _tenant_id_of(chain)
        if tenant_id not in tenant_ids or chain != _tenant_chain(tenant_id, 0):
            continue
        for lane in tenant_chains(tenant_id)[1:]:
            if lane not in lengths:
                problems.append(
                    AuditProblem(
                        lane,
                        None,
                        None,
                        "has no chain head although its tenant's trail has: "
                        "the lane's rows and head were removed",
                    )
                )
    with_members = set(Membership.objects.values_list("tenant_id", flat=True).distinct())
    run_counts = dict(Run.objects.order_by().values_list("tenant_id").annotate(count=Count("id")))
    for tenant_id in sorted(with_members | set(run_counts)):
        chain = _tenant_chain(tenant_id, 0)
        length = sum(lengths.get(name, 0) for name in tenant_chains(tenant_id))
        runs = run_counts.get(tenant_id, 0)
        if lengths.get(chain, 0) == 0:
            problems.append(
                AuditProblem(
                    chain,
                    None,
                    None,
                    f"is empty although the tenant has {runs} run(s) and members: "
                    "the audit trail was erased",
                )
            )
        elif length < runs:
            problems.append(
                AuditProblem(
                    chain,
                    None,
                    None,
                    f"holds {length} rows for {runs} runs, each of which was recorded: "
                    "rows were removed",
                )
            )
    return problems


@dataclass
class AuditReport:
    """The outcome of one `verify_audit` run over every chain."""

    problems: list[AuditProblem]
    events_checked: int
    chains: int
    verifications: list[AuditVerification]

    @property
    def ok(self) -> bool:
        return not self.problems


def audit_verify(*, full: bool = False) -> AuditReport:
    """Verify every chain (from its last good checkpoint, or from row 1 when `full`), check the
    trail is as long as what happened, and record one AuditVerification per chain.

    A nightly incremental run reads only what was appended since the previous one, and checks
    cheaply that the rows verified before are all still there (a count) and that every earlier
    checkpoint's row still has its hash; a full run (after an incident) re-reads everything,
    which also finds a verified row edited in place. Rows and heads of chains the trail does not
    have are findings either way. The admins of a tenant whose chain fails are told by email.
    """
    # The chains before the heads: a tenant made in between has heads but no chain yet, which
    # _unknown_chain_problems reads again, rather than a chain without heads.
    chains = _all_chains()
    heads = {head.chain: head for head in AuditChainHead.objects.all()}
    # Findings beside the walk, each on the chain whose verification (and audit page) shows it.
    beside: dict[str, list[AuditProblem]] = {}
    for problem in audit_trail_gaps() + _unknown_chain_problems(set(chains), heads):
        beside.setdefault(problem.chain, []).append(problem)
    checkpoints: dict[str, AuditVerification | None] = {}
    if not full:
        # One indexed lookup per chain (auditverification_chain); chains are tenants, not rows.
        for chain in chains:
            checkpoints[chain] = (
                AuditVerification.objects.filter(chain=chain, ok=True, through_sequence__gt=0)
                .order_by("-verified_at", "-id")
                .first()
            )
    problems: list[AuditProblem] = []
    verifications: list[AuditVerification] = []
    total = 0
    # With the chains a finding beside the walk names: a tenant made since `chains` and `heads`
    # were read has its findings recorded, and its walk waits for the next run.
    walked = set(chains)
    for chain in sorted(walked | set(beside)):
        checkpoint = checkpoints.get(chain)
        check = (
            _verify_chain(
                chain,
                heads.get(chain),
                after_sequence=checkpoint.through_sequence if checkpoint else 0,
                after_hash=checkpoint.through_hash if checkpoint else "",
            )
            if chain in walked
            else ChainCheck(chain, None, 0, 0, "")
        )
        total += check.events_checked
        chain_problems = [
            p for p in (check.problem, _checkpoints_problem(chain)) if p is not None
        ] + beside.get(chain, [])
        problems.extend(chain_problems)
        ok = not chain_problems
        verifications.append(
            AuditVerification(
                chain=chain,
                tenant_id=_tenant_id_of(chain),
                verified_at=timezone.now(),
                ok=ok,
                full=full or checkpoint is None,
                events_checked=check.events_checked,
                # A failed chain keeps its old checkpoint: the next run starts again from it.
                through_sequence=check.through_sequence if ok else 0,
                through_hash=check.through_hash if ok else "",
                findings=[p.as_finding() for p in chain_problems],
            )
        )
    AuditVerification.objects.bulk_create(verifications)
    for verification in verifications:
        if not verification.ok and verification.tenant_id is not None:
            _alert_tenant_admins(verification)
    return AuditReport(problems, total, len(verifications), verifications)


def _tenant_id_of(chain: str) -> int | None:
    prefix, _, rest = chain.partition(":")
    tenant_id = rest.partition(":")[0]
    return int(tenant_id) if prefix == "tenant" and tenant_id.isdigit() else None


def _alert_tenant_admins(verification: AuditVerification) -> None:
    admins = list(
        Membership.objects.filter(tenant_id=verification.tenant_id, role=Role.ADMIN)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    if not admins:
        return
    tenant = Tenant.objects.get(pk=verification.tenant_id)
    lines = [
        f"- {finding['reason']} (row {finding['event_id']})" for finding in verification.findings
    ]
    try:
        _send_alert(
            subject=f"[TriggerDesk] {tenant.name}: the audit trail failed verification",
            message=(
                f"The nightly verification of {tenant.name}'s audit trail at "
                f"{verification.verified_at:%Y-%m-%d %H:%M} UTC found:\n"
                + "\n".join(lines)
                + "\n\nSomeone with database access may have changed or removed audit rows. "
                "Keep a copy of the database as it is now and check who had access."
            ),
            from_email=getattr(settings, "DEFAULT_FROM_EMAIL", None),
            recipient_list=admins,
        )
    except Exception:
        # A broken mail server must not hide the finding: it is recorded and logged anyway.
        logger.exception("Could not email the audit verification failure to the tenant's admins")


def _send_alert(*, subject: str, message: str, from_email: str | None, recipient_list: list[str]):
    send_mail(subject, message, from_email, recipient_list)


def latest_audit_verification(*, tenant: Tenant) -> AuditVerification | None:
    """The newest verification of the tenant's trail (the audit page shows it): of its chains'
    newest verifications, a failed one if any, else the main chain's."""
    chains = tenant_chains(tenant.pk)
    newest_of_chain = (
        AuditVerification.objects.filter(chain=OuterRef("chain"))
        .order_by("-verified_at", "-id")
        .values("id")[:1]
    )
    newest = {
        verification.chain: verification
        for verification in AuditVerification.objects.filter(
            chain__in=chains, id=Subquery(newest_of_chain)
        )
    }
    failed = [newest[chain] for chain in chains if chain in newest and not newest[chain].ok]
    return failed[0] if failed else newest.get(chains[0])
