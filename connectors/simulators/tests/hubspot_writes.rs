//! Batch read/update, the write log, merges and archive in the HubSpot
//! simulator: limits, 207 multi-status, whole-call 400s and id resolution.

mod hubspot_support;

use std::collections::BTreeSet;

use hubspot_support::*;
use leadroute_sim::hubspot::{
    EndpointFamily, Fault, FaultRule, FaultScript, Mutation, ObjectType, Trigger,
};
use serde_json::json;

fn active_owner(sim: &leadroute_sim::hubspot::HubSpotSim) -> String {
    sim.state()
        .owners
        .iter()
        .find(|o| !o.archived)
        .expect("an active owner")
        .id
        .to_string()
}

#[tokio::test]
async fn batch_read_answers_207_naming_unknown_ids_and_rejects_more_than_100_inputs() {
    let sim = sim().await;
    let known: Vec<String> = sim
        .state()
        .contacts
        .iter()
        .take(3)
        .map(|c| c.id.to_string())
        .collect();
    let mut inputs: Vec<_> = known.iter().map(|id| json!({"id": id})).collect();
    inputs.push(json!({"id": "404040"}));
    let r = post(
        &sim,
        "/crm/v3/objects/contacts/batch/read",
        &json!({"properties": ["email"], "inputs": inputs}),
    )
    .await;
    assert_eq!(r.status, 207, "{}", r.body);
    assert_eq!(r.body["results"].as_array().map(Vec::len), Some(3));
    assert_eq!(r.body["numErrors"], 1);
    assert_eq!(r.body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(r.body["errors"][0]["context"]["ids"], json!(["404040"]));
    assert_eq!(r.body["status"], "COMPLETE");

    let all_known: Vec<_> = known.iter().map(|id| json!({"id": id})).collect();
    let ok = post(
        &sim,
        "/crm/v3/objects/contacts/batch/read",
        &json!({"inputs": all_known}),
    )
    .await;
    assert_eq!(ok.status, 200);
    let many: Vec<_> = (0..101).map(|i| json!({"id": i.to_string()})).collect();
    let r = post(
        &sim,
        "/crm/v3/objects/contacts/batch/read",
        &json!({"inputs": many}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["category"], "VALIDATION_ERROR");
    sim.shutdown().await;
}

#[tokio::test]
async fn batch_update_writes_owners_stamps_dates_and_logs_every_write_including_no_ops() {
    let sim = sim().await;
    let owner = active_owner(&sim);
    let state = sim.state();
    let targets: Vec<&leadroute_sim::hubspot::SimRecord> = state
        .contacts
        .iter()
        .filter(|c| c.properties.get("hubspot_owner_id") != Some(&owner))
        .take(5)
        .collect();
    let inputs: Vec<_> = targets
        .iter()
        .map(|c| json!({"id": c.id.to_string(), "properties": {"hubspot_owner_id": owner}}))
        .collect();
    let r = post(
        &sim,
        "/crm/v3/objects/contacts/batch/update",
        &json!({"inputs": inputs}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.body["results"].as_array().expect("results");
    let returned: BTreeSet<&str> = results.iter().filter_map(|x| x["id"].as_str()).collect();
    let sent: BTreeSet<String> = targets.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(returned, sent.iter().map(String::as_str).collect());
    for x in results {
        assert_eq!(x["properties"]["hubspot_owner_id"], owner);
    }
    let after = sim.state();
    for c in &targets {
        let now = after
            .contacts
            .iter()
            .find(|x| x.id == c.id)
            .expect("still there");
        assert!(
            now.updated_at_ms > c.updated_at_ms,
            "lastmodifieddate moves"
        );
        assert_eq!(
            now.properties["hubspot_owner_assigneddate"],
            now.properties["lastmodifieddate"]
        );
    }
    // Writing the same value again is applied (logged) but changes nothing.
    let again = post(
        &sim,
        "/crm/v3/objects/contacts/batch/update",
        &json!({"inputs": [inputs[0].clone()]}),
    )
    .await;
    assert_eq!(again.status, 200);
    let log = sim.write_log();
    assert_eq!(log.len(), 6);
    assert!(
        log[..5]
            .iter()
            .all(|e| e.changed && e.property == "hubspot_owner_id" && e.new_value == owner)
    );
    assert!(!log[5].changed);
    assert_eq!(sim.stats().writes, 6);
    sim.shutdown().await;
}

#[tokio::test]
async fn one_invalid_value_fails_the_whole_batch_and_writes_nothing() {
    let sim = sim().await;
    let state = sim.state();
    let owner = active_owner(&sim);
    let archived_owner = state
        .owners
        .iter()
        .find(|o| o.archived)
        .expect("an archived owner");
    let a = state.contacts[0].id.to_string();
    let b = state.contacts[1].id.to_string();
    let cases = [
        (
            "a user id is not an owner id",
            json!({"hubspot_owner_id": archived_owner.user_id.to_string()}),
            "INVALID_OPTION",
        ),
        (
            "an archived owner is no longer an option",
            json!({"hubspot_owner_id": archived_owner.id.to_string()}),
            "INVALID_OPTION",
        ),
        (
            "unknown property",
            json!({"rep": "x"}),
            "PROPERTY_DOESNT_EXIST",
        ),
        (
            "read-only property",
            json!({"lastmodifieddate": "1"}),
            "READ_ONLY_VALUE",
        ),
        (
            "bad enumeration",
            json!({"lifecyclestage": "champion"}),
            "INVALID_OPTION",
        ),
    ];
    for (why, bad, code) in cases {
        let body = json!({"inputs": [
            {"id": a, "properties": {"hubspot_owner_id": owner}},
            {"id": b, "properties": bad},
        ]});
        let r = post(&sim, "/crm/v3/objects/contacts/batch/update", &body).await;
        assert_eq!(r.status, 400, "{why}: {}", r.body);
        assert_eq!(r.body["category"], "VALIDATION_ERROR", "{why}");
        assert!(
            r.body["message"].as_str().is_some_and(|m| m.contains(code)),
            "{why}: {}",
            r.body["message"]
        );
    }
    assert!(sim.write_log().is_empty());
    assert_eq!(sim.state().contacts, state.contacts, "nothing was written");

    let dup = json!({"inputs": [{"id": a, "properties": {}}, {"id": a, "properties": {}}]});
    assert_eq!(
        post(&sim, "/crm/v3/objects/contacts/batch/update", &dup)
            .await
            .status,
        400
    );
    let many: Vec<_> = state
        .contacts
        .iter()
        .take(101)
        .map(|c| json!({"id": c.id.to_string(), "properties": {}}))
        .collect();
    assert_eq!(
        post(
            &sim,
            "/crm/v3/objects/contacts/batch/update",
            &json!({"inputs": many})
        )
        .await
        .status,
        400
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_ids_and_injected_partial_failures_answer_207_naming_the_failed_ids() {
    let sim = sim().await;
    let owner = active_owner(&sim);
    let ids: Vec<String> = sim
        .state()
        .contacts
        .iter()
        .take(10)
        .map(|c| c.id.to_string())
        .collect();
    let mut inputs: Vec<_> = ids
        .iter()
        .map(|id| json!({"id": id, "properties": {"hubspot_owner_id": owner}}))
        .collect();
    inputs.push(json!({"id": "999", "properties": {"hubspot_owner_id": owner}}));
    sim.set_faults(FaultScript {
        seed: 3,
        rules: vec![FaultRule {
            families: vec![EndpointFamily::BatchUpdate],
            fault: Fault::PartialBatchFailure {
                fraction: 0.3,
                category: "INTERNAL_ERROR".into(),
            },
            trigger: Trigger::NextN { n: 1 },
        }],
        expire_tokens: false,
    });
    let r = post(
        &sim,
        "/crm/v3/objects/contacts/batch/update",
        &json!({"inputs": inputs}),
    )
    .await;
    assert_eq!(r.status, 207, "{}", r.body);
    let errors = r.body["errors"].as_array().expect("errors");
    let missing = errors
        .iter()
        .find(|e| e["category"] == "OBJECT_NOT_FOUND")
        .expect("unknown id error");
    assert_eq!(missing["context"]["ids"], json!(["999"]));
    let failed: BTreeSet<String> = errors
        .iter()
        .find(|e| e["category"] == "INTERNAL_ERROR")
        .expect("partial failure")["context"]["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    assert!(!failed.is_empty());
    let ok: BTreeSet<String> = r.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|x| x["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ok.len() + failed.len(), 10);
    assert!(ok.is_disjoint(&failed));
    let written: BTreeSet<String> = sim.write_log().into_iter().map(|e| e.id).collect();
    assert_eq!(written, ok, "failed ids were not written");
    sim.shutdown().await;
}

#[tokio::test]
async fn merging_mints_a_new_id_and_the_old_ids_resolve_to_it() {
    let sim = sim().await;
    let state = sim.state();
    let a = state.contacts[0].clone();
    let b = state.contacts[1].clone();
    let r = post(
        &sim,
        "/crm/v3/objects/contacts/merge",
        &json!({"primaryObjectId": a.id.to_string(), "objectIdToMerge": b.id.to_string()}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let new_id = r.body["id"].as_str().expect("id").to_owned();
    assert_ne!(new_id, a.id.to_string());
    assert_ne!(new_id, b.id.to_string());
    for old in [a.id, b.id] {
        let read = get(
            &sim,
            &format!("/crm/v3/objects/contacts/{old}?properties=hs_merged_object_ids,email"),
        )
        .await;
        assert_eq!(read.status, 200);
        assert_eq!(
            read.body["id"], new_id,
            "an old id answers with the survivor's id"
        );
        assert_eq!(read.body["properties"]["hs_object_id"], new_id);
        let merged: BTreeSet<&str> = read.body["properties"]["hs_merged_object_ids"]
            .as_str()
            .expect("merged ids")
            .split(';')
            .collect();
        assert!(
            merged.contains(a.id.to_string().as_str())
                && merged.contains(b.id.to_string().as_str())
        );
        assert_eq!(
            read.body["properties"]["email"],
            a.properties["email"].as_str()
        );
    }
    let ids = list_all_ids(&sim, "contacts", "").await;
    assert!(!ids.contains(&a.id) && !ids.contains(&b.id));
    assert!(ids.contains(&new_id.parse().expect("numeric")));
    let state = sim.state();
    assert_eq!(
        state.merged_contacts.get(&a.id).map(u64::to_string),
        Some(new_id.clone())
    );

    // Merging a company via the UI keeps its contacts linked to the new id.
    let company = state
        .associations
        .iter()
        .find(|x| x.primary)
        .expect("linked")
        .company_id;
    let other = state
        .companies
        .iter()
        .find(|c| c.id != company)
        .expect("other")
        .id;
    let merged = sim
        .mutate(Mutation::Merge {
            object: ObjectType::Companies,
            primary_id: company.to_string(),
            merged_id: other.to_string(),
        })
        .expect("merge companies");
    let new_company: u64 = merged.ids[0].parse().expect("id");
    let state = sim.state();
    assert!(
        state
            .associations
            .iter()
            .all(|x| x.company_id != company && x.company_id != other)
    );
    assert!(
        state
            .associations
            .iter()
            .any(|x| x.company_id == new_company)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn archive_via_delete_and_batch_archive_answers_204_and_hides_the_records() {
    let sim = sim().await;
    let ids: Vec<u64> = sim.state().companies.iter().take(3).map(|c| c.id).collect();
    let r = send(
        client()
            .delete(format!(
                "{}/crm/v3/objects/companies/{}",
                sim.base_url(),
                ids[0]
            ))
            .bearer_auth(sim.token()),
    )
    .await;
    assert_eq!(r.status, 204);
    let r = post(
        &sim,
        "/crm/v3/objects/companies/batch/archive",
        &json!({"inputs": [{"id": ids[1].to_string()}, {"id": ids[2].to_string()}]}),
    )
    .await;
    assert_eq!(r.status, 204);
    let archived = list_all_ids(&sim, "companies", "&archived=true").await;
    assert_eq!(archived, ids);
    let search = post(
        &sim,
        "/crm/v3/objects/companies/search",
        &json!({"limit": 200}),
    )
    .await;
    let found: Vec<&str> = search.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|x| x["id"].as_str())
        .collect();
    assert!(
        ids.iter()
            .all(|id| !found.contains(&id.to_string().as_str()))
    );
    sim.shutdown().await;
}
