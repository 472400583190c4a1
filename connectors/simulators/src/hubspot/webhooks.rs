//! Webhook delivery as HubSpot does it: changes become events shaped like
//! the Webhooks API's (numeric `objectId`, `eventId`, `subscriptionId`,
//! `occurredAt` ms, `attemptNumber`, …), batched up to 100 per POST, signed
//! with v1 and v3 signatures (client secret as key), at most 10 deliveries in
//! flight, and failed deliveries (non-2xx, 5 s timeout, connection error)
//! retried up to 10 times with growing, jittered delays. At-least-once: a
//! `DuplicateDelivery` fault sends a batch twice.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, mpsc};

use super::Inner;
use super::clock::{now_ms, parse_datetime};
use super::faults::EndpointFamily;
use super::schema::{self, ObjectType, PropertyType};
use super::state::{ChangeEvent, Source, StampedEvent};

/// Events per POST.
pub(crate) const MAX_BATCH: usize = 100;
/// Deliveries in flight (HubSpot's default `maxConcurrentRequests`).
pub(crate) const MAX_CONCURRENT: usize = 10;
/// Retries after the first attempt.
pub(crate) const MAX_RETRIES: u32 = 10;
/// HubSpot waits this long for an answer.
pub(crate) const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

const CONTACT_PROPS: &[&str] = &[
    "email",
    "firstname",
    "lastname",
    "company",
    "country",
    "hubspot_owner_id",
    "hubspot_team_id",
    "lifecyclestage",
    "hs_lead_status",
    // Rollups a logged activity moves (engagements.rs); appended so earlier
    // subscription ids keep their numbers.
    "notes_last_contacted",
    "hs_last_sales_activity_timestamp",
];
const COMPANY_PROPS: &[&str] = &[
    "name",
    "domain",
    "country",
    "industry",
    "numberofemployees",
    "hubspot_owner_id",
    "hubspot_team_id",
    "hs_parent_company_id",
];

fn subscribed(object: ObjectType) -> &'static [&'static str] {
    match object {
        ObjectType::Contacts => CONTACT_PROPS,
        ObjectType::Companies => COMPANY_PROPS,
    }
}

/// Subscription ids of the simulated app (one per event type, one per
/// subscribed property for propertyChange).
fn subscription_id(object: ObjectType, kind: &str, property: Option<&str>) -> u64 {
    let base = match object {
        ObjectType::Contacts => 1_000,
        ObjectType::Companies => 2_000,
    };
    let offset = match kind {
        "creation" => 1,
        "deletion" => 2,
        "merge" => 3,
        "restore" => 4,
        "associationChange" => 5,
        _ => {
            let ix = property
                .and_then(|p| subscribed(object).iter().position(|x| *x == p))
                .unwrap_or(0);
            10 + ix as u64
        }
    };
    base + offset
}

/// The simulated portal's lead-capture form (sourceId of form-fill events).
pub(crate) const FORM_GUID: &str = "form:5f0c3a52-7d4e-4b1a-9c86-2e1f0d9b7a43";

fn source_fields(source: &Source, app_id: u64) -> (&'static str, String) {
    match source {
        Source::Api => ("INTEGRATION", app_id.to_string()),
        Source::Ui { user_id } => ("CRM_UI", format!("userId:{user_id}")),
        Source::Import => ("IMPORT", "import".to_owned()),
        Source::Form => ("FORM", FORM_GUID.to_owned()),
    }
}

/// Renders one change as webhook events (an association change yields one
/// per direction). Unsubscribed property changes yield none.
pub(crate) fn render(inner: &Inner, stamped: &StampedEvent, next_id: &mut u64) -> Vec<Value> {
    let (change_source, source_id) = source_fields(&stamped.source, inner.config.app_id);
    let mut base = |object: ObjectType, kind: &str, property: Option<&str>, object_id: u64| {
        *next_id += 1;
        json!({
            "eventId": *next_id,
            "subscriptionId": subscription_id(object, kind, property),
            "portalId": inner.config.portal_id,
            "appId": inner.config.app_id,
            "occurredAt": stamped.at_ms,
            "subscriptionType": format!("{}.{kind}", object.singular()),
            "attemptNumber": 0,
            "objectId": object_id,
            "changeSource": change_source,
            "sourceId": source_id,
        })
    };
    match &stamped.event {
        ChangeEvent::Creation { object, id } => {
            let mut e = base(*object, "creation", None, *id);
            // Undocumented; HubSpot's test events send "NEW" (reference §13).
            e["changeFlag"] = json!("NEW");
            vec![e]
        }
        ChangeEvent::Deletion { object, id } => vec![base(*object, "deletion", None, *id)],
        ChangeEvent::Restore { object, id } => vec![base(*object, "restore", None, *id)],
        ChangeEvent::PropertyChange {
            object,
            id,
            name,
            value,
        } => {
            if !subscribed(*object).contains(&name.as_str()) {
                return Vec::new();
            }
            let mut e = base(*object, "propertyChange", Some(name), *id);
            // Datetime values travel as epoch ms in webhooks (trap 5).
            let is_date =
                schema::property(*object, name).is_some_and(|d| d.kind == PropertyType::DateTime);
            let value = if is_date {
                parse_datetime(value).map_or_else(|| value.clone(), |ms| ms.to_string())
            } else {
                value.clone()
            };
            e["propertyName"] = json!(name);
            e["propertyValue"] = json!(value);
            vec![e]
        }
        ChangeEvent::Merge {
            object,
            primary,
            merged,
            new_id,
            moved,
        } => {
            let mut e = base(*object, "merge", None, *new_id);
            e["primaryObjectId"] = json!(primary);
            e["mergedObjectIds"] = json!([merged]);
            e["newObjectId"] = json!(new_id);
            e["numberOfPropertiesMoved"] = json!(moved);
            vec![e]
        }
        ChangeEvent::AssociationChange {
            contact,
            company,
            removed,
            primary,
        } => {
            let mut forward = base(ObjectType::Contacts, "associationChange", None, *contact);
            forward["associationType"] = json!("CONTACT_TO_COMPANY");
            forward["fromObjectId"] = json!(contact);
            forward["toObjectId"] = json!(company);
            forward["associationRemoved"] = json!(removed);
            forward["isPrimaryAssociation"] = json!(primary);
            let mut reverse = base(ObjectType::Companies, "associationChange", None, *company);
            reverse["associationType"] = json!("COMPANY_TO_CONTACT");
            reverse["fromObjectId"] = json!(company);
            reverse["toObjectId"] = json!(contact);
            reverse["associationRemoved"] = json!(removed);
            reverse["isPrimaryAssociation"] = json!(primary);
            vec![forward, reverse]
        }
    }
}

/// The `uri` part of the v3 signature: the URL with exactly HubSpot's list
/// of escapes decoded (the query's `?` stays as it is).
pub(crate) fn v3_uri(url: &str) -> String {
    const ESCAPES: &[(&str, &str)] = &[
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ];
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let candidate = rest.get(at..at + 3).unwrap_or("");
        match ESCAPES
            .iter()
            .find(|(e, _)| e.eq_ignore_ascii_case(candidate))
        {
            Some((_, decoded)) => {
                out.push_str(decoded);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `X-HubSpot-Signature-v3`: base64(HMAC-SHA256(secret, METHOD+uri+body+timestamp)).
pub(crate) fn sign_v3(
    secret: &str,
    method: &str,
    url: &str,
    body: &[u8],
    timestamp_ms: &str,
) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(method.as_bytes());
    mac.update(v3_uri(url).as_bytes());
    mac.update(body);
    mac.update(timestamp_ms.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// `X-HubSpot-Signature` v1: hex SHA-256 of secret + body.
pub(crate) fn sign_v1(secret: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(secret.as_bytes());
    hasher.update(body);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn post(client: &reqwest::Client, inner: &Inner, url: &str, body: &[u8]) -> bool {
    let timestamp = now_ms().to_string();
    let secret = &inner.config.client_secret;
    let result = client
        .post(url)
        .header("Content-Type", "application/json")
        .header(
            "User-Agent",
            "HubSpot Connect 2.0 (http://dev.hubspot.com/) - WebhooksExecutorDaemon-executor",
        )
        .header("X-HubSpot-Signature", sign_v1(secret, body))
        .header("X-HubSpot-Signature-Version", "v1")
        .header(
            "X-HubSpot-Signature-v3",
            sign_v3(secret, "POST", url, body, &timestamp),
        )
        .header("X-HubSpot-Request-Timestamp", timestamp)
        .body(body.to_vec())
        .send()
        .await;
    matches!(result, Ok(r) if r.status().is_success())
}

async fn deliver(
    inner: Arc<Inner>,
    client: reqwest::Client,
    permits: Arc<Semaphore>,
    url: String,
    mut events: Vec<Value>,
) {
    let mut attempt: u32 = 0;
    loop {
        for e in &mut events {
            e["attemptNumber"] = json!(attempt);
        }
        let body = serde_json::to_vec(&events).unwrap_or_default();
        let duplicate = inner
            .faults
            .lock()
            .decide(EndpointFamily::Webhooks)
            .duplicate;
        let ok = {
            let Ok(_permit) = permits.acquire().await else {
                return;
            };
            let ok = tokio::select! {
                () = inner.cancel.cancelled() => return,
                ok = post(&client, &inner, &url, &body) => ok,
            };
            if ok && duplicate {
                let again = post(&client, &inner, &url, &body).await;
                inner.stats.lock().webhook_duplicates_sent += u64::from(again);
            }
            ok
        };
        {
            let mut stats = inner.stats.lock();
            if ok {
                stats.webhook_batches_delivered += 1;
                stats.webhook_events_delivered += events.len() as u64;
            } else {
                stats.webhook_failed_attempts += 1;
            }
        }
        if ok {
            return;
        }
        if attempt >= MAX_RETRIES {
            inner.stats.lock().webhook_events_dropped += events.len() as u64;
            return;
        }
        // Exponential-ish backoff with ±25 % jitter, capped at 64× the base.
        let factor = 2f64.powi(attempt.min(6) as i32) * inner.faults.lock().jitter();
        let delay = inner.config.webhook_retry_base.mul_f64(factor);
        tokio::select! {
            () = inner.cancel.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        attempt += 1;
    }
}

/// Turns change events into signed, batched deliveries until shutdown.
pub(crate) async fn dispatch(
    inner: Arc<Inner>,
    mut rx: mpsc::UnboundedReceiver<Vec<StampedEvent>>,
) {
    let client = match reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(error) => {
            tracing::error!(%error, "hubspot sim: cannot build the webhook HTTP client; webhooks are off");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT));
    let mut next_id: u64 = 1_000;
    loop {
        let first = tokio::select! {
            () = inner.cancel.cancelled() => break,
            got = rx.recv() => match got {
                Some(events) => events,
                None => break,
            },
        };
        // Give closely following changes a moment to join the batch.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut stamped = first;
        while let Ok(more) = rx.try_recv() {
            stamped.extend(more);
        }
        let Some(url) = inner.webhook_url.read().clone() else {
            continue;
        };
        let events: Vec<Value> = stamped
            .iter()
            .flat_map(|s| render(&inner, s, &mut next_id))
            .collect();
        for chunk in events.chunks(MAX_BATCH) {
            tokio::spawn(deliver(
                inner.clone(),
                client.clone(),
                permits.clone(),
                url.clone(),
                chunk.to_vec(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_uri_decodes_only_the_listed_escapes() {
        assert_eq!(
            v3_uri("https://h.io/hook%3Fa%2Fb?x=%40y%20z%2a"),
            "https://h.io/hook?a/b?x=@y%20z*"
        );
    }

    #[test]
    fn v1_signature_is_hex_sha256_of_secret_and_body() {
        assert_eq!(
            sign_v1("", b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
