//! Shared test scaffolding: stores on each backend (a fresh SQLite file always, a fresh
//! PostgreSQL schema when `LEADROUTE_TEST_PG_URL` is set), simulators and a running app.

#![allow(dead_code)]

use leadroute::domain::OrgRef;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use leadroute::config::Config;
use leadroute::mirror::Mirror;
use leadroute::store::Store;
use leadroute_crm::CrmKind;
use leadroute_hubspot::HubSpot;
use leadroute_sim::hubspot::{HubSpotSim, HubSpotSimConfig, HubSpotState};

/// A store for one test, on one backend; call [`TestStore::cleanup`] at the end.
pub(crate) struct TestStore {
    pub(crate) store: Store,
    pub(crate) label: &'static str,
    pub(crate) url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestStore {
    /// Drops the PostgreSQL schema (SQLite files go with their temp dir).
    pub(crate) async fn cleanup(self) {
        self.store.close().await;
        if let Some((base, schema)) = self.pg {
            if let Ok(pool) = sqlx::AnyPool::connect(&base).await {
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&pool)
                .await;
                pool.close().await;
            }
        }
    }
}

/// A fresh SQLite store in a temp dir.
pub(crate) async fn sqlite_store() -> TestStore {
    sqlite_store_at(u32::MAX).await
}

/// A fresh SQLite store with the migrations up to `version` only (an older release's).
pub(crate) async fn sqlite_store_at(version: u32) -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("leadroute.db").display());
    let store = Store::open_up_to(&url, version)
        .await
        .expect("open SQLite store");
    TestStore {
        store,
        label: "sqlite",
        url,
        _dir: Some(dir),
        pg: None,
    }
}

/// A fresh PostgreSQL store in its own schema, or `None` (after saying why) when
/// `LEADROUTE_TEST_PG_URL` is unset.
pub(crate) async fn postgres_store() -> Option<TestStore> {
    postgres_store_at(u32::MAX).await
}

/// [`postgres_store`] with the migrations up to `version` only.
pub(crate) async fn postgres_store_at(version: u32) -> Option<TestStore> {
    let Ok(base) = std::env::var("LEADROUTE_TEST_PG_URL") else {
        eprintln!("LEADROUTE_TEST_PG_URL is unset: skipping the PostgreSQL run of this test");
        return None;
    };
    static N: AtomicU32 = AtomicU32::new(0);
    sqlx::any::install_default_drivers();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let schema = format!(
        "lr_test_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    );
    let pool = sqlx::AnyPool::connect(&base)
        .await
        .expect("LEADROUTE_TEST_PG_URL is set but PostgreSQL is unreachable");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&pool)
        .await
        .expect("create test schema");
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options[search_path]={schema}");
    let store = Store::open_up_to(&url, version)
        .await
        .expect("open PostgreSQL store");
    Some(TestStore {
        store,
        label: "postgres",
        url,
        _dir: None,
        pg: Some((base, schema)),
    })
}

/// [`all_stores`] with the migrations up to `version` only.
pub(crate) async fn all_stores_at(version: u32) -> Vec<TestStore> {
    let mut stores = vec![sqlite_store_at(version).await];
    stores.extend(postgres_store_at(version).await);
    stores
}

/// SQLite always, plus PostgreSQL when configured.
pub(crate) async fn all_stores() -> Vec<TestStore> {
    let mut stores = vec![sqlite_store().await];
    stores.extend(postgres_store().await);
    stores
}

/// Polls `check` until it returns `Some`, or panics with `what` after `secs` seconds.
pub(crate) async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// A simulator, a store, and the config pointing leadroute at them.
pub(crate) struct TestApp {
    pub(crate) sim: HubSpotSim,
    pub(crate) store: TestStore,
    pub(crate) config: Config,
}

/// A small org with no search-index lag unless the test asks for it.
pub(crate) fn sim_config(contacts: usize, companies: usize) -> HubSpotSimConfig {
    HubSpotSimConfig {
        contacts,
        companies,
        owners: 10,
        search_lag: std::time::Duration::ZERO,
        webhook_retry_base: std::time::Duration::from_millis(20),
        ..HubSpotSimConfig::default()
    }
}

/// Starts the HubSpot simulator on 127.0.0.1:0 and a fresh store (PostgreSQL when
/// `LEADROUTE_TEST_PG_URL` is set, else SQLite), and builds leadroute's config from
/// TOML plus `extra` lines, the way a user would.
pub(crate) async fn spawn_app(sim: HubSpotSimConfig, extra: &str) -> TestApp {
    let sim = leadroute_sim::hubspot::spawn(sim)
        .await
        .expect("simulator starts");
    let store = match postgres_store().await {
        Some(store) => store,
        None => sqlite_store().await,
    };
    let text = format!(
        "[crm]\nbase_url = \"{}\"\noverlap_secs = 2\n{extra}\n",
        sim.base_url()
    );
    let token = sim.token();
    let config = Config::from_toml(&text, "test.toml", &|name| {
        (name == "LEADROUTE_CRM_TOKEN").then(|| token.clone())
    })
    .unwrap_or_else(|err| panic!("{err}"));
    TestApp { sim, store, config }
}

impl TestApp {
    /// A new connector and mirror over the same store: what a restarted process gets.
    pub(crate) fn mirror(&self) -> Mirror<HubSpot> {
        let crm = leadroute::app::hubspot(&self.config).expect("connector from config");
        Mirror::new(Arc::new(crm), self.store.store.clone())
    }

    pub(crate) async fn shutdown(self) {
        self.sim.shutdown().await;
        self.store.cleanup().await;
    }

    /// Differences between the mirror and the simulator's live state (empty = equal).
    pub(crate) async fn mirror_diff(&self) -> Vec<String> {
        let snapshot = self
            .store
            .store
            .snapshot(&OrgRef::default_for(CrmKind::Hubspot))
            .await
            .expect("snapshot");
        diff(&snapshot, &self.sim.state())
    }

    pub(crate) async fn assert_mirror_matches(&self) {
        let diff = self.mirror_diff().await;
        assert!(
            diff.is_empty(),
            "mirror differs from the simulator in {} ways, first: {:#?}",
            diff.len(),
            &diff[..diff.len().min(10)]
        );
    }
}

fn prop(props: &BTreeMap<String, String>, name: &str) -> Option<String> {
    props.get(name).filter(|v| !v.is_empty()).cloned()
}

/// Compares the store's snapshot with the simulator's live records, owners and links.
pub(crate) fn diff(snapshot: &leadroute::domain::Snapshot, state: &HubSpotState) -> Vec<String> {
    let mut out = Vec::new();
    let contacts: BTreeMap<String, _> = state
        .contacts
        .iter()
        .filter(|c| !c.archived)
        .map(|c| (c.id.to_string(), c))
        .collect();
    let companies: BTreeMap<String, _> = state
        .companies
        .iter()
        .filter(|c| !c.archived)
        .map(|c| (c.id.to_string(), c))
        .collect();
    let people: BTreeMap<String, _> = snapshot
        .people
        .iter()
        .map(|p| (p.id.0.clone(), p))
        .collect();
    let accounts: BTreeMap<String, _> = snapshot
        .accounts
        .iter()
        .map(|a| (a.id.0.clone(), a))
        .collect();
    for id in people.keys().filter(|id| !contacts.contains_key(*id)) {
        out.push(format!(
            "contact {id} is in the mirror but not live in the CRM"
        ));
    }
    for id in accounts.keys().filter(|id| !companies.contains_key(*id)) {
        out.push(format!(
            "company {id} is in the mirror but not live in the CRM"
        ));
    }
    let mut links: BTreeMap<String, BTreeSet<(String, bool)>> = BTreeMap::new();
    for a in &state.associations {
        let (c, k) = (a.contact_id.to_string(), a.company_id.to_string());
        if contacts.contains_key(&c) && companies.contains_key(&k) {
            links.entry(c).or_default().insert((k, a.primary));
        }
    }
    for (id, sim) in &contacts {
        let Some(m) = people.get(id) else {
            out.push(format!("contact {id} is missing from the mirror"));
            continue;
        };
        if m.updated_at.timestamp_millis() != sim.updated_at_ms {
            out.push(format!(
                "contact {id}: mirror updated_at {} vs CRM {}",
                m.updated_at.timestamp_millis(),
                sim.updated_at_ms
            ));
        }
        let owner = m.owner_id.as_ref().map(|o| o.0.clone());
        if owner != prop(&sim.properties, "hubspot_owner_id") {
            out.push(format!(
                "contact {id}: owner {owner:?} vs CRM {:?}",
                prop(&sim.properties, "hubspot_owner_id")
            ));
        }
        let email = prop(&sim.properties, "email").map(|e| e.to_ascii_lowercase());
        if m.email != email {
            out.push(format!("contact {id}: email differs"));
        }
        let got: BTreeSet<(String, bool)> = m
            .accounts
            .iter()
            .flatten()
            .map(|l| (l.account_id.0.clone(), l.primary))
            .collect();
        let want = links.remove(id).unwrap_or_default();
        if got != want {
            out.push(format!("contact {id}: links {got:?} vs CRM {want:?}"));
        }
    }
    for (id, sim) in &companies {
        let Some(m) = accounts.get(id) else {
            out.push(format!("company {id} is missing from the mirror"));
            continue;
        };
        if m.updated_at.timestamp_millis() != sim.updated_at_ms {
            out.push(format!("company {id}: stale"));
        }
        let owner = m.owner_id.as_ref().map(|o| o.0.clone());
        if owner != prop(&sim.properties, "hubspot_owner_id") {
            out.push(format!("company {id}: owner differs"));
        }
    }
    if snapshot.owners.len() != state.owners.len() {
        out.push(format!(
            "owners: mirror has {}, CRM {} (incl. archived)",
            snapshot.owners.len(),
            state.owners.len()
        ));
    }
    for o in &state.owners {
        match snapshot.owners.iter().find(|m| m.id.0 == o.id.to_string()) {
            None => out.push(format!("owner {} is missing", o.id)),
            Some(m) if m.active == o.archived => {
                out.push(format!(
                    "owner {}: active {} vs archived {}",
                    o.id, m.active, o.archived
                ));
            }
            Some(_) => {}
        }
    }
    out
}
