"""Setting up and checking second factors: codes on a virtual clock, replays, recovery codes,
passkeys of another person, removing a factor."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.test import RequestFactory
from django_otp.plugins.otp_totp.models import TOTPDevice

from dashboard.audit.trail import Actor
from dashboard.mfa import passkeys, services
from dashboard.mfa.models import Passkey
from dashboard.mfa.selectors import factors_of
from dashboard.models import AuditEvent
from tests.dashboard.mfa.conftest import add_app

pytestmark = pytest.mark.django_db


def refusal(call) -> services.SecondFactorRefused:
    with pytest.raises(services.SecondFactorRefused) as caught:
        call()
    return caught.value


def test_an_app_is_a_factor_only_once_confirmed_with_its_current_code(team, totp_clock):
    user = team.operator.user
    device = services.totp_setup_start(user=user)
    assert services.totp_qr_data_uri(device).startswith("data:image/svg+xml")
    assert len(services.totp_secret_text(device).replace(" ", "")) == 32

    wrong = refusal(
        lambda: services.totp_setup_confirm(
            actor=Actor(user=user), user=user, device=device, code="000000"
        )
    )
    assert wrong.code == "wrong_code"
    assert not factors_of(user=user).any

    device.throttle_reset()
    services.totp_setup_confirm(
        actor=Actor(user=user), user=user, device=device, code=totp_clock.code(device), name="Pixel"
    )
    assert [app.name for app in factors_of(user=user).authenticator_apps] == ["Pixel"]
    event = AuditEvent.objects.get(action="mfa.totp_added")
    assert event.summary == {"name": "Pixel"}
    assert device.key not in json.dumps(event.summary)


def test_a_code_works_once_per_time_step_and_a_replay_is_told_apart(team, totp_clock):
    user = team.operator.user
    device = add_app(user)
    code = totp_clock.code(device)

    assert services.code_verify(user=user, code=code).kind == "authenticator_app"
    replay = refusal(lambda: services.code_verify(user=user, code=code))
    assert (replay.code, replay.attack) == ("replayed_code", True)
    assert "already used" in replay.messages[0]

    totp_clock.advance(30)
    device.refresh_from_db()
    device.throttle_reset()
    assert services.code_verify(user=user, code=totp_clock.code(device)).kind == "authenticator_app"


def test_a_wrong_code_is_refused_and_then_throttled(team, totp_clock):
    user = team.operator.user
    device = add_app(user)
    right = totp_clock.code(device)
    wrong = str((int(right) + 1) % 1_000_000).zfill(6)
    assert refusal(lambda: services.code_verify(user=user, code=wrong)).code == "wrong_code"
    # Straight after a failure the device waits: even the right code is not checked.
    assert refusal(lambda: services.code_verify(user=user, code=right)).code == "throttled"
    assert refusal(lambda: services.code_verify(user=user, code="  ")).code == "required"


def test_a_recovery_code_works_once(team):
    user = team.operator.user
    add_app(user)
    codes = services.recovery_codes_generate(actor=Actor(user=user), user=user)
    assert len(codes) == 10 and all(len(code) == 11 and code[5] == "-" for code in codes)

    proved = services.code_verify(user=user, code=codes[0].upper())
    assert (proved.kind, proved.recovery_codes_left) == ("recovery_code", 9)
    used = refusal(lambda: services.code_verify(user=user, code=codes[0]))
    assert (used.code, used.attack) == ("used_recovery_code", True)

    again = services.recovery_codes_generate(actor=Actor(user=user), user=user)
    reset_recovery_throttle(user)
    assert refusal(lambda: services.code_verify(user=user, code=codes[1])).code == "wrong_code"
    reset_recovery_throttle(user)
    assert services.code_verify(user=user, code=again[1]).recovery_codes_left == 9
    summaries = [
        e.summary for e in AuditEvent.objects.filter(action="mfa.recovery_codes_generated")
    ]
    assert all(code not in json.dumps(summaries) for code in codes + again)


def reset_recovery_throttle(user) -> None:
    from django_otp.plugins.otp_static.models import StaticDevice

    for device in StaticDevice.objects.filter(user=user):
        device.throttle_reset()


def test_a_person_removes_only_their_own_factors_and_the_last_takes_the_codes(team):
    user, other = team.operator.user, team.second_operator.user
    mine, theirs = add_app(user), add_app(other)
    services.recovery_codes_generate(actor=Actor(user=user), user=user)

    with pytest.raises(ValidationError):
        services.factor_remove(
            actor=Actor(user=user), user=user, kind="authenticator_app", device_id=theirs.pk
        )
    assert TOTPDevice.objects.filter(pk=theirs.pk).exists()

    services.factor_remove(
        actor=Actor(user=user), user=user, kind="authenticator_app", device_id=mine.pk
    )
    factors = factors_of(user=user)
    assert not factors.any and not factors.has_recovery_codes
    event = AuditEvent.objects.get(action="mfa.factor_removed")
    assert event.summary["no_factor_left"] is True


def _passkey(user, credential_id: bytes, name: str = "Key") -> Passkey:
    return Passkey.objects.create(
        user=user,
        name=name,
        confirmed=True,
        credential_id=credential_id,
        credential_id_sha256=passkeys.credential_hash(credential_id),
        public_key=b"\x00",
    )


def _request_with_challenge(user):
    request = RequestFactory().post("/", HTTP_HOST="testserver")
    from django.contrib.sessions.backends.db import SessionStore

    request.session = SessionStore()
    request.user = user
    return request


def test_a_passkey_of_another_person_is_refused_as_an_attack(team):
    mine, other = team.operator.user, team.second_operator.user
    _passkey(mine, b"mine-credential")
    _passkey(other, b"other-credential")
    request = _request_with_challenge(mine)
    passkeys.authentication_begin(request=request, user=mine)
    answer = json.dumps({"id": "b3RoZXItY3JlZGVudGlhbA", "rawId": "b3RoZXItY3JlZGVudGlhbA"})

    refused = refusal(
        lambda: passkeys.authentication_verify(request=request, user=mine, response=answer)
    )
    assert (refused.code, refused.attack) == ("passkey_of_another_user", True)
    # The challenge is spent: the same answer again is refused before anything is looked at.
    again = refusal(
        lambda: passkeys.authentication_verify(request=request, user=mine, response=answer)
    )
    assert again.code == "no_challenge"


def test_a_forged_passkey_answer_is_refused(team):
    user = team.operator.user
    _passkey(user, b"mine-credential")
    request = _request_with_challenge(user)
    passkeys.authentication_begin(request=request, user=user)
    forged = json.dumps(
        {
            "id": "bWluZS1jcmVkZW50aWFs",
            "rawId": "bWluZS1jcmVkZW50aWFs",
            "type": "public-key",
            "response": {"clientDataJSON": "e30", "authenticatorData": "AA", "signature": "AA"},
        }
    )
    refused = refusal(
        lambda: passkeys.authentication_verify(request=request, user=user, response=forged)
    )
    assert refused.code == "invalid_passkey"
    assert refusal(
        lambda: passkeys.authentication_verify(request=request, user=user, response="x")
    ).code in {"no_challenge", "invalid"}


def test_an_admin_of_the_persons_tenant_resets_their_factors_with_a_reason(team):
    from django.core.exceptions import PermissionDenied

    from tests.factories import UserFactory

    person = team.operator.user
    add_app(person)
    services.recovery_codes_generate(actor=Actor(user=person), user=person)
    with pytest.raises(PermissionDenied):
        services.second_factor_reset(
            actor=Actor(user=team.marketer.user), username="oscar", reason="Lost phone"
        )
    with pytest.raises(PermissionDenied):
        services.second_factor_reset(
            actor=Actor(user=UserFactory()), username="oscar", reason="Lost phone"
        )
    with pytest.raises(ValidationError):
        services.second_factor_reset(actor=Actor(user=team.admin.user), username="oscar", reason="")
    assert factors_of(user=person).any

    removed = services.second_factor_reset(
        actor=Actor(user=team.admin.user), username="oscar", reason="Lost phone"
    )
    factors = factors_of(user=person)
    assert removed == 1 and not factors.any and not factors.has_recovery_codes
    event = AuditEvent.objects.get(action="mfa.reset")
    assert event.summary == {"user": "oscar", "factors_removed": 1, "reason": "Lost phone"}
