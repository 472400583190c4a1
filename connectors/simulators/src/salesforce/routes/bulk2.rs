//! Bulk API 2.0 ingest over HTTP: create a job, upload its CSV once, close or abort
//! it, poll it, read its successful/failed/unprocessed results, delete it.

use axum::http::{Method, StatusCode};
use serde_json::{Value as Json, json};

use super::super::bulk::{self, BulkJob, Operation};
use super::super::schema::ObjType;
use super::super::server::{Call, Resp, Shared};
use super::sobjects::parse_body;

fn bulk_error(status: StatusCode, code: &str, message: impl Into<String>) -> Resp {
    Resp::error(status, code, message)
}

/// The three result files of a finished ingest job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResultSet {
    Successful,
    Failed,
    Unprocessed,
}

impl ResultSet {
    /// Salesforce matches these path segments without regard to case: the docs say
    /// `unprocessedrecords`, simple-salesforce asks for `unprocessedRecords`, and both work.
    fn parse(segment: &str) -> Option<ResultSet> {
        match segment.to_ascii_lowercase().as_str() {
            "successfulresults" => Some(ResultSet::Successful),
            "failedresults" => Some(ResultSet::Failed),
            "unprocessedrecords" => Some(ResultSet::Unprocessed),
            _ => None,
        }
    }
}

pub(crate) fn route(shared: &Shared, call: &Call, rest: &[&str]) -> Resp {
    match (&call.method, rest) {
        (&Method::POST, []) => create(shared, call),
        (&Method::GET, []) => {
            let bulk = shared.bulk.lock();
            let records: Vec<Json> = bulk
                .order
                .iter()
                .filter_map(|id| bulk.jobs.get(id))
                .map(BulkJob::info)
                .collect();
            Resp::ok(json!({"done": true, "records": records, "nextRecordsUrl": null}))
        }
        (&Method::GET, [id]) => with_job(shared, id, |job| Resp::ok(job.info())),
        (&Method::PATCH, [id]) => change_state(shared, call, id),
        (&Method::DELETE, [id]) => {
            let mut bulk = shared.bulk.lock();
            match bulk.jobs.get(*id) {
                None => Resp::not_found(),
                Some(job) if !job.is_terminal() && job.state != "Open" => bulk_error(
                    StatusCode::BAD_REQUEST,
                    "INVALIDJOBSTATE",
                    "Job can only be deleted when it is Open, Aborted, JobComplete or Failed",
                ),
                Some(_) => {
                    bulk.jobs.remove(*id);
                    bulk.order.retain(|j| j != id);
                    Resp::empty(StatusCode::NO_CONTENT)
                }
            }
        }
        (&Method::PUT, [id, "batches"]) => upload(shared, call, id),
        (&Method::GET, [id, kind]) if ResultSet::parse(kind).is_some() => {
            with_job(shared, id, |job| {
                if !job.is_terminal() {
                    return bulk_error(
                        StatusCode::BAD_REQUEST,
                        "INVALIDJOBSTATE",
                        "Results are available once the job is JobComplete, Failed or Aborted",
                    );
                }
                let text = match ResultSet::parse(kind) {
                    Some(ResultSet::Successful) => job.success_csv.clone(),
                    Some(ResultSet::Failed) => job.failure_csv.clone(),
                    _ => job.unprocessed_csv.clone(),
                };
                Resp::text(StatusCode::OK, text, "text/csv")
            })
        }
        _ => Resp::not_found(),
    }
}

fn with_job(shared: &Shared, id: &str, f: impl FnOnce(&BulkJob) -> Resp) -> Resp {
    match shared.bulk.lock().jobs.get(id) {
        Some(job) => f(job),
        None => Resp::not_found(),
    }
}

fn create(shared: &Shared, call: &Call) -> Resp {
    let body = match parse_body(call) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let text = |k: &str| body.get(k).and_then(Json::as_str);
    let Some(object) = text("object").and_then(ObjType::parse) else {
        return bulk_error(
            StatusCode::BAD_REQUEST,
            "INVALIDENTITY",
            format!(
                "Entity '{}' is not supported by the Bulk API.",
                text("object").unwrap_or("")
            ),
        );
    };
    let operation = match text("operation") {
        Some(op) => match Operation::parse(op) {
            Some(o) => o,
            None if matches!(op, "upsert" | "hardDelete") => {
                return bulk_error(
                    StatusCode::BAD_REQUEST,
                    "FEATURENOTENABLED",
                    format!(
                        "operation '{op}' is not implemented by this simulator (insert, update and delete are)"
                    ),
                );
            }
            None => {
                return bulk_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidJob",
                    format!("Invalid operation: {op}"),
                );
            }
        },
        None => {
            return bulk_error(
                StatusCode::BAD_REQUEST,
                "InvalidJob",
                "operation is required",
            );
        }
    };
    if text("contentType").is_some_and(|c| c != "CSV") {
        return bulk_error(
            StatusCode::BAD_REQUEST,
            "InvalidJob",
            "contentType must be CSV",
        );
    }
    if text("columnDelimiter").is_some_and(|c| c != "COMMA") {
        return bulk_error(
            StatusCode::BAD_REQUEST,
            "FEATURENOTENABLED",
            "only columnDelimiter COMMA is implemented by this simulator",
        );
    }
    let line_ending = text("lineEnding").unwrap_or("LF");
    if !matches!(line_ending, "LF" | "CRLF") {
        return bulk_error(
            StatusCode::BAD_REQUEST,
            "InvalidJob",
            "lineEnding must be LF or CRLF",
        );
    }
    if !object.updateable() {
        return bulk_error(
            StatusCode::BAD_REQUEST,
            "INVALIDENTITY",
            format!("Entity '{}' is read-only in this simulator.", object.name()),
        );
    }
    let now = chrono::Utc::now().timestamp();
    let id = shared.org.lock().ids.next("750");
    let job = BulkJob {
        id: id.clone(),
        object,
        operation,
        state: "Open",
        created_by: call.user_id.clone(),
        created_at: now,
        modstamp: now,
        line_ending: line_ending.to_owned(),
        assignment_rule_id: text("assignmentRuleId").map(str::to_owned),
        api_version: call.version.clone(),
        csv: None,
        processed: 0,
        failed: 0,
        error_message: None,
        success_csv: String::new(),
        failure_csv: String::new(),
        unprocessed_csv: String::new(),
    };
    let info = job.info();
    let mut bulk = shared.bulk.lock();
    bulk.order.push(id.clone());
    bulk.jobs.insert(id, job);
    Resp::ok(info)
}

fn upload(shared: &Shared, call: &Call, id: &str) -> Resp {
    let content_type = call.header("content-type").unwrap_or("");
    if !content_type.starts_with("text/csv") {
        return bulk_error(
            StatusCode::BAD_REQUEST,
            "INVALIDCONTENTTYPE",
            "Content-Type must be text/csv",
        );
    }
    let mut bulk = shared.bulk.lock();
    let Some(job) = bulk.jobs.get_mut(id) else {
        return Resp::not_found();
    };
    if job.state != "Open" {
        return bulk_error(
            StatusCode::CONFLICT,
            "INVALIDJOBSTATE",
            format!("Job {id} is not Open; upload data before closing the job"),
        );
    }
    if job.csv.is_some() {
        return bulk_error(
            StatusCode::BAD_REQUEST,
            "BULK_API_ERROR",
            format!(
                "Found multiple contents for job: <{id}>, please 'Close' / 'Abort' / 'Delete' the current Job then create a new Job and make sure you only do 'PUT' once on a given Job."
            ),
        );
    }
    job.csv = Some(call.body.to_vec());
    Resp::empty(StatusCode::CREATED)
}

fn change_state(shared: &Shared, call: &Call, id: &str) -> Resp {
    let body = match parse_body(call) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let target = body.get("state").and_then(Json::as_str).unwrap_or_default();
    let mut bulk = shared.bulk.lock();
    let Some(job) = bulk.jobs.get_mut(id) else {
        return Resp::not_found();
    };
    match (target, job.state) {
        ("UploadComplete", "Open") => {
            job.state = "UploadComplete";
            job.modstamp = chrono::Utc::now().timestamp();
            let info = job.info();
            drop(bulk);
            if let Some(arc) = shared.arc() {
                bulk::start_processing(arc, id.to_owned());
            }
            Resp::ok(info)
        }
        ("Aborted", "Open" | "UploadComplete" | "InProgress") => {
            job.state = "Aborted";
            job.modstamp = chrono::Utc::now().timestamp();
            Resp::ok(job.info())
        }
        _ => bulk_error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOBSTATE",
            format!("Cannot change state from {} to {target}", job.state),
        ),
    }
}
