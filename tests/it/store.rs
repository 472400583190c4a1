//! The store story: one scenario run against every backend (SQLite always, PostgreSQL
//! when `LEADROUTE_TEST_PG_URL` is set), showing what the mirror keeps, ignores and
//! forgets.

use leadroute::domain::{OrgId, OrgRef};
use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use leadroute::store::Store;
use leadroute_crm::{
    AccountLink, AccountRecord, Change, CrmKind, Cursor, Hint, ObjectKind, OwnerId, OwnerKind,
    OwnerRecord, PersonRecord, Record, RecordId, Team,
};

use crate::helpers::all_stores;

const HS: CrmKind = CrmKind::Hubspot;

fn hs() -> OrgId {
    OrgId::default_for(HS)
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_767_225_600_000 + ms).unwrap()
}

fn owner(id: &str, active: bool) -> Change {
    Change::Upsert(Record::Owner(OwnerRecord {
        id: OwnerId::new(id),
        kind: OwnerKind::User,
        email: Some(format!("rep{id}@example.com")),
        name: format!("Rep {id}"),
        active,
        teams: vec![Team {
            id: "t1".into(),
            name: "EMEA".into(),
            primary: true,
        }],
        time_zone: Some("Europe/Berlin".into()),
        manager_id: None,
        user_id: Some(format!("9{id}")),
        updated_at: Some(at(0)),
    }))
}

fn account(id: &str, updated: i64) -> Change {
    Change::Upsert(Record::Account(AccountRecord {
        id: RecordId::new(id),
        name: Some(format!("Acme {id}")),
        domain: Some(format!("acme{id}.com")),
        website: None,
        extra_domains: vec![format!("acme{id}.io")],
        country: Some("DE".into()),
        state: None,
        parent_id: None,
        owner_id: Some(OwnerId::new("1")),
        employees: Some(250),
        industry: None,
        created_at: Some(at(0)),
        updated_at: at(updated),
        fields: BTreeMap::new(),
        raw: serde_json::json!({"id": id, "properties": {"name": format!("Acme {id}")}}),
    }))
}

fn contact(id: &str, updated: i64, owner: &str, links: Option<&[(&str, bool)]>) -> Change {
    Change::Upsert(Record::Person(PersonRecord {
        id: RecordId::new(id),
        object: ObjectKind::Contact,
        email: Some(format!("person{id}@acme1.com")),
        first_name: Some("Ana".into()),
        last_name: Some(format!("Person{id}")),
        company: None,
        website: None,
        country: Some("DE".into()),
        state: None,
        owner_id: Some(OwnerId::new(owner)),
        accounts: links.map(|links| {
            links
                .iter()
                .map(|(account, primary)| AccountLink {
                    account_id: RecordId::new(*account),
                    primary: *primary,
                })
                .collect()
        }),
        owner_assigned_at: None,
        converted: false,
        created_at: Some(at(0)),
        updated_at: at(updated),
        fields: BTreeMap::from([("lifecyclestage".to_owned(), "lead".to_owned())]),
        raw: serde_json::json!({"id": id, "properties": {"email": format!("person{id}@acme1.com")}}),
    }))
}

fn deleted(id: &str, when: i64, purge: bool) -> Change {
    Change::Deleted {
        object: ObjectKind::Contact,
        id: RecordId::new(id),
        at: Some(at(when)),
        purge,
    }
}

async fn person(store: &Store, id: &str) -> Option<PersonRecord> {
    store
        .person(&hs(), ObjectKind::Contact, &RecordId::new(id))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_store_keeps_the_newest_state_and_forgets_what_the_crm_deleted() {
    for test in all_stores().await {
        let label = test.label;
        story(&test.store)
            .await
            .unwrap_or_else(|err| panic!("{label}: {err:#}"));
        // Reopening runs migrations again (a no-op) and finds the data.
        let reopened = Store::open(&test.url).await.expect("reopen");
        let counts = reopened.counts(&hs()).await.unwrap();
        assert_eq!(counts.contacts, 1_202, "{label}: data survives reopening");
        reopened.close().await;
        test.cleanup().await;
    }
}

async fn story(store: &Store) -> anyhow::Result<()> {
    let label = store.backend();
    // An empty store has nothing and no cursor.
    assert!(
        store
            .snapshot(&OrgRef::default_for(HS))
            .await?
            .people
            .is_empty()
    );
    assert_eq!(store.cursor(&hs(), ObjectKind::Contact).await?, None);

    // A first page: owners (one archived), accounts, contacts with links.
    let stats = store
        .apply_changes(
            &hs(),
            ObjectKind::Owner,
            &[owner("1", true), owner("2", false)],
            Some(&Cursor("owners-1".into())),
        )
        .await?;
    assert_eq!(stats.upserted, 2);
    store
        .apply_changes(
            &hs(),
            ObjectKind::Account,
            &[account("a1", 10), account("a2", 10)],
            None,
        )
        .await?;
    let stats = store
        .apply_changes(
            &hs(),
            ObjectKind::Contact,
            &[
                contact("c1", 10, "1", Some(&[("a1", true), ("a2", false)])),
                contact("c2", 10, "2", Some(&[])),
                contact("c3", 10, "1", None),
                contact("c4", 10, "1", None),
            ],
            Some(&Cursor("contacts-1".into())),
        )
        .await?;
    assert_eq!(stats.upserted, 4, "{label}");
    assert_eq!(
        store.cursor(&hs(), ObjectKind::Contact).await?,
        Some(Cursor("contacts-1".into()))
    );

    let snapshot = store.snapshot(&OrgRef::default_for(HS)).await?;
    assert_eq!(
        snapshot.owners.len(),
        2,
        "archived owners stay in the snapshot"
    );
    let archived = snapshot
        .owners
        .iter()
        .find(|o| o.id.as_str() == "2")
        .unwrap();
    assert!(!archived.active);
    assert_eq!(archived.teams[0].name, "EMEA");
    assert_eq!(archived.time_zone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(snapshot.accounts.len(), 2);
    assert_eq!(
        snapshot.accounts[0].extra_domains,
        vec!["acmea1.io".to_owned()]
    );
    assert_eq!(snapshot.people.len(), 4);
    let c1 = snapshot
        .people
        .iter()
        .find(|p| p.id.as_str() == "c1")
        .unwrap();
    let links = c1.accounts.as_ref().unwrap();
    assert_eq!(links.len(), 2);
    assert!(
        links
            .iter()
            .any(|l| l.account_id.as_str() == "a1" && l.primary)
    );
    assert!(
        links
            .iter()
            .any(|l| l.account_id.as_str() == "a2" && !l.primary)
    );
    assert_eq!(c1.fields["lifecyclestage"], "lead");

    // The full record keeps the raw CRM payload.
    let full = person(store, "c1").await.unwrap();
    assert_eq!(full.raw["properties"]["email"], "personc1@acme1.com");
    assert_eq!(full.updated_at, at(10));

    // An older version (an overlap re-read, a late webhook refetch) changes nothing.
    let stats = store
        .apply_changes(
            &hs(),
            ObjectKind::Contact,
            &[contact("c1", 5, "2", Some(&[]))],
            None,
        )
        .await?;
    assert_eq!((stats.upserted, stats.stale), (0, 1));
    let c1 = person(store, "c1").await.unwrap();
    assert_eq!(c1.owner_id, Some(OwnerId::new("1")));
    assert_eq!(
        c1.accounts.unwrap().len(),
        2,
        "stale links are not applied either"
    );

    // A newer version wins; links given as None are left alone.
    store
        .apply_changes(
            &hs(),
            ObjectKind::Contact,
            &[contact("c1", 20, "2", None)],
            None,
        )
        .await?;
    let c1 = person(store, "c1").await.unwrap();
    assert_eq!(c1.owner_id, Some(OwnerId::new("2")));
    assert_eq!(c1.accounts.unwrap().len(), 2);

    // Repeats within one page: the newest copy wins whatever the order.
    store
        .apply_changes(
            &hs(),
            ObjectKind::Contact,
            &[contact("c4", 30, "2", None), contact("c4", 25, "1", None)],
            None,
        )
        .await?;
    assert_eq!(
        person(store, "c4").await.unwrap().owner_id,
        Some(OwnerId::new("2"))
    );

    // A deletion removes the record; a stale read cannot resurrect it; a restore
    // (updated after the deletion) brings it back.
    let stats = store
        .apply_changes(
            &hs(),
            ObjectKind::Contact,
            &[deleted("c2", 40, false)],
            None,
        )
        .await?;
    assert_eq!(stats.deleted, 1);
    assert!(person(store, "c2").await.is_none());
    let stone = store
        .tombstone(&hs(), ObjectKind::Contact, &RecordId::new("c2"))
        .await?
        .unwrap();
    assert_eq!(stone.deleted_at, at(40));
    store
        .apply_changes(
            &hs(),
            ObjectKind::Contact,
            &[contact("c2", 35, "2", None)],
            None,
        )
        .await?;
    assert!(
        person(store, "c2").await.is_none(),
        "stale read must not resurrect"
    );
    store
        .apply_changes(
            &hs(),
            ObjectKind::Contact,
            &[contact("c2", 50, "2", None)],
            None,
        )
        .await?;
    assert!(
        person(store, "c2").await.is_some(),
        "a restore brings it back"
    );
    assert!(
        store
            .tombstone(&hs(), ObjectKind::Contact, &RecordId::new("c2"))
            .await?
            .is_none()
    );
    // A deletion older than the stored row is a late delivery of an undone deletion.
    let stats = store
        .apply_changes(
            &hs(),
            ObjectKind::Contact,
            &[deleted("c2", 45, false)],
            None,
        )
        .await?;
    assert_eq!(stats.deleted, 0);
    assert!(person(store, "c2").await.is_some());

    // A merge removes the loser for good and records the survivor.
    let stats = store
        .apply_changes(
            &hs(),
            ObjectKind::Contact,
            &[
                Change::Merged {
                    object: ObjectKind::Contact,
                    loser: RecordId::new("c3"),
                    winner: RecordId::new("c4"),
                    at: Some(at(60)),
                },
                contact("c4", 60, "1", None),
            ],
            None,
        )
        .await?;
    assert_eq!((stats.merged, stats.upserted), (1, 1));
    assert!(person(store, "c3").await.is_none());
    let stone = store
        .tombstone(&hs(), ObjectKind::Contact, &RecordId::new("c3"))
        .await?
        .unwrap();
    assert_eq!(stone.merged_into, Some(RecordId::new("c4")));
    store
        .apply_changes(
            &hs(),
            ObjectKind::Contact,
            &[contact("c3", 99, "1", None)],
            None,
        )
        .await?;
    assert!(
        person(store, "c3").await.is_none(),
        "merged ids never come back"
    );

    // A GDPR deletion purges the personal data, whatever the timestamps say.
    let stats = store
        .apply_changes(&hs(), ObjectKind::Contact, &[deleted("c1", 1, true)], None)
        .await?;
    assert_eq!(stats.purged, 1);
    assert!(person(store, "c1").await.is_none());
    let snapshot = store.snapshot(&OrgRef::default_for(HS)).await?;
    assert!(
        snapshot
            .people
            .iter()
            .all(|p| p.email.as_deref() != Some("personc1@acme1.com"))
    );
    store
        .apply_changes(
            &hs(),
            ObjectKind::Contact,
            &[contact("c1", 999, "1", None)],
            None,
        )
        .await?;
    assert!(
        person(store, "c1").await.is_none(),
        "purged ids never come back"
    );

    // Deleting an account drops the links that point at it.
    store
        .apply_changes(
            &hs(),
            ObjectKind::Contact,
            &[contact("c4", 70, "1", Some(&[("a2", true)]))],
            None,
        )
        .await?;
    store
        .apply_changes(
            &hs(),
            ObjectKind::Account,
            &[Change::Deleted {
                object: ObjectKind::Account,
                id: RecordId::new("a2"),
                at: Some(at(70)),
                purge: false,
            }],
            None,
        )
        .await?;
    assert!(
        person(store, "c4")
            .await
            .unwrap()
            .accounts
            .unwrap()
            .is_empty()
    );

    // A big page goes through in chunks, with its links and its cursor.
    let page: Vec<Change> = (0..1_200)
        .map(|n| contact(&format!("bulk{n:05}"), 100, "1", Some(&[("a1", true)])))
        .collect();
    let stats = store
        .apply_changes(
            &hs(),
            ObjectKind::Contact,
            &page,
            Some(&Cursor("contacts-2".into())),
        )
        .await?;
    assert_eq!(stats.upserted, 1_200);
    let counts = store.counts(&hs()).await?;
    assert_eq!(counts.contacts, 1_202);
    assert_eq!(counts.links, 1_200);
    assert_eq!(
        store.cursor(&hs(), ObjectKind::Contact).await?,
        Some(Cursor("contacts-2".into()))
    );
    // Nothing of this CRM leaks into the other's snapshot.
    assert!(
        store
            .snapshot(&OrgRef::default_for(CrmKind::Salesforce))
            .await?
            .people
            .is_empty()
    );

    // Webhook inbox: duplicates (within and across deliveries) are stored once.
    let hint = |id: &str, key: &str| Hint {
        object: ObjectKind::Contact,
        id: RecordId::new(id),
        dedupe_key: key.to_owned(),
        occurred_at: Some(at(5)),
    };
    let fresh = store
        .enqueue_hints(
            &hs(),
            &[hint("c4", "k1"), hint("c4", "k1"), hint("c2", "k2")],
            at(6),
        )
        .await?;
    assert_eq!(fresh, 2);
    assert_eq!(
        store
            .enqueue_hints(&hs(), &[hint("c4", "k1")], at(7))
            .await?,
        0
    );
    let pending = store.pending_hints(&hs(), 10).await?;
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].id.as_str(), "c4");
    store
        .fail_hints(&[pending[1].seq], "refetch failed")
        .await?;
    store.finish_hints(&[pending[0].seq], at(8)).await?;
    let counts = store.inbox_counts(&hs()).await?;
    assert_eq!((counts.pending, counts.done), (1, 1));
    assert_eq!(store.pending_hints(&hs(), 10).await?[0].attempts, 1);
    assert_eq!(
        store
            .enqueue_hints(&hs(), &[hint("c4", "k1")], at(9))
            .await?,
        0
    );

    // Forgetting cursors makes the next sync a full one.
    store.reset_cursors(&hs(), None).await?;
    assert_eq!(store.cursor(&hs(), ObjectKind::Contact).await?, None);
    Ok(())
}

/// A full pass on every backend, at more rows than one statement holds: pages overwrite
/// newer rows and revive tombstoned ids, nothing is removed until the last page, a
/// record stored by a webhook refetch during the pass counts as seen, and the last
/// page removes (and tombstones) exactly the rows nobody saw.
#[tokio::test]
async fn a_full_pass_overwrites_revives_and_prunes_only_when_complete() {
    use leadroute::store::PageMode;

    for ts in all_stores().await {
        let (store, label) = (&ts.store, ts.label);
        let id = |n: usize| format!("c{n:04}");
        let old: Vec<Change> = (0..700)
            .map(|n| contact(&id(n), 1_000, "1", None))
            .collect();
        store
            .apply_changes(&hs(), ObjectKind::Contact, &old, None)
            .await
            .unwrap();
        store
            .apply_changes(
                &hs(),
                ObjectKind::Contact,
                &[deleted(&id(699), 2_000, false)],
                None,
            )
            .await
            .unwrap();

        let pass = store
            .begin_full_pass(&hs(), ObjectKind::Contact)
            .await
            .unwrap();
        assert_eq!(
            store.cursor(&hs(), ObjectKind::Contact).await.unwrap(),
            None,
            "{label}: a full pass starts from the CRM's first page"
        );
        // The CRM now lists c0000..c0399 (older stamps, another owner) and c0699 (live
        // again, stamped before its tombstone); the rest is gone.
        let listed: Vec<Change> = (0..400)
            .chain([699])
            .map(|n| contact(&id(n), 500, "2", None))
            .collect();
        let (first, rest) = listed.split_at(300);
        let mode = |last| PageMode::Full { pass, last };
        let stats = store
            .apply_page(
                &hs(),
                ObjectKind::Contact,
                first,
                Some(&Cursor("p1".into())),
                mode(false),
            )
            .await
            .unwrap();
        assert_eq!(
            (stats.upserted, stats.stale, stats.pruned),
            (300, 0, 0),
            "{label}"
        );
        assert_eq!(
            store.counts(&hs()).await.unwrap().contacts,
            699,
            "{label}: nothing removed before the pass completes"
        );
        // A webhook refetch during the pass: that record is live.
        store
            .apply_changes(
                &hs(),
                ObjectKind::Contact,
                &[contact(&id(650), 3_000, "3", None)],
                None,
            )
            .await
            .unwrap();
        let stats = store
            .apply_page(
                &hs(),
                ObjectKind::Contact,
                rest,
                Some(&Cursor("p2".into())),
                mode(true),
            )
            .await
            .unwrap();
        assert_eq!((stats.upserted, stats.pruned), (101, 698 - 400), "{label}");

        let counts = store.counts(&hs()).await.unwrap();
        assert_eq!(counts.contacts, 402, "{label}");
        let c0 = person(store, &id(0)).await.unwrap();
        assert_eq!(c0.owner_id, Some(OwnerId::new("2")), "{label}: overwritten");
        assert_eq!(
            c0.updated_at,
            at(500),
            "{label}: with the CRM's older stamp"
        );
        assert!(person(store, &id(699)).await.is_some(), "{label}: revived");
        assert!(
            person(store, &id(650)).await.is_some(),
            "{label}: seen by a refetch"
        );
        assert!(person(store, &id(500)).await.is_none(), "{label}: pruned");
        assert!(
            store
                .tombstone(&hs(), ObjectKind::Contact, &RecordId::new(id(500)))
                .await
                .unwrap()
                .is_some(),
            "{label}: a pruned record leaves a tombstone"
        );
        assert_eq!(
            store.full_pass(&hs(), ObjectKind::Contact).await.unwrap(),
            None,
            "{label}: the pass is complete"
        );
        // After the pass, the incremental rule is back: older never overwrites newer.
        let stats = store
            .apply_changes(
                &hs(),
                ObjectKind::Contact,
                &[contact(&id(0), 100, "4", None)],
                None,
            )
            .await
            .unwrap();
        assert_eq!(stats.stale, 1, "{label}");
        ts.cleanup().await;
    }
}

/// The sidecar's warm mirror (`reconcile::Warm`), patched with the changes the store
/// applies, holds exactly what a fresh snapshot of the store holds: newer wins, a stale
/// refetch and a stale deletion change nothing, a deleted record stays gone until a
/// newer version, links are kept when a record does not list them and dropped with
/// their account, and `owner_assigned_at` is stamped as the store stamps it.
#[tokio::test]
async fn a_warm_mirror_patched_with_stored_changes_equals_a_fresh_snapshot() {
    use leadroute::reconcile::{ApplyMode, Warm};
    for test in all_stores().await {
        let label = test.label;
        let store = &test.store;
        let first = vec![
            owner("1", true),
            owner("2", true),
            account("10", 0),
            account("11", 0),
            contact("100", 0, "1", Some(&[("10", true)])),
            contact("101", 0, "1", Some(&[("11", true)])),
            contact("102", 0, "2", None),
            contact("103", 0, "2", Some(&[("10", false), ("11", true)])),
        ];
        store
            .apply_changes(&hs(), ObjectKind::Contact, &first, None)
            .await
            .unwrap();
        let mut warm = Warm::from_snapshot(store.snapshot(&OrgRef::default_for(HS)).await.unwrap());
        let mut unowned = contact("102", 30, "2", None);
        if let Change::Upsert(Record::Person(p)) = &mut unowned {
            p.owner_id = None;
        }
        let merged = Change::Merged {
            object: ObjectKind::Contact,
            loser: RecordId::new("103"),
            winner: RecordId::new("100"),
            at: Some(at(40)),
        };
        let pages = [
            // The owner moves (stamped), a stale refetch, links not listed (kept).
            vec![
                contact("100", 10, "2", None),
                contact("101", -5, "2", None),
                contact("104", 10, "1", Some(&[("11", false)])),
            ],
            // The same owner again keeps the stamp; a deletion, then a stale version of it.
            vec![
                contact("100", 20, "2", Some(&[("11", true)])),
                deleted("101", 20, false),
                contact("101", 15, "1", None),
            ],
            // A deletion older than the record changes nothing; unowned clears the stamp.
            vec![deleted("104", 5, false), unowned],
            // A newer version brings a deleted record back; a merge; an account leaves.
            vec![
                contact("101", 50, "1", Some(&[("10", true)])),
                merged,
                Change::Deleted {
                    object: ObjectKind::Account,
                    id: RecordId::new("11"),
                    at: Some(at(60)),
                    purge: false,
                },
                owner("3", false),
            ],
        ];
        for (i, page) in pages.iter().enumerate() {
            store
                .apply_changes(&hs(), ObjectKind::Contact, page, None)
                .await
                .unwrap();
            warm.apply(page, ApplyMode::Incremental, at(100));
            let fresh = store.snapshot(&OrgRef::default_for(HS)).await.unwrap();
            let held = warm.to_snapshot();
            assert_eq!(held.people, fresh.people, "{label}: people after page {i}");
            assert_eq!(
                held.accounts, fresh.accounts,
                "{label}: accounts after page {i}"
            );
            assert_eq!(held.owners, fresh.owners, "{label}: owners after page {i}");
        }
        test.cleanup().await;
    }
}
