//! The writer against the HubSpot simulator over real HTTP: a human edit between plan
//! and write is never overwritten; fault storms, an expiring token and a daily
//! allocation running out converge (or stop resumably) with no change lost and no
//! record written twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use leadroute::domain::{CrmKind, ObjectKind, OwnerId, RecordId};
use leadroute::reconcile::{Plan, PlannedChange};
use leadroute::store::Store;
use leadroute::writer::{NoProgress, RunId, StopReason, Writer, WriterSettings};
use leadroute_hubspot::{HubSpot, HubSpotAuth, HubSpotSettings, HubSpotTier};
use leadroute_sim::hubspot::{
    self as hs, EndpointFamily, Fault, FaultRule, FaultScript, HubSpotSim, HubSpotSimConfig,
    Mutation, ObjectType, Trigger,
};
use secrecy::SecretString;

use crate::helpers::sqlite_store;

const OWNER: &str = "hubspot_owner_id";

async fn sim(contacts: usize) -> HubSpotSim {
    hs::spawn(HubSpotSimConfig {
        contacts,
        companies: 20,
        owners: 8,
        ten_second_limit: 250,
        search_lag: Duration::ZERO,
        ..HubSpotSimConfig::default()
    })
    .await
    .expect("spawn the HubSpot simulator")
}

fn connector(sim: &HubSpotSim, oauth: bool) -> Arc<HubSpot> {
    let auth = if oauth {
        let config = sim.config();
        HubSpotAuth::OAuth {
            client_id: config.client_id.clone(),
            client_secret: SecretString::from(config.client_secret.clone()),
            refresh_token: SecretString::from(config.refresh_token.clone()),
        }
    } else {
        HubSpotAuth::PrivateApp {
            token: SecretString::from(sim.token()),
        }
    };
    let mut settings = HubSpotSettings::new(sim.base_url(), auth);
    settings.tier = HubSpotTier::ApiAddOn;
    settings.daily_reserve = 0;
    settings.request_timeout = Duration::from_secs(2);
    Arc::new(HubSpot::new(settings).expect("connector settings"))
}

fn fast() -> WriterSettings {
    WriterSettings {
        retry_min: Duration::from_millis(20),
        retry_max: Duration::from_millis(500),
        breaker_cooldown: Duration::from_millis(300),
        breaker_max_trips: 10,
        ..WriterSettings::default()
    }
}

fn owner_of(sim: &HubSpotSim) -> HashMap<String, Option<String>> {
    sim.state()
        .contacts
        .iter()
        .filter(|c| !c.archived)
        .map(|c| {
            let owner = c.properties.get(OWNER).filter(|o| !o.is_empty()).cloned();
            (c.id.to_string(), owner)
        })
        .collect()
}

/// A plan moving every live contact to the next active owner.
fn plan_moving_everyone(sim: &HubSpotSim) -> Plan {
    let state = sim.state();
    let owners: Vec<String> = state
        .owners
        .iter()
        .filter(|o| !o.archived && o.owner_type == "PERSON")
        .map(|o| o.id.to_string())
        .collect();
    assert!(owners.len() >= 3, "the simulator needs a few active owners");
    let changes = state
        .contacts
        .iter()
        .filter(|c| !c.archived)
        .map(|c| {
            let from = c.properties.get(OWNER).filter(|o| !o.is_empty()).cloned();
            let next = from
                .as_ref()
                .and_then(|f| owners.iter().position(|o| o == f))
                .map_or(0, |i| (i + 1) % owners.len());
            PlannedChange {
                object: ObjectKind::Contact,
                id: RecordId(c.id.to_string()),
                field: "owner".to_owned(),
                from: from.map(OwnerId),
                to: OwnerId(owners[next].clone()),
                rule: "test-rotation".to_owned(),
                reason: "move to the next rep".to_owned(),
                policy_version: "it".to_owned(),
                record_updated_at: None,
            }
        })
        .collect();
    Plan {
        policy_version: "it".to_owned(),
        created_at: Utc::now(),
        crm: CrmKind::Hubspot,
        changes,
        exceptions: Vec::new(),
    }
}

/// Every record holds the plan's `to` unless the journal says it was skipped because
/// someone else changed it; every change has exactly one journal row with an outcome;
/// the write log holds no no-op write and no record written twice with one value.
async fn assert_converged(sim: &HubSpotSim, store: &Store, plan: &Plan, run: &str) {
    let entries = store.journal_entries(run).await.unwrap();
    assert_eq!(
        entries.len(),
        plan.changes.len(),
        "one journal row per change"
    );
    let owners = owner_of(sim);
    for entry in &entries {
        let outcome = entry.outcome.as_deref().unwrap_or("pending");
        let now = owners.get(entry.id.as_str()).cloned().flatten();
        match outcome {
            "applied" | "unchanged" => assert_eq!(
                now.as_deref(),
                Some(entry.after.as_str()),
                "record {} journaled {outcome} but holds {now:?}",
                entry.id
            ),
            "skipped_changed" => assert_ne!(now.as_deref(), Some(entry.after.as_str())),
            other => panic!("record {} ended {other}: {:?}", entry.id, entry.message),
        }
    }
    let mut written: BTreeMap<(String, String), u32> = BTreeMap::new();
    for write in sim.write_log().iter().filter(|w| w.property == OWNER) {
        assert!(
            write.changed,
            "no-op write of {} to record {}",
            write.new_value, write.id
        );
        *written
            .entry((write.id.clone(), write.new_value.clone()))
            .or_default() += 1;
    }
    for ((id, value), count) in written {
        assert_eq!(count, 1, "record {id} written with {value} {count} times");
    }
}

/// Applies, resuming after resumable stops, up to `rounds` times.
async fn apply_until_done(
    make: impl Fn() -> Arc<HubSpot>,
    store: &Store,
    plan: &Plan,
    run: &str,
    rounds: usize,
) -> usize {
    for round in 0..rounds {
        let writer = Writer::new(make(), store.clone(), fast());
        let report = if round == 0 {
            writer.apply(plan, RunId::new(run), &NoProgress).await
        } else {
            writer.resume(&RunId::new(run), &NoProgress).await
        }
        .unwrap();
        if report.is_complete() {
            return round + 1;
        }
        eprintln!("round {round} stopped: {report}");
    }
    panic!("the run did not converge in {rounds} rounds");
}

#[tokio::test]
async fn a_human_edit_between_plan_and_write_is_never_overwritten() {
    let sim = sim(250).await;
    let test_store = sqlite_store().await;
    let store = test_store.store.clone();
    let plan = plan_moving_everyone(&sim);
    // Between plan and write, people reassign a few records by hand.
    let human = sim.state().owners[0].id.to_string();
    let edited: Vec<String> = plan.changes[..250]
        .iter()
        .step_by(50)
        .filter(|c| c.to.as_str() != human && c.from.as_ref().map(|f| f.as_str()) != Some(&human))
        .map(|c| c.id.0.clone())
        .collect();
    assert!(!edited.is_empty());
    for id in &edited {
        sim.mutate(Mutation::SetOwner {
            object: ObjectType::Contacts,
            id: id.clone(),
            owner_id: human.clone(),
        })
        .unwrap();
    }
    let writer = Writer::new(connector(&sim, false), store.clone(), fast());
    let report = writer
        .apply(&plan, RunId::new("race"), &NoProgress)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.skipped_changed as usize, edited.len());
    assert_eq!(report.write_calls, 3, "ceil((250 - edited) / 100)");
    let owners = owner_of(&sim);
    for id in &edited {
        assert_eq!(
            owners[id].as_deref(),
            Some(human.as_str()),
            "human edit on {id} kept"
        );
    }
    assert!(
        report.race_window.is_some(),
        "the residual race window is measured"
    );
    assert_converged(&sim, &store, &plan, "race").await;
    sim.shutdown().await;
    test_store.cleanup().await;
}

#[tokio::test]
async fn a_fault_storm_converges_with_no_change_lost_or_written_twice() {
    let sim = sim(1500).await;
    let test_store = sqlite_store().await;
    let store = test_store.store.clone();
    let plan = plan_moving_everyone(&sim);
    let p = |p: f64| Trigger::Probability { p };
    // SECONDLY 429s (the ten-second kind makes the connector wait out a whole 10 s
    // window each time, which would only make this test slow, not harder).
    sim.set_faults(FaultScript {
        seed: 7,
        rules: vec![
            FaultRule {
                families: vec![],
                fault: Fault::RateLimit {
                    policy: "SECONDLY".to_owned(),
                },
                trigger: p(0.30),
            },
            FaultRule {
                families: vec![],
                fault: Fault::ServerError { status: 503 },
                trigger: p(0.05),
            },
            FaultRule {
                families: vec![],
                fault: Fault::ConnectionReset,
                trigger: p(0.05),
            },
            FaultRule {
                families: vec![],
                fault: Fault::Slow { delay_ms: 300 },
                trigger: p(0.05),
            },
            FaultRule {
                families: vec![EndpointFamily::BatchUpdate],
                fault: Fault::PartialBatchFailure {
                    fraction: 0.1,
                    category: "INTERNAL_ERROR".to_owned(),
                },
                trigger: p(0.3),
            },
        ],
        expire_tokens: false,
    });
    let rounds = apply_until_done(|| connector(&sim, false), &store, &plan, "storm", 10).await;
    let stats = sim.stats();
    eprintln!(
        "fault storm converged in {rounds} round(s); statuses {:?}, resets {}",
        stats.statuses, stats.connection_resets
    );
    assert!(stats.rate_limited > 0, "the storm served 429s");
    sim.set_faults(FaultScript::default());
    assert_converged(&sim, &store, &plan, "storm").await;
    sim.shutdown().await;
    test_store.cleanup().await;
}

#[tokio::test]
async fn an_expiring_token_and_a_daily_allocation_running_out_stop_resumably_and_lose_nothing() {
    let sim = sim(500).await;
    let test_store = sqlite_store().await;
    let store = test_store.store.clone();
    let plan = plan_moving_everyone(&sim);
    // Every OAuth token dies mid-run: the connector refreshes and carries on.
    sim.set_faults(FaultScript {
        seed: 1,
        rules: vec![],
        expire_tokens: true,
    });
    // Two batches in, HubSpot says the daily allocation is gone.
    let writer = Writer::new(connector(&sim, true), store.clone(), fast());
    let warmup = Plan {
        changes: plan.changes[..200].to_vec(),
        ..plan.clone()
    };
    let first = writer.apply(&warmup, RunId::new("warmup"), &NoProgress);
    assert!(first.await.unwrap().is_complete());
    drop(writer);
    sim.set_faults(FaultScript {
        seed: 2,
        rules: vec![FaultRule {
            families: vec![EndpointFamily::BatchUpdate],
            fault: Fault::RateLimit {
                policy: "DAILY".to_owned(),
            },
            trigger: Trigger::Always,
        }],
        expire_tokens: true,
    });
    let rest = Plan {
        changes: plan.changes[200..].to_vec(),
        ..plan.clone()
    };
    let writer = Writer::new(connector(&sim, true), store.clone(), fast());
    let report = writer
        .apply(&rest, RunId::new("daily"), &NoProgress)
        .await
        .unwrap();
    let stop = report.stopped.clone().expect("the run stops for the day");
    assert_eq!(stop.reason, StopReason::QuotaExhausted, "{report}");
    assert!(stop.resume_at.is_some(), "says when to resume");
    assert_eq!(report.pending, rest.changes.len() as u64, "nothing lost");
    // The next day (a new process, the allocation back): the same run finishes. The
    // connector shares its limits per portal while any instance lives: drop ours.
    drop(writer);
    sim.set_faults(FaultScript::default());
    let writer = Writer::new(connector(&sim, true), store.clone(), fast());
    let report = writer
        .resume(&RunId::new("daily"), &NoProgress)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    assert!(sim.stats().oauth_refreshes >= 2, "tokens were refreshed");
    assert_converged(&sim, &store, &rest, "daily").await;
    sim.shutdown().await;
    test_store.cleanup().await;
}

/// A small deterministic generator for kill delays (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}

/// The crash harness: the `leadroute` binary applies a plan of ≥ 20,000 changes against
/// the simulator and is killed with SIGKILL at random moments at least 20 times,
/// restarted each time with the same command. At the end the CRM equals the plan,
/// every change is journaled exactly once, and no record was written twice.
/// `LEADROUTE_CRASH_CHANGES` and `LEADROUTE_CRASH_KILLS` scale it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_during_a_backfill_never_loses_or_repeats_a_change() {
    let changes: usize = std::env::var("LEADROUTE_CRASH_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let kills: usize = std::env::var("LEADROUTE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let sim = sim(changes).await;
    let plan = plan_moving_everyone(&sim);
    assert!(plan.changes.len() >= changes.min(20_000) * 9 / 10);
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.json");
    std::fs::write(&plan_path, serde_json::to_string(&plan).unwrap()).unwrap();
    let db = dir.path().join("leadroute.db");
    let store_url = format!("sqlite://{}", db.display());
    let binary = env!("CARGO_BIN_EXE_leadroute");
    let command = || {
        let mut command = std::process::Command::new(binary);
        command
            .args(["apply", "--plan"])
            .arg(&plan_path)
            .args(["--run-id", "crash", "--yes"])
            .env_clear()
            .env("LEADROUTE_CRM_KIND", "hubspot")
            .env("LEADROUTE_CRM_BASE_URL", sim.base_url())
            .env("LEADROUTE_CRM_TOKEN", sim.token())
            .env("LEADROUTE_CRM_TIER", "api_add_on")
            .env("LEADROUTE_STORE_URL", &store_url)
            .env("LEADROUTE_LOG", "error")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command
    };
    let started = std::time::Instant::now();
    // First life: Ctrl-C (SIGINT) mid-run finishes the in-flight batch, leaves no
    // write in doubt, and exits non-zero naming how to resume.
    let mut child = command()
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start leadroute");
    // Interrupt once batches are landing (the signal handler is installed by then).
    let watcher = Store::open(&store_url).await.unwrap();
    crate::helpers::wait_for("the first batches to be journaled", 60, || {
        let watcher = watcher.clone();
        async move {
            let counts = watcher.journal_counts("crash").await.ok()?;
            (counts.done() > 0).then_some(())
        }
    })
    .await;
    watcher.close().await;
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("send SIGINT");
    assert!(interrupted.success());
    let output = tokio::task::spawn_blocking(move || {
        child.wait().unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut text).unwrap();
        text
    })
    .await
    .unwrap();
    assert!(output.contains("resume with"), "{output}");
    {
        let store = Store::open(&store_url).await.unwrap();
        let open = store.journal_open_entries("crash").await.unwrap();
        assert!(
            open.iter().all(|e| e.state == "planned"),
            "no write in doubt after Ctrl-C"
        );
        assert!(!open.is_empty(), "stopped before the end");
        store.close().await;
    }
    let mut rng = Lcg(0x5eed);
    let mut killed = 0;
    let mut finished = false;
    let mut last_error = String::new();
    for _ in 0..(kills + 30) {
        if killed < kills {
            let mut child = command().spawn().expect("start leadroute");
            let wait = Duration::from_millis(rng.next_ms(150, 900));
            tokio::time::sleep(wait).await;
            if let Some(status) = child.try_wait().unwrap() {
                if status.success() {
                    finished = true;
                    break;
                }
                continue;
            }
            child.kill().expect("SIGKILL leadroute");
            child.wait().unwrap();
            killed += 1;
            continue;
        }
        // The last life runs to the end; keep what it says in case it fails.
        let output = tokio::task::spawn_blocking({
            let mut last = command();
            last.stderr(std::process::Stdio::piped());
            move || last.output()
        })
        .await
        .unwrap()
        .expect("run leadroute");
        if output.status.success() {
            finished = true;
            break;
        }
        last_error = String::from_utf8_lossy(&output.stderr).into_owned();
    }
    eprintln!(
        "crash harness: {} changes, {killed} kills, {:.1} s",
        plan.changes.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(finished, "leadroute never finished the run: {last_error}");
    assert!(
        killed >= kills,
        "the run finished after only {killed} kills; raise LEADROUTE_CRASH_CHANGES"
    );
    let store = Store::open(&store_url).await.unwrap();
    assert_converged(&sim, &store, &plan, "crash").await;
    store.close().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn salesforce_strict_writes_converge_and_keep_a_human_edit_and_queue_validation_failures() {
    use leadroute_salesforce::{Salesforce, SalesforceAuth, SalesforceSettings};
    use leadroute_sim::salesforce::{self as sf, SalesforceSimConfig};

    let config = SalesforceSimConfig {
        leads: 450,
        contacts: 50,
        accounts: 30,
        users: 8,
        queues: 2,
        locked_lead_fraction: 0.02,
        ..SalesforceSimConfig::default()
    };
    let sim = sf::spawn(config.clone())
        .await
        .expect("spawn the Salesforce simulator");
    let state = sim.state();
    let users: Vec<String> = state
        .users
        .iter()
        .filter(|u| u.is_active)
        .map(|u| u.id.clone())
        .collect();
    assert!(users.len() >= 3);
    let leads: Vec<_> = state
        .leads
        .iter()
        .filter(|l| !l.is_converted && !l.is_deleted)
        .collect();
    let changes: Vec<PlannedChange> = leads
        .iter()
        .map(|l| {
            let next = users
                .iter()
                .position(|u| *u == l.owner_id)
                .map_or(0, |i| (i + 1) % users.len());
            PlannedChange {
                object: ObjectKind::Lead,
                id: RecordId(l.id.clone()),
                field: "owner".to_owned(),
                from: Some(OwnerId(l.owner_id.clone())),
                to: OwnerId(users[next].clone()),
                rule: "test-rotation".to_owned(),
                reason: "move to the next rep".to_owned(),
                policy_version: "it".to_owned(),
                record_updated_at: None,
            }
        })
        .collect();
    let locked: Vec<String> = leads
        .iter()
        .filter(|l| l.routing_locked)
        .map(|l| l.id.clone())
        .collect();
    let plan = Plan {
        policy_version: "it".to_owned(),
        created_at: Utc::now(),
        crm: CrmKind::Salesforce,
        changes,
        exceptions: Vec::new(),
    };
    // A human reassigns a few leads after the plan was made.
    let edited: Vec<&PlannedChange> = plan
        .changes
        .iter()
        .filter(|c| !locked.contains(&c.id.0))
        .step_by(60)
        .collect();
    let human_owner = |c: &PlannedChange| {
        users
            .iter()
            .find(|u| Some(u.as_str()) != c.from.as_ref().map(|f| f.as_str()) && **u != c.to.0)
            .cloned()
            .unwrap()
    };
    for change in &edited {
        sim.mutate(sf::Mutation::ChangeOwner {
            object: "Lead".to_owned(),
            id: change.id.0.clone(),
            owner_id: human_owner(change),
        })
        .unwrap();
    }
    let mut settings = SalesforceSettings::new(
        sim.base_url(),
        SalesforceAuth::RefreshToken {
            client_id: config.client_id.clone(),
            client_secret: Some(SecretString::from(config.client_secret.clone())),
            refresh_token: SecretString::from(config.refresh_token.clone()),
        },
    );
    settings.organization_id = Some(sim.org_id());
    settings.strict_writes = true;
    settings.retry_base = Duration::from_millis(5);
    let crm = Arc::new(Salesforce::new(settings).expect("connector settings"));
    let test_store = sqlite_store().await;
    let store = test_store.store.clone();
    let writer = Writer::new(
        crm,
        store.clone(),
        WriterSettings {
            strict: true,
            ..fast()
        },
    );
    let report = writer
        .apply(&plan, RunId::new("sf"), &NoProgress)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    assert!(report.conditional_writes);
    assert_eq!(report.skipped_changed as usize, edited.len(), "{report}");
    assert_eq!(report.rejected as usize, locked.len(), "{report}");
    assert_eq!(report.exceptions as usize, locked.len());
    let (min_writes, _) = writer.minimum_calls(plan.changes.len() - edited.len());
    eprintln!("salesforce strict: {report}");
    assert!(report.write_calls <= min_writes + 1, "{report}");
    let owners: HashMap<String, String> = sim
        .state()
        .leads
        .into_iter()
        .map(|l| (l.id, l.owner_id))
        .collect();
    for change in &plan.changes {
        let now = &owners[&change.id.0];
        if edited.iter().any(|e| e.id == change.id) {
            assert_eq!(
                *now,
                human_owner(change),
                "human edit on {} kept",
                change.id
            );
        } else if locked.contains(&change.id.0) {
            assert_eq!(Some(now.as_str()), change.from.as_ref().map(|f| f.as_str()));
        } else {
            assert_eq!(*now, change.to.0, "lead {} converged", change.id);
        }
    }
    let mut written: BTreeMap<(String, String), u32> = BTreeMap::new();
    for write in sim
        .write_log()
        .iter()
        .filter(|w| w.field.eq_ignore_ascii_case("OwnerId"))
    {
        assert_ne!(
            write.source, "assignment_rule",
            "Sforce-Auto-Assign: FALSE was sent"
        );
        assert_ne!(write.old, write.new, "no-op write on {}", write.id);
        *written
            .entry((write.id.clone(), write.new.to_string()))
            .or_default() += 1;
    }
    assert!(written.values().all(|n| *n == 1), "no record written twice");
    sim.shutdown().await;
    test_store.cleanup().await;
}

/// The journal's story on every backend: a run is journaled whole, intents and
/// outcomes are recorded once, exceptions queue and close.
#[tokio::test]
async fn the_journal_keeps_one_outcome_per_change_on_every_backend() {
    use leadroute::store::{
        BatchIntent, JournalOutcome, JournalStep, NewException, NewRun, RunStatus,
    };
    use leadroute_crm::RejectKind;

    for test_store in crate::helpers::all_stores().await {
        let store = test_store.store.clone();
        let label = test_store.label;
        let changes: Vec<PlannedChange> = (0..1_200)
            .map(|i| PlannedChange {
                object: ObjectKind::Contact,
                id: RecordId(format!("{i}")),
                field: "owner".to_owned(),
                from: (i % 2 == 0).then(|| OwnerId::new("a")),
                to: OwnerId::new("b"),
                rule: "r".to_owned(),
                reason: "why".to_owned(),
                policy_version: "v".to_owned(),
                record_updated_at: Some(Utc::now()),
            })
            .collect();
        let run = NewRun {
            run_id: "story",
            crm: CrmKind::Hubspot,
            kind: "backfill",
            parent_run: None,
            policy_version: "v",
        };
        let now = Utc::now();
        store.journal_create_run(&run, &changes, now).await.unwrap();
        store
            .journal_intent("story", 0, ObjectKind::Contact, &[0, 1, 2], now)
            .await
            .unwrap();
        let open = store.journal_open_entries("story").await.unwrap();
        assert_eq!(open.len(), 1_200, "{label}");
        assert_eq!(
            open.iter().filter(|e| e.state == "intent").count(),
            3,
            "{label}"
        );
        assert!(open[0].sent && open[0].before.is_some() && open[1].before.is_none());
        let outcomes = vec![
            (0, JournalOutcome::Applied),
            (
                1,
                JournalOutcome::SkippedChanged {
                    observed: Some(OwnerId::new("human")),
                },
            ),
            (
                2,
                JournalOutcome::Rejected {
                    kind: RejectKind::InactiveOwner,
                    code: "INVALID_OPTION".to_owned(),
                    message: "inactive".to_owned(),
                    replan: true,
                },
            ),
        ];
        store
            .journal_outcomes("story", &outcomes, now)
            .await
            .unwrap();
        // A second outcome for the same change is ignored: journaled exactly once.
        store
            .journal_outcomes("story", &[(0, JournalOutcome::Unchanged)], now)
            .await
            .unwrap();
        let counts = store.journal_counts("story").await.unwrap();
        assert_eq!(
            (
                counts.applied,
                counts.skipped_changed,
                counts.rejected,
                counts.pending
            ),
            (1, 1, 1, 1_197),
            "{label}"
        );
        assert_eq!(store.journal_next_batch_id("story").await.unwrap(), 1);
        let entries = store.journal_entries("story").await.unwrap();
        assert_eq!(
            entries[1].observed_owner,
            Some(OwnerId::new("human")),
            "{label}"
        );
        assert!(entries[2].replan, "{label}");

        // One step: batch 0's result and mixed outcomes, a requeue, and batch 1's intent
        // over more rows than one statement carries, all in one commit.
        let big: Vec<i64> = (100..1_100).collect();
        let step_outcomes = vec![
            (3, JournalOutcome::Applied),
            (4, JournalOutcome::Unchanged),
            (5, JournalOutcome::Applied),
            (
                6,
                JournalOutcome::Failed {
                    message: "gave up".to_owned(),
                },
            ),
        ];
        let requeue = vec![
            (7, "locked; will retry".to_owned()),
            (8, "locked; will retry".to_owned()),
        ];
        store
            .journal_step(
                "story",
                JournalStep {
                    batch_result: Some((0, "ok")),
                    outcomes: &step_outcomes,
                    requeue: &requeue,
                    intent: Some(BatchIntent {
                        batch_id: 1,
                        object: ObjectKind::Contact,
                        seqs: &big,
                        lease_epoch: Some(3),
                    }),
                },
                now,
            )
            .await
            .unwrap();
        let counts = store.journal_counts("story").await.unwrap();
        assert_eq!(
            (
                counts.applied,
                counts.unchanged,
                counts.failed,
                counts.pending
            ),
            (3, 1, 1, 1_193),
            "{label}"
        );
        let entries = store.journal_entries("story").await.unwrap();
        assert_eq!(entries[7].state, "planned", "{label}");
        assert_eq!(
            entries[7].message.as_deref(),
            Some("locked; will retry"),
            "{label}"
        );
        assert!(
            entries[100..1_100]
                .iter()
                .all(|e| e.state == "intent" && e.sent),
            "{label}: every row of the large intent is marked"
        );
        assert_eq!(entries[1_100].state, "planned", "{label}");
        assert_eq!(store.journal_next_batch_id("story").await.unwrap(), 2);
        assert_eq!(
            store.journal_batch_epochs("story").await.unwrap(),
            vec![(0, None), (1, Some(3))],
            "{label}: the fencing epoch is journaled with its batch"
        );
        store
            .journal_set_run_status("story", RunStatus::Paused, Some("quota"), Some(now), now)
            .await
            .unwrap();
        let unfinished = store
            .journal_unfinished_run(CrmKind::Hubspot, "backfill")
            .await
            .unwrap()
            .expect("the paused run is resumable");
        assert_eq!(unfinished.status, RunStatus::Paused, "{label}");
        let exception = NewException {
            crm: CrmKind::Hubspot,
            object: ObjectKind::Contact,
            id: RecordId::from("9"),
            kind: "validation".to_owned(),
            rule: "r".to_owned(),
            reason: "why".to_owned(),
            code: Some("VALIDATION_ERROR".to_owned()),
            message: None,
            run_id: Some("story".to_owned()),
            seq: Some(9),
            before: None,
            desired: Some(OwnerId::new("b")),
        };
        let id = store.exception_add(&exception, now).await.unwrap();
        assert_eq!(
            store.exception_add(&exception, now).await.unwrap(),
            id,
            "deduplicated"
        );
        store
            .exception_close(id, "resolved", Some(&OwnerId::new("c")), Some("x"), now)
            .await
            .unwrap();
        assert!(
            store.exceptions(Some("open")).await.unwrap().is_empty(),
            "{label}"
        );
        test_store.cleanup().await;
    }
}

/// The commands as a user runs them: `apply` refuses to write without confirmation
/// when not interactive, applies with `--yes`, `rollback` reverts the run, and the
/// exceptions queue lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_rollback_and_exceptions_work_from_the_command_line() {
    let sim = sim(300).await;
    let plan = plan_moving_everyone(&sim);
    let before = owner_of(&sim);
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.json");
    std::fs::write(&plan_path, serde_json::to_string(&plan).unwrap()).unwrap();
    let store_url = format!("sqlite://{}", dir.path().join("leadroute.db").display());
    let run = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_leadroute"));
        command
            .args(args)
            .env_clear()
            .env("LEADROUTE_CRM_KIND", "hubspot")
            .env("LEADROUTE_CRM_BASE_URL", sim.base_url())
            .env("LEADROUTE_CRM_TOKEN", sim.token())
            .env("LEADROUTE_CRM_TIER", "api_add_on")
            .env("LEADROUTE_STORE_URL", &store_url)
            .stdin(std::process::Stdio::null());
        async move {
            tokio::task::spawn_blocking(move || command.output())
                .await
                .unwrap()
                .expect("run leadroute")
        }
    };
    let plan_arg = plan_path.to_str().unwrap();
    let refused = run(&["apply", "--plan", plan_arg]).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(
        sim.write_log().is_empty(),
        "nothing written without confirmation"
    );
    let summary = String::from_utf8_lossy(&refused.stdout);
    assert!(
        summary.contains("write calls"),
        "the summary comes first: {summary}"
    );

    let applied = run(&["apply", "--plan", plan_arg, "--run-id", "cli", "--yes"]).await;
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let after = owner_of(&sim);
    for change in &plan.changes {
        assert_eq!(after[&change.id.0].as_deref(), Some(change.to.as_str()));
    }

    let writes = sim.write_log().len();
    let dry = run(&["rollback", "cli", "--dry-run"]).await;
    let dry_out = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{dry_out}{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(dry_out.contains("dry run: would revert"), "{dry_out}");
    assert_eq!(sim.write_log().len(), writes, "a dry run writes nothing");

    let rolled_back = run(&["rollback", "cli", "--yes", "--verbose"]).await;
    let stdout = String::from_utf8_lossy(&rolled_back.stdout);
    let stderr = String::from_utf8_lossy(&rolled_back.stderr);
    // Reverts the CRM refuses (an old owner deactivated since) are queued as
    // exceptions, and the command says so with a non-zero exit.
    let refused = !rolled_back.status.success();
    if refused {
        assert!(
            stderr.contains("need a person") && stdout.contains("exceptions queued"),
            "{stdout}{stderr}"
        );
    }
    let again = run(&["rollback", "cli", "--yes"]).await;
    assert!(!again.status.success(), "a run is rolled back once");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already rolled back"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let runs = run(&["runs", "--format", "json"]).await;
    assert!(runs.status.success());
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["kind"], "rollback", "newest first");
    assert_eq!(runs[0]["parent_run"], "cli");
    assert_eq!(runs[1]["run_id"], "cli");
    assert_eq!(runs[1]["applied"], plan.changes.len() as u64);
    let reverted = owner_of(&sim);
    for change in &plan.changes {
        match &change.from {
            // Reverted, or reported as left alone (e.g. the old owner was deactivated
            // since, and HubSpot refuses it).
            Some(from) => assert!(
                reverted[&change.id.0].as_deref() == Some(from.as_str())
                    || stdout.contains(&format!("contact:{}: ", change.id)),
                "record {} neither reverted nor reported: {stdout}",
                change.id
            ),
            None => assert!(stdout.contains(&format!("contact:{}: it had no owner", change.id))),
        }
    }
    assert_eq!(before.len(), reverted.len());

    let listed = run(&["exceptions", "list"]).await;
    assert!(listed.status.success());
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).contains("no open exceptions"),
        !refused
    );
    sim.shutdown().await;
}

/// `backfill` as a user runs it: mirror, dry run (nothing written), backfill with a
/// policy, then re-sync and backfill again: nothing left to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_plans_from_the_mirror_applies_and_then_finds_nothing_left() {
    let sim = sim(300).await;
    let owners: Vec<String> = sim
        .state()
        .owners
        .iter()
        .filter(|o| !o.archived && o.owner_type == "PERSON")
        .map(|o| o.id.to_string())
        .take(3)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut policy = String::from("[settings]\nname = \"it\"\n\n");
    for (i, owner) in owners.iter().enumerate() {
        policy.push_str(&format!("[reps.r{i}]\nowner = \"{owner}\"\n\n"));
    }
    let members: Vec<String> = (0..owners.len()).map(|i| format!("\"r{i}\"")).collect();
    policy.push_str(&format!(
        "[pools.all]\nstrategy = \"round_robin\"\nmembers = [{}]\n\n[default]\naction = \"pool\"\npool = \"all\"\n",
        members.join(", ")
    ));
    let policy_path = dir.path().join("policy.toml");
    std::fs::write(&policy_path, policy).unwrap();
    let config_path = dir.path().join("leadroute.toml");
    std::fs::write(
        &config_path,
        format!(
            "[crm]\nkind = \"hubspot\"\nbase_url = \"{}\"\ntoken = \"{}\"\ntier = \"api_add_on\"\n\n[store]\nurl = \"sqlite://{}\"\n\n[policy]\npath = \"{}\"\n",
            sim.base_url(),
            sim.token(),
            dir.path().join("leadroute.db").display(),
            policy_path.display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_leadroute"));
        command
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .env_clear()
            .stdin(std::process::Stdio::null());
        async move {
            let output = tokio::task::spawn_blocking(move || command.output())
                .await
                .unwrap()
                .expect("run leadroute");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            (output.status.success(), text)
        }
    };
    let (ok, out) = run(&["sync", "--once"]).await;
    assert!(ok, "{out}");
    let (ok, out) = run(&["backfill", "--dry-run"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("dry run"), "{out}");
    // Per-rep deltas name the reps (issue 9 item 12), not bare owner ids.
    assert!(
        out.contains(&format!("r0 ({})", owners[0])),
        "per-rep deltas name owners: {out}"
    );
    assert!(sim.write_log().is_empty(), "a dry run writes nothing");
    let (ok, out) = run(&["backfill", "--yes"]).await;
    assert!(ok, "{out}");
    let moved = sim.write_log().len();
    assert!(moved > 0, "{out}");
    for (id, owner) in owner_of(&sim) {
        assert!(
            owner.as_ref().is_some_and(|o| owners.contains(o)),
            "contact {id} is owned by {owner:?}, outside the pool"
        );
    }
    let (ok, out) = run(&["sync", "--once"]).await;
    assert!(ok, "{out}");
    let (ok, out) = run(&["backfill", "--yes"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("already has its desired owner"), "{out}");
    assert_eq!(
        sim.write_log().len(),
        moved,
        "the second backfill wrote nothing"
    );

    // `explain` tells a written record's journey: the backfill's write, applied.
    let write = sim
        .write_log()
        .into_iter()
        .find(|w| w.property == OWNER)
        .expect("an owner write");
    let record = format!("hubspot:contact:{}", write.id);
    let (ok, out) = run(&["explain", &record]).await;
    assert!(ok, "{out}");
    let history = &out[out.find("history:").expect("a history section")..];
    let line = history
        .lines()
        .find(|l| l.trim_start().starts_with("write "))
        .unwrap_or_else(|| panic!("no journaled write in {history}"));
    assert!(
        line.contains("(backfill)")
            && line.contains(&format!("({})", write.new_value))
            && line.ends_with("applied"),
        "{line}"
    );
    assert!(history.contains("first stored"), "{history}");
    let (ok, out) = run(&["explain", &record, "--json"]).await;
    assert!(ok, "{out}");
    // `run` appends stderr to stdout: the JSON document is the first `{` to its `\n}`.
    let start = out.find('{').expect("a JSON object");
    let end = out.find("\n}").expect("the end of the JSON object") + 2;
    let json: serde_json::Value =
        serde_json::from_str(&out[start..end]).expect("explain --json is JSON");
    let writes = json["history"]["writes"]
        .as_array()
        .expect("history.writes");
    assert_eq!(writes.len(), 1, "{json}");
    assert_eq!(writes[0]["outcome"], "applied");
    assert_eq!(writes[0]["run_kind"], "backfill");
    assert_eq!(writes[0]["to"], write.new_value.as_str());
    assert!(json["history"]["arrival"]["first_seen_at"].is_string());
    sim.shutdown().await;
}

/// Every CRM call answers after `delay_ms` (a slow org keeps a writer busy).
fn slow(sim: &HubSpotSim, delay_ms: u64) {
    sim.set_faults(FaultScript {
        rules: vec![FaultRule {
            families: Vec::new(),
            fault: Fault::Slow { delay_ms },
            trigger: Trigger::Always,
        }],
        ..FaultScript::default()
    });
}

/// Waits until some writer holds `run`'s lease.
async fn wait_leased(store: &Store, run: &str) -> leadroute::store::RunLease {
    crate::helpers::wait_for("a writer to take the lease", 30, || async {
        store.run_lease(run).await.ok().flatten()
    })
    .await
}

/// The run lease on every backend: while one writer drives a run, a second one (a cron
/// backfill beside an operator's resume) is refused with who holds it and until when,
/// and sends nothing; once the first finishes, or a foreign holder's lease lapses, the
/// run resumes; a writer whose lease is taken from it makes no further call and leaves
/// the run to the new holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_never_drive_one_run_at_once() {
    use leadroute::store::RunStatus;
    use leadroute::writer::WriterError;

    for test_store in crate::helpers::all_stores().await {
        let store = test_store.store.clone();
        let label = test_store.label;
        let sim = sim(300).await;
        let plan = plan_moving_everyone(&sim);
        let settings = WriterSettings {
            lease_ttl: Duration::from_secs(2),
            lease_renew: Duration::from_millis(50),
            ..fast()
        };

        // A drives the run against a slow CRM (each call takes 1.5 s, so ≥ 6 s).
        slow(&sim, 1_500);
        let first = Writer::new(connector(&sim, false), store.clone(), settings.clone());
        let first_task = tokio::spawn({
            let plan = plan.clone();
            async move { first.apply(&plan, RunId::new("shared"), &NoProgress).await }
        });
        wait_leased(&store, "shared").await;

        // B refuses, naming the run, the holder and the lease's end.
        let second = Writer::new(connector(&sim, false), store.clone(), settings.clone());
        let err = second
            .resume(&RunId::new("shared"), &NoProgress)
            .await
            .expect_err("a second writer must not drive a leased run");
        assert!(
            matches!(err, WriterError::LeaseHeld { .. }),
            "{label}: {err}"
        );
        let message = err.to_string();
        for part in [
            "run shared",
            &format!("leadroute process {}", std::process::id()),
            "runs until",
            "Wait for that process",
        ] {
            assert!(message.contains(part), "{label}: {part:?} in {message}");
        }
        // Past A's first TTL, A's heartbeat still keeps B out.
        tokio::time::sleep(Duration::from_millis(2_300)).await;
        assert!(
            matches!(
                second.resume(&RunId::new("shared"), &NoProgress).await,
                Err(WriterError::LeaseHeld { .. })
            ),
            "{label}: the heartbeat renews the lease"
        );

        // A finishes and releases; B resumes at once and finds nothing left to do.
        let report = first_task.await.unwrap().unwrap();
        assert!(report.is_complete(), "{label}: {report}");
        assert_eq!(store.run_lease("shared").await.unwrap(), None, "{label}");
        sim.set_faults(FaultScript::default());
        let writes = sim.write_log().len();
        let again = second
            .resume(&RunId::new("shared"), &NoProgress)
            .await
            .unwrap();
        assert!(again.is_complete() && again.write_calls == 0, "{label}");
        assert_eq!(sim.write_log().len(), writes);
        // No record written twice: B never wrote beside A.
        assert_converged(&sim, &store, &plan, "shared").await;

        // A holder on another machine that died: refused until its lease lapses, then
        // the run resumes without waiting any longer.
        let foreign = "elsewhere:4242:1:0123456789ab:1";
        store
            .run_lease_acquire("shared", foreign, Duration::from_millis(800))
            .await
            .unwrap();
        let err = second
            .resume(&RunId::new("shared"), &NoProgress)
            .await
            .expect_err("the foreign lease is live");
        assert!(
            err.to_string()
                .contains("leadroute process 4242 on host elsewhere"),
            "{label}: {err}"
        );
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(
            second
                .resume(&RunId::new("shared"), &NoProgress)
                .await
                .unwrap()
                .is_complete(),
            "{label}: a lapsed lease is taken"
        );

        // A writer whose lease is taken from it (as if it had stalled past the TTL)
        // makes no further CRM call and leaves the run's status to the new holder.
        let back = Plan {
            changes: plan
                .changes
                .iter()
                .map(|c| PlannedChange {
                    from: Some(c.to.clone()),
                    to: c.from.clone().unwrap_or_else(|| c.to.clone()),
                    ..c.clone()
                })
                .filter(|c| c.from.as_ref() != Some(&c.to))
                .collect(),
            ..plan.clone()
        };
        assert!(!back.changes.is_empty());
        slow(&sim, 1_500);
        let third = Writer::new(connector(&sim, false), store.clone(), settings.clone());
        let third_task = tokio::spawn({
            let back = back.clone();
            async move { third.apply(&back, RunId::new("stolen"), &NoProgress).await }
        });
        let held = wait_leased(&store, "stolen").await;
        let thief = "thief:7:1:0123456789ab:1";
        assert!(
            store
                .run_lease_take_over("stolen", thief, &held.holder, Duration::from_secs(60),)
                .await
                .unwrap()
        );
        let err = third_task.await.unwrap().expect_err("the lease was lost");
        assert!(
            matches!(err, WriterError::LeaseLost { .. }),
            "{label}: {err}"
        );
        assert!(
            err.to_string()
                .contains("leadroute process 7 on host thief"),
            "{label}: {err}"
        );
        assert_eq!(sim.write_log().len(), writes, "{label}: nothing sent");
        let run = store.journal_run("stolen").await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Running, "{label}: status left alone");
        assert_eq!(
            store.run_lease("stolen").await.unwrap().unwrap().holder,
            thief
        );
        sim.shutdown().await;
        test_store.cleanup().await;
    }
}
