"""Browsers logged in through the login page, each with its own address and user agent."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.urls import reverse

from tests.factories import PASSWORD

MAC_CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
WINDOWS_FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"


@pytest.fixture
def browser_login(clean_redis):
    """browser_login(username, user_agent=MAC_CHROME, ip="198.51.100.7") -> a test client
    logged in through the login page, like a browser on that device and address."""
    from django.test import Client

    def login(username: str, user_agent: str = MAC_CHROME, ip: str = "198.51.100.7") -> Any:
        client = Client(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=ip)
        response = client.post(reverse("login"), {"username": username, "password": PASSWORD})
        assert response.status_code == 302, response.content[:500]
        return client

    return login


def session_cookie(client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value
