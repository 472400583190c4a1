//! Activities on the Salesforce simulator over HTTP: `POST sobjects/Task|Event` and
//! collections create, SOQL over Task and Event (`WhoId = …`, `LastModifiedDate >`),
//! the `WhoId` lead's `LastActivityDate` (a Date, moved only by closed tasks and
//! events), and the refusals for bad input.

mod salesforce_support;

use salesforce_support::*;
use serde_json::{Value, json};

fn created(answer: &Answer) -> String {
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.body["id"].as_str().expect("an id").to_owned()
}

#[tokio::test]
async fn a_completed_call_task_is_queryable_by_who_and_bumps_the_leads_last_activity_date() {
    let org = spawn_small().await;
    let lead = org.writable_lead();
    let rep = org.active_user(0);
    let before = org
        .query(&format!(
            "SELECT LastActivityDate, SystemModstamp FROM Lead WHERE Id = '{lead}'"
        ))
        .await;
    assert_eq!(before.body["records"][0]["LastActivityDate"], Value::Null);

    let task = created(
        &org.post(
            "sobjects/Task",
            &json!({"WhoId": lead, "OwnerId": rep, "Subject": "Call", "TaskSubtype": "Call",
                    "CallType": "Outbound", "Status": "Completed", "ActivityDate": "2026-01-05"}),
            &[],
        )
        .await,
    );
    assert!(task.starts_with("00T"), "{task}");
    let open = created(
        &org.post(
            "sobjects/Task",
            &json!({"WhoId": lead, "Subject": "Follow up", "ActivityDate": "2026-02-01"}),
            &[],
        )
        .await,
    );

    let r = org
        .query(&format!(
            "SELECT Id, WhoId, OwnerId, Status, IsClosed, TaskSubtype, ActivityDate, CompletedDateTime, LastModifiedDate FROM Task WHERE WhoId = '{lead}' ORDER BY Id"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalSize"], 2);
    let closed = &r.body["records"][0];
    assert_eq!(closed["Id"], task.as_str());
    assert_eq!(closed["OwnerId"], rep.as_str());
    assert_eq!(closed["IsClosed"], true);
    assert!(
        closed["CompletedDateTime"].is_string(),
        "stamped on completion"
    );
    assert_eq!(
        r.body["records"][1]["Status"], "Not Started",
        "the default status"
    );
    assert_eq!(r.body["records"][1]["IsClosed"], false);
    assert_eq!(r.body["records"][1]["Id"], open.as_str());

    // The closed task's due date (not the open one's) is the lead's last activity.
    let after = org
        .query(&format!(
            "SELECT LastActivityDate, SystemModstamp FROM Lead WHERE Id = '{lead}'"
        ))
        .await;
    assert_eq!(after.body["records"][0]["LastActivityDate"], "2026-01-05");
    assert_ne!(
        after.body["records"][0]["SystemModstamp"], before.body["records"][0]["SystemModstamp"],
        "changing LastActivityDate stamps the lead"
    );

    // Incremental reads by modification time.
    let r = org
        .query("SELECT Id FROM Task WHERE LastModifiedDate > 2000-01-01T00:00:00Z ORDER BY SystemModstamp, Id")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalSize"], 2);
}

#[tokio::test]
async fn events_and_collections_create_activities_and_bad_ones_get_the_apis_errors() {
    let org = spawn_small().await;
    let lead = org.writable_lead();
    let event = created(
        &org.post(
            "sobjects/Event",
            &json!({"WhoId": lead, "Subject": "Demo", "StartDateTime": "2026-01-07T15:00:00.000+0000",
                    "DurationInMinutes": 30}),
            &[],
        )
        .await,
    );
    let r = org
        .query(&format!(
            "SELECT Id, ActivityDate FROM Event WHERE WhoId = '{lead}'"
        ))
        .await;
    assert_eq!(r.body["records"][0]["Id"], event.as_str());
    assert_eq!(r.body["records"][0]["ActivityDate"], "2026-01-07");
    let r = org
        .query(&format!(
            "SELECT LastActivityDate FROM Lead WHERE Id = '{lead}'"
        ))
        .await;
    assert_eq!(r.body["records"][0]["LastActivityDate"], "2026-01-07");

    // sObject Collections: one good task, one for an unknown record (HTTP 200, per record).
    let r = org
        .post(
            "composite/sobjects",
            &json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Task"}, "WhoId": lead, "Subject": "Email", "Status": "Completed"},
                {"attributes": {"type": "Task"}, "WhoId": "00Q000000000000AAA", "Subject": "Ghost"}]}),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[0]["success"], true, "{}", r.text);
    assert_eq!(r.body[1]["success"], false);
    let code = r.body[1]["errors"][0]["statusCode"]
        .as_str()
        .unwrap_or_default();
    assert!(
        ["INVALID_CROSS_REFERENCE_KEY", "FIELD_INTEGRITY_EXCEPTION"].contains(&code),
        "an unknown WhoId is refused for that record only: {}",
        r.text
    );

    // An Event without its start is refused whole.
    let r = org
        .post(
            "sobjects/Event",
            &json!({"WhoId": lead, "Subject": "?"}),
            &[],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body[0]["errorCode"], "REQUIRED_FIELD_MISSING");
}
