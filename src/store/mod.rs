//! The local SQL store: one `Store` over `sqlx::AnyPool`, SQLite by default and
//! PostgreSQL when the URL says so, with one SQL dialect for both.
//!
//! Conventions every module's queries follow (so one query text runs on both backends):
//! - placeholders are `$1, $2, …` (sqlx binds `$N` on SQLite too);
//! - timestamps are `BIGINT` epoch milliseconds, JSON is `TEXT`;
//! - booleans are `BOOLEAN` on PostgreSQL but `INTEGER` on SQLite, because sqlx's Any
//!   driver refuses to read SQLite columns declared `BOOLEAN`. Bind Rust `bool`s as
//!   usual and read them back with [`get_bool`];
//! - upserts use `INSERT … ON CONFLICT (…) DO UPDATE`;
//! - query text built at run time goes through `sqlx::AssertSqlSafe` and must only ever
//!   interpolate placeholders and table names chosen in code, never values.
//!
//! Areas add their own `impl Store` blocks in their own files here (`mirror_rows.rs`,
//! `org.rs`, `inbox.rs`, `ledger.rs`, `journal.rs`, `lease.rs`, `history.rs`) and their
//! own migrations under `migrations/<backend>/NNNN_name.sql` (core 0001–0099, ledger
//! 0100–0199, journal 0200–0299). `build.rs` embeds every migration file; `Store::open` applies the ones a
//! database lacks.

mod activities;
mod analytics;
mod console;
mod history;
mod inbox;
mod journal;
mod lease;
mod leases;
mod ledger;
mod migrate;
mod mirror_rows;
mod org;
mod schedule;
pub mod sla;

pub use activities::{ActivityChanges, ActivityCursor};
pub use analytics::RosterMember;
pub use console::{AuditRow, DayStats, PersonHit, RuleCount};
pub use inbox::{DONE_RETENTION, InboxCounts, InboxItem, MAX_ATTEMPTS};
pub(crate) use journal::reject_kind_str as journal_reject_kind;
pub use journal::{
    BatchIntent, ExceptionRow, JournalEntry, JournalError, JournalOutcome, JournalStep,
    NewException, NewRun, RunCounts, RunRow, RunStatus,
};
pub use lease::{LeaseAttempt, RunLease};
pub use leases::{Lease, LeaseGrab};
pub use mirror_rows::{ApplyStats, FullPass, MirrorCounts, PageMode, Tombstone, TombstoneReason};
pub use org::RecordedOrg;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row, Transaction};

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a store operation failed. Messages never contain SQL values or passwords.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "store URL {url:?} is not understood; use sqlite://PATH, a file path, or postgres://USER@HOST/DB"
    )]
    BadUrl { url: String },
    #[error("cannot create directory {} for the SQLite store; check permissions or set store.url", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the SQLite store {} is in a directory that does not exist ({}); create it (mkdir -p {}) or fix store.url",
        path.display(), dir.display(), dir.display()
    )]
    MissingDir { path: PathBuf, dir: PathBuf },
    #[error(
        "the SQLite store {} is read-only{}; make it writable (chmod u+w) or point store.url at a writable file",
        path.display(), if *dir { " (its directory cannot be written, and SQLite needs to write its journal there)" } else { "" }
    )]
    ReadOnly {
        path: PathBuf,
        /// The directory, not the file, is what cannot be written.
        dir: bool,
        #[source]
        source: Option<std::io::Error>,
    },
    #[error(
        "cannot reach the PostgreSQL store at {url}: {reason}; check store.url and that the database is running"
    )]
    Unreachable { url: String, reason: String },
    #[error(
        "cannot open the {backend} store at {url}; check store.url and that the database is running"
    )]
    Connect {
        backend: Backend,
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("store migration {version:04} ({name}) failed")]
    Migration {
        version: u32,
        name: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "store migration {version:04} ({name}) changed after it was applied; restore the file and put the change in a new migration"
    )]
    MigrationChanged { version: u32, name: String },
    #[error(
        "the store was migrated by a newer leadroute (it has migration {version:04}, this build knows up to {known:04}); upgrade leadroute"
    )]
    NewerSchema { version: u32, known: u32 },
    #[error("store query failed while {context}")]
    Query {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("stored {what} is unreadable: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

impl StoreError {
    /// Wraps a sqlx error with what we were doing; used as `.map_err(StoreError::query("…"))`.
    pub(crate) fn query(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Query { context, source }
    }
}

/// The store: cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// A parsed store location.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    SqliteMemory,
    SqliteFile(PathBuf),
    Postgres(String),
}

impl FromStr for Location {
    type Err = StoreError;
    fn from_str(url: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::BadUrl {
            url: redact_url(url),
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Location::Postgres(url.to_owned()));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            // Query parameters (`?mode=rwc`) are ours to set; drop any the user wrote.
            let path = path.split('?').next().unwrap_or_default();
            if path == ":memory:" || path.is_empty() && rest.starts_with(":memory:") {
                return Ok(Location::SqliteMemory);
            }
            if path.is_empty() {
                return Err(bad());
            }
            return Ok(Location::SqliteFile(PathBuf::from(path)));
        }
        if url.contains("://") || url.is_empty() {
            return Err(bad());
        }
        Ok(Location::SqliteFile(PathBuf::from(url)))
    }
}

/// Before opening a SQLite file: its directory must exist (only the default
/// `.leadroute/` is created) and the file and directory must be writable, so a bad
/// path fails at once with the fix instead of a pool timeout.
fn check_sqlite_path(path: &Path) -> Result<(), StoreError> {
    let dir = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir,
        None => Path::new("."),
    };
    if !dir.is_dir() {
        if path == default_sqlite_path() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        } else {
            return Err(StoreError::MissingDir {
                path: path.to_owned(),
                dir: dir.to_owned(),
            });
        }
    }
    let read_only = |dir: bool, source: Option<std::io::Error>| StoreError::ReadOnly {
        path: path.to_owned(),
        dir,
        source,
    };
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().readonly() {
            return Err(read_only(false, None));
        }
        if let Err(err) = std::fs::OpenOptions::new().append(true).open(path)
            && matches!(
                err.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            )
        {
            return Err(read_only(false, Some(err)));
        }
    }
    if std::fs::metadata(dir).is_ok_and(|m| m.permissions().readonly()) {
        return Err(read_only(true, None));
    }
    Ok(())
}

/// A PostgreSQL server that refuses connections (or has no address) fails at once,
/// instead of after the pool's 30 s of silent retries. Unix-socket URLs are left to
/// the driver.
async fn reachable(url: &str) -> Result<(), StoreError> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Ok(());
    };
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Ok(());
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed.port().unwrap_or(5432);
    let unreachable = |reason: String| StoreError::Unreachable {
        url: redact_url(url),
        reason,
    };
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(unreachable(err.to_string())),
        Err(_) => Err(unreachable("no answer within 5 s".to_owned())),
    }
}

/// Checks that `url` names a store this build can open, without opening it.
pub fn check_url(url: &str) -> Result<(), StoreError> {
    url.parse::<Location>().map(|_| ())
}

/// Where a store URL keeps the data, for people and without secrets: `SQLite file
/// /abs/path/leadroute.db`, `SQLite in memory`, or `PostgreSQL postgres://user@host/db`
/// (no password, no query parameters, which may carry one).
pub fn describe_url(url: &str) -> String {
    match url.parse::<Location>() {
        Ok(Location::SqliteMemory) => "SQLite in memory".to_owned(),
        Ok(Location::SqliteFile(path)) => {
            let path = std::path::absolute(&path).unwrap_or(path);
            format!("SQLite file {}", path.display())
        }
        Ok(Location::Postgres(url)) => match url::Url::parse(&url) {
            Ok(mut parsed) => {
                // Clearing these only fails for URLs that cannot have them.
                let _ = parsed.set_password(None);
                parsed.set_query(None);
                parsed.set_fragment(None);
                format!("PostgreSQL {parsed}")
            }
            Err(_) => "PostgreSQL (unparsable URL)".to_owned(),
        },
        Err(_) => redact_url(url),
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password only fails for URLs that cannot have one.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

impl Store {
    /// Opens (creating if needed) the store at `url` and brings its schema up to date.
    ///
    /// `url` is `sqlite://PATH`, `sqlite::memory:`, a bare file path, or
    /// `postgres://…`. SQLite files get WAL journaling and a 30 s busy timeout so a
    /// second process (a `sync` beside a `plan`) waits instead of failing.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_migrated(url, u32::MAX).await
    }

    /// Opens the store at `url` with the migrations up to `version` only: the schema an
    /// older release left, for tests that move such a store forward.
    #[doc(hidden)]
    pub async fn open_up_to(url: &str, version: u32) -> Result<Store, StoreError> {
        Store::open_migrated(url, version).await
    }

    /// Runs one SQL script as it stands (tests writing rows the way an older release did).
    #[doc(hidden)]
    pub async fn execute_script(&self, sql: &'static str) -> Result<(), StoreError> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("running a script"))?;
        Ok(())
    }

    async fn open_migrated(url: &str, up_to: u32) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let location: Location = url.parse()?;
        let (backend, connect_url, options) = match &location {
            Location::Postgres(url) => (
                Backend::Postgres,
                url.clone(),
                AnyPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(30)),
            ),
            // An in-memory database lives as long as its one connection: keep exactly
            // one, forever.
            Location::SqliteMemory => (
                Backend::Sqlite,
                "sqlite::memory:".to_owned(),
                AnyPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None),
            ),
            Location::SqliteFile(path) => {
                check_sqlite_path(path)?;
                (
                    Backend::Sqlite,
                    format!("sqlite://{}?mode=rwc", path.display()),
                    AnyPoolOptions::new()
                        .max_connections(4)
                        .acquire_timeout(Duration::from_secs(60)),
                )
            }
        };
        let options = if backend == Backend::Sqlite {
            options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // NORMAL is durable across application crashes in WAL mode (only an OS
                    // crash can lose the last commits), and much faster than FULL.
                    sqlx::raw_sql("PRAGMA busy_timeout = 30000; PRAGMA synchronous = NORMAL;")
                        .execute(conn)
                        .await?;
                    Ok(())
                })
            })
        } else {
            options
        };
        let connect_error = |source| StoreError::Connect {
            backend,
            url: redact_url(url),
            source,
        };
        if let Location::Postgres(pg) = &location {
            reachable(pg).await?;
        }
        let pool = options.connect(&connect_url).await.map_err(connect_error)?;
        if matches!(location, Location::SqliteFile(_)) {
            // WAL lets readers (plan, explain) run while the mirror writes. The mode is
            // stored in the file, so setting it once per open is enough.
            sqlx::raw_sql("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .map_err(connect_error)?;
        }
        let store = Store { pool, backend };
        migrate::run(&store, up_to).await?;
        Ok(store)
    }

    /// The pool, for other modules' `impl Store` blocks.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so two writers queue on the busy timeout instead of one
    /// failing when it upgrades a read lock.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        };
        tx.map_err(StoreError::query("beginning a write transaction"))
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Reads a boolean column on either backend (see the module docs for why).
pub(crate) fn get_bool(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    match row.try_get::<bool, _>(column) {
        Ok(value) => Ok(value),
        Err(_) => row.try_get::<i64, _>(column).map(|value| value != 0),
    }
}

/// Epoch milliseconds, the store's timestamp format.
pub(crate) fn to_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    // Out-of-range values cannot come from `to_ms`; clamp rather than fail a snapshot.
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Bind parameters per statement at most. SQLite finds a numbered parameter (`$N`) by
/// a linear scan of the statement's parameter list (`sqlite3_bind_parameter_name`,
/// which sqlx calls for every parameter it binds), so binding one statement costs
/// O(parameters²): journaling 20,000 planned changes took 4.6 s in 500-row statements
/// (7,000 parameters each) and 0.28 s in 16-row ones (release build). PostgreSQL does
/// not mind either way; a few hundred parameters keep both backends fast.
pub(crate) const MAX_PARAMS: usize = 256;

/// Rows per multi-row statement for rows of `columns` bound values.
pub(crate) const fn rows_per_statement(columns: usize) -> usize {
    let rows = MAX_PARAMS / columns;
    if rows == 0 { 1 } else { rows }
}

/// `($1, $2, $3), ($4, $5, $6)` for `rows` rows of `columns` placeholders, starting at
/// `$first`.
pub(crate) fn placeholders(rows: usize, columns: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 6);
    let mut n = first;
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for column in 0..columns {
            if column > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&n.to_string());
            n += 1;
        }
        out.push(')');
    }
    out
}

/// `$first, $first+1, …` for an `IN (…)` list of `count` values.
pub(crate) fn in_list(count: usize, first: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The default SQLite file when no store URL is configured.
pub fn default_sqlite_path() -> &'static Path {
    Path::new(".leadroute/leadroute.db")
}

/// Stores for unit tests on every backend: SQLite in memory always, PostgreSQL too when
/// `LEADROUTE_TEST_PG_URL` is set (in a schema of its own; call `drop` at the end).
#[cfg(test)]
pub(crate) mod test_stores {
    use super::Store;

    pub(crate) struct TestStore {
        pub(crate) store: Store,
        pg: Option<(String, String)>,
    }

    impl TestStore {
        pub(crate) fn label(&self) -> &'static str {
            self.store.backend().as_str()
        }

        pub(crate) async fn drop(self) {
            self.store.close().await;
            if let Some((base, schema)) = self.pg {
                let pool = sqlx::AnyPool::connect(&base).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&pool)
                .await
                .unwrap();
                pool.close().await;
            }
        }
    }

    pub(crate) async fn all() -> Vec<TestStore> {
        let mut out = vec![TestStore {
            store: Store::open("sqlite::memory:").await.unwrap(),
            pg: None,
        }];
        let Ok(base) = std::env::var("LEADROUTE_TEST_PG_URL") else {
            eprintln!("LEADROUTE_TEST_PG_URL is unset: skipping the PostgreSQL run of this test");
            return out;
        };
        sqlx::any::install_default_drivers();
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let schema = format!(
            "lr_unit_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            chrono::Utc::now().timestamp_subsec_nanos()
        );
        let pool = sqlx::AnyPool::connect(&base).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options[search_path]={schema}");
        out.push(TestStore {
            store: Store::open(&url).await.unwrap(),
            pg: Some((base, schema)),
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_timestamp_reader_round_trips_and_clamps_what_to_ms_never_writes() {
        let at = Utc.with_ymd_and_hms(2026, 12, 8, 4, 0, 0).single().unwrap()
            + chrono::Duration::milliseconds(123);
        assert_eq!(from_ms(to_ms(at)), at);
        // Out of chrono's range (a corrupted row): the earliest time, never a panic,
        // the same in every table (the journal once fell back to 1970 instead).
        assert_eq!(from_ms(i64::MAX), DateTime::<Utc>::MIN_UTC);
        assert_eq!(from_ms(i64::MIN), DateTime::<Utc>::MIN_UTC);
    }

    #[test]
    fn store_urls_pick_the_backend_and_keep_passwords_out_of_errors() {
        assert_eq!(
            "sqlite::memory:".parse::<Location>().unwrap(),
            Location::SqliteMemory
        );
        assert_eq!(
            "sqlite://data/x.db?mode=rwc".parse::<Location>().unwrap(),
            Location::SqliteFile(PathBuf::from("data/x.db"))
        );
        assert_eq!(
            "sqlite:x.db".parse::<Location>().unwrap(),
            Location::SqliteFile(PathBuf::from("x.db"))
        );
        assert_eq!(
            ".leadroute/leadroute.db".parse::<Location>().unwrap(),
            Location::SqliteFile(PathBuf::from(".leadroute/leadroute.db"))
        );
        assert!(matches!(
            "postgresql://u@h/db".parse::<Location>().unwrap(),
            Location::Postgres(_)
        ));
        let err = "mysql://root:hunter2@db/x".parse::<Location>().unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn a_store_is_described_by_where_it_keeps_data_without_secrets() {
        assert_eq!(describe_url("sqlite::memory:"), "SQLite in memory");
        let file = describe_url("sqlite://data/x.db");
        assert!(file.starts_with("SQLite file /"), "{file}");
        assert!(file.ends_with("data/x.db"), "{file}");
        let pg = describe_url(
            "postgres://lr:hunter2@db:5432/leadroute?password=hunter3&sslmode=require",
        );
        assert_eq!(pg, "PostgreSQL postgres://lr@db:5432/leadroute");
    }

    #[test]
    fn placeholder_lists_number_consecutively() {
        assert_eq!(placeholders(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(in_list(3, 4), "$4, $5, $6");
    }
}
