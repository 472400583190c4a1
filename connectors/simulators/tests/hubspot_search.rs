//! CRM search in the HubSpot simulator: filters, sorting, offset paging and
//! its 10,000 cap, filter-count limits, index lag, the per-second search
//! limit without rate-limit headers, and bulk imports sharing one timestamp.

mod hubspot_support;

use std::collections::BTreeSet;
use std::time::Duration;

use hubspot_support::*;
use leadroute_sim::hubspot::{HubSpotSimConfig, Mutation, ObjectType};
use serde_json::{Value, json};

fn ms(iso: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(iso)
        .expect("ISO timestamp")
        .timestamp_millis()
}

#[tokio::test]
async fn a_watermark_search_returns_exactly_the_records_modified_since_in_ascending_order() {
    let sim = sim().await;
    let state = sim.state();
    let mut stamps: Vec<i64> = state.contacts.iter().map(|c| c.updated_at_ms).collect();
    stamps.sort_unstable();
    let watermark = stamps[stamps.len() / 2];
    let expected = state
        .contacts
        .iter()
        .filter(|c| c.updated_at_ms >= watermark)
        .count();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut body = json!({
            "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": watermark.to_string()}]}],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "properties": ["email", "lastmodifieddate"],
            "limit": 50,
        });
        if let Some(a) = &after {
            body["after"] = json!(a);
        }
        let r = post(&sim, "/crm/v3/objects/contacts/search", &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["total"], expected);
        for rec in r.body["results"].as_array().expect("results") {
            assert!(rec.get("associations").is_none());
            seen.push(ms(rec["properties"]["lastmodifieddate"]
                .as_str()
                .expect("stamp")));
        }
        match r.body["paging"]["next"]["after"].as_str() {
            Some(a) => {
                assert!(
                    a.parse::<usize>().is_ok(),
                    "search after is a numeric offset"
                );
                after = Some(a.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), expected);
    assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    assert!(seen.iter().all(|s| *s >= watermark));
    sim.shutdown().await;
}

#[tokio::test]
async fn filters_combine_with_and_inside_groups_and_or_across_groups() {
    let sim = sim().await;
    let state = sim.state();
    let owner = state
        .contacts
        .iter()
        .find_map(|c| c.properties.get("hubspot_owner_id"))
        .expect("owned")
        .clone();
    let count = |pred: &dyn Fn(&leadroute_sim::hubspot::SimRecord) -> bool| {
        state.contacts.iter().filter(|c| pred(c)).count()
    };
    let search = |filter_groups: Value| {
        let sim = sim.clone();
        async move {
            let r = post(
                &sim,
                "/crm/v3/objects/contacts/search",
                &json!({"filterGroups": filter_groups, "limit": 1}),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["total"].as_u64().expect("total") as usize
        }
    };
    let owned = search(json!([{"filters": [{"propertyName": "hubspot_owner_id", "operator": "EQ", "value": owner}]}])).await;
    assert_eq!(
        owned,
        count(&|c| c.properties.get("hubspot_owner_id") == Some(&owner))
    );
    let unowned = search(json!([{"filters": [{"propertyName": "hubspot_owner_id", "operator": "NOT_HAS_PROPERTY"}]}])).await;
    assert_eq!(
        unowned,
        count(&|c| c
            .properties
            .get("hubspot_owner_id")
            .is_none_or(|v| v.is_empty()))
    );
    let gmail = search(json!([{"filters": [{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@gmail.com"}]}])).await;
    assert_eq!(
        gmail,
        count(&|c| c.properties["email"].ends_with("@gmail.com"))
    );
    let either = search(json!([
        {"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"}]},
        {"filters": [{"propertyName": "lifecyclestage", "operator": "IN", "values": ["customer", "opportunity"]}]}
    ]))
    .await;
    assert_eq!(
        either,
        count(&|c| ["lead", "customer", "opportunity"]
            .contains(&c.properties["lifecyclestage"].as_str()))
    );
    let ids: Vec<u64> = state.contacts.iter().map(|c| c.id).collect();
    let between = search(json!([{"filters": [{"propertyName": "hs_object_id", "operator": "BETWEEN", "value": ids[10].to_string(), "highValue": ids[19].to_string()}]}])).await;
    assert_eq!(between, 10);
    sim.shutdown().await;
}

#[tokio::test]
async fn search_cannot_page_past_ten_thousand_results_but_keyset_paging_can() {
    let sim = sim_with(HubSpotSimConfig {
        contacts: 10_300,
        companies: 50,
        ..config()
    })
    .await;
    let first = post(&sim, "/crm/v3/objects/contacts/search", &json!({"limit": 200, "after": "9800", "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]})).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.body["total"], 10_300,
        "total may exceed what can be paged"
    );
    assert_eq!(first.body["paging"]["next"]["after"], "10000");
    let beyond = post(
        &sim,
        "/crm/v3/objects/contacts/search",
        &json!({"limit": 200, "after": "10000"}),
    )
    .await;
    assert_eq!(beyond.status, 400);
    assert_eq!(beyond.body["category"], "VALIDATION_ERROR");
    assert_eq!(
        post(
            &sim,
            "/crm/v3/objects/contacts/search",
            &json!({"limit": 201})
        )
        .await
        .status,
        400
    );

    // Keyset: hs_object_id GT last id, never `after`.
    let mut last = 0u64;
    let mut seen = 0usize;
    loop {
        let r = post(&sim, "/crm/v3/objects/contacts/search", &json!({
            "filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": last.to_string()}]}],
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "limit": 200,
        })).await;
        let results = r.body["results"].as_array().expect("results");
        if results.is_empty() {
            break;
        }
        seen += results.len();
        last = results
            .last()
            .and_then(|r| r["id"].as_str())
            .and_then(|s| s.parse().ok())
            .expect("id");
    }
    assert_eq!(seen, 10_300);
    sim.shutdown().await;
}

#[tokio::test]
async fn too_many_filters_or_sorts_are_rejected_with_validation_error() {
    let sim = sim().await;
    let filter = json!({"propertyName": "email", "operator": "HAS_PROPERTY"});
    let groups = |g: usize, f: usize| {
        json!(
            (0..g)
                .map(|_| json!({"filters": vec![filter.clone(); f]}))
                .collect::<Vec<_>>()
        )
    };
    for (g, f, ok) in [
        (5, 5, true),
        (6, 1, false),
        (1, 11, false),
        (1, 10, true),
        (3, 9, false),
    ] {
        let r = post(
            &sim,
            "/crm/v3/objects/contacts/search",
            &json!({"filterGroups": groups(g, f)}),
        )
        .await;
        assert_eq!(r.status == 200, ok, "{g} groups × {f}: {}", r.body);
        if !ok {
            assert_eq!(r.body["category"], "VALIDATION_ERROR");
        }
    }
    let two_sorts = json!({"sorts": [{"propertyName": "email"}, {"propertyName": "createdate"}]});
    assert_eq!(
        post(&sim, "/crm/v3/objects/contacts/search", &two_sorts)
            .await
            .status,
        400
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn fresh_changes_reach_search_only_after_the_index_lag() {
    let sim = sim_with(HubSpotSimConfig {
        search_lag: Duration::from_millis(800),
        ..config()
    })
    .await;
    let id = sim.state().contacts[0].id.to_string();
    sim.mutate(Mutation::UpdateProperties {
        object: ObjectType::Contacts,
        id: id.clone(),
        properties: [("jobtitle".to_owned(), "Chief Lag Officer".to_owned())].into(),
    })
    .expect("edit");
    let query = json!({"filterGroups": [{"filters": [{"propertyName": "jobtitle", "operator": "EQ", "value": "Chief Lag Officer"}]}]});
    let now = post(&sim, "/crm/v3/objects/contacts/search", &query).await;
    assert_eq!(now.body["total"], 0, "not indexed yet");
    assert_eq!(
        get(
            &sim,
            &format!("/crm/v3/objects/contacts/{id}?properties=jobtitle")
        )
        .await
        .body["properties"]["jobtitle"],
        "Chief Lag Officer",
        "GET sees it at once"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    let later = post(&sim, "/crm/v3/objects/contacts/search", &query).await;
    assert_eq!(later.body["total"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn search_has_its_own_per_second_limit_and_no_rate_limit_headers() {
    let sim = sim_with(HubSpotSimConfig {
        search_per_second: 5,
        ..config()
    })
    .await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..8 {
        let r = post(
            &sim,
            "/crm/v3/objects/contacts/search",
            &json!({"limit": 1}),
        )
        .await;
        assert!(r.header("x-hubspot-ratelimit-remaining").is_none());
        assert!(r.header("x-hubspot-ratelimit-max").is_none());
        assert!(r.header("x-hubspot-correlation-id").is_some());
        statuses.push(r.status);
        if r.status == 429 {
            limited = Some(r.body);
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    let body = limited.expect("a 429");
    assert_eq!(body["message"], "You have reached your secondly limit.");
    assert_eq!(body["policyName"], "SECONDLY");
    assert_eq!(body["errorType"], "RATE_LIMIT");
    // The general list endpoint is unaffected and carries headers.
    let list = get(&sim, "/crm/v3/objects/contacts?limit=1").await;
    assert_eq!(list.status, 200);
    assert!(list.header("x-hubspot-ratelimit-remaining").is_some());
    assert_eq!(sim.stats().rate_limited, 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_bulk_import_stamps_many_records_with_one_identical_timestamp() {
    let sim = sim().await;
    let result = sim
        .mutate(Mutation::BulkImport {
            object: ObjectType::Contacts,
            update: 120,
            create: 30,
            properties: Default::default(),
            seed: 5,
        })
        .expect("import");
    assert_eq!(result.ids.len(), 150);
    let r = post(&sim, "/crm/v3/objects/contacts/search", &json!({
        "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "EQ", "value": result.at_ms.to_string()}]}],
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "limit": 200,
    })).await;
    assert_eq!(r.body["total"], 150);
    let stamps: BTreeSet<&str> = r.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|x| x["properties"]["lastmodifieddate"].as_str())
        .collect();
    assert_eq!(stamps.len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn filtering_companies_on_the_contact_stamp_name_is_a_400() {
    let sim = sim().await;
    let wrong = json!({"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "0"}]}]});
    let r = post(&sim, "/crm/v3/objects/companies/search", &wrong).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["category"], "VALIDATION_ERROR");
    let right = json!({"filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}]}],
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}]});
    let r = post(&sim, "/crm/v3/objects/companies/search", &right).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["total"], sim.state().companies.len());
    let bad_sort =
        json!({"sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]});
    assert_eq!(
        post(&sim, "/crm/v3/objects/companies/search", &bad_sort)
            .await
            .status,
        400
    );
    sim.shutdown().await;
}
