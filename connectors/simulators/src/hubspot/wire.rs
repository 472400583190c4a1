//! Wire shapes shared by the routes: HubSpot's error bodies, the record
//! envelope (`SimplePublicObject`), property selection and query-string
//! lists that may be comma-separated or repeated.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::clock::{iso, uuid};
use super::schema::{self, ObjectType};
use super::state::{SimRecord, Store};

pub(crate) const JSON_UTF8: &str = "application/json;charset=utf-8";

/// A JSON response with HubSpot's content type.
pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_UTF8),
    );
    response
}

/// HubSpot's `Error` body.
pub(crate) fn error(status: StatusCode, category: &str, message: impl Into<String>) -> Response {
    error_with(status, category, message, None, Value::Null, Vec::new())
}

/// HubSpot's `Error` body with the optional parts.
pub(crate) fn error_with(
    status: StatusCode,
    category: &str,
    message: impl Into<String>,
    sub_category: Option<&str>,
    context: Value,
    errors: Vec<Value>,
) -> Response {
    let mut body = json!({
        "status": "error",
        "message": message.into(),
        "correlationId": uuid(),
        "category": category,
    });
    if let Some(sub) = sub_category {
        body["subCategory"] = json!(sub);
    }
    if !context.is_null() {
        body["context"] = context;
    }
    if !errors.is_empty() {
        body["errors"] = Value::Array(errors);
    }
    json_response(status, body)
}

/// 400 VALIDATION_ERROR with a plain message.
pub(crate) fn validation(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
}

/// 404 as HubSpot answers a missing record.
pub(crate) fn not_found(object: ObjectType, id: &str) -> Response {
    error_with(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        format!("Object not found. No {} with id {id}.", object.singular()),
        None,
        json!({ "id": [id] }),
        Vec::new(),
    )
}

/// The 429 body for a policy (`TEN_SECONDLY_ROLLING`, `DAILY`, `SECONDLY`).
pub(crate) fn rate_limited(policy: &str) -> Response {
    let message = match policy {
        "DAILY" => "You have reached your daily limit.".to_owned(),
        "SECONDLY" => "You have reached your secondly limit.".to_owned(),
        other => format!(
            "You have reached your {} limit.",
            other.to_ascii_lowercase()
        ),
    };
    json_response(
        StatusCode::TOO_MANY_REQUESTS,
        json!({
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": uuid(),
            "policyName": policy,
            "requestId": uuid(),
        }),
    )
}

/// A 5xx as HubSpot's edge or backend would answer it.
pub(crate) fn server_error(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = match status {
        502 => "Bad Gateway",
        503 => "Service Unavailable: the server is temporarily unable to handle the request",
        504 => "Gateway Timeout: the request took too long to process",
        _ => "internal error",
    };
    error(code, "INTERNAL_ERROR", message)
}

/// Comma-separated or repeated query values (`properties=a,b&properties=c`).
pub(crate) fn query_list(pairs: &[(String, String)], key: &str) -> Option<Vec<String>> {
    let mut found = false;
    let mut out = Vec::new();
    for (k, v) in pairs {
        if k == key {
            found = true;
            out.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    found.then_some(out)
}

/// The last value of a query key.
pub(crate) fn query_one<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `archived=true` (anything else is false, as HubSpot parses it).
pub(crate) fn query_flag(pairs: &[(String, String)], key: &str) -> bool {
    query_one(pairs, key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Renders the `properties` object: the requested names (or the defaults),
/// always plus `createdate`, the last-modified property and `hs_object_id`;
/// known-but-unset names are `null`, unknown names are left out (trap 4).
pub(crate) fn render_properties(
    object: ObjectType,
    record: &SimRecord,
    requested: Option<&[String]>,
) -> Value {
    let mut out = Map::new();
    let mut put = |name: &str| {
        if out.contains_key(name) || schema::property(object, name).is_none() {
            return;
        }
        let value = record
            .properties
            .get(name)
            .map_or(Value::Null, |v| Value::String(v.clone()));
        out.insert(name.to_owned(), value);
    };
    match requested {
        Some(names) if !names.is_empty() => names.iter().for_each(|n| put(n)),
        _ => object.default_properties().iter().for_each(|n| put(n)),
    }
    put("createdate");
    put(object.last_modified_property());
    put("hs_object_id");
    Value::Object(out)
}

/// The record envelope (`SimplePublicObject`).
pub(crate) fn render_record(
    object: ObjectType,
    record: &SimRecord,
    requested: Option<&[String]>,
) -> Value {
    let mut body = json!({
        "id": record.id.to_string(),
        "properties": render_properties(object, record, requested),
        "createdAt": iso(record.created_at_ms),
        "updatedAt": iso(record.updated_at_ms),
        "archived": record.archived,
    });
    if let Some(at) = record.archived_at_ms {
        body["archivedAt"] = json!(iso(at));
    }
    body
}

/// Embedded v3 associations (`associations=companies`): one entry per type,
/// so a primary link appears twice (primary and unlabeled). Truncated at 100
/// entries with a paging cursor, as HubSpot does; v4 has the complete list.
pub(crate) fn render_embedded(
    store: &Store,
    object: ObjectType,
    id: u64,
    to: ObjectType,
) -> Option<Value> {
    if to != object.other() {
        return None;
    }
    let links = store.associated(object, id);
    if links.is_empty() {
        return None;
    }
    let (primary_type, unlabeled_type) = match object {
        ObjectType::Contacts => ("contact_to_company", "contact_to_company_unlabeled"),
        ObjectType::Companies => ("company_to_contact", "company_to_contact_unlabeled"),
    };
    let mut results = Vec::new();
    for (other, primary) in links {
        if primary {
            results.push(json!({"id": other.to_string(), "type": primary_type}));
        }
        results.push(json!({"id": other.to_string(), "type": unlabeled_type}));
    }
    let mut body = json!({});
    if results.len() > 100 {
        results.truncate(100);
        let after = format!("{}-{}", id, 100);
        body["paging"] = json!({"next": {"after": after, "link": format!("?after={after}")}});
    }
    body["results"] = Value::Array(results);
    Some(body)
}

/// Embedded associations for every requested target type.
pub(crate) fn attach_associations(
    body: &mut Value,
    store: &Store,
    object: ObjectType,
    id: u64,
    targets: &[String],
) {
    let mut map = BTreeMap::new();
    for target in targets {
        if let Some(to) = ObjectType::from_path(target)
            && let Some(rendered) = render_embedded(store, object, id, to)
        {
            map.insert(to.as_str().to_owned(), rendered);
        }
    }
    if !map.is_empty() {
        body["associations"] = json!(map);
    }
}

/// The `StandardError` used inside batch responses.
pub(crate) fn standard_error(
    category: &str,
    message: &str,
    context: Value,
    sub: Option<&str>,
) -> Value {
    let mut e = json!({
        "status": "error",
        "category": category,
        "message": message,
        "context": context,
        "errors": [],
        "links": {},
    });
    if let Some(sub) = sub {
        e["subCategory"] = json!(sub);
    }
    e
}
