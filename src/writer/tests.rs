//! Writer unit tests against an in-memory fake `Crm`: batching, compare-before-write,
//! lost responses, per-record recovery, the breaker, quota stops and crash recovery.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use leadroute_crm::{
    ApiUsage, BulkJobEnd, BulkJobState, Change, CrmError, CrmKind, CurrentOwner, Cursor, ErrorKind,
    InboundRequest, Intake, IntakeError, ObjectKind, OwnerChange, OwnerId, Page, RecordId,
    RejectKind, WriteLimits, WriteOutcome,
};

use super::*;
use crate::reconcile::{Plan, PlannedChange};
use crate::store::{NewRun, Store};

/// What the next apply call does instead of succeeding.
#[derive(Debug, Clone, Copy)]
enum ApplyFault {
    /// Fails before anything is applied.
    Fail(ErrorKind),
    /// Applies the batch, then loses the response.
    LoseResponse,
}

type Hook = Box<dyn FnMut(&mut HashMap<RecordId, Option<OwnerId>>) + Send>;

#[derive(Default)]
struct FakeState {
    owners: HashMap<RecordId, Option<OwnerId>>,
    read_only: Vec<RecordId>,
    apply_calls: u64,
    read_calls: u64,
    /// Every owner write that took effect, in order.
    writes: Vec<(RecordId, OwnerId)>,
    /// Writes of a value the record already held.
    noop_writes: u64,
    read_faults: VecDeque<ErrorKind>,
    apply_faults: VecDeque<ApplyFault>,
    rejects: HashMap<RecordId, VecDeque<RejectKind>>,
    /// Runs right before an apply call is processed (a human edit in the race window).
    before_apply: Option<Hook>,
    conditions_seen: Vec<Option<chrono::DateTime<Utc>>>,
    /// The next this-many calls (reads and writes) fail with a 5xx.
    outage: u32,
    /// Records per bulk job, one entry per job.
    bulk_sizes: Vec<usize>,
    bulk_faults: VecDeque<ApplyFault>,
    /// Bulk jobs by id, and how many were started.
    jobs: HashMap<String, FakeJob>,
    jobs_started: u64,
    /// The next `bulk_abort` calls fail with these.
    abort_faults: VecDeque<ErrorKind>,
    /// Bulk job calls and owner reads, in order (`start job1`, `abort job1`, `read`).
    events: Vec<String>,
}

/// A fake bulk job.
#[derive(Debug, Clone)]
enum FakeJob {
    /// Created and loaded, not closed: writes nothing until run.
    Open,
    /// Closed and processing on its own; these rows are still to come (see
    /// [`FakeCrm::finish_orphans`]).
    Running(Vec<OwnerChange>),
    Ended(BulkJobState),
}

struct FakeCrm {
    kind: CrmKind,
    limits: WriteLimits,
    state: Mutex<FakeState>,
}

impl FakeCrm {
    fn new(max_batch: usize, records: usize, owner: &str) -> Self {
        let mut state = FakeState::default();
        for i in 0..records {
            state
                .owners
                .insert(RecordId(format!("{i}")), Some(OwnerId::new(owner)));
        }
        FakeCrm {
            kind: CrmKind::Hubspot,
            limits: WriteLimits {
                max_batch,
                max_read_batch: max_batch,
                bulk_threshold: None,
                conditional_writes: false,
            },
            state: Mutex::new(state),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    fn owner(&self, id: &str) -> Option<OwnerId> {
        self.with(|s| s.owners.get(&RecordId::from(id)).cloned().flatten())
    }

    /// What jobs left running do if nobody aborts them: process their remaining rows
    /// (as Salesforce would after the process that started them died).
    fn finish_orphans(&self) {
        let running: Vec<(String, Vec<OwnerChange>)> = self.with(|s| {
            s.jobs
                .iter()
                .filter_map(|(id, job)| match job {
                    FakeJob::Running(rows) => Some((id.clone(), rows.clone())),
                    _ => None,
                })
                .collect()
        });
        for (id, rows) in running {
            self.write(&rows, true).unwrap();
            self.with(|s| s.jobs.insert(id, FakeJob::Ended(BulkJobState::Complete)));
        }
    }

    fn writes_of(&self, id: &str) -> usize {
        self.with(|s| s.writes.iter().filter(|(r, _)| r.as_str() == id).count())
    }

    /// One apply call (`bulk`: one bulk job) against the fake org.
    fn write(&self, batch: &[OwnerChange], bulk: bool) -> Result<Vec<WriteOutcome>, CrmError> {
        self.with(|s| {
            if bulk {
                s.bulk_sizes.push(batch.len());
            } else {
                s.apply_calls += 1;
            }
            if let Some(hook) = s.before_apply.as_mut() {
                hook(&mut s.owners);
            }
            if s.outage > 0 {
                s.outage -= 1;
                return Err(err(ErrorKind::Unavailable));
            }
            let fault = if bulk {
                s.bulk_faults.pop_front()
            } else {
                s.apply_faults.pop_front()
            };
            if let Some(ApplyFault::Fail(kind)) = fault {
                return Err(err(kind));
            }
            let mut outcomes = Vec::new();
            for change in batch {
                s.conditions_seen.push(change.if_unmodified_since);
                if let Some(kind) = s.rejects.get_mut(&change.id).and_then(|q| q.pop_front()) {
                    outcomes.push(WriteOutcome::Rejected {
                        kind,
                        code: format!("{kind:?}").to_uppercase(),
                        message: "fake rejection".to_owned(),
                    });
                    continue;
                }
                // Like HubSpot: no precondition, the write lands whatever is there.
                let slot = s.owners.entry(change.id.clone()).or_default();
                if slot.as_ref() == Some(&change.to) {
                    s.noop_writes += 1;
                }
                *slot = Some(change.to.clone());
                s.writes.push((change.id.clone(), change.to.clone()));
                outcomes.push(WriteOutcome::Applied);
            }
            if let Some(ApplyFault::LoseResponse) = fault {
                return Err(err(ErrorKind::Timeout));
            }
            Ok(outcomes)
        })
    }
}

fn err(kind: ErrorKind) -> CrmError {
    CrmError::new(kind, format!("fake {kind}"))
}

impl Crm for FakeCrm {
    fn kind(&self) -> CrmKind {
        self.kind
    }

    fn objects(&self) -> &'static [ObjectKind] {
        &[ObjectKind::Contact]
    }

    fn changes(
        &self,
        _object: ObjectKind,
        _cursor: Option<&Cursor>,
    ) -> impl Future<Output = Result<Page, CrmError>> + Send {
        std::future::ready(Err(err(ErrorKind::BadRequest)))
    }

    fn fetch(
        &self,
        _object: ObjectKind,
        _ids: &[RecordId],
    ) -> impl Future<Output = Result<Vec<Change>, CrmError>> + Send {
        std::future::ready(Err(err(ErrorKind::BadRequest)))
    }

    fn current_owners(
        &self,
        _object: ObjectKind,
        ids: &[RecordId],
    ) -> impl Future<Output = Result<Vec<CurrentOwner>, CrmError>> + Send {
        let result = self.with(|s| {
            s.read_calls += 1;
            s.events.push("read".to_owned());
            if s.outage > 0 {
                s.outage -= 1;
                return Err(err(ErrorKind::Unavailable));
            }
            if let Some(kind) = s.read_faults.pop_front() {
                return Err(err(kind));
            }
            Ok(ids
                .iter()
                .filter_map(|id| {
                    s.owners.get(id).map(|owner| CurrentOwner {
                        id: id.clone(),
                        owner_id: owner.clone(),
                        writable: !s.read_only.contains(id),
                        updated_at: Some(Utc::now()),
                    })
                })
                .collect())
        });
        std::future::ready(result)
    }

    fn apply(
        &self,
        _object: ObjectKind,
        batch: &[OwnerChange],
    ) -> impl Future<Output = Result<Vec<WriteOutcome>, CrmError>> + Send {
        assert!(
            batch.len() <= self.limits.max_batch,
            "batch over the CRM maximum"
        );
        std::future::ready(self.write(batch, false))
    }

    fn bulk_start(
        &self,
        object: ObjectKind,
        batch: &[OwnerChange],
    ) -> impl Future<Output = Result<leadroute_crm::BulkJob, CrmError>> + Send {
        let result = if self.limits.bulk_threshold.is_none() {
            Err(err(ErrorKind::Unsupported))
        } else {
            Ok(self.with(|s| {
                s.jobs_started += 1;
                let id = format!("job{}", s.jobs_started);
                s.events.push(format!("start {id}"));
                s.jobs.insert(id.clone(), FakeJob::Open);
                leadroute_crm::BulkJob {
                    id: Some(id),
                    object,
                    changes: batch.to_vec(),
                }
            }))
        };
        std::future::ready(result)
    }

    fn bulk_run(
        &self,
        job: leadroute_crm::BulkJob,
    ) -> impl Future<Output = Result<leadroute_crm::BulkWrite, CrmError>> + Send {
        let id = job.id.clone().unwrap_or_default();
        self.with(|s| {
            s.events.push(format!("run {id}"));
            s.jobs
                .insert(id.clone(), FakeJob::Ended(BulkJobState::Complete));
        });
        let result = self
            .write(&job.changes, true)
            .map(|outcomes| leadroute_crm::BulkWrite {
                job_id: Some(id),
                outcomes,
            });
        std::future::ready(result)
    }

    fn bulk_abort(
        &self,
        _object: ObjectKind,
        job_id: &str,
    ) -> impl Future<Output = Result<BulkJobEnd, CrmError>> + Send {
        let result = self.with(|s| {
            s.events.push(format!("abort {job_id}"));
            if let Some(kind) = s.abort_faults.pop_front() {
                return Err(err(kind));
            }
            let state = match s.jobs.get(job_id) {
                None => BulkJobState::Gone,
                Some(FakeJob::Ended(state)) => *state,
                Some(FakeJob::Open | FakeJob::Running(_)) => BulkJobState::Aborted,
            };
            s.jobs.insert(job_id.to_owned(), FakeJob::Ended(state));
            Ok(BulkJobEnd {
                state,
                processed: 0,
                failed: 0,
            })
        });
        std::future::ready(result)
    }

    fn write_limits(&self) -> WriteLimits {
        self.limits.clone()
    }

    fn usage(&self) -> ApiUsage {
        ApiUsage::default()
    }

    fn intake(&self, _request: &InboundRequest) -> Result<Intake, IntakeError> {
        Err(IntakeError::Malformed(
            "the fake CRM has no notifications".to_owned(),
        ))
    }
}

fn plan(records: usize, from: &str, to: &str) -> Plan {
    Plan {
        policy_version: "v1".to_owned(),
        created_at: Utc::now(),
        crm: CrmKind::Hubspot,
        changes: (0..records)
            .map(|i| PlannedChange {
                object: ObjectKind::Contact,
                id: RecordId(format!("{i}")),
                field: "owner".to_owned(),
                from: Some(OwnerId::new(from)),
                to: OwnerId::new(to),
                rule: "r1".to_owned(),
                reason: "territory".to_owned(),
                policy_version: "v1".to_owned(),
                record_updated_at: None,
            })
            .collect(),
        exceptions: Vec::new(),
    }
}

fn fast_settings() -> WriterSettings {
    WriterSettings {
        retry_min: Duration::from_millis(1),
        retry_max: Duration::from_millis(5),
        breaker_cooldown: Duration::from_millis(20),
        ..WriterSettings::default()
    }
}

async fn setup(max_batch: usize, records: usize) -> (Arc<FakeCrm>, Store) {
    let crm = Arc::new(FakeCrm::new(max_batch, records, "a"));
    let store = Store::open("sqlite::memory:").await.unwrap();
    (crm, store)
}

async fn outcomes(store: &Store, run: &str) -> HashMap<String, String> {
    store
        .journal_entries(run)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.id.0, e.outcome.unwrap_or_else(|| "pending".to_owned())))
        .collect()
}

#[tokio::test]
async fn writes_in_batches_at_the_crm_maximum_with_no_extra_calls() {
    let (crm, store) = setup(100, 250).await;
    let writer = Writer::new(crm.clone(), store.clone(), fast_settings());
    let report = writer
        .apply(&plan(250, "a", "b"), RunId::new("run1"), &NoProgress)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.applied, 250);
    assert_eq!(report.write_calls, 3, "ceil(250 / 100)");
    assert_eq!(crm.with(|s| s.apply_calls), 3);
    assert_eq!(crm.with(|s| s.read_calls), 3);
    assert_eq!(crm.with(|s| s.noop_writes), 0);
    assert!(report.race_window.is_some());
    let run = store.journal_run("run1").await.unwrap().unwrap();
    assert_eq!(run.status, crate::store::RunStatus::Completed);
}

#[tokio::test]
async fn records_changed_since_the_plan_are_skipped_and_returned_for_replan() {
    let (crm, store) = setup(100, 10).await;
    crm.with(|s| {
        s.owners.insert("3".into(), Some(OwnerId::new("human")));
        s.owners.insert("4".into(), Some(OwnerId::new("b")));
    });
    let writer = Writer::new(crm.clone(), store.clone(), fast_settings());
    let report = writer
        .apply(&plan(10, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        crm.owner("3"),
        Some(OwnerId::new("human")),
        "a human edit survives"
    );
    assert_eq!(crm.writes_of("3"), 0);
    assert_eq!(
        crm.writes_of("4"),
        0,
        "already holding `to`: no no-op write"
    );
    assert_eq!(
        (report.applied, report.unchanged, report.skipped_changed),
        (8, 1, 1)
    );
    assert_eq!(report.replan.len(), 1);
    assert_eq!(report.replan[0].observed, Some(OwnerId::new("human")));
    let outcomes = outcomes(&store, "run").await;
    assert_eq!(outcomes["3"], "skipped_changed");
    assert_eq!(outcomes["4"], "unchanged");
}

#[tokio::test]
async fn skipped_records_are_topped_up_so_write_calls_stay_minimal() {
    let (crm, store) = setup(10, 40).await;
    // 5 of the first 10 changed under us: a naive writer sends a half batch.
    crm.with(|s| {
        for i in 0..5 {
            s.owners
                .insert(RecordId(format!("{i}")), Some(OwnerId::new("human")));
        }
    });
    let writer = Writer::new(crm.clone(), store.clone(), fast_settings());
    let report = writer
        .apply(&plan(40, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert_eq!(report.applied, 35);
    assert_eq!(report.write_calls, 4, "ceil(35 / 10)");
}

#[tokio::test]
async fn a_lost_response_is_resolved_by_reading_never_by_resending() {
    let (crm, store) = setup(100, 150).await;
    crm.with(|s| s.apply_faults.push_back(ApplyFault::LoseResponse));
    let writer = Writer::new(crm.clone(), store.clone(), fast_settings());
    let report = writer
        .apply(&plan(150, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.applied, 150);
    for i in 0..150 {
        assert_eq!(crm.writes_of(&i.to_string()), 1, "record {i} written once");
    }
    assert_eq!(crm.with(|s| s.noop_writes), 0);
}

#[tokio::test]
async fn a_human_edit_after_a_lost_response_is_not_erased_by_the_retry() {
    let (crm, store) = setup(100, 20).await;
    // The first write call times out without landing; meanwhile a human edits 7.
    crm.with(|s| {
        s.apply_faults
            .push_back(ApplyFault::Fail(ErrorKind::Timeout))
    });
    let writer = Writer::new(crm.clone(), store.clone(), fast_settings());
    let mut calls = 0;
    crm.with(|s| {
        s.before_apply = Some(Box::new(move |owners| {
            calls += 1;
            if calls == 1 {
                owners.insert("7".into(), Some(OwnerId::new("human")));
            }
        }))
    });
    let report = writer
        .apply(&plan(20, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert_eq!(crm.owner("7"), Some(OwnerId::new("human")));
    assert_eq!(report.skipped_changed, 1);
    assert_eq!(report.applied, 19);
}

#[tokio::test]
async fn per_record_rejections_are_routed_by_recovery_without_failing_the_batch() {
    let (crm, store) = setup(100, 7).await;
    crm.with(|s| {
        // A record the CRM did not process is retried before it is anyone's problem.
        s.rejects
            .insert("6".into(), VecDeque::from([RejectKind::Unprocessed]));
        s.rejects
            .insert("1".into(), VecDeque::from([RejectKind::Locked]));
        s.rejects
            .insert("2".into(), VecDeque::from([RejectKind::InactiveOwner]));
        s.rejects
            .insert("3".into(), VecDeque::from([RejectKind::NotFound]));
        s.rejects
            .insert("4".into(), VecDeque::from([RejectKind::Validation]));
        s.rejects
            .insert("5".into(), VecDeque::from([RejectKind::Locked; 10]));
    });
    let writer = Writer::new(crm.clone(), store.clone(), fast_settings());
    let report = writer
        .apply(&plan(7, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    let outcomes = outcomes(&store, "run").await;
    assert_eq!(outcomes["6"], "applied");
    assert_eq!(outcomes["0"], "applied");
    assert_eq!(outcomes["1"], "applied", "a locked row is retried later");
    assert_eq!(outcomes["2"], "rejected");
    assert_eq!(outcomes["3"], "rejected");
    assert_eq!(outcomes["4"], "rejected");
    assert_eq!(outcomes["5"], "failed", "bounded attempts");
    assert_eq!(
        report.replan.len(),
        1,
        "inactive owner goes back to the planner"
    );
    assert_eq!(report.replan[0].id, RecordId::from("2"));
    let exceptions = store.exceptions(Some("open")).await.unwrap();
    assert_eq!(exceptions.len(), 1, "validation waits for an operator");
    assert_eq!(exceptions[0].record_id, RecordId::from("4"));
    assert_eq!(exceptions[0].desired, Some(OwnerId::new("b")));
}

#[tokio::test]
async fn retryable_read_failures_are_retried_and_counted() {
    let (crm, store) = setup(100, 10).await;
    crm.with(|s| {
        s.read_faults.extend([
            ErrorKind::RateLimited,
            ErrorKind::Unavailable,
            ErrorKind::Network,
        ])
    });
    let writer = Writer::new(crm.clone(), store.clone(), fast_settings());
    let report = writer
        .apply(&plan(10, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.retries, 3);
    assert_eq!(report.applied, 10);
}

#[tokio::test]
async fn repeated_server_errors_open_the_breaker_and_stop_the_run_resumably() {
    let (crm, store) = setup(10, 30).await;
    crm.with(|s| s.outage = 1000);
    let settings = WriterSettings {
        breaker_threshold: 3,
        breaker_max_trips: 2,
        call_retries: 1000,
        ..fast_settings()
    };
    let writer = Writer::new(crm.clone(), store.clone(), settings);
    let report = writer
        .apply(&plan(30, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    let stop = report.stopped.clone().expect("the run stops");
    assert_eq!(stop.reason, StopReason::CircuitOpen);
    assert_eq!(report.pending, 30, "nothing lost: all still pending");
    let calls_while_open = crm.with(|s| s.apply_calls + s.read_calls);
    assert!(
        calls_while_open <= 12,
        "the breaker stops the hammering: {calls_while_open} calls"
    );
    // The CRM recovers; the same run resumes and finishes.
    crm.with(|s| s.outage = 0);
    let writer = Writer::new(crm.clone(), store.clone(), fast_settings());
    let report = writer
        .resume(&RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.applied, 30);
}

#[tokio::test]
async fn an_exhausted_daily_quota_stops_cleanly_and_says_when_to_resume() {
    let (crm, store) = setup(10, 30).await;
    let writer = Writer::new(crm.clone(), store.clone(), fast_settings());
    // A batch lands with its answer lost, then the daily allocation runs out.
    crm.with(|s| {
        s.apply_faults.extend([
            ApplyFault::LoseResponse,
            ApplyFault::Fail(ErrorKind::QuotaExhausted),
        ])
    });
    let report = writer
        .apply(&plan(30, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    let stop = report.stopped.clone().expect("stops");
    assert_eq!(stop.reason, StopReason::QuotaExhausted);
    assert!(report.pending > 0);
    let run = store.journal_run("run").await.unwrap().unwrap();
    assert_eq!(run.status, crate::store::RunStatus::Paused);
    assert!(run.message.unwrap().contains("daily"));
    let report = writer
        .resume(&RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.applied, 30);
    for i in 0..30 {
        assert_eq!(crm.writes_of(&i.to_string()), 1);
    }
}

#[tokio::test]
async fn a_crash_between_intent_and_outcome_is_resolved_by_reading_the_crm() {
    let (crm, store) = setup(100, 6).await;
    let plan = plan(6, "a", "b");
    // Simulate the crashed process: the run and an intent for records 0..4 were
    // journaled; the CRM got the write for 0 and 1; a human moved 2; 3 never landed.
    let run = NewRun {
        run_id: "crashed",
        crm: CrmKind::Hubspot,
        kind: "backfill",
        parent_run: None,
        policy_version: "v1",
    };
    store
        .journal_create_run(&run, &plan.changes, Utc::now())
        .await
        .unwrap();
    store
        .journal_intent("crashed", 0, ObjectKind::Contact, &[0, 1, 2, 3], Utc::now())
        .await
        .unwrap();
    crm.with(|s| {
        s.owners.insert("0".into(), Some(OwnerId::new("b")));
        s.owners.insert("1".into(), Some(OwnerId::new("b")));
        s.owners.insert("2".into(), Some(OwnerId::new("human")));
    });
    let writer = Writer::new(crm.clone(), store.clone(), fast_settings());
    let report = writer
        .resume(&RunId::new("crashed"), &NoProgress)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    let outcomes = outcomes(&store, "crashed").await;
    assert_eq!(outcomes["0"], "applied");
    assert_eq!(outcomes["1"], "applied");
    assert_eq!(outcomes["2"], "skipped_changed");
    assert_eq!(outcomes["3"], "applied");
    assert_eq!(outcomes["4"], "applied");
    assert_eq!(crm.writes_of("0"), 0, "not written twice");
    assert_eq!(crm.writes_of("1"), 0);
    assert_eq!(crm.writes_of("2"), 0, "the human edit stands");
    assert_eq!(crm.writes_of("3"), 1);
    assert_eq!(crm.owner("2"), Some(OwnerId::new("human")));
    let entries = store.journal_entries("crashed").await.unwrap();
    assert_eq!(entries.len(), 6, "every change journaled exactly once");
}

#[tokio::test]
async fn cancelling_leaves_a_consistent_journal_and_the_run_resumes() {
    let (crm, store) = setup(10, 30).await;
    let cancel = CancellationToken::new();
    let writer =
        Writer::new(crm.clone(), store.clone(), fast_settings()).with_cancel(cancel.clone());
    let trigger = cancel.clone();
    crm.with(|s| s.before_apply = Some(Box::new(move |_| trigger.cancel())));
    let report = writer
        .apply(&plan(30, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        report.stopped.as_ref().map(|s| s.reason.clone()),
        Some(StopReason::Cancelled)
    );
    assert_eq!(
        report.applied, 10,
        "the in-flight batch finished and was journaled"
    );
    assert_eq!(report.pending, 20);
    crm.with(|s| s.before_apply = None);
    let writer = Writer::new(crm.clone(), store.clone(), fast_settings());
    let report = writer
        .resume(&RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert!(report.is_complete());
    assert_eq!(report.applied, 30);
    assert_eq!(report.write_calls, 2, "finished batches are not redone");
}

#[tokio::test]
async fn strict_mode_passes_if_unmodified_since_when_the_crm_supports_it() {
    let mut fake = FakeCrm::new(200, 5, "a");
    fake.kind = CrmKind::Hubspot;
    fake.limits.conditional_writes = true;
    let crm = Arc::new(fake);
    let store = Store::open("sqlite::memory:").await.unwrap();
    let settings = WriterSettings {
        strict: true,
        ..fast_settings()
    };
    let writer = Writer::new(crm.clone(), store.clone(), settings);
    let report = writer
        .apply(&plan(5, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert!(report.conditional_writes);
    assert!(crm.with(|s| s.conditions_seen.iter().all(Option::is_some)));
    // Without strict mode nothing is conditional.
    let writer = Writer::new(crm.clone(), store.clone(), fast_settings());
    crm.with(|s| s.conditions_seen.clear());
    writer
        .apply(&plan(5, "b", "c"), RunId::new("run2"), &NoProgress)
        .await
        .unwrap();
    assert!(crm.with(|s| s.conditions_seen.iter().all(Option::is_none)));
}

#[tokio::test]
async fn a_plan_for_another_crm_is_refused() {
    let (crm, store) = setup(10, 1).await;
    let writer = Writer::new(crm, store, fast_settings());
    let mut plan = plan(1, "a", "b");
    plan.crm = CrmKind::Salesforce;
    let err = writer
        .apply(&plan, RunId::new("x"), &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, WriterError::PlanForOtherCrm { .. }));
}

#[tokio::test]
async fn rollback_reverts_only_records_still_holding_our_value_and_says_why_for_the_rest() {
    let (crm, store) = setup(100, 4).await;
    let writer = Writer::new(crm.clone(), store.clone(), fast_settings());
    let mut plan = plan(4, "a", "b");
    plan.changes[3].from = None;
    crm.with(|s| s.owners.insert("3".into(), None));
    writer
        .apply(&plan, RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    // After the run a human moves record 1 on.
    crm.with(|s| s.owners.insert("1".into(), Some(OwnerId::new("human"))));
    let rollback = writer
        .rollback("run", RunId::new("undo"), false, &NoProgress)
        .await
        .unwrap();
    assert_eq!(rollback.reverted, 2);
    assert_eq!(crm.owner("0"), Some(OwnerId::new("a")));
    assert_eq!(crm.owner("2"), Some(OwnerId::new("a")));
    assert_eq!(
        crm.owner("1"),
        Some(OwnerId::new("human")),
        "a later edit stands"
    );
    assert_eq!(crm.owner("3"), Some(OwnerId::new("b")), "never cleared");
    let mut why: Vec<(String, String)> = rollback
        .left_alone
        .iter()
        .map(|l| (l.id.0.clone(), l.why.clone()))
        .collect();
    why.sort();
    assert_eq!(why.len(), 2);
    assert!(why[0].1.contains("now human"), "{why:?}");
    assert!(why[1].1.contains("no owner before"), "{why:?}");
    let run = store.journal_run("undo").await.unwrap().unwrap();
    assert_eq!(run.parent_run.as_deref(), Some("run"));
}

#[tokio::test]
async fn exceptions_can_be_retried_or_resolved_by_hand_through_the_journal() {
    let (crm, store) = setup(100, 2).await;
    crm.with(|s| {
        s.rejects
            .insert("0".into(), VecDeque::from([RejectKind::Validation]));
        s.rejects
            .insert("1".into(), VecDeque::from([RejectKind::Other; 10]));
    });
    let writer = Writer::new(crm.clone(), store.clone(), fast_settings());
    writer
        .apply(&plan(2, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    let open = store.exceptions(Some("open")).await.unwrap();
    assert_eq!(open.len(), 2);
    let (first, second) = (open[0].id, open[1].id);
    // The validation rule was fixed in the CRM: retry the original change.
    let report = writer.retry_exception(first, &NoProgress).await.unwrap();
    assert_eq!(report.applied, 1);
    assert_eq!(crm.owner("0"), Some(OwnerId::new("b")));
    // The other one is assigned by hand to someone else.
    crm.with(|s| s.rejects.clear());
    let report = writer
        .resolve_exception(second, OwnerId::new("c"), &NoProgress)
        .await
        .unwrap();
    assert_eq!(report.applied, 1);
    assert_eq!(crm.owner("1"), Some(OwnerId::new("c")));
    assert!(store.exceptions(Some("open")).await.unwrap().is_empty());
    let closed = store.exception(second).await.unwrap().unwrap();
    assert_eq!(closed.status, "resolved");
    assert_eq!(closed.resolved_owner, Some(OwnerId::new("c")));
    assert!(matches!(
        writer.retry_exception(first, &NoProgress).await,
        Err(OpsError::ExceptionClosed { .. })
    ));
}

#[tokio::test]
async fn the_summary_counts_minimum_calls_per_object_and_time_at_the_crm_rate() {
    let (crm, store) = setup(100, 0).await;
    let writer = Writer::new(crm, store, fast_settings());
    let mut plan = plan(250, "a", "b");
    for change in plan.changes.iter_mut().take(50) {
        change.object = ObjectKind::Lead;
    }
    let summary = summarize(&writer, &plan, None);
    // 200 contacts and 50 leads: batches never mix objects.
    assert_eq!(summary.write_calls, 2 + 1);
    assert_eq!(summary.read_calls, 2 + 1);
    assert_eq!(summary.by_object[&ObjectKind::Contact], 200);
    assert!(
        summary.estimated.is_none(),
        "the fake CRM reports no limits"
    );
    let usage = ApiUsage {
        window_max: Some(190),
        window: Some(Duration::from_secs(10)),
        ..ApiUsage::default()
    };
    assert_eq!(rate_from_usage(&usage), Some(19.0));
    let text = summary.to_string();
    assert!(text.contains("3 write calls"), "{text}");
    assert!(text.contains("+250"), "{text}");
}

mod bulk;

/// Mirrors owner `id` as active or inactive (what `store.owners` reports).
async fn mirror_owner(store: &Store, id: &str, active: bool) {
    let owner = leadroute_crm::OwnerRecord {
        id: OwnerId::new(id),
        kind: leadroute_crm::OwnerKind::User,
        email: None,
        name: id.to_owned(),
        active,
        teams: Vec::new(),
        time_zone: None,
        manager_id: None,
        user_id: None,
        updated_at: Some(Utc::now()),
    };
    store
        .apply_changes(
            CrmKind::Hubspot,
            ObjectKind::Owner,
            &[leadroute_crm::Change::Upsert(leadroute_crm::Record::Owner(
                owner,
            ))],
            None,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn rollback_to_an_owner_now_inactive_queues_exceptions_instead_of_doomed_writes() {
    let (crm, store) = setup(100, 3).await;
    let writer = Writer::new(crm.clone(), store.clone(), fast_settings());
    writer
        .apply(&plan(3, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    mirror_owner(&store, "a", false).await;
    mirror_owner(&store, "b", true).await;
    let calls_before = crm.with(|s| s.apply_calls);
    let rollback = writer
        .rollback("run", RunId::new("undo"), false, &NoProgress)
        .await
        .unwrap();
    assert_eq!(rollback.reverted, 0);
    assert_eq!(crm.with(|s| s.apply_calls), calls_before, "nothing sent");
    assert_eq!(rollback.undone(), 3);
    assert_eq!(rollback.exceptions_queued, 3);
    assert_eq!(
        rollback.by_reason().get(&LeftReason::TargetInactive),
        Some(&3)
    );
    let open = store.exceptions(Some("open")).await.unwrap();
    assert_eq!(open.len(), 3);
    assert!(open.iter().all(|e| e.kind == "inactive_owner"), "{open:?}");
}

#[tokio::test]
async fn a_run_is_rolled_back_once_and_a_dry_run_writes_nothing() {
    let (crm, store) = setup(100, 4).await;
    let writer = Writer::new(crm.clone(), store.clone(), fast_settings());
    writer
        .apply(&plan(4, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    crm.with(|s| s.owners.insert("1".into(), Some(OwnerId::new("human"))));
    let calls_before = crm.with(|s| s.apply_calls);
    let preview = writer
        .rollback("run", RunId::new("undo"), true, &NoProgress)
        .await
        .unwrap();
    assert!(preview.dry_run);
    assert_eq!(preview.would_revert, 3);
    assert_eq!(preview.by_reason().get(&LeftReason::ChangedSince), Some(&1));
    assert_eq!(
        crm.with(|s| s.apply_calls),
        calls_before,
        "a dry run writes nothing"
    );
    assert!(store.journal_run("undo").await.unwrap().is_none());

    let done = writer
        .rollback("run", RunId::new("undo"), false, &NoProgress)
        .await
        .unwrap();
    assert_eq!(done.reverted, 3);
    assert_eq!(
        done.undone(),
        0,
        "a human's later edit is not work left undone"
    );
    let again = writer
        .rollback("run", RunId::new("undo2"), false, &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(&again, OpsError::AlreadyRolledBack { by, .. } if by == "undo"),
        "{again}"
    );
    assert_eq!(crm.owner("0"), Some(OwnerId::new("a")));
}

#[tokio::test]
async fn owners_restored_by_a_rollback_are_leadroutes_own_in_the_ledger() {
    let (crm, store) = setup(100, 2).await;
    let writer = Writer::new(crm.clone(), store.clone(), fast_settings());
    writer
        .apply(&plan(2, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    writer
        .rollback("run", RunId::new("undo"), false, &NoProgress)
        .await
        .unwrap();
    // The manual-override window asks the ledger whether leadroute set the current
    // owner: after the rollback it did, to the restored owner.
    let ledger = store.load_ledger(CrmKind::Hubspot).await.unwrap();
    for id in ["0", "1"] {
        let a = ledger
            .assignment(ObjectKind::Contact, &RecordId(id.to_owned()))
            .expect("the restored owner is in the ledger");
        assert_eq!(a.owner, OwnerId::new("a"));
        assert_eq!(a.rule, "rollback of run");
    }
}

#[tokio::test]
async fn a_writer_whose_org_lease_was_taken_makes_no_write_call_and_the_new_leader_resumes() {
    use crate::store::LeaseGrab;
    let (crm, store) = setup(10, 30).await;
    let ttl = Duration::from_secs(30);
    let grab = store.lease_acquire("org:hubspot", "a", ttl).await.unwrap();
    assert!(matches!(grab, LeaseGrab::Held { epoch: 1, .. }), "{grab:?}");
    // A freezes, its lease lapses and B leads with epoch 2.
    assert!(
        store
            .lease_renew("org:hubspot", "a", 1, Duration::ZERO)
            .await
            .unwrap()
    );
    let grab = store.lease_acquire("org:hubspot", "b", ttl).await.unwrap();
    assert!(matches!(grab, LeaseGrab::Held { epoch: 2, .. }), "{grab:?}");

    // A's late batch is refused before any write call.
    let fence = |holder: &str, epoch| Fence {
        name: "org:hubspot".to_owned(),
        holder: holder.to_owned(),
        epoch,
    };
    let deposed =
        Writer::new(crm.clone(), store.clone(), fast_settings()).with_fence(fence("a", 1));
    let report = deposed
        .apply(&plan(30, "a", "b"), RunId::new("late"), &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        report.stopped.as_ref().map(|s| s.reason.clone()),
        Some(StopReason::Fenced),
        "{report}"
    );
    assert_eq!(crm.with(|s| s.apply_calls), 0, "no CRM write call");
    assert_eq!(report.applied, 0);
    assert_eq!(report.pending, 30);
    assert!(
        outcomes(&store, "late")
            .await
            .values()
            .all(|o| o == "pending"),
        "every change stays pending"
    );
    assert!(store.journal_batch_epochs("late").await.unwrap().is_empty());
    let run = store.journal_run("late").await.unwrap().unwrap();
    assert_ne!(run.status, crate::store::RunStatus::Completed);

    // The new leader resumes the run; each batch carries its epoch.
    let leader = Writer::new(crm.clone(), store.clone(), fast_settings()).with_fence(fence("b", 2));
    let report = leader
        .resume(&RunId::new("late"), &NoProgress)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.applied, 30);
    assert_eq!(crm.with(|s| s.apply_calls), 3);
    assert_eq!(crm.with(|s| s.writes.len()), 30, "each change written once");
    let epochs = store.journal_batch_epochs("late").await.unwrap();
    assert_eq!(epochs.len(), 3);
    assert!(
        epochs.iter().all(|(_, epoch)| *epoch == Some(2)),
        "{epochs:?}"
    );
}
