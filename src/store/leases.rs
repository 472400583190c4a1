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
//! - `leases_renew_held`, `leases_live` and `leases_forget` serve a fleet
//!   (`service::fleet`): one statement renews every lease a holder has, one reads a set
//!   of leases with the database's verdict on each, one clears a lapsed holder's rows.

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
    /// Milliseconds it had left when read, by the database's clock (negative: lapsed);
    /// `None` when released or never taken.
    pub left_ms: Option<i64>,
}

impl Lease {
    /// Its holder, if the lease still bound when read.
    pub fn live_holder(&self) -> Option<&str> {
        match self.left_ms {
            Some(left) if left > 0 => self.holder.as_deref(),
            _ => None,
        }
    }
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
pub(super) fn now_ms(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS BIGINT)",
        Backend::Postgres => "CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT)",
    }
}

pub(super) fn ttl_ms(ttl: Duration) -> i64 {
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
        let rows = self.leases_where("name = $1", &[name]).await?;
        Ok(rows.into_iter().next())
    }

    /// Every lease whose name starts with `prefix` (e.g. `org:`), by name.
    pub async fn leases(&self, prefix: &str) -> Result<Vec<Lease>, StoreError> {
        // LIKE would need escaping of `_` and `%`; compare the prefix instead.
        self.leases_where("substr(name, 1, length($1)) = $1", &[prefix])
            .await
    }

    /// Extends, in one statement, every lease `holder` has (lapsed ones nobody took
    /// yet included, as [`Store::lease_renew`] does) by `ttl` from now (database clock).
    /// Returns each renewed lease's name and epoch, by name.
    pub async fn leases_renew_held(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let now = now_ms(self.backend());
        let sql = format!(
            "UPDATE leases SET expires_at = {now} + $2, renewed_at = {now} \
             WHERE holder = $1 RETURNING name, epoch"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(holder.to_owned())
            .bind(ttl_ms(ttl))
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::query("renewing leases"))?;
        let mut held = rows
            .iter()
            .map(|row| Ok((row.try_get("name")?, row.try_get("epoch")?)))
            .collect::<Result<Vec<(String, i64)>, sqlx::Error>>()
            .map_err(StoreError::query("renewing leases"))?;
        held.sort();
        Ok(held)
    }

    /// Every lease whose name starts with one of `prefixes`, by name, each with the
    /// time it has left by the database's clock: one statement, one clock reading.
    pub async fn leases_live(&self, prefixes: &[&str]) -> Result<Vec<Lease>, StoreError> {
        if prefixes.is_empty() {
            return Ok(Vec::new());
        }
        let filter = (1..=prefixes.len())
            .map(|i| format!("substr(name, 1, length(${i})) = ${i}"))
            .collect::<Vec<_>>()
            .join(" OR ");
        self.leases_where(&filter, prefixes).await
    }

    /// Deletes the rows of leases named with `prefix` that were released or lapsed
    /// longer than `after` ago (database clock): a fleet's membership rows of processes
    /// long gone. A row being created (never held yet) stays. Returns how many went.
    pub async fn leases_forget(&self, prefix: &str, after: Duration) -> Result<u64, StoreError> {
        let now = now_ms(self.backend());
        let sql = format!(
            "DELETE FROM leases WHERE substr(name, 1, length($1)) = $1 \
             AND ((holder IS NULL AND renewed_at + $2 <= {now}) \
               OR (holder IS NOT NULL AND expires_at + $2 <= {now}))"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(prefix.to_owned())
            .bind(ttl_ms(after))
            .execute(self.pool())
            .await
            .map_err(StoreError::query("forgetting lapsed leases"))?;
        Ok(done.rows_affected())
    }

    async fn leases_where(&self, filter: &str, args: &[&str]) -> Result<Vec<Lease>, StoreError> {
        let now = now_ms(self.backend());
        let sql = format!(
            "SELECT name, holder, epoch, expires_at, acquired_at, expires_at - {now} AS left_ms \
             FROM leases WHERE {filter} ORDER BY name"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for arg in args {
            query = query.bind((*arg).to_owned());
        }
        let rows = query
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::query("reading leases"))?;
        rows.iter()
            .map(|row| {
                let holder: Option<String> = row.try_get("holder")?;
                let left_ms = match holder {
                    Some(_) => row.try_get::<Option<i64>, _>("left_ms")?,
                    None => None,
                };
                Ok(Lease {
                    name: row.try_get("name")?,
                    holder,
                    epoch: row.try_get("epoch")?,
                    expires_at: opt_time(row, "expires_at")?,
                    acquired_at: opt_time(row, "acquired_at")?,
                    left_ms,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::query("reading leases"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn one_statement_renews_all_a_holder_has_and_reads_who_is_live() {
        for ts in crate::store::test_stores::all().await {
            let (store, label) = (ts.store.clone(), ts.label());
            for name in ["org:a", "org:b", "member:p1"] {
                store.lease_acquire(name, "p1", TTL).await.unwrap();
            }
            store.lease_acquire("org:c", "p2", TTL).await.unwrap();
            // p2's lease lapses at once; a released one has no holder.
            assert!(
                store
                    .lease_renew("org:c", "p2", 1, Duration::ZERO)
                    .await
                    .unwrap()
            );
            store.lease_acquire("org:d", "p1", TTL).await.unwrap();
            assert!(store.lease_release("org:d", "p1", 1).await.unwrap());

            let renewed = store.leases_renew_held("p1", TTL).await.unwrap();
            let names: Vec<&str> = renewed.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["member:p1", "org:a", "org:b"], "{label}");
            assert!(renewed.iter().all(|(_, epoch)| *epoch == 1), "{label}");

            let live = store.leases_live(&["org:", "member:"]).await.unwrap();
            let seen: Vec<(&str, Option<&str>)> = live
                .iter()
                .map(|l| (l.name.as_str(), l.live_holder()))
                .collect();
            assert_eq!(
                seen,
                [
                    ("member:p1", Some("p1")),
                    ("org:a", Some("p1")),
                    ("org:b", Some("p1")),
                    ("org:c", None),
                    ("org:d", None)
                ],
                "{label}: lapsed and released leases have no live holder"
            );
            let left = live[1].left_ms.unwrap();
            assert!(left > 25_000 && left <= 30_000, "{label}: {left}");
            assert!(live[3].left_ms.unwrap() <= 0, "{label}");
            assert_eq!(live[4].left_ms, None, "{label}");

            // Lapsed and released rows go; live ones stay.
            assert_eq!(
                store.leases_forget("org:", Duration::ZERO).await.unwrap(),
                2
            );
            assert_eq!(store.leases("org:").await.unwrap().len(), 2, "{label}");
            ts.drop().await;
        }
    }
}
