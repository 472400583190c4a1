//! Mirror benchmark: a full sync of a 100,000-contact, 10,000-company HubSpot portal
//! (the in-process simulator, real HTTP on loopback, real rate limits) into SQLite.
//!
//! Prints, as ratios against the theoretical limits:
//! - list calls used vs the minimum ceil(N / 100) per object;
//! - wall time vs the bound the configured rate limit allows (calls ÷ rate);
//! - peak memory (VmHWM), before and after the sync (the simulator shares the process);
//! - time to load the mirror back as a snapshot.
//!
//! Run: `cargo bench --bench mirror` (override sizes with LEADROUTE_BENCH_CONTACTS and
//! LEADROUTE_BENCH_COMPANIES).

use leadroute::domain::OrgRef;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leadroute::config::Config;
use leadroute::mirror::Mirror;
use leadroute::store::Store;
use leadroute_crm::{CrmKind, ObjectKind};
use leadroute_sim::hubspot::HubSpotSimConfig;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident set size in MiB, from /proc/self/status (Linux only).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn ceil_div(n: usize, d: usize) -> u64 {
    n.div_ceil(d) as u64
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let contacts = env_usize("LEADROUTE_BENCH_CONTACTS", 100_000);
    let companies = env_usize("LEADROUTE_BENCH_COMPANIES", 10_000);
    let owners = 50;
    let ten_second_limit = 190;

    println!("mirror benchmark: {contacts} contacts, {companies} companies, {owners} owners");
    let generating = Instant::now();
    let sim = leadroute_sim::hubspot::spawn(HubSpotSimConfig {
        contacts,
        companies,
        owners,
        ten_second_limit,
        search_lag: Duration::ZERO,
        ..HubSpotSimConfig::default()
    })
    .await?;
    println!(
        "  simulator up in {:.1} s; peak RSS so far {:.0} MiB",
        generating.elapsed().as_secs_f64(),
        peak_rss_mib().unwrap_or(f64::NAN)
    );

    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let token = sim.token();
    let config = Config::from_toml(
        &format!(
            "[crm]\nbase_url = \"{}\"\ntier = \"professional\"\n[store]\nurl = \"{url}\"\n",
            sim.base_url()
        ),
        "(bench)",
        &|name| (name == "LEADROUTE_CRM_TOKEN").then(|| token.clone()),
    )
    .map_err(|err| anyhow::anyhow!("{err}"))?;
    let store = Store::open(&url).await?;
    let crm = Arc::new(leadroute::app::hubspot(&config)?);
    let mirror = Mirror::new(crm, store.clone()).with_progress(true);

    let started = Instant::now();
    let report = mirror.sync_once(false).await?;
    let elapsed = started.elapsed();
    let rss_after_sync = peak_rss_mib();

    let stats = sim.stats();
    let list_contacts = stats.calls_to("GET /crm/v3/objects/contacts");
    let list_companies = stats.calls_to("GET /crm/v3/objects/companies");
    let total_calls = stats.total_calls();
    let min_contacts = ceil_div(contacts, 100);
    let min_companies = ceil_div(companies, 100);
    // The rate limit allows `ten_second_limit` calls per 10 s: calls ÷ rate is the
    // time the limit needs for this many calls (a first-window burst can beat it).
    let rate = f64::from(ten_second_limit) / 10.0;
    let bound_secs = total_calls as f64 / rate;

    let snapshot_started = Instant::now();
    let snapshot = store
        .snapshot(&OrgRef::default_for(CrmKind::Hubspot))
        .await?;
    let snapshot_elapsed = snapshot_started.elapsed();
    let rss_after_snapshot = peak_rss_mib();

    println!();
    for object in &report.objects {
        println!(
            "  {:<8} {:>7} records in {:>5} pages, {:>5} calls",
            object.object.as_str(),
            object.received,
            object.pages,
            object.calls
        );
    }
    let contacts_report = report
        .objects
        .iter()
        .find(|o| o.object == ObjectKind::Contact)
        .map(|o| o.received)
        .unwrap_or(0);
    println!();
    println!(
        "  contact list calls  {list_contacts:>6} vs minimum {min_contacts:>6}  ratio {:.3}",
        list_contacts as f64 / min_contacts as f64
    );
    println!(
        "  company list calls  {list_companies:>6} vs minimum {min_companies:>6}  ratio {:.3}",
        list_companies as f64 / min_companies as f64
    );
    println!(
        "  all API calls       {total_calls:>6} (owners, associations included); 429s served {}",
        stats.rate_limited
    );
    println!(
        "  wall time           {:>6.1} s vs rate-limit bound {:.1} s ({ten_second_limit}/10 s)  ratio {:.3}",
        elapsed.as_secs_f64(),
        bound_secs,
        elapsed.as_secs_f64() / bound_secs
    );
    println!(
        "  throughput          {:>6.0} contacts/s stored",
        contacts_report as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  peak RSS            {:>6.0} MiB after sync, {:.0} MiB after snapshot (simulator's org included)",
        rss_after_sync.unwrap_or(f64::NAN),
        rss_after_snapshot.unwrap_or(f64::NAN)
    );
    println!(
        "  snapshot load       {:>6.2} s for {} people, {} accounts, {} owners",
        snapshot_elapsed.as_secs_f64(),
        snapshot.people.len(),
        snapshot.accounts.len(),
        snapshot.owners.len()
    );
    println!("  headroom            {}", usage_line(&report.usage));
    anyhow::ensure!(
        snapshot.people.len() == contacts && snapshot.accounts.len() == companies,
        "the mirror is incomplete: {} people, {} accounts",
        snapshot.people.len(),
        snapshot.accounts.len()
    );
    store.close().await;
    sim.shutdown().await;
    Ok(())
}

fn usage_line(usage: &leadroute_crm::ApiUsage) -> String {
    format!(
        "window {}/{} left, daily {}/{} left, {} throttled, {} retries",
        usage.window_remaining.unwrap_or(0),
        usage.window_max.unwrap_or(0),
        usage.daily_remaining.unwrap_or(0),
        usage.daily_max.unwrap_or(0),
        usage.throttled,
        usage.retries
    )
}
