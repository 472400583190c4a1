//! `leadroute sync [--once] [--full] [--object X]`: mirror the configured CRM into the
//! store, once or continuously (polling every `sync.interval_secs`, plus the webhook
//! route when `webhook.listen` is set) until Ctrl-C or SIGTERM.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use leadroute_crm::{ApiUsage, Crm, ObjectKind};

use crate::domain::OrgId;
use secrecy::ExposeSecret as _;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::GlobalArgs;
use crate::app::{self, CrmTask};
use crate::config::Config;
use crate::mirror::{Mirror, MirrorError, SyncReport};
use crate::store::{self, Store};
use crate::web;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Sync once and exit (default: keep syncing until Ctrl-C).
    #[arg(long)]
    pub once: bool,
    /// Re-read everything and repair the mirror: the CRM's records overwrite the
    /// stored ones, and records the CRM no longer has are removed once the pass ends.
    #[arg(long)]
    pub full: bool,
    /// Let this store follow another HubSpot portal / Salesforce org than the one it
    /// mirrors (a refreshed sandbox, a restored backup); needs --full, which replaces
    /// the mirror with the new org's records.
    #[arg(long, requires = "full", conflicts_with = "objects")]
    pub adopt_org: bool,
    /// Only sync this object (owner, account, contact, lead); repeatable.
    #[arg(long = "object", value_name = "OBJECT")]
    pub objects: Vec<ObjectKind>,
}

/// How long in-flight work may take to finish after Ctrl-C.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

pub async fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let config = global.config(crate::config::Needs::Crm)?;
    let store = app::open_store(&config).await?;
    app::with_crm(
        &config,
        SyncTask {
            args,
            config: &config,
            store,
        },
    )
    .await
}

struct SyncTask<'a> {
    args: Args,
    config: &'a Config,
    store: Store,
}

impl CrmTask for SyncTask<'_> {
    type Output = ();

    async fn run<C: Crm>(self, crm: Arc<C>) -> anyhow::Result<()> {
        let SyncTask {
            args,
            config,
            store,
        } = self;
        let objects = chosen_objects(&*crm, &args.objects)?;
        let cancel = CancellationToken::new();
        let mirror = Mirror::new(crm, store.clone())
            .with_org(config.org.clone())
            .with_progress(true)
            .with_cancel(cancel.clone())
            .with_adopt_org(args.adopt_org);
        let location = store::describe_url(config.store.url.expose_secret());
        let mut out = std::io::stdout().lock();
        if args.once {
            // Ctrl-C during a one-shot sync still stops between pages, cursor stored.
            let signal = tokio::spawn({
                let cancel = cancel.clone();
                async move {
                    shutdown_signal().await;
                    cancel.cancel();
                }
            });
            let report = mirror.sync_objects(&objects, args.full).await;
            signal.abort();
            let report = match report {
                Err(err @ MirrorError::OtherOrg { .. }) => {
                    return Err(err).context(format!("refusing to sync into {location}"));
                }
                report => {
                    report.context("sync failed; the next run resumes from the last stored page")?
                }
            };
            print_report(&mut out, &report)?;
            print_stored(&mut out, &store, mirror.org(), &objects, &location).await?;
            if !report.complete() {
                writeln!(
                    out,
                    "interrupted: the next `leadroute sync` resumes where this one stopped"
                )?;
            }
            return Ok(());
        }

        // Continuous: webhook route (if configured), then the first pass, then polling.
        let server = match config.webhook.listen {
            Some(addr) => {
                let state = web::WebState {
                    crm: Arc::clone(mirror.crm()),
                    store: store.clone(),
                    org: config.org.clone(),
                    public_url: config.webhook.public_url.clone(),
                    hints: mirror.hint_notify(),
                };
                let (bound, task) = web::spawn(addr, web::router(state), cancel.clone())
                    .await
                    .with_context(|| format!("binding webhook.listen = {addr}"))?;
                writeln!(
                    out,
                    "webhooks: listening on http://{bound}/webhooks/{}",
                    mirror.org()
                )?;
                Some(task)
            }
            None => None,
        };
        let report = mirror
            .sync_objects(&objects, args.full)
            .await
            .with_context(|| format!("initial sync into {location} failed"))?;
        print_report(&mut out, &report)?;
        print_stored(&mut out, &store, mirror.org(), &objects, &location).await?;
        writeln!(
            out,
            "syncing every {} s until Ctrl-C",
            config.sync.interval.as_secs()
        )?;
        drop(out);
        let worker = tokio::spawn({
            let mirror = mirror.clone();
            let sync = config.sync.clone();
            async move {
                mirror
                    .run(sync.interval, sync.hint_poll, sync.hint_batch)
                    .await;
            }
        });
        shutdown_signal().await;
        info!("shutting down: finishing the page in flight");
        cancel.cancel();
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            let _ = worker.await;
            if let Some(server) = server {
                let _ = server.await;
            }
        })
        .await;
        if drained.is_err() {
            warn!("shutdown grace elapsed with work in flight; cursors mark what was stored");
        }
        store.close().await;
        Ok(())
    }
}

/// The objects to sync: the CRM's own order, filtered to those asked for.
fn chosen_objects<C: Crm>(crm: &C, asked: &[ObjectKind]) -> anyhow::Result<Vec<ObjectKind>> {
    let available = crm.objects();
    for object in asked {
        if !available.contains(object) {
            let names: Vec<&str> = available.iter().map(|o| o.as_str()).collect();
            anyhow::bail!(
                "{} does not have {object} records; use --object with one of: {}",
                crm.kind(),
                names.join(", ")
            );
        }
    }
    Ok(available
        .iter()
        .copied()
        .filter(|o| asked.is_empty() || asked.contains(o))
        .collect())
}

/// Resolves when the process is asked to stop (Ctrl-C, or SIGTERM on Unix).
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No signal handling available: never resolve rather than exit at once.
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Says where the mirror lives and how many records of each synced object it holds.
async fn print_stored(
    out: &mut impl Write,
    store: &Store,
    org: &OrgId,
    objects: &[ObjectKind],
    location: &str,
) -> anyhow::Result<()> {
    let counts = store
        .counts(org)
        .await
        .context("counting the mirror's records")?;
    let held: Vec<String> = objects
        .iter()
        .map(|object| {
            let (n, noun) = match object {
                ObjectKind::Owner => (counts.owners, "owners"),
                ObjectKind::Account => (counts.accounts, "accounts"),
                ObjectKind::Contact => (counts.contacts, "contacts"),
                ObjectKind::Lead => (counts.leads, "leads"),
                ObjectKind::Activity => (counts.activities, "activities"),
            };
            format!("{n} {noun}")
        })
        .collect();
    writeln!(out, "  stored in {location}: {}", held.join(", "))?;
    Ok(())
}

/// Prints what a sync did, one line per object and a total.
pub(crate) fn print_report(out: &mut impl Write, report: &SyncReport) -> std::io::Result<()> {
    for object in &report.objects {
        let removed = object.stored.deleted
            + object.stored.merged
            + object.stored.purged
            + object.stored.pruned;
        writeln!(
            out,
            "  {:<8} {:<11} {:>9} records {:>6} pages {:>6} calls  ({} stored, {} removed, {} unchanged)",
            object.object.as_str(),
            if object.full { "full" } else { "incremental" },
            object.received,
            object.pages,
            object.calls,
            object.stored.upserted,
            removed,
            object.stored.stale,
        )?;
    }
    writeln!(
        out,
        "  total: {} records, {} API calls, {:.1} s",
        report.received(),
        report.calls(),
        report.elapsed.as_secs_f64()
    )?;
    writeln!(out, "  rate limits: {}", headroom(&report.usage))
}

/// Rate-limit headroom as last seen in the CRM's response headers.
pub(crate) fn headroom(usage: &ApiUsage) -> String {
    let mut parts = Vec::new();
    if let (Some(max), Some(remaining)) = (usage.window_max, usage.window_remaining) {
        let window = usage
            .window
            .map_or(String::from("window"), |w| format!("{} s", w.as_secs()));
        parts.push(format!("{remaining}/{max} left per {window}"));
    }
    if let (Some(max), Some(remaining)) = (usage.daily_max, usage.daily_remaining) {
        parts.push(format!(
            "{remaining}/{max} left today ({} reserved for other integrations)",
            usage.daily_reserve
        ));
    }
    if parts.is_empty() {
        parts.push("no rate-limit headers seen".to_owned());
    }
    parts.push(format!(
        "{} throttled (429), {} retries",
        usage.throttled, usage.retries
    ));
    parts.join("; ")
}
