"""The tamper-evident audit trail.

Every row carries the hash of its chain's previous row and a hash over its own content; the
chain head (AuditChainHead) carries the newest hash and the length. Editing a row breaks its own
hash, removing one breaks its successor's link (or the head's length and hash when it was the
last). `verify_audit_chains` walks every chain and names the first row that does not fit.

Each tenant has its own chain ("tenant:<id>"), so tenants do not wait on each other's appends;
events without a tenant (logins, failed logins) go to the "global" chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from dashboard.models import AuditChainHead, AuditEvent, Tenant

REDACTED = "[redacted]"
SECRET_KEY_WORDS = ("password", "secret", "token", "api_key", "apikey", "brand_key", "x-api-key")
GLOBAL_CHAIN = "global"


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


def chain_for(tenant: Tenant | None) -> str:
    return f"tenant:{tenant.pk}" if tenant is not None else GLOBAL_CHAIN


def event_hash(event: AuditEvent) -> str:
    """SHA-256 over the row's content and its predecessor's hash, in a canonical JSON form."""
    content = {
        "chain": event.chain,
        "sequence": event.sequence,
        "tenant": event.tenant_id,
        "actor": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "summary": event.summary,
        "ip_address": event.ip_address,
        "created_at": event.created_at.isoformat(timespec="microseconds"),
        "previous_hash": event.previous_hash,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


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


def record_audit_event(
    *,
    actor: Actor,
    action: str,
    tenant: Tenant | None = None,
    object_type: str = "",
    object_id: str | int = "",
    summary: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to its tenant's chain, in the caller's transaction.

    Call it inside the transaction that makes the change, so the change and its record commit or
    roll back together.
    """
    chain = chain_for(tenant)
    event = _new_event(
        chain=chain,
        actor=actor,
        action=action,
        tenant=tenant,
        object_type=object_type,
        object_id=object_id,
        summary=summary,
    )
    with transaction.atomic():
        head = _locked_head(chain)
        _chain_onto(head, [event])
        event.save()
        head.save(update_fields=["last_hash", "length"])
    return event


def record_audit_events(events: Iterable[dict[str, Any]]) -> list[AuditEvent]:
    """Append many events, each given as record_audit_event's keyword arguments, in order.

    Each chain is locked once and its rows inserted in one statement, so a worker recording a
    hundred state changes holds its tenant's chain for one round trip, not a hundred. Chains are
    locked in name order so two callers never wait on each other crosswise. Call it inside the
    transaction that makes the changes.
    """
    by_chain: dict[str, list[AuditEvent]] = {}
    ordered: list[AuditEvent] = []
    for fields in events:
        chain = chain_for(fields.get("tenant"))
        event = _new_event(chain=chain, **fields)
        by_chain.setdefault(chain, []).append(event)
        ordered.append(event)
    if not ordered:
        return []
    with transaction.atomic():
        for chain in sorted(by_chain):
            head = _locked_head(chain)
            _chain_onto(head, by_chain[chain])
            AuditEvent.objects.bulk_create(by_chain[chain])
            head.save(update_fields=["last_hash", "length"])
    return ordered


@dataclass(frozen=True)
class AuditProblem:
    chain: str
    sequence: int | None
    event_id: int | None
    reason: str

    def __str__(self) -> str:
        where = f"row id {self.event_id} (sequence {self.sequence})" if self.event_id else ""
        return f"chain {self.chain}: {where} {self.reason}".replace("  ", " ")


def verify_audit_chains() -> list[AuditProblem]:
    """Walk every chain; return the first problem of each broken chain (empty when intact)."""
    problems: list[AuditProblem] = []
    chains = set(AuditChainHead.objects.values_list("chain", flat=True)) | set(
        AuditEvent.objects.values_list("chain", flat=True).distinct()
    )
    heads = {head.chain: head for head in AuditChainHead.objects.all()}
    for chain in sorted(chains):
        problem = _verify_chain(chain, heads.get(chain))
        if problem:
            problems.append(problem)
    return problems


def _verify_chain(chain: str, head: AuditChainHead | None) -> AuditProblem | None:
    previous_hash = ""
    expected_sequence = 1
    last: AuditEvent | None = None
    for event in AuditEvent.objects.filter(chain=chain).order_by("sequence").iterator(2000):
        if event.sequence != expected_sequence:
            return AuditProblem(
                chain,
                event.sequence,
                event.pk,
                f"follows a gap: sequence {expected_sequence} was removed",
            )
        if event.previous_hash != previous_hash:
            return AuditProblem(
                chain,
                event.sequence,
                event.pk,
                "does not link to the row before it (a row was removed or altered)",
            )
        if event_hash(event) != event.hash:
            return AuditProblem(chain, event.sequence, event.pk, "was altered after it was written")
        previous_hash = event.hash
        expected_sequence += 1
        last = event
    if head is None:
        return AuditProblem(chain, None, None, "has rows but no chain head")
    if head.length != (last.sequence if last else 0) or head.last_hash != previous_hash:
        return AuditProblem(
            chain,
            head.length,
            None,
            f"ends early: the head expects {head.length} rows, found {last.sequence if last else 0} "
            "(the last rows were removed)",
        )
    return None
