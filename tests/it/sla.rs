//! SLA timers end to end (issue 12): the HubSpot simulator and the sidecar in-process
//! over loopback. A lead routed into a pool and touched in time meets its SLA; an
//! untouched one is reminded, breached and reassigned to the other rep of the pool, and
//! the breach shows in `leadroute sla breaches`, `explain` and `/metrics`; a restart
//! while a timer is open breaches it once, not twice.
//!
//! The touch is the lead status leaving "NEW", set through the simulator's mutation
//! API (the call API of the activity work replaces it at merge).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use leadroute::service::{Running, Service};
use leadroute::store::sla::TimerState;
use leadroute_sim::hubspot::{Mutation, ObjectType};

use crate::helpers::{TestApp, sim_config, spawn_app, wait_for};

struct Setup {
    app: TestApp,
    running: Option<Running>,
    base: String,
    owners: Vec<String>,
    dir: tempfile::TempDir,
    policy: PathBuf,
}

fn policy_text(a: &str, b: &str) -> String {
    format!(
        r#"[settings]
name = "sla-test"
sticky = true
manual_override_days = 0

[reps.a]
owner = "{a}"
[reps.b]
owner = "{b}"

[pools.inbound]
strategy = "round_robin"
members = ["a", "b"]

[[rules]]
name = "sla-leads"
when = [{{ field = "email_domain", in = ["sla-test.example"] }}]
action = "pool"
pool = "inbound"

[default]
action = "keep"

[[sla]]
name = "first-touch"
applies_to = "pools"
pools = ["inbound"]
within_secs = 5
calendar = "always"
remind_before_secs = [2]
on_breach = ["reassign", "exception"]
new_status = "NEW"
"#
    )
}

async fn setup() -> Setup {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let sim = sim_config(60, 10);
    let secret = sim.client_secret.clone();
    let app = spawn_app(
        sim,
        &format!(
            "[webhook]\npublic_url = \"{base}\"\nsecret = \"{secret}\"\n\
             [policy]\npath = \"{}\"\n\
             [sync]\ninterval_secs = 1\nhint_poll_ms = 50\nactivities = true\n\
             [service]\nlinger_ms = 50\nshutdown_grace_secs = 20\n",
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
    std::fs::write(&policy, policy_text(&owners[0], &owners[1])).unwrap();
    let mut s = Setup {
        app,
        running: None,
        base,
        owners,
        dir,
        policy,
    };
    s.start(listener).await;
    s.app
        .sim
        .set_webhook_url(Some(format!("{}/webhooks/hubspot", s.base)));
    s
}

impl Setup {
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
        wait_for("the first poll", 30, || async {
            self.running
                .as_ref()
                .unwrap()
                .status()
                .last_successful_poll
                .is_some()
                .then_some(())
        })
        .await;
    }

    fn create_lead(&self, n: u32) -> String {
        let properties = BTreeMap::from([
            ("firstname".to_owned(), format!("Lead{n}")),
            ("lastname".to_owned(), "Sla".to_owned()),
            ("email".to_owned(), format!("lead{n}@sla-test.example")),
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
        created.ids[0].clone()
    }

    fn owner_in_crm(&self, id: &str) -> Option<String> {
        self.app
            .sim
            .state()
            .contacts
            .iter()
            .find(|c| c.id.to_string() == id)
            .and_then(|c| c.properties.get("hubspot_owner_id").cloned())
            .filter(|o| !o.is_empty())
    }

    async fn wait_owned(&self, id: &str) -> String {
        wait_for(
            "the lead's pool owner written by the sidecar",
            20,
            || async {
                self.owner_in_crm(id)
                    .filter(|o| self.owners[..2].contains(o))
            },
        )
        .await
    }

    async fn timers(&self, id: &str) -> Vec<leadroute::store::sla::TimerRow> {
        self.app
            .store
            .store
            .sla_timers(
                "hubspot",
                None,
                Some((
                    leadroute::domain::ObjectKind::Contact,
                    &leadroute::domain::RecordId::new(id),
                )),
                10,
            )
            .await
            .unwrap()
    }

    /// Runs the leadroute binary against the same store and simulator.
    async fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let config = self.dir.path().join("cli.toml");
        std::fs::write(
            &config,
            format!(
                "[crm]\nkind = \"hubspot\"\nbase_url = \"{}\"\ntoken = \"{}\"\n\n[store]\nurl = \"{}\"\n\n[policy]\npath = \"{}\"\n",
                self.app.sim.base_url(),
                self.app.sim.token(),
                self.app.store.url,
                self.policy.display()
            ),
        )
        .unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_leadroute"));
        command
            .arg("--config")
            .arg(config)
            .args(args)
            .env_clear()
            .stdin(std::process::Stdio::null());
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .expect("run leadroute");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        self.app.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_touched_lead_meets_its_sla_and_an_untouched_one_is_reminded_then_reassigned() {
    let s = setup().await;
    let touched = s.create_lead(1);
    let untouched = s.create_lead(2);
    let first_owner = s.wait_owned(&touched).await;
    let untouched_owner = s.wait_owned(&untouched).await;
    // The rep calls the first lead: its status leaves NEW.
    s.app
        .sim
        .mutate(Mutation::UpdateProperties {
            object: ObjectType::Contacts,
            id: touched.clone(),
            properties: BTreeMap::from([("hs_lead_status".to_owned(), "IN_PROGRESS".to_owned())]),
        })
        .expect("update the lead status");

    let met = wait_for("the touched lead's timer met", 30, || async {
        s.timers(&touched)
            .await
            .into_iter()
            .find(|t| t.state == TimerState::Met)
    })
    .await;
    assert_eq!(met.owner.as_str(), first_owner);
    assert_eq!(met.touch_kind.as_deref(), Some("status"));
    assert!(met.touched_at.unwrap() <= met.due_at);

    // The untouched lead: reminded, breached, reassigned to the other pool member.
    let other = if untouched_owner == s.owners[0] {
        s.owners[1].clone()
    } else {
        s.owners[0].clone()
    };
    wait_for("the untouched lead reassigned", 30, || async {
        (s.owner_in_crm(&untouched).as_deref() == Some(other.as_str())).then_some(())
    })
    .await;
    let timers = s.timers(&untouched).await;
    let breached = timers
        .iter()
        .find(|t| t.state == TimerState::Breached)
        .expect("a breached timer");
    assert_eq!(breached.owner.as_str(), untouched_owner);
    // The escalation is journaled once the reassigning run has returned.
    let events = wait_for("the escalation journaled", 10, || async {
        let events = s
            .app
            .store
            .store
            .sla_events(
                "hubspot",
                &[],
                None,
                Some((breached.object, &breached.record_id)),
            )
            .await
            .unwrap();
        events
            .iter()
            .any(|e| e.kind == "escalated")
            .then_some(events)
    })
    .await;
    let kinds: Vec<&str> = events
        .iter()
        .filter(|e| e.timer_id == breached.id)
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        vec!["started", "reminder", "breached", "escalated"],
        "{events:#?}"
    );
    // The reassignment starts the next timer, for the new owner.
    let next = wait_for("a timer for the new owner", 10, || async {
        s.timers(&untouched)
            .await
            .into_iter()
            .find(|t| t.owner.as_str() == other)
    })
    .await;
    assert_eq!(next.attempt, 1);

    let (ok, out, err) = s.cli(&["sla", "breaches", "--format", "json"]).await;
    assert!(ok, "{err}");
    let lines: serde_json::Value = serde_json::from_str(&out).unwrap();
    let lines = lines.as_array().unwrap();
    assert!(
        lines.iter().any(|l| l["record_id"] == untouched.as_str()
            && l["escalation"]
                .as_str()
                .is_some_and(|e| e.contains("reassigned to"))),
        "{out}"
    );
    assert!(
        !lines.iter().any(|l| l["record_id"] == touched.as_str()),
        "{out}"
    );
    let (ok, out, err) = s
        .cli(&["explain", &format!("hubspot:contact:{untouched}")])
        .await;
    assert!(ok, "{err}");
    assert!(
        out.contains("SLA timers:") && out.contains("breached"),
        "{out}"
    );

    let (ok, out, err) = s.cli(&["sla", "report", "--format", "json"]).await;
    assert!(ok, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let all = &rows.as_array().unwrap()[0];
    assert_eq!(all["group"], "all", "{out}");
    assert!(
        all["met"].as_u64() >= Some(1) && all["breached"].as_u64() >= Some(1),
        "{out}"
    );

    let metrics = s.metrics().await;
    assert!(
        metrics.contains("leadroute_sla_breaches_total{sla=\"first-touch\"} "),
        "{metrics}"
    );
    assert!(
        metrics.contains("leadroute_time_to_first_touch_seconds_count 1"),
        "{metrics}"
    );
    assert!(metrics.contains("leadroute_sla_open "), "{metrics}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_an_open_timer_still_breaches_it_once() {
    let mut s = setup().await;
    let id = s.create_lead(3);
    let owner = s.wait_owned(&id).await;
    wait_for("the timer started", 10, || async {
        s.timers(&id).await.into_iter().next()
    })
    .await;
    // Stop the sidecar while the timer runs; start a new one on the same store.
    let stopped = s.running.take().unwrap().stop().await;
    assert!(stopped.clean, "{stopped:?}");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    s.base = format!("http://{}", listener.local_addr().unwrap());
    s.start(listener).await;
    wait_for("the reassignment after the restart", 30, || async {
        s.owner_in_crm(&id).filter(|o| *o != owner).map(|_| ())
    })
    .await;
    // Give a second engine pass time to (wrongly) fire again.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let breaches = s
        .app
        .store
        .store
        .sla_events(
            "hubspot",
            &["breached"],
            None,
            Some((
                leadroute::domain::ObjectKind::Contact,
                &leadroute::domain::RecordId::new(&id),
            )),
        )
        .await
        .unwrap();
    let first_timer = s
        .timers(&id)
        .await
        .into_iter()
        .find(|t| t.owner.as_str() == owner)
        .unwrap();
    assert_eq!(
        breaches
            .iter()
            .filter(|b| b.timer_id == first_timer.id)
            .count(),
        1,
        "{breaches:#?}"
    );
    let writes = s
        .app
        .sim
        .write_log()
        .into_iter()
        .filter(|w| w.id == id && w.changed)
        .count();
    assert_eq!(writes, 2, "one routing write and one reassignment");
    s.shutdown().await;
}

/// A call logged through HubSpot's public engagements API (`POST /crm/v3/objects/calls`
/// with its contact association) by the lead's owner stops the clock at the call's own
/// time: the touch reaches leadroute as the mirrored call and as the contact's
/// `hs_last_sales_activity_timestamp` rollup, whichever is read first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_logged_through_the_crms_api_meets_the_sla_at_the_calls_time() {
    let s = setup().await;
    let lead = s.create_lead(3);
    let owner = s.wait_owned(&lead).await;
    // The clock starts when the write is acknowledged; the rep calls after that.
    let timer = wait_for("the lead's timer started", 20, || async {
        s.timers(&lead).await.into_iter().next()
    })
    .await;
    let called_at = chrono::Utc::now();
    assert!(called_at >= timer.started_at);
    let stamp = called_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let response = reqwest::Client::new()
        .post(format!("{}/crm/v3/objects/calls", s.app.sim.base_url()))
        .bearer_auth(s.app.sim.token())
        .json(&serde_json::json!({
            "properties": {
                "hs_timestamp": stamp,
                "hubspot_owner_id": owner,
                "hs_call_direction": "OUTBOUND",
                "hs_call_body": "first call",
            },
            "associations": [{
                "to": {"id": lead},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}],
            }],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        201,
        "{}",
        response.text().await.unwrap_or_default()
    );

    let met = wait_for("the called lead's timer met", 30, || async {
        s.timers(&lead)
            .await
            .into_iter()
            .find(|t| t.state == TimerState::Met)
    })
    .await;
    assert_eq!(met.owner.as_str(), owner);
    assert!(
        matches!(met.touch_kind.as_deref(), Some("call" | "activity")),
        "{met:?}"
    );
    let touched = met.touched_at.expect("a met timer has its touch time");
    assert_eq!(
        touched.timestamp_millis(),
        called_at.timestamp_millis(),
        "the clock stops at the call's own time: {met:?}"
    );
    assert!(touched <= met.due_at);
    // Nothing was reassigned.
    assert_eq!(s.owner_in_crm(&lead).as_deref(), Some(owner.as_str()));
    s.shutdown().await;
}
