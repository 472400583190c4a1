//! Leadership of a named lease (an org's pipeline): a task that takes the lease when it
//! is free, renews it while held, and publishes where this process stands on a watch
//! channel, so the pipeline starts polling and writing when it leads and stops when it
//! does not.
//!
//! Expiry is the database's call (`Store::lease_*`). Locally, a leader that cannot
//! renew (store down, slow) demotes itself once its last confirmed lease would have
//! lapsed, measured on this process's monotonic clock from before the renewal was sent:
//! it then stops writing before any standby can have taken over. On shutdown the lease
//! is released so a standby leads at once instead of after the TTL.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::store::{LeaseGrab, Store};

/// How long after a lease is due to lapse a standby tries for it, so the database
/// agrees it has lapsed.
const LAPSE_MARGIN: Duration = Duration::from_millis(25);

/// Where this process stands for one lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// Not yet known (starting, or the store did not answer).
    Unknown { error: Option<String> },
    /// Another process leads; this one accepts webhooks only.
    Standby { holder: Option<String> },
    /// This process leads with this epoch (the fencing token its writes carry).
    Leader { epoch: i64 },
}

impl Leadership {
    pub fn epoch(&self) -> Option<i64> {
        match self {
            Leadership::Leader { epoch } => Some(*epoch),
            _ => None,
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self, Leadership::Leader { .. })
    }
}

/// Lease timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a lease binds without renewal: the longest a dead leader's org waits.
    pub ttl: Duration,
    /// How often the leader renews and a standby tries to take over.
    pub every: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming {
            ttl: Duration::from_secs(15),
            every: Duration::from_secs(5),
        }
    }
}

/// Keeps lease `name` for `holder` until `cancel` fires (then releases it), publishing
/// the state on the returned channel. Run it on the pipeline's task tracker.
pub fn keep(
    store: Store,
    name: String,
    holder: String,
    timing: LeaseTiming,
    cancel: CancellationToken,
) -> (watch::Receiver<Leadership>, impl Future<Output = ()> + Send) {
    let (tx, rx) = watch::channel(Leadership::Unknown { error: None });
    let task = async move {
        // Until when the lease we hold is certainly ours (local monotonic clock).
        let mut ours_until: Option<Instant> = None;
        loop {
            let current = tx.borrow().clone();
            let sent = Instant::now();
            // A standby wakes just after the holder's lease is due to lapse (database
            // clock) when that comes before the next tick: a dead leader's org waits
            // the TTL, not the TTL plus a tick.
            let mut wait = timing.every;
            let next = match current.epoch() {
                Some(epoch) => match store.lease_renew(&name, &holder, epoch, timing.ttl).await {
                    Ok(true) => {
                        ours_until = Some(sent + timing.ttl);
                        current
                    }
                    Ok(false) => {
                        warn!(lease = %name, epoch, "lease lost to another process; standing by");
                        ours_until = None;
                        Leadership::Standby { holder: None }
                    }
                    Err(err) => {
                        if ours_until.is_some_and(|until| Instant::now() + timing.every >= until) {
                            warn!(lease = %name, error = %err, "cannot renew the lease before it lapses; standing down");
                            ours_until = None;
                            Leadership::Unknown {
                                error: Some(err.to_string()),
                            }
                        } else {
                            warn!(lease = %name, error = %err, "lease renewal failed; retrying");
                            current
                        }
                    }
                },
                None => match store.lease_acquire(&name, &holder, timing.ttl).await {
                    Ok(LeaseGrab::Held { epoch, .. }) => {
                        info!(lease = %name, epoch, "leading");
                        ours_until = Some(sent + timing.ttl);
                        Leadership::Leader { epoch }
                    }
                    Ok(LeaseGrab::Taken(lease)) => {
                        if let Some(left) = lease.left_ms.and_then(|ms| u64::try_from(ms).ok()) {
                            wait = wait.min(Duration::from_millis(left) + LAPSE_MARGIN);
                        }
                        Leadership::Standby {
                            holder: lease.holder,
                        }
                    }
                    Err(err) => Leadership::Unknown {
                        error: Some(err.to_string()),
                    },
                },
            };
            tx.send_if_modified(|state| {
                if *state == next {
                    false
                } else {
                    *state = next;
                    true
                }
            });
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        let last = tx.borrow().clone();
        if let Some(epoch) = last.epoch() {
            match store.lease_release(&name, &holder, epoch).await {
                Ok(_) => info!(lease = %name, epoch, "lease released"),
                Err(err) => {
                    warn!(lease = %name, error = %err, "could not release the lease; it lapses after its TTL")
                }
            }
        }
        tx.send_replace(Leadership::Unknown { error: None });
    };
    (rx, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = Store::open(&url).await.unwrap_or_else(|e| panic!("{e}"));
        (store, dir)
    }

    async fn until(rx: &mut watch::Receiver<Leadership>, want: impl Fn(&Leadership) -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| want(s)))
            .await
            .map(|r| r.is_ok());
        assert!(
            matches!(waited, Ok(true)),
            "state never came: {:?}",
            *rx.borrow()
        );
    }

    #[tokio::test]
    async fn one_leads_the_other_stands_by_and_takes_over_on_release() {
        let (store, _dir) = store().await;
        let timing = LeaseTiming {
            ttl: Duration::from_secs(30),
            every: Duration::from_millis(20),
        };
        let cancel_a = CancellationToken::new();
        let (mut a, task_a) = keep(
            store.clone(),
            "org:test".into(),
            "a".into(),
            timing,
            cancel_a.clone(),
        );
        let task_a = tokio::spawn(task_a);
        until(&mut a, Leadership::is_leader).await;
        let cancel_b = CancellationToken::new();
        let (mut b, task_b) = keep(
            store.clone(),
            "org:test".into(),
            "b".into(),
            timing,
            cancel_b.clone(),
        );
        let task_b = tokio::spawn(task_b);
        until(
            &mut b,
            |s| matches!(s, Leadership::Standby { holder: Some(h) } if h == "a"),
        )
        .await;
        // A shuts down: it releases, and B leads with the next epoch well before the TTL.
        cancel_a.cancel();
        task_a.await.unwrap_or_else(|e| panic!("{e}"));
        until(&mut b, |s| s.epoch() == Some(2)).await;
        assert!(
            store
                .lease_is_current("org:test", "b", 2)
                .await
                .unwrap_or(false)
        );
        cancel_b.cancel();
        task_b.await.unwrap_or_else(|e| panic!("{e}"));
        let lease = store.lease("org:test").await.ok().flatten();
        assert_eq!(lease.and_then(|l| l.holder), None, "released at shutdown");
    }

    #[tokio::test]
    async fn a_deposed_leader_learns_it_at_its_next_renewal() {
        let (store, _dir) = store().await;
        let timing = LeaseTiming {
            ttl: Duration::from_secs(30),
            every: Duration::from_millis(20),
        };
        let cancel = CancellationToken::new();
        let (mut a, task) = keep(
            store.clone(),
            "org:test".into(),
            "a".into(),
            timing,
            cancel.clone(),
        );
        let task = tokio::spawn(task);
        until(&mut a, Leadership::is_leader).await;
        // The lease lapses (as if A had been frozen) and C takes it.
        assert!(
            store
                .lease_renew("org:test", "a", 1, Duration::ZERO)
                .await
                .unwrap_or(false)
        );
        let grab = store
            .lease_acquire("org:test", "c", Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(grab, LeaseGrab::Held { epoch: 2, .. }), "{grab:?}");
        until(&mut a, |s| !s.is_leader()).await;
        cancel.cancel();
        task.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            store
                .lease_is_current("org:test", "c", 2)
                .await
                .unwrap_or(false),
            "A's shutdown does not release C's lease"
        );
    }

    #[tokio::test]
    async fn a_standby_takes_a_dead_leaders_lease_when_it_lapses_not_a_tick_later() {
        let (store, _dir) = store().await;
        // A dead leader: its lease lapses in 800 ms and is never renewed.
        let grab = store
            .lease_acquire("org:test", "dead", Duration::from_millis(800))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(grab, LeaseGrab::Held { .. }));
        // A standby whose tick is far longer than that.
        let timing = LeaseTiming {
            ttl: Duration::from_secs(30),
            every: Duration::from_secs(30),
        };
        let cancel = CancellationToken::new();
        let started = Instant::now();
        let (mut b, task) = keep(
            store.clone(),
            "org:test".into(),
            "b".into(),
            timing,
            cancel.clone(),
        );
        let task = tokio::spawn(task);
        until(&mut b, |s| s.epoch() == Some(2)).await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "took over {took:?} after start, the lease lapsed at 800 ms"
        );
        cancel.cancel();
        task.await.unwrap_or_else(|e| panic!("{e}"));
    }
}
