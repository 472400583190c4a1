//! Webhook intake end to end: the simulator (or a test posing as HubSpot) posts signed
//! batches to leadroute's route; valid ones become refetches, bad ones get 401.

use leadroute::domain::OrgId;
use std::sync::Arc;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use leadroute::mirror::Mirror;
use leadroute::web::{self, WebState};
use leadroute_crm::{CrmKind, ObjectKind, OwnerId, RecordId};
use leadroute_hubspot::HubSpot;
use leadroute_sim::hubspot::{Mutation, ObjectType};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::helpers::{TestApp, sim_config, spawn_app, wait_for};

struct Hooked {
    app: TestApp,
    mirror: Mirror<HubSpot>,
    url: String,
    secret: String,
    cancel: CancellationToken,
}

/// An app whose webhook route listens on 127.0.0.1:0, after a full sync.
async fn hooked() -> Hooked {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    let sim = sim_config(200, 20);
    let secret = sim.client_secret.clone();
    let app = spawn_app(
        sim,
        &format!("[webhook]\npublic_url = \"{public}\"\nsecret = \"{secret}\"\n"),
    )
    .await;
    let mirror = app.mirror();
    mirror.sync_once(false).await.expect("full sync");
    let state = WebState {
        crm: Arc::clone(mirror.crm()),
        store: app.store.store.clone(),
        org: app.config.org.clone(),
        public_url: app.config.webhook.public_url.clone(),
        hints: mirror.hint_notify(),
    };
    let cancel = CancellationToken::new();
    tokio::spawn(web::serve(listener, web::router(state), cancel.clone()));
    Hooked {
        app,
        mirror,
        url: format!("{public}/webhooks/hubspot"),
        secret,
        cancel,
    }
}

impl Hooked {
    async fn owner_of(&self, id: u64) -> Option<OwnerId> {
        self.app
            .store
            .store
            .person(
                &OrgId::default_for(CrmKind::Hubspot),
                ObjectKind::Contact,
                &RecordId::new(id.to_string()),
            )
            .await
            .unwrap()
            .expect("contact is mirrored")
            .owner_id
    }

    async fn shutdown(self) {
        self.cancel.cancel();
        self.app.shutdown().await;
    }
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// HubSpot's v3 signature: base64(HMAC-SHA256(secret, METHOD + URL + body + timestamp)).
pub(crate) fn sign(secret: &str, url: &str, body: &str, timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("POST{url}{body}{timestamp}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub(crate) fn owner_event(
    event_id: u64,
    contact: u64,
    owner: &str,
    occurred_at: i64,
) -> serde_json::Value {
    serde_json::json!({
        "eventId": event_id, "subscriptionId": 25, "portalId": 62515, "appId": 54321,
        "occurredAt": occurred_at, "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0, "objectId": contact, "propertyName": "hubspot_owner_id",
        "propertyValue": owner, "changeSource": "CRM_UI"
    })
}

/// Posts `body` signed at `timestamp` (or with `signature` if given).
async fn post(
    hooked: &Hooked,
    body: &str,
    timestamp: i64,
    signature: Option<String>,
) -> (u16, String) {
    let timestamp = timestamp.to_string();
    let signature =
        signature.unwrap_or_else(|| sign(&hooked.secret, &hooked.url, body, &timestamp));
    let response = reqwest::Client::new()
        .post(&hooked.url)
        .header("content-type", "application/json")
        .header("x-hubspot-signature-v3", signature)
        .header("x-hubspot-request-timestamp", timestamp)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn contacts(app: &TestApp) -> Vec<u64> {
    app.sim
        .state()
        .contacts
        .iter()
        .filter(|c| !c.archived)
        .map(|c| c.id)
        .collect()
}

fn other_owner(app: &TestApp, than: Option<&OwnerId>) -> String {
    app.sim
        .state()
        .owners
        .iter()
        .filter(|o| !o.archived)
        .map(|o| o.id.to_string())
        .find(|id| Some(id.as_str()) != than.map(OwnerId::as_str))
        .expect("an active owner")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_in_the_crm_reaches_the_mirror_through_a_signed_webhook() {
    let hooked = hooked().await;
    let app = &hooked.app;
    app.sim.set_webhook_url(Some(hooked.url.clone()));
    let contact = contacts(app)[3];
    let new_owner = other_owner(app, hooked.owner_of(contact).await.as_ref());
    app.sim
        .mutate(Mutation::SetOwner {
            object: ObjectType::Contacts,
            id: contact.to_string(),
            owner_id: new_owner.clone(),
        })
        .expect("reassign");
    // The simulator signs and posts the event; the route stores a hint; the processor
    // refetches the contact. No polling sync runs here.
    wait_for("the webhook's change in the mirror", 20, || async {
        hooked.mirror.drain_hints(100).await.expect("drain hints");
        (hooked.owner_of(contact).await.as_ref().map(OwnerId::as_str) == Some(&new_owner))
            .then_some(())
    })
    .await;
    assert!(app.sim.stats().webhook_batches_delivered >= 1);
    let inbox = app
        .store
        .store
        .inbox_counts(&OrgId::default_for(CrmKind::Hubspot))
        .await
        .unwrap();
    assert!(inbox.done >= 1 && inbox.pending == 0, "{inbox:?}");
    hooked.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tampered_and_stale_webhooks_get_401_and_store_nothing() {
    let hooked = hooked().await;
    let contact = contacts(&hooked.app)[0];
    let body = serde_json::json!([owner_event(1, contact, "1", now_ms())]).to_string();

    let tampered = body.replace("\"propertyValue\":\"1\"", "\"propertyValue\":\"2\"");
    assert_ne!(tampered, body);
    let good_signature = sign(&hooked.secret, &hooked.url, &body, &now_ms().to_string());
    let stale = now_ms() - 6 * 60 * 1000;
    let forged = sign("not-the-secret", &hooked.url, &body, &now_ms().to_string());
    for (what, (status, text)) in [
        (
            "tampered",
            post(&hooked, &tampered, now_ms(), Some(good_signature)).await,
        ),
        ("stale", post(&hooked, &body, stale, None).await),
        ("forged", post(&hooked, &body, now_ms(), Some(forged)).await),
        (
            "unsigned",
            post(&hooked, &body, now_ms(), Some(String::new())).await,
        ),
    ] {
        assert_eq!(status, 401, "{what} webhook");
        assert_eq!(text, "unauthorized\n", "{what}: no details for the caller");
    }
    let inbox = hooked
        .app
        .store
        .store
        .inbox_counts(&OrgId::default_for(CrmKind::Hubspot))
        .await
        .unwrap();
    assert_eq!(inbox.pending + inbox.done, 0, "nothing stored");

    // A correctly signed body that is not a batch is a 400, not a crash.
    let (status, text) = post(&hooked, "not json", now_ms(), None).await;
    assert_eq!((status, text.as_str()), (400, "bad request\n"));
    // The other CRM's route does not exist on a HubSpot deployment.
    let response = reqwest::Client::new()
        .post(hooked.url.replace("hubspot", "salesforce"))
        .body("<x/>")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    hooked.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_out_of_order_webhooks_leave_the_crms_current_state() {
    let hooked = hooked().await;
    let app = &hooked.app;
    let contact = contacts(app)[5];
    let first = other_owner(app, hooked.owner_of(contact).await.as_ref());
    let second = other_owner(app, Some(&OwnerId::new(first.clone())));
    let set = |owner: &str| {
        app.sim
            .mutate(Mutation::SetOwner {
                object: ObjectType::Contacts,
                id: contact.to_string(),
                owner_id: owner.to_owned(),
            })
            .expect("reassign")
            .at_ms
    };
    let t1 = set(&first);
    let t2 = set(&second);
    let newer = serde_json::json!([owner_event(11, contact, &second, t2)]).to_string();
    let older = serde_json::json!([owner_event(10, contact, &first, t1)]).to_string();

    // Newest first, then a redelivery of it, then the older event.
    assert_eq!(post(&hooked, &newer, now_ms(), None).await.0, 200);
    assert_eq!(post(&hooked, &newer, now_ms(), None).await.0, 200);
    let inbox = app
        .store
        .store
        .inbox_counts(&OrgId::default_for(CrmKind::Hubspot))
        .await
        .unwrap();
    assert_eq!(inbox.pending, 1, "the redelivery is de-duplicated");
    hooked.mirror.drain_hints(100).await.expect("drain");
    assert_eq!(
        hooked.owner_of(contact).await,
        Some(OwnerId::new(second.clone()))
    );

    assert_eq!(post(&hooked, &older, now_ms(), None).await.0, 200);
    let report = hooked.mirror.drain_hints(100).await.expect("drain");
    assert_eq!(
        report.refetched, 1,
        "the late event still triggers a refetch"
    );
    assert_eq!(
        hooked.owner_of(contact).await,
        Some(OwnerId::new(second)),
        "the late event does not roll the owner back"
    );
    app.assert_mirror_matches().await;
    hooked.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_for_another_org_name_is_a_404_and_stores_nothing() {
    let mut hooked = hooked().await;
    let contact = contacts(&hooked.app)[0];
    let body = serde_json::json!([owner_event(1, contact, "1", now_ms())]).to_string();
    // Signed for the URL it is posted to: only the org's name decides.
    hooked.url = hooked.url.replace("/webhooks/hubspot", "/webhooks/west");
    let (status, _) = post(&hooked, &body, now_ms(), None).await;
    assert_eq!(status, 404);
    let org = OrgId::default_for(CrmKind::Hubspot);
    let inbox = hooked.app.store.store.inbox_counts(&org).await.unwrap();
    assert_eq!(inbox.pending + inbox.done, 0, "{inbox:?}");
    // The org's own name (the single [crm] form's org is named after its kind).
    hooked.url = hooked.url.replace("/webhooks/west", "/webhooks/hubspot");
    let (status, _) = post(&hooked, &body, now_ms(), None).await;
    assert!((200..300).contains(&status), "{status}");
    let inbox = hooked.app.store.store.inbox_counts(&org).await.unwrap();
    assert_eq!(inbox.pending + inbox.done, 1, "{inbox:?}");
    hooked.shutdown().await;
}
