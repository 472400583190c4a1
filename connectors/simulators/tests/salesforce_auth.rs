//! OAuth flows and sessions: JWT bearer verification (signature, iss, sub, aud, exp),
//! refresh tokens with rotation, client credentials, session expiry, and the
//! unauthenticated versions list.

mod salesforce_support;

use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use leadroute_sim::salesforce::{FaultScript, SalesforceSimConfig};
use salesforce_support::*;
use serde_json::json;

fn assertion(key_file: &str, iss: &str, sub: &str, aud: &str, exp_in: i64) -> String {
    let key = EncodingKey::from_rsa_pem(fixture(key_file).as_bytes()).expect("test key");
    let exp = chrono::Utc::now().timestamp() + exp_in;
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &json!({"iss": iss, "sub": sub, "aud": aud, "exp": exp}),
        &key,
    )
    .expect("signs")
}

async fn token_request(org: &Org, form: &[(&str, &str)]) -> Answer {
    org.send(org.http.post(org.url("/services/oauth2/token")).form(form))
        .await
}

const GOOD_KEY: &str = "salesforce_jwt_TEST_ONLY_private_key.pem";
const OTHER_KEY: &str = "salesforce_jwt_TEST_ONLY_other_private_key.pem";
const JWT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

#[tokio::test]
async fn a_well_signed_jwt_assertion_gets_a_working_session() {
    let org = spawn_small().await;
    let config = SalesforceSimConfig::default();
    let jwt = assertion(
        GOOD_KEY,
        &config.client_id,
        &config.username,
        "https://login.salesforce.com",
        120,
    );
    let a = token_request(&org, &[("grant_type", JWT), ("assertion", &jwt)]).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["instance_url"], org.sim.base_url());
    assert_eq!(a.body["token_type"], "Bearer");
    assert!(
        a.body["issued_at"]
            .as_str()
            .is_some_and(|s| s.parse::<i64>().is_ok())
    );
    assert!(
        a.body.get("refresh_token").is_none(),
        "JWT flow has no refresh token"
    );
    assert!(a.body.get("expires_in").is_none());
    let state = org.sim.state();
    let id = a.body["id"].as_str().expect("identity url");
    assert!(
        id.ends_with(&format!("/{}/{}", state.org_id, state.api_user_id)),
        "{id}"
    );
    let token = a.body["access_token"].as_str().expect("token");
    let q = org
        .send(
            org.http
                .get(org.url("query"))
                .query(&[("q", "SELECT Id FROM User LIMIT 1")])
                .bearer_auth(token),
        )
        .await;
    assert_eq!(q.status, 200, "{}", q.text);
}

#[tokio::test]
async fn jwt_assertions_with_a_wrong_key_audience_issuer_user_or_expiry_are_refused() {
    let org = spawn_small().await;
    let c = SalesforceSimConfig::default();
    let login = "https://login.salesforce.com";
    let cases = [
        (
            assertion(OTHER_KEY, &c.client_id, &c.username, login, 120),
            "invalid_grant",
        ),
        (
            assertion(
                GOOD_KEY,
                &c.client_id,
                &c.username,
                "https://evil.example",
                120,
            ),
            "invalid_grant",
        ),
        (
            assertion(GOOD_KEY, "someone-else", &c.username, login, 120),
            "invalid_client_id",
        ),
        (
            assertion(GOOD_KEY, &c.client_id, "nobody@example.com", login, 120),
            "invalid_grant",
        ),
        (
            assertion(GOOD_KEY, &c.client_id, &c.username, login, -30),
            "invalid_grant",
        ),
        (
            assertion(GOOD_KEY, &c.client_id, &c.username, login, 3_600),
            "invalid_grant",
        ),
    ];
    for (jwt, error) in cases {
        let a = token_request(&org, &[("grant_type", JWT), ("assertion", &jwt)]).await;
        assert_eq!(a.status, 400, "{}", a.text);
        assert_eq!(a.body["error"], error, "{}", a.text);
        assert!(a.body["error_description"].is_string());
    }
    // The sandbox audience is accepted too.
    let jwt = assertion(
        GOOD_KEY,
        &c.client_id,
        &c.username,
        "https://test.salesforce.com",
        60,
    );
    let a = token_request(&org, &[("grant_type", JWT), ("assertion", &jwt)]).await;
    assert_eq!(a.status, 200, "{}", a.text);
}

#[tokio::test]
async fn rotating_refresh_tokens_kill_the_old_one() {
    let org = spawn(SalesforceSimConfig {
        rotate_refresh_tokens: true,
        ..small_config()
    })
    .await;
    let c = SalesforceSimConfig::default();
    let first = token_request(
        &org,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &c.refresh_token),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
        ],
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let next = first.body["refresh_token"]
        .as_str()
        .expect("rotated token")
        .to_owned();
    assert_ne!(next, c.refresh_token);
    let reuse = token_request(
        &org,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &c.refresh_token),
        ],
    )
    .await;
    assert_eq!(reuse.status, 400);
    assert_eq!(reuse.body["error"], "invalid_grant");
    let second = token_request(
        &org,
        &[("grant_type", "refresh_token"), ("refresh_token", &next)],
    )
    .await;
    assert_eq!(second.status, 200, "{}", second.text);
}

#[tokio::test]
async fn client_credentials_work_in_the_form_or_http_basic() {
    let org = spawn_small().await;
    let c = SalesforceSimConfig::default();
    let form = token_request(
        &org,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
        ],
    )
    .await;
    assert_eq!(form.status, 200, "{}", form.text);
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", c.client_id, c.client_secret));
    let a = org
        .send(
            org.http
                .post(org.url("/services/oauth2/token"))
                .header("authorization", format!("Basic {basic}"))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let wrong = token_request(
        &org,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.client_id),
            ("client_secret", "nope"),
        ],
    )
    .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.body["error"], "invalid_client");
}

#[tokio::test]
async fn an_idle_session_expires_with_invalid_session_id() {
    let org = spawn(SalesforceSimConfig {
        session_ttl: Duration::from_millis(300),
        ..small_config()
    })
    .await;
    assert_eq!(org.get("limits").await.status, 200);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let a = org.get("limits").await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.body,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
}

#[tokio::test]
async fn the_expire_sessions_fault_kills_every_session_at_once() {
    let org = spawn_small().await;
    assert_eq!(org.get("limits").await.status, 200);
    org.sim.set_faults(FaultScript {
        expire_sessions: true,
        ..FaultScript::default()
    });
    assert_eq!(org.get("limits").await.status, 401);
    assert_eq!(org.sim.stats().auth_failures, 1);
}

#[tokio::test]
async fn the_versions_list_needs_no_session_and_old_versions_are_gone() {
    let org = spawn_small().await;
    let a = org.send(org.http.get(org.url("/services/data/"))).await;
    assert_eq!(a.status, 200);
    assert!(a.headers.get("sforce-limit-info").is_none());
    let versions = a.body.as_array().expect("array");
    assert!(
        versions
            .iter()
            .any(|v| v["version"] == "64.0" && v["label"] == "Summer '25")
    );
    assert!(
        versions
            .iter()
            .any(|v| v["version"] == "62.0" && v["url"] == "/services/data/v62.0")
    );
    assert_eq!(
        org.sim.stats().api_used,
        0,
        "the versions list is not counted"
    );
    let gone = org
        .send(
            org.http
                .get(format!("{}/services/data/v30.0/limits", org.sim.base_url()))
                .bearer_auth(&org.token),
        )
        .await;
    assert_eq!(gone.status, 410);
    let v31 = org
        .send(
            org.http
                .get(format!("{}/services/data/v31.0/query", org.sim.base_url()))
                .query(&[("q", "SELECT Id FROM Account LIMIT 1")])
                .bearer_auth(&org.token),
        )
        .await;
    assert_eq!(v31.status, 200);
    let url = v31.body["records"][0]["attributes"]["url"]
        .as_str()
        .expect("url");
    assert!(url.starts_with("/services/data/v31.0/"), "{url}");
}
