"""Reads, scoped to the tenant the caller is allowed to see."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Exists, Model, OuterRef, QuerySet, Subquery
from django.http import Http404
from django.utils.translation import gettext as _

from dashboard.models import (
    AuditEvent,
    ConnectionSecret,
    Membership,
    Role,
    Tenant,
    VendorConnection,
)
from dashboard.pauses.models import SendingPause


def membership_list_for_user(user: AbstractBaseUser) -> QuerySet[Membership]:
    """The user's memberships, for the tenant switcher, each with `tenant_sending_paused`: the
    banner on every page asks for the pauses' details only when its tenant has one (no query
    of its own on a page whose tenant is not paused)."""
    return (
        Membership.objects.filter(user=user)
        .select_related("tenant")
        .annotate(
            tenant_sending_paused=Exists(
                SendingPause.objects.filter(tenant=OuterRef("tenant"), resumed_at__isnull=True)
            )
        )
        .order_by("tenant__name")
    )


def user_administers_a_tenant(*, user: AbstractBaseUser) -> bool:
    """Whether `user` is an admin of at least one tenant."""
    return Membership.objects.filter(user=user, role=Role.ADMIN).exists()


def membership_for(*, user: AbstractBaseUser, tenant_slug: str) -> Membership:
    """The user's membership in the tenant with this slug; 404 when there is none."""
    try:
        return Membership.objects.select_related("tenant").get(user=user, tenant__slug=tenant_slug)
    except Membership.DoesNotExist:
        raise Http404(_("No such tenant.")) from None


def membership_with_user(*, user_id: int, tenant_slug: str) -> Membership | None:
    """The membership of user `user_id` in the tenant with this slug, with its user and tenant
    (one query: a live fragment's whole access check); None when there is none."""
    return (
        Membership.objects.select_related("user", "tenant")
        .filter(user_id=user_id, tenant__slug=tenant_slug)
        .first()
    )


def with_api_key[Row: Model](rows: QuerySet[Row], *, connection: str = "pk") -> QuerySet[Row]:
    """`rows` with the stored API key of their connection (`connection` is the path to its id)
    read in the same query: `api_key_encrypted` (decrypt it through
    dashboard.tenancy.services.connection_secrets) and `api_key_set_at`. A page polled every few
    seconds that calls a vendor saves the query for the connection's secrets."""
    api_key = ConnectionSecret.objects.filter(connection=OuterRef(connection), name="api_key")
    return rows.annotate(
        api_key_encrypted=Subquery(api_key.values("encrypted_value")[:1]),
        api_key_set_at=Subquery(api_key.values("set_at")[:1]),
    )


def member_list(*, tenant: Tenant) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(tenant=tenant).select_related("user").order_by("user__username")
    )


def member_get(*, tenant: Tenant, membership_id: int) -> Membership:
    try:
        return Membership.objects.select_related("user", "tenant").get(
            tenant=tenant, pk=membership_id
        )
    except Membership.DoesNotExist:
        raise Http404(_("No such member.")) from None


def connection_list(*, tenant: Tenant, kind: str | None = None) -> QuerySet[VendorConnection]:
    connections = VendorConnection.objects.filter(tenant=tenant).prefetch_related("secrets")
    if kind:
        connections = connections.filter(kind=kind)
    return connections.order_by("name")


def connection_get(*, tenant: Tenant, connection_id: int) -> VendorConnection:
    try:
        return VendorConnection.objects.prefetch_related("secrets").get(
            tenant=tenant, pk=connection_id
        )
    except VendorConnection.DoesNotExist:
        raise Http404(_("No such connection.")) from None


def audit_event_list(
    *,
    tenant: Tenant,
    action: str = "",
    actor: str = "",
    object_type: str = "",
    object_id: str = "",
    created_from: date | None = None,
    created_to: date | None = None,
) -> QuerySet[AuditEvent]:
    """The tenant's audit events, newest first, optionally filtered.

    Each filter matches an index on (tenant, filter, created_at, id) (see AuditEvent.Meta), so a
    keyset page of it reads a page of rows: `actor` is the exact name (as the actor list offers
    it), `action` is exact, or a prefix when it ends with "." ("run." for every run action).
    """
    events = AuditEvent.objects.filter(tenant=tenant)
    if action:
        if action.endswith("."):
            events = events.filter(action__startswith=action)
        else:
            events = events.filter(action=action)
    if actor:
        events = events.filter(actor_label=actor)
    if object_type:
        events = events.filter(object_type=object_type)
    if object_id:
        events = events.filter(object_id=object_id)
    if created_from:
        events = events.filter(created_at__gte=datetime.combine(created_from, time.min, UTC))
    if created_to:
        events = events.filter(
            created_at__lt=datetime.combine(created_to + timedelta(days=1), time.min, UTC)
        )
    return events.order_by("-created_at", "-id")


def audit_actor_choices(*, tenant: Tenant) -> list[str]:
    """Names the audit page's "who" filter offers: the members (from the memberships, not a
    scan of the trail); any other name (cli:…, system) can be typed."""
    return list(
        Membership.objects.filter(tenant=tenant)
        .order_by("user__username")
        .values_list("user__username", flat=True)
    )


# A tenant has a few dozen kinds of action; the cap only bounds a pathological trail.
MAX_ACTION_CHOICES = 300


def audit_action_choices(*, tenant: Tenant) -> list[str]:
    """What the audit page's "action" filter offers: every action in the tenant's trail, then
    each prefix ("run." for every run action), sorted.

    A skip scan of the (tenant, action, …) index: one index probe per distinct action, so it
    stays cheap at ten million events where a DISTINCT would read them all.
    """
    sql = """
        WITH RECURSIVE actions(action, n) AS (
            SELECT (SELECT action FROM dashboard_auditevent WHERE tenant_id = %s ORDER BY action LIMIT 1), 1
            UNION ALL
            SELECT (SELECT action FROM dashboard_auditevent WHERE tenant_id = %s AND action > actions.action
                    ORDER BY action LIMIT 1), n + 1
            FROM actions WHERE actions.action IS NOT NULL AND n < %s
        )
        SELECT action FROM actions WHERE action IS NOT NULL
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [tenant.pk, tenant.pk, MAX_ACTION_CHOICES])
        actions = [row[0] for row in cursor.fetchall()]
    prefixes = {action.split(".")[0] + "." for action in actions if "." in action}
    return sorted(set(actions) | prefixes)


# What a summary's top-level "from"/"to" pair is a change of; a run's state otherwise.
TOP_LEVEL_CHANGE = {"member.role_changed": "role", "run.parameters_changed": "parameters"}


def audit_changes(*, action: str, summary: object) -> list[tuple[str, str, str | None]]:
    """What an audit row's summary says changed, for people: (field, old, new) for a change
    ("state: queued → sending", "base_url: a → b"), (field, value, None) for a plain fact."""
    if not isinstance(summary, dict):
        return [("", _plain(summary), None)] if summary not in (None, "") else []
    rows: list[tuple[str, str, str | None]] = []
    if "from" in summary and "to" in summary:
        field = TOP_LEVEL_CHANGE.get(action, "state")
        rows.append((field, _plain(summary["from"]), _plain(summary["to"])))
    for key, value in summary.items():
        if key in ("from", "to"):
            continue
        if isinstance(value, dict) and set(value) == {"from", "to"}:
            rows.append((str(key), _plain(value["from"]), _plain(value["to"])))
        else:
            rows.append((str(key), _plain(value), None))
    return rows


def _plain(value: object) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return str(value)
