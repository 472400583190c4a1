//! Plan, explain and drift over a mirror stored in SQLite, checked against golden files
//! in tests/golden/ (`UPDATE_EXPECT=1 cargo test --test it reconcile` rewrites them).

use expect_test::expect_file;
use leadroute::domain::{CrmKind, ObjectKind, RecordId};
use leadroute::policy;
use leadroute::reconcile::{self, Ledger, drift, synth};
use leadroute_crm::{Change, Record};

use crate::helpers::sqlite_store;

async fn stored_org() -> (
    crate::helpers::TestStore,
    leadroute::domain::Snapshot,
    policy::Policy,
) {
    let size = synth::OrgSize {
        owners: 8,
        accounts: 100,
        people: 80,
    };
    let org = synth::org(2026, size);
    let (policy, _) = policy::parse("synthetic.toml", &synth::policy_text(size.owners)).unwrap();
    let ts = sqlite_store().await;
    let owners: Vec<Change> = org
        .owners
        .iter()
        .cloned()
        .map(|o| Change::Upsert(Record::Owner(o)))
        .collect();
    let accounts: Vec<Change> = org
        .accounts
        .iter()
        .cloned()
        .map(|a| Change::Upsert(Record::Account(a)))
        .collect();
    let people: Vec<Change> = org
        .people
        .iter()
        .cloned()
        .map(|p| Change::Upsert(Record::Person(p)))
        .collect();
    ts.store
        .apply_changes(CrmKind::Hubspot, ObjectKind::Owner, &owners, None)
        .await
        .unwrap();
    ts.store
        .apply_changes(CrmKind::Hubspot, ObjectKind::Account, &accounts, None)
        .await
        .unwrap();
    ts.store
        .apply_changes(CrmKind::Hubspot, ObjectKind::Contact, &people, None)
        .await
        .unwrap();
    let snapshot = ts.store.snapshot(CrmKind::Hubspot).await.unwrap();
    assert_eq!(snapshot.people.len(), 80);
    (ts, snapshot, policy)
}

#[tokio::test]
async fn plan_output_from_the_stored_mirror_matches_the_golden_files() {
    let (ts, snapshot, policy) = stored_org().await;
    let mut ledger = ts.store.load_ledger(CrmKind::Hubspot).await.unwrap();
    let plan = reconcile::plan(&snapshot, &policy, &mut ledger, synth::base_time());
    expect_file!["../golden/plan.txt"].assert_eq(&plan.to_table(Some(&policy), 100));
    expect_file!["../golden/plan.csv"].assert_eq(&plan.to_csv());
    // The plan JSON is what `apply --plan` reads: it round-trips.
    let back: reconcile::Plan = serde_json::from_str(&plan.to_json()).unwrap();
    assert_eq!(back, plan);

    // Committing the ledger and re-planning from the stored copy picks the same owners.
    ts.store
        .save_ledger(CrmKind::Hubspot, &mut ledger)
        .await
        .unwrap();
    let mut reloaded = ts.store.load_ledger(CrmKind::Hubspot).await.unwrap();
    let again = reconcile::plan(&snapshot, &policy, &mut reloaded, synth::base_time());
    let pairs = |p: &reconcile::Plan| {
        p.changes
            .iter()
            .map(|c| (c.id.clone(), c.to.clone()))
            .collect::<Vec<_>>()
    };
    assert!(
        pairs(&again) == pairs(&plan),
        "re-planning from the stored ledger changed owners"
    );
    ts.cleanup().await;
}

#[tokio::test]
async fn explain_output_matches_the_golden_file() {
    let (ts, snapshot, policy) = stored_org().await;
    let ledger = Ledger::default();
    // The first change of each rule, and the first exception.
    let mut out = String::new();
    let plan = reconcile::plan(&snapshot, &policy, &mut ledger.clone(), synth::base_time());
    let mut rules = std::collections::BTreeSet::new();
    let mut wanted: Vec<RecordId> = plan
        .changes
        .iter()
        .filter(|c| rules.insert(c.rule.clone()))
        .map(|c| c.id.clone())
        .collect();
    wanted.extend(plan.exceptions.first().map(|e| e.id.clone()));
    assert!(
        wanted.len() >= 3,
        "the synthetic org routes by several rules and has exceptions"
    );
    let change = |id: &RecordId| plan.changes.iter().find(|c| &c.id == id).unwrap();
    journal_a_journey(&ts.store, &plan, change(&wanted[0]), change(&wanted[1])).await;
    let started = chrono::Utc::now() - chrono::Duration::minutes(5);
    for id in wanted {
        let d = reconcile::explain(
            &snapshot,
            &policy,
            &ledger,
            synth::base_time(),
            ObjectKind::Contact,
            &id,
        )
        .unwrap();
        out.push_str(&reconcile::explain::render(
            &format!("hubspot:contact:{id}"),
            &d,
            &policy,
        ));
        let mut history = ts
            .store
            .record_history(CrmKind::Hubspot, ObjectKind::Contact, &id)
            .await
            .unwrap();
        // The mirror stamps arrival with the wall clock: check it, then pin it.
        let arrival = history.arrival.as_mut().expect("the record is mirrored");
        assert!(arrival.first_seen_at.is_some_and(|at| at >= started));
        assert!(arrival.last_stored_at >= started);
        arrival.first_seen_at = Some(synth::base_time() - chrono::Duration::days(1));
        arrival.last_stored_at = synth::base_time() - chrono::Duration::days(1);
        out.push_str(&reconcile::explain::render_history(&history, &policy));
        out.push_str("\n----\n");
    }
    expect_file!["../golden/explain.txt"].assert_eq(&out);
    ts.cleanup().await;
}

/// Journals what leadroute did to two records: the first change was applied and later
/// rolled back; the second was refused (inactive owner) and queued as an exception
/// that a person then resolved.
async fn journal_a_journey(
    store: &leadroute::store::Store,
    plan: &reconcile::Plan,
    first: &reconcile::PlannedChange,
    second: &reconcile::PlannedChange,
) {
    use leadroute::store::{JournalOutcome, NewException, NewRun};
    let t = |mins: i64| synth::base_time() + chrono::Duration::minutes(mins);
    let run = NewRun {
        run_id: "r-apply",
        crm: CrmKind::Hubspot,
        kind: "apply",
        parent_run: None,
        policy_version: &plan.policy_version,
    };
    store
        .journal_create_run(&run, &[first.clone(), second.clone()], t(0))
        .await
        .unwrap();
    store
        .journal_intent("r-apply", 0, ObjectKind::Contact, &[0, 1], t(1))
        .await
        .unwrap();
    let refused = JournalOutcome::Rejected {
        kind: leadroute_crm::RejectKind::InactiveOwner,
        code: "INVALID_OWNER".into(),
        message: "owner is deactivated".into(),
        replan: false,
    };
    store
        .journal_outcomes(
            "r-apply",
            &[(0, JournalOutcome::Applied), (1, refused)],
            t(2),
        )
        .await
        .unwrap();
    let exception = NewException {
        crm: CrmKind::Hubspot,
        object: ObjectKind::Contact,
        id: second.id.clone(),
        kind: "inactive_owner".into(),
        rule: second.rule.clone(),
        reason: second.reason.clone(),
        code: Some("INVALID_OWNER".into()),
        message: Some("owner is deactivated".into()),
        run_id: Some("r-apply".into()),
        seq: Some(1),
        before: second.from.clone(),
        desired: Some(second.to.clone()),
    };
    let id = store.exception_add(&exception, t(2)).await.unwrap();
    store
        .exception_close(id, "resolved", second.from.as_ref(), None, t(60))
        .await
        .unwrap();
    let mut undo = first.clone();
    undo.from = Some(first.to.clone());
    undo.to = first
        .from
        .clone()
        .expect("the first change had an owner before");
    undo.rule = "(rollback)".into();
    undo.reason = "revert run r-apply".into();
    let rollback = NewRun {
        run_id: "r-undo",
        crm: CrmKind::Hubspot,
        kind: "rollback",
        parent_run: Some("r-apply"),
        policy_version: &plan.policy_version,
    };
    store
        .journal_create_run(&rollback, &[undo], t(30))
        .await
        .unwrap();
    store
        .journal_intent("r-undo", 0, ObjectKind::Contact, &[0], t(31))
        .await
        .unwrap();
    store
        .journal_outcomes("r-undo", &[(0, JournalOutcome::Applied)], t(32))
        .await
        .unwrap();
}

#[tokio::test]
async fn drift_report_matches_the_golden_files() {
    let (ts, snapshot, policy) = stored_org().await;
    let report = drift::build(&snapshot, &policy, &Ledger::default(), synth::base_time());
    expect_file!["../golden/drift.md"].assert_eq(&report.to_markdown());
    expect_file!["../golden/drift.csv"].assert_eq(&report.to_csv());
    let html = report.to_html();
    assert!(html.contains("<svg") && html.contains("wrong owner"));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["records"], 80);
    ts.cleanup().await;
}

#[tokio::test]
async fn the_plan_drift_explain_and_policy_commands_run_against_a_configured_store() {
    use clap::Parser as _;
    let (ts, snapshot, _policy) = stored_org().await;
    let dir = tempfile::tempdir().unwrap();
    let policy_path = dir.path().join("policy.toml");
    std::fs::write(&policy_path, synth::policy_text(8)).unwrap();
    let config_path = dir.path().join("leadroute.toml");
    std::fs::write(
        &config_path,
        format!(
            "[crm]\nkind = \"hubspot\"\nbase_url = \"http://127.0.0.1:9\"\ntoken = \"test-token\"\n\n[store]\nurl = \"{}\"\n\n[policy]\npath = \"{}\"\n",
            ts.url,
            policy_path.display()
        ),
    )
    .unwrap();
    let config_arg = config_path.display().to_string();
    let run = |args: Vec<String>| {
        let mut full = vec![
            "leadroute".to_owned(),
            "--config".to_owned(),
            config_arg.clone(),
        ];
        full.extend(args);
        leadroute::cli::dispatch(leadroute::cli::Cli::parse_from(full))
    };
    let plan_file = dir.path().join("plan.json");
    let now = "--now=2026-11-23T14:00:00Z".to_owned();
    // `--format csv --out` writes a CSV report; the appliable plan is JSON.
    run(vec![
        "plan".into(),
        "--format".into(),
        "json".into(),
        "--out".into(),
        plan_file.display().to_string(),
        now.clone(),
    ])
    .await
    .unwrap();
    let plan: reconcile::Plan =
        serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    assert!(!plan.changes.is_empty());
    // `--out` commits the ledger: the stored rotation now knows the picks.
    let ledger = ts.store.load_ledger(CrmKind::Hubspot).await.unwrap();
    assert!(!ledger.assignments.is_empty());

    let drift_dir = dir.path().join("drift");
    run(vec![
        "drift".into(),
        "--format".into(),
        "all".into(),
        "--out".into(),
        drift_dir.display().to_string(),
        now.clone(),
    ])
    .await
    .unwrap();
    for ext in ["md", "html", "csv", "json"] {
        assert!(
            drift_dir.join(format!("drift.{ext}")).exists(),
            "drift.{ext}"
        );
    }
    // `explain` and `policy diff` as the binary prints them: what they say, not only
    // that they return.
    let bin = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_leadroute"))
            .arg("--config")
            .arg(&config_arg)
            .args(args)
            .env_remove("LEADROUTE_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let change = &plan.changes[0];
    let record = format!("hubspot:contact:{}", change.id);
    let explained: serde_json::Value =
        serde_json::from_str(&bin(&["explain", &record, "--json", &now])).unwrap();
    // The fresh decision names the plan's owner and rule for that record.
    let text = explained.to_string();
    assert!(text.contains(change.to.as_str()), "{explained:#}");
    assert!(
        text.contains(&format!("\"{}\"", change.rule)),
        "{explained:#}"
    );
    let human = bin(&["explain", &record, &now]);
    assert!(human.contains(&change.id.to_string()), "{human}");
    assert!(human.contains(&change.rule), "{human}");
    let err = run(vec![
        "explain".into(),
        "hubspot:contact:nope".into(),
        now.clone(),
    ])
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not in the mirror"), "{err}");
    // The same policy on both sides: nothing would change, every record counted.
    let policy_arg = policy_path.display().to_string();
    let same: serde_json::Value = serde_json::from_str(&bin(&[
        "policy",
        "diff",
        &policy_arg,
        &policy_arg,
        "--json",
        &now,
    ]))
    .unwrap();
    assert_eq!(same["changed"], 0, "{same:#}");
    assert_eq!(same["records"], snapshot.people.len(), "{same:#}");
    // A policy that sends the NA territory to one rep moves records, all by that rule.
    let edited = dir.path().join("edited.toml");
    let na_pool =
        "name = \"na\"\nwhen = [{ territory = \"na\" }]\naction = \"pool\"\npool = \"na\"\n";
    let text = synth::policy_text(8);
    assert!(text.contains(na_pool));
    std::fs::write(
        &edited,
        text.replace(
            na_pool,
            "name = \"na\"\nwhen = [{ territory = \"na\" }]\naction = \"owner\"\nrep = \"r1\"\n",
        ),
    )
    .unwrap();
    let moved: serde_json::Value = serde_json::from_str(&bin(&[
        "policy",
        "diff",
        &policy_arg,
        &edited.display().to_string(),
        "--json",
        &now,
    ]))
    .unwrap();
    let changed = moved["changed"].as_u64().unwrap();
    assert!(changed > 0, "{moved:#}");
    assert_eq!(moved["by_rule"]["na"].as_u64(), Some(changed), "{moved:#}");
    ts.cleanup().await;
}

/// Salesforce gives no owner-assigned time, so the manual-override window used to never
/// apply there. The mirror now stamps an owner change with the modification that first
/// showed it: a rep a person moved a record to half a day ago keeps it, while records
/// whose owner the mirror never saw change still have no assigned time.
#[tokio::test]
async fn the_manual_override_window_applies_to_a_salesforce_record_whose_owner_a_person_changed() {
    let size = synth::OrgSize {
        owners: 8,
        accounts: 100,
        people: 80,
    };
    let org = synth::org(2026, size);
    let (policy, _) = policy::parse("synthetic.toml", &synth::policy_text(size.owners)).unwrap();
    let now = synth::base_time();
    let sf = CrmKind::Salesforce;
    let ts = sqlite_store().await;
    let store = &ts.store;
    let upsert = |records: Vec<Record>| {
        records
            .into_iter()
            .map(Change::Upsert)
            .collect::<Vec<Change>>()
    };
    store
        .apply_changes(
            sf,
            ObjectKind::Owner,
            &upsert(org.owners.iter().cloned().map(Record::Owner).collect()),
            None,
        )
        .await
        .unwrap();
    store
        .apply_changes(
            sf,
            ObjectKind::Account,
            &upsert(org.accounts.iter().cloned().map(Record::Account).collect()),
            None,
        )
        .await
        .unwrap();
    // Salesforce-shaped: no owner-assigned time on any record.
    let mut people = org.people.clone();
    for p in &mut people {
        p.owner_assigned_at = None;
    }
    store
        .apply_changes(
            sf,
            ObjectKind::Contact,
            &upsert(people.iter().cloned().map(Record::Person).collect()),
            None,
        )
        .await
        .unwrap();

    // A person moves one owned record to another active rep (one the policy would not
    // pick), twelve hours before planning.
    let mut ledger = Ledger::default();
    let first = reconcile::plan(
        &store.snapshot(sf).await.unwrap(),
        &policy,
        &mut ledger.clone(),
        now,
    );
    let change = first
        .changes
        .iter()
        .find(|c| c.from.is_some())
        .expect("the synthetic org re-routes some owned record");
    let human = org
        .owners
        .iter()
        .find(|o| o.active && Some(&o.id) != change.from.as_ref() && o.id != change.to)
        .expect("another active rep");
    let mut moved = people.iter().find(|p| p.id == change.id).unwrap().clone();
    let edited = now - chrono::Duration::hours(12);
    assert!(
        edited > moved.updated_at,
        "the edit is newer than the first sight"
    );
    moved.owner_id = Some(human.id.clone());
    moved.updated_at = edited;
    store
        .apply_changes(
            sf,
            ObjectKind::Contact,
            &[Change::Upsert(Record::Person(moved.clone()))],
            None,
        )
        .await
        .unwrap();

    let snapshot = store.snapshot(sf).await.unwrap();
    let stored = snapshot.people.iter().find(|p| p.id == moved.id).unwrap();
    assert_eq!(stored.owner_assigned_at, Some(edited));
    let d = reconcile::explain(
        &snapshot,
        &policy,
        &ledger,
        now,
        ObjectKind::Contact,
        &moved.id,
    )
    .unwrap();
    assert_eq!(d.rule, "(manual override)", "{}", d.reason);
    assert!(d.change().is_none(), "the person's pick is kept");
    let plan = reconcile::plan(&snapshot, &policy, &mut ledger, now);
    assert!(
        plan.changes.iter().all(|c| c.id != moved.id),
        "the plan leaves the record alone"
    );
    // A record whose owner the mirror never saw change: still no assigned time.
    let untouched = snapshot
        .people
        .iter()
        .find(|p| p.id != moved.id && p.owner_id.is_some())
        .unwrap();
    assert_eq!(untouched.owner_assigned_at, None);
    ts.cleanup().await;
}
