-- SLA timers (issue 12): one timer per SLA per acknowledged assignment, the SLA event
-- log (start, reminder, touch, met, breach, escalation, notify), the journal cursor the
-- engine starts timers from, and the outbox of breach actions (written in the same
-- transaction as the breach, so a kill -9 neither loses nor repeats one).
-- Times are epoch milliseconds; `org` holds the org's name (today its CRM kind).

CREATE TABLE IF NOT EXISTS sla_timers (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    org             TEXT NOT NULL,
    sla             TEXT NOT NULL,
    object          TEXT NOT NULL,
    record_id       TEXT NOT NULL,
    owner           TEXT NOT NULL,
    rule            TEXT NOT NULL,
    pool            TEXT,
    run_id          TEXT NOT NULL,            -- the journaled write that assigned the owner
    seq             BIGINT NOT NULL,
    attempt         BIGINT NOT NULL,          -- 0, then +1 per escalation of this record
    started_at      BIGINT NOT NULL,          -- the write's acknowledgement
    due_at          BIGINT NOT NULL,
    next_at         BIGINT,                   -- next evaluation (reminder or due); NULL once closed
    reminders_sent  BIGINT NOT NULL DEFAULT 0,
    state           TEXT NOT NULL,            -- open | met | breached | cancelled
    touched_at      BIGINT,
    touch_kind      TEXT,
    closed_at       BIGINT,
    working_ms      BIGINT,                   -- working time from start to touch (met) or due
    UNIQUE (org, sla, run_id, seq)
);
-- The due-time index: each tick reads WHERE org = ? AND next_at <= now ORDER BY next_at.
CREATE INDEX IF NOT EXISTS sla_timers_next ON sla_timers (org, next_at);
CREATE INDEX IF NOT EXISTS sla_timers_record ON sla_timers (org, object, record_id);

CREATE TABLE IF NOT EXISTS sla_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    org             TEXT NOT NULL,
    timer_id        BIGINT NOT NULL,
    sla             TEXT NOT NULL,
    object          TEXT NOT NULL,
    record_id       TEXT NOT NULL,
    owner           TEXT NOT NULL,
    kind            TEXT NOT NULL,            -- started | reminder | touched | met | breached | escalated | notified | notify_failed | rejected_touch
    at              BIGINT NOT NULL,
    detail          TEXT
);
CREATE INDEX IF NOT EXISTS sla_events_kind ON sla_events (org, kind, at);
CREATE INDEX IF NOT EXISTS sla_events_record ON sla_events (org, object, record_id);

CREATE TABLE IF NOT EXISTS sla_cursor (
    org             TEXT PRIMARY KEY,
    outcome_at      BIGINT NOT NULL,
    run_id          TEXT NOT NULL,
    seq             BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS sla_actions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    org             TEXT NOT NULL,
    timer_id        BIGINT NOT NULL,
    kind            TEXT NOT NULL,            -- reassign | manager | exception | notify
    payload         TEXT NOT NULL,            -- JSON
    state           TEXT NOT NULL,            -- pending | done | failed
    attempts        BIGINT NOT NULL DEFAULT 0,
    message         TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS sla_actions_pending ON sla_actions (org, state, id);

-- Applied writes in acknowledgement order, for the engine's journal cursor.
CREATE INDEX IF NOT EXISTS writer_journal_outcome_at ON writer_journal (outcome_at, run_id, seq);
