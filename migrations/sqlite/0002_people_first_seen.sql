-- When the mirror first stored each person (epoch ms; NULL for rows stored before this
-- migration). Set on insert only, so `leadroute explain` can tell a record's arrival.

ALTER TABLE people ADD COLUMN first_seen_at BIGINT;
