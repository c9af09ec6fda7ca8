"""Shared bits of the ops commands: who is acting, and reading a secret safely."""

from __future__ import annotations

import getpass
import os
import sys

from django.core.management.base import CommandError

from dashboard.audit import Actor
from dashboard.models import Tenant


def command_actor(command_name: str) -> Actor:
    """Commands act as the operating-system user who ran them, labelled as such in the audit."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Actor(label=f"cli:{who}:{command_name}")


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
