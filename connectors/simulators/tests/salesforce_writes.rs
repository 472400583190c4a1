//! Writes as a real org answers them: sObject Collections with per-record errors and
//! allOrNone, single-record PATCH with If-Unmodified-Since, the lead assignment rule
//! with and without `Sforce-Auto-Assign: FALSE`, `/composite` and `/composite/batch`,
//! and collections retrieve.

mod salesforce_support;

use leadroute_sim::salesforce::{FaultScript, Mutation, ids};
use salesforce_support::*;
use serde_json::{Value, json};

const NO_ASSIGN: &[(&str, &str)] = &[("Sforce-Auto-Assign", "FALSE")];

fn lead_owner(org: &Org, id: &str) -> String {
    org.sim
        .state()
        .leads
        .into_iter()
        .find(|l| l.id == id)
        .map(|l| l.owner_id)
        .expect("lead exists")
}

#[tokio::test]
async fn the_assignment_rule_overwrites_the_owner_unless_the_header_says_false() {
    let org = spawn_small().await;
    let lead = org.writable_lead();
    let target = org.active_user(0);
    let body = json!({"OwnerId": target});
    // With the header: the owner we wrote survives.
    let a = org
        .patch(
            &format!("sobjects/Lead/{lead}"),
            &body,
            &[("Sforce-Auto-Assign", "false")],
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert_eq!(lead_owner(&org, &lead), target);
    // Without it: the rule runs on the update and picks its own owner.
    let a = org
        .patch(&format!("sobjects/Lead/{lead}"), &body, &[])
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    let log = org.sim.write_log();
    let rewritten = log
        .iter()
        .rev()
        .find(|e| e.id == lead && e.source == "assignment_rule")
        .expect("the rule's rewrite is logged");
    assert_eq!(rewritten.old, json!(target));
    assert_eq!(
        lead_owner(&org, &lead),
        rewritten.new.as_str().expect("owner")
    );
    assert_ne!(lead_owner(&org, &lead), target);
}

#[tokio::test]
async fn collections_without_the_header_also_run_the_rule() {
    let org = spawn_small().await;
    let lead = org.writable_lead();
    let target = org.active_user(1);
    let body = json!({"allOrNone": false, "records": [{"attributes": {"type": "Lead"}, "id": lead, "OwnerId": target}]});
    let a = org.patch("composite/sobjects", &body, NO_ASSIGN).await;
    assert_eq!(a.body, json!([{"id": lead, "success": true, "errors": []}]));
    assert_eq!(lead_owner(&org, &lead), target);
    let a = org.patch("composite/sobjects", &body, &[]).await;
    assert_eq!(a.body[0]["success"], true);
    assert_ne!(
        lead_owner(&org, &lead),
        target,
        "the rule rewrote the owner"
    );
}

#[tokio::test]
async fn collections_report_real_per_record_errors_by_position() {
    let org = spawn_small().await;
    let state = org.sim.state();
    let lead = org.writable_lead();
    let inactive = org.inactive_user();
    let queue = org.queue("Lead Intake");
    let account = state
        .accounts
        .iter()
        .find(|a| !a.is_deleted)
        .expect("account")
        .id
        .clone();
    let converted = state
        .leads
        .iter()
        .find(|l| l.is_converted && !l.is_deleted)
        .expect("converted")
        .id
        .clone();
    let deleted = state
        .leads
        .iter()
        .find(|l| l.is_deleted)
        .expect("deleted lead")
        .id
        .clone();
    let locked = state
        .leads
        .iter()
        .find(|l| l.routing_locked && !l.is_converted && !l.is_deleted);
    let missing_user = ids::to18("0058d0000ZZZZZZ");
    let user = org.active_user(0);
    let mut records = vec![
        json!({"attributes": {"type": "Lead"}, "id": lead, "OwnerId": inactive}),
        json!({"attributes": {"type": "Lead"}, "id": lead, "OwnerId": missing_user}),
        json!({"attributes": {"type": "Lead"}, "id": converted, "OwnerId": user}),
        json!({"attributes": {"type": "Lead"}, "id": deleted, "OwnerId": user}),
        json!({"attributes": {"type": "Lead"}, "id": lead, "ownerid": user}),
        json!({"attributes": {"type": "Account"}, "id": account, "OwnerId": queue}),
    ];
    if let Some(locked) = locked {
        records.push(json!({"attributes": {"type": "Account"}, "id": account, "OwnerId": user}));
        records.push(
            json!({"attributes": {"type": "Lead"}, "id": locked.id, "OwnerId": org.active_user(2)}),
        );
    }
    let a = org
        .patch(
            "composite/sobjects",
            &json!({"records": records}),
            NO_ASSIGN,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let codes: Vec<Value> = a
        .body
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["errors"][0]["statusCode"].clone())
        .collect();
    assert_eq!(codes[0], "INACTIVE_OWNER_OR_USER");
    assert!(
        a.body[0]["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&inactive[..15]))
    );
    assert_eq!(codes[1], "INVALID_CROSS_REFERENCE_KEY");
    assert_eq!(codes[2], "CANNOT_UPDATE_CONVERTED_LEAD");
    assert_eq!(codes[3], "ENTITY_IS_DELETED");
    assert_eq!(
        a.body[4],
        json!({"id": lead, "success": true, "errors": []}),
        "field names are case-insensitive"
    );
    assert_eq!(codes[5], "FIELD_INTEGRITY_EXCEPTION");
    if locked.is_some() {
        assert_eq!(a.body[6]["success"], true);
        assert_eq!(codes[7], "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    }
    assert_eq!(a.body[0]["id"], lead, "failed updates still carry their id");
}

#[tokio::test]
async fn all_or_none_rolls_back_innocent_records() {
    let org = spawn_small().await;
    let lead = org.writable_lead();
    let before = lead_owner(&org, &lead);
    let user = org.active_user(3);
    let inactive = org.inactive_user();
    let account = org.sim.state().accounts[0].id.clone();
    let body = json!({"allOrNone": true, "records": [
        {"attributes": {"type": "Lead"}, "id": lead, "OwnerId": user},
        {"attributes": {"type": "Account"}, "id": account, "OwnerId": inactive},
    ]});
    let a = org.patch("composite/sobjects", &body, NO_ASSIGN).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.body[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        a.body[1]["errors"][0]["statusCode"],
        "INACTIVE_OWNER_OR_USER"
    );
    assert_eq!(lead_owner(&org, &lead), before, "rolled back");
    assert!(org.sim.write_log().is_empty(), "nothing stays logged");
}

#[tokio::test]
async fn malformed_and_oversized_collections_are_top_level_400s() {
    let org = spawn_small().await;
    let lead = org.writable_lead();
    let one = json!({"attributes": {"type": "Lead"}, "id": lead, "OwnerId": org.active_user(0)});
    let big = json!({"records": vec![one.clone(); 201]});
    let a = org.patch("composite/sobjects", &big, NO_ASSIGN).await;
    assert_eq!(a.status, 400);
    assert!(a.body[0]["errorCode"].is_string() && a.body[0]["message"].is_string());
    let untyped = json!({"records": [{"id": lead, "OwnerId": org.active_user(0)}]});
    assert_eq!(
        org.patch("composite/sobjects", &untyped, NO_ASSIGN)
            .await
            .status,
        400
    );
    let account = org.sim.state().accounts[0].id.clone();
    let acc = json!({"attributes": {"type": "Account"}, "id": account, "Name": "Chunky"});
    let alternating: Vec<Value> = (0..11).flat_map(|_| [one.clone(), acc.clone()]).collect();
    let a = org
        .patch(
            "composite/sobjects",
            &json!({"records": alternating}),
            NO_ASSIGN,
        )
        .await;
    assert_eq!(a.status, 400, "more than 10 type chunks");
}

#[tokio::test]
async fn rewriting_the_same_owner_still_moves_system_modstamp() {
    let org = spawn_small().await;
    let lead = org.writable_lead();
    let owner = lead_owner(&org, &lead);
    let stamp_before = org
        .sim
        .state()
        .leads
        .iter()
        .find(|l| l.id == lead)
        .map(|l| l.system_modstamp.clone());
    let a = org
        .patch(
            &format!("sobjects/Lead/{}", &lead[..15]),
            &json!({"OwnerId": owner}),
            NO_ASSIGN,
        )
        .await;
    assert_eq!(a.status, 204, "15-character ids work in URLs: {}", a.text);
    let stamp_after = org
        .sim
        .state()
        .leads
        .iter()
        .find(|l| l.id == lead)
        .map(|l| l.system_modstamp.clone());
    assert_ne!(stamp_before, stamp_after);
    let log = org.sim.write_log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].field, "OwnerId");
    assert_eq!(log[0].old, log[0].new);
}

#[tokio::test]
async fn single_patch_honours_if_unmodified_since_and_reports_deleted_records() {
    let org = spawn_small().await;
    let lead = org.writable_lead();
    let user = org.active_user(0);
    let past = "Mon, 01 Jan 2001 00:00:00 GMT";
    let a = org
        .patch(
            &format!("sobjects/Lead/{lead}"),
            &json!({"OwnerId": user}),
            &[
                ("Sforce-Auto-Assign", "FALSE"),
                ("If-Unmodified-Since", past),
            ],
        )
        .await;
    assert_eq!(a.status, 412, "{}", a.text);
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc2822();
    let a = org
        .patch(
            &format!("sobjects/Lead/{lead}"),
            &json!({"OwnerId": user}),
            &[
                ("Sforce-Auto-Assign", "FALSE"),
                ("If-Unmodified-Since", &future),
            ],
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    org.sim
        .mutate(Mutation::Delete {
            object: "Lead".into(),
            id: lead.clone(),
        })
        .expect("delete");
    let a = org
        .patch(
            &format!("sobjects/Lead/{lead}"),
            &json!({"OwnerId": user}),
            NO_ASSIGN,
        )
        .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.body[0]["errorCode"], "ENTITY_IS_DELETED");
    let missing = ids::to18("00Q8d0000ZZZZZZ");
    let a = org
        .patch(
            &format!("sobjects/Lead/{missing}"),
            &json!({"OwnerId": user}),
            NO_ASSIGN,
        )
        .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.body[0]["errorCode"], "NOT_FOUND");
    let a = org
        .patch(
            &format!("sobjects/Lead/{lead}"),
            &json!({"Bogus": 1}),
            NO_ASSIGN,
        )
        .await;
    assert_eq!(a.status, 404, "deleted wins over bad fields");
}

#[tokio::test]
async fn row_locks_are_scriptable_per_record() {
    let org = spawn_small().await;
    let lead = org.writable_lead();
    org.sim.set_faults(FaultScript {
        lock_row_next: 1,
        ..FaultScript::default()
    });
    let body = json!({"records": [
        {"attributes": {"type": "Lead"}, "id": lead, "OwnerId": org.active_user(0)},
        {"attributes": {"type": "Lead"}, "id": lead, "OwnerId": org.active_user(1)},
    ]});
    let a = org.patch("composite/sobjects", &body, NO_ASSIGN).await;
    assert_eq!(a.body[0]["errors"][0]["statusCode"], "UNABLE_TO_LOCK_ROW");
    assert_eq!(a.body[1]["success"], true);
}

#[tokio::test]
async fn composite_all_or_none_halts_with_processing_halted_in_one_call() {
    let org = spawn_small().await;
    let lead = org.writable_lead();
    let before = lead_owner(&org, &lead);
    let used_before = org.sim.stats().api_used;
    let body = json!({"allOrNone": true, "compositeRequest": [
        {"method": "PATCH", "url": format!("/services/data/v{VERSION}/sobjects/Lead/{lead}"), "referenceId": "ok",
         "body": {"OwnerId": org.active_user(0)}, "httpHeaders": {"Sforce-Auto-Assign": "FALSE"}},
        {"method": "PATCH", "url": format!("/services/data/v{VERSION}/sobjects/Lead/{lead}"), "referenceId": "bad",
         "body": {"OwnerId": org.inactive_user()}, "httpHeaders": {"Sforce-Auto-Assign": "FALSE"}},
    ]});
    let a = org.post("composite", &body, &[]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let responses = a.body["compositeResponse"].as_array().expect("responses");
    assert_eq!(responses[0]["httpStatusCode"], 400);
    assert_eq!(responses[0]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(
        responses[1]["body"][0]["errorCode"],
        "INACTIVE_OWNER_OR_USER"
    );
    assert_eq!(responses[1]["referenceId"], "bad");
    assert_eq!(lead_owner(&org, &lead), before);
    assert_eq!(
        org.sim.stats().api_used - used_before,
        1,
        "/composite is one API call"
    );
}

#[tokio::test]
async fn composite_subrequests_honour_their_own_headers_and_references() {
    let org = spawn_small().await;
    let lead = org.writable_lead();
    let target = org.active_user(0);
    let body = json!({"compositeRequest": [
        {"method": "GET", "url": format!("/services/data/v{VERSION}/query?q=SELECT+Id+FROM+User+WHERE+Id+%3D+%27{target}%27"), "referenceId": "u"},
        {"method": "PATCH", "url": format!("/services/data/v{VERSION}/sobjects/Lead/{lead}"), "referenceId": "w",
         "body": {"OwnerId": "@{u.records[0].Id}"}, "httpHeaders": {"Sforce-Auto-Assign": "FALSE"}},
    ]});
    let a = org.post("composite", &body, &[]).await;
    assert_eq!(
        a.body["compositeResponse"][1]["httpStatusCode"], 204,
        "{}",
        a.text
    );
    assert_eq!(lead_owner(&org, &lead), target);
}

#[tokio::test]
async fn composite_batch_counts_every_subrequest() {
    let org = spawn_small().await;
    let lead = org.writable_lead();
    let used_before = org.sim.stats().api_used;
    let body = json!({"haltOnError": true, "batchRequests": [
        {"method": "PATCH", "url": format!("v{VERSION}/sobjects/Lead/{lead}"), "richInput": {"OwnerId": org.inactive_user()}},
        {"method": "GET", "url": format!("v{VERSION}/limits")},
        {"method": "GET", "url": format!("v{VERSION}/limits")},
    ]});
    let a = org.post("composite/batch", &body, NO_ASSIGN).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["hasErrors"], true);
    assert_eq!(a.body["results"][0]["statusCode"], 400);
    assert_eq!(a.body["results"][1]["statusCode"], 412);
    assert_eq!(
        a.body["results"][1]["result"][0]["errorCode"],
        "BATCH_PROCESSING_HALTED"
    );
    assert_eq!(org.sim.stats().api_used - used_before, 3);
}

#[tokio::test]
async fn retrieve_returns_null_for_missing_and_deleted_ids() {
    let org = spawn_small().await;
    let state = org.sim.state();
    let live = state
        .leads
        .iter()
        .find(|l| !l.is_deleted)
        .expect("live")
        .id
        .clone();
    let deleted = state
        .leads
        .iter()
        .find(|l| l.is_deleted)
        .expect("deleted")
        .id
        .clone();
    let a = org
        .post("composite/sobjects/Lead", &json!({"ids": [live, deleted, "00Q8d0000ZZZZZZ", "junk"], "fields": ["Id", "ownerid"]}), &[])
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body[0]["Id"], live);
    assert!(a.body[0]["OwnerId"].is_string());
    assert_eq!(a.body[1], Value::Null);
    assert_eq!(a.body[2], Value::Null);
    assert_eq!(a.body[3], Value::Null);
    let bad = org
        .get(&format!(
            "composite/sobjects/Lead?ids={live}&fields=Id,Nope"
        ))
        .await;
    assert_eq!(bad.status, 400);
    let get = org
        .get(&format!(
            "composite/sobjects/Lead?ids={live}&fields=Id,OwnerId"
        ))
        .await;
    assert_eq!(get.body[0]["Id"], live);
}

#[tokio::test]
async fn creates_run_the_assignment_rule_too() {
    let org = spawn_small().await;
    let user = org.active_user(0);
    let body = json!({"LastName": "Nguyen", "Company": "Zorg Labs", "Country": "Atlantis", "OwnerId": user});
    let a = org.post("sobjects/Lead", &body, &[]).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        lead_owner(&org, &id),
        org.queue("Lead Intake"),
        "no user in Atlantis: fallback queue"
    );
    let a = org.post("sobjects/Lead", &body, NO_ASSIGN).await;
    let id = a.body["id"].as_str().expect("id").to_owned();
    assert_eq!(lead_owner(&org, &id), user);
    let missing = org
        .post("sobjects/Lead", &json!({"LastName": "X"}), NO_ASSIGN)
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body[0]["errorCode"], "REQUIRED_FIELD_MISSING");
}

#[tokio::test]
async fn composite_subrequests_can_be_conditional() {
    let org = spawn_small().await;
    let lead = org.writable_lead();
    let body = json!({"compositeRequest": [
        {"method": "PATCH", "url": format!("/services/data/v{VERSION}/sobjects/Lead/{lead}"), "referenceId": "stale",
         "body": {"OwnerId": org.active_user(0)},
         "httpHeaders": {"Sforce-Auto-Assign": "FALSE", "If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}},
    ]});
    let a = org.post("composite", &body, &[]).await;
    assert_eq!(
        a.body["compositeResponse"][0]["httpStatusCode"], 412,
        "{}",
        a.text
    );
    assert!(org.sim.write_log().is_empty());
}
