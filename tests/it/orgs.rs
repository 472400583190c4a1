//! Several orgs in one store (issue 11): a store written before orgs moves forward in
//! place, and orgs' rows stay apart.

use std::sync::Arc;

use leadroute::config::Config;
use leadroute::domain::{OrgId, OrgRef, RecordId};
use leadroute::mirror::Mirror;
use leadroute::service::commit::commit_plan;
use leadroute::service::starter::starter_policy;
use leadroute::store::Store;
use leadroute::writer::{ApplyReport, NoProgress, RunId, RunSpec, Writer, WriterSettings};
use leadroute_crm::{Crm, CrmKind, ObjectKind};
use leadroute_sim::hubspot::HubSpotSimConfig;
use leadroute_sim::salesforce::SalesforceSimConfig;

use crate::helpers::{all_stores_at, sim_config};

/// The last migration of the release before orgs (rows keyed by CRM kind).
const BEFORE_ORGS: u32 = 222;

/// Rows as the previous release wrote them: keyed `crm = 'hubspot'`.
const OLD_ROWS: &str = "
INSERT INTO owners (crm, object, id, kind, email, name, active, teams, raw, synced_at)
    VALUES ('hubspot', 'owner', '101', 'user', 'ann@example.com', 'Ann', (1 = 1), '[]', '{}', 1);
INSERT INTO accounts (crm, object, id, name, domain, extra_domains, updated_at, fields, raw, synced_at)
    VALUES ('hubspot', 'account', 'a1', 'Acme', 'acme.com', '[]', 1, '{}', '{}', 1);
INSERT INTO people (crm, object, id, email, owner_id, converted, updated_at, fields, raw, synced_at)
    VALUES ('hubspot', 'contact', '123', 'bo@acme.com', '101', (1 = 0), 1, '{}', '{}', 1);
INSERT INTO sync_cursors (crm, object, cursor, updated_at)
    VALUES ('hubspot', 'contact', 'c-42', 1);
INSERT INTO org_identity (crm, org_id, name, recorded_at) VALUES ('hubspot', '9001', NULL, 1);
INSERT INTO ledger_pools (crm, pool, picks) VALUES ('hubspot', 'emea', 7);
INSERT INTO webhook_inbox (crm, object, record_id, dedupe_key, received_at, status, attempts)
    VALUES ('hubspot', 'contact', '123', 'k1', 1, 'pending', 0);
INSERT INTO writer_runs (run_id, crm, kind, policy_version, status, total, created_at, updated_at)
    VALUES ('r1', 'hubspot', 'apply', 'v1', 'completed', 0, 1, 1);
INSERT INTO writer_exceptions (crm, object, record_id, kind, rule, reason, status, created_at)
    VALUES ('hubspot', 'contact', '123', 'no_eligible_rep', 'r', 'why', 'open', 1);
INSERT INTO schedule_runs (scope, job, last_run_at, last_outcome)
    VALUES ('hubspot', 'full_sync', 5, 'ok');
";

#[tokio::test]
async fn a_store_written_before_orgs_is_read_back_as_its_default_org_on_every_backend() {
    for test in all_stores_at(BEFORE_ORGS).await {
        let label = test.label;
        test.store.execute_script(OLD_ROWS).await.unwrap();
        test.store.close().await;
        // The new release opens it: migration 0300 renames the key columns in place.
        let store = Store::open(&test.url).await.unwrap();
        let org = OrgId::default_for(CrmKind::Hubspot);
        let snapshot = store
            .snapshot(&OrgRef::default_for(CrmKind::Hubspot))
            .await
            .unwrap();
        assert_eq!(snapshot.people.len(), 1, "{label}");
        assert_eq!(snapshot.accounts.len(), 1, "{label}");
        assert_eq!(snapshot.owners.len(), 1, "{label}");
        let person = store
            .person(&org, ObjectKind::Contact, &RecordId::new("123"))
            .await
            .unwrap()
            .expect("hubspot:contact:123 is still there");
        assert_eq!(
            person.owner_id.as_ref().map(|o| o.as_str()),
            Some("101"),
            "{label}"
        );
        assert!(
            store
                .cursor(&org, ObjectKind::Contact)
                .await
                .unwrap()
                .is_some(),
            "{label}: the cursor survives, so no full resync"
        );
        assert_eq!(
            store.org_identity(&org).await.unwrap().map(|o| o.id),
            Some("9001".to_owned()),
            "{label}"
        );
        assert_eq!(
            store.pending_hints(&org, 10).await.unwrap().len(),
            1,
            "{label}"
        );
        let runs = store.journal_runs(10).await.unwrap();
        assert_eq!(runs.len(), 1, "{label}");
        assert_eq!(runs[0].org, org, "{label}");
        let exceptions = store.exceptions(Some("open")).await.unwrap();
        assert_eq!(exceptions.len(), 1, "{label}");
        assert_eq!(exceptions[0].org, org, "{label}");
        assert!(
            store
                .schedule_last_run(&org, "full_sync")
                .await
                .unwrap()
                .is_some(),
            "{label}"
        );
        // Another org in the same store sees none of it.
        let other = OrgId::new("south").unwrap();
        let empty = store
            .snapshot(&OrgRef {
                name: other.clone(),
                kind: CrmKind::Hubspot,
            })
            .await
            .unwrap();
        assert!(
            empty.people.is_empty() && empty.owners.is_empty(),
            "{label}"
        );
        assert!(
            store
                .cursor(&other, ObjectKind::Contact)
                .await
                .unwrap()
                .is_none()
        );
        let ledger = store.load_ledger(&org).await.unwrap();
        let other_ledger = store.load_ledger(&other).await.unwrap();
        assert_ne!(
            format!("{ledger:?}"),
            format!("{other_ledger:?}"),
            "{label}"
        );
        store.close().await;
        test.cleanup().await;
    }
}

/// Three orgs in one store: two HubSpot portals and a Salesforce org, from one config.
fn three_orgs_toml(north: &str, south: &str, emea: &str, sf: &SalesforceSimConfig) -> String {
    format!(
        r#"
[[org]]
name = "north"
kind = "hubspot"
base_url = "{north}"
overlap_secs = 2
[[org]]
name = "south"
kind = "hubspot"
base_url = "{south}"
overlap_secs = 2
[[org]]
name = "emea"
kind = "salesforce"
base_url = "{emea}"
overlap_secs = 2
[org.oauth]
client_id = "{}"
client_secret = "{}"
refresh_token = "{}"
[org.salesforce]
auth = "refresh_token"
"#,
        sf.client_id, sf.client_secret, sf.refresh_token
    )
}

/// Sync, plan with a starter policy fitted to the org's owners, commit: what `sync`,
/// `plan` and `apply --org NAME` do for one org.
async fn converge_one<C: Crm>(crm: Arc<C>, store: &Store, config: &Config) -> ApplyReport {
    let org = config.org_ref();
    Mirror::new(Arc::clone(&crm), store.clone())
        .with_org(org.name.clone())
        .sync_once(false)
        .await
        .unwrap();
    let owners = store.owners(&org.name).await.unwrap();
    let (text, _) = starter_policy(&owners, "test").unwrap();
    let policy = leadroute::policy::parse("starter.toml", &text).unwrap().0;
    let snapshot = store.snapshot(&org).await.unwrap();
    let mut ledger = store.load_ledger(&org.name).await.unwrap();
    let plan = leadroute::reconcile::plan(&snapshot, &policy, &mut ledger, chrono::Utc::now());
    assert_eq!(plan.crm, org.kind);
    let writer = Writer::new(crm, store.clone(), WriterSettings::default()).with_org(org.name);
    let spec = RunSpec {
        id: RunId::generate(chrono::Utc::now()),
        kind: "apply".to_owned(),
        parent: None,
    };
    let committed = commit_plan(&writer, &plan, Some(&mut ledger), &spec, &NoProgress)
        .await
        .unwrap();
    committed
        .report
        .expect("the starter policy moves some records")
}

#[tokio::test]
async fn two_hubspot_portals_and_a_salesforce_org_share_a_store_with_their_rows_apart() {
    for test in crate::helpers::all_stores().await {
        let label = test.label;
        let north = leadroute_sim::hubspot::spawn(sim_config(60, 12))
            .await
            .unwrap();
        let south = leadroute_sim::hubspot::spawn(HubSpotSimConfig {
            seed: 99,
            ..sim_config(40, 8)
        })
        .await
        .unwrap();
        let sf_config = SalesforceSimConfig {
            leads: 50,
            contacts: 20,
            accounts: 10,
            users: 6,
            ..SalesforceSimConfig::default()
        };
        let emea = leadroute_sim::salesforce::spawn(sf_config.clone())
            .await
            .unwrap();
        let text = three_orgs_toml(
            &north.base_url(),
            &south.base_url(),
            &emea.base_url(),
            &sf_config,
        );
        let (north_token, south_token) = (north.token(), south.token());
        let config = Config::from_toml(&text, "three.toml", &|name| match name {
            "LEADROUTE_ORG_NORTH_TOKEN" => Some(north_token.clone()),
            "LEADROUTE_ORG_SOUTH_TOKEN" => Some(south_token.clone()),
            _ => None,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let err = config.for_org(None).unwrap_err();
        assert!(
            err.contains("north (hubspot), south (hubspot), emea (salesforce)"),
            "{err}"
        );
        let store = &test.store;

        let mut reports = Vec::new();
        for name in ["north", "south", "emea"] {
            let scoped = config.for_org(Some(name)).unwrap();
            let report = match scoped.crm.kind {
                CrmKind::Hubspot => {
                    let crm = Arc::new(leadroute::app::hubspot(&scoped).unwrap());
                    converge_one(crm, store, &scoped).await
                }
                CrmKind::Salesforce => {
                    let crm = Arc::new(leadroute::app::salesforce(&scoped).unwrap());
                    converge_one(crm, store, &scoped).await
                }
            };
            assert!(report.applied > 0, "{label} {name}: {report:?}");
            reports.push((name, report));
        }

        // Each org's mirror holds exactly its CRM's records.
        let org = |name: &str| OrgId::new(name).unwrap();
        let live = |state: &leadroute_sim::hubspot::HubSpotState| {
            state.contacts.iter().filter(|c| !c.archived).count() as u64
        };
        assert_eq!(
            store.counts(&org("north")).await.unwrap().contacts,
            live(&north.state()),
            "{label}"
        );
        assert_eq!(
            store.counts(&org("south")).await.unwrap().contacts,
            live(&south.state()),
            "{label}"
        );
        let emea_counts = store.counts(&org("emea")).await.unwrap();
        let emea_leads = emea.state().leads.iter().filter(|l| !l.is_deleted).count() as u64;
        assert_eq!(emea_counts.leads, emea_leads, "{label}");
        assert_eq!(emea_counts.contacts, 20, "{label}");
        // Two HubSpot portals hold ids that collide (both number from the same base):
        // the same contact id is two different records, one per org.
        let north_ids: std::collections::BTreeSet<String> = north
            .state()
            .contacts
            .iter()
            .map(|c| c.id.to_string())
            .collect();
        let shared = south
            .state()
            .contacts
            .iter()
            .filter(|c| north_ids.contains(&c.id.to_string()))
            .count();
        assert!(
            shared > 0,
            "{label}: the portals' ids overlap, which is the point"
        );

        // Each org's runs are journaled under its name, and each CRM got only its own
        // org's writes.
        let runs = store.journal_runs(50).await.unwrap();
        for (name, report) in &reports {
            let run = runs.iter().find(|r| r.run_id == report.run_id).unwrap();
            assert_eq!(run.org.as_str(), *name, "{label}");
        }
        let writes = |log_len: usize, name: &str| {
            let report = &reports.iter().find(|(n, _)| *n == name).unwrap().1;
            assert_eq!(
                log_len as u64, report.applied,
                "{label} {name}: one write per applied change"
            );
        };
        writes(north.write_log().len(), "north");
        writes(south.write_log().len(), "south");
        writes(emea.write_log().len(), "emea");

        // A second pass for every org plans nothing: the ledgers and mirrors are apart.
        for name in ["north", "south", "emea"] {
            let scoped = config.for_org(Some(name)).unwrap();
            let org = scoped.org_ref();
            let snapshot = store.snapshot(&org).await.unwrap();
            let owners = store.owners(&org.name).await.unwrap();
            let (text, _) = starter_policy(&owners, "test").unwrap();
            let policy = leadroute::policy::parse("starter.toml", &text).unwrap().0;
            let mut ledger = store.load_ledger(&org.name).await.unwrap();
            let plan =
                leadroute::reconcile::plan(&snapshot, &policy, &mut ledger, chrono::Utc::now());
            assert!(
                plan.changes.is_empty(),
                "{label} {name}: {:?}",
                plan.changes.first()
            );
        }
        north.shutdown().await;
        south.shutdown().await;
        emea.shutdown().await;
        test.cleanup().await;
    }
}

#[tokio::test]
async fn one_process_serves_three_orgs_and_a_broken_policy_or_revoked_token_stops_only_that_org() {
    for test in crate::helpers::all_stores().await {
        one_process_serves_three_orgs(test).await;
    }
}

async fn one_process_serves_three_orgs(test: crate::helpers::TestStore) {
    let store = &test.store;
    let north = leadroute_sim::hubspot::spawn(sim_config(30, 6))
        .await
        .unwrap();
    let south = leadroute_sim::hubspot::spawn(HubSpotSimConfig {
        seed: 7,
        ..sim_config(20, 5)
    })
    .await
    .unwrap();
    let sf_config = SalesforceSimConfig {
        leads: 20,
        contacts: 10,
        accounts: 5,
        users: 5,
        ..SalesforceSimConfig::default()
    };
    let emea = leadroute_sim::salesforce::spawn(sf_config.clone())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut text = three_orgs_toml(
        &north.base_url(),
        &south.base_url(),
        &emea.base_url(),
        &sf_config,
    );
    // Each org's own policy; emea's file does not exist (a broken org).
    for (name, policy) in [
        ("north", "north.toml"),
        ("south", "south.toml"),
        ("emea", "missing.toml"),
    ] {
        let path = dir.path().join(policy);
        text = text.replacen(
            &format!("name = \"{name}\"\n"),
            &format!("name = \"{name}\"\npolicy = \"{}\"\n", path.display()),
            1,
        );
    }
    for name in ["north", "south"] {
        text = text.replacen(
            &format!("name = \"{name}\"\n"),
            &format!("name = \"{name}\"\nwebhook_secret = \"{name}-secret\"\n"),
            1,
        );
    }
    text.push_str("[sync]\ninterval_secs = 1\n[service]\nlease_ttl_secs = 3\n");
    let (north_token, south_token) = (north.token(), south.token());
    let config = Config::from_toml(&text, "three.toml", &|name| match name {
        "LEADROUTE_ORG_NORTH_TOKEN" => Some(north_token.clone()),
        "LEADROUTE_ORG_SOUTH_TOKEN" => Some(south_token.clone()),
        _ => None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    // Starter policies for the HubSpot orgs, from their owners.
    for name in ["north", "south"] {
        let scoped = config.for_org(Some(name)).unwrap();
        let crm = Arc::new(leadroute::app::hubspot(&scoped).unwrap());
        Mirror::new(crm, store.clone())
            .with_org(scoped.org.clone())
            .sync_once(false)
            .await
            .unwrap();
        let owners = store.owners(&scoped.org).await.unwrap();
        let (policy, _) = starter_policy(&owners, "test").unwrap();
        std::fs::write(scoped.policy.path.clone().unwrap(), policy).unwrap();
    }

    let (handles, endpoints) = leadroute::app::start_orgs(&config, store).await;
    let started: Vec<&str> = handles.iter().map(|h| h.org().as_str()).collect();
    assert_eq!(
        started,
        ["north", "south"],
        "emea's missing policy stops only emea"
    );
    assert_eq!(endpoints.len(), 3);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let cancel = tokio_util::sync::CancellationToken::new();
    let server = leadroute::service::orgs::serve(listener, endpoints, cancel.clone());

    // /readyz: north and south become ready; emea is not, and says why.
    let body: serde_json::Value = crate::helpers::wait_for("north and south ready", 30, || {
        let base = base.clone();
        async move {
            let body: serde_json::Value = reqwest::get(format!("{base}/readyz"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let ready = |org: &str| body["orgs"][org]["ready"] == serde_json::json!(true);
            (ready("north") && ready("south")).then_some(body)
        }
    })
    .await;
    assert_eq!(body["ready"], serde_json::json!(false), "{body}");
    assert_eq!(
        body["orgs"]["emea"]["ready"],
        serde_json::json!(false),
        "{body}"
    );
    assert!(
        body["orgs"]["emea"]["error"]
            .as_str()
            .unwrap()
            .contains("missing.toml"),
        "{body}"
    );
    assert_eq!(
        body["orgs"]["north"]["lease"]["name"],
        serde_json::json!("org:north")
    );
    assert_eq!(
        body["orgs"]["south"]["lease"]["name"],
        serde_json::json!("org:south")
    );

    // Webhooks: an unknown org is a 404 with the reason and stores nothing; a known
    // org's route reaches that org's connector (an unsigned delivery is refused).
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/webhooks/west"))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let reason: serde_json::Value = response.json().await.unwrap();
    assert_eq!(reason["error"], serde_json::json!("unknown org"));
    assert_eq!(
        reason["orgs"],
        serde_json::json!(["north", "south", "emea"])
    );
    let response = client
        .post(format!("{base}/webhooks/north"))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "north's connector checked the signature"
    );
    for name in ["north", "south", "emea", "west"] {
        let org = OrgId::new(name).unwrap();
        assert_eq!(store.inbox_counts(&org).await.unwrap().pending, 0, "{name}");
    }
    // A delivery signed with north's secret lands in north's inbox only.
    let url = format!("{base}/webhooks/north");
    let contact = north.state().contacts[0].id;
    let body = serde_json::json!([crate::webhooks::owner_event(
        1,
        contact,
        "1",
        crate::webhooks::now_ms()
    )])
    .to_string();
    let timestamp = crate::webhooks::now_ms().to_string();
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .header(
            "x-hubspot-signature-v3",
            crate::webhooks::sign("north-secret", &url, &body, &timestamp),
        )
        .header("x-hubspot-request-timestamp", timestamp)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let inbox = store
        .inbox_counts(&OrgId::new("north").unwrap())
        .await
        .unwrap();
    assert_eq!(inbox.pending + inbox.done, 1, "{inbox:?}");
    for name in ["south", "emea"] {
        let inbox = store
            .inbox_counts(&OrgId::new(name).unwrap())
            .await
            .unwrap();
        assert_eq!(inbox.pending + inbox.done, 0, "{name}: {inbox:?}");
    }

    // South's token is revoked: south stops being ready, north keeps routing.
    south.set_faults(leadroute_sim::hubspot::FaultScript {
        rules: vec![leadroute_sim::hubspot::FaultRule {
            families: Vec::new(),
            fault: leadroute_sim::hubspot::Fault::ServerError { status: 401 },
            trigger: leadroute_sim::hubspot::Trigger::Always,
        }],
        ..Default::default()
    });
    let body: serde_json::Value = crate::helpers::wait_for("south not ready", 30, || {
        let base = base.clone();
        async move {
            let body: serde_json::Value = reqwest::get(format!("{base}/readyz"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (body["orgs"]["south"]["ready"] == serde_json::json!(false)).then_some(body)
        }
    })
    .await;
    assert_eq!(
        body["orgs"]["south"]["crm"]["ok"],
        serde_json::json!(false),
        "{body}"
    );
    assert_eq!(
        body["orgs"]["north"]["ready"],
        serde_json::json!(true),
        "{body}"
    );
    assert_eq!(body["ready_orgs"], serde_json::json!(["north"]), "{body}");
    south.set_faults(leadroute_sim::hubspot::FaultScript::default());

    // Metrics carry the org label, one exposition for all orgs.
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("org=\"north\""), "{metrics}");
    assert!(metrics.contains("org=\"south\""), "{metrics}");
    assert!(
        metrics.contains("leadroute_webhooks_total{org=\"north\",result=\"unauthorized\"} 1"),
        "{metrics}"
    );
    assert_eq!(metrics.matches("# EOF").count(), 1);

    // Each org's pipeline stops on its own and hands its lease back.
    for handle in handles {
        let org = handle.org().clone();
        let stopped = handle.stop().await;
        assert!(stopped.clean, "{org}: {stopped:?}");
        let lease = store.lease(&format!("org:{org}")).await.unwrap().unwrap();
        assert_eq!(
            lease.holder, None,
            "{org}: the lease is released at a clean stop"
        );
    }
    cancel.cancel();
    let _ = server.await;
    north.shutdown().await;
    south.shutdown().await;
    emea.shutdown().await;
    test.cleanup().await;
}
