//! Creating Leads and Contacts on the Salesforce simulator as an org's users
//! and forms do: `POST sobjects/Lead|Contact` (201, required fields, the lead
//! assignment rule under `Sforce-Auto-Assign`), the outbound messages the
//! creates send, and the Web-to-Lead form-fill stream.

mod salesforce_support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use parking_lot::Mutex;
use salesforce_support::*;
use serde_json::{Value, json};

use leadroute_sim::salesforce::{LeadAssignmentRule, SalesforceSimConfig};

const ACK: &str = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#;

/// An outbound-message listener on loopback that acknowledges everything.
async fn listener() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen_in = Arc::clone(&seen);
    let app = Router::new().route(
        "/webhooks/salesforce",
        post(move |body: String| {
            let seen = Arc::clone(&seen_in);
            async move {
                seen.lock().push(body);
                ACK
            }
        }),
    );
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/webhooks/salesforce",
        socket.local_addr().expect("addr")
    );
    tokio::spawn(async move {
        let _ = axum::serve(socket, app).await;
    });
    (url, seen)
}

/// Waits (≤ 5 s) until every id appears in some envelope; returns the envelopes.
async fn envelopes_naming(seen: &Mutex<Vec<String>>, ids: &[String]) -> Vec<String> {
    for _ in 0..500 {
        let all = seen.lock().clone();
        if ids.iter().all(|id| {
            all.iter()
                .any(|e| e.contains(&format!("<sf:Id>{id}</sf:Id>")))
        }) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    seen.lock().clone()
}

fn lead(org: &Org, id: &str) -> leadroute_sim::salesforce::SfLead {
    org.sim
        .state()
        .leads
        .into_iter()
        .find(|l| l.id == id)
        .expect("lead exists")
}

fn created_id(a: &Answer) -> String {
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["success"], true);
    assert_eq!(a.body["errors"], json!([]));
    a.body["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn a_rest_lead_create_runs_the_assignment_rule_unless_the_header_says_false() {
    let org = spawn_small().await;
    let state = org.sim.state();
    let (country, in_country): (String, Vec<String>) = state
        .users
        .iter()
        .filter(|u| u.is_active && u.id != state.api_user_id)
        .find_map(|u| {
            let c = u.country.clone()?;
            let all = state
                .users
                .iter()
                .filter(|v| {
                    v.is_active && v.id != state.api_user_id && v.country.as_ref() == Some(&c)
                })
                .map(|v| v.id.clone())
                .collect();
            Some((c, all))
        })
        .expect("active users have countries");
    let outsider = state
        .users
        .iter()
        .find(|u| u.is_active && u.id != state.api_user_id && u.country.as_ref() != Some(&country))
        .expect("a user from another country")
        .id
        .clone();
    let body = json!({"LastName": "Ng", "Company": "Acme GmbH", "Email": "ng@acme.example", "Country": country, "OwnerId": outsider});

    // No header: REST defaults to running the active rule (reference §6, trap 25).
    let used = org.sim.stats().api_used;
    let id = created_id(&org.post("sobjects/Lead", &body, &[]).await);
    assert_eq!(
        org.sim.stats().api_used,
        used + 1,
        "a create is one API call"
    );
    let plain = org
        .post(
            "sobjects/Lead",
            &json!({"LastName": "K", "Company": "C"}),
            &[],
        )
        .await;
    assert_eq!(a_body_keys(&plain), ["errors", "id", "success"]);
    assert!(
        in_country.contains(&lead(&org, &id).owner_id),
        "the rule's pick"
    );
    for header in ["TRUE", "true", "01Q8d000000Sim0AAA"] {
        let id = created_id(
            &org.post("sobjects/Lead", &body, &[("Sforce-Auto-Assign", header)])
                .await,
        );
        assert!(
            in_country.contains(&lead(&org, &id).owner_id),
            "Sforce-Auto-Assign: {header}"
        );
    }
    let id = created_id(
        &org.post("sobjects/Lead", &body, &[("Sforce-Auto-Assign", "FALSE")])
            .await,
    );
    assert_eq!(
        lead(&org, &id).owner_id,
        outsider,
        "FALSE keeps the owner sent"
    );
    // Without an owner and without the rule, the calling user owns it.
    let id = created_id(
        &org.post(
            "sobjects/Lead",
            &json!({"LastName": "Ng", "Company": "Acme GmbH"}),
            &[("Sforce-Auto-Assign", "FALSE")],
        )
        .await,
    );
    assert_eq!(lead(&org, &id).owner_id, state.api_user_id);
    let created = lead(&org, &id);
    assert_eq!(created.status.as_deref(), Some("Open - Not Contacted"));

    // Required fields.
    let a = org
        .post("sobjects/Lead", &json!({"LastName": "Ng"}), &[])
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body[0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(a.body[0]["fields"], json!(["Company"]));
    let a = org
        .post("sobjects/Contact", &json!({"FirstName": "Ng"}), &[])
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body[0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(a.body[0]["fields"], json!(["LastName"]));

    // The new lead is in SOQL at once.
    let q = org
        .query(&format!("SELECT Id, OwnerId FROM Lead WHERE Id = '{id}'"))
        .await;
    assert_eq!(q.body["totalSize"], 1, "{}", q.text);
    org.sim.shutdown().await;
}

fn a_body_keys(a: &Answer) -> Vec<String> {
    let mut keys: Vec<String> = a
        .body
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

#[tokio::test]
async fn lead_and_contact_creates_send_outbound_messages_with_the_assigned_owner() {
    let (url, seen) = listener().await;
    let org = spawn(SalesforceSimConfig {
        outbound_url: Some(url),
        lead_assignment_rule: LeadAssignmentRule::Queue {
            queue_name: "Lead Intake".to_owned(),
        },
        ..small_config()
    })
    .await;
    let queue = org.queue("Lead Intake");
    let lead_id = created_id(
        &org.post(
            "sobjects/Lead",
            &json!({"LastName": "Ng", "Company": "Acme GmbH", "Email": "ng@acme.example"}),
            &[],
        )
        .await,
    );
    let contact_id = created_id(
        &org.post(
            "sobjects/Contact",
            &json!({"LastName": "Ito", "Email": "ito@acme.example"}),
            &[],
        )
        .await,
    );
    let envelopes = envelopes_naming(&seen, &[lead_id.clone(), contact_id.clone()]).await;
    let lead_envelope = envelopes
        .iter()
        .find(|e| e.contains(&format!("<sf:Id>{lead_id}</sf:Id>")))
        .expect("an outbound message for the new lead");
    assert!(lead_envelope.contains(r#"xsi:type="sf:Lead""#));
    assert!(
        lead_envelope.contains(&format!("<sf:OwnerId>{queue}</sf:OwnerId>")),
        "the message carries the owner the rule picked: {lead_envelope}"
    );
    assert!(lead_envelope.contains(&format!(
        "<OrganizationId>{}</OrganizationId>",
        org.sim.org_id()
    )));
    let contact_envelope = envelopes
        .iter()
        .find(|e| e.contains(&format!("<sf:Id>{contact_id}</sf:Id>")))
        .expect("an outbound message for the new contact");
    assert!(contact_envelope.contains(r#"xsi:type="sf:Contact""#));
    org.sim.shutdown().await;
}

#[tokio::test]
async fn a_web_to_lead_stream_creates_assigned_leads_at_the_rate_and_sends_their_messages() {
    let (url, seen) = listener().await;
    let org = spawn(SalesforceSimConfig {
        outbound_url: Some(url),
        ..small_config()
    })
    .await;
    let before = org.sim.state().leads.len();
    let api_used = org.sim.stats().api_used;
    let bad = org
        .send(
            org.http
                .post(org.url("/__sim/stream"))
                .json(&json!({"per_second": 5, "seconds": 1, "object": "Opportunity"})),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let started = org
        .send(
            org.http
                .post(org.url("/__sim/stream"))
                .json(&json!({"per_second": 10, "seconds": 1})),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text);
    assert_eq!(started.body["object"], "Lead");
    let id = started.body["id"].as_str().expect("stream id").to_owned();
    let mut report = Value::Null;
    for _ in 0..100 {
        report = org.get(&format!("/__sim/stream/{id}")).await.body;
        if report["done"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(report["created"], 10, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    let records = report["records"].as_array().expect("records");
    let stamps: Vec<i64> = records
        .iter()
        .map(|r| r["created_at_ms"].as_i64().expect("ms"))
        .collect();
    // Record k is never created before start + k × 100 ms: spread over the second.
    let start = report["started_at_ms"].as_i64().expect("start");
    for (k, at) in stamps.iter().enumerate() {
        assert!(
            *at >= start + 100 * k as i64 - 2,
            "record {k} early: {stamps:?}"
        );
    }
    assert!(stamps[9] - start < 900 + 1_500, "{stamps:?}");
    let ids: Vec<String> = records
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    let state = org.sim.state();
    assert_eq!(state.leads.len(), before + 10);
    for id in &ids {
        let l = state.leads.iter().find(|l| &l.id == id).expect("created");
        assert_eq!(l.lead_source.as_deref(), Some("Web"));
        assert!(l.company.is_some() && l.email.is_some());
        assert_ne!(l.owner_id, state.api_user_id, "the assignment rule ran");
    }
    // Form fills are not API calls.
    assert_eq!(org.sim.stats().api_used, api_used);
    let envelopes = envelopes_naming(&seen, &ids).await;
    for id in &ids {
        assert!(
            envelopes
                .iter()
                .any(|e| e.contains(&format!("<sf:Id>{id}</sf:Id>"))),
            "an outbound message for {id}"
        );
    }
    let contacts = org
        .send(
            org.http
                .post(org.url("/__sim/stream"))
                .json(&json!({"per_second": 20, "seconds": 1, "object": "Contact"})),
        )
        .await;
    assert_eq!(contacts.status, 202, "{}", contacts.text);
    assert_eq!(org.get("/__sim/stream/999").await.status, 404);
    org.sim.shutdown().await;
}

#[tokio::test]
async fn a_stream_stops_when_the_simulator_shuts_down() {
    let org = spawn_small().await;
    let started = org
        .send(
            org.http
                .post(org.url("/__sim/stream"))
                .json(&json!({"per_second": 50, "seconds": 60, "object": "leads"})),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let handle = org.sim.clone();
    org.sim.shutdown().await;
    let after_stop = handle.state().leads.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        handle.state().leads.len(),
        after_stop,
        "no creates after shutdown"
    );
}

#[tokio::test]
async fn streams_can_be_started_and_followed_on_the_handle_too() {
    let org = spawn_small().await;
    assert!(org.sim.start_stream(5, 1, "Opportunity").is_err());
    let id = org
        .sim
        .start_stream(20, 1, "Contact")
        .expect("stream starts");
    let mut report = Value::Null;
    for _ in 0..100 {
        report = org.sim.stream_report(&id).expect("known stream");
        if report["done"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(report["created"], 20, "{report}");
    assert_eq!(report["object"], "Contact");
    org.sim.shutdown().await;
}
