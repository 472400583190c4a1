//! Webhook intake end to end: the simulator signs and delivers event batches to a
//! loopback receiver that hands them to `Crm::intake`; hints are refetched.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::post;
use leadroute_crm::{Change, Crm, Hint, InboundRequest, ObjectKind, Record, RecordId};
use leadroute_hubspot::HubSpot;
use leadroute_sim::hubspot::{
    EndpointFamily, Fault, FaultRule, FaultScript, Mutation, ObjectType, Trigger,
};
use parking_lot::Mutex;
use secrecy::SecretString;

use crate::common::*;

#[derive(Clone)]
struct Receiver {
    hs: HubSpot,
    origin: String,
    hints: Arc<Mutex<Vec<Hint>>>,
    refused: Arc<Mutex<u32>>,
}

async fn receive(
    State(rx): State<Receiver>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let request = InboundRequest {
        method: method.to_string(),
        url: format!("{}{}", rx.origin, uri),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        received_at: chrono::Utc::now(),
    };
    match rx.hs.intake(&request) {
        Ok(intake) => {
            rx.hints.lock().extend(intake.hints);
            StatusCode::from_u16(intake.response.status).unwrap_or(StatusCode::OK)
        }
        Err(e) => {
            *rx.refused.lock() += 1;
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED)
        }
    }
}

/// Starts a receiver for `hs`; returns it and the URL to give the simulator.
async fn receiver(hs: HubSpot) -> (Receiver, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port available");
    let origin = format!(
        "http://{}",
        listener
            .local_addr()
            .expect("bound listener has an address")
    );
    let rx = Receiver {
        hs,
        origin: origin.clone(),
        hints: Arc::default(),
        refused: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/hooks/hubspot", post(receive))
        .with_state(rx.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (rx, format!("{origin}/hooks/hubspot?portal=62515"))
}

async fn wait_for(rx: &Receiver, what: impl Fn(&[Hint]) -> bool) {
    for _ in 0..100 {
        if what(&rx.hints.lock()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("hints never arrived: {:?}", rx.hints.lock());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_become_hints_that_refetch_the_current_record() {
    let sim = start(sim_config(50, 5)).await;
    let mut s = settings(&sim);
    s.webhook_secret = Some(SecretString::from(sim.config().client_secret.clone()));
    let hs = connector(s);
    let (rx, url) = receiver(hs.clone()).await;
    sim.set_webhook_url(Some(url));
    sim.set_faults(FaultScript {
        rules: vec![FaultRule {
            families: vec![EndpointFamily::Webhooks],
            fault: Fault::DuplicateDelivery,
            trigger: Trigger::Always,
        }],
        ..FaultScript::default()
    });
    let state = sim.state();
    let contact = live_ids(&state.contacts)[3].to_string();
    let owner = active_owner_ids(&state)[2].to_string();
    sim.mutate(Mutation::SetOwner {
        object: ObjectType::Contacts,
        id: contact.clone(),
        owner_id: owner.clone(),
    })
    .unwrap();
    wait_for(&rx, |h| h.iter().any(|h| h.id.0 == contact)).await;
    // Give the duplicate copy time to land, then de-duplicate as the inbox would.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hints = rx.hints.lock().clone();
    let keys: BTreeSet<&String> = hints.iter().map(|h| &h.dedupe_key).collect();
    assert!(
        hints.len() > keys.len(),
        "the duplicate delivery should repeat keys"
    );
    assert_eq!(*rx.refused.lock(), 0, "a genuine delivery was refused");

    let ids: Vec<RecordId> = hints
        .iter()
        .filter(|h| h.object == ObjectKind::Contact)
        .map(|h| h.id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let fetched = hs.fetch(ObjectKind::Contact, &ids).await.unwrap();
    assert!(
        fetched
            .iter()
            .any(|c| matches!(c, Change::Upsert(Record::Person(p))
        if p.id.0 == contact && p.owner_id.as_ref().map(|o| o.0.as_str()) == Some(owner.as_str())))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_and_deletion_events_lead_to_merged_and_deleted_changes() {
    let sim = start(sim_config(50, 5)).await;
    let mut s = settings(&sim);
    s.webhook_secret = Some(SecretString::from(sim.config().client_secret.clone()));
    let hs = connector(s);
    let (rx, url) = receiver(hs.clone()).await;
    sim.set_webhook_url(Some(url));
    let ids: Vec<String> = live_ids(&sim.state().contacts)
        .iter()
        .map(u64::to_string)
        .collect();
    let merged = sim
        .mutate(Mutation::Merge {
            object: ObjectType::Contacts,
            primary_id: ids[0].clone(),
            merged_id: ids[1].clone(),
        })
        .unwrap();
    let survivor = merged.ids[0].clone();
    sim.mutate(Mutation::Archive {
        object: ObjectType::Contacts,
        id: ids[2].clone(),
    })
    .unwrap();
    wait_for(&rx, |h| {
        [&survivor, &ids[1], &ids[2]]
            .iter()
            .all(|id| h.iter().any(|h| &&h.id.0 == id))
    })
    .await;
    let hinted: Vec<RecordId> = rx
        .hints
        .lock()
        .iter()
        .map(|h| h.id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let changes = hs.fetch(ObjectKind::Contact, &hinted).await.unwrap();
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::Merged { loser, winner, .. }
        if loser.0 == ids[1] && winner.0 == survivor))
    );
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::Deleted { id, .. } if id.0 == ids[2]))
    );
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::Upsert(r) if r.id() == survivor))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_signed_with_another_secret_are_refused_with_401() {
    let sim = start(sim_config(20, 3)).await;
    let mut s = settings(&sim);
    s.webhook_secret = Some(SecretString::from("not-the-app-secret"));
    let hs = connector(s);
    let (rx, url) = receiver(hs.clone()).await;
    sim.set_webhook_url(Some(url));
    let contact = live_ids(&sim.state().contacts)[0].to_string();
    let owner = active_owner_ids(&sim.state())[1].to_string();
    sim.mutate(Mutation::SetOwner {
        object: ObjectType::Contacts,
        id: contact,
        owner_id: owner,
    })
    .unwrap();
    for _ in 0..100 {
        if *rx.refused.lock() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(*rx.refused.lock() > 0);
    assert!(rx.hints.lock().is_empty());
    assert!(sim.stats().webhook_failed_attempts > 0);
}

/// Signs like HubSpot (v3), written out independently of the connector.
fn sign(secret: &str, url: &str, body: &str, timestamp: &str) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("POST{url}{body}{timestamp}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_privacy_deletion_event_makes_the_refetch_a_purge() {
    let sim = start(sim_config(20, 3)).await;
    let secret = sim.config().client_secret.clone();
    let mut s = settings(&sim);
    s.webhook_secret = Some(SecretString::from(secret.clone()));
    let hs = connector(s);
    // A contact HubSpot has already erased: it no longer exists anywhere.
    let gone = "987654321";
    let body = format!(
        r#"[{{"eventId":7,"subscriptionId":30,"portalId":62515,"occurredAt":1767225600000,"subscriptionType":"contact.privacyDeletion","objectId":{gone}}}]"#
    );
    let url = "https://hooks.example.com/hubspot";
    let now = chrono::Utc::now();
    let ts = now.timestamp_millis().to_string();
    let request = InboundRequest {
        method: "POST".into(),
        url: url.into(),
        headers: vec![
            (
                "x-hubspot-signature-v3".into(),
                sign(&secret, url, &body, &ts),
            ),
            ("x-hubspot-request-timestamp".into(), ts),
        ],
        body: body.into_bytes(),
        received_at: now,
    };
    let intake = hs.intake(&request).unwrap();
    assert_eq!(intake.hints.len(), 1);
    let changes = hs
        .fetch(ObjectKind::Contact, &[intake.hints[0].id.clone()])
        .await
        .unwrap();
    assert!(
        matches!(&changes[..], [Change::Deleted { id, purge: true, .. }] if id.0 == gone),
        "{changes:?}"
    );
    // The purge flag is consumed: a later plain deletion of the same id is not a purge.
    let again = hs
        .fetch(ObjectKind::Contact, &[RecordId::new(gone)])
        .await
        .unwrap();
    assert!(matches!(&again[..], [Change::Deleted { purge: false, .. }]));
}
