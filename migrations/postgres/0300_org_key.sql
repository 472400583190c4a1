-- Orgs as a first-class key (issue 11): every row is keyed by the configured org's name
-- instead of the CRM kind. A store written before this holds one org per CRM kind, keyed
-- 'hubspot' or 'salesforce'; the single `[crm]` config form names its org after its kind,
-- so those rows become the default org's rows by renaming the column alone (no rewrite).
-- Indexes, primary keys and unique constraints follow the renamed columns.

ALTER TABLE owners RENAME COLUMN crm TO org;
ALTER TABLE accounts RENAME COLUMN crm TO org;
ALTER TABLE people RENAME COLUMN crm TO org;
ALTER TABLE person_accounts RENAME COLUMN crm TO org;
ALTER TABLE tombstones RENAME COLUMN crm TO org;
ALTER TABLE sync_cursors RENAME COLUMN crm TO org;
ALTER TABLE webhook_inbox RENAME COLUMN crm TO org;
ALTER TABLE full_passes RENAME COLUMN crm TO org;
ALTER TABLE org_identity RENAME COLUMN crm TO org;
ALTER TABLE ledger_pools RENAME COLUMN crm TO org;
ALTER TABLE ledger_members RENAME COLUMN crm TO org;
ALTER TABLE ledger_daily RENAME COLUMN crm TO org;
ALTER TABLE ledger_assignments RENAME COLUMN crm TO org;
ALTER TABLE ledger_history RENAME COLUMN crm TO org;
ALTER TABLE writer_runs RENAME COLUMN crm TO org;
ALTER TABLE writer_journal RENAME COLUMN crm TO org;
ALTER TABLE writer_exceptions RENAME COLUMN crm TO org;
-- Schedules were kept per "scope", which already held the CRM kind: the org's name.
ALTER TABLE schedule_runs RENAME COLUMN scope TO org;
