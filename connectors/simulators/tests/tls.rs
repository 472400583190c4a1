//! Both simulators over real loopback HTTPS: a client trusting `ca_pem()` reads
//! data, a client without it fails on the certificate, URLs the simulators hand out
//! (paging links, the OAuth `instance_url`) say https, and connection-reset faults
//! still tear the connection down.

use std::error::Error as _;
use std::time::Duration;

use leadroute_sim::hubspot::{
    self, EndpointFamily, Fault, FaultRule, FaultScript as HubSpotFaults, HubSpotSimConfig, Trigger,
};
use leadroute_sim::salesforce::{self, FaultScript as SalesforceFaults, SalesforceSimConfig};
use serde_json::Value;

const SF_TOKEN: &str = "00Dsim!tls-test-token";

fn trusting(ca_pem: &str) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("ca_pem() is valid PEM");
    reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("reqwest client builds")
}

fn untrusting() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("reqwest client builds")
}

/// The whole error chain as text (reqwest hides the TLS cause in its sources).
fn chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn hubspot_tls() -> hubspot::HubSpotSim {
    hubspot::spawn(HubSpotSimConfig {
        contacts: 30,
        companies: 5,
        owners: 3,
        tls: true,
        ..HubSpotSimConfig::default()
    })
    .await
    .expect("simulator binds to 127.0.0.1:0")
}

async fn salesforce_tls() -> salesforce::SalesforceSim {
    salesforce::spawn(SalesforceSimConfig {
        leads: 40,
        contacts: 20,
        accounts: 10,
        users: 5,
        pre_issued_token: Some(SF_TOKEN.to_owned()),
        tls: true,
        ..SalesforceSimConfig::default()
    })
    .await
    .expect("simulator starts")
}

#[tokio::test]
async fn hubspot_lists_contacts_over_https_for_a_client_trusting_its_ca() {
    let sim = hubspot_tls().await;
    assert!(sim.base_url().starts_with("https://127.0.0.1:"));
    let ca = sim.ca_pem().expect("a TLS simulator exposes its CA");
    let response = trusting(&ca)
        .get(format!(
            "{}/crm/v3/objects/contacts?limit=5",
            sim.base_url()
        ))
        .bearer_auth(sim.token())
        .send()
        .await
        .expect("the HTTPS call succeeds");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(5));
    let next = body["paging"]["next"]["link"].as_str().unwrap_or_default();
    assert!(next.starts_with("https://"), "paging link {next}");
    sim.shutdown().await;
}

#[tokio::test]
async fn hubspot_https_is_refused_by_a_client_without_the_ca() {
    let sim = hubspot_tls().await;
    let error = untrusting()
        .get(format!("{}/crm/v3/owners", sim.base_url()))
        .bearer_auth(sim.token())
        .send()
        .await
        .expect_err("an unknown issuer must not be trusted");
    let text = chain(&error).to_lowercase();
    assert!(text.contains("certificate"), "{text}");
    sim.shutdown().await;
}

#[tokio::test]
async fn hubspot_connection_reset_faults_still_drop_https_connections() {
    let sim = hubspot_tls().await;
    let client = trusting(&sim.ca_pem().expect("TLS on"));
    sim.set_faults(HubSpotFaults {
        seed: 1,
        rules: vec![FaultRule {
            families: vec![EndpointFamily::Owners],
            fault: Fault::ConnectionReset,
            trigger: Trigger::NextN { n: 1 },
        }],
        expire_tokens: false,
    });
    let url = format!("{}/crm/v3/owners", sim.base_url());
    let error = client
        .get(&url)
        .bearer_auth(sim.token())
        .send()
        .await
        .expect_err("the connection is dropped without a response");
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    assert_eq!(sim.stats().connection_resets, 1);
    let again = client
        .get(&url)
        .bearer_auth(sim.token())
        .send()
        .await
        .expect("the next call gets through");
    assert_eq!(again.status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn plain_simulators_report_no_ca_and_http_urls() {
    let sim = hubspot::spawn(HubSpotSimConfig {
        contacts: 5,
        companies: 1,
        owners: 1,
        ..HubSpotSimConfig::default()
    })
    .await
    .expect("simulator binds");
    assert!(sim.base_url().starts_with("http://"));
    assert!(sim.ca_pem().is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn salesforce_queries_over_https_for_a_client_trusting_its_ca() {
    let sim = salesforce_tls().await;
    assert!(sim.base_url().starts_with("https://127.0.0.1:"));
    let client = trusting(&sim.ca_pem().expect("a TLS simulator exposes its CA"));
    let response = client
        .get(format!("{}/services/data/v62.0/query", sim.base_url()))
        .query(&[("q", "SELECT Id, OwnerId FROM Lead LIMIT 3")])
        .bearer_auth(SF_TOKEN)
        .send()
        .await
        .expect("the HTTPS call succeeds");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(body["records"].as_array().map(Vec::len), Some(3), "{body}");
    sim.shutdown().await;
}

#[tokio::test]
async fn salesforce_token_response_names_an_https_instance_url() {
    let sim = salesforce_tls().await;
    let config = SalesforceSimConfig::default();
    let client = trusting(&sim.ca_pem().expect("TLS on"));
    let response = client
        .post(format!("{}/services/oauth2/token", sim.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
            ("refresh_token", config.refresh_token.as_str()),
        ])
        .send()
        .await
        .expect("the HTTPS call succeeds");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(body["instance_url"], Value::from(sim.base_url()), "{body}");
    assert!(sim.base_url().starts_with("https://"));
    sim.shutdown().await;
}

#[tokio::test]
async fn salesforce_https_is_refused_by_a_client_without_the_ca() {
    let sim = salesforce_tls().await;
    let error = untrusting()
        .get(format!("{}/services/data/v62.0/limits", sim.base_url()))
        .bearer_auth(SF_TOKEN)
        .send()
        .await
        .expect_err("an unknown issuer must not be trusted");
    let text = chain(&error).to_lowercase();
    assert!(text.contains("certificate"), "{text}");
    sim.shutdown().await;
}

#[tokio::test]
async fn salesforce_connection_reset_faults_still_drop_https_connections() {
    let sim = salesforce_tls().await;
    let client = trusting(&sim.ca_pem().expect("TLS on"));
    sim.set_faults(SalesforceFaults {
        resets_next: 1,
        ..SalesforceFaults::default()
    });
    let url = format!("{}/services/data/v62.0/limits", sim.base_url());
    let dropped = client.get(&url).bearer_auth(SF_TOKEN).send().await;
    assert!(
        dropped.is_err(),
        "the connection is dropped without an answer"
    );
    let again = client
        .get(&url)
        .bearer_auth(SF_TOKEN)
        .send()
        .await
        .expect("the next call gets through");
    assert_eq!(again.status(), 200);
    sim.shutdown().await;
}
