//! The bulk path (`writer/bulk.rs`) against the fake CRM with a bulk threshold.

use super::*;

/// A fake with Collections-like batches of 100, reads of 100, and a bulk path from 50.
async fn bulk_setup(records: usize) -> (Arc<FakeCrm>, Store) {
    let mut crm = FakeCrm::new(100, records, "a");
    crm.limits.bulk_threshold = Some(50);
    let store = Store::open("sqlite::memory:").await.unwrap();
    (Arc::new(crm), store)
}

fn bulk_settings() -> WriterSettings {
    WriterSettings {
        bulk_job_size: 100,
        ..fast_settings()
    }
}

#[tokio::test]
async fn a_large_queue_goes_out_in_bulk_jobs_of_the_configured_size_and_the_tail_in_batches() {
    let (crm, store) = bulk_setup(230).await;
    let writer = Writer::new(crm.clone(), store.clone(), bulk_settings());
    let report = writer
        .apply(&plan(230, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.applied, 230);
    // 100 + 100 in jobs; the last 30 are under the threshold: one batch.
    assert_eq!(crm.with(|s| s.bulk_sizes.clone()), vec![100, 100]);
    assert_eq!(crm.with(|s| s.apply_calls), 1);
    assert_eq!((report.bulk_jobs, report.write_calls), (2, 3));
    assert_eq!(crm.with(|s| s.noop_writes), 0);
    for i in 0..230 {
        assert_eq!(crm.writes_of(&i.to_string()), 1, "record {i} written once");
    }
    // Compare reads in read-batch chunks: 1 per job + 1 for the tail.
    assert_eq!(report.read_calls, 3);
    assert!(
        report
            .to_string()
            .contains("2 of the write calls were bulk jobs")
    );
}

#[tokio::test]
async fn bulk_jobs_compare_before_write_and_skip_what_changed() {
    let (crm, store) = bulk_setup(120).await;
    crm.with(|s| {
        s.owners.insert("5".into(), Some(OwnerId::new("human")));
        s.owners.insert("6".into(), Some(OwnerId::new("b")));
        s.owners.remove(&RecordId::from("7"));
    });
    let writer = Writer::new(crm.clone(), store.clone(), bulk_settings());
    let report = writer
        .apply(&plan(120, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert_eq!(crm.owner("5"), Some(OwnerId::new("human")));
    assert_eq!(crm.writes_of("5") + crm.writes_of("6"), 0);
    assert_eq!(crm.with(|s| s.noop_writes), 0);
    assert_eq!(
        (
            report.applied,
            report.unchanged,
            report.skipped_changed,
            report.rejected
        ),
        (117, 1, 1, 1)
    );
    // The first job carried the 97 records of the first 100 still holding `from`.
    assert_eq!(crm.with(|s| s.bulk_sizes.clone()), vec![97]);
    assert_eq!(report.replan.len(), 1);
}

#[tokio::test]
async fn the_whole_job_is_journaled_as_one_intent_before_the_job_is_sent() {
    // A file database, so the hook can look at it through a connection of its own.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("j.db").display());
    let store = Store::open(&url).await.unwrap();
    let mut fake = FakeCrm::new(100, 100, "a");
    fake.limits.bulk_threshold = Some(50);
    let crm = Arc::new(fake);
    let seen = Arc::new(Mutex::new(None));
    let seen_in_hook = seen.clone();
    crm.with(|s| {
        s.before_apply = Some(Box::new(move |_| {
            // Runs inside the bulk call: the intent must already be committed.
            let url = url.clone();
            let seen = seen_in_hook.clone();
            let entries = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async {
                        let store = Store::open(&url).await.unwrap();
                        store.journal_open_entries("run").await.unwrap()
                    })
            })
            .join()
            .unwrap();
            *seen.lock().unwrap() = Some(entries.iter().filter(|e| e.state == "intent").count());
        }))
    });
    let writer = Writer::new(crm.clone(), store.clone(), bulk_settings());
    let report = writer
        .apply(&plan(100, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    assert_eq!(*seen.lock().unwrap(), Some(100));
}

#[tokio::test]
async fn per_record_failures_in_a_job_become_retries_replans_and_exceptions() {
    let (crm, store) = bulk_setup(100).await;
    crm.with(|s| {
        s.rejects
            .insert("1".into(), VecDeque::from([RejectKind::Locked]));
        s.rejects
            .insert("2".into(), VecDeque::from([RejectKind::InactiveOwner]));
        s.rejects
            .insert("3".into(), VecDeque::from([RejectKind::Validation]));
        s.rejects
            .insert("4".into(), VecDeque::from([RejectKind::NotFound]));
        s.rejects
            .insert("5".into(), VecDeque::from([RejectKind::Locked; 10]));
    });
    let writer = Writer::new(crm.clone(), store.clone(), bulk_settings());
    let report = writer
        .apply(&plan(100, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    let outcomes = outcomes(&store, "run").await;
    assert_eq!(outcomes["0"], "applied");
    assert_eq!(outcomes["1"], "applied", "a locked row is retried");
    assert_eq!(outcomes["2"], "rejected");
    assert_eq!(outcomes["3"], "rejected");
    assert_eq!(outcomes["4"], "rejected");
    assert_eq!(outcomes["5"], "failed", "bounded attempts");
    assert_eq!(report.replan.len(), 1);
    assert_eq!(report.replan[0].id, RecordId::from("2"));
    let exceptions = store.exceptions(Some("open")).await.unwrap();
    assert_eq!(exceptions.len(), 1);
    assert_eq!(exceptions[0].record_id, RecordId::from("3"));
    // One job; the two records to retry are too few for another: batches.
    assert_eq!(crm.with(|s| s.bulk_sizes.clone()), vec![100]);
    assert!(crm.with(|s| s.apply_calls) >= 1);
    assert_eq!(crm.with(|s| s.noop_writes), 0);
}

#[tokio::test]
async fn a_lost_bulk_answer_is_resolved_by_reading_never_by_resending() {
    let (crm, store) = bulk_setup(150).await;
    crm.with(|s| s.bulk_faults.push_back(ApplyFault::LoseResponse));
    let writer = Writer::new(crm.clone(), store.clone(), bulk_settings());
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
    assert_eq!(report.call_failures, 1);
}

#[tokio::test]
async fn a_human_edit_after_a_failed_job_is_not_erased_by_the_next_one() {
    let (crm, store) = bulk_setup(100).await;
    crm.with(|s| {
        s.bulk_faults
            .push_back(ApplyFault::Fail(ErrorKind::Timeout));
    });
    let mut calls = 0;
    crm.with(|s| {
        s.before_apply = Some(Box::new(move |owners| {
            calls += 1;
            if calls == 1 {
                owners.insert("7".into(), Some(OwnerId::new("human")));
            }
        }))
    });
    let writer = Writer::new(crm.clone(), store.clone(), bulk_settings());
    let report = writer
        .apply(&plan(100, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert_eq!(crm.owner("7"), Some(OwnerId::new("human")));
    assert_eq!((report.applied, report.skipped_changed), (99, 1));
    assert_eq!(crm.with(|s| s.bulk_sizes.clone()), vec![100, 99]);
}

#[tokio::test]
async fn bulk_is_not_used_in_strict_mode_when_turned_off_or_where_the_crm_has_none() {
    for (settings, bulk_crm) in [
        (
            WriterSettings {
                strict: true,
                ..bulk_settings()
            },
            true,
        ),
        (
            WriterSettings {
                bulk: false,
                ..bulk_settings()
            },
            true,
        ),
        (bulk_settings(), false),
    ] {
        let (crm, store) = if bulk_crm {
            let mut crm = FakeCrm::new(100, 120, "a");
            crm.limits.bulk_threshold = Some(50);
            crm.limits.conditional_writes = true;
            (Arc::new(crm), Store::open("sqlite::memory:").await.unwrap())
        } else {
            setup(100, 120).await
        };
        let writer = Writer::new(crm.clone(), store, settings.clone());
        let report = writer
            .apply(&plan(120, "a", "b"), RunId::new("run"), &NoProgress)
            .await
            .unwrap();
        assert!(report.is_complete(), "{settings:?}: {report}");
        assert_eq!(report.bulk_jobs, 0, "{settings:?}");
        assert!(crm.with(|s| s.bulk_sizes.is_empty()));
        assert_eq!(crm.with(|s| s.apply_calls), 2);
    }
}

#[tokio::test]
async fn a_writer_threshold_overrides_the_crms() {
    let (crm, store) = bulk_setup(120).await;
    let settings = WriterSettings {
        bulk_threshold: Some(500),
        ..bulk_settings()
    };
    let report = Writer::new(crm.clone(), store, settings)
        .apply(&plan(120, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert_eq!(report.bulk_jobs, 0);
    assert_eq!(crm.with(|s| s.apply_calls), 2);
}

#[tokio::test]
async fn the_minimum_cost_counts_bulk_job_calls_and_the_batched_tail() {
    let (crm, store) = bulk_setup(1).await;
    let writer = Writer::new(crm, store, bulk_settings());
    // 230 = 2 jobs of 100 (7 calls each) + a tail of 30 (under 50: one batch).
    assert_eq!(
        writer.minimum_calls(230),
        (2 * super::super::bulk::BULK_JOB_CALLS + 1, 3)
    );
    // 260: the tail of 60 fills a third job.
    assert_eq!(
        writer.minimum_calls(260),
        (3 * super::super::bulk::BULK_JOB_CALLS, 3)
    );
    // Under the threshold: batches.
    assert_eq!(writer.minimum_calls(40), (1, 1));
}

#[tokio::test]
async fn the_plan_summary_says_when_changes_go_through_bulk_jobs() {
    let (crm, store) = bulk_setup(1).await;
    let writer = Writer::new(crm, store, bulk_settings());
    let summary = summarize(&writer, &plan(230, "a", "b"), None);
    assert_eq!(summary.bulk_job, Some(100));
    assert_eq!(
        summary.write_calls,
        2 * super::super::bulk::BULK_JOB_CALLS + 1
    );
    assert!(
        summary
            .to_string()
            .contains("bulk jobs of up to 100 records"),
        "{summary}"
    );
    let small = summarize(&writer, &plan(40, "a", "b"), None);
    assert_eq!(small.bulk_job, None);
    assert!(small.to_string().contains("(batches of 100)"), "{small}");
}

/// A process that died during a bulk job: run `run` journaled with all `records`
/// changes in one bulk intent (batch 0) and the job's id, as `send_job` leaves them
/// once the id is committed. Returns the job id.
async fn crash_during_job(crm: &FakeCrm, store: &Store, records: usize) -> String {
    let plan = plan(records, "a", "b");
    let run = NewRun {
        run_id: "run",
        org: OrgId::default_for(CrmKind::Hubspot),
        kind: "backfill",
        parent_run: None,
        policy_version: "v1",
    };
    store
        .journal_create_run(&run, &plan.changes, Utc::now())
        .await
        .unwrap();
    let seqs: Vec<i64> = (0..records as i64).collect();
    store
        .journal_intent("run", 0, ObjectKind::Contact, &seqs, Utc::now())
        .await
        .unwrap();
    let changes: Vec<OwnerChange> = plan
        .changes
        .iter()
        .map(|c| OwnerChange {
            id: c.id.clone(),
            from: c.from.clone(),
            to: c.to.clone(),
            if_unmodified_since: None,
        })
        .collect();
    let job = crm.bulk_start(ObjectKind::Contact, &changes).await.unwrap();
    let id = job.id.unwrap();
    store.journal_bulk_job("run", 0, &id).await.unwrap();
    crm.with(|s| s.events.clear());
    id
}

#[tokio::test]
async fn resume_aborts_a_bulk_job_left_running_before_reading_and_nothing_is_written_twice() {
    let (crm, store) = bulk_setup(100).await;
    let job = crash_during_job(&crm, &store, 100).await;
    // The job was closed and had processed the first 40 rows when the process died;
    // it would go on with the other 60 on its own.
    let changes: Vec<OwnerChange> = (0..100)
        .map(|i| OwnerChange {
            id: RecordId(i.to_string()),
            from: Some(OwnerId::new("a")),
            to: OwnerId::new("b"),
            if_unmodified_since: None,
        })
        .collect();
    crm.write(&changes[..40], true).unwrap();
    crm.with(|s| {
        s.jobs
            .insert(job.clone(), FakeJob::Running(changes[40..].to_vec()));
        // A human moves one record the orphan has not reached yet.
        s.owners.insert("70".into(), Some(OwnerId::new("human")));
    });
    let writer = Writer::new(crm.clone(), store.clone(), bulk_settings());
    let report = writer
        .resume(&RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    let events = crm.with(|s| s.events.clone());
    assert_eq!(
        events.first().map(String::as_str),
        Some(format!("abort {job}").as_str()),
        "the orphan is aborted before any owner is read: {events:?}"
    );
    // Whatever the orphan would still have done: nothing, it is over.
    crm.finish_orphans();
    for i in 0..100 {
        let expected = usize::from(i != 70);
        assert_eq!(crm.writes_of(&i.to_string()), expected, "record {i}");
    }
    assert_eq!(
        crm.owner("70"),
        Some(OwnerId::new("human")),
        "the human edit stands"
    );
    assert_eq!(crm.owner("99"), Some(OwnerId::new("b")));
    let outcomes = outcomes(&store, "run").await;
    assert_eq!(outcomes["0"], "applied", "written by the orphan");
    assert_eq!(outcomes["70"], "skipped_changed");
    assert_eq!(outcomes["99"], "applied");
    assert_eq!(report.skipped_changed, 1);
    // The 59 left went out again (one new job), after the abort.
    assert_eq!(crm.with(|s| s.bulk_sizes.clone()), vec![40, 59]);
}

#[tokio::test]
async fn a_job_that_was_never_closed_is_aborted_and_its_records_go_out_once() {
    let (crm, store) = bulk_setup(100).await;
    let job = crash_during_job(&crm, &store, 100).await;
    let writer = Writer::new(crm.clone(), store.clone(), bulk_settings());
    let report = writer
        .resume(&RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.applied, 100);
    let events = crm.with(|s| s.events.clone());
    assert_eq!(events[0], format!("abort {job}"), "{events:?}");
    assert!(matches!(
        crm.with(|s| s.jobs.get(&job).cloned()),
        Some(FakeJob::Ended(BulkJobState::Aborted))
    ));
    crm.finish_orphans();
    for i in 0..100 {
        assert_eq!(crm.writes_of(&i.to_string()), 1, "record {i}");
    }
    // A later resume has nothing to abort: the job's end is journaled.
    writer
        .resume(&RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    let aborts = crm.with(|s| s.events.iter().filter(|e| e.starts_with("abort")).count());
    assert_eq!(aborts, 1);
}

#[tokio::test]
async fn when_the_orphan_cannot_be_confirmed_ended_resume_stops_without_reading_or_writing() {
    let (crm, store) = bulk_setup(100).await;
    let job = crash_during_job(&crm, &store, 100).await;
    crm.with(|s| s.abort_faults.push_back(ErrorKind::Unavailable));
    let writer = Writer::new(crm.clone(), store.clone(), bulk_settings());
    let report = writer
        .resume(&RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    let stop = report.stopped.as_ref().expect("the run stops");
    assert!(stop.message.contains(&job), "{}", stop.message);
    assert_eq!(crm.with(|s| s.events.clone()), vec![format!("abort {job}")]);
    assert!(crm.with(|s| s.writes.is_empty()));
    let run = store.journal_run("run").await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Paused, "resumable");
    // The CRM answers again: the next resume aborts, then finishes the run.
    let report = writer
        .resume(&RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    crm.finish_orphans();
    for i in 0..100 {
        assert_eq!(crm.writes_of(&i.to_string()), 1, "record {i}");
    }
}

#[tokio::test]
async fn a_failed_job_is_confirmed_ended_before_its_records_are_read_again() {
    let (crm, store) = bulk_setup(100).await;
    // The job's answer is lost (it did write); the writer aborts/waits, then re-reads.
    crm.with(|s| s.bulk_faults.push_back(ApplyFault::LoseResponse));
    let writer = Writer::new(crm.clone(), store.clone(), bulk_settings());
    let report = writer
        .apply(&plan(100, "a", "b"), RunId::new("run"), &NoProgress)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    let events = crm.with(|s| s.events.clone());
    let abort = events
        .iter()
        .position(|e| e == "abort job1")
        .expect("aborted");
    assert_eq!(events[abort - 1], "run job1", "{events:?}");
    assert_eq!(events[abort + 1], "read", "{events:?}");
    for i in 0..100 {
        assert_eq!(crm.writes_of(&i.to_string()), 1, "record {i}");
    }
}
