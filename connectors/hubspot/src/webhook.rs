//! Webhook intake: v3 signature verification and event parsing into refetch [`Hint`]s.
//!
//! Events are hints only (the core refetches the records), so parsing is lenient about
//! content and strict about authenticity: a request with a missing, forged or tampered
//! signature, or a timestamp more than five minutes from receipt, is refused before its
//! body is looked at.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{TimeZone, Utc};
use hmac::{Hmac, Mac};
use leadroute_crm::{
    Hint, InboundRequest, InboundResponse, Intake, IntakeError, ObjectKind, RecordId,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::wire::WebhookEvent;

/// Oldest (and furthest in the future) a request timestamp may be: 5 minutes.
pub(crate) const MAX_SKEW_MS: i64 = 300_000;

/// The escapes HubSpot's v3 scheme decodes before signing, and nothing else.
const DECODED_ESCAPES: &[(&str, &str)] = &[
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

/// The URI as HubSpot signs it.
pub(crate) fn signing_uri(url: &str) -> String {
    DECODED_ESCAPES
        .iter()
        .fold(url.to_owned(), |uri, (escape, plain)| {
            uri.replace(escape, plain)
        })
}

/// base64(HMAC-SHA256(secret, METHOD + uri + body + timestamp)).
pub(crate) fn sign_v3(
    secret: &str,
    method: &str,
    url: &str,
    body: &[u8],
    timestamp: &str,
) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(method.to_ascii_uppercase().as_bytes());
    mac.update(signing_uri(url).as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Rebuilds the full URL HubSpot called when the web layer handed us only a path.
fn full_url(request: &InboundRequest, public_url: Option<&str>) -> Result<String, IntakeError> {
    if request.url.starts_with("http://") || request.url.starts_with("https://") {
        return Ok(request.url.clone());
    }
    let Some(public) = public_url else {
        return Err(IntakeError::Unauthorized(
            "cannot verify the signature of a request given as a bare path; set webhook.public_url"
                .into(),
        ));
    };
    let origin = url::Url::parse(public)
        .map_err(|_| {
            IntakeError::Unauthorized(format!(
                "webhook.public_url {public:?} is not a URL; give https://host[:port]"
            ))
        })?
        .origin()
        .ascii_serialization();
    Ok(format!("{origin}{}", request.url))
}

/// Verifies `X-HubSpot-Signature-v3` and the timestamp window.
pub(crate) fn verify(
    request: &InboundRequest,
    secret: Option<&SecretString>,
    public_url: Option<&str>,
) -> Result<(), IntakeError> {
    let secret = secret.ok_or_else(|| {
        IntakeError::Unauthorized(
            "no webhook secret configured (the app's client secret); set webhook.secret".into(),
        )
    })?;
    let signature = request
        .header("x-hubspot-signature-v3")
        .ok_or_else(|| IntakeError::Unauthorized("missing X-HubSpot-Signature-v3".into()))?;
    let timestamp = request
        .header("x-hubspot-request-timestamp")
        .ok_or_else(|| IntakeError::Unauthorized("missing X-HubSpot-Request-Timestamp".into()))?;
    let sent_ms: i64 = timestamp.trim().parse().map_err(|_| {
        IntakeError::Unauthorized("X-HubSpot-Request-Timestamp is not epoch milliseconds".into())
    })?;
    // An outside number: a timestamp near i64::MIN or MAX must be refused, not wrapped.
    let age = request
        .received_at
        .timestamp_millis()
        .checked_sub(sent_ms)
        .ok_or_else(|| {
            IntakeError::Unauthorized(
                "X-HubSpot-Request-Timestamp is outside any plausible time".into(),
            )
        })?;
    if age > MAX_SKEW_MS {
        return Err(IntakeError::Unauthorized(format!(
            "stale request: signed {} s before receipt (limit 300 s)",
            age / 1000
        )));
    }
    if age < -MAX_SKEW_MS {
        return Err(IntakeError::Unauthorized(
            "request timestamp is more than 5 minutes in the future".into(),
        ));
    }
    let url = full_url(request, public_url)?;
    let expected = sign_v3(
        secret.expose_secret(),
        &request.method,
        &url,
        &request.body,
        timestamp,
    );
    if bool::from(expected.as_bytes().ct_eq(signature.trim().as_bytes())) {
        Ok(())
    } else {
        Err(IntakeError::Unauthorized(
            "X-HubSpot-Signature-v3 does not match (forged, tampered, or webhook.public_url differs from the URL HubSpot calls)".into(),
        ))
    }
}

/// A verified batch: the hints, plus the contacts whose events were GDPR deletions
/// (their refetch must purge personal data, which a hint cannot say).
#[derive(Debug)]
pub(crate) struct Parsed {
    pub intake: Intake,
    pub privacy_deleted: Vec<String>,
}

/// Verifies and parses a webhook batch.
pub(crate) fn intake(
    request: &InboundRequest,
    secret: Option<&SecretString>,
    public_url: Option<&str>,
) -> Result<Parsed, IntakeError> {
    verify(request, secret, public_url)?;
    let events: Vec<serde_json::Value> = serde_json::from_slice(&request.body)
        .map_err(|e| IntakeError::Malformed(format!("webhook body is not a JSON array: {e}")))?;
    let mut hints = Vec::new();
    let mut privacy_deleted = Vec::new();
    for raw in events {
        // One odd event never rejects the batch: HubSpot would redeliver all of it.
        let Ok(event) = serde_json::from_value::<WebhookEvent>(raw) else {
            continue;
        };
        if event.subscription_type.as_deref() == Some("contact.privacyDeletion") {
            privacy_deleted.extend(event.object_id.clone());
        }
        hints.extend(hints_for(&event));
    }
    Ok(Parsed {
        intake: Intake {
            hints,
            response: InboundResponse {
                status: 200,
                content_type: "text/plain",
                body: String::new(),
            },
        },
        privacy_deleted,
    })
}

fn object_of(event: &WebhookEvent) -> Option<ObjectKind> {
    let kind = event.subscription_type.as_deref()?;
    let (prefix, _) = kind.split_once('.')?;
    match prefix {
        "contact" => Some(ObjectKind::Contact),
        "company" => Some(ObjectKind::Account),
        "object" => match event.object_type_id.as_deref() {
            Some("0-1") => Some(ObjectKind::Contact),
            Some("0-2") => Some(ObjectKind::Account),
            _ => None,
        },
        _ => None,
    }
}

/// The records an event asks us to refetch.
pub(crate) fn hints_for(event: &WebhookEvent) -> Vec<Hint> {
    let Some(object) = object_of(event) else {
        return Vec::new();
    };
    let action = event
        .subscription_type
        .as_deref()
        .and_then(|k| k.split_once('.'))
        .map(|(_, a)| a)
        .unwrap_or_default();
    let mut targets: Vec<(ObjectKind, String)> = Vec::new();
    match action {
        "merge" => {
            // Which id `objectId` holds on merges is undocumented: prefer newObjectId.
            let survivor = event
                .new_object_id
                .clone()
                .or_else(|| event.primary_object_id.clone())
                .or_else(|| event.object_id.clone());
            targets.extend(survivor.map(|id| (object, id)));
            for id in event
                .merged_object_ids
                .iter()
                .chain(event.primary_object_id.iter())
                .chain(event.object_id.iter())
            {
                targets.push((object, id.clone()));
            }
        }
        "associationChange" => {
            // Only the contact side matters (its account links are what we mirror).
            let assoc = event
                .association_type
                .as_deref()
                .unwrap_or_default()
                .to_ascii_uppercase();
            let contact = if assoc.starts_with("CONTACT_TO_") {
                event.from_object_id.clone()
            } else if assoc.ends_with("_TO_CONTACT") {
                event.to_object_id.clone()
            } else if object == ObjectKind::Contact {
                event.object_id.clone()
            } else {
                None
            };
            targets.extend(contact.map(|id| (ObjectKind::Contact, id)));
        }
        _ => targets.extend(event.object_id.clone().map(|id| (object, id))),
    }
    let mut seen = std::collections::BTreeSet::new();
    let base = dedupe_base(event);
    targets
        .into_iter()
        .filter(|(_, id)| !id.is_empty())
        .filter(|t| seen.insert(t.clone()))
        .map(|(object, id)| Hint {
            dedupe_key: dedupe_key(&base, object, &id),
            object,
            id: RecordId(id),
            occurred_at: event
                .occurred_at
                .and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
        })
        .collect()
}

/// HubSpot's recommended identity of an event: eventId alone is not unique.
fn dedupe_base(event: &WebhookEvent) -> String {
    let part = |v: &Option<String>| v.clone().unwrap_or_default();
    [
        part(&event.subscription_id),
        part(&event.object_id),
        part(&event.event_id),
        event.occurred_at.map(|t| t.to_string()).unwrap_or_default(),
        part(&event.property_name),
        part(&event.property_value),
    ]
    .join("\u{1f}")
}

/// Hashed so property values (which can be emails) never reach the inbox table; the
/// target is included because one merge event yields several hints.
fn dedupe_key(base: &str, object: ObjectKind, id: &str) -> String {
    let mut h = Sha256::new();
    h.update(base.as_bytes());
    h.update([0x1f]);
    h.update(object.as_str().as_bytes());
    h.update([0x1f]);
    h.update(id.as_bytes());
    let digest = h.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("hubspot:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "client-secret-123";

    /// Independent re-implementation of the reference steps, written out longhand so a
    /// mistake in `sign_v3` cannot be mirrored here.
    fn reference_signature(method: &str, url: &str, body: &str, ts: &str) -> String {
        let mut uri = url.to_string();
        for (from, to) in [
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
        ] {
            uri = uri.replace(from, to);
        }
        let message = format!("{method}{uri}{body}{ts}");
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(message.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    fn request(
        url: &str,
        body: &str,
        ts_ms: i64,
        signature: Option<String>,
        received_ms: i64,
    ) -> InboundRequest {
        let mut headers = vec![("x-hubspot-request-timestamp".to_owned(), ts_ms.to_string())];
        if let Some(s) = signature {
            headers.push(("x-hubspot-signature-v3".to_owned(), s));
        }
        InboundRequest {
            method: "POST".into(),
            url: url.into(),
            headers,
            body: body.as_bytes().to_vec(),
            received_at: Utc.timestamp_millis_opt(received_ms).unwrap(),
        }
    }

    fn secret() -> SecretString {
        SecretString::from(SECRET)
    }

    const NOW: i64 = 1_767_225_600_000;
    const BODY: &str = r#"[{"eventId":1001,"subscriptionId":25,"portalId":62515,"occurredAt":1767225600123,"subscriptionType":"contact.propertyChange","objectId":512,"propertyName":"hubspot_owner_id","propertyValue":"41629779"}]"#;

    #[test]
    fn a_correctly_signed_request_is_accepted_and_answered_200_empty() {
        let url = "https://hooks.example.com/webhooks/hubspot?x=1";
        let sig = reference_signature("POST", url, BODY, &NOW.to_string());
        let intake = intake(
            &request(url, BODY, NOW, Some(sig), NOW + 1_000),
            Some(&secret()),
            None,
        )
        .unwrap()
        .intake;
        assert_eq!(intake.response.status, 200);
        assert!(intake.response.body.is_empty());
        assert_eq!(intake.hints.len(), 1);
        assert_eq!(intake.hints[0].object, ObjectKind::Contact);
        assert_eq!(intake.hints[0].id.as_str(), "512");
    }

    #[test]
    fn extreme_timestamps_are_refused_without_wrapping() {
        let url = "https://hooks.example.com/h";
        for ts in [i64::MIN, i64::MIN + 1, i64::MAX, -1, 0] {
            let sig = reference_signature("POST", url, BODY, &ts.to_string());
            let err = verify(
                &request(url, BODY, ts, Some(sig), NOW),
                Some(&secret()),
                None,
            )
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
            assert!(!err.is_empty(), "timestamp {ts} must be refused");
        }
        // Received at the far end of time too: still refused, no overflow.
        let sig = reference_signature("POST", url, BODY, &i64::MIN.to_string());
        assert!(
            verify(
                &request(url, BODY, i64::MIN, Some(sig), i64::MAX / 1_000_000),
                Some(&secret()),
                None
            )
            .is_err()
        );
    }

    #[test]
    fn the_listed_escapes_are_decoded_before_signing() {
        let called = "https://hooks.example.com/hook%3Aa%2Cb%40c?q=%2A%3B";
        let sig = reference_signature("POST", called, BODY, &NOW.to_string());
        // The reference decodes before hashing; so must we.
        assert_eq!(
            sig,
            sign_v3(
                SECRET,
                "POST",
                "https://hooks.example.com/hook:a,b@c?q=*;",
                BODY.as_bytes(),
                &NOW.to_string()
            )
        );
        assert!(
            verify(
                &request(called, BODY, NOW, Some(sig), NOW),
                Some(&secret()),
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn a_tampered_body_a_forged_signature_or_a_missing_one_is_refused() {
        let url = "https://hooks.example.com/h";
        let sig = reference_signature("POST", url, BODY, &NOW.to_string());
        let tampered = BODY.replace("41629779", "41629780");
        for req in [
            request(url, &tampered, NOW, Some(sig.clone()), NOW),
            request(
                url,
                BODY,
                NOW,
                Some(sign_v3(
                    "wrong-secret",
                    "POST",
                    url,
                    BODY.as_bytes(),
                    &NOW.to_string(),
                )),
                NOW,
            ),
            request(url, BODY, NOW, None, NOW),
            request(
                "https://other.example.com/h",
                BODY,
                NOW,
                Some(sig.clone()),
                NOW,
            ),
        ] {
            let err = intake(&req, Some(&secret()), None).unwrap_err();
            assert!(matches!(err, IntakeError::Unauthorized(_)), "{err:?}");
            assert_eq!(err.status(), 401);
        }
    }

    #[test]
    fn a_request_older_than_five_minutes_is_stale() {
        let url = "https://hooks.example.com/h";
        let sig = reference_signature("POST", url, BODY, &NOW.to_string());
        let ok = request(url, BODY, NOW, Some(sig.clone()), NOW + MAX_SKEW_MS);
        assert!(verify(&ok, Some(&secret()), None).is_ok());
        let stale = request(url, BODY, NOW, Some(sig), NOW + MAX_SKEW_MS + 1);
        assert!(
            matches!(verify(&stale, Some(&secret()), None), Err(IntakeError::Unauthorized(m)) if m.contains("stale"))
        );
    }

    #[test]
    fn a_bare_path_is_verified_against_the_configured_public_url() {
        let full = "https://hooks.example.com/webhooks/hubspot";
        let sig = reference_signature("POST", full, BODY, &NOW.to_string());
        let req = request("/webhooks/hubspot", BODY, NOW, Some(sig), NOW);
        assert!(verify(&req, Some(&secret()), Some("https://hooks.example.com/")).is_ok());
        assert!(verify(&req, Some(&secret()), None).is_err());
    }

    fn event(json: &str) -> WebhookEvent {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn merge_events_hint_the_survivor_and_every_absorbed_id() {
        let hints = hints_for(&event(
            r#"{"eventId":1003,"subscriptionId":27,"occurredAt":1767225600789,"subscriptionType":"contact.merge","objectId":777,"primaryObjectId":512,"mergedObjectIds":[513],"newObjectId":777}"#,
        ));
        let ids: Vec<&str> = hints.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, vec!["777", "513", "512"]);
        let keys: std::collections::BTreeSet<_> = hints.iter().map(|h| &h.dedupe_key).collect();
        assert_eq!(keys.len(), 3, "each hint of one event has its own key");
    }

    #[test]
    fn association_changes_hint_the_contact_side_in_either_direction() {
        let forward = hints_for(&event(
            r#"{"subscriptionType":"contact.associationChange","objectId":101,"associationType":"CONTACT_TO_COMPANY","fromObjectId":101,"toObjectId":9001}"#,
        ));
        let reverse = hints_for(&event(
            r#"{"subscriptionType":"company.associationChange","objectId":9001,"associationType":"COMPANY_TO_CONTACT","fromObjectId":9001,"toObjectId":101}"#,
        ));
        for hints in [forward, reverse] {
            assert_eq!(hints.len(), 1);
            assert_eq!(hints[0].object, ObjectKind::Contact);
            assert_eq!(hints[0].id.as_str(), "101");
        }
    }

    #[test]
    fn company_events_hint_accounts_and_unknown_types_are_ignored() {
        let company = hints_for(&event(
            r#"{"subscriptionType":"company.deletion","objectId":9}"#,
        ));
        assert_eq!(company[0].object, ObjectKind::Account);
        assert!(
            hints_for(&event(
                r#"{"subscriptionType":"deal.creation","objectId":9}"#
            ))
            .is_empty()
        );
        let generic = hints_for(&event(
            r#"{"subscriptionType":"object.creation","objectTypeId":"0-1","objectId":5}"#,
        ));
        assert_eq!(generic[0].object, ObjectKind::Contact);
    }

    #[test]
    fn redeliveries_share_a_dedupe_key_and_distinct_events_do_not() {
        let a = hints_for(&event(
            r#"{"eventId":1,"subscriptionId":2,"objectId":3,"occurredAt":4,"subscriptionType":"contact.propertyChange","propertyName":"email","propertyValue":"a@b.c","attemptNumber":0}"#,
        ));
        let again = hints_for(&event(
            r#"{"eventId":1,"subscriptionId":2,"objectId":3,"occurredAt":4,"subscriptionType":"contact.propertyChange","propertyName":"email","propertyValue":"a@b.c","attemptNumber":3}"#,
        ));
        let other = hints_for(&event(
            r#"{"eventId":1,"subscriptionId":2,"objectId":3,"occurredAt":5,"subscriptionType":"contact.propertyChange","propertyName":"email","propertyValue":"a@b.c"}"#,
        ));
        assert_eq!(a[0].dedupe_key, again[0].dedupe_key);
        assert_ne!(a[0].dedupe_key, other[0].dedupe_key);
        assert!(!a[0].dedupe_key.contains("a@b.c"), "no PII in keys");
    }

    #[test]
    fn a_signed_batch_that_is_not_an_array_is_malformed() {
        let url = "https://hooks.example.com/h";
        let body = r#"{"not":"an array"}"#;
        let sig = reference_signature("POST", url, body, &NOW.to_string());
        let err = intake(
            &request(url, body, NOW, Some(sig), NOW),
            Some(&secret()),
            None,
        )
        .unwrap_err();
        assert_eq!(err.status(), 400);
    }
}
