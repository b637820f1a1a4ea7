-- A deletion can also be found by a QuickBooks webhook: a `Delete` event names the entity and its
-- id, which marks the row at once (`deleted_by = 'webhook'`), also for the entities QuickBooks'
-- change data capture never reports (TimeActivity, TaxCode, TaxRate). Every raw table's check on
-- `deleted_by` (the first three's own, the others' copied by `LIKE raw.qb_customers INCLUDING
-- ALL`) takes the new value.

DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT con.conrelid::regclass AS tab, con.conname
        FROM pg_constraint con
        JOIN pg_namespace n ON n.oid = con.connamespace
        WHERE n.nspname = 'raw' AND con.contype = 'c'
          AND pg_get_constraintdef(con.oid) LIKE '%deleted_by%'
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', c.tab, c.conname);
        EXECUTE format(
            'ALTER TABLE %s ADD CONSTRAINT %I CHECK (deleted_by IN (''cdc'', ''verify'', ''webhook''))',
            c.tab, c.conname);
    END LOOP;
END
$$;
