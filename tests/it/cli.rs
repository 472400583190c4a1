//! The `leadroute` binary as a user runs it: config errors, `sync --once` against a
//! simulator, and the demo.

use leadroute::domain::{OrgId, OrgRef};
use std::process::{Command, Output};

use leadroute::store::Store;
use leadroute_crm::CrmKind;

use crate::helpers::sim_config;

const VARS: &[&str] = &[
    "LEADROUTE_CONFIG",
    "LEADROUTE_CRM_KIND",
    "LEADROUTE_CRM_BASE_URL",
    "LEADROUTE_CRM_TOKEN",
    "LEADROUTE_CRM_TOKEN_FILE",
    "LEADROUTE_STORE_URL",
    "LEADROUTE_WEBHOOK_SECRET",
    "LEADROUTE_ORG",
];

/// The binary with a clean LEADROUTE_* environment, run off the async runtime.
pub(crate) async fn leadroute(
    args: &[&str],
    env: &[(&str, String)],
    dir: &std::path::Path,
) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_leadroute"));
    command.args(args).current_dir(dir);
    for var in VARS {
        command.env_remove(var);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::task::spawn_blocking(move || command.output().expect("run leadroute"))
        .await
        .unwrap()
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn config_problems_are_all_reported_with_their_place_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[crm]\nbase_url = \"api.hubapi.com\"\ntier = \"gold\"\n[sync]\ninterval_secs = 0\n",
    )
    .unwrap();
    let out = leadroute(&["--config", "bad.toml", "sync", "--once"], &[], dir.path()).await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    for line in [
        "bad.toml: crm.base_url: \"api.hubapi.com\" is not a URL",
        "bad.toml: crm.tier: unknown tier \"gold\"; use free, starter",
        "bad.toml: crm.token: missing",
        "bad.toml: sync.interval_secs: 0 is out of range; use a value from 1",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }

    // No config file at all: the one thing missing is named with the variable to set.
    let out = leadroute(
        &["sync", "--once"],
        &[("LEADROUTE_CRM_TOKEN", "t".into())],
        dir.path(),
    )
    .await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("(no config file): crm.base_url: missing; set crm.base_url in a config file (--config) or LEADROUTE_CRM_BASE_URL"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_once_mirrors_a_simulator_named_only_by_environment_variables() {
    let sim = leadroute_sim::hubspot::spawn(sim_config(250, 15))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mirror.db");
    let env = [
        ("LEADROUTE_CRM_BASE_URL", sim.base_url()),
        ("LEADROUTE_CRM_TOKEN", sim.token()),
        ("LEADROUTE_STORE_URL", format!("sqlite://{}", db.display())),
    ];
    let out = leadroute(&["sync", "--once"], &env, dir.path()).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("contact  full"), "{stdout}");
    assert!(stdout.contains("rate limits:"), "{stdout}");
    assert!(
        !text(&out.stderr).contains(&sim.token()),
        "the token is never logged"
    );

    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    assert_eq!(
        store
            .counts(&OrgId::default_for(CrmKind::Hubspot))
            .await
            .unwrap()
            .contacts,
        250
    );
    store.close().await;

    // The second run is incremental, and --object narrows it.
    let out = leadroute(&["sync", "--once", "--object", "contact"], &env, dir.path()).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("contact  incremental"), "{stdout}");
    assert!(!stdout.contains("account"), "{stdout}");
    let out = leadroute(&["sync", "--once", "--object", "lead"], &env, dir.path()).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("hubspot does not have lead records"));
    sim.shutdown().await;
}

/// The demo's sidecar phase: leads created by the simulator's web form are routed as
/// they arrive, one line each (lead, owner, rule, milliseconds), and the phase ends with
/// speed-to-lead p50/p99 and the metrics URL it served.
fn assert_sidecar_phase(crm: &str, stdout: &str) {
    let phase = stdout
        .split_once("The sidecar (`leadroute run`")
        .unwrap_or_else(|| panic!("no sidecar phase:\n{stdout}"))
        .1;
    let routed: Vec<&str> = phase
        .lines()
        .filter(|l| l.trim_start().starts_with(&format!("{crm}:")) && l.contains(" rule "))
        .filter(|l| l.trim_end().ends_with(" ms") && !l.contains("exception"))
        .collect();
    assert!(!routed.is_empty(), "no lead was routed:\n{phase}");
    for line in &routed {
        let ms: i64 = line
            .trim_end()
            .trim_end_matches(" ms")
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no milliseconds in {line:?}"));
        assert!((0..30_000).contains(&ms), "{line}");
    }
    let p = phase
        .lines()
        .find(|l| l.contains("speed-to-lead"))
        .unwrap_or_else(|| panic!("no speed-to-lead line:\n{phase}"));
    assert!(
        p.contains("p50 ") && p.contains("p99 ") && p.contains(" ms"),
        "{p}"
    );
    assert!(
        p.contains(&format!("over {} leads", routed.len())),
        "{p}\n{phase}"
    );
    let metrics = phase
        .lines()
        .find(|l| l.contains("metrics served at http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no metrics URL:\n{phase}"));
    assert!(metrics.contains("/metrics"), "{metrics}");
}

/// Runs the demo for `crm` in a fresh directory, then `plan` against the config it
/// printed: the demo must have converged the org, so the plan is empty.
async fn demo_converges(crm: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = leadroute(
        &[
            "demo",
            "--crm",
            crm,
            "--contacts",
            "300",
            "--sidecar-secs",
            "4",
        ],
        &[],
        dir.path(),
    )
    .await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert_sidecar_phase(crm, &stdout);
    assert!(stdout.contains("The mirror matches"), "{stdout}");
    assert!(stdout.contains("org is converged"), "{stdout}");
    let applied: u64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("changes"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no applied count in the summary:\n{stdout}"));
    assert!(applied > 0, "the demo applied nothing:\n{stdout}");
    assert!(stdout.contains("Try next"), "{stdout}");
    assert!(stdout.contains("rollback RUN"), "{stdout}");

    let demo = dir.path().join(".leadroute/demo");
    let config = demo.join(format!("{crm}.toml"));
    assert!(demo.join(format!("{crm}.db")).exists());
    assert!(demo.join(format!("{crm}-policy.toml")).exists());
    assert!(stdout.contains(&config.canonicalize().unwrap().display().to_string()));
    let plan = leadroute(
        &["plan", "--config", config.to_str().unwrap()],
        &[],
        dir.path(),
    )
    .await;
    let plan_out = text(&plan.stdout);
    assert!(plan.status.success(), "{plan_out}\n{}", text(&plan.stderr));
    assert!(plan_out.contains(": 0 changes,"), "{plan_out}");

    // The "Try next" line for the policy runs as printed.
    let check_line = stdout
        .lines()
        .find(|l| l.contains(" policy check "))
        .unwrap_or_else(|| panic!("no policy check line under Try next:\n{stdout}"));
    let args: Vec<&str> = check_line
        .split_whitespace()
        .skip_while(|w| *w != "policy")
        .collect();
    let check = leadroute(&args, &[], dir.path()).await;
    assert!(
        check.status.success(),
        "`{check_line}` failed:\n{}\n{}",
        text(&check.stdout),
        text(&check.stderr)
    );

    // The simulators write country names ("Germany", "United States") and the demo
    // policy lists ISO codes: records still land in its country territories and pools.
    let kind = if crm == "hubspot" {
        CrmKind::Hubspot
    } else {
        CrmKind::Salesforce
    };
    let db = demo.join(format!("{crm}.db"));
    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let snapshot = store.snapshot(&OrgRef::default_for(kind)).await.unwrap();
    assert!(
        snapshot
            .people
            .iter()
            .any(|p| p.country.as_deref() == Some("Germany")),
        "the simulator no longer writes country names; this check needs another org"
    );
    let policy = leadroute::policy::load(&demo.join(format!("{crm}-policy.toml"))).unwrap();
    let mut ledger = store.load_ledger(&OrgId::default_for(kind)).await.unwrap();
    let matcher = leadroute::reconcile::matching::Matcher::new(
        &snapshot.accounts,
        &snapshot.owners,
        &Default::default(),
    );
    let mut by_rule: std::collections::BTreeMap<String, usize> = Default::default();
    let mut by_territory: std::collections::BTreeMap<String, usize> = Default::default();
    leadroute::reconcile::decide_all(
        &snapshot,
        &policy,
        &matcher,
        &mut ledger,
        chrono::Utc::now(),
        None,
        |_, d| {
            *by_rule.entry(d.rule.clone()).or_default() += 1;
            if let Some(t) = d.territory {
                *by_territory.entry(t).or_default() += 1;
            }
        },
    );
    for t in ["emea", "north_america"] {
        assert!(
            by_territory.get(t).is_some_and(|n| *n > 0),
            "no record in territory {t}: {by_territory:?}"
        );
    }
    for r in ["emea", "north-america"] {
        assert!(
            by_rule.get(r).is_some_and(|n| *n > 0),
            "no record routed by rule {r}: {by_rule:?}"
        );
    }
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hubspot_demo_runs_the_whole_job_with_no_setup_and_converges() {
    demo_converges("hubspot").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_salesforce_demo_runs_the_whole_job_with_no_setup_and_converges() {
    let stdout = demo_converges("salesforce").await;
    // The figures agree with each other: leadroute's and the org's call counts, the
    // write calls and their minimum in one unit (a bulk job is several calls), and
    // the header's record counts with what the mirror holds.
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{stdout}"))
            .to_owned()
    };
    let number_after = |text: &str, word: &str| -> u64 {
        text.split(word)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| {
                n.trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no number after {word:?} in {text:?}"))
    };
    let calls = line("API calls");
    assert_eq!(
        number_after(&calls, "API calls"),
        number_after(&calls, "the simulator counted"),
        "{calls}"
    );
    let writes = line("write calls");
    assert_eq!(
        number_after(&writes, "write calls"),
        number_after(&writes, "minimum"),
        "{writes}"
    );
    let header = line("leadroute demo:");
    let leads = number_after(&header, "seed 42,");
    assert!(
        stdout.contains(&format!("{leads} leads (org {leads})")),
        "{header}\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_keeps_mirroring_polls_and_webhooks_until_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    use leadroute_crm::{ObjectKind, OwnerId, RecordId};
    use leadroute_sim::hubspot::{Mutation, ObjectType};

    let sim_cfg = sim_config(150, 10);
    let secret = sim_cfg.client_secret.clone();
    let sim = leadroute_sim::hubspot::spawn(sim_cfg).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mirror.db");
    // Bind a port for the webhook route, then free it for leadroute to take.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.path().join("leadroute.toml"),
        format!(
            "[crm]\nbase_url = \"{}\"\noverlap_secs = 2\n[store]\nurl = \"sqlite://{}\"\n\
             [sync]\ninterval_secs = 3600\nhint_poll_ms = 50\n\
             [webhook]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n",
            sim.base_url(),
            db.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_leadroute"))
        .args(["--config", "leadroute.toml", "sync"])
        .current_dir(dir.path())
        .env_clear()
        .env("LEADROUTE_CRM_TOKEN", sim.token())
        .env("LEADROUTE_WEBHOOK_SECRET", &secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        // Read until the first pass is reported; the rest goes unread.
        let mut seen = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.starts_with("syncing every");
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    })
    .await
    .unwrap();
    assert!(
        lines.iter().any(|l| l.contains(&format!(
            "listening on http://127.0.0.1:{port}/webhooks/hubspot"
        ))),
        "{lines:#?}"
    );

    // A change in the CRM arrives by webhook (polling is an hour away).
    sim.set_webhook_url(Some(format!("http://127.0.0.1:{port}/webhooks/hubspot")));
    let contact = sim
        .state()
        .contacts
        .iter()
        .find(|c| !c.archived)
        .unwrap()
        .id;
    let owner = sim
        .state()
        .owners
        .iter()
        .rev()
        .find(|o| !o.archived)
        .unwrap()
        .id;
    sim.mutate(Mutation::SetOwner {
        object: ObjectType::Contacts,
        id: contact.to_string(),
        owner_id: owner.to_string(),
    })
    .unwrap();
    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    crate::helpers::wait_for("the webhook's change in the mirror", 20, || {
        let store = store.clone();
        async move {
            let person = store
                .person(
                    &OrgId::default_for(CrmKind::Hubspot),
                    ObjectKind::Contact,
                    &RecordId::new(contact.to_string()),
                )
                .await
                .unwrap()?;
            (person.owner_id == Some(OwnerId::new(owner.to_string()))).then_some(())
        }
    })
    .await;
    store.close().await;

    // SIGTERM: it finishes what it is doing and exits cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        !text(&output.stderr).contains(&sim.token()),
        "the token is never logged"
    );
    sim.shutdown().await;
}

/// A converged demo org in `dir` (`.leadroute/demo/hubspot.*`) and `ro.toml`: a config
/// naming only its store and policy, with no CRM URL or credentials.
pub(crate) async fn mirrored_org(dir: &std::path::Path) -> std::path::PathBuf {
    let out = leadroute(
        &[
            "demo",
            "--crm",
            "hubspot",
            "--contacts",
            "200",
            "--sidecar-secs",
            "0",
        ],
        &[],
        dir,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let demo = dir.join(".leadroute/demo");
    let config = dir.join("ro.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"sqlite://{}\"\n[policy]\npath = \"{}\"\n",
            demo.join("hubspot.db").display(),
            demo.join("hubspot-policy.toml").display()
        ),
    )
    .unwrap();
    config
}

/// The first contact id in the org's mirror.
async fn some_contact(dir: &std::path::Path) -> String {
    let db = dir.join(".leadroute/demo/hubspot.db");
    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let snapshot = store
        .snapshot(&OrgRef::default_for(CrmKind::Hubspot))
        .await
        .unwrap();
    store.close().await;
    let person = snapshot
        .people
        .iter()
        .find(|p| p.object == leadroute_crm::ObjectKind::Contact)
        .expect("a contact in the mirror");
    format!("hubspot:contact:{}", person.id)
}

/// Runs the binary with its stdout (or stderr) closed before it writes anything.
pub(crate) async fn with_closed(stream: &str, args: &[&str], dir: &std::path::Path) -> Output {
    use std::process::Stdio;
    let mut command = Command::new(env!("CARGO_BIN_EXE_leadroute"));
    command.args(args).current_dir(dir);
    for var in VARS {
        command.env_remove(var);
    }
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let closed_stdout = stream == "stdout";
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("run leadroute");
        // Dropping the read end closes the pipe: every write gets EPIPE.
        if closed_stdout {
            drop(child.stdout.take());
        } else {
            drop(child.stderr.take());
        }
        child.wait_with_output().expect("wait for leadroute")
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_or_stderr_is_a_quiet_exit_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let config = mirrored_org(dir.path()).await;
    let config = config.to_str().unwrap();
    let record = some_contact(dir.path()).await;
    for args in [
        vec!["plan", "--format", "csv"],
        vec!["plan"],
        vec!["drift", "--format", "csv"],
        vec!["explain", record.as_str()],
        vec!["exceptions", "list", "--all"],
        vec!["policy", "graph"],
    ] {
        let mut all = vec!["--config", config];
        all.extend(&args);
        let out = with_closed("stdout", &all, dir.path()).await;
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}:\n{stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}:\n{stderr}");
    }
    // A closed stderr with log lines to write: no panic.
    let out = with_closed(
        "stderr",
        &["--config", config, "--log", "debug", "exceptions", "list"],
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0));
    // A closed stderr: the error cannot be shown, but the exit code still says so.
    let out = with_closed(
        "stderr",
        &["--config", config, "explain", "hubspot:contact:no-such-id"],
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_that_read_the_mirror_need_no_crm_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let config = mirrored_org(dir.path()).await;
    let config = config.to_str().unwrap();
    let record = some_contact(dir.path()).await;
    let policy = dir.path().join(".leadroute/demo/hubspot-policy.toml");
    let policy = policy.to_str().unwrap();
    for args in [
        vec!["plan"],
        vec!["drift"],
        vec!["explain", record.as_str()],
        vec!["policy", "diff", policy, policy],
        vec!["exceptions", "list"],
    ] {
        let mut all = vec!["--config", config];
        all.extend(&args);
        let out = leadroute(&all, &[], dir.path()).await;
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{args:?}:\n{stderr}");
        assert!(!stderr.contains("crm.token"), "{args:?}:\n{stderr}");
    }
    // A command that calls the CRM still says what it lacks.
    let out = leadroute(&["--config", config, "sync", "--once"], &[], dir.path()).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("crm.base_url: missing"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_output_csv_to_a_file_exception_pages_and_help_on_every_argument() {
    let dir = tempfile::tempdir().unwrap();
    let config = mirrored_org(dir.path()).await;
    let config = config.to_str().unwrap();

    // `plan --format csv --out F`: CSV in F, the summary on stdout.
    let out = leadroute(
        &[
            "--config", config, "plan", "--format", "csv", "--out", "plan.csv",
        ],
        &[],
        dir.path(),
    )
    .await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.starts_with("plan for hubspot"), "{stdout}");
    assert!(
        !stdout.contains("type,object,id"),
        "the CSV went to stdout:\n{stdout}"
    );
    let csv = std::fs::read_to_string(dir.path().join("plan.csv")).unwrap();
    assert!(csv.starts_with("type,object,id,from,to"), "not CSV:\n{csv}");

    // `exceptions list` takes filters and pages.
    let out = leadroute(
        &[
            "--config",
            config,
            "exceptions",
            "list",
            "--all",
            "--kind",
            "no-such-kind",
        ],
        &[],
        dir.path(),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("matching the filters"),
        "{}",
        text(&out.stdout)
    );

    // Logs that do not go to a terminal carry no colour codes.
    let out = leadroute(
        &["--config", config, "--log", "debug", "exceptions", "list"],
        &[],
        dir.path(),
    )
    .await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("DEBUG"), "no log lines to check:\n{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI escapes in a log file:\n{stderr:?}"
    );

    // After the demo converged the org, drift reads as compliance, owners by name.
    let out = leadroute(&["--config", config, "drift"], &[], dir.path()).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("In policy: no record would change owner"),
        "{stdout}"
    );

    // Help text on every argument, e.g. `policy graph FILE`, `policy diff --json --now`,
    // `exceptions resolve ID`, `drift --policy`.
    for (args, needles) in [
        (
            vec!["policy", "graph", "--help"],
            vec!["[FILE]", "Policy file"],
        ),
        (
            vec!["policy", "diff", "--help"],
            vec![
                "<OLD>  The policy in force",
                "Print the differences as JSON",
                "Evaluate as of this instant",
            ],
        ),
        (
            vec!["exceptions", "resolve", "--help"],
            vec!["<ID>  The exception id", "--yes"],
        ),
        (
            vec!["drift", "--help"],
            vec!["--policy <FILE>", "Policy file to judge the owners by"],
        ),
        (
            vec!["exceptions", "list", "--help"],
            vec!["--offset <N>", "--limit <N>"],
        ),
    ] {
        let out = leadroute(&args, &[], dir.path()).await;
        let help = text(&out.stdout);
        for needle in needles {
            assert!(help.contains(needle), "{args:?}: no {needle:?} in\n{help}");
        }
    }
}

/// A loopback port with nothing listening.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_against_a_closed_port_fails_at_once_naming_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let env = [
        ("LEADROUTE_CRM_BASE_URL", url.clone()),
        ("LEADROUTE_CRM_TOKEN", "t".to_owned()),
        (
            "LEADROUTE_STORE_URL",
            format!("sqlite://{}", dir.path().join("m.db").display()),
        ),
    ];
    let started = std::time::Instant::now();
    let out = leadroute(&["sync", "--once"], &env, dir.path()).await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}:\n{stderr}",
        started.elapsed()
    );
    assert!(
        stderr.contains(&format!("cannot connect to {url}/")),
        "{stderr}"
    );
    assert!(stderr.contains("check crm.base_url"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_502_page_is_named_and_each_retry_announced() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let body = "<html><body><h1>502 Bad Gateway</h1></body></html>";
                let response = format!(
                    "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("LEADROUTE_CRM_BASE_URL", url.clone()),
        ("LEADROUTE_CRM_TOKEN", "t".to_owned()),
        (
            "LEADROUTE_STORE_URL",
            format!("sqlite://{}", dir.path().join("m.db").display()),
        ),
    ];
    let started = std::time::Instant::now();
    let out = leadroute(&["sync", "--once"], &env, dir.path()).await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}:\n{stderr}",
        started.elapsed()
    );
    assert!(
        stderr.contains("502: the CRM answered an HTML page, not JSON"),
        "{stderr}"
    );
    // The first call is the org check (`/account-info/v3/details`), then the pages.
    assert!(stderr.contains("retrying GET /"), "{stderr}");
    assert!(stderr.contains("(502, attempt 2 of 3)"), "{stderr}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_is_the_one_retry_layer_for_apply() {
    use leadroute::domain::{ObjectKind, OwnerId, RecordId};
    use leadroute::reconcile::{Plan, PlannedChange};
    use leadroute_sim::hubspot::{EndpointFamily, Fault, FaultRule, FaultScript, Trigger};

    let sim = leadroute_sim::hubspot::spawn(sim_config(20, 5))
        .await
        .unwrap();
    let state = sim.state();
    let owner = state
        .owners
        .iter()
        .find(|o| !o.archived && o.owner_type == "PERSON")
        .map(|o| o.id.to_string())
        .unwrap();
    let changes = state
        .contacts
        .iter()
        .filter(|c| !c.archived)
        .take(3)
        .map(|c| PlannedChange {
            object: ObjectKind::Contact,
            id: RecordId(c.id.to_string()),
            field: "owner".to_owned(),
            from: None,
            to: OwnerId(owner.clone()),
            rule: "it".to_owned(),
            reason: "it".to_owned(),
            policy_version: "it".to_owned(),
            record_updated_at: None,
        })
        .collect();
    let plan = Plan {
        policy_version: "it".to_owned(),
        created_at: chrono::Utc::now(),
        crm: CrmKind::Hubspot,
        changes,
        exceptions: Vec::new(),
    };
    sim.set_faults(FaultScript {
        seed: 1,
        rules: vec![FaultRule {
            families: vec![EndpointFamily::BatchRead, EndpointFamily::BatchUpdate],
            fault: Fault::ServerError { status: 503 },
            trigger: Trigger::Always,
        }],
        expire_tokens: false,
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plan.json"),
        serde_json::to_string(&plan).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("lr.toml"),
        format!(
            "[crm]\nbase_url = \"{}\"\ntoken = \"{}\"\n[store]\nurl = \"sqlite://{}\"\n\
             [writer]\ncall_retries = 2\nretry_max_ms = 500\nbreaker_cooldown_secs = 1\n",
            sim.base_url(),
            sim.token(),
            dir.path().join("m.db").display()
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = leadroute(
        &[
            "--config",
            "lr.toml",
            "apply",
            "--plan",
            "plan.json",
            "--yes",
        ],
        &[],
        dir.path(),
    )
    .await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    // 2 writer retries of at most 0.5 s each, not 8 connector retries of up to 30 s
    // under each of them.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "took {:?}:\n{stderr}",
        started.elapsed()
    );
    // Each retry is announced, with its wait.
    assert!(stderr.contains("retrying in"), "{stderr}");
    let stats = sim.stats();
    assert!(
        stats.total_calls() <= 12,
        "{} calls: more than one retry layer: {:?}\n{stderr}",
        stats.total_calls(),
        stats.calls
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_store_in_a_missing_directory_or_read_only_fails_at_once_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/m.db");
    let out = leadroute(
        &["exceptions", "list"],
        &[(
            "LEADROUTE_STORE_URL",
            format!("sqlite://{}", missing.display()),
        )],
        dir.path(),
    )
    .await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(stderr.contains("mkdir -p"), "{stderr}");
    assert!(
        !dir.path().join("no").exists(),
        "a directory tree was created"
    );

    // A read-only file: said at once, not a pool timeout.
    let db = dir.path().join("ro.db");
    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    store.close().await;
    let mut perms = std::fs::metadata(&db).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&db, perms).unwrap();
    let started = std::time::Instant::now();
    let out = leadroute(
        &["exceptions", "list"],
        &[("LEADROUTE_STORE_URL", format!("sqlite://{}", db.display()))],
        dir.path(),
    )
    .await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(stderr.contains("is read-only"), "{stderr}");
    assert!(!stderr.contains("ERROR"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_and_config_problems_are_all_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = mirrored_org(dir.path()).await;
    let config = config.to_str().unwrap();

    // Three unknown keys in one run, each with its place and a suggestion.
    std::fs::write(
        dir.path().join("typos.toml"),
        "[crm]\nbase_ulr = \"http://127.0.0.1:1\"\ntokn = \"t\"\ntier = \"gold\"\n[sync]\nintervall_secs = 5\n",
    )
    .unwrap();
    let out = leadroute(
        &["--config", "typos.toml", "sync", "--once"],
        &[],
        dir.path(),
    )
    .await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    for line in [
        "typos.toml: line 2, column 1: unknown field `base_ulr` (did you mean `base_url`?)",
        "typos.toml: line 3, column 1: unknown field `tokn` (did you mean `token`?)",
        "typos.toml: line 6, column 1: unknown field `intervall_secs` (did you mean `interval_secs`?)",
        // Value problems in the same run.
        "typos.toml: crm.tier: unknown tier \"gold\"",
        "typos.toml: crm.base_url: missing",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }

    // A policy that is not UTF-8: the place of the bad byte, not 0:0.
    std::fs::write(
        dir.path().join("latin1.toml"),
        b"[reps.jose]\nname = \"Jos\xe9\"\n",
    )
    .unwrap();
    let out = leadroute(&["policy", "check", "latin1.toml"], &[], dir.path()).await;
    let stdout = text(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("latin1.toml:2:12: error: the policy file: not UTF-8"),
        "{stdout}"
    );

    // Reps who are not active owners in the mirror are warned about.
    let demo_policy =
        std::fs::read_to_string(dir.path().join(".leadroute/demo/hubspot-policy.toml")).unwrap();
    std::fs::write(
        dir.path().join("ghost.toml"),
        format!("{demo_policy}\n[reps.ghost]\nowner = \"999999999\"\n"),
    )
    .unwrap();
    let out = leadroute(
        &["--config", config, "policy", "check", "ghost.toml"],
        &[],
        dir.path(),
    )
    .await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains(
            "warning: ghost.toml: reps.ghost.owner \"999999999\" is not an owner in the mirror"
        ),
        "{stdout}"
    );
    // Without a config the check is skipped, and says so.
    let out = leadroute(&["policy", "check", "ghost.toml"], &[], dir.path()).await;
    assert!(
        text(&out.stdout).contains("reps were not checked against the mirror's owners"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceptions_resolve_asks_first_and_shows_why_the_crm_refused() {
    use leadroute::store::NewException;
    use leadroute_crm::{ObjectKind, RecordId};

    let sim = leadroute_sim::hubspot::spawn(sim_config(20, 5))
        .await
        .unwrap();
    let state = sim.state();
    let contact = state.contacts.iter().find(|c| !c.archived).unwrap();
    let owner = state
        .owners
        .iter()
        .find(|o| !o.archived && o.owner_type == "PERSON")
        .map(|o| o.id.to_string())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let store = Store::open(&db).await.unwrap();
    let id = store
        .exception_add(
            &NewException {
                org: OrgId::default_for(CrmKind::Hubspot),
                object: ObjectKind::Contact,
                id: RecordId(contact.id.to_string()),
                kind: "rejected".into(),
                rule: "it".into(),
                reason: "validation rule".into(),
                code: None,
                message: None,
                run_id: None,
                seq: None,
                before: None,
                desired: None,
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    store.close().await;
    let env = [
        ("LEADROUTE_CRM_BASE_URL", sim.base_url()),
        ("LEADROUTE_CRM_TOKEN", sim.token()),
        ("LEADROUTE_STORE_URL", db.clone()),
    ];
    let id = id.to_string();

    // Not a terminal and no --yes: nothing is written.
    let out = leadroute(
        &["exceptions", "resolve", &id, "--owner", &owner],
        &env,
        dir.path(),
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("pass --yes"),
        "{}",
        text(&out.stderr)
    );
    assert!(sim.write_log().is_empty(), "written without confirmation");

    // An owner the CRM refuses: its reason is shown.
    let out = leadroute(
        &["exceptions", "resolve", &id, "--owner", "424242", "--yes"],
        &env,
        dir.path(),
    )
    .await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the CRM said: inactive_owner: INVALID_OPTION"),
        "{stderr}"
    );

    // A good owner with --yes closes it.
    let out = leadroute(
        &["exceptions", "resolve", &id, "--owner", &owner, "--yes"],
        &env,
        dir.path(),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("exception {id} closed")),
        "{}",
        text(&out.stdout)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn exceptions_list_filters_and_pages_without_crm_credentials() {
    use leadroute::store::NewException;
    use leadroute_crm::{ObjectKind, RecordId};

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let store = Store::open(&db).await.unwrap();
    for n in 0..5 {
        store
            .exception_add(
                &NewException {
                    org: OrgId::default_for(CrmKind::Hubspot),
                    object: ObjectKind::Contact,
                    id: RecordId(format!("10{n}")),
                    kind: if n % 2 == 0 {
                        "rejected"
                    } else {
                        "no_eligible_rep"
                    }
                    .into(),
                    rule: "it".into(),
                    reason: format!("reason {n}"),
                    code: None,
                    message: None,
                    run_id: None,
                    seq: None,
                    before: None,
                    desired: None,
                },
                chrono::Utc::now(),
            )
            .await
            .unwrap();
    }
    store.close().await;
    let env = [("LEADROUTE_STORE_URL", db)];
    let list = |args: &'static [&'static str]| {
        let env = env.clone();
        let dir = dir.path().to_owned();
        async move {
            let mut all = vec!["exceptions", "list"];
            all.extend(args);
            let out = leadroute(&all, &env, &dir).await;
            assert!(out.status.success(), "{}", text(&out.stderr));
            text(&out.stdout)
        }
    };
    let page = list(&["--limit", "2"]).await;
    assert!(page.contains("hubspot:contact:100"), "{page}");
    assert!(!page.contains("hubspot:contact:102"), "{page}");
    assert!(
        page.contains("rows 1-2 of 5; next page: --offset 2"),
        "{page}"
    );
    let last = list(&["--limit", "2", "--offset", "4"]).await;
    assert!(last.contains("hubspot:contact:104"), "{last}");
    assert!(last.contains("rows 5-5 of 5"), "{last}");
    let kind = list(&["--kind", "no_eligible_rep"]).await;
    assert_eq!(kind.matches("no_eligible_rep").count(), 2, "{kind}");
}

#[tokio::test]
async fn a_postgres_store_that_is_down_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgres://lr@127.0.0.1:{}/lr", closed_port());
    let started = std::time::Instant::now();
    let out = leadroute(
        &["exceptions", "list"],
        &[("LEADROUTE_STORE_URL", url.clone())],
        dir.path(),
    )
    .await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains(&format!("cannot reach the PostgreSQL store at {url}")),
        "{stderr}"
    );
}

#[tokio::test]
async fn with_two_orgs_every_command_takes_org_and_without_it_lists_them() {
    let north = leadroute_sim::hubspot::spawn(crate::helpers::sim_config(25, 5))
        .await
        .unwrap();
    let south = leadroute_sim::hubspot::spawn(leadroute_sim::hubspot::HubSpotSimConfig {
        seed: 5,
        ..crate::helpers::sim_config(15, 4)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("north-token"), north.token()).unwrap();
    let config = format!(
        "[store]\nurl = \"sqlite://{}\"\n\
         [[org]]\nname = \"north\"\nbase_url = \"{}\"\ntoken_file = \"north-token\"\n\
         [[org]]\nname = \"south\"\nbase_url = \"{}\"\n",
        dir.path().join("lr.db").display(),
        north.base_url(),
        south.base_url()
    );
    std::fs::write(dir.path().join("orgs.toml"), config).unwrap();
    let env = [("LEADROUTE_ORG_SOUTH_TOKEN", south.token())];
    let run = |args: Vec<&'static str>| {
        let mut all = vec!["--config", "orgs.toml"];
        all.extend(args);
        let dir = dir.path().to_owned();
        let env = env.clone();
        async move {
            let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.clone())).collect();
            leadroute(&all, &env, &dir).await
        }
    };
    for args in [
        vec!["sync", "--once"],
        vec!["plan"],
        vec!["runs"],
        vec!["exceptions", "list"],
        vec!["policy", "init", "--out", "p.toml"],
    ] {
        let output = run(args.clone()).await;
        assert!(!output.status.success(), "{args:?}");
        let err = text(&output.stderr);
        assert!(
            err.contains("pass --org NAME") && err.contains("north (hubspot), south (hubspot)"),
            "{args:?}: {err}"
        );
    }
    for name in ["north", "south"] {
        let output = run(vec!["sync", "--once", "--org", name]).await;
        assert!(output.status.success(), "{name}: {}", text(&output.stderr));
    }
    let output = run(vec![
        "policy",
        "init",
        "--org",
        "north",
        "--out",
        "north.toml",
    ])
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = run(vec!["plan", "--org", "north", "--policy", "north.toml"]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = run(vec!["plan", "--org", "west"]).await;
    assert!(
        text(&output.stderr).contains("no org named \"west\""),
        "{}",
        text(&output.stderr)
    );

    // Rows are apart: each org's mirror holds its own portal's contacts.
    let store =
        leadroute::store::Store::open(&format!("sqlite://{}", dir.path().join("lr.db").display()))
            .await
            .unwrap();
    for (name, contacts) in [("north", 25), ("south", 15)] {
        let counts = store.counts(&OrgId::new(name).unwrap()).await.unwrap();
        assert_eq!(counts.contacts, contacts, "{name}");
    }
    // `explain` takes the org from the record reference.
    let id = north.state().contacts[0].id.to_string();
    let record: &'static str = Box::leak(format!("north:contact:{id}").into_boxed_str());
    let output = run(vec!["explain", record, "--policy", "north.toml"]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let record: &'static str = Box::leak(format!("hubspot:contact:{id}").into_boxed_str());
    let output = run(vec!["explain", record, "--policy", "north.toml"]).await;
    assert!(
        text(&output.stderr).contains("ambiguous"),
        "{}",
        text(&output.stderr)
    );
    store.close().await;
    north.shutdown().await;
    south.shutdown().await;
}
