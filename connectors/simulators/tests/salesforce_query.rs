//! SOQL over HTTP: field lists and relationships, filters, ordering, COUNT(),
//! paging with batchSize and single-use locators, queryAll and errors.

mod salesforce_support;

use salesforce_support::*;
use serde_json::Value;

#[tokio::test]
async fn a_query_returns_records_with_attributes_and_the_callers_version() {
    let org = spawn_small().await;
    let a = org
        .query("SELECT Id, OwnerId, Owner.Type, Owner.Name, SystemModstamp FROM Lead LIMIT 5")
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["totalSize"], 5);
    assert_eq!(a.body["done"], true);
    let record = &a.body["records"][0];
    let id = record["Id"].as_str().expect("Id");
    assert_eq!(id.len(), 18);
    assert_eq!(
        record["attributes"]["url"],
        format!("/services/data/v{VERSION}/sobjects/Lead/{id}")
    );
    let stamp = record["SystemModstamp"].as_str().expect("stamp");
    assert!(stamp.ends_with(".000+0000"), "{stamp}");
    let owner = &record["Owner"];
    assert!(
        owner["Type"] == "User" || owner["Type"] == "Queue",
        "{owner}"
    );
    assert!(owner["attributes"]["type"].is_string());
    let limit_info = a.headers["sforce-limit-info"].to_str().expect("ascii");
    assert!(limit_info.starts_with("api-usage="), "{limit_info}");
}

#[tokio::test]
async fn paging_follows_next_records_url_with_the_requested_batch_size() {
    let org = spawn_small().await;
    let soql = "SELECT Id, SystemModstamp FROM Lead ORDER BY SystemModstamp, Id";
    let first = org
        .send(
            org.http
                .get(org.url("query"))
                .query(&[("q", soql)])
                .header("Sforce-Query-Options", "batchSize=200")
                .bearer_auth(&org.token),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["done"], false);
    assert_eq!(first.body["records"].as_array().map(Vec::len), Some(200));
    let total = first.body["totalSize"].as_u64().expect("total") as usize;
    let next = first.body["nextRecordsUrl"]
        .as_str()
        .expect("next")
        .to_owned();
    assert!(
        next.starts_with(&format!("/services/data/v{VERSION}/query/01g")),
        "{next}"
    );
    assert!(next.ends_with("-200"), "{next}");
    let mut seen: Vec<Value> = first.body["records"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut url = Some(next.clone());
    while let Some(path) = url {
        let page = org.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.text);
        seen.extend(page.body["records"].as_array().cloned().unwrap_or_default());
        url = page.body["nextRecordsUrl"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), total);
    let stamps: Vec<&str> = seen
        .iter()
        .filter_map(|r| r["SystemModstamp"].as_str())
        .collect();
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "sorted across pages"
    );
    // A locator page can be read only once.
    let again = org.get(&next).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.body[0]["errorCode"], "INVALID_QUERY_LOCATOR");
}

fn ids_of(body: &Value) -> Vec<String> {
    body["records"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x["Id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn filters_combine_in_not_in_like_or_not_and_null() {
    let org = spawn_small().await;
    let state = org.sim.state();
    let live: Vec<_> = state.leads.iter().filter(|l| !l.is_deleted).collect();
    let germany = live
        .iter()
        .filter(|l| l.country.as_deref() == Some("Germany"))
        .count();
    let a = org
        .query("SELECT COUNT() FROM Lead WHERE Country = 'germany'")
        .await;
    assert_eq!(
        a.body["totalSize"], germany,
        "text comparison is case-insensitive"
    );
    assert_eq!(a.body["records"], serde_json::json!([]));
    let in_count = live
        .iter()
        .filter(|l| matches!(l.country.as_deref(), Some("Germany" | "France")))
        .count();
    let a = org
        .query("SELECT COUNT() FROM Lead WHERE Country IN ('Germany', 'France')")
        .await;
    assert_eq!(a.body["totalSize"], in_count);
    let not_in = live
        .iter()
        .filter(|l| !matches!(l.country.as_deref(), Some("Germany" | "France")))
        .count();
    let a = org
        .query("SELECT COUNT() FROM Lead WHERE Country NOT IN ('Germany', 'France')")
        .await;
    assert_eq!(a.body["totalSize"], not_in);
    let like = live
        .iter()
        .filter(|l| {
            l.company
                .as_deref()
                .is_some_and(|c| c.to_lowercase().starts_with("acme"))
        })
        .count();
    let a = org
        .query("SELECT COUNT() FROM Lead WHERE Company LIKE 'acme%'")
        .await;
    assert_eq!(a.body["totalSize"], like);
    let combo = live
        .iter()
        .filter(|l| (l.country.as_deref() == Some("Japan") || l.state.is_none()) && !l.is_converted)
        .count();
    let a = org.query("SELECT COUNT() FROM Lead WHERE (Country = 'Japan' OR State = null) AND NOT IsConverted = true").await;
    assert_eq!(a.body["totalSize"], combo, "{}", a.text);
    let queued = live
        .iter()
        .filter(|l| l.owner_id.starts_with("00G"))
        .count();
    let a = org
        .query("SELECT COUNT() FROM Lead WHERE Owner.Type = 'Queue'")
        .await;
    assert_eq!(a.body["totalSize"], queued);
    let a = org.query("SELECT COUNT(Id) total FROM Lead").await;
    assert_eq!(
        a.body["records"][0]["attributes"]["type"],
        "AggregateResult"
    );
    assert_eq!(a.body["records"][0]["total"], live.len());
}

#[tokio::test]
async fn datetime_literals_in_every_accepted_form_filter_by_system_modstamp() {
    let org = spawn_small().await;
    let state = org.sim.state();
    let mut stamps: Vec<&str> = state
        .leads
        .iter()
        .filter(|l| !l.is_deleted)
        .map(|l| l.system_modstamp.as_str())
        .collect();
    stamps.sort_unstable();
    let pivot = stamps[stamps.len() / 2];
    let expected = stamps.iter().filter(|s| **s >= pivot).count();
    let z = pivot.replace(".000+0000", "Z");
    let plus = pivot.replace(".000+0000", "+00:00");
    let shifted = {
        let t = chrono::DateTime::parse_from_str(pivot, "%Y-%m-%dT%H:%M:%S%.3f%z").expect("stamp");
        t.with_timezone(&chrono::FixedOffset::east_opt(3600).expect("offset"))
            .format("%Y-%m-%dT%H:%M:%S+01:00")
            .to_string()
    };
    for literal in [pivot.to_owned(), z, plus, shifted] {
        let a = org
            .query(&format!(
                "SELECT COUNT() FROM Lead WHERE SystemModstamp >= {literal}"
            ))
            .await;
        assert_eq!(a.body["totalSize"], expected, "{literal}: {}", a.text);
    }
    let a = org.query("SELECT COUNT() FROM Lead WHERE CreatedDate < TODAY AND SystemModstamp = LAST_N_DAYS:400").await;
    assert_eq!(a.status, 200, "{}", a.text);
}

#[tokio::test]
async fn order_by_supports_desc_and_nulls_last_with_id_as_tiebreaker() {
    let org = spawn_small().await;
    let a = org
        .query("SELECT Id, State FROM Lead ORDER BY State DESC NULLS LAST, Id LIMIT 2000")
        .await;
    let states: Vec<Option<String>> = a.body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["State"].as_str().map(str::to_lowercase))
        .collect();
    let first_null = states
        .iter()
        .position(Option::is_none)
        .unwrap_or(states.len());
    assert!(
        states[first_null..].iter().all(Option::is_none),
        "nulls last"
    );
    assert!(
        states[..first_null].windows(2).all(|w| w[0] >= w[1]),
        "descending"
    );
    let a = org
        .query("SELECT Id, State FROM Lead ORDER BY State LIMIT 5")
        .await;
    assert!(
        a.body["records"][0]["State"].is_null(),
        "ASC puts nulls first"
    );
}

#[tokio::test]
async fn errors_come_back_as_the_real_array_body() {
    let org = spawn_small().await;
    for (soql, code) in [
        ("SELECT Id FROM Lead WHERE", "MALFORMED_QUERY"),
        ("SELECT Id, Nope FROM Lead", "INVALID_FIELD"),
        ("SELECT Id FROM Nope", "INVALID_TYPE"),
        ("SELECT Nope.Name FROM Lead", "INVALID_FIELD"),
        (
            "SELECT Id FROM Lead WHERE Company = 'unterminated",
            "MALFORMED_QUERY",
        ),
    ] {
        let a = org.query(soql).await;
        assert_eq!(a.status, 400, "{soql}");
        assert_eq!(a.body[0]["errorCode"], code, "{soql}: {}", a.text);
        assert!(a.body[0]["message"].is_string());
    }
}

#[tokio::test]
async fn query_all_includes_deleted_rows_and_merge_losers() {
    let org = spawn_small().await;
    let state = org.sim.state();
    let deleted = state.leads.iter().filter(|l| l.is_deleted).count();
    assert!(deleted > 0);
    let plain = org
        .query("SELECT COUNT() FROM Lead WHERE IsDeleted = true")
        .await;
    assert_eq!(plain.body["totalSize"], 0);
    let all = org
        .query_all("SELECT Id, MasterRecordId FROM Lead WHERE IsDeleted = true")
        .await;
    assert_eq!(all.body["totalSize"], deleted);
    let losers = org
        .query_all("SELECT Id FROM Lead WHERE IsDeleted = true AND MasterRecordId != null")
        .await;
    let expected = state
        .leads
        .iter()
        .filter(|l| l.is_deleted && l.master_record_id.is_some())
        .count();
    assert_eq!(losers.body["totalSize"], expected);
    let paged = org
        .send(
            org.http
                .get(org.url("queryAll"))
                .query(&[("q", "SELECT Id FROM Lead")])
                .header("Sforce-Query-Options", "batchSize=200")
                .bearer_auth(&org.token),
        )
        .await;
    let next = paged.body["nextRecordsUrl"].as_str().expect("next");
    assert!(
        next.contains("/query/"),
        "queryAll continuations say /query/: {next}"
    );
}

#[tokio::test]
async fn fifteen_and_eighteen_character_ids_select_the_same_record() {
    let org = spawn_small().await;
    let id = org.sim.state().accounts[3].id.clone();
    let a = org
        .query(&format!(
            "SELECT Id FROM Account WHERE Id = '{}'",
            &id[..15]
        ))
        .await;
    assert_eq!(ids_of(&a.body), vec![id.clone()]);
    let upper = id.to_uppercase();
    let a = org
        .query(&format!("SELECT Id FROM Account WHERE Id IN ('{upper}')"))
        .await;
    assert_eq!(
        ids_of(&a.body),
        vec![id.clone()],
        "18-character ids are case-insensitive"
    );
    assert_eq!(
        leadroute_sim::salesforce::ids::to18("001xx000003DGb2"),
        "001xx000003DGb2AAG"
    );
}

#[tokio::test]
async fn relationship_fields_nest_parent_objects_or_null() {
    let org = spawn_small().await;
    let a = org.query("SELECT Id, Name, Parent.Name, Owner.IsActive FROM Account ORDER BY ParentId NULLS LAST LIMIT 1").await;
    let record = &a.body["records"][0];
    assert_eq!(
        record["Parent"]["attributes"]["type"], "Account",
        "{}",
        a.text
    );
    assert!(record["Parent"]["Name"].is_string());
    assert!(record["Owner"]["IsActive"].is_boolean());
    let a = org
        .query("SELECT Id, Parent.Name FROM Account WHERE ParentId = null LIMIT 1")
        .await;
    assert!(a.body["records"][0]["Parent"].is_null());
    let a = org
        .query("SELECT Id, Account.Name, AccountId FROM Contact WHERE AccountId != null LIMIT 1")
        .await;
    assert!(
        a.body["records"][0]["Account"]["Name"].is_string(),
        "{}",
        a.text
    );
}

#[tokio::test]
async fn query_locators_expire_when_idle() {
    let org = spawn(leadroute_sim::salesforce::SalesforceSimConfig {
        query_locator_ttl: std::time::Duration::from_millis(200),
        ..small_config()
    })
    .await;
    let first = org
        .send(
            org.http
                .get(org.url("query"))
                .query(&[("q", "SELECT Id FROM Lead")])
                .header("Sforce-Query-Options", "batchSize=200")
                .bearer_auth(&org.token),
        )
        .await;
    let next = first.body["nextRecordsUrl"]
        .as_str()
        .expect("next")
        .to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let a = org.get(&next).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body[0]["errorCode"], "INVALID_QUERY_LOCATOR");
}

#[tokio::test]
async fn an_over_long_query_url_is_refused_with_414() {
    let org = spawn_small().await;
    let ids: Vec<String> = (0..1_000).map(|n| format!("'00Q8d{n:010}'")).collect();
    let soql = format!("SELECT Id FROM Lead WHERE Id IN ({})", ids.join(","));
    let a = org.query(&soql).await;
    assert_eq!(a.status, 414);
}
