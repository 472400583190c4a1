//! The outgoing SLA webhook: a JSON POST (or a Slack-compatible `{"text": …}` body)
//! signed with HMAC-SHA256 over the body (`X-Leadroute-Signature: sha256=<hex>`),
//! carrying a delivery id (`X-Leadroute-Delivery`) the receiver can deduplicate on,
//! retried with backoff on connection failures, 429 and 5xx.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::policy::{Notify, NotifyFormat};

/// What a notification says.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `reminder` or `breach`.
    pub event: String,
    pub sla: String,
    pub org: String,
    pub object: String,
    pub record_id: String,
    pub owner: String,
    pub owner_label: String,
    pub started_at: String,
    pub due_at: String,
    /// What the breach led to (`reassigned to bob (2)`), if anything.
    pub action: Option<String>,
}

impl Event {
    fn text(&self) -> String {
        match self.event.as_str() {
            "reminder" => format!(
                "SLA {} reminder: {} {} (owner {}) is due by {}",
                self.sla, self.object, self.record_id, self.owner_label, self.due_at
            ),
            _ => format!(
                "SLA {} breached: {} {} was not touched by {} (due {}){}",
                self.sla,
                self.object,
                self.record_id,
                self.owner_label,
                self.due_at,
                self.action
                    .as_ref()
                    .map(|a| format!("; {a}"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// The request body for `notify`'s format.
pub fn body(notify: &Notify, event: &Event) -> Vec<u8> {
    let value = match notify.format {
        NotifyFormat::Json => serde_json::to_value(event).unwrap_or_default(),
        NotifyFormat::Slack => serde_json::json!({ "text": event.text() }),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

/// `sha256=<hex>` of the body under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this cannot fail.
        Err(_) => return String::new(),
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("the notify webhook {url} could not be reached")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the notify webhook {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
}

impl NotifyError {
    fn retryable(&self) -> bool {
        match self {
            NotifyError::Unreachable { .. } => true,
            NotifyError::Status { status, .. } => *status == 429 || *status >= 500,
        }
    }
}

/// Posts `body` to `notify.url`, signed when a secret is given; retried with backoff
/// (`attempts` in all) on failures worth retrying.
pub async fn send(
    client: &reqwest::Client,
    notify: &Notify,
    secret: Option<&[u8]>,
    delivery: &str,
    body: Vec<u8>,
    attempts: usize,
) -> Result<(), NotifyError> {
    let post = || async {
        let mut req = client
            .post(&notify.url)
            .header("content-type", "application/json")
            .header("x-leadroute-delivery", delivery)
            .timeout(Duration::from_secs(10));
        if let Some(secret) = secret {
            req = req.header("x-leadroute-signature", signature(secret, &body));
        }
        let resp =
            req.body(body.clone())
                .send()
                .await
                .map_err(|source| NotifyError::Unreachable {
                    url: notify.url.clone(),
                    source,
                })?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(NotifyError::Status {
                url: notify.url.clone(),
                status: resp.status().as_u16(),
            })
        }
    };
    post.retry(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(attempts.saturating_sub(1)),
    )
    .when(NotifyError::retryable)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_slack_body_is_a_text_message() {
        let notify = Notify {
            url: "http://127.0.0.1:1/".into(),
            secret_env: None,
            format: NotifyFormat::Slack,
        };
        let event = Event {
            event: "breach".into(),
            sla: "first-touch".into(),
            org: "hubspot".into(),
            object: "contact".into(),
            record_id: "7".into(),
            owner: "1".into(),
            owner_label: "alice (1)".into(),
            started_at: "2026-01-05T10:00:00Z".into(),
            due_at: "2026-01-05T10:15:00Z".into(),
            action: Some("reassigned to bob (2)".into()),
        };
        let body: serde_json::Value = serde_json::from_slice(&body(&notify, &event)).unwrap();
        assert_eq!(
            body["text"],
            "SLA first-touch breached: contact 7 was not touched by alice (1) (due 2026-01-05T10:15:00Z); reassigned to bob (2)"
        );
    }
}
