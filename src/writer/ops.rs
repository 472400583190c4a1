//! Operations built on the writer: rolling a run back, resolving and retrying queued
//! exceptions, queueing a plan's exceptions. Each one goes through `Writer::apply_run`,
//! so it is journaled and compares before it writes like any other run.

use chrono::Utc;
use leadroute_crm::{Crm, ObjectKind, OwnerId, RecordId};

use super::{ApplyReport, Progress, RunId, RunSpec, Writer, WriterError};
use crate::reconcile::{Plan, PlannedChange};
use crate::store::{ExceptionRow, NewException};

/// A change a rollback did not revert, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftAlone {
    pub object: ObjectKind,
    pub id: RecordId,
    pub why: String,
}

/// What `rollback RUN` did.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackReport {
    /// The rollback's own run (`None` when there was nothing to revert).
    pub report: Option<ApplyReport>,
    pub reverted: u64,
    pub left_alone: Vec<LeftAlone>,
}

/// Why an exception operation could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Writer(#[from] WriterError),
    #[error("exception {0} does not exist; see `leadroute exceptions list`")]
    NoSuchException(i64),
    #[error("exception {id} is already {status}")]
    ExceptionClosed { id: i64, status: String },
    #[error("exception {0} has no desired owner to retry; resolve it with --owner")]
    NothingToRetry(i64),
    #[error("exception {id} belongs to {crm}, but this leadroute talks to {current}")]
    OtherCrm {
        id: i64,
        crm: String,
        current: String,
    },
    #[error("reading the record's current owner failed")]
    Read(#[source] leadroute_crm::CrmError),
    #[error("run {0} is not in the journal; see the run id printed by apply/backfill")]
    UnknownRun(String),
}

impl From<crate::store::JournalError> for OpsError {
    fn from(err: crate::store::JournalError) -> Self {
        OpsError::Writer(WriterError::Journal(err))
    }
}

impl<C: Crm> Writer<C> {
    /// Reverts `run`'s applied changes where the CRM still holds the owner we wrote
    /// (compare-before-write again: anything since changed is left alone).
    pub async fn rollback(
        &self,
        run: &str,
        rollback_run: RunId,
        progress: &dyn Progress,
    ) -> Result<RollbackReport, OpsError> {
        let Some(row) = self.store.journal_run(run).await? else {
            return Err(OpsError::UnknownRun(run.to_owned()));
        };
        let entries = self.store.journal_entries(run).await?;
        let mut left_alone = Vec::new();
        let mut changes = Vec::new();
        for entry in entries
            .iter()
            .filter(|e| e.outcome.as_deref() == Some("applied"))
        {
            let Some(before) = entry.before.clone() else {
                left_alone.push(LeftAlone {
                    object: entry.object,
                    id: entry.id.clone(),
                    why: "it had no owner before the run; leadroute never clears an owner"
                        .to_owned(),
                });
                continue;
            };
            changes.push(PlannedChange {
                object: entry.object,
                id: entry.id.clone(),
                field: entry.field.clone(),
                from: Some(entry.after.clone()),
                to: before,
                rule: format!("rollback of {run}"),
                reason: format!("revert {} ({})", entry.rule, entry.reason),
                policy_version: entry.policy_version.clone(),
                record_updated_at: None,
            });
        }
        if changes.is_empty() {
            return Ok(RollbackReport {
                report: None,
                reverted: 0,
                left_alone,
            });
        }
        let plan = Plan {
            policy_version: row.policy_version.clone(),
            created_at: Utc::now(),
            crm: row.crm,
            changes,
            exceptions: Vec::new(),
        };
        let spec = RunSpec {
            id: rollback_run,
            kind: "rollback".to_owned(),
            parent: Some(run.to_owned()),
        };
        let report = self.apply_run(&plan, &spec, progress).await?;
        for entry in self.store.journal_entries(spec.id.as_str()).await? {
            let why = match entry.outcome.as_deref() {
                Some("skipped_changed") => format!(
                    "owner changed since the run (now {}); not ours to revert",
                    entry
                        .observed_owner
                        .as_ref()
                        .map_or_else(|| "unowned".to_owned(), ToString::to_string)
                ),
                Some("rejected") | Some("failed") => format!(
                    "the CRM refused the revert: {}",
                    entry.message.clone().unwrap_or_default()
                ),
                None => "not reverted yet: the rollback stopped early; run it again".to_owned(),
                _ => continue,
            };
            left_alone.push(LeftAlone {
                object: entry.object,
                id: entry.id.clone(),
                why,
            });
        }
        Ok(RollbackReport {
            reverted: report.applied,
            report: Some(report),
            left_alone,
        })
    }

    /// Puts a plan's exceptions (ambiguous match, no eligible rep, …) in the queue.
    pub async fn queue_plan_exceptions(&self, plan: &Plan, run: &RunId) -> Result<u64, OpsError> {
        let now = Utc::now();
        for exception in &plan.exceptions {
            self.store
                .exception_add(
                    &NewException {
                        crm: plan.crm,
                        object: exception.object,
                        id: exception.id.clone(),
                        kind: exception.kind.clone(),
                        rule: exception.rule.clone(),
                        reason: exception.reason.clone(),
                        code: None,
                        message: None,
                        run_id: Some(run.0.clone()),
                        seq: None,
                        before: None,
                        desired: None,
                    },
                    now,
                )
                .await?;
        }
        Ok(plan.exceptions.len() as u64)
    }

    async fn open_exception(&self, id: i64) -> Result<ExceptionRow, OpsError> {
        let row = self
            .store
            .exception(id)
            .await?
            .ok_or(OpsError::NoSuchException(id))?;
        if row.status != "open" {
            return Err(OpsError::ExceptionClosed {
                id,
                status: row.status,
            });
        }
        if row.crm != self.crm.kind() {
            return Err(OpsError::OtherCrm {
                id,
                crm: row.crm.to_string(),
                current: self.crm.kind().to_string(),
            });
        }
        Ok(row)
    }

    /// Runs a one-change plan for an exception and closes it when the CRM ends up
    /// holding `to`.
    async fn settle_exception(
        &self,
        row: &ExceptionRow,
        from: Option<OwnerId>,
        to: OwnerId,
        rule: &str,
        status: &str,
        progress: &dyn Progress,
    ) -> Result<ApplyReport, OpsError> {
        let plan = Plan {
            policy_version: format!("exception-{}", row.id),
            created_at: Utc::now(),
            crm: row.crm,
            changes: vec![PlannedChange {
                object: row.object,
                id: row.record_id.clone(),
                field: "owner".to_owned(),
                from,
                to: to.clone(),
                rule: rule.to_owned(),
                reason: format!("exception {}: {}", row.id, row.reason),
                policy_version: format!("exception-{}", row.id),
                record_updated_at: None,
            }],
            exceptions: Vec::new(),
        };
        let spec = RunSpec {
            id: RunId::new(format!("{}-x{}", RunId::generate(Utc::now()), row.id)),
            kind: "exception".to_owned(),
            parent: row.run_id.clone(),
        };
        let report = self.apply_run(&plan, &spec, progress).await?;
        if report.applied + report.unchanged == 1 {
            self.store
                .exception_close(
                    row.id,
                    status,
                    Some(&to),
                    Some(spec.id.as_str()),
                    Utc::now(),
                )
                .await?;
        }
        Ok(report)
    }

    /// `exceptions resolve ID --owner X`: assigns the record by hand (from whatever
    /// owner it has now, read just before) and closes the exception.
    pub async fn resolve_exception(
        &self,
        id: i64,
        owner: OwnerId,
        progress: &dyn Progress,
    ) -> Result<ApplyReport, OpsError> {
        let row = self.open_exception(id).await?;
        let current = self
            .crm
            .current_owners(row.object, std::slice::from_ref(&row.record_id))
            .await
            .map_err(OpsError::Read)?;
        let from = current.into_iter().next().and_then(|c| c.owner_id);
        self.settle_exception(&row, from, owner, "manual", "resolved", progress)
            .await
    }

    /// `exceptions retry ID`: tries the original change again (same from and to).
    pub async fn retry_exception(
        &self,
        id: i64,
        progress: &dyn Progress,
    ) -> Result<ApplyReport, OpsError> {
        let row = self.open_exception(id).await?;
        let to = row.desired.clone().ok_or(OpsError::NothingToRetry(id))?;
        let rule = row.rule.clone();
        self.settle_exception(&row, row.before.clone(), to, &rule, "retried", progress)
            .await
    }
}
