-- Routing analytics (issue 13). Same text for SQLite and PostgreSQL.

-- Pool membership over time, for fairness with roster changes: one row per member per
-- weight, open (`left_at` NULL) while the member is in the pool with that weight.
-- Written by `Store::note_roster` when a policy takes effect. Timestamps are epoch ms.
CREATE TABLE analytics_roster (
    org       TEXT   NOT NULL,
    pool      TEXT   NOT NULL,
    owner_id  TEXT   NOT NULL,
    weight    BIGINT NOT NULL,
    joined_at BIGINT NOT NULL,
    left_at   BIGINT,
    PRIMARY KEY (org, pool, owner_id, joined_at)
);

-- The analytics reads are by time window: assignments by when they were made, new
-- people by when the mirror first stored them.
CREATE INDEX ledger_history_time ON ledger_history (org, assigned_at);
CREATE INDEX people_first_seen ON people (org, first_seen_at);
