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

use leadroute_crm::Crm;

use crate::domain::OrgRef;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
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
    pub(crate) org: OrgRef,
    pub(crate) rx: mpsc::Receiver<Decided>,
    pub(crate) linger: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) status: Arc<Status>,
    /// The service's token: the writer stops after its in-flight batch when it fires.
    pub(crate) cancel: CancellationToken,
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
    /// Adds a later batch (a retried batch meets newer decisions).
    fn merge(&mut self, later: Batch) {
        for (key, (change, seen)) in later.changes {
            let seen = match self.changes.get(&key) {
                Some((_, Some(earlier))) => Some(*earlier),
                _ => seen,
            };
            self.changes.insert(key, (change, seen));
        }
        self.exceptions.extend(later.exceptions);
        if let Some(delta) = later.ledger {
            self.absorb(delta);
            self.policy_version = later.policy_version;
        }
    }

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
        self.absorb(decided.ledger);
        self.policy_version = decided.policy_version;
    }

    /// Joins a ledger delta to the one waiting to be saved.
    fn absorb(&mut self, delta: Ledger) {
        match self.ledger.as_mut() {
            Some(ledger) => ledger.absorb(delta),
            None => self.ledger = Some(delta),
        }
    }
}

/// With `first` in hand, collects more until the batch holds `max` changes or `linger`
/// has passed. Also says whether the input closed while collecting.
async fn fill(
    rx: &mut mpsc::Receiver<Decided>,
    first: Decided,
    linger: Duration,
    max: usize,
) -> (Batch, bool) {
    let mut batch = Batch::default();
    batch.add(first);
    let deadline = Instant::now() + linger;
    while batch.changes.len() < max {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(decided) => batch.add(decided),
                None => return (batch, true),
            },
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    (batch, false)
}

/// The first retry of work that could not be written, and the longest pause.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Work waiting for the CRM or the store to come back.
#[derive(Default)]
struct Retry {
    /// A batch whose run could not be started (the store failed before journaling).
    held: Option<Batch>,
    /// Some run of ours stopped unfinished (breaker, retries exhausted, quota).
    unfinished: bool,
    at: Option<Instant>,
    pause: Duration,
}

impl Retry {
    fn schedule(&mut self) {
        self.pause = (self.pause * 2).clamp(RETRY_MIN, RETRY_MAX);
        self.at = Some(Instant::now() + self.pause);
    }

    fn succeeded(&mut self) {
        if self.held.is_none() && !self.unfinished {
            self.pause = Duration::ZERO;
            self.at = None;
        }
    }
}

/// How one flush ended.
enum Flushed {
    Done,
    /// The run stopped with changes pending (journaled; resumable).
    Unfinished,
    /// Nothing was journaled: the batch comes back for a retry.
    NotStarted(Batch),
}

impl<C: Crm> Write<C> {
    pub(crate) async fn run(mut self) {
        let mut retry = Retry {
            unfinished: true,
            ..Retry::default()
        };
        self.retry(&mut retry).await;
        self.refresh_gauges().await;
        let max = self.writer.crm().write_limits().max_batch.max(1);
        let mut runs = 0u64;
        loop {
            let first = match retry.at {
                Some(at) => tokio::select! {
                    msg = self.rx.recv() => msg,
                    () = tokio::time::sleep_until(at) => {
                        self.retry(&mut retry).await;
                        continue;
                    }
                },
                None => self.rx.recv().await,
            };
            let Some(first) = first else {
                return;
            };
            let (batch, closed) = fill(&mut self.rx, first, self.linger, max).await;
            if self.cancel.is_cancelled() {
                // Shutting down: no new run is started. The mirror holds these records;
                // the next start's full pass decides them again.
                info!(
                    changes = batch.changes.len(),
                    "shutting down: leaving undispatched decisions to the next start"
                );
            } else {
                runs += 1;
                match self.flush(batch, runs).await {
                    Flushed::Done => retry.succeeded(),
                    Flushed::Unfinished => {
                        retry.unfinished = true;
                        retry.schedule();
                    }
                    Flushed::NotStarted(batch) => {
                        match &mut retry.held {
                            Some(held) => held.merge(batch),
                            None => retry.held = Some(batch),
                        }
                        retry.schedule();
                    }
                }
            }
            if closed {
                return;
            }
        }
    }

    /// Retries a held batch and resumes unfinished runs; schedules the next attempt if
    /// anything is still left.
    async fn retry(&self, retry: &mut Retry) {
        retry.at = None;
        if self.cancel.is_cancelled() {
            return;
        }
        if let Some(batch) = retry.held.take() {
            info!(
                changes = batch.changes.len(),
                "retrying a batch that could not be written"
            );
            match self.flush(batch, 0).await {
                Flushed::Done => {}
                Flushed::Unfinished => retry.unfinished = true,
                Flushed::NotStarted(batch) => retry.held = Some(batch),
            }
        }
        if retry.unfinished {
            retry.unfinished = !self.resume_unfinished().await;
        }
        if retry.held.is_some() || retry.unfinished {
            retry.schedule();
        } else {
            retry.succeeded();
        }
    }

    /// Finishes sidecar runs left unfinished (by a stop after the in-flight batch, a
    /// kill, or a CRM outage), newest first; true when none is left.
    async fn resume_unfinished(&self) -> bool {
        let mut seen = std::collections::HashSet::new();
        loop {
            if self.cancel.is_cancelled() {
                return false;
            }
            let run = match self
                .store
                .journal_unfinished_run(&self.org.name, RUN_KIND)
                .await
            {
                Ok(Some(run)) => run,
                Ok(None) => return true,
                Err(err) => {
                    warn!(error = %err, "looking for unfinished sidecar runs failed");
                    return false;
                }
            };
            if !seen.insert(run.run_id.clone()) {
                // It did not finish on this attempt; the writer said why.
                return false;
            }
            info!(run_id = %run.run_id, "resuming an unfinished sidecar run");
            match self
                .writer
                .resume(&RunId::new(run.run_id.clone()), &NoProgress)
                .await
            {
                Ok(report) => {
                    self.count(&report);
                    if !report.is_complete() {
                        return false;
                    }
                }
                Err(err) => {
                    let error = crate::mirror::error_chain(&err);
                    warn!(run_id = %run.run_id, error = %error, "resuming a sidecar run failed");
                    self.status
                        .error(self.clock.now(), format!("resume: {error}"));
                    return false;
                }
            }
        }
    }

    async fn flush(&self, batch: Batch, n: u64) -> Flushed {
        let now = self.clock.now();
        let seen: HashMap<Key, Instant> = batch
            .changes
            .iter()
            .filter_map(|(key, (_, first))| first.map(|first| (key.clone(), first)))
            .collect();
        let plan = Plan {
            policy_version: batch.policy_version.clone(),
            created_at: now,
            crm: self.org.kind,
            changes: batch.changes.values().map(|(c, _)| c.clone()).collect(),
            exceptions: batch.exceptions.clone(),
        };
        // A deposed leader saves no ledger and queues no exceptions either (the writer's
        // fence refuses its CRM calls): the batch waits until the term ends.
        if let Some(fence) = self.writer.fence() {
            match self
                .store
                .lease_is_current(&fence.name, &fence.holder, fence.epoch)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    warn!(lease = %fence.name, epoch = fence.epoch, "no longer leading: this batch is left to the new leader");
                    return Flushed::NotStarted(batch);
                }
                Err(err) => {
                    warn!(lease = %fence.name, error = %err, "cannot confirm the lease; the batch waits");
                    self.status.error(now, format!("lease: {err}"));
                    return Flushed::NotStarted(batch);
                }
            }
        }
        let run = RunId::new(format!("{}-s{n}", RunId::generate(now)));
        match self.commit(&plan, batch.ledger.clone(), &run).await {
            Ok(report) => {
                self.observe(&run, &seen).await;
                self.refresh_gauges().await;
                match report {
                    Some(report) if !report.is_complete() => Flushed::Unfinished,
                    _ => Flushed::Done,
                }
            }
            Err(err) => {
                let error = format!("{err:#}");
                warn!(run_id = %run, error = %error, "a sidecar batch was not written; retrying");
                self.status.error(now, format!("write: {error}"));
                // Journaled runs are resumed; anything else is tried again as it is.
                let journaled = matches!(self.store.journal_run(run.as_str()).await, Ok(Some(_)));
                if journaled {
                    Flushed::Unfinished
                } else {
                    Flushed::NotStarted(batch)
                }
            }
        }
    }

    /// Saves the ledger, queues the exceptions and applies the changes as one run: the
    /// one commit path the CLI shares (`service::commit::commit_plan`).
    async fn commit(
        &self,
        plan: &Plan,
        ledger: Option<Ledger>,
        run: &RunId,
    ) -> anyhow::Result<Option<ApplyReport>> {
        let mut ledger = ledger;
        let spec = RunSpec {
            id: run.clone(),
            kind: RUN_KIND.to_owned(),
            parent: None,
        };
        let committed =
            super::commit::commit_plan(&self.writer, plan, ledger.as_mut(), &spec, &NoProgress)
                .await?;
        let Some(report) = committed.report else {
            return Ok(None);
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ObjectKind, OwnerId, RecordId};

    fn decided(ids: std::ops::Range<u32>) -> Decided {
        Decided {
            changes: ids
                .map(|i| {
                    let change = PlannedChange {
                        object: ObjectKind::Contact,
                        id: RecordId::new(i.to_string()),
                        field: "owner".into(),
                        from: None,
                        to: OwnerId::new("7"),
                        rule: "r".into(),
                        reason: "why".into(),
                        policy_version: "v".into(),
                        record_updated_at: None,
                    };
                    (change, Some(Instant::now()))
                })
                .collect(),
            exceptions: Vec::new(),
            ledger: Ledger::default(),
            policy_version: "v".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_is_flushed_after_the_linger() {
        let (_tx, mut rx) = mpsc::channel(4);
        let started = Instant::now();
        let (batch, closed) = fill(&mut rx, decided(0..1), Duration::from_millis(200), 100).await;
        assert_eq!(batch.changes.len(), 1);
        assert!(!closed);
        assert_eq!(started.elapsed(), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_is_flushed_without_waiting() {
        let (tx, mut rx) = mpsc::channel(4);
        tx.send(decided(60..130)).await.unwrap();
        let started = Instant::now();
        let (batch, _) = fill(&mut rx, decided(0..60), Duration::from_secs(5), 100).await;
        assert_eq!(batch.changes.len(), 130);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_input_flushes_what_it_holds_at_once() {
        let (tx, mut rx) = mpsc::channel(4);
        drop(tx);
        let started = Instant::now();
        let (batch, closed) = fill(&mut rx, decided(0..3), Duration::from_secs(5), 100).await;
        assert_eq!((batch.changes.len(), closed), (3, true));
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_back_off_from_a_second_to_a_minute_and_reset_on_success() {
        let mut retry = Retry::default();
        let start = Instant::now();
        retry.schedule();
        assert_eq!(retry.at, Some(start + Duration::from_secs(1)));
        for _ in 0..10 {
            retry.schedule();
        }
        assert_eq!(retry.pause, Duration::from_secs(60));
        retry.succeeded();
        assert_eq!((retry.at, retry.pause), (None, Duration::ZERO));
    }
}
