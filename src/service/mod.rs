//! The always-on sidecar (`leadroute run`) as a library: one [`Service`] per CRM org,
//! built from [`Config`], running its tasks under one `CancellationToken` and one
//! `TaskTracker`:
//!
//! - **intake**: the [`Mirror`]'s polling (every `sync.interval_secs`) and its webhook
//!   hint processor (woken by the webhook route), each reporting the keys it stored;
//! - **decide** (`decide.rs`): a warm `Reconciler` re-decides what those keys can
//!   affect; a policy change or the periodic full re-plan re-decides everything;
//! - **write** (`write.rs`): micro-batches written through the `Writer`, flushed when
//!   full or after `service.linger_ms`, each a journaled run of kind `sidecar`;
//! - **policy watch** (`policy_watch.rs`): hot reload on file change and on SIGHUP;
//! - **HTTP** on the webhook listener: webhooks, `/healthz`, `/readyz`, `/metrics`
//!   (`web::ops`).
//!
//! Shared with the CLI: `load` (the one config/store/policy loader), `commit` (the one "commit a plan" path: ledger, exceptions,
//! run), `leader` (a named lease kept by a task), `schedule` (cron jobs in a time zone
//! with missed-run catch-up) and `reports` (scheduled drift reports on disk).
//!
//! Hot standby: every process serves HTTP and stores webhooks in the shared inbox, and
//! keeps the org's lease ([`org_lease_name`]) with [`leader::keep`]. Intake, decide,
//! write and the cron schedules run only while this process leads: one "term" per
//! lease epoch, under a child token cancelled when the lease is lost. The term's writer
//! is fenced with the epoch ([`crate::writer::Fence`]), so a deposed leader's late batch
//! never reaches the CRM.
//!
//! Bounded channels join intake → decide → write, so a slow writer slows the mirror
//! instead of growing memory. Shutdown has one path: only intake and the HTTP server
//! watch the token; decide and write stop when their input closes, so the batch in hand
//! is still written and journaled, all within `service.shutdown_grace_secs`.

pub mod clock;
pub mod commit;
mod decide;
pub mod fleet;
pub mod leader;
pub mod load;
pub mod metrics;
pub mod orgs;
mod policy_watch;
pub mod reports;
pub mod schedule;
pub mod starter;
pub mod status;
mod write;

pub use write::RUN_KIND;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use leadroute_crm::Crm;

use crate::domain::{OrgId, OrgRef};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Config;
use crate::mirror::{Mirror, MirrorError, error_chain};
use crate::policy::Policy;
use crate::store::Store;
use crate::web::{self, WebState};
use crate::writer::{Fence, Writer, WriterSettings};
use clock::{Clock, SystemClock};
use leader::{Leadership, LeaseTiming};
use metrics::Metrics;
use schedule::{Job, Scheduled};
use status::{LeaseStatus, Status, StatusInner};

/// Touched-key messages queued between intake and decide (each is one page or one
/// refetch).
const TOUCHED_QUEUE: usize = 64;
/// Decided micro-batches queued between decide and write.
const DECIDED_QUEUE: usize = 16;

/// The sidecar for one CRM org, not yet started.
pub struct Service<C: Crm> {
    crm: Arc<C>,
    store: Store,
    config: Config,
    clock: Arc<dyn Clock>,
    listener: Option<TcpListener>,
    /// One of several orgs in this process: no listener of its own; its routes and
    /// probe go to the shared router ([`Running::endpoint`]).
    shared_http: bool,
}

impl<C: Crm> Service<C> {
    pub fn new(crm: Arc<C>, store: Store, config: Config) -> Self {
        Service {
            crm,
            store,
            config,
            clock: Arc::new(SystemClock),
            listener: None,
            shared_http: false,
        }
    }

    /// Serves no HTTP itself: the org's webhook route and probe are handed out by
    /// [`Running::endpoint`] for a router shared by several orgs (`orgs::start_org`),
    /// and its metrics carry an `org` label.
    pub fn with_shared_http(mut self) -> Self {
        self.shared_http = true;
        self
    }

    /// Reads wall-clock time from `clock` (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Serves HTTP on `listener` instead of binding `webhook.listen` (tests bind port 0
    /// first to know the public URL).
    pub fn with_listener(mut self, listener: TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Loads the policy, binds the listener and starts every task. A policy with errors
    /// or a listener that cannot be bound is an error here; everything later (CRM or
    /// store outages) is retried while running and shown by `/readyz`.
    pub async fn start(self) -> anyhow::Result<Running> {
        let Service {
            crm,
            store,
            config,
            clock,
            listener,
            shared_http,
        } = self;
        let path = config.policy.path.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: policy.path: not set; point it at your routing policy (or set \
                 LEADROUTE_POLICY; `leadroute policy init --out FILE` writes a starter)",
                config.source
            )
        })?;
        let policy = crate::policy::load(&path).map_err(|issues| {
            let lines: Vec<String> = issues.iter().map(ToString::to_string).collect();
            anyhow::anyhow!(
                "the policy has problems; run `leadroute policy check`:\n{}",
                lines.join("\n")
            )
        })?;
        let jobs = schedules(&config)?;
        let config_grace = config.service.shutdown_grace;
        let metrics = Arc::new(if shared_http {
            Metrics::for_org(&config.org)
        } else {
            Metrics::new()
        });
        let status = Arc::new(Status::default());
        status.update(|s| {
            s.policy_version = Some(policy.version.clone());
            s.policy_path = Some(path.display().to_string());
            s.started_at = Some(clock.now());
        });
        info!(version = %policy.version, path = %path.display(), "policy loaded");
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let reload = Arc::new(Notify::new());
        let (policy_tx, policy_rx) = watch::channel(Arc::new(policy));
        let (first_pass, first_pass_rx) = watch::channel(false);
        let first_pass = Arc::new(first_pass);
        // The HTTP routes wake this mirror's hint processor; each term as leader clones
        // it (sharing the wake-up) with its own token and decide channel.
        let mirror = Mirror::new(Arc::clone(&crm), store.clone())
            .with_org(config.org.clone())
            .with_clock(Arc::clone(&clock));

        let listener = match (listener, config.webhook.listen) {
            _ if shared_http => None,
            (Some(listener), _) => Some(listener),
            (None, Some(addr)) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding webhook.listen {addr}"))?,
            ),
            (None, None) => None,
        };
        let addr = match &listener {
            Some(listener) => Some(listener.local_addr().context("the listener's address")?),
            None => None,
        };
        let endpoint = shared_http.then(|| {
            web::ops::OpsState {
                web: WebState {
                    crm: Arc::clone(&crm),
                    store: store.clone(),
                    org: config.org.clone(),
                    public_url: config.webhook.public_url.clone(),
                    hints: mirror.hint_notify(),
                },
                metrics: Arc::clone(&metrics),
                status: Arc::clone(&status),
                clock: Arc::clone(&clock),
            }
            .endpoint()
        });
        if let Some(listener) = listener {
            let state = web::ops::OpsState {
                web: WebState {
                    crm: Arc::clone(&crm),
                    store: store.clone(),
                    org: config.org.clone(),
                    public_url: config.webhook.public_url.clone(),
                    hints: mirror.hint_notify(),
                },
                metrics: Arc::clone(&metrics),
                status: Arc::clone(&status),
                clock: Arc::clone(&clock),
            };
            // The console on the same listener (issue 13); it writes through its own
            // `Writer`, as the CLI does.
            let console = crate::console::ConsoleState::new(
                Arc::clone(&crm),
                store.clone(),
                config.clone(),
                Arc::clone(&clock),
                crate::console::ConsoleOptions {
                    admin_password: std::env::var(crate::console::auth::ADMIN_PASSWORD_ENV).ok(),
                    status: Some(Arc::clone(&status)),
                    secure_cookies: addr.is_some_and(|a| !a.ip().is_loopback()),
                },
            )?;
            let router = web::ops::router(state).merge(crate::console::router(console));
            let cancel = cancel.clone();
            tracker.spawn(async move {
                if let Err(err) = web::serve(listener, router, cancel).await {
                    warn!(error = %err, "the HTTP listener failed");
                }
            });
            info!(addr = ?addr, "serving webhooks, /healthz, /readyz and /metrics");
        }

        // The pools in force over time, for the analytics' fairness (issue 13).
        tracker.spawn(crate::analytics::load::keep_roster(
            store.clone(),
            config.org.clone(),
            policy_rx.clone(),
            Arc::clone(&clock),
            cancel.clone(),
        ));
        tracker.spawn(
            policy_watch::PolicyWatch {
                path,
                poll: config.service.policy_poll,
                tx: policy_tx,
                reload: Arc::clone(&reload),
                metrics: Arc::clone(&metrics),
                status: Arc::clone(&status),
                cancel: cancel.clone(),
            }
            .run(),
        );

        // The org's lease: kept (renewed, or tried for) every third of its TTL. It is
        // released only after the pipeline has stopped, so no standby writes while this
        // process finishes its in-flight batch.
        let holder = crate::writer::lease::new_holder();
        let lease_name = org_lease_name(&config.org);
        let ttl = config.service.lease_ttl;
        let timing = LeaseTiming {
            ttl,
            every: (ttl / 3).max(Duration::from_millis(100)),
        };
        let lease_cancel = CancellationToken::new();
        let (leadership, keep) = leader::keep(
            store.clone(),
            lease_name.clone(),
            holder.clone(),
            timing,
            lease_cancel.clone(),
        );
        let keep = tokio::spawn(keep);
        status.update(|s| {
            s.lease = LeaseStatus {
                name: lease_name.clone(),
                state: "unknown".to_owned(),
                this: holder.clone(),
                ..LeaseStatus::default()
            };
        });
        tracker.spawn(publish_leadership(
            leadership.clone(),
            holder.clone(),
            Arc::clone(&metrics),
            Arc::clone(&status),
            cancel.clone(),
        ));
        info!(lease = %lease_name, holder = %holder, ttl_secs = ttl.as_secs(), "standing by until this process holds the org's lease");
        tracker.spawn(check_crm(
            mirror.clone(),
            leadership.clone(),
            Arc::clone(&status),
            Arc::clone(&clock),
            cancel.clone(),
        ));
        tracker.spawn(
            Conductor {
                crm,
                store,
                config,
                clock,
                metrics: Arc::clone(&metrics),
                status: Arc::clone(&status),
                policy: policy_rx,
                mirror,
                jobs,
                lease_name,
                holder,
                first_pass: Arc::clone(&first_pass),
                cancel: cancel.clone(),
            }
            .run(leadership),
        );
        tracker.close();

        let grace = config_grace;
        let supervisor = {
            let cancel = cancel.clone();
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                cancel.cancelled().await;
                info!(
                    grace_secs = grace.as_secs(),
                    "stopping: intake first, then the in-flight batch"
                );
                let started = tokio::time::Instant::now();
                let clean = tokio::time::timeout(grace, tracker.wait()).await.is_ok();
                if clean {
                    // Nothing is in flight: hand the org to a standby at once.
                    lease_cancel.cancel();
                    if tokio::time::timeout(Duration::from_secs(5), keep)
                        .await
                        .is_err()
                    {
                        warn!("releasing the org's lease timed out; it lapses after its TTL");
                    }
                } else {
                    // A batch may still be in flight: the lease lapses after its TTL
                    // instead of being handed over now.
                    keep.abort();
                    warn!(
                        "shutdown grace elapsed with work in flight; the journal stays consistent and a restart resumes it"
                    );
                }
                metrics.leader.set(0);
                Stopped {
                    clean,
                    elapsed: started.elapsed(),
                }
            })
        };
        Ok(Running {
            addr,
            endpoint,
            first_pass: first_pass_rx,
            cancel,
            reload,
            metrics,
            status,
            supervisor,
        })
    }
}

/// The name of the org's lease (one leader per org): `org:<name>`. The single `[crm]`
/// form's org is named after its kind, so its lease keeps the name it always had
/// (`org:hubspot`).
pub fn org_lease_name(org: &OrgId) -> String {
    format!("org:{org}")
}

/// The cron schedules the config asks for, in its time zone.
fn schedules(config: &Config) -> anyhow::Result<Vec<Scheduled>> {
    let tz = config.service.time_zone;
    let mut jobs = Vec::new();
    for (job, key, expr) in [
        (Job::DriftReport, "drift.schedule", &config.drift.schedule),
        (
            Job::FullReplan,
            "service.full_replan",
            &config.service.full_replan_cron,
        ),
        (
            Job::FullSync,
            "service.full_sync",
            &config.service.full_sync,
        ),
    ] {
        if let Some(expr) = expr {
            let scheduled = Scheduled::new(job, expr, tz)
                .map_err(|why| anyhow::anyhow!("{}: {key}: {why}", config.source))?;
            jobs.push(scheduled);
        }
    }
    Ok(jobs)
}

/// Checks once (retrying with backoff) that the CRM answers with these credentials and
/// is the org the store mirrors (`Mirror::check_org`, one call), so a standby that
/// could not take over says so in `/readyz` before it is needed. A leader's polls
/// report the CRM's state themselves.
async fn check_crm<C: Crm>(
    mirror: Mirror<C>,
    leadership: watch::Receiver<Leadership>,
    status: Arc<Status>,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        match mirror.check_org().await {
            Ok(()) => {
                status.update(|s| {
                    if s.crm_ok.is_none() || !leadership.borrow().is_leader() {
                        s.crm_ok = Some(true);
                    }
                });
                return;
            }
            Err(err) => {
                failures = failures.saturating_add(1);
                let error = error_chain(&err);
                if !leadership.borrow().is_leader() {
                    status.update(|s| s.crm_ok = Some(false));
                    status.error(clock.now(), format!("crm check: {error}"));
                }
                if failures == 1 || failures % 10 == 0 {
                    warn!(error = %error, streak = failures, "the CRM check failed; retrying with backoff");
                }
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(backoff(Duration::from_millis(500), failures)) => {}
        }
    }
}

/// Mirrors the lease state into `/readyz` and the `leadroute_leader` gauge.
async fn publish_leadership(
    mut rx: watch::Receiver<Leadership>,
    holder: String,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
    cancel: CancellationToken,
) {
    loop {
        let state = rx.borrow_and_update().clone();
        metrics.leader.set(i64::from(state.is_leader()));
        status.update(|s| {
            let lease = &mut s.lease;
            lease.error = None;
            match &state {
                Leadership::Unknown { error } => {
                    lease.state = "unknown".to_owned();
                    lease.epoch = None;
                    lease.holder = None;
                    lease.error.clone_from(error);
                }
                Leadership::Standby { holder: other } => {
                    lease.state = "standby".to_owned();
                    lease.epoch = None;
                    lease.holder.clone_from(other);
                }
                Leadership::Leader { epoch } => {
                    lease.state = "leader".to_owned();
                    lease.epoch = Some(*epoch);
                    lease.holder = Some(holder.clone());
                }
            }
        });
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = rx.changed() => if changed.is_err() { return },
        }
    }
}

/// Runs the pipeline (polling, hints, decisions, writes, schedules) only while this
/// process holds the org's lease: one "term" per epoch, stopped when the lease is lost.
struct Conductor<C: Crm> {
    crm: Arc<C>,
    store: Store,
    config: Config,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
    policy: watch::Receiver<Arc<Policy>>,
    mirror: Mirror<C>,
    jobs: Vec<Scheduled>,
    lease_name: String,
    holder: String,
    first_pass: Arc<watch::Sender<bool>>,
    cancel: CancellationToken,
}

impl<C: Crm> Conductor<C> {
    async fn run(self, mut leadership: watch::Receiver<Leadership>) {
        loop {
            let epoch = tokio::select! {
                () = self.cancel.cancelled() => return,
                got = leadership.wait_for(Leadership::is_leader) => match got {
                    Ok(state) => state.epoch(),
                    Err(_) => return,
                },
            };
            let Some(epoch) = epoch else { continue };
            info!(lease = %self.lease_name, epoch, "leading: resuming unfinished runs, then a full pass, polling, decisions, writes and schedules");
            let term = self.cancel.child_token();
            let tasks = TaskTracker::new();
            self.start_term(&tasks, &term, epoch);
            tasks.close();
            tokio::select! {
                () = self.cancel.cancelled() => {}
                _ = leadership.wait_for(|s| s.epoch() != Some(epoch)) => {
                    warn!(lease = %self.lease_name, epoch, "no longer leading: stopping polling, decisions and writes after the batch in hand; standing by");
                    term.cancel();
                }
            }
            tasks.wait().await;
            if self.cancel.is_cancelled() {
                return;
            }
        }
    }

    /// Starts one term's tasks on `tasks`; they stop when `term` fires (intake first,
    /// then decide and write as their input closes).
    fn start_term(&self, tasks: &TaskTracker, term: &CancellationToken, epoch: i64) {
        let config = &self.config;
        let (touched_tx, touched_rx) = mpsc::channel(TOUCHED_QUEUE);
        let (decided_tx, decided_rx) = mpsc::channel(DECIDED_QUEUE);
        let (sync_tx, sync_rx) = mpsc::channel(1);
        let full_now = Arc::new(Notify::new());
        let mirror = self
            .mirror
            .clone()
            .with_cancel(term.clone())
            .with_touched(touched_tx);
        let intake = Intake {
            mirror,
            metrics: Arc::clone(&self.metrics),
            status: Arc::clone(&self.status),
            clock: Arc::clone(&self.clock),
            cancel: term.clone(),
        };
        tasks.spawn(intake.clone().poll(config.sync.interval, sync_rx));
        tasks.spawn(intake.hints(
            config.sync.hint_poll,
            config.sync.hint_batch,
            config.service.linger * 2,
        ));
        if !self.jobs.is_empty() {
            tasks.spawn(
                Schedules {
                    jobs: self.jobs.clone(),
                    store: self.store.clone(),
                    org: self.config.org_ref(),
                    policy: self.policy.clone(),
                    drift_dir: config.drift.out_dir.clone(),
                    keep: config.drift.keep,
                    clock: Arc::clone(&self.clock),
                    status: Arc::clone(&self.status),
                    full_now: Arc::clone(&full_now),
                    sync: sync_tx,
                    cancel: term.clone(),
                }
                .run(),
            );
        }
        tasks.spawn(
            decide::Decide {
                org: self.config.org_ref(),
                store: self.store.clone(),
                rx: touched_rx,
                policy: self.policy.clone(),
                tx: decided_tx,
                clock: Arc::clone(&self.clock),
                metrics: Arc::clone(&self.metrics),
                status: Arc::clone(&self.status),
                // A cron schedule replaces the period (`Job::FullReplan` wakes it).
                full_replan: config
                    .service
                    .full_replan_cron
                    .is_none()
                    .then_some(config.service.full_replan),
                full_now,
                first_pass: Arc::clone(&self.first_pass),
            }
            .run(),
        );
        let settings = WriterSettings {
            strict: config.crm.salesforce.strict_writes,
            ..config.writer.settings.clone()
        };
        let fence = Fence {
            name: self.lease_name.clone(),
            holder: self.holder.clone(),
            epoch,
        };
        // SLA timers (issue 12): started from the journal's acknowledged writes, looked
        // at through the due-time index every second, escalated through a fenced writer.
        let sla = crate::sla::run::Engine {
            org: self.config.org.as_str().to_owned(),
            store: self.store.clone(),
            writer: Writer::new(Arc::clone(&self.crm), self.store.clone(), settings.clone())
                .with_org(self.config.org.clone())
                .with_cancel(term.clone())
                .with_fence(fence.clone()),
            touches: crate::sla::touch::MirrorTouches {
                store: self.store.clone(),
                org: self.config.org.clone(),
            },
            clock: Arc::clone(&self.clock),
            metrics: Arc::clone(&self.metrics),
            http: reqwest::Client::new(),
            notify_attempts: 4,
        };
        tasks.spawn(sla.run(self.policy.clone(), SLA_TICK, term.clone()));
        tasks.spawn(
            write::Write {
                writer: Writer::new(Arc::clone(&self.crm), self.store.clone(), settings)
                    .with_org(self.config.org.clone())
                    .with_cancel(term.clone())
                    .with_fence(fence),
                store: self.store.clone(),
                org: self.config.org_ref(),
                rx: decided_rx,
                linger: config.service.linger,
                clock: Arc::clone(&self.clock),
                metrics: Arc::clone(&self.metrics),
                status: Arc::clone(&self.status),
                cancel: term.clone(),
            }
            .run(),
        );
    }
}

/// How often the leader looks at due SLA timers (the breach detection delay is at most
/// this plus one tick's work).
pub const SLA_TICK: Duration = Duration::from_secs(1);

/// A full sync requested by the schedule, answered when it has run.
type SyncRequest = oneshot::Sender<anyhow::Result<()>>;

/// The leader's scheduled jobs.
struct Schedules {
    jobs: Vec<Scheduled>,
    store: Store,
    org: OrgRef,
    policy: watch::Receiver<Arc<Policy>>,
    drift_dir: PathBuf,
    keep: usize,
    clock: Arc<dyn Clock>,
    status: Arc<Status>,
    full_now: Arc<Notify>,
    sync: mpsc::Sender<SyncRequest>,
    cancel: CancellationToken,
}

impl Schedules {
    async fn run(self) {
        let log = schedule::StoreLog {
            store: self.store.clone(),
            org: self.org.name.clone(),
        };
        schedule::run(&self.jobs, &log, &*self.clock, &self.cancel, |job| {
            self.job(job)
        })
        .await;
    }

    async fn job(&self, job: Job) -> anyhow::Result<()> {
        match job {
            Job::DriftReport => self.drift_report().await,
            Job::FullReplan => {
                self.full_now.notify_one();
                Ok(())
            }
            Job::FullSync => {
                let (tx, rx) = oneshot::channel();
                self.sync.send(tx).await.map_err(|_| {
                    anyhow::anyhow!("intake has stopped; the full sync runs at the next start")
                })?;
                rx.await
                    .map_err(|_| anyhow::anyhow!("intake stopped before the full sync ran"))?
            }
        }
    }

    /// The drift report as `leadroute drift` builds it, in every format, into
    /// `drift.out_dir` keeping the newest `drift.keep`.
    async fn drift_report(&self) -> anyhow::Result<()> {
        let snapshot = self
            .store
            .snapshot(&self.org)
            .await
            .context("reading the mirror for the drift report")?;
        let ledger = self
            .store
            .load_ledger(&self.org.name)
            .await
            .context("reading the assignment ledger for the drift report")?;
        let policy = Arc::clone(&self.policy.borrow());
        let now = self.clock.now();
        let dir = self.drift_dir.clone();
        let keep = self.keep;
        let sla_timers = self
            .store
            .sla_timers(self.org.name.as_str(), None, None, 100_000)
            .await
            .context("reading SLA timers for the drift report")?;
        let written = tokio::task::spawn_blocking(move || {
            let report = crate::reconcile::drift::build(&snapshot, &policy, &ledger, now);
            let written = reports::write_drift_reports(&dir, &report, now, keep)?;
            if !sla_timers.is_empty() {
                // SLA compliance beside the drift report (issue 12).
                let rows = crate::sla::report::compliance(&sla_timers, &policy);
                std::fs::write(
                    written.join("sla.md"),
                    crate::sla::report::to_markdown(&rows),
                )?;
                std::fs::write(
                    written.join("sla.json"),
                    serde_json::to_string_pretty(&rows).unwrap_or_default(),
                )?;
            }
            Ok::<_, std::io::Error>(written)
        })
        .await
        .context("the drift report task failed")?
        .with_context(|| {
            format!(
                "writing the drift report under {}",
                self.drift_dir.display()
            )
        })?;
        info!(dir = %written.display(), keep, "scheduled drift report written");
        self.status
            .update(|s| s.last_drift_report = Some(written.display().to_string()));
        Ok(())
    }
}

/// A started service.
pub struct Running {
    addr: Option<SocketAddr>,
    endpoint: Option<web::ops::OrgEndpoint>,
    /// True once this process, leading, has decided its first full pass.
    first_pass: watch::Receiver<bool>,
    cancel: CancellationToken,
    reload: Arc<Notify>,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
    supervisor: JoinHandle<Stopped>,
}

/// How the service stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Every task finished within the grace.
    pub clean: bool,
    /// From the stop request to the end.
    pub elapsed: Duration,
}

impl Running {
    /// The HTTP listener's address, if one is served.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The org's webhook route and probe, when started [`Service::with_shared_http`].
    pub fn endpoint(&self) -> Option<web::ops::OrgEndpoint> {
        self.endpoint.clone()
    }

    /// Whether the first full pass (every record decided once, its work handed to the
    /// write task) has finished.
    pub fn first_pass_finished(&self) -> bool {
        *self.first_pass.borrow()
    }

    /// Resolves when the first full pass has finished (see
    /// [`Running::first_pass_finished`]) or the service has stopped; a standby waits
    /// until it leads and has decided.
    pub async fn first_pass_done(&self) {
        let mut rx = self.first_pass.clone();
        // An error: the service stopped before it finished one; nothing more to wait for.
        let _ = rx.wait_for(|done| *done).await;
    }

    /// Cancelling it starts the shutdown (as SIGTERM does).
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Re-reads the policy file now (what SIGHUP does).
    pub fn reload_policy(&self) {
        self.reload.notify_one();
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn status(&self) -> StatusInner {
        self.status.get()
    }

    /// Stops intake, lets the in-flight batch finish and waits (at most the grace).
    pub async fn stop(self) -> Stopped {
        self.cancel.cancel();
        self.wait().await
    }

    /// Waits until the service has stopped (after [`Running::cancel_token`] fired).
    pub async fn wait(self) -> Stopped {
        match self.supervisor.await {
            Ok(stopped) => stopped,
            Err(err) => {
                warn!(error = %err, "the service supervisor ended abnormally");
                Stopped {
                    clean: false,
                    elapsed: Duration::ZERO,
                }
            }
        }
    }
}

/// Polling and hint processing, recording their health.
struct Intake<C: Crm> {
    mirror: Mirror<C>,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
}

impl<C: Crm> Clone for Intake<C> {
    fn clone(&self) -> Self {
        Intake {
            mirror: self.mirror.clone(),
            metrics: Arc::clone(&self.metrics),
            status: Arc::clone(&self.status),
            clock: Arc::clone(&self.clock),
            cancel: self.cancel.clone(),
        }
    }
}

impl<C: Crm> Intake<C> {
    /// Polls every `interval` until cancelled; a failed poll is retried sooner, with
    /// backoff from a second up to the interval (the stored cursors keep progress), and
    /// shows in `/readyz` and in the cursor age.
    ///
    /// A scheduled full sync (`service.full_sync`) arrives on `full` and runs in place
    /// of the next poll, so two syncs never race on the cursors.
    async fn poll(self, interval: Duration, mut full: mpsc::Receiver<SyncRequest>) {
        let mut failures = 0u32;
        let mut pause = Duration::ZERO;
        loop {
            let mut reply = None;
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
                Some(tx) = full.recv() => reply = Some(tx),
            }
            let started = tokio::time::Instant::now();
            let result = self.mirror.sync_once(reply.is_some()).await;
            if let Some(reply) = reply {
                let answer = match &result {
                    Ok(_) => Ok(()),
                    Err(err) => Err(anyhow::anyhow!("full sync: {}", error_chain(err))),
                };
                let _ = reply.send(answer);
            }
            match result {
                Ok(report) => {
                    failures = 0;
                    let complete: Vec<_> = report
                        .objects
                        .iter()
                        .filter(|o| o.complete)
                        .map(|o| o.object)
                        .collect();
                    self.status.polled(self.clock.now(), &complete);
                    Metrics::add(
                        &self.metrics.crm_calls,
                        &[("kind", "sync"), ("status", "ok")],
                        report.calls(),
                    );
                    if let Some(remaining) = report.usage.window_remaining {
                        self.metrics
                            .crm_rate_limit_remaining
                            .set(i64::try_from(remaining).unwrap_or(i64::MAX));
                    }
                }
                Err(err) => {
                    failures = failures.saturating_add(1);
                    self.failed("sync", &err, failures);
                }
            }
            if let Err(err) = self.mirror.store().prune_inbox(self.clock.now()).await {
                warn!(error = %error_chain(&err), "pruning the webhook inbox failed");
            }
            pause = if failures == 0 {
                // Every `interval` from start to start, like a ticker that skips
                // missed ticks.
                interval.saturating_sub(started.elapsed())
            } else {
                backoff(Duration::from_millis(500), failures).min(interval)
            };
        }
    }

    /// Drains the webhook inbox when woken or every `poll`, backing off while the CRM
    /// or the store fails. Under a burst it waits (at most `gather` from the oldest
    /// hint's arrival) until a full batch is waiting, so an import is refetched in full
    /// batches; a trickle is refetched at once (`Mirror::hint_gather`).
    async fn hints(self, poll: Duration, batch: usize, gather: Duration) {
        let wake = self.mirror.hint_notify();
        let mut failures = 0u32;
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            // Bounded by local time too, whatever the hints' stamps say.
            let gathering = tokio::time::Instant::now();
            let mut gather_left = failures == 0;
            while gather_left {
                // A failed peek refetches at once (and meets the failure there).
                let Ok(Some(wait)) = self.mirror.hint_gather(batch, gather).await else {
                    break;
                };
                let left = gather.saturating_sub(gathering.elapsed());
                gather_left = !left.is_zero();
                if !gather_left {
                    break;
                }
                tokio::select! {
                    () = self.cancel.cancelled() => return,
                    () = tokio::time::sleep(wait.min(left)) => {}
                }
            }
            let pause = match self.mirror.process_hints(batch).await {
                Ok(report) if report.processed > 0 => {
                    failures = 0;
                    if report.refetched > 0 {
                        self.status.update(|s| s.crm_ok = Some(true));
                    }
                    Metrics::add(
                        &self.metrics.crm_calls,
                        &[("kind", "refetch"), ("status", "ok")],
                        1,
                    );
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    poll
                }
                Err(err) => {
                    failures = failures.saturating_add(1);
                    self.failed("refetch", &err, failures);
                    backoff(poll, failures)
                }
            };
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
                () = wake.notified(), if failures == 0 => {}
            }
        }
    }

    /// Records a failure; logs the first of a streak and then every tenth.
    fn failed(&self, kind: &'static str, err: &MirrorError, streak: u32) {
        let error = error_chain(err);
        if matches!(err, MirrorError::Crm { .. } | MirrorError::Refetch { .. }) {
            self.status.update(|s| s.crm_ok = Some(false));
            Metrics::add(
                &self.metrics.crm_calls,
                &[("kind", kind), ("status", "error")],
                1,
            );
        }
        self.status
            .error(self.clock.now(), format!("{kind}: {error}"));
        if streak == 1 || streak % 10 == 0 {
            warn!(kind, streak, error = %error, "intake failed; retrying with backoff");
        }
    }
}

/// `base` doubled per failure, at most a minute.
fn backoff(base: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.min(8);
    base.saturating_mul(factor).min(Duration::from_secs(60))
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(err) => {
                warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops this process");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `running` until SIGTERM or Ctrl-C, reloading the policy on SIGHUP, then stops
/// it within the grace.
pub async fn run_until_signal(running: Running) -> Stopped {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            let reload = Arc::clone(&running.reload);
            let cancel = running.cancel.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        got = hup.recv() => match got {
                            Some(()) => {
                                info!("SIGHUP: re-reading the policy");
                                reload.notify_one();
                            }
                            None => return,
                        },
                    }
                }
            });
        }
    }
    let cancel = running.cancel.clone();
    tokio::select! {
        () = shutdown_signal() => {}
        () = cancel.cancelled() => {}
    }
    running.stop().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_stops_at_a_minute() {
        let base = Duration::from_millis(250);
        assert_eq!(backoff(base, 1), Duration::from_millis(500));
        assert_eq!(backoff(base, 2), Duration::from_secs(1));
        assert_eq!(backoff(base, 30), Duration::from_secs(60));
    }
}
