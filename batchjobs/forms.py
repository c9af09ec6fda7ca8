"""Forms of the batchjobs pages: input checking and error display only; services decide and write."""

from __future__ import annotations

import uuid

from django import forms
from django.utils.translation import gettext_lazy

from batchjobs.vendors.optimove_daily.client import MAXIMUM_VALIDATION_WAIT_SECONDS
from dashboard.models import Tenant, VendorConnection, VendorKind


def new_idempotency_key() -> str:
    """A fresh key, put in the form when it is rendered: a double submit then makes one run."""
    return uuid.uuid4().hex


class IdempotentForm(forms.Form):
    idempotency_key = forms.CharField(
        max_length=80,
        widget=forms.HiddenInput,
        error_messages={
            "required": gettext_lazy(
                "This form is incomplete (its one-time key is missing). Reload the page "
                "and submit it again."
            )
        },
    )

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("initial", {}).setdefault("idempotency_key", new_idempotency_key())
        super().__init__(*args, **kwargs)


class WaitField(forms.IntegerField):
    """Optimove's WaitTimeForValidationSeconds: empty, or 0 to 30."""

    def __init__(self, **kwargs) -> None:
        super().__init__(
            required=False,
            min_value=0,
            max_value=MAXIMUM_VALIDATION_WAIT_SECONDS,
            label=gettext_lazy("Extra validation wait (seconds, optional)"),
            help_text=gettext_lazy(
                "0 to 30. Optimove always waits 5 s while it checks that the batch "
                "started, plus anything you ask above 5: empty or up to 5 means 5 s, 10 means 10 s, "
                "30 means 30 s (the maximum)."
            ),
            error_messages={
                "invalid": gettext_lazy(
                    "Enter a whole number of seconds from 0 to 30, or leave it empty."
                ),
                "min_value": gettext_lazy(
                    "The wait cannot be negative: enter 0 to 30, or leave it empty."
                ),
                "max_value": gettext_lazy(
                    "Optimove allows at most 30 seconds (more answers 504 without "
                    "triggering): enter 0 to 30."
                ),
            },
            widget=forms.NumberInput(attrs={"min": 0, "max": MAXIMUM_VALIDATION_WAIT_SECONDS}),
            **kwargs,
        )


class DailyTriggerRequestForm(IdempotentForm):
    attest_files_uploaded = forms.BooleanField(
        label=gettext_lazy("I confirm that all of today's files have finished uploading."),
        help_text=gettext_lazy(
            "Optimove does not check this: the batch runs on whatever data is there, once "
            "per UTC day."
        ),
        error_messages={
            "required": gettext_lazy(
                "Confirm that all of today's files have finished uploading: Optimove "
                "does not check it, and triggers once per day."
            )
        },
    )
    wait_time_for_validation_seconds = WaitField()


class DailyTriggerChangeForm(forms.Form):
    wait_time_for_validation_seconds = WaitField()


class ApproveForm(forms.Form):
    # The exact parameters the approver saw; the engine refuses the approval if they changed.
    parameters_hash = forms.CharField(max_length=64, widget=forms.HiddenInput)
    comment = forms.CharField(max_length=500, required=False)


class RejectForm(forms.Form):
    comment = forms.CharField(max_length=500, required=False)


class FilesLandedForm(forms.Form):
    # The UTC date the person saw on the page: a click just after midnight must not vouch for a
    # day they did not look at.
    utc_date = forms.DateField(widget=forms.HiddenInput)


class BatchJobRegisterForm(forms.Form):
    connection = forms.ModelChoiceField(
        queryset=VendorConnection.objects.none(), label=gettext_lazy("Connection")
    )
    batch_job_id = forms.CharField(
        max_length=200,
        strip=False,
        label=gettext_lazy("Batch job id"),
        help_text=gettext_lazy(
            "As shown in TalkifAI Studio (TalkifAI has no list of jobs to pick from)."
        ),
    )
    name = forms.CharField(
        max_length=200,
        required=False,
        label=gettext_lazy("Name"),
        help_text=gettext_lazy("Optional; TalkifAI's name is used otherwise."),
    )

    def __init__(self, *args, tenant: Tenant, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        connections = VendorConnection.objects.filter(
            tenant=tenant, kind=VendorKind.TALKIFAI, is_active=True
        ).order_by("name")
        self.fields["connection"].queryset = connections
        if len(connections) == 1:
            self.fields["connection"].initial = connections[0].pk


class BatchJobStartForm(IdempotentForm):
    pass
