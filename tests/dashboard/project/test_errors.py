"""Error pages (issue 9, item 14): styled, with the reason and a way back; form addresses that
survive a reload; a refused permission logged as one line, not a traceback."""

from __future__ import annotations

import logging

import pytest
import redis
from django.db import InterfaceError, OperationalError
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.defaults import server_error

from tests.factories import VendorConnectionFactory

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return response.content.decode()


def test_403_page_says_why_and_keeps_the_navigation(team):
    response = team.client_for("marketer").get(reverse("tenant_settings", args=["acme"]))
    assert response.status_code == 403
    page = text(response)
    assert "Your role (Marketer) cannot do this." in page
    assert 'class="topbar"' in page and 'aria-label="Main"' in page  # the tenant's navigation
    assert f'href="{reverse("tenant_home", args=["acme"])}"' in page  # a way back
    assert "Back to the overview of Acme Sports" in page


def test_403_is_logged_as_one_line_with_the_reason(team, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        team.client_for("marketer").get(reverse("tenant_settings", args=["acme"]))
    records = [r for r in caplog.records if r.name == "django.request"]
    assert len(records) == 1
    assert records[0].exc_info is None  # no traceback
    assert "Your role (Marketer) cannot do this." in records[0].getMessage()
    assert "Traceback" not in caplog.text


def test_404_page_is_styled_and_leads_back(team):
    response = team.client_for("operator").get("/t/acme/no-such-page/")
    assert response.status_code == 404
    page = text(response)
    assert "Page not found" in page and "/t/acme/no-such-page/" in page
    assert 'class="topbar"' in page
    assert reverse("home") in page


def test_another_tenants_address_is_the_same_404_without_detail(team, other_team):
    response = team.client_for("operator").get(reverse("tenant_home", args=["other"]))
    assert response.status_code == 404
    assert "Other Brand" not in text(response)


def test_405_page_is_styled(team):
    response = team.client_for("operator").post(reverse("run_list", args=["acme"]))
    assert response.status_code == 405
    assert response["Allow"] == "GET"
    page = text(response)
    assert "This address does not answer that way" in page
    assert "It takes GET, not POST." in page
    assert "Back to the overview of Acme Sports" in page


def test_500_page_is_styled_without_a_request_context():
    request = RequestFactory().get("/boom/")
    response = server_error(request)
    assert response.status_code == 500
    page = text(response)
    assert "Something went wrong on our side" in page
    assert 'href="/"' in page  # a way back, even without a logged-in user


@pytest.mark.parametrize(
    ("name", "args", "page_name", "page_args"),
    [
        ("member_add", [], "member_list", []),
        ("member_change_role", ["membership"], "member_list", []),
        ("member_remove", ["membership"], "member_list", []),
        ("connection_secret_set", ["connection"], "connection_detail", ["connection"]),
        ("daily_trigger_request", [], "daily_trigger", []),
        ("batch_job_register", [], "batch_job_list", []),
    ],
)
def test_a_form_address_opened_with_get_goes_to_its_page(team, name, args, page_name, page_args):
    connection = VendorConnectionFactory(tenant=team.tenant)
    values = {"membership": team.marketer.pk, "connection": connection.pk}
    url = reverse(name, args=["acme", *(values[a] for a in args)])
    response = team.client_for("admin").get(url)
    assert response.status_code == 302
    assert response["Location"] == reverse(
        page_name, args=["acme", *(values[a] for a in page_args)]
    )


def test_a_failed_post_re_renders_and_its_address_survives_a_reload(team):
    # The member form with an unknown user: the errors are shown at the POST's address; a later
    # GET of that address (a reload that the browser turns into a GET, or the history) shows the
    # members page, not an empty 405.
    client = team.client_for("admin")
    url = reverse("member_add", args=["acme"])
    failed = client.post(url, {"username": "nobody", "role": "marketer"})
    assert failed.status_code == 400
    assert "No user named" in text(failed)
    reload = client.get(url, follow=True)
    assert reload.status_code == 200
    assert reload.redirect_chain == [(reverse("member_list", args=["acme"]), 302)]


def test_an_expired_form_gets_a_styled_page(team):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(team.admin.user)
    response = client.post(reverse("member_add", args=["acme"]), {"username": "x"})
    assert response.status_code == 403
    assert "This form expired" in text(response)
    assert "Nothing was changed." in text(response)


@pytest.fixture
def failing_run_list(monkeypatch):
    """The runs page's and the API's read of the runs raises `error`, as a lost database or
    Redis makes every query raise."""

    def fail_with(error: Exception) -> None:
        def raise_it(*args, **kwargs):
            raise error

        monkeypatch.setattr("dashboard.runs.selectors.run_history_page", raise_it)
        monkeypatch.setattr("dashboard.runs.selectors.run_list", raise_it)

    return fail_with


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("connection to server at 127.0.0.1, port 5432 failed"),
        InterfaceError("connection already closed"),
        redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379"),
    ],
    ids=["database-down", "connection-closed", "redis-down"],
)
def test_an_unreachable_database_or_redis_is_a_503_to_retry_not_a_500(
    team, failing_run_list, error
):
    failing_run_list(error)
    client = team.client_for("marketer")
    client.raise_request_exception = False
    response = client.get(reverse("run_list", args=["acme"]))
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "TriggerDesk cannot reach its database right now" in text(response)
    assert "Nothing was done with this request" in text(response)


def test_the_api_answers_503_problem_json_when_the_database_is_unreachable(
    make_token, failing_run_list
):
    failing_run_list(OperationalError("the connection is closed"))
    _, api = make_token("auditor")
    client = Client(raise_request_exception=False)
    response = client.get(api.url("runs"), headers=api.headers())
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response["Retry-After"] == "5"
    body = response.json()
    assert body["code"] == "service_unavailable" and body["status"] == 503
    assert "same Idempotency-Key" in body["detail"]


def test_any_other_error_is_still_the_500_page(team, failing_run_list):
    failing_run_list(KeyError("a defect"))
    client = team.client_for("marketer")
    client.raise_request_exception = False
    response = client.get(reverse("run_list", args=["acme"]))
    assert response.status_code == 500
    assert "Retry-After" not in response
    assert "Something went wrong on our side" in text(response)
