//! When each scheduled job last ran (`migrations/*/0220_schedules.sql`), so a job missed
//! while no process was up runs once at the next start (`service::schedule`).

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::domain::OrgId;

use super::{Store, StoreError, from_ms, to_ms};

impl Store {
    /// When `job` last ran for `org` (the instant it was started), if ever.
    pub async fn schedule_last_run(
        &self,
        org: &OrgId,
        job: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = sqlx::query("SELECT last_run_at FROM schedule_runs WHERE org = $1 AND job = $2")
            .bind(org.to_string())
            .bind(job.to_owned())
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::query("reading a schedule's last run"))?;
        row.map(|r| r.try_get::<i64, _>(0).map(from_ms))
            .transpose()
            .map_err(StoreError::query("reading a schedule's last run"))
    }

    /// Records that `job` ran for `org`, started at `at`, with a one-word outcome.
    pub async fn schedule_record_run(
        &self,
        org: &OrgId,
        job: &str,
        at: DateTime<Utc>,
        outcome: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO schedule_runs (org, job, last_run_at, last_outcome) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (org, job) DO UPDATE SET \
             last_run_at = excluded.last_run_at, last_outcome = excluded.last_outcome",
        )
        .bind(org.to_string())
        .bind(job.to_owned())
        .bind(to_ms(at))
        .bind(outcome.to_owned())
        .execute(self.pool())
        .await
        .map_err(StoreError::query("recording a schedule's run"))?;
        Ok(())
    }
}
