"""Shared steps of the single sign-on tests: signing in through the local provider."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests


def start(client, provider, login: str) -> str:
    """Click "Sign in with ..." and sign in at the provider as `login`: the callback's URL."""
    response = client.get("/login/sso/")
    assert response.status_code == 302
    authorize = response["Location"]
    assert authorize.startswith(f"{provider.issuer}/authorize?")
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    answer = requests.get(authorize, params={"login": login}, allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    return answer.headers["Location"]


def finish(client, callback_url: str):
    parts = urlsplit(callback_url)
    return client.get(f"{parts.path}?{parts.query}")


def sign_in(client, provider, login: str):
    return finish(client, start(client, provider, login))
