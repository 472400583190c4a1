//! The fleet (issue 11, item 3): several processes' fleets over one store share the
//! orgs, every org has exactly one leader, a process that dies without releasing has
//! its orgs led again within the lease TTL + 2 s, and a process that joins gets its
//! share from the others, handed back gracefully. Each fleet has its own connection
//! pool, as separate processes would; a "kill" aborts the fleet's task and closes its
//! pool without releasing anything.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use leadroute::service::fleet::{Fleet, FleetConfig, FleetStats, OrgRunner, Term};
use leadroute::store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::helpers::{TestStore, all_stores, wait_for};

const TTL: Duration = Duration::from_secs(2);

/// Which process leads which org, as the pipelines would see it; a second start of an
/// org some other process still runs is a double lead.
#[derive(Default)]
struct Board {
    running: Mutex<BTreeMap<String, String>>,
    doubles: Mutex<Vec<String>>,
}

impl Board {
    fn per_process(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for id in self.running.lock().unwrap().values() {
            *out.entry(id.clone()).or_default() += 1;
        }
        out
    }

    fn led(&self) -> usize {
        self.running.lock().unwrap().len()
    }

    /// A process died: its pipelines died with it.
    fn died(&self, id: &str) {
        self.running.lock().unwrap().retain(|_, by| by != id);
    }
}

struct Pipelines {
    id: String,
    board: Arc<Board>,
}

impl OrgRunner for Pipelines {
    async fn start(&self, term: Term) -> anyhow::Result<()> {
        let mut running = self.board.running.lock().unwrap();
        if let Some(other) = running.insert(term.org.clone(), self.id.clone()) {
            self.board.doubles.lock().unwrap().push(format!(
                "{} started by {} (epoch {}) while {other} ran it",
                term.org, self.id, term.epoch
            ));
        }
        Ok(())
    }

    async fn stop(&self, org: &str) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut running = self.board.running.lock().unwrap();
        if running.get(org) == Some(&self.id) {
            running.remove(org);
        }
    }
}

struct Process {
    store: Store,
    cancel: CancellationToken,
    stats: Arc<FleetStats>,
    task: JoinHandle<()>,
}

/// A process's own pool on the test store.
async fn open(ts: &TestStore) -> Store {
    Store::open(&ts.url).await.unwrap()
}

fn spawn(store: Store, id: &str, board: &Arc<Board>, orgs: &[String]) -> Process {
    let runner = Arc::new(Pipelines {
        id: id.to_owned(),
        board: Arc::clone(board),
    });
    let config = FleetConfig::new(orgs.to_vec(), 100, TTL);
    let fleet = Fleet::with_holder(store.clone(), runner, config, id.to_owned());
    let stats = fleet.stats();
    let cancel = CancellationToken::new();
    let (_state, task) = fleet.run(cancel.clone());
    Process {
        store,
        cancel,
        stats,
        task: tokio::spawn(task),
    }
}

fn shares(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// Every configured org is led by exactly the process its lease names.
async fn leases_agree(store: &Store, board: &Board) {
    let leases = store.leases("org:").await.unwrap();
    let by_lease: BTreeMap<String, String> = leases
        .iter()
        .filter_map(|l| {
            Some((
                l.name.strip_prefix("org:")?.to_owned(),
                l.live_holder()?.to_owned(),
            ))
        })
        .collect();
    assert_eq!(by_lease, *board.running.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_fleets_over_six_orgs_one_leader_each_take_over_within_the_ttl_and_rebalance_on_join()
{
    for ts in all_stores().await {
        let label = ts.label;
        let orgs: Vec<String> = (1..=6).map(|i| format!("org{i}")).collect();
        let board = Arc::new(Board::default());
        let pools = (open(&ts).await, open(&ts).await, open(&ts).await);
        let a = spawn(pools.0, "a", &board, &orgs);
        let b = spawn(pools.1, "b", &board, &orgs);
        let c = spawn(pools.2, "c", &board, &orgs);
        wait_for("two orgs each", 20, || async {
            (board.per_process() == shares(&[("a", 2), ("b", 2), ("c", 2)])).then_some(())
        })
        .await;
        // Started together, they saw each other before taking orgs: nothing moved.
        let moved: u64 = [&a, &b, &c].iter().map(|p| p.stats.handed_back()).sum();
        assert_eq!(moved, 0, "{label}");
        leases_agree(&ts.store, &board).await;

        // kill C: no release, its pipelines die with it.
        c.task.abort();
        let _ = c.task.await;
        c.store.close().await;
        board.died("c");
        let killed = Instant::now();
        wait_for("every org led again", 20, || async {
            (board.led() == 6).then_some(())
        })
        .await;
        let took = killed.elapsed();
        eprintln!("{label}: orgs of a killed fleet led again after {took:?} (TTL {TTL:?})");
        assert!(took <= TTL + Duration::from_secs(2), "{label}: {took:?}");
        wait_for("three each", 20, || async {
            (board.per_process() == shares(&[("a", 3), ("b", 3)])).then_some(())
        })
        .await;
        leases_agree(&ts.store, &board).await;

        // D joins: A and B each hand one back, gracefully, and D leads two.
        let before = a.stats.handed_back() + b.stats.handed_back();
        let d = spawn(open(&ts).await, "d", &board, &orgs);
        let joined = Instant::now();
        wait_for("rebalanced over a, b, d", 20, || async {
            (board.per_process() == shares(&[("a", 2), ("b", 2), ("d", 2)])).then_some(())
        })
        .await;
        eprintln!(
            "{label}: rebalanced {:?} after a fourth process joined",
            joined.elapsed()
        );
        leases_agree(&ts.store, &board).await;
        assert!(
            board.doubles.lock().unwrap().is_empty(),
            "{label}: {:?}",
            board.doubles.lock().unwrap()
        );
        assert_eq!(
            a.stats.handed_back() + b.stats.handed_back() - before,
            2,
            "{label}: one move each"
        );

        // Shutdown: everything stopped and released.
        for p in [a, b, d] {
            p.cancel.cancel();
            p.task.await.unwrap();
            p.store.close().await;
        }
        assert_eq!(board.led(), 0, "{label}");
        // Org leases released; only the killed process's membership is left, lapsed.
        let leases = ts.store.leases("").await.unwrap();
        assert!(
            leases
                .iter()
                .all(|l| l.live_holder().is_none()
                    && (l.holder.is_none() || l.name == "member:100:c")),
            "{label}: all released: {leases:?}"
        );
        ts.cleanup().await;
    }
}
