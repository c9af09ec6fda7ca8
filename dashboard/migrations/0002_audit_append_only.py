"""Make the audit table append-only in PostgreSQL itself, not only in the ORM."""

from django.db import migrations

FORBID = """
CREATE OR REPLACE FUNCTION triggerdesk_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'dashboard_auditevent is append-only (%% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER auditevent_append_only
    BEFORE UPDATE OR DELETE ON dashboard_auditevent
    FOR EACH ROW EXECUTE FUNCTION triggerdesk_audit_append_only();
"""

ALLOW = """
DROP TRIGGER IF EXISTS auditevent_append_only ON dashboard_auditevent;
DROP FUNCTION IF EXISTS triggerdesk_audit_append_only();
"""


def forbid(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORBID)


def allow(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ALLOW)


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0001_initial")]
    operations = [migrations.RunPython(forbid, allow)]
