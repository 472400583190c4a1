//! Salesforce wire shapes (serde), read tolerantly: unknown fields are ignored,
//! optional ones default, and datetimes accept every format the platform emits
//! (`2025-03-04T09:15:27.000+0000`, `…Z`, `…+00:00`, epoch milliseconds).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One page of `query` / `queryAll`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryPage {
    #[serde(default = "default_true")]
    pub(crate) done: bool,
    #[serde(default)]
    pub(crate) next_records_url: Option<String>,
    #[serde(default)]
    pub(crate) records: Vec<Map<String, Value>>,
}

fn default_true() -> bool {
    true
}

/// One entry of a REST error array: `[{"message","errorCode","fields"}]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RestError {
    #[serde(default)]
    pub(crate) message: String,
    #[serde(default, alias = "statusCode")]
    pub(crate) error_code: String,
    #[serde(default)]
    pub(crate) fields: Vec<String>,
}

/// Reads a REST error body: usually an array, sometimes a single object.
pub(crate) fn parse_rest_errors(body: &[u8]) -> Vec<RestError> {
    if let Ok(list) = serde_json::from_slice::<Vec<RestError>>(body) {
        return list;
    }
    if let Ok(one) = serde_json::from_slice::<RestError>(body) {
        return vec![one];
    }
    Vec::new()
}

/// An OAuth token endpoint success body. No `expires_in`: sessions last until the
/// org's timeout policy kills them.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: String,
    pub(crate) instance_url: String,
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens never reach logs, not even through Debug.
        f.debug_struct("TokenResponse")
            .field("instance_url", &self.instance_url)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// An OAuth error body: `{"error","error_description"}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct OAuthError {
    #[serde(default)]
    pub(crate) error: String,
    #[serde(default)]
    pub(crate) error_description: String,
}

/// One per-record result of an sObject Collections call.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CollectionResult {
    #[serde(default)]
    pub(crate) success: bool,
    #[serde(default)]
    pub(crate) errors: Vec<RestError>,
}

/// A record in a Collections update body.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OwnerUpdate<'a> {
    pub(crate) attributes: Attributes<'a>,
    pub(crate) id: &'a str,
    #[serde(rename = "OwnerId")]
    pub(crate) owner_id: &'a str,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Attributes<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'a str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CollectionUpdate<'a> {
    pub(crate) all_or_none: bool,
    pub(crate) records: Vec<OwnerUpdate<'a>>,
}

/// `POST /composite/sobjects/{Type}` retrieve body.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RetrieveRequest<'a> {
    pub(crate) ids: &'a [String],
    pub(crate) fields: &'a [&'static str],
}

/// `POST /composite` request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CompositeRequest {
    pub(crate) all_or_none: bool,
    pub(crate) composite_request: Vec<CompositeSubrequest>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CompositeSubrequest {
    pub(crate) method: &'static str,
    pub(crate) url: String,
    pub(crate) reference_id: String,
    pub(crate) body: Value,
    pub(crate) http_headers: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CompositeResponse {
    #[serde(default)]
    pub(crate) composite_response: Vec<CompositeSubresponse>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CompositeSubresponse {
    #[serde(default)]
    pub(crate) body: Value,
    #[serde(default)]
    pub(crate) http_status_code: u16,
    #[serde(default)]
    pub(crate) reference_id: String,
}

/// A Bulk API 2.0 ingest job.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BulkJob {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) state: String,
    #[serde(default)]
    pub(crate) error_message: Option<String>,
    #[serde(default)]
    pub(crate) number_records_processed: u64,
    #[serde(default)]
    pub(crate) number_records_failed: u64,
}

/// `GET /sobjects/{T}/deleted/` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeletedResponse {
    #[serde(default)]
    pub(crate) deleted_records: Vec<DeletedRecord>,
    #[serde(default)]
    pub(crate) earliest_date_available: Option<String>,
    #[serde(default)]
    pub(crate) latest_date_covered: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeletedRecord {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) deleted_date: Option<String>,
}

/// Parses a Salesforce datetime tolerantly.
///
/// The REST API writes `2025-03-04T09:15:27.000+0000` (offset without a colon), which
/// strict RFC 3339 parsers refuse; CometD uses `…Z`, Pub/Sub epoch milliseconds.
pub(crate) fn parse_datetime(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Some(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(at) = DateTime::parse_from_str(value, format) {
            return Some(at.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(value, format) {
            return Some(at.and_utc());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0).map(|at| at.and_utc());
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse::<i64>()
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis);
    }
    None
}

/// A datetime field of a record (`Value::String` or epoch number).
pub(crate) fn datetime_field(record: &Map<String, Value>, field: &str) -> Option<DateTime<Utc>> {
    match record.get(field)? {
        Value::String(s) => parse_datetime(s),
        Value::Number(n) => n.as_i64().and_then(DateTime::<Utc>::from_timestamp_millis),
        _ => None,
    }
}

/// A string field of a record; `null`, absent and empty are all `None`.
pub(crate) fn string_field(record: &Map<String, Value>, field: &str) -> Option<String> {
    match record.get(field)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A boolean field; Salesforce booleans are never null, but strings are tolerated.
pub(crate) fn bool_field(record: &Map<String, Value>, field: &str) -> Option<bool> {
    match record.get(field)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// An integer field; doubles such as `1.5E7` or `250.0` are accepted.
pub(crate) fn int_field(record: &Map<String, Value>, field: &str) -> Option<i64> {
    match record.get(field)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.parse::<f64>().ok().map(|f| f as i64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn salesforce_datetimes_without_offset_colon_parse() {
        let want = Utc.with_ymd_and_hms(2025, 3, 4, 9, 15, 27).unwrap();
        assert_eq!(parse_datetime("2025-03-04T09:15:27.000+0000"), Some(want));
        assert_eq!(parse_datetime("2025-03-04T09:15:27Z"), Some(want));
        assert_eq!(parse_datetime("2025-03-04T09:15:27.000Z"), Some(want));
        assert_eq!(parse_datetime("2025-03-04T10:15:27.000+01:00"), Some(want));
        assert_eq!(parse_datetime("2025-03-04T10:15:27+0100"), Some(want));
        assert_eq!(parse_datetime("1741079727000"), Some(want));
        assert_eq!(parse_datetime("not a date"), None);
    }

    #[test]
    fn rest_errors_parse_from_arrays_and_single_objects() {
        let body =
            br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#;
        let errors = parse_rest_errors(body);
        assert_eq!(errors[0].error_code, "INVALID_SESSION_ID");
        let one = parse_rest_errors(br#"{"message":"m","errorCode":"X","fields":["F"]}"#);
        assert_eq!(one[0].fields, vec!["F".to_owned()]);
        assert!(parse_rest_errors(b"<html>").is_empty());
    }

    #[test]
    fn query_pages_tolerate_missing_and_unknown_fields() {
        let page: QueryPage =
            serde_json::from_str(r#"{"totalSize":3,"done":false,"nextRecordsUrl":"/services/data/v62.0/query/01g-2000","records":[{"Id":"x"}],"extra":1}"#)
                .unwrap();
        assert!(!page.done);
        assert_eq!(page.records.len(), 1);
    }

    #[test]
    fn shared_samples_parse_when_present() {
        // `../shared` beside the repository root (one more level up from a worktree).
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = [root.join("../shared"), root.join("../../shared")]
            .into_iter()
            .map(|d| d.join("specs/salesforce"))
            .find(|d| d.exists())
            .unwrap_or_else(|| root.join("../shared/specs/salesforce"));
        if !dir.exists() {
            eprintln!(
                "skipping: {} is absent (vendor samples live outside the repo)",
                dir.display()
            );
            return;
        }
        for name in [
            "query_page_first.json",
            "query_page_last.json",
            "query_empty.json",
            "query_relationships.json",
        ] {
            let text = std::fs::read(dir.join(name)).unwrap();
            let page: QueryPage = serde_json::from_slice(&text).unwrap();
            assert!(page.done || page.next_records_url.is_some(), "{name}");
        }
        let text = std::fs::read(dir.join("get_deleted.json")).unwrap();
        let deleted: DeletedResponse = serde_json::from_slice(&text).unwrap();
        assert!(parse_datetime(deleted.earliest_date_available.as_deref().unwrap()).is_some());
        let text = std::fs::read(dir.join("oauth_token_success.json")).unwrap();
        let token: TokenResponse = serde_json::from_slice(&text).unwrap();
        assert!(token.instance_url.starts_with("https://"));
        let text = std::fs::read(dir.join("error_invalid_session_id.json")).unwrap();
        assert_eq!(parse_rest_errors(&text)[0].error_code, "INVALID_SESSION_ID");
    }
}
