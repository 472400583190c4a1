-- Activities (issue 12): what reps did to people, mirrored when `[sync] activities = true`:
-- HubSpot calls, emails, meetings, tasks and notes; Salesforce Tasks and Events. The SLA
-- engine reads them as touches (src/store/activities.rs). Keep in step with the other
-- backend's 0410_activities.sql. Booleans are INTEGER here (see 0001). Timestamps are epoch ms.
-- `org` holds the org name (today's single org is named after its CRM kind, 'hubspot').
CREATE TABLE activities (
    org        TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    kind       TEXT    NOT NULL,      -- call | email | meeting | task | note | event
    at         BIGINT  NOT NULL,      -- the activity's own time, not when it was written
    owner_id   TEXT,
    direction  TEXT,                  -- inbound | outbound | NULL
    status     TEXT,
    done       INTEGER NOT NULL,
    created_at BIGINT,
    updated_at BIGINT  NOT NULL,      -- the CRM's modification stamp
    raw        TEXT    NOT NULL,
    synced_at  BIGINT  NOT NULL,
    seen_pass  BIGINT,                -- the last full pass that listed it
    seq        BIGINT  NOT NULL,      -- store order of the last change (activity_seq)
    PRIMARY KEY (org, id)
);
CREATE INDEX activities_seq ON activities (org, seq);

-- The people (contacts, leads) each activity is associated with.
CREATE TABLE activity_people (
    org         TEXT NOT NULL,
    activity_id TEXT NOT NULL,
    object      TEXT NOT NULL,        -- contact | lead
    person_id   TEXT NOT NULL,
    PRIMARY KEY (org, activity_id, object, person_id)
);
CREATE INDEX activity_people_person ON activity_people (org, object, person_id);

-- The last `activities.seq` handed out per org. Taking numbers updates this row inside
-- the writing transaction, so on PostgreSQL concurrent writers queue on it and numbers
-- become visible in order: a reader that has seen seq N never later finds a new N-1.
CREATE TABLE activity_seq (
    org  TEXT   NOT NULL PRIMARY KEY,
    last BIGINT NOT NULL
);
