//! Analytics benchmark: the `/analytics` page's and `leadroute report`'s store reads,
//! maths and rendering over a large SQLite store: 1,000,000 ledger history rows,
//! 1,000,000 people (first seen over 30 days, each with a lead source) and 1,000,000
//! applied journal rows, 200 owners in teams, 5 pools with a roster change.
//!
//! Run: `cargo bench --bench analytics` (`-- --rows N` for another size). The rows are
//! generated in SQL (recursive CTEs), so set-up takes seconds. Each phase runs three
//! times and the median is shown, with its ratio to the floor: a bare scan of the same
//! rows' two columns through a plain SQLite pool (the least any query reading those
//! rows must do).

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use leadroute::analytics::{self, Inputs, RosterSource, Window};
use leadroute::domain::{CrmKind, OwnerId};
use leadroute::store::Store;
use sqlx::sqlite::SqlitePoolOptions;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn time<T, F, Fut>(mut f: F) -> (Duration, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let start = Instant::now();
        let out = f().await;
        times.push(start.elapsed());
        last = Some(out);
    }
    (median(times), last.expect("three runs"))
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut rows: i64 = 1_000_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--rows"
            && let Some(n) = args.next().and_then(|n| n.parse().ok())
        {
            rows = n;
        }
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("analytics.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::open(&url).await.expect("open the store");
    let raw = SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&format!("{url}?mode=rwc"))
        .await
        .expect("a plain pool on the same file");

    let now = Utc.with_ymd_and_hms(2026, 12, 8, 0, 0, 0).unwrap();
    let from_ms = (now - chrono::Duration::days(30)).timestamp_millis();
    let span_ms = chrono::Duration::days(30).num_milliseconds();
    println!("# analytics over {rows} ledger, people and journal rows (SQLite)");
    let setup = Instant::now();
    let numbered = |body: &str| {
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {}) {body}",
            rows - 1
        )
    };
    let statements = [
        "INSERT INTO owners (org, object, id, kind, email, name, active, teams, raw, synced_at) \
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 199) \
         SELECT 'hubspot', 'owner', 'o' || i, 'user', NULL, 'Rep ' || i, 1, \
         '[{\"id\":\"t' || (i % 8) || '\",\"name\":\"Team ' || (i % 8) || '\",\"primary\":true}]', \
         '{}', 0 FROM n"
            .to_owned(),
        numbered(&format!(
            "INSERT INTO ledger_history (org, object, id, owner_id, pool, rule, assigned_at) \
             SELECT 'hubspot', 'contact', 'c' || i, 'o' || (i % 200), \
             CASE WHEN i % 4 = 0 THEN NULL ELSE 'pool' || (i % 5) END, 'rule' || (i % 12), \
             {from_ms} + (i * {span_ms}) / {rows} FROM n"
        )),
        numbered(&format!(
            "INSERT INTO people (org, object, id, converted, updated_at, fields, raw, synced_at, \
             first_seen_at, owner_id) \
             SELECT 'hubspot', 'contact', 'c' || i, 0, 0, \
             '{{\"lifecyclestage\":\"lead\",\"lead_source\":\"S' || (i % 6) || '\"}}', '{{}}', 0, \
             {from_ms} + (i * {span_ms}) / {rows}, 'o' || (i % 200) FROM n"
        )),
        numbered(&format!(
            "INSERT INTO writer_journal (run_id, seq, org, object, record_id, field, after_owner, \
             rule, reason, policy_version, state, planned_at, outcome, outcome_at) \
             SELECT 'run', i, 'hubspot', 'contact', 'c' || i, 'hubspot_owner_id', 'o' || (i % 200), \
             'r', 'x', 'v', 'done', 0, 'applied', \
             {from_ms} + (i * {span_ms}) / {rows} + 1000 * (1 + (i * 7919) % 5400) FROM n"
        )),
    ];
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&raw)
            .await
            .expect("generate rows");
    }
    sqlx::query("ANALYZE").execute(&raw).await.expect("analyze");
    // Five pools of 40 reps; pool0 gains 10 reps (weight 2) half-way.
    let members = |extra: bool| -> Vec<(String, OwnerId, u32)> {
        (0..200)
            .filter(|i| extra || !(*i >= 190 && i % 5 == 0))
            .map(|i| {
                (
                    format!("pool{}", i % 5),
                    OwnerId::new(format!("o{i}")),
                    1 + u32::from(i >= 190),
                )
            })
            .collect()
    };
    let t0 = now - chrono::Duration::days(30);
    store
        .note_roster("hubspot", &members(false), t0)
        .await
        .expect("roster");
    store
        .note_roster("hubspot", &members(true), t0 + chrono::Duration::days(15))
        .await
        .expect("roster");
    println!("set-up: {:.1} s\n", setup.elapsed().as_secs_f64());

    let org = leadroute::domain::OrgId::default_for(CrmKind::Hubspot);
    let crm = &org;
    println!("| phase | window | rows | median | floor | ratio |");
    println!("|---|---|---|---|---|---|");
    for days in [30, 7] {
        let window = Window::ending(now, chrono::Duration::days(days));
        let (wf, wt) = (window.from.timestamp_millis(), window.to.timestamp_millis());
        let (floor_a, n_a) = time(|| async {
            sqlx::query(
                "SELECT owner_id, assigned_at FROM ledger_history \
                 WHERE org = 'hubspot' AND assigned_at >= ?1 AND assigned_at < ?2",
            )
            .bind(wf)
            .bind(wt)
            .fetch_all(&raw)
            .await
            .expect("scan")
            .len()
        })
        .await;
        let (floor_p, _) = time(|| async {
            sqlx::query(
                "SELECT id, first_seen_at FROM people \
                 WHERE org = 'hubspot' AND first_seen_at >= ?1 AND first_seen_at < ?2",
            )
            .bind(wf)
            .bind(wt)
            .fetch_all(&raw)
            .await
            .expect("scan")
            .len()
        })
        .await;
        let (t_a, assignments) = time(|| async {
            store
                .analytics_assignments(crm, window)
                .await
                .expect("read")
        })
        .await;
        let (t_l, leads) = time(|| async {
            store
                .analytics_lead_timings(crm, window)
                .await
                .expect("read")
        })
        .await;
        let (t_o, owners) =
            time(|| async { store.analytics_owners(crm).await.expect("read") }).await;
        let (t_r, roster) = time(|| async {
            store
                .analytics_roster("hubspot", window)
                .await
                .expect("read")
        })
        .await;
        let inputs = Inputs {
            assignments,
            owners,
            roster,
            roster_source: RosterSource::Recorded,
            leads,
            drift: Vec::new(),
        };
        let (t_b, report) = time(|| async { analytics::build(now, window, &inputs) }).await;
        let (t_p, html) = time(|| async { analytics::page::render(&report) }).await;
        let d = format!("{days} d");
        let ratio = |t: Duration, f: Duration| format!("{:.1}×", t.as_secs_f64() / f.as_secs_f64());
        println!(
            "| assignments (ledger history ⋈ people, source parsed) | {d} | {n_a} | {} | {} | {} |",
            ms(t_a),
            ms(floor_a),
            ratio(t_a, floor_a)
        );
        println!(
            "| lead timings (people → first applied journal row) | {d} | {} | {} | {} | {} |",
            inputs.leads.len(),
            ms(t_l),
            ms(floor_p),
            ratio(t_l, floor_p)
        );
        println!(
            "| owners | {d} | {} | {} | | |",
            inputs.owners.len(),
            ms(t_o)
        );
        println!(
            "| roster | {d} | {} | {} | | |",
            inputs.roster.len(),
            ms(t_r)
        );
        println!(
            "| maths (distribution, fairness, speed) | {d} | | {} | | |",
            ms(t_b)
        );
        println!(
            "| page render ({} KiB of HTML) | {d} | | {} | | |",
            html.len() / 1024,
            ms(t_p)
        );
        let total = t_a + t_l + t_o + t_r + t_b + t_p;
        println!(
            "| **whole report** | {d} | | **{}** | {} | {} |",
            ms(total),
            ms(floor_a + floor_p),
            ratio(total, floor_a + floor_p)
        );
    }
}
