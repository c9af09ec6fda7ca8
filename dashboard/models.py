"""Tenants, memberships and roles, vendor connections with encrypted secrets, the audit trail."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    MARKETER = "marketer", _("Marketer")  # prepares and requests triggers
    OPERATOR = "operator", _("Operator")  # approves and runs daily triggers
    AUDITOR = "auditor", _("Auditor")  # read-only history and audit
    ADMIN = "admin", _("Admin")  # tenant settings, members, connections; may do everything


class Permission(models.TextChoices):
    VIEW = "view", _("See the tenant's runs and connections")
    REQUEST = "request", _("Prepare and request triggers")
    APPROVE = "approve", _("Approve and run triggers")
    VIEW_AUDIT = "view_audit", _("Read the audit trail")
    MANAGE = "manage", _("Manage settings, members and connections")


ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.MARKETER: frozenset({Permission.VIEW, Permission.REQUEST}),
    Role.OPERATOR: frozenset({Permission.VIEW, Permission.REQUEST, Permission.APPROVE}),
    Role.AUDITOR: frozenset({Permission.VIEW, Permission.VIEW_AUDIT}),
    Role.ADMIN: frozenset(Permission.values),
}


class Tenant(models.Model):
    """One brand or vendor account; everything else belongs to exactly one tenant."""

    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    approval_required = models.BooleanField(
        default=True, help_text=_("Daily triggers need a second person (an operator) to approve.")
    )
    require_files_landed = models.BooleanField(
        default=False,
        help_text=_("The daily trigger waits for a 'files landed' signal for the UTC date."),
    )
    approval_valid_minutes = models.PositiveIntegerField(
        default=120, help_text=_("An approval expires after this long, or at the UTC day boundary.")
    )
    duplicate_window_minutes = models.PositiveIntegerField(
        default=60,
        help_text=_(
            "A run identical to one sent this recently is flagged as a probable duplicate."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MembershipSource(models.TextChoices):
    MANUAL = "manual", "Made by hand"
    SSO = "sso", "From single sign-on"


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    # "sso": made and kept in step by single sign-on's group mapping (dashboard/sso); "manual":
    # made by a person, which single sign-on never changes.
    source = models.CharField(max_length=10, choices=MembershipSource.choices, default="manual")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "tenant"], name="membership_user_tenant_unique"
            ),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_known"),
        ]
        ordering = ["tenant__name", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} as {self.role}"

    def can(self, permission: str) -> bool:
        return permission in ROLE_PERMISSIONS.get(self.role, frozenset())


class VendorKind(models.TextChoices):
    OPTIMOVE_BATCH = "optimove_batch", _("Optimove batch process (TriggerDaily)")
    OPTIMOVE_CAMPAIGNS = "optimove_campaigns", _("Optimove API-triggered campaigns")
    ALTCRAFT = "altcraft", "Altcraft"
    TALKIFAI = "talkifai", _("TalkifAI batch calling")


# Which secrets each kind of connection needs, with the label a person sees.
SECRET_FIELDS: dict[str, dict[str, str]] = {
    VendorKind.OPTIMOVE_BATCH: {"api_key": _("API key (X-API-KEY)")},
    VendorKind.OPTIMOVE_CAMPAIGNS: {
        "api_key": _("API key (x-api-key)"),
        "brand_key": _("Brand key (x-brand-key)"),
    },
    VendorKind.ALTCRAFT: {"token": _("API token")},
    VendorKind.TALKIFAI: {"api_key": _("API key")},
}


class OptimoveKeyRole(models.TextChoices):
    API_ROLE = "ApiRole", "ApiRole (admin)"
    TRANSACTIONAL_MAIL = "TransactionalMail", "TransactionalMail"
    THIRD_PARTY = "3rdParty", _("3rdParty (blocked by TriggerDaily)")


class VendorConnection(models.Model):
    """Where and how a tenant reaches one vendor account."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="connections")
    kind = models.CharField(max_length=40, choices=VendorKind.choices)
    name = models.CharField(max_length=120)
    base_url = models.URLField(
        max_length=500,
        help_text=_("Regional host, staging or the sandbox; may carry a path prefix."),
    )
    # Vendor-specific, non-secret settings (key role, TalkifAI paths, Altcraft body limit...).
    options = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    last_error = models.CharField(max_length=500, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "name"], name="connection_tenant_name_unique"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=VendorKind.values), name="connection_kind_known"
            ),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def secret_fields(self) -> dict[str, str]:
        return SECRET_FIELDS.get(self.kind, {})

    @property
    def key_role(self) -> str:
        return self.options.get("key_role", OptimoveKeyRole.API_ROLE)


class ConnectionSecret(models.Model):
    """One encrypted secret of a connection. Write-only: only `hint` is ever shown."""

    connection = models.ForeignKey(
        VendorConnection, on_delete=models.CASCADE, related_name="secrets"
    )
    name = models.CharField(max_length=40)
    encrypted_value = models.TextField()
    hint = models.CharField(max_length=8, help_text=_("The last 4 characters, for recognition."))
    set_at = models.DateTimeField()
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "name"], name="secret_connection_name_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} …{self.hint}"


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("Audit events are append-only.")

    def delete(self):
        raise PermissionError("Audit events are append-only.")


class AuditChainHead(models.Model):
    """The newest hash and length of one audit chain; locked while a row is appended.

    Keeping the head outside the chain lets `verify_audit` notice a removed last row, and the row
    lock serialises appends so two transactions never chain onto the same predecessor. In
    PostgreSQL a trigger lets a head only move forward (never shrink, be deleted or truncated), so
    a trail emptied behind the app's back still leaves a head that says how long it was.
    """

    chain = models.CharField(max_length=40, unique=True)
    last_hash = models.CharField(max_length=64, default="")
    length = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.chain} ({self.length} events)"


class AuditEvent(models.Model):
    """An append-only record of who did what, when, to what, from where."""

    chain = models.CharField(max_length=40)
    sequence = models.PositiveBigIntegerField()
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    # No database constraint: removing a user must not rewrite (or be blocked by) history.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_label = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=60)
    object_type = models.CharField(max_length=60, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField()
    previous_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["chain", "sequence"], name="audit_chain_sequence_unique"
            )
        ]
        indexes = [
            # The audit page (selectors.audit_event_list): one tenant's events, newest first,
            # keyset-paginated on (created_at, id).
            models.Index(fields=["tenant", "-created_at", "-id"], name="audit_tenant_created_id"),
            # The audit page filtered by action prefix, and the CSV export of that view.
            models.Index(
                fields=["tenant", "action", "-created_at", "-id"], name="audit_tenant_action"
            ),
            # The audit page filtered by who (actor_label, exact match), newest first.
            models.Index(
                fields=["tenant", "actor_label", "-created_at", "-id"], name="audit_tenant_actor"
            ),
            # A run's timeline (runs.selectors.run_timeline) and the object filter.
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are append-only.")


class AuditVerification(models.Model):
    """One run of `verify_audit` over one chain: what it found and how far it got.

    The newest ok row of a chain is the checkpoint the next (nightly) run resumes from; the audit
    page and the metrics show the newest row. Append-only in PostgreSQL like the trail itself.
    """

    chain = models.CharField(max_length=40)
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_verifications"
    )
    verified_at = models.DateTimeField()
    ok = models.BooleanField()
    # The chain was walked from row 1 (a full run) or from the previous checkpoint.
    full = models.BooleanField(default=False)
    events_checked = models.PositiveBigIntegerField(default=0)
    # Checkpoint: every row up to this sequence was verified, and the last one hashes to this.
    through_sequence = models.PositiveBigIntegerField(default=0)
    through_hash = models.CharField(max_length=64, blank=True)
    findings = models.JSONField(default=list, blank=True)

    class Meta:
        indexes = [
            # The checkpoint lookup and the audit page: a chain's newest verification.
            models.Index(fields=["chain", "-verified_at"], name="auditverification_chain"),
        ]

    def __str__(self) -> str:
        return f"{self.chain} {'ok' if self.ok else 'FAILED'} at {self.verified_at:%Y-%m-%d %H:%M}"


from dashboard.approval_links.models import ApprovalLink  # noqa: E402, F401
from dashboard.approval_policies.models import ApprovalPolicy  # noqa: E402, F401
from dashboard.chat_webhooks.models import ChatWebhook  # noqa: E402, F401
from dashboard.login_sessions.models import LoginSession  # noqa: E402, F401
from dashboard.pauses.models import SendingPause  # noqa: E402, F401
from dashboard.preferences.models import PersonalPreference  # noqa: E402, F401
from dashboard.recurring.models import RecurringFire, RecurringSchedule  # noqa: E402, F401
from dashboard.runs.models import Approval, Operation, Run, RunAttempt  # noqa: E402, F401
from dashboard.send_windows.models import BlackoutDate, SendWindow  # noqa: E402, F401
from dashboard.sso.models import SsoGroupMapping, SsoIdentity  # noqa: E402, F401
