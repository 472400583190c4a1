//! Requests exactly as the vendors' own client libraries send them (found by driving
//! the simulator with simple-salesforce; see `vendor-check/check.py`).

mod salesforce_support;

use std::time::Duration;

use salesforce_support::*;
use serde_json::{Value, json};

#[tokio::test]
async fn bulk_result_paths_match_in_any_case_as_simple_salesforce_spells_them() {
    let org = spawn_small().await;
    let lead = org.writable_lead();
    let user = org.active_user(0);
    let job = org
        .post(
            "jobs/ingest",
            &json!({"object": "Lead", "operation": "update", "contentType": "CSV", "lineEnding": "LF"}),
            &[],
        )
        .await;
    assert_eq!(job.status, 200, "{}", job.text);
    let id = job.body["id"].as_str().expect("job id").to_owned();
    let put = org
        .send(
            org.http
                .put(org.url(&format!("jobs/ingest/{id}/batches")))
                .bearer_auth(&org.token)
                .header("content-type", "text/csv")
                .body(format!("Id,OwnerId\n{lead},{user}\n")),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.text);
    let close = org
        .patch(
            &format!("jobs/ingest/{id}"),
            &json!({"state": "UploadComplete"}),
            &[],
        )
        .await;
    assert_eq!(close.status, 200, "{}", close.text);
    let mut info = Value::Null;
    for _ in 0..100 {
        info = org.get(&format!("jobs/ingest/{id}")).await.body;
        if info["state"] == "JobComplete" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(info["state"], "JobComplete");

    // simple-salesforce asks for `unprocessedRecords`; the docs say `unprocessedrecords`.
    for path in [
        "unprocessedRecords",
        "unprocessedrecords",
        "successfulresults",
    ] {
        let answer = org.get(&format!("jobs/ingest/{id}/{path}/")).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
    }
    let ok = org
        .get(&format!("jobs/ingest/{id}/SuccessfulResults/"))
        .await;
    assert!(ok.text.contains(&lead), "{}", ok.text);
    assert_eq!(
        org.get(&format!("jobs/ingest/{id}/someResults/"))
            .await
            .status,
        404
    );
}
