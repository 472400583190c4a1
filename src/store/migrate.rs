//! Applies the embedded SQL migrations (see `build.rs`) to a store.
//!
//! We run migrations ourselves rather than through `sqlx::migrate!`: the Any driver
//! needs a different directory per backend, and this keeps the embedding a plain
//! `include_str!` list that picks up every module's files without a macro crate.
//! Each database records what it has applied in `leadroute_migrations`, with a checksum,
//! so an edited migration is reported instead of silently diverging.

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Backend, Store, StoreError};

/// One migration file, embedded at build time.
pub(super) struct EmbeddedMigration {
    pub(super) version: u32,
    pub(super) name: &'static str,
    pub(super) sql: &'static str,
}

mod embedded {
    use super::EmbeddedMigration;
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

pub(super) fn migrations(backend: Backend) -> &'static [EmbeddedMigration] {
    match backend {
        Backend::Sqlite => embedded::SQLITE,
        Backend::Postgres => embedded::POSTGRES,
    }
}

fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Brings the schema up to date in one transaction: a crash mid-way leaves the old
/// schema, and concurrent `open`s queue (SQLite write lock, PostgreSQL advisory lock).
pub(super) async fn run(store: &Store) -> Result<(), StoreError> {
    let backend = store.backend();
    let mut tx = store.begin_write().await?;
    if backend == Backend::Postgres {
        // Serialises migrations of concurrent processes on one database; released at
        // commit. The key is arbitrary but fixed ("leadrout" in ASCII).
        sqlx::query("SELECT pg_advisory_xact_lock(7810765710530753652)")
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("locking the schema for migration"))?;
    }
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS leadroute_migrations (
            version    BIGINT PRIMARY KEY,
            name       TEXT   NOT NULL,
            checksum   TEXT   NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )
    .execute(&mut *tx)
    .await
    .map_err(StoreError::query("creating the migrations table"))?;

    let applied = sqlx::query("SELECT version, checksum FROM leadroute_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::query("reading applied migrations"))?;
    let known = migrations(backend);
    let latest = known.iter().map(|m| m.version).max().unwrap_or(0);
    let mut done = std::collections::HashMap::new();
    for row in &applied {
        let version: i64 = row
            .try_get("version")
            .map_err(StoreError::query("reading applied migrations"))?;
        let sum: String = row
            .try_get("checksum")
            .map_err(StoreError::query("reading applied migrations"))?;
        let version = u32::try_from(version).map_err(|_| StoreError::Corrupt {
            what: "migration version",
            detail: version.to_string(),
        })?;
        if !known.iter().any(|m| m.version == version) {
            return Err(StoreError::NewerSchema {
                version,
                known: latest,
            });
        }
        done.insert(version, sum);
    }
    for migration in known {
        let sum = checksum(migration.sql);
        match done.get(&migration.version) {
            Some(applied) if *applied == sum => continue,
            Some(_) => {
                return Err(StoreError::MigrationChanged {
                    version: migration.version,
                    name: migration.name.to_owned(),
                });
            }
            None => {}
        }
        let failed = |source| StoreError::Migration {
            version: migration.version,
            name: migration.name.to_owned(),
            source,
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(migration.sql))
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        sqlx::query(
            "INSERT INTO leadroute_migrations (version, name, checksum, applied_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(i64::from(migration.version))
        .bind(migration.name)
        .bind(sum)
        .bind(super::to_ms(chrono::Utc::now()))
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    }
    tx.commit()
        .await
        .map_err(StoreError::query("committing migrations"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_migration_versions_in_owned_ranges() {
        let versions = |backend| {
            migrations(backend)
                .iter()
                .map(|m| (m.version, m.name))
                .collect::<Vec<_>>()
        };
        assert_eq!(versions(Backend::Sqlite), versions(Backend::Postgres));
        assert!(!versions(Backend::Sqlite).is_empty());
        for (version, name) in versions(Backend::Sqlite) {
            assert!(
                // core, ledger, journal: 1–299; leases: 310–319; the console (issue 13): 500–509.
                (1..=299).contains(&version)
                    || (310..=319).contains(&version)
                    || (500..=509).contains(&version),
                "migration {version:04}_{name} is outside the assigned ranges"
            );
        }
    }
}
