//! The writer against the Salesforce simulator over real HTTP on loopback: a plan
//! above the bulk threshold goes through Bulk API 2.0 (and converges with no no-op
//! write), per-record failures come back as re-plans and exceptions, and a fault storm
//! (ConcurrentRequests refusals, 5xx, resets, lost answers, slow answers, row locks,
//! an expiring session) converges with nothing lost and nothing written twice, and a
//! process killed while its bulk job runs leaves nothing written twice: `resume`
//! aborts the orphaned job before it reads or writes anything.

use leadroute::domain::OrgId;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use leadroute::domain::{CrmKind, ObjectKind, OwnerId, RecordId};
use leadroute::reconcile::{Plan, PlannedChange};
use leadroute::store::{NewRun, Store};
use leadroute::writer::{NoProgress, RunId, StopReason, Writer, WriterSettings};
use leadroute_crm::{BulkJobState, Crm, OwnerChange};
use leadroute_salesforce::{Salesforce, SalesforceAuth, SalesforceSettings};
use leadroute_sim::salesforce::{
    self as sf, FaultScript, LeadAssignmentRule, Mutation, SalesforceSim, SalesforceSimConfig,
};
use secrecy::SecretString;

use crate::helpers::sqlite_store;

fn org(leads: usize) -> SalesforceSimConfig {
    SalesforceSimConfig {
        leads,
        contacts: 50,
        accounts: 30,
        users: 8,
        queues: 2,
        // REST writes without the header, or a bulk job naming a rule, would be
        // rewritten to this queue: it proves neither path fires the rule.
        lead_assignment_rule: LeadAssignmentRule::Queue {
            queue_name: "Lead Intake".into(),
        },
        bulk_processing_delay: Duration::from_millis(20),
        ..SalesforceSimConfig::default()
    }
}

async fn spawn(config: &SalesforceSimConfig) -> SalesforceSim {
    sf::spawn(config.clone())
        .await
        .expect("spawn the Salesforce simulator")
}

/// The connector with a bulk threshold of `bulk_threshold` and quick retries.
fn connector(
    sim: &SalesforceSim,
    config: &SalesforceSimConfig,
    bulk_threshold: usize,
) -> Arc<Salesforce> {
    let mut settings = SalesforceSettings::new(
        sim.base_url(),
        SalesforceAuth::RefreshToken {
            client_id: config.client_id.clone(),
            client_secret: Some(SecretString::from(config.client_secret.clone())),
            refresh_token: SecretString::from(config.refresh_token.clone()),
        },
    );
    settings.organization_id = Some(sim.org_id());
    settings.bulk_threshold = bulk_threshold;
    settings.bulk_poll_interval = Duration::from_millis(50);
    settings.bulk_timeout = Duration::from_secs(60);
    settings.retry_base = Duration::from_millis(5);
    settings.max_retries = 10;
    settings.request_timeout = Duration::from_secs(2);
    Arc::new(Salesforce::new(settings).expect("connector settings"))
}

fn fast(bulk_job_size: usize) -> WriterSettings {
    WriterSettings {
        retry_min: Duration::from_millis(20),
        retry_max: Duration::from_millis(500),
        breaker_cooldown: Duration::from_millis(300),
        breaker_max_trips: 10,
        bulk_job_size,
        ..WriterSettings::default()
    }
}

/// Every live, unconverted lead moves to the next active user.
fn rotation(sim: &SalesforceSim) -> (Plan, Vec<String>) {
    let state = sim.state();
    let users: Vec<String> = state
        .users
        .iter()
        .filter(|u| u.is_active)
        .map(|u| u.id.clone())
        .collect();
    assert!(users.len() >= 3);
    let changes = state
        .leads
        .iter()
        .filter(|l| !l.is_converted && !l.is_deleted)
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
    let plan = Plan {
        policy_version: "it".to_owned(),
        created_at: Utc::now(),
        crm: CrmKind::Salesforce,
        changes,
        exceptions: Vec::new(),
    };
    (plan, users)
}

fn owners(sim: &SalesforceSim) -> HashMap<String, String> {
    sim.state()
        .leads
        .into_iter()
        .map(|l| (l.id, l.owner_id))
        .collect()
}

/// One journal row per change; applied/unchanged rows hold `to`, skipped ones do not;
/// rejected ones are in `rejected` and were left alone; the write log has no no-op
/// write, no record written twice with one value, and no assignment-rule rewrite.
async fn assert_converged(
    sim: &SalesforceSim,
    store: &Store,
    plan: &Plan,
    run: &str,
    rejected: &HashSet<String>,
) {
    let entries = store.journal_entries(run).await.unwrap();
    assert_eq!(
        entries.len(),
        plan.changes.len(),
        "one journal row per change"
    );
    let owners = owners(sim);
    for entry in &entries {
        let outcome = entry.outcome.as_deref().unwrap_or("pending");
        let now = &owners[entry.id.as_str()];
        match outcome {
            "applied" | "unchanged" => assert_eq!(
                now,
                entry.after.as_str(),
                "lead {} journaled {outcome} but holds {now}",
                entry.id
            ),
            "skipped_changed" => assert_ne!(now, entry.after.as_str()),
            "rejected" if rejected.contains(entry.id.as_str()) => assert_eq!(
                Some(now.as_str()),
                entry.before.as_ref().map(|b| b.as_str()),
                "rejected lead {} left alone",
                entry.id
            ),
            other => panic!("lead {} ended {other}: {:?}", entry.id, entry.message),
        }
    }
    let mut written: BTreeMap<(String, String), u32> = BTreeMap::new();
    for write in sim
        .write_log()
        .iter()
        .filter(|w| w.field.eq_ignore_ascii_case("OwnerId"))
    {
        assert_ne!(write.source, "assignment_rule", "no assignment rule ran");
        assert_ne!(write.old, write.new, "no-op write on {}", write.id);
        *written
            .entry((write.id.clone(), write.new.to_string()))
            .or_default() += 1;
    }
    for ((id, value), count) in written {
        assert_eq!(count, 1, "lead {id} written with {value} {count} times");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_above_the_bulk_threshold_goes_through_bulk_api_2_and_converges() {
    let config = SalesforceSimConfig {
        locked_lead_fraction: 0.01,
        ..org(2600)
    };
    let sim = spawn(&config).await;
    let (plan, users) = rotation(&sim);
    let state = sim.state();
    let locked: HashSet<String> = state
        .leads
        .iter()
        .filter(|l| l.routing_locked && !l.is_converted && !l.is_deleted)
        .map(|l| l.id.clone())
        .collect();
    assert!(
        !locked.is_empty(),
        "the validation rule has leads to refuse"
    );
    // After planning: a rep leaves (their new leads need a re-plan) and people
    // reassign a few leads by hand.
    let mut targets: BTreeMap<&str, usize> = BTreeMap::new();
    for change in &plan.changes {
        *targets.entry(change.to.as_str()).or_default() += 1;
    }
    let leaver = users
        .iter()
        .find(|u| {
            targets
                .get(u.as_str())
                .is_some_and(|n| (1..500).contains(n))
        })
        .or_else(|| users.iter().max_by_key(|u| targets.get(u.as_str())))
        .unwrap()
        .clone();
    sim.mutate(Mutation::DeactivateUser { id: leaver.clone() })
        .unwrap();
    // The inactive owner is refused before the validation rule runs.
    let to_leaver: HashSet<String> = plan
        .changes
        .iter()
        .filter(|c| c.to.0 == leaver)
        .map(|c| c.id.0.clone())
        .collect();
    assert!(!to_leaver.is_empty());
    let locked: HashSet<String> = locked.difference(&to_leaver).cloned().collect();
    let edited: Vec<&PlannedChange> = plan
        .changes
        .iter()
        .filter(|c| !locked.contains(&c.id.0) && !to_leaver.contains(&c.id.0))
        .step_by(97)
        .collect();
    for change in &edited {
        let human = users
            .iter()
            .find(|u| {
                **u != change.to.0
                    && Some(u.as_str()) != change.from.as_ref().map(|f| f.as_str())
                    && **u != leaver
            })
            .unwrap();
        sim.mutate(Mutation::ChangeOwner {
            object: "Lead".into(),
            id: change.id.0.clone(),
            owner_id: human.clone(),
        })
        .unwrap();
    }
    let log_before = sim.write_log().len();

    // Jobs of 1,000; the last chunk (about 470) is still above the threshold.
    let crm = connector(&sim, &config, 400);
    let test_store = sqlite_store().await;
    let store = test_store.store.clone();
    let writer = Writer::new(crm.clone(), store.clone(), fast(1000));
    let report = writer
        .apply(&plan, RunId::new("sf-bulk"), &NoProgress)
        .await
        .unwrap();
    eprintln!("salesforce bulk: {report}");
    assert!(report.is_complete(), "{report}");
    let n = plan.changes.len() as u64;
    assert!(n % 1000 > 400, "{n} changes: the tail fills a job");
    assert_eq!(report.bulk_jobs, n.div_ceil(1000), "{report}");
    assert_eq!(report.write_calls, report.bulk_jobs, "{report}");
    assert_eq!(report.skipped_changed as usize, edited.len());
    assert_eq!(report.replan.len(), edited.len() + to_leaver.len());
    assert_eq!(
        report.exceptions as usize,
        locked.len(),
        "validation failures queue"
    );
    assert_eq!(
        report.rejected as usize,
        locked.len() + to_leaver.len(),
        "{report}"
    );
    let stats = sim.stats();
    assert_eq!(
        stats.calls.get("POST jobs/ingest").copied(),
        Some(report.bulk_jobs),
        "{:?}",
        stats.calls
    );
    assert_eq!(
        stats.calls.get("PATCH composite/sobjects"),
        None,
        "no Collections write: {:?}",
        stats.calls
    );
    let log = sim.write_log();
    assert!(
        log[log_before..]
            .iter()
            .filter(|w| w.field == "OwnerId")
            .all(|w| w.source == "bulk2"),
        "every owner write came from an ingest job"
    );
    let mut rejected = locked.clone();
    rejected.extend(to_leaver.iter().cloned());
    assert_converged(&sim, &store, &plan, "sf-bulk", &rejected).await;
    for change in &edited {
        assert_ne!(owners(&sim)[&change.id.0], change.to.0, "human edit kept");
    }

    // Converged: what was applied, planned again, writes nothing at all.
    let mut applied_again = plan.clone();
    applied_again
        .changes
        .retain(|c| !rejected.contains(&c.id.0) && !edited.iter().any(|e| e.id == c.id));
    let writes_before = sim.write_log().len();
    let again = Writer::new(crm, store.clone(), fast(1000))
        .apply(&applied_again, RunId::new("sf-bulk-again"), &NoProgress)
        .await
        .unwrap();
    assert_eq!((again.write_calls, again.bulk_jobs), (0, 0), "{again}");
    assert_eq!(again.unchanged as usize, applied_again.changes.len());
    assert_eq!(sim.write_log().len(), writes_before, "0 no-op writes");
    sim.shutdown().await;
    test_store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salesforce_fault_storm_converges_with_no_change_lost_or_written_twice() {
    let config = SalesforceSimConfig {
        validation_rule: false,
        ..org(3000)
    };
    let sim = spawn(&config).await;
    let (plan, _) = rotation(&sim);
    let storm = |expire_sessions: bool, exhaust_after_calls: Option<u64>| FaultScript {
        seed: 11,
        concurrency_limit_rate: 0.30,
        server_error_rate: 0.05,
        reset_rate: 0.03,
        lost_answer_rate: 0.05,
        slow_rate: 0.05,
        slow_ms: 300,
        lock_row_rate: 0.05,
        expire_sessions,
        exhaust_after_calls,
        ..FaultScript::default()
    };
    sim.set_faults(storm(false, None));
    // Mid-run, every session dies at once, and 60 calls later the daily allocation
    // runs out (the storm goes on).
    let expiring = {
        let sim = sim.clone();
        tokio::spawn(async move {
            while sim.stats().calls.values().sum::<u64>() < 20 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            sim.set_faults(storm(true, Some(60)));
        })
    };
    let test_store = sqlite_store().await;
    let store = test_store.store.clone();
    let mut rounds = 0;
    let mut bulk_jobs = 0;
    let mut batches = 0;
    let mut stops = Vec::new();
    loop {
        assert!(rounds < 10, "the run did not converge in 10 rounds");
        // Bulk for the job-sized chunks; Collections (in small batches, for more
        // calls under fire) for the tail and the retries.
        let crm = connector(&sim, &config, 1000);
        let settings = WriterSettings {
            max_batch: Some(25),
            ..fast(1000)
        };
        let writer = Writer::new(crm, store.clone(), settings);
        let report = if rounds == 0 {
            writer
                .apply(&plan, RunId::new("sf-storm"), &NoProgress)
                .await
        } else {
            writer.resume(&RunId::new("sf-storm"), &NoProgress).await
        }
        .unwrap();
        rounds += 1;
        bulk_jobs += report.bulk_jobs;
        batches += report.write_calls - report.bulk_jobs;
        if report.is_complete() {
            break;
        }
        eprintln!("storm round {rounds} stopped: {report}");
        let stop = report
            .stopped
            .expect("an incomplete run says why it stopped");
        if stop.reason == StopReason::QuotaExhausted {
            // A new day: the allocation is back, the storm is not over.
            sim.set_faults(storm(false, None));
        }
        stops.push(stop.reason);
    }
    expiring.await.unwrap();
    let stats = sim.stats();
    eprintln!(
        "salesforce storm converged in {rounds} round(s): {bulk_jobs} bulk jobs, {batches} batches; \
         {} faults injected, {} limit refusals, {} tokens, calls {:?}",
        stats.faults_injected, stats.limit_rejections, stats.tokens_issued, stats.calls
    );
    assert!(stats.limit_rejections > 0, "the storm refused calls");
    assert!(
        stats.tokens_issued >= 2,
        "the session expired and was renewed"
    );
    assert!(bulk_jobs > 0 && batches > 0, "both write paths ran");
    assert!(
        stops.contains(&StopReason::QuotaExhausted),
        "the exhausted allocation stopped the run resumably: {stops:?}"
    );
    sim.set_faults(FaultScript::default());
    assert_converged(&sim, &store, &plan, "sf-storm", &HashSet::new()).await;
    sim.shutdown().await;
    test_store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_job_orphaned_by_a_killed_process_is_aborted_before_resume_writes_anything() {
    // A job works through 25 rows every 60 ms: it is still running when the process
    // that started it dies.
    let config = SalesforceSimConfig {
        validation_rule: false,
        bulk_step_rows: 25,
        bulk_step_delay: Duration::from_millis(60),
        ..org(400)
    };
    let sim = spawn(&config).await;
    let (plan, users) = rotation(&sim);
    let n = plan.changes.len();
    assert!(n > 300, "{n} changes");
    let test_store = sqlite_store().await;
    let store = test_store.store.clone();

    // The process that dies: it journals the run, the job's intent and, once the job
    // is created and loaded, its id; then it closes the job and is killed while the
    // job runs.
    let crm = connector(&sim, &config, 100);
    let run = NewRun {
        run_id: "sf-orphan",
        org: OrgId::default_for(CrmKind::Salesforce),
        kind: "backfill",
        parent_run: None,
        policy_version: "it",
    };
    store
        .journal_create_run(&run, &plan.changes, Utc::now())
        .await
        .unwrap();
    let seqs: Vec<i64> = (0..n as i64).collect();
    store
        .journal_intent("sf-orphan", 0, ObjectKind::Lead, &seqs, Utc::now())
        .await
        .unwrap();
    let changes: Vec<OwnerChange> = plan
        .changes
        .iter()
        .map(|c| OwnerChange {
            id: c.id.clone(),
            from: c.from.clone(),
            to: c.to.clone(),
            if_unmodified_since: None,
        })
        .collect();
    let job = crm.bulk_start(ObjectKind::Lead, &changes).await.unwrap();
    let job_id = job.id.clone().expect("a job was created");
    store
        .journal_bulk_job("sf-orphan", 0, &job_id)
        .await
        .unwrap();
    let dying = {
        let crm = crm.clone();
        tokio::spawn(async move { crm.bulk_run(job).await })
    };
    let bulk_writes = |sim: &SalesforceSim| {
        sim.write_log()
            .iter()
            .filter(|w| w.field == "OwnerId" && w.source == "bulk2")
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while bulk_writes(&sim) < 50 {
        assert!(std::time::Instant::now() < deadline, "the job never ran");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    dying.abort(); // kill -9: the job goes on running on Salesforce.
    let _ = dying.await;
    let processed_at_kill = bulk_writes(&sim);
    assert!(processed_at_kill < n, "the job is still running");
    // A rep moves the last lead of the job by hand while the orphan runs.
    let last = plan.changes.last().unwrap();
    let human = users
        .iter()
        .find(|u| **u != last.to.0 && Some(u.as_str()) != last.from.as_ref().map(|f| f.as_str()))
        .unwrap()
        .clone();
    sim.mutate(Mutation::ChangeOwner {
        object: "Lead".into(),
        id: last.id.0.clone(),
        owner_id: human.clone(),
    })
    .unwrap();

    // A new process resumes the run.
    let crm = connector(&sim, &config, 100);
    let report = Writer::new(crm.clone(), store.clone(), fast(1000))
        .resume(&RunId::new("sf-orphan"), &NoProgress)
        .await
        .unwrap();
    eprintln!("salesforce orphan resume: {report}");
    assert!(report.is_complete(), "{report}");
    // Only what it had not processed went out again, in one new job, and nothing
    // the orphan could still do comes after.
    assert_eq!(report.bulk_jobs, 1, "{report}");
    assert_eq!(report.skipped_changed, 1, "{report}");
    let writes_after = sim.write_log().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sim.write_log().len(),
        writes_after,
        "the orphan wrote after resume"
    );
    assert_eq!(owners(&sim)[&last.id.0], human, "the human edit stands");
    assert_eq!(
        bulk_writes(&sim),
        n - 1,
        "every lead written once (the edited one not at all)"
    );
    assert_converged(&sim, &store, &plan, "sf-orphan", &HashSet::new()).await;
    // The orphan is over: aborted part-way (it had not reached the end).
    let end = crm.bulk_abort(ObjectKind::Lead, &job_id).await.unwrap();
    assert_eq!(end.state, BulkJobState::Aborted, "{end:?}");
    assert!(
        (processed_at_kill..n).contains(&(end.processed as usize)),
        "{end:?}"
    );
    sim.shutdown().await;
    test_store.cleanup().await;
}
