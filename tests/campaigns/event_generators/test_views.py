"""The event-generator pages: registry, schema editor preview, trigger form, run and group
pages, schedules; tenant scoping and roles."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html import unescape

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from campaigns.event_generators import services
from campaigns.event_generators.models import EventGenerator, ScheduledTrigger, TriggerGroup
from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.models import Role
from dashboard.runs.models import Run
from dashboard.runs.states import RunState
from tests.campaigns.conftest import ARSENAL, CHELSEA, GOOD_CONTEXT, MATCH_SCHEMA, MATCH_START
from tests.conftest import SANDBOX_SECRETS
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def url(name, team, **kwargs):
    return reverse(name, kwargs={"tenant_slug": team.tenant.slug, **kwargs})


def trigger_data(**overrides):
    data = {
        "idempotency_key": "k" * 32,
        "topics": [ARSENAL],
        "when": "now",
        "ctx/match_id": "m1",
        "ctx/match_name": "Arsenal vs Chelsea",
        "ctx/start_time": "2026-02-05T20:00:00",
        "ctx/url": "https://example.com/e/1",
        "ctx/minute": "0",
    }
    data.update(overrides)
    return data


def test_the_campaign_pages_are_in_the_navigation(team):
    response = team.client_for("marketer").get(url("tenant_home", team))
    assert url("campaign_home", team).encode() in response.content
    assert b'id="overview-campaigns"' in response.content


def test_registering_a_generator_through_the_form(team, campaigns_connection):
    client = team.client_for("marketer")
    response = client.post(
        url("event_generator_create", team),
        {
            "external_id": MATCH_START,
            "name": "Match start",
            "connection": campaigns_connection.pk,
            "topics": f"{ARSENAL} Arsenal\n{CHELSEA} Chelsea",
            "schema": json.dumps(MATCH_SCHEMA),
        },
    )
    generator = EventGenerator.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("event_generator_detail", team, generator_id=generator.pk)
    assert generator.topics.count() == 2


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"external_id": "abc"}, "is not an Event Generator ID"),
        ({"schema": "{not json"}, "The schema is not JSON"),
        ({"schema": '{"type": "object", "properties": {"a": {"type": 1}}}'}, "Not a valid JSON"),
        ({"topics": "Arsenal"}, "is not a topic key"),
    ],
)
def test_bad_registrations_show_errors_and_save_nothing(
    team, campaigns_connection, overrides, message
):
    data = {
        "external_id": MATCH_START,
        "name": "Match start",
        "connection": campaigns_connection.pk,
        "schema": json.dumps(MATCH_SCHEMA),
        **overrides,
    }
    response = team.client_for("marketer").post(url("event_generator_create", team), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not EventGenerator.objects.exists()


def test_importing_a_file_that_is_not_json_is_refused(team, campaigns_connection):
    response = team.client_for("marketer").post(
        url("event_generator_create", team),
        {
            "external_id": MATCH_START,
            "name": "Match start",
            "connection": campaigns_connection.pk,
            "import_file": SimpleUploadedFile("schema.json", b"hello", "application/json"),
        },
    )
    assert response.status_code == 400
    assert "The file is not JSON" in response.content.decode()
    assert not EventGenerator.objects.exists()


def test_importing_an_exported_document_registers_it(team, campaigns_connection, generator):
    document = services.generator_export(generator=generator)
    generator.delete()
    response = team.client_for("marketer").post(
        url("event_generator_create", team),
        {
            "connection": campaigns_connection.pk,
            "import_file": SimpleUploadedFile("g.json", json.dumps(document).encode()),
        },
    )
    assert response.status_code == 302
    imported = EventGenerator.objects.get()
    assert imported.external_id == MATCH_START and imported.topics.count() == 2
    assert imported.current_schema.schema == MATCH_SCHEMA


def test_the_schema_editor_previews_the_form(team):
    client = team.client_for("marketer")
    response = client.post(url("schema_preview", team), {"schema": json.dumps(MATCH_SCHEMA)})
    html = response.content.decode()
    assert 'name="ctx/venue/name"' in html and "disabled" in html
    response = client.post(url("schema_preview", team), {"schema": '{"type": "array"}'})
    assert 'id="schema-preview-error"' in response.content.decode()


def test_the_trigger_form_is_built_from_the_schema(team, generator):
    response = team.client_for("marketer").get(
        url("event_generator_trigger", team, generator_id=generator.pk)
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'type="datetime-local"' in html and "UTC" in html
    assert 'type="url"' in html and 'type="number"' in html
    assert "Our id of the match" in html  # description as help text
    assert html.count('title="required"') == 5  # 4 top-level required + venue/name
    assert 'name="ctx/minute" value="0"' in html  # default
    assert "Arsenal" in html and "Chelsea" in html
    assert 'id="preview-body"' in html
    for secret in SANDBOX_SECRETS["optimove_campaigns"].values():
        assert secret not in html


def test_the_preview_is_the_exact_body(team, generator):
    response = team.client_for("marketer").post(
        url("event_generator_trigger_preview", team, generator_id=generator.pk), trigger_data()
    )
    html = response.content.decode()
    body = re.search(r'<pre id="preview-body"[^>]*>(.*?)</pre>', html).group(1)
    assert unescape(body) == (
        '{"topic_key":"' + ARSENAL + '","context":{"url":"https://example.com/e/1","minute":0,'
        '"match_id":"m1","match_name":"Arsenal vs Chelsea","start_time":"2026-02-05T20:00:00Z"}}'
    )
    assert 'id="preview-ok"' in html


def test_a_bad_context_is_refused_field_by_field_and_nothing_is_sent(team, generator):
    response = team.client_for("marketer").post(
        url("event_generator_trigger", team, generator_id=generator.pk),
        trigger_data(**{"ctx/match_name": "", "ctx/minute": "-3", "ctx/url": "nope"}),
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert html.count('class="errorlist field-error"') >= 3
    assert "This field is required." in html and "Not an absolute URL" in html
    assert not Run.objects.exists()


def test_sending_one_topic_opens_its_run_page(team, generator):
    response = team.client_for("marketer").post(
        url("event_generator_trigger", team, generator_id=generator.pk), trigger_data()
    )
    run = Run.objects.get()
    assert response["Location"] == url("campaign_run_detail", team, run_id=run.pk)
    assert run.parameters["context"]["start_time"] == "2026-02-05T20:00:00Z"
    page = team.client_for("marketer").get(response["Location"])
    assert b'id="campaign-status"' in page.content and b"every 1s" in page.content


def test_many_topics_open_the_group_page_and_a_duplicate_asks_first(team, generator):
    client = team.client_for("marketer")
    response = client.post(
        url("event_generator_trigger", team, generator_id=generator.pk),
        trigger_data(topics=[], all_topics="on"),
    )
    group = TriggerGroup.objects.get()
    assert response["Location"] == url("trigger_group_detail", team, group_id=group.pk)
    page = client.get(response["Location"])
    assert b'id="total-count">2<' in page.content
    again = client.post(
        url("event_generator_trigger", team, generator_id=generator.pk),
        trigger_data(idempotency_key="other-form", topics=[ARSENAL]),
    )
    assert again.status_code == 409 and b"Send anyway" in again.content
    assert Run.objects.count() == 2
    anyway = client.post(
        url("event_generator_trigger", team, generator_id=generator.pk),
        trigger_data(idempotency_key="other-form", topics=[ARSENAL], send_anyway="on"),
    )
    assert anyway.status_code == 302 and Run.objects.count() == 3


def test_a_failed_run_explains_the_vendor_code_and_offers_relaunch(team, generator):
    group = services.campaign_trigger(
        actor=Actor(user=team.marketer.user),
        generator=generator,
        topic_keys=[ARSENAL],
        context=GOOD_CONTEXT,
        idempotency_key="x",
    )
    run = group.campaign_runs.get().run
    Run.objects.filter(pk=run.pk).update(
        state=RunState.FAILED, failure_code="not_api_triggered", failure_message="Unprocessable"
    )
    client = team.client_for("marketer")
    page = client.get(url("campaign_run_detail", team, run_id=run.pk)).content.decode()
    assert "not an API-triggered campaign (422)" in page
    assert "API Triggered (Preference Center)" in page
    relaunch = client.get(
        url("event_generator_trigger", team, generator_id=generator.pk) + f"?relaunch={run.pk}"
    ).content.decode()
    assert 'name="ctx/match_id" value="nfl-2025-001"' in " ".join(relaunch.split())
    assert f'value="{ARSENAL}" id="id_topics_0" checked' in relaunch
    # The form follows the schema's own property order (jsonb would sort it).
    assert relaunch.index('name="ctx/match_id"') < relaunch.index('name="ctx/url"')


def test_scheduling_through_the_form(team, generator):
    client = team.client_for("marketer")
    past = client.post(
        url("event_generator_trigger", team, generator_id=generator.pk),
        trigger_data(when="later", fire_at="2020-01-01T10:00"),
    )
    assert past.status_code == 400 and b"in the past" in past.content
    later = (utc_now() + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S")
    response = client.post(
        url("event_generator_trigger", team, generator_id=generator.pk),
        trigger_data(when="later", fire_at=later),
    )
    assert response["Location"] == url("campaign_schedule_list", team)
    planned = ScheduledTrigger.objects.get()
    assert planned.fire_at.strftime("%Y-%m-%dT%H:%M:%S") == later
    assert not Run.objects.exists()
    listing = client.get(url("campaign_schedule_list", team)).content.decode()
    assert f'id="schedule-{planned.pk}"' in listing
    overview = client.get(url("tenant_home", team)).content.decode()
    assert f'id="schedule-{planned.pk}"' in overview


def test_generator_page_shows_history_chart_and_versions(team, generator):
    page = team.client_for("auditor").get(
        url("event_generator_detail", team, generator_id=generator.pk)
    )
    html = page.content.decode()
    assert "<svg" in html and 'id="versions"' in html
    export = team.client_for("auditor").get(
        url("event_generator_export", team, generator_id=generator.pk)
    )
    assert json.loads(export.content)["schema"] == MATCH_SCHEMA


def test_another_tenants_generator_is_a_404_and_auditors_cannot_trigger(
    team, other_team, generator
):
    other = other_team.client_for("admin")
    assert (
        other.get(url("event_generator_detail", team, generator_id=generator.pk)).status_code == 404
    )
    outsider_url = reverse(
        "event_generator_detail",
        kwargs={"tenant_slug": other_team.tenant.slug, "generator_id": generator.pk},
    )
    assert other.get(outsider_url).status_code == 404
    auditor = team.client_for("auditor")
    response = auditor.post(
        url("event_generator_trigger", team, generator_id=generator.pk), trigger_data()
    )
    assert response.status_code == 403
    assert not Run.objects.exists()


def test_campaign_approval_setting_is_for_admins(team):
    assert team.client_for("marketer").get(url("campaign_settings", team)).status_code == 403
    response = team.client_for("admin").post(
        url("campaign_settings", team), {"approval_required": "on"}
    )
    assert response.status_code == 302
    assert services.campaign_settings(tenant=team.tenant).approval_required


def test_an_inactive_connection_is_said_plainly_and_nothing_is_sent(team, generator):
    generator.connection.is_active = False
    generator.connection.save()
    response = team.client_for("marketer").post(
        url("event_generator_trigger", team, generator_id=generator.pk), trigger_data()
    )
    assert response.status_code == 400
    assert b"is inactive" in response.content
    assert not Run.objects.exists()


def test_a_run_awaiting_approval_says_who_must_act(team, generator):
    services.campaign_settings_update(
        actor=Actor(user=team.admin.user), tenant=team.tenant, approval_required=True
    )
    response = team.client_for("marketer").post(
        url("event_generator_trigger", team, generator_id=generator.pk), trigger_data()
    )
    page = team.client_for("marketer").get(response["Location"]).content.decode()
    assert 'id="awaiting-approval"' in page
    assert Run.objects.get().state == RunState.AWAITING_APPROVAL


def test_a_schedule_is_edited_and_cancelled_from_its_pages(team, generator):
    planned = services.schedule_create(
        actor=Actor(user=team.marketer.user),
        generator=generator,
        topic_keys=[ARSENAL],
        context=GOOD_CONTEXT,
        fire_at=utc_now() + timedelta(hours=1),
    )
    client = team.client_for("marketer")
    edit_url = url("campaign_schedule_edit", team, schedule_id=planned.pk)
    form = client.get(edit_url).content.decode()
    assert 'value="nfl-2025-001"' in " ".join(form.split()) and "Save schedule" in form
    assert f'value="{planned.fire_at:%Y-%m-%dT%H:%M:%S}"' in form  # what datetime-local reads
    later = (utc_now() + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S")
    response = client.post(
        edit_url, trigger_data(when="later", fire_at=later, topics=[CHELSEA], **{"ctx/minute": "7"})
    )
    assert response.status_code == 302
    planned.refresh_from_db()
    assert planned.topic_keys == [CHELSEA] and planned.context["minute"] == 7
    assert planned.fire_at.strftime("%Y-%m-%dT%H:%M:%S") == later
    client.post(url("campaign_schedule_cancel", team, schedule_id=planned.pk))
    planned.refresh_from_db()
    assert planned.state == "cancelled"
    assert client.get(edit_url).status_code == 302  # no longer editable
    assert not Run.objects.exists()


def test_retry_of_failed_topics_from_the_group_page(team, generator):
    group = services.campaign_trigger(
        actor=Actor(user=team.marketer.user),
        generator=generator,
        topic_keys=[ARSENAL, CHELSEA],
        context=GOOD_CONTEXT,
        idempotency_key="g",
    )
    Run.objects.filter(parameters__topic_key=CHELSEA).update(
        state=RunState.FAILED, failure_code="audience_resolution_failed"
    )
    client = team.client_for("marketer")
    page = client.get(url("trigger_group_detail", team, group_id=group.pk)).content.decode()
    assert 'id="retry-failed"' in page and "resolve the topic" in page
    client.post(url("trigger_group_retry", team, group_id=group.pk))
    assert Run.objects.filter(parameters__topic_key=CHELSEA).count() == 2
    assert Run.objects.filter(parameters__topic_key=ARSENAL).count() == 1
    assert (
        team.client_for("auditor")
        .post(url("trigger_group_retry", team, group_id=group.pk))
        .status_code
        == 403
    )


def test_another_marketers_schedule_cannot_be_edited_or_cancelled_from_the_pages(team, generator):
    planned = services.schedule_create(
        actor=Actor(user=team.marketer.user),
        generator=generator,
        topic_keys=[ARSENAL],
        context=GOOD_CONTEXT,
        fire_at=utc_now() + timedelta(hours=1),
    )
    user = UserFactory(username="max")
    MembershipFactory(tenant=team.tenant, user=user, role=Role.MARKETER)
    client = Client()
    client.force_login(user)
    listing = client.get(url("campaign_schedule_list", team)).content.decode()
    assert f'id="schedule-{planned.pk}"' in listing
    assert url("campaign_schedule_edit", team, schedule_id=planned.pk) not in listing
    edit_url = url("campaign_schedule_edit", team, schedule_id=planned.pk)
    refused = client.get(edit_url)
    assert refused.status_code == 403
    assert "Only the person who scheduled it or an operator" in refused.content.decode()
    later = (utc_now() + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S")
    assert (
        client.post(edit_url, trigger_data(when="later", fire_at=later, **{"ctx/minute": "7"}))
    ).status_code == 403
    cancel = client.post(url("campaign_schedule_cancel", team, schedule_id=planned.pk))
    assert cancel.status_code == 403
    planned.refresh_from_db()
    assert planned.state == "scheduled" and planned.context == GOOD_CONTEXT
    # The operator sees the links, and an edit shows who changed it.
    operator = team.client_for("operator")
    assert edit_url in operator.get(url("campaign_schedule_list", team)).content.decode()
    operator.post(edit_url, trigger_data(when="later", fire_at=later, **{"ctx/minute": "7"}))
    listing = operator.get(url("campaign_schedule_list", team)).content.decode()
    assert "mia (changed by oscar)" in listing


def test_another_marketer_cannot_retry_a_trigger_group_from_its_page(team, generator):
    group = services.campaign_trigger(
        actor=Actor(user=team.marketer.user),
        generator=generator,
        topic_keys=[ARSENAL, CHELSEA],
        context=GOOD_CONTEXT,
        idempotency_key="g",
    )
    Run.objects.filter(parameters__topic_key=CHELSEA).update(
        state=RunState.FAILED, failure_code="audience_resolution_failed"
    )
    user = UserFactory(username="max")
    MembershipFactory(tenant=team.tenant, user=user, role=Role.MARKETER)
    client = Client()
    client.force_login(user)
    page = client.get(url("trigger_group_detail", team, group_id=group.pk)).content.decode()
    assert 'id="retry-failed"' not in page
    refused = client.post(url("trigger_group_retry", team, group_id=group.pk))
    assert refused.status_code == 403
    assert "Only the person who triggered it or an operator" in refused.content.decode()
    assert Run.objects.count() == 2


def test_the_group_page_says_partly_failed_in_the_shared_badge(team, generator):
    group = services.campaign_trigger(
        actor=Actor(user=team.marketer.user),
        generator=generator,
        topic_keys=[ARSENAL, CHELSEA],
        context=GOOD_CONTEXT,
        idempotency_key="g",
    )
    Run.objects.filter(parameters__topic_key=ARSENAL).update(
        state=RunState.SUCCEEDED, vendor_status="published", audience_size=5000
    )
    Run.objects.filter(parameters__topic_key=CHELSEA).update(
        state=RunState.FAILED, failure_code="audience_resolution_failed"
    )

    page = team.client_for("auditor").get(url("trigger_group_detail", team, group_id=group.pk))

    html = page.content.decode()
    assert (
        '<p id="group-outcome"><span class="badge warn">Partly failed</span> <span class="outcome'
        '-detail">1 of 2 topics failed; published to an audience of 5,000</span></p>' in html
    )
    assert '<span class="badge state failed">Failed</span>' in html
    home = team.client_for("auditor").get(url("campaign_home", team)).content.decode()
    assert '<span class="badge warn">Partly failed</span>' in home


def test_the_past_schedules_show_each_fired_run_its_state_reason_and_link(team, generator):
    planned = services.schedule_create(
        actor=Actor(user=team.marketer.user),
        generator=generator,
        topic_keys=[ARSENAL],
        context=GOOD_CONTEXT,
        fire_at=utc_now() + timedelta(hours=1),
    )
    ScheduledTrigger.objects.filter(pk=planned.pk).update(fire_at=utc_now() - timedelta(seconds=1))
    assert services.schedules_fire_due() == 1
    run = Run.objects.get()
    Run.objects.filter(pk=run.pk).update(
        state=RunState.FAILED,
        failure_code="not_api_triggered",
        failure_message="HTTP 422: the Event Generator is not API-triggered",
    )

    html = team.client_for("auditor").get(url("campaign_schedule_list", team)).content.decode()

    past = html[html.index('id="past"') :]
    assert "<th>State</th><th>Outcome</th><th>Runs</th>" in past
    run_link = url("campaign_run_detail", team, run_id=run.pk)
    assert f'<a href="{run_link}">run #{run.pk}</a>' in past
    assert (
        '<span class="badge bad">Failed</span> <span class="outcome-detail">HTTP 422: the Event'
        " Generator is not API-triggered</span>" in past
    )


def test_the_campaign_run_page_says_its_state_once(team, generator):
    group = services.campaign_trigger(
        actor=Actor(user=team.marketer.user),
        generator=generator,
        topic_keys=[ARSENAL],
        context=GOOD_CONTEXT,
        idempotency_key="x",
    )
    run = group.campaign_runs.get().run

    html = team.client_for("marketer").get(url("campaign_run_detail", team, run_id=run.pk))

    assert "(run:" not in html.content.decode()
    assert 'id="run-outcome"><span class="badge">Queued</span>' in html.content.decode()
