"""A bulk launch in a real browser: upload (with its progress bar) → preview → confirm → live
progress → done, against a live server, a real Celery worker process and the Altcraft sandbox."""

from __future__ import annotations

import pytest

from tests.batchjobs.test_browser import SCREENSHOTS, browser, log_in  # noqa: F401 - fixtures
from tests.e2e.conftest import e2e_redis, workers  # noqa: F401 - the e2e harness's fixtures

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_upload_preview_confirm_and_watch_it_done(
    team,
    sandboxes,
    sandbox_connection,
    workers,  # noqa: F811 - the imported fixture, requested
    live_server,
    browser,  # noqa: F811
    upload_dir,
):
    from campaigns.altcraft_launches import services
    from dashboard.audit.trail import Actor

    altcraft = sandboxes["altcraft"]
    altcraft.control("set_body_limit", {"bytes": 3000})
    connection = sandbox_connection(team.tenant, "altcraft", options={"body_limit_bytes": 3000})
    trigger = services.trigger_register(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        connection=connection,
        trigger_id=8,
        name="Abandoned cart",
    )
    workers.start(pool="threads", concurrency=4, env={"ALTCRAFT_UPLOAD_DIR": str(upload_dir)})
    emails = [f"person{index:04d}@example.com" for index in range(150)]
    content = ("email\n" + "\n".join(emails) + "\nnot-an-email\n" + emails[0] + "\n").encode()

    page = log_in(browser, live_server, "mia")
    page.goto(
        f"{live_server.url}/t/acme/campaigns/altcraft/launches/new/?trigger={trigger.pk}"
        "&kind=start_batch"
    )
    page.set_input_files(
        "input[name=file]",
        files=[{"name": "recipients.csv", "mimeType": "text/csv", "buffer": content}],
    )
    page.fill("textarea[name=content]", '{"page": "cart"}')
    page.click("#launch-upload")
    page.wait_for_url("**/campaigns/altcraft/launches/*/")
    assert page.text_content("#rows-valid").strip() == "150"
    assert page.text_content("#rows-invalid").strip() == "1"
    assert page.text_content("#rows-duplicate").strip() == "1"
    assert "not an email address" in page.text_content("#invalid-rows")
    assert altcraft.received == []  # the preview sent nothing
    page.screenshot(path=str(SCREENSHOTS / "altcraft-preview.png"), full_page=True)

    page.click("#launch-confirm")
    page.wait_for_selector("#launch-done", timeout=60_000)
    assert page.text_content("#overall-percent").strip() == "100%"
    page.screenshot(path=str(SCREENSHOTS / "altcraft-done.png"), full_page=True)

    received = [r for r in altcraft.received_on("start_batch") if r.processed]
    assert len(received) == page.locator("#chunk-table tbody tr").count() > 1


def test_import_map_columns_preview_confirm_and_watch_the_tasks(
    team,
    sandboxes,
    sandbox_connection,
    workers,  # noqa: F811
    live_server,
    browser,  # noqa: F811
    upload_dir,
):
    from campaigns.altcraft_launches import services
    from dashboard.audit.trail import Actor

    altcraft = sandboxes["altcraft"]
    connection = sandbox_connection(team.tenant, "altcraft")
    trigger = services.trigger_register(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        connection=connection,
        trigger_id=96,
        name="Registration form",
    )
    workers.start(pool="threads", concurrency=4, env={"ALTCRAFT_UPLOAD_DIR": str(upload_dir)})
    content = b"Email,First name,Notes\nann@example.com,Ann,vip\nbob@example.com,Bob,\n"

    page = log_in(browser, live_server, "mia")
    page.goto(
        f"{live_server.url}/t/acme/campaigns/altcraft/launches/new/?trigger={trigger.pk}"
        "&kind=import"
    )
    page.set_input_files(
        "input[name=file]",
        files=[{"name": "profiles.csv", "mimeType": "text/csv", "buffer": content}],
    )
    page.click("#launch-upload")
    page.wait_for_url("**/mapping/")
    page.select_option("select[name=target_2]", "ignore")
    page.fill("input[name=field_1]", "_fname")
    page.click("#mapping-submit")
    page.wait_for_url("**/campaigns/altcraft/launches/*/")
    assert page.text_content("#rows-valid").strip() == "2"

    page.click("#launch-confirm")
    page.wait_for_selector("#launch-done", timeout=90_000)
    assert page.text_content("#overall-percent").strip() == "100%"
    assert "2 profiles" in page.text_content("#chunk-table")
    assert page.text_content("#launch-done") == "Imported 2 of 2 rows imported and launched"
    [received] = altcraft.received_on("import_and_start_batch_task")
    assert '"data":{"email":"ann@example.com","_fname":"Ann"}' in received.body
