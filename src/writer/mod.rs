//! Plan -> CRM writes: batching, compare-before-write, per-record recovery, retries,
//! the circuit breaker, and the write-ahead journal.
//!
//! Invariants this module keeps:
//! - Every change of a run is journaled (as `planned`) before any write, and gets
//!   exactly one outcome.
//! - No change is sent without an `intent` row committed first; an intent without an
//!   outcome (a crash, a lost response) is resolved by reading the CRM, never by a
//!   blind resend.
//! - Nothing is sent unless a read taken just before the write shows the plan's `from`;
//!   a record already holding `to` is never written (zero no-op writes).
//! - A bad record never fails its batch; a failing CRM stops the run resumably.
//! - One process drives a run at a time: `resume` holds the run's lease (`lease.rs`)
//!   from before the first read until the run's status is written.

mod breaker;
mod bulk;
pub(crate) mod lease;
mod ops;
mod progress;
mod report;
mod summary;

#[cfg(test)]
mod tests;

pub use breaker::{BreakerState, CircuitBreaker};
pub use ops::{LeftAlone, LeftReason, OpsError, RollbackReport};
pub use progress::{BarProgress, NoProgress, Progress, ProgressUpdate};
pub use report::{ApplyReport, Replan, Stop, StopReason, WindowStats};
pub use summary::{PlanSummary, rate_from_usage, summarize};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use leadroute_crm::{
    BulkJobState, Crm, CrmError, CurrentOwner, ErrorKind, ObjectKind, OwnerChange, OwnerId,
    RecordId, Recovery, WriteOutcome,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::reconcile::Plan;
use crate::store::{
    BatchIntent, JournalEntry, JournalError, JournalOutcome, JournalStep, NewException, NewRun,
    RunStatus, Store,
};

/// A run's id: `r` + UTC timestamp, sortable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId(pub String);

impl RunId {
    pub fn new(id: impl Into<String>) -> Self {
        RunId(id.into())
    }

    /// A fresh id from the clock (millisecond resolution plus the process id, so two
    /// processes starting at once do not collide).
    pub fn generate(now: DateTime<Utc>) -> Self {
        RunId(format!(
            "r{}-{}",
            now.format("%Y%m%dT%H%M%S%3fZ"),
            std::process::id()
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of run this is (journaled; `backfill` resumes look for unfinished ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub id: RunId,
    /// `apply`, `backfill`, `rollback`, `exception`.
    pub kind: String,
    /// For a rollback: the run it reverts.
    pub parent: Option<String>,
}

/// Writer tuning. Defaults suit both CRMs; the connectors own the rate limits.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterSettings {
    /// Salesforce strict mode: every write carries `if_unmodified_since` (ignored where
    /// the connector cannot do conditional writes).
    pub strict: bool,
    /// Caps the batch below the CRM's maximum (never above it).
    pub max_batch: Option<usize>,
    /// Attempts per record for retryable rejections (locked row, rolled back).
    pub record_attempts: u32,
    /// Backoff between attempts (records and whole calls).
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Retries of one read call on retryable errors, and consecutive failed write
    /// calls tolerated before the run stops resumably.
    pub call_retries: usize,
    /// Consecutive server failures that open the circuit breaker.
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
    /// Consecutive breaker trips (no success between) after which the run stops.
    pub breaker_max_trips: u32,
    /// Extra compare reads to refill a batch whose records were skipped, so write calls
    /// stay at the minimum.
    pub top_up_rounds: usize,
    /// Read the next batch's current owners while the current batch is written, so
    /// call latency overlaps instead of adding up. Off: strictly one call at a time.
    pub pipeline: bool,
    /// How long a run's lease lasts without renewal: how long a run whose process died
    /// on another machine stays blocked (a dead process on this machine is replaced at
    /// once).
    pub lease_ttl: Duration,
    /// How often a running writer renews its lease (well under `lease_ttl`).
    pub lease_renew: Duration,
    /// Use the CRM's bulk path (Salesforce Bulk API 2.0) for large queues, where the CRM
    /// has one. Never used in strict mode (bulk writes cannot be conditional).
    pub bulk: bool,
    /// Queue size from which one object's changes go through the bulk path; `None`:
    /// the CRM's own ([`leadroute_crm::WriteLimits::bulk_threshold`]).
    pub bulk_threshold: Option<usize>,
    /// Records per bulk job: the unit that is compare-read, journaled as one intent
    /// and sent as one job.
    pub bulk_job_size: usize,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            strict: false,
            max_batch: None,
            record_attempts: 5,
            retry_min: Duration::from_millis(250),
            retry_max: Duration::from_secs(30),
            call_retries: 8,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(30),
            breaker_max_trips: 3,
            top_up_rounds: 2,
            pipeline: true,
            lease_ttl: Duration::from_secs(30),
            lease_renew: Duration::from_secs(10),
            bulk: true,
            bulk_threshold: None,
            bulk_job_size: 10_000,
        }
    }
}

/// Failures of the writer itself (the CRM's failures become [`Stop`]s in the report).
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("the journal could not be written; nothing further was sent to the CRM")]
    Journal(#[from] JournalError),
    #[error("run {run} belongs to {journaled}, but this writer talks to {current}")]
    WrongCrm {
        run: String,
        journaled: String,
        current: String,
    },
    #[error("the plan is for {plan}, but this writer talks to {current}")]
    PlanForOtherCrm { plan: String, current: String },
    #[error("run {0} is not in the journal")]
    UnknownRun(String),
    #[error(
        "run {run} is being driven by {holder} (since {since}; its lease runs until {expires} \
         and is renewed while it works); nothing was sent. Wait for that process to finish \
         or stop it; if it died on another machine, run the same command again after {expires}"
    )]
    LeaseHeld {
        run: String,
        holder: String,
        since: String,
        expires: String,
    },
    #[error(
        "{why}; this writer stopped after its in-flight batch and left the run to the \
         other process (check `leadroute apply --resume {run}` later if it does not finish)"
    )]
    LeaseLost { run: String, why: String },
}

/// A change in flight inside one writer session.
#[derive(Debug, Clone)]
struct Item {
    seq: i64,
    id: RecordId,
    from: Option<OwnerId>,
    to: OwnerId,
    record_updated_at: Option<DateTime<Utc>>,
    /// Whether an apply call ever carried it (decides applied vs unchanged).
    sent: bool,
    /// Retryable rejections so far.
    attempts: u32,
    not_before: Option<Instant>,
    rule: String,
    reason: String,
    before_for_exception: Option<OwnerId>,
}

impl Item {
    fn from_entry(entry: &JournalEntry) -> Self {
        Item {
            seq: entry.seq,
            id: entry.id.clone(),
            from: entry.before.clone(),
            to: entry.after.clone(),
            record_updated_at: entry.record_updated_at,
            sent: entry.sent,
            attempts: 0,
            not_before: None,
            rule: entry.rule.clone(),
            reason: entry.reason.clone(),
            before_for_exception: entry.before.clone(),
        }
    }
}

/// What the compare read says about one item.
enum Verdict {
    Ready(Option<DateTime<Utc>>),
    Final(JournalOutcome),
}

/// How a whole-call failure ends the current step.
enum Flow {
    Continue,
    Stop(Stop),
}

/// Counters for one session.
#[derive(Debug, Default)]
struct Tally {
    write_calls: AtomicU64,
    read_calls: AtomicU64,
    call_failures: AtomicU64,
    retries: AtomicU64,
    records_sent: AtomicU64,
    bulk_jobs: AtomicU64,
}

/// Converges a CRM to a plan. Generic over the connector; one writer per CRM org.
pub struct Writer<C: Crm> {
    crm: Arc<C>,
    store: Store,
    settings: WriterSettings,
    breaker: CircuitBreaker,
    cancel: CancellationToken,
    /// Set when a run's lease is lost: no further CRM call is made (see `guarded`).
    lease_lost: Arc<AtomicBool>,
    /// The org lease this writer writes under (the sidecar's hot standby), if any.
    fence: Option<Fence>,
}

/// A fencing token: the named lease (holder and epoch) a writer's process held when it
/// was made. Before each batch's write call the writer checks that it is still
/// current (`Store::lease_is_current`); when not, the batch is refused (no CRM call, its
/// changes stay pending and resumable) and the run stops with [`StopReason::Fenced`].
/// The epoch is journaled with each batch (`writer_batches.lease_epoch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub name: String,
    pub holder: String,
    pub epoch: i64,
}

impl<C: Crm> Writer<C> {
    pub fn new(crm: Arc<C>, store: Store, settings: WriterSettings) -> Self {
        let breaker = CircuitBreaker::new(settings.breaker_threshold, settings.breaker_cooldown);
        Writer {
            crm,
            store,
            settings,
            breaker,
            cancel: CancellationToken::new(),
            lease_lost: Arc::new(AtomicBool::new(false)),
            fence: None,
        }
    }

    /// Writes only while `fence` is current (see [`Fence`]).
    pub fn with_fence(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }

    /// A stop when the fence is no longer current (or cannot be confirmed), before a
    /// write call; `None` without a fence.
    async fn fenced(&self) -> Option<Stop> {
        let fence = self.fence.as_ref()?;
        let why = match self
            .store
            .lease_is_current(&fence.name, &fence.holder, fence.epoch)
            .await
        {
            Ok(true) => return None,
            Ok(false) => format!(
                "lease {} epoch {} is no longer held by this process; another process leads \
                 and resumes this run",
                fence.name, fence.epoch
            ),
            Err(err) => format!(
                "lease {} could not be confirmed ({err}); no write is made without it",
                fence.name
            ),
        };
        warn!(lease = %fence.name, epoch = fence.epoch, why = %why, "write refused by the fence");
        Some(Stop {
            reason: StopReason::Fenced,
            message: why,
            resume_at: None,
        })
    }

    /// Stop between batches when `cancel` fires (the in-flight batch completes and is
    /// journaled first). The writer keeps a child of `cancel`: losing a run's lease
    /// stops this writer for good without cancelling the caller's token.
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel.child_token();
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn crm(&self) -> &Arc<C> {
        &self.crm
    }

    fn batch_size(&self) -> usize {
        let max = self.crm.write_limits().max_batch.max(1);
        self.settings.max_batch.map_or(max, |cap| cap.clamp(1, max))
    }

    fn read_batch_size(&self) -> usize {
        self.crm.write_limits().max_read_batch.max(1)
    }

    /// Write calls and compare reads a plan of `changes` (of one object) costs at best.
    /// Through the bulk path, write calls are the jobs' HTTP calls.
    pub fn minimum_calls(&self, changes: usize) -> (u64, u64) {
        if let Some(cost) = self.bulk_minimum_calls(changes) {
            return cost;
        }
        let writes = changes.div_ceil(self.batch_size()) as u64;
        let read_chunk = self.batch_size().min(self.read_batch_size());
        let reads = changes.div_ceil(read_chunk) as u64;
        (writes, reads)
    }

    /// Applies `plan` as an `apply` run. If `run` is already journaled, resumes it
    /// instead (the plan's changes are then taken from the journal).
    pub async fn apply(
        &self,
        plan: &Plan,
        run: RunId,
        progress: &dyn Progress,
    ) -> Result<ApplyReport, WriterError> {
        let spec = RunSpec {
            id: run,
            kind: "apply".to_owned(),
            parent: None,
        };
        self.apply_run(plan, &spec, progress).await
    }

    /// Journals `plan` as a new run of `spec.kind` (or resumes `spec.id` if it exists)
    /// and converges it.
    pub async fn apply_run(
        &self,
        plan: &Plan,
        spec: &RunSpec,
        progress: &dyn Progress,
    ) -> Result<ApplyReport, WriterError> {
        if plan.crm != self.crm.kind() {
            return Err(WriterError::PlanForOtherCrm {
                plan: plan.crm.to_string(),
                current: self.crm.kind().to_string(),
            });
        }
        if self.store.journal_run(spec.id.as_str()).await?.is_none() {
            let run = NewRun {
                run_id: spec.id.as_str(),
                crm: plan.crm,
                kind: &spec.kind,
                parent_run: spec.parent.as_deref(),
                policy_version: &plan.policy_version,
            };
            match self
                .store
                .journal_create_run(&run, &plan.changes, Utc::now())
                .await
            {
                Ok(()) => {
                    info!(run_id = %spec.id, changes = plan.changes.len(), "run journaled")
                }
                // Another process journaled the same run id first: resume it (its lease
                // decides who drives it).
                Err(_) if self.store.journal_run(spec.id.as_str()).await?.is_some() => {}
                Err(err) => return Err(err.into()),
            }
        }
        self.resume(&spec.id, progress).await
    }

    /// Continues a journaled run: takes the run's lease (refusing with
    /// [`WriterError::LeaseHeld`] while another process drives it), resolves in-flight
    /// intents by reading the CRM, then sends what is still pending.
    pub async fn resume(
        &self,
        run: &RunId,
        progress: &dyn Progress,
    ) -> Result<ApplyReport, WriterError> {
        let started = Instant::now();
        let row = self
            .store
            .journal_run(run.as_str())
            .await?
            .ok_or_else(|| WriterError::UnknownRun(run.0.clone()))?;
        if row.crm != self.crm.kind() {
            return Err(WriterError::WrongCrm {
                run: run.0.clone(),
                journaled: row.crm.to_string(),
                current: self.crm.kind().to_string(),
            });
        }
        if self.lease_lost.load(Ordering::SeqCst) {
            return Err(WriterError::LeaseLost {
                run: run.0.clone(),
                why: "this writer lost a run's lease earlier and makes no more calls".to_owned(),
            });
        }
        let lease = lease::RunLeaseGuard::acquire(
            &self.store,
            run.as_str(),
            self.settings.lease_ttl,
            self.settings.lease_renew,
            self.cancel.clone(),
            self.lease_lost.clone(),
        )
        .await?;
        let report = self
            .resume_leased(run, row.total, progress, started, &lease)
            .await;
        if let Some(why) = lease.lost() {
            return Err(WriterError::LeaseLost {
                run: run.0.clone(),
                why,
            });
        }
        lease.release().await?;
        report
    }

    /// `resume` once the lease is held.
    async fn resume_leased(
        &self,
        run: &RunId,
        total: i64,
        progress: &dyn Progress,
        started: Instant,
        lease: &lease::RunLeaseGuard,
    ) -> Result<ApplyReport, WriterError> {
        self.store
            .journal_set_run_status(run.as_str(), RunStatus::Running, None, None, Utc::now())
            .await?;
        let mut session = Session {
            writer: self,
            run,
            progress,
            tally: Tally::default(),
            race: Vec::new(),
            replan: Vec::new(),
            exceptions: 0,
            started,
            done_at_start: 0,
            done: 0,
            total: total.max(0) as u64,
            pending: Settlement::default(),
            next_batch: None,
        };
        let counts = self.store.journal_counts(run.as_str()).await?;
        session.done_at_start = counts.done();
        session.done = counts.done();
        progress.start(session.total, session.done);

        let open = self.store.journal_open_entries(run.as_str()).await?;
        let mut stop = None;
        // Group by object: a batch holds one object kind.
        let mut by_object: BTreeMap<ObjectKind, (Vec<Item>, Vec<Item>)> = BTreeMap::new();
        for entry in &open {
            let slot = by_object.entry(entry.object).or_default();
            if entry.state == "intent" {
                slot.0.push(Item::from_entry(entry));
            } else {
                slot.1.push(Item::from_entry(entry));
            }
        }
        for (object, (in_flight, planned)) in by_object {
            let mut queue: VecDeque<Item> = VecDeque::new();
            if !in_flight.is_empty() {
                match session.recover(object, in_flight).await? {
                    Ok(pending) => queue.extend(pending),
                    Err(s) => {
                        stop = Some(s);
                        break;
                    }
                }
            }
            queue.extend(planned);
            if let Some(s) = session.converge_any(object, queue).await? {
                stop = Some(s);
                break;
            }
        }

        if let Some(why) = lease.lost() {
            // The run is another process's now: leave its status alone.
            progress.finish();
            return Err(WriterError::LeaseLost {
                run: run.0.clone(),
                why,
            });
        }
        let counts = self.store.journal_counts(run.as_str()).await?;
        let now = Utc::now();
        match &stop {
            None => {
                self.store
                    .journal_set_run_status(run.as_str(), RunStatus::Completed, None, None, now)
                    .await?
            }
            Some(s) => {
                let status = match s.reason {
                    StopReason::Cancelled => RunStatus::Cancelled,
                    StopReason::Operator => RunStatus::Failed,
                    _ => RunStatus::Paused,
                };
                self.store
                    .journal_set_run_status(
                        run.as_str(),
                        status,
                        Some(&s.message),
                        s.resume_at,
                        now,
                    )
                    .await?
            }
        }
        progress.finish();
        let tally = &session.tally;
        Ok(ApplyReport {
            run_id: run.0.clone(),
            total: counts.total,
            applied: counts.applied,
            unchanged: counts.unchanged,
            skipped_changed: counts.skipped_changed,
            rejected: counts.rejected,
            failed: counts.failed,
            pending: counts.pending,
            exceptions: session.exceptions,
            replan: std::mem::take(&mut session.replan),
            write_calls: tally.write_calls.load(Ordering::Relaxed),
            read_calls: tally.read_calls.load(Ordering::Relaxed),
            call_failures: tally.call_failures.load(Ordering::Relaxed),
            retries: tally.retries.load(Ordering::Relaxed),
            records_sent: tally.records_sent.load(Ordering::Relaxed),
            bulk_jobs: tally.bulk_jobs.load(Ordering::Relaxed),
            race_window: WindowStats::from_samples(&session.race),
            conditional_writes: self.conditional(),
            usage: self.crm.usage(),
            elapsed: started.elapsed(),
            stopped: stop,
        })
    }

    fn conditional(&self) -> bool {
        self.settings.strict && self.crm.write_limits().conditional_writes
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(16));
        self.settings
            .retry_min
            .saturating_mul(factor)
            .min(self.settings.retry_max)
    }

    /// Runs one CRM call through the circuit breaker.
    async fn guarded<T>(
        &self,
        call: impl Future<Output = Result<T, CrmError>>,
    ) -> Result<T, CrmError> {
        if self.lease_lost.load(Ordering::SeqCst) {
            // Fenced: another process drives the run now. The call never reaches the
            // CRM; the run stops and `resume` reports the lost lease instead.
            return Err(CrmError::new(
                ErrorKind::Forbidden,
                "this process lost the run's lease; another process drives the run now",
            ));
        }
        if let BreakerState::Open(left) = self.breaker.state() {
            return Err(CrmError::new(
                ErrorKind::CircuitOpen,
                format!(
                    "circuit breaker open after repeated CRM failures; next probe in {:.0} s",
                    left.as_secs_f64().ceil()
                ),
            )
            .with_retry_after(left));
        }
        match call.await {
            Ok(value) => {
                self.breaker.on_success();
                Ok(value)
            }
            Err(err) => {
                self.breaker.on_failure(err.kind);
                Err(err)
            }
        }
    }

    /// Sleeps unless cancelled; returns false when cancelled.
    async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = self.cancel.cancelled() => false,
        }
    }
}

/// A compare read made ahead of time: the ids, what came back, and when.
type Prefetched = (
    Vec<RecordId>,
    Result<HashMap<RecordId, CurrentOwner>, CrmError>,
    Instant,
);

/// One `resume` call's mutable state.
struct Session<'a, C: Crm> {
    writer: &'a Writer<C>,
    run: &'a RunId,
    progress: &'a dyn Progress,
    tally: Tally,
    race: Vec<Duration>,
    replan: Vec<Replan>,
    exceptions: u64,
    started: Instant,
    done_at_start: u64,
    done: u64,
    total: u64,
    /// The last call's bookkeeping, committed with the next intent (one transaction
    /// per batch) or by [`Session::flush`].
    pending: Settlement,
    /// The next batch id of this run, once read from the journal.
    next_batch: Option<i64>,
}

/// A finished call's journal writes that have not been committed yet.
#[derive(Default)]
struct Settlement {
    batch_result: Option<(i64, String)>,
    outcomes: Vec<(i64, JournalOutcome)>,
    requeue: Vec<(i64, String)>,
    exceptions: Vec<NewException>,
}

impl<C: Crm> Session<'_, C> {
    /// Commits the held-back bookkeeping plus `outcomes` and, last, `intent`, in one
    /// transaction; then files any exceptions. The intent is thereby committed
    /// before the call it announces, as before; only the previous call's outcomes
    /// wait until then (a crash in between leaves an intent without outcome, which a
    /// restart settles by reading the CRM).
    async fn journal(
        &mut self,
        outcomes: Vec<(i64, JournalOutcome)>,
        intent: Option<BatchIntent<'_>>,
    ) -> Result<(), WriterError> {
        let mut pending = std::mem::take(&mut self.pending);
        pending.outcomes.extend(outcomes);
        let store = &self.writer.store;
        let now = Utc::now();
        store
            .journal_step(
                self.run.as_str(),
                JournalStep {
                    batch_result: pending
                        .batch_result
                        .as_ref()
                        .map(|(id, result)| (*id, result.as_str())),
                    outcomes: &pending.outcomes,
                    requeue: &pending.requeue,
                    intent,
                },
                now,
            )
            .await?;
        for exception in &pending.exceptions {
            store.exception_add(exception, now).await?;
            self.exceptions += 1;
        }
        Ok(())
    }

    /// Commits whatever is held back.
    async fn flush(&mut self) -> Result<(), WriterError> {
        self.journal(Vec::new(), None).await
    }

    async fn next_batch_id(&mut self) -> Result<i64, WriterError> {
        let id = match self.next_batch {
            Some(id) => id,
            None => {
                self.writer
                    .store
                    .journal_next_batch_id(self.run.as_str())
                    .await?
            }
        };
        self.next_batch = Some(id + 1);
        Ok(id)
    }

    fn report_progress(&self) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let finished = self.done.saturating_sub(self.done_at_start);
        let rate = if elapsed > 0.0 {
            finished as f64 / elapsed
        } else {
            0.0
        };
        let left = self.total.saturating_sub(self.done);
        let eta = (rate > 0.0).then(|| Duration::from_secs_f64(left as f64 / rate));
        self.progress.update(&ProgressUpdate {
            done: self.done,
            total: self.total,
            rate_per_sec: rate,
            eta,
            usage: self.writer.crm.usage(),
        });
    }

    /// Reads current owners with retries on retryable errors, honouring `retry_after`.
    async fn read_owners(
        &self,
        object: ObjectKind,
        ids: &[RecordId],
    ) -> Result<HashMap<RecordId, CurrentOwner>, CrmError> {
        let writer = self.writer;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(writer.settings.retry_min)
            .with_max_delay(writer.settings.retry_max)
            .with_max_times(writer.settings.call_retries)
            .with_jitter();
        let owners = (|| async {
            self.tally.read_calls.fetch_add(1, Ordering::Relaxed);
            writer
                .guarded(writer.crm.current_owners(object, ids))
                .await
        })
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|err: &CrmError| err.is_retryable())
        .adjust(|err: &CrmError, next: Option<Duration>| {
            next.map(|d| err.retry_after.map_or(d, |after| after.max(d)))
        })
        .notify(|err: &CrmError, wait: Duration| {
            self.tally.call_failures.fetch_add(1, Ordering::Relaxed);
            self.tally.retries.fetch_add(1, Ordering::Relaxed);
            debug!(error = %err, wait_ms = wait.as_millis() as u64, "compare read failed; retrying");
            warn!("compare read failed ({err}); retrying in {:.1} s", wait.as_secs_f64());
        })
        .await?;
        Ok(owners.into_iter().map(|o| (o.id.clone(), o)).collect())
    }

    /// Decides an item from what the CRM holds now.
    fn judge(item: &Item, current: Option<&CurrentOwner>) -> Verdict {
        let Some(current) = current else {
            return Verdict::Final(JournalOutcome::Rejected {
                kind: leadroute_crm::RejectKind::NotFound,
                code: "not_found".to_owned(),
                message: "record no longer exists in the CRM".to_owned(),
                replan: false,
            });
        };
        if current.owner_id.as_ref() == Some(&item.to) {
            // We sent it (the answer was lost or we crashed): applied. Never sent:
            // someone else already did it.
            return Verdict::Final(if item.sent {
                JournalOutcome::Applied
            } else {
                JournalOutcome::Unchanged
            });
        }
        if current.owner_id != item.from {
            return Verdict::Final(JournalOutcome::SkippedChanged {
                observed: current.owner_id.clone(),
            });
        }
        if !current.writable {
            return Verdict::Final(JournalOutcome::Rejected {
                kind: leadroute_crm::RejectKind::ReadOnly,
                code: "read_only".to_owned(),
                message: "record is read-only (converted lead?)".to_owned(),
                replan: false,
            });
        }
        Verdict::Ready(current.updated_at)
    }

    fn note_final(&mut self, object: ObjectKind, item: &Item, outcome: &JournalOutcome) {
        self.done += 1;
        let why = match outcome {
            JournalOutcome::SkippedChanged { observed } => Some((
                observed.clone(),
                "owner changed since the plan was made".to_owned(),
            )),
            JournalOutcome::Rejected {
                replan: true,
                code,
                message,
                ..
            } => Some((None, format!("{code}: {message}"))),
            _ => None,
        };
        if let Some((observed, why)) = why {
            self.replan.push(Replan {
                object,
                id: item.id.clone(),
                planned_from: item.from.clone(),
                planned_to: item.to.clone(),
                observed,
                why,
            });
        }
    }

    /// Resolves intents left without outcome by a crash or a lost response. Returns
    /// the items still holding `from` (to be re-sent after the normal compare).
    ///
    /// Bulk jobs the journal names whose end was never journaled may still be running
    /// on the CRM (the process died while they ran, or could not confirm a failed one
    /// ended): each is aborted and waited for until it is final *before* any owner is
    /// read, so a record it has not reached yet cannot be sent again and then written
    /// a second time by the orphan. If that cannot be confirmed the run stops,
    /// resumable, having read and written nothing.
    async fn recover(
        &mut self,
        object: ObjectKind,
        items: Vec<Item>,
    ) -> Result<Result<Vec<Item>, Stop>, WriterError> {
        info!(run_id = %self.run, object = %object, count = items.len(), "resolving in-flight intents");
        let store = &self.writer.store;
        for (batch_id, job_id) in store
            .journal_unsettled_bulk_jobs(self.run.as_str(), object)
            .await?
        {
            self.progress.note(&format!(
                "bulk job {job_id} (batch {batch_id}) was left running: aborting it before reading owners"
            ));
            let end = match self
                .writer
                .guarded(self.writer.crm.bulk_abort(object, &job_id))
                .await
            {
                Ok(end) => end,
                Err(err) => {
                    let mut stop = self.stop_for(&err);
                    stop.message = format!(
                        "bulk job {job_id} of an interrupted run could not be confirmed ended \
                         ({err}); nothing was sent; resume again to settle it"
                    );
                    return Ok(Err(stop));
                }
            };
            info!(run_id = %self.run, object = %object, job = %job_id, state = ?end.state, processed = end.processed, "orphaned bulk job ended");
            let result = format!(
                "orphan bulk {job_id}: {} ({} processed, {} failed)",
                bulk_state_name(end.state),
                end.processed,
                end.failed
            );
            store
                .journal_batch_result(self.run.as_str(), batch_id, &result, Utc::now())
                .await?;
        }
        let mut pending = Vec::new();
        for chunk in items.chunks(self.writer.read_batch_size()) {
            let ids: Vec<RecordId> = chunk.iter().map(|i| i.id.clone()).collect();
            let owners = match self.read_owners(object, &ids).await {
                Ok(owners) => owners,
                Err(err) => return Ok(Err(self.stop_for(&err))),
            };
            let mut outcomes = Vec::new();
            let mut requeue = Vec::new();
            for item in chunk {
                match Self::judge(item, owners.get(&item.id)) {
                    Verdict::Ready(_) => {
                        requeue.push((item.seq, "intent resolved: still holds from".to_owned()));
                        pending.push(item.clone());
                    }
                    Verdict::Final(outcome) => {
                        self.note_final(object, item, &outcome);
                        outcomes.push((item.seq, outcome));
                    }
                }
            }
            let store = &self.writer.store;
            store
                .journal_outcomes(self.run.as_str(), &outcomes, Utc::now())
                .await?;
            store.journal_requeue(self.run.as_str(), &requeue).await?;
        }
        Ok(Ok(pending))
    }

    /// The stop a non-retryable (or retry-exhausted) whole-call failure means.
    fn stop_for(&self, err: &CrmError) -> Stop {
        let (reason, message) = match err.kind {
            ErrorKind::QuotaExhausted => (
                StopReason::QuotaExhausted,
                format!("the CRM's daily API allocation is used up ({err})"),
            ),
            ErrorKind::CircuitOpen => (StopReason::CircuitOpen, err.to_string()),
            _ if err.recovery() == Recovery::Retry => (
                StopReason::RetriesExhausted,
                format!("the CRM kept failing ({err}); resume later with the same run"),
            ),
            _ => (
                StopReason::Operator,
                format!("the CRM refused the call ({err}); fix this, then resume the run"),
            ),
        };
        let resume_at = err.resume_at.or_else(|| {
            err.retry_after
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .map(|d| Utc::now() + d)
        });
        Stop {
            reason,
            message,
            resume_at,
        }
    }

    /// After a whole-call failure: wait (honouring retry_after / the breaker) or stop.
    async fn after_call_failure(&mut self, err: &CrmError, consecutive: u32) -> Flow {
        let writer = self.writer;
        if err.kind == ErrorKind::CircuitOpen {
            if writer.breaker.trips() >= writer.settings.breaker_max_trips {
                return Flow::Stop(self.stop_for(err));
            }
            let wait = err.retry_after.unwrap_or(writer.settings.breaker_cooldown);
            self.progress.note(&format!(
                "circuit breaker open; probing the CRM again in {:.0} s",
                wait.as_secs_f64().ceil()
            ));
            warn!(
                wait_ms = wait.as_millis() as u64,
                "circuit breaker open; waiting to probe"
            );
            if !writer.pause(wait).await {
                return Flow::Stop(cancelled());
            }
            return Flow::Continue;
        }
        if err.recovery() != Recovery::Retry || consecutive as usize > writer.settings.call_retries
        {
            return Flow::Stop(self.stop_for(err));
        }
        let wait = err
            .retry_after
            .unwrap_or_default()
            .max(writer.backoff(consecutive.saturating_sub(1)));
        debug!(error = %err, wait_ms = wait.as_millis() as u64, "write call failed; re-reading before retry");
        warn!(
            "write call failed ({err}); retrying in {:.1} s (attempt {} of {})",
            wait.as_secs_f64(),
            consecutive.saturating_add(1),
            writer.settings.call_retries.saturating_add(1)
        );
        self.tally.retries.fetch_add(1, Ordering::Relaxed);
        if !writer.pause(wait).await {
            return Flow::Stop(cancelled());
        }
        Flow::Continue
    }

    /// Sends one object's queue in batches until it is empty or the run must stop,
    /// leaving nothing uncommitted in the journal.
    async fn converge(
        &mut self,
        object: ObjectKind,
        queue: VecDeque<Item>,
    ) -> Result<Option<Stop>, WriterError> {
        let result = self.converge_batches(object, queue).await;
        let flushed = self.flush().await;
        let stop = result?;
        flushed?;
        Ok(stop)
    }

    async fn converge_batches(
        &mut self,
        object: ObjectKind,
        mut queue: VecDeque<Item>,
    ) -> Result<Option<Stop>, WriterError> {
        let writer = self.writer;
        let batch = writer.batch_size();
        let read_batch = writer.read_batch_size();
        let conditional = writer.conditional();
        let mut delayed: Vec<Item> = Vec::new();
        let mut consecutive_failures = 0u32;
        let mut prefetched: Option<Prefetched> = None;
        loop {
            if writer.cancel.is_cancelled() {
                return Ok(Some(cancelled()));
            }
            // Retryable rejections come back once their backoff has passed.
            let now = Instant::now();
            let (due, later): (Vec<Item>, Vec<Item>) = std::mem::take(&mut delayed)
                .into_iter()
                .partition(|i| i.not_before.is_none_or(|t| t <= now));
            delayed = later;
            queue.extend(due);
            if queue.is_empty() {
                let Some(next) = delayed.iter().filter_map(|i| i.not_before).min() else {
                    return Ok(None);
                };
                if !writer.pause(next.saturating_duration_since(now)).await {
                    return Ok(Some(cancelled()));
                }
                continue;
            }

            // Compare before write, topping the batch up when records drop out.
            let mut ready: Vec<(Item, Option<DateTime<Utc>>)> = Vec::with_capacity(batch);
            let mut first_read: Option<Instant> = None;
            let mut rounds = 0;
            let mut failure = None;
            // Final verdicts of the compare reads, journaled with the intent below.
            let mut judged: Vec<(i64, JournalOutcome)> = Vec::new();
            while ready.len() < batch
                && !queue.is_empty()
                && rounds <= writer.settings.top_up_rounds
            {
                rounds += 1;
                let take = (batch - ready.len()).min(read_batch).min(queue.len());
                let chunk: Vec<Item> = queue.drain(..take).collect();
                let ids: Vec<RecordId> = chunk.iter().map(|i| i.id.clone()).collect();
                // A read prefetched during the previous write is used only if it is
                // for exactly these records and succeeded; otherwise read now.
                let (owners, read_at) = match prefetched.take() {
                    Some((prefetched_ids, Ok(owners), at)) if prefetched_ids == ids => {
                        (Ok(owners), at)
                    }
                    _ => (self.read_owners(object, &ids).await, Instant::now()),
                };
                let owners = match owners {
                    Ok(owners) => owners,
                    Err(err) => {
                        for item in chunk.into_iter().rev() {
                            queue.push_front(item);
                        }
                        failure = Some(err);
                        break;
                    }
                };
                first_read.get_or_insert(read_at);
                for item in chunk {
                    match Self::judge(&item, owners.get(&item.id)) {
                        Verdict::Ready(updated_at) => ready.push((item, updated_at)),
                        Verdict::Final(outcome) => {
                            self.note_final(object, &item, &outcome);
                            judged.push((item.seq, outcome));
                        }
                    }
                }
            }
            if let Some(err) = failure {
                self.journal(judged, None).await?;
                // Items already judged ready go back too; they will be re-read.
                for (item, _) in ready.into_iter().rev() {
                    queue.push_front(item);
                }
                consecutive_failures += 1;
                match self.after_call_failure(&err, consecutive_failures).await {
                    Flow::Continue => continue,
                    Flow::Stop(stop) => return Ok(Some(stop)),
                }
            }
            if ready.is_empty() {
                self.journal(judged, None).await?;
                self.report_progress();
                continue;
            }

            // The fence: a deposed leader's batch is refused here, before its intent;
            // its changes stay pending for the new leader.
            if let Some(stop) = writer.fenced().await {
                self.journal(judged, None).await?;
                return Ok(Some(stop));
            }
            // Write-ahead: the intent is committed before the call, in one transaction
            // with the previous call's outcomes and this batch's compare verdicts.
            let batch_id = self.next_batch_id().await?;
            let seqs: Vec<i64> = ready.iter().map(|(i, _)| i.seq).collect();
            self.journal(
                judged,
                Some(BatchIntent {
                    batch_id,
                    object,
                    seqs: &seqs,
                    lease_epoch: writer.fence.as_ref().map(|f| f.epoch),
                }),
            )
            .await?;
            let changes: Vec<OwnerChange> = ready
                .iter()
                .map(|(item, updated_at)| OwnerChange {
                    id: item.id.clone(),
                    from: item.from.clone(),
                    to: item.to.clone(),
                    if_unmodified_since: if conditional {
                        updated_at.or(item.record_updated_at)
                    } else {
                        None
                    },
                })
                .collect();
            for (item, _) in &mut ready {
                item.sent = true;
            }
            if let Some(read_at) = first_read {
                self.race.push(read_at.elapsed());
            }
            self.tally.write_calls.fetch_add(1, Ordering::Relaxed);
            self.tally
                .records_sent
                .fetch_add(changes.len() as u64, Ordering::Relaxed);
            // Pipelining: the next batch's compare read runs while this batch is
            // written, so call latency hides behind the rate limit. The read still
            // comes after this batch's read and just before its own write.
            let next_ids: Vec<RecordId> = if writer.settings.pipeline {
                queue
                    .iter()
                    .take(batch.min(read_batch))
                    .map(|i| i.id.clone())
                    .collect()
            } else {
                Vec::new()
            };
            let apply = writer.guarded(writer.crm.apply(object, &changes));
            let result = if next_ids.is_empty() {
                apply.await
            } else {
                let read = async {
                    let owners = self.read_owners(object, &next_ids).await;
                    (owners, Instant::now())
                };
                let (result, (owners, at)) = tokio::join!(apply, read);
                prefetched = Some((next_ids, owners, at));
                result
            };
            let result = result.and_then(|outcomes| {
                outcome_count(outcomes.len(), changes.len(), "outcomes").map(|()| outcomes)
            });
            match result {
                Ok(outcomes) => {
                    consecutive_failures = 0;
                    self.pending.batch_result = Some((batch_id, "ok".to_owned()));
                    self.settle(object, ready, outcomes, &mut delayed);
                }
                Err(err) => {
                    self.tally.call_failures.fetch_add(1, Ordering::Relaxed);
                    // Whether or not the CRM applied it, nothing is resent blind: the
                    // items go back to the front and are re-read first.
                    let note = format!("write call failed ({}); re-read before retry", err.kind);
                    self.pending.batch_result = Some((batch_id, format!("error:{}", err.kind)));
                    self.pending
                        .requeue
                        .extend(ready.iter().map(|(i, _)| (i.seq, note.clone())));
                    // Committed now, not with the next intent: a backoff may follow.
                    self.flush().await?;
                    for (item, _) in ready.into_iter().rev() {
                        queue.push_front(item);
                    }
                    consecutive_failures += 1;
                    if let Flow::Stop(stop) =
                        self.after_call_failure(&err, consecutive_failures).await
                    {
                        return Ok(Some(stop));
                    }
                }
            }
            self.report_progress();
        }
    }

    /// Routes a batch's per-record outcomes by their recovery; the journal writes are
    /// held in `self.pending` until the next step commits them.
    fn settle(
        &mut self,
        object: ObjectKind,
        ready: Vec<(Item, Option<DateTime<Utc>>)>,
        outcomes: Vec<WriteOutcome>,
        delayed: &mut Vec<Item>,
    ) {
        let writer = self.writer;
        let mut finals = Vec::new();
        let mut requeue = Vec::new();
        let mut exceptions = Vec::new();
        for ((mut item, _), outcome) in ready.into_iter().zip(outcomes) {
            let journal = match outcome {
                WriteOutcome::Applied => JournalOutcome::Applied,
                WriteOutcome::Unchanged => JournalOutcome::Unchanged,
                WriteOutcome::Rejected {
                    kind,
                    code,
                    message,
                } => match kind.recovery() {
                    // Transient rejections (a locked row, a batch rolled back, a record
                    // the CRM did not process) are retried after a fresh compare read;
                    // `RejectKind::recovery` is the one place that says which.
                    Recovery::Retry if item.attempts + 1 < writer.settings.record_attempts => {
                        item.attempts += 1;
                        item.not_before = Some(Instant::now() + writer.backoff(item.attempts));
                        requeue.push((item.seq, format!("{code}: {message}; will retry")));
                        delayed.push(item);
                        continue;
                    }
                    Recovery::Retry => JournalOutcome::Failed {
                        message: format!(
                            "{code}: {message} (gave up after {} attempts)",
                            writer.settings.record_attempts
                        ),
                    },
                    Recovery::Replan => JournalOutcome::Rejected {
                        kind,
                        code,
                        message,
                        replan: true,
                    },
                    Recovery::Drop => JournalOutcome::Rejected {
                        kind,
                        code,
                        message,
                        replan: false,
                    },
                    Recovery::Operator | Recovery::Pause => {
                        exceptions.push(NewException {
                            crm: writer.crm.kind(),
                            object,
                            id: item.id.clone(),
                            kind: crate::store::journal_reject_kind(kind).to_owned(),
                            rule: item.rule.clone(),
                            reason: item.reason.clone(),
                            code: Some(code.clone()),
                            message: Some(message.clone()),
                            run_id: Some(self.run.0.clone()),
                            seq: Some(item.seq),
                            before: item.before_for_exception.clone(),
                            desired: Some(item.to.clone()),
                        });
                        JournalOutcome::Rejected {
                            kind,
                            code,
                            message,
                            replan: false,
                        }
                    }
                },
            };
            self.note_final(object, &item, &journal);
            finals.push((item.seq, journal));
        }
        self.pending.outcomes.extend(finals);
        self.pending.requeue.extend(requeue);
        self.pending.exceptions.extend(exceptions);
    }
}

/// How the journal names a bulk job's final state.
fn bulk_state_name(state: BulkJobState) -> &'static str {
    match state {
        BulkJobState::Aborted => "aborted",
        BulkJobState::Complete => "complete",
        BulkJobState::Failed => "failed",
        BulkJobState::Gone => "gone",
    }
}

/// A connector must answer one outcome per change sent; anything else is a protocol
/// error (the outcome of every record is then unknown and re-read before a retry).
fn outcome_count(got: usize, sent: usize, what: &str) -> Result<(), CrmError> {
    if got == sent {
        return Ok(());
    }
    Err(CrmError::new(
        ErrorKind::Protocol,
        format!("connector returned {got} {what} for {sent} changes"),
    ))
}

fn cancelled() -> Stop {
    Stop {
        reason: StopReason::Cancelled,
        message: "stopped on request after the in-flight batch; run the same command again \
                  to resume"
            .to_owned(),
        resume_at: None,
    }
}
