//! The writer's write-ahead journal and the exceptions queue (tables from
//! `migrations/*/0200_journal.sql`).
//!
//! A run's changes are all inserted as `planned` rows when the run starts, so a crash
//! at any later moment loses nothing. Before each apply call the batch's rows move to
//! `intent` (with a `writer_batches` row); after the call each row gets its outcome
//! and moves to `done`. An `intent` row with no outcome is a write whose answer was
//! lost: the writer resolves it by reading the CRM, never by resending blindly.
//! Outcomes are written with `WHERE outcome IS NULL`, so a change is journaled once.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{MAX_PARAMS, Store, from_ms, in_list, placeholders, rows_per_statement, to_ms};
use crate::domain::{ObjectKind, OrgId, OwnerId, RecordId};
use crate::reconcile::PlannedChange;
use leadroute_crm::RejectKind;

/// A journal query failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal query failed while {doing}")]
    Sql {
        doing: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("journal row is corrupt: {0}")]
    Corrupt(String),
}

fn sql_err(doing: &'static str) -> impl FnOnce(sqlx::Error) -> JournalError {
    move |source| JournalError::Sql { doing, source }
}

/// The intent of one apply call: which journal rows it carries.
#[derive(Debug, Clone, Copy)]
pub struct BatchIntent<'a> {
    pub batch_id: i64,
    pub object: ObjectKind,
    pub seqs: &'a [i64],
    /// The org lease epoch the writer was fenced with (migration 0222), if any.
    pub lease_epoch: Option<i64>,
}

/// What one writer step journals in one transaction (see [`Store::journal_step`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct JournalStep<'a> {
    /// The finished call's batch and its result (`ok` or `error:<kind>`).
    pub batch_result: Option<(i64, &'a str)>,
    /// Final outcomes, written once each.
    pub outcomes: &'a [(i64, JournalOutcome)],
    /// Rows going back to `planned`, with the note saying why.
    pub requeue: &'a [(i64, String)],
    /// The next call's intent, committed last.
    pub intent: Option<BatchIntent<'a>>,
}

impl JournalStep<'_> {
    fn is_empty(&self) -> bool {
        self.batch_result.is_none()
            && self.outcomes.is_empty()
            && self.requeue.is_empty()
            && self.intent.is_none()
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Completed,
    /// Stopped on purpose (quota, open circuit) and resumable.
    Paused,
    /// Ctrl-C: the in-flight batch finished, the rest is resumable.
    Cancelled,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Paused => "paused",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, JournalError> {
        Ok(match s {
            "running" => RunStatus::Running,
            "completed" => RunStatus::Completed,
            "paused" => RunStatus::Paused,
            "cancelled" => RunStatus::Cancelled,
            "failed" => RunStatus::Failed,
            other => return Err(JournalError::Corrupt(format!("run status {other:?}"))),
        })
    }

    /// Whether work may remain.
    pub fn is_resumable(self) -> bool {
        !matches!(self, RunStatus::Completed)
    }
}

/// A run as journaled.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub run_id: String,
    pub org: OrgId,
    pub kind: String,
    pub parent_run: Option<String>,
    pub policy_version: String,
    pub status: RunStatus,
    pub total: i64,
    pub message: Option<String>,
    pub resume_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The final outcome of one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalOutcome {
    /// The CRM now holds the new owner because of our write.
    Applied,
    /// The CRM already held the new owner; nothing was sent.
    Unchanged,
    /// The owner was no longer the plan's `from`: left alone, to be re-planned.
    SkippedChanged { observed: Option<OwnerId> },
    /// The CRM refused the record.
    Rejected {
        kind: RejectKind,
        code: String,
        message: String,
        replan: bool,
    },
    /// Gave up (retries exhausted, record vanished before the write).
    Failed { message: String },
}

impl JournalOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            JournalOutcome::Applied => "applied",
            JournalOutcome::Unchanged => "unchanged",
            JournalOutcome::SkippedChanged { .. } => "skipped_changed",
            JournalOutcome::Rejected { .. } => "rejected",
            JournalOutcome::Failed { .. } => "failed",
        }
    }
}

/// One journaled change.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub run_id: String,
    pub seq: i64,
    pub org: OrgId,
    pub object: ObjectKind,
    pub id: RecordId,
    pub field: String,
    pub before: Option<OwnerId>,
    pub after: OwnerId,
    pub rule: String,
    pub reason: String,
    pub policy_version: String,
    pub record_updated_at: Option<DateTime<Utc>>,
    /// `planned`, `intent` or `done`.
    pub state: String,
    pub batch_id: Option<i64>,
    pub attempts: i64,
    /// Whether an apply call ever carried this change.
    pub sent: bool,
    pub outcome: Option<String>,
    pub reject_kind: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub observed_owner: Option<OwnerId>,
    pub replan: bool,
    pub planned_at: DateTime<Utc>,
    pub intent_at: Option<DateTime<Utc>>,
    pub outcome_at: Option<DateTime<Utc>>,
}

impl JournalEntry {
    /// The change as a plan entry again (resume, retry, rollback).
    pub fn planned_change(&self) -> PlannedChange {
        PlannedChange {
            object: self.object,
            id: self.id.clone(),
            field: self.field.clone(),
            from: self.before.clone(),
            to: self.after.clone(),
            rule: self.rule.clone(),
            reason: self.reason.clone(),
            policy_version: self.policy_version.clone(),
            record_updated_at: self.record_updated_at,
        }
    }
}

/// A new run.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub run_id: &'a str,
    pub org: OrgId,
    pub kind: &'a str,
    pub parent_run: Option<&'a str>,
    pub policy_version: &'a str,
}

/// An item for the exceptions queue.
#[derive(Debug, Clone)]
pub struct NewException {
    pub org: OrgId,
    pub object: ObjectKind,
    pub id: RecordId,
    pub kind: String,
    pub rule: String,
    pub reason: String,
    pub code: Option<String>,
    pub message: Option<String>,
    pub run_id: Option<String>,
    pub seq: Option<i64>,
    pub before: Option<OwnerId>,
    pub desired: Option<OwnerId>,
}

/// A queued exception.
#[derive(Debug, Clone, PartialEq)]
pub struct ExceptionRow {
    pub id: i64,
    pub org: OrgId,
    pub object: ObjectKind,
    pub record_id: RecordId,
    pub kind: String,
    pub rule: String,
    pub reason: String,
    pub code: Option<String>,
    pub message: Option<String>,
    pub run_id: Option<String>,
    pub seq: Option<i64>,
    pub before: Option<OwnerId>,
    pub desired: Option<OwnerId>,
    pub status: String,
    pub resolved_owner: Option<OwnerId>,
    pub resolution_run: Option<String>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Outcome counts for a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub total: u64,
    pub applied: u64,
    pub unchanged: u64,
    pub skipped_changed: u64,
    pub rejected: u64,
    pub failed: u64,
    /// Not done yet (planned or in flight).
    pub pending: u64,
}

impl RunCounts {
    pub fn done(&self) -> u64 {
        self.total - self.pending
    }
}

const ENTRY_COLUMNS: &str = "run_id, seq, org, object, record_id, field, before_owner, \
    after_owner, rule, reason, policy_version, record_updated_at, state, batch_id, attempts, \
    sent, outcome, reject_kind, code, message, observed_owner, replan, planned_at, intent_at, \
    outcome_at";

fn parse_org(s: &str) -> Result<OrgId, JournalError> {
    OrgId::new(s).map_err(|e| JournalError::Corrupt(e.to_string()))
}

fn parse_enum<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T, JournalError> {
    s.parse().map_err(JournalError::Corrupt)
}

fn col<'r, T>(row: &'r AnyRow, name: &'static str) -> Result<T, JournalError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name).map_err(sql_err("decoding a journal row"))
}

fn entry_from_row(row: &AnyRow) -> Result<JournalEntry, JournalError> {
    let opt_ms = |name: &'static str| -> Result<Option<DateTime<Utc>>, JournalError> {
        Ok(col::<Option<i64>>(row, name)?.map(from_ms))
    };
    Ok(JournalEntry {
        run_id: col(row, "run_id")?,
        seq: col(row, "seq")?,
        org: parse_org(&col::<String>(row, "org")?)?,
        object: parse_enum(&col::<String>(row, "object")?)?,
        id: RecordId(col(row, "record_id")?),
        field: col(row, "field")?,
        before: col::<Option<String>>(row, "before_owner")?.map(OwnerId),
        after: OwnerId(col(row, "after_owner")?),
        rule: col(row, "rule")?,
        reason: col(row, "reason")?,
        policy_version: col(row, "policy_version")?,
        record_updated_at: opt_ms("record_updated_at")?,
        state: col(row, "state")?,
        batch_id: col(row, "batch_id")?,
        attempts: col(row, "attempts")?,
        sent: col::<i64>(row, "sent")? != 0,
        outcome: col(row, "outcome")?,
        reject_kind: col(row, "reject_kind")?,
        code: col(row, "code")?,
        message: col(row, "message")?,
        observed_owner: col::<Option<String>>(row, "observed_owner")?.map(OwnerId),
        replan: col::<i64>(row, "replan")? != 0,
        planned_at: from_ms(col(row, "planned_at")?),
        intent_at: opt_ms("intent_at")?,
        outcome_at: opt_ms("outcome_at")?,
    })
}

fn run_from_row(row: &AnyRow) -> Result<RunRow, JournalError> {
    Ok(RunRow {
        run_id: col(row, "run_id")?,
        org: parse_org(&col::<String>(row, "org")?)?,
        kind: col(row, "kind")?,
        parent_run: col(row, "parent_run")?,
        policy_version: col(row, "policy_version")?,
        status: RunStatus::parse(&col::<String>(row, "status")?)?,
        total: col(row, "total")?,
        message: col(row, "message")?,
        resume_at: col::<Option<i64>>(row, "resume_at")?.map(from_ms),
        created_at: from_ms(col(row, "created_at")?),
        finished_at: col::<Option<i64>>(row, "finished_at")?.map(from_ms),
    })
}

pub(super) fn exception_from_row(row: &AnyRow) -> Result<ExceptionRow, JournalError> {
    Ok(ExceptionRow {
        id: col(row, "id")?,
        org: parse_org(&col::<String>(row, "org")?)?,
        object: parse_enum(&col::<String>(row, "object")?)?,
        record_id: RecordId(col(row, "record_id")?),
        kind: col(row, "kind")?,
        rule: col(row, "rule")?,
        reason: col(row, "reason")?,
        code: col(row, "code")?,
        message: col(row, "message")?,
        run_id: col(row, "run_id")?,
        seq: col(row, "seq")?,
        before: col::<Option<String>>(row, "before_owner")?.map(OwnerId),
        desired: col::<Option<String>>(row, "desired_owner")?.map(OwnerId),
        status: col(row, "status")?,
        resolved_owner: col::<Option<String>>(row, "resolved_owner")?.map(OwnerId),
        resolution_run: col(row, "resolution_run")?,
        created_at: from_ms(col(row, "created_at")?),
        resolved_at: col::<Option<i64>>(row, "resolved_at")?.map(from_ms),
    })
}

impl Store {
    /// Starts a run: the run row and every change as a `planned` journal row, in one
    /// transaction (either the whole plan is journaled or none of it).
    pub async fn journal_create_run(
        &self,
        run: &NewRun<'_>,
        changes: &[PlannedChange],
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(sql_err("starting a run"))?;
        sqlx::query(
            "INSERT INTO writer_runs (run_id, org, kind, parent_run, policy_version, status, \
             total, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'running', $6, $7, $7)",
        )
        .bind(run.run_id.to_owned())
        .bind(run.org.as_str())
        .bind(run.kind.to_owned())
        .bind(run.parent_run.map(str::to_owned))
        .bind(run.policy_version.to_owned())
        .bind(changes.len() as i64)
        .bind(to_ms(now))
        .execute(&mut *tx)
        .await
        .map_err(sql_err("inserting a run"))?;
        const COLS: usize = 14;
        const CREATE_CHUNK: usize = rows_per_statement(COLS);
        for (chunk_no, chunk) in changes.chunks(CREATE_CHUNK).enumerate() {
            let sql = format!(
                "INSERT INTO writer_journal (run_id, seq, org, object, record_id, field, \
                 before_owner, after_owner, rule, reason, policy_version, record_updated_at, \
                 state, planned_at) VALUES {}",
                placeholders(chunk.len(), COLS, 1)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (i, change) in chunk.iter().enumerate() {
                let seq = (chunk_no * CREATE_CHUNK + i) as i64;
                query = query
                    .bind(run.run_id.to_owned())
                    .bind(seq)
                    .bind(run.org.as_str())
                    .bind(change.object.as_str())
                    .bind(change.id.0.clone())
                    .bind(change.field.clone())
                    .bind(change.from.as_ref().map(|o| o.0.clone()))
                    .bind(change.to.0.clone())
                    .bind(change.rule.clone())
                    .bind(change.reason.clone())
                    .bind(change.policy_version.clone())
                    .bind(change.record_updated_at.map(to_ms))
                    .bind("planned")
                    .bind(to_ms(now));
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(sql_err("journaling planned changes"))?;
        }
        tx.commit().await.map_err(sql_err("committing a new run"))
    }

    pub async fn journal_run(&self, run_id: &str) -> Result<Option<RunRow>, JournalError> {
        let row = sqlx::query("SELECT * FROM writer_runs WHERE run_id = $1")
            .bind(run_id.to_owned())
            .fetch_optional(self.pool())
            .await
            .map_err(sql_err("reading a run"))?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// Runs, newest first.
    pub async fn journal_runs(&self, limit: i64) -> Result<Vec<RunRow>, JournalError> {
        let rows = sqlx::query("SELECT * FROM writer_runs ORDER BY created_at DESC LIMIT $1")
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .map_err(sql_err("listing runs"))?;
        rows.iter().map(run_from_row).collect()
    }

    /// The rollback runs of `parent`, oldest first (a run is rolled back at most once).
    pub async fn journal_rollbacks_of(&self, parent: &str) -> Result<Vec<RunRow>, JournalError> {
        let rows = sqlx::query(
            "SELECT * FROM writer_runs WHERE parent_run = $1 AND kind = 'rollback' \
             ORDER BY created_at",
        )
        .bind(parent.to_owned())
        .fetch_all(self.pool())
        .await
        .map_err(sql_err("finding a run's rollbacks"))?;
        rows.iter().map(run_from_row).collect()
    }

    /// The newest run of `kind` on `org` that still has work (for `backfill` resume).
    pub async fn journal_unfinished_run(
        &self,
        org: &OrgId,
        kind: &str,
    ) -> Result<Option<RunRow>, JournalError> {
        let row = sqlx::query(
            "SELECT * FROM writer_runs WHERE org = $1 AND kind = $2 AND status <> 'completed' \
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(org.as_str())
        .bind(kind.to_owned())
        .fetch_optional(self.pool())
        .await
        .map_err(sql_err("finding an unfinished run"))?;
        row.as_ref().map(run_from_row).transpose()
    }

    pub async fn journal_set_run_status(
        &self,
        run_id: &str,
        status: RunStatus,
        message: Option<&str>,
        resume_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        let finished = (status == RunStatus::Completed).then(|| to_ms(now));
        sqlx::query(
            "UPDATE writer_runs SET status = $2, message = $3, resume_at = $4, updated_at = $5, \
             finished_at = $6 WHERE run_id = $1",
        )
        .bind(run_id.to_owned())
        .bind(status.as_str())
        .bind(message.map(str::to_owned))
        .bind(resume_at.map(to_ms))
        .bind(to_ms(now))
        .bind(finished)
        .execute(self.pool())
        .await
        .map_err(sql_err("updating a run's status"))?;
        Ok(())
    }

    /// Every journal row of a run, in plan order.
    pub async fn journal_entries(&self, run_id: &str) -> Result<Vec<JournalEntry>, JournalError> {
        let sql =
            format!("SELECT {ENTRY_COLUMNS} FROM writer_journal WHERE run_id = $1 ORDER BY seq");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(run_id.to_owned())
            .fetch_all(self.pool())
            .await
            .map_err(sql_err("reading a run's journal"))?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Rows without an outcome (planned or in flight), in plan order.
    pub async fn journal_open_entries(
        &self,
        run_id: &str,
    ) -> Result<Vec<JournalEntry>, JournalError> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM writer_journal WHERE run_id = $1 AND state <> 'done' \
             ORDER BY seq"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(run_id.to_owned())
            .fetch_all(self.pool())
            .await
            .map_err(sql_err("reading a run's open changes"))?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Every journal row for one record, newest first (explain, rollback checks).
    pub async fn journal_for_record(
        &self,
        org: &OrgId,
        object: ObjectKind,
        id: &RecordId,
    ) -> Result<Vec<JournalEntry>, JournalError> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM writer_journal WHERE org = $1 AND object = $2 AND \
             record_id = $3 ORDER BY planned_at DESC, seq DESC"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(org.as_str())
            .bind(object.as_str())
            .bind(id.0.clone())
            .fetch_all(self.pool())
            .await
            .map_err(sql_err("reading a record's journal"))?;
        rows.iter().map(entry_from_row).collect()
    }

    /// The next unused batch id of a run.
    pub async fn journal_next_batch_id(&self, run_id: &str) -> Result<i64, JournalError> {
        let row = sqlx::query(
            "SELECT COALESCE(MAX(batch_id), -1) AS last FROM writer_batches WHERE run_id = $1",
        )
        .bind(run_id.to_owned())
        .fetch_one(self.pool())
        .await
        .map_err(sql_err("reading the last batch id"))?;
        let last: i64 = col(&row, "last")?;
        Ok(last + 1)
    }

    /// The write-ahead step: records that an apply call carrying `seqs` is about to be
    /// made. Must commit before the call.
    pub async fn journal_intent(
        &self,
        run_id: &str,
        batch_id: i64,
        object: ObjectKind,
        seqs: &[i64],
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.journal_step(
            run_id,
            JournalStep {
                intent: Some(BatchIntent {
                    batch_id,
                    object,
                    seqs,
                    lease_epoch: None,
                }),
                ..JournalStep::default()
            },
            now,
        )
        .await
    }

    /// Records how an apply call ended as a whole (`ok` or `error:<kind>`).
    pub async fn journal_batch_result(
        &self,
        run_id: &str,
        batch_id: i64,
        result: &str,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.journal_step(
            run_id,
            JournalStep {
                batch_result: Some((batch_id, result)),
                ..JournalStep::default()
            },
            now,
        )
        .await
    }

    /// Writes final outcomes, once each (rows that already have one are left alone).
    pub async fn journal_outcomes(
        &self,
        run_id: &str,
        outcomes: &[(i64, JournalOutcome)],
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.journal_step(
            run_id,
            JournalStep {
                outcomes,
                ..JournalStep::default()
            },
            now,
        )
        .await
    }

    /// Puts in-flight or rejected-for-now rows back to `planned` (a retry will re-read
    /// them first), noting why.
    pub async fn journal_requeue(
        &self,
        run_id: &str,
        seqs: &[(i64, String)],
    ) -> Result<(), JournalError> {
        self.journal_step(
            run_id,
            JournalStep {
                requeue: seqs,
                ..JournalStep::default()
            },
            Utc::now(),
        )
        .await
    }

    /// Commits one writer step in a single transaction, in this order: the previous
    /// call's batch result, final outcomes, requeues, then the next call's intent. The
    /// writer sends that call only after this returns, so the intent is still written
    /// ahead; folding the bookkeeping of the call that just ended into the same commit
    /// keeps the time with no API call in flight to one transaction per batch.
    ///
    /// Rows are updated set-wise (`seq IN (...)`), grouped by identical values: a
    /// batch of 200 costs a handful of statements, not one per record.
    pub async fn journal_step(
        &self,
        run_id: &str,
        step: JournalStep<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        if step.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(sql_err("starting a journal step"))?;
        let now_ms = to_ms(now);
        if let Some((batch_id, result)) = step.batch_result {
            sqlx::query(
                "UPDATE writer_batches SET result = $3, outcome_at = $4 \
                 WHERE run_id = $1 AND batch_id = $2",
            )
            .bind(run_id.to_owned())
            .bind(batch_id)
            .bind(result.to_owned())
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(sql_err("journaling a batch result"))?;
        }
        // Outcomes with no per-row detail (applied, unchanged) go in one statement per
        // kind; the others carry their own codes and messages.
        let mut plain: Vec<(&'static str, Vec<i64>)> = Vec::new();
        for (seq, outcome) in step.outcomes {
            let (kind, code, message, observed, replan) = match outcome {
                JournalOutcome::Applied | JournalOutcome::Unchanged => {
                    let name = outcome.as_str();
                    match plain.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, seqs)) => seqs.push(*seq),
                        None => plain.push((name, vec![*seq])),
                    }
                    continue;
                }
                JournalOutcome::SkippedChanged { observed } => (
                    None,
                    None,
                    Some(match observed {
                        Some(o) => format!("owner is now {o}, not the plan's from"),
                        None => "record is now unowned, not the plan's from".to_owned(),
                    }),
                    observed.as_ref().map(|o| o.0.clone()),
                    true,
                ),
                JournalOutcome::Rejected {
                    kind,
                    code,
                    message,
                    replan,
                } => (
                    Some(reject_kind_str(*kind)),
                    Some(code.clone()),
                    Some(message.clone()),
                    None,
                    *replan,
                ),
                JournalOutcome::Failed { message } => {
                    (None, None, Some(message.clone()), None, false)
                }
            };
            sqlx::query(
                "UPDATE writer_journal SET state = 'done', outcome = $3, reject_kind = $4, \
                 code = $5, message = $6, observed_owner = $7, replan = $8, outcome_at = $9 \
                 WHERE run_id = $1 AND seq = $2 AND outcome IS NULL",
            )
            .bind(run_id.to_owned())
            .bind(*seq)
            .bind(outcome.as_str())
            .bind(kind.map(str::to_owned))
            .bind(code)
            .bind(message)
            .bind(observed)
            .bind(i64::from(replan))
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(sql_err("journaling an outcome"))?;
        }
        for (name, seqs) in &plain {
            for chunk in seqs.chunks(MAX_PARAMS - 4) {
                // leadroute's own writes reach the mirror in this same transaction, so
                // a plan made right after an apply does not plan them again.
                if *name == JournalOutcome::Applied.as_str() {
                    super::mirror_rows::mirror_owners_written(&mut tx, run_id, chunk, now)
                        .await
                        .map_err(sql_err("updating the mirror with applied owners"))?;
                }
                let sql = format!(
                    "UPDATE writer_journal SET state = 'done', outcome = $2, outcome_at = $3 \
                     WHERE run_id = $1 AND outcome IS NULL AND seq IN ({})",
                    in_list(chunk.len(), 4)
                );
                let mut query = sqlx::query(AssertSqlSafe(sql))
                    .bind(run_id.to_owned())
                    .bind((*name).to_owned())
                    .bind(now_ms);
                for seq in chunk {
                    query = query.bind(*seq);
                }
                query
                    .execute(&mut *tx)
                    .await
                    .map_err(sql_err("journaling outcomes"))?;
            }
        }
        // Requeues share their note far more often than not (one per failed call).
        let mut notes: Vec<(&str, Vec<i64>)> = Vec::new();
        for (seq, note) in step.requeue {
            match notes.iter_mut().find(|(n, _)| *n == note.as_str()) {
                Some((_, seqs)) => seqs.push(*seq),
                None => notes.push((note.as_str(), vec![*seq])),
            }
        }
        for (note, seqs) in &notes {
            for chunk in seqs.chunks(MAX_PARAMS - 4) {
                let sql = format!(
                    "UPDATE writer_journal SET state = 'planned', message = $2 \
                     WHERE run_id = $1 AND outcome IS NULL AND seq IN ({})",
                    in_list(chunk.len(), 3)
                );
                let mut query = sqlx::query(AssertSqlSafe(sql))
                    .bind(run_id.to_owned())
                    .bind((*note).to_owned());
                for seq in chunk {
                    query = query.bind(*seq);
                }
                query
                    .execute(&mut *tx)
                    .await
                    .map_err(sql_err("requeueing changes"))?;
            }
        }
        if let Some(intent) = step.intent {
            sqlx::query(
                "INSERT INTO writer_batches (run_id, batch_id, object, size, intent_at, lease_epoch) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(run_id.to_owned())
            .bind(intent.batch_id)
            .bind(intent.object.as_str())
            .bind(intent.seqs.len() as i64)
            .bind(now_ms)
            .bind(intent.lease_epoch)
            .execute(&mut *tx)
            .await
            .map_err(sql_err("journaling a batch intent"))?;
            for chunk in intent.seqs.chunks(MAX_PARAMS - 4) {
                let sql = format!(
                    "UPDATE writer_journal SET state = 'intent', batch_id = $2, \
                     attempts = attempts + 1, sent = 1, intent_at = $3 \
                     WHERE run_id = $1 AND outcome IS NULL AND seq IN ({})",
                    in_list(chunk.len(), 4)
                );
                let mut query = sqlx::query(AssertSqlSafe(sql))
                    .bind(run_id.to_owned())
                    .bind(intent.batch_id)
                    .bind(now_ms);
                for seq in chunk {
                    query = query.bind(*seq);
                }
                query
                    .execute(&mut *tx)
                    .await
                    .map_err(sql_err("journaling change intents"))?;
            }
        }
        tx.commit()
            .await
            .map_err(sql_err("committing a journal step"))
    }

    /// Outcome counts of a run.
    pub async fn journal_counts(&self, run_id: &str) -> Result<RunCounts, JournalError> {
        let rows = sqlx::query(
            "SELECT COALESCE(outcome, 'pending') AS outcome, COUNT(*) AS n FROM writer_journal \
             WHERE run_id = $1 GROUP BY COALESCE(outcome, 'pending')",
        )
        .bind(run_id.to_owned())
        .fetch_all(self.pool())
        .await
        .map_err(sql_err("counting a run's outcomes"))?;
        let mut counts = RunCounts::default();
        for row in &rows {
            let outcome: String = col(row, "outcome")?;
            let n = col::<i64>(row, "n")?.max(0) as u64;
            counts.total += n;
            match outcome.as_str() {
                "applied" => counts.applied += n,
                "unchanged" => counts.unchanged += n,
                "skipped_changed" => counts.skipped_changed += n,
                "rejected" => counts.rejected += n,
                "failed" => counts.failed += n,
                _ => counts.pending += n,
            }
        }
        Ok(counts)
    }

    /// Queues an exception unless the same record already has an open one of the same
    /// kind. Returns the exception's id (the existing one's when it was already open).
    ///
    /// Idempotent under concurrency: the insert is `ON CONFLICT DO NOTHING` against the
    /// unique index of open exceptions (migration 0203), so two processes queueing the
    /// same exception at once leave one row, not two.
    pub async fn exception_add(
        &self,
        exception: &NewException,
        now: DateTime<Utc>,
    ) -> Result<i64, JournalError> {
        let inserted = sqlx::query(
            "INSERT INTO writer_exceptions (org, object, record_id, kind, rule, reason, code, \
             message, run_id, seq, before_owner, desired_owner, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'open', $13) \
             ON CONFLICT (org, object, record_id, kind) WHERE status = 'open' DO NOTHING \
             RETURNING id",
        )
        .bind(exception.org.as_str())
        .bind(exception.object.as_str())
        .bind(exception.id.0.clone())
        .bind(exception.kind.clone())
        .bind(exception.rule.clone())
        .bind(exception.reason.clone())
        .bind(exception.code.clone())
        .bind(exception.message.clone())
        .bind(exception.run_id.clone())
        .bind(exception.seq)
        .bind(exception.before.as_ref().map(|o| o.0.clone()))
        .bind(exception.desired.as_ref().map(|o| o.0.clone()))
        .bind(to_ms(now))
        .fetch_optional(self.pool())
        .await
        .map_err(sql_err("queueing an exception"))?;
        if let Some(row) = inserted {
            return col(&row, "id");
        }
        let existing = sqlx::query(
            "SELECT id FROM writer_exceptions WHERE org = $1 AND object = $2 AND record_id = $3 \
             AND kind = $4 AND status = 'open'",
        )
        .bind(exception.org.as_str())
        .bind(exception.object.as_str())
        .bind(exception.id.0.clone())
        .bind(exception.kind.clone())
        .fetch_optional(self.pool())
        .await
        .map_err(sql_err("looking for an open exception"))?;
        match existing {
            Some(row) => col(&row, "id"),
            // Closed between the conflict and the read: queue it again.
            None => Box::pin(self.exception_add(exception, now)).await,
        }
    }

    /// Exceptions with `status` (`open`, `resolved`, `retried`), or all; oldest first.
    pub async fn exceptions(
        &self,
        status: Option<&str>,
    ) -> Result<Vec<ExceptionRow>, JournalError> {
        let rows = match status {
            Some(status) => {
                sqlx::query("SELECT * FROM writer_exceptions WHERE status = $1 ORDER BY id")
                    .bind(status.to_owned())
                    .fetch_all(self.pool())
                    .await
            }
            None => {
                sqlx::query("SELECT * FROM writer_exceptions ORDER BY id")
                    .fetch_all(self.pool())
                    .await
            }
        }
        .map_err(sql_err("listing exceptions"))?;
        rows.iter().map(exception_from_row).collect()
    }

    pub async fn exception(&self, id: i64) -> Result<Option<ExceptionRow>, JournalError> {
        let row = sqlx::query("SELECT * FROM writer_exceptions WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(sql_err("reading an exception"))?;
        row.as_ref().map(exception_from_row).transpose()
    }

    /// Closes an exception (`resolved` by hand or `retried`), naming the run that did it.
    pub async fn exception_close(
        &self,
        id: i64,
        status: &str,
        owner: Option<&OwnerId>,
        run_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        sqlx::query(
            "UPDATE writer_exceptions SET status = $2, resolved_owner = $3, resolution_run = $4, \
             resolved_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(status.to_owned())
        .bind(owner.map(|o| o.0.clone()))
        .bind(run_id.map(str::to_owned))
        .bind(to_ms(now))
        .execute(self.pool())
        .await
        .map_err(sql_err("closing an exception"))?;
        Ok(())
    }
}

/// Bulk job ids (`writer_batches.job_id`, migration 0202).
impl Store {
    /// Records the CRM's id for the bulk job carrying batch `batch_id`. The writer
    /// commits this after the job is created and before it is let run, so a crash
    /// never leaves a running job the journal does not name.
    pub async fn journal_bulk_job(
        &self,
        run_id: &str,
        batch_id: i64,
        job_id: &str,
    ) -> Result<(), JournalError> {
        sqlx::query("UPDATE writer_batches SET job_id = $3 WHERE run_id = $1 AND batch_id = $2")
            .bind(run_id.to_owned())
            .bind(batch_id)
            .bind(job_id.to_owned())
            .execute(self.pool())
            .await
            .map_err(sql_err("recording a bulk job id"))?;
        Ok(())
    }

    /// Each batch of the run with the lease epoch it was fenced with (migration 0222):
    /// `(batch_id, lease_epoch)`, oldest first.
    pub async fn journal_batch_epochs(
        &self,
        run_id: &str,
    ) -> Result<Vec<(i64, Option<i64>)>, JournalError> {
        let rows = sqlx::query(
            "SELECT batch_id, lease_epoch FROM writer_batches WHERE run_id = $1 ORDER BY batch_id",
        )
        .bind(run_id.to_owned())
        .fetch_all(self.pool())
        .await
        .map_err(sql_err("reading batch lease epochs"))?;
        rows.iter()
            .map(|row| Ok((col(row, "batch_id")?, col(row, "lease_epoch")?)))
            .collect()
    }

    /// Bulk jobs of `object` in this run whose batch has no result yet (a crash, or a
    /// stop, came before the job's end was journaled): `(batch_id, job_id)`, oldest
    /// first.
    pub async fn journal_unsettled_bulk_jobs(
        &self,
        run_id: &str,
        object: ObjectKind,
    ) -> Result<Vec<(i64, String)>, JournalError> {
        let rows = sqlx::query(
            "SELECT batch_id, job_id FROM writer_batches WHERE run_id = $1 AND object = $2 \
             AND job_id IS NOT NULL AND result IS NULL ORDER BY batch_id",
        )
        .bind(run_id.to_owned())
        .bind(object.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(sql_err("reading unsettled bulk jobs"))?;
        rows.iter()
            .map(|row| Ok((col(row, "batch_id")?, col(row, "job_id")?)))
            .collect()
    }
}

pub(crate) fn reject_kind_str(kind: RejectKind) -> &'static str {
    match kind {
        RejectKind::InactiveOwner => "inactive_owner",
        RejectKind::InvalidOwner => "invalid_owner",
        RejectKind::NotFound => "not_found",
        RejectKind::Locked => "locked",
        RejectKind::Validation => "validation",
        RejectKind::ReadOnly => "read_only",
        RejectKind::Conflict => "conflict",
        RejectKind::RolledBack => "rolled_back",
        RejectKind::Unprocessed => "unprocessed",
        RejectKind::Other => "other",
    }
}

#[cfg(test)]
mod bulk_job_tests {
    use super::*;

    #[tokio::test]
    async fn a_bulk_job_id_is_unsettled_until_its_batch_has_a_result_on_every_backend() {
        for ts in crate::store::test_stores::all().await {
            let (store, label) = (ts.store.clone(), ts.label());
            let run = NewRun {
                run_id: "r",
                org: OrgId::default_for(leadroute_crm::CrmKind::Salesforce),
                kind: "backfill",
                parent_run: None,
                policy_version: "v",
            };
            let now = Utc::now();
            store.journal_create_run(&run, &[], now).await.unwrap();
            for batch in 0..3 {
                store
                    .journal_intent("r", batch, ObjectKind::Lead, &[], now)
                    .await
                    .unwrap();
            }
            // Batch 0 is a plain batch; 1 and 2 carry jobs; 2's end is journaled.
            store.journal_bulk_job("r", 1, "750A").await.unwrap();
            store.journal_bulk_job("r", 2, "750B").await.unwrap();
            store
                .journal_batch_result("r", 2, "ok bulk 750B", now)
                .await
                .unwrap();
            assert_eq!(
                store
                    .journal_unsettled_bulk_jobs("r", ObjectKind::Lead)
                    .await
                    .unwrap(),
                vec![(1, "750A".to_owned())],
                "{label}"
            );
            assert!(
                store
                    .journal_unsettled_bulk_jobs("r", ObjectKind::Contact)
                    .await
                    .unwrap()
                    .is_empty(),
                "{label}: per object"
            );
            store
                .journal_batch_result("r", 1, "orphan bulk 750A: aborted", now)
                .await
                .unwrap();
            assert!(
                store
                    .journal_unsettled_bulk_jobs("r", ObjectKind::Lead)
                    .await
                    .unwrap()
                    .is_empty(),
                "{label}"
            );
            ts.drop().await;
        }
    }
}
