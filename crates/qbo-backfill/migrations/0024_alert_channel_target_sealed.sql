-- A webhook alert channel's URL is its key (chat tools put it in the path or the query), so it
-- is sealed with the secret store's key like the channel's signing secret: `target_enc` holds
-- the sealed URL (associated data `alert_channels:<id>:target`) and `target` only what a person
-- is shown (`https://hooks.example.com/…`). An e-mail channel keeps its address in `target`.
-- The key is not in the database, so rows from before are sealed by the application: `serve`
-- seals every webhook URL still in plain text when its alert delivery loop starts, and a
-- delivery that reads one seals it then.

ALTER TABLE ops.alert_channels ADD COLUMN target_enc bytea;

COMMENT ON COLUMN ops.alert_channels.target IS
    'An e-mail address; for a webhook, its URL as shown (scheme, host, port): the URL is sealed in target_enc';
COMMENT ON COLUMN ops.alert_channels.target_enc IS
    'A webhook''s URL, sealed with the secret store''s key (NULL for e-mail, and for a row not sealed yet)';
