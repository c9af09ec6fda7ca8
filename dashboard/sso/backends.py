"""The authentication backends of single sign-on and of "local passwords off".

`SingleSignOnBackend` is mozilla-django-oidc's backend (the code exchange with PKCE, the token
and userinfo requests) with the checks a security team asks for made strict: the ID token must be
RS256-signed by a key of the IdP's JWKS, for this client (aud, azp), from this issuer, unexpired,
and carry the nonce this browser was given. Any failure raises LoginRefused with its reason; the
callback view audits it as sso.login_refused.
"""

from __future__ import annotations

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.urls import reverse
from django.utils.translation import gettext as _
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from dashboard.sso import configuration, services
from dashboard.sso.services import LoginRefused
from dashboard.tenancy.scoping import client_ip

SIGNING_ALGORITHM = "RS256"
CLOCK_SKEW_SECONDS = 30


class LocalPasswordGate:
    """While local passwords are off, refuse every password before ModelBackend sees it
    (PermissionDenied stops Django from asking the next backends). It has no get_user on
    purpose: it never logs anyone in, and Django's force_login picks the first backend with one."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if password is not None and not configuration.local_passwords_enabled():
            raise PermissionDenied(
                _("Local passwords are switched off; sign in with single sign-on.")
            )
        return None


def _refused(reason: str) -> LoginRefused:
    return LoginRefused(
        reason,
        _(
            "Your sign-in could not be checked, so it was refused. Nothing was granted; try again from the login page."
        ),
    )


class SingleSignOnBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's code flow, configured from discovery, with strict ID token checks."""

    def __init__(self, *args, **kwargs):
        # The library reads its endpoints here; ours come from discovery when a login needs them
        # (never for a password login, which Django also passes through this backend).
        self.UserModel = get_user_model()
        self.OIDC_RP_SIGN_ALGO = SIGNING_ALGORITHM
        self.OIDC_RP_IDP_SIGN_KEY = None

    def _configure(self) -> configuration.Discovery:
        try:
            found = configuration.discovery()
        except configuration.ProviderUnavailable as error:
            raise LoginRefused(
                "provider_unavailable",
                _("The identity provider cannot be reached just now; try again in a minute."),
                summary={"error": str(error)},
            ) from None
        self.discovered = found
        self.OIDC_OP_TOKEN_ENDPOINT = found.token_endpoint
        self.OIDC_OP_USER_ENDPOINT = found.userinfo_endpoint
        self.OIDC_OP_JWKS_ENDPOINT = found.jwks_uri
        self.OIDC_RP_CLIENT_ID = settings.SSO_OIDC_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.SSO_OIDC_CLIENT_SECRET
        return found

    @staticmethod
    def get_settings(attr, *args):
        # The library's knobs that this deployment fixes, whatever settings.py says.
        fixed = {
            "OIDC_TIMEOUT": settings.SSO_HTTP_TIMEOUT_SECONDS,
            "OIDC_USE_NONCE": True,
            "OIDC_VERIFY_KID": True,
            "OIDC_ALLOW_UNSECURED_JWT": False,
            "OIDC_AUTHENTICATION_CALLBACK_URL": "sso_callback",
        }
        if attr in fixed:
            return fixed[attr]
        return OIDCAuthenticationBackend.get_settings(attr, *args)

    def authenticate(self, request, sso_callback=False, nonce=None, code_verifier=None, **kwargs):
        """Finish a login at the callback: exchange the code (with the PKCE verifier), check the
        ID token, read userinfo, and hand the claims to services.login_with_claims. Only the
        callback view passes sso_callback; any other authenticate() call is not ours."""
        if not sso_callback or request is None or not configuration.sso_enabled():
            return None
        self.request = request
        found = self._configure()
        code = request.GET.get("code")
        if not code:
            raise _refused("no_code")
        try:
            token_info = self.get_token(
                {
                    "client_id": self.OIDC_RP_CLIENT_ID,
                    "client_secret": self.OIDC_RP_CLIENT_SECRET,
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": request.build_absolute_uri(_callback_path()),
                    "code_verifier": code_verifier,
                }
            )
        except (requests.RequestException, ValueError):
            raise _refused("code_refused") from None
        id_token = token_info.get("id_token") if isinstance(token_info, dict) else None
        access_token = token_info.get("access_token") if isinstance(token_info, dict) else None
        if not id_token or not access_token:
            raise _refused("no_id_token")
        payload = self.verify_token(id_token, nonce=nonce)
        try:
            userinfo = self.get_userinfo(access_token, id_token, payload)
        except (requests.RequestException, ValueError, SuspiciousOperation):
            raise _refused("userinfo_failed") from None
        if not isinstance(userinfo, dict) or userinfo.get("sub") != payload.get("sub"):
            # OpenID Connect Core 5.3.2: userinfo about another subject must not be used.
            raise _refused("userinfo_subject_mismatch")
        user, applied = services.login_with_claims(
            claims={**payload, **userinfo},
            issuer=found.issuer,
            groups_claim=settings.SSO_GROUPS_CLAIM,
            refresh_token=str(token_info.get("refresh_token") or ""),
            ip_address=client_ip(request),
        )
        request.sso_roles_applied = applied
        return user

    def verify_token(self, token, **kwargs):
        """The ID token's claims, once its signature (RS256, a key of the IdP's JWKS), issuer,
        audience, authorized party, expiry and nonce are all right; LoginRefused otherwise."""
        nonce = kwargs.get("nonce")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refused("malformed_token") from None
        if header.get("alg") != SIGNING_ALGORITHM:
            raise _refused("wrong_algorithm")
        try:
            key = self.retrieve_matching_jwk(token)
        except (requests.RequestException, ValueError, KeyError, SuspiciousOperation):
            raise _refused("unknown_signing_key") from None
        except jwt.PyJWTError:
            raise _refused("unknown_signing_key") from None
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[SIGNING_ALGORITHM],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=self.discovered.issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.InvalidSignatureError:
            raise _refused("bad_signature") from None
        except jwt.ExpiredSignatureError:
            raise _refused("expired") from None
        except jwt.InvalidAudienceError:
            raise _refused("wrong_audience") from None
        except jwt.InvalidIssuerError:
            raise _refused("wrong_issuer") from None
        except jwt.PyJWTError:
            raise _refused("invalid_token") from None
        audiences = payload["aud"] if isinstance(payload["aud"], list) else [payload["aud"]]
        if len(audiences) > 1 and payload.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise _refused("wrong_audience")
        if not nonce or payload.get("nonce") != nonce:
            raise _refused("nonce_mismatch")
        return payload

    def get_user(self, user_id):
        try:
            user = self.UserModel.objects.get(pk=user_id)
        except self.UserModel.DoesNotExist:
            return None
        return user if user.is_active else None


def _callback_path() -> str:
    return reverse("sso_callback")
