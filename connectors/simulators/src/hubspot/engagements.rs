//! Engagement (activity) objects: `calls`, `emails`, `meetings`, `notes` and `tasks`
//! under `/crm/v3/objects/{type}` (create, batch/create, get one, list with paging,
//! batch/read, search) with their contact associations (create-time `associations`,
//! v4 reads both ways), and the contact rollups a logged activity moves.
//!
//! The object routes of `objects.rs`, `create.rs` and `search.rs` hand any of these five
//! path segments (or their type ids `0-48`, `0-49`, `0-47`, `0-46`, `0-27`) to this file.
//! [`log`] is the one path every engagement creation takes (API, batch and the control
//! API's `POST /__sim/touch`), so the rollups and their webhooks always follow.
//!
//! Facts from reference §14–15; decisions where HubSpot is undocumented:
//! - `hs_timestamp` is required (meetings default it to `hs_meeting_start_time`); a
//!   future value is accepted, as HubSpot does (tasks are due and meetings held later).
//! - Activity → contact association type ids 194/198/200/202/204, contact → activity
//!   193/197/199/201/203 (HUBSPOT_DEFINED); an unknown or archived contact fails the
//!   whole create with 400 `VALIDATION_ERROR`, nothing is written.
//! - Rollups on each associated contact, applied at once (no lag), moved only forward
//!   and never to a future time: every type moves `notes_last_updated`; calls, meetings
//!   and emails the rep sent (`hs_email_direction` `EMAIL`/`FORWARDED_EMAIL`) move
//!   `notes_last_contacted`, `num_contacted_notes`, `hs_last_sales_activity_timestamp`
//!   and `hs_last_sales_activity_type` (`CALL`, `MEETING`, `EMAIL`). Each moved value is a
//!   `contact.propertyChange` for subscribed properties and stamps the contact.
//! - Engagement ids share one sequence across the five types (starting at 10^9).
//! - Search: the index-lag rule of contacts applies; filters on any known property
//!   plus `associations.contact` (EQ); one sort; offset paging capped at 10,000.
//! - No webhooks for the engagements themselves (only the beta generic `object.*`
//!   subscriptions would carry them; reference trap 21).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Inner;
use super::clock::{iso, now_ms, parse_datetime};
use super::objects::{check_value, id_text, invalid_properties, pairs, parse_body, value_text};
use super::schema::{ObjectType, PropertyType};
use super::search::{SEARCH_CAP, SEARCH_LIMIT};
use super::state::{Source, Store};
use super::wire::{self, json_response, query_flag, query_list, query_one, validation};

/// The five engagement object types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Engagement {
    Calls,
    Emails,
    Meetings,
    Notes,
    Tasks,
}

const ALL: [Engagement; 5] = [
    Engagement::Calls,
    Engagement::Emails,
    Engagement::Meetings,
    Engagement::Notes,
    Engagement::Tasks,
];

const CALL_DIRECTIONS: &[&str] = &["INBOUND", "OUTBOUND"];
const CALL_STATUSES: &[&str] = &[
    "BUSY",
    "CALLING_CRM_USER",
    "CANCELED",
    "COMPLETED",
    "CONNECTING",
    "FAILED",
    "IN_PROGRESS",
    "NO_ANSWER",
    "QUEUED",
    "RINGING",
];
const EMAIL_DIRECTIONS: &[&str] = &["EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL"];
const EMAIL_STATUSES: &[&str] = &["BOUNCED", "FAILED", "SCHEDULED", "SENDING", "SENT"];
const MEETING_OUTCOMES: &[&str] = &[
    "SCHEDULED",
    "COMPLETED",
    "RESCHEDULED",
    "NO_SHOW",
    "CANCELED",
];
const TASK_STATUSES: &[&str] = &[
    "NOT_STARTED",
    "IN_PROGRESS",
    "WAITING",
    "COMPLETED",
    "DEFERRED",
];
const TASK_TYPES: &[&str] = &["CALL", "EMAIL", "LINKED_IN", "MEETING", "TODO"];
const TASK_PRIORITIES: &[&str] = &["NONE", "LOW", "MEDIUM", "HIGH"];

/// Properties every type has: (name, type, read-only).
const COMMON: &[(&str, PropertyType, bool)] = &[
    ("hs_timestamp", PropertyType::DateTime, false),
    ("hubspot_owner_id", PropertyType::Owner, false),
    ("hs_object_id", PropertyType::Number, true),
    ("hs_createdate", PropertyType::DateTime, true),
    ("hs_lastmodifieddate", PropertyType::DateTime, true),
];

impl Engagement {
    /// A path segment: the plural name, the singular or the object type id.
    pub(crate) fn from_path(segment: &str) -> Option<Engagement> {
        match segment {
            "calls" | "call" | "0-48" => Some(Engagement::Calls),
            "emails" | "email" | "0-49" => Some(Engagement::Emails),
            "meetings" | "meeting" | "0-47" => Some(Engagement::Meetings),
            "notes" | "note" | "0-46" => Some(Engagement::Notes),
            "tasks" | "task" | "0-27" => Some(Engagement::Tasks),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Engagement::Calls => "calls",
            Engagement::Emails => "emails",
            Engagement::Meetings => "meetings",
            Engagement::Notes => "notes",
            Engagement::Tasks => "tasks",
        }
    }

    fn singular(self) -> &'static str {
        match self {
            Engagement::Calls => "call",
            Engagement::Emails => "email",
            Engagement::Meetings => "meeting",
            Engagement::Notes => "note",
            Engagement::Tasks => "task",
        }
    }

    /// HUBSPOT_DEFINED association type id from this type to contacts.
    fn type_to_contact(self) -> u64 {
        match self {
            Engagement::Calls => 194,
            Engagement::Emails => 198,
            Engagement::Meetings => 200,
            Engagement::Notes => 202,
            Engagement::Tasks => 204,
        }
    }

    /// HUBSPOT_DEFINED association type id from contacts to this type.
    fn contact_to_type(self) -> u64 {
        self.type_to_contact() - 1
    }

    fn own_properties(self) -> &'static [(&'static str, PropertyType, bool)] {
        use PropertyType::{DateTime, Enumeration, Number, Text};
        match self {
            Engagement::Calls => &[
                ("hs_call_title", Text, false),
                ("hs_call_body", Text, false),
                ("hs_call_direction", Enumeration(CALL_DIRECTIONS), false),
                ("hs_call_status", Enumeration(CALL_STATUSES), false),
                ("hs_call_duration", Number, false),
                ("hs_call_disposition", Text, false),
                ("hs_call_to_number", Text, false),
                ("hs_call_from_number", Text, false),
            ],
            Engagement::Emails => &[
                ("hs_email_direction", Enumeration(EMAIL_DIRECTIONS), false),
                ("hs_email_status", Enumeration(EMAIL_STATUSES), false),
                ("hs_email_subject", Text, false),
                ("hs_email_text", Text, false),
                ("hs_email_html", Text, false),
            ],
            Engagement::Meetings => &[
                ("hs_meeting_title", Text, false),
                ("hs_meeting_body", Text, false),
                ("hs_meeting_start_time", DateTime, false),
                ("hs_meeting_end_time", DateTime, false),
                ("hs_meeting_outcome", Enumeration(MEETING_OUTCOMES), false),
                ("hs_meeting_location", Text, false),
            ],
            Engagement::Notes => &[("hs_note_body", Text, false)],
            Engagement::Tasks => &[
                ("hs_task_subject", Text, false),
                ("hs_task_body", Text, false),
                ("hs_task_status", Enumeration(TASK_STATUSES), false),
                ("hs_task_type", Enumeration(TASK_TYPES), false),
                ("hs_task_priority", Enumeration(TASK_PRIORITIES), false),
            ],
        }
    }

    fn property(self, name: &str) -> Option<(PropertyType, bool)> {
        self.own_properties()
            .iter()
            .chain(COMMON)
            .find(|(n, _, _)| *n == name)
            .map(|(_, kind, read_only)| (*kind, *read_only))
    }

    /// What a rollup calls this activity (`hs_last_sales_activity_type`), when it
    /// counts as contacting the person.
    fn contact_type(self, properties: &BTreeMap<String, String>) -> Option<&'static str> {
        match self {
            Engagement::Calls => Some("CALL"),
            Engagement::Meetings => Some("MEETING"),
            Engagement::Emails => match properties.get("hs_email_direction").map(String::as_str) {
                Some("INCOMING_EMAIL") => None,
                _ => Some("EMAIL"),
            },
            Engagement::Notes | Engagement::Tasks => None,
        }
    }
}

/// One engagement record.
#[derive(Debug, Clone)]
pub(crate) struct SimEngagement {
    pub(crate) id: u64,
    pub(crate) kind: Engagement,
    pub(crate) properties: BTreeMap<String, String>,
    pub(crate) created_at_ms: i64,
    pub(crate) updated_at_ms: i64,
    /// Associated contacts.
    pub(crate) contacts: BTreeSet<u64>,
}

/// Every engagement of the portal with its indexes.
#[derive(Debug, Clone, Default)]
pub(crate) struct EngagementTable {
    pub(crate) records: BTreeMap<u64, SimEngagement>,
    /// contact → engagements associated with it.
    pub(crate) by_contact: BTreeMap<u64, BTreeSet<u64>>,
    pub(crate) next_id: u64,
}

/// First engagement id (HubSpot's are large and share one space across types).
const FIRST_ID: u64 = 1_000_000_000;

/// Why an engagement cannot be logged.
#[derive(Debug, Clone)]
pub(crate) enum LogError {
    Invalid(Vec<Value>),
    Association(String),
}

impl LogError {
    fn response(&self) -> Response {
        match self {
            LogError::Invalid(details) => invalid_properties(details.clone()),
            LogError::Association(message) => validation(message.clone()),
        }
    }

    /// One line for the control API.
    pub(crate) fn message(&self) -> String {
        match self {
            LogError::Invalid(details) => details
                .iter()
                .filter_map(|d| d["message"].as_str())
                .collect::<Vec<_>>()
                .join("; "),
            LogError::Association(message) => message.clone(),
        }
    }
}

/// A checked engagement, ready to insert.
struct Checked {
    properties: BTreeMap<String, String>,
    contacts: BTreeSet<u64>,
}

#[derive(Deserialize)]
struct Target {
    id: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeSpec {
    #[serde(default)]
    association_category: Option<String>,
    association_type_id: Value,
}

#[derive(Deserialize)]
struct AssociationInput {
    to: Target,
    #[serde(default)]
    types: Vec<TypeSpec>,
}

/// `SimplePublicObjectInputForCreate` for an engagement.
#[derive(Deserialize)]
pub(crate) struct LogInput {
    #[serde(default)]
    properties: BTreeMap<String, Value>,
    #[serde(default)]
    associations: Vec<AssociationInput>,
}

fn fail(code: &str, name: &str, message: String) -> Value {
    json!({
        "isValid": false,
        "message": message,
        "error": code,
        "name": name,
        "localizedErrorMessage": message,
    })
}

fn check(store: &Store, kind: Engagement, input: &LogInput) -> Result<Checked, LogError> {
    let mut properties = BTreeMap::new();
    let mut details = Vec::new();
    for (name, value) in &input.properties {
        let value = value_text(value);
        let checked = match kind.property(name) {
            None => Err(fail(
                "PROPERTY_DOESNT_EXIST",
                name,
                format!("Property \"{name}\" does not exist"),
            )),
            Some((_, true)) => Err(fail(
                "READ_ONLY_VALUE",
                name,
                format!("{name} is a read only property; its value cannot be set."),
            )),
            Some((property_type, false)) => check_value(store, name, property_type, &value),
        };
        match checked {
            Err(detail) => details.push(detail),
            Ok(()) if !value.is_empty() => {
                properties.insert(name.clone(), value);
            }
            Ok(()) => {}
        }
    }
    if kind == Engagement::Meetings && !properties.contains_key("hs_timestamp") {
        if let Some(start) = properties.get("hs_meeting_start_time").cloned() {
            properties.insert("hs_timestamp".into(), start);
        }
    }
    if !properties.contains_key("hs_timestamp") {
        details.push(fail(
            "REQUIRED_PROPERTY",
            "hs_timestamp",
            format!(
                "hs_timestamp is required on {}: when the activity happened (epoch ms or ISO-8601)",
                kind.as_str()
            ),
        ));
    }
    if !details.is_empty() {
        return Err(LogError::Invalid(details));
    }
    // Stored as HubSpot serves datetimes: ISO-8601 with milliseconds.
    for name in [
        "hs_timestamp",
        "hs_meeting_start_time",
        "hs_meeting_end_time",
    ] {
        if let Some(ms) = properties.get(name).and_then(|v| parse_datetime(v)) {
            properties.insert(name.into(), iso(ms));
        }
    }
    let mut contacts = BTreeSet::new();
    for association in &input.associations {
        let target = id_text(&association.to.id);
        for spec in &association.types {
            let category = spec
                .association_category
                .as_deref()
                .unwrap_or("HUBSPOT_DEFINED");
            let type_id = id_text(&spec.association_type_id);
            if category != "HUBSPOT_DEFINED" || type_id != kind.type_to_contact().to_string() {
                return Err(LogError::Association(format!(
                    "invalid association type {category}/{type_id} from {} to contact; use HUBSPOT_DEFINED {}",
                    kind.singular(),
                    kind.type_to_contact()
                )));
            }
        }
        let live = target
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|n| store.contacts.resolve(n))
            .filter(|n| store.contacts.is_live(*n));
        let Some(contact) = live else {
            return Err(LogError::Association(format!(
                "Association target {target} is not a live contact; associate an existing contact id"
            )));
        };
        contacts.insert(contact);
    }
    Ok(Checked {
        properties,
        contacts,
    })
}

/// Inserts a checked engagement and moves the associated contacts' rollups.
fn insert(
    store: &mut Store,
    kind: Engagement,
    checked: Checked,
    at_ms: i64,
    source: &Source,
) -> u64 {
    let table = &mut store.engagements;
    let id = table.next_id.max(FIRST_ID);
    table.next_id = id + 1;
    let mut properties = checked.properties;
    properties.insert("hs_object_id".into(), id.to_string());
    properties.insert("hs_createdate".into(), iso(at_ms));
    properties.insert("hs_lastmodifieddate".into(), iso(at_ms));
    let activity_ms = properties
        .get("hs_timestamp")
        .and_then(|t| parse_datetime(t))
        .unwrap_or(at_ms);
    for contact in &checked.contacts {
        table.by_contact.entry(*contact).or_default().insert(id);
    }
    let contact_type = kind.contact_type(&properties);
    table.records.insert(
        id,
        SimEngagement {
            id,
            kind,
            properties,
            created_at_ms: at_ms,
            updated_at_ms: at_ms,
            contacts: checked.contacts.clone(),
        },
    );
    // Rollups never move backwards nor into the future.
    if activity_ms <= at_ms {
        for contact in checked.contacts {
            bump_contact(store, contact, activity_ms, contact_type, at_ms, source);
        }
    }
    id
}

fn bump_contact(
    store: &mut Store,
    contact: u64,
    activity_ms: i64,
    contact_type: Option<&'static str>,
    at_ms: i64,
    source: &Source,
) {
    let Some(record) = store.contacts.records.get(&contact) else {
        return;
    };
    let later = |name: &str| {
        record
            .properties
            .get(name)
            .and_then(|v| parse_datetime(v))
            .is_none_or(|old| activity_ms > old)
    };
    let mut values = BTreeMap::new();
    if later("notes_last_updated") {
        values.insert("notes_last_updated".to_owned(), iso(activity_ms));
    }
    if let Some(contact_type) = contact_type {
        let count = record
            .properties
            .get("num_contacted_notes")
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        values.insert("num_contacted_notes".to_owned(), (count + 1).to_string());
        if later("notes_last_contacted") {
            values.insert("notes_last_contacted".to_owned(), iso(activity_ms));
        }
        if later("hs_last_sales_activity_timestamp") {
            values.insert(
                "hs_last_sales_activity_timestamp".to_owned(),
                iso(activity_ms),
            );
            values.insert(
                "hs_last_sales_activity_type".to_owned(),
                contact_type.to_owned(),
            );
        }
    }
    store.set_properties(ObjectType::Contacts, contact, &values, at_ms, source);
}

/// Logs engagements all-or-nothing: every input is checked before any is written.
/// The one creation path (API, batch, control API). Webhook events are flushed.
pub(crate) fn log(
    inner: &Inner,
    kind: Engagement,
    inputs: &[LogInput],
    source: &Source,
) -> Result<Vec<u64>, LogError> {
    let mut store = inner.store.write();
    let mut checked = Vec::with_capacity(inputs.len());
    for input in inputs {
        checked.push(check(&store, kind, input)?);
    }
    let at_ms = now_ms();
    let ids = checked
        .into_iter()
        .map(|c| insert(&mut store, kind, c, at_ms, source))
        .collect();
    inner.flush_events(&mut store);
    Ok(ids)
}

/// Renders an engagement (`SimplePublicObject`): requested properties (known ones,
/// unset = `null`) plus `hs_createdate`, `hs_lastmodifieddate`, `hs_object_id`.
fn render(record: &SimEngagement, requested: Option<&[String]>, with_contacts: bool) -> Value {
    let mut properties = Map::new();
    let mut put = |name: &str| {
        if properties.contains_key(name) || record.kind.property(name).is_none() {
            return;
        }
        let value = record
            .properties
            .get(name)
            .map_or(Value::Null, |v| Value::String(v.clone()));
        properties.insert(name.to_owned(), value);
    };
    for name in requested.unwrap_or_default() {
        put(name);
    }
    for name in ["hs_createdate", "hs_lastmodifieddate", "hs_object_id"] {
        put(name);
    }
    let mut body = json!({
        "id": record.id.to_string(),
        "properties": properties,
        "createdAt": iso(record.created_at_ms),
        "updatedAt": iso(record.updated_at_ms),
        "archived": false,
    });
    if with_contacts && !record.contacts.is_empty() {
        let label = format!("{}_to_contact", record.kind.singular());
        let results: Vec<Value> = record
            .contacts
            .iter()
            .map(|c| json!({"id": c.to_string(), "type": label}))
            .collect();
        body["associations"] = json!({"contacts": {"results": results}});
    }
    body
}

fn wants_contacts(q: &[(String, String)]) -> bool {
    query_list(q, "associations").is_some_and(|list| {
        list.iter()
            .any(|t| ObjectType::from_path(t) == Some(ObjectType::Contacts))
    })
}

fn not_found(kind: Engagement, id: &str) -> Response {
    wire::error_with(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        format!("Object not found. No {} with id {id}.", kind.singular()),
        None,
        json!({ "id": [id] }),
        Vec::new(),
    )
}

/// `POST /crm/v3/objects/{type}`: 201 with the record.
pub(crate) fn create_one(inner: &Arc<Inner>, kind: Engagement, body: &Bytes) -> Response {
    let input: LogInput = match parse_body(body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match log(inner, kind, std::slice::from_ref(&input), &Source::Api) {
        Ok(ids) => {
            let store = inner.store.read();
            match ids.first().and_then(|id| store.engagements.records.get(id)) {
                Some(record) => {
                    let names: Vec<String> = input.properties.keys().cloned().collect();
                    json_response(StatusCode::CREATED, render(record, Some(&names), false))
                }
                None => wire::server_error(500),
            }
        }
        Err(err) => err.response(),
    }
}

#[derive(Deserialize)]
struct BatchCreate {
    inputs: Vec<LogInput>,
}

/// `POST /crm/v3/objects/{type}/batch/create`: all-or-nothing, 201.
pub(crate) fn batch_create(inner: &Arc<Inner>, kind: Engagement, body: &Bytes) -> Response {
    let started = now_ms();
    let batch: BatchCreate = match parse_body(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if batch.inputs.len() > super::objects::BATCH_LIMIT {
        return super::objects::too_many(batch.inputs.len());
    }
    match log(inner, kind, &batch.inputs, &Source::Api) {
        Ok(ids) => {
            let store = inner.store.read();
            let results: Vec<Value> = ids
                .iter()
                .zip(&batch.inputs)
                .filter_map(|(id, input)| {
                    let names: Vec<String> = input.properties.keys().cloned().collect();
                    store
                        .engagements
                        .records
                        .get(id)
                        .map(|r| render(r, Some(&names), false))
                })
                .collect();
            json_response(
                StatusCode::CREATED,
                json!({
                    "status": "COMPLETE",
                    "results": results,
                    "startedAt": iso(started),
                    "completedAt": iso(now_ms()),
                }),
            )
        }
        Err(err) => err.response(),
    }
}

/// `GET /crm/v3/objects/{type}/{id}`.
pub(crate) fn get_one(
    inner: &Arc<Inner>,
    kind: Engagement,
    id: &str,
    raw: Option<String>,
) -> Response {
    let q = pairs(raw);
    let requested = query_list(&q, "properties");
    let store = inner.store.read();
    match id
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| store.engagements.records.get(&n))
        .filter(|r| r.kind == kind)
    {
        Some(record) => json_response(
            StatusCode::OK,
            render(record, requested.as_deref(), wants_contacts(&q)),
        ),
        None => not_found(kind, id),
    }
}

/// `GET /crm/v3/objects/{type}`: by id, `limit` ≤ 100, `after` = the next id.
pub(crate) fn list(inner: &Arc<Inner>, kind: Engagement, raw: Option<String>) -> Response {
    let q = pairs(raw);
    let limit = match query_one(&q, "limit").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(n)) if (1..=super::objects::LIST_LIMIT).contains(&n) => n,
        Some(_) => {
            return validation(format!(
                "limit must be between 1 and {}",
                super::objects::LIST_LIMIT
            ));
        }
    };
    let after = match query_one(&q, "after").map(str::parse::<u64>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return validation("after must be a paging cursor from a previous page"),
    };
    // No engagement is ever archived here, so an archived listing is empty.
    let archived = query_flag(&q, "archived");
    let requested = query_list(&q, "properties");
    let with_contacts = wants_contacts(&q);
    let store = inner.store.read();
    let mut page: Vec<&SimEngagement> = store
        .engagements
        .records
        .range(after..)
        .map(|(_, r)| r)
        .filter(|r| r.kind == kind && !archived)
        .take(limit + 1)
        .collect();
    let next = (page.len() > limit).then(|| page[limit].id);
    page.truncate(limit);
    let results: Vec<Value> = page
        .iter()
        .map(|r| render(r, requested.as_deref(), with_contacts))
        .collect();
    let mut body = json!({ "results": results });
    if let Some(next) = next {
        body["paging"] =
            json!({"next": {"after": next.to_string(), "link": format!("?after={next}")}});
    }
    json_response(StatusCode::OK, body)
}

#[derive(Deserialize)]
struct ReadInput {
    id: Value,
}

#[derive(Deserialize)]
struct BatchRead {
    inputs: Vec<ReadInput>,
    #[serde(default)]
    properties: Vec<String>,
}

/// `POST /crm/v3/objects/{type}/batch/read`: 200, or 207 with `OBJECT_NOT_FOUND`s.
pub(crate) fn batch_read(inner: &Arc<Inner>, kind: Engagement, body: &Bytes) -> Response {
    let started = now_ms();
    let batch: BatchRead = match parse_body(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if batch.inputs.len() > super::objects::BATCH_LIMIT {
        return super::objects::too_many(batch.inputs.len());
    }
    let store = inner.store.read();
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for input in &batch.inputs {
        let id = id_text(&input.id);
        match id
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|n| store.engagements.records.get(&n))
            .filter(|r| r.kind == kind)
        {
            Some(record) => results.push(render(record, Some(&batch.properties), false)),
            None => missing.push(id),
        }
    }
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(started),
        "completedAt": iso(now_ms()),
    });
    if missing.is_empty() {
        return json_response(StatusCode::OK, body);
    }
    body["numErrors"] = json!(1);
    body["errors"] = json!([wire::standard_error(
        "OBJECT_NOT_FOUND",
        &format!(
            "Could not get some {} objects, they may be deleted or not exist.",
            kind.singular()
        ),
        json!({ "ids": missing }),
        None,
    )]);
    json_response(StatusCode::MULTI_STATUS, body)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    property_name: String,
    operator: String,
    #[serde(default)]
    value: Option<Value>,
}

#[derive(Deserialize, Default)]
struct Group {
    #[serde(default)]
    filters: Vec<Filter>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Sort {
    Object {
        #[serde(rename = "propertyName")]
        property_name: String,
        #[serde(default)]
        direction: Option<String>,
    },
    Text(String),
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SearchBody {
    #[serde(default)]
    filter_groups: Vec<Group>,
    #[serde(default)]
    sorts: Vec<Sort>,
    #[serde(default)]
    properties: Vec<String>,
    #[serde(default)]
    limit: Option<Value>,
    #[serde(default)]
    after: Option<Value>,
}

/// A comparable value: datetimes (epoch ms or ISO) and numbers as numbers.
fn comparable(kind: Engagement, name: &str, value: &str) -> Option<i128> {
    match kind.property(name).map(|(t, _)| t) {
        Some(PropertyType::DateTime) => parse_datetime(value).map(i128::from),
        _ => value.trim().parse::<i128>().ok(),
    }
}

fn matches(record: &SimEngagement, filter: &Filter) -> bool {
    let wanted = filter.value.as_ref().map(value_text).unwrap_or_default();
    if filter.property_name == "associations.contact" {
        return wanted
            .trim()
            .parse::<u64>()
            .is_ok_and(|c| record.contacts.contains(&c));
    }
    let stored = record.properties.get(&filter.property_name);
    match filter.operator.as_str() {
        "HAS_PROPERTY" => return stored.is_some(),
        "NOT_HAS_PROPERTY" => return stored.is_none(),
        _ => {}
    }
    let Some(stored) = stored else {
        return filter.operator == "NEQ";
    };
    let name = filter.property_name.as_str();
    let ordering = match (
        comparable(record.kind, name, stored),
        comparable(record.kind, name, &wanted),
    ) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => stored.as_str().cmp(wanted.as_str()),
    };
    match filter.operator.as_str() {
        "EQ" => ordering.is_eq(),
        "NEQ" => !ordering.is_eq(),
        "GT" => ordering.is_gt(),
        "GTE" => ordering.is_ge(),
        "LT" => ordering.is_lt(),
        "LTE" => ordering.is_le(),
        _ => false,
    }
}

const OPERATORS: &[&str] = &[
    "EQ",
    "NEQ",
    "GT",
    "GTE",
    "LT",
    "LTE",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
];

/// `POST /crm/v3/objects/{type}/search`.
pub(crate) fn search(inner: &Arc<Inner>, kind: Engagement, body: &Bytes) -> Response {
    let body: SearchBody = if body.is_empty() {
        SearchBody::default()
    } else {
        match parse_body(body) {
            Ok(b) => b,
            Err(r) => return r,
        }
    };
    for filter in body.filter_groups.iter().flat_map(|g| &g.filters) {
        if !OPERATORS.contains(&filter.operator.as_str()) {
            return validation(format!("Unknown filter operator: {}", filter.operator));
        }
        if filter.property_name != "associations.contact"
            && kind.property(&filter.property_name).is_none()
        {
            return validation(format!(
                "Invalid filter: property {} does not exist on {}",
                filter.property_name,
                kind.as_str()
            ));
        }
    }
    if body.filter_groups.len() > 5 || body.filter_groups.iter().any(|g| g.filters.len() > 10) {
        return validation("Too many filters: at most 5 filterGroups and 10 filters per group");
    }
    if body.sorts.len() > 1 {
        return validation("Only one sort is allowed per search request");
    }
    let limit = match body.limit.as_ref().map(value_text) {
        None => 10,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=SEARCH_LIMIT).contains(&n) => n,
            _ => return validation(format!("limit must be between 1 and {SEARCH_LIMIT}")),
        },
    };
    let offset = match body.after.as_ref().map(value_text) {
        None => 0,
        Some(t) if t.is_empty() => 0,
        Some(t) => match t.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return validation(format!("after must be a numeric offset, got {t:?}")),
        },
    };
    if offset >= SEARCH_CAP {
        return validation(format!(
            "The search API cannot page past {SEARCH_CAP} results (after={offset}); narrow the query, e.g. by hs_lastmodifieddate"
        ));
    }
    let (sort, descending) = match body.sorts.first() {
        Some(Sort::Object {
            property_name,
            direction,
        }) => (
            property_name.clone(),
            direction
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case("DESCENDING")),
        ),
        Some(Sort::Text(t)) => match t.strip_prefix('-') {
            Some(name) => (name.to_owned(), true),
            None => (t.clone(), false),
        },
        None => ("hs_object_id".to_owned(), false),
    };
    if kind.property(&sort).is_none() {
        return validation(format!(
            "Invalid sort: property {sort} does not exist on {}",
            kind.as_str()
        ));
    }
    let lag_ms = i64::try_from(inner.config.search_lag.as_millis()).unwrap_or(i64::MAX);
    let visible_before = now_ms().saturating_sub(lag_ms);
    let store = inner.store.read();
    let mut hits: Vec<&SimEngagement> = store
        .engagements
        .records
        .values()
        .filter(|r| r.kind == kind && r.updated_at_ms <= visible_before)
        .filter(|r| {
            let groups: Vec<&Group> = body
                .filter_groups
                .iter()
                .filter(|g| !g.filters.is_empty())
                .collect();
            groups.is_empty()
                || groups
                    .iter()
                    .any(|g| g.filters.iter().all(|f| matches(r, f)))
        })
        .collect();
    let key = |r: &SimEngagement| -> (i128, u64) {
        let value = r
            .properties
            .get(&sort)
            .and_then(|v| comparable(kind, &sort, v))
            .unwrap_or(i128::MIN);
        (value, r.id)
    };
    hits.sort_by_key(|r| key(r));
    if descending {
        hits.reverse();
    }
    let total = hits.len();
    let end = (offset + limit).min(total);
    let results: Vec<Value> = hits[offset.min(end)..end]
        .iter()
        .map(|r| render(r, Some(&body.properties), false))
        .collect();
    let mut out = json!({ "total": total, "results": results });
    if end < total && end < SEARCH_CAP {
        out["paging"] = json!({"next": {"after": end.to_string(), "link": ""}});
    }
    json_response(StatusCode::OK, out)
}

/// v4 association reads involving engagements: `(from, to)` where one side is an
/// engagement type and the other contacts. `None` when neither is an engagement.
pub(crate) fn links(
    store: &Store,
    from: &str,
    to: &str,
    id: u64,
) -> Option<Result<Vec<(u64, u64)>, Response>> {
    let from_engagement = Engagement::from_path(from);
    let to_engagement = Engagement::from_path(to);
    match (from_engagement, to_engagement) {
        (Some(kind), None) if ObjectType::from_path(to) == Some(ObjectType::Contacts) => {
            Some(Ok(store
                .engagements
                .records
                .get(&id)
                .filter(|r| r.kind == kind)
                .map(|r| {
                    r.contacts
                        .iter()
                        .filter(|c| store.contacts.is_live(**c))
                        .map(|c| (*c, kind.type_to_contact()))
                        .collect()
                })
                .unwrap_or_default()))
        }
        (None, Some(kind)) if ObjectType::from_path(from) == Some(ObjectType::Contacts) => {
            let contact = store.contacts.resolve(id).unwrap_or(id);
            Some(Ok(store
                .engagements
                .by_contact
                .get(&contact)
                .map(|ids| {
                    ids.iter()
                        .filter(|e| {
                            store
                                .engagements
                                .records
                                .get(e)
                                .is_some_and(|r| r.kind == kind)
                        })
                        .map(|e| (*e, kind.contact_to_type()))
                        .collect()
                })
                .unwrap_or_default()))
        }
        (Some(_), _) | (_, Some(_)) => Some(Err(validation(format!(
            "associations between {from} and {to} are not served by this simulator; read engagement ↔ contacts"
        )))),
        _ => None,
    }
}

/// One v4 association entry (`toObjectId` a number, trap 15).
pub(crate) fn link_json(to_id: u64, type_id: u64) -> Value {
    json!({
        "toObjectId": to_id,
        "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": null}],
    })
}

/// `POST /__sim/touch`: a rep touches a contact through the same path as the public
/// API (a call by default, by the contact's owner, now). Body:
/// `{"contactId": "12", "type": "calls", "ownerId": "7", "at": "2026-…" | ms,
///   "direction": "OUTBOUND"}`; every field but `contactId` is optional. A time in the
/// future is refused (a touch has happened); use the public API to schedule.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TouchBody {
    contact_id: Value,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    owner_id: Option<Value>,
    #[serde(default)]
    at: Option<Value>,
    #[serde(default)]
    direction: Option<String>,
}

pub(crate) async fn post_touch(
    State(inner): State<Arc<Inner>>,
    Json(body): Json<TouchBody>,
) -> Response {
    let kind_text = body.kind.as_deref().unwrap_or("calls");
    let Some(kind) = Engagement::from_path(kind_text) else {
        let known: Vec<&str> = ALL.iter().map(|k| k.as_str()).collect();
        return validation(format!(
            "unknown activity type {kind_text:?}; use one of {known:?}"
        ));
    };
    let contact_text = id_text(&body.contact_id);
    let now = now_ms();
    let at = match body.at.as_ref().map(value_text) {
        None => now,
        Some(text) => match parse_datetime(&text) {
            Some(ms) if ms <= now => ms,
            Some(_) => {
                return validation(format!(
                    "at {text} is in the future; a touch has already happened (log a scheduled task or meeting through /crm/v3/objects instead)"
                ));
            }
            None => return validation(format!("at {text:?} is not epoch ms nor ISO-8601")),
        },
    };
    let (owner, user_id) = {
        let store = inner.store.read();
        let Some(contact) = contact_text
            .parse::<u64>()
            .ok()
            .and_then(|id| store.contacts.live(id))
        else {
            return not_found_contact(&contact_text);
        };
        let owner = body
            .owner_id
            .as_ref()
            .map(value_text)
            .or_else(|| contact.properties.get("hubspot_owner_id").cloned());
        let user_id = owner
            .as_deref()
            .and_then(|o| o.parse::<u64>().ok())
            .and_then(|o| store.owners.get(&o))
            .map(|o| o.user_id);
        (owner, user_id)
    };
    let mut properties = BTreeMap::new();
    properties.insert("hs_timestamp".to_owned(), Value::String(at.to_string()));
    if let Some(owner) = owner {
        properties.insert("hubspot_owner_id".to_owned(), Value::String(owner));
    }
    match kind {
        Engagement::Calls => {
            let direction = body.direction.unwrap_or_else(|| "OUTBOUND".into());
            properties.insert("hs_call_direction".into(), Value::String(direction));
            properties.insert("hs_call_status".into(), Value::String("COMPLETED".into()));
        }
        Engagement::Emails => {
            let direction = body.direction.unwrap_or_else(|| "EMAIL".into());
            properties.insert("hs_email_direction".into(), Value::String(direction));
        }
        Engagement::Tasks => {
            properties.insert("hs_task_status".into(), Value::String("COMPLETED".into()));
        }
        Engagement::Meetings => {
            properties.insert(
                "hs_meeting_outcome".into(),
                Value::String("COMPLETED".into()),
            );
        }
        Engagement::Notes => {}
    }
    let input = LogInput {
        properties,
        associations: vec![AssociationInput {
            to: Target {
                id: Value::String(contact_text),
            },
            types: vec![TypeSpec {
                association_category: Some("HUBSPOT_DEFINED".into()),
                association_type_id: json!(kind.type_to_contact()),
            }],
        }],
    };
    let source = match user_id {
        Some(user_id) => Source::Ui { user_id },
        None => Source::Api,
    };
    match log(&inner, kind, std::slice::from_ref(&input), &source) {
        Ok(ids) => json_response(
            StatusCode::CREATED,
            json!({"id": ids.first().map(u64::to_string), "type": kind.as_str()}),
        ),
        Err(err) => validation(err.message()),
    }
}

fn not_found_contact(id: &str) -> Response {
    wire::error_with(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        format!("Object not found. No contact with id {id}."),
        None,
        json!({ "id": [id] }),
        Vec::new(),
    )
}
