-- Writer journal (issue 5): runs, one row per planned change, write batches, and the
-- exceptions queue. Timestamps are epoch milliseconds; JSON is TEXT.

CREATE TABLE IF NOT EXISTS writer_runs (
    run_id          TEXT PRIMARY KEY,
    crm             TEXT NOT NULL,
    kind            TEXT NOT NULL,            -- apply | backfill | rollback | exception
    parent_run      TEXT,                     -- rollback: the run it reverts
    policy_version  TEXT NOT NULL,
    status          TEXT NOT NULL,            -- running | completed | paused | cancelled | failed
    total           BIGINT NOT NULL,
    message         TEXT,
    resume_at       BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    finished_at     BIGINT
);

-- One row per planned change per run. `state` moves planned -> intent -> done; an
-- `intent` row with no outcome is a write whose result a crash lost.
CREATE TABLE IF NOT EXISTS writer_journal (
    run_id          TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    crm             TEXT NOT NULL,
    object          TEXT NOT NULL,
    record_id       TEXT NOT NULL,
    field           TEXT NOT NULL,
    before_owner    TEXT,
    after_owner     TEXT NOT NULL,
    rule            TEXT NOT NULL,
    reason          TEXT NOT NULL,
    policy_version  TEXT NOT NULL,
    record_updated_at BIGINT,
    state           TEXT NOT NULL,
    batch_id        BIGINT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    sent            BIGINT NOT NULL DEFAULT 0,      -- 0|1 (the Any driver cannot decode SQLite BOOLEAN)
    outcome         TEXT,                     -- applied | unchanged | skipped_changed | rejected | failed
    reject_kind     TEXT,
    code            TEXT,
    message         TEXT,
    observed_owner  TEXT,                     -- what the CRM held when we skipped
    replan          BIGINT NOT NULL DEFAULT 0,      -- 0|1
    planned_at      BIGINT NOT NULL,
    intent_at       BIGINT,
    outcome_at      BIGINT,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX IF NOT EXISTS writer_journal_state ON writer_journal (run_id, state);
CREATE INDEX IF NOT EXISTS writer_journal_record ON writer_journal (crm, object, record_id);

-- One row per apply call, written before the call.
CREATE TABLE IF NOT EXISTS writer_batches (
    run_id          TEXT NOT NULL,
    batch_id        BIGINT NOT NULL,
    object          TEXT NOT NULL,
    size            BIGINT NOT NULL,
    intent_at       BIGINT NOT NULL,
    outcome_at      BIGINT,
    result          TEXT,                     -- ok | error:<kind>
    PRIMARY KEY (run_id, batch_id)
);

CREATE TABLE IF NOT EXISTS writer_exceptions (
    id              BIGSERIAL PRIMARY KEY,
    crm             TEXT NOT NULL,
    object          TEXT NOT NULL,
    record_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    rule            TEXT NOT NULL,
    reason          TEXT NOT NULL,
    code            TEXT,
    message         TEXT,
    run_id          TEXT,
    seq             BIGINT,
    before_owner    TEXT,
    desired_owner   TEXT,
    status          TEXT NOT NULL,            -- open | resolved | retried
    resolved_owner  TEXT,
    resolution_run  TEXT,
    created_at      BIGINT NOT NULL,
    resolved_at     BIGINT
);
CREATE INDEX IF NOT EXISTS writer_exceptions_open ON writer_exceptions (status, crm);
