-- Writer run lease (issue 5): at most one process drives a run at a time. A process
-- takes the lease with one compare-and-set UPDATE (free, lapsed, or already its own),
-- renews it while it writes, and clears it when it stops. `lease_holder` names the
-- process (host, pid, start time, machine key); epoch-ms timestamps.

ALTER TABLE writer_runs ADD COLUMN lease_holder TEXT;
ALTER TABLE writer_runs ADD COLUMN lease_expires_at BIGINT;
ALTER TABLE writer_runs ADD COLUMN lease_acquired_at BIGINT;
