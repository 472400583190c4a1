//! Named leases (`migrations/*/0221_leases.sql`): at most one process drives a named
//! thing (an org's pipeline, `org:<name>`) at a time, and every change of holder bumps
//! the lease's epoch, the fencing token a holder's writes carry.
//!
//! Each operation is one statement, so it is atomic on both backends, and expiry is
//! judged by the DATABASE's clock (`NOW` below), never the caller's: processes on hosts
//! whose clocks disagree still agree on whether a lease has lapsed. A TTL is the only
//! time a caller passes.
//!
//! - `lease_acquire` takes a free, lapsed or already-own lease (compare-and-set); a new
//!   holder gets `epoch + 1`, the same holder keeps its epoch and extends.
//! - `lease_renew` extends only while the caller still holds that epoch.
//! - `lease_release` frees it only if the caller still holds that epoch.
//! - `lease_is_current` is the fence: a deposed holder (lapsed, or another epoch) is
//!   told so before it writes.

use std::time::Duration;

use sqlx::Row;

use super::{Backend, Store, StoreError, from_ms};
use chrono::{DateTime, Utc};

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    /// `None` when released.
    pub holder: Option<String>,
    pub epoch: i64,
    pub expires_at: Option<DateTime<Utc>>,
    pub acquired_at: Option<DateTime<Utc>>,
}

/// What an attempt to take a lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseGrab {
    /// The caller holds it now, with this epoch, until this instant (database clock).
    Held {
        epoch: i64,
        expires_at: DateTime<Utc>,
    },
    /// Someone else holds a live lease.
    Taken(Lease),
}

/// The database's clock in epoch milliseconds, as an SQL expression.
fn now_ms(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS BIGINT)",
        Backend::Postgres => "CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT)",
    }
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2)
}

fn opt_time(row: &sqlx::any::AnyRow, col: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(from_ms))
}

impl Store {
    /// Takes lease `name` for `holder` for `ttl` if it is free, lapsed, or already
    /// `holder`'s (then it is extended, same epoch). Creates the lease on first use.
    pub async fn lease_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<LeaseGrab, StoreError> {
        sqlx::query(
            "INSERT INTO leases (name, epoch) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name.to_owned())
        .execute(self.pool())
        .await
        .map_err(StoreError::query("creating a lease"))?;
        let now = now_ms(self.backend());
        let sql = format!(
            "UPDATE leases SET \
               epoch = CASE WHEN holder = $2 THEN epoch ELSE epoch + 1 END, \
               acquired_at = CASE WHEN holder = $2 THEN acquired_at ELSE {now} END, \
               holder = $2, expires_at = {now} + $3, renewed_at = {now} \
             WHERE name = $1 AND (holder IS NULL OR expires_at IS NULL \
               OR expires_at <= {now} OR holder = $2) \
             RETURNING epoch, expires_at"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name.to_owned())
            .bind(holder.to_owned())
            .bind(ttl_ms(ttl))
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::query("taking a lease"))?;
        if let Some(row) = row {
            let epoch: i64 = row
                .try_get("epoch")
                .map_err(StoreError::query("reading a lease"))?;
            let expires: i64 = row
                .try_get("expires_at")
                .map_err(StoreError::query("reading a lease"))?;
            return Ok(LeaseGrab::Held {
                epoch,
                expires_at: from_ms(expires),
            });
        }
        match self.lease(name).await? {
            Some(lease) => Ok(LeaseGrab::Taken(lease)),
            None => Err(StoreError::Corrupt {
                what: "lease",
                detail: format!("lease {name} vanished while being taken"),
            }),
        }
    }

    /// Extends `holder`'s lease at `epoch` by `ttl` from now (database clock). False
    /// when it is no longer theirs: it lapsed and was taken, or was released.
    pub async fn lease_renew(
        &self,
        name: &str,
        holder: &str,
        epoch: i64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_ms(self.backend());
        // A lapsed lease nobody took yet may still be renewed by its holder: nobody else
        // has written under another epoch.
        let sql = format!(
            "UPDATE leases SET expires_at = {now} + $4, renewed_at = {now} \
             WHERE name = $1 AND holder = $2 AND epoch = $3"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name.to_owned())
            .bind(holder.to_owned())
            .bind(epoch)
            .bind(ttl_ms(ttl))
            .execute(self.pool())
            .await
            .map_err(StoreError::query("renewing a lease"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Frees `holder`'s lease at `epoch`. False when it was not theirs any more.
    pub async fn lease_release(
        &self,
        name: &str,
        holder: &str,
        epoch: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE leases SET holder = NULL, expires_at = NULL \
             WHERE name = $1 AND holder = $2 AND epoch = $3",
        )
        .bind(name.to_owned())
        .bind(holder.to_owned())
        .bind(epoch)
        .execute(self.pool())
        .await
        .map_err(StoreError::query("releasing a lease"))?;
        Ok(done.rows_affected() == 1)
    }

    /// The fence: whether `holder` still holds `name` at `epoch` and it has not lapsed
    /// (database clock). A writer checks it before each call it makes as the holder.
    pub async fn lease_is_current(
        &self,
        name: &str,
        holder: &str,
        epoch: i64,
    ) -> Result<bool, StoreError> {
        let now = now_ms(self.backend());
        let sql = format!(
            "SELECT COUNT(*) AS n FROM leases WHERE name = $1 AND holder = $2 \
             AND epoch = $3 AND expires_at > {now}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name.to_owned())
            .bind(holder.to_owned())
            .bind(epoch)
            .fetch_one(self.pool())
            .await
            .map_err(StoreError::query("checking a lease"))?;
        let n: i64 = row
            .try_get("n")
            .map_err(StoreError::query("checking a lease"))?;
        Ok(n == 1)
    }

    /// Lease `name` as stored (possibly lapsed or released), if it was ever taken.
    pub async fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        let rows = self.leases_where("name = $1", name).await?;
        Ok(rows.into_iter().next())
    }

    /// Every lease whose name starts with `prefix` (e.g. `org:`), by name.
    pub async fn leases(&self, prefix: &str) -> Result<Vec<Lease>, StoreError> {
        // LIKE would need escaping of `_` and `%`; compare the prefix instead.
        self.leases_where("substr(name, 1, length($1)) = $1", prefix)
            .await
    }

    async fn leases_where(&self, filter: &str, arg: &str) -> Result<Vec<Lease>, StoreError> {
        let sql = format!(
            "SELECT name, holder, epoch, expires_at, acquired_at FROM leases \
             WHERE {filter} ORDER BY name"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(arg.to_owned())
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::query("reading leases"))?;
        rows.iter()
            .map(|row| {
                Ok(Lease {
                    name: row.try_get("name")?,
                    holder: row.try_get("holder")?,
                    epoch: row.try_get("epoch")?,
                    expires_at: opt_time(row, "expires_at")?,
                    acquired_at: opt_time(row, "acquired_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::query("reading leases"))
    }
}
