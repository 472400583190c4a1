//! The writer run lease: at most one process drives a journaled run at a time. It is a
//! named lease (`store::leases`, name `run:<run_id>`), so expiry is judged by the
//! database's clock like the org leases; `migrations/*/0310_run_leases.sql` moved the
//! leases held in the old `writer_runs.lease_*` columns (now unused) over.
//!
//! Every operation is one statement, so it is atomic on both backends: taking the lease
//! is a compare-and-set `UPDATE … WHERE` the lease is free, lapsed or already ours;
//! renewing and releasing only touch a lease we still hold; taking over from a dead
//! holder names the holder it replaces, so two processes noticing the same dead one
//! cannot both win. Releasing deletes the row (a run's lease has no fencing history).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::journal::JournalError;
use super::leases::{now_ms, ttl_ms};
use super::{Store, from_ms};

/// Who holds a run's lease and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLease {
    /// The holder's identity string (see `writer::lease`).
    pub holder: String,
    pub acquired_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
}

impl RunLease {
    /// Whether the lease still binds at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }
}

/// What an attempt to take a lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAttempt {
    /// The caller holds the lease now.
    Acquired,
    /// Someone else holds a live lease.
    Held(RunLease),
    /// No such run.
    UnknownRun,
}

fn sql_err(doing: &'static str) -> impl FnOnce(sqlx::Error) -> JournalError {
    move |source| JournalError::Sql { doing, source }
}

/// The named lease of run `run_id`.
pub(crate) fn run_lease_name(run_id: &str) -> String {
    format!("run:{run_id}")
}

impl Store {
    /// Takes `run_id`'s lease for `holder` for `ttl` (database clock) if it is free,
    /// lapsed, or already `holder`'s (then it is extended).
    pub async fn run_lease_acquire(
        &self,
        run_id: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<LeaseAttempt, JournalError> {
        if self.journal_run(run_id).await?.is_none() {
            return Ok(LeaseAttempt::UnknownRun);
        }
        let name = run_lease_name(run_id);
        let now = now_ms(self.backend());
        // Insert-or-take in one statement: a new row, or the compare-and-set update of
        // a free, lapsed or own one.
        let sql = format!(
            "INSERT INTO leases (name, holder, epoch, expires_at, acquired_at, renewed_at) \
             VALUES ($1, $2, 1, {now} + $3, {now}, {now}) \
             ON CONFLICT (name) DO UPDATE SET \
               epoch = CASE WHEN leases.holder = $2 THEN leases.epoch ELSE leases.epoch + 1 END, \
               acquired_at = CASE WHEN leases.holder = $2 THEN leases.acquired_at ELSE {now} END, \
               holder = $2, expires_at = {now} + $3, renewed_at = {now} \
             WHERE leases.holder IS NULL OR leases.expires_at IS NULL \
               OR leases.expires_at <= {now} OR leases.holder = $2"
        );
        loop {
            let done = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(name.clone())
                .bind(holder.to_owned())
                .bind(ttl_ms(ttl))
                .execute(self.pool())
                .await
                .map_err(sql_err("taking a run's lease"))?;
            if done.rows_affected() == 1 {
                return Ok(LeaseAttempt::Acquired);
            }
            if let Some(lease) = self.run_lease(run_id).await? {
                return Ok(LeaseAttempt::Held(lease));
            }
            // Released between the two statements: try again.
        }
    }

    /// Takes the lease from `dead_holder` (a holder known to be gone), only if it is
    /// still theirs. Returns whether the caller holds it now.
    pub async fn run_lease_take_over(
        &self,
        run_id: &str,
        holder: &str,
        dead_holder: &str,
        ttl: Duration,
    ) -> Result<bool, JournalError> {
        let now = now_ms(self.backend());
        let sql = format!(
            "UPDATE leases SET holder = $2, epoch = epoch + 1, expires_at = {now} + $4, \
             acquired_at = {now}, renewed_at = {now} WHERE name = $1 AND holder = $3"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(run_lease_name(run_id))
            .bind(holder.to_owned())
            .bind(dead_holder.to_owned())
            .bind(ttl_ms(ttl))
            .execute(self.pool())
            .await
            .map_err(sql_err("taking over a dead process's lease"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Extends `holder`'s lease by `ttl` from now (database clock). Returns false when
    /// the lease is no longer `holder`'s (it lapsed and another process took it).
    pub async fn run_lease_renew(
        &self,
        run_id: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, JournalError> {
        let now = now_ms(self.backend());
        let sql = format!(
            "UPDATE leases SET expires_at = {now} + $3, renewed_at = {now} \
             WHERE name = $1 AND holder = $2"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(run_lease_name(run_id))
            .bind(holder.to_owned())
            .bind(ttl_ms(ttl))
            .execute(self.pool())
            .await
            .map_err(sql_err("renewing a run's lease"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Clears `holder`'s lease. Returns false when it was not `holder`'s any more.
    pub async fn run_lease_release(
        &self,
        run_id: &str,
        holder: &str,
    ) -> Result<bool, JournalError> {
        let done = sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(run_lease_name(run_id))
            .bind(holder.to_owned())
            .execute(self.pool())
            .await
            .map_err(sql_err("releasing a run's lease"))?;
        Ok(done.rows_affected() == 1)
    }

    /// The run's lease as stored (possibly lapsed), or `None` when nobody holds one.
    pub async fn run_lease(&self, run_id: &str) -> Result<Option<RunLease>, JournalError> {
        let row = sqlx::query("SELECT holder, expires_at, acquired_at FROM leases WHERE name = $1")
            .bind(run_lease_name(run_id))
            .fetch_optional(self.pool())
            .await
            .map_err(sql_err("reading a run's lease"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let get = |name: &'static str| -> Result<Option<i64>, JournalError> {
            row.try_get(name).map_err(sql_err("decoding a run's lease"))
        };
        let holder: Option<String> = row
            .try_get("holder")
            .map_err(sql_err("decoding a run's lease"))?;
        Ok(match (holder, get("expires_at")?) {
            (Some(holder), Some(expires)) => Some(RunLease {
                holder,
                acquired_at: get("acquired_at")?.map(from_ms),
                expires_at: from_ms(expires),
            }),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CrmKind;
    use crate::store::NewRun;

    const TTL: Duration = Duration::from_secs(30);

    async fn run(store: &Store, id: &str) {
        let run = NewRun {
            run_id: id,
            crm: CrmKind::Hubspot,
            kind: "backfill",
            parent_run: None,
            policy_version: "v",
        };
        store
            .journal_create_run(&run, &[], Utc::now())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn one_holder_at_a_time_until_release_or_expiry_on_every_backend() {
        for ts in crate::store::test_stores::all().await {
            let (store, label) = (ts.store.clone(), ts.label());
            run(&store, "r1").await;
            assert_eq!(store.run_lease("r1").await.unwrap(), None, "{label}");
            assert_eq!(
                store.run_lease_acquire("r1", "A", TTL).await.unwrap(),
                LeaseAttempt::Acquired,
                "{label}: a free lease is taken"
            );
            let first = store.run_lease("r1").await.unwrap().unwrap();
            // B is refused while A's lease is live, and learns who holds it until when.
            let held = store.run_lease_acquire("r1", "B", TTL).await.unwrap();
            let LeaseAttempt::Held(lease) = held else {
                panic!("{label}: B took a live lease: {held:?}");
            };
            assert_eq!(lease, first, "{label}");
            assert_eq!(lease.holder, "A", "{label}");
            assert!(lease.is_live(Utc::now()), "{label}");
            let acquired = lease.acquired_at.unwrap();
            let left = lease.expires_at - acquired;
            assert_eq!(left.num_seconds(), 30, "{label}: {left:?}");
            // A re-acquiring extends its own lease and keeps when it first took it.
            assert_eq!(
                store.run_lease_acquire("r1", "A", TTL).await.unwrap(),
                LeaseAttempt::Acquired,
                "{label}"
            );
            // A renews; B is still refused.
            assert!(store.run_lease_renew("r1", "A", TTL).await.unwrap());
            let lease = store.run_lease("r1").await.unwrap().unwrap();
            assert_eq!(lease.acquired_at, Some(acquired), "{label}");
            assert!(lease.expires_at >= first.expires_at, "{label}");
            assert!(matches!(
                store.run_lease_acquire("r1", "B", TTL).await.unwrap(),
                LeaseAttempt::Held(_)
            ));
            // A's lease lapses (renewed for no time: expired by the database's clock at
            // once): B takes it, and A can no longer renew or release it.
            assert!(
                store
                    .run_lease_renew("r1", "A", Duration::ZERO)
                    .await
                    .unwrap()
            );
            assert_eq!(
                store.run_lease_acquire("r1", "B", TTL).await.unwrap(),
                LeaseAttempt::Acquired,
                "{label}: a lapsed lease is taken"
            );
            assert!(!store.run_lease_renew("r1", "A", TTL).await.unwrap());
            assert!(!store.run_lease_release("r1", "A").await.unwrap());
            assert_eq!(store.run_lease("r1").await.unwrap().unwrap().holder, "B");
            // B releases: free for anyone at once.
            assert!(store.run_lease_release("r1", "B").await.unwrap());
            assert_eq!(store.run_lease("r1").await.unwrap(), None, "{label}");
            assert_eq!(
                store.run_lease_acquire("r1", "C", TTL).await.unwrap(),
                LeaseAttempt::Acquired
            );
            // Leases are per run; unknown runs say so.
            run(&store, "r2").await;
            assert_eq!(
                store.run_lease_acquire("r2", "B", TTL).await.unwrap(),
                LeaseAttempt::Acquired,
                "{label}"
            );
            assert_eq!(
                store.run_lease_acquire("nope", "B", TTL).await.unwrap(),
                LeaseAttempt::UnknownRun
            );
            // They are named leases, beside the orgs'.
            let names: Vec<String> = store
                .leases("run:")
                .await
                .unwrap()
                .into_iter()
                .map(|l| l.name)
                .collect();
            assert_eq!(names, ["run:r1", "run:r2"], "{label}");
            ts.drop().await;
        }
    }

    #[tokio::test]
    async fn a_dead_holder_is_replaced_once_and_only_while_it_still_holds() {
        for ts in crate::store::test_stores::all().await {
            let (store, label) = (ts.store.clone(), ts.label());
            run(&store, "r1").await;
            store.run_lease_acquire("r1", "dead", TTL).await.unwrap();
            // Two survivors notice the dead holder; exactly one wins the take-over.
            assert!(
                store
                    .run_lease_take_over("r1", "B", "dead", TTL)
                    .await
                    .unwrap(),
                "{label}"
            );
            assert!(
                !store
                    .run_lease_take_over("r1", "C", "dead", TTL)
                    .await
                    .unwrap(),
                "{label}: the second take-over names a holder that is gone"
            );
            let lease = store.run_lease("r1").await.unwrap().unwrap();
            assert_eq!(lease.holder, "B", "{label}");
            let left = lease.expires_at - lease.acquired_at.unwrap();
            assert_eq!(left.num_seconds(), 30, "{label}");
            ts.drop().await;
        }
    }

    #[tokio::test]
    async fn many_racers_for_a_free_lease_get_exactly_one_winner() {
        for ts in crate::store::test_stores::all().await {
            let (store, label) = (ts.store.clone(), ts.label());
            run(&store, "r1").await;
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        store
                            .run_lease_acquire("r1", &format!("p{i}"), TTL)
                            .await
                            .unwrap()
                    })
                })
                .collect();
            let mut won = 0;
            for task in tasks {
                if task.await.unwrap() == LeaseAttempt::Acquired {
                    won += 1;
                }
            }
            assert_eq!(won, 1, "{label}");
            ts.drop().await;
        }
    }

    #[tokio::test]
    async fn a_lease_held_in_the_old_run_columns_is_moved_by_the_upgrade() {
        for ts in crate::store::test_stores::all().await {
            let (store, label) = (ts.store.clone(), ts.label());
            run(&store, "r1").await;
            // A store of the previous release: the lease in `writer_runs`, 0310 not run.
            let now = crate::store::to_ms(Utc::now());
            sqlx::query(
                "UPDATE writer_runs SET lease_holder = 'old', lease_expires_at = $1, \
                 lease_acquired_at = $2 WHERE run_id = 'r1'",
            )
            .bind(now + 60_000)
            .bind(now)
            .execute(store.pool())
            .await
            .unwrap();
            sqlx::query("DELETE FROM leadroute_migrations WHERE version = 310")
                .execute(store.pool())
                .await
                .unwrap();
            crate::store::migrate::run(&store).await.unwrap();
            let lease = store.run_lease("r1").await.unwrap().unwrap();
            assert_eq!(lease.holder, "old", "{label}");
            assert_eq!(
                lease.acquired_at.map(crate::store::to_ms),
                Some(now),
                "{label}"
            );
            assert!(
                matches!(
                    store.run_lease_acquire("r1", "B", TTL).await.unwrap(),
                    LeaseAttempt::Held(_)
                ),
                "{label}: the upgraded lease still binds"
            );
            ts.drop().await;
        }
    }
}
