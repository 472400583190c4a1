//! Activities (engagements) on the HubSpot simulator over HTTP: logging calls,
//! emails, meetings, notes and tasks with contact associations (single and
//! batch), reading them back (get, list, batch read, search, v4 associations both
//! ways), the contact rollups and `contact.propertyChange` webhooks they cause,
//! the control API's `POST /__sim/touch`, and the refusals for bad input.

mod hubspot_support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post as post_route;
use hubspot_support::*;
use leadroute_sim::hubspot::{HubSpotSim, HubSpotSimConfig};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// A live contact and its owner.
fn contact_with_owner(sim: &HubSpotSim) -> (u64, String) {
    let state = sim.state();
    let active: Vec<String> = state
        .owners
        .iter()
        .filter(|o| !o.archived)
        .map(|o| o.id.to_string())
        .collect();
    state
        .contacts
        .iter()
        .filter(|c| !c.archived)
        .find_map(|c| {
            c.properties
                .get("hubspot_owner_id")
                .filter(|o| active.contains(o))
                .map(|o| (c.id, o.clone()))
        })
        .expect("a generated contact with an active owner")
}

fn association(contact: u64, type_id: u64) -> Value {
    json!([{"to": {"id": contact.to_string()},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}])
}

async fn contact_props(sim: &HubSpotSim, contact: u64) -> Value {
    let r = get(
        sim,
        &format!(
            "/crm/v3/objects/contacts/{contact}?properties=notes_last_contacted,notes_last_updated,hs_last_sales_activity_timestamp,hs_last_sales_activity_type,num_contacted_notes"
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["properties"].clone()
}

#[tokio::test]
async fn a_logged_call_is_readable_everywhere_and_bumps_the_contacts_last_contacted() {
    let sim = sim().await;
    let (contact, owner) = contact_with_owner(&sim);
    let before = contact_props(&sim, contact).await;
    assert_eq!(before["notes_last_contacted"], Value::Null, "unset is null");

    let r = post(
        &sim,
        "/crm/v3/objects/calls",
        &json!({"properties": {"hs_timestamp": "1767607200000", "hubspot_owner_id": owner,
                               "hs_call_direction": "OUTBOUND", "hs_call_status": "COMPLETED"},
                "associations": association(contact, 194)}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().expect("id is a string").to_owned();
    assert_eq!(
        r.body["properties"]["hs_timestamp"], "2026-01-05T10:00:00.000Z",
        "epoch ms in, ISO out (trap 5)"
    );

    // Get one, with its contact embedded.
    let r = get(
        &sim,
        &format!("/crm/v3/objects/calls/{id}?properties=hs_timestamp,hubspot_owner_id,hs_call_direction&associations=contacts"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["properties"]["hubspot_owner_id"], owner.as_str());
    assert_eq!(
        r.body["associations"]["contacts"]["results"][0]["id"],
        contact.to_string()
    );
    // A call id is not an email.
    assert_eq!(
        get(&sim, &format!("/crm/v3/objects/emails/{id}"))
            .await
            .status,
        404
    );

    // The contact's rollups moved to the call's own time, and it counts once.
    let after = contact_props(&sim, contact).await;
    assert_eq!(after["notes_last_contacted"], "2026-01-05T10:00:00.000Z");
    assert_eq!(
        after["hs_last_sales_activity_timestamp"],
        "2026-01-05T10:00:00.000Z"
    );
    assert_eq!(after["hs_last_sales_activity_type"], "CALL");
    assert_eq!(after["num_contacted_notes"], "1");

    // An older note later does not move "last contacted" back, nor count as contact.
    let r = post(
        &sim,
        "/crm/v3/objects/notes",
        &json!({"properties": {"hs_timestamp": "2026-01-01T00:00:00Z", "hs_note_body": "met at a fair"},
                "associations": association(contact, 202)}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let after_note = contact_props(&sim, contact).await;
    assert_eq!(
        after_note["notes_last_contacted"],
        "2026-01-05T10:00:00.000Z"
    );
    assert_eq!(after_note["num_contacted_notes"], "1");

    // v4 both ways.
    let r = get(
        &sim,
        &format!("/crm/v4/objects/contacts/{contact}/associations/calls"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["results"][0]["toObjectId"],
        json!(id.parse::<u64>().unwrap())
    );
    assert_eq!(r.body["results"][0]["associationTypes"][0]["typeId"], 193);
    let r = post(
        &sim,
        "/crm/v4/associations/calls/contacts/batch/read",
        &json!({"inputs": [{"id": id}, {"id": "42"}]}),
    )
    .await;
    assert_eq!(r.status, 207, "one input has no links: {}", r.body);
    assert_eq!(r.body["results"][0]["to"][0]["toObjectId"], json!(contact));
    assert_eq!(
        r.body["results"][0]["to"][0]["associationTypes"][0]["typeId"],
        194
    );

    // Search by modification time (the connector's incremental read) and by contact.
    let r = post(
        &sim,
        "/crm/v3/objects/calls/search",
        &json!({"filterGroups": [{"filters": [
                    {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"},
                    {"propertyName": "associations.contact", "operator": "EQ", "value": contact.to_string()}]}],
                "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                "properties": ["hs_timestamp"], "limit": 200}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["total"], 1);
    assert_eq!(r.body["results"][0]["id"], id.as_str());
    let r = post(
        &sim,
        "/crm/v3/objects/calls/search",
        &json!({"filterGroups": [{"filters": [{"propertyName": "hs_no_such", "operator": "EQ", "value": "x"}]}]}),
    )
    .await;
    assert_eq!(r.status, 400);

    // Batch read: 207 naming the missing id.
    let r = post(
        &sim,
        "/crm/v3/objects/calls/batch/read",
        &json!({"inputs": [{"id": id}, {"id": "999"}], "properties": ["hs_call_direction"]}),
    )
    .await;
    assert_eq!(r.status, 207, "{}", r.body);
    assert_eq!(
        r.body["results"][0]["properties"]["hs_call_direction"],
        "OUTBOUND"
    );
    assert_eq!(r.body["errors"][0]["context"]["ids"][0], "999");
    sim.shutdown().await;
}

#[tokio::test]
async fn batch_creates_page_through_the_list_and_meetings_default_their_timestamp() {
    let sim = sim().await;
    let (contact, _) = contact_with_owner(&sim);
    let inputs: Vec<Value> = (0..5)
        .map(|n| {
            json!({"properties": {"hs_meeting_start_time": format!("2026-01-0{}T09:00:00Z", n + 1),
                                  "hs_meeting_outcome": "COMPLETED"},
                   "associations": association(contact, 200)})
        })
        .collect();
    let r = post(
        &sim,
        "/crm/v3/objects/meetings/batch/create",
        &json!({ "inputs": inputs }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["results"].as_array().map(Vec::len), Some(5));
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => {
                format!("/crm/v3/objects/meetings?limit=2&properties=hs_timestamp&after={a}")
            }
            None => "/crm/v3/objects/meetings?limit=2&properties=hs_timestamp".to_owned(),
        };
        let r = get(&sim, &path).await;
        assert_eq!(r.status, 200);
        for result in r.body["results"].as_array().unwrap() {
            assert!(
                result["properties"]["hs_timestamp"].is_string(),
                "defaulted from the start time"
            );
            seen.push(result["id"].as_str().unwrap().to_owned());
        }
        match r.body["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "every meeting once over three pages");
    // The batch is all-or-nothing: one bad input writes none.
    let r = post(
        &sim,
        "/crm/v3/objects/tasks/batch/create",
        &json!({"inputs": [
            {"properties": {"hs_timestamp": "2026-01-01T00:00:00Z", "hs_task_status": "COMPLETED"}},
            {"properties": {"hs_timestamp": "2026-01-01T00:00:00Z", "hs_task_status": "DONE-ISH"}}]}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = get(&sim, "/crm/v3/objects/tasks").await;
    assert_eq!(r.body["results"].as_array().map(Vec::len), Some(0));
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_activities_are_refused_with_the_apis_errors_and_nothing_is_written() {
    let sim = sim().await;
    let (contact, _) = contact_with_owner(&sim);
    // An unknown contact.
    let r = post(
        &sim,
        "/crm/v3/objects/calls",
        &json!({"properties": {"hs_timestamp": "2026-01-01T00:00:00Z"},
                "associations": association(987_654_321, 194)}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["category"], "VALIDATION_ERROR");
    assert!(r.body["message"].as_str().unwrap().contains("987654321"));
    // The wrong association type for a call.
    let r = post(
        &sim,
        "/crm/v3/objects/calls",
        &json!({"properties": {"hs_timestamp": "2026-01-01T00:00:00Z"},
                "associations": association(contact, 198)}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // No hs_timestamp.
    let r = post(
        &sim,
        "/crm/v3/objects/emails",
        &json!({"properties": {"hs_email_direction": "EMAIL"}, "associations": association(contact, 198)}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("hs_timestamp"));
    let r = get(&sim, "/crm/v3/objects/calls").await;
    assert_eq!(
        r.body["results"].as_array().map(Vec::len),
        Some(0),
        "nothing written"
    );

    // A future timestamp is accepted (a task due tomorrow) but moves no rollup.
    let future = chrono::Utc::now().timestamp_millis() + 86_400_000;
    let r = post(
        &sim,
        "/crm/v3/objects/tasks",
        &json!({"properties": {"hs_timestamp": future.to_string(), "hs_task_status": "NOT_STARTED"},
                "associations": association(contact, 204)}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        contact_props(&sim, contact).await["notes_last_updated"],
        Value::Null
    );

    // The control API refuses a touch in the future and an unknown contact.
    let r = post(
        &sim,
        "/__sim/touch",
        &json!({"contactId": contact.to_string(), "at": future}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("future"));
    let r = post(&sim, "/__sim/touch", &json!({"contactId": "987654321"})).await;
    assert_eq!(r.status, 404, "{}", r.body);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_touch_through_the_control_api_is_a_call_by_the_owner_and_fires_property_change_webhooks()
{
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let app = Router::new().route(
        "/webhooks/hubspot",
        post_route(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                if let Ok(Value::Array(events)) = serde_json::from_slice(&body) {
                    sink.lock().extend(events);
                }
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/hubspot", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let sim = sim_with(HubSpotSimConfig {
        webhook_url: Some(url),
        webhook_retry_base: Duration::from_millis(5),
        ..config()
    })
    .await;
    let (contact, owner) = contact_with_owner(&sim);
    let at = chrono::Utc::now().timestamp_millis() - 60_000;
    let r = post(
        &sim,
        "/__sim/touch",
        &json!({"contactId": contact.to_string(), "at": at}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["type"], "calls");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = get(
        &sim,
        &format!(
            "/crm/v3/objects/calls/{id}?properties=hubspot_owner_id,hs_timestamp,hs_call_direction"
        ),
    )
    .await;
    assert_eq!(
        r.body["properties"]["hubspot_owner_id"],
        owner.as_str(),
        "by the owner"
    );
    assert_eq!(r.body["properties"]["hs_call_direction"], "OUTBOUND");
    let mut events = Vec::new();
    for _ in 0..500 {
        events = got.lock().clone();
        if events
            .iter()
            .any(|e| e["propertyName"] == "notes_last_contacted")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let change = events
        .iter()
        .find(|e| {
            e["subscriptionType"] == "contact.propertyChange"
                && e["propertyName"] == "notes_last_contacted"
        })
        .unwrap_or_else(|| panic!("a propertyChange for notes_last_contacted: {events:?}"));
    assert_eq!(change["objectId"], json!(contact));
    sim.shutdown().await;
}
