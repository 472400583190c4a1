-- A full sync is a repair (mark and sweep): each row remembers the last full pass that
-- saw it (`seen_pass`), `full_passes` numbers each object's passes and says whether the
-- current one completed; a completed pass removes the rows it did not see. NULL for
-- rows stored before this migration (the next completed full pass sweeps them if the
-- CRM no longer lists them).
ALTER TABLE owners ADD COLUMN seen_pass BIGINT;
ALTER TABLE accounts ADD COLUMN seen_pass BIGINT;
ALTER TABLE people ADD COLUMN seen_pass BIGINT;

CREATE TABLE full_passes (
    crm          TEXT   NOT NULL,
    object       TEXT   NOT NULL,
    pass         BIGINT NOT NULL,            -- increases by one per started pass
    started_at   BIGINT NOT NULL,
    completed_at BIGINT,                     -- NULL while the pass is in progress
    PRIMARY KEY (crm, object)
);

-- The CRM org this store mirrors (HubSpot portal id, Salesforce org id), recorded at
-- the first sync; a sync against another org is refused.
CREATE TABLE org_identity (
    crm         TEXT   NOT NULL PRIMARY KEY,
    org_id      TEXT   NOT NULL,
    name        TEXT,
    recorded_at BIGINT NOT NULL
);
