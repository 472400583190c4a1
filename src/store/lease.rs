//! The writer run lease (columns from `migrations/*/0201_run_lease.sql`): at most one
//! process drives a journaled run at a time.
//!
//! Every operation is one statement, so it is atomic on both backends: taking the lease
//! is a compare-and-set `UPDATE … WHERE` the lease is free, lapsed or already ours;
//! renewing and releasing only touch a lease we still hold; taking over from a dead
//! holder names the holder it replaces, so two processes noticing the same dead one
//! cannot both win. Expiry compares the caller's clock (`now`), so hosts sharing a
//! store need clocks within a few seconds of each other (far less than the TTL).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::journal::JournalError;
use super::{Store, from_ms, to_ms};

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

fn expiry(now: DateTime<Utc>, ttl: Duration) -> i64 {
    to_ms(now).saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    /// Takes `run_id`'s lease for `holder` until `now + ttl` if it is free, lapsed, or
    /// already `holder`'s (then it is extended). One statement: atomic on both backends.
    pub async fn run_lease_acquire(
        &self,
        run_id: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<LeaseAttempt, JournalError> {
        loop {
            let done = sqlx::query(
                "UPDATE writer_runs SET lease_holder = $2, lease_expires_at = $3, \
                 lease_acquired_at = CASE WHEN lease_holder = $2 THEN lease_acquired_at \
                 ELSE $4 END WHERE run_id = $1 AND (lease_holder IS NULL \
                 OR lease_expires_at IS NULL OR lease_expires_at <= $4 OR lease_holder = $2)",
            )
            .bind(run_id.to_owned())
            .bind(holder.to_owned())
            .bind(expiry(now, ttl))
            .bind(to_ms(now))
            .execute(self.pool())
            .await
            .map_err(sql_err("taking a run's lease"))?;
            if done.rows_affected() == 1 {
                return Ok(LeaseAttempt::Acquired);
            }
            if let Some(lease) = self.run_lease(run_id).await? {
                return Ok(LeaseAttempt::Held(lease));
            }
            if self.journal_run(run_id).await?.is_none() {
                return Ok(LeaseAttempt::UnknownRun);
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
        now: DateTime<Utc>,
    ) -> Result<bool, JournalError> {
        let done = sqlx::query(
            "UPDATE writer_runs SET lease_holder = $2, lease_expires_at = $4, \
             lease_acquired_at = $5 WHERE run_id = $1 AND lease_holder = $3",
        )
        .bind(run_id.to_owned())
        .bind(holder.to_owned())
        .bind(dead_holder.to_owned())
        .bind(expiry(now, ttl))
        .bind(to_ms(now))
        .execute(self.pool())
        .await
        .map_err(sql_err("taking over a dead process's lease"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Extends `holder`'s lease to `now + ttl`. Returns false when the lease is no
    /// longer `holder`'s (it lapsed and another process took it).
    pub async fn run_lease_renew(
        &self,
        run_id: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, JournalError> {
        let done = sqlx::query(
            "UPDATE writer_runs SET lease_expires_at = $3 WHERE run_id = $1 AND lease_holder = $2",
        )
        .bind(run_id.to_owned())
        .bind(holder.to_owned())
        .bind(expiry(now, ttl))
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
        let done = sqlx::query(
            "UPDATE writer_runs SET lease_holder = NULL, lease_expires_at = NULL, \
             lease_acquired_at = NULL WHERE run_id = $1 AND lease_holder = $2",
        )
        .bind(run_id.to_owned())
        .bind(holder.to_owned())
        .execute(self.pool())
        .await
        .map_err(sql_err("releasing a run's lease"))?;
        Ok(done.rows_affected() == 1)
    }

    /// The run's lease as stored (possibly lapsed), or `None` when nobody holds one.
    pub async fn run_lease(&self, run_id: &str) -> Result<Option<RunLease>, JournalError> {
        let row = sqlx::query(
            "SELECT lease_holder, lease_expires_at, lease_acquired_at FROM writer_runs \
             WHERE run_id = $1",
        )
        .bind(run_id.to_owned())
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
            .try_get("lease_holder")
            .map_err(sql_err("decoding a run's lease"))?;
        Ok(match (holder, get("lease_expires_at")?) {
            (Some(holder), Some(expires)) => Some(RunLease {
                holder,
                acquired_at: get("lease_acquired_at")?.map(from_ms),
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
    use chrono::TimeZone;

    const TTL: Duration = Duration::from_secs(30);

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 6, 0, 0).unwrap() + chrono::Duration::seconds(secs)
    }

    async fn run(store: &Store, id: &str) {
        let run = NewRun {
            run_id: id,
            org: crate::domain::OrgId::default_for(CrmKind::Hubspot),
            kind: "backfill",
            parent_run: None,
            policy_version: "v",
        };
        store.journal_create_run(&run, &[], t(0)).await.unwrap();
    }

    #[tokio::test]
    async fn one_holder_at_a_time_until_release_or_expiry_on_every_backend() {
        for ts in crate::store::test_stores::all().await {
            let (store, label) = (ts.store.clone(), ts.label());
            run(&store, "r1").await;
            assert_eq!(store.run_lease("r1").await.unwrap(), None, "{label}");
            assert_eq!(
                store.run_lease_acquire("r1", "A", TTL, t(0)).await.unwrap(),
                LeaseAttempt::Acquired,
                "{label}: a free lease is taken"
            );
            // B is refused while A's lease is live, and learns who holds it until when.
            let held = store
                .run_lease_acquire("r1", "B", TTL, t(10))
                .await
                .unwrap();
            let LeaseAttempt::Held(lease) = held else {
                panic!("{label}: B took a live lease: {held:?}");
            };
            assert_eq!(lease.holder, "A", "{label}");
            assert_eq!(lease.expires_at, t(30), "{label}");
            assert_eq!(lease.acquired_at, Some(t(0)), "{label}");
            // A re-acquiring extends its own lease and keeps when it first took it.
            assert_eq!(
                store
                    .run_lease_acquire("r1", "A", TTL, t(20))
                    .await
                    .unwrap(),
                LeaseAttempt::Acquired,
                "{label}"
            );
            // A renews; B is still refused past A's first expiry.
            assert!(store.run_lease_renew("r1", "A", TTL, t(40)).await.unwrap());
            let lease = store.run_lease("r1").await.unwrap().unwrap();
            assert_eq!((lease.expires_at, lease.acquired_at), (t(70), Some(t(0))));
            assert!(matches!(
                store
                    .run_lease_acquire("r1", "B", TTL, t(60))
                    .await
                    .unwrap(),
                LeaseAttempt::Held(_)
            ));
            // A stops renewing: at expiry B takes it, and A can no longer renew or
            // release it.
            assert_eq!(
                store
                    .run_lease_acquire("r1", "B", TTL, t(70))
                    .await
                    .unwrap(),
                LeaseAttempt::Acquired,
                "{label}: a lapsed lease is taken"
            );
            assert!(!store.run_lease_renew("r1", "A", TTL, t(71)).await.unwrap());
            assert!(!store.run_lease_release("r1", "A").await.unwrap());
            assert_eq!(store.run_lease("r1").await.unwrap().unwrap().holder, "B");
            // B releases: free for anyone at once.
            assert!(store.run_lease_release("r1", "B").await.unwrap());
            assert_eq!(store.run_lease("r1").await.unwrap(), None, "{label}");
            assert_eq!(
                store
                    .run_lease_acquire("r1", "C", TTL, t(72))
                    .await
                    .unwrap(),
                LeaseAttempt::Acquired
            );
            // Leases are per run; unknown runs say so.
            run(&store, "r2").await;
            assert_eq!(
                store
                    .run_lease_acquire("r2", "B", TTL, t(72))
                    .await
                    .unwrap(),
                LeaseAttempt::Acquired,
                "{label}"
            );
            assert_eq!(
                store
                    .run_lease_acquire("nope", "B", TTL, t(72))
                    .await
                    .unwrap(),
                LeaseAttempt::UnknownRun
            );
            ts.drop().await;
        }
    }

    #[tokio::test]
    async fn a_dead_holder_is_replaced_once_and_only_while_it_still_holds() {
        for ts in crate::store::test_stores::all().await {
            let (store, label) = (ts.store.clone(), ts.label());
            run(&store, "r1").await;
            store
                .run_lease_acquire("r1", "dead", TTL, t(0))
                .await
                .unwrap();
            // Two survivors notice the dead holder; exactly one wins the take-over.
            assert!(
                store
                    .run_lease_take_over("r1", "B", "dead", TTL, t(1))
                    .await
                    .unwrap(),
                "{label}"
            );
            assert!(
                !store
                    .run_lease_take_over("r1", "C", "dead", TTL, t(1))
                    .await
                    .unwrap(),
                "{label}: the second take-over names a holder that is gone"
            );
            let lease = store.run_lease("r1").await.unwrap().unwrap();
            assert_eq!(
                (lease.holder.as_str(), lease.acquired_at, lease.expires_at),
                ("B", Some(t(1)), t(31)),
                "{label}"
            );
            ts.drop().await;
        }
    }

    #[tokio::test]
    async fn many_racers_for_a_lapsed_lease_get_exactly_one_winner() {
        for ts in crate::store::test_stores::all().await {
            let (store, label) = (ts.store.clone(), ts.label());
            run(&store, "r1").await;
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        store
                            .run_lease_acquire("r1", &format!("p{i}"), TTL, t(5))
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
}
