//! The `leadroute` binary as a user runs it: config errors, `sync --once` against a
//! simulator, and the demo.

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
];

/// The binary with a clean LEADROUTE_* environment, run off the async runtime.
async fn leadroute(args: &[&str], env: &[(&str, String)], dir: &std::path::Path) -> Output {
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

fn text(bytes: &[u8]) -> String {
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
    assert_eq!(store.counts(CrmKind::Hubspot).await.unwrap().contacts, 250);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_with_no_setup_and_says_what_to_try_next() {
    let dir = tempfile::tempdir().unwrap();
    let out = leadroute(&["demo", "--contacts", "300"], &[], dir.path()).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("The mirror matches the portal"), "{stdout}");
    assert!(stdout.contains("Try next:"), "{stdout}");
    assert!(dir.path().join(".leadroute/demo/leadroute.db").exists());
}
