//! Benchmark: full sync of a generated portal through the connector alone (no store).
//!
//! `cargo run --release -p leadroute-hubspot --example full_sync_bench -- [CONTACTS] [COMPANIES] [LIMIT_PER_10S]`
//! (defaults 100000, 10000, 190). Prints list calls against the minimum ceil(N/100),
//! wall time against the bound the 10-second limit allows, and peak resident memory of
//! the process (which also holds the in-process simulator's copy of the portal).

use std::time::{Duration, Instant};

use leadroute_crm::{Crm, ObjectKind};
use leadroute_hubspot::{HubSpot, HubSpotAuth, HubSpotSettings};
use leadroute_sim::hubspot::{HubSpotSimConfig, spawn};
use secrecy::SecretString;

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// Peak resident set size in MiB (Linux `VmHWM`), if the platform reports it.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let contacts = arg(1, 100_000);
    let companies = arg(2, 10_000);
    let limit = u32::try_from(arg(3, 190))?;
    let generated = Instant::now();
    let sim = spawn(HubSpotSimConfig {
        contacts,
        companies,
        ten_second_limit: limit,
        ..HubSpotSimConfig::default()
    })
    .await?;
    println!(
        "simulator: {contacts} contacts, {companies} companies, {limit} calls/10 s (generated in {:.1} s)",
        generated.elapsed().as_secs_f64()
    );
    let mut settings = HubSpotSettings::new(
        sim.base_url(),
        HubSpotAuth::PrivateApp {
            token: SecretString::from(sim.token()),
        },
    );
    settings.daily_reserve = 0;
    let hs = HubSpot::new(settings)?;

    let started = Instant::now();
    let mut total_calls = 0u64;
    let mut list_calls = 0u64;
    let mut records = 0usize;
    for object in hs.objects() {
        let mut cursor = None;
        let mut object_calls = 0u64;
        let mut object_records = 0usize;
        loop {
            let page = hs.changes(*object, cursor.as_ref()).await?;
            object_calls += u64::from(page.calls);
            object_records += page.changes.len();
            cursor = Some(page.cursor);
            if page.done {
                break;
            }
        }
        if *object != ObjectKind::Owner {
            list_calls += object_calls;
        }
        total_calls += object_calls;
        records += object_records;
        println!("  {object}: {object_records} changes in {object_calls} calls");
    }
    let wall = started.elapsed();
    let minimum = contacts.div_ceil(100) + companies.div_ceil(100);
    // The first window's calls are free; every further `limit` calls need 10 s.
    let bound = Duration::from_secs_f64(
        (total_calls.saturating_sub(u64::from(limit)) as f64) * 10.0 / f64::from(limit),
    );
    let usage = hs.usage();
    println!("records:     {records}");
    println!(
        "list calls:  {list_calls} vs minimum {minimum} (ratio {:.3})",
        list_calls as f64 / minimum as f64
    );
    println!(
        "wall time:   {:.1} s vs rate-limit bound {:.1} s for {total_calls} calls (ratio {:.3})",
        wall.as_secs_f64(),
        bound.as_secs_f64(),
        wall.as_secs_f64() / bound.as_secs_f64().max(0.001)
    );
    println!(
        "throughput:  {:.2} calls/s vs the limit's {:.2} calls/s (ratio {:.3})",
        total_calls as f64 / wall.as_secs_f64(),
        f64::from(limit) / 10.0,
        (total_calls as f64 / wall.as_secs_f64()) / (f64::from(limit) / 10.0)
    );
    println!(
        "throttled:   {} 429s, {} retries; window remaining at end {:?}/{:?}",
        usage.throttled, usage.retries, usage.window_remaining, usage.window_max
    );
    if let Some(mib) = peak_rss_mib() {
        println!("peak RSS:    {mib:.0} MiB (connector + in-process simulator)");
    }
    sim.shutdown().await;
    Ok(())
}
