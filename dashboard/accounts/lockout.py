"""Who is locked out after failed logins, and what the lockout page says (django-axes).

Two rules, so that one person cannot lock a whole office (everyone behind one NAT or proxy
shares an address) by typing made-up user names:

- a user name from one address: AXES_FAILURE_LIMIT failures (5) lock that name at that address
  only; the same person elsewhere, and everyone else at that address, can still log in;
- a user name from anywhere: LOGIN_USERNAME_FAILURE_LIMIT failures (20, higher) lock the name
  everywhere, against guessing spread over many addresses.

A failure refused because the name is already locked is not counted (settings:
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False), so the failures one address adds to a
name never pass AXES_FAILURE_LIMIT: one address alone can never lock a name everywhere.

django-axes counts per rule (AXES_LOCKOUT_PARAMETERS) but compares every count with one limit;
this handler gives each rule its own limit and remembers which one locked, so the page and the
audit row name the right thing and the right unlock command (`manage.py unlock_login`, which
lifts a lockout through axes and audits it: dashboard.tenancy.services.login_unlock).
"""

from __future__ import annotations

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_lockout_parameters
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from dashboard.clock import utc_now

USERNAME_AND_ADDRESS = "username_and_address"
USERNAME = "username"


def _rule_name(parameter: str | list[str]) -> str:
    if isinstance(parameter, str):
        return parameter
    return (
        USERNAME_AND_ADDRESS
        if set(parameter) == {"username", "ip_address"}
        else "+".join(parameter)
    )


def rule_limit(rule: str) -> int:
    """The failures that lock under `rule`."""
    if rule == USERNAME:
        return settings.LOGIN_USERNAME_FAILURE_LIMIT
    return settings.AXES_FAILURE_LIMIT


def locked_everywhere(username: str) -> bool:
    """Whether the user-name rule locks `username` now: LOGIN_USERNAME_FAILURE_LIMIT failures
    from any address within the cool-off (what LoginLockoutHandler counts for that rule)."""
    since = utc_now() - settings.AXES_COOLOFF_TIME
    failures = AccessAttempt.objects.filter(username=username, attempt_time__gte=since).aggregate(
        total=Sum("failures_since_start")
    )["total"]
    return (failures or 0) >= rule_limit(USERNAME)


class LoginLockoutHandler(AxesDatabaseHandler):
    """axes' database handler with one limit per lockout rule (see the module docstring)."""

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        username = get_client_username(request, credentials)
        parameters = get_lockout_parameters(request, credentials)
        attempts_list = self.get_user_attempts(request, credentials)
        worst = 0
        locked_by = ""
        for parameter, attempts in zip(parameters, attempts_list, strict=True):
            rule = _rule_name(parameter)
            if rule == USERNAME and not username:
                continue  # a name-less attempt must not count against every name-less attempt
            failures = attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            limit = rule_limit(rule)
            # Scaled to AXES_FAILURE_LIMIT, the one limit axes compares with.
            scaled = (
                failures
                if limit == settings.AXES_FAILURE_LIMIT
                else (settings.AXES_FAILURE_LIMIT if failures >= limit else 0)
            )
            # When both rules lock, name the user-name rule: its unlock command also clears the
            # address's count, while the other one would leave the name locked.
            if failures >= limit and (rule == USERNAME or not locked_by):
                locked_by = rule
            worst = max(worst, scaled)
        request.axes_lockout_rule = locked_by
        return worst


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials=None
) -> HttpResponse:
    """The lockout page: which rule locked, for how long, and the command that unlocks it."""
    username = get_client_username(request, credentials) or ""
    address = getattr(request, "axes_ip_address", None) or ""
    rule = getattr(request, "axes_lockout_rule", "") or USERNAME_AND_ADDRESS
    # The audited command (axes' own reset commands leave no audit row).
    if rule == USERNAME:
        unlock = f"manage.py unlock_login --username {username} --as <admin>"
    else:
        unlock = f"manage.py unlock_login --username {username} --ip {address} --as <admin>"
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return render(
        request,
        "registration/locked_out.html",
        {
            "rule": rule,
            "locked_username": username,
            "locked_address": address,
            "failure_limit": rule_limit(rule),
            "cooloff_minutes": minutes,
            "unlock_command": unlock,
        },
        status=settings.AXES_HTTP_RESPONSE_CODE,
    )
