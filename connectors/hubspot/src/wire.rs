//! HubSpot wire types: the JSON shapes the connector reads and writes, parsed tolerantly.
//!
//! HubSpot's bodies are loosely specified (reference §9: "every field may be missing"), ids
//! are strings in REST but numbers in webhooks and v4 `toObjectId` (Trap 4), and property
//! values are strings, `null` when unset. Every field here is therefore `#[serde(default)]`
//! and ids/values go through [`lenient_string`], which accepts a string, a number, a bool
//! or `null`. Records keep their raw `serde_json::Value` next to the parsed view so the
//! mirror can store exactly what HubSpot said.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Accepts `"512"`, `512`, `true` or `null` (and absence, via `#[serde(default)]`).
pub(crate) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(value_to_string(&Value::deserialize(d)?))
}

/// Same as [`lenient_string`] for a list (`mergedObjectIds: [513, "514"]`).
fn lenient_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items.iter().filter_map(value_to_string).collect(),
        other => value_to_string(&other).into_iter().collect(),
    })
}

/// Accepts `17`, `"17"` or garbage (→ `None`).
fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// Accepts `true`, `"true"`; anything else is `None`.
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => Some(b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    })
}

/// A JSON scalar as HubSpot would have written it as a property string.
pub(crate) fn value_to_string(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        // Objects/arrays are never property values; keep their JSON text rather than lose them.
        other => Some(other.to_string()),
    }
}

/// `SimplePublicObject` (contacts/companies), as returned by list, search, batch read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ObjectWire {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    /// Property values as strings; `None` for JSON `null` (unset).
    #[serde(deserialize_with = "lenient_properties")]
    pub properties: BTreeMap<String, Option<String>>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    #[serde(deserialize_with = "lenient_bool")]
    pub archived: Option<bool>,
    pub archived_at: Option<String>,
    /// Embedded v3-style associations (`associations=companies` on list/read).
    pub associations: BTreeMap<String, EmbeddedAssociations>,
}

impl ObjectWire {
    /// A non-empty property value (`""` means "cleared" and is treated as unset).
    pub(crate) fn prop(&self, name: &str) -> Option<&str> {
        self.properties
            .get(name)
            .and_then(|v| v.as_deref())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
}

fn lenient_properties<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Option<String>>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| {
                let v = value_to_string(&v);
                (k, v)
            })
            .collect(),
        _ => BTreeMap::new(),
    })
}

/// `associations.companies` inside a record: `{results:[{id,type}], paging?}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EmbeddedAssociations {
    pub results: Vec<EmbeddedAssociation>,
    /// Present when the embedded list was truncated and more links exist.
    pub paging: Option<Paging>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EmbeddedAssociation {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// `paging` on list, search and v4 association results.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Paging {
    pub next: Option<NextPage>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct NextPage {
    #[serde(deserialize_with = "lenient_string")]
    pub after: Option<String>,
}

impl Paging {
    pub(crate) fn after(paging: &Option<Paging>) -> Option<String> {
        paging
            .as_ref()
            .and_then(|p| p.next.as_ref())
            .and_then(|n| n.after.clone())
            .filter(|a| !a.is_empty())
    }
}

/// A list or search page. Results stay raw so `map.rs` can keep them verbatim.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CollectionPage {
    pub results: Vec<Value>,
    pub paging: Option<Paging>,
    /// Search only; may exceed what can be paged (10,000 cap).
    #[serde(deserialize_with = "lenient_i64")]
    pub total: Option<i64>,
}

/// `BatchResponseSimplePublicObject[WithErrors]` (batch read / update).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct BatchResponse {
    pub status: Option<String>,
    pub results: Vec<Value>,
    pub errors: Vec<StandardError>,
}

/// `StandardError`: one per-record (or per-group) failure inside a 207.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct StandardError {
    pub status: Option<String>,
    pub category: Option<String>,
    pub sub_category: Option<Value>,
    pub message: Option<String>,
    #[serde(deserialize_with = "lenient_context")]
    pub context: BTreeMap<String, Vec<String>>,
    pub errors: Vec<ErrorDetail>,
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
}

impl StandardError {
    /// The record ids this error names (`context.ids`, v4 `context.fromObjectId`, `id`).
    pub(crate) fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = ["ids", "id", "fromObjectId", "objectId"]
            .iter()
            .filter_map(|k| self.context.get(*k))
            .flatten()
            .cloned()
            .collect();
        ids.extend(self.id.clone());
        ids
    }

    pub(crate) fn sub_category(&self) -> Option<String> {
        self.sub_category.as_ref().and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("type").and_then(value_to_string),
            _ => None,
        })
    }
}

/// `context` is documented as `{string: [string]}` but treat any scalar as a one-item list.
fn lenient_context<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| {
                let items = match v {
                    Value::Array(items) => items.iter().filter_map(value_to_string).collect(),
                    other => value_to_string(&other).into_iter().collect(),
                };
                (k, items)
            })
            .collect(),
        _ => BTreeMap::new(),
    })
}

/// One entry of an error's `errors[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ErrorDetail {
    pub message: Option<String>,
    pub code: Option<String>,
    #[serde(rename = "in")]
    pub location: Option<String>,
    #[serde(deserialize_with = "lenient_context")]
    pub context: BTreeMap<String, Vec<String>>,
}

/// The `Error` body of a failed whole call (4xx/5xx, 429).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ErrorBody {
    pub status: Option<String>,
    pub message: Option<String>,
    pub category: Option<String>,
    pub sub_category: Option<Value>,
    pub correlation_id: Option<String>,
    pub errors: Vec<ErrorDetail>,
    #[serde(deserialize_with = "lenient_context")]
    pub context: BTreeMap<String, Vec<String>>,
    /// 429 only: `TEN_SECONDLY_ROLLING`, `SECONDLY`, `DAILY`.
    pub policy_name: Option<String>,
    pub error_type: Option<String>,
}

impl ErrorBody {
    /// Parses whatever came back; an empty or non-JSON body gives an empty `ErrorBody`.
    pub(crate) fn parse(bytes: &[u8]) -> ErrorBody {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    /// Every error code mentioned: `errors[].code` plus the `"error":"CODE"` entries HubSpot
    /// embeds as JSON text in `message` ("Property values were not valid: [{…}]").
    pub(crate) fn codes(&self) -> Vec<String> {
        let mut codes: Vec<String> = self.errors.iter().filter_map(|e| e.code.clone()).collect();
        for item in self.embedded_property_errors() {
            codes.extend(item.error);
        }
        codes
    }

    /// The JSON array HubSpot embeds in a validation `message`, if any.
    pub(crate) fn embedded_property_errors(&self) -> Vec<PropertyValidation> {
        let Some(message) = &self.message else {
            return Vec::new();
        };
        let Some(start) = message.find('[') else {
            return Vec::new();
        };
        let Some(end) = message.rfind(']') else {
            return Vec::new();
        };
        if end <= start {
            return Vec::new();
        }
        serde_json::from_str(&message[start..=end]).unwrap_or_default()
    }
}

/// One item of the validation array embedded in a 400 message.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct PropertyValidation {
    pub is_valid: Option<bool>,
    pub message: Option<String>,
    pub error: Option<String>,
    pub name: Option<String>,
}

/// `PublicOwner`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct OwnerWire {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub user_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub user_id_including_inactive: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(deserialize_with = "lenient_bool")]
    pub archived: Option<bool>,
    pub updated_at: Option<String>,
    pub teams: Vec<TeamWire>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct TeamWire {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient_bool")]
    pub primary: Option<bool>,
}

/// v4 `POST /crm/v4/associations/contacts/companies/batch/read` response.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AssociationBatchResponse {
    pub results: Vec<AssociationResult>,
    pub errors: Vec<StandardError>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AssociationResult {
    pub from: AssociationFrom,
    pub to: Vec<AssociationTo>,
    pub paging: Option<Paging>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AssociationFrom {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct AssociationTo {
    /// A number live, a string in the spec (Trap 15): accept both.
    #[serde(deserialize_with = "lenient_string")]
    pub to_object_id: Option<String>,
    pub association_types: Vec<AssociationType>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct AssociationType {
    pub category: Option<String>,
    #[serde(deserialize_with = "lenient_i64")]
    pub type_id: Option<i64>,
    pub label: Option<String>,
}

/// `POST /oauth/v1/token` response.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct TokenResponse {
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    #[serde(deserialize_with = "lenient_i64")]
    pub expires_in: Option<i64>,
}

/// One webhook event (Webhooks API v3 delivery). Every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct WebhookEvent {
    #[serde(deserialize_with = "lenient_string")]
    pub event_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub subscription_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub portal_id: Option<String>,
    #[serde(deserialize_with = "lenient_i64")]
    pub occurred_at: Option<i64>,
    pub subscription_type: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub object_id: Option<String>,
    pub object_type_id: Option<String>,
    pub property_name: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub property_value: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub primary_object_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub new_object_id: Option<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub merged_object_ids: Vec<String>,
    pub association_type: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub from_object_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub to_object_id: Option<String>,
}

/// `GET /account-info/v3/details`: the portal's settings; only the id is read.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AccountDetails {
    #[serde(default, deserialize_with = "lenient_string")]
    pub(crate) portal_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_whether_strings_numbers_or_missing() {
        let rest: AssociationTo =
            serde_json::from_str(r#"{"toObjectId":"9001","associationTypes":[]}"#).unwrap();
        let live: AssociationTo = serde_json::from_str(r#"{"toObjectId":9001}"#).unwrap();
        let none: AssociationTo = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(rest.to_object_id.as_deref(), Some("9001"));
        assert_eq!(live.to_object_id.as_deref(), Some("9001"));
        assert_eq!(none.to_object_id, None);
    }

    #[test]
    fn null_properties_are_unset_and_non_strings_become_strings() {
        let o: ObjectWire = serde_json::from_str(
            r#"{"id":512,"properties":{"email":null,"numberofemployees":17,"x":""}}"#,
        )
        .unwrap();
        assert_eq!(o.id.as_deref(), Some("512"));
        assert_eq!(o.prop("email"), None);
        assert_eq!(o.prop("numberofemployees"), Some("17"));
        assert_eq!(o.prop("x"), None, "cleared values read as unset");
    }

    #[test]
    fn validation_codes_embedded_in_message_text_are_found() {
        let body = ErrorBody::parse(
            br#"{"status":"error","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"9 was not one of the allowed options\",\"error\":\"INVALID_OPTION\",\"name\":\"hubspot_owner_id\"}]","category":"VALIDATION_ERROR"}"#,
        );
        assert_eq!(body.codes(), vec!["INVALID_OPTION".to_owned()]);
        assert_eq!(
            body.embedded_property_errors()[0].name.as_deref(),
            Some("hubspot_owner_id")
        );
    }

    #[test]
    fn an_empty_error_body_parses_to_nothing_rather_than_failing() {
        let body = ErrorBody::parse(b"");
        assert!(body.message.is_none());
        assert!(body.codes().is_empty());
    }

    #[test]
    fn webhook_events_accept_numeric_and_string_ids() {
        let e: WebhookEvent = serde_json::from_str(
            r#"{"eventId":1003,"objectId":"777","mergedObjectIds":[513,"514"],"occurredAt":1767225600789}"#,
        )
        .unwrap();
        assert_eq!(e.event_id.as_deref(), Some("1003"));
        assert_eq!(e.object_id.as_deref(), Some("777"));
        assert_eq!(e.merged_object_ids, vec!["513", "514"]);
        assert_eq!(e.occurred_at, Some(1_767_225_600_789));
    }
}
