//! The shared commit path (`service::commit::commit_plan`) against the HubSpot
//! simulator: a plan applied through it reaches the mirror at once (no sync needed
//! for the next plan to be empty), and its exceptions are queued once, even when the
//! plan has no owner changes and several callers queue them at once.

use leadroute::domain::{OrgId, OrgRef};
use std::sync::Arc;

use chrono::Utc;
use leadroute::domain::CrmKind;
use leadroute::reconcile::{self, Ledger};
use leadroute::service::commit::commit_plan;
use leadroute::writer::{NoProgress, RunId, RunSpec, Writer, WriterSettings};

use crate::helpers::{TestApp, sim_config, spawn_app};

/// A round-robin policy over the simulator's first three active owners, or one that
/// raises an exception for every record.
fn policy(app: &TestApp, exceptions_only: bool) -> leadroute::policy::Policy {
    let owners: Vec<String> = app
        .sim
        .state()
        .owners
        .iter()
        .filter(|o| !o.archived && o.owner_type == "PERSON")
        .map(|o| o.id.to_string())
        .take(3)
        .collect();
    let mut text = String::from("[settings]\nname = \"it\"\n\n");
    for (i, owner) in owners.iter().enumerate() {
        text.push_str(&format!("[reps.r{i}]\nowner = \"{owner}\"\n\n"));
    }
    let members: Vec<String> = (0..owners.len()).map(|i| format!("\"r{i}\"")).collect();
    text.push_str(&format!(
        "[pools.all]\nstrategy = \"round_robin\"\nmembers = [{}]\n\n",
        members.join(", ")
    ));
    if exceptions_only {
        text.push_str(
            "[default]\naction = \"exception\"\nkind = \"needs_review\"\nreason = \"it\"\n",
        );
    } else {
        text.push_str("[default]\naction = \"pool\"\npool = \"all\"\n");
    }
    let (policy, _) = leadroute::policy::parse("it.toml", &text).unwrap();
    policy
}

fn writer(app: &TestApp) -> Writer<leadroute_hubspot::HubSpot> {
    let crm = leadroute::app::hubspot(&app.config).expect("connector from config");
    Writer::new(
        Arc::new(crm),
        app.store.store.clone(),
        WriterSettings::default(),
    )
}

fn spec(kind: &str) -> RunSpec {
    RunSpec {
        id: RunId::generate(Utc::now()),
        kind: kind.to_owned(),
        parent: None,
    }
}

/// Issue 9 item 2: after `backfill --yes` the next `plan` still showed every change
/// until a sync. Applied outcomes now update the mirror in the journal transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_made_right_after_a_backfill_is_empty_without_a_sync() {
    let app = spawn_app(sim_config(200, 20), "").await;
    app.mirror().sync_once(true).await.expect("first sync");
    let policy = policy(&app, false);
    let store = &app.store.store;
    let snapshot = store
        .snapshot(&OrgRef::default_for(CrmKind::Hubspot))
        .await
        .unwrap();
    let mut ledger = store
        .load_ledger(&OrgId::default_for(CrmKind::Hubspot))
        .await
        .unwrap();
    let plan = reconcile::plan(&snapshot, &policy, &mut ledger, Utc::now());
    assert!(!plan.changes.is_empty(), "the backfill has work to do");
    let writer = writer(&app);
    let committed = commit_plan(
        &writer,
        &plan,
        Some(&mut ledger),
        &spec("backfill"),
        &NoProgress,
    )
    .await
    .unwrap();
    let report = committed.report.expect("a run for the changes");
    assert!(report.is_complete(), "{report}");
    assert!(report.applied > 0, "{report}");

    // No sync in between: the mirror already knows what leadroute wrote.
    let snapshot = store
        .snapshot(&OrgRef::default_for(CrmKind::Hubspot))
        .await
        .unwrap();
    let mut ledger = store
        .load_ledger(&OrgId::default_for(CrmKind::Hubspot))
        .await
        .unwrap();
    let again = reconcile::plan(&snapshot, &policy, &mut ledger, Utc::now());
    assert_eq!(
        again.changes.len(),
        0,
        "{:?}",
        &again.changes[..again.changes.len().min(5)]
    );
    let written = snapshot
        .people
        .iter()
        .find(|p| p.id == plan.changes[0].id)
        .expect("the record is mirrored");
    assert_eq!(written.owner_id.as_ref(), Some(&plan.changes[0].to));
    assert!(written.owner_assigned_at.is_some());

    // A sync afterwards (the CRM's post-write versions) keeps the written owners, and
    // re-planning is still empty.
    app.mirror()
        .sync_once(false)
        .await
        .expect("incremental sync");
    let snapshot = store
        .snapshot(&OrgRef::default_for(CrmKind::Hubspot))
        .await
        .unwrap();
    let again = reconcile::plan(&snapshot, &policy, &mut ledger, Utc::now());
    assert_eq!(again.changes.len(), 0);
    app.assert_mirror_matches().await;
    app.shutdown().await;
}

/// Issue 9 item 4: a plan with exceptions and no owner changes still queues them, and
/// queueing is idempotent even when several callers queue the same plan at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_with_only_exceptions_queues_each_once_even_when_committed_concurrently() {
    let app = spawn_app(sim_config(40, 5), "").await;
    app.mirror().sync_once(true).await.expect("first sync");
    let policy = policy(&app, true);
    let store = &app.store.store;
    let snapshot = store
        .snapshot(&OrgRef::default_for(CrmKind::Hubspot))
        .await
        .unwrap();
    let mut ledger = Ledger::default();
    let plan = reconcile::plan(&snapshot, &policy, &mut ledger, Utc::now());
    assert!(plan.changes.is_empty());
    assert!(!plan.exceptions.is_empty());
    let writer = writer(&app);
    let specs = [spec("backfill"), spec("apply"), spec("backfill")];
    let (a, b, c) = tokio::join!(
        commit_plan(&writer, &plan, None, &specs[0], &NoProgress),
        commit_plan(&writer, &plan, None, &specs[1], &NoProgress),
        commit_plan(&writer, &plan, None, &specs[2], &NoProgress),
    );
    for committed in [a, b, c] {
        let committed = committed.unwrap();
        assert!(committed.report.is_none(), "no run for no changes");
        assert_eq!(committed.exceptions_queued, plan.exceptions.len() as u64);
    }
    let open = store.exceptions(Some("open")).await.unwrap();
    assert_eq!(open.len(), plan.exceptions.len(), "one open exception each");
    assert!(app.sim.write_log().is_empty(), "nothing written to the CRM");
    app.shutdown().await;
}

/// Issue 9 item 2, the other half: the mirror's record of leadroute's write is not
/// undone by a late re-delivery of the pre-write version (a lagging search index),
/// while a newer version (a person's edit after the write) still wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_re_read_does_not_undo_a_mirrored_write_but_a_newer_edit_wins() {
    use leadroute::domain::{ObjectKind, OwnerId};
    use leadroute_crm::{Change, Record};

    let app = spawn_app(sim_config(30, 5), "").await;
    app.mirror().sync_once(true).await.expect("first sync");
    let policy = policy(&app, false);
    let store = &app.store.store;
    let before = store
        .snapshot(&OrgRef::default_for(CrmKind::Hubspot))
        .await
        .unwrap();
    let mut ledger = store
        .load_ledger(&OrgId::default_for(CrmKind::Hubspot))
        .await
        .unwrap();
    let plan = reconcile::plan(&before, &policy, &mut ledger, Utc::now());
    let change = plan.changes.first().expect("a change").clone();
    let old = before
        .people
        .iter()
        .find(|p| p.id == change.id)
        .expect("mirrored")
        .clone();
    let writer = writer(&app);
    commit_plan(
        &writer,
        &plan,
        Some(&mut ledger),
        &spec("apply"),
        &NoProgress,
    )
    .await
    .unwrap();
    let owner_now = |snapshot: &leadroute::domain::Snapshot| {
        snapshot
            .people
            .iter()
            .find(|p| p.id == change.id)
            .and_then(|p| p.owner_id.clone())
    };
    store
        .apply_changes(
            &OrgId::default_for(CrmKind::Hubspot),
            ObjectKind::Contact,
            &[Change::Upsert(Record::Person(old.clone()))],
            None,
        )
        .await
        .unwrap();
    let snapshot = store
        .snapshot(&OrgRef::default_for(CrmKind::Hubspot))
        .await
        .unwrap();
    assert_eq!(
        owner_now(&snapshot),
        Some(change.to.clone()),
        "not regressed"
    );

    let mut newer = old;
    newer.owner_id = Some(OwnerId::new("someone-else"));
    newer.updated_at = Utc::now() + chrono::Duration::seconds(5);
    store
        .apply_changes(
            &OrgId::default_for(CrmKind::Hubspot),
            ObjectKind::Contact,
            &[Change::Upsert(Record::Person(newer))],
            None,
        )
        .await
        .unwrap();
    let snapshot = store
        .snapshot(&OrgRef::default_for(CrmKind::Hubspot))
        .await
        .unwrap();
    assert_eq!(owner_now(&snapshot), Some(OwnerId::new("someone-else")));
    app.shutdown().await;
}
