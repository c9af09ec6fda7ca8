"""Forgot password on the real stack: the request enqueues the email after its commit, a Celery
worker (another process) makes the link and sends it, and the link sets a new password."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from tests.e2e.conftest import wait_for
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
SITE = "https://triggerdesk.example.com"
NEW_PASSWORD = "a-long-new-passphrase-42"
SEPARATOR = "-" * 79  # Django's file backend ends every message with this line


def mails_in(directory: Path) -> list[email.message.EmailMessage]:
    """The messages Django's file-based email backend has finished writing into `directory`."""
    return [
        email.message_from_string(text.strip(), policy=email.policy.default)
        for path in sorted(directory.glob("*.log"))
        # What follows the last separator is a message still being written, if anything.
        for text in path.read_text().split(SEPARATOR)[:-1]
    ]


def test_a_reset_request_ends_with_the_email_sent_by_a_worker(workers, tmp_path):
    outbox = tmp_path / "mail"
    worker = workers.start(
        pool="threads",
        concurrency=1,
        env={"TEST_EMAIL_FILE_PATH": str(outbox), "SITE_URL": SITE},
    )
    lena = UserFactory(username="lena", email="lena@example.com")
    UserFactory(username="other", email="other@example.com")

    response = Client(REMOTE_ADDR="10.0.0.5").post(
        reverse("password_reset"), {"email": "lena@example.com"}
    )
    assert response.status_code == 302

    (message,) = wait_for(
        lambda: mails_in(outbox), timeout=60, message="the worker to send the reset email"
    )
    assert message["To"] == "lena@example.com"
    match = re.search(re.escape(SITE) + r"(/account/password/reset/[^\s]+/)", message.get_content())
    assert match, message.get_content()
    link = match.group(1)
    wait_for(lambda: "succeeded" in worker.log(), timeout=30, message="the task to finish")
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert token not in worker.log() and "lena@example.com" not in worker.log()

    client = Client(REMOTE_ADDR="10.0.0.9")
    form_page = client.get(link, follow=True)
    reset = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert reset.status_code == 302
    lena.refresh_from_db()
    assert lena.check_password(NEW_PASSWORD)
