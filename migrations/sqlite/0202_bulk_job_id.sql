-- Bulk job ids in the writer journal (issue 5): a bulk batch's job id is recorded
-- after the job is created and loaded but before it is closed (Bulk API 2.0 jobs
-- process nothing until `UploadComplete`), so `resume` after a crash can abort the
-- job and wait until it is final before it reads owners and sends anything again.

ALTER TABLE writer_batches ADD COLUMN job_id TEXT;
