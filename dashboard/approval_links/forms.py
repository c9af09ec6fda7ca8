"""The link page's two decisions: approve (bound to what was shown) and reject (with a reason)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class LinkApproveForm(forms.Form):
    # The parameters hash or file SHA-256 the approver was shown: the service refuses the
    # approval when the request changed since, so nobody approves what they did not see.
    fingerprint = forms.CharField(max_length=64, widget=forms.HiddenInput)
    comment = forms.CharField(
        max_length=500,
        required=False,
        label=_("Comment"),
        widget=forms.TextInput(attrs={"placeholder": _("Comment (optional)"), "size": 50}),
    )


class LinkRejectForm(forms.Form):
    comment = forms.CharField(
        max_length=500,
        label=_("Why not?"),
        error_messages={
            "required": _("Say why you reject it, so the requester knows what to fix.")
        },
        widget=forms.TextInput(
            attrs={"placeholder": _("Reason (the requester sees it)"), "size": 50}
        ),
    )
