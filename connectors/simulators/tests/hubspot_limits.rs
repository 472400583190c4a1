//! Authentication, OAuth refresh, rate limits with HubSpot's headers and 429
//! bodies, and scripted faults (storms, 5xx, slow responses, connection
//! resets, expiring tokens) in the HubSpot simulator.

mod hubspot_support;

use std::time::{Duration, Instant};

use hubspot_support::*;
use leadroute_sim::hubspot::{
    EndpointFamily, Fault, FaultRule, FaultScript, HubSpotSimConfig, Trigger,
};
use serde_json::{Value, json};

async fn refresh(
    sim: &leadroute_sim::hubspot::HubSpotSim,
    version: &str,
    refresh_token: &str,
) -> Reply {
    let c = sim.config();
    send(
        client()
            .post(format!("{}/oauth/{version}/token", sim.base_url()))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", c.client_id.as_str()),
                ("client_secret", c.client_secret.as_str()),
                ("refresh_token", refresh_token),
            ]),
    )
    .await
}

async fn get_with(sim: &leadroute_sim::hubspot::HubSpotSim, token: &str) -> Reply {
    send(
        client()
            .get(format!(
                "{}/crm/v3/objects/contacts?limit=1",
                sim.base_url()
            ))
            .bearer_auth(token),
    )
    .await
}

#[tokio::test]
async fn missing_or_wrong_credentials_get_401_invalid_authentication() {
    let sim = sim().await;
    let none = send(client().get(format!("{}/crm/v3/objects/contacts", sim.base_url()))).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.body["category"], "INVALID_AUTHENTICATION");
    assert_eq!(none.body["status"], "error");
    assert!(none.body["correlationId"].is_string());
    let wrong = get_with(&sim, "pat-na1-not-a-token").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body["category"], "INVALID_AUTHENTICATION");
    sim.shutdown().await;
}

#[tokio::test]
async fn oauth_refresh_issues_access_tokens_that_expire_into_401_expired_authentication() {
    let sim = sim().await;
    let rt = sim.config().refresh_token.clone();
    for version in ["v1", "v3"] {
        let r = refresh(&sim, version, &rt).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["expires_in"], 1800);
        assert_eq!(r.body["token_type"], "bearer");
        assert_eq!(r.body["refresh_token"], rt);
        let token = r.body["access_token"].as_str().expect("token").to_owned();
        assert!(token.len() > 250, "tokens are long and vary");
        let ok = get_with(&sim, &token).await;
        assert_eq!(ok.status, 200);
        assert!(
            ok.header("x-hubspot-ratelimit-daily").is_none(),
            "OAuth calls carry no daily headers"
        );
        assert!(ok.header("x-hubspot-ratelimit-max").is_some());
        sim.set_faults(FaultScript {
            expire_tokens: true,
            ..FaultScript::default()
        });
        let expired = get_with(&sim, &token).await;
        assert_eq!(expired.status, 401);
        assert_eq!(expired.body["category"], "EXPIRED_AUTHENTICATION");
    }
    let bad = refresh(&sim, "v1", "na1-revoked").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["status"], "BAD_REFRESH_TOKEN");
    assert_eq!(sim.stats().oauth_refreshes, 2);

    let short = sim_with(HubSpotSimConfig {
        access_token_ttl: Duration::from_millis(300),
        ..config()
    })
    .await;
    let token = refresh(&short, "v3", &short.config().refresh_token.clone())
        .await
        .body["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(get_with(&short, &token).await.status, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        get_with(&short, &token).await.body["category"],
        "EXPIRED_AUTHENTICATION"
    );
    sim.shutdown().await;
    short.shutdown().await;
}

#[tokio::test]
async fn the_ten_second_window_counts_down_in_headers_and_then_answers_429() {
    let sim = sim_with(HubSpotSimConfig {
        ten_second_limit: 5,
        daily_limit: 1_000,
        ..config()
    })
    .await;
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let r = get(&sim, "/crm/v3/objects/contacts?limit=1").await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-hubspot-ratelimit-interval-milliseconds"),
            Some("10000")
        );
        assert_eq!(r.header("x-hubspot-ratelimit-max"), Some("5"));
        assert_eq!(r.header("x-hubspot-ratelimit-daily"), Some("1000"));
        remaining.push(
            r.header("x-hubspot-ratelimit-remaining")
                .expect("remaining")
                .to_owned(),
        );
    }
    assert_eq!(remaining, ["4", "3", "2", "1", "0"]);
    let limited = get(&sim, "/crm/v3/objects/contacts?limit=1").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["errorType"], "RATE_LIMIT");
    assert_eq!(limited.body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(
        limited.body["message"],
        "You have reached your ten_secondly_rolling limit."
    );
    assert!(limited.body["correlationId"].is_string() && limited.body["requestId"].is_string());
    assert_eq!(
        limited.header("x-hubspot-ratelimit-daily-remaining"),
        Some("995")
    );
    let stats = sim.stats();
    assert_eq!(stats.rate_limited, 1);
    assert_eq!(stats.statuses.get(&429), Some(&1));
    assert_eq!(stats.calls_to("GET /crm/v3/objects/contacts"), 6);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_daily_limit_answers_429_daily() {
    let sim = sim_with(HubSpotSimConfig {
        daily_limit: 3,
        ..config()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(get(&sim, "/crm/v3/owners").await.status, 200);
    }
    let r = get(&sim, "/crm/v3/owners").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["policyName"], "DAILY");
    assert_eq!(r.body["message"], "You have reached your daily limit.");
    assert_eq!(r.header("x-hubspot-ratelimit-daily-remaining"), Some("0"));
    sim.shutdown().await;
}

fn rule(families: Vec<EndpointFamily>, fault: Fault, trigger: Trigger) -> FaultScript {
    FaultScript {
        seed: 11,
        rules: vec![FaultRule {
            families,
            fault,
            trigger,
        }],
        expire_tokens: false,
    }
}

#[tokio::test]
async fn scripted_storms_and_5xx_bursts_hit_only_their_endpoint_family() {
    let sim = sim().await;
    sim.set_faults(rule(
        vec![EndpointFamily::List],
        Fault::RateLimit {
            policy: "TEN_SECONDLY_ROLLING".into(),
        },
        Trigger::NextN { n: 3 },
    ));
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(get(&sim, "/crm/v3/objects/contacts?limit=1").await.status);
        }
        v
    };
    assert_eq!(statuses, [429, 429, 429, 200]);
    assert_eq!(sim.stats().rate_limited, 3);

    for status in [500u16, 502, 503, 504] {
        sim.set_faults(rule(
            vec![EndpointFamily::Owners],
            Fault::ServerError { status },
            Trigger::NextN { n: 1 },
        ));
        assert_eq!(
            get(&sim, "/crm/v3/objects/contacts?limit=1").await.status,
            200,
            "other families unaffected"
        );
        let r = get(&sim, "/crm/v3/owners").await;
        assert_eq!(r.status, status);
        assert_eq!(r.body["status"], "error");
        assert!(r.body["correlationId"].is_string());
        assert_eq!(get(&sim, "/crm/v3/owners").await.status, 200);
    }

    // Probabilistic storms replay identically under the same seed.
    let run = |sim: leadroute_sim::hubspot::HubSpotSim| async move {
        sim.set_faults(rule(
            vec![],
            Fault::RateLimit {
                policy: "TEN_SECONDLY_ROLLING".into(),
            },
            Trigger::Probability { p: 0.5 },
        ));
        let mut v = Vec::new();
        for _ in 0..20 {
            v.push(get(&sim, "/crm/v3/owners").await.status);
        }
        v
    };
    let a = run(sim.clone()).await;
    let b = run(sim.clone()).await;
    assert_eq!(a, b);
    assert!(a.contains(&429) && a.contains(&200));
    sim.shutdown().await;
}

#[tokio::test]
async fn slow_responses_and_connection_resets_reach_the_client_as_such() {
    let sim = sim().await;
    sim.set_faults(rule(
        vec![EndpointFamily::Read],
        Fault::Slow { delay_ms: 300 },
        Trigger::NextN { n: 1 },
    ));
    let id = sim.state().contacts[0].id;
    let started = Instant::now();
    assert_eq!(
        get(&sim, &format!("/crm/v3/objects/contacts/{id}"))
            .await
            .status,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    sim.set_faults(rule(
        vec![EndpointFamily::Search],
        Fault::ConnectionReset,
        Trigger::NextN { n: 1 },
    ));
    let err = client()
        .post(format!("{}/crm/v3/objects/contacts/search", sim.base_url()))
        .bearer_auth(sim.token())
        .json(&json!({}))
        .send()
        .await
        .expect_err("the connection is dropped without a response");
    assert!(!err.is_status() && !err.is_timeout(), "{err:?}");
    assert_eq!(sim.stats().connection_resets, 1);
    let again = post(&sim, "/crm/v3/objects/contacts/search", &json!({})).await;
    assert_eq!(again.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_and_mutations_can_be_driven_over_http_control_endpoints() {
    let sim = sim().await;
    let c = client();
    let script = json!({"seed": 1, "rules": [{"families": ["owners"], "fault": {"kind": "server_error", "status": 503}, "trigger": {"mode": "next_n", "n": 1}}]});
    let r = send(
        c.post(format!("{}/__sim/faults", sim.base_url()))
            .json(&script),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get(&sim, "/crm/v3/owners").await.status, 503);
    let id = sim.state().contacts[0].id.to_string();
    let owner = sim.state().owners[0].id.to_string();
    let m = json!({"kind": "set_owner", "object": "contacts", "id": id, "owner_id": owner});
    let r = send(c.post(format!("{}/__sim/mutate", sim.base_url())).json(&m)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let state = send(c.get(format!("{}/__sim/state", sim.base_url()))).await;
    let contact = state.body["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .find(|x| x["id"].as_u64().map(|n| n.to_string()) == Some(id.clone()))
        .expect("contact")
        .clone();
    assert_eq!(
        contact["properties"]["hubspot_owner_id"],
        Value::String(owner)
    );
    let stats = send(c.get(format!("{}/__sim/stats", sim.base_url()))).await;
    assert_eq!(stats.body["calls"]["GET /crm/v3/owners"], 1);
    let bad = send(
        c.post(format!("{}/__sim/mutate", sim.base_url()))
            .json(&json!({"kind": "nonsense"})),
    )
    .await;
    assert_eq!(bad.status, 400);
    let reset = send(c.post(format!("{}/__sim/reset", sim.base_url()))).await;
    assert_eq!(reset.status, 200);
    assert_eq!(sim.stats().total_calls(), 0);
    sim.shutdown().await;
}
