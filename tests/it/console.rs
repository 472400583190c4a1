//! The web console (issue 13) in a real browser: headless Chromium driven through
//! chromedriver (WebDriver, the `fantoccini` crate) against the console served over a
//! store mirrored from the HubSpot simulator, with journaled writes and exceptions.
//! Each page's screenshot goes to `docs/screenshots/`. Without chromedriver the
//! browser test says so and skips; `.ci/run` installs it. Plain-HTTP checks (CSRF,
//! roles, 404, 414, expired sessions) run without a browser.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use chrono::Utc;
use fantoccini::{Client, ClientBuilder, Locator};
use leadroute::console::{self, ConsoleOptions, ConsoleState, auth};
use leadroute::reconcile::{Plan, PlannedChange};
use leadroute::service::clock::{Clock, ManualClock};
use leadroute::store::NewException;
use leadroute::writer::{NoProgress, RunId, Writer};
use leadroute_crm::{CrmKind, ObjectKind, OwnerId, RecordId};
use tokio_util::sync::CancellationToken;

use crate::helpers::{TestApp, sim_config, spawn_app, wait_for};

const ADMIN_PW: &str = "admin-password-1";
const VIEWER_PW: &str = "viewer-password-1";

/// A mirrored org with one applied run and open exceptions, and the console over it.
struct Console {
    app: TestApp,
    addr: SocketAddr,
    clock: ManualClock,
    cancel: CancellationToken,
    /// Active person owners in the simulator.
    owners: Vec<String>,
    /// (contact id, email) of the records the run wrote.
    written: Vec<(String, String)>,
    /// Open exception ids.
    exceptions: Vec<i64>,
    _dir: tempfile::TempDir,
}

fn policy_text(a: &str, b: &str) -> String {
    format!(
        "[settings]\nname = \"console-test\"\nsticky = false\nmanual_override_days = 0\n\n\
         [reps.a]\nowner = \"{a}\"\n\n[reps.b]\nowner = \"{b}\"\n\n\
         [pools.inbound]\nstrategy = \"round_robin\"\nmembers = [\"a\", \"b\"]\n\n\
         [[rules]]\nname = \"inbound-leads\"\nwhen = [{{ field = \"email_domain\", in = [\"console-test.example\"] }}]\naction = \"pool\"\npool = \"inbound\"\n\n\
         [[rules]]\nname = \"named-accounts\"\nwhen = [{{ match = \"matched\" }}]\naction = \"account_owner\"\n\n\
         [default]\naction = \"keep\"\n"
    )
}

async fn console() -> Console {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let admin_hash = auth::hash_password(ADMIN_PW).unwrap();
    let viewer_hash = auth::hash_password(VIEWER_PW).unwrap();
    let app = spawn_app(
        sim_config(40, 8),
        &format!(
            "[policy]\npath = \"{}\"\n\
             [ui]\nsession_idle_secs = 600\n\
             [[ui.users]]\nname = \"ada\"\nrole = \"admin\"\npassword_hash = \"{admin_hash}\"\n\
             [[ui.users]]\nname = \"vic\"\nrole = \"viewer\"\npassword_hash = \"{viewer_hash}\"\n",
            policy.display()
        ),
    )
    .await;
    let state = app.sim.state();
    let owners: Vec<String> = state
        .owners
        .iter()
        .filter(|o| !o.archived && o.owner_type == "PERSON")
        .map(|o| o.id.to_string())
        .collect();
    std::fs::write(&policy, policy_text(&owners[0], &owners[1])).unwrap();
    app.mirror().sync_once(false).await.unwrap();

    // One applied run: five contacts given to rep a by `inbound-leads`.
    let contacts: Vec<_> = state
        .contacts
        .iter()
        .filter(|c| !c.archived)
        .filter(|c| c.properties.get("email").is_some_and(|e| !e.is_empty()))
        .take(8)
        .collect();
    let changes = contacts
        .iter()
        .take(5)
        .map(|c| PlannedChange {
            object: ObjectKind::Contact,
            id: RecordId(c.id.to_string()),
            field: "owner".to_owned(),
            from: c
                .properties
                .get("hubspot_owner_id")
                .filter(|o| !o.is_empty())
                .map(|o| OwnerId::new(o.clone())),
            to: OwnerId::new(owners[0].clone()),
            rule: "inbound-leads".to_owned(),
            reason: "pool inbound: round robin".to_owned(),
            policy_version: "v-test".to_owned(),
            record_updated_at: None,
        })
        .collect();
    let plan = Plan {
        policy_version: "v-test".to_owned(),
        created_at: Utc::now(),
        crm: CrmKind::Hubspot,
        changes,
        exceptions: Vec::new(),
    };
    let crm = Arc::new(leadroute::app::hubspot(&app.config).unwrap());
    let store = app.store.store.clone();
    let writer = Writer::new(
        Arc::clone(&crm),
        store.clone(),
        app.config.writer.settings.clone(),
    );
    let report = writer
        .apply(&plan, RunId::new("run-console-1"), &NoProgress)
        .await
        .unwrap();
    assert_eq!(report.applied, 5, "{report}");
    let written = contacts
        .iter()
        .take(5)
        .map(|c| {
            (
                c.id.to_string(),
                c.properties.get("email").cloned().unwrap_or_default(),
            )
        })
        .collect();

    // Three open exceptions on the next contacts.
    let mut exceptions = Vec::new();
    for (i, c) in contacts.iter().skip(5).take(3).enumerate() {
        let id = store
            .exception_add(
                &NewException {
                    org: leadroute::domain::OrgId::default_for(CrmKind::Hubspot),
                    object: ObjectKind::Contact,
                    id: RecordId(c.id.to_string()),
                    kind: if i == 0 {
                        "no_eligible"
                    } else {
                        "ambiguous_match"
                    }
                    .to_owned(),
                    rule: "inbound-leads".to_owned(),
                    reason: "nobody in pool inbound is available".to_owned(),
                    code: None,
                    message: None,
                    run_id: None,
                    seq: None,
                    before: None,
                    desired: None,
                },
                Utc::now() - chrono::Duration::hours(2),
            )
            .await
            .unwrap();
        exceptions.push(id);
    }

    let clock = ManualClock::new(Utc::now());
    let state = ConsoleState::new(
        crm,
        store,
        app.config.clone(),
        Arc::new(clock.clone()) as Arc<dyn Clock>,
        ConsoleOptions {
            admin_password: None,
            status: None,
            secure_cookies: false,
        },
    )
    .unwrap();
    let cancel = CancellationToken::new();
    let (addr, _task) = leadroute::web::spawn(
        "127.0.0.1:0".parse().unwrap(),
        console::router(state),
        cancel.clone(),
    )
    .await
    .unwrap();
    Console {
        app,
        addr,
        clock,
        cancel,
        owners,
        written,
        exceptions,
        _dir: dir,
    }
}

impl Console {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn shutdown(self) {
        self.cancel.cancel();
        self.app.shutdown().await;
    }
}

// ------------------------------------------------------------------ plain HTTP

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(auth::COOKIE))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

/// The hidden `csrf` field of a page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

/// Logs in over plain HTTP; returns the session cookie and a page's CSRF token.
async fn http_login(c: &Console, user: &str, password: &str) -> (String, String) {
    http_login_at(&c.url(""), user, password).await
}

/// [`http_login`] on the console at `base`.
async fn http_login_at(base: &str, user: &str, password: &str) -> (String, String) {
    let client = http();
    let form = client.get(format!("{base}/login")).send().await.unwrap();
    let pre = session_cookie(&form).expect("the login form sets a cookie");
    let csrf = csrf_of(&form.text().await.unwrap());
    let done = client
        .post(format!("{base}/login"))
        .header("cookie", &pre)
        .form(&[
            ("csrf", csrf.as_str()),
            ("user", user),
            ("password", password),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303, "login as {user}");
    let cookie = session_cookie(&done).expect("a session cookie");
    let page = client
        .get(format!("{base}/exceptions"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (cookie, csrf_of(&page))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_guards_every_page_and_every_change() {
    let c = console().await;
    let client = http();

    // No page without login: to the login page, back here after.
    for path in [
        "/",
        "/graph",
        "/records?q=a",
        "/exceptions",
        "/runs",
        "/analytics",
    ] {
        let r = client.get(c.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path}");
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(to.starts_with("/login?next="), "{path} → {to}");
    }

    // Cookies: HttpOnly and SameSite=Strict (no Secure on plain loopback http).
    let form = client.get(c.url("/login")).send().await.unwrap();
    let set = form.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );

    // A wrong password is refused without saying which part was wrong.
    let pre = session_cookie(&form).unwrap();
    let csrf = csrf_of(&form.text().await.unwrap());
    let r = client
        .post(c.url("/login"))
        .header("cookie", &pre)
        .form(&[
            ("csrf", csrf.as_str()),
            ("user", "ada"),
            ("password", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Wrong user name or password")
    );

    let (admin, admin_csrf) = http_login(&c, "ada", ADMIN_PW).await;
    let (viewer, viewer_csrf) = http_login(&c, "vic", VIEWER_PW).await;
    let id = c.exceptions[0].to_string();
    let owner = format!("owner-{id}");

    // A change without the CSRF token: 403, nothing written.
    let r = client
        .post(c.url("/exceptions/act"))
        .header("cookie", &admin)
        .form(&[
            ("resolve", id.as_str()),
            (owner.as_str(), c.owners[1].as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // With another session's token: 403 as well.
    let r = client
        .post(c.url("/exceptions/act"))
        .header("cookie", &admin)
        .form(&[
            ("csrf", viewer_csrf.as_str()),
            ("resolve", id.as_str()),
            (owner.as_str(), c.owners[1].as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A viewer with a valid token: 403.
    let r = client
        .post(c.url("/exceptions/act"))
        .header("cookie", &viewer)
        .form(&[
            ("csrf", viewer_csrf.as_str()),
            ("resolve", id.as_str()),
            (owner.as_str(), c.owners[1].as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Viewers can read everything but change nothing")
    );
    let open = c.app.store.store.exceptions(Some("open")).await.unwrap();
    assert_eq!(open.len(), 3, "nothing was resolved");

    // Bad form values say what is wrong.
    let r = client
        .post(c.url("/exceptions/act"))
        .header("cookie", &admin)
        .form(&[
            ("csrf", admin_csrf.as_str()),
            ("resolve", id.as_str()),
            (owner.as_str(), ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains(&format!(
        "Choose a rep to give the record of exception {id} to."
    )));
    let r = client
        .post(c.url("/exceptions/act"))
        .header("cookie", &admin)
        .form(&[
            ("csrf", admin_csrf.as_str()),
            ("resolve", id.as_str()),
            (owner.as_str(), "no-such-owner"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("is not an active owner of this org")
    );
    let r = client
        .get(c.url("/graph?window=1y"))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("is not one of 1h, 24h, 7d, 30d")
    );
    let r = client
        .get(c.url("/records/not-a-ref"))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Each analytics table downloads as CSV and JSON; an unknown one is a 404.
    let r = client
        .get(c.url("/analytics/fairness_pools.csv?since=7d"))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        r.text()
            .await
            .unwrap()
            .lines()
            .next()
            .is_some_and(|h| h.contains(','))
    );
    let r = client
        .get(c.url("/analytics/speed_bands.json"))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let json: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert!(json.is_object() || json.is_array(), "{json}");
    let r = client
        .get(c.url("/analytics/no_such_table.csv"))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Unknown routes: 404 with a page.
    let r = client
        .get(c.url("/no/such/page"))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("There is no page at /no/such/page")
    );

    // A huge query string is refused.
    let huge = format!("/records?q={}", "a".repeat(5_000));
    let r = client
        .get(c.url(&huge))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 414);

    // No secret in any page: the store URL, the CRM token, hashes and passwords.
    let token = c.app.sim.token();
    for path in [
        "/",
        "/graph",
        "/exceptions",
        "/runs",
        "/runs/run-console-1",
        "/analytics",
    ] {
        let page = client
            .get(c.url(path))
            .header("cookie", &admin)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{path}");
        let html = page.text().await.unwrap();
        for secret in [
            token.as_str(),
            "$argon2",
            ADMIN_PW,
            c.app.store.url.as_str(),
        ] {
            assert!(!html.contains(secret), "{path} shows a secret");
        }
    }

    // An idle session expires: back to the login page.
    c.clock.advance(chrono::Duration::seconds(601));
    let r = client
        .get(c.url("/"))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    c.shutdown().await;
}

// ------------------------------------------------------------------ browser

/// chromedriver on a free loopback port, stopped on drop.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("CHROMEDRIVER") {
        return Some(PathBuf::from(path));
    }
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

async fn start_driver(path: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    wait_for("chromedriver to listen", 20, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    Driver { child, url }
}

async fn browser(driver: &Driver, width: u32, height: u32) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     format!("--window-size={width},{height}")],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(b: &Client, name: &str) {
    let png = b.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

async fn body_text(b: &Client) -> String {
    b.find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn log_in(b: &Client, c: &Console, user: &str, password: &str) {
    b.goto(&c.url("/")).await.unwrap();
    // Sent to the login page first.
    assert_eq!(b.current_url().await.unwrap().path(), "/login");
    b.find(Locator::Id("user"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    b.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    b.find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("the overview after login", 20, || async {
        (b.current_url().await.ok()?.path() == "/").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser() {
    let Some(path) = chromedriver() else {
        eprintln!(
            "SKIPPED the_console_in_a_browser: chromedriver not found (apt-get install chromium chromium-driver; .ci/run does)"
        );
        return;
    };
    let c = console().await;
    let driver = start_driver(&path).await;
    let b = browser(&driver, 1280, 900).await;

    // Log in (the login page first, as a screenshot).
    b.goto(&c.url("/login")).await.unwrap();
    shot(&b, "login").await;
    log_in(&b, &c, "ada", ADMIN_PW).await;
    // (The figures' labels are upper-cased by the stylesheet.)
    let text = body_text(&b).await.to_lowercase();
    assert!(text.contains("leads routed\n5"), "{text}");
    assert!(text.contains("open exceptions\n3"), "{text}");
    shot(&b, "overview").await;

    // The graph with counts: five records decided by `inbound-leads`, three exceptions.
    b.goto(&c.url("/graph?window=24h")).await.unwrap();
    let count = b
        .find(Locator::Css("#rule-1 .count .records"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(count, "5");
    let text = body_text(&b).await;
    assert!(text.contains("5 written · 3 exceptions"), "{text}");
    shot(&b, "graph").await;
    // Live: a new decision shows up on the open page without a reload.
    let extra = c
        .app
        .store
        .store
        .exception_add(
            &NewException {
                org: leadroute::domain::OrgId::default_for(CrmKind::Hubspot),
                object: ObjectKind::Contact,
                id: RecordId(c.written[0].0.clone()),
                kind: "no_eligible".to_owned(),
                rule: "named-accounts".to_owned(),
                reason: "the account's owner is inactive".to_owned(),
                code: None,
                message: None,
                run_id: None,
                seq: None,
                before: None,
                desired: None,
            },
            Utc::now(),
        )
        .await
        .unwrap();
    wait_for("the graph's counts to refresh", 30, || async {
        let text = b
            .find(Locator::Css("#rule-2"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("0 written · 1 exceptions").then_some(())
    })
    .await;
    c.app
        .store
        .store
        .exception_close(extra, "resolved", None, None, Utc::now())
        .await
        .unwrap();
    // Click-through to the rule's records.
    b.find(Locator::Css("#rule-1 .count"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let text = body_text(&b).await;
    assert!(text.contains("Decided by rule inbound-leads"), "{text}");
    for (id, _) in &c.written {
        assert!(
            text.contains(&format!("hubspot:contact:{id}")),
            "{id} in {text}"
        );
    }

    // Search a record by email and read its journey.
    let (id, email) = &c.written[0];
    b.goto(&c.url("/records")).await.unwrap();
    b.find(Locator::Id("q"))
        .await
        .unwrap()
        .send_keys(email)
        .await
        .unwrap();
    b.find(Locator::Id("search"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let link = format!("a[href='/records/hubspot:contact:{id}']");
    wait_for("the search results", 20, || async {
        b.find(Locator::Css(&link)).await.ok().map(|_| ())
    })
    .await;
    shot(&b, "records").await;
    b.find(Locator::Css(&link))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let journey = wait_for("the journey", 20, || async {
        b.find(Locator::Id("journey")).await.ok()?.text().await.ok()
    })
    .await;
    assert!(journey.contains("run-console-1"), "{journey}");
    assert!(journey.contains("inbound-leads"), "{journey}");
    let decision = b
        .find(Locator::Id("decision"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!decision.is_empty());
    shot(&b, "record").await;

    // Resolve an exception: pick an eligible rep, and it leaves the queue.
    b.goto(&c.url("/exceptions")).await.unwrap();
    shot(&b, "exceptions").await;
    let first = c.exceptions[0];
    let select = b
        .find(Locator::Css(&format!("select[name='owner-{first}']")))
        .await
        .unwrap();
    // The eligible reps: the rule's pool (a and b), not every user.
    let options = select.find_all(Locator::Css("option")).await.unwrap();
    assert_eq!(options.len(), 3, "a placeholder and the pool's two reps");
    select.select_by_value(&c.owners[1]).await.unwrap();
    b.find(Locator::Css(&format!(
        "button[name='resolve'][value='{first}']"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let notice = wait_for("the resolve notice", 30, || async {
        b.find(Locator::Css(".notice"))
            .await
            .ok()?
            .text()
            .await
            .ok()
    })
    .await;
    assert!(notice.contains("1 exception closed"), "{notice}");
    assert!(
        b.find(Locator::Id(&format!("exception-{first}")))
            .await
            .is_err(),
        "exception {first} left the queue"
    );
    let count = b
        .find(Locator::Id("exception-count"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(count.starts_with("2 open"), "{count}");
    let resolved = c.app.store.store.exception(first).await.unwrap().unwrap();
    assert_eq!(resolved.status, "resolved");
    assert_eq!(
        resolved.resolved_owner.as_ref().map(|o| o.to_string()),
        Some(c.owners[1].clone())
    );
    // Bulk: select both left and retry is refused for lack of a desired owner; resolve them.
    for id in &c.exceptions[1..] {
        b.find(Locator::Css(&format!("input[name='id'][value='{id}']")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    b.find(Locator::Id("bulk-owner"))
        .await
        .unwrap()
        .select_by_value(&c.owners[0])
        .await
        .unwrap();
    b.find(Locator::Css("button[name='bulk'][value='resolve']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // (The old page's notice stays until the new page loads.)
    wait_for("the bulk notice", 30, || async {
        let notice = b
            .find(Locator::Css(".notice"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        notice.contains("2 exceptions closed").then_some(())
    })
    .await;
    assert!(body_text(&b).await.contains("Nothing to do"));

    // A POST without the CSRF token, from the page itself: 403.
    let status = b
        .execute(
            "return fetch('/exceptions/act', {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'retry=1'}).then(r => r.status);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, serde_json::json!(403));

    // Runs: the journal, the console's actions with who did them, rollback dry run.
    b.goto(&c.url("/runs")).await.unwrap();
    let text = body_text(&b).await;
    assert!(text.contains("run-console-1"), "{text}");
    let audit = b
        .find(Locator::Id("audit"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        audit.contains("ada") && audit.contains("resolve"),
        "{audit}"
    );
    shot(&b, "runs").await;
    b.goto(&c.url("/runs/run-console-1")).await.unwrap();
    shot(&b, "run").await;
    b.find(Locator::Id("rollback"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let would = wait_for("the rollback dry run", 30, || async {
        b.find(Locator::Id("would-revert"))
            .await
            .ok()?
            .text()
            .await
            .ok()
    })
    .await;
    // Five were written; those whose previous owner cannot be restored are left alone.
    let n: u64 = would
        .split("would revert ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{would}"));
    assert!((1..=5).contains(&n), "{would}");
    shot(&b, "rollback").await;
    let writes_before = c.app.sim.write_log().len();
    b.find(Locator::Id("confirm-rollback"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("the rollback notice", 30, || async {
        let notice = b
            .find(Locator::Css(".notice"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        notice.contains(&format!("reverted {n}")).then_some(())
    })
    .await;
    assert!(
        c.app.sim.write_log().len() > writes_before,
        "the rollback wrote"
    );

    // Analytics: the report over the window, with each table downloadable.
    b.goto(&c.url("/analytics?since=30d")).await.unwrap();
    let text = body_text(&b).await;
    for heading in ["Routing analytics", "Distribution", "Fairness"] {
        assert!(
            text.contains(heading),
            "{heading} missing from /analytics:\n{text}"
        );
    }
    shot(&b, "analytics").await;
    b.goto(&c.url("/analytics?since=soon")).await.unwrap();
    assert!(body_text(&b).await.contains("Bad window"));
    b.goto(&c.url("/no-such-page")).await.unwrap();
    assert!(body_text(&b).await.contains("Not found"));

    // A phone-sized screen.
    b.set_window_size(390, 844).await.unwrap();
    b.goto(&c.url("/graph")).await.unwrap();
    shot(&b, "graph-phone").await;
    b.goto(&c.url("/runs")).await.unwrap();
    shot(&b, "runs-phone").await;
    b.close().await.unwrap();

    // A viewer reads but is refused a change.
    let v = browser(&driver, 1280, 900).await;
    log_in(&v, &c, "vic", VIEWER_PW).await;
    v.goto(&c.url("/runs/run-console-1")).await.unwrap();
    assert!(
        v.find(Locator::Id("rollback")).await.is_err(),
        "no rollback button for a viewer"
    );
    let csrf = v
        .find(Locator::Css("input[name='csrf']"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap_or_default();
    let status = v
        .execute(
            "return fetch('/runs/run-console-1/rollback', {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'csrf=' + arguments[0]}).then(r => r.status);",
            vec![serde_json::json!(csrf)],
        )
        .await
        .unwrap();
    assert_eq!(status, serde_json::json!(403));
    v.close().await.unwrap();
    c.shutdown().await;
}

// ------------------------------------------------------------------ front ends

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_serves_the_console_beside_readyz() {
    use leadroute::service::Service;

    let c = console().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let crm = leadroute::app::hubspot(&c.app.config).unwrap();
    let running = Service::new(
        Arc::new(crm),
        c.app.store.store.clone(),
        c.app.config.clone(),
    )
    .with_listener(listener)
    .start()
    .await
    .unwrap();
    let client = http();
    let r = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(r.status(), 303, "the console asks for a login");
    let r = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("json")
    );
    // The overview shows the running pipeline: this process leads, its cursors.
    let (cookie, _) = http_login_at(&base, "ada", ADMIN_PW).await;
    let html = wait_for("the overview to show this process leading", 30, || async {
        let html = client
            .get(format!("{base}/partials/overview"))
            .header("cookie", &cookie)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        html.contains("leader").then_some(html)
    })
    .await;
    assert!(
        html.contains("Cursor age") && html.contains("Last poll"),
        "{html}"
    );
    running.stop().await;
    c.shutdown().await;
}

#[tokio::test]
async fn ui_passwd_prints_a_config_entry_whose_hash_logs_in() {
    use std::io::Write as _;

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_leadroute"))
        .args(["ui", "passwd", "maria", "--role", "viewer"])
        .env_remove("LEADROUTE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entry = String::from_utf8(out.stdout).unwrap();
    assert!(
        !entry.contains("correct horse"),
        "the password is not printed"
    );
    let text = format!("[crm]\nbase_url = \"http://127.0.0.1:1\"\ntoken = \"t\"\n{entry}");
    let config = leadroute::config::Config::from_toml(&text, "t.toml", &|_| None)
        .unwrap_or_else(|err| panic!("{err}"));
    let user = &config.ui.users[0];
    assert_eq!(user.name, "maria");
    assert_eq!(user.role, leadroute::config::UiRole::Viewer);
    let auth = auth::Auth::new(config.ui.users.clone(), None, config.ui.session_idle).unwrap();
    assert!(
        auth.login(None, "maria", "correct horse battery", Utc::now())
            .is_ok()
    );

    // Too short: refused, with the fix.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_leadroute"))
        .args(["ui", "passwd", "maria"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"short\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("shorter than 8 characters"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_found_by_email_name_company_and_reference() {
    let c = console().await;
    let client = http();
    let (cookie, _) = http_login(&c, "vic", VIEWER_PW).await;
    let (id, email) = c.written[0].clone();
    let contact = c
        .app
        .sim
        .state()
        .contacts
        .iter()
        .find(|x| x.id.to_string() == id)
        .cloned()
        .unwrap();
    let first = contact
        .properties
        .get("firstname")
        .cloned()
        .unwrap_or_default();
    let last = contact
        .properties
        .get("lastname")
        .cloned()
        .unwrap_or_default();
    let link = format!("href=\"/records/hubspot:contact:{id}\"");
    for q in [email.to_uppercase(), format!("{first} {last}"), id.clone()] {
        let html = client
            .get(c.url("/records"))
            .query(&[("q", q.as_str())])
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains(&link), "searching {q:?} finds {id}");
    }
    // A full reference goes straight to the journey.
    let r = client
        .get(c.url("/records"))
        .query(&[("q", format!("hubspot:contact:{id}"))])
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        format!("/records/hubspot:contact:{id}").as_str()
    );
    // Wildcards are literal: "%" matches no one.
    let html = client
        .get(c.url("/records"))
        .query(&[("q", "%")])
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Nothing found."));
    // A record leadroute never saw: 404 with a page.
    let r = client
        .get(c.url("/records/hubspot:contact:999999999"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("is not in the mirror and leadroute never touched it")
    );
    c.shutdown().await;
}

/// Kills the child on drop (a failing assertion must not leave `leadroute ui` running).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadroute_ui_serves_the_store_and_the_env_admin_password_logs_in() {
    let c = console().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_leadroute"))
            .args(["ui", "--listen", &format!("127.0.0.1:{port}")])
            .env_remove("LEADROUTE_CONFIG")
            .env("LEADROUTE_CRM_BASE_URL", c.app.sim.base_url())
            .env("LEADROUTE_CRM_TOKEN", c.app.sim.token())
            .env("LEADROUTE_STORE_URL", &c.app.store.url)
            .env(auth::ADMIN_PASSWORD_ENV, "first-start-pw")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for("leadroute ui to listen", 30, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let (cookie, _) = http_login_at(&base, "admin", "first-start-pw").await;
    let html = http()
        .get(format!("{base}/runs"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("run-console-1"), "the store's runs");
    drop(child);
    c.shutdown().await;
}
