//! Secrets canary (issue 15, item 3): every command a user runs against a HubSpot
//! simulator and a Salesforce simulator, with canary values for every secret and canary
//! e-mail addresses on contacts, logging at `trace`. Every log line, error message,
//! report file and HTTP body leadroute produces is searched: a secret never appears; a
//! contact's e-mail appears only where the user asked for it (reports, `explain`).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use leadroute_sim::hubspot::HubSpotSimConfig;
use leadroute_sim::salesforce::SalesforceSimConfig;

const HS_TOKEN: &str = "pat-na1-CANARYhstoken-5d0c41";
const HS_SECRET: &str = "CANARYhswebhooksecret-77e2";
const SF_CLIENT_ID: &str = "CANARYsfclientid-1a9f";
const SF_CLIENT_SECRET: &str = "CANARYsfclientsecret-0b3e";
const SF_REFRESH: &str = "CANARYsfrefresh-c6d7";
const PG_PASSWORD: &str = "CANARYpgpassword-8f21";
/// Contacts get addresses at this domain; it must stay out of logs and errors.
const EMAIL_DOMAIN: &str = "canarymail-4d2.example";

const SECRETS: &[&str] = &[
    HS_TOKEN,
    HS_SECRET,
    SF_CLIENT_ID,
    SF_CLIENT_SECRET,
    SF_REFRESH,
    PG_PASSWORD,
];

/// What one command printed, labelled for the failure message.
struct Seen {
    label: String,
    text: String,
    /// The user asked for record details here (reports, `explain`).
    emails_allowed: bool,
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_leadroute"));
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LEADROUTE_LOG", "trace");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn seen(label: &str, out: &Output, emails_allowed_on_stdout: bool) -> Vec<Seen> {
    vec![
        Seen {
            label: format!("{label} (stdout)"),
            text: String::from_utf8_lossy(&out.stdout).into_owned(),
            emails_allowed: emails_allowed_on_stdout,
        },
        Seen {
            label: format!("{label} (stderr, trace log)"),
            text: String::from_utf8_lossy(&out.stderr).into_owned(),
            emails_allowed: false,
        },
    ]
}

fn assert_clean(all: &[Seen]) {
    let mut hits = Vec::new();
    for s in all {
        for secret in SECRETS {
            if s.text.contains(secret) {
                hits.push(format!("secret {secret:?} in {}", s.label));
            }
        }
        if !s.emails_allowed && s.text.contains(EMAIL_DOMAIN) {
            let line = s
                .text
                .lines()
                .find(|l| l.contains(EMAIL_DOMAIN))
                .unwrap_or_default();
            hits.push(format!(
                "a contact's e-mail in {}: {}",
                s.label,
                &line[..line.len().min(300)]
            ));
        }
    }
    assert!(hits.is_empty(), "canaries found:\n{}", hits.join("\n"));
}

fn ok(label: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{label} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The store URL: a fresh PostgreSQL schema reached with a canary password (trust auth
/// ignores it, so every code path that prints a URL is exercised with a password in it)
/// when `LEADROUTE_TEST_PG_URL` is set, else a SQLite file.
async fn store_url(dir: &Path) -> (String, Option<crate::helpers::TestStore>) {
    match crate::helpers::postgres_store().await {
        Some(test_store) => {
            let url = test_store.url.replacen(
                "postgres://postgres@",
                &format!("postgres://postgres:{PG_PASSWORD}@"),
                1,
            );
            assert!(url.contains(PG_PASSWORD), "{url}");
            (url, Some(test_store))
        }
        None => (
            format!("sqlite://{}", dir.join("mirror.db").display()),
            None,
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_and_no_email_leaks_from_any_hubspot_command() {
    let sim = leadroute_sim::hubspot::spawn(HubSpotSimConfig {
        token: HS_TOKEN.to_owned(),
        client_secret: HS_SECRET.to_owned(),
        ..crate::helpers::sim_config(60, 8)
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    // Every contact gets a canary address through the public API.
    let ids: Vec<u64> = sim
        .state()
        .contacts
        .iter()
        .filter(|c| !c.archived)
        .map(|c| c.id)
        .collect();
    for (n, id) in ids.iter().enumerate() {
        let resp = http
            .patch(format!("{}/crm/v3/objects/contacts/{id}", sim.base_url()))
            .bearer_auth(HS_TOKEN)
            .json(
                &serde_json::json!({"properties": {"email": format!("person{n}@{EMAIL_DOMAIN}")}}),
            )
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
    }

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (store, test_store) = store_url(d).await;
    let port = free_port();
    std::fs::write(
        d.join("leadroute.toml"),
        format!(
            "[crm]\nbase_url = \"{}\"\noverlap_secs = 2\n[store]\nurl = \"{store}\"\n\
             [policy]\npath = \"policy.toml\"\n[sync]\nhint_poll_ms = 50\n\
             [webhook]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n",
            sim.base_url()
        ),
    )
    .unwrap();
    let env = [
        ("LEADROUTE_CRM_TOKEN", HS_TOKEN),
        ("LEADROUTE_WEBHOOK_SECRET", HS_SECRET),
    ];
    let cfg = ["--config", "leadroute.toml"];
    let mut all = Vec::new();
    let mut step = |label: &str, args: &[&str], emails_ok: bool, must_pass: bool| {
        let full: Vec<&str> = cfg.iter().chain(args).copied().collect();
        let out = run(d, &full, &env);
        if must_pass {
            ok(label, &out);
        }
        all.extend(seen(label, &out, emails_ok));
        out
    };
    step("sync --once", &["sync", "--once"], false, true);
    step(
        "policy init",
        &["policy", "init", "--out", "policy.toml"],
        false,
        true,
    );
    step("policy check", &["policy", "check"], false, true);
    step("plan", &["plan"], false, true);
    step("backfill", &["backfill", "--yes"], false, true);
    step("runs", &["runs"], false, true);
    step("exceptions list", &["exceptions", "list"], false, true);
    // Reports are where the user asked for record details.
    step(
        "drift",
        &["drift", "--format", "csv", "--out", "reports"],
        true,
        true,
    );
    let record = format!("hubspot:contact:{}", ids[0]);
    step("explain", &["explain", &record], true, true);

    // A wrong token: the error names the failure, never the token sent.
    let bad = run(
        d,
        &["--config", "leadroute.toml", "sync", "--once"],
        &[
            ("LEADROUTE_CRM_TOKEN", "pat-na1-CANARYwrongtoken-000"),
            ("LEADROUTE_WEBHOOK_SECRET", HS_SECRET),
        ],
    );
    assert!(!bad.status.success(), "a refused token fails the sync");
    let bad_text = String::from_utf8_lossy(&bad.stderr).into_owned();
    assert!(
        !bad_text.contains("CANARYwrongtoken"),
        "a refused token is not echoed:\n{bad_text}"
    );
    all.extend(seen("sync with a refused token", &bad, false));

    // The sidecar: new leads arrive by signed webhook; /readyz and /metrics are read.
    let mut child = Command::new(env!("CARGO_BIN_EXE_leadroute"))
        .args(["--config", "leadroute.toml", "run"])
        .current_dir(d)
        .env_clear()
        .env("LEADROUTE_LOG", "trace")
        .env("LEADROUTE_CRM_TOKEN", HS_TOKEN)
        .env("LEADROUTE_WEBHOOK_SECRET", HS_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain both pipes while it runs: a trace log fills a pipe buffer in a moment.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        })
    };
    let stdout_reader = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr_reader = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let base = format!("http://127.0.0.1:{port}");
    crate::helpers::wait_for("the sidecar's /healthz", 30, || {
        let http = http.clone();
        let url = format!("{base}/healthz");
        async move { http.get(url).send().await.ok().map(|_| ()) }
    })
    .await;
    sim.set_webhook_url(Some(format!("{base}/webhooks/hubspot")));
    let mut created = Vec::new();
    for n in 0..3 {
        let resp = http
            .post(format!("{}/crm/v3/objects/contacts", sim.base_url()))
            .bearer_auth(HS_TOKEN)
            .json(&serde_json::json!({"properties": {
                "email": format!("newlead{n}@{EMAIL_DOMAIN}"),
                "firstname": "Canary",
                "country": "US",
            }}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        let body: serde_json::Value = resp.json().await.unwrap();
        created.push(body["id"].as_str().unwrap().parse::<u64>().unwrap());
    }
    // A forged webhook is refused without echoing what it carried.
    let forged = http
        .post(format!("{base}/webhooks/hubspot"))
        .header("X-HubSpot-Signature-v3", format!("{HS_SECRET}=="))
        .header("X-HubSpot-Request-Timestamp", "1")
        .body(format!("[{{\"email\":\"forged@{EMAIL_DOMAIN}\"}}]"))
        .send()
        .await
        .unwrap();
    assert!(forged.status().is_client_error(), "{}", forged.status());
    all.push(Seen {
        label: "forged webhook response".into(),
        text: forged.text().await.unwrap_or_default(),
        emails_allowed: false,
    });
    // Wait until the new leads are routed: the CRM shows an owner on each.
    let owned = |sim: &leadroute_sim::hubspot::HubSpotSim| {
        let state = sim.state();
        created.iter().all(|id| {
            state
                .contacts
                .iter()
                .find(|c| c.id == *id)
                .and_then(|c| c.properties.get("hubspot_owner_id"))
                .is_some_and(|o| !o.is_empty())
        })
    };
    let mut routed = false;
    for _ in 0..120 {
        routed = owned(&sim);
        if routed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    for page in ["/healthz", "/readyz", "/metrics", "/no-such-page"] {
        let resp = http.get(format!("{base}{page}")).send().await.unwrap();
        all.push(Seen {
            label: format!("GET {page}"),
            text: resp.text().await.unwrap_or_default(),
            emails_allowed: false,
        });
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let out = Output {
        status,
        stdout: stdout_reader.join().unwrap().into_bytes(),
        stderr: stderr_reader.join().unwrap().into_bytes(),
    };
    ok("run", &out);
    if !routed {
        let log = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains("WARN")
                    || l.contains("ERROR")
                    || l.contains(" INFO ")
                    || created.iter().any(|id| l.contains(&id.to_string()))
            })
            .collect();
        panic!(
            "the three new leads were not routed within 60 s; warnings:\n{}",
            tail[tail.len().saturating_sub(40)..].join("\n")
        );
    }
    all.extend(seen("run (the sidecar)", &out, false));

    // Report files written by the drift schedule or command.
    for entry in walk(d) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        all.push(Seen {
            label: format!("file {}", entry.display()),
            text,
            emails_allowed: true,
        });
    }
    // The canaries reached leadroute: the mirror holds the addresses (so a leak would
    // have had something to leak).
    let mirror = leadroute::store::Store::open(&store).await.unwrap();
    let person = mirror
        .person(
            leadroute_crm::CrmKind::Hubspot,
            leadroute_crm::ObjectKind::Contact,
            &leadroute_crm::RecordId::new(ids[0].to_string()),
        )
        .await
        .unwrap()
        .expect("the contact is mirrored");
    assert!(
        person
            .email
            .as_deref()
            .is_some_and(|e| e.ends_with(EMAIL_DOMAIN)),
        "{person:?}"
    );
    mirror.close().await;
    assert!(
        all.iter()
            .any(|s| s.label.contains("trace log") && s.text.contains("TRACE")),
        "the log ran at trace level"
    );
    assert_clean(&all);
    sim.shutdown().await;
    if let Some(test_store) = test_store {
        test_store.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaks_from_salesforce_commands() {
    let sim = leadroute_sim::salesforce::spawn(SalesforceSimConfig {
        client_id: SF_CLIENT_ID.to_owned(),
        client_secret: SF_CLIENT_SECRET.to_owned(),
        refresh_token: SF_REFRESH.to_owned(),
        leads: 40,
        contacts: 20,
        accounts: 8,
        ..SalesforceSimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (store, test_store) = store_url(d).await;
    std::fs::write(
        d.join("leadroute.toml"),
        format!(
            "[crm]\nkind = \"salesforce\"\nbase_url = \"{}\"\n[crm.salesforce]\nauth = \"refresh_token\"\n\
             [store]\nurl = \"{store}\"\n[policy]\npath = \"policy.toml\"\n",
            sim.base_url()
        ),
    )
    .unwrap();
    let env = [
        ("LEADROUTE_CRM_CLIENT_ID", SF_CLIENT_ID),
        ("LEADROUTE_CRM_CLIENT_SECRET", SF_CLIENT_SECRET),
        ("LEADROUTE_CRM_REFRESH_TOKEN", SF_REFRESH),
    ];
    let mut all = Vec::new();
    for (label, args, emails_ok) in [
        ("sync --once", &["sync", "--once"][..], false),
        (
            "policy init",
            &["policy", "init", "--out", "policy.toml"][..],
            false,
        ),
        ("plan", &["plan"][..], false),
        ("backfill", &["backfill", "--yes"][..], false),
        (
            "drift",
            &["drift", "--format", "json", "--out", "reports"][..],
            true,
        ),
    ] {
        let full: Vec<&str> = ["--config", "leadroute.toml"]
            .iter()
            .chain(args)
            .copied()
            .collect();
        let out = run(d, &full, &env);
        ok(label, &out);
        all.extend(seen(label, &out, emails_ok));
    }
    // A refused refresh token: the error says so without the token.
    let out = run(
        d,
        &["--config", "leadroute.toml", "sync", "--once"],
        &[
            ("LEADROUTE_CRM_CLIENT_ID", SF_CLIENT_ID),
            ("LEADROUTE_CRM_CLIENT_SECRET", SF_CLIENT_SECRET),
            ("LEADROUTE_CRM_REFRESH_TOKEN", "CANARYsfwrongrefresh-111"),
        ],
    );
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("CANARYsfwrongrefresh"));
    all.extend(seen("sync with a refused refresh token", &out, false));
    assert!(
        all.iter().any(|s| s.text.contains("TRACE")),
        "the log ran at trace level"
    );
    assert_clean(&all);
    sim.shutdown().await;
    if let Some(test_store) = test_store {
        test_store.cleanup().await;
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| {
                ["csv", "json", "md", "html", "txt"].contains(&e.to_str().unwrap_or(""))
            }) {
                files.push(path);
            }
        }
    }
    files
}
