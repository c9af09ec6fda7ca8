"""Close the holes in the append-only audit trail (issue 9, item 1).

0002 refused UPDATE and DELETE of audit rows row by row, but TRUNCATE fires no row trigger, and
the chain heads (whose length is what tells a shortened trail) could be deleted or rewritten.
Now, for the app's database login:
- dashboard_auditevent and dashboard_auditverification refuse UPDATE, DELETE and TRUNCATE;
- dashboard_auditchainhead refuses DELETE and TRUNCATE, and an UPDATE may only move a head
  forward (a longer chain, same name): a head can never be set back to hide removed rows.
A table owner or superuser can still disable triggers; the README says which role the app runs
as so that it is not one.
"""

from django.db import migrations

FORBID = """
CREATE OR REPLACE FUNCTION triggerdesk_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '%% is append-only (%% refused)', TG_TABLE_NAME, TG_OP;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER auditevent_no_truncate
    BEFORE TRUNCATE ON dashboard_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION triggerdesk_audit_append_only();

CREATE OR REPLACE FUNCTION triggerdesk_audit_head_forward_only() RETURNS trigger AS $$
BEGIN
    IF NEW.chain <> OLD.chain OR NEW.length <= OLD.length THEN
        RAISE EXCEPTION 'dashboard_auditchainhead only moves forward (%% refused)', TG_OP;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER auditchainhead_forward_only
    BEFORE UPDATE ON dashboard_auditchainhead
    FOR EACH ROW EXECUTE FUNCTION triggerdesk_audit_head_forward_only();
CREATE TRIGGER auditchainhead_no_delete
    BEFORE DELETE ON dashboard_auditchainhead
    FOR EACH ROW EXECUTE FUNCTION triggerdesk_audit_append_only();
CREATE TRIGGER auditchainhead_no_truncate
    BEFORE TRUNCATE ON dashboard_auditchainhead
    FOR EACH STATEMENT EXECUTE FUNCTION triggerdesk_audit_append_only();

CREATE TRIGGER auditverification_append_only
    BEFORE UPDATE OR DELETE ON dashboard_auditverification
    FOR EACH ROW EXECUTE FUNCTION triggerdesk_audit_append_only();
CREATE TRIGGER auditverification_no_truncate
    BEFORE TRUNCATE ON dashboard_auditverification
    FOR EACH STATEMENT EXECUTE FUNCTION triggerdesk_audit_append_only();
"""

ALLOW = """
DROP TRIGGER IF EXISTS auditevent_no_truncate ON dashboard_auditevent;
DROP TRIGGER IF EXISTS auditchainhead_forward_only ON dashboard_auditchainhead;
DROP TRIGGER IF EXISTS auditchainhead_no_delete ON dashboard_auditchainhead;
DROP TRIGGER IF EXISTS auditchainhead_no_truncate ON dashboard_auditchainhead;
DROP TRIGGER IF EXISTS auditverification_append_only ON dashboard_auditverification;
DROP TRIGGER IF EXISTS auditverification_no_truncate ON dashboard_auditverification;
DROP FUNCTION IF EXISTS triggerdesk_audit_head_forward_only();
"""


def forbid(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORBID)


def allow(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ALLOW)


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0004_audit_verification_and_history_indexes")]
    operations = [migrations.RunPython(forbid, allow)]
