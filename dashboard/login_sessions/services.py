"""Recording login sessions and ending them.

Ending a session deletes it from the session store (the database row and its Redis copy,
dashboard/accounts/sessions.py): the next request of that browser carries a key the store no
longer knows, so it is logged out at once, whatever page it asks for. The LoginSession row goes
too; the audit trail keeps who ended what and why.

Who may end what (issue 26, item 3):
- a person ends any of their own sessions, or all the others at once;
- an admin of a tenant ends all sessions of a member of that tenant. Sessions belong to the
  person, not to a tenant, so this ends their sessions everywhere; it is audited in the admin's
  tenant. An admin can never see or end the sessions of someone outside their tenants;
- removing a member ends all their sessions and revokes their API tokens of that tenant;
- changing or resetting a password ends every other session of the account.

A session id that is not the caller's own (guessed, or another person's) is refused with the
same words whether or not it exists, nothing is ended, and the attempt is audited as
`session.end_refused`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from importlib import import_module

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils.translation import gettext as _
from django.utils.translation import override

from dashboard.api.models import ApiToken
from dashboard.api.services import api_token_revoke
from dashboard.audit.trail import Actor, record_audit_event
from dashboard.clock import utc_now
from dashboard.login_sessions.devices import device_parts
from dashboard.login_sessions.models import LoginSession
from dashboard.login_sessions.selectors import current_key_hash, session_key_hash, session_list
from dashboard.models import Membership, Tenant
from dashboard.tenancy.permissions import require_tenant_admin

SEEN_EVERY_SECONDS = 60
USER_AGENT_MAX_CHARS = 500
SEEN_MEMO_SIZE = 10_000


class SessionEndRefused(PermissionDenied):
    """The session named is not one of the caller's own (or no longer exists): nothing ended."""

    code = "session_not_found"


def _session_store():
    return import_module(settings.SESSION_ENGINE).SessionStore


class _SeenMemo:
    """Which sessions this process noted as seen, and when (monotonic seconds).

    Kept in the process, not in Redis: a signed-in request then costs no round trip at all, and
    a session is written at most once a minute per web process (a handful of writes a minute
    where Redis kept it to one). Bounded: the oldest sessions are forgotten first, which only
    means one early write for them.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.noted: OrderedDict[str, float] = OrderedDict()
        self.lock = threading.Lock()

    def due(self, key_hash: str, now: float) -> bool:
        """True when `key_hash` was not noted in the last SEEN_EVERY_SECONDS (and notes it)."""
        with self.lock:
            last = self.noted.get(key_hash)
            if last is not None and now - last < SEEN_EVERY_SECONDS:
                return False
            self.noted[key_hash] = now
            self.noted.move_to_end(key_hash)
            while len(self.noted) > self.size:
                self.noted.popitem(last=False)
            return True

    def clear(self) -> None:
        with self.lock:
            self.noted.clear()


_seen = _SeenMemo(size=SEEN_MEMO_SIZE)


def _remember_seen(key_hash: str) -> bool:
    """True when this process did not note the session as seen in the last minute (and notes
    it now)."""
    return _seen.due(key_hash, time.monotonic())


def login_session_record(
    *, user: AbstractBaseUser, session_key: str, ip_address: str | None, user_agent: str
) -> LoginSession:
    """Record a new login's session (called on every login, whatever signed the person in)."""
    now = utc_now()
    key_hash = session_key_hash(session_key)
    user_agent = (user_agent or "")[:USER_AGENT_MAX_CHARS]
    browser, system = device_parts(user_agent)
    session, _created = LoginSession.objects.update_or_create(
        key_hash=key_hash,
        defaults={
            "user": user,
            "created_at": now,
            "last_seen_at": now,
            "ip_address": ip_address,
            "user_agent": user_agent,
            "browser": browser,
            "operating_system": system,
        },
    )
    _remember_seen(key_hash)
    return session


def login_session_seen(
    *, user_id: int, session_key: str, ip_address: str | None, user_agent: str
) -> None:
    """Note that the session was used now, from this address: at most one write a minute per
    session and web process, never one per request."""
    key_hash = session_key_hash(session_key)
    if not _remember_seen(key_hash):
        return
    now = utc_now()
    updated = LoginSession.objects.filter(key_hash=key_hash, user_id=user_id).update(
        last_seen_at=now, ip_address=ip_address
    )
    # A session from before sessions were recorded is recorded at its first use; one ended while
    # this request ran is no longer in the store and stays ended.
    if not updated and _session_store()().exists(session_key):
        user_agent = (user_agent or "")[:USER_AGENT_MAX_CHARS]
        browser, system = device_parts(user_agent)
        LoginSession.objects.get_or_create(
            key_hash=key_hash,
            defaults={
                "user_id": user_id,
                "created_at": now,
                "last_seen_at": now,
                "ip_address": ip_address,
                "user_agent": user_agent,
                "browser": browser,
                "operating_system": system,
            },
        )


def login_session_forget(*, session_key: str | None) -> None:
    """Drop the record of a session its person logged out of (the logout is audited already)."""
    if session_key:
        LoginSession.objects.filter(key_hash=session_key_hash(session_key)).delete()


def login_session_rekey(*, old_key: str | None, new_key: str | None) -> None:
    """Keep the record of a session whose key changed (a password change gives the browser that
    changed it a new key): the same login, the same row."""
    if old_key and new_key and old_key != new_key:
        LoginSession.objects.filter(key_hash=session_key_hash(old_key)).update(
            key_hash=session_key_hash(new_key)
        )


def _store_keys(key_hashes: set[str], *, live_only: bool = False) -> list[str]:
    """The session store's keys whose hashes are these (only hashes are kept here); with
    `live_only`, only those of sessions that have not expired.

    One pass over the store's table, hashed by PostgreSQL (a few milliseconds per ten thousand
    sessions); SQLite (the demo) has no SHA-256, so Python hashes there. Only the sessions pages
    and ending sessions pay for it, never any other page.
    """
    if not key_hashes:
        return []
    model = _session_store().get_model_class()
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT session_key FROM {table} "  # noqa: S608 - our own table's name
                "WHERE encode(sha256(convert_to(session_key, 'UTF8')), 'hex') = ANY(%s) "
                "AND (%s OR expire_date > %s)",
                [sorted(key_hashes), not live_only, utc_now()],
            )
            return [row[0] for row in cursor.fetchall()]
    stored = model.objects.all()
    if live_only:
        stored = stored.filter(expire_date__gt=utc_now())
    return [
        key
        for key in stored.values_list("session_key", flat=True).iterator()
        if session_key_hash(key) in key_hashes
    ]


def live_sessions(*, user: AbstractBaseUser) -> list[LoginSession]:
    """The person's sessions that the store still holds and that have not expired, most
    recently seen first; records of the others are dropped on the way (a session that expired,
    or that Django flushed when someone else logged in on that browser without logging out)."""
    recorded = list(session_list(user=user))
    live = {
        session_key_hash(key) for key in _store_keys({s.key_hash for s in recorded}, live_only=True)
    }
    gone = [session.pk for session in recorded if session.key_hash not in live]
    if gone:
        LoginSession.objects.filter(pk__in=gone).delete()
    return [session for session in recorded if session.key_hash in live]


def _end(sessions: Iterable[LoginSession]) -> list[dict]:
    """Delete these sessions from the store (database and cache) and their records; what they
    were, for the audit row. Call inside the transaction that audits it."""
    sessions = list(sessions)
    if not sessions:
        return []
    keys = _store_keys({session.key_hash for session in sessions})
    store = _session_store()()
    for key in keys:
        store.delete(key)

    def forget_cached_copies() -> None:
        # Again after the commit: a request that read the row just before it went may have put
        # a copy back in Redis meanwhile (the database row is gone by now: a no-op there).
        for key in keys:
            store.delete(key)

    transaction.on_commit(forget_cached_copies)
    LoginSession.objects.filter(pk__in=[session.pk for session in sessions]).delete()
    # In English, whoever reads the trail later.
    with override("en"):
        return [
            {"session": session.pk, "device": session.device, "ip_address": session.ip_address}
            for session in sessions
        ]


def _signed_in_user(actor: Actor) -> AbstractBaseUser:
    user = actor.user
    if user is None or not user.is_authenticated:
        raise PermissionDenied(_("Only a signed-in person can end sessions."))
    return user


def session_end(
    *,
    actor: Actor,
    session_id: int,
    current_session_key: str | None = None,
    tenant: Tenant | None = None,
) -> LoginSession:
    """End one of the actor's own sessions (not the one in use: logging out does that).

    Another person's session id, or one that does not exist, is refused with the same message
    (SessionEndRefused), nothing is ended, and the attempt is audited as `session.end_refused`.
    `tenant`: the chain the rows go to when the call came through a tenant (an API token);
    otherwise the global one, like logins.
    """
    user = _signed_in_user(actor)
    session = LoginSession.objects.filter(pk=session_id).select_related("user").first()
    if session is None or session.user_id != user.pk:
        record_audit_event(
            actor=actor,
            tenant=tenant,
            action="session.end_refused",
            object_type="login_session",
            object_id=session_id,
            summary={
                "session": session_id,
                "refused": "another person's session"
                if session is not None
                else "no such session (ended already, or never existed)",
                "owner": session.user.get_username() if session is not None else None,
            },
        )
        raise SessionEndRefused(
            _(
                "Session %(id)s is not one of your sessions (or has ended already). Nothing was ended."
            )
            % {"id": session_id}
        )
    if current_session_key and session.key_hash == session_key_hash(current_session_key):
        raise ValidationError(
            _("This is the session you are using now; log out to end it."),
            code="current_session",
        )
    with transaction.atomic():
        ended = _end([session])
        record_audit_event(
            actor=actor,
            tenant=tenant,
            action="session.ended",
            object_type="login_session",
            object_id=session.pk,
            summary={"user": user.get_username(), "ended": ended, "why": "ended by its person"},
        )
    return session


def sessions_end_others(
    *, actor: Actor, current_session_key: str | None, tenant: Tenant | None = None
) -> int:
    """End every session of the actor but the one in use; how many. Audited (even none)."""
    user = _signed_in_user(actor)
    keep = current_key_hash(current_session_key)
    with transaction.atomic():
        others = LoginSession.objects.filter(user=user).exclude(key_hash=keep)
        ended = _end(others.select_for_update())
        record_audit_event(
            actor=actor,
            tenant=tenant,
            action="session.ended_others",
            object_type="user",
            object_id=user.pk,
            summary={"user": user.get_username(), "ended": ended, "sessions": len(ended)},
        )
    return len(ended)


def member_sessions_end(*, actor: Actor, membership: Membership) -> int:
    """End every session of a member (an admin of the member's tenant); how many.

    The sessions are the person's, so all of them end, whichever tenant they were used for;
    audited as `member.sessions_ended` in the member's (the admin's) tenant, even when none.
    """
    require_tenant_admin(
        actor,
        membership.tenant,
        refusal=_("Only an admin of %(tenant)s can end the sessions of its members.")
        % {"tenant": membership.tenant.name},
    )
    with transaction.atomic():
        ended = _end(LoginSession.objects.filter(user_id=membership.user_id).select_for_update())
        record_audit_event(
            actor=actor,
            tenant=membership.tenant,
            action="member.sessions_ended",
            object_type="membership",
            object_id=membership.pk,
            summary={
                "user": membership.user.get_username(),
                "ended": ended,
                "sessions": len(ended),
            },
        )
    return len(ended)


def member_access_end(*, actor: Actor, membership: Membership) -> tuple[int, int]:
    """What removing a member takes away at once: all their sessions, and their API tokens of
    the member's tenant (revoked, so adding the person back does not revive them). Returns
    (sessions ended, tokens revoked); each is audited. Call inside the removal's transaction."""
    ended = _end(LoginSession.objects.filter(user_id=membership.user_id).select_for_update())
    if ended:
        record_audit_event(
            actor=actor,
            tenant=membership.tenant,
            action="member.sessions_ended",
            object_type="membership",
            object_id=membership.pk,
            summary={
                "user": membership.user.get_username(),
                "ended": ended,
                "sessions": len(ended),
                "why": "removed from the tenant",
            },
        )
    tokens = ApiToken.objects.filter(
        user_id=membership.user_id, tenant_id=membership.tenant_id, revoked_at__isnull=True
    ).select_related("tenant")
    revoked = 0
    for token in tokens:
        api_token_revoke(actor=actor, token=token)
        revoked += 1
    return len(ended), revoked


def sessions_end_after_password_change(
    *, user: AbstractBaseUser, current_session_key: str | None, ip_address: str | None, why: str
) -> int:
    """A changed (or reset) password ends every other session of the account, in the store
    too (Django's own check would only refuse them at their next request); the one in use
    stays. Audited when any ended."""
    keep = current_key_hash(current_session_key)
    with transaction.atomic():
        others = LoginSession.objects.filter(user=user).exclude(key_hash=keep)
        ended = _end(others.select_for_update())
        if ended:
            record_audit_event(
                actor=Actor(user=user, ip_address=ip_address),
                action="session.ended_others",
                object_type="user",
                object_id=user.pk,
                summary={"user": user.get_username(), "ended": ended, "why": why},
            )
    return len(ended)
