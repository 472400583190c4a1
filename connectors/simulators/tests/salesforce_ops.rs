//! Limits, faults, replication, describe, Bulk API 2.0, mutations and outbound
//! messages over real HTTP.

mod salesforce_support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use leadroute_sim::salesforce::{FaultScript, Mutation, SalesforceSimConfig};
use parking_lot::Mutex;
use salesforce_support::*;
use serde_json::{Value, json};

#[tokio::test]
async fn an_exhausted_allocation_answers_403_request_limit_exceeded() {
    let org = spawn(SalesforceSimConfig {
        daily_api_limit: 3,
        ..small_config()
    })
    .await;
    for n in 1..=3 {
        let a = org.get("limits").await;
        assert_eq!(a.status, 200);
        assert_eq!(
            a.headers["sforce-limit-info"],
            format!("api-usage={n}/3").as_str()
        );
    }
    let a = org.get("limits").await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.body,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    assert_eq!(org.sim.stats().limit_rejections, 1);
}

#[tokio::test]
async fn the_exhaust_fault_spends_the_allocation_after_n_calls() {
    let org = spawn_small().await;
    org.sim.set_faults(FaultScript {
        exhaust_after_calls: Some(2),
        ..FaultScript::default()
    });
    assert_eq!(org.get("limits").await.status, 200);
    let limits = org.get("limits").await;
    assert_eq!(limits.status, 200);
    assert_eq!(limits.body["DailyApiRequests"]["Max"], 100_000);
    assert_eq!(org.get("limits").await.status, 403);
}

#[tokio::test]
async fn long_running_requests_beyond_the_limit_are_refused() {
    let org = spawn(SalesforceSimConfig {
        long_running_threshold: Duration::from_millis(100),
        max_long_running: 1,
        ..small_config()
    })
    .await;
    org.sim.set_faults(FaultScript {
        path_contains: Some("/limits".into()),
        slow_next: 1,
        slow_ms: 600,
        ..FaultScript::default()
    });
    let slow_url = org.url("limits");
    let http = org.http.clone();
    let token = org.token.clone();
    let slow = tokio::spawn(async move {
        http.get(slow_url)
            .bearer_auth(token)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(250)).await;
    let a = org.query("SELECT Id FROM User LIMIT 1").await;
    assert_eq!(a.status, 403);
    assert!(
        a.body[0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("ConcurrentRequests"))
    );
    assert_eq!(slow.await.expect("joins").expect("answered"), 200);
    assert_eq!(org.query("SELECT Id FROM User LIMIT 1").await.status, 200);
}

#[tokio::test]
async fn platform_errors_and_dropped_connections_are_scriptable() {
    let org = spawn_small().await;
    org.sim.set_faults(FaultScript {
        server_errors_next: 1,
        ..FaultScript::default()
    });
    let a = org.get("limits").await;
    assert_eq!(a.status, 503);
    assert_eq!(a.body[0]["errorCode"], "SERVER_UNAVAILABLE");
    org.sim.set_faults(FaultScript {
        server_errors_next: 1,
        server_error_status: Some(500),
        ..FaultScript::default()
    });
    let a = org.get("limits").await;
    assert_eq!(a.status, 500);
    assert_eq!(a.body[0]["errorCode"], "UNKNOWN_EXCEPTION");
    org.sim.set_faults(FaultScript {
        resets_next: 1,
        ..FaultScript::default()
    });
    let dropped = org
        .http
        .get(org.url("limits"))
        .bearer_auth(&org.token)
        .send()
        .await;
    assert!(
        dropped.is_err(),
        "the connection is dropped without an answer"
    );
    assert_eq!(org.get("limits").await.status, 200);
}

#[tokio::test]
async fn get_updated_and_get_deleted_follow_the_replication_rules() {
    let org = spawn_small().await;
    let state = org.sim.state();
    let lead = org.writable_lead();
    org.sim
        .mutate(Mutation::Edit {
            object: "Lead".into(),
            id: lead.clone(),
            fields: json!({"Company": "Edited Inc."})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        })
        .expect("edit");
    let now = chrono::Utc::now();
    // Whole minutes, as the API truncates them anyway.
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:00+00:00").to_string();
    let start = fmt(now - chrono::Duration::days(14));
    let end = fmt(now + chrono::Duration::minutes(2));
    let q = |kind: &str, s: &str, e: &str| {
        org.send(
            org.http
                .get(org.url(&format!("sobjects/Lead/{kind}/")))
                .query(&[("start", s), ("end", e)])
                .bearer_auth(&org.token),
        )
    };
    let updated = q("updated", &start, &end).await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    let covered = updated.body["latestDateCovered"]
        .as_str()
        .expect("covered")
        .to_owned();
    assert!(
        covered.ends_with(":00.000+0000"),
        "minute precision: {covered}"
    );
    let ids = updated.body["ids"].as_array().expect("ids");
    let expected: Vec<&String> = state
        .leads
        .iter()
        .filter(|l| {
            !l.is_deleted
                && l.id != lead
                && l.system_modstamp.as_str() >= start.replace("+00:00", ".000+0000").as_str()
                && l.system_modstamp < covered
        })
        .map(|l| &l.id)
        .collect();
    assert_eq!(ids.len(), expected.len());
    assert!(
        !ids.contains(&json!(lead)),
        "the current minute is not covered yet"
    );
    let deleted = q("deleted", &start, &end).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    let in_bin = state.leads.iter().filter(|l| l.is_deleted).count();
    assert_eq!(
        deleted.body["deletedRecords"].as_array().map(Vec::len),
        Some(in_bin)
    );
    assert!(deleted.body["deletedRecords"][0]["deletedDate"].is_string());
    assert!(deleted.body["earliestDateAvailable"].is_string());
    let reversed = q("updated", &end, &start).await;
    assert_eq!(reversed.body[0]["errorCode"], "INVALID_REPLICATION_DATE");
    let old = fmt(now - chrono::Duration::days(20));
    assert_eq!(
        q("updated", &old, &end).await.status,
        200,
        "30-day lookback"
    );
    let too_old = q("deleted", &old, &end).await;
    assert_eq!(
        too_old.body[0]["errorCode"], "INVALID_REPLICATION_DATE",
        "15-day lookback"
    );
    let ancient = fmt(now - chrono::Duration::days(31));
    assert_eq!(
        q("updated", &ancient, &end).await.body[0]["errorCode"],
        "INVALID_REPLICATION_DATE"
    );
}

#[tokio::test]
async fn late_visible_commits_surface_after_the_delay_with_their_original_stamp() {
    let org = spawn_small().await;
    let lead = org.writable_lead();
    org.sim.set_faults(FaultScript {
        late_commit_ms: 400,
        ..FaultScript::default()
    });
    let a = org
        .patch(
            &format!("sobjects/Lead/{lead}"),
            &json!({"Company": "Late Commit Ltd"}),
            &[("Sforce-Auto-Assign", "FALSE")],
        )
        .await;
    assert_eq!(a.status, 204);
    let soql = format!("SELECT Company, SystemModstamp FROM Lead WHERE Id = '{lead}'");
    let before = org.query(&soql).await;
    // getUpdated does not claim to cover the open commit's minute yet.
    let now = chrono::Utc::now();
    let window = [
        (
            "start",
            (now - chrono::Duration::days(1))
                .format("%Y-%m-%dT%H:%M:00+00:00")
                .to_string(),
        ),
        (
            "end",
            (now + chrono::Duration::minutes(5))
                .format("%Y-%m-%dT%H:%M:00+00:00")
                .to_string(),
        ),
    ];
    let updated = org
        .send(
            org.http
                .get(org.url("sobjects/Lead/updated/"))
                .query(&window)
                .bearer_auth(&org.token),
        )
        .await;
    let covered = updated.body["latestDateCovered"]
        .as_str()
        .expect("covered")
        .to_owned();
    assert!(covered <= org.sim.write_log()[0].at, "{covered}");
    assert_ne!(before.body["records"][0]["Company"], "Late Commit Ltd");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = org.query(&soql).await;
    assert_eq!(after.body["records"][0]["Company"], "Late Commit Ltd");
    let stamp = org.sim.write_log()[0].at.clone();
    assert_eq!(
        after.body["records"][0]["SystemModstamp"],
        stamp.as_str(),
        "stamped at write time"
    );
}

#[tokio::test]
async fn describe_lists_fields_with_types_and_writability() {
    let org = spawn_small().await;
    let a = org.get("sobjects/Lead/describe").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["keyPrefix"], "00Q");
    let fields = a.body["fields"].as_array().expect("fields");
    let owner = fields
        .iter()
        .find(|f| f["name"] == "OwnerId")
        .expect("OwnerId");
    assert_eq!(owner["type"], "reference");
    assert_eq!(owner["updateable"], true);
    assert_eq!(owner["referenceTo"], json!(["Group", "User"]));
    let stamp = fields
        .iter()
        .find(|f| f["name"] == "SystemModstamp")
        .expect("stamp");
    assert_eq!(stamp["type"], "datetime");
    assert_eq!(stamp["updateable"], false);
    assert_eq!(org.get("sobjects/Nope/describe").await.status, 404);
}

#[tokio::test]
async fn bulk_ingest_updates_owners_without_running_the_assignment_rule() {
    let org = spawn_small().await;
    let lead = org.writable_lead();
    let user = org.active_user(0);
    let inactive = org.inactive_user();
    let job = org
        .post("jobs/ingest", &json!({"object": "Lead", "operation": "update", "contentType": "CSV", "lineEnding": "LF"}), &[])
        .await;
    assert_eq!(job.status, 200, "{}", job.text);
    assert_eq!(job.body["state"], "Open");
    let id = job.body["id"].as_str().expect("job id").to_owned();
    assert!(id.starts_with("750"));
    let csv = format!("Id,OwnerId\n{lead},{user}\n{lead},{inactive}\n");
    let put = org
        .send(
            org.http
                .put(org.url(&format!("jobs/ingest/{id}/batches")))
                .bearer_auth(&org.token)
                .header("content-type", "text/csv")
                .body(csv),
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
    assert_eq!(close.body["state"], "UploadComplete");
    let mut info = Value::Null;
    for _ in 0..100 {
        info = org.get(&format!("jobs/ingest/{id}")).await.body;
        if info["state"] == "JobComplete" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["numberRecordsProcessed"], 2);
    assert_eq!(info["numberRecordsFailed"], 1);
    let ok = org
        .get(&format!("jobs/ingest/{id}/successfulResults/"))
        .await;
    assert!(
        ok.text
            .starts_with("\"sf__Id\",\"sf__Created\",\"Id\",\"OwnerId\""),
        "{}",
        ok.text
    );
    assert!(ok.text.contains(&lead));
    let failed = org.get(&format!("jobs/ingest/{id}/failedResults/")).await;
    assert!(
        failed.text.starts_with("\"sf__Id\",\"sf__Error\""),
        "{}",
        failed.text
    );
    assert!(failed.text.contains("INACTIVE_OWNER_OR_USER"));
    let owner = org
        .sim
        .state()
        .leads
        .into_iter()
        .find(|l| l.id == lead)
        .map(|l| l.owner_id);
    assert_eq!(
        owner.as_deref(),
        Some(user.as_str()),
        "bulk runs no assignment rule"
    );
}

#[tokio::test]
async fn mutations_merge_convert_delete_and_undelete_like_a_user() {
    let org = spawn_small().await;
    let state = org.sim.state();
    let accounts: Vec<_> = state
        .accounts
        .iter()
        .filter(|a| !a.is_deleted)
        .take(2)
        .collect();
    let (master, loser) = (accounts[0].id.clone(), accounts[1].id.clone());
    org.sim
        .mutate(Mutation::Merge {
            object: "Account".into(),
            master_id: master.clone(),
            loser_ids: vec![loser.clone()],
        })
        .expect("merge");
    let merged = org
        .query_all(&format!(
            "SELECT Id, IsDeleted, MasterRecordId FROM Account WHERE Id = '{loser}'"
        ))
        .await;
    assert_eq!(merged.body["records"][0]["IsDeleted"], true);
    assert_eq!(merged.body["records"][0]["MasterRecordId"], master.as_str());
    let orphans = org
        .query(&format!(
            "SELECT COUNT() FROM Contact WHERE AccountId = '{loser}'"
        ))
        .await;
    assert_eq!(orphans.body["totalSize"], 0, "children re-parented");
    let lead = org.writable_lead();
    let converted = org
        .sim
        .mutate(Mutation::Convert {
            lead_id: lead.clone(),
            account_id: None,
            owner_id: None,
        })
        .expect("convert");
    let a = org.query(&format!("SELECT IsConverted, ConvertedAccountId, ConvertedContactId, ConvertedDate FROM Lead WHERE Id = '{lead}'")).await;
    assert_eq!(a.body["records"][0]["IsConverted"], true);
    assert_eq!(
        a.body["records"][0]["ConvertedAccountId"],
        converted.ids[1].as_str()
    );
    let w = org
        .patch(
            &format!("sobjects/Lead/{lead}"),
            &json!({"OwnerId": org.active_user(0)}),
            &[("Sforce-Auto-Assign", "FALSE")],
        )
        .await;
    assert_eq!(w.body[0]["errorCode"], "CANNOT_UPDATE_CONVERTED_LEAD");
    let contact = state
        .contacts
        .iter()
        .find(|c| !c.is_deleted)
        .expect("contact")
        .id
        .clone();
    org.sim
        .mutate(Mutation::Delete {
            object: "Contact".into(),
            id: contact.clone(),
        })
        .expect("delete");
    assert_eq!(
        org.query(&format!(
            "SELECT COUNT() FROM Contact WHERE Id = '{contact}'"
        ))
        .await
        .body["totalSize"],
        0
    );
    org.sim
        .mutate(Mutation::Undelete {
            object: "Contact".into(),
            id: contact.clone(),
        })
        .expect("undelete");
    assert_eq!(
        org.query(&format!(
            "SELECT COUNT() FROM Contact WHERE Id = '{contact}'"
        ))
        .await
        .body["totalSize"],
        1
    );
    let user = org.active_user(0);
    org.sim
        .mutate(Mutation::DeactivateUser { id: user.clone() })
        .expect("deactivate");
    let a = org
        .query(&format!("SELECT IsActive FROM User WHERE Id = '{user}'"))
        .await;
    assert_eq!(a.body["records"][0]["IsActive"], false);
    let stamped = org
        .sim
        .mutate(Mutation::BulkStamp {
            object: "Lead".into(),
            count: 50,
        })
        .expect("bulk stamp");
    let stamp = stamped.stamp.expect("stamp");
    let literal = stamp.replace(".000+0000", "Z");
    let a = org
        .query(&format!(
            "SELECT COUNT() FROM Lead WHERE SystemModstamp = {literal}"
        ))
        .await;
    assert!(
        a.body["totalSize"].as_u64().is_some_and(|n| n >= 50),
        "{}",
        a.text
    );
    let edits = org
        .sim
        .mutate(Mutation::RandomEdits {
            object: "Contact".into(),
            count: 10,
            seed: 7,
        })
        .expect("edits");
    assert_eq!(edits.ids.len(), 10);
    // The same mutations over HTTP.
    let a = org
        .send(
            org.http
                .post(org.url("/__sim/mutate"))
                .json(&json!({"kind": "random_edits", "object": "Lead", "count": 3, "seed": 1})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["ids"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn control_endpoints_report_stats_state_and_the_write_log() {
    let org = spawn_small().await;
    org.query("SELECT Id FROM Lead LIMIT 1").await;
    let stats = org.send(org.http.get(org.url("/__sim/stats"))).await;
    assert_eq!(stats.body["calls"]["GET query"], 1);
    assert_eq!(stats.body["api_used"], 1);
    let state = org.send(org.http.get(org.url("/__sim/state"))).await;
    assert_eq!(state.body["leads"].as_array().map(Vec::len), Some(300));
    let faults = org
        .send(
            org.http
                .post(org.url("/__sim/faults"))
                .json(&json!({"server_errors_next": 1})),
        )
        .await;
    assert_eq!(faults.status, 204);
    assert_eq!(org.get("limits").await.status, 503);
    let log = org.send(org.http.get(org.url("/__sim/write-log"))).await;
    assert_eq!(log.body, json!([]));
    let reset = org.send(org.http.post(org.url("/__sim/reset"))).await;
    assert_eq!(reset.status, 204);
    assert_eq!(org.sim.stats().api_used, 0);
}

/// A tiny outbound-message listener: records envelopes, answers with `ack`.
async fn listener(acks: Vec<bool>) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let plan = Arc::new(Mutex::new(acks.into_iter()));
    let seen_in = Arc::clone(&seen);
    let app = Router::new().route(
        "/outbound",
        post(move |body: String| {
            let seen = Arc::clone(&seen_in);
            let plan = Arc::clone(&plan);
            async move {
                seen.lock().push(body);
                let ack = plan.lock().next().unwrap_or(true);
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>{ack}</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#
                )
            }
        }),
    );
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/outbound", socket.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(socket, app).await;
    });
    (url, seen)
}

#[tokio::test]
async fn outbound_messages_are_retried_until_acknowledged() {
    let (url, seen) = listener(vec![false, true]).await;
    let org = spawn(SalesforceSimConfig {
        outbound_url: Some(url),
        ..small_config()
    })
    .await;
    let lead = org.writable_lead();
    let a = org
        .patch(
            &format!("sobjects/Lead/{lead}"),
            &json!({"Company": "Outbound GmbH"}),
            &[("Sforce-Auto-Assign", "FALSE")],
        )
        .await;
    assert_eq!(a.status, 204);
    for _ in 0..100 {
        if seen.lock().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bodies = seen.lock().clone();
    assert_eq!(bodies.len(), 2, "one refusal, one retry");
    assert_eq!(
        bodies[0], bodies[1],
        "the retry resends the same notifications"
    );
    let body = &bodies[0];
    assert!(body.contains(r#"xmlns="http://soap.sforce.com/2005/09/outbound""#));
    assert!(body.contains(&format!(
        "<OrganizationId>{}</OrganizationId>",
        org.sim.org_id()
    )));
    assert!(body.contains(r#"xsi:type="sf:Lead""#));
    assert!(body.contains(&format!("<sf:Id>{lead}</sf:Id>")));
    assert!(body.contains("<sf:Company>Outbound GmbH</sf:Company>"));
    assert!(
        body.contains("<ActionId>")
            && body.contains("<EnterpriseUrl>")
            && body.contains("<PartnerUrl>")
    );
    let stats = org.sim.stats();
    assert_eq!((stats.outbound_posts, stats.outbound_acks), (2, 1));
}

#[tokio::test]
async fn outbound_faults_duplicate_and_reorder_deliveries() {
    let (url, seen) = listener(vec![]).await;
    let org = spawn(SalesforceSimConfig {
        outbound_url: Some(url),
        ..small_config()
    })
    .await;
    org.sim.set_faults(FaultScript {
        outbound_duplicate_rate: 1.0,
        outbound_reverse_order: true,
        ..FaultScript::default()
    });
    let lead = org.writable_lead();
    let account = org.sim.state().accounts[0].id.clone();
    let body = json!({"records": [
        {"attributes": {"type": "Lead"}, "id": lead, "Company": "Dup AG"},
        {"attributes": {"type": "Account"}, "id": account, "Name": "Dup Holding"},
    ]});
    let a = org
        .patch(
            "composite/sobjects",
            &body,
            &[("Sforce-Auto-Assign", "FALSE")],
        )
        .await;
    assert_eq!(a.body[1]["success"], true, "{}", a.text);
    for _ in 0..100 {
        if seen.lock().len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bodies = seen.lock().clone();
    assert_eq!(
        bodies.len(),
        4,
        "two envelopes and one duplicate of each notification"
    );
    let lead_posts = bodies
        .iter()
        .filter(|b| b.contains(r#"xsi:type="sf:Lead""#))
        .count();
    assert_eq!(lead_posts, 2);
    assert!(
        bodies[0].contains(r#"xsi:type="sf:Account""#),
        "newest first when reordered"
    );
    let notification_id = |b: &str| {
        b.split("<Notification><Id>")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .map(str::to_owned)
    };
    let lead_ids: Vec<_> = bodies
        .iter()
        .filter(|b| b.contains("sf:Lead"))
        .map(|b| notification_id(b))
        .collect();
    assert_eq!(
        lead_ids[0], lead_ids[1],
        "a duplicate keeps its notification id"
    );
}

#[tokio::test]
async fn the_rule_can_be_a_queue_or_inactive() {
    let queue_org = spawn(SalesforceSimConfig {
        lead_assignment_rule: leadroute_sim::salesforce::LeadAssignmentRule::Queue {
            queue_name: "EMEA Leads".into(),
        },
        ..small_config()
    })
    .await;
    let lead = queue_org.writable_lead();
    let a = queue_org
        .patch(
            &format!("sobjects/Lead/{lead}"),
            &json!({"Company": "Any Co"}),
            &[],
        )
        .await;
    assert_eq!(a.status, 204);
    let owner = queue_org
        .sim
        .state()
        .leads
        .into_iter()
        .find(|l| l.id == lead)
        .map(|l| l.owner_id);
    assert_eq!(owner, Some(queue_org.queue("EMEA Leads")));
    let off = spawn(SalesforceSimConfig {
        lead_assignment_rule: leadroute_sim::salesforce::LeadAssignmentRule::Inactive,
        ..small_config()
    })
    .await;
    let lead = off.writable_lead();
    let user = off.active_user(0);
    off.patch(
        &format!("sobjects/Lead/{lead}"),
        &json!({"OwnerId": user}),
        &[],
    )
    .await;
    let owner = off
        .sim
        .state()
        .leads
        .into_iter()
        .find(|l| l.id == lead)
        .map(|l| l.owner_id);
    assert_eq!(owner, Some(user), "no active rule, no rewrite");
}

#[tokio::test]
async fn collections_delete_moves_records_to_the_recycle_bin() {
    let org = spawn_small().await;
    let ids: Vec<String> = org
        .sim
        .state()
        .contacts
        .iter()
        .filter(|c| !c.is_deleted)
        .take(2)
        .map(|c| c.id.clone())
        .collect();
    let a = org
        .send(
            org.http
                .delete(org.url("composite/sobjects"))
                .query(&[("ids", ids.join(",").as_str()), ("allOrNone", "false")])
                .bearer_auth(&org.token),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body[0]["success"], true);
    let again = org
        .send(
            org.http
                .delete(org.url("composite/sobjects"))
                .query(&[("ids", ids[0].as_str())])
                .bearer_auth(&org.token),
        )
        .await;
    assert_eq!(
        again.body[0]["errors"][0]["statusCode"],
        "ENTITY_IS_DELETED"
    );
    let gone = org.get(&format!("sobjects/Contact/{}", ids[0])).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.body[0]["errorCode"], "ENTITY_IS_DELETED");
    let all = org
        .query_all(&format!(
            "SELECT Id, IsDeleted FROM Contact WHERE Id = '{}'",
            ids[1]
        ))
        .await;
    assert_eq!(all.body["records"][0]["IsDeleted"], true);
}

#[tokio::test]
async fn short_pages_expired_locators_and_a_purged_delete_log_are_scriptable() {
    let org = spawn_small().await;
    org.sim.set_faults(FaultScript {
        short_pages: Some(77),
        ..FaultScript::default()
    });
    let first = org.query("SELECT Id FROM Lead").await;
    assert_eq!(
        first.body["records"].as_array().map(Vec::len),
        Some(77),
        "shorter than asked"
    );
    let next = first.body["nextRecordsUrl"]
        .as_str()
        .expect("next")
        .to_owned();
    assert!(next.ends_with("-77"), "{next}");
    org.sim.set_faults(FaultScript {
        expire_query_locators: true,
        ..FaultScript::default()
    });
    let gone = org.get(&next).await;
    assert_eq!(gone.body[0]["errorCode"], "INVALID_QUERY_LOCATOR");
    let now = chrono::Utc::now();
    let window = [
        (
            "start",
            (now - chrono::Duration::days(14))
                .format("%Y-%m-%dT%H:%M:00+00:00")
                .to_string(),
        ),
        ("end", now.format("%Y-%m-%dT%H:%M:00+00:00").to_string()),
    ];
    let request = || {
        org.http
            .get(org.url("sobjects/Lead/deleted/"))
            .query(&window)
            .bearer_auth(&org.token)
    };
    let before = org.send(request()).await;
    org.sim
        .mutate(Mutation::PurgeDeleteLog {
            older_than_secs: 3 * 86_400,
        })
        .expect("purge");
    let after = org.send(request()).await;
    let earliest = |a: &Answer| {
        a.body["earliestDateAvailable"]
            .as_str()
            .expect("earliest")
            .to_owned()
    };
    assert!(
        earliest(&after) > earliest(&before),
        "{} vs {}",
        earliest(&after),
        earliest(&before)
    );
    let three_days_ago = (now - chrono::Duration::days(3))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    assert!(earliest(&after) >= three_days_ago);
    assert!(
        after.body["deletedRecords"].as_array().map(Vec::len)
            <= before.body["deletedRecords"].as_array().map(Vec::len)
    );
}
