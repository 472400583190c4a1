//! Mirroring a HubSpot portal end to end: simulator over loopback HTTP → connector →
//! mirror engine → store, compared with the simulator's own state.

use leadroute::domain::{OrgId, OrgRef};
use std::time::{Duration, Instant};

use leadroute_crm::{CrmKind, ObjectKind};
use leadroute_sim::hubspot::{
    EndpointFamily, Fault, FaultRule, FaultScript, Mutation, ObjectType, Trigger,
};
use tokio_util::sync::CancellationToken;

use crate::helpers::{TestApp, sim_config, spawn_app, wait_for};

const CONTACTS_LIST: &str = "GET /crm/v3/objects/contacts";

/// Runs incremental syncs until the mirror equals the simulator (the polling loop a
/// sidecar runs).
async fn sync_until_equal(app: &TestApp, secs: u64) {
    let mirror = app.mirror();
    wait_for("the mirror to equal the simulator", secs, || {
        let mirror = mirror.clone();
        async move {
            mirror.sync_once(false).await.expect("incremental sync");
            app.mirror_diff().await.is_empty().then_some(())
        }
    })
    .await;
}

fn live_contact_ids(app: &TestApp) -> Vec<u64> {
    app.sim
        .state()
        .contacts
        .iter()
        .filter(|c| !c.archived)
        .map(|c| c.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_then_incremental_sync_leaves_the_mirror_equal_to_the_portal_after_human_edits() {
    // Search sees writes 300 ms late, as HubSpot's index does (seconds there); the
    // 2-second overlap window covers it.
    let mut sim = sim_config(400, 60);
    sim.search_lag = Duration::from_millis(300);
    let app = spawn_app(sim, "").await;
    let full = app.mirror().sync_once(false).await.expect("full sync");
    assert!(full.complete());
    assert!(full.objects.iter().all(|o| o.full));
    app.assert_mirror_matches().await;

    // People edit owners, stages and fields; merge two contacts; archive one and
    // restore another; deactivate an owner (records keep pointing at it).
    app.sim
        .mutate(Mutation::RandomEdits { n: 150, seed: 7 })
        .expect("random edits");
    let ids = live_contact_ids(&app);
    app.sim
        .mutate(Mutation::Merge {
            object: ObjectType::Contacts,
            primary_id: ids[0].to_string(),
            merged_id: ids[1].to_string(),
        })
        .expect("merge");
    app.sim
        .mutate(Mutation::Archive {
            object: ObjectType::Contacts,
            id: ids[2].to_string(),
        })
        .expect("archive");
    let owner = app.sim.state().owners[0].id;
    app.sim
        .mutate(Mutation::DeactivateOwner {
            owner_id: owner.to_string(),
        })
        .expect("deactivate owner");

    sync_until_equal(&app, 30).await;
    let store = &app.store.store;
    for id in [ids[0], ids[1]] {
        let stone = store
            .tombstone(
                &OrgId::default_for(CrmKind::Hubspot),
                ObjectKind::Contact,
                &id.to_string().as_str().into(),
            )
            .await
            .unwrap()
            .expect("merged ids leave a tombstone");
        assert!(stone.merged_into.is_some(), "{stone:?}");
    }
    assert!(
        store
            .tombstone(
                &OrgId::default_for(CrmKind::Hubspot),
                ObjectKind::Contact,
                &ids[2].to_string().as_str().into()
            )
            .await
            .unwrap()
            .is_some()
    );

    // A restore brings the archived contact back.
    app.sim
        .mutate(Mutation::Restore {
            object: ObjectType::Contacts,
            id: ids[2].to_string(),
        })
        .expect("restore");
    sync_until_equal(&app, 30).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_ten_thousand_changes_sharing_one_timestamp_are_all_mirrored() {
    let app = spawn_app(sim_config(10_300, 20), "").await;
    app.mirror().sync_once(false).await.expect("full sync");
    // A spreadsheet import touches 10,200 contacts and creates 50, all stamped with
    // one timestamp: more than search's 10,000-result cap, and one giant tie.
    let import = app
        .sim
        .mutate(Mutation::BulkImport {
            object: ObjectType::Contacts,
            update: 10_200,
            create: 50,
            properties: Default::default(),
            seed: 5,
        })
        .expect("bulk import");
    assert_eq!(import.ids.len(), 10_250);
    let report = app
        .mirror()
        .sync_once(false)
        .await
        .expect("incremental sync");
    let contacts = report
        .objects
        .iter()
        .find(|o| o.object == ObjectKind::Contact)
        .expect("contacts synced");
    assert!(contacts.stored.upserted >= 10_250, "{contacts:?}");
    app.assert_mirror_matches().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_the_stored_cursor_and_rereads_no_more_than_the_overlap_window() {
    let app = spawn_app(sim_config(600, 30), "").await;
    let started_ms = chrono::Utc::now().timestamp_millis();
    app.mirror().sync_once(false).await.expect("full sync");
    let list_calls = app.sim.stats().calls_to(CONTACTS_LIST);
    assert_eq!(list_calls, 6, "a full sync lists 100 contacts per call");

    for id in &live_contact_ids(&app)[..5] {
        app.sim
            .mutate(Mutation::SetOwner {
                object: ObjectType::Contacts,
                id: id.to_string(),
                owner_id: String::new(),
            })
            .expect("unassign");
    }
    // A new process: fresh connector, same store.
    let report = app
        .mirror()
        .sync_once(false)
        .await
        .expect("incremental sync");
    let contacts = report
        .objects
        .iter()
        .find(|o| o.object == ObjectKind::Contact)
        .expect("contacts synced");
    assert!(!contacts.full, "it resumed from the stored cursor");
    // What it may re-read: records modified since the first sync started, minus the
    // 2-second overlap window.
    let overlap_ms = 2_000;
    let bound = app
        .sim
        .state()
        .contacts
        .iter()
        .filter(|c| c.updated_at_ms >= started_ms - overlap_ms)
        .count();
    assert!(
        (5..=bound).contains(&contacts.received),
        "re-read {} contacts; the edits and the overlap window hold {bound}",
        contacts.received
    );
    // No full re-list: at most the one page of the periodic archived sweep (search
    // cannot see deletions), which a new process runs on its first pass.
    assert!(
        app.sim.stats().calls_to(CONTACTS_LIST) <= list_calls + 1,
        "a restart re-listed contacts: {} list calls",
        app.sim.stats().calls_to(CONTACTS_LIST)
    );
    app.assert_mirror_matches().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_interrupted_mid_way_resumes_where_it_stopped_without_rereading() {
    let app = spawn_app(sim_config(2_000, 20), "").await;
    // Slow list pages down so the interruption lands mid-sync.
    app.sim.set_faults(FaultScript {
        seed: 1,
        rules: vec![FaultRule {
            families: vec![EndpointFamily::List],
            fault: Fault::Slow { delay_ms: 40 },
            trigger: Trigger::Always,
        }],
        expire_tokens: false,
    });
    let cancel = CancellationToken::new();
    let mirror = app.mirror().with_cancel(cancel.clone());
    let watcher = {
        let store = app.store.store.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            wait_for("500 contacts stored", 60, || {
                let store = store.clone();
                async move {
                    let counts = store
                        .counts(&OrgId::default_for(CrmKind::Hubspot))
                        .await
                        .unwrap();
                    (counts.contacts >= 500).then_some(())
                }
            })
            .await;
            cancel.cancel();
        })
    };
    let first = mirror.sync_once(false).await.expect("interrupted sync");
    watcher.await.unwrap();
    assert!(!first.complete(), "the sync stopped early: {first:?}");
    let stored = app
        .store
        .store
        .counts(&OrgId::default_for(CrmKind::Hubspot))
        .await
        .unwrap()
        .contacts;
    assert!(stored < 2_000, "{stored} contacts stored before the stop");

    let second = app.mirror().sync_once(false).await.expect("resumed sync");
    assert!(second.complete());
    // 20 pages in all, plus at most the page in flight when it stopped.
    let calls = app.sim.stats().calls_to(CONTACTS_LIST);
    assert!(calls <= 21, "{calls} list calls for 2,000 contacts");
    app.assert_mirror_matches().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_and_5xx_bursts_slow_the_sync_but_lose_nothing() {
    let app = spawn_app(sim_config(500, 40), "").await;
    let rule = |families, fault, trigger| FaultRule {
        families,
        fault,
        trigger,
    };
    app.sim.set_faults(FaultScript {
        seed: 11,
        rules: vec![
            rule(
                vec![],
                Fault::RateLimit {
                    policy: "SECONDLY".into(),
                },
                Trigger::NextN { n: 4 },
            ),
            rule(
                vec![],
                Fault::ServerError { status: 503 },
                Trigger::Probability { p: 0.2 },
            ),
            rule(
                vec![EndpointFamily::List],
                Fault::ServerError { status: 502 },
                Trigger::NextN { n: 3 },
            ),
        ],
        expire_tokens: false,
    });
    let started = Instant::now();
    let report = app
        .mirror()
        .sync_once(false)
        .await
        .expect("full sync under faults");
    assert!(report.complete());
    app.assert_mirror_matches().await;
    app.sim
        .mutate(Mutation::RandomEdits { n: 80, seed: 3 })
        .expect("random edits");
    sync_until_equal(&app, 60).await;
    let stats = app.sim.stats();
    assert!(
        stats.rate_limited >= 4,
        "429s served: {}",
        stats.rate_limited
    );
    assert!(
        stats.statuses.get(&503).copied().unwrap_or(0)
            + stats.statuses.get(&502).copied().unwrap_or(0)
            >= 3
    );
    assert!(report.usage.retries >= 4, "{:?}", report.usage);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the 429s slowed it down"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salesforce_org_mirrors_through_the_same_engine_and_store() {
    use leadroute_sim::salesforce::{Mutation as SfMutation, SalesforceSimConfig};

    let sim_config = SalesforceSimConfig {
        leads: 300,
        contacts: 200,
        accounts: 40,
        ..Default::default()
    };
    let (client_id, client_secret, refresh_token) = (
        sim_config.client_id.clone(),
        sim_config.client_secret.clone(),
        sim_config.refresh_token.clone(),
    );
    let sim = leadroute_sim::salesforce::spawn(sim_config).await.unwrap();
    let store = crate::helpers::sqlite_store().await;
    let text = format!(
        "[crm]\nkind = \"salesforce\"\nbase_url = \"{}\"\noverlap_secs = 2\n[crm.oauth]\nclient_id = \"{client_id}\"\n",
        sim.base_url()
    );
    let config = leadroute::config::Config::from_toml(&text, "sf.toml", &|name| match name {
        "LEADROUTE_CRM_CLIENT_SECRET" => Some(client_secret.clone()),
        "LEADROUTE_CRM_REFRESH_TOKEN" => Some(refresh_token.clone()),
        _ => None,
    })
    .unwrap_or_else(|err| panic!("{err}"));
    let crm = std::sync::Arc::new(leadroute::app::salesforce(&config).unwrap());
    let mirror = leadroute::mirror::Mirror::new(crm, store.store.clone());

    let counts_match = || async {
        let state = sim.state();
        let counts = store
            .store
            .counts(&OrgId::default_for(CrmKind::Salesforce))
            .await
            .unwrap();
        let leads = state.leads.iter().filter(|l| !l.is_deleted).count() as u64;
        let contacts = state.contacts.iter().filter(|c| !c.is_deleted).count() as u64;
        let accounts = state.accounts.iter().filter(|a| !a.is_deleted).count() as u64;
        (counts.leads, counts.contacts, counts.accounts) == (leads, contacts, accounts)
    };
    let full = mirror.sync_once(false).await.expect("full sync");
    assert!(full.complete());
    assert!(counts_match().await, "after the full sync");
    let snapshot = store
        .store
        .snapshot(&OrgRef::default_for(CrmKind::Salesforce))
        .await
        .unwrap();
    assert!(snapshot.owners.len() >= 20, "users and queues are owners");

    let lead = sim
        .state()
        .leads
        .iter()
        .find(|l| !l.is_deleted && !l.is_converted)
        .unwrap()
        .id
        .clone();
    sim.mutate(SfMutation::Delete {
        object: "Lead".into(),
        id: lead.clone(),
    })
    .unwrap();
    sim.mutate(SfMutation::RandomEdits {
        object: "Contact".into(),
        count: 30,
        seed: 9,
    })
    .unwrap();
    wait_for("the Salesforce mirror to catch up", 30, || {
        let mirror = mirror.clone();
        let counts_match = &counts_match;
        async move {
            mirror.sync_once(false).await.expect("incremental sync");
            counts_match().await.then_some(())
        }
    })
    .await;
    assert!(
        store
            .store
            .tombstone(
                &OrgId::default_for(CrmKind::Salesforce),
                ObjectKind::Lead,
                &lead.as_str().into()
            )
            .await
            .unwrap()
            .is_some(),
        "the deleted lead left a tombstone"
    );
    sim.shutdown().await;
    store.cleanup().await;
}

/// The HubSpot simulator and leadroute's config around an existing store (for tests
/// that run on every backend).
async fn app_on(
    store: crate::helpers::TestStore,
    sim: leadroute_sim::hubspot::HubSpotSimConfig,
) -> TestApp {
    let sim = leadroute_sim::hubspot::spawn(sim)
        .await
        .expect("simulator starts");
    let config = config_for(&sim);
    TestApp { sim, store, config }
}

fn config_for(sim: &leadroute_sim::hubspot::HubSpotSim) -> leadroute::config::Config {
    let text = format!(
        "[crm]\nbase_url = \"{}\"\noverlap_secs = 2\n",
        sim.base_url()
    );
    let token = sim.token();
    leadroute::config::Config::from_toml(&text, "test.toml", &|name| {
        (name == "LEADROUTE_CRM_TOKEN").then(|| token.clone())
    })
    .unwrap_or_else(|err| panic!("{err}"))
}

/// What [`regenerate_under_the_mirror`] did.
struct Regenerated {
    /// Tombstoned in the mirror, live again (with an older stamp) in the portal.
    revived: String,
    /// In the mirror, archived in the regenerated portal.
    archived: String,
    /// Contacts the mirror holds that the regenerated portal does not list.
    gone: usize,
}

/// Mirrors the portal, tombstones one contact the way a webhook refetch does, then
/// regenerates the portal (another seed, stamps a month older: owners, values, links
/// and most ids differ, the tombstoned contact is live again with an older stamp) and
/// archives a contact the mirror holds.
async fn regenerate_under_the_mirror(app: &TestApp) -> Regenerated {
    const SEED: u64 = 4_242;
    let full = app.mirror().sync_once(false).await.expect("first sync");
    assert!(full.complete());
    app.assert_mirror_matches().await;
    // The regenerated portal's ids, from a throwaway simulator with the same seed.
    let preview = leadroute_sim::hubspot::spawn(leadroute_sim::hubspot::HubSpotSimConfig {
        seed: SEED,
        ..app.sim.config().clone()
    })
    .await
    .unwrap();
    let new_ids = live_contact_ids_of(&preview);
    preview.shutdown().await;
    let old_ids = live_contact_ids(app);
    let common: Vec<u64> = old_ids
        .iter()
        .copied()
        .filter(|id| new_ids.contains(id))
        .collect();
    assert!(common.len() >= 2, "the two portals share ids");
    let revived = common[0].to_string();
    let archived = common[1].to_string();
    let gone = old_ids
        .iter()
        .filter(|id| id.to_string() != revived)
        .filter(|id| !new_ids.contains(id) || id.to_string() == archived)
        .count();
    app.sim
        .mutate(Mutation::Archive {
            object: ObjectType::Contacts,
            id: revived.clone(),
        })
        .expect("archive");
    let mirror = app.mirror();
    let changes = leadroute_crm::Crm::fetch(
        &**mirror.crm(),
        ObjectKind::Contact,
        &[revived.as_str().into()],
    )
    .await
    .expect("refetch");
    app.store
        .store
        .apply_changes(
            &OrgId::default_for(CrmKind::Hubspot),
            ObjectKind::Contact,
            &changes,
            None,
        )
        .await
        .expect("store the deletion");
    assert!(
        app.store
            .store
            .tombstone(
                &OrgId::default_for(CrmKind::Hubspot),
                ObjectKind::Contact,
                &revived.as_str().into()
            )
            .await
            .unwrap()
            .is_some()
    );

    app.sim.regenerate(leadroute_sim::hubspot::Regenerate {
        seed: SEED,
        age_secs: 30 * 86_400,
    });
    app.sim
        .mutate(Mutation::Archive {
            object: ObjectType::Contacts,
            id: archived.clone(),
        })
        .expect("archive after regeneration");
    assert!(
        live_contact_ids(app).contains(&revived.parse().unwrap()),
        "the regenerated portal has the tombstoned contact live again"
    );
    assert!(!app.mirror_diff().await.is_empty());
    Regenerated {
        revived,
        archived,
        gone,
    }
}

fn live_contact_ids_of(sim: &leadroute_sim::hubspot::HubSpotSim) -> Vec<u64> {
    sim.state()
        .contacts
        .iter()
        .filter(|c| !c.archived)
        .map(|c| c.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_repairs_a_mirror_of_a_regenerated_portal_on_every_backend() {
    for store in crate::helpers::all_stores().await {
        let label = store.label;
        let app = app_on(store, sim_config(300, 30)).await;
        let Regenerated {
            revived,
            archived,
            gone,
        } = regenerate_under_the_mirror(&app).await;

        let report = app.mirror().sync_once(true).await.expect("full sync");
        assert!(report.complete(), "{label}");
        assert!(report.objects.iter().all(|o| o.full), "{label}");
        app.assert_mirror_matches().await;
        let store = &app.store.store;
        let stone = |id: &str| {
            let id = leadroute_crm::RecordId::from(id);
            async move {
                store
                    .tombstone(
                        &OrgId::default_for(CrmKind::Hubspot),
                        ObjectKind::Contact,
                        &id,
                    )
                    .await
                    .unwrap()
            }
        };
        assert!(stone(&revived).await.is_none(), "{label}: revived contact");
        assert!(
            stone(&archived).await.is_some(),
            "{label}: archived contact"
        );
        let contacts = report
            .objects
            .iter()
            .find(|o| o.object == ObjectKind::Contact)
            .unwrap();
        assert_eq!(contacts.stored.pruned, gone, "{label}: {contacts:?}");

        // The repair leaves incremental syncs with their usual rule, and nothing to do.
        let next = app
            .mirror()
            .sync_once(false)
            .await
            .expect("incremental sync");
        assert!(next.objects.iter().any(|o| !o.full), "{label}");
        app.assert_mirror_matches().await;
        app.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_full_sync_prunes_nothing_and_the_next_sync_completes_the_repair() {
    for store in crate::helpers::all_stores().await {
        let label = store.label;
        let app = app_on(store, sim_config(1_500, 20)).await;
        let archived = regenerate_under_the_mirror(&app).await.archived;
        app.sim.set_faults(FaultScript {
            seed: 1,
            rules: vec![FaultRule {
                families: vec![EndpointFamily::List],
                fault: Fault::Slow { delay_ms: 40 },
                trigger: Trigger::Always,
            }],
            expire_tokens: false,
        });
        let cancel = CancellationToken::new();
        let mirror = app.mirror().with_cancel(cancel.clone());
        let store = app.store.store.clone();
        let watcher = tokio::spawn({
            let store = store.clone();
            let cancel = cancel.clone();
            async move {
                wait_for("a contact page of the full pass", 60, || {
                    let store = store.clone();
                    async move {
                        let pass = store
                            .full_pass(&OrgId::default_for(CrmKind::Hubspot), ObjectKind::Contact)
                            .await
                            .unwrap();
                        let paged = store
                            .cursor(&OrgId::default_for(CrmKind::Hubspot), ObjectKind::Contact)
                            .await
                            .unwrap();
                        (pass.is_some() && paged.is_some()).then_some(())
                    }
                })
                .await;
                cancel.cancel();
            }
        });
        let first = mirror.sync_once(true).await.expect("interrupted full sync");
        watcher.await.unwrap();
        assert!(!first.complete(), "{label}: {first:?}");
        let archived_id = leadroute_crm::RecordId::from(archived.as_str());
        assert!(
            store
                .person(
                    &OrgId::default_for(CrmKind::Hubspot),
                    ObjectKind::Contact,
                    &archived_id
                )
                .await
                .unwrap()
                .is_some(),
            "{label}: an interrupted pass removes nothing"
        );
        assert!(
            store
                .full_pass(&OrgId::default_for(CrmKind::Hubspot), ObjectKind::Contact)
                .await
                .unwrap()
                .is_some(),
            "{label}"
        );

        app.sim.set_faults(FaultScript::default());
        let second = app.mirror().sync_once(false).await.expect("resumed sync");
        assert!(second.complete(), "{label}");
        let contacts = second
            .objects
            .iter()
            .find(|o| o.object == ObjectKind::Contact)
            .unwrap();
        assert!(
            contacts.full,
            "{label}: the resumed pass is still a full one"
        );
        assert!(contacts.received < 1_500, "{label}: resumed, not restarted");
        app.assert_mirror_matches().await;
        assert!(
            store
                .full_pass(&OrgId::default_for(CrmKind::Hubspot), ObjectKind::Contact)
                .await
                .unwrap()
                .is_none(),
            "{label}: the pass completed"
        );
        app.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_one_portal_refuses_another_and_adopts_it_only_when_asked_on_every_backend() {
    for store in crate::helpers::all_stores().await {
        let label = store.label;
        let app = app_on(store, sim_config(120, 10)).await;
        app.mirror().sync_once(false).await.expect("sync portal A");
        let before = app
            .store
            .store
            .counts(&OrgId::default_for(CrmKind::Hubspot))
            .await
            .unwrap();

        let other = leadroute_sim::hubspot::spawn(leadroute_sim::hubspot::HubSpotSimConfig {
            portal_id: 777_001,
            seed: 9,
            ..sim_config(80, 5)
        })
        .await
        .unwrap();
        let config = config_for(&other);
        let crm = std::sync::Arc::new(leadroute::app::hubspot(&config).unwrap());
        let mirror = leadroute::mirror::Mirror::new(crm.clone(), app.store.store.clone());
        let err = mirror.sync_once(false).await.expect_err("another portal");
        let message = err.to_string();
        assert!(
            matches!(err, leadroute::mirror::MirrorError::OtherOrg { .. }),
            "{label}: {message}"
        );
        for part in [
            "portal 62515",
            "portal 777001",
            "fresh store",
            "--adopt-org",
        ] {
            assert!(message.contains(part), "{label}: {part:?} in {message}");
        }
        assert_eq!(
            app.store
                .store
                .counts(&OrgId::default_for(CrmKind::Hubspot))
                .await
                .unwrap(),
            before,
            "{label}: nothing of portal B was stored"
        );
        assert_eq!(
            other.stats().calls_to("GET /crm/v3/objects/contacts"),
            0,
            "{label}: refused before reading records"
        );

        let adopted = leadroute::mirror::Mirror::new(crm, app.store.store.clone())
            .with_adopt_org(true)
            .sync_once(true)
            .await
            .expect("adopting portal B");
        assert!(adopted.complete());
        let snapshot = app
            .store
            .store
            .snapshot(&OrgRef::default_for(CrmKind::Hubspot))
            .await
            .unwrap();
        let diff = crate::helpers::diff(&snapshot, &other.state());
        assert!(diff.is_empty(), "{label}: {diff:#?}");
        let recorded = app
            .store
            .store
            .org_identity(&OrgId::default_for(CrmKind::Hubspot))
            .await
            .unwrap();
        assert_eq!(recorded.map(|r| r.id).as_deref(), Some("777001"));
        other.shutdown().await;
        app.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_says_where_it_stored_the_data_and_refuses_another_portal_naming_both() {
    let a = leadroute_sim::hubspot::spawn(sim_config(60, 6))
        .await
        .unwrap();
    let b = leadroute_sim::hubspot::spawn(leadroute_sim::hubspot::HubSpotSimConfig {
        portal_id: 99_123,
        ..sim_config(30, 3)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mirror.db");
    let run = |sim: &leadroute_sim::hubspot::HubSpotSim, args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_leadroute"));
        command
            .args(args)
            .current_dir(dir.path())
            .env_remove("LEADROUTE_CONFIG")
            .env("LEADROUTE_CRM_BASE_URL", sim.base_url())
            .env("LEADROUTE_CRM_TOKEN", sim.token())
            .env("LEADROUTE_STORE_URL", format!("sqlite://{}", db.display()));
        async move {
            tokio::task::spawn_blocking(move || command.output().expect("run leadroute"))
                .await
                .unwrap()
        }
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let out = run(&a, &["sync", "--once"]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let place = format!("stored in SQLite file {}: ", db.display());
    let line = stdout
        .lines()
        .find(|l| l.contains(&place))
        .unwrap_or_else(|| panic!("no {place:?} in:\n{stdout}"));
    assert!(
        line.ends_with(": 10 owners, 6 accounts, 60 contacts"),
        "{line}"
    );

    let out = run(&b, &["sync", "--once", "--full"]).await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    for part in [
        "portal 62515",
        "portal 99123",
        "fresh store",
        "leadroute sync --once --full --adopt-org",
    ] {
        assert!(stderr.contains(part), "{part:?} in:\n{stderr}");
    }
    let out = run(&b, &["sync", "--once", "--adopt-org"]).await;
    assert!(!out.status.success(), "--adopt-org needs --full");
    let out = run(&b, &["sync", "--once", "--full", "--adopt-org"]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains(": 10 owners, 3 accounts, 30 contacts"),
        "{stdout}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_one_salesforce_org_refuses_another_naming_both_org_ids() {
    use leadroute_sim::salesforce::SalesforceSimConfig;

    let store = crate::helpers::sqlite_store().await;
    let mut sims = Vec::new();
    let mut mirrors = Vec::new();
    for org_id in [None, Some("00D8d000000OthrEAA")] {
        let mut sim_config = SalesforceSimConfig {
            leads: 40,
            contacts: 30,
            accounts: 10,
            ..Default::default()
        };
        if let Some(org_id) = org_id {
            sim_config.org_id = org_id.to_owned();
        }
        let (client_id, client_secret, refresh_token) = (
            sim_config.client_id.clone(),
            sim_config.client_secret.clone(),
            sim_config.refresh_token.clone(),
        );
        let sim = leadroute_sim::salesforce::spawn(sim_config).await.unwrap();
        let text = format!(
            "[crm]\nkind = \"salesforce\"\nbase_url = \"{}\"\n[crm.oauth]\nclient_id = \"{client_id}\"\n",
            sim.base_url()
        );
        let config = leadroute::config::Config::from_toml(&text, "sf.toml", &|name| match name {
            "LEADROUTE_CRM_CLIENT_SECRET" => Some(client_secret.clone()),
            "LEADROUTE_CRM_REFRESH_TOKEN" => Some(refresh_token.clone()),
            _ => None,
        })
        .unwrap_or_else(|err| panic!("{err}"));
        let crm = std::sync::Arc::new(leadroute::app::salesforce(&config).unwrap());
        mirrors.push(leadroute::mirror::Mirror::new(crm, store.store.clone()));
        sims.push(sim);
    }
    mirrors[0].sync_once(false).await.expect("sync org A");
    let recorded = store
        .store
        .org_identity(&OrgId::default_for(CrmKind::Salesforce))
        .await
        .unwrap();
    assert_eq!(recorded.map(|r| r.id), Some(sims[0].org_id()));

    let err = mirrors[1]
        .sync_once(false)
        .await
        .expect_err("org B is refused");
    let message = err.to_string();
    for part in [
        format!("salesforce org {}", sims[0].org_id()),
        format!("is org {}", sims[1].org_id()),
        "--adopt-org".to_owned(),
    ] {
        assert!(message.contains(&part), "{part:?} in {message}");
    }
    for sim in sims {
        sim.shutdown().await;
    }
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_may_not_read_the_portal_id_still_syncs_and_records_no_portal() {
    let app = spawn_app(sim_config(50, 5), "").await;
    // Only the account-details call is a single-record read during a sync.
    app.sim.set_faults(FaultScript {
        seed: 1,
        rules: vec![FaultRule {
            families: vec![EndpointFamily::Read],
            fault: Fault::ServerError { status: 403 },
            trigger: Trigger::Always,
        }],
        expire_tokens: false,
    });
    let report = app.mirror().sync_once(false).await.expect("sync");
    assert!(report.complete());
    assert_eq!(
        app.sim.stats().calls_to("GET /account-info/v3/details"),
        1,
        "asked once, not retried"
    );
    let recorded = app
        .store
        .store
        .org_identity(&OrgId::default_for(CrmKind::Hubspot))
        .await
        .unwrap();
    assert_eq!(recorded, None);
    app.assert_mirror_matches().await;
    app.shutdown().await;
}
