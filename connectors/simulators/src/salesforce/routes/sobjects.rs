//! Single-record resources: `GET|PATCH|DELETE sobjects/{Type}/{id}` and
//! `POST sobjects/{Type}`, with `If-Unmodified-Since` on PATCH.

use axum::http::StatusCode;
use serde_json::{Value as Json, json};

use super::super::org::Org;
use super::super::schema::{ObjType, Val};
use super::super::server::{Call, Resp, Shared};
use super::super::soql::{Column, FieldPath};
use super::super::writes::{self, RecError, WriteOpts};
use super::super::{ids, soql};

/// Runs `f` with the org locked and write options drawn from the request and the
/// fault script (row locks, late commits).
pub(crate) fn with_writes<R>(
    shared: &Shared,
    auto_assign: bool,
    source: &'static str,
    f: impl FnOnce(&mut Org, &mut WriteOpts<'_>) -> R,
) -> R {
    let mut org = shared.org.lock();
    let mut faults = shared.faults.lock();
    let late_ms = faults.script.late_commit_ms;
    let mut lock_row = || faults.lock_row();
    let mut opts = WriteOpts {
        auto_assign,
        source,
        late_ms,
        lock_row: &mut lock_row,
    };
    f(&mut org, &mut opts)
}

pub(crate) fn parse_body(call: &Call) -> Result<Json, Resp> {
    serde_json::from_slice(&call.body).map_err(|err| {
        Resp::error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            format!("The request body is not valid JSON: {err}"),
        )
    })
}

pub(crate) fn object(name: &str) -> Result<ObjType, Resp> {
    ObjType::parse(name).ok_or_else(|| {
        Resp::error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!(
                "The requested resource does not exist: sObject type '{name}' is not supported."
            ),
        )
    })
}

fn rec_error(status: StatusCode, err: &RecError) -> Resp {
    Resp::json(status, json!([err.to_rest_json()]))
}

/// Status of a single-record write error.
pub(crate) fn status_for(err: &RecError) -> StatusCode {
    match err.status_code {
        "ENTITY_IS_DELETED" | "NOT_FOUND" => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Canonical id of an existing (live or deleted) record, or the 404 a real org gives.
fn existing(org: &Org, obj: ObjType, id: &str) -> Result<String, Resp> {
    let id = writes::record_id(obj, id).map_err(|_| Resp::not_found())?;
    if org.row(obj, &id).is_none() {
        return Err(Resp::not_found());
    }
    Ok(id)
}

pub(crate) fn get(shared: &Shared, call: &Call, object_name: &str, id: &str) -> Resp {
    let obj = match object(object_name) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let org = shared.org.lock();
    let id = match existing(&org, obj, id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Some(row) = org.row(obj, &id) else {
        return Resp::not_found();
    };
    if obj
        .field_index("IsDeleted")
        .is_some_and(|d| row.vals[d].as_bool())
    {
        return Resp::error(
            StatusCode::NOT_FOUND,
            "ENTITY_IS_DELETED",
            "entity is deleted",
        );
    }
    let columns = match columns(obj, call.param("fields")) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let vals = row.visible(shared.now_ms()).unwrap_or(&row.vals);
    Resp::ok(soql::render_record(
        &org,
        obj,
        vals,
        &columns,
        &call.version,
    ))
}

/// The columns for `fields=A,B` (all fields when absent); unknown names are a 400.
pub(crate) fn columns(obj: ObjType, fields: Option<&str>) -> Result<Vec<Column>, Resp> {
    match fields {
        None => Ok(obj
            .fields()
            .iter()
            .enumerate()
            .map(|(idx, f)| Column {
                path: FieldPath::Direct { idx },
                name: f.name.to_owned(),
            })
            .collect()),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|name| {
                let idx = obj.field_index(name).ok_or_else(|| {
                    Resp::error(
                        StatusCode::BAD_REQUEST,
                        "INVALID_FIELD",
                        format!("No such column '{name}' on sobject of type {}", obj.name()),
                    )
                })?;
                Ok(Column {
                    path: FieldPath::Direct { idx },
                    name: obj.fields()[idx].name.to_owned(),
                })
            })
            .collect(),
    }
}

/// `If-Unmodified-Since` (HTTP date): the record must not have changed after it.
fn precondition(org: &Org, obj: ObjType, id: &str, call: &Call) -> Result<(), Resp> {
    let Some(header) = call.header("if-unmodified-since") else {
        return Ok(());
    };
    let since = chrono::DateTime::parse_from_rfc2822(header.trim())
        .map(|d| d.timestamp())
        .map_err(|_| {
            Resp::error(
                StatusCode::BAD_REQUEST,
                "INVALID_HEADER_TYPE",
                format!("Invalid If-Unmodified-Since header: {header}"),
            )
        })?;
    let modified = match org.get(obj, id, "LastModifiedDate") {
        Some(Val::DateTime(s)) => *s,
        _ => 0,
    };
    if modified > since {
        return Err(Resp::error(
            StatusCode::PRECONDITION_FAILED,
            "PRECONDITION_FAILED",
            "The requested resource has been modified since the If-Unmodified-Since date.",
        ));
    }
    Ok(())
}

pub(crate) fn patch(shared: &Shared, call: &Call, object_name: &str, id: &str) -> Resp {
    let obj = match object(object_name) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let body = match parse_body(call) {
        Ok(Json::Object(map)) => map,
        Ok(_) => {
            return Resp::error(
                StatusCode::BAD_REQUEST,
                "JSON_PARSER_ERROR",
                "Expected a JSON object with the fields to update",
            );
        }
        Err(r) => return r,
    };
    let auto_assign = call.auto_assign();
    let source = call.source;
    with_writes(shared, auto_assign, source, |org, opts| {
        let id = match existing(org, obj, id) {
            Ok(id) => id,
            Err(r) => return r,
        };
        if let Err(r) = precondition(org, obj, &id, call) {
            return r;
        }
        match writes::update(org, &shared.config, obj, &id, &body, opts) {
            Ok(_) => Resp::empty(StatusCode::NO_CONTENT),
            Err(err) => rec_error(status_for(&err), &err),
        }
    })
}

pub(crate) fn create(shared: &Shared, call: &Call, object_name: &str) -> Resp {
    let obj = match object(object_name) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let body = match parse_body(call) {
        Ok(Json::Object(map)) => map,
        Ok(_) => {
            return Resp::error(
                StatusCode::BAD_REQUEST,
                "JSON_PARSER_ERROR",
                "Expected a JSON object with the fields of the new record",
            );
        }
        Err(r) => return r,
    };
    with_writes(
        shared,
        call.auto_assign(),
        call.source,
        |org, opts| match writes::create(org, &shared.config, obj, &body, opts) {
            Ok(id) => Resp::json(
                StatusCode::CREATED,
                json!({"id": id, "success": true, "errors": []}),
            ),
            Err(err) => rec_error(StatusCode::BAD_REQUEST, &err),
        },
    )
}

pub(crate) fn delete(shared: &Shared, object_name: &str, id: &str) -> Resp {
    let obj = match object(object_name) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let mut org = shared.org.lock();
    let id = match existing(&org, obj, id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    match writes::soft_delete(&mut org, obj, &id, None) {
        Ok(()) => Resp::empty(StatusCode::NO_CONTENT),
        Err(err) => rec_error(status_for(&err), &err),
    }
}

/// A record rendered with all (or the chosen) fields, for retrieve.
pub(crate) fn render_all(
    org: &Org,
    obj: ObjType,
    id: &str,
    columns: &[Column],
    version: &str,
    now_ms: i64,
) -> Json {
    let Some(canonical) = ids::canonical(id) else {
        return Json::Null;
    };
    let Some(row) = org.row(obj, &canonical) else {
        return Json::Null;
    };
    if obj
        .field_index("IsDeleted")
        .is_some_and(|d| row.vals[d].as_bool())
    {
        return Json::Null;
    }
    let vals = row.visible(now_ms).unwrap_or(&row.vals);
    soql::render_record(org, obj, vals, columns, version)
}
