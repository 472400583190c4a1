//! Fleet benchmark (issue 11, "Must show", the lease part): `--orgs` orgs (20) spread
//! over two processes' fleets on one PostgreSQL store, each fleet with its own pool as
//! a separate process would have, pipelines replaced by a recorder (start and a 50 ms
//! graceful stop), so what is measured is the lease mechanism itself:
//!
//! - start: both join together → every org led, the split, orgs moved;
//! - steady state for `--secs`: lease statements per process per minute against the
//!   floor of two per tick (one renewal of every lease held, one read of the view) at a
//!   tick of TTL / 3;
//! - one process dies (task aborted, pool closed, nothing released): its orgs led again
//!   after how long, against the TTL;
//! - a new process joins: rebalanced after how long, and how many orgs moved;
//! - shutdown: every org stopped and released.
//!
//! `LEADROUTE_TEST_PG_URL=postgres://… cargo bench --bench fleet -- [--orgs 20]
//! [--ttl 15] [--secs 60]` (a schema of its own, dropped at the end).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use leadroute::service::fleet::{Fleet, FleetConfig, FleetStats, OrgRunner, Term};
use leadroute::store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Board {
    running: Mutex<BTreeMap<String, String>>,
    doubles: Mutex<u64>,
}

impl Board {
    fn split(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for id in self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            *out.entry(id.clone()).or_default() += 1;
        }
        out
    }
    fn led(&self) -> usize {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

struct Recorder {
    id: String,
    board: Arc<Board>,
}

impl OrgRunner for Recorder {
    async fn start(&self, term: Term) -> anyhow::Result<()> {
        let mut running = self
            .board
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if running.insert(term.org, self.id.clone()).is_some() {
            *self
                .board
                .doubles
                .lock()
                .unwrap_or_else(PoisonError::into_inner) += 1;
        }
        Ok(())
    }
    async fn stop(&self, org: &str) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut running = self
            .board
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
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

fn spawn(store: Store, id: &str, board: &Arc<Board>, config: &FleetConfig) -> Process {
    let runner = Arc::new(Recorder {
        id: id.to_owned(),
        board: Arc::clone(board),
    });
    let fleet = Fleet::with_holder(store.clone(), runner, config.clone(), id.to_owned());
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

async fn until(what: &str, limit: Duration, check: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn arg(name: &str, default: u64) -> u64 {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == name)
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let orgs = usize::try_from(arg("--orgs", 20)).unwrap_or(20);
    let ttl = Duration::from_secs(arg("--ttl", 15));
    let secs = arg("--secs", 60);
    let Ok(base) = std::env::var("LEADROUTE_TEST_PG_URL") else {
        eprintln!("set LEADROUTE_TEST_PG_URL to a PostgreSQL database to run this benchmark");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        sqlx::any::install_default_drivers();
        let schema = format!("lr_bench_fleet_{}", std::process::id());
        let admin = sqlx::AnyPool::connect(&base).await.expect("PostgreSQL answers");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options[search_path]={schema}");
        let open = || async { Store::open(&url).await.expect("open store") };
        let config = FleetConfig::new(
            (1..=orgs).map(|i| format!("org{i:02}")).collect(),
            1_000,
            ttl,
        );
        println!(
            "# fleet bench: {orgs} orgs, 2 processes, TTL {} s (tick {} ms), steady {secs} s, PostgreSQL (load {})",
            ttl.as_secs(),
            config.every.as_millis(),
            loadavg()
        );
        let board = Arc::new(Board::default());
        let limit = ttl * 4 + Duration::from_secs(10);

        // Start: both join together.
        let (s1, s2) = (open().await, open().await);
        let started = Instant::now();
        let p1 = spawn(s1, "p1", &board, &config);
        let p2 = spawn(s2, "p2", &board, &config);
        let all = until("all led", limit, || board.led() == orgs).await;
        until("even split", limit, || {
            board.split().values().all(|n| *n == orgs / 2) && board.led() == orgs
        })
        .await;
        println!(
            "start: every org led after {:.2} s, split {:?} after {:.2} s, orgs moved {}",
            all.as_secs_f64(),
            board.split(),
            started.elapsed().as_secs_f64(),
            p1.stats.handed_back() + p2.stats.handed_back()
        );

        // Steady state.
        let (st1, tk1) = (p1.stats.statements(), p1.stats.ticks());
        let (st2, tk2) = (p2.stats.statements(), p2.stats.ticks());
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let per_min = |now: u64, then: u64| (now - then) as f64 * 60.0 / secs as f64;
        let floor = 2.0 * 60.0 / config.every.as_secs_f64();
        for (name, p, st, tk) in [("p1", &p1, st1, tk1), ("p2", &p2, st2, tk2)] {
            let rate = per_min(p.stats.statements(), st);
            println!(
                "steady {name}: {:.1} lease statements/min over {} ticks for {} orgs = {:.3}x the floor of {floor:.1}/min (2 per tick); {:.2}/min per org led",
                rate,
                p.stats.ticks() - tk,
                orgs / 2,
                rate / floor,
                rate / (orgs / 2) as f64,
            );
        }

        // p2 dies: aborted, pool closed, nothing released.
        let before = p1.stats.statements();
        p2.task.abort();
        let _ = p2.task.await;
        p2.store.close().await;
        board
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, by| by != "p2");
        let took = until("orgs of p2 led again", limit, || board.led() == orgs).await;
        println!(
            "p2 killed: its {} orgs led again by p1 after {:.2} s = {:.3}x the TTL ({} s); {} statements meanwhile",
            orgs / 2,
            took.as_secs_f64(),
            took.as_secs_f64() / ttl.as_secs_f64(),
            ttl.as_secs(),
            p1.stats.statements() - before
        );

        // p3 joins.
        let handed = p1.stats.handed_back();
        let p3 = spawn(open().await, "p3", &board, &config);
        let took = until("rebalanced", limit, || {
            board.led() == orgs && board.split().values().all(|n| *n == orgs / 2)
        })
        .await;
        println!(
            "p3 joined: rebalanced to {:?} after {:.2} s ({:.2} ticks), {} orgs moved (minimum {})",
            board.split(),
            took.as_secs_f64(),
            took.as_secs_f64() / config.every.as_secs_f64(),
            p1.stats.handed_back() - handed,
            orgs / 2
        );

        // Shutdown.
        let stopping = Instant::now();
        for p in [p1, p3] {
            p.cancel.cancel();
            let _ = p.task.await;
            p.store.close().await;
        }
        println!(
            "shutdown: every org stopped and released after {:.2} s; double leads over the run: {}",
            stopping.elapsed().as_secs_f64(),
            *board.doubles.lock().unwrap_or_else(PoisonError::into_inner)
        );
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&admin)
        .await;
        admin.close().await;
    });
}
