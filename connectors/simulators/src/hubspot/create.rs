//! Record creation: `POST /crm/v3/objects/{type}` (201 with the record) and
//! `POST /crm/v3/objects/{type}/batch/create` (201; 207 only when every input
//! carries a unique `objectWriteTraceId`, otherwise one bad input fails the
//! whole call), with HubSpot's property validation, the unique-email 409
//! (`Contact already exists. Existing ID: N`) and associations given at create
//! time. [`create_checked`] is the one path every creation takes, the
//! form-fill streams included, so `*.creation` webhooks always fire.
//!
//! Decisions where HubSpot is undocumented (reference §13):
//! - Properties sent as `""` are not set (no value), as a read would show.
//! - No company is associated by email domain: auto-association is a portal
//!   setting, off here; associate explicitly in `associations`.
//! - `propertyChange` events for values set at creation are off unless
//!   `HubSpotSimConfig::creation_property_events` is on.
//! - Two inputs of one batch with the same email: the second is a
//!   `CONFLICT` naming the first one's new id.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Inner;
use super::clock::{iso, now_ms};
use super::engagements::{self, Engagement};
use super::objects::{
    BATCH_LIMIT, id_text, invalid_properties, object_type, parse_body, too_many, validate_property,
    value_text,
};
use super::schema::ObjectType;
use super::state::{ChangeEvent, Source, StampedEvent, Store};
use super::wire::{self, json_response, render_record};

/// Contact → company association type ids (HUBSPOT_DEFINED).
const CONTACT_TO_COMPANY_PRIMARY: u64 = 1;
const CONTACT_TO_COMPANY: u64 = 279;
/// Company → contact association type ids (HUBSPOT_DEFINED).
const COMPANY_TO_CONTACT_PRIMARY: u64 = 2;
const COMPANY_TO_CONTACT: u64 = 280;

#[derive(Deserialize)]
struct AssociationTarget {
    id: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssociationType {
    #[serde(default)]
    association_category: Option<String>,
    association_type_id: Value,
}

#[derive(Deserialize)]
struct AssociationInput {
    to: AssociationTarget,
    #[serde(default)]
    types: Vec<AssociationType>,
}

/// One create input, single or batch (`SimplePublicObjectInputForCreate`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateInput {
    #[serde(default)]
    properties: BTreeMap<String, Value>,
    /// The spec marks it required; SDKs send `[]` and the API accepts it missing.
    #[serde(default)]
    associations: Vec<AssociationInput>,
    #[serde(default)]
    object_write_trace_id: Option<String>,
}

impl CreateInput {
    /// An input holding only properties (the form-fill streams).
    pub(crate) fn from_properties(properties: BTreeMap<String, String>) -> CreateInput {
        CreateInput {
            properties: properties
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
            associations: Vec::new(),
            object_write_trace_id: None,
        }
    }
}

#[derive(Deserialize)]
struct BatchCreateBody {
    inputs: Vec<CreateInput>,
}

/// Why one input cannot be created.
#[derive(Debug, Clone)]
pub(crate) enum CreateError {
    /// Property values HubSpot rejects (`isValid:false` details).
    Invalid(Vec<Value>),
    /// A live contact already has this email.
    Conflict { existing: u64 },
    /// An association names a missing record or an unknown type.
    Association(String),
}

impl CreateError {
    fn conflict_message(existing: u64) -> String {
        format!("Contact already exists. Existing ID: {existing}")
    }

    /// The whole-call error response (single create, all-or-nothing batch).
    fn response(&self) -> Response {
        match self {
            CreateError::Invalid(details) => invalid_properties(details.clone()),
            CreateError::Conflict { existing } => wire::error(
                StatusCode::CONFLICT,
                "CONFLICT",
                Self::conflict_message(*existing),
            ),
            CreateError::Association(message) => wire::validation(message.clone()),
        }
    }

    /// The per-input `StandardError` of a 207.
    fn standard_error(&self, trace: &str) -> Value {
        let (category, message, errors) = match self {
            CreateError::Invalid(details) => (
                "VALIDATION_ERROR",
                format!(
                    "Property values were not valid: {}",
                    Value::Array(details.clone())
                ),
                details
                    .iter()
                    .map(|d| {
                        json!({
                            "message": d["message"],
                            "code": d["error"],
                            "in": d["name"],
                        })
                    })
                    .collect(),
            ),
            CreateError::Conflict { existing } => {
                ("CONFLICT", Self::conflict_message(*existing), Vec::new())
            }
            CreateError::Association(message) => ("VALIDATION_ERROR", message.clone(), Vec::new()),
        };
        json!({
            "status": "error",
            "category": category,
            "message": message,
            // Which key HubSpot names the failed input under is not documented
            // (reference §5); both carry the input's objectWriteTraceId.
            "context": {"objectWriteTraceId": [trace], "ids": [trace]},
            "errors": errors,
            "links": {},
        })
    }

    /// One line for stream reports.
    pub(crate) fn summary(&self) -> String {
        match self {
            CreateError::Invalid(details) => format!(
                "VALIDATION_ERROR: {}",
                details
                    .iter()
                    .filter_map(|d| d["message"].as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            CreateError::Conflict { existing } => {
                format!("CONFLICT: {}", Self::conflict_message(*existing))
            }
            CreateError::Association(message) => format!("VALIDATION_ERROR: {message}"),
        }
    }
}

/// A validated input, ready to insert.
struct NewRecord {
    properties: BTreeMap<String, String>,
    /// (other record, primary) pairs.
    associations: Vec<(u64, bool)>,
    trace: Option<String>,
}

/// Checks one input against the portal as it is now (plus the emails taken
/// by earlier inputs of the same batch).
fn check(
    store: &Store,
    object: ObjectType,
    input: &CreateInput,
    batch_emails: &BTreeMap<String, u64>,
) -> Result<NewRecord, CreateError> {
    let mut properties = BTreeMap::new();
    let mut details = Vec::new();
    for (name, value) in &input.properties {
        let value = value_text(value);
        if let Err(detail) = validate_property(store, object, name, &value) {
            if !details.contains(&detail) {
                details.push(detail);
            }
            continue;
        }
        if !value.is_empty() {
            properties.insert(name.clone(), value);
        }
    }
    if !details.is_empty() {
        return Err(CreateError::Invalid(details));
    }
    if object == ObjectType::Contacts
        && let Some(email) = properties.get("email")
    {
        let key = email.to_ascii_lowercase();
        if let Some(existing) = store
            .contacts
            .by_email
            .get(&key)
            .or_else(|| batch_emails.get(&key))
        {
            return Err(CreateError::Conflict {
                existing: *existing,
            });
        }
    }
    let mut associations = Vec::new();
    for association in &input.associations {
        let target = id_text(&association.to.id);
        let other_type = match object {
            ObjectType::Contacts => ObjectType::Companies,
            ObjectType::Companies => ObjectType::Contacts,
        };
        let Some(other) = target
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|n| store.table(other_type).resolve(n))
            .filter(|n| store.table(other_type).is_live(*n))
        else {
            return Err(CreateError::Association(format!(
                "Association target {target} is not a live {}; associate an existing record id",
                other_type.singular()
            )));
        };
        let (primary_type, plain_type) = match object {
            ObjectType::Contacts => (CONTACT_TO_COMPANY_PRIMARY, CONTACT_TO_COMPANY),
            ObjectType::Companies => (COMPANY_TO_CONTACT_PRIMARY, COMPANY_TO_CONTACT),
        };
        let mut primary = false;
        for spec in &association.types {
            let category = spec
                .association_category
                .as_deref()
                .unwrap_or("HUBSPOT_DEFINED");
            let type_id = id_text(&spec.association_type_id).parse::<u64>().ok();
            match (category, type_id) {
                ("HUBSPOT_DEFINED", Some(t)) if t == primary_type => primary = true,
                ("HUBSPOT_DEFINED", Some(t)) if t == plain_type => {}
                _ => {
                    return Err(CreateError::Association(format!(
                        "invalid association type {category}/{} from {} to {}; use HUBSPOT_DEFINED {plain_type} (or {primary_type} for primary)",
                        id_text(&spec.association_type_id),
                        object.singular(),
                        other_type.singular()
                    )));
                }
            }
        }
        associations.push((other, primary));
    }
    Ok(NewRecord {
        properties,
        associations,
        trace: input.object_write_trace_id.clone(),
    })
}

/// Inserts a checked record: stamps, associations and webhook events (the
/// caller flushes them).
fn insert(
    inner: &Inner,
    store: &mut Store,
    object: ObjectType,
    record: NewRecord,
    at_ms: i64,
    source: &Source,
) -> u64 {
    let set: Vec<(String, String)> = record
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let id = store.create(object, record.properties, at_ms, source);
    if inner.config.creation_property_events {
        for (name, value) in set {
            store.pending_events.push(StampedEvent {
                at_ms,
                source: source.clone(),
                event: ChangeEvent::PropertyChange {
                    object,
                    id,
                    name,
                    value,
                },
            });
        }
    }
    for (other, primary) in record.associations {
        match object {
            ObjectType::Contacts => store.associate(id, other, primary, at_ms, source),
            ObjectType::Companies => store.associate(other, id, primary, at_ms, source),
        }
    }
    inner.stats.lock().creates += 1;
    id
}

/// Creates one record through the same checks as the public API and hands
/// its events to the webhook dispatcher. Used by the form-fill streams.
pub(crate) fn create_checked(
    inner: &Inner,
    object: ObjectType,
    input: &CreateInput,
    source: &Source,
) -> Result<u64, CreateError> {
    let mut store = inner.store.write();
    let record = check(&store, object, input, &BTreeMap::new())?;
    let id = insert(inner, &mut store, object, record, now_ms(), source);
    inner.flush_events(&mut store);
    Ok(id)
}

/// Everything a 201 body shows: the properties set plus the stamps.
fn render_created(store: &Store, object: ObjectType, id: u64, trace: Option<&str>) -> Value {
    let Some(record) = store.table(object).records.get(&id) else {
        return Value::Null;
    };
    let names: Vec<String> = record.properties.keys().cloned().collect();
    let mut body = render_record(object, record, Some(&names));
    if let Some(trace) = trace {
        body["objectWriteTraceId"] = json!(trace);
    }
    body
}

/// `POST /crm/v3/objects/{type}` → 201 with the new record.
pub(crate) async fn create_one(
    State(inner): State<Arc<Inner>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(kind) = Engagement::from_path(&object) {
        return engagements::create_one(&inner, kind, &body);
    }
    let object = match object_type(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let input: CreateInput = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut store = inner.store.write();
    let record = match check(&store, object, &input, &BTreeMap::new()) {
        Ok(r) => r,
        Err(e) => return e.response(),
    };
    let id = insert(&inner, &mut store, object, record, now_ms(), &Source::Api);
    inner.flush_events(&mut store);
    let body = render_created(&store, object, id, None);
    json_response(StatusCode::CREATED, body)
}

/// `POST /crm/v3/objects/{type}/batch/create`.
pub(crate) async fn batch_create(
    State(inner): State<Arc<Inner>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(kind) = Engagement::from_path(&object) {
        return engagements::batch_create(&inner, kind, &body);
    }
    let started = now_ms();
    let object = match object_type(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let body: BatchCreateBody = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if body.inputs.len() > BATCH_LIMIT {
        return too_many(body.inputs.len());
    }
    if body.inputs.is_empty() {
        return wire::validation("inputs must hold at least one input");
    }
    // Partial success is opted into by a unique objectWriteTraceId on every input.
    let traces: Vec<&str> = body
        .inputs
        .iter()
        .filter_map(|i| i.object_write_trace_id.as_deref())
        .collect();
    let partial = traces.len() == body.inputs.len()
        && traces.iter().collect::<BTreeSet<_>>().len() == traces.len();

    let mut store = inner.store.write();
    // Check every input first: without partial success nothing is written
    // unless all of them pass.
    let mut batch_emails: BTreeMap<String, u64> = BTreeMap::new();
    let mut planned_id = store.table(object).next_id;
    let mut checked = Vec::with_capacity(body.inputs.len());
    for input in &body.inputs {
        let result = check(&store, object, input, &batch_emails);
        if let Ok(record) = &result {
            if let Some(email) = record.properties.get("email") {
                batch_emails.insert(email.to_ascii_lowercase(), planned_id);
            }
            planned_id += 1;
        }
        checked.push((input.object_write_trace_id.clone(), result));
    }
    if !partial && let Some(err) = checked.iter().find_map(|(_, r)| r.as_ref().err()) {
        return err.response();
    }
    let at_ms = now_ms();
    let mut created = Vec::new();
    let mut errors = Vec::new();
    for (trace, result) in checked {
        match result {
            Ok(record) => {
                let trace = record.trace.clone();
                let id = insert(&inner, &mut store, object, record, at_ms, &Source::Api);
                created.push((id, trace));
            }
            Err(e) => errors.push(e.standard_error(trace.as_deref().unwrap_or_default())),
        }
    }
    inner.flush_events(&mut store);
    let mut results: Vec<(u64, Value)> = created
        .iter()
        .map(|(id, trace)| (*id, render_created(&store, object, *id, trace.as_deref())))
        .collect();
    drop(store);
    // HubSpot does not keep input order (match by id or objectWriteTraceId).
    results.sort_by_key(|(id, _)| id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut body = json!({
        "status": "COMPLETE",
        "results": results.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "startedAt": iso(started),
        "completedAt": iso(now_ms()),
    });
    if errors.is_empty() {
        json_response(StatusCode::CREATED, body)
    } else {
        body["numErrors"] = json!(errors.len());
        body["errors"] = Value::Array(errors);
        json_response(StatusCode::MULTI_STATUS, body)
    }
}
