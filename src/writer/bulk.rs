//! The bulk path: one object's large queue written through the CRM's bulk API
//! (Salesforce Bulk API 2.0) in jobs of [`WriterSettings::bulk_job_size`] records,
//! keeping every invariant of the batched path:
//!
//! - compare before write: each job's records are read (in `max_read_batch` chunks)
//!   just before the job, and only those still holding the plan's `from` go in it;
//! - write-ahead: the whole job's intent is committed before the job is created;
//! - per-record outcomes settle through the same recovery as a batch (retry, re-plan,
//!   exception), and a job that failed or whose outcome is unknown (lost answer,
//!   timeout) sends its records back to be re-read, never blindly resent;
//! - what is too small for a job (the tail of the queue, records to retry) goes
//!   through the batched path.
//!
//! Strict mode never uses it: a bulk job cannot carry `If-Unmodified-Since`.
//!
//! A job is never left running unknown to the journal. The CRM contract splits a bulk
//! write in two: `bulk_start` creates the job and loads it without closing it (a Bulk
//! API 2.0 job processes nothing before `UploadComplete`), the job's id is committed
//! to the journal (`writer_batches.job_id`), and only then `bulk_run` closes it and
//! waits for it. So a process killed at any moment leaves either no job that can write
//! or a running job the journal names; `resume` (`recover` in `mod.rs`) aborts every
//! job whose end was never journaled and waits until it is final (`bulk_abort`)
//! *before* it reads owners. The records the orphan processed then hold `to` and
//! settle as applied; the rest still hold `from` and go out once, in a new job; a human
//! edit made meanwhile is read and kept. If the abort cannot be confirmed (CRM
//! unreachable, job still running at the connector's bulk timeout) the run stops,
//! resumable, having read and written nothing. The same holds within a process: a job
//! that failed as a whole is confirmed ended before its records are re-read, else the
//! run stops and leaves it to `resume`.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use leadroute_crm::{Crm, CrmError, ObjectKind, OwnerChange, RecordId};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::store::BatchIntent;

use super::{Flow, Item, Session, Stop, Verdict, Writer, WriterError, cancelled, outcome_count};

impl<C: Crm> Writer<C> {
    /// The queue size from which one object's changes go through the CRM's bulk path,
    /// or `None` when there is no bulk path (the CRM has none, it is turned off, or
    /// writes must be conditional).
    pub(super) fn bulk_threshold(&self) -> Option<usize> {
        if !self.settings.bulk || self.conditional() {
            return None;
        }
        let crm = self.crm.write_limits().bulk_threshold?;
        Some(self.settings.bulk_threshold.unwrap_or(crm).max(1))
    }

    /// The least a queue of `changes` costs through the bulk path (write HTTP calls,
    /// compare reads), or `None` when it would not take the bulk path. A tail too small
    /// for a job goes in batches.
    pub(super) fn bulk_minimum_calls(&self, changes: usize) -> Option<(u64, u64)> {
        let threshold = self.bulk_threshold().filter(|t| changes >= *t)?;
        let job = self.settings.bulk_job_size.max(1);
        let (mut jobs, mut tail) = (changes / job, changes % job);
        if tail >= threshold {
            jobs += 1;
            tail = 0;
        }
        let batch = self.batch_size();
        let read = self.read_batch_size();
        let writes = jobs as u64 * BULK_JOB_CALLS + tail.div_ceil(batch) as u64;
        let reads = (changes - tail).div_ceil(read) + tail.div_ceil(batch.min(read));
        Some((writes, reads as u64))
    }
}

/// HTTP calls one Bulk API 2.0 job makes at least: create, upload, close, one status
/// poll, successful and failed results, delete. A long job polls more.
pub(super) const BULK_JOB_CALLS: u64 = 7;

/// A bulk job's records that went back to the queue, and why.
type Requeued = (CrmError, Vec<Item>);

/// How one bulk job ended for the loop.
enum JobEnd {
    /// Its outcomes are settled.
    Done,
    /// It failed as a whole and is known to be over: re-read these records.
    Requeue(Requeued),
    /// It failed and may still be running: the run stops, `resume` settles it.
    Stop(Stop),
}

impl<C: Crm> Session<'_, C> {
    /// Sends one object's queue: through bulk jobs when it is large enough, else in
    /// batches.
    pub(super) async fn converge_any(
        &mut self,
        object: ObjectKind,
        queue: VecDeque<Item>,
    ) -> Result<Option<Stop>, WriterError> {
        match self.writer.bulk_threshold() {
            Some(threshold) if queue.len() >= threshold => {
                self.converge_bulk(object, queue, threshold).await
            }
            _ => self.converge(object, queue).await,
        }
    }

    /// The bulk loop: read a job's worth, journal the intent, run the job, settle.
    async fn converge_bulk(
        &mut self,
        object: ObjectKind,
        mut queue: VecDeque<Item>,
        threshold: usize,
    ) -> Result<Option<Stop>, WriterError> {
        let writer = self.writer;
        let job_size = writer.settings.bulk_job_size.max(1);
        let read_batch = writer.read_batch_size();
        // Ready records too few for a job: the batched path takes them (and re-reads).
        let mut batched: Vec<Item> = Vec::new();
        // Retryable rejections, with their backoff.
        let mut delayed: Vec<Item> = Vec::new();
        let mut consecutive_failures = 0u32;
        loop {
            if writer.cancel.is_cancelled() {
                return Ok(Some(cancelled()));
            }
            if queue.len() < threshold {
                // Too few left to fill a job: the batched path reads and sends them.
                batched.extend(queue.drain(..));
            }
            if queue.is_empty() {
                if delayed.len() < threshold {
                    break;
                }
                // Enough retries for another job: wait out their backoff first.
                if !self.wait_until_due(&delayed).await {
                    return Ok(Some(cancelled()));
                }
                queue.extend(delayed.drain(..));
                continue;
            }

            // Compare before write, one job's worth.
            let take = job_size.min(queue.len());
            let mut unread: VecDeque<Item> = queue.drain(..take).collect();
            let mut ready: Vec<(Item, Option<DateTime<Utc>>)> = Vec::with_capacity(take);
            let mut failure = None;
            let first_read = Instant::now();
            while !unread.is_empty() {
                let part: Vec<Item> = unread.drain(..read_batch.min(unread.len())).collect();
                let ids: Vec<RecordId> = part.iter().map(|i| i.id.clone()).collect();
                let owners = match self.read_owners(object, &ids).await {
                    Ok(owners) => owners,
                    Err(err) => {
                        for item in part.into_iter().rev() {
                            unread.push_front(item);
                        }
                        failure = Some(err);
                        break;
                    }
                };
                let mut outcomes = Vec::new();
                for item in part {
                    match Self::judge(&item, owners.get(&item.id)) {
                        Verdict::Ready(updated_at) => ready.push((item, updated_at)),
                        Verdict::Final(outcome) => {
                            self.note_final(object, &item, &outcome);
                            outcomes.push((item.seq, outcome));
                        }
                    }
                }
                writer
                    .store
                    .journal_outcomes(self.run.as_str(), &outcomes, Utc::now())
                    .await?;
            }
            if let Some(err) = failure {
                // Nothing was sent: everything not yet final goes back to be re-read.
                for item in unread.into_iter().rev() {
                    queue.push_front(item);
                }
                for (item, _) in ready.into_iter().rev() {
                    queue.push_front(item);
                }
                consecutive_failures += 1;
                match self.after_call_failure(&err, consecutive_failures).await {
                    Flow::Continue => continue,
                    Flow::Stop(stop) => return Ok(Some(stop)),
                }
            }
            self.report_progress();
            if ready.len() < threshold {
                batched.extend(ready.into_iter().map(|(item, _)| item));
                continue;
            }
            match self
                .send_job(object, ready, first_read, &mut delayed)
                .await?
            {
                JobEnd::Done => consecutive_failures = 0,
                JobEnd::Stop(stop) => return Ok(Some(stop)),
                JobEnd::Requeue((err, items)) => {
                    // Sent or not, nothing is resent blind: re-read first.
                    for item in items.into_iter().rev() {
                        queue.push_front(item);
                    }
                    consecutive_failures += 1;
                    if let Flow::Stop(stop) =
                        self.after_call_failure(&err, consecutive_failures).await
                    {
                        return Ok(Some(stop));
                    }
                }
            }
            self.report_progress();
        }
        batched.extend(delayed);
        if batched.is_empty() {
            return Ok(None);
        }
        // The batched path does not look at `not_before` for queued items.
        if !self.wait_until_due(&batched).await {
            return Ok(Some(cancelled()));
        }
        self.converge(object, batched.into()).await
    }

    /// Journals the intent for `ready`, starts one bulk job, journals its id, runs it
    /// and settles its outcomes.
    async fn send_job(
        &mut self,
        object: ObjectKind,
        ready: Vec<(Item, Option<DateTime<Utc>>)>,
        read_at: Instant,
        delayed: &mut Vec<Item>,
    ) -> Result<JobEnd, WriterError> {
        let writer = self.writer;
        // The fence, as for batched writes: no job is started without the lease.
        if let Some(stop) = writer.fenced().await {
            return Ok(JobEnd::Stop(stop));
        }
        let batch_id = self.next_batch_id().await?;
        let seqs: Vec<i64> = ready.iter().map(|(i, _)| i.seq).collect();
        self.journal(
            Vec::new(),
            Some(BatchIntent {
                batch_id,
                object,
                seqs: &seqs,
                lease_epoch: writer.fence.as_ref().map(|f| f.epoch),
            }),
        )
        .await?;
        let changes: Vec<OwnerChange> = ready
            .iter()
            .map(|(item, _)| OwnerChange {
                id: item.id.clone(),
                from: item.from.clone(),
                to: item.to.clone(),
                if_unmodified_since: None,
            })
            .collect();
        let mut ready = ready;
        for (item, _) in &mut ready {
            item.sent = true;
        }
        self.tally.write_calls.fetch_add(1, Ordering::Relaxed);
        self.tally.bulk_jobs.fetch_add(1, Ordering::Relaxed);
        self.tally
            .records_sent
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        self.progress.note(&format!(
            "bulk job: {} {object} changes (batch {batch_id})",
            changes.len()
        ));
        let total = changes.len();
        // Create and load the job; it cannot write anything until `bulk_run` closes it.
        let started = writer
            .guarded(writer.crm.bulk_start(object, &changes))
            .await;
        let mut job_id = None;
        let result = match started {
            Ok(job) => {
                if let Some(id) = &job.id {
                    // Journaled before the job may run: after a crash, `resume` aborts
                    // it and waits for it before reading owners (see `recover`).
                    writer
                        .store
                        .journal_bulk_job(self.run.as_str(), batch_id, id)
                        .await?;
                    job_id = Some(id.clone());
                }
                writer.guarded(writer.crm.bulk_run(job)).await
            }
            Err(err) => Err(err),
        };
        let result = result.and_then(|bulk| {
            outcome_count(bulk.outcomes.len(), total, "bulk outcomes").map(|()| bulk)
        });
        // The job runs asynchronously on the CRM: the window a human edit could fall
        // in lasts from the compare read until the job is finished.
        self.race.push(read_at.elapsed());
        match result {
            Ok(bulk) => {
                let job = bulk.job_id.as_deref().unwrap_or("-");
                info!(run_id = %self.run, object = %object, job, records = total, "bulk job finished");
                self.pending.batch_result = Some((batch_id, format!("ok bulk {job}")));
                self.settle(object, ready, bulk.outcomes, delayed);
                self.flush().await?;
                Ok(JobEnd::Done)
            }
            Err(err) => {
                self.tally.call_failures.fetch_add(1, Ordering::Relaxed);
                if let Some(id) = &job_id {
                    // The connector aborts a job it gives up on, best effort; make sure
                    // it is final before its records are re-read and sent again.
                    if let Err(abort) = writer.guarded(writer.crm.bulk_abort(object, id)).await {
                        // It may still be writing: leave the batch unsettled (its rows
                        // stay in flight) so `resume` aborts and waits for it first.
                        warn!(run_id = %self.run, job = %id, error = %abort, "a failed bulk job could not be confirmed ended; stopping");
                        self.flush().await?;
                        let mut stop = self.stop_for(&abort);
                        stop.message = format!(
                            "bulk job {id} failed ({err}) and could not be confirmed ended \
                             ({abort}); resume the run to abort it and settle its records"
                        );
                        return Ok(JobEnd::Stop(stop));
                    }
                }
                let note = format!("bulk job failed ({}); re-read before retry", err.kind);
                self.pending.batch_result = Some((batch_id, format!("error:{} bulk", err.kind)));
                self.pending
                    .requeue
                    .extend(ready.iter().map(|(i, _)| (i.seq, note.clone())));
                self.flush().await?;
                Ok(JobEnd::Requeue((
                    err,
                    ready.into_iter().map(|(i, _)| i).collect(),
                )))
            }
        }
    }

    /// Sleeps until every item's backoff has passed; false when cancelled.
    async fn wait_until_due(&self, items: &[Item]) -> bool {
        let now = Instant::now();
        match items.iter().filter_map(|i| i.not_before).max() {
            Some(at) if at > now => self.writer.pause(at - now).await,
            _ => true,
        }
    }
}
