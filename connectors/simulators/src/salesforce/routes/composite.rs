//! The composite family: sObject Collections (`composite/sobjects`: update, create,
//! delete, retrieve), `/composite` (one call, optional all-or-none with
//! `PROCESSING_HALTED`, `@{ref}` references, per-subrequest headers) and
//! `/composite/batch` (independent subrequests, each counted).

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{Map, Value as Json, json};

use super::super::schema::ObjType;
use super::super::server::{
    Call, MAX_VERSION, MIN_VERSION, Resp, RespBody, Shared, parse_query, parse_version,
};
use super::super::writes::{self, RecError};
use super::sobjects::{self, parse_body, with_writes};

const MAX_COLLECTION: usize = 200;
const MAX_CHUNKS: usize = 10;
const MAX_SUBREQUESTS: usize = 25;
const MAX_RETRIEVE: usize = 2_000;

fn bad_request(code: &str, message: impl Into<String>) -> Resp {
    Resp::error(StatusCode::BAD_REQUEST, code, message)
}

fn result_ok(id: &str) -> Json {
    json!({"id": id, "success": true, "errors": []})
}

fn result_err(id: Option<&str>, err: &RecError) -> Json {
    let mut m = Map::new();
    if let Some(id) = id {
        m.insert("id".into(), json!(id));
    }
    m.insert("success".into(), json!(false));
    m.insert("errors".into(), json!([err.to_result_json()]));
    Json::Object(m)
}

/// `PATCH` (update), `POST` (create) and `DELETE` on `composite/sobjects`.
pub(crate) fn collections(shared: &Shared, call: &Call) -> Resp {
    if call.method == Method::DELETE {
        return collections_delete(shared, call);
    }
    let creating = match call.method {
        Method::PATCH => false,
        Method::POST => true,
        _ => {
            return bad_request(
                "METHOD_NOT_ALLOWED",
                "Use PATCH, POST or DELETE on composite/sobjects",
            );
        }
    };
    let body = match parse_body(call) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let all_or_none = body
        .get("allOrNone")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let Some(records) = body.get("records").and_then(Json::as_array) else {
        return bad_request(
            "JSON_PARSER_ERROR",
            "The request body needs a 'records' array",
        );
    };
    if records.len() > MAX_COLLECTION {
        return bad_request(
            "EXCEEDED_ID_LIMIT",
            format!(
                "record limit reached. cannot submit more than {MAX_COLLECTION} records into this call"
            ),
        );
    }
    // Every record names its type; consecutive runs of one type form a chunk.
    let mut typed = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let Some(map) = record.as_object() else {
            return bad_request(
                "JSON_PARSER_ERROR",
                format!("records[{i}] is not an object"),
            );
        };
        let Some(type_name) = map
            .get("attributes")
            .and_then(|a| a.get("type"))
            .and_then(Json::as_str)
        else {
            return bad_request(
                "INVALID_FIELD",
                format!("records[{i}]: each record needs attributes.type naming its sObject type"),
            );
        };
        let Some(obj) = ObjType::parse(type_name) else {
            return bad_request(
                "INVALID_TYPE",
                format!("sObject type '{type_name}' is not supported."),
            );
        };
        typed.push((obj, map));
    }
    let chunks =
        typed.windows(2).filter(|w| w[0].0 != w[1].0).count() + usize::from(!typed.is_empty());
    if chunks > MAX_CHUNKS {
        return bad_request(
            "EXCEEDED_MAX_TYPES_LIMIT",
            "Cannot have more than 10 chunks in a single operation. Please rearrange the data to reduce chunking.",
        );
    }
    let results = with_writes(
        shared,
        call.auto_assign(),
        collections_source(call),
        |org, opts| {
            let savepoint = org.begin();
            let mut results: Vec<Result<String, (Option<String>, RecError)>> = Vec::new();
            for (obj, map) in &typed {
                let id = map
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("id"))
                    .and_then(|(_, v)| v.as_str());
                let outcome = if creating {
                    writes::create(org, &shared.config, *obj, map, opts).map_err(|e| (None, e))
                } else {
                    match id {
                        None => Err((
                            None,
                            RecError::new(
                                "MISSING_ARGUMENT",
                                "Id not specified in an update call",
                                &[],
                            ),
                        )),
                        Some(id) => writes::update(org, &shared.config, *obj, id, map, opts)
                            .map_err(|e| (Some(id.to_owned()), e)),
                    }
                };
                results.push(outcome);
            }
            let failed = results.iter().any(Result::is_err);
            if all_or_none && failed {
                org.rollback_to(savepoint);
                results
                    .into_iter()
                    .map(|r| match r {
                        Ok(id) => {
                            result_err((!creating).then_some(id.as_str()), &RecError::rolled_back())
                        }
                        Err((id, err)) => result_err(id.as_deref(), &err),
                    })
                    .collect::<Vec<_>>()
            } else {
                org.commit(savepoint);
                results
                    .into_iter()
                    .map(|r| match r {
                        Ok(id) => result_ok(&id),
                        Err((id, err)) => result_err(id.as_deref(), &err),
                    })
                    .collect()
            }
        },
    );
    Resp::ok(Json::Array(results))
}

fn collections_source(call: &Call) -> &'static str {
    if call.source == "rest" {
        "collections"
    } else {
        call.source
    }
}

fn collections_delete(shared: &Shared, call: &Call) -> Resp {
    let ids: Vec<String> = call
        .param("ids")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return bad_request("MISSING_ARGUMENT", "ids parameter is required");
    }
    if ids.len() > MAX_COLLECTION {
        return bad_request(
            "EXCEEDED_ID_LIMIT",
            format!(
                "record limit reached. cannot submit more than {MAX_COLLECTION} records into this call"
            ),
        );
    }
    let all_or_none = call
        .param("allOrNone")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut org = shared.org.lock();
    let savepoint = org.begin();
    let mut results = Vec::new();
    for input in &ids {
        let outcome = super::super::ids::canonical(input)
            .and_then(|id| org.locate(&id).map(|(obj, _)| (obj, id)))
            .ok_or_else(|| {
                RecError::new(
                    "INVALID_CROSS_REFERENCE_KEY",
                    "invalid cross reference id",
                    &[],
                )
            })
            .and_then(|(obj, id)| writes::soft_delete(&mut org, obj, &id, None).map(|()| id));
        results.push(outcome.map_err(|e| (input.clone(), e)));
    }
    let failed = results.iter().any(Result::is_err);
    let out: Vec<Json> = if all_or_none && failed {
        org.rollback_to(savepoint);
        results
            .into_iter()
            .map(|r| match r {
                Ok(id) => result_err(Some(&id), &RecError::rolled_back()),
                Err((id, e)) => result_err(Some(&id), &e),
            })
            .collect()
    } else {
        org.commit(savepoint);
        results
            .into_iter()
            .map(|r| match r {
                Ok(id) => result_ok(&id),
                Err((id, e)) => result_err(Some(&id), &e),
            })
            .collect()
    };
    Resp::ok(Json::Array(out))
}

/// `GET|POST composite/sobjects/{Type}`: records by id, aligned with `ids`, `null`
/// for ids that are missing, deleted or malformed.
pub(crate) fn retrieve(shared: &Shared, call: &Call, object_name: &str) -> Resp {
    let obj = match sobjects::object(object_name) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let (ids, fields): (Vec<String>, Option<String>) = match call.method {
        Method::GET => (
            call.param("ids")
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            call.param("fields").map(str::to_owned),
        ),
        Method::POST => {
            let body = match parse_body(call) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let list = |key: &str| -> Vec<String> {
                body.get(key)
                    .and_then(Json::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Json::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let fields = list("fields");
            (list("ids"), (!fields.is_empty()).then(|| fields.join(",")))
        }
        _ => return bad_request("METHOD_NOT_ALLOWED", "Use GET or POST to retrieve records"),
    };
    let Some(fields) = fields else {
        return bad_request("MISSING_ARGUMENT", "fields parameter is required");
    };
    if ids.len() > MAX_RETRIEVE {
        return bad_request(
            "EXCEEDED_ID_LIMIT",
            format!("cannot retrieve more than {MAX_RETRIEVE} records in one request"),
        );
    }
    let columns = match sobjects::columns(obj, Some(&fields)) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let now_ms = shared.now_ms();
    let org = shared.org.lock();
    let out: Vec<Json> = ids
        .iter()
        .map(|id| sobjects::render_all(&org, obj, id.trim(), &columns, &call.version, now_ms))
        .collect();
    Resp::ok(Json::Array(out))
}

/// Splits a subrequest URL (`/services/data/v62.0/…` or `v62.0/…`) into version,
/// path segments and query.
fn sub_call(
    parent: &Call,
    method: &str,
    url: &str,
    body: Option<&Json>,
    headers: Option<&Map<String, Json>>,
    source: &'static str,
) -> Result<Call, String> {
    let (path, query) = url
        .split_once('?')
        .map_or((url, None), |(p, q)| (p, Some(q)));
    let path = path.trim_start_matches('/');
    let path = path.strip_prefix("services/data/").unwrap_or(path);
    let mut segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    if segments.is_empty() {
        return Err(format!("invalid subrequest url: {url}"));
    }
    let version = match parse_version(&segments.remove(0)) {
        Some((n, v)) if (MIN_VERSION..=MAX_VERSION).contains(&n) => v,
        _ => {
            return Err(format!(
                "invalid or unsupported version in subrequest url: {url}"
            ));
        }
    };
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("invalid method: {method}"))?;
    let mut all_headers: HeaderMap = parent.headers.clone();
    if let Some(headers) = headers {
        for (k, v) in headers {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
                v.as_str().map(HeaderValue::from_str),
            ) {
                all_headers.insert(name, value);
            }
        }
    }
    Ok(Call {
        method,
        version,
        segments,
        query: parse_query(query),
        headers: all_headers,
        body: body.map(|b| b.to_string().into()).unwrap_or_default(),
        user_id: parent.user_id.clone(),
        source,
        endpoint: String::new(),
        extra_cost: 0,
    })
}

/// `/composite` and `/composite/batch` cannot contain each other (collections can).
fn is_nested_composite(sub: &Call) -> bool {
    let segs: Vec<&str> = sub.segments.iter().map(String::as_str).collect();
    matches!(
        segs.as_slice(),
        ["composite"] | ["composite", "batch" | "tree", ..]
    )
}

/// Replaces `@{ref.path}` with values from earlier subrequest bodies.
fn substitute(text: &str, refs: &Map<String, Json>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            return Err(format!("unterminated reference in {text}"));
        };
        let expr = &rest[start + 2..start + end];
        let mut parts = expr.split('.');
        let reference = parts.next().unwrap_or_default();
        let mut value = refs
            .get(reference)
            .ok_or_else(|| {
                format!("Invalid reference specified. No value for {expr} found in {reference}.")
            })?
            .clone();
        for part in parts {
            let (name, index) = match part.split_once('[') {
                Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
                None => (part, None),
            };
            value = value.get(name).cloned().unwrap_or(Json::Null);
            if let Some(i) = index {
                value = value.get(i).cloned().unwrap_or(Json::Null);
            }
        }
        match value {
            Json::String(s) => out.push_str(&s),
            Json::Null => {
                return Err(format!(
                    "Invalid reference specified. No value for {expr} found in {reference}."
                ));
            }
            other => out.push_str(&other.to_string()),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn halted() -> Json {
    json!([{"errorCode": "PROCESSING_HALTED", "message": "The transaction was rolled back since another operation in the same transaction failed."}])
}

/// `POST composite`: up to 25 subrequests in one call.
pub(crate) fn composite(shared: &Shared, call: &Call) -> Resp {
    let body = match parse_body(call) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let all_or_none = body
        .get("allOrNone")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let Some(requests) = body.get("compositeRequest").and_then(Json::as_array) else {
        return bad_request(
            "JSON_PARSER_ERROR",
            "The request body needs a 'compositeRequest' array",
        );
    };
    if requests.len() > MAX_SUBREQUESTS {
        return bad_request(
            "INVALID_REQUEST",
            format!("Composite request cannot have more than {MAX_SUBREQUESTS} subrequests"),
        );
    }
    let savepoint = shared.org.lock().begin();
    let mut refs = Map::new();
    let mut responses: Vec<Json> = Vec::new();
    let mut failed_at = None;
    for (i, req) in requests.iter().enumerate() {
        let reference = req
            .get("referenceId")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        if failed_at.is_some() && all_or_none {
            responses.push(json!({"body": halted(), "httpHeaders": {}, "httpStatusCode": 400, "referenceId": reference}));
            continue;
        }
        let method = req.get("method").and_then(Json::as_str).unwrap_or("GET");
        let url = req.get("url").and_then(Json::as_str).unwrap_or_default();
        let prepared = substitute(url, &refs).and_then(|url| {
            let body = match req.get("body") {
                Some(b) => Some(
                    serde_json::from_str::<Json>(&substitute(&b.to_string(), &refs)?)
                        .map_err(|e| e.to_string())?,
                ),
                None => None,
            };
            sub_call(
                call,
                method,
                &url,
                body.as_ref(),
                req.get("httpHeaders").and_then(Json::as_object),
                "composite",
            )
        });
        let resp = match prepared {
            Ok(mut sub) if !is_nested_composite(&sub) => super::route(shared, &mut sub),
            Ok(_) => bad_request(
                "INVALID_REQUEST",
                "composite and batch requests cannot be nested",
            ),
            Err(message) => bad_request("INVALID_REQUEST", message),
        };
        let status = resp.status.as_u16();
        let mut headers = Map::new();
        let body_json = match &resp.body {
            RespBody::Empty => Json::Null,
            _ => resp.body_json(),
        };
        if status == 201
            && let (Some(id), Some(sub_url)) = (
                body_json.get("id").and_then(Json::as_str),
                url.split('?').next(),
            )
        {
            headers.insert(
                "Location".into(),
                json!(format!("{}/{id}", sub_url.trim_end_matches('/'))),
            );
        }
        if status >= 400 && failed_at.is_none() {
            failed_at = Some(i);
        }
        refs.insert(reference.clone(), body_json.clone());
        responses.push(json!({"body": body_json, "httpHeaders": headers, "httpStatusCode": status, "referenceId": reference}));
    }
    let mut org = shared.org.lock();
    if let (Some(failed), true) = (failed_at, all_or_none) {
        org.rollback_to(savepoint);
        for (i, r) in responses.iter_mut().enumerate() {
            if i < failed {
                r["body"] = halted();
                r["httpStatusCode"] = json!(400);
                r["httpHeaders"] = json!({});
            }
        }
    } else {
        org.commit(savepoint);
    }
    Resp::ok(json!({"compositeResponse": responses}))
}

/// `POST composite/batch`: up to 25 independent subrequests, each its own API call.
pub(crate) fn batch(shared: &Shared, call: &mut Call) -> Resp {
    let body = match parse_body(call) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let halt = body
        .get("haltOnError")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let Some(requests) = body.get("batchRequests").and_then(Json::as_array) else {
        return bad_request(
            "JSON_PARSER_ERROR",
            "The request body needs a 'batchRequests' array",
        );
    };
    if requests.len() > MAX_SUBREQUESTS {
        return bad_request(
            "INVALID_BATCH_REQUEST",
            format!("A batch cannot contain more than {MAX_SUBREQUESTS} requests"),
        );
    }
    call.extra_cost = requests.len().saturating_sub(1) as u64;
    let mut has_errors = false;
    let mut results = Vec::new();
    for req in requests {
        if halt && has_errors {
            results.push(json!({"statusCode": 412, "result": [{"errorCode": "BATCH_PROCESSING_HALTED", "message": "Batch processing halted per request"}]}));
            continue;
        }
        let method = req.get("method").and_then(Json::as_str).unwrap_or("GET");
        let url = req.get("url").and_then(Json::as_str).unwrap_or_default();
        let resp = match sub_call(
            call,
            method,
            url,
            req.get("richInput"),
            None,
            "composite_batch",
        ) {
            Ok(mut sub) if !is_nested_composite(&sub) => super::route(shared, &mut sub),
            Ok(_) => bad_request("INVALID_BATCH_REQUEST", "batch requests cannot be nested"),
            Err(message) => bad_request("INVALID_BATCH_REQUEST", message),
        };
        let status = resp.status.as_u16();
        has_errors |= status >= 400;
        let result = match &resp.body {
            RespBody::Empty => Json::Null,
            _ => resp.body_json(),
        };
        results.push(json!({"statusCode": status, "result": result}));
    }
    Resp::ok(json!({"hasErrors": has_errors, "results": results}))
}
