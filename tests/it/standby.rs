//! Hot standby and schedules of `leadroute run` (issue 10, items 4 and 8): several
//! sidecars share one store, exactly one (the org lease's holder) polls, decides and
//! writes, the others accept webhooks into the shared inbox and take over within the
//! lease TTL; the leader runs the cron schedules (drift report, full sync).
//!
//! In-process services on SQLite, and two `leadroute run` processes on PostgreSQL
//! (skipped with a message when `LEADROUTE_TEST_PG_URL` is unset) with `kill -9` of the
//! leader.

use leadroute::domain::OrgId;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leadroute::config::Config;
use leadroute::service::{Running, Service};
use leadroute_crm::CrmKind;
use leadroute_sim::hubspot::{
    EndpointFamily, Fault, FaultRule, FaultScript, HubSpotSim, Mutation, ObjectType, Trigger,
};

use crate::helpers::{postgres_store, sim_config, sqlite_store, wait_for};

/// New leads (by email domain, the test's and the simulator's imports) go to rep `a`; everyone else keeps their owner, so the
/// generated org needs no writes.
fn policy_text(owner: &str) -> String {
    format!(
        "[settings]\nname = \"standby-test\"\nsticky = false\nmanual_override_days = 0\n\n\
         [reps.a]\nowner = \"{owner}\"\n\n\
         [[rules]]\nname = \"standby-leads\"\nwhen = [{{ field = \"email_domain\", in = [\"standby-test.example\", \"imported-leads.example\"] }}]\naction = \"owner\"\nrep = \"a\"\n\n\
         [default]\naction = \"keep\"\n"
    )
}

fn active_owners(sim: &HubSpotSim) -> Vec<String> {
    let owners: Vec<String> = sim
        .state()
        .owners
        .iter()
        .filter(|o| !o.archived && o.owner_type == "PERSON")
        .map(|o| o.id.to_string())
        .collect();
    assert!(!owners.is_empty(), "the generated org has active owners");
    owners
}

/// Creates a contact on the routed domain in the simulator; returns its id.
fn create_lead(sim: &HubSpotSim, n: u32) -> String {
    let properties = BTreeMap::from([
        ("firstname".to_owned(), format!("Lead{n}")),
        ("lastname".to_owned(), "Standby".to_owned()),
        ("email".to_owned(), format!("lead{n}@standby-test.example")),
    ]);
    let created = sim
        .mutate(Mutation::Create {
            object: ObjectType::Contacts,
            properties,
            company_id: None,
        })
        .expect("create a contact");
    created.ids[0].clone()
}

fn owner_in_crm(sim: &HubSpotSim, id: &str) -> Option<String> {
    sim.state()
        .contacts
        .iter()
        .find(|c| c.id.to_string() == id)
        .and_then(|c| c.properties.get("hubspot_owner_id").cloned())
        .filter(|o| !o.is_empty())
}

/// Owner writes per record, from the simulator's write log.
fn owner_writes(sim: &HubSpotSim) -> HashMap<String, usize> {
    let mut writes = HashMap::new();
    for entry in sim.write_log() {
        if entry.property == "hubspot_owner_id" {
            *writes.entry(entry.id).or_insert(0) += 1;
        }
    }
    writes
}

async fn readyz(base: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(format!("{base}/readyz")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn leader_gauge(base: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("leadroute_leader "))
        .and_then(|v| v.trim().parse().ok())
}

fn config(sim: &HubSpotSim, text: &str) -> Config {
    config_with_token(sim, text, sim.token())
}

fn config_with_token(sim: &HubSpotSim, text: &str, token: String) -> Config {
    let text = format!(
        "[crm]\nbase_url = \"{}\"\noverlap_secs = 2\n{text}\n",
        sim.base_url()
    );
    Config::from_toml(&text, "test.toml", &|name| {
        (name == "LEADROUTE_CRM_TOKEN").then(|| token.clone())
    })
    .unwrap_or_else(|err| panic!("{err}"))
}

async fn start(
    config: &Config,
    store: &leadroute::store::Store,
    listener: tokio::net::TcpListener,
) -> Running {
    let crm = leadroute::app::hubspot(config).unwrap();
    Service::new(Arc::new(crm), store.clone(), config.clone())
        .with_listener(listener)
        .start()
        .await
        .unwrap()
}

async fn bind() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_on_one_store_one_leads_each_lead_is_written_once_and_the_standby_takes_over()
{
    let sim = leadroute_sim::hubspot::spawn(sim_config(60, 6))
        .await
        .unwrap();
    let store = sqlite_store().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let owners = active_owners(&sim);
    std::fs::write(&policy, policy_text(&owners[0])).unwrap();
    let (listener_a, base_a) = bind().await;
    let (listener_b, base_b) = bind().await;
    let secret = sim.config().client_secret.clone();
    // Webhooks go to B (the standby): it stores them in the shared inbox for A.
    let config = config(
        &sim,
        &format!(
            "[webhook]\npublic_url = \"{base_b}\"\nsecret = \"{secret}\"\n\
             [policy]\npath = \"{}\"\n\
             [sync]\ninterval_secs = 3600\nhint_poll_ms = 50\n\
             [service]\nlinger_ms = 50\nshutdown_grace_secs = 20\nlease_ttl_secs = 2\n",
            policy.display()
        ),
    );
    let a = start(&config, &store.store, listener_a).await;
    wait_for("A leads", 10, || async {
        a.status().lease.is_leader().then_some(())
    })
    .await;
    let b = start(&config, &store.store, listener_b).await;
    let a_holder = a.status().lease.this;
    wait_for("B stands by behind A", 10, || async {
        let lease = b.status().lease;
        (lease.is_standby() && lease.holder.as_deref() == Some(a_holder.as_str())).then_some(())
    })
    .await;
    wait_for("A's first poll", 30, || async {
        a.status().last_successful_poll.is_some().then_some(())
    })
    .await;
    let (code_a, body_a) = readyz(&base_a).await;
    assert_eq!(code_a, 200, "{body_a:#}");
    assert_eq!(body_a["lease"]["state"], "leader", "{body_a:#}");
    assert_eq!(body_a["lease"]["epoch"], 1, "{body_a:#}");
    assert_eq!(body_a["lease"]["name"], "org:hubspot", "{body_a:#}");
    // A clean standby is ready once its CRM check (one call) has passed.
    let (code_b, body_b) = wait_for("B ready", 10, || async {
        let (code, body) = readyz(&base_b).await;
        (code == 200).then_some((code, body))
    })
    .await;
    assert_eq!(code_b, 200, "{body_b:#}");
    assert_eq!(body_b["lease"]["state"], "standby", "{body_b:#}");
    assert_eq!(body_b["lease"]["holder"], a_holder.as_str(), "{body_b:#}");
    assert_eq!(leader_gauge(&base_a).await, Some(1.0));
    assert_eq!(leader_gauge(&base_b).await, Some(0.0));
    assert_eq!(
        b.status().last_successful_poll,
        None,
        "a standby does not poll"
    );

    sim.set_webhook_url(Some(format!("{base_b}/webhooks/hubspot")));
    let first = create_lead(&sim, 1);
    wait_for("the first lead routed by the leader", 20, || async {
        (owner_in_crm(&sim, &first).as_deref() == Some(owners[0].as_str())).then_some(())
    })
    .await;
    // The CRM holds the owner a moment before the leader has counted its batch.
    wait_for("A counts its write", 10, || async {
        (a.status().written == 1).then_some(())
    })
    .await;
    assert_eq!(b.status().written, 0, "the standby wrote nothing");

    // The leader stops: it releases the lease and B leads within the TTL.
    let stopped = a.stop().await;
    assert!(stopped.clean, "{stopped:?}");
    let released = Instant::now();
    wait_for("B leads", 10, || async {
        b.status().lease.is_leader().then_some(())
    })
    .await;
    assert!(
        released.elapsed() <= Duration::from_secs(2),
        "B led {:?} after A released",
        released.elapsed()
    );
    assert_eq!(b.status().lease.epoch, Some(2));
    let second = create_lead(&sim, 2);
    wait_for("the second lead routed by the new leader", 20, || async {
        (owner_in_crm(&sim, &second).as_deref() == Some(owners[0].as_str())).then_some(())
    })
    .await;
    let (code_b, body_b) = readyz(&base_b).await;
    assert_eq!(code_b, 200, "{body_b:#}");
    assert_eq!(body_b["lease"]["state"], "leader", "{body_b:#}");
    assert_eq!(leader_gauge(&base_b).await, Some(1.0));
    let writes = owner_writes(&sim);
    assert_eq!(writes.get(&first), Some(&1), "{writes:?}");
    assert_eq!(writes.get(&second), Some(&1), "{writes:?}");
    assert_eq!(writes.len(), 2, "nothing else written: {writes:?}");

    let stopped = b.stop().await;
    assert!(stopped.clean, "{stopped:?}");
    let lease = store.store.lease("org:hubspot").await.unwrap();
    assert_eq!(
        lease.and_then(|l| l.holder),
        None,
        "released at a clean stop"
    );
    sim.shutdown().await;
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_is_taken_stands_by_writing_nothing_and_leads_again_when_it_is_free() {
    let sim = leadroute_sim::hubspot::spawn(sim_config(40, 4))
        .await
        .unwrap();
    let store = sqlite_store().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let owners = active_owners(&sim);
    std::fs::write(&policy, policy_text(&owners[0])).unwrap();
    let (listener, base) = bind().await;
    let secret = sim.config().client_secret.clone();
    let config = config(
        &sim,
        &format!(
            "[webhook]\npublic_url = \"{base}\"\nsecret = \"{secret}\"\n\
             [policy]\npath = \"{}\"\n\
             [sync]\ninterval_secs = 3600\nhint_poll_ms = 50\n\
             [service]\nlinger_ms = 50\nlease_ttl_secs = 3\n",
            policy.display()
        ),
    );
    let running = start(&config, &store.store, listener).await;
    wait_for("the first poll as leader", 30, || async {
        running
            .status()
            .last_successful_poll
            .is_some()
            .then_some(())
    })
    .await;
    let lease = running.status().lease;
    assert_eq!((lease.state.as_str(), lease.epoch), ("leader", Some(1)));

    // The process stalls past its TTL (as if frozen) and another takes the org.
    let leases = &store.store;
    assert!(
        leases
            .lease_renew("org:hubspot", &lease.this, 1, Duration::ZERO)
            .await
            .unwrap()
    );
    let grab = leases
        .lease_acquire("org:hubspot", "intruder", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        matches!(grab, leadroute::store::LeaseGrab::Held { epoch: 2, .. }),
        "{grab:?}"
    );
    wait_for("the deposed leader stands by", 10, || async {
        let lease = running.status().lease;
        (lease.is_standby() && lease.holder.as_deref() == Some("intruder")).then_some(())
    })
    .await;
    let (code, body) = readyz(&base).await;
    assert_eq!(code, 200, "{body:#}");
    assert_eq!(body["lease"]["state"], "standby", "{body:#}");
    assert_eq!(leader_gauge(&base).await, Some(0.0));

    // A lead's webhook is accepted into the inbox but nobody here acts on it.
    sim.set_webhook_url(Some(format!("{base}/webhooks/hubspot")));
    let lead = create_lead(&sim, 1);
    wait_for("the webhook in the shared inbox", 10, || async {
        let (_, body) = readyz(&base).await;
        (body["inbox"]["depth"].as_u64() >= Some(1)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(owner_in_crm(&sim, &lead), None, "a standby writes nothing");
    assert_eq!(running.status().written, 0);

    // The other process lets go: this one leads again and routes the waiting lead.
    assert!(
        leases
            .lease_release("org:hubspot", "intruder", 2)
            .await
            .unwrap()
    );
    wait_for("the lead routed after leading again", 20, || async {
        (owner_in_crm(&sim, &lead).as_deref() == Some(owners[0].as_str())).then_some(())
    })
    .await;
    assert_eq!(running.status().lease.epoch, Some(3));
    assert_eq!(owner_writes(&sim).get(&lead), Some(&1));
    let stopped = running.stop().await;
    assert!(stopped.clean, "{stopped:?}");
    sim.shutdown().await;
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_whose_crm_credentials_fail_says_so_in_readyz() {
    let sim = leadroute_sim::hubspot::spawn(sim_config(20, 2))
        .await
        .unwrap();
    let store = sqlite_store().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let owners = active_owners(&sim);
    std::fs::write(&policy, policy_text(&owners[0])).unwrap();
    let text = format!(
        "[policy]\npath = \"{}\"\n[sync]\ninterval_secs = 3600\n[service]\nlinger_ms = 50\n",
        policy.display()
    );
    let (listener_a, _) = bind().await;
    let a = start(&config(&sim, &text), &store.store, listener_a).await;
    wait_for("A leads", 10, || async {
        a.status().lease.is_leader().then_some(())
    })
    .await;
    let (listener_b, base_b) = bind().await;
    let bad = config_with_token(&sim, &text, "pat-na1-revoked".to_owned());
    let b = start(&bad, &store.store, listener_b).await;
    let body = wait_for("B's failed CRM check", 10, || async {
        let (code, body) = readyz(&base_b).await;
        (code == 503 && body["crm"]["ok"] == false && body["lease"]["state"] == "standby")
            .then_some(body)
    })
    .await;
    assert!(
        body["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("crm check: ")),
        "{body:#}"
    );
    assert!(b.stop().await.clean);
    assert!(a.stop().await.clean);
    sim.shutdown().await;
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_writes_drift_reports_and_runs_full_syncs_on_their_schedules() {
    let sim = leadroute_sim::hubspot::spawn(sim_config(40, 4))
        .await
        .unwrap();
    let store = sqlite_store().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let reports = dir.path().join("reports");
    let owners = active_owners(&sim);
    std::fs::write(&policy, policy_text(&owners[0])).unwrap();
    let (listener, _base) = bind().await;
    // No webhooks and an hourly poll: only the every-second full sync can catch a new
    // lead.
    let config = config(
        &sim,
        &format!(
            "[policy]\npath = \"{}\"\n\
             [sync]\ninterval_secs = 3600\n\
             [drift]\nschedule = \"* * * * * *\"\nout_dir = \"{}\"\nkeep = 2\n\
             [service]\nlinger_ms = 50\nfull_sync = \"* * * * * *\"\ntime_zone = \"Europe/Berlin\"\n",
            policy.display(),
            reports.display()
        ),
    );
    let running = start(&config, &store.store, listener).await;
    let first = wait_for("a drift report directory", 15, || async {
        let found = leadroute::service::reports::list_reports(&reports).ok()?;
        found.into_iter().next()
    })
    .await;
    for file in ["drift.md", "drift.html", "drift.csv", "drift.json"] {
        let text = std::fs::read_to_string(first.join(file)).unwrap();
        assert!(!text.is_empty(), "{file} is written");
    }
    // More runs: only the newest `keep` stay.
    let mut seen = std::collections::BTreeSet::new();
    wait_for("three scheduled reports", 20, || {
        if let Some(last) = running.status().last_drift_report {
            seen.insert(last);
        }
        let n = seen.len();
        async move { (n >= 3).then_some(()) }
    })
    .await;
    let kept = leadroute::service::reports::list_reports(&reports).unwrap();
    assert!(kept.len() <= 2, "keep = 2, found {kept:?}");

    let lead = create_lead(&sim, 1);
    wait_for("the lead caught by the scheduled full sync", 20, || async {
        (owner_in_crm(&sim, &lead).as_deref() == Some(owners[0].as_str())).then_some(())
    })
    .await;
    let stopped = running.stop().await;
    assert!(stopped.clean, "{stopped:?}");
    let last = store
        .store
        .schedule_last_run(&OrgId::default_for(CrmKind::Hubspot), "full_sync")
        .await
        .unwrap();
    assert!(last.is_some(), "the full sync's runs are stored");
    sim.shutdown().await;
    store.cleanup().await;
}

#[test]
fn bad_schedules_and_zones_are_reported_together_with_their_place_and_fix() {
    let text = "[crm]\nbase_url = \"http://127.0.0.1:1\"\ntoken = \"t\"\n\
                [drift]\nschedule = \"nightly\"\n\
                [service]\nfull_sync = \"every hour\"\ntime_zone = \"Europe/Atlantis\"\n";
    let err = Config::from_toml(text, "lr.toml", &|_| None).unwrap_err();
    let messages: Vec<String> = err.issues.iter().map(ToString::to_string).collect();
    for place in ["drift.schedule", "service.full_sync", "service.time_zone"] {
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with(&format!("lr.toml: {place}: ")) && m.contains("; ")),
            "{place} not reported with a fix in {messages:#?}"
        );
    }
}

/// A `leadroute run` process on `store_url`, its HTTP listener on `port`.
fn run_process(
    dir: &Path,
    name: &str,
    sim: &HubSpotSim,
    store_url: &str,
    port: u16,
    policy: &Path,
) -> std::process::Child {
    use std::process::{Command, Stdio};
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[crm]\nbase_url = \"{}\"\noverlap_secs = 2\n\
             [store]\nurl = \"{store_url}\"\n\
             [webhook]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\nsecret = \"{}\"\n\
             [policy]\npath = \"{}\"\n\
             [sync]\ninterval_secs = 1\nhint_poll_ms = 50\n\
             [service]\nlinger_ms = 50\nlease_ttl_secs = 3\n",
            sim.base_url(),
            sim.config().client_secret,
            policy.display()
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_leadroute"));
    command
        .args(["--config", &config.display().to_string(), "run"])
        .current_dir(dir);
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("LEADROUTE_")) {
        command.env_remove(name);
    }
    command
        .env("LEADROUTE_CRM_TOKEN", sim.token())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(dir.join(format!("{name}.log")))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        )
        .spawn()
        .unwrap()
}

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

async fn lease_state(base: &str) -> Option<serde_json::Value> {
    let response = reqwest::get(format!("{base}/readyz")).await.ok()?;
    let body: serde_json::Value = response.json().await.ok()?;
    Some(body["lease"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_postgres_the_standby_writes_within_the_ttl_after_kill_9_of_the_leader() {
    let Some(store) = postgres_store().await else {
        return;
    };
    let sim = leadroute_sim::hubspot::spawn(sim_config(60, 6))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let owners = active_owners(&sim);
    std::fs::write(&policy, policy_text(&owners[0])).unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let (base_a, base_b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    let mut a = run_process(dir.path(), "a", &sim, &store.url, port_a, &policy);
    wait_for("process A leads", 60, || async {
        let lease = lease_state(&base_a).await?;
        (lease["state"] == "leader").then_some(())
    })
    .await;
    let mut b = run_process(dir.path(), "b", &sim, &store.url, port_b, &policy);
    wait_for("process B stands by", 60, || async {
        let lease = lease_state(&base_b).await?;
        (lease["state"] == "standby").then_some(())
    })
    .await;
    wait_for("A ready", 60, || async {
        let response = reqwest::get(format!("{base_a}/readyz")).await.ok()?;
        (response.status().as_u16() == 200).then_some(())
    })
    .await;
    // Webhooks go to the standby, which stores them in the shared inbox.
    sim.set_webhook_url(Some(format!("{base_b}/webhooks/hubspot")));
    let first = create_lead(&sim, 1);
    wait_for("the first lead written by A", 30, || async {
        (owner_in_crm(&sim, &first).as_deref() == Some(owners[0].as_str())).then_some(())
    })
    .await;

    // kill -9 the leader; the next lead is written by B within the TTL + 2 s.
    a.kill().unwrap();
    let killed = Instant::now();
    let _ = tokio::task::spawn_blocking(move || a.wait()).await;
    let second = create_lead(&sim, 2);
    wait_for("the second lead written by B", 30, || async {
        (owner_in_crm(&sim, &second).as_deref() == Some(owners[0].as_str())).then_some(())
    })
    .await;
    let failover = killed.elapsed();
    eprintln!("failover: kill -9 of the leader to the standby's first write: {failover:?}");
    let lease = lease_state(&base_b).await.unwrap();
    assert_eq!(lease["state"], "leader", "{lease:#}");
    assert_eq!(lease["epoch"], 2, "{lease:#}");
    assert!(
        failover <= Duration::from_secs(3 + 2),
        "the standby wrote {failover:?} after the kill (TTL 3 s + 2 s)"
    );
    let writes = owner_writes(&sim);
    assert_eq!(writes.get(&first), Some(&1), "{writes:?}");
    assert_eq!(writes.get(&second), Some(&1), "{writes:?}");
    assert_eq!(writes.len(), 2, "nothing else written: {writes:?}");

    b.kill().unwrap();
    let _ = tokio::task::spawn_blocking(move || b.wait()).await;
    sim.shutdown().await;
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_mid_batch_on_postgres_loses_and_doubles_nothing() {
    let Some(store) = postgres_store().await else {
        return;
    };
    let sim = leadroute_sim::hubspot::spawn(sim_config(60, 6))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let owners = active_owners(&sim);
    std::fs::write(&policy, policy_text(&owners[0])).unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let (base_a, base_b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    let mut a = run_process(dir.path(), "a", &sim, &store.url, port_a, &policy);
    wait_for("process A leads", 60, || async {
        let lease = lease_state(&base_a).await?;
        (lease["state"] == "leader").then_some(())
    })
    .await;
    let mut b = run_process(dir.path(), "b", &sim, &store.url, port_b, &policy);
    wait_for("process B stands by", 60, || async {
        let lease = lease_state(&base_b).await?;
        (lease["state"] == "standby").then_some(())
    })
    .await;

    // Slow writes, so the kill lands while a batch is at the CRM.
    sim.set_faults(FaultScript {
        rules: vec![FaultRule {
            families: vec![EndpointFamily::BatchUpdate],
            fault: Fault::Slow { delay_ms: 1_500 },
            trigger: Trigger::Always,
        }],
        ..FaultScript::default()
    });
    let created = sim
        .mutate(Mutation::BulkImport {
            object: ObjectType::Contacts,
            update: 0,
            create: 150,
            properties: BTreeMap::new(),
            seed: 11,
        })
        .unwrap();
    let journal = &store.store;
    wait_for("a batch of A at the CRM", 60, || async {
        for run in journal.journal_runs(50).await.ok()? {
            let entries = journal.journal_entries(&run.run_id).await.ok()?;
            if entries.iter().any(|e| e.state == "intent") {
                return Some(());
            }
        }
        None
    })
    .await;
    a.kill().unwrap();
    let _ = tokio::task::spawn_blocking(move || a.wait()).await;
    sim.set_faults(FaultScript::default());

    let routed = || {
        created
            .ids
            .iter()
            .filter(|id| owner_in_crm(&sim, id).as_deref() == Some(owners[0].as_str()))
            .count()
    };
    wait_for("every import routed by B", 60, || async {
        (routed() == created.ids.len()).then_some(())
    })
    .await;
    wait_for("A's run resumed and finished by B", 60, || async {
        journal
            .journal_unfinished_run(&OrgId::default_for(CrmKind::Hubspot), "sidecar")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let mut writes: HashMap<String, usize> = HashMap::new();
    for w in sim.write_log() {
        if w.changed && w.property == "hubspot_owner_id" {
            *writes.entry(w.id).or_default() += 1;
        }
    }
    assert!(
        writes.values().all(|n| *n == 1),
        "a record was written twice: {:?}",
        writes.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    assert_eq!(writes.len(), created.ids.len(), "nothing else written");
    let lease = lease_state(&base_b).await.unwrap();
    assert_eq!(lease["state"], "leader", "{lease:#}");

    b.kill().unwrap();
    let _ = tokio::task::spawn_blocking(move || b.wait()).await;
    sim.shutdown().await;
    store.cleanup().await;
}
