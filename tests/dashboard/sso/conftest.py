"""The local OpenID Connect provider (tests/dashboard/sso/provider.py), and settings that point
TriggerDesk at it."""

from __future__ import annotations

import pytest

from dashboard.sso import configuration
from tests.dashboard.sso.provider import CLIENT_ID, CLIENT_SECRET, Provider


@pytest.fixture
def provider(settings):
    running = Provider().start()
    settings.SSO_OIDC_ISSUER = running.issuer
    settings.SSO_OIDC_CLIENT_ID = CLIENT_ID
    settings.SSO_OIDC_CLIENT_SECRET = CLIENT_SECRET
    settings.SSO_PROVIDER_NAME = "Test IdP"
    settings.SSO_LOCAL_PASSWORDS = True
    configuration.forget_discovery()
    yield running
    configuration.forget_discovery()
    running.stop()
