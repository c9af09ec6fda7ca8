"""Shared fixtures: users of each role in one tenant, an outsider tenant, logged-in clients.

Django-free vendor tests run this conftest too (with -p no:django), so Django is imported lazily.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

# No test may depend on timing: Hypothesis's default 200 ms deadline per example (and its "too
# slow" health check) fails a property whose example merely waited for a core on a loaded CI
# machine. The properties themselves stay as strict; only the clock is out of them.
hypothesis_settings.register_profile(
    "triggerdesk", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("triggerdesk")


@dataclass
class Team:
    tenant: Any
    marketer: Any
    operator: Any
    second_operator: Any
    auditor: Any
    admin: Any

    def client_for(self, role: str) -> Any:
        from django.test import Client

        client = Client()
        client.force_login(getattr(self, role).user)
        return client


def make_team(name: str, slug: str, usernames: dict[str, str]) -> Team:
    from dashboard.models import Role
    from tests.factories import MembershipFactory, TenantFactory, UserFactory

    tenant = TenantFactory(name=name, slug=slug)
    roles = {
        "marketer": Role.MARKETER,
        "operator": Role.OPERATOR,
        "second_operator": Role.OPERATOR,
        "auditor": Role.AUDITOR,
        "admin": Role.ADMIN,
    }
    members = {
        field: MembershipFactory(
            tenant=tenant, role=role, user=UserFactory(username=usernames[field])
        )
        for field, role in roles.items()
    }
    return Team(tenant=tenant, **members)


@pytest.fixture
def team(db) -> Team:
    return make_team(
        "Acme Sports",
        "acme",
        {
            "marketer": "mia",
            "operator": "oscar",
            "second_operator": "olga",
            "auditor": "aude",
            "admin": "ada",
        },
    )


@pytest.fixture
def other_team(db) -> Team:
    return make_team(
        "Other Brand",
        "other",
        {
            field: f"zed-{field}"
            for field in ("marketer", "operator", "second_operator", "auditor", "admin")
        },
    )


@dataclass
class SandboxStack:
    """All vendor sandboxes on one real loopback server (the same server `make demo` runs)."""

    server: Any
    sandboxes: dict[str, Any]
    clock: Any

    def url(self, kind: str) -> str:
        from dashboard.ops.sandboxes import sandbox_base_url

        return sandbox_base_url(self.server.url(), kind)

    def __getitem__(self, kind: str) -> Any:
        return self.sandboxes[kind]


@pytest.fixture(scope="session")
def sandbox_stack():
    from dashboard.ops.sandboxes import build_sandboxes, sandbox_server
    from dashboard.vendors.sandbox import SandboxClock

    clock = SandboxClock()
    sandboxes = build_sandboxes(clock)
    server = sandbox_server(sandboxes).start()
    yield SandboxStack(server=server, sandboxes=sandboxes, clock=clock)
    server.stop()


@pytest.fixture
def sandboxes(sandbox_stack: SandboxStack) -> SandboxStack:
    """The sandboxes, reset, on real time."""
    from datetime import UTC, datetime

    for sandbox in sandbox_stack.sandboxes.values():
        sandbox.reset()
    sandbox_stack.clock.set_scale(1.0)
    sandbox_stack.clock.set(datetime.now(UTC))
    return sandbox_stack


@pytest.fixture
def clean_redis(settings):
    """An empty Redis database for rate-limit state (the tests' own database number)."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


def backends_on_this_database(condition: str) -> int:
    """How many PostgreSQL backends on the test database match `condition` (SQL), read afresh:
    inside a transaction PostgreSQL would answer from the first look's snapshot."""
    from django.db import connection  # lazily: Django-free vendor tests load this file too

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
            + condition
        )
        return cursor.fetchone()[0]


SANDBOX_SECRETS = {
    "optimove_batch": {"api_key": "sandbox-optimove-daily-key"},
    "optimove_campaigns": {
        "api_key": "sandbox-optimove-api-key",
        "brand_key": "sandbox-optimove-brand-key",
    },
    "altcraft": {"token": "sandbox-altcraft-token"},
    "talkifai": {"api_key": "sandbox-talkifai-key"},
}


@pytest.fixture
def sandbox_connection(sandboxes: SandboxStack):
    """make(tenant, kind, **options): a connection of `tenant` wired to that vendor's sandbox."""
    from tests.factories import VendorConnectionFactory

    def make(tenant: Any, kind: str, *, secret_values: dict | None = None, **fields: Any) -> Any:
        return VendorConnectionFactory(
            tenant=tenant,
            kind=kind,
            name=fields.pop("name", f"{kind} sandbox"),
            base_url=fields.pop("base_url", sandboxes.url(kind)),
            secret_values=secret_values or SANDBOX_SECRETS[kind],
            **fields,
        )

    return make


@pytest.fixture
def count_queries(db):
    """count_queries(client, url, params=None, htmx=False): (response, how many SQL queries the
    request made). The default (per-process) cache is cleared first, so a planner estimate
    remembered by an earlier request does not make the second of two measurements cheaper."""
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count(client: Any, url: str, params: dict | None = None, *, htmx: bool = False):
        cache.clear()
        headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, params or {}, **headers)
        return response, len(queries)

    return count


# -- the automation API: tokens, a JSON client, what the API tests of every app act on --------


@dataclass
class ApiClient:
    """Django's test client speaking JSON with a bearer token."""

    secret: str
    slug: str

    def url(self, path: str) -> str:
        return f"/api/v1/t/{self.slug}/{path.lstrip('/')}"

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.secret}"}
        headers.update(extra or {})
        return headers

    def get(self, path: str, **params: Any) -> Any:
        from django.test import Client

        return Client(enforce_csrf_checks=True).get(self.url(path), params, headers=self.headers())

    def post(
        self, path: str, body: Any = None, *, raw: bytes | str | None = None, **headers: str
    ) -> Any:
        from django.test import Client

        data = raw if raw is not None else json.dumps(body if body is not None else {})
        # HTTP_IDEMPOTENCY_KEY="k" (the test client's spelling) -> "Idempotency-Key: k"
        headers = {
            name.removeprefix("HTTP_").replace("_", "-").title(): value
            for name, value in headers.items()
        }
        return Client(enforce_csrf_checks=True).post(
            self.url(path), data, content_type="application/json", headers=self.headers(headers)
        )


@pytest.fixture
def make_token(team):
    """make_token(role="operator", tenant=None, **kwargs) -> (token, ApiClient)."""
    from dashboard.api.services import api_token_create
    from dashboard.audit.trail import Actor

    def make(role: str = "operator", *, name: str = "", team_=None, **kwargs: Any):
        team_ = team_ or team
        membership = getattr(team_, role)
        token, secret = api_token_create(
            actor=Actor(user=membership.user),
            user=membership.user,
            tenant=team_.tenant,
            name=name or f"{role}-pipeline",
            **kwargs,
        )
        return token, ApiClient(secret=secret, slug=team_.tenant.slug)

    return make


@pytest.fixture
def daily_connection(team):
    from dashboard.models import VendorKind
    from tests.factories import VendorConnectionFactory

    return VendorConnectionFactory(
        tenant=team.tenant, kind=VendorKind.OPTIMOVE_BATCH, name="Optimove batch"
    )


@pytest.fixture
def altcraft_trigger(team, sandbox_connection, settings, tmp_path):
    from campaigns.altcraft_launches import services
    from dashboard.audit.trail import Actor

    settings.ALTCRAFT_UPLOAD_DIR = tmp_path / "uploads"
    connection = sandbox_connection(team.tenant, "altcraft", name="Altcraft sandbox")
    return services.trigger_register(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        connection=connection,
        trigger_id=8,
        name="Abandoned cart",
        content_fields=["page"],
    )


@pytest.fixture
def batch_job(team):
    """A registered TalkifAI batch job of the team's tenant (no sandbox behind it)."""
    from batchjobs.models import BatchJob
    from dashboard.clock import utc_now
    from dashboard.models import VendorKind
    from tests.factories import VendorConnectionFactory

    connection = VendorConnectionFactory(tenant=team.tenant, kind=VendorKind.TALKIFAI, name="Calls")
    return BatchJob.objects.create(
        tenant=team.tenant,
        connection=connection,
        batch_job_id="job_123",
        name="Win-back calls",
        registered_at=utc_now(),
    )


@pytest.fixture(scope="session")
def compiled_translations() -> None:
    """The .mo files Django reads, compiled from locale/'s .po files when missing or older (`make
    install` compiles them; a test run straight after editing a .po must not read stale ones)."""
    import subprocess
    from pathlib import Path

    locale = Path(__file__).resolve().parent.parent / "locale"
    for po in locale.rglob("*.po"):
        mo = po.with_suffix(".mo")
        if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            subprocess.run(["msgfmt", "--check-format", "-o", str(mo), str(po)], check=True)


@pytest.fixture(autouse=True)
def default_language():
    """Each test starts and ends in the default language: a page served in Russian by the test
    client leaves Russian active in the test's thread (LocaleMiddleware activates, nothing
    deactivates), and a later test in the same process would read lazy labels in Russian."""
    from django.conf import settings

    if not settings.configured:  # the Django-free vendor tests
        yield
        return
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()
