"""Second-factor fixtures: a virtual clock for the TOTP verifier, and a person's app."""

from __future__ import annotations

import time

import pytest
from django_otp.oath import hotp
from django_otp.plugins.otp_totp.models import TOTPDevice


class VirtualClock:
    """Stands in for the `time` module django-otp's TOTP verifier reads: codes move only when a
    test moves this clock."""

    def __init__(self) -> None:
        self.now = float(int(time.time()) // 30 * 30)

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def code(self, device: TOTPDevice) -> str:
        """The code the person's app shows at this moment."""
        step = int((self.now - device.t0) // device.step)
        return str(hotp(device.bin_key, step, device.digits)).zfill(device.digits)


@pytest.fixture
def totp_clock(monkeypatch) -> VirtualClock:
    clock = VirtualClock()
    monkeypatch.setattr("django_otp.plugins.otp_totp.models.time", clock)
    return clock


def add_app(user, name: str = "Phone") -> TOTPDevice:
    """A confirmed authenticator app of `user`."""
    return TOTPDevice.objects.create(user=user, name=name, confirmed=True)
