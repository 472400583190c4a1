//! Benchmark: a full mirror of a large org through the connector over loopback HTTP.
//!
//! Prints, per object, records mirrored, API calls made against the minimum for the
//! page size used (`ceil(records / page)`), the daily allocation consumed (from the
//! simulator), wall time and the process's peak memory growth while syncing.
//!
//! Sizes default to the target (200,000 Leads, 200,000 Contacts, 20,000
//! Accounts); override with `BENCH_LEADS`, `BENCH_CONTACTS`, `BENCH_ACCOUNTS`,
//! `BENCH_PAGE` (200–2000). Run: `cargo bench -p leadroute-salesforce --bench mirror`.

use std::time::{Duration, Instant};

use leadroute_crm::{Crm, ObjectKind};
use leadroute_salesforce::{Salesforce, SalesforceAuth, SalesforceSettings};
use leadroute_sim::salesforce::SalesforceSimConfig;
use secrecy::SecretString;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident set size of this process (`VmHWM`), in MiB; `None` off Linux.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let leads = env("BENCH_LEADS", 200_000);
    let contacts = env("BENCH_CONTACTS", 200_000);
    let accounts = env("BENCH_ACCOUNTS", 20_000);
    let page = env("BENCH_PAGE", 2_000) as u32;
    let config = SalesforceSimConfig {
        leads,
        contacts,
        accounts,
        users: 200,
        queues: 10,
        daily_api_limit: 1_000_000,
        ..SalesforceSimConfig::default()
    };
    let generating = Instant::now();
    let sim = leadroute_sim::salesforce::spawn(config.clone())
        .await
        .expect("the simulator binds 127.0.0.1:0");
    println!(
        "org generated in {:.1} s: {leads} leads, {contacts} contacts, {accounts} accounts",
        generating.elapsed().as_secs_f64()
    );
    let mut settings = SalesforceSettings::new(
        sim.base_url(),
        SalesforceAuth::RefreshToken {
            client_id: config.client_id.clone(),
            client_secret: Some(SecretString::from(config.client_secret.clone())),
            refresh_token: SecretString::from(config.refresh_token.clone()),
        },
    );
    settings.page_size = page;
    settings.request_timeout = Duration::from_secs(300);
    let crm = Salesforce::new(settings).expect("valid settings");

    let rss_before = peak_rss_mib();
    let used_before = sim.stats().api_used;
    let started = Instant::now();
    let mut total_calls = 0u64;
    let mut total_min = 0u64;
    println!("object   records   calls   minimum   calls/minimum   seconds");
    for object in crm.objects() {
        let object_started = Instant::now();
        let mut cursor = None;
        let (mut records, mut calls) = (0u64, 0u64);
        loop {
            let page = crm
                .changes(*object, cursor.as_ref())
                .await
                .unwrap_or_else(|e| panic!("{object}: {e}"));
            records += page.changes.len() as u64;
            calls += u64::from(page.calls);
            cursor = Some(page.cursor);
            if page.done {
                break;
            }
        }
        // Owners are two queries (Users, Queues), each at least one call.
        let queries = if *object == ObjectKind::Owner { 2 } else { 1 };
        let minimum = records.div_ceil(u64::from(page)).max(queries);
        total_calls += calls;
        total_min += minimum;
        println!(
            "{:<8} {records:>8} {calls:>7} {minimum:>9} {:>15.3} {:>9.2}",
            object.as_str(),
            calls as f64 / minimum as f64,
            object_started.elapsed().as_secs_f64()
        );
    }
    let wall = started.elapsed();
    let used = sim.stats().api_used - used_before;
    println!(
        "total: {total_calls} calls for a minimum of {total_min} ({:.3}x); allocation consumed {used} of {} ({:.3}x the calls counted); wall {:.1} s",
        total_calls as f64 / total_min as f64,
        config.daily_api_limit,
        used as f64 / total_calls as f64,
        wall.as_secs_f64()
    );
    match (rss_before, peak_rss_mib()) {
        (Some(before), Some(after)) => println!(
            "peak RSS {after:.0} MiB (simulator and org included); growth during the sync {:.0} MiB",
            after - before
        ),
        _ => println!("peak RSS: not available on this platform"),
    }
    println!("token requests: {}", crm.token_requests());
    sim.shutdown().await;
}
