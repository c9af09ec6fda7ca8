"""Shared bits of the ops commands: who is acting, and reading a secret safely."""

from __future__ import annotations

import getpass
import os
import sys

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from dashboard.audit import Actor
from dashboard.models import Tenant


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
