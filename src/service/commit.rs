//! Committing to a plan: the one path `apply`, `backfill`, the demo and the sidecar
//! share, so they cannot drift apart (issue 9: `backfill` once dropped a plan's
//! exceptions when it had no owner changes, while `apply` queued them).

use leadroute_crm::Crm;

use crate::reconcile::{Ledger, Plan};
use crate::store::StoreError;
use crate::writer::{ApplyReport, OpsError, Progress, RunSpec, Writer, WriterError};

/// What committing to a plan did.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// Exceptions of the plan now open in the queue (already-open ones count: queueing
    /// is idempotent).
    pub exceptions_queued: u64,
    /// The run that applied the plan's changes; `None` when the plan had none (no run
    /// is journaled for nothing).
    pub report: Option<ApplyReport>,
}

/// Why committing to a plan failed. Nothing is sent to the CRM before the ledger and
/// the exceptions are stored.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("saving the assignment ledger failed; nothing was applied")]
    Ledger(#[source] StoreError),
    #[error("queueing the plan's exceptions failed; nothing was applied")]
    Exceptions(#[source] OpsError),
    #[error(transparent)]
    Writer(#[from] WriterError),
}

/// Commits to `plan`: saves the assignment `ledger` the plan was made with (when the
/// plan was computed here rather than read from a file), queues the plan's exceptions
/// (even when it has no owner changes; idempotent, so re-running or two processes at
/// once never duplicate one), then applies its changes as the run `spec` (journaled,
/// compare-before-write; resumed if `spec.id` is already journaled).
///
/// `apply`, `backfill`, the demo and the sidecar all call this.
pub async fn commit_plan<C: Crm>(
    writer: &Writer<C>,
    plan: &Plan,
    ledger: Option<&mut Ledger>,
    spec: &RunSpec,
    progress: &dyn Progress,
) -> Result<Committed, CommitError> {
    let current = writer.crm().kind();
    if plan.crm != current {
        return Err(WriterError::PlanForOtherCrm {
            plan: plan.crm.to_string(),
            current: current.to_string(),
        }
        .into());
    }
    if let Some(ledger) = ledger {
        writer
            .store()
            .save_ledger(writer.org(), ledger)
            .await
            .map_err(CommitError::Ledger)?;
    }
    let exceptions_queued = writer
        .queue_plan_exceptions(plan, &spec.id)
        .await
        .map_err(CommitError::Exceptions)?;
    let report = if plan.changes.is_empty() {
        None
    } else {
        Some(writer.apply_run(plan, spec, progress).await?)
    };
    Ok(Committed {
        exceptions_queued,
        report,
    })
}
