"""Audit rows only go onto a known chain's head, and a head only onto its rows (review, item 3).

Until now the app's database login could INSERT audit rows into a chain that has no head (they
showed on the audit page and in the CSV, and no verification walked them), and move a head
forward past rows that do not exist (a false "ends early" alarm). Now PostgreSQL refuses, for
that login:
- a chain head whose name is no chain of the audit trail ("global", "tenant:<id>" of an existing
  tenant, or one of its run lanes "tenant:<id>:runs:<1..RUN_LANES-1>"), or that does not start
  empty;
- an audit row whose chain has no head, that is not within its head by the end of the statement
  (an append moves the head in the same statement), that does not link to the row before it, or
  whose tenant is not its chain's;
- a head moved onto anything but its chain's row of that length and hash.
The row and head checks run after the statement (AFTER triggers), so they see the append's rows
and its head together, whatever order the statement wrote them in. As before, a table owner or
superuser can still disable triggers (the README's roles).
"""

from django.db import migrations

RUN_LANES = 8  # dashboard.audit.RUN_LANES when this migration was written

FORBID = """
CREATE OR REPLACE FUNCTION triggerdesk_audit_head_known_and_empty() RETURNS trigger AS $$
BEGIN
    IF NEW.length <> 0 OR NEW.last_hash <> '' THEN
        RAISE EXCEPTION 'dashboard_auditchainhead: a new chain head starts empty (INSERT of %% refused)',
            NEW.chain;
    END IF;
    IF NEW.chain <> 'global' AND NOT (
        NEW.chain ~ '^tenant:[1-9][0-9]{0,17}(:runs:[1-LAST_LANE])?$'
        AND EXISTS (
            SELECT 1 FROM dashboard_tenant WHERE id = split_part(NEW.chain, ':', 2)::bigint
        )
    ) THEN
        RAISE EXCEPTION 'dashboard_auditchainhead: %% is no chain of the audit trail (INSERT refused)',
            NEW.chain;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER auditchainhead_known_and_empty
    BEFORE INSERT ON dashboard_auditchainhead
    FOR EACH ROW EXECUTE FUNCTION triggerdesk_audit_head_known_and_empty();

CREATE OR REPLACE FUNCTION triggerdesk_audit_row_on_its_chain() RETURNS trigger AS $$
DECLARE
    head_length bigint;
BEGIN
    SELECT length INTO head_length FROM dashboard_auditchainhead WHERE chain = NEW.chain;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dashboard_auditevent: chain %% has no head (INSERT refused)', NEW.chain;
    END IF;
    IF NEW.sequence > head_length THEN
        RAISE EXCEPTION 'dashboard_auditevent: row %% of chain %% is past its head (length %%): '
            'only an append that moves the head may write it (INSERT refused)',
            NEW.sequence, NEW.chain, head_length;
    END IF;
    IF NOT (NEW.sequence = 1 AND NEW.previous_hash = '') AND NOT EXISTS (
        SELECT 1 FROM dashboard_auditevent
        WHERE chain = NEW.chain AND sequence = NEW.sequence - 1 AND hash = NEW.previous_hash
    ) THEN
        RAISE EXCEPTION 'dashboard_auditevent: row %% of chain %% does not link to the row before it '
            '(INSERT refused)', NEW.sequence, NEW.chain;
    END IF;
    IF NEW.tenant_id IS DISTINCT FROM (
        CASE WHEN NEW.chain = 'global' THEN NULL
             ELSE split_part(NEW.chain, ':', 2)::bigint END
    ) THEN
        RAISE EXCEPTION 'dashboard_auditevent: a row of tenant %% does not go in chain %% '
            '(INSERT refused)', NEW.tenant_id, NEW.chain;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER auditevent_on_its_chain
    AFTER INSERT ON dashboard_auditevent
    FOR EACH ROW EXECUTE FUNCTION triggerdesk_audit_row_on_its_chain();

CREATE OR REPLACE FUNCTION triggerdesk_audit_head_on_its_last_row() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM dashboard_auditevent
        WHERE chain = NEW.chain AND sequence = NEW.length AND hash = NEW.last_hash
    ) THEN
        RAISE EXCEPTION 'dashboard_auditchainhead only moves onto its chain''s appended rows: '
            '%% has no row %% with that hash (UPDATE refused)', NEW.chain, NEW.length;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER auditchainhead_on_its_last_row
    AFTER UPDATE ON dashboard_auditchainhead
    FOR EACH ROW EXECUTE FUNCTION triggerdesk_audit_head_on_its_last_row();
""".replace("LAST_LANE", str(RUN_LANES - 1))

ALLOW = """
DROP TRIGGER IF EXISTS auditchainhead_known_and_empty ON dashboard_auditchainhead;
DROP TRIGGER IF EXISTS auditevent_on_its_chain ON dashboard_auditevent;
DROP TRIGGER IF EXISTS auditchainhead_on_its_last_row ON dashboard_auditchainhead;
DROP FUNCTION IF EXISTS triggerdesk_audit_head_known_and_empty();
DROP FUNCTION IF EXISTS triggerdesk_audit_row_on_its_chain();
DROP FUNCTION IF EXISTS triggerdesk_audit_head_on_its_last_row();
"""


def forbid(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORBID)


def allow(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ALLOW)


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0008_run_awaiting_approval_index")]
    operations = [migrations.RunPython(forbid, allow)]
