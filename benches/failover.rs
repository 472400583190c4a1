//! Failover benchmark (issue 10, "Must show" (c)): two `leadroute run` processes over one
//! PostgreSQL store beside the HubSpot simulator; `kill -9` of the leader, then a new
//! lead is created at once: how long until the standby leads (its `/readyz`), and until
//! its first write (the lead's owner in the simulator), against the target of the lease
//! TTL + 2 s. `--trials` rounds (3), each with fresh processes; the standby of a round
//! is stopped with SIGTERM (releasing its lease) before the next.
//!
//! `LEADROUTE_TEST_PG_URL=postgres://… cargo bench --bench failover -- [--ttl 15]
//! [--trials 3]` (a schema of its own, dropped at the end); `LEADROUTE_BENCH_BIN=PATH`
//! runs another `leadroute` build instead of this one, to compare.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use leadroute_sim::hubspot::{HubSpotSim, HubSpotSimConfig, Mutation, ObjectType};

fn arg(name: &str, default: u64) -> u64 {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == name)
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe");
    probe.local_addr().expect("probe address").port()
}

fn create_lead(sim: &HubSpotSim, n: u32) -> String {
    let properties = BTreeMap::from([
        ("firstname".to_owned(), format!("Lead{n}")),
        ("lastname".to_owned(), "Failover".to_owned()),
        (
            "email".to_owned(),
            format!("lead{n}@failover-bench.example"),
        ),
    ]);
    let created = sim
        .mutate(Mutation::Create {
            object: ObjectType::Contacts,
            properties,
            company_id: None,
        })
        .expect("create a contact");
    created.ids[0].clone()
}

fn owner_in_crm(sim: &HubSpotSim, id: &str) -> Option<String> {
    sim.state()
        .contacts
        .iter()
        .find(|c| c.id.to_string() == id)
        .and_then(|c| c.properties.get("hubspot_owner_id").cloned())
        .filter(|o| !o.is_empty())
}

async fn lease_state(base: &str) -> Option<String> {
    let response = reqwest::get(format!("{base}/readyz")).await.ok()?;
    let body: serde_json::Value = response.json().await.ok()?;
    body["lease"]["state"].as_str().map(str::to_owned)
}

async fn wait(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[allow(clippy::too_many_arguments)]
fn run_process(
    dir: &Path,
    name: &str,
    sim: &HubSpotSim,
    store_url: &str,
    port: u16,
    policy: &Path,
    ttl: u64,
) -> Child {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[crm]\nbase_url = \"{}\"\noverlap_secs = 2\n\
             [store]\nurl = \"{store_url}\"\n\
             [webhook]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\nsecret = \"{}\"\n\
             [policy]\npath = \"{}\"\n\
             [sync]\ninterval_secs = 1\nhint_poll_ms = 50\n\
             [service]\nlinger_ms = 50\nlease_ttl_secs = {ttl}\n",
            sim.base_url(),
            sim.config().client_secret,
            policy.display()
        ),
    )
    .expect("write a config");
    // LEADROUTE_BENCH_BIN: another build to compare (e.g. the previous release's).
    let bin = std::env::var("LEADROUTE_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_leadroute").to_owned());
    let mut command = Command::new(bin);
    command
        .args(["--config", &config.display().to_string(), "run"])
        .current_dir(dir);
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("LEADROUTE_")) {
        command.env_remove(name);
    }
    command
        .env("LEADROUTE_CRM_TOKEN", sim.token())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(dir.join(format!("{name}.log")))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        )
        .spawn()
        .expect("spawn leadroute run")
}

fn main() {
    let ttl = arg("--ttl", 15);
    let trials = u32::try_from(arg("--trials", 3)).unwrap_or(3);
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
        let schema = format!("lr_bench_failover_{}", std::process::id());
        let admin = sqlx::AnyPool::connect(&base).await.expect("PostgreSQL answers");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options[search_path]={schema}");
        let sim = leadroute_sim::hubspot::spawn(HubSpotSimConfig {
            contacts: 60,
            companies: 6,
            owners: 10,
            search_lag: Duration::ZERO,
            webhook_retry_base: Duration::from_millis(20),
            ..HubSpotSimConfig::default()
        })
        .await
        .expect("simulator");
        let owner = sim
            .state()
            .owners
            .iter()
            .find(|o| !o.archived && o.owner_type == "PERSON")
            .map(|o| o.id.to_string())
            .expect("an active owner");
        let dir = tempfile::tempdir().expect("temp dir");
        let policy = dir.path().join("policy.toml");
        std::fs::write(
            &policy,
            format!(
                "[settings]\nname = \"failover-bench\"\nsticky = false\nmanual_override_days = 0\n\n\
                 [reps.a]\nowner = \"{owner}\"\n\n\
                 [[rules]]\nname = \"bench-leads\"\nwhen = [{{ field = \"email_domain\", in = [\"failover-bench.example\"] }}]\naction = \"owner\"\nrep = \"a\"\n\n\
                 [default]\naction = \"keep\"\n"
            ),
        )
        .expect("write the policy");
        println!(
            "# failover bench: 2 `leadroute run` processes ({}), PostgreSQL, HubSpot simulator, TTL {ttl} s, {trials} trials (load {})",
            std::env::var("LEADROUTE_BENCH_BIN").unwrap_or_else(|_| "this build".to_owned()),
            loadavg()
        );
        let mut n = 0;
        let mut results = Vec::new();
        for trial in 1..=trials {
            let (port_a, port_b) = (free_port(), free_port());
            let (base_a, base_b) = (
                format!("http://127.0.0.1:{port_a}"),
                format!("http://127.0.0.1:{port_b}"),
            );
            let mut a = run_process(dir.path(), &format!("a{trial}"), &sim, &url, port_a, &policy, ttl);
            wait("A leads", 120, async || lease_state(&base_a).await.as_deref() == Some("leader")).await;
            let mut b = run_process(dir.path(), &format!("b{trial}"), &sim, &url, port_b, &policy, ttl);
            wait("B stands by", 120, async || lease_state(&base_b).await.as_deref() == Some("standby")).await;
            sim.set_webhook_url(Some(format!("{base_b}/webhooks/hubspot")));
            n += 1;
            let first = create_lead(&sim, n);
            wait("A writes a lead", 60, async || owner_in_crm(&sim, &first).as_deref() == Some(owner.as_str())).await;

            a.kill().expect("kill -9 A");
            let killed = Instant::now();
            let _ = a.wait();
            n += 1;
            let second = create_lead(&sim, n);
            let mut led = None;
            wait("B writes the next lead", 120, async || {
                if led.is_none() && lease_state(&base_b).await.as_deref() == Some("leader") {
                    led = Some(killed.elapsed());
                }
                owner_in_crm(&sim, &second).as_deref() == Some(owner.as_str())
            })
            .await;
            let written = killed.elapsed();
            let led = led.unwrap_or(written);
            println!(
                "trial {trial}: B leads {:.2} s after the kill, first write {:.2} s after = {:.3}x the target (TTL + 2 s = {} s)",
                led.as_secs_f64(),
                written.as_secs_f64(),
                written.as_secs_f64() / (ttl + 2) as f64,
                ttl + 2
            );
            results.push(written);
            let _ = Command::new("kill").args(["-TERM", &b.id().to_string()]).status();
            let _ = b.wait();
        }
        results.sort();
        if let (Some(best), Some(worst)) = (results.first(), results.last()) {
            println!(
                "kill -9 → first write by the standby: best {:.2} s, worst {:.2} s (target ≤ {} s)",
                best.as_secs_f64(),
                worst.as_secs_f64(),
                ttl + 2
            );
        }
        sim.shutdown().await;
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&admin)
        .await;
        admin.close().await;
    });
}
