//! Scale check for the Salesforce simulator: spawns an org with 100,000 leads,
//! 100,000 contacts and 20,000 accounts, then pages every lead and contact through
//! `query` + `nextRecordsUrl` at 2,000 per page, and reports spawn time, page
//! throughput and the API calls used against the minimum (ceil(rows / 2000) + 1 per
//! object, the +1 being the first query call... which is itself a page, so the
//! minimum is exactly ceil(rows / 2000)).
//!
//! Run: `cargo run -p leadroute-sim --example salesforce_scale --release`

use std::time::Instant;

use leadroute_sim::salesforce::{self, SalesforceSimConfig};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = SalesforceSimConfig {
        leads: 100_000,
        contacts: 100_000,
        accounts: 20_000,
        users: 200,
        queues: 5,
        ..SalesforceSimConfig::default()
    };
    let started = Instant::now();
    let sim = salesforce::spawn(config).await?;
    let spawn_secs = started.elapsed().as_secs_f64();
    println!("spawn: 220,000 records in {spawn_secs:.2} s");
    let http = reqwest::Client::new();
    let token = sim.token();
    for object in ["Lead", "Contact", "Account"] {
        let calls_before = sim.stats().api_used;
        let started = Instant::now();
        let soql =
            format!("SELECT Id, OwnerId, SystemModstamp FROM {object} ORDER BY SystemModstamp, Id");
        let mut page: Value = http
            .get(format!("{}/services/data/v62.0/query", sim.base_url()))
            .query(&[("q", soql.as_str())])
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        let total = page["totalSize"].as_u64().unwrap_or(0);
        let mut rows = page["records"].as_array().map_or(0, Vec::len) as u64;
        while let Some(next) = page["nextRecordsUrl"].as_str().map(str::to_owned) {
            page = http
                .get(format!("{}{next}", sim.base_url()))
                .bearer_auth(&token)
                .send()
                .await?
                .json()
                .await?;
            rows += page["records"].as_array().map_or(0, Vec::len) as u64;
        }
        let secs = started.elapsed().as_secs_f64();
        let calls = sim.stats().api_used - calls_before;
        let minimum = total.div_ceil(2_000);
        println!(
            "{object}: {rows}/{total} rows in {secs:.2} s ({:.0} rows/s), {calls} calls vs minimum {minimum} (ratio {:.2})",
            rows as f64 / secs.max(1e-9),
            calls as f64 / minimum.max(1) as f64
        );
    }
    sim.shutdown().await;
    Ok(())
}
