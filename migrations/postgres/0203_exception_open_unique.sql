-- One open exception per record and kind (issue 9): queueing a plan's exceptions is
-- an `INSERT … ON CONFLICT DO NOTHING` against this index, so `apply`, `backfill` and
-- the sidecar queueing the same exception at once never duplicate it. Duplicates an
-- older check-then-insert let through are dropped first (the oldest one stays).

DELETE FROM writer_exceptions
WHERE status = 'open'
  AND id NOT IN (
      SELECT MIN(id) FROM writer_exceptions
      WHERE status = 'open'
      GROUP BY crm, object, record_id, kind
  );

CREATE UNIQUE INDEX IF NOT EXISTS writer_exceptions_one_open
    ON writer_exceptions (crm, object, record_id, kind) WHERE status = 'open';
