-- Run leases become named leases (issue 10, item 8: one lease mechanism): a run's lease
-- is the row `run:<run_id>` of `leases`, expiry judged by the database's clock. Leases
-- held when the store is upgraded come along; the `writer_runs.lease_*` columns stay,
-- unused, so no table is rebuilt.

INSERT INTO leases (name, holder, epoch, expires_at, acquired_at, renewed_at)
SELECT 'run:' || run_id, lease_holder, 1, lease_expires_at, lease_acquired_at, lease_acquired_at
FROM writer_runs
WHERE lease_holder IS NOT NULL AND lease_expires_at IS NOT NULL
ON CONFLICT (name) DO NOTHING;
