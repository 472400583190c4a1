//! CRM v3 object routes for contacts and companies: list (cursor paging in
//! ascending id order), read one (merged ids resolve, `idProperty=email`),
//! batch read (207 for unknown ids), batch update (whole-call 400 on invalid
//! values, 207 for unknown ids and injected partial failures, write log),
//! PATCH, archive (one and batch) and merge.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Inner;
use super::clock::{iso, now_ms, parse_datetime};
use super::control::WriteLogEntry;
use super::engagements::{self, Engagement};
use super::schema::{self, ObjectType, PropertyType};
use super::server::PartialFailure;
use super::state::{Source, Store};
use super::wire::{
    self, attach_associations, json_response, query_flag, query_list, query_one, render_record,
    standard_error, validation,
};

/// Most inputs a v3 batch call accepts.
pub(crate) const BATCH_LIMIT: usize = 100;
/// Largest list page.
pub(crate) const LIST_LIMIT: usize = 100;

/// Query string as ordered pairs (keys may repeat).
pub(crate) fn pairs(raw: Option<String>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    })
    .unwrap_or_default()
}

/// Parses a JSON body the way HubSpot reports bad input: 400 VALIDATION_ERROR.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        validation(format!(
            "Invalid input JSON on line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    })
}

/// Resolves the `{object}` path segment.
pub(crate) fn object_type(segment: &str) -> Result<ObjectType, Response> {
    ObjectType::from_path(segment).ok_or_else(|| {
        wire::error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("Unable to infer object type from: {segment}"),
        )
    })
}

fn parse_id(text: &str) -> Option<u64> {
    text.trim().parse::<u64>().ok()
}

fn batch_envelope(started: i64, results: Vec<Value>, errors: Vec<Value>) -> Response {
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(started),
        "completedAt": iso(now_ms()),
    });
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        body["numErrors"] = json!(errors.len());
        body["errors"] = Value::Array(errors);
        StatusCode::MULTI_STATUS
    };
    json_response(status, body)
}

/// `GET /crm/v3/objects/{type}`.
pub(crate) async fn list(
    State(inner): State<Arc<Inner>>,
    Path(object): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Some(kind) = Engagement::from_path(&object) {
        return engagements::list(&inner, kind, raw);
    }
    let object = match object_type(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let q = pairs(raw);
    let limit = match query_one(&q, "limit").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(n)) if (1..=LIST_LIMIT).contains(&n) => n,
        Some(_) => {
            return validation(format!(
                "limit must be between 1 and {LIST_LIMIT}; page with paging.next.after"
            ));
        }
    };
    let after = match query_one(&q, "after") {
        None | Some("") => 0,
        Some(a) => match parse_id(a) {
            Some(a) => a,
            None => return validation(format!("Invalid after cursor: {a}")),
        },
    };
    let archived = query_flag(&q, "archived");
    let properties = query_list(&q, "properties");
    let targets = query_list(&q, "associations").unwrap_or_default();
    let store = inner.store.read();
    let table = store.table(object);
    let mut page = table
        .records
        .range(after..)
        .map(|(_, r)| r)
        .filter(|r| r.archived == archived);
    let mut results = Vec::with_capacity(limit);
    for record in page.by_ref().take(limit) {
        let mut body = render_record(object, record, properties.as_deref());
        if !archived {
            attach_associations(&mut body, &store, object, record.id, &targets);
        }
        results.push(body);
    }
    let mut body = json!({ "results": results });
    if let Some(next) = page.next() {
        let after = next.id.to_string();
        body["paging"] = json!({"next": {
            "after": after,
            "link": format!("{}/crm/v3/objects/{}?after={after}", inner.base_url, object.as_str()),
        }});
    }
    json_response(StatusCode::OK, body)
}

/// `GET /crm/v3/objects/{type}/{id}`.
pub(crate) async fn get_one(
    State(inner): State<Arc<Inner>>,
    Path((object, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Some(kind) = Engagement::from_path(&object) {
        return engagements::get_one(&inner, kind, &id, raw);
    }
    let object = match object_type(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let q = pairs(raw);
    let archived = query_flag(&q, "archived");
    let properties = query_list(&q, "properties");
    let targets = query_list(&q, "associations").unwrap_or_default();
    let store = inner.store.read();
    let table = store.table(object);
    let found = match query_one(&q, "idProperty") {
        None | Some("hs_object_id") => parse_id(&id).and_then(|n| table.resolve(n)),
        Some("email") if object == ObjectType::Contacts => {
            if archived {
                table
                    .records
                    .values()
                    .find(|r| {
                        r.archived
                            && r.properties
                                .get("email")
                                .is_some_and(|e| e.eq_ignore_ascii_case(&id))
                    })
                    .map(|r| r.id)
            } else {
                table.by_email.get(&id.to_ascii_lowercase()).copied()
            }
        }
        Some(other) => {
            return validation(format!(
                "Property {other} is not a unique identifier property for {}",
                object.as_str()
            ));
        }
    };
    let Some(record) = found
        .and_then(|n| table.records.get(&n))
        .filter(|r| r.archived == archived)
    else {
        return wire::not_found(object, &id);
    };
    let mut body = render_record(object, record, properties.as_deref());
    if !archived {
        attach_associations(&mut body, &store, object, record.id, &targets);
    }
    json_response(StatusCode::OK, body)
}

#[derive(Deserialize)]
struct IdInput {
    id: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchReadBody {
    #[serde(default)]
    properties: Vec<String>,
    #[serde(default)]
    id_property: Option<String>,
    inputs: Vec<IdInput>,
}

pub(crate) fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `POST /crm/v3/objects/{type}/batch/read`.
pub(crate) async fn batch_read(
    State(inner): State<Arc<Inner>>,
    Path(object): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    if let Some(kind) = Engagement::from_path(&object) {
        return engagements::batch_read(&inner, kind, &body);
    }
    let started = now_ms();
    let object = match object_type(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let body: BatchReadBody = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if body.inputs.len() > BATCH_LIMIT {
        return too_many(body.inputs.len());
    }
    let archived = query_flag(&pairs(raw), "archived");
    let store = inner.store.read();
    let table = store.table(object);
    let mut results = Vec::new();
    let mut seen = BTreeSet::new();
    let mut missing = Vec::new();
    for input in &body.inputs {
        let id = id_text(&input.id);
        let found = match body.id_property.as_deref() {
            Some("email") if object == ObjectType::Contacts => {
                table.by_email.get(&id.to_ascii_lowercase()).copied()
            }
            _ => parse_id(&id).and_then(|n| table.resolve(n)),
        };
        match found
            .and_then(|n| table.records.get(&n))
            .filter(|r| r.archived == archived)
        {
            Some(record) => {
                if seen.insert(record.id) {
                    results.push(render_record(object, record, Some(&body.properties)));
                }
            }
            None => missing.push(id),
        }
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![standard_error(
            "OBJECT_NOT_FOUND",
            "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid."
                .replace("CONTACT", &object.singular().to_ascii_uppercase())
                .as_str(),
            json!({ "ids": missing }),
            None,
        )]
    };
    batch_envelope(started, results, errors)
}

pub(crate) fn too_many(n: usize) -> Response {
    validation(format!(
        "Batch input limit exceeded: {n} inputs; at most {BATCH_LIMIT} inputs are allowed per request"
    ))
}

/// Validates one property write as HubSpot does; `Err` holds the error
/// detail (`isValid:false` entry).
pub(crate) fn validate_property(
    store: &Store,
    object: ObjectType,
    name: &str,
    value: &str,
) -> Result<(), Value> {
    let fail = |code: &str, message: String| {
        Err(json!({
            "isValid": false,
            "message": message,
            "error": code,
            "name": name,
            "localizedErrorMessage": message,
        }))
    };
    let Some(def) = schema::property(object, name) else {
        return fail(
            "PROPERTY_DOESNT_EXIST",
            format!("Property \"{name}\" does not exist"),
        );
    };
    if def.read_only {
        return fail(
            "READ_ONLY_VALUE",
            format!("{name} is a read only property; its value cannot be set."),
        );
    }
    check_value(store, name, def.kind, value)
}

/// Validates a non-read-only property's value against its type (shared with the
/// engagement objects, which have their own definitions).
pub(crate) fn check_value(
    store: &Store,
    name: &str,
    kind: PropertyType,
    value: &str,
) -> Result<(), Value> {
    let fail = |code: &str, message: String| {
        Err(json!({
            "isValid": false,
            "message": message,
            "error": code,
            "name": name,
            "localizedErrorMessage": message,
        }))
    };
    if value.is_empty() {
        return Ok(());
    }
    match kind {
        PropertyType::Text => Ok(()),
        PropertyType::Email => {
            let valid = value
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'));
            if valid {
                Ok(())
            } else {
                fail("INVALID_EMAIL", format!("Email address {value} is invalid"))
            }
        }
        PropertyType::Number => {
            if value.parse::<f64>().is_ok() {
                Ok(())
            } else {
                fail(
                    "INVALID_INTEGER",
                    format!("{value} was not a valid number."),
                )
            }
        }
        PropertyType::DateTime => {
            if parse_datetime(value).is_some() {
                Ok(())
            } else {
                fail("INVALID_DATE", format!("{value} was not a valid date."))
            }
        }
        PropertyType::Enumeration(options) => {
            if options.contains(&value) {
                Ok(())
            } else {
                fail(
                    "INVALID_OPTION",
                    format!("{value} was not one of the allowed options: {options:?}"),
                )
            }
        }
        // The property's options are the ACTIVE owners: a user id, an
        // unknown number or a deactivated (archived) owner's id is rejected.
        // Records may still hold an archived owner's id set before the
        // deactivation; HubSpot keeps those values but offers no option for
        // them.
        PropertyType::Owner => {
            let active = value
                .parse::<u64>()
                .ok()
                .and_then(|id| store.owners.get(&id))
                .is_some_and(|o| !o.archived);
            if active {
                Ok(())
            } else {
                fail(
                    "INVALID_OPTION",
                    format!(
                        "{value} was not one of the allowed options: use an id from GET /crm/v3/owners"
                    ),
                )
            }
        }
        PropertyType::Team => {
            let known = store
                .owners
                .values()
                .any(|o| o.teams.iter().any(|t| t.id == value));
            if known {
                Ok(())
            } else {
                fail(
                    "INVALID_OPTION",
                    format!("{value} was not one of the allowed options"),
                )
            }
        }
    }
}

pub(crate) fn invalid_properties(details: Vec<Value>) -> Response {
    let text = Value::Array(details.clone()).to_string();
    let errors = details
        .iter()
        .map(|d| {
            json!({
                "message": d["message"],
                "code": d["error"],
                "in": d["name"],
                "context": {"propertyName": [d["name"]]},
            })
        })
        .collect();
    wire::error_with(
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
        format!("Property values were not valid: {text}"),
        None,
        Value::Null,
        errors,
    )
}

#[derive(Deserialize)]
struct UpdateInput {
    id: Value,
    #[serde(default)]
    properties: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct BatchUpdateBody {
    inputs: Vec<UpdateInput>,
}

pub(crate) fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Applies validated writes to one record: write log (every property,
/// no-op rewrites included), stamps and webhook events.
fn apply_write(
    inner: &Inner,
    store: &mut Store,
    object: ObjectType,
    requested_id: &str,
    id: u64,
    values: &BTreeMap<String, String>,
    at_ms: i64,
) {
    let before: BTreeMap<String, Option<String>> = values
        .keys()
        .map(|k| {
            let old = store
                .table(object)
                .records
                .get(&id)
                .and_then(|r| r.properties.get(k))
                .cloned();
            (k.clone(), old)
        })
        .collect();
    let changed = store.set_properties(object, id, values, at_ms, &Source::Api);
    let mut log = inner.write_log.lock();
    for (name, value) in values {
        let seq = log.len() as u64 + 1;
        log.push(WriteLogEntry {
            seq,
            at_ms,
            object,
            id: id.to_string(),
            requested_id: requested_id.to_owned(),
            property: name.clone(),
            old_value: before.get(name).cloned().flatten(),
            new_value: value.clone(),
            changed: changed.contains(name),
        });
    }
    inner.stats.lock().writes += values.len() as u64;
}

/// `POST /crm/v3/objects/{type}/batch/update`.
pub(crate) async fn batch_update(
    State(inner): State<Arc<Inner>>,
    Path(object): Path<String>,
    partial: Option<Extension<PartialFailure>>,
    body: Bytes,
) -> Response {
    let started = now_ms();
    let object = match object_type(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let body: BatchUpdateBody = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if body.inputs.len() > BATCH_LIMIT {
        return too_many(body.inputs.len());
    }
    let ids: Vec<String> = body.inputs.iter().map(|i| id_text(&i.id)).collect();
    let mut seen = BTreeSet::new();
    let duplicates: Vec<&String> = ids.iter().filter(|id| !seen.insert(*id)).collect();
    if !duplicates.is_empty() {
        return validation(format!(
            "Duplicate IDs found in batch input: {duplicates:?}. IDs must be unique"
        ));
    }
    let inputs: Vec<BTreeMap<String, String>> = body
        .inputs
        .iter()
        .map(|i| {
            i.properties
                .iter()
                .map(|(k, v)| (k.clone(), value_text(v)))
                .collect()
        })
        .collect();

    let mut store = inner.store.write();
    let mut details = Vec::new();
    for values in &inputs {
        for (name, value) in values {
            if let Err(detail) = validate_property(&store, object, name, value)
                && !details.contains(&detail)
            {
                details.push(detail);
            }
        }
    }
    if !details.is_empty() {
        // One bad value fails the whole call; nothing is written.
        return invalid_properties(details);
    }

    let (failing, category): (BTreeSet<usize>, String) = match partial {
        Some(Extension(p)) => (
            inner
                .faults
                .lock()
                .pick(inputs.len(), p.fraction)
                .into_iter()
                .collect(),
            p.category,
        ),
        None => (BTreeSet::new(), String::new()),
    };
    let at_ms = now_ms();
    let mut results = Vec::new();
    let mut missing = Vec::new();
    let mut failed = Vec::new();
    for (ix, (requested, values)) in ids.iter().zip(&inputs).enumerate() {
        let target = parse_id(requested)
            .and_then(|n| store.table(object).resolve(n))
            .filter(|n| store.table(object).is_live(*n));
        let Some(id) = target else {
            missing.push(requested.clone());
            continue;
        };
        if failing.contains(&ix) {
            failed.push(requested.clone());
            continue;
        }
        apply_write(&inner, &mut store, object, requested, id, values, at_ms);
        if let Some(record) = store.table(object).records.get(&id) {
            let names: Vec<String> = values.keys().cloned().collect();
            results.push((id, render_record(object, record, Some(&names))));
        }
    }
    inner.flush_events(&mut store);
    drop(store);
    // HubSpot does not keep input order; scramble deterministically so
    // clients that zip results with inputs fail in tests, not in production.
    results.sort_by_key(|(id, _)| id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut errors = Vec::new();
    if !missing.is_empty() {
        errors.push(standard_error(
            "OBJECT_NOT_FOUND",
            "Could not find some of the requested objects",
            json!({ "ids": missing }),
            None,
        ));
    }
    if !failed.is_empty() {
        errors.push(standard_error(
            &category,
            "Some objects could not be updated; retry them",
            json!({ "ids": failed }),
            None,
        ));
    }
    batch_envelope(
        started,
        results.into_iter().map(|(_, v)| v).collect(),
        errors,
    )
}

#[derive(Deserialize)]
struct PatchBody {
    #[serde(default)]
    properties: BTreeMap<String, Value>,
}

/// `PATCH /crm/v3/objects/{type}/{id}`.
pub(crate) async fn patch_one(
    State(inner): State<Arc<Inner>>,
    Path((object, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let object = match object_type(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let body: PatchBody = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let values: BTreeMap<String, String> = body
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), value_text(v)))
        .collect();
    let mut store = inner.store.write();
    let details: Vec<Value> = values
        .iter()
        .filter_map(|(k, v)| validate_property(&store, object, k, v).err())
        .collect();
    if !details.is_empty() {
        return invalid_properties(details);
    }
    let Some(target) = parse_id(&id)
        .and_then(|n| store.table(object).resolve(n))
        .filter(|n| store.table(object).is_live(*n))
    else {
        return wire::not_found(object, &id);
    };
    apply_write(&inner, &mut store, object, &id, target, &values, now_ms());
    inner.flush_events(&mut store);
    let names: Vec<String> = values.keys().cloned().collect();
    match store.table(object).records.get(&target) {
        Some(record) => json_response(StatusCode::OK, render_record(object, record, Some(&names))),
        None => wire::not_found(object, &id),
    }
}

/// `DELETE /crm/v3/objects/{type}/{id}`: archive; 204 even when nothing was
/// live, as HubSpot answers.
pub(crate) async fn archive_one(
    State(inner): State<Arc<Inner>>,
    Path((object, id)): Path<(String, String)>,
) -> Response {
    let object = match object_type(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let mut store = inner.store.write();
    if let Some(n) = parse_id(&id).and_then(|n| store.table(object).resolve(n)) {
        store.archive(object, n, now_ms(), &Source::Api);
    }
    inner.flush_events(&mut store);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct ArchiveBody {
    inputs: Vec<IdInput>,
}

/// `POST /crm/v3/objects/{type}/batch/archive` → 204.
pub(crate) async fn batch_archive(
    State(inner): State<Arc<Inner>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let object = match object_type(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let body: ArchiveBody = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if body.inputs.len() > BATCH_LIMIT {
        return too_many(body.inputs.len());
    }
    let at = now_ms();
    let mut store = inner.store.write();
    for input in &body.inputs {
        if let Some(n) = parse_id(&id_text(&input.id)).and_then(|n| store.table(object).resolve(n))
        {
            store.archive(object, n, at, &Source::Api);
        }
    }
    inner.flush_events(&mut store);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MergeBody {
    primary_object_id: Value,
    object_id_to_merge: Value,
}

/// `POST /crm/v3/objects/{type}/merge`: a new record with a new id.
pub(crate) async fn merge(
    State(inner): State<Arc<Inner>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let object = match object_type(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let body: MergeBody = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (Some(primary), Some(merged)) = (
        parse_id(&id_text(&body.primary_object_id)),
        parse_id(&id_text(&body.object_id_to_merge)),
    ) else {
        return validation("primaryObjectId and objectIdToMerge must be record ids");
    };
    let mut store = inner.store.write();
    match store.merge(object, primary, merged, now_ms(), &Source::Api) {
        Ok(new_id) => {
            inner.flush_events(&mut store);
            match store.table(object).records.get(&new_id) {
                Some(record) => json_response(StatusCode::OK, render_record(object, record, None)),
                None => wire::not_found(object, &new_id.to_string()),
            }
        }
        Err(message) => validation(message),
    }
}
