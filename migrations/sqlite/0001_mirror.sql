-- Core mirror schema (SQLite). Keep in step with migrations/postgres/0001_mirror.sql.
-- Booleans are INTEGER here: sqlx's Any driver cannot read columns declared BOOLEAN
-- on SQLite, and SQLite stores booleans as 0/1 anyway. Timestamps are epoch ms.

CREATE TABLE owners (
    crm         TEXT    NOT NULL,
    object      TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    kind        TEXT    NOT NULL,            -- user | queue
    email       TEXT,
    name        TEXT    NOT NULL,
    active      INTEGER NOT NULL,
    teams       TEXT    NOT NULL,            -- JSON array of {id, name, primary}
    time_zone   TEXT,
    manager_id  TEXT,
    user_id     TEXT,
    updated_at  BIGINT,
    raw         TEXT    NOT NULL,            -- the record as JSON
    synced_at   BIGINT  NOT NULL,
    PRIMARY KEY (crm, object, id)
);

CREATE TABLE accounts (
    crm           TEXT   NOT NULL,
    object        TEXT   NOT NULL,
    id            TEXT   NOT NULL,
    name          TEXT,
    domain        TEXT,
    website       TEXT,
    extra_domains TEXT   NOT NULL,           -- JSON array of strings
    country       TEXT,
    state         TEXT,
    parent_id     TEXT,
    owner_id      TEXT,
    employees     BIGINT,
    industry      TEXT,
    created_at    BIGINT,
    updated_at    BIGINT NOT NULL,
    fields        TEXT   NOT NULL,           -- JSON object of string fields
    raw           TEXT   NOT NULL,           -- the CRM payload verbatim
    synced_at     BIGINT NOT NULL,
    PRIMARY KEY (crm, object, id)
);

CREATE TABLE people (
    crm               TEXT    NOT NULL,
    object            TEXT    NOT NULL,      -- contact | lead
    id                TEXT    NOT NULL,
    email             TEXT,
    first_name        TEXT,
    last_name         TEXT,
    company           TEXT,
    website           TEXT,
    country           TEXT,
    state             TEXT,
    owner_id          TEXT,
    owner_assigned_at BIGINT,
    converted         INTEGER NOT NULL,
    created_at        BIGINT,
    updated_at        BIGINT  NOT NULL,
    fields            TEXT    NOT NULL,
    raw               TEXT    NOT NULL,
    synced_at         BIGINT  NOT NULL,
    PRIMARY KEY (crm, object, id)
);
CREATE INDEX people_owner ON people (crm, owner_id);

CREATE TABLE person_accounts (
    crm        TEXT    NOT NULL,
    object     TEXT    NOT NULL,
    person_id  TEXT    NOT NULL,
    account_id TEXT    NOT NULL,
    is_primary INTEGER NOT NULL,
    PRIMARY KEY (crm, object, person_id, account_id)
);

CREATE TABLE tombstones (
    crm          TEXT   NOT NULL,
    object       TEXT   NOT NULL,
    id           TEXT   NOT NULL,
    reason       TEXT   NOT NULL,            -- deleted | merged | purged
    merged_into  TEXT,
    deleted_at   BIGINT NOT NULL,            -- when the CRM says it happened (else when we saw it)
    recorded_at  BIGINT NOT NULL,
    PRIMARY KEY (crm, object, id)
);

CREATE TABLE sync_cursors (
    crm        TEXT   NOT NULL,
    object     TEXT   NOT NULL,
    cursor     TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (crm, object)
);

CREATE TABLE webhook_inbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    crm         TEXT    NOT NULL,
    object      TEXT    NOT NULL,
    record_id   TEXT    NOT NULL,
    dedupe_key  TEXT    NOT NULL,
    occurred_at BIGINT,
    received_at BIGINT  NOT NULL,
    status      TEXT    NOT NULL,            -- pending | done
    attempts    BIGINT  NOT NULL,
    last_error  TEXT,
    done_at     BIGINT,
    UNIQUE (crm, dedupe_key)
);
CREATE INDEX webhook_inbox_pending ON webhook_inbox (status, seq);
