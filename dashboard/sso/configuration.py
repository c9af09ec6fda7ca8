"""The deployment's single sign-on settings and its IdP's discovery document.

The settings come from the environment (dashboard/project/settings.py: SSO_*); the endpoints and
signing keys from `<issuer>/.well-known/openid-configuration`, fetched when first needed and kept
for a few minutes, so a key rotation at the IdP is picked up without a restart.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import requests
from django.conf import settings
from django.utils.translation import gettext as _

DISCOVERY_KEPT_SECONDS = 300
_discovered: dict[str, tuple[float, Discovery]] = {}
_lock = threading.Lock()


class ProviderUnavailable(Exception):
    """The IdP could not be reached or answered something that is not OpenID Connect."""


@dataclass(frozen=True)
class Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str


def sso_enabled() -> bool:
    """Whether single sign-on is configured for this deployment (an issuer and a client id)."""
    return bool(settings.SSO_OIDC_ISSUER and settings.SSO_OIDC_CLIENT_ID)


def local_passwords_enabled() -> bool:
    """Whether people may log in with a local password (off: single sign-on only)."""
    return bool(settings.SSO_LOCAL_PASSWORDS)


def provider_name() -> str:
    """The IdP's name as the login button says it ("Sign in with <name>")."""
    return settings.SSO_PROVIDER_NAME or _("your company account")


def discovery() -> Discovery:
    """The issuer's discovery document (kept DISCOVERY_KEPT_SECONDS); ProviderUnavailable when it
    cannot be read or names another issuer than the one configured."""
    issuer = settings.SSO_OIDC_ISSUER
    with _lock:
        kept = _discovered.get(issuer)
        if kept is not None and kept[0] > time.monotonic():
            return kept[1]
    try:
        response = requests.get(
            f"{issuer}/.well-known/openid-configuration",
            timeout=settings.SSO_HTTP_TIMEOUT_SECONDS,
        )
        response.raise_for_status()
        document = response.json()
        found = Discovery(
            issuer=document["issuer"],
            authorization_endpoint=document["authorization_endpoint"],
            token_endpoint=document["token_endpoint"],
            userinfo_endpoint=document["userinfo_endpoint"],
            jwks_uri=document["jwks_uri"],
        )
    except (requests.RequestException, ValueError, KeyError, TypeError) as error:
        raise ProviderUnavailable(type(error).__name__) from None
    # OpenID Connect Discovery 1.0, section 4.3: the document must name the issuer it came from.
    if found.issuer.rstrip("/") != issuer:
        raise ProviderUnavailable("issuer_mismatch")
    with _lock:
        _discovered[issuer] = (time.monotonic() + DISCOVERY_KEPT_SECONDS, found)
    return found


def forget_discovery() -> None:
    """Drop the kept discovery documents (tests start IdPs on new ports)."""
    with _lock:
        _discovered.clear()
