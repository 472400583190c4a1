//! Response shapes checked against the vendor samples in `shared/specs/salesforce/`
//! (read at test time, never copied): the simulator's answer to the same kind of
//! request must have the sample's keys, value types and datetime format. Record
//! fields named after the samples' fake objects are skipped; structure is compared.

mod salesforce_support;

use std::path::{Path, PathBuf};

use leadroute_sim::salesforce::SalesforceSimConfig;
use salesforce_support::*;
use serde_json::{Value, json};

/// `shared/specs/salesforce` beside the repository (or beside the worktree folder).
fn samples_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("LEADROUTE_SHARED_DIR") {
        return Some(PathBuf::from(dir).join("specs/salesforce"));
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    [repo.join("../shared"), repo.join("../../shared")]
        .into_iter()
        .map(|p| p.join("specs/salesforce"))
        .find(|p| p.is_dir())
}

fn sample(dir: &Path, name: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn is_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 28 && b[4] == b'-' && b[10] == b'T' && s.ends_with("+0000") && s[19..23] == *".000"
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key of `sample` (except `skip`) is in `ours` with the same type; nulls on
/// either side match anything; arrays compare their first elements.
fn same_shape(sample: &Value, ours: &Value, path: &str, skip: &[&str], problems: &mut Vec<String>) {
    match (sample, ours) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(s), Value::Object(o)) => {
            for (k, sv) in s {
                if skip.contains(&k.as_str()) {
                    continue;
                }
                match o.get(k) {
                    Some(ov) => same_shape(sv, ov, &format!("{path}.{k}"), skip, problems),
                    None => problems.push(format!("{path}: missing key '{k}'")),
                }
            }
        }
        (Value::Array(s), Value::Array(o)) => {
            if let (Some(sv), Some(ov)) = (s.first(), o.first()) {
                same_shape(sv, ov, &format!("{path}[0]"), skip, problems);
            }
        }
        (Value::String(s), Value::String(o)) if is_datetime(s) && !is_datetime(o) => {
            problems.push(format!("{path}: '{o}' is not in the '{s}' datetime format"));
        }
        (s, o) if kind(s) != kind(o) => {
            problems.push(format!(
                "{path}: sample is {}, simulator gave {}",
                kind(s),
                kind(o)
            ));
        }
        _ => {}
    }
}

fn check(name: &str, sample: &Value, ours: &Value, skip: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    same_shape(sample, ours, name, skip, &mut problems);
    problems
}

/// Record fields named after the samples' fake objects.
const FAKE_FIELDS: &[&str] = &[
    "Text_Label",
    "Checkbox_Label",
    "Date_Label",
    "DateTime_Label",
    "Picklist_Multiselect_Label",
    "ParentWhizbang__r",
    "Whizbangs__r",
    "CampaignId",
];

#[tokio::test]
async fn responses_have_the_shapes_of_the_vendor_samples() {
    let Some(dir) = samples_dir() else {
        println!(
            "skipping: shared/specs/salesforce not found beside the repository (set LEADROUTE_SHARED_DIR)"
        );
        return;
    };
    let org = spawn(SalesforceSimConfig {
        daily_api_limit: 15_000,
        ..small_config()
    })
    .await;
    let mut problems = Vec::new();
    let c = SalesforceSimConfig::default();

    let token = org
        .send(org.http.post(org.url("/services/oauth2/token")).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", c.refresh_token.as_str()),
        ]))
        .await;
    problems.extend(check(
        "oauth_token_success",
        &sample(&dir, "oauth_token_success.json"),
        &token.body,
        &[],
    ));
    let bad = org
        .send(
            org.http
                .post(org.url("/services/oauth2/token"))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", "dead")]),
        )
        .await;
    assert_eq!(bad.status, 400);
    for name in [
        "oauth_token_error_invalid_grant.json",
        "oauth_refresh_error.json",
    ] {
        let s = sample(&dir, name);
        problems.extend(check(name, &s, &bad.body, &[]));
        assert_eq!(bad.body["error"], s["error"]);
    }
    let expired = org
        .send(
            org.http
                .get(org.url("limits"))
                .bearer_auth("00Dxx!not-a-session"),
        )
        .await;
    assert_eq!(
        expired.body,
        sample(&dir, "error_invalid_session_id.json"),
        "byte-for-byte the same body"
    );
    let invalid_field = org.query("SELECT foo FROM Lead").await;
    problems.extend(check(
        "error_invalid_field",
        &sample(&dir, "error_invalid_field.json"),
        &invalid_field.body,
        &[],
    ));
    assert_eq!(invalid_field.body[0]["errorCode"], "INVALID_FIELD");

    let first = org
        .send(
            org.http
                .get(org.url("query"))
                .query(&[("q", "SELECT Id, SystemModstamp FROM Lead")])
                .header("Sforce-Query-Options", "batchSize=200")
                .bearer_auth(&org.token),
        )
        .await;
    problems.extend(check(
        "query_page_first",
        &sample(&dir, "query_page_first.json"),
        &first.body,
        FAKE_FIELDS,
    ));
    let mut last = first.body.clone();
    while let Some(next) = last["nextRecordsUrl"].as_str().map(str::to_owned) {
        last = org.get(&next).await.body;
    }
    problems.extend(check(
        "query_page_last",
        &sample(&dir, "query_page_last.json"),
        &last,
        FAKE_FIELDS,
    ));
    assert!(last.get("nextRecordsUrl").is_none());
    let empty = org
        .query("SELECT Id FROM Lead WHERE Company = 'no such company'")
        .await;
    problems.extend(check(
        "query_empty",
        &sample(&dir, "query_empty.json"),
        &empty.body,
        &[],
    ));
    assert_eq!(
        empty.body,
        json!({"totalSize": 0, "done": true, "records": []})
    );
    let aggregate = org.query("SELECT COUNT(Id) FROM Lead").await;
    problems.extend(check(
        "query_aggregate",
        &sample(&dir, "query_aggregate.json"),
        &aggregate.body,
        FAKE_FIELDS,
    ));
    assert!(
        aggregate.body["records"][0]["attributes"]
            .get("url")
            .is_none()
    );
    let related = org
        .query("SELECT Id, Name, Parent.Name, SystemModstamp FROM Account WHERE ParentId != null LIMIT 1")
        .await;
    let s = sample(&dir, "query_relationships.json");
    problems.extend(check("query_relationships", &s, &related.body, FAKE_FIELDS));
    problems.extend(check(
        "query_relationships.parent",
        &s["records"][0]["ParentWhizbang__r"],
        &related.body["records"][0]["Parent"],
        &["Text_Label"],
    ));
    let stamp = related.body["records"][0]["SystemModstamp"]
        .as_str()
        .unwrap_or_default();
    assert!(is_datetime(stamp), "{stamp}");

    let now = chrono::Utc::now();
    let window = [
        (
            "start",
            (now - chrono::Duration::days(10))
                .format("%Y-%m-%dT%H:%M:00+00:00")
                .to_string(),
        ),
        ("end", now.format("%Y-%m-%dT%H:%M:00+00:00").to_string()),
    ];
    let updated = org
        .send(
            org.http
                .get(org.url("sobjects/Lead/updated/"))
                .query(&window)
                .bearer_auth(&org.token),
        )
        .await;
    problems.extend(check(
        "get_updated",
        &sample(&dir, "get_updated.json"),
        &updated.body,
        &[],
    ));
    let deleted = org
        .send(
            org.http
                .get(org.url("sobjects/Lead/deleted/"))
                .query(&window)
                .bearer_auth(&org.token),
        )
        .await;
    problems.extend(check(
        "get_deleted",
        &sample(&dir, "get_deleted.json"),
        &deleted.body,
        &[],
    ));

    let limits = org.get("limits").await;
    let s = sample(&dir, "limits.json");
    for (name, entry) in limits.body.as_object().expect("limits object") {
        problems.extend(check(
            &format!("limits.{name}"),
            &s["DailyApiRequests"],
            entry,
            &[],
        ));
    }
    for name in [
        "DailyApiRequests",
        "DailyBulkApiRequests",
        "DailyStreamingApiEvents",
        "DataStorageMB",
    ] {
        assert!(limits.body.get(name).is_some(), "limits lacks {name}");
        problems.extend(check(
            &format!("limits.{name}"),
            &s[name],
            &limits.body[name],
            &[],
        ));
    }

    let lead = org.writable_lead();
    let composite = org
        .post(
            "composite",
            &json!({"allOrNone": true, "compositeRequest": [
                {"method": "PATCH", "url": format!("/services/data/v{VERSION}/sobjects/Lead/{lead}"), "referenceId": "first", "body": {"Company": "Fine"}},
                {"method": "PATCH", "url": format!("/services/data/v{VERSION}/sobjects/Lead/{lead}"), "referenceId": "second", "body": {"NoSuchField__c": 1}},
            ]}),
            &[("Sforce-Auto-Assign", "FALSE")],
        )
        .await;
    problems.extend(check(
        "composite_failure_processing_halted",
        &sample(&dir, "composite_failure_processing_halted.json"),
        &composite.body,
        &[],
    ));
    assert_eq!(
        composite.body["compositeResponse"][0]["body"][0]["errorCode"],
        "PROCESSING_HALTED"
    );
    assert_eq!(
        composite.body["compositeResponse"][1]["body"][0]["errorCode"],
        "INVALID_FIELD"
    );
    assert!(
        problems.is_empty(),
        "shape differences:\n{}",
        problems.join("\n")
    );
}
