//! Several orgs in one store (issue 11): a store written before orgs moves forward in
//! place, and orgs' rows stay apart.

use leadroute::domain::{OrgId, OrgRef, RecordId};
use leadroute::store::Store;
use leadroute_crm::{CrmKind, ObjectKind};

use crate::helpers::all_stores_at;

/// The last migration of the release before orgs (rows keyed by CRM kind).
const BEFORE_ORGS: u32 = 222;

/// Rows as the previous release wrote them: keyed `crm = 'hubspot'`.
const OLD_ROWS: &str = "
INSERT INTO owners (crm, object, id, kind, email, name, active, teams, raw, synced_at)
    VALUES ('hubspot', 'owner', '101', 'user', 'ann@example.com', 'Ann', (1 = 1), '[]', '{}', 1);
INSERT INTO accounts (crm, object, id, name, domain, extra_domains, updated_at, fields, raw, synced_at)
    VALUES ('hubspot', 'account', 'a1', 'Acme', 'acme.com', '[]', 1, '{}', '{}', 1);
INSERT INTO people (crm, object, id, email, owner_id, converted, updated_at, fields, raw, synced_at)
    VALUES ('hubspot', 'contact', '123', 'bo@acme.com', '101', (1 = 0), 1, '{}', '{}', 1);
INSERT INTO sync_cursors (crm, object, cursor, updated_at)
    VALUES ('hubspot', 'contact', 'c-42', 1);
INSERT INTO org_identity (crm, org_id, name, recorded_at) VALUES ('hubspot', '9001', NULL, 1);
INSERT INTO ledger_pools (crm, pool, picks) VALUES ('hubspot', 'emea', 7);
INSERT INTO webhook_inbox (crm, object, record_id, dedupe_key, received_at, status, attempts)
    VALUES ('hubspot', 'contact', '123', 'k1', 1, 'pending', 0);
INSERT INTO writer_runs (run_id, crm, kind, policy_version, status, total, created_at, updated_at)
    VALUES ('r1', 'hubspot', 'apply', 'v1', 'completed', 0, 1, 1);
INSERT INTO writer_exceptions (crm, object, record_id, kind, rule, reason, status, created_at)
    VALUES ('hubspot', 'contact', '123', 'no_eligible_rep', 'r', 'why', 'open', 1);
INSERT INTO schedule_runs (scope, job, last_run_at, last_outcome)
    VALUES ('hubspot', 'full_sync', 5, 'ok');
";

#[tokio::test]
async fn a_store_written_before_orgs_is_read_back_as_its_default_org_on_every_backend() {
    for test in all_stores_at(BEFORE_ORGS).await {
        let label = test.label;
        test.store.execute_script(OLD_ROWS).await.unwrap();
        test.store.close().await;
        // The new release opens it: migration 0300 renames the key columns in place.
        let store = Store::open(&test.url).await.unwrap();
        let org = OrgId::default_for(CrmKind::Hubspot);
        let snapshot = store
            .snapshot(&OrgRef::default_for(CrmKind::Hubspot))
            .await
            .unwrap();
        assert_eq!(snapshot.people.len(), 1, "{label}");
        assert_eq!(snapshot.accounts.len(), 1, "{label}");
        assert_eq!(snapshot.owners.len(), 1, "{label}");
        let person = store
            .person(&org, ObjectKind::Contact, &RecordId::new("123"))
            .await
            .unwrap()
            .expect("hubspot:contact:123 is still there");
        assert_eq!(
            person.owner_id.as_ref().map(|o| o.as_str()),
            Some("101"),
            "{label}"
        );
        assert!(
            store
                .cursor(&org, ObjectKind::Contact)
                .await
                .unwrap()
                .is_some(),
            "{label}: the cursor survives, so no full resync"
        );
        assert_eq!(
            store.org_identity(&org).await.unwrap().map(|o| o.id),
            Some("9001".to_owned()),
            "{label}"
        );
        assert_eq!(
            store.pending_hints(&org, 10).await.unwrap().len(),
            1,
            "{label}"
        );
        let runs = store.journal_runs(10).await.unwrap();
        assert_eq!(runs.len(), 1, "{label}");
        assert_eq!(runs[0].org, org, "{label}");
        let exceptions = store.exceptions(Some("open")).await.unwrap();
        assert_eq!(exceptions.len(), 1, "{label}");
        assert_eq!(exceptions[0].org, org, "{label}");
        assert!(
            store
                .schedule_last_run(&org, "full_sync")
                .await
                .unwrap()
                .is_some(),
            "{label}"
        );
        // Another org in the same store sees none of it.
        let other = OrgId::new("south").unwrap();
        let empty = store
            .snapshot(&OrgRef {
                name: other.clone(),
                kind: CrmKind::Hubspot,
            })
            .await
            .unwrap();
        assert!(
            empty.people.is_empty() && empty.owners.is_empty(),
            "{label}"
        );
        assert!(
            store
                .cursor(&other, ObjectKind::Contact)
                .await
                .unwrap()
                .is_none()
        );
        let ledger = store.load_ledger(&org).await.unwrap();
        let other_ledger = store.load_ledger(&other).await.unwrap();
        assert_ne!(
            format!("{ledger:?}"),
            format!("{other_ledger:?}"),
            "{label}"
        );
        store.close().await;
        test.cleanup().await;
    }
}
