-- The web console's audit trail (issue 13): every change made through the console,
-- who made it and the writer run that carried it (the run's journal has the writes).
-- Keep in step with migrations/postgres/0500_console_audit.sql. Epoch-ms times.

CREATE TABLE console_audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    org     TEXT   NOT NULL,
    at      BIGINT NOT NULL,
    actor   TEXT   NOT NULL,
    action  TEXT   NOT NULL,             -- resolve | retry | rollback
    target  TEXT   NOT NULL,             -- exception id or run id
    run_id  TEXT,
    outcome TEXT   NOT NULL              -- done | refused: … | failed: …
);
CREATE INDEX console_audit_org_at ON console_audit (org, at);
