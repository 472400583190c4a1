//! Bulk API 2.0 ingest jobs: the job store, CSV parsing, and the background processing
//! that runs each row through the same record writes as REST (but without the
//! assignment rule unless the job named one), producing the success/failure CSVs.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value as Json, json};

use super::schema::{ObjType, format_datetime};
use super::server::Shared;
use super::writes::{self, RecError, WriteOpts};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Insert,
    Update,
    Delete,
}

impl Operation {
    pub(crate) fn parse(s: &str) -> Option<Operation> {
        match s {
            "insert" => Some(Operation::Insert),
            "update" => Some(Operation::Update),
            "delete" => Some(Operation::Delete),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct BulkJob {
    pub(crate) id: String,
    pub(crate) object: ObjType,
    pub(crate) operation: Operation,
    pub(crate) state: &'static str,
    pub(crate) created_by: String,
    pub(crate) created_at: i64,
    pub(crate) modstamp: i64,
    pub(crate) line_ending: String,
    pub(crate) assignment_rule_id: Option<String>,
    pub(crate) api_version: String,
    pub(crate) csv: Option<Vec<u8>>,
    pub(crate) processed: u64,
    pub(crate) failed: u64,
    pub(crate) error_message: Option<String>,
    pub(crate) success_csv: String,
    pub(crate) failure_csv: String,
    pub(crate) unprocessed_csv: String,
}

impl BulkJob {
    pub(crate) fn is_terminal(&self) -> bool {
        matches!(self.state, "JobComplete" | "Failed" | "Aborted")
    }

    pub(crate) fn info(&self) -> Json {
        let mut out = json!({
            "id": self.id,
            "operation": self.operation.name(),
            "object": self.object.name(),
            "createdById": self.created_by,
            "createdDate": format_datetime(self.created_at),
            "systemModstamp": format_datetime(self.modstamp),
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": self.api_version.parse::<f64>().unwrap_or(62.0),
            "jobType": "V2Ingest",
            "lineEnding": self.line_ending,
            "columnDelimiter": "COMMA",
            "numberRecordsProcessed": self.processed,
            "numberRecordsFailed": self.failed,
            "retries": 0,
            "totalProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "apexProcessingTime": 0,
        });
        if self.state == "Open" {
            out["contentUrl"] = json!(format!(
                "services/data/v{}/jobs/ingest/{}/batches",
                self.api_version, self.id
            ));
        }
        if let Some(rule) = &self.assignment_rule_id {
            out["assignmentRuleId"] = json!(rule);
        }
        if let Some(message) = &self.error_message {
            out["errorMessage"] = json!(message);
        }
        out
    }
}

/// All ingest jobs by id.
#[derive(Debug, Default)]
pub(crate) struct BulkJobs {
    pub(crate) jobs: HashMap<String, BulkJob>,
    pub(crate) order: Vec<String>,
}

impl BulkJobs {
    pub(crate) fn len(&self) -> usize {
        self.jobs.len()
    }
}

fn csv_line(fields: &[String]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| format!("\"{}\"", f.replace('"', "\"\"")))
        .collect();
    format!("{}\n", quoted.join(","))
}

fn sf_error(err: &RecError) -> String {
    format!(
        "{}:{}:{} --",
        err.status_code,
        err.message,
        err.fields.join(",")
    )
}

/// Processes an UploadComplete job after the configured delay: it turns InProgress,
/// then works through its rows [`SalesforceSimConfig::bulk_step_rows`] at a time,
/// [`SalesforceSimConfig::bulk_step_delay`] apart. An abort between two steps stops
/// it: rows already processed stay written (and in the result files), the rest are
/// unprocessed.
///
/// [`SalesforceSimConfig::bulk_step_rows`]: super::SalesforceSimConfig::bulk_step_rows
/// [`SalesforceSimConfig::bulk_step_delay`]: super::SalesforceSimConfig::bulk_step_delay
pub(crate) fn start_processing(shared: Arc<Shared>, job_id: String) {
    let delay = shared.config.bulk_processing_delay;
    let task_shared = Arc::clone(&shared);
    let task = tokio::spawn(async move {
        let shared = task_shared;
        tokio::time::sleep(delay / 2).await;
        {
            let mut bulk = shared.bulk.lock();
            match bulk.jobs.get_mut(&job_id) {
                Some(job) if job.state == "UploadComplete" => job.state = "InProgress",
                _ => return,
            }
        }
        tokio::time::sleep(delay / 2).await;
        let Some(mut run) = prepare(&shared, &job_id) else {
            return;
        };
        let step = shared.config.bulk_step_rows.max(1);
        let mut next = 0usize;
        loop {
            if next > 0 {
                tokio::time::sleep(shared.config.bulk_step_delay).await;
            }
            let end = next.saturating_add(step).min(run.rows.len());
            if !process_step(&shared, &job_id, &mut run, next..end) {
                return;
            }
            next = end;
            if next >= run.rows.len() {
                break;
            }
        }
        let mut bulk = shared.bulk.lock();
        if let Some(job) = bulk.jobs.get_mut(&job_id) {
            // Every row was processed (an abort after the last step changes nothing).
            job.unprocessed_csv = csv_line(&run.headers);
            if job.state == "InProgress" {
                job.state = "JobComplete";
                job.modstamp = chrono::Utc::now().timestamp();
            }
        }
    });
    shared.spawn_task(task);
}

/// A job being processed: its parsed CSV and the result files so far.
struct Run {
    job: BulkJob,
    headers: Vec<String>,
    id_col: Option<usize>,
    rows: Vec<Vec<String>>,
    success: String,
    failure: String,
    processed: u64,
    failed: u64,
}

/// Parses an InProgress job's CSV; a job whose CSV is unusable fails (`None`).
fn prepare(shared: &Shared, job_id: &str) -> Option<Run> {
    let job = shared.bulk.lock().jobs.get(job_id).cloned()?;
    if job.state != "InProgress" {
        return None;
    }
    let data = job.csv.clone().unwrap_or_default();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(data.as_slice());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_owned).collect(),
        Err(err) => {
            fail(
                shared,
                job_id,
                format!("InvalidBatch : unreadable CSV header: {err}"),
            );
            return None;
        }
    };
    if let Some(bad) = headers
        .iter()
        .find(|h| !h.eq_ignore_ascii_case("id") && job.object.field_index(h).is_none())
    {
        fail(
            shared,
            job_id,
            format!("InvalidBatch : Field name not found : {bad}"),
        );
        return None;
    }
    let id_col = headers.iter().position(|h| h.eq_ignore_ascii_case("id"));
    if job.operation != Operation::Insert && id_col.is_none() {
        fail(
            shared,
            job_id,
            "InvalidBatch : Id column is required for update and delete".into(),
        );
        return None;
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        match record {
            Ok(r) => rows.push(r.iter().map(str::to_owned).collect::<Vec<String>>()),
            Err(err) => {
                fail(shared, job_id, format!("InvalidBatch : {err}"));
                return None;
            }
        }
    }
    let success = csv_line(
        &["sf__Id".to_owned(), "sf__Created".to_owned()]
            .into_iter()
            .chain(headers.iter().cloned())
            .collect::<Vec<_>>(),
    );
    let failure = csv_line(
        &["sf__Id".to_owned(), "sf__Error".to_owned()]
            .into_iter()
            .chain(headers.iter().cloned())
            .collect::<Vec<_>>(),
    );
    Some(Run {
        job,
        headers,
        id_col,
        rows,
        success,
        failure,
        processed: 0,
        failed: 0,
    })
}

/// Processes `range` of the job's rows unless it is no longer InProgress (aborted):
/// then the rows from `range.start` on become its unprocessed records and this
/// answers false. Runs under the execution lock, so an abort lands between steps.
fn process_step(
    shared: &Shared,
    job_id: &str,
    run: &mut Run,
    range: std::ops::Range<usize>,
) -> bool {
    let _exec = shared.exec.lock();
    {
        let mut bulk = shared.bulk.lock();
        let Some(job) = bulk.jobs.get_mut(job_id) else {
            return false;
        };
        if job.state != "InProgress" {
            // Aborted: what was processed stays; the rest never runs.
            let mut unprocessed = csv_line(&run.headers);
            for row in &run.rows[range.start..] {
                unprocessed.push_str(&csv_line(row));
            }
            job.unprocessed_csv = unprocessed;
            return false;
        }
    }
    let job = &run.job;
    {
        let mut org = shared.org.lock();
        let mut faults = shared.faults.lock();
        let late_ms = faults.script.late_commit_ms;
        let mut lock_row = || faults.lock_row();
        let mut opts = WriteOpts {
            auto_assign: job.assignment_rule_id.is_some(),
            source: "bulk2",
            late_ms,
            lock_row: &mut lock_row,
        };
        for row in &run.rows[range] {
            let mut fields = Map::new();
            for (h, v) in run.headers.iter().zip(row) {
                if h.eq_ignore_ascii_case("id") || v.is_empty() {
                    continue;
                }
                // `#N/A` sets a field to null; an empty cell leaves it unchanged.
                let value = if v == "#N/A" { Json::Null } else { json!(v) };
                fields.insert(h.clone(), value);
            }
            let id = run.id_col.map(|c| row[c].clone()).unwrap_or_default();
            let outcome = match job.operation {
                Operation::Update => writes::update(
                    &mut org,
                    &shared.config,
                    job.object,
                    &id,
                    &fields,
                    &mut opts,
                ),
                Operation::Insert => {
                    writes::create(&mut org, &shared.config, job.object, &fields, &mut opts)
                }
                Operation::Delete => writes::record_id(job.object, &id).and_then(|canonical| {
                    writes::soft_delete(&mut org, job.object, &canonical, None).map(|()| canonical)
                }),
            };
            run.processed += 1;
            match outcome {
                Ok(new_id) => {
                    let created = job.operation == Operation::Insert;
                    let mut line = vec![new_id, created.to_string()];
                    line.extend(row.iter().cloned());
                    run.success.push_str(&csv_line(&line));
                }
                Err(err) => {
                    run.failed += 1;
                    let mut line = vec![
                        if job.operation == Operation::Insert {
                            String::new()
                        } else {
                            id
                        },
                        sf_error(&err),
                    ];
                    line.extend(row.iter().cloned());
                    run.failure.push_str(&csv_line(&line));
                }
            }
        }
    }
    shared.outbound_wake.notify_one();
    let mut bulk = shared.bulk.lock();
    if let Some(job) = bulk.jobs.get_mut(job_id) {
        job.processed = run.processed;
        job.failed = run.failed;
        job.success_csv = run.success.clone();
        job.failure_csv = run.failure.clone();
        job.modstamp = chrono::Utc::now().timestamp();
    }
    true
}

fn fail(shared: &Shared, job_id: &str, message: String) {
    let mut bulk = shared.bulk.lock();
    if let Some(job) = bulk.jobs.get_mut(job_id) {
        job.state = "Failed";
        job.error_message = Some(message);
        job.modstamp = chrono::Utc::now().timestamp();
    }
}
