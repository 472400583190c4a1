//! The sync engine: pulls changes from a CRM page by page into the store, drains the
//! webhook inbox by refetching hinted records, and runs both continuously until told to
//! stop.
//!
//! Generic over `C: Crm`; only `app.rs` picks the concrete connector. Correctness rests
//! on the store's guarantees (see `store::mirror_rows`): each page and its cursor are
//! stored in one transaction, and an older version never overwrites a newer one, so a
//! crash, a repeated page, a duplicate webhook or out-of-order delivery is harmless.
//!
//! A sync without a cursor (the first, or `full`) is a full pass and a repair: its pages
//! overwrite what the store holds, and once the CRM says the pass is complete the
//! object's rows it did not list are removed. An interrupted pass removes nothing and
//! is resumed, with its number, by the next sync.
//!
//! Before its first sync a mirror asks the CRM which org it is (`Crm::org_identity`)
//! and refuses a store that mirrors another one ([`MirrorError::OtherOrg`]).

mod hints;
mod progress;
mod touched;

pub use hints::HintReport;
pub use touched::Touched;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use leadroute_crm::{ApiUsage, Crm, CrmError, CrmKind, Cursor, ObjectKind};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::domain::OrgId;
use crate::service::clock::{Clock, SystemClock};
use crate::store::{ApplyStats, PageMode, Store, StoreError};
use progress::SyncProgress;

/// Why a sync stopped early. The stored cursor still marks the last stored page, so the
/// next run resumes there.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("reading {object} changes from the CRM failed")]
    Crm {
        object: ObjectKind,
        #[source]
        source: CrmError,
    },
    #[error("refetching hinted {object} records failed")]
    Refetch {
        object: ObjectKind,
        #[source]
        source: CrmError,
    },
    #[error("asking the CRM which org it is failed")]
    Identity {
        #[source]
        source: CrmError,
    },
    #[error(
        "this store mirrors {crm} {unit} {stored}, but the configured CRM is {unit} {found}; \
         refusing to mix two orgs in one store. Point store.url at a fresh store for \
         {unit} {found}, or, if this store should follow {unit} {found} from now on (a \
         refreshed sandbox, a restored backup), run `leadroute sync --once --full \
         --adopt-org` to replace its mirror with {unit} {found}'s records"
    )]
    OtherOrg {
        crm: CrmKind,
        /// "portal" (HubSpot) or "org" (Salesforce).
        unit: &'static str,
        stored: String,
        found: String,
    },
    #[error("the store failed")]
    Store(#[from] StoreError),
}

/// What HubSpot and Salesforce call the account a store mirrors.
fn org_unit(crm: CrmKind) -> &'static str {
    match crm {
        CrmKind::Hubspot => "portal",
        CrmKind::Salesforce => "org",
    }
}

/// What syncing one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectReport {
    pub object: ObjectKind,
    /// True for a full pass (started without a cursor, or resuming an interrupted full
    /// pass): a repair that overwrites, and prunes once complete.
    pub full: bool,
    /// Changes received (including repeats from overlap windows).
    pub received: usize,
    pub pages: usize,
    /// API calls the connector reported for these pages.
    pub calls: u64,
    pub stored: ApplyStats,
    /// False when cancelled before the CRM said it was caught up.
    pub complete: bool,
}

/// What one [`Mirror::sync_once`] did.
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub objects: Vec<ObjectReport>,
    pub elapsed: Duration,
    /// Connector-reported usage at the end (headroom, throttling, retries).
    pub usage: ApiUsage,
}

impl SyncReport {
    /// API calls made by this sync, as the connector counted them per page.
    pub fn calls(&self) -> u64 {
        self.objects.iter().map(|o| o.calls).sum()
    }

    pub fn received(&self) -> usize {
        self.objects.iter().map(|o| o.received).sum()
    }

    pub fn complete(&self) -> bool {
        self.objects.iter().all(|o| o.complete)
    }
}

/// The sync engine for one CRM org.
pub struct Mirror<C: Crm> {
    crm: Arc<C>,
    store: Store,
    /// The org whose rows this mirror keeps (default: named after the CRM kind).
    org: OrgId,
    progress: bool,
    cancel: CancellationToken,
    hint_wake: Arc<Notify>,
    adopt_org: bool,
    /// Set once the CRM's org was checked against the store's (one call per mirror).
    org_checked: Arc<AtomicBool>,
    /// Where the keys of every stored page and refetch go (the sidecar's re-plan).
    touched: Option<mpsc::Sender<Touched>>,
    /// Wall-clock time (hint ages, inbox pruning, hint completion stamps); its timers
    /// are tokio's, so tests pause them.
    clock: Arc<dyn Clock>,
}

impl<C: Crm> Clone for Mirror<C> {
    fn clone(&self) -> Self {
        Mirror {
            crm: Arc::clone(&self.crm),
            store: self.store.clone(),
            org: self.org.clone(),
            progress: self.progress,
            cancel: self.cancel.clone(),
            hint_wake: Arc::clone(&self.hint_wake),
            adopt_org: self.adopt_org,
            org_checked: Arc::clone(&self.org_checked),
            touched: self.touched.clone(),
            clock: Arc::clone(&self.clock),
        }
    }
}

impl<C: Crm> Mirror<C> {
    pub fn new(crm: Arc<C>, store: Store) -> Self {
        Mirror {
            org: OrgId::default_for(crm.kind()),
            crm,
            store,
            progress: false,
            cancel: CancellationToken::new(),
            hint_wake: Arc::new(Notify::new()),
            adopt_org: false,
            org_checked: Arc::new(AtomicBool::new(false)),
            touched: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads wall-clock time from `clock` (the service's; tests use a manual one).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The wall-clock time now, by this mirror's clock.
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Sends the keys of every stored page and refetch to `tx` once stored (waiting
    /// when the receiver is behind, so a slow consumer slows the mirror).
    pub fn with_org(mut self, org: OrgId) -> Self {
        self.org = org;
        self
    }

    /// The org this mirror keeps.
    pub fn org(&self) -> &OrgId {
        &self.org
    }

    pub fn with_touched(mut self, tx: mpsc::Sender<Touched>) -> Self {
        self.touched = Some(tx);
        self
    }

    /// Reports a page of `changes` (just stored) to the `with_touched` receiver, if
    /// any: `full` when the page belongs to a full pass of that object, `swept` when it
    /// completed one.
    pub(crate) async fn report_page(
        &self,
        changes: &[leadroute_crm::Change],
        full: Option<ObjectKind>,
        swept: bool,
    ) {
        self.report(changes, None, full, swept).await;
    }

    /// [`Mirror::report_touched`] for changes leadroute first heard of at `since` (a
    /// webhook's arrival).
    pub(crate) async fn report_touched_since(
        &self,
        changes: &[leadroute_crm::Change],
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) {
        self.report(changes, since, None, false).await;
    }

    async fn report(
        &self,
        changes: &[leadroute_crm::Change],
        since: Option<chrono::DateTime<chrono::Utc>>,
        full: Option<ObjectKind>,
        swept: bool,
    ) {
        if let Some(tx) = &self.touched
            && (!changes.is_empty() || swept)
        {
            let mut touched = Touched::from_changes(changes);
            touched.full = full;
            touched.swept = swept;
            if let Some(since) = since {
                let ago = (self.clock.now() - since).to_std().unwrap_or_default();
                touched.seen = touched.seen.checked_sub(ago).unwrap_or(touched.seen);
            }
            // A receiver that is gone (shutting down) loses nothing: the next full
            // re-plan reads the store.
            let _ = tx.send(touched).await;
        }
    }

    /// Lets the first sync replace the store's recorded org with the CRM's instead of
    /// refusing (`sync --full --adopt-org`); pair it with a full sync, which replaces
    /// the mirror's rows.
    pub fn with_adopt_org(mut self, adopt: bool) -> Self {
        self.adopt_org = adopt;
        self
    }

    /// Checks that the store mirrors the CRM's org, recording it on first use.
    pub async fn check_org(&self) -> Result<(), MirrorError> {
        if self.org_checked.load(Ordering::Acquire) {
            return Ok(());
        }
        let kind = self.crm.kind();
        let found = self
            .crm
            .org_identity()
            .await
            .map_err(|source| MirrorError::Identity { source })?;
        if let Some(found) = found {
            let stored = self.store.record_org_identity(&self.org, &found).await?;
            if stored.id != found.id {
                if !self.adopt_org {
                    return Err(MirrorError::OtherOrg {
                        crm: kind,
                        unit: org_unit(kind),
                        stored: stored.id,
                        found: found.id,
                    });
                }
                warn!(crm = %kind, stored = %stored.id, found = %found.id, "store adopts another org");
                self.store.adopt_org_identity(&self.org, &found).await?;
            }
        }
        self.org_checked.store(true, Ordering::Release);
        Ok(())
    }

    /// Shows progress bars on stderr (only drawn when stderr is a terminal).
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Stops syncs between pages when `cancel` fires: the page in flight is stored with
    /// its cursor, then the sync returns with `complete = false`.
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// Notify this when hints arrive (the webhook route does) to wake the processor
    /// before its next poll.
    pub fn hint_notify(&self) -> Arc<Notify> {
        Arc::clone(&self.hint_wake)
    }

    pub fn crm(&self) -> &Arc<C> {
        &self.crm
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Syncs every object the CRM mirrors, in its order (owners, accounts, people).
    /// `full` forgets the stored cursors first, re-reading everything.
    pub async fn sync_once(&self, full: bool) -> Result<SyncReport, MirrorError> {
        self.sync_objects(self.crm.objects(), full).await
    }

    /// Syncs the given objects, in the given order.
    pub async fn sync_objects(
        &self,
        objects: &[ObjectKind],
        full: bool,
    ) -> Result<SyncReport, MirrorError> {
        let started = Instant::now();
        self.check_org().await?;
        let progress = SyncProgress::new(self.progress);
        let mut reports = Vec::with_capacity(objects.len());
        for &object in objects {
            if self.cancel.is_cancelled() {
                break;
            }
            let report = self.sync_object(object, full, &progress).await?;
            reports.push(report);
        }
        Ok(SyncReport {
            objects: reports,
            elapsed: started.elapsed(),
            usage: self.crm.usage(),
        })
    }

    async fn sync_object(
        &self,
        object: ObjectKind,
        full: bool,
        progress: &SyncProgress,
    ) -> Result<ObjectReport, MirrorError> {
        let kind = self.crm.kind();
        // A full pass starts when asked, or when there is no cursor to go on from; one
        // in progress (interrupted) is resumed from its cursor, keeping its number.
        let mut pass = if full {
            Some(self.store.begin_full_pass(&self.org, object).await?)
        } else {
            self.store.full_pass(&self.org, object).await?
        };
        let cursor = self.store.cursor(&self.org, object).await?;
        if pass.is_none() && cursor.is_none() {
            pass = Some(self.store.begin_full_pass(&self.org, object).await?);
        }
        let mut report = ObjectReport {
            object,
            full: pass.is_some(),
            received: 0,
            pages: 0,
            calls: 0,
            stored: ApplyStats::default(),
            complete: false,
        };
        let bar = progress.object(object, report.full);
        let fetch = |cursor: Option<Cursor>| async move {
            self.crm
                .changes(object, cursor.as_ref())
                .await
                .map_err(|source| MirrorError::Crm { object, source })
        };
        let mut page = fetch(cursor).await?;
        loop {
            // Fetch the next page while this one is stored: the cursor in hand is all
            // the next call needs, and nothing of the next page is stored (nor its
            // cursor) until this page has committed, so a crash still resumes right.
            let more = !page.done && !self.cancel.is_cancelled();
            let mode = match pass {
                Some(pass) => PageMode::Full {
                    pass,
                    last: page.done,
                },
                None => PageMode::Incremental,
            };
            let store =
                self.store
                    .apply_page(&self.org, object, &page.changes, Some(&page.cursor), mode);
            let (stats, next) = if more {
                let (stats, next) = tokio::join!(store, fetch(Some(page.cursor.clone())));
                (stats?, Some(next))
            } else {
                (store.await?, None)
            };
            let swept = pass.is_some() && page.done;
            self.report_page(&page.changes, pass.map(|_| object), swept)
                .await;
            report.received += page.changes.len();
            report.pages += 1;
            report.calls += u64::from(page.calls);
            report.stored += stats;
            bar.update(&report);
            if page.done {
                report.complete = true;
            }
            match next {
                Some(next) => page = next?,
                None => break,
            }
        }
        bar.finish(&report);
        info!(
            crm = %kind,
            %object,
            full = report.full,
            received = report.received,
            upserted = report.stored.upserted,
            deleted = report.stored.deleted + report.stored.merged + report.stored.purged,
            pruned = report.stored.pruned,
            pages = report.pages,
            calls = report.calls,
            "object synced"
        );
        Ok(report)
    }

    /// Polls every `interval` and drains the webhook inbox every `hint_poll` until
    /// `cancel` fires. Errors are logged and retried on the next tick (the CRM or the
    /// database may be briefly unavailable); the stored cursors keep progress.
    pub async fn run(&self, interval: Duration, hint_poll: Duration, hint_batch: usize) {
        let hints = {
            let mirror = self.clone();
            tokio::spawn(async move { mirror.run_hints(hint_poll, hint_batch).await })
        };
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => break,
                _ = ticker.tick() => {}
            }
            match self.sync_once(false).await {
                Ok(report) => info!(
                    received = report.received(),
                    calls = report.calls(),
                    elapsed_ms = u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
                    "sync pass done"
                ),
                Err(err) => {
                    warn!(error = %error_chain(&err), "sync pass failed; retrying next interval")
                }
            }
            // Processed hints only matter for de-duplicating redeliveries (HubSpot retries
            // for about a day); keep the inbox from growing without bound.
            if let Err(err) = self.store.prune_inbox(self.clock.now()).await {
                warn!(error = %error_chain(&err), "pruning the webhook inbox failed");
            }
        }
        // The hint loop watches the same token; wait for its current batch to land.
        if let Err(err) = hints.await {
            warn!(error = %err, "hint processor ended abnormally");
        }
    }

    async fn run_hints(&self, poll: Duration, batch: usize) {
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            match self.process_hints(batch).await {
                Ok(report) if report.processed > 0 => continue,
                Ok(_) => {}
                Err(err) => {
                    warn!(error = %error_chain(&err), "processing webhook hints failed; retrying")
                }
            }
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(poll) => {}
                () = self.hint_wake.notified() => {}
            }
        }
    }
}

/// `outer: inner: innermost`, for logs (tracing's `%` shows only the outer message).
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
