-- Assignment ledger (policy/reconcile). Same text for SQLite and PostgreSQL.
-- Rows are only ever upserted, never deleted wholesale: a rep removed from a pool keeps
-- their credit row, so the rotation can never silently reset. Timestamps are epoch ms.

-- Per pool: how many picks it has made.
CREATE TABLE ledger_pools (
    crm     TEXT   NOT NULL,
    pool    TEXT   NOT NULL,
    picks   BIGINT NOT NULL,
    PRIMARY KEY (crm, pool)
);

-- Per pool member (keyed by CRM owner id, not list position): fair-share credit in
-- billionths of a record, and real picks.
CREATE TABLE ledger_members (
    crm              TEXT   NOT NULL,
    pool             TEXT   NOT NULL,
    owner_id         TEXT   NOT NULL,
    credit           BIGINT NOT NULL,
    assigned         BIGINT NOT NULL,
    last_assigned_at BIGINT,
    PRIMARY KEY (crm, pool, owner_id)
);

-- Assignments per rep per local calendar day, for daily and weekly caps.
CREATE TABLE ledger_daily (
    crm      TEXT   NOT NULL,
    owner_id TEXT   NOT NULL,
    day      TEXT   NOT NULL,   -- YYYY-MM-DD in the rep's zone
    count    BIGINT NOT NULL,
    PRIMARY KEY (crm, owner_id, day)
);

-- The last owner leadroute chose per record (manual-override detection, stable re-plans).
CREATE TABLE ledger_assignments (
    crm         TEXT   NOT NULL,
    object      TEXT   NOT NULL,
    id          TEXT   NOT NULL,
    owner_id    TEXT   NOT NULL,
    pool        TEXT,
    rule        TEXT   NOT NULL,
    assigned_at BIGINT NOT NULL,
    PRIMARY KEY (crm, object, id)
);

-- Every assignment ever made, append-only.
CREATE TABLE ledger_history (
    crm         TEXT   NOT NULL,
    object      TEXT   NOT NULL,
    id          TEXT   NOT NULL,
    owner_id    TEXT   NOT NULL,
    pool        TEXT,
    rule        TEXT   NOT NULL,
    assigned_at BIGINT NOT NULL
);
CREATE INDEX ledger_history_record ON ledger_history (crm, object, id);
