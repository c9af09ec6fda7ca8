"""The production check of the single sign-on settings: half set up, plain http or passwords
off with no way in refuse to start, naming the setting."""

from __future__ import annotations

import pytest

from dashboard.project.environment import production_environment_problems


def sso_problems(**environ: str) -> list[str]:
    return [p for p in production_environment_problems(environ) if "SSO_" in p]


def test_a_complete_https_setup_has_no_problem():
    assert (
        sso_problems(
            SSO_OIDC_ISSUER="https://login.example.com",
            SSO_OIDC_CLIENT_ID="triggerdesk",
            SSO_OIDC_CLIENT_SECRET="s3cret-value",
            SSO_LOCAL_PASSWORDS="off",
        )
        == []
    )


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"SSO_OIDC_ISSUER": "https://login.example.com"}, "SSO_OIDC_CLIENT_ID"),
        (
            {"SSO_OIDC_ISSUER": "http://login.example.com", "SSO_OIDC_CLIENT_ID": "x"},
            "https://",
        ),
        (
            {"SSO_OIDC_ISSUER": "https://login.example.com", "SSO_OIDC_CLIENT_ID": "x"},
            "SSO_OIDC_CLIENT_SECRET",
        ),
        ({"SSO_LOCAL_PASSWORDS": "off"}, "nobody could log in"),
    ],
)
def test_an_incomplete_or_unsafe_setup_is_named(environ, named):
    problems = sso_problems(**environ)
    assert any(named in problem for problem in problems), problems
    assert "s3cret" not in str(problems)
