//! HubSpot webhook requests through `Crm::intake` of a connector with a known webhook
//! secret: the same v3 signature check, timestamp window and event parsing the server
//! runs.
//!
//! The first byte picks the mode:
//! - even: an arbitrary request, read as text: the method on the first line, the URL on
//!   the second, `name: value` header lines up to an empty line, then the body (refusal
//!   paths: missing, forged or malformed signatures and timestamps);
//! - odd: the rest is a body the harness signs correctly, with a timestamp between 320 s
//!   before and 315 s after receipt (`byte >> 1`, in 5 s steps around receipt), so the
//!   JSON parsing and hint mapping run.
#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use leadroute_crm::{Crm, InboundRequest};
use leadroute_hubspot::{HubSpot, HubSpotAuth, HubSpotSettings};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use sha2::Sha256;

const SECRET: &str = "fuzz-client-secret";
const URL: &str = "https://leadroute.example/webhooks/hubspot";

static CONNECTOR: LazyLock<HubSpot> = LazyLock::new(|| {
    let mut settings = HubSpotSettings::new(
        "http://127.0.0.1:9",
        HubSpotAuth::PrivateApp {
            token: SecretString::from("fuzz-token"),
        },
    );
    settings.webhook_secret = Some(SecretString::from(SECRET));
    settings.public_webhook_url = Some("https://leadroute.example".into());
    HubSpot::new(settings).expect("the harness's settings are valid")
});

fn received_at() -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600, 0).unwrap()
}

/// base64(HMAC-SHA256(secret, METHOD + uri + body + timestamp)), computed here rather
/// than by the connector so a signer bug cannot hide a verifier bug.
fn sign(body: &[u8], timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(b"POST");
    mac.update(URL.as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn signed(mode: u8, body: &[u8]) -> InboundRequest {
    let skew_ms = (i64::from(mode >> 1) - 64) * 5_000;
    let timestamp = (received_at().timestamp_millis() + skew_ms).to_string();
    InboundRequest {
        method: "POST".into(),
        url: URL.into(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-hubspot-signature-v3".into(), sign(body, &timestamp)),
            ("x-hubspot-request-timestamp".into(), timestamp),
        ],
        body: body.to_vec(),
        received_at: received_at(),
    }
}

fn arbitrary(data: &[u8]) -> InboundRequest {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let method = lines.next().unwrap_or_default().to_owned();
    let url = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    InboundRequest {
        method,
        url,
        headers,
        body: body.to_vec(),
        received_at: received_at(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let request = if mode % 2 == 1 {
        signed(mode, rest)
    } else {
        arbitrary(rest)
    };
    let _ = CONNECTOR.intake(&request);
});
