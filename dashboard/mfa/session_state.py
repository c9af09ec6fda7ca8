"""What a session knows about its person's second factor: whether they have one, and when they
last proved it. Kept in the session so the check on every request costs no query.

Stored under one key as {"user": id, "enrolled": bool, "passed_at": epoch seconds or None}. A
state of another user (a login over an old session) counts as none.
"""

from __future__ import annotations

from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest

from dashboard.clock import utc_now
from dashboard.mfa import selectors

STATE_KEY = "mfa"
# An approval (and removing a factor) needs a check at most this long ago.
STEP_UP_SECONDS = 10 * 60


def _user_id(request: HttpRequest) -> str | None:
    value = request.session.get(SESSION_KEY)
    return str(value) if value is not None else None


def state_of(request: HttpRequest) -> dict | None:
    """The session's second-factor state for its logged-in user (read from the database once per
    session when missing), None when nobody is logged in."""
    user_id = _user_id(request)
    if user_id is None:
        return None
    state = request.session.get(STATE_KEY)
    if not isinstance(state, dict) or state.get("user") != user_id:
        state = {
            "user": user_id,
            "enrolled": selectors.has_second_factor(user_id=int(user_id)),
            "passed_at": None,
        }
        request.session[STATE_KEY] = state
    return state


def start(request: HttpRequest) -> None:
    """At login: the second factor is not proved yet in this session."""
    request.session.pop(STATE_KEY, None)
    state_of(request)


def mark_passed(request: HttpRequest) -> None:
    """The person just proved a factor: the login is complete and a step-up is fresh."""
    state = state_of(request)
    if state is None:
        return
    state.update(enrolled=True, passed_at=utc_now().timestamp())
    request.session[STATE_KEY] = state


def set_enrolled(request: HttpRequest, *, enrolled: bool) -> None:
    """After a factor was added or the last one removed in this session."""
    state = state_of(request)
    if state is None:
        return
    state["enrolled"] = enrolled
    if not enrolled:
        state["passed_at"] = None
    request.session[STATE_KEY] = state


def is_enrolled(request: HttpRequest) -> bool:
    state = state_of(request)
    return bool(state and state["enrolled"])


def login_check_pending(request: HttpRequest) -> bool:
    """A person with a factor who has not proved it since logging in."""
    state = state_of(request)
    return bool(state and state["enrolled"] and not state["passed_at"])


def step_up_is_fresh(request: HttpRequest) -> bool:
    """A factor was proved in this session within the last STEP_UP_SECONDS."""
    state = state_of(request)
    if not state or not state["passed_at"]:
        return False
    return 0 <= utc_now().timestamp() - state["passed_at"] <= STEP_UP_SECONDS
