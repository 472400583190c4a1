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
