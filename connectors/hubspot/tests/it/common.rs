//! Shared helpers: start the HubSpot simulator on loopback, build a connector against
//! it, run syncs to completion into an in-memory mirror, and compare the mirror with
//! the simulator's ground truth.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use leadroute_crm::{
    AccountRecord, Change, Crm, Cursor, ObjectKind, OwnerRecord, PersonRecord, Record,
};
use leadroute_hubspot::{HubSpot, HubSpotAuth, HubSpotSettings};
use leadroute_sim::hubspot::{HubSpotSim, HubSpotSimConfig, HubSpotState, spawn};
use secrecy::SecretString;
use serde_json::{Value, json};

/// A small org with search visible at once (lag is set per test where it matters).
pub(crate) fn sim_config(contacts: usize, companies: usize) -> HubSpotSimConfig {
    HubSpotSimConfig {
        contacts,
        companies,
        owners: 8,
        search_lag: Duration::from_millis(0),
        webhook_retry_base: Duration::from_millis(10),
        ..HubSpotSimConfig::default()
    }
}

pub(crate) async fn start(config: HubSpotSimConfig) -> HubSpotSim {
    spawn(config).await.expect("simulator binds 127.0.0.1:0")
}

/// Private-app settings against `sim`, with short timeouts and overlap for tests.
pub(crate) fn settings(sim: &HubSpotSim) -> HubSpotSettings {
    let mut s = HubSpotSettings::new(
        sim.base_url(),
        HubSpotAuth::PrivateApp {
            token: SecretString::from(sim.token()),
        },
    );
    s.overlap = Duration::from_secs(2);
    s.request_timeout = Duration::from_secs(5);
    s.daily_reserve = 0;
    s
}

pub(crate) fn connector(settings: HubSpotSettings) -> HubSpot {
    HubSpot::new(settings).expect("settings are valid")
}

/// The outcome of paging one object until `done`.
pub(crate) struct SyncRun {
    pub(crate) cursor: Cursor,
    pub(crate) changes: Vec<Change>,
    pub(crate) calls: u32,
}

/// Pages `object` from `cursor` until the connector says it caught up.
pub(crate) async fn sync_until_done(
    hs: &HubSpot,
    object: ObjectKind,
    cursor: Option<Cursor>,
) -> SyncRun {
    let mut cursor = cursor;
    let mut changes = Vec::new();
    let mut calls = 0;
    let mut pages = 0usize;
    loop {
        let page = hs
            .changes(object, cursor.as_ref())
            .await
            .unwrap_or_else(|e| panic!("sync of {object} failed: {e}"));
        pages += 1;
        calls += page.calls;
        changes.extend(page.changes);
        cursor = Some(page.cursor);
        if page.done {
            break;
        }
        assert!(pages < 100_000, "sync of {object} never finished");
    }
    SyncRun {
        cursor: cursor.expect("at least one page"),
        changes,
        calls,
    }
}

/// What the store would hold: the newest version of each live record.
#[derive(Default, Debug)]
pub(crate) struct Mirror {
    pub(crate) owners: BTreeMap<String, OwnerRecord>,
    pub(crate) accounts: BTreeMap<String, AccountRecord>,
    pub(crate) contacts: BTreeMap<String, PersonRecord>,
    pub(crate) cursors: BTreeMap<ObjectKind, Cursor>,
}

impl Mirror {
    pub(crate) fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::Upsert(Record::Owner(o)) => {
                    self.owners.insert(o.id.0.clone(), o.clone());
                }
                Change::Upsert(Record::Account(a)) => {
                    let newer = self
                        .accounts
                        .get(&a.id.0)
                        .is_none_or(|old| old.updated_at <= a.updated_at);
                    if newer {
                        self.accounts.insert(a.id.0.clone(), a.clone());
                    }
                }
                Change::Upsert(Record::Person(p)) => {
                    let old = self.contacts.get(&p.id.0);
                    if old.is_some_and(|old| old.updated_at > p.updated_at) {
                        continue;
                    }
                    let mut p = p.clone();
                    if p.accounts.is_none() {
                        p.accounts = old.and_then(|o| o.accounts.clone());
                    }
                    self.contacts.insert(p.id.0.clone(), p);
                }
                Change::Upsert(Record::Activity(_)) => {}
                Change::Deleted { object, id, .. }
                | Change::Merged {
                    object, loser: id, ..
                } => match object {
                    ObjectKind::Account => {
                        self.accounts.remove(&id.0);
                    }
                    ObjectKind::Contact => {
                        self.contacts.remove(&id.0);
                    }
                    _ => {}
                },
            }
        }
    }

    /// Full sync of every object, as `leadroute sync --full` would.
    pub(crate) async fn full(hs: &HubSpot) -> (Mirror, u32) {
        let mut mirror = Mirror::default();
        let mut calls = 0;
        for object in hs.objects() {
            let run = sync_until_done(hs, *object, None).await;
            calls += run.calls;
            mirror.apply(&run.changes);
            mirror.cursors.insert(*object, run.cursor);
        }
        (mirror, calls)
    }

    /// One incremental pass over every object from the stored cursors.
    pub(crate) async fn incremental(&mut self, hs: &HubSpot) -> Vec<SyncRun> {
        let mut runs = Vec::new();
        for object in hs.objects() {
            let run = sync_until_done(hs, *object, self.cursors.get(object).cloned()).await;
            self.apply(&run.changes);
            self.cursors.insert(*object, run.cursor.clone());
            runs.push(run);
        }
        runs
    }
}

fn prop(props: &BTreeMap<String, String>, name: &str) -> Option<String> {
    props.get(name).filter(|v| !v.is_empty()).cloned()
}

/// Asserts the mirror holds exactly the simulator's live records, owners and links.
pub(crate) fn assert_mirror_matches(mirror: &Mirror, state: &HubSpotState) {
    let live_contacts: BTreeMap<String, _> = state
        .contacts
        .iter()
        .filter(|c| !c.archived)
        .map(|c| (c.id.to_string(), c))
        .collect();
    let live_companies: BTreeMap<String, _> = state
        .companies
        .iter()
        .filter(|c| !c.archived)
        .map(|c| (c.id.to_string(), c))
        .collect();
    let mirrored: BTreeSet<&String> = mirror.contacts.keys().collect();
    let expected: BTreeSet<&String> = live_contacts.keys().collect();
    assert_eq!(
        mirrored.symmetric_difference(&expected).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "contacts differ (mirror {} vs sim {})",
        mirrored.len(),
        expected.len()
    );
    let mirrored: BTreeSet<&String> = mirror.accounts.keys().collect();
    let expected: BTreeSet<&String> = live_companies.keys().collect();
    assert_eq!(
        mirrored.symmetric_difference(&expected).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "companies differ"
    );
    let mut links: BTreeMap<String, BTreeSet<(String, bool)>> = BTreeMap::new();
    for a in &state.associations {
        let (c, k) = (a.contact_id.to_string(), a.company_id.to_string());
        if live_contacts.contains_key(&c) && live_companies.contains_key(&k) {
            links.entry(c).or_default().insert((k, a.primary));
        }
    }
    for (id, sim) in &live_contacts {
        let m = &mirror.contacts[id];
        assert_eq!(
            m.updated_at.timestamp_millis(),
            sim.updated_at_ms,
            "contact {id} is stale"
        );
        assert_eq!(
            m.owner_id.as_ref().map(|o| o.0.clone()),
            prop(&sim.properties, "hubspot_owner_id"),
            "contact {id} owner"
        );
        assert_eq!(
            m.email,
            prop(&sim.properties, "email").map(|e| e.to_ascii_lowercase()),
            "contact {id} email"
        );
        let got: BTreeSet<(String, bool)> = m
            .accounts
            .as_ref()
            .unwrap_or_else(|| panic!("contact {id} has unknown links"))
            .iter()
            // The store hides links to archived companies; so does this comparison.
            .filter(|l| live_companies.contains_key(&l.account_id.0))
            .map(|l| (l.account_id.0.clone(), l.primary))
            .collect();
        assert_eq!(
            got,
            links.remove(id).unwrap_or_default(),
            "contact {id} links"
        );
    }
    for (id, sim) in &live_companies {
        let m = &mirror.accounts[id];
        assert_eq!(
            m.updated_at.timestamp_millis(),
            sim.updated_at_ms,
            "company {id} is stale"
        );
        assert_eq!(
            m.owner_id.as_ref().map(|o| o.0.clone()),
            prop(&sim.properties, "hubspot_owner_id"),
            "company {id} owner"
        );
    }
    assert_eq!(
        mirror.owners.len(),
        state.owners.len(),
        "owners incl. archived"
    );
    for o in &state.owners {
        let m = &mirror.owners[&o.id.to_string()];
        assert_eq!(m.active, !o.archived, "owner {} active flag", o.id);
    }
}

/// Edits through the public API, the way another integration (or a person) would.
pub(crate) struct Edits {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Edits {
    pub(crate) fn new(sim: &HubSpotSim) -> Edits {
        Edits {
            http: reqwest::Client::new(),
            base: sim.base_url(),
            token: sim.token(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        for _ in 0..50 {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(&self.token);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let resp = req.send().await.expect("sim answers");
            let status = resp.status();
            if status.as_u16() == 429 || status.is_server_error() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            assert!(status.is_success(), "{method} {path} failed: {status}");
            return resp.json().await.unwrap_or(Value::Null);
        }
        panic!("{method} {path} kept failing");
    }

    pub(crate) async fn set(&self, object: &str, id: u64, properties: Value) {
        self.send(
            reqwest::Method::PATCH,
            &format!("/crm/v3/objects/{object}/{id}"),
            Some(json!({ "properties": properties })),
        )
        .await;
    }

    pub(crate) async fn batch_set(&self, object: &str, ids: &[u64], properties: Value) {
        let inputs: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id.to_string(), "properties": properties}))
            .collect();
        self.send(
            reqwest::Method::POST,
            &format!("/crm/v3/objects/{object}/batch/update"),
            Some(json!({ "inputs": inputs })),
        )
        .await;
    }

    pub(crate) async fn archive(&self, object: &str, id: u64) {
        self.send(
            reqwest::Method::DELETE,
            &format!("/crm/v3/objects/{object}/{id}"),
            None,
        )
        .await;
    }

    /// Merges `b` into `a`; returns the new survivor id.
    pub(crate) async fn merge(&self, object: &str, a: u64, b: u64) -> u64 {
        let v = self
            .send(
                reqwest::Method::POST,
                &format!("/crm/v3/objects/{object}/merge"),
                Some(json!({"primaryObjectId": a.to_string(), "objectIdToMerge": b.to_string()})),
            )
            .await;
        v["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("merge returns the survivor")
    }

    /// Makes `company` the primary company of `contact`.
    pub(crate) async fn set_primary(&self, contact: u64, company: u64) {
        self.send(
            reqwest::Method::PUT,
            &format!("/crm/v4/objects/contacts/{contact}/associations/companies/{company}"),
            Some(json!([{"associationCategory":"HUBSPOT_DEFINED","associationTypeId":1}])),
        )
        .await;
    }
}

/// Live ids of one table.
pub(crate) fn live_ids(records: &[leadroute_sim::hubspot::SimRecord]) -> Vec<u64> {
    records
        .iter()
        .filter(|r| !r.archived)
        .map(|r| r.id)
        .collect()
}

/// Active owner ids.
pub(crate) fn active_owner_ids(state: &HubSpotState) -> Vec<u64> {
    state
        .owners
        .iter()
        .filter(|o| !o.archived)
        .map(|o| o.id)
        .collect()
}

/// Sleeps until a stamp `at_ms` (epoch ms) is in the past, so search can see it.
pub(crate) async fn wait_until_searchable(at_ms: i64) {
    let now = chrono::Utc::now().timestamp_millis();
    if at_ms >= now {
        tokio::time::sleep(Duration::from_millis((at_ms - now) as u64 + 20)).await;
    }
}
