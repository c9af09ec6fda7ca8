"""The daily trigger is named "Daily batch · <UTC day>", a TalkifAI start by its job's name, both
with the connection's name of the day they were requested (issue 22, readable names)."""

from __future__ import annotations

import csv
import io

import pytest
from django.core import mail
from django.urls import reverse

from batchjobs import services
from batchjobs.models import BatchJob
from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.models import VendorConnection

pytestmark = pytest.mark.django_db


def request_daily(team, key: str = "today"):
    return services.daily_trigger_request(
        actor=Actor(user=team.marketer.user),
        tenant=team.tenant,
        wait_time_for_validation_seconds=10,
        idempotency_key=key,
        files_uploaded_attested=True,
    )


def test_the_daily_trigger_is_named_by_its_utc_day(daily):
    run = request_daily(daily.team)

    assert run.title == f"Daily batch · {utc_now():%Y-%m-%d}"
    assert run.connection_name == "Optimove"


def test_the_daily_trigger_keeps_its_names_in_mails_pages_and_csv_after_a_rename(
    daily, django_capture_on_commit_callbacks
):
    team = daily.team
    with django_capture_on_commit_callbacks(execute=True):
        run = request_daily(team)
    title = f"Daily batch · {utc_now():%Y-%m-%d}"
    approval_mail = mail.outbox[0]  # one to each approver, all alike
    assert approval_mail.subject == f"Approval needed: run #{run.pk}, {title}"
    assert f"  {title}\n  (Trigger daily batch (validation wait 10 s))\n" in approval_mail.body
    assert "  on Optimove\n" in approval_mail.body
    VendorConnection.objects.filter(pk=daily.connection.pk).update(name="Optimove EU")
    mail.outbox.clear()

    from dashboard.runs.services import run_reject

    with django_capture_on_commit_callbacks(execute=True):
        run_reject(actor=Actor(user=team.operator.user), run=run, comment="not today")
    assert [m.subject for m in mail.outbox] == [f"Run #{run.pk} rejected: {title}"]

    client = team.client_for("auditor")
    body = b"".join(client.get(reverse("run_export", args=["acme"])).streaming_content)
    [row] = list(csv.DictReader(io.StringIO(body.decode())))
    assert (row["title"], row["connection"]) == (title, "Optimove")


def test_a_talkifai_start_is_named_by_the_job_as_registered_then(team, talkifai, register_job):
    job = register_job("job-scheduled-001", name="Win-back calls")
    run = services.batch_job_start(
        actor=Actor(user=team.operator.user), batch_job=job, idempotency_key="s1"
    )
    BatchJob.objects.filter(pk=job.pk).update(name="Spring calls")

    run.refresh_from_db()
    assert (run.title, run.connection_name) == ("Win-back calls", "TalkifAI")
    page = team.client_for("operator").get(reverse("batch_job_list", args=["acme"]))
    assert "Win-back calls<br><code>job-scheduled-001</code>" in page.content.decode()


def test_a_job_registered_without_a_name_is_named_by_its_id(team, talkifai, register_job):
    job = register_job("job-scheduled-001")
    run = services.batch_job_start(
        actor=Actor(user=team.operator.user), batch_job=job, idempotency_key="s1"
    )

    assert run.title == (job.name or "Batch job job-scheduled-001")
