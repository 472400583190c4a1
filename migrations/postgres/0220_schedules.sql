-- Scheduled jobs of the sidecar (issue 10): when each job last ran, per scope (today the
-- CRM kind; an org name once stores hold several orgs), so a run missed while no
-- process was up runs once at the next start. Epoch-ms timestamps.

CREATE TABLE schedule_runs (
    scope TEXT NOT NULL,
    job TEXT NOT NULL,
    last_run_at BIGINT NOT NULL,
    last_outcome TEXT NOT NULL,
    PRIMARY KEY (scope, job)
);
