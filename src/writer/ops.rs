//! Operations built on the writer: rolling a run back, resolving and retrying queued
//! exceptions, queueing a plan's exceptions. Each one goes through `Writer::apply_run`,
//! so it is journaled and compares before it writes like any other run.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use leadroute_crm::{Crm, ObjectKind, OwnerId, RecordId};

use super::{ApplyReport, Progress, RunId, RunSpec, Writer, WriterError};
use crate::reconcile::ledger::Assignment;
use crate::reconcile::{Plan, PlannedChange};
use crate::store::{ExceptionRow, NewException, RunRow};

/// Why a rollback did not (or, in a dry run, would not) revert a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LeftReason {
    /// The record had no owner before the run; leadroute never clears an owner.
    HadNoOwner,
    /// Someone changed the owner since the run: not ours to revert.
    ChangedSince,
    /// The owner before the run is inactive now: the CRM would refuse the write, so it
    /// is not sent and the record is queued as an exception.
    TargetInactive,
    /// The CRM refused the revert (queued as an exception).
    Refused,
    /// The rollback stopped before reaching it.
    NotYet,
}

impl LeftReason {
    pub fn describe(self) -> &'static str {
        match self {
            LeftReason::HadNoOwner => {
                "had no owner before the run (leadroute never clears an owner)"
            }
            LeftReason::ChangedSince => "owner changed since the run (not ours to revert)",
            LeftReason::TargetInactive => {
                "the owner before the run is inactive now (queued as exceptions)"
            }
            LeftReason::Refused => "the CRM refused the revert (queued as exceptions)",
            LeftReason::NotYet => "not reverted yet: the rollback stopped early",
        }
    }

    /// Whether this leaves work for a person (the command then exits non-zero).
    pub fn is_undone(self) -> bool {
        matches!(
            self,
            LeftReason::TargetInactive | LeftReason::Refused | LeftReason::NotYet
        )
    }
}

/// A change a rollback did not revert, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftAlone {
    pub object: ObjectKind,
    pub id: RecordId,
    pub reason: LeftReason,
    /// The reason with this record's own details (observed owner, the CRM's message).
    pub why: String,
}

/// What `rollback RUN` did (or, with `dry_run`, would do).
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackReport {
    /// The rollback's own run (`None` when there was nothing to revert or a dry run).
    pub report: Option<ApplyReport>,
    pub reverted: u64,
    /// Dry run: changes the CRM still holds as written, which a rollback would revert.
    pub would_revert: u64,
    pub left_alone: Vec<LeftAlone>,
    /// Exceptions queued for records the rollback could not restore.
    pub exceptions_queued: u64,
    pub dry_run: bool,
}

impl RollbackReport {
    /// How many changes were left alone, per reason (in the reasons' order).
    pub fn by_reason(&self) -> BTreeMap<LeftReason, u64> {
        let mut counts = BTreeMap::new();
        for left in &self.left_alone {
            *counts.entry(left.reason).or_insert(0) += 1;
        }
        counts
    }

    /// Changes that still need a person (inactive targets, refusals, not reached).
    pub fn undone(&self) -> u64 {
        self.left_alone
            .iter()
            .filter(|l| l.reason.is_undone())
            .count() as u64
    }
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
    #[error(
        "exception {id} belongs to org {crm}, but this command is scoped to org {current}; pass --org {crm}"
    )]
    OtherCrm {
        id: i64,
        crm: String,
        current: String,
    },
    #[error("reading the record's current owner failed")]
    Read(#[source] leadroute_crm::CrmError),
    #[error("run {0} is not in the journal; see the run id printed by apply/backfill")]
    UnknownRun(String),
    #[error(
        "run {run} was already rolled back by run {by} ({status}); a run is rolled back once \
         (see `leadroute runs`)"
    )]
    AlreadyRolledBack {
        run: String,
        by: String,
        status: String,
    },
    #[error(
        "run {run} is being rolled back by run {by}, which has not finished ({status}); \
         finish it with `leadroute apply --resume {by}`"
    )]
    RollbackUnfinished {
        run: String,
        by: String,
        status: String,
    },
    #[error("run {run} is a rollback; roll back the run it reverted with a new apply instead")]
    RollbackOfRollback { run: String },
    #[error("reading the mirror's owners or the ledger failed")]
    Store(#[source] crate::store::StoreError),
}

impl From<crate::store::JournalError> for OpsError {
    fn from(err: crate::store::JournalError) -> Self {
        OpsError::Writer(WriterError::Journal(err))
    }
}

impl<C: Crm> Writer<C> {
    /// Checks that `run` can be rolled back: it exists, belongs to this CRM, is not a
    /// rollback itself and has not been rolled back before (a second rollback would
    /// "revert" the restored owners, or fight the first one).
    pub async fn rollback_check(&self, run: &str) -> Result<RunRow, OpsError> {
        let Some(row) = self.store.journal_run(run).await? else {
            return Err(OpsError::UnknownRun(run.to_owned()));
        };
        if row.org != self.org {
            return Err(OpsError::Writer(WriterError::WrongCrm {
                run: run.to_owned(),
                journaled: row.org.to_string(),
                current: self.org.to_string(),
            }));
        }
        if row.kind == "rollback" {
            return Err(OpsError::RollbackOfRollback {
                run: run.to_owned(),
            });
        }
        if let Some(previous) = self
            .store
            .journal_rollbacks_of(run)
            .await?
            .into_iter()
            .next()
        {
            let status = previous.status.as_str().to_owned();
            return Err(if previous.status.is_resumable() {
                OpsError::RollbackUnfinished {
                    run: run.to_owned(),
                    by: previous.run_id,
                    status,
                }
            } else {
                OpsError::AlreadyRolledBack {
                    run: run.to_owned(),
                    by: previous.run_id,
                    status,
                }
            });
        }
        Ok(row)
    }

    /// Reverts `run`'s applied changes where the CRM still holds the owner we wrote
    /// (compare-before-write again: anything since changed is left alone). A previous
    /// owner who is inactive now is not written (the CRM would refuse it): the record
    /// is queued as an exception instead, as are reverts the CRM refuses. Restored
    /// owners are recorded in the assignment ledger as leadroute's own, so the
    /// manual-override window does not take them for a person's pick.
    ///
    /// With `dry_run`, reads the CRM's current owners and reports what a rollback
    /// would do, writing nothing (no run, no exception, no ledger change).
    pub async fn rollback(
        &self,
        run: &str,
        rollback_run: RunId,
        dry_run: bool,
        progress: &dyn Progress,
    ) -> Result<RollbackReport, OpsError> {
        let row = self.rollback_check(run).await?;
        let active: HashMap<OwnerId, bool> = self
            .store
            .owners(&row.org)
            .await
            .map_err(OpsError::Store)?
            .into_iter()
            .map(|o| (o.id, o.active))
            .collect();
        let entries = self.store.journal_entries(run).await?;
        let mut left_alone = Vec::new();
        let mut changes = Vec::new();
        let mut inactive = Vec::new();
        for entry in entries
            .iter()
            .filter(|e| e.outcome.as_deref() == Some("applied"))
        {
            let Some(before) = entry.before.clone() else {
                left_alone.push(LeftAlone {
                    object: entry.object,
                    id: entry.id.clone(),
                    reason: LeftReason::HadNoOwner,
                    why: "it had no owner before the run; leadroute never clears an owner"
                        .to_owned(),
                });
                continue;
            };
            if active.get(&before) == Some(&false) {
                left_alone.push(LeftAlone {
                    object: entry.object,
                    id: entry.id.clone(),
                    reason: LeftReason::TargetInactive,
                    why: format!("its owner before the run, {before}, is inactive now"),
                });
                inactive.push(NewException {
                    org: self.org.clone(),
                    object: entry.object,
                    id: entry.id.clone(),
                    kind: "inactive_owner".to_owned(),
                    rule: format!("rollback of {run}"),
                    reason: format!(
                        "rollback of {run}: the owner before the run, {before}, is inactive \
                         now; pick an owner"
                    ),
                    code: None,
                    message: None,
                    run_id: Some(rollback_run.0.clone()),
                    seq: None,
                    before: Some(entry.after.clone()),
                    desired: None,
                });
                continue;
            }
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
        if dry_run {
            let would_revert = self.rollback_preview(&changes, &mut left_alone).await?;
            return Ok(RollbackReport {
                report: None,
                reverted: 0,
                would_revert,
                left_alone,
                exceptions_queued: 0,
                dry_run: true,
            });
        }
        let now = Utc::now();
        let mut exceptions_queued = 0;
        for exception in &inactive {
            self.store.exception_add(exception, now).await?;
            exceptions_queued += 1;
        }
        if changes.is_empty() {
            return Ok(RollbackReport {
                report: None,
                reverted: 0,
                would_revert: 0,
                left_alone,
                exceptions_queued,
                dry_run: false,
            });
        }
        let plan = Plan {
            policy_version: row.policy_version.clone(),
            created_at: now,
            crm: self.crm.kind(),
            changes,
            exceptions: Vec::new(),
        };
        let spec = RunSpec {
            id: rollback_run,
            kind: "rollback".to_owned(),
            parent: Some(run.to_owned()),
        };
        let report = self.apply_run(&plan, &spec, progress).await?;
        let mut ledger = self
            .store
            .load_ledger(&row.org)
            .await
            .map_err(OpsError::Store)?;
        let now = Utc::now();
        for entry in self.store.journal_entries(spec.id.as_str()).await? {
            let (reason, why) = match entry.outcome.as_deref() {
                Some("applied") => {
                    ledger.assign(
                        entry.object,
                        &entry.id,
                        Assignment {
                            owner: entry.after.clone(),
                            pool: None,
                            rule: format!("rollback of {run}"),
                            at: now,
                        },
                    );
                    continue;
                }
                Some("skipped_changed") => (
                    LeftReason::ChangedSince,
                    format!(
                        "owner changed since the run (now {}); not ours to revert",
                        entry
                            .observed_owner
                            .as_ref()
                            .map_or_else(|| "unowned".to_owned(), ToString::to_string)
                    ),
                ),
                Some("rejected") | Some("failed") => {
                    let message = entry.message.clone().unwrap_or_default();
                    self.store
                        .exception_add(
                            &NewException {
                                org: self.org.clone(),
                                object: entry.object,
                                id: entry.id.clone(),
                                kind: entry
                                    .reject_kind
                                    .clone()
                                    .unwrap_or_else(|| "rollback_failed".to_owned()),
                                rule: entry.rule.clone(),
                                reason: format!("rollback of {run}: the CRM refused the revert"),
                                code: entry.code.clone(),
                                message: entry.message.clone(),
                                run_id: Some(spec.id.0.clone()),
                                seq: Some(entry.seq),
                                before: entry.before.clone(),
                                desired: Some(entry.after.clone()),
                            },
                            now,
                        )
                        .await?;
                    exceptions_queued += 1;
                    (
                        LeftReason::Refused,
                        format!("the CRM refused the revert: {message}"),
                    )
                }
                None => (
                    LeftReason::NotYet,
                    format!(
                        "not reverted yet: the rollback stopped early; finish it with \
                         `leadroute apply --resume {}`",
                        spec.id
                    ),
                ),
                _ => continue,
            };
            left_alone.push(LeftAlone {
                object: entry.object,
                id: entry.id.clone(),
                reason,
                why,
            });
        }
        self.store
            .save_ledger(&row.org, &mut ledger)
            .await
            .map_err(OpsError::Store)?;
        Ok(RollbackReport {
            reverted: report.applied,
            would_revert: 0,
            report: Some(report),
            left_alone,
            exceptions_queued,
            dry_run: false,
        })
    }

    /// Dry run: reads the CRM's current owners of the changes a rollback would send;
    /// those still holding what the run wrote would be reverted (counted), the others
    /// are left alone (pushed to `left_alone`).
    async fn rollback_preview(
        &self,
        changes: &[PlannedChange],
        left_alone: &mut Vec<LeftAlone>,
    ) -> Result<u64, OpsError> {
        let mut would_revert = 0;
        let mut by_object: BTreeMap<ObjectKind, Vec<&PlannedChange>> = BTreeMap::new();
        for change in changes {
            by_object.entry(change.object).or_default().push(change);
        }
        for (object, changes) in by_object {
            for chunk in changes.chunks(self.read_batch_size()) {
                let ids: Vec<RecordId> = chunk.iter().map(|c| c.id.clone()).collect();
                let current: HashMap<RecordId, Option<OwnerId>> = self
                    .crm
                    .current_owners(object, &ids)
                    .await
                    .map_err(OpsError::Read)?
                    .into_iter()
                    .map(|o| (o.id, o.owner_id))
                    .collect();
                for change in chunk {
                    match current.get(&change.id) {
                        Some(owner) if owner == &change.from => would_revert += 1,
                        Some(owner) => left_alone.push(LeftAlone {
                            object,
                            id: change.id.clone(),
                            reason: LeftReason::ChangedSince,
                            why: format!(
                                "owner changed since the run (now {}); not ours to revert",
                                owner
                                    .as_ref()
                                    .map_or_else(|| "unowned".to_owned(), ToString::to_string)
                            ),
                        }),
                        None => left_alone.push(LeftAlone {
                            object,
                            id: change.id.clone(),
                            reason: LeftReason::ChangedSince,
                            why: "the record no longer exists in the CRM".to_owned(),
                        }),
                    }
                }
            }
        }
        Ok(would_revert)
    }

    /// Puts a plan's exceptions (ambiguous match, no eligible rep, …) in the queue.
    pub async fn queue_plan_exceptions(&self, plan: &Plan, run: &RunId) -> Result<u64, OpsError> {
        let now = Utc::now();
        for exception in &plan.exceptions {
            self.store
                .exception_add(
                    &NewException {
                        org: self.org.clone(),
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
        if row.org != self.org {
            return Err(OpsError::OtherCrm {
                id,
                crm: row.org.to_string(),
                current: self.org.to_string(),
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
            crm: self.crm.kind(),
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
