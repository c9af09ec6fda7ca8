"""Bad input on every page, filter and form of the app: a NUL, a lone surrogate (raw and as a
JSON escape) and a 10 MB value each get a clear answer, never a 500.

The pages and their forms are discovered, not listed: every named URL of the app is visited as an
admin, every <form> (and hx-post button) on it is collected, and each payload goes into every
field of every one of them. A page or form added later is covered without touching this file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit

import pytest
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse

from dashboard.input_checks import nested_unstorable_reason
from dashboard.models import Membership
from dashboard.tenancy.forms import AuditFilterForm, ConnectionForm, OptionsField
from tests.factories import RunFactory, VendorConnectionFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]

TEN_MB = 10 * 1024 * 1024

# (name, percent-encoded value, the status a request carrying it must get: an exact code, or
# None for "anything but a server error").
PAYLOADS = [
    ("nul", "%00", 400),
    ("nul-inside-text", "abc%00def", 400),
    # What a lone surrogate looks like on the wire (its UTF-8-style bytes); Django decodes it to
    # U+FFFD, which the pages must handle like any other text.
    ("lone-surrogate", "%ED%A0%80", None),
    # JSON escapes reach fields that parse JSON (connection options) as the real characters.
    ("json-nul", quote('{"k": "\\u0000"}'), None),
    ("json-surrogate", quote('{"k": "\\ud800x"}'), None),
    # JSON that Python reads but PostgreSQL cannot store, and JSON Python cannot read at all.
    ("json-infinity", quote('{"k": [Infinity, 1e999999]}'), None),
    ("json-long-number", quote('{"k": ' + "1" * 5000 + "}"), None),
    ("json-deep", quote("[" * 5000 + "]" * 5000), None),
    ("ten-megabytes", "x" * TEN_MB, 400),
]


@dataclass
class FormTarget:
    method: str
    url: str
    fields: list[str] = field(default_factory=list)


class FormCollector(HTMLParser):
    """Every form of a page (action, method, field names), and every hx-get/hx-post element."""

    def __init__(self, page_url: str) -> None:
        super().__init__()
        self.page_url = page_url
        self.targets: list[FormTarget] = []
        self._form: FormTarget | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            if attributes.get("hx-post"):
                method, url = "post", attributes["hx-post"]
            elif attributes.get("hx-get"):
                method, url = "get", attributes["hx-get"]
            else:
                method = (attributes.get("method") or "get").lower()
                url = attributes.get("action") or self.page_url
            self._form = FormTarget(method=method, url=url or self.page_url)
            self.targets.append(self._form)
            return
        if tag in ("input", "select", "textarea") and self._form is not None:
            name = attributes.get("name")
            if name and name != "csrfmiddlewaretoken" and name not in self._form.fields:
                self._form.fields.append(name)
            return
        for attribute, method in (("hx-post", "post"), ("hx-get", "get")):
            if attributes.get(attribute):
                self.targets.append(FormTarget(method=method, url=attributes[attribute] or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None


def app_url_patterns(patterns=None, outer: frozenset = frozenset()) -> list[tuple[str, set]]:
    """(name, the names of its URL arguments) of every named URL of the app, admin excluded."""
    found = []
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        arguments = outer | set(pattern.pattern.converters)
        if isinstance(pattern, URLResolver):
            if str(pattern.pattern) == "admin/":
                continue
            found += app_url_patterns(pattern.url_patterns, frozenset(arguments))
        elif pattern.name:
            found.append((pattern.name, arguments))
    return found


@pytest.fixture
def site(team, sandbox_connection):
    """A tenant with something on every page: connections, a registered job, open runs."""
    from batchjobs.services import batch_job_register
    from dashboard.audit.trail import Actor

    daily = sandbox_connection(team.tenant, "optimove_batch", name="Optimove")
    talkifai = sandbox_connection(team.tenant, "talkifai", name="TalkifAI")
    job = batch_job_register(
        actor=Actor(user=team.operator.user),
        tenant=team.tenant,
        connection=talkifai,
        batch_job_id="job-scheduled-001",
    )
    run = RunFactory(tenant=team.tenant, connection=talkifai, requested_by=team.marketer.user)
    daily_run = RunFactory(
        tenant=team.tenant,
        connection=daily,
        operation="optimove_trigger_daily",
        parameters={"wait_time_for_validation_seconds": None},
        requested_by=team.marketer.user,
    )
    VendorConnectionFactory(tenant=team.tenant, kind="altcraft", name="Altcraft")
    kwargs = {
        "tenant_slug": team.tenant.slug,
        "connection_id": daily.pk,
        "membership_id": team.marketer.pk,
        "run_id": run.pk,
        "batch_job_pk": job.pk,
    }
    return team, kwargs, daily_run


def discover_targets(client: Client, kwargs: dict) -> list[FormTarget]:
    """Every page of the app (GET) and every form found on those pages."""
    targets: list[FormTarget] = []
    for name, arguments in app_url_patterns():
        try:
            url = reverse(name, kwargs={key: kwargs.get(key, 1) for key in arguments})
        except Exception:  # noqa: S112 - a route whose arguments we cannot build is skipped
            continue
        targets.append(FormTarget(method="get", url=url, fields=["page", "seen", "kind"]))
        response = client.get(url)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        collector = FormCollector(url)
        collector.feed(response.content.decode())
        targets += collector.targets
    unique: dict[tuple, FormTarget] = {}
    for target in targets:
        target.url = urlsplit(target.url).path or target.url
        key = (target.method, target.url)
        if key in unique:
            unique[key].fields += [f for f in target.fields if f not in unique[key].fields]
        else:
            unique[key] = target
    return list(unique.values())


def test_the_crawl_finds_the_apps_forms(site):
    team, kwargs, _ = site
    targets = discover_targets(team.client_for("admin"), kwargs)
    posts = {target.url for target in targets if target.method == "post"}
    # A sample of what must be there; the crawl finds every other one the same way.
    assert f"/t/{team.tenant.slug}/connections/new/" in posts
    assert f"/t/{team.tenant.slug}/members/add/" in posts
    assert any(url.endswith("/approve/") for url in posts)
    assert any(target.url.endswith("/audit/") and "actor" in target.fields for target in targets)
    assert len(targets) > 25


@pytest.mark.parametrize(
    ("payload_name", "encoded", "expected"), PAYLOADS, ids=[p[0] for p in PAYLOADS]
)
def test_every_page_filter_and_form_answers_bad_input_without_a_500(
    site, payload_name, encoded, expected
):
    team, kwargs, _ = site
    client = team.client_for("admin")
    targets = discover_targets(client, kwargs)
    wrong = []
    for target in targets:
        # The crawl posts to /logout/ too: every later request would be an anonymous one (a
        # redirect to the login page) and reach no form at all.
        client.force_login(team.admin.user)
        fields = target.fields or ["q"]
        if len(encoded) > 1000:
            # One huge value per request is enough (and keeps the test quick): the limit is the
            # same for every field.
            query = "&".join(
                f"{quote(name)}={encoded if index == 0 else 'x'}"
                for index, name in enumerate(fields)
            )
        else:
            query = "&".join(f"{quote(name)}={encoded}" for name in fields)
        if target.method == "get":
            response = client.get(f"{target.url}?{query}")
        else:
            response = client.post(
                target.url, query, content_type="application/x-www-form-urlencoded"
            )
        ok = response.status_code < 500 if expected is None else response.status_code == expected
        if target.url == "/readyz" and response.status_code == 503:
            ok = True  # "not ready" (no worker heartbeat in this test) is its answer, not a fault
        if not ok:
            wrong.append(f"{target.method.upper()} {target.url} {fields}: {response.status_code}")
        elif expected == 400 and "html" in response.get("Content-Type", ""):
            # Refused by the middleware (its page), not by a form (a form's page with errors is
            # a 400 too, for the payloads that reach the forms).
            assert "This input cannot be used" in response.content.decode()
    assert not wrong, "\n".join(wrong)


def test_the_audit_filters_with_a_nul_say_why(team):
    response = team.client_for("auditor").get(f"/t/{team.tenant.slug}/audit/?actor=%00")
    assert response.status_code == 400
    page = response.content.decode()
    assert "“actor” contains a NUL character" in page
    assert 'class="topbar"' in page  # the app's layout, not a bare error


def test_a_session_cookie_with_a_nul_is_treated_as_absent(team):
    client = team.client_for("admin")
    client.cookies["sessionid"] = "abcdefgh\x00ijkl"
    response = client.get(f"/t/{team.tenant.slug}/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_header_with_a_nul_is_refused(team):
    response = team.client_for("admin").get(
        f"/t/{team.tenant.slug}/", headers={"User-Agent": "x\x00y"}
    )
    assert response.status_code == 400


def test_the_login_form_refuses_a_nul_in_the_username():
    response = Client().post("/login/", {"username": "ada\x00", "password": "x"})
    assert response.status_code == 400


# -- the forms themselves, for callers other than the pages (JSON escapes) ----------------------


@pytest.mark.parametrize(
    "text",
    ['{"k": "\\u0000"}', '{"k\\u0000": 1}', '{"k": ["\\ud800"]}', '{"k": {"n": "a\\udfffb"}}'],
)
def test_json_options_with_unstorable_text_are_a_form_error(text):
    form = ConnectionForm(
        {
            "kind": "altcraft",
            "name": "A",
            "base_url": "https://api.example.com",
            "token": "t-1234567890",
            "options": text,
        }
    )
    assert not form.is_valid()
    assert "cannot be stored" in str(form.errors["options"])


def test_options_have_a_length_limit():
    field = OptionsField()
    with pytest.raises(Exception, match="at most"):
        field.clean('{"k": "' + "x" * TEN_MB + '"}')


@pytest.mark.parametrize("value", ["\x00", "a\x00b", "x" * TEN_MB])
def test_audit_filters_ignore_what_they_cannot_use(value):
    form = AuditFilterForm(
        {"action": value, "actor": value, "object_type": value, "object_id": value}
    )
    filters = form.filters()
    assert filters == {"action": "", "actor": "", "object_type": "", "object_id": ""}
    assert not nested_unstorable_reason(filters)


def test_the_refusal_of_a_form_links_back_to_the_page_of_the_form(team):
    members = f"http://testserver/t/{team.tenant.slug}/members/"
    response = team.client_for("admin").post(
        f"/t/{team.tenant.slug}/members/add/",
        "username=a%00b&role=marketer",
        content_type="application/x-www-form-urlencoded",
        headers={"Referer": members},
    )
    assert response.status_code == 400
    assert f'href="{members}"' in response.content.decode()
    assert Membership.objects.filter(tenant=team.tenant).count() == 5


# -- JSON-holding fields, base URLs and ids: what the fuzzed form posts found ----------------------

DEEP_ARRAY = "[" * 100_000 + "]" * 100_000
# (name, JSON text put where a value goes, what the field's error says)
UNUSABLE_JSON_VALUES = [
    ("deep-nesting", DEEP_ARRAY, "nested deeper than 100 levels"),
    ("nested-101-levels", "[" * 102 + "]" * 102, "nesting deeper than 100 levels"),
    ("escaped-nul", '"a\\u0000b"', "a NUL character"),
    ("escaped-lone-surrogate", '"\\ud800"', "a lone surrogate"),
    ("infinity", "Infinity", "not finite"),
    ("nan", "NaN", "not finite"),
    ("number-out-of-range", "1e999999", "not finite"),
    ("number-of-5000-digits", "1" * 5000, "a number too long to read"),
]
UNUSABLE_IDS = [p[0] for p in UNUSABLE_JSON_VALUES]


@pytest.fixture
def campaigns_generator(team):
    """An event generator (no vendor is called) whose schema has a free JSON field, `tags`."""
    from campaigns.event_generators import services
    from dashboard.audit.trail import Actor

    return services.generator_create(
        actor=Actor(user=team.marketer.user),
        tenant=team.tenant,
        connection=VendorConnectionFactory(tenant=team.tenant, kind="optimove_campaigns"),
        external_id="00000000-abcd-abcd-abcd-000000000000",
        name="Match start",
        topics=[("6f1c2e0a-1b2c-4d3e-8f40-000000000001", "Arsenal")],
        schema={"type": "object", "properties": {"tags": {"type": "array"}}},
    )


@pytest.mark.parametrize(("name", "value", "message"), UNUSABLE_JSON_VALUES, ids=UNUSABLE_IDS)
def test_a_generator_schema_that_cannot_be_read_or_stored_is_a_form_error(
    team, name, value, message
):
    from campaigns.event_generators.models import EventGenerator

    connection = VendorConnectionFactory(tenant=team.tenant, kind="optimove_campaigns")
    response = team.client_for("marketer").post(
        reverse("event_generator_create", kwargs={"tenant_slug": team.tenant.slug}),
        {
            "external_id": "00000000-abcd-abcd-abcd-000000000000",
            "name": "Match start",
            "connection": connection.pk,
            "schema": '{"type": "object", "default": ' + value + "}",
        },
    )
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors["schema"])
    assert not EventGenerator.objects.exists()


@pytest.mark.parametrize(("name", "value", "message"), UNUSABLE_JSON_VALUES, ids=UNUSABLE_IDS)
def test_a_trigger_forms_json_field_that_cannot_be_read_or_stored_is_a_field_error(
    team, campaigns_generator, name, value, message
):
    from dashboard.runs.models import Run

    response = team.client_for("marketer").post(
        reverse(
            "event_generator_trigger",
            kwargs={"tenant_slug": team.tenant.slug, "generator_id": campaigns_generator.pk},
        ),
        {
            "idempotency_key": "k-1",
            "topics": ["6f1c2e0a-1b2c-4d3e-8f40-000000000001"],
            "when": "now",
            "ctx/tags": "[" + value + "]",
        },
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Run.objects.exists()


@pytest.fixture
def altcraft_trigger(team, settings, tmp_path):
    from campaigns.altcraft_launches import services
    from dashboard.audit.trail import Actor

    settings.ALTCRAFT_UPLOAD_DIR = tmp_path / "uploads"
    return services.trigger_register(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        connection=VendorConnectionFactory(tenant=team.tenant, kind="altcraft", name="Altcraft"),
        trigger_id=8,
        name="Abandoned cart",
    )


@pytest.mark.parametrize("field", ["content", "custom_data"])
@pytest.mark.parametrize(("name", "value", "message"), UNUSABLE_JSON_VALUES, ids=UNUSABLE_IDS)
def test_altcraft_content_that_cannot_be_read_or_stored_is_a_field_error(
    team, altcraft_trigger, field, name, value, message
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from campaigns.altcraft_launches.models import AltcraftLaunch

    response = team.client_for("marketer").post(
        reverse("altcraft_launch_new", kwargs={"tenant_slug": team.tenant.slug})
        + "?kind=start_batch",
        {
            "idempotency_key": "k-1",
            "trigger": altcraft_trigger.pk,
            "matching": "email",
            "kind": "start_batch",
            "file": SimpleUploadedFile("list.csv", b"email\na@example.com\n", "text/csv"),
            field: '{"page": ' + value + "}",
        },
    )
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assert not AltcraftLaunch.objects.exists()


@pytest.mark.parametrize(
    "base_url",
    ["https://[x]/", "https://[::1", "https://api.example.com]", "https://a[.example.com/"],
)
def test_a_base_url_that_cannot_be_split_is_a_form_error(team, base_url):
    from dashboard.models import VendorConnection

    response = team.client_for("admin").post(
        reverse("connection_create", kwargs={"tenant_slug": team.tenant.slug}),
        {"kind": "altcraft", "name": "A", "base_url": base_url, "token": "t-1234567890"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["base_url"]
    assert not VendorConnection.objects.filter(tenant=team.tenant).exists()


def test_a_base_url_that_cannot_be_split_is_refused_by_the_service_too():
    from dashboard.vendors.http import ConfigurationError, validate_base_url

    with pytest.raises(ConfigurationError, match="not a valid URL"):
        validate_base_url("https://[x]/")


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_creates_of_one_connection_name_make_one_and_a_form_error(team):
    """Both requests pass the service's "name taken?" check before either inserts (a barrier
    holds each one just after its check): the unique constraint lets one in, the other gets
    the form error, never an IntegrityError."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from unittest import mock

    from django.db import connection as db_connection
    from django.db.models.query import QuerySet

    from dashboard.models import VendorConnection

    checked = threading.Barrier(2)
    original_exists = QuerySet.exists
    waited = threading.local()

    def exists_then_wait(queryset):
        found = original_exists(queryset)
        if queryset.model is VendorConnection and not getattr(waited, "done", False):
            waited.done = True
            checked.wait(timeout=60)
        return found

    url = reverse("connection_create", kwargs={"tenant_slug": team.tenant.slug})

    def create(_: int):
        try:
            return team.client_for("admin").post(
                url,
                {
                    "kind": "altcraft",
                    "name": "Altcraft",
                    "base_url": "https://api.example.com",
                    "token": "t-1234567890",
                },
            )
        finally:
            db_connection.close()

    with (
        mock.patch.object(QuerySet, "exists", exists_then_wait),
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        responses = list(pool.map(create, range(2)))
    assert sorted(response.status_code for response in responses) == [200, 302]
    refused = next(response for response in responses if response.status_code == 200)
    assert "already has a connection named" in " ".join(refused.context["form"].errors["name"])
    assert VendorConnection.objects.filter(tenant=team.tenant, name="Altcraft").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_renames_to_one_connection_name_rename_one_and_a_form_error(team):
    """Two connections renamed to one new name at once, both requests past the service's "name
    taken?" check before either saves (a barrier holds each one just after its check): the
    unique constraint lets one rename in, the other gets the form error, never an
    IntegrityError."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from unittest import mock

    from django.db import connection as db_connection
    from django.db.models.query import QuerySet

    from dashboard.models import VendorConnection

    first = VendorConnectionFactory(tenant=team.tenant, kind="altcraft", name="Altcraft EU")
    second = VendorConnectionFactory(tenant=team.tenant, kind="altcraft", name="Altcraft US")
    checked = threading.Barrier(2)
    original_exists = QuerySet.exists
    waited = threading.local()

    def exists_then_wait(queryset):
        found = original_exists(queryset)
        if queryset.model is VendorConnection and not getattr(waited, "done", False):
            waited.done = True
            checked.wait(timeout=60)
        return found

    def rename(connection: VendorConnection):
        url = reverse(
            "connection_edit",
            kwargs={"tenant_slug": team.tenant.slug, "connection_id": connection.pk},
        )
        try:
            return team.client_for("admin").post(
                url,
                {"name": "Altcraft", "base_url": connection.base_url, "is_active": "on"},
            )
        finally:
            db_connection.close()

    with (
        mock.patch.object(QuerySet, "exists", exists_then_wait),
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        responses = list(pool.map(rename, [first, second]))
    assert sorted(response.status_code for response in responses) == [200, 302]
    refused = next(response for response in responses if response.status_code == 200)
    assert "already has a connection named" in " ".join(refused.context["form"].errors["name"])
    names = set(
        VendorConnection.objects.filter(pk__in=[first.pk, second.pk]).values_list("name", flat=True)
    )
    assert names in ({"Altcraft", "Altcraft US"}, {"Altcraft EU", "Altcraft"})


@pytest.mark.parametrize("field", ["trigger_id", "resource_id"])
def test_an_altcraft_id_beyond_what_the_column_holds_is_a_form_error(team, field):
    from campaigns.altcraft_launches.models import AltcraftTrigger

    connection = VendorConnectionFactory(tenant=team.tenant, kind="altcraft", name="Altcraft")
    data = {
        "connection": connection.pk,
        "trigger_id": 96,
        "name": "Registration form",
        "default_matching": "email",
        field: 10**23,
    }
    response = team.client_for("admin").post(
        reverse("altcraft_trigger_register", kwargs={"tenant_slug": team.tenant.slug}), data
    )
    assert response.status_code == 400
    assert "less than or equal to 2147483647" in " ".join(
        response.context["register_form"].errors[field]
    )
    assert not AltcraftTrigger.objects.exists()


def test_an_altcraft_id_beyond_what_the_column_holds_is_refused_by_the_service(team):
    from django.core.exceptions import ValidationError

    from campaigns.altcraft_launches import services
    from dashboard.audit.trail import Actor

    connection = VendorConnectionFactory(tenant=team.tenant, kind="altcraft", name="Altcraft")
    with pytest.raises(ValidationError) as raised:
        services.trigger_register(
            actor=Actor(user=team.admin.user),
            tenant=team.tenant,
            connection=connection,
            trigger_id=10**23,
            name="Registration form",
        )
    assert "trigger_id" in raised.value.message_dict


# -- the same checks for the commands ------------------------------------------------------------


@pytest.mark.parametrize(("name", "value", "message"), UNUSABLE_JSON_VALUES, ids=UNUSABLE_IDS)
def test_add_connection_refuses_options_that_cannot_be_read_or_stored(team, name, value, message):
    from django.core.management import CommandError, call_command

    from dashboard.models import VendorConnection

    with pytest.raises(CommandError, match=re.escape(message)):
        call_command(
            "add_connection",
            team.tenant.slug,
            "talkifai",
            "TalkifAI",
            "https://api.example.com",
            "--options",
            '{"a": ' + value + "}",
        )
    assert not VendorConnection.objects.exists()


@pytest.mark.parametrize(("name", "value", "message"), UNUSABLE_JSON_VALUES, ids=UNUSABLE_IDS)
def test_campaign_trigger_refuses_a_context_that_cannot_be_read_or_stored(
    team, campaigns_generator, tmp_path, name, value, message
):
    from django.core.management import CommandError, call_command

    from dashboard.runs.models import Run

    context = tmp_path / "context.json"
    context.write_text('{"tags": [' + value + "]}", encoding="utf-8")
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command(
            "campaign_trigger",
            "--generator",
            "Match start",
            "--as",
            team.marketer.user.username,
            "--topic",
            "Arsenal",
            "--context-file",
            str(context),
        )
    assert not Run.objects.exists()
