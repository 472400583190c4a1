//! `leadroute sim` as a standalone CRM for a standalone sidecar: `--webhook-url` and
//! `--webhook-secret` make the HubSpot simulator deliver signed webhooks for records
//! created through its public API, `--outbound-url` makes the Salesforce simulator send
//! outbound messages.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A receiver on loopback answering every POST with `reply`; returns its URL.
async fn receiver(path: &'static str, reply: &'static str) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let seen_in = seen.clone();
    let app = Router::new().route(
        path,
        post(move |headers: HeaderMap, body: Bytes| {
            let seen = seen_in.clone();
            async move {
                seen.lock().unwrap().push((headers, body));
                reply
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

/// Starts `leadroute ARGS` and reads its banner up to "Ctrl-C stops it.".
async fn start(args: &[&str]) -> (Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_leadroute"))
        .args(args)
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.starts_with("Ctrl-C stops it.");
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    })
    .await
    .unwrap();
    (child, lines)
}

/// SIGTERM, then the exit status must be a success.
async fn stop(child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut child = child;
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// The value after `prefix` on the banner line that contains it.
fn banner_value(lines: &[String], prefix: &str) -> String {
    lines
        .iter()
        .find_map(|l| l.split_once(prefix).map(|(_, rest)| rest.to_owned()))
        .unwrap_or_else(|| panic!("no {prefix:?} in {lines:#?}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn sim_hubspot_sends_webhooks_signed_with_the_given_secret_for_api_creates() {
    let (url, seen) = receiver("/webhooks/hubspot", "").await;
    let secret = "sidecar-app-secret-0451";
    let (child, lines) = start(&[
        "sim",
        "hubspot",
        "--port",
        "0",
        "--contacts",
        "40",
        "--accounts",
        "8",
        "--owners",
        "4",
        "--webhook-url",
        &url,
        "--webhook-secret",
        secret,
    ])
    .await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("webhooks: POST {url}")) && l.contains(secret)),
        "the banner shows where webhooks go and the secret: {lines:#?}"
    );
    let base = banner_value(&lines, "listening on ");
    let token = banner_value(&lines, "token: ");
    let created = reqwest::Client::new()
        .post(format!("{base}/crm/v3/objects/contacts"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"properties": {"email": "cli.lead@new-co.example"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let body: serde_json::Value = created.json().await.unwrap();
    let id: u64 = body["id"].as_str().unwrap().parse().unwrap();

    let creation = |events: &[(HeaderMap, Bytes)]| {
        events.iter().find_map(|(headers, body)| {
            let events: Vec<serde_json::Value> = serde_json::from_slice(body).ok()?;
            events
                .iter()
                .any(|e| e["subscriptionType"] == "contact.creation" && e["objectId"] == id)
                .then(|| (headers.clone(), body.clone()))
        })
    };
    wait_until("the contact.creation webhook", || {
        creation(&seen.lock().unwrap()).is_some()
    })
    .await;
    let (headers, body) = creation(&seen.lock().unwrap()).unwrap();
    let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
    let timestamp = header("x-hubspot-request-timestamp");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("POST{url}").as_bytes());
    mac.update(&body);
    mac.update(timestamp.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(header("x-hubspot-signature-v3"), expected);
    stop(child).await;
}

#[tokio::test]
async fn sim_salesforce_sends_outbound_messages_to_the_given_url_for_api_creates() {
    let ack = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#;
    let (url, seen) = receiver("/webhooks/salesforce", ack).await;
    let (child, lines) = start(&[
        "sim",
        "salesforce",
        "--port",
        "0",
        "--leads",
        "40",
        "--contacts",
        "20",
        "--accounts",
        "8",
        "--owners",
        "6",
        "--outbound-url",
        &url,
    ])
    .await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("outbound messages: POST {url}"))),
        "{lines:#?}"
    );
    let base = banner_value(&lines, "listening on ");
    let token = banner_value(&lines, "session token: ");
    let created = reqwest::Client::new()
        .post(format!("{base}/services/data/v62.0/sobjects/Lead"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"LastName": "Cli", "Company": "Cli Works"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let body: serde_json::Value = created.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    wait_until("the lead's outbound message", || {
        seen.lock().unwrap().iter().any(|(_, body)| {
            String::from_utf8_lossy(body).contains(&format!("<sf:Id>{id}</sf:Id>"))
        })
    })
    .await;
    stop(child).await;
}

#[tokio::test]
async fn sim_flags_of_the_other_crm_are_refused_with_the_right_flag_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_leadroute"))
        .args([
            "sim",
            "salesforce",
            "--port",
            "0",
            "--webhook-url",
            "http://127.0.0.1:9/x",
        ])
        .env_clear()
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--outbound-url"), "{stderr}");
    let output = Command::new(env!("CARGO_BIN_EXE_leadroute"))
        .args([
            "sim",
            "hubspot",
            "--port",
            "0",
            "--webhook-url",
            "not a url",
        ])
        .env_clear()
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--webhook-url"), "{stderr}");
}
