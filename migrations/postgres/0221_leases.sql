-- Named leases (issue 10): one row per thing at most one process may drive, e.g. an
-- org's pipeline (`org:hubspot`). `epoch` grows by one each time the holder changes and
-- is the fencing token a holder's writes carry; expiry is judged by the database's clock
-- (not the caller's), so hosts with skewed clocks agree on who leads. Epoch-ms times.

CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT,
    epoch BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT,
    acquired_at BIGINT,
    renewed_at BIGINT
);
