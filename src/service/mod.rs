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
//! Bounded channels join intake → decide → write, so a slow writer slows the mirror
//! instead of growing memory. Shutdown has one path: only intake and the HTTP server
//! watch the token; decide and write stop when their input closes, so the batch in hand
//! is still written and journaled, all within `service.shutdown_grace_secs`.

pub mod clock;
pub mod commit;
mod decide;
pub mod leader;
pub mod load;
pub mod metrics;
mod policy_watch;
pub mod reports;
pub mod schedule;
pub mod starter;
pub mod status;
mod write;

pub use write::RUN_KIND;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use leadroute_crm::Crm;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Config;
use crate::mirror::{Mirror, MirrorError, error_chain};
use crate::store::Store;
use crate::web::{self, WebState};
use crate::writer::{Writer, WriterSettings};
use clock::{Clock, SystemClock};
use metrics::Metrics;
use status::{Status, StatusInner};

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
}

impl<C: Crm> Service<C> {
    pub fn new(crm: Arc<C>, store: Store, config: Config) -> Self {
        Service {
            crm,
            store,
            config,
            clock: Arc::new(SystemClock),
            listener: None,
        }
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
        let metrics = Arc::new(Metrics::new());
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
        let (touched_tx, touched_rx) = mpsc::channel(TOUCHED_QUEUE);
        let (decided_tx, decided_rx) = mpsc::channel(DECIDED_QUEUE);
        let mirror = Mirror::new(Arc::clone(&crm), store.clone())
            .with_cancel(cancel.clone())
            .with_touched(touched_tx);

        let listener = match (listener, config.webhook.listen) {
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
        if let Some(listener) = listener {
            let state = web::ops::OpsState {
                web: WebState {
                    crm: Arc::clone(&crm),
                    store: store.clone(),
                    public_url: config.webhook.public_url.clone(),
                    hints: mirror.hint_notify(),
                },
                metrics: Arc::clone(&metrics),
                status: Arc::clone(&status),
                clock: Arc::clone(&clock),
            };
            let router = web::ops::router(state);
            let cancel = cancel.clone();
            tracker.spawn(async move {
                if let Err(err) = web::serve(listener, router, cancel).await {
                    warn!(error = %err, "the HTTP listener failed");
                }
            });
            info!(addr = ?addr, "serving webhooks, /healthz, /readyz and /metrics");
        }

        let intake = Intake {
            mirror: mirror.clone(),
            metrics: Arc::clone(&metrics),
            status: Arc::clone(&status),
            clock: Arc::clone(&clock),
            cancel: cancel.clone(),
        };
        tracker.spawn(intake.clone().poll(config.sync.interval));
        tracker.spawn(intake.hints(config.sync.hint_poll, config.sync.hint_batch));
        drop(mirror);
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
        tracker.spawn(
            decide::Decide {
                kind: crm.kind(),
                store: store.clone(),
                rx: touched_rx,
                policy: policy_rx,
                tx: decided_tx,
                clock: Arc::clone(&clock),
                metrics: Arc::clone(&metrics),
                status: Arc::clone(&status),
                full_replan: config.service.full_replan,
            }
            .run(),
        );
        let settings = WriterSettings {
            strict: config.crm.salesforce.strict_writes,
            ..config.writer.settings.clone()
        };
        tracker.spawn(
            write::Write {
                writer: Writer::new(Arc::clone(&crm), store.clone(), settings)
                    .with_cancel(cancel.clone()),
                store: store.clone(),
                kind: crm.kind(),
                rx: decided_rx,
                linger: config.service.linger,
                clock: Arc::clone(&clock),
                metrics: Arc::clone(&metrics),
                status: Arc::clone(&status),
                cancel: cancel.clone(),
            }
            .run(),
        );
        tracker.close();
        // One process per org until named leases land: it always leads.
        metrics.leader.set(1);

        let grace = config.service.shutdown_grace;
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
                metrics.leader.set(0);
                if !clean {
                    warn!(
                        "shutdown grace elapsed with work in flight; the journal stays consistent and a restart resumes it"
                    );
                }
                Stopped {
                    clean,
                    elapsed: started.elapsed(),
                }
            })
        };
        Ok(Running {
            addr,
            cancel,
            reload,
            metrics,
            status,
            supervisor,
        })
    }
}

/// A started service.
pub struct Running {
    addr: Option<SocketAddr>,
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
    async fn poll(self, interval: Duration) {
        let mut failures = 0u32;
        let mut pause = Duration::ZERO;
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            let started = tokio::time::Instant::now();
            match self.mirror.sync_once(false).await {
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
    /// or the store fails.
    async fn hints(self, poll: Duration, batch: usize) {
        let wake = self.mirror.hint_notify();
        let mut failures = 0u32;
        loop {
            if self.cancel.is_cancelled() {
                return;
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
