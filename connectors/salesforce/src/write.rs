//! Owner writes and the reads that go with them: sObject Collections updates, strict
//! conditional writes through `/composite`, Bulk API 2.0 ingest jobs, and Collections
//! retrieve for current owners and refetches.
//!
//! Every write carries `Sforce-Auto-Assign: FALSE`: without it REST defaults to TRUE and
//! the org's lead assignment rule silently overwrites the owner just written.
//! Per-record failures are values ([`WriteOutcome::Rejected`]), correlated with the
//! input by position, never by id.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use leadroute_crm::{
    BulkJob, BulkJobEnd, BulkJobState, BulkWrite, Change, CrmError, CurrentOwner, ErrorKind,
    ObjectKind, OwnerChange, OwnerId, RecordId, RejectKind, WriteOutcome,
};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::client::{Body, Client, Request, Target};
use crate::soql::{self, SObject};
use crate::wire::{
    self, Attributes, CollectionResult, CollectionUpdate, CompositeRequest, CompositeResponse,
    CompositeSubrequest, OwnerUpdate, QueryPage, RestError, RetrieveRequest,
};
use crate::{ids, map};

/// sObject Collections: at most 200 records per call.
pub(crate) const COLLECTION_MAX: usize = 200;
/// `/composite`: at most 25 subrequests per call.
pub(crate) const COMPOSITE_MAX: usize = 25;
/// Collections retrieve: at most 2,000 ids per call.
pub(crate) const RETRIEVE_MAX: usize = 2_000;

/// The writable sObject behind an object kind.
pub(crate) fn writable_sobject(object: ObjectKind) -> Result<SObject, CrmError> {
    match object {
        ObjectKind::Lead => Ok(SObject::Lead),
        ObjectKind::Contact => Ok(SObject::Contact),
        ObjectKind::Account => Ok(SObject::Account),
        ObjectKind::Owner => Err(CrmError::new(
            ErrorKind::BadRequest,
            "salesforce owners (Users, Queues) have no owner to write; write Lead, Contact or Account",
        )),
    }
}

/// Maps a per-record status code to what the writer should do about it.
pub(crate) fn reject_kind(code: &str) -> RejectKind {
    match code {
        "INACTIVE_OWNER_OR_USER" => RejectKind::InactiveOwner,
        "INVALID_CROSS_REFERENCE_KEY" | "FIELD_INTEGRITY_EXCEPTION" | "TRANSFER_REQUIRES_READ" => {
            RejectKind::InvalidOwner
        }
        "ENTITY_IS_DELETED" | "NOT_FOUND" | "INVALID_ID_FIELD" | "MALFORMED_ID" => {
            RejectKind::NotFound
        }
        "UNABLE_TO_LOCK_ROW" => RejectKind::Locked,
        "FIELD_CUSTOM_VALIDATION_EXCEPTION"
        | "DUPLICATES_DETECTED"
        | "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY" => RejectKind::Validation,
        "CANNOT_UPDATE_CONVERTED_LEAD" | "INSUFFICIENT_ACCESS_OR_READONLY" => RejectKind::ReadOnly,
        "ALL_OR_NONE_OPERATION_ROLLED_BACK" | "PROCESSING_HALTED" => RejectKind::RolledBack,
        "PRECONDITION_FAILED" | "CONFLICT" => RejectKind::Conflict,
        _ => RejectKind::Other,
    }
}

fn rejected(errors: &[RestError]) -> WriteOutcome {
    let first = errors.first();
    let code = first
        .map(|e| e.error_code.clone())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "UNKNOWN".to_owned());
    WriteOutcome::Rejected {
        kind: reject_kind(&code),
        message: first.map(|e| e.message.clone()).unwrap_or_default(),
        code,
    }
}

/// Maps Collections results onto the input by index. A length mismatch is a protocol
/// error: guessing which record a result belongs to could misreport a write.
pub(crate) fn outcomes_by_index(
    results: &[CollectionResult],
    expected: usize,
) -> Result<Vec<WriteOutcome>, CrmError> {
    if results.len() != expected {
        return Err(CrmError::new(
            ErrorKind::Protocol,
            format!(
                "salesforce collections update answered {} results for {expected} records",
                results.len()
            ),
        ));
    }
    Ok(results
        .iter()
        .map(|r| {
            if r.success {
                WriteOutcome::Applied
            } else {
                rejected(&r.errors)
            }
        })
        .collect())
}

fn canonical_ids(batch: &[OwnerChange]) -> Vec<Result<(String, String), WriteOutcome>> {
    batch
        .iter()
        .map(|change| {
            let id = ids::canonical(change.id.as_str());
            let owner = ids::canonical(change.to.as_str());
            match (id, owner) {
                (Ok(id), Ok(owner)) => Ok((id, owner)),
                (Err(e), _) => Err(WriteOutcome::Rejected {
                    kind: RejectKind::NotFound,
                    code: "MALFORMED_ID".into(),
                    message: e.to_string(),
                }),
                (_, Err(e)) => Err(WriteOutcome::Rejected {
                    kind: RejectKind::InvalidOwner,
                    code: "MALFORMED_ID".into(),
                    message: e.to_string(),
                }),
            }
        })
        .collect()
}

/// Writes a batch (≤ 200) through sObject Collections, or, in strict mode, the
/// conditional changes through `/composite` with `If-Unmodified-Since`.
pub(crate) async fn apply(
    client: &Client,
    object: ObjectKind,
    batch: &[OwnerChange],
    strict: bool,
) -> Result<Vec<WriteOutcome>, CrmError> {
    let sobject = writable_sobject(object)?;
    if batch.len() > COLLECTION_MAX {
        return Err(CrmError::new(
            ErrorKind::BadRequest,
            format!(
                "salesforce apply got {} changes; at most {COLLECTION_MAX} per call",
                batch.len()
            ),
        ));
    }
    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; batch.len()];
    let mut plain: Vec<(usize, String, String)> = Vec::new();
    let mut conditional: Vec<(usize, String, String, DateTime<Utc>)> = Vec::new();
    for (index, (change, ids)) in batch.iter().zip(canonical_ids(batch)).enumerate() {
        match ids {
            Err(outcome) => outcomes[index] = Some(outcome),
            Ok((id, owner)) => match change.if_unmodified_since {
                Some(at) if strict => conditional.push((index, id, owner, at)),
                _ => plain.push((index, id, owner)),
            },
        }
    }
    if !plain.is_empty() {
        let body = CollectionUpdate {
            all_or_none: false,
            records: plain
                .iter()
                .map(|(_, id, owner)| OwnerUpdate {
                    attributes: Attributes {
                        kind: sobject.api_name(),
                    },
                    id,
                    owner_id: owner,
                })
                .collect(),
        };
        let request = Request::json(
            Method::PATCH,
            Target::Api("/composite/sobjects".into()),
            &body,
        )
        .write();
        let (results, _) = client
            .send_json::<Vec<CollectionResult>>(&request, "collections update")
            .await?;
        for ((index, _, _), outcome) in plain.iter().zip(outcomes_by_index(&results, plain.len())?)
        {
            outcomes[*index] = Some(outcome);
        }
    }
    for chunk in conditional.chunks(COMPOSITE_MAX) {
        let subrequests = chunk
            .iter()
            .map(|(index, id, owner, at)| {
                let mut headers = Map::new();
                headers.insert("If-Unmodified-Since".into(), Value::String(http_date(*at)));
                headers.insert("Sforce-Auto-Assign".into(), Value::String("FALSE".into()));
                CompositeSubrequest {
                    method: "PATCH",
                    url: client.api_path(&format!("/sobjects/{}/{id}", sobject.api_name())),
                    reference_id: format!("r{index}"),
                    body: json!({ "OwnerId": owner }),
                    http_headers: headers,
                }
            })
            .collect();
        let body = CompositeRequest {
            all_or_none: false,
            composite_request: subrequests,
        };
        let request = Request::json(Method::POST, Target::Api("/composite".into()), &body).write();
        let (response, _) = client
            .send_json::<CompositeResponse>(&request, "composite update")
            .await?;
        let by_ref: HashMap<&str, &wire::CompositeSubresponse> = response
            .composite_response
            .iter()
            .map(|r| (r.reference_id.as_str(), r))
            .collect();
        for (index, _, _, _) in chunk {
            let reference = format!("r{index}");
            let outcome = match by_ref.get(reference.as_str()) {
                None => {
                    return Err(CrmError::new(
                        ErrorKind::Protocol,
                        format!("salesforce composite answer lacks subrequest {reference}"),
                    ));
                }
                Some(sub) if (200..300).contains(&sub.http_status_code) => WriteOutcome::Applied,
                Some(sub) if sub.http_status_code == 412 => WriteOutcome::Rejected {
                    kind: RejectKind::Conflict,
                    code: "PRECONDITION_FAILED".into(),
                    message: "the record changed since the plan read it (If-Unmodified-Since)"
                        .into(),
                },
                Some(sub) => {
                    let errors: Vec<RestError> =
                        serde_json::from_value(sub.body.clone()).unwrap_or_default();
                    let mut outcome = rejected(&errors);
                    if sub.http_status_code == 404 {
                        if let WriteOutcome::Rejected { kind, .. } = &mut outcome {
                            if *kind == RejectKind::Other {
                                *kind = RejectKind::NotFound;
                            }
                        }
                    }
                    outcome
                }
            };
            outcomes[*index] = Some(outcome);
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every change got an outcome"))
        .collect())
}

/// An HTTP date (`If-Unmodified-Since`), e.g. `Tue, 04 Mar 2025 09:15:27 GMT`.
pub(crate) fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Bulk API 2.0 knobs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BulkConfig {
    /// Longest wait between two status polls (the first polls come sooner).
    pub(crate) poll_interval: Duration,
    pub(crate) timeout: Duration,
}

/// First wait between status polls; doubles up to [`BulkConfig::poll_interval`], so a
/// small job is seen finished quickly and a long one costs few calls.
const FIRST_POLL: Duration = Duration::from_millis(100);

/// The CSV a job uploads: header `Id,OwnerId`, LF line ends (the job says `"LF"`).
fn bulk_csv(rows: &[(String, String)]) -> Result<Vec<u8>, CrmError> {
    let broken = |e: csv::Error| {
        CrmError::new(ErrorKind::Protocol, "building the bulk CSV failed").with_source(e)
    };
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    writer.write_record(["Id", "OwnerId"]).map_err(broken)?;
    for (id, owner) in rows {
        writer
            .write_record([id.as_str(), owner.as_str()])
            .map_err(broken)?;
    }
    writer.into_inner().map_err(|e| {
        CrmError::new(
            ErrorKind::Protocol,
            format!("building the bulk CSV failed: {e}"),
        )
    })
}

/// Result rows of one job results file: `(record id, sf__Error)` per row, the error
/// empty for `successfulResults`. The id is `sf__Id`, or the uploaded `Id` column.
pub(crate) fn bulk_result_rows(body: &[u8]) -> Result<Vec<(String, String)>, CrmError> {
    let unreadable = |e: csv::Error| {
        CrmError::new(ErrorKind::Protocol, "unreadable bulk results CSV").with_source(e)
    };
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(body);
    let headers = reader.headers().map_err(unreadable)?.clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let id_cols: Vec<usize> = [column("sf__Id"), column("Id")]
        .into_iter()
        .flatten()
        .collect();
    let error_col = column("sf__Error");
    let mut rows = Vec::new();
    for row in reader.records() {
        let row = row.map_err(unreadable)?;
        let Some(id) = id_cols
            .iter()
            .filter_map(|c| row.get(*c))
            .find(|s| !s.is_empty())
        else {
            continue;
        };
        let error = error_col.and_then(|c| row.get(c)).unwrap_or("");
        rows.push((id.to_owned(), error.to_owned()));
    }
    Ok(rows)
}

/// Where a job is reached under the API root.
fn job_path(id: &str) -> String {
    format!("/jobs/ingest/{id}")
}

/// The rows a bulk job uploads, with where each change's outcome goes: changes whose
/// ids are malformed are refused up front (`outcomes`), the rest go in `rows`, and
/// `positions` maps a canonical record id back to its changes.
struct BulkRows {
    outcomes: Vec<Option<WriteOutcome>>,
    positions: HashMap<String, Vec<usize>>,
    rows: Vec<(String, String)>,
}

fn bulk_rows(batch: &[OwnerChange]) -> BulkRows {
    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; batch.len()];
    let mut positions: HashMap<String, Vec<usize>> = HashMap::new();
    let mut rows = Vec::with_capacity(batch.len());
    for (index, ids) in canonical_ids(batch).into_iter().enumerate() {
        match ids {
            Err(outcome) => outcomes[index] = Some(outcome),
            Ok((id, owner)) => {
                positions.entry(id.clone()).or_default().push(index);
                rows.push((id, owner));
            }
        }
    }
    BulkRows {
        outcomes,
        positions,
        rows,
    }
}

/// The first half of a Bulk API 2.0 write ([`Crm::bulk_start`]): create the job and
/// upload the `Id,OwnerId` CSV once, but do not close it. An `Open` job never
/// processes a row, so until [`bulk_run`] closes it the job writes nothing, and
/// [`bulk_abort`] can end it for good. A changeset whose every change is refused up
/// front (malformed ids) creates no job.
///
/// Unknown outcomes: the job create is never retried blind (a lost answer could leave
/// a job we do not know of, but an unclosed job writes nothing). A job whose upload
/// failed is aborted.
///
/// [`Crm::bulk_start`]: leadroute_crm::Crm::bulk_start
pub(crate) async fn bulk_start(
    client: &Client,
    object: ObjectKind,
    batch: &[OwnerChange],
) -> Result<BulkJob, CrmError> {
    let sobject = writable_sobject(object)?;
    let prepared = bulk_rows(batch);
    let changes = batch.to_vec();
    if prepared.rows.is_empty() {
        return Ok(BulkJob {
            id: None,
            object,
            changes,
        });
    }
    let csv_bytes = bulk_csv(&prepared.rows)?;

    // No `.write()`: the Sforce-Auto-Assign header means nothing to Bulk API 2.0; the
    // absent `assignmentRuleId` is what keeps assignment rules from running.
    let create = Request::json(
        Method::POST,
        Target::Api("/jobs/ingest".into()),
        &json!({"object": sobject.api_name(), "operation": "update", "contentType": "CSV", "lineEnding": "LF"}),
    )
    .not_idempotent();
    let (job, _) = client
        .send_json::<wire::BulkJob>(&create, "bulk job create")
        .await?;
    let path = job_path(&job.id);
    tracing::info!(job = %job.id, object = %object, records = prepared.rows.len(), "salesforce bulk ingest job created");

    // One PUT per job (a second one is refused), so the upload is never resent: a
    // failed upload aborts the job, which then writes nothing.
    let upload = Request {
        method: Method::PUT,
        body: Body::Csv(csv_bytes),
        ..Request::get(Target::Api(format!("{path}/batches")))
    }
    .not_idempotent();
    if let Err(err) = client.send(&upload).await {
        abort(client, &path).await;
        return Err(nothing_written(err.into(), &job.id, "upload"));
    }
    Ok(BulkJob {
        id: Some(job.id),
        object,
        changes,
    })
}

/// The second half ([`Crm::bulk_run`]): close the job (`UploadComplete`), poll until
/// it is terminal, read `successfulResults` and `failedResults` (and
/// `unprocessedrecords` when the job did not complete), map them back to the input by
/// record id, delete the job. Every one of those HTTP calls goes through the client,
/// so each counts against the daily allocation like any REST call.
///
/// Assignment rules: Bulk API 2.0 has no `Sforce-Auto-Assign` header; an ingest job
/// runs the lead assignment rule only when it is created with `assignmentRuleId`. This
/// job never names one, so the owners written stay written.
///
/// Unknown outcomes: a job that failed to close is aborted. A job still running at
/// `timeout`, or whose status can no longer be read, is aborted (best effort: rows
/// Salesforce already processed stay written) and reported as [`ErrorKind::Timeout`],
/// so the caller re-reads owners before sending anything again.
///
/// [`Crm::bulk_run`]: leadroute_crm::Crm::bulk_run
pub(crate) async fn bulk_run(
    client: &Client,
    job: BulkJob,
    config: BulkConfig,
) -> Result<BulkWrite, CrmError> {
    let BulkRows {
        mut outcomes,
        positions,
        ..
    } = bulk_rows(&job.changes);
    let Some(job_id) = job.id else {
        return Ok(BulkWrite {
            job_id: None,
            outcomes: outcomes
                .into_iter()
                .map(|o| {
                    o.unwrap_or_else(|| unprocessed("no bulk job was created for this change"))
                })
                .collect(),
        });
    };
    let job_path = job_path(&job_id);
    let close = Request::json(
        Method::PATCH,
        Target::Api(job_path.clone()),
        &json!({"state": "UploadComplete"}),
    )
    .not_idempotent();
    if let Err(err) = client.send(&close).await {
        // The close may have landed with its answer lost: the job's state says.
        let state = client
            .send_json::<wire::BulkJob>(
                &Request::get(Target::Api(job_path.clone())),
                "bulk job status",
            )
            .await
            .map(|(job, _)| job.state);
        match state {
            Ok(state) if state != "Open" => {}
            _ => {
                abort(client, &job_path).await;
                return Err(nothing_written(err.into(), &job_id, "close"));
            }
        }
    }

    let started = Instant::now();
    let mut wait = FIRST_POLL;
    let final_job = loop {
        tokio::time::sleep(wait.min(config.poll_interval)).await;
        wait = wait.saturating_mul(2);
        let status = client
            .send_json::<wire::BulkJob>(
                &Request::get(Target::Api(job_path.clone())),
                "bulk job status",
            )
            .await;
        let state = match status {
            Ok((state, _)) => state,
            Err(err) => {
                abort(client, &job_path).await;
                let err: CrmError = err.into();
                return Err(CrmError::new(
                    ErrorKind::Timeout,
                    format!(
                        "salesforce bulk job {} status unreadable ({err}); aborted it, but rows it \
                         already processed stay written: re-read owners before retrying",
                        job_id
                    ),
                )
                .with_source(err));
            }
        };
        if matches!(state.state.as_str(), "JobComplete" | "Failed" | "Aborted") {
            break state;
        }
        if started.elapsed() >= config.timeout {
            abort(client, &job_path).await;
            return Err(CrmError::new(
                ErrorKind::Timeout,
                format!(
                    "salesforce bulk job {} still {} after {:?}; aborted it, but rows it already \
                     processed stay written: re-read owners before retrying",
                    job_id, state.state, config.timeout
                ),
            ));
        }
    };

    let mut resources = vec!["successfulResults", "failedResults"];
    if final_job.state != "JobComplete" {
        resources.push("unprocessedrecords");
    }
    let not_completed = format!(
        "bulk job {} ended {}: {}",
        job_id,
        final_job.state,
        final_job.error_message.clone().unwrap_or_default()
    );
    for resource in resources {
        let response = client
            .send(&Request::get(Target::Api(format!(
                "{job_path}/{resource}/"
            ))))
            .await?;
        for (id, error) in bulk_result_rows(&response.body)? {
            let outcome = match resource {
                "successfulResults" => WriteOutcome::Applied,
                "failedResults" => bulk_error(&error),
                _ => unprocessed(&not_completed),
            };
            if let Some(indexes) = positions.get(&ids::canonical_or_raw(&id)) {
                for index in indexes {
                    outcomes[*index].get_or_insert_with(|| outcome.clone());
                }
            }
        }
    }
    // Terminal jobs are kept seven days; ours are read, so free the org's job list.
    let delete = Request {
        method: Method::DELETE,
        ..Request::get(Target::Api(job_path.clone()))
    };
    if let Err(err) = client.send(&delete).await {
        tracing::debug!(job = %job_id, error = %err.error, "deleting a finished bulk job failed; Salesforce drops it after 7 days");
    }
    let missing = if final_job.state == "JobComplete" {
        format!(
            "bulk job {} finished without a result for this record",
            job_id
        )
    } else {
        not_completed
    };
    Ok(BulkWrite {
        job_id: Some(job_id),
        outcomes: outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| unprocessed(&missing)))
            .collect(),
    })
}

/// A record the job did not process: not written, safe to retry after a re-read.
fn unprocessed(message: &str) -> WriteOutcome {
    WriteOutcome::Rejected {
        kind: RejectKind::Unprocessed,
        code: "UNPROCESSED".into(),
        message: message.to_owned(),
    }
}

/// Aborts a job (best effort): an Open job then never runs, an InProgress one stops
/// taking new rows.
async fn abort(client: &Client, job_path: &str) {
    let request = Request::json(
        Method::PATCH,
        Target::Api(job_path.to_owned()),
        &json!({"state": "Aborted"}),
    );
    if let Err(err) = client.send(&request).await {
        tracing::warn!(job = job_path, error = %err.error, "aborting a salesforce bulk job failed");
    }
}

/// Ends a job known only by its id ([`Crm::bulk_abort`]): reads its state; unless it
/// is already final, asks for `Aborted` (allowed from `Open`, `UploadComplete` and
/// `InProgress`; refused once final, so a refusal is followed by another read), then
/// polls until the job is `Aborted`, `JobComplete` or `Failed`, for at most
/// `config.timeout`. A job Salesforce no longer has (404: deleted after it finished,
/// or past its seven days) is [`BulkJobState::Gone`]. `Err`: the job may still run.
///
/// [`Crm::bulk_abort`]: leadroute_crm::Crm::bulk_abort
pub(crate) async fn bulk_abort(
    client: &Client,
    job_id: &str,
    config: BulkConfig,
) -> Result<BulkJobEnd, CrmError> {
    let path = job_path(job_id);
    let status = |path: String| async move {
        match client
            .send_json::<wire::BulkJob>(&Request::get(Target::Api(path)), "bulk job status")
            .await
        {
            Ok((job, _)) => Ok(Some(job)),
            Err(err) if err.error.kind == ErrorKind::NotFound => Ok(None),
            Err(err) => Err(CrmError::from(err)),
        }
    };
    let end = |job: Option<wire::BulkJob>| -> Option<BulkJobEnd> {
        let Some(job) = job else {
            return Some(BulkJobEnd {
                state: BulkJobState::Gone,
                processed: 0,
                failed: 0,
            });
        };
        let state = match job.state.as_str() {
            "Aborted" => BulkJobState::Aborted,
            "JobComplete" => BulkJobState::Complete,
            "Failed" => BulkJobState::Failed,
            _ => return None,
        };
        Some(BulkJobEnd {
            state,
            processed: job.number_records_processed,
            failed: job.number_records_failed,
        })
    };
    if let Some(done) = end(status(path.clone()).await?) {
        return Ok(done);
    }
    let request = Request::json(
        Method::PATCH,
        Target::Api(path.clone()),
        &json!({"state": "Aborted"}),
    );
    if let Err(err) = client.send(&request).await {
        // Refused because it just finished, or lost: the next read says which.
        tracing::debug!(job = job_id, error = %err.error, "aborting an orphaned bulk job was not accepted");
    }
    let started = Instant::now();
    let mut wait = FIRST_POLL;
    loop {
        let job = status(path.clone()).await?;
        let last = job.as_ref().map(|j| j.state.clone()).unwrap_or_default();
        if let Some(done) = end(job) {
            tracing::info!(job = job_id, state = ?done.state, processed = done.processed, "orphaned salesforce bulk job ended");
            return Ok(done);
        }
        if started.elapsed() >= config.timeout {
            return Err(CrmError::new(
                ErrorKind::Timeout,
                format!(
                    "salesforce bulk job {job_id} still {last} {:?} after it was asked to abort; \
                     it may still write: resume again later",
                    config.timeout
                ),
            ));
        }
        tokio::time::sleep(wait.min(config.poll_interval)).await;
        wait = wait.saturating_mul(2);
    }
}

/// A job that never reached `UploadComplete` wrote nothing: say so, keep the kind.
fn nothing_written(err: CrmError, job: &str, step: &str) -> CrmError {
    CrmError {
        message: format!(
            "salesforce bulk job {job}: {step} failed ({}); the job was aborted before it ran, nothing was written",
            err.message
        ),
        ..err
    }
}

/// A Bulk `sf__Error` value: `CODE:message:fields --`.
pub(crate) fn bulk_error(text: &str) -> WriteOutcome {
    let (code, rest) = text.split_once(':').unwrap_or((text, ""));
    let message = rest
        .trim_end_matches(" --")
        .trim_end_matches("--")
        .trim()
        .trim_end_matches(':');
    let code = code.trim();
    WriteOutcome::Rejected {
        kind: reject_kind(code),
        code: if code.is_empty() {
            "UNKNOWN".into()
        } else {
            code.to_owned()
        },
        message: message.to_owned(),
    }
}

/// Collections retrieve, one type, ≤ 2,000 ids per call: rows aligned with `ids`,
/// `None` for ids not found / deleted / invisible.
pub(crate) async fn retrieve(
    client: &Client,
    sobject: SObject,
    ids: &[String],
    fields: &[&'static str],
) -> Result<Vec<Option<Map<String, Value>>>, CrmError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(RETRIEVE_MAX) {
        let request = Request::json(
            Method::POST,
            Target::Api(format!("/composite/sobjects/{}", sobject.api_name())),
            &RetrieveRequest { ids: chunk, fields },
        );
        let (rows, _) = client
            .send_json::<Vec<Option<Map<String, Value>>>>(&request, "collections retrieve")
            .await?;
        if rows.len() != chunk.len() {
            return Err(CrmError::new(
                ErrorKind::Protocol,
                format!(
                    "salesforce retrieve answered {} rows for {} ids",
                    rows.len(),
                    chunk.len()
                ),
            ));
        }
        out.extend(rows);
    }
    Ok(out)
}

fn canonical_list(ids: &[RecordId]) -> Vec<String> {
    ids.iter()
        .map(|id| ids::canonical_or_raw(id.as_str()))
        .collect()
}

/// Owners as they are now; missing and deleted records are absent.
pub(crate) async fn current_owners(
    client: &Client,
    object: ObjectKind,
    ids: &[RecordId],
) -> Result<Vec<CurrentOwner>, CrmError> {
    let sobject = writable_sobject(object)?;
    let fields: &[&'static str] = match sobject {
        SObject::Lead => &["Id", "OwnerId", "IsConverted", "SystemModstamp"],
        _ => &["Id", "OwnerId", "SystemModstamp"],
    };
    let ids = canonical_list(ids);
    let rows = retrieve(client, sobject, &ids, fields).await?;
    Ok(rows
        .into_iter()
        .flatten()
        .filter_map(|row| {
            let id = wire::string_field(&row, "Id")?;
            Some(CurrentOwner {
                id: RecordId(ids::canonical_or_raw(&id)),
                owner_id: wire::string_field(&row, "OwnerId")
                    .map(|o| OwnerId(ids::canonical_or_raw(&o))),
                writable: !wire::bool_field(&row, "IsConverted").unwrap_or(false),
                updated_at: wire::datetime_field(&row, "SystemModstamp"),
            })
        })
        .collect())
}

/// Current state of specific records. Ids gone from the org come back as
/// [`Change::Deleted`], or [`Change::Merged`] plus the survivor's upsert when they
/// were merge losers.
pub(crate) async fn fetch(
    client: &Client,
    object: ObjectKind,
    ids: &[RecordId],
) -> Result<Vec<Change>, CrmError> {
    let ids = canonical_list(ids);
    let mut changes = Vec::new();
    if object == ObjectKind::Owner {
        let (users, queues): (Vec<String>, Vec<String>) = ids
            .into_iter()
            .partition(|id| ids::kind_of(id) == ids::IdKind::User);
        for (sobject, list) in [(SObject::User, users), (SObject::Queue, queues)] {
            if list.is_empty() {
                continue;
            }
            for (id, row) in list
                .iter()
                .zip(retrieve(client, sobject, &list, sobject.fields()).await?)
            {
                // A `00G` id may be a public group rather than a queue: not an owner.
                let is_owner = |row: &Map<String, Value>| {
                    sobject != SObject::Queue
                        || wire::string_field(row, "Type").as_deref() == Some("Queue")
                };
                match row {
                    Some(row) if is_owner(&row) => {
                        changes.push(Change::Upsert(map_row(sobject, row)?))
                    }
                    _ => changes.push(Change::Deleted {
                        object,
                        id: RecordId(id.clone()),
                        at: None,
                        purge: false,
                    }),
                }
            }
        }
        return Ok(changes);
    }
    let sobject = writable_sobject(object)?;
    let rows = retrieve(client, sobject, &ids, sobject.fields()).await?;
    let mut missing = Vec::new();
    for (id, row) in ids.iter().zip(rows) {
        match row {
            Some(row) => changes.push(Change::Upsert(map_row(sobject, row)?)),
            None => missing.push(id.clone()),
        }
    }
    let mut winners = Vec::new();
    for chunk in missing.chunks(soql::MAX_IDS_PER_IN) {
        let request = Request::get(Target::Api("/queryAll".into()))
            .query("q", soql::deleted_by_ids(sobject, chunk));
        let (page, _) = client.send_json::<QueryPage>(&request, "queryAll").await?;
        let mut found: HashMap<String, Map<String, Value>> = page
            .records
            .into_iter()
            .filter_map(|row| Some((ids::canonical_or_raw(&wire::string_field(&row, "Id")?), row)))
            .collect();
        for id in chunk {
            let row = found.remove(id);
            let at = row
                .as_ref()
                .and_then(|r| wire::datetime_field(r, "SystemModstamp"));
            let master = row
                .as_ref()
                .and_then(|r| wire::string_field(r, "MasterRecordId"));
            match master {
                Some(winner) => {
                    let winner = ids::canonical_or_raw(&winner);
                    winners.push(RecordId(winner.clone()));
                    changes.push(Change::Merged {
                        object,
                        loser: RecordId(id.clone()),
                        winner: RecordId(winner),
                        at,
                    });
                }
                None => changes.push(Change::Deleted {
                    object,
                    id: RecordId(id.clone()),
                    at,
                    purge: false,
                }),
            }
        }
    }
    winners.sort();
    winners.dedup();
    winners.retain(|w| !ids.contains(&w.0));
    if !winners.is_empty() {
        let winner_ids = canonical_list(&winners);
        for row in retrieve(client, sobject, &winner_ids, sobject.fields())
            .await?
            .into_iter()
            .flatten()
        {
            changes.push(Change::Upsert(map_row(sobject, row)?));
        }
    }
    Ok(changes)
}

fn map_row(sobject: SObject, row: Map<String, Value>) -> Result<leadroute_crm::Record, CrmError> {
    map::record(sobject, row).map_err(|e| CrmError::new(ErrorKind::Protocol, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(json: &str) -> Vec<CollectionResult> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn results_map_to_changes_by_position_not_id() {
        // The second result has no id (as a failed create would), yet is the second change.
        let results = result(
            r#"[{"id":"00Q5e00000AbCdEEAV","success":true,"errors":[]},
                {"success":false,"errors":[{"statusCode":"INACTIVE_OWNER_OR_USER","message":"operation performed with inactive user","fields":[]}]},
                {"id":"00Q5e00000AbCdGEAV","success":false,"errors":[{"statusCode":"ENTITY_IS_DELETED","message":"entity is deleted","fields":[]}]}]"#,
        );
        let outcomes = outcomes_by_index(&results, 3).unwrap();
        assert_eq!(outcomes[0], WriteOutcome::Applied);
        assert!(
            matches!(&outcomes[1], WriteOutcome::Rejected { kind: RejectKind::InactiveOwner, code, .. } if code == "INACTIVE_OWNER_OR_USER")
        );
        assert!(matches!(
            &outcomes[2],
            WriteOutcome::Rejected {
                kind: RejectKind::NotFound,
                ..
            }
        ));
    }

    #[test]
    fn a_result_count_mismatch_is_a_protocol_error_not_a_guess() {
        let results = result(r#"[{"id":"x","success":true,"errors":[]}]"#);
        assert_eq!(
            outcomes_by_index(&results, 2).unwrap_err().kind,
            ErrorKind::Protocol
        );
    }

    #[test]
    fn status_codes_map_to_reject_kinds() {
        let cases = [
            ("INACTIVE_OWNER_OR_USER", RejectKind::InactiveOwner),
            ("INVALID_CROSS_REFERENCE_KEY", RejectKind::InvalidOwner),
            ("FIELD_INTEGRITY_EXCEPTION", RejectKind::InvalidOwner),
            ("ENTITY_IS_DELETED", RejectKind::NotFound),
            ("UNABLE_TO_LOCK_ROW", RejectKind::Locked),
            ("FIELD_CUSTOM_VALIDATION_EXCEPTION", RejectKind::Validation),
            ("DUPLICATES_DETECTED", RejectKind::Validation),
            (
                "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
                RejectKind::Validation,
            ),
            ("CANNOT_UPDATE_CONVERTED_LEAD", RejectKind::ReadOnly),
            ("ALL_OR_NONE_OPERATION_ROLLED_BACK", RejectKind::RolledBack),
            ("SOMETHING_NEW", RejectKind::Other),
        ];
        for (code, kind) in cases {
            assert_eq!(reject_kind(code), kind, "{code}");
        }
    }

    #[test]
    fn bulk_errors_split_code_and_message() {
        let outcome = bulk_error(
            "INACTIVE_OWNER_OR_USER:operation performed with inactive user [005x] as owner of lead:--",
        );
        assert!(
            matches!(outcome, WriteOutcome::Rejected { kind: RejectKind::InactiveOwner, ref message, .. } if message.starts_with("operation performed"))
        );
    }

    #[test]
    fn bulk_results_take_sf_id_and_error_whatever_the_line_ends() {
        let failed = "\"sf__Id\",\"sf__Error\",\"Id\",\"OwnerId\"\r\n\
                      \"00Q5e00000AbCdEEAV\",\"UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record:--\",\"00Q5e00000AbCdE\",\"0055e000009KlMnAAK\"\r\n";
        let rows = bulk_result_rows(failed.as_bytes()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].0, "00Q5e00000AbCdEEAV",
            "sf__Id wins over the uploaded Id"
        );
        assert!(matches!(
            bulk_error(&rows[0].1),
            WriteOutcome::Rejected { kind: RejectKind::Locked, ref code, .. } if code == "UNABLE_TO_LOCK_ROW"
        ));
        // An unprocessed-records file has only the uploaded columns.
        let unprocessed = "Id,OwnerId\n00Q5e00000AbCdFEAV,0055e000009KlMnAAK\n";
        let rows = bulk_result_rows(unprocessed.as_bytes()).unwrap();
        assert_eq!(rows, vec![("00Q5e00000AbCdFEAV".to_owned(), String::new())]);
    }

    #[test]
    fn bulk_uploads_are_id_owner_csv_with_lf_line_ends() {
        let csv = bulk_csv(&[("00Q1".to_owned(), "0051".to_owned())]).unwrap();
        assert_eq!(String::from_utf8(csv).unwrap(), "Id,OwnerId\n00Q1,0051\n");
    }

    #[test]
    fn http_dates_are_rfc_7231() {
        use chrono::TimeZone;
        let at = Utc.with_ymd_and_hms(2025, 3, 4, 9, 15, 27).unwrap();
        assert_eq!(http_date(at), "Tue, 04 Mar 2025 09:15:27 GMT");
    }

    #[test]
    fn collections_bodies_carry_type_id_and_owner() {
        let body = CollectionUpdate {
            all_or_none: false,
            records: vec![OwnerUpdate {
                attributes: Attributes { kind: "Lead" },
                id: "00Q5e00000AbCdEEAV",
                owner_id: "0055e000009KlMnAAK",
            }],
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"allOrNone":false,"records":[{"attributes":{"type":"Lead"},"id":"00Q5e00000AbCdEEAV","OwnerId":"0055e000009KlMnAAK"}]})
        );
    }
}
