//! Creating contacts and companies on the HubSpot simulator as a CRM user's
//! tools would: single and batch creates (201/207/400/409), the created
//! records in read, list and search, the signed `*.creation` webhooks, and the
//! form-fill stream control endpoint.

mod hubspot_support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post as post_route;
use base64::Engine;
use hmac::{Hmac, Mac};
use hubspot_support::*;
use leadroute_sim::hubspot::{HubSpotSim, HubSpotSimConfig, ObjectType};
use parking_lot::Mutex;
use serde_json::{Value, json};
use sha2::Sha256;

/// A webhook endpoint on loopback recording every delivery.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

impl Receiver {
    async fn start(&self) -> String {
        let got = self.got.clone();
        let app = Router::new().route(
            "/webhooks/hubspot",
            post_route(move |headers: HeaderMap, body: Bytes| {
                let got = got.clone();
                async move {
                    got.lock().push((headers, body));
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}/webhooks/hubspot")
    }

    /// All events received so far, once `done` holds or after ~5 s.
    async fn events_until(&self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..500 {
            let events = self.events();
            if done(&events) {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.events()
    }

    fn events(&self) -> Vec<Value> {
        self.got
            .lock()
            .iter()
            .flat_map(|(_, body)| {
                serde_json::from_slice::<Vec<Value>>(body).expect("a JSON array of events")
            })
            .collect()
    }
}

/// v3 signature check written from HubSpot's documentation (independent of
/// the simulator's code): base64 HMAC-SHA256 of METHOD + URL + body + timestamp.
fn signed_v3(secret: &str, url: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let timestamp = header("x-hubspot-request-timestamp");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(b"POST");
    mac.update(url.as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|ts| (chrono::Utc::now().timestamp_millis() - ts).abs() < 300_000);
    fresh && expected == header("x-hubspot-signature-v3")
}

fn id_of(reply: &Reply) -> u64 {
    reply.body["id"]
        .as_str()
        .expect("id is a string")
        .parse()
        .expect("numeric id")
}

/// A company domain of the generated portal.
fn known_domain(sim: &HubSpotSim) -> String {
    sim.state()
        .companies
        .iter()
        .find_map(|c| {
            c.properties
                .get("domain")
                .filter(|d| !d.is_empty())
                .cloned()
        })
        .expect("generated companies have domains")
}

#[tokio::test]
async fn a_created_contact_is_201_unowned_unassociated_and_found_by_read_list_and_search() {
    let sim = sim().await;
    let domain = known_domain(&sim);
    let email = format!("ria.new@{domain}");
    let r = post(
        &sim,
        "/crm/v3/objects/contacts",
        &json!({"properties": {"email": email, "firstname": "Ria", "lastname": "New", "hubspot_owner_id": ""}, "associations": []}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // A create is an API call like any other: it counts against the 10-second limit.
    assert_eq!(r.header("x-hubspot-ratelimit-max"), Some("10000"));
    assert!(r.header("x-hubspot-ratelimit-remaining").is_some());
    assert_eq!(sim.stats().calls_to("POST /crm/v3/objects/contacts"), 1);
    let id = id_of(&r);
    assert_eq!(r.body["properties"]["email"], email.as_str());
    assert_eq!(
        r.body["properties"]["hs_object_id"],
        id.to_string().as_str()
    );
    assert!(r.body["properties"]["createdate"].is_string());
    assert!(r.body["properties"]["lastmodifieddate"].is_string());
    assert_eq!(r.body["archived"], false);
    // No owner, and no company by email domain (auto-association is a portal setting).
    assert!(r.body["properties"].get("hubspot_owner_id").is_none());
    let state = sim.state();
    assert!(!state.associations.iter().any(|a| a.contact_id == id));
    let stored = state.contacts.iter().find(|c| c.id == id).expect("stored");
    assert_eq!(stored.properties.get("hs_email_domain"), Some(&domain));

    let read = get(
        &sim,
        &format!("/crm/v3/objects/contacts/{id}?properties=email,hubspot_owner_id"),
    )
    .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["properties"]["email"], email.as_str());
    assert_eq!(read.body["properties"]["hubspot_owner_id"], Value::Null);
    let by_email = get(
        &sim,
        &format!("/crm/v3/objects/contacts/{email}?idProperty=email"),
    )
    .await;
    assert_eq!(id_of(&by_email), id);
    assert!(list_all_ids(&sim, "contacts", "").await.contains(&id));
    // Incremental sync: a search on the last-modified stamp finds it.
    let since =
        chrono::DateTime::parse_from_rfc3339(r.body["updatedAt"].as_str().expect("updatedAt"))
            .expect("ISO updatedAt")
            .timestamp_millis()
            .to_string();
    let found = post(
        &sim,
        "/crm/v3/objects/contacts/search",
        &json!({"filterGroups": [{"filters": [
            {"propertyName": "lastmodifieddate", "operator": "GTE", "value": since},
            {"propertyName": "email", "operator": "EQ", "value": email},
        ]}]}),
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.body["total"], 1);
    assert_eq!(found.body["results"][0]["id"], id.to_string().as_str());

    // An owner set at creation is stamped as assigned; a company can be associated.
    let owner = state.owners.iter().find(|o| !o.archived).expect("owner").id;
    let company = state.companies[0].id;
    let r = post(
        &sim,
        "/crm/v3/objects/contacts",
        &json!({"properties": {"email": "owned@new-co.example", "hubspot_owner_id": owner.to_string()},
                "associations": [{"to": {"id": company.to_string()}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]}]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body["properties"]["hubspot_owner_id"],
        owner.to_string().as_str()
    );
    assert!(r.body["properties"]["hubspot_owner_assigneddate"].is_string());
    let id = id_of(&r);
    assert!(
        sim.state()
            .associations
            .iter()
            .any(|a| a.contact_id == id && a.company_id == company && a.primary)
    );
    assert_eq!(sim.stats().creates, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_email_is_a_409_conflict_naming_the_existing_contact() {
    let sim = sim().await;
    let existing = sim
        .state()
        .contacts
        .into_iter()
        .find(|c| !c.archived && c.properties.get("email").is_some_and(|e| !e.is_empty()))
        .expect("a contact with an email");
    let email = existing.properties["email"].to_ascii_uppercase();
    let before = sim.state().contacts.len();
    let r = post(
        &sim,
        "/crm/v3/objects/contacts",
        &json!({"properties": {"email": email}}),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body["status"], "error");
    assert_eq!(r.body["category"], "CONFLICT");
    assert_eq!(
        r.body["message"],
        format!("Contact already exists. Existing ID: {}", existing.id).as_str()
    );
    assert!(r.body["correlationId"].is_string());
    assert_eq!(sim.state().contacts.len(), before);
    sim.shutdown().await;
}

#[tokio::test]
async fn invalid_property_values_are_a_400_and_nothing_is_created() {
    let sim = sim().await;
    let before = sim.state().contacts.len();
    for (properties, code) in [
        (
            json!({"email": "a@b.example", "hubspot_owner_id": "12"}),
            "INVALID_OPTION",
        ),
        (json!({"email": "not-an-email"}), "INVALID_EMAIL"),
        (
            json!({"email": "c@d.example", "favourite_colour": "blue"}),
            "PROPERTY_DOESNT_EXIST",
        ),
        (
            json!({"email": "e@f.example", "hs_object_id": "5"}),
            "READ_ONLY_VALUE",
        ),
    ] {
        let r = post(
            &sim,
            "/crm/v3/objects/contacts",
            &json!({ "properties": properties }),
        )
        .await;
        assert_eq!(r.status, 400, "{properties}: {}", r.body);
        assert_eq!(r.body["category"], "VALIDATION_ERROR");
        assert_eq!(r.body["errors"][0]["code"], code, "{}", r.body);
    }
    let r = post(
        &sim,
        "/crm/v3/objects/contacts",
        &json!({"properties": {"email": "g@h.example"}, "associations": [{"to": {"id": "1"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]}]}),
    )
    .await;
    assert_eq!(
        r.status, 400,
        "an association to a missing company: {}",
        r.body
    );
    let r = post(&sim, "/crm/v3/objects/deals", &json!({"properties": {}})).await;
    assert_eq!(r.status, 400);
    assert_eq!(sim.state().contacts.len(), before);
    sim.shutdown().await;
}

#[tokio::test]
async fn batch_create_is_201_all_or_nothing_unless_every_input_has_a_trace_id() {
    let sim = sim().await;
    let before = sim.state().contacts.len();
    let inputs: Vec<Value> = (0..3)
        .map(|i| json!({"properties": {"email": format!("batch{i}@new-co.example"), "firstname": "B"}, "associations": []}))
        .collect();
    let r = post(
        &sim,
        "/crm/v3/objects/contacts/batch/create",
        &json!({ "inputs": inputs }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "COMPLETE");
    assert!(r.body["startedAt"].is_string() && r.body["completedAt"].is_string());
    let results = r.body["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    let mut emails: Vec<&str> = results
        .iter()
        .map(|r| r["properties"]["email"].as_str().expect("email"))
        .collect();
    emails.sort_unstable();
    assert_eq!(
        emails,
        [
            "batch0@new-co.example",
            "batch1@new-co.example",
            "batch2@new-co.example"
        ]
    );
    assert_eq!(sim.state().contacts.len(), before + 3);

    // More than 100 inputs: 400 VALIDATION_ERROR, nothing written.
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"properties": {"email": format!("many{i}@new-co.example")}}))
        .collect();
    let r = post(
        &sim,
        "/crm/v3/objects/contacts/batch/create",
        &json!({ "inputs": many }),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["category"], "VALIDATION_ERROR");

    // One bad input without trace ids fails the whole call.
    let r = post(
        &sim,
        "/crm/v3/objects/contacts/batch/create",
        &json!({"inputs": [
            {"properties": {"email": "fine@new-co.example"}},
            {"properties": {"email": "batch0@new-co.example"}},
        ]}),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body["category"], "CONFLICT");
    let r = post(
        &sim,
        "/crm/v3/objects/contacts/batch/create",
        &json!({"inputs": [
            {"properties": {"email": "fine@new-co.example"}},
            {"properties": {"email": "fine2@new-co.example", "hubspot_owner_id": "12"}},
        ]}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(sim.state().contacts.len(), before + 3);

    // With a unique objectWriteTraceId on every input: 207, the good ones created.
    let r = post(
        &sim,
        "/crm/v3/objects/contacts/batch/create",
        &json!({"inputs": [
            {"properties": {"email": "fine@new-co.example"}, "objectWriteTraceId": "t-1"},
            {"properties": {"email": "batch1@new-co.example"}, "objectWriteTraceId": "t-2"},
            {"properties": {"email": "x@y.example", "hubspot_owner_id": "12"}, "objectWriteTraceId": "t-3"},
        ]}),
    )
    .await;
    assert_eq!(r.status, 207, "{}", r.body);
    assert_eq!(r.body["numErrors"], 2);
    assert_eq!(r.body["results"][0]["objectWriteTraceId"], "t-1");
    let errors = r.body["errors"].as_array().expect("errors");
    let conflict = errors
        .iter()
        .find(|e| e["context"]["objectWriteTraceId"] == json!(["t-2"]))
        .expect("t-2 failed");
    assert_eq!(conflict["category"], "CONFLICT");
    assert!(
        conflict["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Contact already exists. Existing ID: "))
    );
    let invalid = errors
        .iter()
        .find(|e| e["context"]["objectWriteTraceId"] == json!(["t-3"]))
        .expect("t-3 failed");
    assert_eq!(invalid["category"], "VALIDATION_ERROR");
    assert_eq!(sim.state().contacts.len(), before + 4);

    // Companies too.
    let r = post(
        &sim,
        "/crm/v3/objects/companies/batch/create",
        &json!({"inputs": [{"properties": {"name": "Nova Works", "domain": "novaworks.example"}}]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body["results"][0]["properties"]["domain"],
        "novaworks.example"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn creations_arrive_as_signed_creation_webhooks() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let sim = sim_with(HubSpotSimConfig {
        webhook_url: Some(url.clone()),
        webhook_retry_base: Duration::from_millis(5),
        ..config()
    })
    .await;
    let contact = post(
        &sim,
        "/crm/v3/objects/contacts",
        &json!({"properties": {"email": "hook@new-co.example"}}),
    )
    .await;
    assert_eq!(contact.status, 201);
    let company = post(
        &sim,
        "/crm/v3/objects/companies",
        &json!({"properties": {"name": "Hook Labs", "domain": "hooklabs.example"}}),
    )
    .await;
    assert_eq!(company.status, 201);
    let (contact_id, company_id) = (id_of(&contact), id_of(&company));
    let events = receiver
        .events_until(|events| {
            events
                .iter()
                .filter(|e| {
                    e["subscriptionType"]
                        .as_str()
                        .is_some_and(|t| t.ends_with(".creation"))
                })
                .count()
                >= 2
        })
        .await;
    let creation = |kind: &str, id: u64| {
        events
            .iter()
            .find(|e| e["subscriptionType"] == kind && e["objectId"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} for {id} in {events:?}"))
    };
    let event = creation("contact.creation", contact_id);
    for field in [
        "eventId",
        "subscriptionId",
        "portalId",
        "appId",
        "occurredAt",
    ] {
        assert!(event[field].is_u64(), "{field} is a number: {event}");
    }
    assert_eq!(event["attemptNumber"], 0);
    assert_eq!(event["portalId"], sim.config().portal_id);
    assert!(event["changeSource"].is_string());
    assert!(event.get("propertyName").is_none() && event.get("propertyValue").is_none());
    let created_ms = chrono::DateTime::parse_from_rfc3339(
        contact.body["createdAt"].as_str().expect("createdAt"),
    )
    .expect("ISO createdAt")
    .timestamp_millis();
    assert_eq!(event["occurredAt"], created_ms);
    creation("company.creation", company_id);
    // No property-change events for values set at creation (the default).
    assert!(
        !events
            .iter()
            .any(|e| e["subscriptionType"] == "contact.propertyChange")
    );
    let secret = sim.config().client_secret.clone();
    for (headers, body) in receiver.got.lock().iter() {
        assert!(
            signed_v3(&secret, &url, headers, body),
            "v3 signature verifies"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn creation_property_events_can_be_switched_on() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let sim = sim_with(HubSpotSimConfig {
        webhook_url: Some(url),
        creation_property_events: true,
        ..config()
    })
    .await;
    let r = post(
        &sim,
        "/crm/v3/objects/contacts",
        &json!({"properties": {"email": "props@new-co.example", "jobtitle": "CTO"}}),
    )
    .await;
    let id = id_of(&r);
    let events = receiver.events_until(|events| events.len() >= 2).await;
    let change = events
        .iter()
        .find(|e| e["subscriptionType"] == "contact.propertyChange" && e["objectId"] == id)
        .expect("a propertyChange for the subscribed email");
    assert_eq!(change["propertyName"], "email");
    assert_eq!(change["propertyValue"], "props@new-co.example");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_form_fill_stream_creates_per_second_times_seconds_contacts_through_the_create_path() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let sim = sim_with(HubSpotSimConfig {
        webhook_url: Some(url),
        ..config()
    })
    .await;
    let before = sim.state().contacts.len();
    let bad = post(
        &sim,
        "/__sim/stream",
        &json!({"per_second": 0, "seconds": 5}),
    )
    .await;
    assert_eq!(bad.status, 400);
    let bad = post(
        &sim,
        "/__sim/stream",
        &json!({"per_second": 5, "seconds": 5, "object": "deals"}),
    )
    .await;
    assert_eq!(bad.status, 400);

    let started = post(
        &sim,
        "/__sim/stream",
        &json!({"per_second": 10, "seconds": 2, "object": "contacts"}),
    )
    .await;
    assert_eq!(started.status, 202, "{}", started.body);
    assert_eq!(started.body["planned"], 20);
    let id = started.body["id"].as_str().expect("stream id").to_owned();
    let mut report = Value::Null;
    for _ in 0..100 {
        report = get(&sim, &format!("/__sim/stream/{id}")).await.body;
        if report["done"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(report["done"], true, "{report}");
    assert_eq!(report["created"], 20, "{report}");
    assert_eq!(report["failed"], 0);
    let records = report["records"].as_array().expect("records");
    let stamps: Vec<i64> = records
        .iter()
        .map(|r| r["created_at_ms"].as_i64().expect("ms"))
        .collect();
    // Spread over the two seconds: record k is never created before start + k × 100 ms
    // (late ticks under load are caught up, so only the lower bound is exact).
    let start = report["started_at_ms"].as_i64().expect("start");
    for (k, at) in stamps.iter().enumerate() {
        assert!(
            *at >= start + 100 * k as i64 - 2,
            "record {k} early: {stamps:?}"
        );
    }
    assert!(stamps[19] - start < 1_900 + 1_500, "{stamps:?}");

    let state = sim.state();
    assert_eq!(state.contacts.len(), before + 20);
    for record in records {
        let rid: u64 = record["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("id");
        let contact = state
            .contacts
            .iter()
            .find(|c| c.id == rid)
            .expect("created");
        assert!(!contact.properties.contains_key("hubspot_owner_id"));
        assert!(
            contact
                .properties
                .get("email")
                .is_some_and(|e| e.contains('@'))
        );
    }
    // Each one fired a contact.creation webhook, as a form submission.
    let events = receiver
        .events_until(|events| {
            events
                .iter()
                .filter(|e| e["subscriptionType"] == "contact.creation")
                .count()
                >= 20
        })
        .await;
    let creations: Vec<&Value> = events
        .iter()
        .filter(|e| e["subscriptionType"] == "contact.creation")
        .collect();
    assert_eq!(creations.len(), 20);
    assert!(creations.iter().all(|e| e["changeSource"] == "FORM"));
    assert_eq!(get(&sim, "/__sim/stream/999").await.status, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_created_contact_reaches_search_only_after_the_index_lag() {
    let sim = sim_with(HubSpotSimConfig {
        search_lag: Duration::from_millis(300),
        ..config()
    })
    .await;
    let r = post(
        &sim,
        "/crm/v3/objects/contacts",
        &json!({"properties": {"email": "lagging@new-co.example"}}),
    )
    .await;
    assert_eq!(r.status, 201);
    let search = json!({"filterGroups": [{"filters": [
        {"propertyName": "email", "operator": "EQ", "value": "lagging@new-co.example"},
    ]}]});
    let now = post(&sim, "/crm/v3/objects/contacts/search", &search).await;
    assert_eq!(now.body["total"], 0, "not indexed yet: {}", now.body);
    // Read and list see it at once.
    assert_eq!(
        get(&sim, &format!("/crm/v3/objects/contacts/{}", id_of(&r)))
            .await
            .status,
        200
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let later = post(&sim, "/crm/v3/objects/contacts/search", &search).await;
    assert_eq!(later.body["total"], 1, "{}", later.body);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_stream_stops_when_the_simulator_shuts_down() {
    let sim = sim().await;
    let started = post(
        &sim,
        "/__sim/stream",
        &json!({"per_second": 50, "seconds": 60, "object": "companies"}),
    )
    .await;
    assert_eq!(started.status, 202, "{}", started.body);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let handle = sim.clone();
    sim.shutdown().await;
    let after_stop = handle.state().companies.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        handle.state().companies.len(),
        after_stop,
        "no creates after shutdown"
    );
}

#[tokio::test]
async fn streams_can_be_started_and_followed_on_the_handle_too() {
    let sim = sim().await;
    assert!(sim.start_stream(0, 1, ObjectType::Contacts).is_err());
    let id = sim
        .start_stream(20, 1, ObjectType::Contacts)
        .expect("stream starts");
    let mut report = serde_json::Value::Null;
    for _ in 0..100 {
        report = sim.stream_report(&id).expect("known stream");
        if report["done"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(report["created"], 20, "{report}");
    assert_eq!(
        get(&sim, &format!("/__sim/stream/{id}")).await.body["created"],
        20
    );
    assert!(sim.stream_report("nope").is_none());
    sim.shutdown().await;
}
