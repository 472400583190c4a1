//! The demo's last phase: `leadroute run` in-process. The sidecar [`Service`] serves
//! webhooks, `/readyz` and `/metrics` on a loopback port; the simulator delivers its
//! webhooks (HubSpot) or outbound messages (Salesforce) there while its form-fill
//! stream creates a few leads a second. Each routing is printed as the journal records
//! it (lead, owner, rule, milliseconds from creation in the CRM to the owner written),
//! each lead the policy sends to a person as the exceptions queue records it, and the
//! phase ends with speed-to-lead p50/p99 and the metrics URL it served.
//!
//! The lines come from the store, not from a hook in the service: the phase polls the
//! journal for the sidecar's runs (`kind = "sidecar"`) and the open exceptions, every
//! 100 ms, and matches them to the stream's records by id.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use leadroute_crm::{Crm, ObjectKind, OwnerId};

use crate::domain::{OrgId, OrgRef};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::config::Config;
use crate::service::{RUN_KIND, Service};
use crate::store::Store;

/// New leads a second the form-fill stream creates.
pub(super) const PER_SECOND: u32 = 3;
/// How often the journal and the exceptions queue are read.
const TICK: Duration = Duration::from_millis(100);
/// After the stream ends, how long the phase waits for its last leads.
const DRAIN: Duration = Duration::from_secs(15);
/// How long the sidecar's first poll may take before the phase gives up.
const FIRST_POLL: Duration = Duration::from_secs(60);
/// After the stream ends, this long without a new decision ends the phase.
const QUIET: Duration = Duration::from_secs(3);

/// A stream's report by id, as the simulator gives it.
type StreamReport<'a> = Box<dyn Fn(&str) -> Option<serde_json::Value> + 'a>;

/// What the phase needs from the in-process simulator.
pub(super) struct Feed<'a> {
    /// Points the simulator's webhooks (or outbound messages) at a URL, or stops them.
    pub(super) set_webhook_url: Box<dyn Fn(Option<String>) + 'a>,
    /// The sidecar's route for them (`/webhooks/hubspot`).
    pub(super) route: &'static str,
    /// Starts a form-fill stream of `(per_second, seconds)`; answers its id.
    pub(super) start_stream: Box<dyn Fn(u32, u32) -> Result<String, String> + 'a>,
    /// The stream's report (`records` with `id` and `created_at_ms`, `done`).
    pub(super) stream_report: StreamReport<'a>,
    /// What the stream creates ("leads", "contacts"), for the headline.
    pub(super) noun: &'static str,
    /// The HubSpot webhook signing secret (the app's client secret); `None` for
    /// Salesforce, whose outbound messages are checked against the org id.
    pub(super) webhook_secret: Option<String>,
}

/// What the phase saw, for the closing summary.
#[derive(Debug, Default)]
pub(super) struct SidecarSummary {
    pub(super) created: usize,
    pub(super) routed: usize,
    pub(super) exceptions: usize,
    /// Mirrored with an owner that already fits the policy: nothing to write.
    pub(super) kept: usize,
    /// Creation in the CRM → owner written (journal outcome time), per routed lead.
    pub(super) millis: Vec<i64>,
    pub(super) metrics_url: String,
}

impl SidecarSummary {
    /// The `q`-quantile (nearest rank) of the routed leads' milliseconds.
    pub(super) fn quantile(&self, q: f64) -> Option<i64> {
        quantile(&self.millis, q)
    }
}

/// Nearest-rank quantile of `values` (unsorted); `None` when empty.
fn quantile(values: &[i64], q: f64) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied()
}

/// Runs the sidecar for `secs` seconds of form fills (plus the drain of the last ones)
/// and prints what it does. `make_crm` builds the sidecar's own CRM client from the
/// config with the webhook settings filled in.
pub(super) async fn run<C: Crm>(
    out: &mut impl Write,
    config: &Config,
    make_crm: impl FnOnce(&Config) -> anyhow::Result<C>,
    store: &Store,
    feed: Feed<'_>,
    secs: u32,
) -> anyhow::Result<SidecarSummary> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a loopback port for the sidecar")?;
    let addr = listener.local_addr().context("the sidecar's address")?;
    let base = format!("http://{addr}");
    let mut config = config.clone();
    config.webhook.public_url = Some(base.clone());
    if let Some(secret) = &feed.webhook_secret {
        config.webhook.secret = Some(SecretString::from(secret.clone()));
    }
    let crm = Arc::new(make_crm(&config)?);
    let kind = crm.kind();
    let names: HashMap<OwnerId, String> = store
        .owners(&OrgId::default_for(kind))
        .await
        .context("reading the mirrored owners")?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    let since = Utc::now();
    let metrics_url = format!("{base}/metrics");
    writeln!(
        out,
        "\n9. The sidecar (`leadroute run`, in-process) on {base}: webhooks, /healthz, /readyz, /metrics"
    )?;
    let running = Service::new(crm, store.clone(), config)
        .with_listener(listener)
        .start()
        .await
        .context("starting the sidecar")?;
    let result = watch(
        out, &running, store, kind, &names, &feed, &base, secs, since,
    )
    .await;
    (feed.set_webhook_url)(None);
    let served = match &result {
        Ok(_) => scrape_count(addr, "leadroute_speed_to_lead_seconds_count").await,
        Err(_) => None,
    };
    let stopped = running.stop().await;
    let mut summary = result?;
    summary.metrics_url = metrics_url;
    if !stopped.clean {
        writeln!(
            out,
            "   the sidecar's shutdown grace elapsed with work in flight (journaled; a restart resumes it)"
        )?;
    }
    let (p50, p99) = (summary.quantile(0.50), summary.quantile(0.99));
    let ms = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v} ms"));
    writeln!(
        out,
        "   {} {} created: {} routed, {} queued as exceptions for a person, {} kept the owner the CRM gave them (no change needed), {} still in flight",
        summary.created,
        feed.noun,
        summary.routed,
        summary.exceptions,
        summary.kept,
        summary
            .created
            .saturating_sub(summary.routed + summary.exceptions + summary.kept)
    )?;
    writeln!(
        out,
        "   speed-to-lead (created in the CRM → owner written): p50 {}, p99 {} over {} leads",
        ms(p50),
        ms(p99),
        summary.millis.len()
    )?;
    writeln!(
        out,
        "   metrics served at {}{}",
        summary.metrics_url,
        served.map_or_else(String::new, |n| format!(
            " (leadroute_speed_to_lead_seconds_count {n} at the end)"
        ))
    )?;
    Ok(summary)
}

/// Waits for the first poll, starts the stream and prints routings until the stream is
/// done and its leads are decided (or the drain ran out).
#[allow(clippy::too_many_arguments)]
async fn watch(
    out: &mut impl Write,
    running: &crate::service::Running,
    store: &Store,
    kind: leadroute_crm::CrmKind,
    names: &HashMap<OwnerId, String>,
    feed: &Feed<'_>,
    base: &str,
    secs: u32,
    since: DateTime<Utc>,
) -> anyhow::Result<SidecarSummary> {
    let waited = tokio::time::Instant::now();
    while running.status().last_successful_poll.is_none() {
        if waited.elapsed() > FIRST_POLL {
            let error = running.status().last_error.unwrap_or_default();
            anyhow::bail!("the sidecar's first poll did not finish in time: {error}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (feed.set_webhook_url)(Some(format!("{base}{}", feed.route)));
    let stream = (feed.start_stream)(PER_SECOND, secs)
        .map_err(|err| anyhow::anyhow!("starting the simulator's form fills: {err}"))?;
    writeln!(
        out,
        "   the simulator's web form creates {PER_SECOND} {} a second for {secs} s; each one is routed as it arrives:",
        feed.noun
    )?;
    out.flush()?;

    let mut summary = SidecarSummary::default();
    let mut created: HashMap<String, i64> = HashMap::new();
    let mut decided: HashSet<(ObjectKind, String)> = HashSet::new();
    let mut finished_runs: HashSet<String> = HashSet::new();
    let mut drain_until: Option<tokio::time::Instant> = None;
    let mut seen_decided = 0;
    let mut last_decision = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(TICK).await;
        let report = (feed.stream_report)(&stream).unwrap_or_default();
        for record in report["records"].as_array().into_iter().flatten() {
            if let (Some(id), Some(at)) = (record["id"].as_str(), record["created_at_ms"].as_i64())
            {
                created.entry(id.to_owned()).or_insert(at);
            }
        }
        summary.created = created.len();
        let runs = store
            .journal_runs(200)
            .await
            .context("reading the sidecar's runs")?;
        let pending: Vec<_> = runs
            .into_iter()
            .filter(|r| {
                r.kind == RUN_KIND
                    && r.org == OrgId::default_for(kind)
                    && r.created_at >= since
                    && !finished_runs.contains(&r.run_id)
            })
            .collect();
        for run in pending {
            let entries = store
                .journal_entries(&run.run_id)
                .await
                .context("reading a sidecar run's journal")?;
            let mut open = false;
            for entry in &entries {
                let Some(outcome) = entry.outcome.as_deref() else {
                    open = true;
                    continue;
                };
                let key = (entry.object, entry.id.as_str().to_owned());
                if decided.contains(&key) {
                    continue;
                }
                let Some(&created_ms) = created.get(entry.id.as_str()) else {
                    // Not one of the stream's leads (nor created yet in the report).
                    continue;
                };
                decided.insert(key);
                let owner = names
                    .get(&entry.after)
                    .cloned()
                    .unwrap_or_else(|| entry.after.as_str().to_owned());
                let lead = format!("{kind}:{}:{}", entry.object, entry.id);
                let ms = entry
                    .outcome_at
                    .map(|at| at.timestamp_millis().saturating_sub(created_ms));
                if outcome == "applied" {
                    summary.routed += 1;
                    if let Some(ms) = ms {
                        summary.millis.push(ms);
                    }
                    writeln!(
                        out,
                        "   {lead:<34} → {owner:<24} rule {:<16} {:>6} ms",
                        entry.rule,
                        ms.map_or_else(|| "-".to_owned(), |m| m.to_string())
                    )?;
                } else {
                    writeln!(
                        out,
                        "   {lead:<34} → {owner:<24} rule {:<16} not written: {outcome}",
                        entry.rule
                    )?;
                }
            }
            if !open && run.status.as_str() == "completed" {
                finished_runs.insert(run.run_id.clone());
            }
        }
        let exceptions = store
            .exceptions(Some("open"))
            .await
            .context("reading the exceptions queue")?;
        for exception in exceptions
            .iter()
            .filter(|e| e.org == OrgId::default_for(kind))
        {
            let key = (exception.object, exception.record_id.as_str().to_owned());
            if decided.contains(&key) {
                continue;
            }
            let Some(&created_ms) = created.get(exception.record_id.as_str()) else {
                continue;
            };
            decided.insert(key);
            summary.exceptions += 1;
            let ms = exception
                .created_at
                .timestamp_millis()
                .saturating_sub(created_ms);
            writeln!(
                out,
                "   {:<34} → exception {:<14} rule {:<16} {ms:>6} ms  ({})",
                format!("{kind}:{}:{}", exception.object, exception.record_id),
                exception.kind,
                exception.rule,
                exception.reason
            )?;
        }
        out.flush()?;
        let now = tokio::time::Instant::now();
        if decided.len() != seen_decided {
            seen_decided = decided.len();
            last_decision = now;
        }
        if report["done"].as_bool() == Some(true) {
            let until = *drain_until.get_or_insert_with(|| now + DRAIN);
            let all = summary.routed + summary.exceptions >= summary.created;
            // Leads whose owner already fits the policy get no write and no exception:
            // once nothing new was decided for a while after the last form fill, the
            // rest are those (or still in flight, which the summary says).
            let quiet = now.duration_since(last_decision) >= QUIET
                && now.duration_since(until - DRAIN) >= QUIET;
            if all || quiet || now >= until {
                summary.kept = kept(store, kind, &created, &decided).await?;
                return Ok(summary);
            }
        }
    }
}

/// Of the stream's records nothing was written or queued for: how many the mirror holds
/// with an owner (the CRM's own assignment already fits the policy).
async fn kept(
    store: &Store,
    kind: leadroute_crm::CrmKind,
    created: &HashMap<String, i64>,
    decided: &HashSet<(ObjectKind, String)>,
) -> anyhow::Result<usize> {
    let rest: HashSet<&str> = created
        .keys()
        .map(String::as_str)
        .filter(|id| !decided.iter().any(|(_, d)| d == id))
        .collect();
    if rest.is_empty() {
        return Ok(0);
    }
    let snapshot = store
        .snapshot(&OrgRef::default_for(kind))
        .await
        .context("reading the mirror")?;
    Ok(snapshot
        .people
        .iter()
        .filter(|p| rest.contains(p.id.as_str()) && p.owner_id.is_some())
        .count())
}

/// `GET /metrics` over loopback (HTTP/1.0, read to the end): the value of `sample`.
async fn scrape_count(addr: std::net::SocketAddr, sample: &str) -> Option<u64> {
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .ok()?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await.ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    };
    tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let values: Vec<i64> = (1..=100).rev().collect();
        assert_eq!(quantile(&values, 0.50), Some(50));
        assert_eq!(quantile(&values, 0.99), Some(99));
        assert_eq!(quantile(&[7], 0.99), Some(7));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
