-- Hot standby (issue 10 item 8): each write batch journals the epoch of the org lease
-- its process held when it committed the intent: the fencing token. A writer whose
-- lease is no longer current makes no CRM call (`Writer::with_fence`); NULL for
-- batches written outside a fenced sidecar (CLI runs).

ALTER TABLE writer_batches ADD COLUMN lease_epoch BIGINT;
