//! The write task: collects decided changes into micro-batches and writes each through
//! the [`Writer`] (compare-before-write, journal, retries, breaker) as one journaled run
//! of kind `sidecar`. A batch is flushed when it holds the CRM's maximum batch or when
//! its oldest change has waited `linger`; a burst therefore drains in full batches at
//! the CRM's rate and a trickle is written within the linger.
//!
//! It stops when its input closes (after intake and decide have), so the batch in hand
//! at shutdown is still written and journaled.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use leadroute_crm::{Crm, CrmKind};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::clock::Clock;
use super::decide::Decided;
use super::metrics::Metrics;
use super::status::Status;
use crate::reconcile::{Key, Ledger, Plan, PlannedChange, PlannedException};
use crate::store::Store;
use crate::writer::{ApplyReport, NoProgress, RunId, RunSpec, Writer};

/// The journaled kind of the sidecar's runs.
pub const RUN_KIND: &str = "sidecar";

pub(crate) struct Write<C: Crm> {
    pub(crate) writer: Writer<C>,
    pub(crate) store: Store,
    pub(crate) kind: CrmKind,
    pub(crate) rx: mpsc::Receiver<Decided>,
    pub(crate) linger: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) status: Arc<Status>,
}

/// One micro-batch being collected.
#[derive(Default)]
struct Batch {
    changes: BTreeMap<Key, (PlannedChange, Option<Instant>)>,
    exceptions: Vec<PlannedException>,
    ledger: Option<Ledger>,
    policy_version: String,
}

impl Batch {
    fn add(&mut self, decided: Decided) {
        for (change, seen) in decided.changes {
            let key = (change.object, change.id.clone());
            // A later decision for the same record replaces the earlier one; the record
            // keeps its first-seen time.
            let seen = match self.changes.get(&key) {
                Some((_, Some(earlier))) => Some(*earlier),
                _ => seen,
            };
            self.changes.insert(key, (change, seen));
        }
        self.exceptions.extend(decided.exceptions);
        self.ledger = Some(decided.ledger);
        self.policy_version = decided.policy_version;
    }
}

impl<C: Crm> Write<C> {
    pub(crate) async fn run(mut self) {
        self.resume_unfinished().await;
        let max = self.writer.crm().write_limits().max_batch.max(1);
        let mut runs = 0u64;
        loop {
            let Some(first) = self.rx.recv().await else {
                return;
            };
            let mut batch = Batch::default();
            batch.add(first);
            let deadline = Instant::now() + self.linger;
            let mut closed = false;
            while batch.changes.len() < max {
                tokio::select! {
                    msg = self.rx.recv() => match msg {
                        Some(decided) => batch.add(decided),
                        None => {
                            closed = true;
                            break;
                        }
                    },
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
            runs += 1;
            self.flush(batch, runs).await;
            if closed {
                return;
            }
        }
    }

    /// Finishes sidecar runs a previous process left unfinished (killed mid-batch).
    async fn resume_unfinished(&self) {
        match self.store.journal_unfinished_run(self.kind, RUN_KIND).await {
            Ok(Some(run)) => {
                info!(run_id = %run.run_id, "resuming an unfinished sidecar run");
                match self
                    .writer
                    .resume(&RunId::new(run.run_id.clone()), &NoProgress)
                    .await
                {
                    Ok(report) => self.count(&report),
                    Err(err) => {
                        let error = crate::mirror::error_chain(&err);
                        warn!(run_id = %run.run_id, error = %error, "resuming a sidecar run failed");
                        self.status
                            .error(self.clock.now(), format!("resume: {error}"));
                    }
                }
            }
            Ok(None) => {}
            Err(err) => warn!(error = %err, "looking for unfinished sidecar runs failed"),
        }
    }

    async fn flush(&self, batch: Batch, n: u64) {
        let now = self.clock.now();
        let mut seen: HashMap<Key, Instant> = HashMap::new();
        let mut changes = Vec::with_capacity(batch.changes.len());
        for (key, (change, first)) in batch.changes {
            if let Some(first) = first {
                seen.insert(key, first);
            }
            changes.push(change);
        }
        let plan = Plan {
            policy_version: batch.policy_version,
            created_at: now,
            crm: self.kind,
            changes,
            exceptions: batch.exceptions,
        };
        let run = RunId::new(format!("{}-s{n}", RunId::generate(now)));
        if let Err(err) = self.commit(&plan, batch.ledger, &run).await {
            let error = format!("{err:#}");
            warn!(run_id = %run, error = %error, "a sidecar batch was not written");
            self.status.error(now, format!("write: {error}"));
            return;
        }
        self.observe(&run, &seen).await;
        self.refresh_gauges().await;
    }

    /// Saves the ledger, queues the exceptions and applies the changes as one run.
    ///
    /// The same steps as `service::commit::commit_plan` (issue 9), which replaces this
    /// at merge.
    async fn commit(
        &self,
        plan: &Plan,
        ledger: Option<Ledger>,
        run: &RunId,
    ) -> anyhow::Result<Option<ApplyReport>> {
        if let Some(mut ledger) = ledger {
            self.store.save_ledger(self.kind, &mut ledger).await?;
        }
        self.writer.queue_plan_exceptions(plan, run).await?;
        if plan.changes.is_empty() {
            return Ok(None);
        }
        let spec = RunSpec {
            id: run.clone(),
            kind: RUN_KIND.to_owned(),
            parent: None,
        };
        let report = self.writer.apply_run(plan, &spec, &NoProgress).await?;
        self.count(&report);
        info!(
            run_id = %run,
            applied = report.applied,
            unchanged = report.unchanged,
            skipped = report.skipped_changed,
            rejected = report.rejected,
            failed = report.failed,
            "sidecar batch written"
        );
        Ok(Some(report))
    }

    fn count(&self, report: &ApplyReport) {
        let m = &self.metrics;
        for (outcome, n) in [
            ("applied", report.applied),
            ("unchanged", report.unchanged),
            ("skipped_changed", report.skipped_changed),
            ("rejected", report.rejected),
            ("failed", report.failed),
        ] {
            Metrics::add(&m.writes, &[("outcome", outcome)], n);
        }
        let failures = report.call_failures;
        Metrics::add(
            &m.crm_calls,
            &[("kind", "write"), ("status", "ok")],
            report.write_calls.saturating_sub(failures),
        );
        Metrics::add(
            &m.crm_calls,
            &[("kind", "write"), ("status", "error")],
            failures,
        );
        Metrics::add(
            &m.crm_calls,
            &[("kind", "read"), ("status", "ok")],
            report.read_calls,
        );
        if let Some(remaining) = report.usage.window_remaining {
            m.crm_rate_limit_remaining
                .set(i64::try_from(remaining).unwrap_or(i64::MAX));
        }
        let now = self.clock.now();
        self.status.update(|s| {
            s.written = s.written.saturating_add(report.applied);
            s.last_write_at = Some(now);
        });
    }

    /// Speed-to-lead: first seen → write acknowledged, for each change applied.
    async fn observe(&self, run: &RunId, seen: &HashMap<Key, Instant>) {
        if seen.is_empty() {
            return;
        }
        let acknowledged = Instant::now();
        match self.store.journal_entries(run.as_str()).await {
            Ok(entries) => {
                for entry in entries {
                    if entry.outcome.as_deref() != Some("applied") {
                        continue;
                    }
                    if let Some(first) = seen.get(&(entry.object, entry.id.clone())) {
                        let secs = acknowledged.saturating_duration_since(*first).as_secs_f64();
                        self.metrics.speed_to_lead.observe(secs);
                    }
                }
            }
            Err(err) => warn!(error = %err, "reading the run's outcomes for speed-to-lead failed"),
        }
    }

    async fn refresh_gauges(&self) {
        if let Ok(open) = self.store.exceptions(Some("open")).await {
            self.metrics
                .exceptions_open
                .set(i64::try_from(open.len()).unwrap_or(i64::MAX));
        }
    }
}
