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


def test_a_crm_export_pick_the_column_see_what_is_ignored_skip_the_empty_rows_and_send(
    team,
    sandboxes,
    sandbox_connection,
    workers,  # noqa: F811
    live_server,
    browser,  # noqa: F811
    upload_dir,
):
    import json

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
    lines = ["first_name,Work e-mail,page"]
    emails = []
    for index in range(120):
        email = f"person{index:04d}@example.com"
        emails.append(email)
        lines.append(f"Name{index},{email},page-{index}")
    lines.insert(5, "Nobody,,page-x")  # row 6: a contact without an email
    content = ("\n".join(lines) + "\n").encode()

    page = log_in(browser, live_server, "mia")
    page.goto(
        f"{live_server.url}/t/acme/campaigns/altcraft/launches/new/?trigger={trigger.pk}"
        "&kind=start_batch"
    )
    page.set_input_files(
        "input[name=file]",
        files=[{"name": "crm-export.csv", "mimeType": "text/csv", "buffer": content}],
    )
    page.click("#launch-upload")
    page.wait_for_url("**/column/")
    # The header, one choice per column; none is named "email", so the marketer picks it.
    assert page.locator("input[name=column]").count() == 3
    page.get_by_label("Work e-mail").check()
    page.screenshot(path=str(SCREENSHOTS / "altcraft-crm-column.png"), full_page=True)
    page.click("#column-submit")
    page.wait_for_selector("#rows-valid", timeout=60_000)
    assert page.text_content("#launch-column").strip() == "Work e-mail"
    assert page.text_content("#ignored-columns").strip() == "first_name, page"
    assert page.text_content("#rows-valid").strip() == "120"
    assert page.text_content("#rows-empty").strip() == "1"
    assert page.text_content("#empty-rows").strip() == "6"
    assert altcraft.received == []  # the preview sent nothing
    page.screenshot(path=str(SCREENSHOTS / "altcraft-crm-preview.png"), full_page=True)

    # The form will not submit until the empty row is decided about (the server refuses too).
    assert (
        page.eval_on_selector("#launch-confirm", "button => button.form.checkValidity()") is False
    )
    page.check("#skip-empty")
    page.click("#launch-confirm")
    page.wait_for_selector("#launch-done", timeout=60_000)
    assert page.text_content("#overall-percent").strip() == "100%"

    received = [r for r in altcraft.received_on("start_batch") if r.processed]
    assert len(received) == page.locator("#chunk-table tbody tr").count() > 1
    # The sandbox's ledger holds the matching values and nothing of the other columns.
    items = [item for r in received for item in json.loads(r.body)["data"]]
    assert sorted(item["email"] for item in items) == emails
    assert all(list(item) == ["email"] for item in items)
    assert not any("Name" in r.body or "page-" in r.body for r in received)
