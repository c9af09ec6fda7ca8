"""Checks of the production environment, run when the settings load.

With `DJANGO_ENV=production` TriggerDesk refuses to start unless every required setting is
present and well-formed, and it names every problem at once (not the first one a request happens
to hit). docs/operations.md "Production settings" lists every variable.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

PRODUCTION = "production"
MINIMUM_SECRET_KEY_LENGTH = 50


def read(environ: Mapping[str, str], name: str) -> tuple[str, str | None]:
    """The value of NAME, or of the file named by NAME_FILE; and a problem reading it, if any."""
    file_path = environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip(), None
        except OSError as error:
            return "", f"{name}_FILE={file_path} cannot be read ({error.strerror or error})."
    return environ.get(name, "").strip(), None


def _is_fernet_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode())) == 32
    except (binascii.Error, ValueError):
        return False


def production_environment_problems(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every missing or malformed production setting, one plain sentence each (no values)."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []

    def value_of(name: str) -> str:
        value, problem = read(environ, name)
        if problem:
            problems.append(problem)
        return value

    database_url = value_of("DATABASE_URL")
    if not database_url:
        problems.append("DATABASE_URL is not set (postgres://user:password@host:5432/name).")
    else:
        parts = urlsplit(database_url)
        if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
            problems.append(
                "DATABASE_URL must be a postgres:// URL with a host "
                "(postgres://user:password@host:5432/name); SQLite is for the demo only."
            )
        elif not parts.path.strip("/"):
            problems.append("DATABASE_URL names no database (…/name at the end).")

    redis_url = value_of("REDIS_URL")
    if not redis_url:
        problems.append("REDIS_URL is not set (redis://host:6379/0); it is the broker.")
    else:
        parts = urlsplit(redis_url)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            problems.append("REDIS_URL must be a redis:// or rediss:// URL with a host.")

    secret_key = value_of("SECRET_KEY")
    if not secret_key:
        problems.append("SECRET_KEY is not set (or SECRET_KEY_FILE).")
    elif len(secret_key) < MINIMUM_SECRET_KEY_LENGTH or len(set(secret_key)) < 5:
        problems.append(
            f"SECRET_KEY is too short or too simple: use at least {MINIMUM_SECRET_KEY_LENGTH} "
            "random characters (python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )

    keys = [key.strip() for key in value_of("CREDENTIALS_KEYS").split(",") if key.strip()]
    if not keys:
        problems.append(
            "CREDENTIALS_KEYS is not set (or CREDENTIALS_KEYS_FILE): the Fernet keys that encrypt "
            "vendor credentials, comma-separated, newest first."
        )
    else:
        bad = [str(position) for position, key in enumerate(keys, 1) if not _is_fernet_key(key)]
        if bad:
            problems.append(
                f"CREDENTIALS_KEYS key number {', '.join(bad)} is not a Fernet key "
                "(32 url-safe base64 bytes)."
            )

    hosts = [host.strip() for host in environ.get("ALLOWED_HOSTS", "").split(",") if host.strip()]
    if not hosts:
        problems.append("ALLOWED_HOSTS is not set (comma-separated host names the site answers).")
    elif "*" in hosts:
        problems.append("ALLOWED_HOSTS must name the hosts, not '*'.")

    for origin in [o.strip() for o in environ.get("CSRF_TRUSTED_ORIGINS", "").split(",")]:
        if origin and not origin.startswith(("https://", "http://")):
            problems.append(f"CSRF_TRUSTED_ORIGINS entry {origin!r} needs a scheme (https://…).")

    for name in ("SECURE_HSTS_SECONDS", "DATABASE_CONN_MAX_AGE", "EMAIL_PORT"):
        raw = environ.get(name, "").strip()
        if raw and not raw.isdigit():
            problems.append(f"{name} must be a whole number of seconds or a port, not {raw!r}.")

    retention = environ.get("API_IDEMPOTENCY_RETENTION_HOURS", "").strip()
    # At least 1: 0 would forget every Idempotency-Key at the next hourly clean-up.
    if retention and not (retention.isascii() and retention.isdigit() and int(retention) > 0):
        problems.append(
            "API_IDEMPOTENCY_RETENTION_HOURS must be a whole number of hours, at least 1, "
            f"not {retention!r}."
        )

    proxy_header = environ.get("SECURE_PROXY_SSL_HEADER", "").strip()
    if proxy_header and not proxy_header.upper().startswith("HTTP_"):
        problems.append(
            "SECURE_PROXY_SSL_HEADER must be the request.META name of the header your proxy "
            "sets, e.g. HTTP_X_FORWARDED_PROTO."
        )

    level = environ.get("LOG_LEVEL", "").strip().upper()
    if level and level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        problems.append(
            f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {level!r}."
        )

    log_format = environ.get("LOG_FORMAT", "").strip().lower()
    if log_format and log_format not in ("json", "plain"):
        problems.append(f"LOG_FORMAT must be json or plain, not {log_format!r}.")

    if environ.get("DJANGO_DEBUG", "").strip().lower() in ("1", "true", "yes", "on"):
        problems.append("DJANGO_DEBUG is on: never in production (it shows settings and code).")

    problems += _single_sign_on_problems(environ, value_of)
    return problems


def _single_sign_on_problems(environ: Mapping[str, str], value_of) -> list[str]:
    """Single sign-on half set up, or its IdP over plain http (tokens in the clear)."""
    issuer = environ.get("SSO_OIDC_ISSUER", "").strip()
    client_id = environ.get("SSO_OIDC_CLIENT_ID", "").strip()
    problems = []
    if bool(issuer) != bool(client_id):
        problems.append("Single sign-on needs both SSO_OIDC_ISSUER and SSO_OIDC_CLIENT_ID.")
    if issuer:
        if urlsplit(issuer).scheme != "https" or not urlsplit(issuer).hostname:
            problems.append("SSO_OIDC_ISSUER must be an https:// URL (the IdP's issuer).")
        if not value_of("SSO_OIDC_CLIENT_SECRET"):
            problems.append("SSO_OIDC_CLIENT_SECRET is not set (or SSO_OIDC_CLIENT_SECRET_FILE).")
    local = environ.get("SSO_LOCAL_PASSWORDS", "").strip().lower()
    if local in ("0", "false", "no", "off") and not (issuer and client_id):
        problems.append(
            "SSO_LOCAL_PASSWORDS is off but single sign-on is not set up: nobody could log in."
        )
    return problems


def refuse_to_start_unless_complete(environ: Mapping[str, str] | None = None) -> None:
    """Raise with every problem listed when DJANGO_ENV=production and something is wrong."""
    environ = os.environ if environ is None else environ
    if environ.get("DJANGO_ENV", "").strip().lower() != PRODUCTION:
        return
    problems = production_environment_problems(environ)
    if problems:
        from django.core.exceptions import ImproperlyConfigured

        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise ImproperlyConfigured(
            "TriggerDesk will not start: the production environment (DJANGO_ENV=production) is "
            f"incomplete.\n{lines}\nSee docs/operations.md, 'Production settings'."
        )
