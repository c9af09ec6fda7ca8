"""Reads of sending pauses: the engine's check before a request leaves, the banner, the lists.

The engine's check and a pause serialise on a PostgreSQL advisory lock per tenant: the engine
holds it shared from its check to the commit that lets requests leave, a pause takes it
exclusive before its row is written. So a pause that commits before a send starts stops it,
and a send that started before the pause committed finishes and is recorded.
"""

from __future__ import annotations

from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Case, Q, QuerySet, Value, When

from dashboard.models import Tenant
from dashboard.pauses.models import SendingPause
from dashboard.runs.models import Run
from dashboard.runs.states import RunState

_TENANT_WIDE_FIRST = Case(When(connection__isnull=True, then=Value(0)), default=Value(1))
# The advisory lock's first key: "pause" (its second is the tenant's id).
PAUSE_LOCK_CLASS = 0x70617573


def lock_tenant_sending(tenant_id: int, *, exclusive: bool) -> None:
    """Take the tenant's pause lock until the end of the current transaction (PostgreSQL only;
    SQLite, for make demo, serialises all writers anyway)."""
    if db_connection.vendor != "postgresql" or not transaction.get_connection().in_atomic_block:
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with db_connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, %s)", [PAUSE_LOCK_CLASS, tenant_id])


def _open(tenant_id: int, connection_id: int | None) -> QuerySet[SendingPause]:
    scope = Q(connection__isnull=True)
    if connection_id is not None:
        scope |= Q(connection_id=connection_id)
    return SendingPause.objects.filter(tenant_id=tenant_id, resumed_at__isnull=True).filter(scope)


def sending_pause_for(
    *, tenant_id: int, connection_id: int | None = None, lock: bool = False
) -> SendingPause | None:
    """The open pause that stops sending through this connection (or the tenant's, which comes
    first), None when sending may go on. `lock`: hold the tenant's pause lock shared until the
    transaction ends, so no pause commits between this answer and the requests leaving.
    One indexed query (pause_open_by_tenant)."""
    if lock:
        lock_tenant_sending(tenant_id, exclusive=False)
    return (
        _open(tenant_id, connection_id)
        .select_related("tenant", "connection")
        # The tenant-wide pause first: its words are the ones a held run shows.
        .order_by(_TENANT_WIDE_FIRST, "-paused_at")
        .first()
    )


def open_pauses(*, tenant: Tenant) -> list[SendingPause]:
    """The tenant's open pauses, tenant-wide first (the banner on every page, the settings)."""
    return list(
        SendingPause.objects.filter(tenant=tenant, resumed_at__isnull=True)
        .select_related("tenant", "connection")
        .order_by(_TENANT_WIDE_FIRST, "-paused_at", "-id")
    )


def open_pause(*, tenant: Tenant, connection_id: int | None = None) -> SendingPause | None:
    """The open pause of exactly this scope (the tenant, or one connection), or None."""
    found = SendingPause.objects.filter(tenant=tenant, resumed_at__isnull=True).select_related(
        "tenant", "connection"
    )
    if connection_id is None:
        return found.filter(connection__isnull=True).first()
    return found.filter(connection_id=connection_id).first()


def paused_scopes() -> tuple[set[int], set[int]]:
    """(paused tenant ids, paused connection ids) over every tenant: the sweeper and the
    scheduler leave these alone. One query over the few open pauses."""
    tenants: set[int] = set()
    connections: set[int] = set()
    for tenant_id, connection_id in SendingPause.objects.filter(
        resumed_at__isnull=True
    ).values_list("tenant_id", "connection_id"):
        if connection_id is None:
            tenants.add(tenant_id)
        else:
            connections.add(connection_id)
    return tenants, connections


def held_runs(*, pause: SendingPause) -> QuerySet[Run]:
    """The queued runs this pause holds (oldest first): what resuming sends, or may cancel."""
    runs = Run.objects.filter(tenant_id=pause.tenant_id, state=RunState.QUEUED)
    if pause.connection_id is not None:
        runs = runs.filter(connection_id=pause.connection_id)
    return runs.select_related("connection").order_by("created_at", "id")


def pause_history(*, tenant: Tenant, limit: int = 20) -> list[SendingPause]:
    """The tenant's pauses, newest first (open and resumed)."""
    return list(
        SendingPause.objects.filter(tenant=tenant)
        .select_related("tenant", "connection")
        .order_by("-paused_at", "-id")[:limit]
    )
