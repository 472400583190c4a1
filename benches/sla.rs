//! SLA engine at scale (issue 12): 1,000,000 open timers in a SQLite store, then
//!
//! - the tick cost when 1,000 fall due (`Engine::detect`: the due-time index read, one
//!   batch of touches, 1,000 compare-and-set transitions with their events and breach
//!   actions in one transaction), against the same over 10,000 open timers: O(due)
//!   means the two match; then the 1,000 exception escalations (`Engine::act`);
//! - an idle tick (nothing due) over 1,000,000 timers;
//! - the breach detection delay of the running engine (`Engine::run`, 1 s tick):
//!   timers falling due over 3 s, each breach's journaled time minus its due time;
//! - memory: the process's peak RSS before and after the ticks.
//!
//! `cargo bench --bench sla [-- --timers N]`. Figures in BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use leadroute::config::Config;
use leadroute::service::clock::SystemClock;
use leadroute::service::metrics::Metrics;
use leadroute::sla::run::Engine;
use leadroute::sla::touch::MemoryTouches;
use leadroute::store::Store;
use leadroute_sim::hubspot::HubSpotSimConfig;
use sqlx::any::AnyPoolOptions;

const POLICY: &str = r#"
[reps.a]
owner = "1"
[default]
action = "keep"
[[sla]]
name = "first-touch"
within_secs = 900
on_breach = "exception"
"#;

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Inserts `n` open timers: the first `due` of them due at `due_at_ms`, the rest spread
/// over the next 30 days.
async fn fill(url: &str, n: usize, due: usize, now_ms: i64, due_at_ms: i64, prefix: &str) {
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("pool");
    const COLS: usize = 13;
    const ROWS: usize = 256 / COLS;
    let mut tx = pool.begin().await.expect("tx");
    let mut i = 0;
    while i < n {
        let rows = ROWS.min(n - i);
        let mut sql = String::from(
            "INSERT INTO sla_timers (org, sla, object, record_id, owner, rule, run_id, seq, attempt, started_at, due_at, next_at, state) VALUES ",
        );
        for r in 0..rows {
            if r > 0 {
                sql.push_str(", ");
            }
            let b = r * COLS;
            sql.push('(');
            sql.push_str(
                &(1..=COLS)
                    .map(|c| format!("${}", b + c))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            sql.push(')');
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for k in i..i + rows {
            let next = if k < due {
                due_at_ms
            } else {
                now_ms + 60_000 + (k as i64 * 2_591_000) % 2_592_000_000
            };
            q = q
                .bind("hubspot")
                .bind("first-touch")
                .bind("contact")
                .bind(format!("{prefix}{k}"))
                .bind("1")
                .bind("default")
                .bind(format!("bench-{prefix}"))
                .bind(k as i64)
                .bind(0i64)
                .bind(now_ms - 3_600_000)
                .bind(next)
                .bind(next)
                .bind("open");
        }
        q.execute(&mut *tx).await.expect("insert");
        i += rows;
        if i % 50_000 < ROWS {
            tx.commit().await.expect("commit");
            tx = pool.begin().await.expect("tx");
        }
    }
    tx.commit().await.expect("commit");
    pool.close().await;
}

fn main() {
    let mut timers = 1_000_000usize;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--timers") {
        timers = args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(timers);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        sqlx::any::install_default_drivers();
        let sim = leadroute_sim::hubspot::spawn(HubSpotSimConfig {
            contacts: 10,
            companies: 2,
            owners: 3,
            ..HubSpotSimConfig::default()
        })
        .await
        .expect("simulator");
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = leadroute::policy::parse("bench.toml", POLICY).expect("policy").0;
        let mut rows = Vec::new();
        for (n, label) in [(10_000usize, "10k"), (timers, "1M")] {
            let url = format!("sqlite://{}", dir.path().join(format!("{label}.db")).display());
            let store = Store::open(&url).await.expect("store");
            let config = Config::from_toml(
                &format!(
                    "[crm]\nbase_url = \"{}\"\n[store]\nurl = \"{url}\"\n",
                    sim.base_url()
                ),
                "bench.toml",
                &|name| (name == "LEADROUTE_CRM_TOKEN").then(|| sim.token()),
            )
            .expect("config");
            let crm = Arc::new(leadroute::app::hubspot(&config).expect("connector"));
            let engine = Engine {
                org: "hubspot".into(),
                store: store.clone(),
                writer: leadroute::writer::Writer::new(
                    crm,
                    store.clone(),
                    config.writer.settings.clone(),
                ),
                touches: MemoryTouches::default(),
                clock: Arc::new(SystemClock),
                metrics: Arc::new(Metrics::new()),
                http: reqwest::Client::new(),
                notify_attempts: 1,
            };
            let now = Utc::now().timestamp_millis();
            let t = Instant::now();
            fill(&url, n, 1000, now, now - 1, "a").await;
            let fill_secs = t.elapsed().as_secs_f64();
            store.sla_cursor_init("hubspot", Utc::now()).await.expect("cursor");
            // Idle tick first (nothing due yet beyond the 1,000: measure after them).
            let rss_before = peak_rss_mb();
            let t = Instant::now();
            let mut report = engine.detect(&policy).await.expect("tick");
            let due_tick = t.elapsed();
            assert_eq!(report.breached, 1000, "{report:?}");
            // The escalations those breaches queued (an exception each), 100 per pass.
            let t = Instant::now();
            while report.actions < 1000 {
                engine.act(&policy, &mut report).await.expect("act");
            }
            let act_secs = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let idle = engine.tick(&policy).await.expect("tick");
            let idle_tick = t.elapsed();
            assert_eq!(idle.due, 0);
            // The due-time index read alone.
            let t = Instant::now();
            let got = store
                .sla_due("hubspot", Utc::now(), 1000)
                .await
                .expect("due");
            let index_read = t.elapsed();
            assert!(got.is_empty());
            let rss_after = peak_rss_mb();
            println!(
                "{label}: {n} open timers (filled in {fill_secs:.1} s); detect with 1,000 due (1,000 breaches journaled with their actions): {:.1} ms; 1,000 exception escalations: {act_secs:.2} s; idle tick: {:.2} ms; due-index read: {:.2} ms; peak RSS {rss_before:.0} -> {rss_after:.0} MB",
                due_tick.as_secs_f64() * 1e3,
                idle_tick.as_secs_f64() * 1e3,
                index_read.as_secs_f64() * 1e3
            );
            rows.push((label, due_tick, idle_tick));
            if label == "1M" {
                // Detection delay: 1,000 more timers falling due over the next 3 s, the
                // engine running on its 1 s tick.
                let start = Utc::now().timestamp_millis();
                let pool = AnyPoolOptions::new().max_connections(1).connect(&url).await.expect("pool");
                for k in 0..1000i64 {
                    let due = start + 500 + k * 3;
                    sqlx::query("INSERT INTO sla_timers (org, sla, object, record_id, owner, rule, run_id, seq, attempt, started_at, due_at, next_at, state) VALUES ('hubspot', 'first-touch', 'contact', $1, '1', 'default', 'bench-d', $2, 0, $3, $4, $4, 'open')")
                        .bind(format!("d{k}"))
                        .bind(k)
                        .bind(start - 1000)
                        .bind(due)
                        .execute(&pool)
                        .await
                        .expect("insert");
                }
                pool.close().await;
                let (_tx, rx) = tokio::sync::watch::channel(Arc::new(policy.clone()));
                let cancel = tokio_util::sync::CancellationToken::new();
                let run = tokio::spawn(engine.run(rx, Duration::from_secs(1), cancel.clone()));
                tokio::time::sleep(Duration::from_secs(6)).await;
                cancel.cancel();
                let _ = run.await;
                let events = store
                    .sla_events("hubspot", &["breached"], Some(chrono::DateTime::from_timestamp_millis(start).unwrap_or_default()), None)
                    .await
                    .expect("events");
                let timers = store
                    .sla_timers("hubspot", Some(leadroute::store::sla::TimerState::Breached), None, 5000)
                    .await
                    .expect("timers");
                let due_of: std::collections::HashMap<i64, chrono::DateTime<Utc>> =
                    timers.iter().map(|t| (t.id, t.due_at)).collect();
                let mut delays: Vec<i64> = events
                    .iter()
                    .filter_map(|e| due_of.get(&e.timer_id).map(|d| (e.at - *d).num_milliseconds()))
                    .collect();
                delays.sort_unstable();
                let p = |q: f64| delays.get(((delays.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(-1);
                println!(
                    "detection delay over {} breaches (1 s tick): p50 {} ms, p95 {} ms, max {} ms",
                    delays.len(),
                    p(0.5),
                    p(0.95),
                    delays.last().copied().unwrap_or(-1)
                );
            }
            store.close().await;
        }
        if let [(_, small, _), (_, big, _)] = rows.as_slice() {
            println!(
                "O(due): tick with 1,000 due over 1M timers / over 10k timers = {:.2}",
                big.as_secs_f64() / small.as_secs_f64()
            );
        }
        sim.shutdown().await;
    });
}
