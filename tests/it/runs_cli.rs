//! The binary against the HubSpot simulator for issue 9's command-line items: a stale
//! or foreign plan file is refused before anything is printed or written, and a
//! backfill whose cancelled run had nothing left closes it and backfills afresh.

use chrono::{Duration, Utc};
use leadroute::domain::CrmKind;
use leadroute::domain::OrgId;
use leadroute::reconcile::{Plan, PlannedChange};
use leadroute::store::{NewRun, RunStatus, Store};
use leadroute_sim::hubspot::{self as hs, HubSpotSim, HubSpotSimConfig};

/// A simulator, a config file with a round-robin policy over three active owners, and
/// a way to run the binary with it.
struct Cli {
    sim: HubSpotSim,
    dir: tempfile::TempDir,
    owners: Vec<String>,
}

impl Cli {
    async fn start(contacts: usize) -> Cli {
        let sim = hs::spawn(HubSpotSimConfig {
            contacts,
            companies: 10,
            owners: 8,
            search_lag: std::time::Duration::ZERO,
            ..HubSpotSimConfig::default()
        })
        .await
        .expect("spawn the HubSpot simulator");
        let owners: Vec<String> = sim
            .state()
            .owners
            .iter()
            .filter(|o| !o.archived && o.owner_type == "PERSON")
            .map(|o| o.id.to_string())
            .take(3)
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let mut policy = String::from("[settings]\nname = \"it\"\n\n");
        for (i, owner) in owners.iter().enumerate() {
            policy.push_str(&format!("[reps.r{i}]\nowner = \"{owner}\"\n\n"));
        }
        let members: Vec<String> = (0..owners.len()).map(|i| format!("\"r{i}\"")).collect();
        policy.push_str(&format!(
            "[pools.all]\nstrategy = \"round_robin\"\nmembers = [{}]\n\n[default]\naction = \"pool\"\npool = \"all\"\n",
            members.join(", ")
        ));
        let policy_path = dir.path().join("policy.toml");
        std::fs::write(&policy_path, policy).unwrap();
        std::fs::write(
            dir.path().join("leadroute.toml"),
            format!(
                "[crm]\nkind = \"hubspot\"\nbase_url = \"{}\"\ntoken = \"{}\"\ntier = \"api_add_on\"\n\n[store]\nurl = \"{}\"\n\n[policy]\npath = \"{}\"\n",
                sim.base_url(),
                sim.token(),
                Self::url(&dir),
                policy_path.display()
            ),
        )
        .unwrap();
        Cli { sim, dir, owners }
    }

    fn url(dir: &tempfile::TempDir) -> String {
        format!("sqlite://{}", dir.path().join("leadroute.db").display())
    }

    async fn store(&self) -> Store {
        Store::open(&Self::url(&self.dir)).await.unwrap()
    }

    /// Runs leadroute; returns (success, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_leadroute"));
        command
            .arg("--config")
            .arg(self.dir.path().join("leadroute.toml"))
            .args(args)
            .env_clear()
            .stdin(std::process::Stdio::null());
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .expect("run leadroute");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// A plan file moving the first live contact to another owner.
    fn write_plan(&self, name: &str, edit: impl FnOnce(&mut Plan)) -> String {
        let state = self.sim.state();
        let contact = state.contacts.iter().find(|c| !c.archived).unwrap();
        let from = contact
            .properties
            .get("hubspot_owner_id")
            .filter(|o| !o.is_empty())
            .cloned();
        let to = self
            .owners
            .iter()
            .find(|o| Some(*o) != from.as_ref())
            .unwrap()
            .clone();
        let mut plan = Plan {
            policy_version: String::new(),
            created_at: Utc::now(),
            crm: CrmKind::Hubspot,
            changes: vec![PlannedChange {
                object: leadroute::domain::ObjectKind::Contact,
                id: leadroute::domain::RecordId(contact.id.to_string()),
                field: "owner".to_owned(),
                from: from.map(leadroute::domain::OwnerId),
                to: leadroute::domain::OwnerId(to),
                rule: "it".to_owned(),
                reason: "it".to_owned(),
                policy_version: String::new(),
                record_updated_at: None,
            }],
            exceptions: Vec::new(),
        };
        edit(&mut plan);
        let path = self.dir.path().join(name);
        std::fs::write(&path, serde_json::to_string(&plan).unwrap()).unwrap();
        path.display().to_string()
    }
}

/// Issue 9 item 6: `apply --plan` checked nothing but the CRM kind, and that only
/// after printing the summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_refuses_a_foreign_or_stale_plan_before_printing_anything() {
    let cli = Cli::start(30).await;
    // The configured policy's version, as `policy check` computes it.
    let policy_text = std::fs::read_to_string(cli.dir.path().join("policy.toml")).unwrap();
    let (policy, _) = leadroute::policy::parse("policy.toml", &policy_text).unwrap();
    let version = policy.version.clone();

    let foreign = cli.write_plan("sf.json", |p| {
        p.crm = CrmKind::Salesforce;
        p.policy_version = version.clone();
    });
    let (ok, out, err) = cli
        .run(&["apply", "--plan", &foreign, "--yes", "--force"])
        .await;
    assert!(!ok, "{out}{err}");
    assert!(err.contains("salesforce"), "{err}");
    assert!(
        !out.contains("write calls"),
        "refused before the summary: {out}"
    );

    let other_policy = cli.write_plan("old-policy.json", |p| p.policy_version = "v0".into());
    let (ok, out, err) = cli.run(&["apply", "--plan", &other_policy, "--yes"]).await;
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("policy version v0") && err.contains("--force"),
        "{err}"
    );
    assert!(!out.contains("write calls"), "{out}");

    let stale = cli.write_plan("stale.json", |p| {
        p.policy_version = version.clone();
        p.created_at = Utc::now() - Duration::hours(30);
    });
    let (ok, out, err) = cli.run(&["apply", "--plan", &stale, "--yes"]).await;
    assert!(!ok, "{out}{err}");
    assert!(err.contains("30 hours ago"), "{err}");
    assert!(cli.sim.write_log().is_empty(), "nothing written");

    let (ok, out, err) = cli
        .run(&["apply", "--plan", &stale, "--yes", "--force"])
        .await;
    assert!(ok, "{out}{err}");
    assert!(err.contains("--force"), "the override is said: {err}");
    assert_eq!(cli.sim.write_log().len(), 1);
    cli.sim.shutdown().await;
}

/// Issue 9 item 7: a Ctrl-C'd backfill with nothing pending stayed `cancelled`, and
/// the next `backfill` only closed it instead of backfilling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_backfill_with_nothing_pending_is_closed_and_a_fresh_one_runs() {
    let cli = Cli::start(60).await;
    let (ok, out, err) = cli.run(&["sync", "--once"]).await;
    assert!(ok, "{out}{err}");
    {
        let store = cli.store().await;
        let now = Utc::now() - Duration::minutes(42);
        let run = NewRun {
            run_id: "old",
            org: OrgId::default_for(CrmKind::Hubspot),
            kind: "backfill",
            parent_run: None,
            policy_version: "v",
        };
        store.journal_create_run(&run, &[], now).await.unwrap();
        store
            .journal_set_run_status("old", RunStatus::Cancelled, Some("cancelled"), None, now)
            .await
            .unwrap();
        store.close().await;
    }
    let (ok, out, err) = cli.run(&["backfill", "--yes"]).await;
    assert!(ok, "{out}{err}");
    assert!(
        err.contains("closed backfill run old started 42 minutes ago"),
        "{err}"
    );
    assert!(
        !cli.sim.write_log().is_empty(),
        "the fresh backfill ran: {out}{err}"
    );
    let store = cli.store().await;
    let old = store.journal_run("old").await.unwrap().unwrap();
    assert_eq!(old.status, RunStatus::Completed);
    // Right after the backfill, without a sync, there is nothing left to do.
    let (ok, out, err) = cli.run(&["backfill", "--yes"]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("already has its desired owner"), "{out}{err}");
    store.close().await;
    cli.sim.shutdown().await;
}

/// Issue 9 item 4: `backfill` with no owner changes dropped the plan's exceptions
/// ("every record already has its desired owner", then an empty queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_with_only_exceptions_queues_them() {
    let cli = Cli::start(20).await;
    std::fs::write(
        cli.dir.path().join("policy.toml"),
        "[settings]\nname = \"it\"\n\n[default]\naction = \"exception\"\nkind = \"needs_review\"\nreason = \"review by hand\"\n",
    )
    .unwrap();
    let (ok, out, err) = cli.run(&["sync", "--once"]).await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) = cli.run(&["backfill", "--yes"]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("exceptions queued"), "{out}{err}");
    let store = cli.store().await;
    let open = store.exceptions(Some("open")).await.unwrap();
    let live = cli
        .sim
        .state()
        .contacts
        .iter()
        .filter(|c| !c.archived)
        .count();
    assert_eq!(open.len(), live, "one per contact");
    assert!(open.iter().all(|e| e.kind == "needs_review"));
    // Backfilling again queues nothing twice.
    let (ok, out, err) = cli.run(&["backfill", "--yes"]).await;
    assert!(ok, "{out}{err}");
    assert_eq!(store.exceptions(Some("open")).await.unwrap().len(), live);
    assert!(cli.sim.write_log().is_empty());
    store.close().await;
    cli.sim.shutdown().await;
}

/// Issue 9 item 7: an old stopped run was resumed silently with its old plan. It now
/// says what it resumes and how old the plan is; `--restart` plans afresh and closes
/// the old run as superseded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_backfill_is_resumed_out_loud_or_replaced_with_restart() {
    let cli = Cli::start(30).await;
    let (ok, out, err) = cli.run(&["sync", "--once"]).await;
    assert!(ok, "{out}{err}");
    let plan_path = cli.write_plan("one.json", |_| {});
    let plan: Plan = serde_json::from_str(&std::fs::read_to_string(plan_path).unwrap()).unwrap();
    journal_paused(&cli, "stopped", &plan).await;
    let (ok, out, err) = cli.run(&["backfill", "--yes"]).await;
    assert!(ok, "{out}{err}");
    assert!(
        err.contains(
            "resuming backfill run stopped started 42 minutes ago (0 of 1 done; it stopped: \
             quota); its plan is 42 minutes old"
        ),
        "{err}"
    );
    assert_eq!(cli.sim.write_log().len(), 1, "the old plan's one change");

    journal_paused(&cli, "replaced", &plan).await;
    let (ok, out, err) = cli.run(&["backfill", "--yes", "--restart"]).await;
    assert!(ok, "{out}{err}");
    assert!(err.contains("not resuming backfill run replaced"), "{err}");
    let store = cli.store().await;
    let old = store.journal_run("replaced").await.unwrap().unwrap();
    assert_eq!(old.status, RunStatus::Completed);
    assert!(old.message.unwrap_or_default().contains("superseded"));
    store.close().await;
    cli.sim.shutdown().await;
}

/// Journals `plan` as a backfill run started 42 minutes ago and paused (quota).
async fn journal_paused(cli: &Cli, id: &str, plan: &Plan) {
    let store = cli.store().await;
    let at = Utc::now() - Duration::minutes(42);
    let run = NewRun {
        run_id: id,
        org: OrgId::default_for(CrmKind::Hubspot),
        kind: "backfill",
        parent_run: None,
        policy_version: "v",
    };
    store
        .journal_create_run(&run, &plan.changes, at)
        .await
        .unwrap();
    store
        .journal_set_run_status(id, RunStatus::Paused, Some("quota"), None, at)
        .await
        .unwrap();
    store.close().await;
}

/// Issue 9 item 5: rolling back to an owner deactivated since sent doomed writes, said
/// "need a re-plan", queued nothing and exited 0. Now: known-inactive targets are not
/// written but queued as exceptions; ones the CRM refuses (the mirror had not seen the
/// deactivation yet) are queued too; either way the command exits non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_to_a_deactivated_owner_queues_exceptions_and_fails() {
    use leadroute_sim::hubspot::Mutation;

    let cli = Cli::start(60).await;
    // Contacts of two owners outside the pool, each moved by its own run.
    let state = cli.sim.state();
    let mut by_owner: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for c in state.contacts.iter().filter(|c| !c.archived) {
        if let Some(o) = c
            .properties
            .get("hubspot_owner_id")
            .filter(|o| !o.is_empty())
            && !cli.owners.contains(o)
            && state
                .owners
                .iter()
                .any(|x| x.id.to_string() == *o && !x.archived)
        {
            by_owner
                .entry(o.clone())
                .or_default()
                .push(c.id.to_string());
        }
    }
    let mut owners = by_owner.into_iter().filter(|(_, ids)| ids.len() >= 2);
    let (synced, synced_ids) = owners.next().expect("an owner with contacts");
    let (stale, stale_ids) = owners.next().expect("another owner with contacts");
    let to = cli.owners[0].clone();
    let plan_for = |name: &str, from: &str, ids: &[String]| {
        let (from, ids, to) = (from.to_owned(), ids.to_vec(), to.clone());
        cli.write_plan(name, move |p| {
            let template = p.changes[0].clone();
            p.changes = ids
                .iter()
                .map(|id| PlannedChange {
                    id: leadroute::domain::RecordId(id.clone()),
                    from: Some(leadroute::domain::OwnerId(from.clone())),
                    to: leadroute::domain::OwnerId(to.clone()),
                    ..template.clone()
                })
                .collect();
        })
    };
    let first = plan_for("first.json", &synced, &synced_ids);
    let second = plan_for("second.json", &stale, &stale_ids);
    for (plan, run) in [(&first, "first"), (&second, "second")] {
        let (ok, out, err) = cli
            .run(&["apply", "--plan", plan, "--run-id", run, "--yes", "--force"])
            .await;
        assert!(ok, "{out}{err}");
    }
    cli.sim
        .mutate(Mutation::DeactivateOwner {
            owner_id: synced.clone(),
        })
        .unwrap();
    let (ok, out, err) = cli.run(&["sync", "--once"]).await;
    assert!(ok, "{out}{err}");
    // Deactivated after the last sync: only the CRM knows.
    cli.sim
        .mutate(Mutation::DeactivateOwner {
            owner_id: stale.clone(),
        })
        .unwrap();
    let writes = cli.sim.write_log().len();

    let (ok, out, err) = cli.run(&["rollback", "first", "--yes"]).await;
    assert!(!ok, "work is left for a person: {out}{err}");
    assert!(err.contains("need a person"), "{err}");
    assert!(out.contains("inactive now (queued as exceptions)"), "{out}");
    assert!(
        !out.contains("contact:"),
        "no per-record lines without --verbose: {out}"
    );
    assert_eq!(
        cli.sim.write_log().len(),
        writes,
        "no doomed write was sent"
    );

    let (ok, out, err) = cli.run(&["rollback", "second", "--yes", "--verbose"]).await;
    assert!(!ok, "{out}{err}");
    assert!(
        out.contains("the CRM refused the revert (queued as exceptions)"),
        "{out}"
    );
    for id in &stale_ids {
        assert!(
            out.contains(&format!("contact:{id}: the CRM refused")),
            "{out}"
        );
    }

    let store = cli.store().await;
    let open = store.exceptions(Some("open")).await.unwrap();
    for id in synced_ids.iter().chain(&stale_ids) {
        assert!(
            open.iter().any(|e| e.record_id.0 == *id),
            "no exception for {id}: {open:?}"
        );
    }
    store.close().await;
    cli.sim.shutdown().await;
}

/// Issue 9 item 6: every HubSpot portal shares one base URL, so a plan file names the
/// org by the portal id its mirror recorded, and a plan for another portal is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_file_names_the_mirrored_portal_and_another_portals_plan_is_refused() {
    let cli = Cli::start(30).await;
    let (ok, out, err) = cli.run(&["sync", "--once"]).await;
    assert!(ok, "{out}{err}");
    let recorded = {
        let store = cli.store().await;
        let org = store
            .org_identity(&OrgId::default_for(CrmKind::Hubspot))
            .await
            .unwrap();
        store.close().await;
        org.expect("the first sync records the portal").id
    };
    let path = cli.dir.path().join("plan.json");
    let path_str = path.display().to_string();
    let (ok, out, err) = cli
        .run(&["plan", "--format", "json", "--out", &path_str])
        .await;
    assert!(ok, "{out}{err}");
    let text = std::fs::read_to_string(&path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["org"], format!("hubspot {recorded}"), "{text}");

    let mut foreign = json.clone();
    foreign["org"] = serde_json::Value::String("hubspot 1".into());
    let foreign_path = cli.dir.path().join("foreign.json");
    std::fs::write(&foreign_path, foreign.to_string()).unwrap();
    let foreign_str = foreign_path.display().to_string();
    let (ok, out, err) = cli
        .run(&["apply", "--plan", &foreign_str, "--yes", "--force"])
        .await;
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("hubspot 1") && err.contains(&recorded),
        "{err}"
    );
    assert!(cli.sim.write_log().is_empty(), "nothing written");
    cli.sim.shutdown().await;
}
