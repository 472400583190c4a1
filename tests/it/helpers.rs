//! Shared test scaffolding: stores on each backend (a fresh SQLite file always, a fresh
//! PostgreSQL schema when `LEADROUTE_TEST_PG_URL` is set), simulators and a running app.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use leadroute::store::Store;

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
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("leadroute.db").display());
    let store = Store::open(&url).await.expect("open SQLite store");
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
    let store = Store::open(&url).await.expect("open PostgreSQL store");
    Some(TestStore {
        store,
        label: "postgres",
        url,
        _dir: None,
        pg: Some((base, schema)),
    })
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
