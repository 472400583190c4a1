//! Backfill benchmark: a 100,000-change plan applied by the writer to each simulator
//! over real HTTP, reported as ratios against the theoretical limits: write calls vs
//! ceil(N / batch), no-op writes, wall time vs what the configured rate limit allows,
//! and 429s received.
//!
//! `cargo bench --bench backfill` (all CRMs) or `cargo bench --bench backfill -- hubspot`;
//! `-- salesforce` runs both Salesforce paths (Collections and Bulk API 2.0),
//! `-- salesforce-bulk` only the bulk one.
//! `LEADROUTE_BENCH_CHANGES` scales N (default 100,000).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use leadroute::domain::{CrmKind, ObjectKind, OwnerId, RecordId};
use leadroute::reconcile::{Plan, PlannedChange};
use leadroute::store::Store;
use leadroute::writer::{ApplyReport, NoProgress, RunId, Writer, WriterSettings};
use leadroute_crm::Crm;
use secrecy::SecretString;

fn changes() -> usize {
    std::env::var("LEADROUTE_BENCH_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn plan(crm: CrmKind, object: ObjectKind, records: &[(String, String)], owners: &[String]) -> Plan {
    let changes = records
        .iter()
        .map(|(id, owner)| {
            let next = owners
                .iter()
                .position(|o| o == owner)
                .map_or(0, |i| (i + 1) % owners.len());
            PlannedChange {
                object,
                id: RecordId(id.clone()),
                field: "owner".to_owned(),
                from: (!owner.is_empty()).then(|| OwnerId(owner.clone())),
                to: OwnerId(owners[next].clone()),
                rule: "bench".to_owned(),
                reason: "rotate".to_owned(),
                policy_version: "bench".to_owned(),
                record_updated_at: None,
            }
        })
        .collect();
    Plan {
        policy_version: "bench".to_owned(),
        created_at: Utc::now(),
        crm,
        changes,
        exceptions: Vec::new(),
    }
}

struct Figures {
    crm: &'static str,
    n: usize,
    batch: usize,
    report: ApplyReport,
    wall: Duration,
    noop_writes: usize,
    throttled: u64,
    /// Calls per second the configured limit allows, if there is a short-window limit.
    rate: Option<f64>,
}

impl Figures {
    fn print(&self) {
        let min_writes = self.n.div_ceil(self.batch) as u64;
        let calls = self.report.write_calls + self.report.read_calls;
        println!("## {} ({} changes, batch {})", self.crm, self.n, self.batch);
        println!(
            "write calls      {:>8}  minimum ceil(N/batch) {:>6}  ratio {:.3} (target <= 1.02)",
            self.report.write_calls,
            min_writes,
            self.report.write_calls as f64 / min_writes as f64
        );
        println!(
            "compare reads    {:>8}  total calls {calls}",
            self.report.read_calls
        );
        println!("no-op writes     {:>8}  (target 0)", self.noop_writes);
        println!("429s received    {:>8}  (target 0)", self.throttled);
        match self.rate {
            Some(rate) => {
                let bound = calls as f64 / rate;
                println!(
                    "wall time        {:>8.1} s  bound at {rate:.1} calls/s {bound:.1} s  ratio {:.3} (target <= 1.10)",
                    self.wall.as_secs_f64(),
                    self.wall.as_secs_f64() / bound
                );
            }
            None => println!(
                "wall time        {:>8.1} s  ({:.1} calls/s; no short-window limit to compare with)",
                self.wall.as_secs_f64(),
                calls as f64 / self.wall.as_secs_f64()
            ),
        }
        if let Some(window) = &self.report.race_window {
            println!("read-to-write    {window}");
        }
        println!(
            "outcomes         {} applied, {} unchanged, {} skipped, {} rejected, {} failed, {} pending",
            self.report.applied,
            self.report.unchanged,
            self.report.skipped_changed,
            self.report.rejected,
            self.report.failed,
            self.report.pending
        );
        println!();
    }
}

async fn run_writer<C: Crm>(crm: Arc<C>, plan: &Plan) -> (ApplyReport, Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Store::open(&url).await.expect("open the store");
    let writer = Writer::new(crm, store, WriterSettings::default());
    let started = Instant::now();
    let report = writer
        .apply(plan, RunId::new("bench"), &NoProgress)
        .await
        .expect("the writer runs");
    (report, started.elapsed())
}

async fn hubspot(n: usize) -> Figures {
    use leadroute_hubspot::{HubSpot, HubSpotAuth, HubSpotSettings, HubSpotTier};
    use leadroute_sim::hubspot::{self as hs, HubSpotSimConfig};

    // The simulator enforces Professional's 190 calls / 10 s, and the connector is
    // configured with the same tier: the limits match.
    let sim = hs::spawn(HubSpotSimConfig {
        contacts: n,
        companies: 200,
        owners: 20,
        ..HubSpotSimConfig::default()
    })
    .await
    .expect("spawn the HubSpot simulator");
    let state = sim.state();
    let owners: Vec<String> = state
        .owners
        .iter()
        .filter(|o| !o.archived && o.owner_type == "PERSON")
        .map(|o| o.id.to_string())
        .collect();
    let records: Vec<(String, String)> = state
        .contacts
        .iter()
        .filter(|c| !c.archived)
        .map(|c| {
            (
                c.id.to_string(),
                c.properties
                    .get("hubspot_owner_id")
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect();
    let plan = plan(CrmKind::Hubspot, ObjectKind::Contact, &records, &owners);
    let mut settings = HubSpotSettings::new(
        sim.base_url(),
        HubSpotAuth::PrivateApp {
            token: SecretString::from(sim.token()),
        },
    );
    settings.tier = HubSpotTier::Professional;
    let crm = Arc::new(HubSpot::new(settings).expect("connector settings"));
    let batch = crm.write_limits().max_batch;
    let (report, wall) = run_writer(crm, &plan).await;
    let log = sim.write_log();
    let noop_writes = log
        .iter()
        .filter(|w| w.property == "hubspot_owner_id" && !w.changed)
        .count();
    let throttled = sim.stats().rate_limited;
    sim.shutdown().await;
    Figures {
        crm: "HubSpot",
        n: plan.changes.len(),
        batch,
        report,
        wall,
        noop_writes,
        throttled,
        rate: Some(190.0 / 10.0),
    }
}

/// The Salesforce runs: `bulk` false writes through sObject Collections (200 per
/// call), true through Bulk API 2.0 jobs of `BULK_JOB` records. Returns the figures
/// and the org's own count of the calls it served.
async fn salesforce(n: usize, bulk: bool) -> (Figures, String) {
    use leadroute_salesforce::{Salesforce, SalesforceAuth, SalesforceSettings};
    use leadroute_sim::salesforce::{self as sf, LeadAssignmentRule, SalesforceSimConfig};

    const BULK_JOB: usize = 10_000;
    // The generator converts or deletes about 5% of leads: make enough live ones.
    let config = SalesforceSimConfig {
        leads: n + n / 10 + 100,
        contacts: 100,
        accounts: 100,
        users: 20,
        queues: 2,
        validation_rule: false,
        lead_assignment_rule: LeadAssignmentRule::Inactive,
        daily_api_limit: 1_000_000,
        ..SalesforceSimConfig::default()
    };
    let sim = sf::spawn(config.clone())
        .await
        .expect("spawn the Salesforce simulator");
    let state = sim.state();
    let owners: Vec<String> = state
        .users
        .iter()
        .filter(|u| u.is_active)
        .map(|u| u.id.clone())
        .collect();
    let records: Vec<(String, String)> = state
        .leads
        .iter()
        .filter(|l| !l.is_converted && !l.is_deleted)
        .take(n)
        .map(|l| (l.id.clone(), l.owner_id.clone()))
        .collect();
    let plan = plan(CrmKind::Salesforce, ObjectKind::Lead, &records, &owners);
    let mut settings = SalesforceSettings::new(
        sim.base_url(),
        SalesforceAuth::RefreshToken {
            client_id: config.client_id.clone(),
            client_secret: Some(SecretString::from(config.client_secret.clone())),
            refresh_token: SecretString::from(config.refresh_token.clone()),
        },
    );
    settings.organization_id = Some(sim.org_id());
    // Poll a running job every 0.5 s at most (the production default is 5 s).
    settings.bulk_poll_interval = Duration::from_millis(500);
    let crm = Arc::new(Salesforce::new(settings).expect("connector settings"));
    let batch = if bulk {
        BULK_JOB
    } else {
        crm.write_limits().max_batch
    };
    let writer_settings = WriterSettings {
        bulk,
        bulk_job_size: BULK_JOB,
        ..WriterSettings::default()
    };
    let (report, wall) = run_writer_with(crm, &plan, writer_settings).await;
    let mut per_value: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut noop_writes = 0;
    let mut sources: BTreeMap<String, u64> = BTreeMap::new();
    for write in sim
        .write_log()
        .iter()
        .filter(|w| w.field.eq_ignore_ascii_case("OwnerId"))
    {
        if write.old == write.new {
            noop_writes += 1;
        }
        *sources.entry(write.source.clone()).or_default() += 1;
        *per_value
            .entry((write.id.clone(), write.new.to_string()))
            .or_default() += 1;
    }
    let twice = per_value.values().filter(|n| **n > 1).count();
    let stats = sim.stats();
    let throttled = stats.limit_rejections;
    let extra = [
        format!(
            "org-counted calls {:>7}  (the daily allocation used: reads, writes, bulk job calls; the token request is not counted)",
            stats.api_used
        ),
        format!(
            "bulk jobs        {:>8}  owner writes by source {sources:?}; records written twice {twice}",
            report.bulk_jobs
        ),
        format!("calls by endpoint {:?}", stats.calls),
    ]
    .join("\n");
    sim.shutdown().await;
    let figures = Figures {
        crm: if bulk {
            "Salesforce Bulk API 2.0"
        } else {
            "Salesforce Collections"
        },
        n: plan.changes.len(),
        batch,
        report,
        wall,
        noop_writes,
        throttled,
        rate: None,
    };
    (figures, extra)
}

async fn run_writer_with<C: Crm>(
    crm: Arc<C>,
    plan: &Plan,
    settings: WriterSettings,
) -> (ApplyReport, Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Store::open(&url).await.expect("open the store");
    let writer = Writer::new(crm, store, settings);
    let started = Instant::now();
    let report = writer
        .apply(plan, RunId::new("bench"), &NoProgress)
        .await
        .expect("the writer runs");
    (report, started.elapsed())
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let n = changes();
    println!("# Backfill benchmark: {n} changes per CRM\n");
    if wanted("hubspot") {
        runtime.block_on(hubspot(n)).print();
    }
    for (name, bulk) in [("salesforce", false), ("salesforce-bulk", true)] {
        if wanted(name) {
            let (figures, extra) = runtime.block_on(salesforce(n, bulk));
            figures.print();
            println!("{extra}\n");
        }
    }
}
