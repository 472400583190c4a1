//! Activities end to end: a rep logs a call through the HubSpot simulator's public API,
//! leadroute syncs (with `[sync] activities = true`), and the mirror holds the call with
//! its own time, owner and contact, and the contact's touch rollup as HubSpot moved it.

use chrono::{DateTime, Utc};
use leadroute::store::ActivityCursor;
use leadroute_crm::{ActivityKind, CrmKind, Direction, ObjectKind, OwnerId, RecordId};
use serde_json::json;

use crate::helpers::{sim_config, spawn_app, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_logged_through_the_public_api_reaches_the_mirror_with_its_time_owner_and_contact() {
    let app = spawn_app(sim_config(40, 8), "[sync]\nactivities = true\n").await;
    let mirror = app.mirror();
    let first = mirror.sync_once(false).await.expect("first (full) sync");
    assert!(first.complete());
    assert!(
        first
            .objects
            .iter()
            .any(|o| o.object == ObjectKind::Activity),
        "activities are synced when [sync] activities = true"
    );

    let state = app.sim.state();
    let active: Vec<String> = state
        .owners
        .iter()
        .filter(|o| !o.archived)
        .map(|o| o.id.to_string())
        .collect();
    let (contact, owner) = state
        .contacts
        .iter()
        .filter(|c| !c.archived)
        .find_map(|c| {
            c.properties
                .get("hubspot_owner_id")
                .filter(|o| active.contains(o))
                .map(|o| (c.id, o.clone()))
        })
        .expect("a contact owned by an active owner");
    // Made ten minutes ago, logged now.
    let made = Utc::now() - chrono::Duration::minutes(10);
    let made_ms = made.timestamp_millis();
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/crm/v3/objects/calls", app.sim.base_url()))
        .bearer_auth(app.sim.token())
        .json(&json!({
            "properties": {"hs_timestamp": made_ms.to_string(), "hubspot_owner_id": owner,
                           "hs_call_direction": "OUTBOUND", "hs_call_status": "COMPLETED"},
            "associations": [{"to": {"id": contact.to_string()},
                              "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}]}]
        }))
        .send()
        .await
        .expect("the simulator answers");
    let status = response.status().as_u16();
    assert_eq!(status, 201, "{}", response.text().await.unwrap_or_default());

    let store = &app.store.store;
    let contact_id = RecordId::new(contact.to_string());
    let activities = wait_for("the call in the mirror", 20, || {
        let mirror = mirror.clone();
        let contact_id = contact_id.clone();
        async move {
            mirror.sync_once(false).await.expect("incremental sync");
            let found = store
                .activities_for(
                    &leadroute::domain::OrgId::default_for(CrmKind::Hubspot),
                    ObjectKind::Contact,
                    &contact_id,
                )
                .await
                .expect("store read");
            (!found.is_empty()).then_some(found)
        }
    })
    .await;
    let call = &activities[0];
    assert_eq!(call.kind, ActivityKind::Call);
    assert_eq!(
        call.at.timestamp_millis(),
        made_ms,
        "the call's own time, not the sync's"
    );
    assert_eq!(call.owner_id, Some(OwnerId::new(owner.as_str())));
    assert_eq!(call.direction, Some(Direction::Outbound));
    assert!(call.people.iter().any(|p| p.id == contact_id));

    // The SLA engine's read: what changed after a cursor.
    let changed = store
        .activities_changed(
            &leadroute::domain::OrgId::default_for(CrmKind::Hubspot),
            ActivityCursor::START,
            100,
        )
        .await
        .unwrap();
    assert!(changed.activities.iter().any(|a| a.id == call.id));

    // The contact's touch rollup moved to the call's time and is in its fields.
    let person = wait_for("the contact's rollup in the mirror", 20, || {
        let mirror = mirror.clone();
        let contact_id = contact_id.clone();
        async move {
            mirror.sync_once(false).await.expect("incremental sync");
            let person = store
                .person(
                    &leadroute::domain::OrgId::default_for(CrmKind::Hubspot),
                    ObjectKind::Contact,
                    &contact_id,
                )
                .await
                .expect("store read")?;
            person
                .fields
                .contains_key("notes_last_contacted")
                .then_some(person)
        }
    })
    .await;
    let rollup: DateTime<Utc> = person.fields["notes_last_contacted"]
        .parse()
        .expect("an ISO time");
    assert_eq!(rollup.timestamp_millis(), made_ms);
    assert!(
        person
            .fields
            .contains_key("hs_last_sales_activity_timestamp")
    );

    // Without the key, syncs leave activities alone.
    let plain = spawn_app(sim_config(5, 2), "").await;
    let report = plain.mirror().sync_once(false).await.unwrap();
    assert!(
        report
            .objects
            .iter()
            .all(|o| o.object != ObjectKind::Activity)
    );
    plain.shutdown().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salesforce_call_task_reaches_the_mirror_with_its_lead_and_the_leads_last_activity_date()
{
    use std::sync::Arc;

    use leadroute::mirror::Mirror;
    use leadroute_salesforce::{Salesforce, SalesforceAuth, SalesforceSettings};
    use leadroute_sim::salesforce::SalesforceSimConfig;
    use secrecy::SecretString;

    let config = SalesforceSimConfig {
        leads: 30,
        contacts: 10,
        accounts: 10,
        users: 5,
        queues: 1,
        ..SalesforceSimConfig::default()
    };
    let sim = leadroute_sim::salesforce::spawn(config.clone())
        .await
        .expect("simulator starts");
    let mut settings = SalesforceSettings::new(
        sim.base_url(),
        SalesforceAuth::RefreshToken {
            client_id: config.client_id.clone(),
            client_secret: Some(SecretString::from(config.client_secret.clone())),
            refresh_token: SecretString::from(config.refresh_token.clone()),
        },
    );
    settings.organization_id = Some(sim.org_id());
    settings.overlap = std::time::Duration::from_secs(2);
    settings.activities = true;
    let crm = Arc::new(Salesforce::new(settings).expect("connector settings"));
    let store = crate::helpers::sqlite_store().await;
    let mirror = Mirror::new(crm, store.store.clone());
    mirror.sync_once(false).await.expect("first (full) sync");

    let state = sim.state();
    let lead = state
        .leads
        .iter()
        .find(|l| !l.is_deleted && !l.is_converted)
        .expect("a live lead");
    let rep = state
        .users
        .iter()
        .find(|u| u.is_active)
        .expect("an active user")
        .id
        .clone();
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!(
            "{}/services/data/v62.0/sobjects/Task",
            sim.base_url()
        ))
        .bearer_auth(sim.token())
        .json(
            &json!({"WhoId": lead.id, "OwnerId": rep, "Subject": "Call", "TaskSubtype": "Call",
                      "CallType": "Outbound", "Status": "Completed", "ActivityDate": "2026-01-05"}),
        )
        .send()
        .await
        .expect("the simulator answers");
    let status = response.status().as_u16();
    assert_eq!(status, 201, "{}", response.text().await.unwrap_or_default());

    let lead_id = RecordId::new(lead.id.as_str());
    let found = wait_for("the task in the mirror", 20, || {
        let mirror = mirror.clone();
        let store = store.store.clone();
        let lead_id = lead_id.clone();
        async move {
            mirror.sync_once(false).await.expect("incremental sync");
            let found = store
                .activities_for(
                    &leadroute::domain::OrgId::default_for(CrmKind::Salesforce),
                    ObjectKind::Lead,
                    &lead_id,
                )
                .await
                .expect("store read");
            let person = store
                .person(
                    &leadroute::domain::OrgId::default_for(CrmKind::Salesforce),
                    ObjectKind::Lead,
                    &lead_id,
                )
                .await
                .expect("store read")?;
            (!found.is_empty() && person.fields.contains_key("LastActivityDate"))
                .then_some((found, person))
        }
    })
    .await;
    let (activities, person) = found;
    let task = &activities[0];
    assert_eq!(task.kind, ActivityKind::Call, "TaskSubtype Call");
    assert_eq!(task.owner_id, Some(OwnerId::new(rep.as_str())));
    assert_eq!(task.direction, Some(Direction::Outbound));
    assert!(task.done);
    assert_eq!(person.fields["LastActivityDate"], "2026-01-05");
    sim.shutdown().await;
    store.cleanup().await;
}
