-- A run's page and the API show the newest run that retried it.
CREATE INDEX runs_retry_of ON ops.runs (retry_of) WHERE retry_of IS NOT NULL;
