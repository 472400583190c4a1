//! The local SQL store. STAND-IN on the writer branch: the minimal `Store` API from
//! INTERFACES.md ("Core store") that the journal needs, so the writer can be built
//! and tested before the core branch lands. The core branch owns this file; on merge
//! keep the core's version and its `mod journal;` line.

mod journal;

pub(crate) use journal::reject_kind_str as journal_reject_kind;
pub use journal::{
    ExceptionRow, JournalEntry, JournalError, JournalOutcome, NewException, NewRun, RunCounts,
    RunRow, RunStatus,
};

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// Which SQL backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A failure opening the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {url}: check the [store] url")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("store migration failed")]
    Migrate(#[source] sqlx::Error),
}

/// The store: one `AnyPool` over SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens (creating if needed) the store and runs the migrations this branch owns.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let connect_url = match backend {
            Backend::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        // An in-memory SQLite database lives per connection: keep exactly one.
        let max = if url.contains(":memory:") { 1 } else { 4 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .connect(&connect_url)
            .await
            .map_err(|source| StoreError::Open {
                url: url.to_owned(),
                source,
            })?;
        let store = Store { pool, backend };
        let sql = match backend {
            Backend::Sqlite => include_str!("../../migrations/sqlite/0200_journal.sql"),
            Backend::Postgres => include_str!("../../migrations/postgres/0200_journal.sql"),
        };
        sqlx::raw_sql(sql)
            .execute(&store.pool)
            .await
            .map_err(StoreError::Migrate)?;
        Ok(store)
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }
}
