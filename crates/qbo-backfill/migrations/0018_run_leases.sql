-- A window's claim is held by its execution's run lease: the heartbeat renews one row
-- (ops.runs.lease_until) however many windows the run holds, instead of every window's.
COMMENT ON COLUMN ops.windows.lease_until IS
    'NULL while running: the claim lasts as long as the holding execution holds its run (ops.runs.lease_until, renewed by the heartbeat); a time caps the claim (past it, anyone may take the window)';

UPDATE ops.windows SET lease_until = NULL WHERE status = 'running';
