"""Shared bits of the ops commands: who is acting (a command acts as the member named by --as,
so the same role rules and the four-eyes rule apply as in the browser; the audit row names that
member and the operating-system user who ran it), reading a secret safely, asking for a
confirmation and following a run to its outcome."""

from __future__ import annotations

import getpass
import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from dashboard.audit.trail import Actor
from dashboard.models import Membership, Tenant
from dashboard.runs.models import Run
from dashboard.runs.states import RunState


def os_user() -> str:
    """The operating-system user running the command (what shell access proves)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def command_label(command_name: str, *, acting_as: str = "") -> str:
    """The audit label of a command: `cli:<os-user>:<command>`, after the member named by --as
    when there is one. The command-line part is always kept whole (audit labels are at most 150
    characters): it is the only proof of who ran it, since --as proves nothing by itself."""
    cli = f"cli:{os_user()}:{command_name}"[:140]
    if not acting_as:
        return cli
    room = 150 - len(cli) - 3
    return f"{acting_as[:room]} ({cli})"


def command_actor(command_name: str) -> Actor:
    """Commands act as the operating-system user who ran them, labelled as such in the audit."""
    return Actor(label=command_label(command_name))


def acting_user(username: str, command_name: str) -> Actor:
    """The active user named by --as, labelled `<user> (cli:<os-user>:<command>)`, for commands
    that act outside any one tenant; the service decides what that user may do."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None or not user.is_active:
        raise CommandError(f"No active user named {username!r}.")
    return Actor(user=user, label=command_label(command_name, acting_as=user.get_username()))


def tenant_by_slug(slug: str) -> Tenant:
    try:
        return Tenant.objects.get(slug=slug)
    except Tenant.DoesNotExist:
        raise CommandError(f"No tenant with slug {slug!r}.") from None


def acting_as(username: str, tenant: Tenant, command_name: str) -> tuple[Actor, Membership]:
    """The member `username` of `tenant` as an actor labelled with the OS user and command."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None or not user.is_active:
        raise CommandError(f"No active user named {username!r}.")
    membership = (
        Membership.objects.filter(user=user, tenant=tenant).select_related("tenant").first()
    )
    if membership is None:
        raise CommandError(f"{username} is not a member of {tenant.name}.")
    label = command_label(command_name, acting_as=user.get_username())
    return Actor(user=user, label=label), membership


def error_text(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(error.messages)
    return str(error)


def confirmed(prompt: str, *, expected: str, stdin: TextIO | None = None) -> bool:
    """Ask on a terminal; False without one (a script must pass the explicit option instead)."""
    stdin = stdin or sys.stdin
    if not stdin.isatty():
        return False
    sys.stdout.write(prompt)
    sys.stdout.flush()
    return stdin.readline().strip().lower() == expected.lower()


def read_secret(*, name: str, env_var: str | None, stdin_allowed: bool = True) -> str:
    """A secret from an environment variable or standard input, never from the command line."""
    if env_var:
        value = os.environ.get(env_var)
        if value is None:
            raise CommandError(f"Environment variable {env_var} is not set.")
        return value.strip()
    if not stdin_allowed:
        raise CommandError(
            f"Give --{name.replace('_', '-')}-env or pipe the secret on standard input."
        )
    if sys.stdin.isatty():
        return getpass.getpass(f"{name}: ").strip()
    line = sys.stdin.readline()
    return line.strip()


def follow(
    run: Run,
    *,
    timeout: float,
    out: TextIO,
    describe: Callable[[Run], list[str]],
    interval: float = 1.0,
) -> Run:
    """Print the run's state changes until it settles (or `timeout` seconds pass), then the
    lines `describe` gives for it."""
    deadline = time.monotonic() + timeout
    seen = ""
    while True:
        run.refresh_from_db()
        if run.state != seen:
            seen = run.state
            out.write(f"run #{run.pk}: {run.get_state_display()}\n")
        settled = run.is_terminal or (run.state == RunState.OUTCOME_UNKNOWN and run.needs_person)
        if settled or time.monotonic() >= deadline:
            if not settled:
                out.write(f"Still {run.get_state_display().lower()} after {timeout:.0f} s.\n")
            out.write("\n".join(describe(run)) + "\n")
            return run
        time.sleep(interval)
