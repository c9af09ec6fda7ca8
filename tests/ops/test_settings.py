"""Production settings from the environment: a complete env starts, a missing or malformed one
refuses with a message naming every problem (and no value), and `check --deploy` is clean."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from dashboard.project.environment import production_environment_problems

REPO = Path(__file__).resolve().parents[2]
SECRET_KEY = "k" * 20 + "Xy9-_Qw8Zr" * 4  # long and varied enough
FERNET_KEY = Fernet.generate_key().decode()


def documented_environment() -> dict[str, str]:
    """.env.example, with the placeholders a deployer must replace replaced."""
    values: dict[str, str] = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    values["SECRET_KEY"] = SECRET_KEY
    values["CREDENTIALS_KEYS"] = FERNET_KEY
    return values


def run_manage(*args: str, environ: dict[str, str]) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(REPO)), **environ}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_documented_environment_has_no_problem():
    assert production_environment_problems(documented_environment()) == []


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"DATABASE_URL": ""}, "DATABASE_URL is not set"),
        ({"DATABASE_URL": "sqlite:///db.sqlite3"}, "DATABASE_URL must be a postgres:// URL"),
        ({"DATABASE_URL": "postgres://u:p@db:5432/"}, "DATABASE_URL names no database"),
        ({"REDIS_URL": ""}, "REDIS_URL is not set"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must be a redis://"),
        ({"SECRET_KEY": ""}, "SECRET_KEY is not set"),
        ({"SECRET_KEY": "tooshort-s3cr3t"}, "SECRET_KEY is too short"),
        ({"CREDENTIALS_KEYS": ""}, "CREDENTIALS_KEYS is not set"),
        ({"CREDENTIALS_KEYS": f"{FERNET_KEY},not-a-key"}, "key number 2 is not a Fernet key"),
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS is not set"),
        ({"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS must name the hosts"),
        ({"CSRF_TRUSTED_ORIGINS": "triggerdesk.example.com"}, "needs a scheme"),
        ({"SECURE_HSTS_SECONDS": "one year"}, "SECURE_HSTS_SECONDS must be a whole number"),
        ({"API_IDEMPOTENCY_RETENTION_HOURS": "0"}, "API_IDEMPOTENCY_RETENTION_HOURS must be"),
        ({"API_IDEMPOTENCY_RETENTION_HOURS": "-3"}, "API_IDEMPOTENCY_RETENTION_HOURS must be"),
        ({"API_IDEMPOTENCY_RETENTION_HOURS": "1.5"}, "API_IDEMPOTENCY_RETENTION_HOURS must be"),
        ({"API_IDEMPOTENCY_RETENTION_HOURS": "a day"}, "API_IDEMPOTENCY_RETENTION_HOURS must be"),
        ({"SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"}, "SECURE_PROXY_SSL_HEADER must be"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be json or plain"),
        ({"DJANGO_DEBUG": "true"}, "DJANGO_DEBUG is on"),
    ],
)
def test_missing_or_malformed_setting_is_named(change, named):
    environ = {**documented_environment(), **change}
    problems = production_environment_problems(environ)
    assert len(problems) == 1, problems
    assert named in problems[0]
    # A message names the setting, never a secret value.
    assert "s3cr3t" not in problems[0] and "change-me" not in problems[0]


def test_secrets_are_read_from_files(tmp_path):
    keys = tmp_path / "credentials_keys"
    keys.write_text(FERNET_KEY + "\n")
    environ = documented_environment()
    del environ["CREDENTIALS_KEYS"]
    environ["CREDENTIALS_KEYS_FILE"] = str(keys)
    assert production_environment_problems(environ) == []

    environ["CREDENTIALS_KEYS_FILE"] = str(tmp_path / "absent")
    problems = production_environment_problems(environ)
    assert any(
        "CREDENTIALS_KEYS_FILE=" in problem and "cannot be read" in problem for problem in problems
    )


def test_app_refuses_to_start_naming_every_problem():
    environ = documented_environment()
    environ.update({"DATABASE_URL": "", "CREDENTIALS_KEYS": "nope", "ALLOWED_HOSTS": ""})

    result = run_manage("check", environ=environ)

    assert result.returncode != 0
    assert "TriggerDesk will not start" in result.stderr
    for name in ("DATABASE_URL is not set", "CREDENTIALS_KEYS key number 1", "ALLOWED_HOSTS"):
        assert name in result.stderr
    assert SECRET_KEY not in result.stderr + result.stdout


def test_check_deploy_with_documented_environment_has_no_warning():
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", environ=documented_environment()
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_env_example_lists_every_setting_the_app_reads():
    read = set()
    for path in [REPO / "dashboard" / "project" / "settings.py"]:
        read |= set(
            re.findall(
                r"(?:os\.environ\.get|os\.environ\[|env_str|env_bool|env_int|env_list)\(?\"([A-Z_]+)\"",
                path.read_text(),
            )
        )
    example = (REPO / ".env.example").read_text()
    missing = sorted(name for name in read if not re.search(rf"^#? ?{name}=", example, re.M))
    assert missing == []


def test_collected_static_files_have_hashed_names_and_are_served_immutable(tmp_path, settings):
    """Production's storage (the tests use a plain one): collectstatic writes hashed names, the
    pages name them, and WhiteNoise serves them cacheable for good (not max-age=60)."""
    from django.core.management import call_command
    from django.http import HttpResponse
    from django.templatetags.static import static
    from django.test import RequestFactory
    from whitenoise.middleware import WhiteNoiseMiddleware

    from dashboard.project import settings as production

    settings.STORAGES = production.STORAGES
    settings.STATIC_ROOT = tmp_path
    settings.WHITENOISE_USE_FINDERS = False
    settings.DEBUG = False
    call_command("collectstatic", "--no-input", verbosity=0)
    url = static("css/app.css")
    serve = WhiteNoiseMiddleware(get_response=lambda request: HttpResponse(status=404))

    hashed = serve(RequestFactory().get(url))
    unhashed = serve(RequestFactory().get("/static/css/app.css"))

    assert re.fullmatch(r"/static/css/app\.[0-9a-f]{12}\.css", url)
    assert hashed.status_code == 200
    cache_control = hashed["Cache-Control"]
    assert "immutable" in cache_control
    assert int(re.search(r"max-age=(\d+)", cache_control)[1]) >= 365 * 24 * 3600
    assert unhashed.status_code == 200 and "immutable" not in unhashed["Cache-Control"]
