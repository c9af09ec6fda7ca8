"""Security headers: a strict Content-Security-Policy that htmx works under, HSTS, the https
redirect (not for the probes), secure cookies; and no inline script or handler anywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

REPO = Path(__file__).resolve().parents[2]

# A JSON data block (<script type="application/json">) never runs: CSP does not apply to it.
INLINE_SCRIPT = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*\btype=\"application/json\")[^>]*>", re.IGNORECASE
)
INLINE_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)
JAVASCRIPT_URL = re.compile(r"(href|src|action)\s*=\s*[\"']?\s*javascript:", re.IGNORECASE)


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def inline_code(html: str) -> list[str]:
    found = []
    for pattern in (INLINE_SCRIPT, INLINE_HANDLER, INLINE_STYLE, JAVASCRIPT_URL):
        found += [match.group(0)[:80] for match in pattern.finditer(html)]
    return found


@pytest.mark.django_db
def test_csp_is_strict_on_every_page(client):
    response = client.get(reverse("login"))

    directives = policy(response)
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    header = response["Content-Security-Policy"]
    assert "unsafe-inline" not in header and "unsafe-eval" not in header
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


@pytest.mark.django_db
def test_htmx_is_configured_for_the_csp(team):
    html = team.client_for("admin").get(reverse("tenant_home", args=[team.tenant.slug])).text

    config = re.search(r'<meta name="htmx-config" content=\'([^\']*)\'', html)
    assert config, "htmx-config meta missing"
    assert '"includeIndicatorStyles": false' in config.group(1)
    assert '"allowEval": false' in config.group(1)
    css = (REPO / "static" / "css" / "app.css").read_text()
    assert ".htmx-request .htmx-indicator" in css


@pytest.mark.django_db
def test_hsts_ssl_redirect_and_secure_cookies_in_production(settings, client, team):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True

    plain = client.get(reverse("login"))
    assert plain.status_code == 301
    assert plain["Location"].startswith("https://")
    # The probes talk plain HTTP inside the network.
    assert client.get("/healthz").status_code == 200

    secure = client.get(reverse("login"), secure=True)
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert secure.cookies["csrftoken"]["secure"]

    response = client.post(
        reverse("login"), {"username": "ada", "password": "password"}, secure=True
    )
    if "sessionid" in response.cookies:
        assert response.cookies["sessionid"]["secure"]


def test_no_template_has_inline_script_handler_or_style():
    """CSP forbids them; every template, rendered or partial, stays clean."""
    offenders = {}
    for path in sorted((REPO / "templates").rglob("*.html")):
        found = inline_code(path.read_text())
        if found:
            offenders[str(path.relative_to(REPO))] = found
    assert offenders == {}


@pytest.mark.django_db
def test_rendered_pages_have_no_inline_script_handler_or_style(team):
    client = team.client_for("admin")
    slug = team.tenant.slug
    names = [
        "tenant_home",
        "connection_list",
        "connection_create",
        "member_list",
        "tenant_settings",
        "audit_list",
        "daily_trigger",
        "batch_job_list",
        "run_list",
    ]
    urls = [reverse("home"), reverse("login")] + [reverse(name, args=[slug]) for name in names]
    offenders = {}
    for url in urls:
        response = client.get(url, follow=True)
        assert response.status_code == 200, url
        found = inline_code(response.text)
        if found:
            offenders[url] = found
    assert offenders == {}
