"""Forms: input checking and error display only; the services do the writes."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from dashboard.input_checks import parse_json_text
from dashboard.models import SECRET_FIELDS, OptimoveKeyRole, Role, Tenant, VendorKind
from dashboard.vendors.http import ConfigurationError, validate_base_url

User = get_user_model()
# Longer than any vendor key or token (JWTs included); a secret is never a document.
MAX_SECRET_CHARS = 4096


def apply_service_errors(form: forms.Form, error: ValidationError) -> None:
    """Show a service's ValidationError on the form: on its field when the form has one."""
    if hasattr(error, "error_dict"):
        for field, messages in error.message_dict.items():
            target = field if field in form.fields else None
            for message in messages:
                form.add_error(target, message)
    else:
        for message in error.messages:
            form.add_error(None, message)


class SecretInput(forms.PasswordInput):
    """A password input that never renders the value back."""

    def __init__(self, attrs: dict | None = None) -> None:
        super().__init__(attrs={"autocomplete": "off", **(attrs or {})}, render_value=False)


def validate_vendor_base_url(value: str) -> None:
    """The same rule as the service and the HTTP layer: https to a public host, unless the host
    is on VENDOR_HOST_ALLOWLIST (the sandboxes)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return  # (`https://[x]`, an unclosed bracket) URLValidator already says it is not a URL
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return  # URLValidator already says what is wrong with it
    try:
        validate_base_url(value)
    except ConfigurationError as error:
        raise ValidationError(str(error)) from None


class BaseUrlField(forms.URLField):
    default_validators = [*forms.URLField.default_validators, validate_vendor_base_url]

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", 500)
        kwargs.setdefault("assume_scheme", "https")
        super().__init__(**kwargs)


class OptionsField(forms.CharField):
    """Vendor-specific, non-secret options as a JSON object."""

    widget = forms.Textarea(attrs={"rows": 3, "spellcheck": "false"})

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", 10_000)
        super().__init__(**kwargs)

    def to_python(self, value: str | None) -> dict:
        value = (value or "").strip()
        if not value:
            return {}
        if self.max_length is not None and len(value) > self.max_length:
            raise ValidationError(
                _("Options may be at most %(limit)s characters (this is %(length)s).")
                % {
                    "limit": number_format(self.max_length, force_grouping=True),
                    "length": number_format(len(value), force_grouping=True),
                }
            )
        # JSON escapes can carry what the form value could not (\u0000, a lone \ud800).
        parsed = parse_json_text(value, subject=_("The options"))
        if not isinstance(parsed, dict):
            raise ValidationError(_('Options must be a JSON object, like {"key": "value"}.'))
        return parsed

    def prepare_value(self, value: object) -> str:
        if isinstance(value, dict):
            return json.dumps(value, indent=1) if value else ""
        return super().prepare_value(value)


class ConnectionForm(forms.Form):
    kind = forms.ChoiceField(label=gettext_lazy("Vendor"), choices=VendorKind.choices)
    name = forms.CharField(label=gettext_lazy("Name"), max_length=120)
    base_url = BaseUrlField(
        label=gettext_lazy("Base URL"),
        help_text=gettext_lazy(
            "The vendor's https address (regional host or staging); may carry a path "
            "prefix. Private, loopback and link-local hosts are refused."
        ),
    )
    key_role = forms.ChoiceField(
        label=gettext_lazy("Key role"),
        choices=OptimoveKeyRole.choices,
        required=False,
        help_text=gettext_lazy(
            "Optimove batch only: the role attached to the API key (3rdParty keys are blocked)."
        ),
    )
    options = OptionsField(
        label=gettext_lazy("Options"),
        required=False,
        help_text=gettext_lazy("Advanced, non-secret settings (JSON object)."),
    )
    api_key = forms.CharField(
        label=gettext_lazy("API key"),
        required=False,
        max_length=MAX_SECRET_CHARS,
        widget=SecretInput(),
        strip=True,
    )
    brand_key = forms.CharField(
        label=gettext_lazy("Brand key"),
        required=False,
        max_length=MAX_SECRET_CHARS,
        widget=SecretInput(),
        strip=True,
    )
    token = forms.CharField(
        label=gettext_lazy("API token"),
        required=False,
        max_length=MAX_SECRET_CHARS,
        widget=SecretInput(),
        strip=True,
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Each vendor-specific field names the kinds it belongs to; static/js/app.js shows it
        # only while one of those kinds is chosen (without script every field stays visible).
        self.fields["key_role"].widget.attrs["data-kinds"] = VendorKind.OPTIMOVE_BATCH
        for field in ("api_key", "brand_key", "token"):
            kinds = [kind for kind, fields in SECRET_FIELDS.items() if field in fields]
            self.fields[field].widget.attrs["data-kinds"] = " ".join(kinds)

    def clean(self) -> dict:
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind:
            for field, label in SECRET_FIELDS[kind].items():
                if not cleaned.get(field):
                    self.add_error(
                        field,
                        _("%(label)s is required for this kind of connection.") % {"label": label},
                    )
        return cleaned

    def secrets(self) -> dict[str, str]:
        kind = self.cleaned_data["kind"]
        return {field: self.cleaned_data[field] for field in SECRET_FIELDS[kind]}

    def connection_options(self) -> dict:
        options = dict(self.cleaned_data.get("options") or {})
        if self.cleaned_data.get("kind") == VendorKind.OPTIMOVE_BATCH:
            options["key_role"] = self.cleaned_data.get("key_role") or OptimoveKeyRole.API_ROLE
        return options


class ConnectionEditForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=120)
    base_url = BaseUrlField(label=gettext_lazy("Base URL"))
    key_role = forms.ChoiceField(
        label=gettext_lazy("Key role"), choices=OptimoveKeyRole.choices, required=False
    )
    options = OptionsField(label=gettext_lazy("Options"), required=False)
    is_active = forms.BooleanField(label=gettext_lazy("Active"), required=False)

    def __init__(self, *args, kind: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if kind != VendorKind.OPTIMOVE_BATCH:
            # Only Optimove's batch API has key roles; other vendors' forms do not ask.
            del self.fields["key_role"]


class SecretForm(forms.Form):
    name = forms.ChoiceField(label=gettext_lazy("Secret"), choices=())
    value = forms.CharField(
        max_length=MAX_SECRET_CHARS,
        widget=SecretInput(),
        strip=True,
        label=gettext_lazy("New value"),
    )

    def __init__(self, *args, secret_fields: dict[str, str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].choices = list(secret_fields.items())


class MemberAddForm(forms.Form):
    username = forms.CharField(label=gettext_lazy("Username"), max_length=150)
    role = forms.ChoiceField(label=gettext_lazy("Role"), choices=Role.choices)

    def clean_username(self) -> object:
        username = self.cleaned_data["username"].strip()
        try:
            return User.objects.get(username=username)
        except User.DoesNotExist:
            raise ValidationError(
                _("No user named '%(username)s'.") % {"username": username}
            ) from None


class MemberInviteForm(forms.Form):
    email = forms.EmailField(label=gettext_lazy("Email"), max_length=254)
    role = forms.ChoiceField(label=gettext_lazy("Role"), choices=Role.choices)
    username = forms.CharField(
        label=gettext_lazy("User name (optional)"),
        max_length=150,
        required=False,
        help_text=gettext_lazy("Optional, for a new account; the email address otherwise."),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.valid_hours = settings.INVITE_VALID_HOURS


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(label=gettext_lazy("Role"), choices=Role.choices)


class TenantSettingsForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = [
            "approval_required",
            "require_files_landed",
            "approval_valid_minutes",
            "duplicate_window_minutes",
        ]
        labels = {
            "approval_required": gettext_lazy("Approval required"),
            "require_files_landed": gettext_lazy("Require files landed"),
            "approval_valid_minutes": gettext_lazy("Approval valid minutes"),
            "duplicate_window_minutes": gettext_lazy("Duplicate window minutes"),
        }

    def clean_approval_valid_minutes(self) -> int:
        value = self.cleaned_data["approval_valid_minutes"]
        if not 1 <= value <= 24 * 60:
            raise ValidationError(_("Between 1 and 1440 minutes."))
        return value


def _printable(value: str) -> str:
    # PostgreSQL refuses NUL in text, and no actor, action or id contains control characters.
    return "".join(char for char in value if char.isprintable())


class AuditFilterForm(forms.Form):
    """The audit page's filters. Bad values (too long, a NUL) are shown as errors and ignored."""

    actor = forms.CharField(required=False, max_length=150, label=gettext_lazy("Who"))
    action = forms.CharField(required=False, max_length=60, label=gettext_lazy("Action"))
    object_type = forms.CharField(required=False, max_length=60, label=gettext_lazy("Object type"))
    object_id = forms.CharField(required=False, max_length=64, label=gettext_lazy("Object id"))
    created_from = forms.DateField(
        required=False,
        label=gettext_lazy("From"),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    created_to = forms.DateField(
        required=False, label=gettext_lazy("To"), widget=forms.DateInput(attrs={"type": "date"})
    )

    FIELDS = ("actor", "action", "object_type", "object_id", "created_from", "created_to")

    def __init__(self, *args, actors: list[str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.actors = actors or []
        self.fields["actor"].widget.attrs.update(
            {"list": "audit-actors", "placeholder": _("exact name, e.g. mia or cli:root")}
        )
        self.fields["action"].widget.attrs.update(
            {"list": "audit-actions", "placeholder": _("run.approved, or run. for all")}
        )

    def clean(self):
        cleaned = super().clean()
        for name in ("actor", "action", "object_type", "object_id"):
            if isinstance(cleaned.get(name), str):
                cleaned[name] = _printable(cleaned[name]).strip()
        return cleaned

    def filters(self) -> dict:
        """Every text filter ("" for none or an invalid one: a NUL, too long), and the dates
        that were given."""
        if not self.is_bound:
            return {}
        self.is_valid()
        cleaned = getattr(self, "cleaned_data", {})
        filters = {name: cleaned.get(name) or "" for name in self.FIELDS[:4]}
        filters.update({name: cleaned[name] for name in self.FIELDS[4:] if cleaned.get(name)})
        return filters
