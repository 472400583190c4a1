//! List paging, single reads, embedded associations, owners and v4
//! association reads of the HubSpot simulator, over real HTTP.

mod hubspot_support;

use std::collections::BTreeMap;

use hubspot_support::*;
use leadroute_sim::hubspot::{HubSpotSimConfig, Mutation, ObjectType};
use serde_json::json;

#[tokio::test]
async fn list_pages_cover_every_live_contact_once_in_ascending_id_order() {
    let sim = sim().await;
    let ids = list_all_ids(&sim, "contacts", "").await;
    let state = sim.state();
    let live: Vec<u64> = state
        .contacts
        .iter()
        .filter(|c| !c.archived)
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, live);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    let first = get(&sim, "/crm/v3/objects/contacts").await;
    assert_eq!(
        first.body["results"].as_array().map(Vec::len),
        Some(10),
        "default limit is 10"
    );
    let last_page = get(
        &sim,
        &format!(
            "/crm/v3/objects/contacts?limit=100&after={}",
            ids[ids.len() - 5]
        ),
    )
    .await;
    assert_eq!(last_page.body["results"].as_array().map(Vec::len), Some(5));
    assert!(
        last_page.body.get("paging").is_none(),
        "no paging on the last page"
    );

    let too_big = get(&sim, "/crm/v3/objects/contacts?limit=101").await;
    assert_eq!(too_big.status, 400);
    assert_eq!(too_big.body["category"], "VALIDATION_ERROR");
    sim.shutdown().await;
}

#[tokio::test]
async fn requested_properties_come_back_as_strings_or_null_and_unknown_names_are_dropped() {
    let sim = sim().await;
    let page = get(
        &sim,
        "/crm/v3/objects/contacts?limit=100&properties=email,hubspot_owner_id&properties=jobtitle,no_such_prop",
    )
    .await;
    let results = page.body["results"].as_array().expect("results");
    for r in results {
        let props = r["properties"].as_object().expect("properties object");
        assert!(
            props.contains_key("jobtitle"),
            "requested-but-unset is present as null"
        );
        assert!(!props.contains_key("no_such_prop"));
        assert!(props.contains_key("lastmodifieddate") && props.contains_key("hs_object_id"));
        assert_eq!(props["hs_object_id"], r["id"]);
        for v in props.values() {
            assert!(v.is_string() || v.is_null(), "{v}");
        }
        let updated = r["updatedAt"].as_str().expect("updatedAt");
        assert_eq!(
            updated.len(),
            "2026-03-02T10:15:30.120Z".len(),
            "ISO with ms: {updated}"
        );
    }
    assert!(
        results
            .iter()
            .any(|r| r["properties"]["jobtitle"].is_null())
    );
    let companies = get(&sim, "/crm/v3/objects/companies?limit=3").await;
    let props = companies.body["results"][0]["properties"]
        .as_object()
        .expect("props");
    assert!(props.contains_key("hs_lastmodifieddate") && props.contains_key("domain"));
    assert!(
        !props.contains_key("lastmodifieddate"),
        "companies use hs_lastmodifieddate"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn embedded_associations_list_primary_and_unlabeled_types() {
    let sim = sim().await;
    let page = get(
        &sim,
        "/crm/v3/objects/contacts?limit=100&associations=companies&properties=associatedcompanyid",
    )
    .await;
    let with_company = page.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| {
            r["properties"]["associatedcompanyid"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .expect("some contact has a primary company")
        .clone();
    let primary = with_company["properties"]["associatedcompanyid"]
        .as_str()
        .expect("id");
    let links = with_company["associations"]["companies"]["results"]
        .as_array()
        .expect("links");
    let types: Vec<(&str, &str)> = links
        .iter()
        .map(|l| {
            (
                l["id"].as_str().unwrap_or(""),
                l["type"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(types.contains(&(primary, "contact_to_company")));
    assert!(types.contains(&(primary, "contact_to_company_unlabeled")));
    sim.shutdown().await;
}

#[tokio::test]
async fn archived_records_leave_reads_and_show_only_with_archived_true() {
    let sim = sim().await;
    let id = sim.state().contacts[3].id.to_string();
    sim.mutate(Mutation::Archive {
        object: ObjectType::Contacts,
        id: id.clone(),
    })
    .expect("archive");
    let gone = get(&sim, &format!("/crm/v3/objects/contacts/{id}")).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.body["category"], "OBJECT_NOT_FOUND");
    assert!(gone.body["correlationId"].is_string());
    let archived = list_all_ids(&sim, "contacts", "&archived=true").await;
    assert_eq!(archived, vec![id.parse::<u64>().expect("id")]);
    let one = get(
        &sim,
        &format!("/crm/v3/objects/contacts/{id}?archived=true"),
    )
    .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["archived"], true);
    assert!(one.body["archivedAt"].is_string());
    sim.mutate(Mutation::Restore {
        object: ObjectType::Contacts,
        id: id.clone(),
    })
    .expect("restore");
    assert_eq!(
        get(&sim, &format!("/crm/v3/objects/contacts/{id}"))
            .await
            .status,
        200
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_contact_can_be_read_by_email() {
    let sim = sim().await;
    let contact = sim.state().contacts[7].clone();
    let email = contact.properties["email"].to_uppercase();
    let r = get(
        &sim,
        &format!("/crm/v3/objects/contacts/{email}?idProperty=email"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], contact.id.to_string());
    sim.shutdown().await;
}

#[tokio::test]
async fn owners_page_by_500_and_archived_true_lists_only_deactivated_owners() {
    let sim = sim_with(HubSpotSimConfig {
        owners: 40,
        ..config()
    })
    .await;
    let state = sim.state();
    let active = get(&sim, "/crm/v3/owners?limit=500").await;
    let archived = get(&sim, "/crm/v3/owners?archived=true").await;
    let count = |r: &Reply| r.body["results"].as_array().map_or(0, Vec::len);
    assert_eq!(
        count(&active),
        state.owners.iter().filter(|o| !o.archived).count()
    );
    assert_eq!(
        count(&archived),
        state.owners.iter().filter(|o| o.archived).count()
    );
    assert!(count(&archived) > 0);
    for o in active.body["results"].as_array().expect("owners") {
        assert!(o["id"].is_string() && o["userId"].is_u64());
        assert_ne!(
            o["id"].as_str().map(str::to_owned),
            o["userId"].as_u64().map(|u| u.to_string())
        );
        let teams = o["teams"].as_array().expect("teams");
        assert_eq!(teams.iter().filter(|t| t["primary"] == true).count(), 1);
    }
    for o in archived.body["results"].as_array().expect("owners") {
        assert_eq!(o["archived"], true);
        assert!(o["userIdIncludingInactive"].is_u64());
    }
    assert_eq!(get(&sim, "/crm/v3/owners?limit=501").await.status, 400);
    let small = get(&sim, "/crm/v3/owners?limit=3").await;
    let after = small.body["paging"]["next"]["after"]
        .as_str()
        .expect("more owners");
    let next = get(&sim, &format!("/crm/v3/owners?limit=3&after={after}")).await;
    assert_ne!(
        next.body["results"][0]["id"],
        small.body["results"][0]["id"]
    );
    let email = state.owners[0].email.clone();
    let by_email = get(&sim, &format!("/crm/v3/owners?email={email}")).await;
    assert_eq!(count(&by_email), 1);
    let one = get(&sim, &format!("/crm/v3/owners/{}", state.owners[0].id)).await;
    assert_eq!(one.body["email"], email);
    let by_user = get(
        &sim,
        &format!(
            "/crm/v3/owners/{}?idProperty=userId",
            state.owners[0].user_id
        ),
    )
    .await;
    assert_eq!(by_user.body["id"], state.owners[0].id.to_string());
    sim.shutdown().await;
}

#[tokio::test]
async fn v4_batch_read_answers_207_for_contacts_without_companies_and_pages_per_input() {
    let sim = sim_with(HubSpotSimConfig {
        association_page_size: 1,
        ..config()
    })
    .await;
    let state = sim.state();
    let mut per_contact: BTreeMap<u64, Vec<(u64, bool)>> = BTreeMap::new();
    for a in &state.associations {
        per_contact
            .entry(a.contact_id)
            .or_default()
            .push((a.company_id, a.primary));
    }
    let linked = *per_contact.keys().next().expect("a linked contact");
    let lonely = state
        .contacts
        .iter()
        .find(|c| !per_contact.contains_key(&c.id))
        .expect("a contact without company")
        .id;
    let r = post(
        &sim,
        "/crm/v4/associations/contacts/companies/batch/read",
        &json!({"inputs": [{"id": linked.to_string()}, {"id": lonely.to_string()}]}),
    )
    .await;
    assert_eq!(r.status, 207, "{}", r.body);
    assert_eq!(
        r.body["errors"][0]["subCategory"],
        "crm.associations.NO_ASSOCIATIONS_FOUND"
    );
    assert_eq!(
        r.body["errors"][0]["context"]["fromObjectId"][0],
        lonely.to_string()
    );
    let result = &r.body["results"][0];
    assert_eq!(result["from"]["id"], linked.to_string());
    let to = &result["to"][0];
    assert!(
        to["toObjectId"].is_u64(),
        "toObjectId is a number on the live API"
    );
    let types: Vec<u64> = to["associationTypes"]
        .as_array()
        .expect("types")
        .iter()
        .filter_map(|t| t["typeId"].as_u64())
        .collect();
    assert!(types.contains(&279));
    let primary = per_contact[&linked]
        .iter()
        .find(|(_, p)| *p)
        .map(|(c, _)| *c);
    if Some(to["toObjectId"].as_u64().unwrap_or(0)) == primary {
        assert!(types.contains(&1));
    }

    // Page through a contact with two companies one link at a time.
    if let Some((&multi, links)) = per_contact.iter().find(|(_, l)| l.len() > 1) {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut input = json!({"id": multi.to_string()});
            if let Some(a) = &after {
                input["after"] = json!(a);
            }
            let r = post(
                &sim,
                "/crm/v4/associations/contacts/companies/batch/read",
                &json!({"inputs": [input]}),
            )
            .await;
            assert_eq!(r.status, 200);
            seen.push(
                r.body["results"][0]["to"][0]["toObjectId"]
                    .as_u64()
                    .expect("id"),
            );
            match r.body["results"][0]["paging"]["next"]["after"].as_str() {
                Some(a) => after = Some(a.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen.len(), links.len());
    }
    let too_many: Vec<_> = (0..1001).map(|i| json!({"id": i.to_string()})).collect();
    let r = post(
        &sim,
        "/crm/v4/associations/contacts/companies/batch/read",
        &json!({"inputs": too_many}),
    )
    .await;
    assert_eq!(r.status, 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn v4_writes_move_the_primary_company_and_associatedcompanyid_follows() {
    let sim = sim().await;
    let state = sim.state();
    let linked = state
        .associations
        .iter()
        .find(|a| a.primary)
        .expect("a primary link")
        .clone();
    let other = state
        .companies
        .iter()
        .find(|c| c.id != linked.company_id)
        .expect("another company")
        .id;
    let path = format!(
        "/crm/v4/objects/contacts/{}/associations/companies/{other}",
        linked.contact_id
    );
    let r = send(
        client()
            .put(format!("{}{path}", sim.base_url()))
            .bearer_auth(sim.token())
            .json(&json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}])),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let contact = get(
        &sim,
        &format!(
            "/crm/v3/objects/contacts/{}?properties=associatedcompanyid",
            linked.contact_id
        ),
    )
    .await;
    assert_eq!(
        contact.body["properties"]["associatedcompanyid"],
        other.to_string()
    );
    let list = get(
        &sim,
        &format!(
            "/crm/v4/objects/contacts/{}/associations/companies",
            linked.contact_id
        ),
    )
    .await;
    let results = list.body["results"].as_array().expect("results");
    let old = results
        .iter()
        .find(|l| l["toObjectId"] == json!(linked.company_id))
        .expect("old primary stays unlabeled");
    assert_eq!(old["associationTypes"].as_array().map(Vec::len), Some(1));
    let r = send(
        client()
            .delete(format!("{}{path}", sim.base_url()))
            .bearer_auth(sim.token()),
    )
    .await;
    assert_eq!(r.status, 204);
    let contact = get(
        &sim,
        &format!(
            "/crm/v3/objects/contacts/{}?properties=associatedcompanyid",
            linked.contact_id
        ),
    )
    .await;
    assert_eq!(contact.body["properties"]["associatedcompanyid"], "");
    sim.shutdown().await;
}
