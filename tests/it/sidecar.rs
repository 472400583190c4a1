//! `leadroute run` end to end: the HubSpot simulator and the sidecar service in-process
//! over loopback, on a fresh store. Nobody runs a command: records created in the
//! simulator get the policy's owner through webhooks or polling, the policy reloads
//! from disk, `/readyz` and `/metrics` answer, and a stop mid-batch leaves a journal a
//! restart finishes.
//!
//! Records are created with the simulator's mutation API (`Mutation::Create`,
//! `Mutation::BulkImport`); once the simulator serves `POST /crm/v3/objects/contacts`
//! (issue 10, item 10) these should create through the public API instead.

use leadroute::domain::OrgId;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use leadroute::service::{Running, Service};
use leadroute_crm::CrmKind;
use leadroute_sim::hubspot::{
    EndpointFamily, Fault, FaultRule, FaultScript, Mutation, ObjectType, Trigger,
};

use crate::helpers::{TestApp, sim_config, spawn_app, wait_for};

/// The simulator, the store, the policy file and a running sidecar.
struct Sidecar {
    app: TestApp,
    running: Option<Running>,
    base: String,
    policy: PathBuf,
    owners: Vec<String>,
    _dir: tempfile::TempDir,
}

/// Only new leads (the test's and the simulator's imports, by email domain) are routed,
/// to rep `a`; everyone else keeps their owner, so the generated org needs no writes.
fn policy_text(owner: &str) -> String {
    format!(
        "[settings]\nname = \"sidecar-test\"\nsticky = false\nmanual_override_days = 0\n\n\
         [reps.a]\nowner = \"{owner}\"\n\n\
         [[rules]]\nname = \"sidecar-leads\"\nwhen = [{{ field = \"email_domain\", in = [\"sidecar-test.example\", \"imported-leads.example\"] }}]\naction = \"owner\"\nrep = \"a\"\n\n\
         [default]\naction = \"keep\"\n"
    )
}

/// A sidecar whose HTTP listener is bound on 127.0.0.1:0; `service` adds `[service]`
/// keys, `interval` is the polling period.
async fn sidecar(interval_secs: u64, service: &str) -> Sidecar {
    sidecar_with(interval_secs, "", service).await
}

/// [`sidecar`] with extra `[crm]` keys.
async fn sidecar_with(interval_secs: u64, crm: &str, service: &str) -> Sidecar {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let sim = sim_config(150, 15);
    let secret = sim.client_secret.clone();
    let app = spawn_app(
        sim,
        &format!(
            "{crm}\n[webhook]\npublic_url = \"{base}\"\nsecret = \"{secret}\"\n\
             [policy]\npath = \"{}\"\n\
             [sync]\ninterval_secs = {interval_secs}\nhint_poll_ms = 50\n\
             [service]\nlinger_ms = 50\nshutdown_grace_secs = 20\n{service}\n",
            policy.display()
        ),
    )
    .await;
    let owners: Vec<String> = app
        .sim
        .state()
        .owners
        .iter()
        .filter(|o| !o.archived && o.owner_type == "PERSON")
        .map(|o| o.id.to_string())
        .collect();
    assert!(owners.len() >= 3, "the generated org has active owners");
    std::fs::write(&policy, policy_text(&owners[0])).unwrap();
    let mut sidecar = Sidecar {
        app,
        running: None,
        base,
        policy,
        owners,
        _dir: dir,
    };
    sidecar.start(listener).await;
    sidecar
}

impl Sidecar {
    async fn start(&mut self, listener: tokio::net::TcpListener) {
        let crm = leadroute::app::hubspot(&self.app.config).unwrap();
        let running = Service::new(
            Arc::new(crm),
            self.app.store.store.clone(),
            self.app.config.clone(),
        )
        .with_listener(listener)
        .start()
        .await
        .unwrap();
        self.running = Some(running);
        // The first poll (a full sync of the generated org) has landed.
        wait_for("the first poll", 30, || async {
            self.running()
                .status()
                .last_successful_poll
                .is_some()
                .then_some(())
        })
        .await;
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    fn webhooks_on(&self) {
        self.app
            .sim
            .set_webhook_url(Some(format!("{}/webhooks/hubspot", self.base)));
    }

    /// Creates a new lead (a contact on the test's email domain) in the simulator;
    /// returns its id.
    fn create_lead(&self, n: u32) -> u64 {
        let properties = BTreeMap::from([
            ("firstname".to_owned(), format!("Lead{n}")),
            ("lastname".to_owned(), "Sidecar".to_owned()),
            ("email".to_owned(), format!("lead{n}@sidecar-test.example")),
        ]);
        let created = self
            .app
            .sim
            .mutate(Mutation::Create {
                object: ObjectType::Contacts,
                properties,
                company_id: None,
            })
            .expect("create a contact");
        created.ids[0].parse().unwrap()
    }

    /// The owner the simulator holds for contact `id`.
    fn owner_in_crm(&self, id: u64) -> Option<String> {
        self.app
            .sim
            .state()
            .contacts
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.properties.get("hubspot_owner_id").cloned())
            .filter(|o| !o.is_empty())
    }

    async fn wait_owner(&self, id: u64, owner: &str, what: &str) {
        wait_for(what, 20, || async {
            (self.owner_in_crm(id).as_deref() == Some(owner)).then_some(())
        })
        .await;
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn readyz(&self) -> (u16, serde_json::Value) {
        let (status, body) = self.get("/readyz").await;
        (status, serde_json::from_str(&body).unwrap())
    }

    async fn metrics(&self) -> HashMap<String, f64> {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200);
        parse_prometheus(&body)
    }

    async fn stop(&mut self) -> leadroute::service::Stopped {
        self.running.take().expect("running").stop().await
    }

    async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            let stopped = running.stop().await;
            assert!(stopped.clean, "{stopped:?}");
        }
        self.app.shutdown().await;
    }
}

/// A strict reader of the Prometheus / OpenMetrics text format: every line is a
/// `# HELP`, `# TYPE`, `# UNIT` or `# EOF` comment or a sample `name{k="v",…} value`;
/// anything else fails the test. Returns each sample by `name{labels}`.
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    fn is_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut samples = HashMap::new();
    let mut eof = false;
    for line in text.lines() {
        assert!(!eof, "text after # EOF: {line:?}");
        if line == "# EOF" {
            eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let keyword = parts.next().unwrap_or("");
            let name = parts.next().unwrap_or("");
            assert!(
                matches!(keyword, "HELP" | "TYPE" | "UNIT"),
                "unknown comment {line:?}"
            );
            assert!(is_name(name), "bad metric name in {line:?}");
            if keyword == "TYPE" {
                let kind = parts.next().unwrap_or("");
                assert!(
                    matches!(
                        kind,
                        "counter" | "gauge" | "histogram" | "summary" | "unknown" | "info"
                    ),
                    "bad type in {line:?}"
                );
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                for pair in labels.split(',').filter(|p| !p.is_empty()) {
                    let (key, value) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("bad label in {line:?}"));
                    assert!(is_name(key), "bad label name in {line:?}");
                    assert!(
                        value.len() >= 2 && value.starts_with('"') && value.ends_with('"'),
                        "unquoted label value in {line:?}"
                    );
                }
                name
            }
            None => series,
        };
        assert!(is_name(name), "bad sample name in {line:?}");
        samples.insert(series.to_owned(), value);
    }
    assert!(eof, "no # EOF at the end");
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_contact_gets_the_policys_owner_through_a_webhook_with_no_command_run() {
    // Polling only at start: what arrives later comes by webhook.
    let sidecar = sidecar(3_600, "").await;
    // Every delivery comes twice, as HubSpot's retries sometimes do.
    sidecar.app.sim.set_faults(FaultScript {
        rules: vec![FaultRule {
            families: vec![EndpointFamily::Webhooks],
            fault: Fault::DuplicateDelivery,
            trigger: Trigger::Always,
        }],
        ..FaultScript::default()
    });
    sidecar.webhooks_on();
    let id = sidecar.create_lead(1);
    let owner = sidecar.owners[0].clone();
    sidecar
        .wait_owner(id, &owner, "the new contact's owner written by the sidecar")
        .await;

    let (status, body) = sidecar.get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, ready) = sidecar.readyz().await;
    assert_eq!(status, 200, "{ready:#}");
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["store"]["ok"], true);
    assert_eq!(ready["crm"]["ok"], true);
    assert!(ready["policy"]["version"].is_string(), "{ready:#}");
    assert!(
        ready["cursors"]["contact"]["age_seconds"].is_number(),
        "{ready:#}"
    );
    assert!(ready["inbox"]["depth"].is_number(), "{ready:#}");

    let metrics = wait_for("the write and a duplicate in the metrics", 10, || async {
        let m = sidecar.metrics().await;
        (m.get("leadroute_speed_to_lead_seconds_count").copied() >= Some(1.0)
            && m["leadroute_webhooks_total{result=\"duplicate\"}"] >= 1.0)
            .then_some(m)
    })
    .await;
    assert!(metrics["leadroute_webhooks_total{result=\"accepted\"}"] >= 1.0);
    assert!(metrics["leadroute_writes_total{outcome=\"applied\"}"] >= 1.0);
    assert!(metrics["leadroute_decisions_total{rule=\"sidecar-leads\"}"] >= 1.0);
    assert_eq!(metrics["leadroute_leader"], 1.0);
    assert_eq!(metrics["leadroute_policy_reload_failures_total"], 0.0);
    assert!(metrics.contains_key("leadroute_cursor_age_seconds{object=\"contact\"}"));
    assert!(metrics.contains_key("leadroute_inbox_depth"));
    assert!(metrics.contains_key("leadroute_exceptions_open"));
    // Well inside a second on loopback (linger 50 ms).
    let sum = metrics["leadroute_speed_to_lead_seconds_sum"];
    let count = metrics["leadroute_speed_to_lead_seconds_count"];
    eprintln!(
        "speed to lead over loopback: {:.3} s mean of {count}",
        sum / count
    );
    assert!(sum / count < 5.0, "speed to lead {sum}/{count}");
    // The sidecar wrote it exactly once.
    let writes = sidecar
        .app
        .sim
        .write_log()
        .into_iter()
        .filter(|w| w.id == id.to_string() && w.changed)
        .count();
    assert_eq!(writes, 1);
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_whose_webhook_never_arrives_is_caught_by_polling_and_forgeries_cost_nothing() {
    // The simulator delivers no webhooks at all; polling runs every second.
    let sidecar = sidecar(1, "").await;
    // A forged delivery costs no row and is counted, not logged line by line.
    for _ in 0..20 {
        let response = reqwest::Client::new()
            .post(format!("{}/webhooks/hubspot", sidecar.base))
            .header("content-type", "application/json")
            .header("x-hubspot-signature-v3", "Zm9yZ2Vk")
            .header(
                "x-hubspot-request-timestamp",
                chrono::Utc::now().timestamp_millis().to_string(),
            )
            .body("[]")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
    }
    let inbox = sidecar
        .app
        .store
        .store
        .inbox_counts(&OrgId::default_for(CrmKind::Hubspot))
        .await
        .unwrap();
    assert_eq!(inbox.pending + inbox.done + inbox.failed, 0, "{inbox:?}");
    let id = sidecar.create_lead(2);
    let owner = sidecar.owners[0].clone();
    sidecar
        .wait_owner(
            id,
            &owner,
            "the owner written after a poll found the contact",
        )
        .await;
    // The write is counted once its outcome is journaled, just after the CRM has it.
    let metrics = wait_for("the write in the metrics", 10, || async {
        let m = sidecar.metrics().await;
        (m["leadroute_writes_total{outcome=\"applied\"}"] >= 1.0).then_some(m)
    })
    .await;
    assert_eq!(
        metrics["leadroute_webhooks_total{result=\"accepted\"}"],
        0.0
    );
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_policy_takes_effect_and_a_broken_edit_keeps_the_running_one() {
    let sidecar = sidecar(1, "policy_poll_ms = 100").await;
    sidecar.webhooks_on();
    let (_, ready) = sidecar.readyz().await;
    let first_version = ready["policy"]["version"].as_str().unwrap().to_owned();

    // A broken edit: the running policy stays, /readyz shows where and how to fix it.
    std::fs::write(
        &sidecar.policy,
        policy_text(&sidecar.owners[1]).replace("action = \"owner\"", "action = \"ownr\""),
    )
    .unwrap();
    let ready = wait_for("the refused reload in /readyz", 10, || async {
        let (status, ready) = sidecar.readyz().await;
        let refused = ready["policy"]["errors"]
            .as_array()
            .is_some_and(|e| !e.is_empty());
        refused.then_some((status, ready))
    })
    .await;
    assert_eq!(ready.0, 200, "the old policy still routes: {:#}", ready.1);
    let ready = ready.1;
    assert_eq!(ready["policy"]["version"], first_version.as_str());
    let error = ready["policy"]["errors"][0].as_str().unwrap();
    let place = format!("{}:", sidecar.policy.display());
    assert!(error.starts_with(&place), "{error}");
    assert!(error.contains("fix:"), "{error}");
    let metrics = sidecar.metrics().await;
    assert_eq!(metrics["leadroute_policy_reload_failures_total"], 1.0);
    let id = sidecar.create_lead(3);
    let old_owner = sidecar.owners[0].clone();
    sidecar
        .wait_owner(
            id,
            &old_owner,
            "the old policy's owner while the edit is broken",
        )
        .await;

    // A good edit: later decisions carry the new version.
    let new_owner = sidecar.owners[2].clone();
    std::fs::write(&sidecar.policy, policy_text(&new_owner)).unwrap();
    wait_for("the new policy in /readyz", 10, || async {
        let (_, ready) = sidecar.readyz().await;
        (ready["policy"]["version"] != first_version.as_str()
            && ready["policy"]["errors"]
                .as_array()
                .is_some_and(Vec::is_empty))
        .then_some(())
    })
    .await;
    let id = sidecar.create_lead(4);
    sidecar
        .wait_owner(id, &new_owner, "the new policy's owner")
        .await;
    let runs = sidecar.app.store.store.journal_runs(50).await.unwrap();
    let new_version = leadroute::policy::content_hash(&policy_text(&new_owner));
    assert!(
        runs.iter()
            .any(|r| r.kind == "sidecar" && r.policy_version == new_version),
        "a sidecar run carries the new policy version"
    );
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_request_reads_the_policy_at_once() {
    // The file is not polled in this test: only the reload request (SIGHUP) reads it.
    let sidecar = sidecar(3_600, "policy_poll_ms = 600000").await;
    sidecar.webhooks_on();
    let new_owner = sidecar.owners[1].clone();
    std::fs::write(&sidecar.policy, policy_text(&new_owner)).unwrap();
    let new_version = leadroute::policy::content_hash(&policy_text(&new_owner));
    sidecar.running().reload_policy();
    wait_for("the reloaded policy", 10, || async {
        (sidecar.running().status().policy_version.as_deref() == Some(new_version.as_str()))
            .then_some(())
    })
    .await;
    let id = sidecar.create_lead(5);
    sidecar
        .wait_owner(id, &new_owner, "the reloaded policy's owner")
        .await;
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_mid_batch_exits_within_the_grace_and_a_restart_finishes_the_work() {
    let mut sidecar = sidecar(1, "").await;
    // Slow writes so the stop lands while a batch is at the CRM.
    sidecar.app.sim.set_faults(FaultScript {
        rules: vec![FaultRule {
            families: vec![EndpointFamily::BatchUpdate],
            fault: Fault::Slow { delay_ms: 1_500 },
            trigger: Trigger::Always,
        }],
        ..FaultScript::default()
    });
    let created = sidecar
        .app
        .sim
        .mutate(Mutation::BulkImport {
            object: ObjectType::Contacts,
            update: 0,
            create: 250,
            properties: BTreeMap::new(),
            seed: 5,
        })
        .unwrap();
    assert_eq!(created.ids.len(), 250);
    let store = sidecar.app.store.store.clone();
    let in_flight = || async {
        for run in store.journal_runs(50).await.unwrap() {
            if run.kind != "sidecar" {
                continue;
            }
            let entries = store.journal_entries(&run.run_id).await.unwrap();
            if entries.iter().any(|e| e.state == "intent") {
                return Some(());
            }
        }
        None
    };
    wait_for("a sidecar batch at the CRM", 30, in_flight).await;

    let stopped = sidecar.stop().await;
    assert!(stopped.clean, "{stopped:?}");
    assert!(stopped.elapsed < Duration::from_secs(20), "{stopped:?}");
    // Consistent journal: every call that went out has its outcome.
    let mut planned = 0;
    for run in store.journal_runs(50).await.unwrap() {
        for entry in store.journal_entries(&run.run_id).await.unwrap() {
            assert_ne!(entry.state, "intent", "{entry:?}");
            if entry.state == "planned" {
                planned += 1;
            }
        }
    }
    let owner = sidecar.owners[0].clone();
    let routed = |sidecar: &Sidecar| {
        created
            .ids
            .iter()
            .filter(|id| sidecar.owner_in_crm(id.parse().unwrap()).as_deref() == Some(&owner))
            .count()
    };
    let routed_at_stop = routed(&sidecar);
    eprintln!(
        "stopped in {:?}: {routed_at_stop} of 250 routed, {planned} journaled changes pending",
        stopped.elapsed,
    );
    assert!(
        routed_at_stop < 250,
        "the stop came after the work was done"
    );

    // A restart goes on: everything ends routed, nothing written twice.
    sidecar.app.sim.set_faults(FaultScript::default());
    let listener = tokio::net::TcpListener::bind(sidecar.base.trim_start_matches("http://"))
        .await
        .unwrap();
    sidecar.start(listener).await;
    wait_for(
        "every imported contact routed after the restart",
        60,
        || async { (routed(&sidecar) == 250).then_some(()) },
    )
    .await;
    let mut writes: HashMap<String, usize> = HashMap::new();
    for w in sidecar.app.sim.write_log() {
        if w.changed && w.property == "hubspot_owner_id" {
            *writes.entry(w.id).or_default() += 1;
        }
    }
    assert!(
        writes.values().all(|n| *n == 1),
        "a record was written twice: {:?}",
        writes.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    let inbox = store
        .inbox_counts(&OrgId::default_for(CrmKind::Hubspot))
        .await
        .unwrap();
    eprintln!("inbox after the restart: {inbox:?}");
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_crm_makes_readyz_say_so_until_it_answers_again() {
    // No client retries: each call fails fast. Polling is hourly: the outage is met by
    // the webhook's refetch, retried with backoff, and recovery needs no poll.
    let sidecar = sidecar_with(3_600, "max_retries = 0", "").await;
    sidecar.app.sim.set_faults(FaultScript {
        rules: vec![FaultRule {
            families: Vec::new(),
            fault: Fault::ServerError { status: 503 },
            trigger: Trigger::Always,
        }],
        ..FaultScript::default()
    });
    // The webhook route's refetch meets the outage first.
    sidecar.webhooks_on();
    let id = sidecar.create_lead(7);
    let ready = wait_for("/readyz reporting the CRM down", 30, || async {
        let (status, ready) = sidecar.readyz().await;
        (status == 503).then_some(ready)
    })
    .await;
    assert_eq!(ready["crm"]["ok"], false, "{ready:#}");
    assert!(
        ready["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("refetch")),
        "{ready:#}"
    );
    sidecar.app.sim.set_faults(FaultScript::default());
    wait_for("/readyz ready again", 30, || async {
        (sidecar.readyz().await.0 == 200).then_some(())
    })
    .await;
    let owner = sidecar.owners[0].clone();
    sidecar
        .wait_owner(id, &owner, "the lead routed once the CRM is back")
        .await;
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_whose_write_failed_is_written_once_the_crm_recovers_without_a_restart() {
    let sidecar = sidecar_with(
        3_600,
        "max_retries = 0",
        "[writer]\ncall_retries = 1\nretry_min_ms = 10\nretry_max_ms = 50\n",
    )
    .await;
    sidecar.app.sim.set_faults(FaultScript {
        rules: vec![FaultRule {
            families: vec![EndpointFamily::BatchUpdate],
            fault: Fault::ServerError { status: 503 },
            trigger: Trigger::Always,
        }],
        ..FaultScript::default()
    });
    sidecar.webhooks_on();
    let id = sidecar.create_lead(6);
    let store = sidecar.app.store.store.clone();
    wait_for("a sidecar run stopped by the failing CRM", 30, || async {
        store
            .journal_runs(20)
            .await
            .unwrap()
            .iter()
            .any(|r| {
                r.kind == "sidecar"
                    && r.status.as_str() != "completed"
                    && r.status.as_str() != "running"
            })
            .then_some(())
    })
    .await;
    assert_eq!(sidecar.owner_in_crm(id), None);
    sidecar.app.sim.set_faults(FaultScript::default());
    let owner = sidecar.owners[0].clone();
    sidecar
        .wait_owner(id, &owner, "the owner written once the CRM answers again")
        .await;
    sidecar.shutdown().await;
}

/// `leadroute policy init`, then `leadroute run` as a process: it serves, and SIGTERM
/// stops it with exit 0. Configured only through LEADROUTE_* variables, including
/// LEADROUTE_LISTEN and LEADROUTE_POLICY.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_starts_from_policy_init_and_exits_zero_on_sigterm() {
    use std::process::{Command, Stdio};

    let sim = leadroute_sim::hubspot::spawn(sim_config(120, 12))
        .await
        .unwrap();
    let secret = sim.config().client_secret.clone();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sidecar.db");
    let policy = dir.path().join("policy.toml");
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let env = [
        ("LEADROUTE_CRM_BASE_URL", sim.base_url()),
        ("LEADROUTE_CRM_TOKEN", sim.token()),
        ("LEADROUTE_STORE_URL", format!("sqlite://{}", db.display())),
        ("LEADROUTE_LISTEN", format!("127.0.0.1:{port}")),
        ("LEADROUTE_POLICY", policy.display().to_string()),
        (
            "LEADROUTE_WEBHOOK_PUBLIC_URL",
            format!("http://127.0.0.1:{port}"),
        ),
        ("LEADROUTE_WEBHOOK_SECRET", secret),
    ];
    let command = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_leadroute"));
        command.args(args).current_dir(dir.path());
        for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("LEADROUTE_")) {
            command.env_remove(name);
        }
        for (name, value) in &env {
            command.env(name, value);
        }
        command
    };
    let run = |args: &[&str]| {
        let mut command = command(args);
        async move {
            tokio::task::spawn_blocking(move || command.output().unwrap())
                .await
                .unwrap()
        }
    };
    let out = run(&["sync", "--once"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let policy_arg = policy.display().to_string();
    let init = ["policy", "init", "--out", policy_arg.as_str()];
    let out = run(&init).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read_to_string(&policy)
            .unwrap()
            .contains("[[rules]]")
    );
    let again = run(&init).await;
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists; pass --force"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let mut child = command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_for("the sidecar process ready", 60, || async {
        let response = reqwest::get(format!("{base}/readyz")).await.ok()?;
        (response.status().as_u16() == 200).then_some(())
    })
    .await;
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(parse_prometheus(&metrics)["leadroute_leader"], 1.0);

    let started = std::time::Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    sim.shutdown().await;
}
