//! Webhook deliveries from the HubSpot simulator, received by a real HTTP
//! endpoint on loopback: shapes, batching, v1/v3 signatures (checked with an
//! implementation independent of the simulator's), retries, duplicates and
//! the concurrency cap.

mod hubspot_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use hmac::{Hmac, Mac};
use hubspot_support::*;
use leadroute_sim::hubspot::{
    EndpointFamily, Fault, FaultRule, FaultScript, HubSpotSim, HubSpotSimConfig, Mutation,
    ObjectType, Trigger,
};
use parking_lot::Mutex;
use serde_json::Value;
use sha2::{Digest, Sha256};

#[derive(Clone, Debug)]
struct Delivery {
    headers: HeaderMap,
    body: Bytes,
}

impl Delivery {
    fn events(&self) -> Vec<Value> {
        serde_json::from_slice(&self.body).expect("a JSON array of events")
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Delivery>>>,
    fail_first: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    delay_ms: u64,
}

impl Receiver {
    /// Starts the endpoint; returns the URL HubSpot would be configured with.
    async fn start(self, path_and_query: &str) -> String {
        let me = self.clone();
        let app = Router::new().fallback(post(move |headers: HeaderMap, body: Bytes| {
            let me = me.clone();
            async move {
                let now = me.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                me.max_in_flight.fetch_max(now, Ordering::SeqCst);
                if me.delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(me.delay_ms)).await;
                }
                me.got.lock().push(Delivery { headers, body });
                me.in_flight.fetch_sub(1, Ordering::SeqCst);
                let failing = me
                    .fail_first
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if failing {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}{path_and_query}")
    }

    async fn wait_for(&self, deliveries: usize) -> Vec<Delivery> {
        for _ in 0..400 {
            if self.got.lock().len() >= deliveries {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.got.lock().clone()
    }
}

/// Independent v3 check, written from HubSpot's documentation rather than
/// reusing the simulator's code.
fn verify_v3(secret: &str, url: &str, d: &Delivery) -> bool {
    let mut uri = url.to_owned();
    for (from, to) in [
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ] {
        uri = uri.replace(from, to).replace(&from.to_lowercase(), to);
    }
    let timestamp = d.header("x-hubspot-request-timestamp");
    let mut message = Vec::new();
    message.extend_from_slice(b"POST");
    message.extend_from_slice(uri.as_bytes());
    message.extend_from_slice(&d.body);
    message.extend_from_slice(timestamp.as_bytes());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(&message);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|ts| (chrono::Utc::now().timestamp_millis() - ts).abs() < 300_000);
    fresh && expected == d.header("x-hubspot-signature-v3")
}

fn verify_v1(secret: &str, d: &Delivery) -> bool {
    let mut h = Sha256::new();
    h.update(secret.as_bytes());
    h.update(&d.body);
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    hex == d.header("x-hubspot-signature") && d.header("x-hubspot-signature-version") == "v1"
}

async fn sim_posting_to(url: &str) -> HubSpotSim {
    sim_with(HubSpotSimConfig {
        webhook_url: Some(url.to_owned()),
        webhook_retry_base: Duration::from_millis(5),
        ..config()
    })
    .await
}

#[tokio::test]
async fn owner_changes_arrive_as_signed_property_change_events() {
    let receiver = Receiver::default();
    let url = receiver
        .clone()
        .start("/hooks/hubspot?tenant=acme%3Aeu&x=%2A")
        .await;
    let sim = sim_posting_to(&url).await;
    let state = sim.state();
    let contact = state.contacts[0].id;
    let owner = state
        .owners
        .iter()
        .find(|o| {
            !o.archived
                && Some(&o.id.to_string()) != state.contacts[0].properties.get("hubspot_owner_id")
        })
        .expect("owner");
    sim.mutate(Mutation::SetOwner {
        object: ObjectType::Contacts,
        id: contact.to_string(),
        owner_id: owner.id.to_string(),
    })
    .expect("reassign");
    let got = receiver.wait_for(1).await;
    assert!(!got.is_empty(), "a delivery arrived");
    let secret = sim.config().client_secret.clone();
    assert!(verify_v3(&secret, &url, &got[0]), "v3 signature verifies");
    assert!(verify_v1(&secret, &got[0]), "v1 signature verifies");
    let mut tampered = got[0].clone();
    tampered.body =
        Bytes::from(String::from_utf8_lossy(&tampered.body).replace(&contact.to_string(), "1"));
    assert!(!verify_v3(&secret, &url, &tampered));

    let events = got[0].events();
    let change = events
        .iter()
        .find(|e| {
            e["subscriptionType"] == "contact.propertyChange"
                && e["propertyName"] == "hubspot_owner_id"
        })
        .expect("owner change event");
    assert_eq!(change["objectId"], contact, "objectId is a number");
    assert_eq!(change["propertyValue"], owner.id.to_string());
    assert_eq!(change["attemptNumber"], 0);
    assert_eq!(change["portalId"], sim.config().portal_id);
    assert_eq!(change["appId"], sim.config().app_id);
    assert_eq!(change["changeSource"], "CRM_UI");
    for field in ["eventId", "subscriptionId", "occurredAt"] {
        assert!(change[field].is_u64(), "{field} is a number");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_growing_attempt_numbers() {
    let receiver = Receiver {
        fail_first: Arc::new(AtomicUsize::new(2)),
        ..Receiver::default()
    };
    let url = receiver.clone().start("/hook").await;
    let sim = sim_posting_to(&url).await;
    let id = sim.state().companies[0].id.to_string();
    sim.mutate(Mutation::Archive {
        object: ObjectType::Companies,
        id,
    })
    .expect("archive");
    let got = receiver.wait_for(3).await;
    assert_eq!(got.len(), 3);
    let attempts: Vec<u64> = got
        .iter()
        .map(|d| d.events()[0]["attemptNumber"].as_u64().expect("n"))
        .collect();
    assert_eq!(attempts, [0, 1, 2]);
    let ids: BTreeSet<u64> = got
        .iter()
        .map(|d| d.events()[0]["eventId"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids.len(), 1, "a retry resends the same events");
    assert_eq!(got[0].events()[0]["subscriptionType"], "company.deletion");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stats = sim.stats();
    assert_eq!(stats.webhook_failed_attempts, 2);
    assert_eq!(stats.webhook_batches_delivered, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_endpoint_gets_ten_retries_and_then_the_events_are_dropped() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let sim = sim_with(HubSpotSimConfig {
        webhook_url: Some(format!("http://127.0.0.1:{port}/hook")),
        webhook_retry_base: Duration::from_millis(1),
        ..config()
    })
    .await;
    let id = sim.state().contacts[0].id.to_string();
    sim.mutate(Mutation::Archive {
        object: ObjectType::Contacts,
        id,
    })
    .expect("archive");
    for _ in 0..300 {
        if sim.stats().webhook_events_dropped > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = sim.stats();
    assert_eq!(stats.webhook_failed_attempts, 11, "one try and ten retries");
    assert_eq!(stats.webhook_events_dropped, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn batches_hold_at_most_100_events_and_at_most_10_are_in_flight() {
    let receiver = Receiver {
        delay_ms: 60,
        ..Receiver::default()
    };
    let url = receiver.clone().start("/hook").await;
    let sim = sim_posting_to(&url).await;
    sim.mutate(Mutation::BulkImport {
        object: ObjectType::Contacts,
        update: 0,
        create: 1_500,
        properties: Default::default(),
        seed: 1,
    })
    .expect("import");
    let got = receiver.wait_for(15).await;
    let events: usize = got.iter().map(|d| d.events().len()).sum();
    assert_eq!(events, 1_500);
    assert!(got.iter().all(|d| d.events().len() <= 100));
    let max = receiver.max_in_flight.load(Ordering::SeqCst);
    assert!((2..=10).contains(&max), "max in flight {max}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_delivery_fault_sends_the_same_batch_twice() {
    let receiver = Receiver::default();
    let url = receiver.clone().start("/hook").await;
    let sim = sim_posting_to(&url).await;
    sim.set_faults(FaultScript {
        seed: 1,
        rules: vec![FaultRule {
            families: vec![EndpointFamily::Webhooks],
            fault: Fault::DuplicateDelivery,
            trigger: Trigger::NextN { n: 1 },
        }],
        expire_tokens: false,
    });
    let state = sim.state();
    sim.mutate(Mutation::Merge {
        object: ObjectType::Contacts,
        primary_id: state.contacts[0].id.to_string(),
        merged_id: state.contacts[1].id.to_string(),
    })
    .expect("merge");
    let got = receiver.wait_for(2).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body, got[1].body);
    let merge = got[0]
        .events()
        .into_iter()
        .find(|e| e["subscriptionType"] == "contact.merge")
        .expect("merge event");
    assert_eq!(merge["primaryObjectId"], state.contacts[0].id);
    assert_eq!(
        merge["mergedObjectIds"],
        serde_json::json!([state.contacts[1].id])
    );
    assert_eq!(merge["newObjectId"], merge["objectId"]);
    sim.shutdown().await;
}
