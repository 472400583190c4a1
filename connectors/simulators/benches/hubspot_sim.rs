//! Benchmark of the HubSpot simulator at the size the mirror benchmark uses:
//! spawning 100,000 contacts + 10,000 companies, paging every contact through
//! the list endpoint (100 per call) and every contact through keyset search
//! (200 per call). Figures are printed as ratios against what HubSpot's own
//! limits allow (190 calls per 10 s; 5 searches per s), so "×N" means the
//! simulator is N times faster than the real service could ever be and will
//! not be the bottleneck of a sync benchmark.
//!
//! Run: `cargo bench -p leadroute-sim --bench hubspot_sim`

use std::time::{Duration, Instant};

use leadroute_sim::hubspot::{HubSpotSimConfig, spawn};
use serde_json::{Value, json};

const CONTACTS: usize = 100_000;
const COMPANIES: usize = 10_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let sim = spawn(HubSpotSimConfig {
        contacts: CONTACTS,
        companies: COMPANIES,
        owners: 60,
        ten_second_limit: u32::MAX,
        daily_limit: u64::MAX,
        search_per_second: u32::MAX,
        search_lag: Duration::ZERO,
        ..HubSpotSimConfig::default()
    })
    .await?;
    let spawn_time = started.elapsed();
    println!(
        "spawn {CONTACTS} contacts + {COMPANIES} companies: {spawn_time:.2?}, resident memory {}",
        resident_mib().map_or("unknown".to_owned(), |m| format!("{m:.0} MiB"))
    );

    let client = reqwest::Client::builder().no_proxy().build()?;
    let base = sim.base_url();
    let token = sim.token();

    // Full list paging.
    let started = Instant::now();
    let mut after: Option<String> = None;
    let (mut calls, mut records) = (0u64, 0usize);
    loop {
        let mut url = format!(
            "{base}/crm/v3/objects/contacts?limit=100&associations=companies&properties=email,hubspot_owner_id,lastmodifieddate,associatedcompanyid"
        );
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let page: Value = client
            .get(url)
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        calls += 1;
        records += page["results"].as_array().map_or(0, Vec::len);
        match page["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => break,
        }
    }
    let list_time = started.elapsed();
    let list_rate = calls as f64 / list_time.as_secs_f64();
    println!(
        "list: {records} records in {calls} calls (minimum {}), {list_time:.2?}, {list_rate:.0} calls/s = ×{:.1} HubSpot's 19 calls/s",
        CONTACTS.div_ceil(100),
        list_rate / 19.0
    );

    // Keyset search paging.
    let started = Instant::now();
    let (mut calls, mut records, mut last) = (0u64, 0usize, 0u64);
    loop {
        let body = json!({
            "filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": last.to_string()}]}],
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "properties": ["email", "hubspot_owner_id", "lastmodifieddate"],
            "limit": 200,
        });
        let page: Value = client
            .post(format!("{base}/crm/v3/objects/contacts/search"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        calls += 1;
        let results = page["results"].as_array().cloned().unwrap_or_default();
        if results.is_empty() {
            break;
        }
        records += results.len();
        last = results
            .last()
            .and_then(|r| r["id"].as_str())
            .and_then(|s| s.parse().ok())
            .ok_or("search result without id")?;
    }
    let search_time = started.elapsed();
    let search_rate = calls as f64 / search_time.as_secs_f64();
    println!(
        "search (keyset): {records} records in {calls} calls, {search_time:.2?}, {search_rate:.0} calls/s = ×{:.1} HubSpot's 5 searches/s",
        search_rate / 5.0
    );

    // Watermark search over the newest 5 % (index walk, not a scan).
    let state = sim.state();
    let mut stamps: Vec<i64> = state.contacts.iter().map(|c| c.updated_at_ms).collect();
    stamps.sort_unstable();
    let watermark = stamps[stamps.len() * 95 / 100];
    let started = Instant::now();
    let n = 50;
    for _ in 0..n {
        let body = json!({
            "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": watermark.to_string()}]}],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "limit": 200,
        });
        client
            .post(format!("{base}/crm/v3/objects/contacts/search"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
    }
    let per = started.elapsed() / n;
    println!(
        "search (watermark, newest 5 %): {per:.2?} per call = ×{:.1} HubSpot's 5 searches/s",
        1.0 / per.as_secs_f64() / 5.0
    );
    sim.shutdown().await;
    Ok(())
}

/// Resident set size from /proc (Linux); None elsewhere.
fn resident_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
