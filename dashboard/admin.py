from django.contrib import admin

from dashboard.models import AuditEvent, ConnectionSecret, Membership, Tenant, VendorConnection
from dashboard.runs.models import Run


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "approval_required", "require_files_landed"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role"]
    list_filter = ["tenant", "role"]

    # Role changes go through the audited pages and commands, not the admin.
    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(VendorConnection)
class VendorConnectionAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "kind", "base_url", "is_active"]
    list_filter = ["kind", "tenant"]
    readonly_fields = [f.name for f in VendorConnection._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ConnectionSecret)
class ConnectionSecretAdmin(admin.ModelAdmin):
    list_display = ["connection", "name", "hint", "set_at"]
    # The ciphertext is not shown either: there is nothing to do with it here.
    fields = ["connection", "name", "hint", "set_at", "set_by"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "tenant",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "ip_address",
    ]
    list_filter = ["tenant", "action"]
    search_fields = ["actor_label", "action", "object_id"]
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    """Read-only: runs change only through the engine's services (and their audit rows). Kept
    for support staff, and as the baseline bench/bench_history.py compares the run history to."""

    list_display = ["id", "created_at", "tenant", "operation", "connection", "state"]
    list_filter = ["tenant", "state", "operation"]
    list_select_related = ["tenant", "connection"]
    search_fields = ["vendor_reference", "idempotency_key"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Run._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
