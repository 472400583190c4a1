//! v4 associations between contacts and companies: batch read (≤1,000
//! inputs, numeric `toObjectId`, primary 1/2 + unlabeled 279/280, per-input
//! paging, 207 `NO_ASSOCIATIONS_FOUND` for ids without links), the per-record
//! list, and the PUT/DELETE writes (a new primary demotes the old one).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Inner;
use super::clock::{iso, now_ms};
use super::engagements;
use super::objects::{object_type, pairs, parse_body};
use super::schema::ObjectType;
use super::state::{Source, Store};
use super::wire::{json_response, query_one, standard_error, validation};

/// Most inputs of a v4 batch read (enforced since 2025-02-10).
pub(crate) const ASSOC_BATCH_LIMIT: usize = 1_000;
const PER_RECORD_LIMIT: usize = 500;

fn type_specs(from: ObjectType, primary: bool) -> Value {
    let (primary_id, unlabeled_id) = match from {
        ObjectType::Contacts => (1, 279),
        ObjectType::Companies => (2, 280),
    };
    let mut specs = Vec::new();
    if primary {
        specs
            .push(json!({"category": "HUBSPOT_DEFINED", "typeId": primary_id, "label": "Primary"}));
    }
    specs.push(json!({"category": "HUBSPOT_DEFINED", "typeId": unlabeled_id, "label": null}));
    Value::Array(specs)
}

/// `toObjectId` is a JSON number on the live API (the spec says string).
fn link(from: ObjectType, to_id: u64, primary: bool) -> Value {
    json!({"toObjectId": to_id, "associationTypes": type_specs(from, primary)})
}

fn cursor(id: u64, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{id}-{offset}"))
}

fn parse_cursor(text: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    raw.rsplit_once('-')?.1.parse().ok()
}

/// The object types of a read: any pair HubSpot serves, same-type included (tools that
/// extract a portal read contact↔contact associations too).
fn read_pair(from: &str, to: &str) -> Result<(ObjectType, ObjectType), Response> {
    Ok((object_type(from)?, object_type(to)?))
}

/// The object types of a write: only contact↔company links can be made here.
fn pair(from: &str, to: &str) -> Result<(ObjectType, ObjectType), Response> {
    let from = object_type(from)?;
    let to = object_type(to)?;
    if from == to {
        return Err(validation(format!(
            "The simulator serves only contact↔company associations, not {}→{}",
            from.as_str(),
            to.as_str()
        )));
    }
    Ok((from, to))
}

#[derive(Deserialize)]
struct ReadInput {
    id: Value,
    #[serde(default)]
    after: Option<String>,
}

#[derive(Deserialize)]
struct ReadBody {
    inputs: Vec<ReadInput>,
}

/// Live links of `from` record `id` to objects of type `to`. The simulated portal has
/// only contact↔company links, so a same-type read (contact↔contact, company↔company:
/// valid on HubSpot, e.g. parent/child companies are read elsewhere) finds none.
fn live_links(store: &Store, from: ObjectType, to: ObjectType, id: u64) -> Vec<(u64, bool)> {
    if from != to && store.table(from).is_live(id) {
        store.associated(from, id)
    } else {
        Vec::new()
    }
}

/// `POST /crm/v4/associations/{from}/{to}/batch/read`.
pub(crate) async fn batch_read(
    State(inner): State<Arc<Inner>>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let started = now_ms();
    let engagement_pair = {
        let store = inner.store.read();
        engagements::links(&store, &from, &to, 0).map(|r| r.map(|_| ()))
    };
    if let Some(pair) = engagement_pair {
        if let Err(r) = pair {
            return r;
        }
        return engagement_batch_read(&inner, &from, &to, started, &body);
    }
    let (from, to) = match read_pair(&from, &to) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let body: ReadBody = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if body.inputs.len() > ASSOC_BATCH_LIMIT {
        return validation(format!(
            "Batch input limit exceeded: {} inputs; at most {ASSOC_BATCH_LIMIT} are allowed",
            body.inputs.len()
        ));
    }
    let page_size = inner.config.association_page_size.max(1);
    let store = inner.store.read();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in &body.inputs {
        let id_text = match &input.id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let links = id_text
            .parse::<u64>()
            .map(|id| live_links(&store, from, to, id))
            .unwrap_or_default();
        if links.is_empty() {
            errors.push(standard_error(
                "OBJECT_NOT_FOUND",
                &format!(
                    "No {} is associated with {} {id_text}.",
                    to.singular(),
                    from.singular()
                ),
                json!({
                    "fromObjectId": [id_text],
                    "fromObjectType": [from.singular()],
                    "toObjectType": [to.singular()],
                }),
                Some("crm.associations.NO_ASSOCIATIONS_FOUND"),
            ));
            continue;
        }
        let offset = input.after.as_deref().and_then(parse_cursor).unwrap_or(0);
        let end = (offset + page_size).min(links.len());
        let to_list: Vec<Value> = links[offset.min(end)..end]
            .iter()
            .map(|(other, primary)| link(from, *other, *primary))
            .collect();
        let mut entry = json!({"from": {"id": id_text}, "to": to_list});
        if end < links.len() {
            let id = id_text.parse::<u64>().unwrap_or(0);
            let after = cursor(id, end);
            entry["paging"] = json!({"next": {"after": after}});
        }
        results.push(entry);
    }
    let mut response = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(started),
        "completedAt": iso(now_ms()),
    });
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        response["numErrors"] = json!(errors.len());
        response["errors"] = Value::Array(errors);
        StatusCode::MULTI_STATUS
    };
    json_response(status, response)
}

/// `GET /crm/v4/objects/{from}/{id}/associations/{to}`.
pub(crate) async fn list_for(
    State(inner): State<Arc<Inner>>,
    Path((from, id, to)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let engagement_links = {
        let store = inner.store.read();
        id.parse::<u64>()
            .ok()
            .and_then(|n| engagements::links(&store, &from, &to, n))
            .or_else(|| engagements::links(&store, &from, &to, 0).map(|_| Ok(Vec::new())))
    };
    if let Some(found) = engagement_links {
        return match found {
            Ok(links) => {
                let results: Vec<Value> = links
                    .iter()
                    .map(|(other, type_id)| engagements::link_json(*other, *type_id))
                    .collect();
                json_response(StatusCode::OK, json!({ "results": results }))
            }
            Err(r) => r,
        };
    }
    let (from, to) = match read_pair(&from, &to) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let q = pairs(raw);
    let limit = match query_one(&q, "limit").map(str::parse::<usize>) {
        None => PER_RECORD_LIMIT,
        Some(Ok(n)) if (1..=PER_RECORD_LIMIT).contains(&n) => n,
        Some(_) => return validation(format!("limit must be between 1 and {PER_RECORD_LIMIT}")),
    };
    let offset = query_one(&q, "after").and_then(parse_cursor).unwrap_or(0);
    let store = inner.store.read();
    let id_num = id.parse::<u64>().ok();
    let links = id_num
        .and_then(|n| store.table(from).resolve(n))
        .map(|n| live_links(&store, from, to, n))
        .unwrap_or_default();
    let end = (offset + limit).min(links.len());
    let results: Vec<Value> = links[offset.min(end)..end]
        .iter()
        .map(|(other, primary)| link(from, *other, *primary))
        .collect();
    let mut body = json!({ "results": results });
    if end < links.len() {
        let after = cursor(id_num.unwrap_or(0), end);
        body["paging"] = json!({"next": {"after": after, "link": format!("?after={after}")}});
    }
    json_response(StatusCode::OK, body)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssocSpec {
    #[serde(default)]
    association_category: Option<String>,
    association_type_id: u32,
}

/// (contact, company) of a path pair, whichever direction it was written.
fn contact_company(from: ObjectType, id: &str, to_id: &str) -> Result<(u64, u64), Response> {
    let (Ok(a), Ok(b)) = (id.parse::<u64>(), to_id.parse::<u64>()) else {
        return Err(validation("object ids must be numeric"));
    };
    Ok(match from {
        ObjectType::Contacts => (a, b),
        ObjectType::Companies => (b, a),
    })
}

fn check_live(store: &Store, contact: u64, company: u64) -> Result<(), Response> {
    if !store.contacts.is_live(contact) {
        return Err(super::wire::not_found(
            ObjectType::Contacts,
            &contact.to_string(),
        ));
    }
    if !store.companies.is_live(company) {
        return Err(super::wire::not_found(
            ObjectType::Companies,
            &company.to_string(),
        ));
    }
    Ok(())
}

/// `PUT /crm/v4/objects/{from}/{id}/associations/{to}/{toId}` with labels.
pub(crate) async fn put_labeled(
    State(inner): State<Arc<Inner>>,
    Path((from, id, to, to_id)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Response {
    let (from, to) = match pair(&from, &to) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let specs: Vec<AssocSpec> = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    for spec in &specs {
        let known = matches!(spec.association_type_id, 1 | 2 | 279 | 280);
        let category_ok = spec
            .association_category
            .as_deref()
            .is_none_or(|c| c == "HUBSPOT_DEFINED");
        if !known || !category_ok {
            return validation(format!(
                "association type {} is not valid between {} and {}",
                spec.association_type_id,
                from.as_str(),
                to.as_str()
            ));
        }
    }
    let primary = specs.iter().any(|s| matches!(s.association_type_id, 1 | 2));
    let (contact, company) = match contact_company(from, &id, &to_id) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut store = inner.store.write();
    if let Err(r) = check_live(&store, contact, company) {
        return r;
    }
    store.associate(contact, company, primary, now_ms(), &Source::Api);
    inner.flush_events(&mut store);
    let labels: Vec<&str> = if primary { vec!["Primary"] } else { Vec::new() };
    json_response(
        StatusCode::CREATED,
        json!({
            "fromObjectTypeId": from.type_id(),
            "fromObjectId": id,
            "toObjectTypeId": to.type_id(),
            "toObjectId": to_id,
            "labels": labels,
        }),
    )
}

/// `PUT /crm/v4/objects/{from}/{id}/associations/default/{to}/{toId}`.
pub(crate) async fn put_default(
    State(inner): State<Arc<Inner>>,
    Path((from, id, to, to_id)): Path<(String, String, String, String)>,
) -> Response {
    let started = now_ms();
    let (from, _to) = match pair(&from, &to) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (contact, company) = match contact_company(from, &id, &to_id) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut store = inner.store.write();
    if let Err(r) = check_live(&store, contact, company) {
        return r;
    }
    store.associate(contact, company, false, now_ms(), &Source::Api);
    inner.flush_events(&mut store);
    let type_id = match from {
        ObjectType::Contacts => 279,
        ObjectType::Companies => 280,
    };
    json_response(
        StatusCode::OK,
        json!({
            "status": "COMPLETE",
            "results": [{
                "from": {"id": id},
                "to": {"id": to_id},
                "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id},
            }],
            "startedAt": iso(started),
            "completedAt": iso(now_ms()),
        }),
    )
}

/// `DELETE /crm/v4/objects/{from}/{id}/associations/{to}/{toId}`: removes
/// every link of the pair → 204.
pub(crate) async fn delete(
    State(inner): State<Arc<Inner>>,
    Path((from, id, to, to_id)): Path<(String, String, String, String)>,
) -> Response {
    let (from, _to) = match pair(&from, &to) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (contact, company) = match contact_company(from, &id, &to_id) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut store = inner.store.write();
    store.disassociate(contact, company, now_ms(), &Source::Api);
    inner.flush_events(&mut store);
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /crm/v4/associations/{engagement|contacts}/{contacts|engagement}/batch/read`:
/// inputs without links are `NO_ASSOCIATIONS_FOUND` errors (207), as for contacts.
fn engagement_batch_read(
    inner: &Inner,
    from: &str,
    to: &str,
    started: i64,
    body: &Bytes,
) -> Response {
    let body: ReadBody = match parse_body(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if body.inputs.len() > ASSOC_BATCH_LIMIT {
        return validation(format!(
            "Batch input limit exceeded: {} inputs; at most {ASSOC_BATCH_LIMIT} are allowed",
            body.inputs.len()
        ));
    }
    let store = inner.store.read();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in &body.inputs {
        let id_text = match &input.id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let links = id_text
            .parse::<u64>()
            .ok()
            .and_then(|id| engagements::links(&store, from, to, id))
            .and_then(Result::ok)
            .unwrap_or_default();
        if links.is_empty() {
            errors.push(standard_error(
                "OBJECT_NOT_FOUND",
                &format!("No {to} is associated with {from} {id_text}."),
                json!({"fromObjectId": [id_text]}),
                Some("crm.associations.NO_ASSOCIATIONS_FOUND"),
            ));
            continue;
        }
        let to_list: Vec<Value> = links
            .iter()
            .map(|(other, type_id)| engagements::link_json(*other, *type_id))
            .collect();
        results.push(json!({"from": {"id": id_text}, "to": to_list}));
    }
    let mut response = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(started),
        "completedAt": iso(now_ms()),
    });
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        response["numErrors"] = json!(errors.len());
        response["errors"] = Value::Array(errors);
        StatusCode::MULTI_STATUS
    };
    json_response(status, response)
}
