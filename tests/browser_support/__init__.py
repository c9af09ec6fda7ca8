"""What every browser test shares: the chromium fixture, logging in, screenshots, and the checks a
page must pass on any screen (issue 22, items 7 to 9).

    from tests.browser_support import PHONE, axe_violations, browser, log_in, no_overflow

    def test_something(team, live_server, browser):  # noqa: F811 - the imported fixture
        page = log_in(browser, live_server, "mia", viewport=PHONE)
        errors = console_errors(page)
        page.goto(...)
        assert no_overflow(page)
        assert axe_violations(page) == []
        assert errors == []

axe.min.js is axe-core 4.14.1 (Deque Systems, MPL-2.0: axe-core.LICENSE beside it), vendored from
the npm registry (`npm pack axe-core@4.14.1`). It is evaluated in the page through the DevTools
protocol, which the Content-Security-Policy does not govern: the pages keep their real policy.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from tests.factories import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots to look at, not secrets. TRIGGERDESK_SCREENSHOTS=dir keeps them somewhere else.
SCREENSHOTS = Path(os.environ.get("TRIGGERDESK_SCREENSHOTS", "/tmp"))  # noqa: S108
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
AXE = Path(__file__).resolve().parent / "axe.min.js"
# What a page may not have: the impacts that stop or seriously hinder someone.
BLOCKING_IMPACTS = ("serious", "critical")


@pytest.fixture
def browser(monkeypatch):
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does it)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            # ORM calls made while Playwright's loop runs get their own connection (asgiref's
            # context-local storage); close it, or the test database cannot be dropped.
            connections.close_all()


def log_in(
    browser, live_server, username: str, *, timezone_id: str = "UTC", viewport: dict | None = None
):
    """A new browser context (its own cookies) logged in as `username`; its page."""
    context = browser.new_context(
        timezone_id=timezone_id, locale="en-GB", viewport=viewport or DESKTOP
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/t/**")
    return page


def page_width(page) -> int:
    """How wide the page's content is, in CSS pixels (wider than the window: it scrolls)."""
    return page.evaluate("document.scrollingElement.scrollWidth")


def no_overflow(page) -> bool:
    """True when the page does not scroll sideways in its window."""
    return page_width(page) <= page.viewport_size["width"]


def axe_violations(page, *, impacts: tuple[str, ...] = BLOCKING_IMPACTS) -> list[str]:
    """axe-core's WCAG 2.x A/AA and best-practice violations on the page as it is now, of the
    given impacts: one line per rule with the elements it found ([] when there are none)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())
    results: dict[str, Any] = page.evaluate(
        """async () => {
            const results = await axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa",
                                                 "wcag22aa", "best-practice"]},
                resultTypes: ["violations"],
            });
            return results.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.map(n => n.target.join(" ")),
            }));
        }"""
    )
    return [
        f"{found['id']} ({found['impact']}): {found['help']}: {', '.join(found['targets'][:5])}"
        + (f" and {len(found['targets']) - 5} more" if len(found["targets"]) > 5 else "")
        for found in results
        if found["impact"] in impacts
    ]


def console_errors(page) -> list[str]:
    """A list that fills with what the page logs as an error, and its uncaught exceptions, from
    now on (keep it; assert it is [] at the end)."""
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def screenshot(page, name: str, *, full_page: bool = True) -> Path:
    """A screenshot in SCREENSHOTS, named triggerdesk-<width>-<name>.png: the whole page, or
    only what the window shows (`full_page=False`: small enough for the README)."""
    slug = re.sub(r"\W+", "-", name.strip("/")).strip("-") or "home"
    path = SCREENSHOTS / f"triggerdesk-{page.viewport_size['width']}-{slug}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)
    return path


def widest_elements(page, limit: int = 8) -> list[str]:
    """The elements that stick out of the window on the right, innermost first: where to look
    when no_overflow(page) is False."""
    return page.evaluate(
        """limit => {
            const width = document.documentElement.clientWidth;
            const found = [];
            for (const element of document.body.querySelectorAll("*")) {
                const box = element.getBoundingClientRect();
                if (box.right > width + 0.5 && box.width > 0) {
                    const name = element.tagName.toLowerCase() + (element.id ? "#" + element.id : "")
                        + (element.className && typeof element.className === "string"
                           ? "." + element.className.trim().split(/\\s+/).join(".") : "");
                    found.push(name + " (right edge " + Math.round(box.right) + " px)");
                }
            }
            return found.reverse().slice(0, limit);
        }""",
        limit,
    )
