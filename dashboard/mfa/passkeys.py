"""Passkeys (WebAuthn) with py_webauthn: registering one, and proving one at login or before an
approval. py_webauthn loads cryptography, so it is imported here on first use, never at start.

Each ceremony is two requests: "begin" returns the browser's options and keeps the challenge in
the session; "complete" checks the browser's answer against that challenge, once (the state is
taken out of the session before it is checked, so an answer is never accepted twice).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _

from dashboard.audit.trail import Actor, record_audit_event
from dashboard.mfa.models import Passkey
from dashboard.mfa.services import NAME_MAX_CHARS, Proved, SecondFactorRefused

REGISTRATION_STATE_KEY = "mfa.passkey_registration"
AUTHENTICATION_STATE_KEY = "mfa.passkey_authentication"
TIMEOUT_MILLISECONDS = 120_000
# A browser's answer is a few kilobytes; anything far larger is not one.
RESPONSE_MAX_CHARS = 64_000


def relying_party(request: HttpRequest) -> tuple[str, list[str]]:
    """(relying party id, allowed origins): MFA_PASSKEY_RP_ID / MFA_PASSKEY_ORIGINS when set,
    else the request's own host name and origin."""
    origin = f"{request.scheme}://{request.get_host()}"
    rp_id = settings.MFA_PASSKEY_RP_ID or urlsplit(origin).hostname or ""
    return rp_id, list(settings.MFA_PASSKEY_ORIGINS) or [origin]


def credential_hash(credential_id: bytes) -> str:
    return hashlib.sha256(credential_id).hexdigest()


def _descriptors(user: AbstractBaseUser) -> list:
    from webauthn.helpers.structs import AuthenticatorTransport, PublicKeyCredentialDescriptor

    known = {transport.value for transport in AuthenticatorTransport}
    return [
        PublicKeyCredentialDescriptor(
            id=bytes(passkey.credential_id),
            transports=[
                AuthenticatorTransport(value) for value in passkey.transports if value in known
            ],
        )
        for passkey in Passkey.objects.filter(user=user, confirmed=True)
    ]


def registration_begin(*, request: HttpRequest, user: AbstractBaseUser) -> str:
    """The options for navigator.credentials.create() (JSON); the challenge waits in the session.
    The person's existing passkeys are excluded: an authenticator is registered once."""
    from webauthn import generate_registration_options, options_to_json
    from webauthn.helpers import bytes_to_base64url
    from webauthn.helpers.structs import (
        AuthenticatorSelectionCriteria,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    rp_id, _origins = relying_party(request)
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name="TriggerDesk",
        user_name=user.get_username(),
        user_display_name=user.get_full_name() or user.get_username(),
        timeout=TIMEOUT_MILLISECONDS,
        exclude_credentials=_descriptors(user),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
    )
    request.session[REGISTRATION_STATE_KEY] = {
        "user": str(user.pk),
        "challenge": bytes_to_base64url(options.challenge),
    }
    return options_to_json(options)


def _take_state(request: HttpRequest, key: str, user: AbstractBaseUser) -> bytes:
    from webauthn.helpers import base64url_to_bytes

    state = request.session.pop(key, None)
    # Saved at once: even when the answer below is refused, this challenge is spent.
    request.session.save()
    if not isinstance(state, dict) or state.get("user") != str(user.pk):
        raise SecondFactorRefused(
            _("This passkey request has expired or was already used; try again."),
            code="no_challenge",
        )
    return base64url_to_bytes(state["challenge"])


def _parsed(response: str) -> dict[str, Any]:
    if not response or len(response) > RESPONSE_MAX_CHARS:
        raise SecondFactorRefused(_("No passkey answer was received; try again."), code="invalid")
    try:
        data = json.loads(response)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise SecondFactorRefused(
            _("The passkey answer is not readable; try again."), code="invalid"
        )
    return data


def registration_complete(
    *, request: HttpRequest, actor: Actor, user: AbstractBaseUser, response: str, name: str
) -> Passkey:
    """Check the browser's answer to registration_begin and keep the new passkey under `name`.
    Audited as mfa.passkey_added. Refused (SecondFactorRefused, nothing kept): no or a spent
    challenge, an answer that does not verify, a passkey already registered."""
    from webauthn import verify_registration_response
    from webauthn.helpers.exceptions import WebAuthnException

    name = (name or "").strip()
    if not name or len(name) > NAME_MAX_CHARS:
        raise ValidationError(
            {"name": _("Give the passkey a name of up to 64 characters, e.g. “Work laptop”.")},
            code="invalid",
        )
    challenge = _take_state(request, REGISTRATION_STATE_KEY, user)
    data = _parsed(response)
    rp_id, origins = relying_party(request)
    try:
        verified = verify_registration_response(
            credential=data,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origins,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError):
        raise SecondFactorRefused(
            _("The passkey could not be verified; nothing was saved. Try again."),
            code="invalid_passkey",
        ) from None
    transports = data.get("response", {}).get("transports") or []
    try:
        with transaction.atomic():
            passkey = Passkey.objects.create(
                user=user,
                name=name,
                confirmed=True,
                credential_id=verified.credential_id,
                credential_id_sha256=credential_hash(verified.credential_id),
                public_key=verified.credential_public_key,
                sign_count=verified.sign_count,
                transports=[str(value) for value in transports][:10],
            )
            record_audit_event(
                actor=actor,
                action="mfa.passkey_added",
                object_type="user",
                object_id=user.pk,
                summary={"name": name},
            )
    except IntegrityError:
        raise SecondFactorRefused(
            _("This passkey is already registered."), code="duplicate_passkey"
        ) from None
    return passkey


def authentication_begin(*, request: HttpRequest, user: AbstractBaseUser) -> str:
    """The options for navigator.credentials.get() over the person's own passkeys (JSON); the
    challenge waits in the session. A person without a passkey is told so."""
    from webauthn import generate_authentication_options, options_to_json
    from webauthn.helpers import bytes_to_base64url
    from webauthn.helpers.structs import UserVerificationRequirement

    descriptors = _descriptors(user)
    if not descriptors:
        raise SecondFactorRefused(
            _("You have no passkey; use the code from your authenticator app."), code="no_factor"
        )
    rp_id, _origins = relying_party(request)
    options = generate_authentication_options(
        rp_id=rp_id,
        timeout=TIMEOUT_MILLISECONDS,
        allow_credentials=descriptors,
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    request.session[AUTHENTICATION_STATE_KEY] = {
        "user": str(user.pk),
        "challenge": bytes_to_base64url(options.challenge),
    }
    return options_to_json(options)


def authentication_verify(*, request: HttpRequest, user: AbstractBaseUser, response: str) -> Proved:
    """Check the browser's answer to authentication_begin: a passkey of this person, signing
    this session's challenge, with a signature counter that moved on. Refused
    (SecondFactorRefused): a passkey of another person (an attack), an unknown one, a bad
    signature, a spent challenge."""
    from webauthn import verify_authentication_response
    from webauthn.helpers import base64url_to_bytes
    from webauthn.helpers.exceptions import WebAuthnException

    challenge = _take_state(request, AUTHENTICATION_STATE_KEY, user)
    data = _parsed(response)
    try:
        raw_id = base64url_to_bytes(str(data.get("rawId") or data.get("id") or ""))
    except ValueError:
        raw_id = b""
    passkey = Passkey.objects.filter(
        credential_id_sha256=credential_hash(raw_id), confirmed=True
    ).first()
    if passkey is None:
        raise SecondFactorRefused(
            _("This passkey is not registered in TriggerDesk."), code="unknown_passkey"
        )
    if passkey.user_id != user.pk:
        raise SecondFactorRefused(
            _("This passkey belongs to another person; it does not prove who you are."),
            code="passkey_of_another_user",
            attack=True,
        )
    rp_id, origins = relying_party(request)
    with transaction.atomic():
        passkey = Passkey.objects.select_for_update().get(pk=passkey.pk)
        try:
            verified = verify_authentication_response(
                credential=data,
                expected_challenge=challenge,
                expected_rp_id=rp_id,
                expected_origin=origins,
                credential_public_key=bytes(passkey.public_key),
                credential_current_sign_count=passkey.sign_count,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError):
            verified = None
        if verified is not None:
            passkey.sign_count = verified.new_sign_count
            passkey.set_last_used_timestamp(commit=False)
            passkey.save(update_fields=["sign_count", "last_used_at"])
    if verified is None:
        raise SecondFactorRefused(
            _("The passkey's answer could not be verified; nothing was granted. Try again."),
            code="invalid_passkey",
            attack=True,
        )
    return Proved(kind="passkey", device_name=passkey.name)
