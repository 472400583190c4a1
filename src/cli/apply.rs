//! `leadroute apply`: show what a plan will do and cost, ask, then converge the CRM.
//! Also holds the helpers the other writer commands share (confirmation, Ctrl-C,
//! plan from the mirror, printing a report).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use chrono::Utc;
use leadroute_crm::{Crm, ObjectKind};
use tokio_util::sync::CancellationToken;

use super::GlobalArgs;
use crate::app::{self, CrmTask};
use crate::config::Config;
use crate::policy::Policy;
use crate::reconcile::{Ledger, Plan};
use crate::service::commit::{Committed, commit_plan};
use crate::store::Store;
use crate::writer::{ApplyReport, BarProgress, RunId, RunSpec, Writer, WriterSettings, summarize};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Plan file (JSON, as `leadroute plan --format json` writes it). Without it the
    /// plan is computed now from the mirror and the configured policy.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub plan: Option<PathBuf>,
    /// Apply at most N changes (the first N in plan order); the rest wait for the next
    /// plan. Default: `writer.max_changes` in the config (none: the whole plan).
    #[arg(long, value_name = "N")]
    pub max_changes: Option<usize>,
    /// Apply without asking. Required when stdin is not a terminal.
    #[arg(long)]
    pub yes: bool,
    /// Resume a stopped run (its id is printed when it stops) instead of a new plan.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<String>,
    /// Salesforce: make every write conditional (If-Unmodified-Since). Safer, more
    /// API calls. Also `crm.salesforce.strict_writes` in the config.
    #[arg(long)]
    pub strict: bool,
    /// Apply a plan file made with another policy version than the configured one, or
    /// more than 24 hours ago (refused without it). A plan for another CRM or org is
    /// always refused.
    #[arg(long, requires = "plan")]
    pub force: bool,
    /// Name the run (default: generated). Re-running the same command with the same
    /// id after a crash resumes that run instead of starting another.
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
}

pub async fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let env = load_env(global).await?;
    app::with_crm(&env.config.clone(), ApplyJob { args, env }).await
}

/// Config and store, loaded once per command.
#[derive(Debug, Clone)]
pub(crate) struct AppEnv {
    pub(crate) config: Config,
    pub(crate) store: Store,
}

/// Config and store for a command that calls the CRM (the one loader:
/// `service::load`).
pub(crate) async fn load_env(global: &GlobalArgs) -> anyhow::Result<AppEnv> {
    let crate::service::load::Loaded { mut config, store } = crate::service::load::env(
        global.config.as_deref(),
        global.org.as_deref(),
        crate::config::Needs::Crm,
    )
    .await?;
    crate::service::load::one_retry_layer(&mut config);
    Ok(AppEnv { config, store })
}

struct ApplyJob {
    args: Args,
    env: AppEnv,
}

impl CrmTask for ApplyJob {
    type Output = ();

    async fn run<C: Crm>(self, crm: Arc<C>) -> anyhow::Result<()> {
        let ApplyJob { args, env } = self;
        let settings = writer_settings(&env, args.strict);
        let cancel = cancel_on_ctrl_c();
        let writer = Writer::new(crm, env.store.clone(), settings)
            .with_org(env.config.org.clone())
            .with_cancel(cancel);
        if let Some(run) = &args.run_id
            && env.store.journal_run(run).await?.is_some()
        {
            eprintln!("run {run} is already journaled: resuming it");
            let report = writer
                .resume(&RunId::new(run.clone()), &BarProgress::new())
                .await?;
            return finish(&report, &format!("leadroute apply --resume {run}"));
        }
        if let Some(run) = &args.resume {
            let report = writer
                .resume(&RunId::new(run.clone()), &BarProgress::new())
                .await?;
            return finish(&report, &format!("leadroute apply --resume {run}"));
        }
        // The pools in force from before the plan's picks (recorded once committing).
        let roster_at = Utc::now();
        let (plan, policy, mut ledger) = match &args.plan {
            Some(path) => {
                let file = read_plan_file(path)?;
                // Before anything is printed: a stale or foreign plan is refused first.
                let configured = configured_policy_version(&env)?;
                let expected = PlanOrigin {
                    crm: crm_kind(&writer),
                    org: org_label(&env.config, &env.store).await,
                    policy_version: configured,
                };
                for warning in check_plan_file(&file, &expected, Utc::now(), args.force)
                    .map_err(|refusal| anyhow::anyhow!("{}: {refusal}", path.display()))?
                {
                    eprintln!("{}: warning: {warning}", path.display());
                }
                (file.plan, None, None)
            }
            None => {
                let policy = load_policy(&env)?;
                let (plan, ledger) = plan_from_mirror(&env, &policy, None).await?;
                (plan, Some(policy), Some(ledger))
            }
        };
        let mut plan = plan;
        if let Some(max) = args.max_changes.or(env.config.writer.max_changes)
            && plan.changes.len() > max
        {
            eprintln!(
                "--max-changes {max}: applying the first {max} of {} changes",
                plan.changes.len()
            );
            plan.changes.truncate(max);
        }
        let mut summary = summarize(&writer, &plan, policy.as_ref());
        let owners = env.store.owners(writer.org()).await.unwrap_or_default();
        summary.name_owners(
            &plan,
            &crate::reconcile::OwnerNames::new(policy.as_ref(), &owners),
        );
        println!("{summary}");
        if plan.changes.is_empty() && plan.exceptions.is_empty() {
            println!("nothing to apply");
            return Ok(());
        }
        if !confirm(
            args.yes,
            &format!("apply {} owner changes?", plan.changes.len()),
        )? {
            println!("not applied");
            return Ok(());
        }
        let run = args
            .run_id
            .clone()
            .map_or_else(|| RunId::generate(Utc::now()), RunId::new);
        let spec = RunSpec {
            id: run,
            kind: "apply".to_owned(),
            parent: None,
        };
        if let Some(policy) = &policy {
            crate::analytics::load::record_roster(&env.store, writer.org(), policy, roster_at)
                .await;
        }
        let committed =
            commit_plan(&writer, &plan, ledger.as_mut(), &spec, &BarProgress::new()).await?;
        finish_commit(&committed, &format!("leadroute apply --resume {}", spec.id))
    }
}

/// Prints what committing to a plan did: the exceptions queued and the run's report.
pub(crate) fn finish_commit(committed: &Committed, resume_with: &str) -> anyhow::Result<()> {
    if committed.exceptions_queued > 0 {
        println!(
            "{} exceptions queued (see `leadroute exceptions list`)",
            committed.exceptions_queued
        );
    }
    match &committed.report {
        Some(report) => finish(report, resume_with),
        None => Ok(()),
    }
}

pub(crate) fn crm_kind<C: Crm>(writer: &Writer<C>) -> leadroute_crm::CrmKind {
    writer.crm().kind()
}

/// Writer settings from config (`[writer]`, `crm.salesforce.strict_writes`) and flags.
pub(crate) fn writer_settings(env: &AppEnv, strict: bool) -> WriterSettings {
    WriterSettings {
        strict: strict || env.config.crm.salesforce.strict_writes,
        ..env.config.writer.settings.clone()
    }
}

/// A token cancelled by the first Ctrl-C or SIGTERM: the writer finishes the in-flight
/// batch, journals it, and stops with a resumable run.
pub(crate) fn cancel_on_ctrl_c() -> CancellationToken {
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    tokio::spawn(async move {
        crate::service::shutdown_signal().await;
        eprintln!("stopping after the in-flight batch (the journal stays consistent)…");
        token.cancel();
    });
    cancel
}

/// Asks on a terminal; refuses when not interactive unless `yes`.
pub(crate) fn confirm(yes: bool, question: &str) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "refusing to write to the CRM without confirmation: stdin is not a terminal; pass --yes"
        );
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush().context("writing the prompt")?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES"))
}

/// A plan older than this is refused by `apply --plan` without `--force`: the mirror,
/// the roster and the rotation have moved on since.
pub(crate) const MAX_PLAN_AGE_HOURS: i64 = 24;

/// A plan file: the plan and the org it names. The plan's own fields are the rest of
/// its header (`crm`, `policy_version`, `created_at`); `org` came later, so a file
/// without it still loads (with a warning).
#[derive(Debug, Clone)]
pub(crate) struct PlanFile {
    pub(crate) plan: Plan,
    pub(crate) org: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct PlanHeader {
    #[serde(default)]
    org: Option<String>,
}

pub(crate) fn read_plan_file(path: &Path) -> anyhow::Result<PlanFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the plan file {}", path.display()))?;
    let not_a_plan = || {
        format!(
            "{} is not a plan (expected the JSON `leadroute plan --format json` writes)",
            path.display()
        )
    };
    let plan: Plan = serde_json::from_str(&text).with_context(not_a_plan)?;
    let header: PlanHeader = serde_json::from_str(&text).with_context(not_a_plan)?;
    Ok(PlanFile {
        plan,
        org: header.org,
    })
}

/// The plan as a file `apply --plan` checks: its JSON plus the `org` it was made for.
/// `leadroute plan --out` should write this (with [`org_identity`] of its config).
pub fn plan_file_json(plan: &Plan, org: &str) -> String {
    let mut value = serde_json::to_value(plan).expect("a plan always serializes");
    if let Some(map) = value.as_object_mut() {
        map.insert("org".to_owned(), serde_json::Value::String(org.to_owned()));
    }
    serde_json::to_string_pretty(&value).expect("a JSON value always serializes")
}

/// Which CRM org a plan is for: the org the store mirrors (the HubSpot portal id or
/// Salesforce org id its first sync recorded: every HubSpot portal shares one base URL,
/// so the URL alone cannot tell two portals apart), else what the config points at.
pub async fn org_label(config: &Config, store: &crate::store::Store) -> String {
    match store.org_identity(&config.org).await {
        Ok(Some(recorded)) => format!("{} {}", config.crm.kind, recorded.id),
        _ => org_identity(config),
    }
}

/// Which CRM org the config points at: the Salesforce organization id or instance URL
/// when configured, else the CRM base URL.
pub fn org_identity(config: &Config) -> String {
    let sf = &config.crm.salesforce;
    match config.crm.kind {
        leadroute_crm::CrmKind::Salesforce => sf
            .organization_id
            .clone()
            .or_else(|| sf.instance_url.clone())
            .unwrap_or_else(|| config.crm.base_url.clone()),
        _ => config.crm.base_url.clone(),
    }
}

/// What a plan file must have been made for to be applied here.
#[derive(Debug, Clone)]
pub(crate) struct PlanOrigin {
    pub(crate) crm: leadroute_crm::CrmKind,
    pub(crate) org: String,
    /// The configured policy's version (`None`: no policy configured, not checked).
    pub(crate) policy_version: Option<String>,
}

/// The configured policy's version, when a policy is configured.
fn configured_policy_version(env: &AppEnv) -> anyhow::Result<Option<String>> {
    match env.config.policy.path {
        Some(_) => Ok(Some(load_policy(env)?.version)),
        None => Ok(None),
    }
}

/// Checks a plan file against where it is about to be applied. `Err` refuses (another
/// CRM or org always; another policy version or a plan older than
/// [`MAX_PLAN_AGE_HOURS`] unless `force`); `Ok` carries warnings to print.
pub(crate) fn check_plan_file(
    file: &PlanFile,
    expected: &PlanOrigin,
    now: chrono::DateTime<Utc>,
    force: bool,
) -> Result<Vec<String>, String> {
    let plan = &file.plan;
    let mut warnings = Vec::new();
    if plan.crm != expected.crm {
        return Err(format!(
            "the plan is for {}, but the config talks to {}; make the plan again with \
             `leadroute plan --out FILE` against this CRM",
            plan.crm, expected.crm
        ));
    }
    match &file.org {
        Some(org) if org != &expected.org => {
            return Err(format!(
                "the plan was made for the org at {org}, but the config points at {}; \
                 make the plan again against this org",
                expected.org
            ));
        }
        Some(_) => {}
        None => warnings.push(
            "the plan file does not name the org it was made for (an older leadroute wrote \
             it); it is not checked"
                .to_owned(),
        ),
    }
    let mut refusals = Vec::new();
    match &expected.policy_version {
        Some(version) if version != &plan.policy_version => refusals.push(format!(
            "it was made with policy version {}, but the configured policy is version \
             {version}",
            plan.policy_version
        )),
        Some(_) => {}
        None => warnings.push(
            "no policy is configured (policy.path), so the plan's policy version is not \
             checked"
                .to_owned(),
        ),
    }
    let age = now.signed_duration_since(plan.created_at);
    if age > chrono::Duration::hours(MAX_PLAN_AGE_HOURS) {
        refusals.push(format!(
            "it was made {} hours ago (at {}), more than {MAX_PLAN_AGE_HOURS} hours",
            age.num_hours(),
            plan.created_at.to_rfc3339()
        ));
    }
    if refusals.is_empty() {
        return Ok(warnings);
    }
    if force {
        warnings.extend(refusals.into_iter().map(|r| format!("--force: {r}")));
        return Ok(warnings);
    }
    Err(format!(
        "refusing a stale plan: {}; make a fresh one (`leadroute plan --out FILE`) or pass \
         --force to apply it anyway",
        refusals.join("; ")
    ))
}

pub(crate) fn load_policy(env: &AppEnv) -> anyhow::Result<Policy> {
    let path = env.config.policy.path.as_deref().ok_or_else(|| {
        anyhow::anyhow!(
            "{}: policy.path: not set; point it at your routing policy (or pass --plan FILE)",
            env.config.source
        )
    })?;
    crate::policy::load(path).map_err(|issues| {
        let lines: Vec<String> = issues.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(
            "the policy has problems; run `leadroute policy check`:\n{}",
            lines.join("\n")
        )
    })
}

/// Plans every mirrored record (optionally only some objects) with the policy and the
/// persisted assignment ledger. The caller saves the returned ledger once it commits to
/// the plan (so a dry run does not advance the rotation).
pub(crate) async fn plan_from_mirror(
    env: &AppEnv,
    policy: &Policy,
    objects: Option<&[ObjectKind]>,
) -> anyhow::Result<(Plan, Ledger)> {
    let snapshot = env
        .store
        .snapshot(&env.config.org_ref())
        .await
        .context("reading the mirror (run `leadroute sync` first)")?;
    let mut ledger = env
        .store
        .load_ledger(&env.config.org)
        .await
        .context("reading the assignment ledger")?;
    let mut plan = crate::reconcile::plan(&snapshot, policy, &mut ledger, Utc::now());
    if let Some(objects) = objects {
        plan.changes.retain(|c| objects.contains(&c.object));
        plan.exceptions.retain(|e| objects.contains(&e.object));
    }
    Ok((plan, ledger))
}

/// Prints the report; a stopped run is an error naming how to resume.
pub(crate) fn finish(report: &ApplyReport, resume_with: &str) -> anyhow::Result<()> {
    // `resume_with` is the whole command that resumes this run.
    println!("{report}");
    for replan in report.replan.iter().take(20) {
        println!("  re-plan {}:{}: {}", replan.object, replan.id, replan.why);
    }
    if report.replan.len() > 20 {
        println!("  … and {} more", report.replan.len() - 20);
    }
    if let Some(stop) = &report.stopped {
        anyhow::bail!(
            "run {} stopped before finishing ({}); nothing was lost: resume with `{resume_with}`",
            report.run_id,
            stop.reason.as_str(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadroute_crm::CrmKind;

    fn file(crm: CrmKind, org: Option<&str>, version: &str, hours_ago: i64) -> PlanFile {
        PlanFile {
            plan: Plan {
                policy_version: version.to_owned(),
                created_at: Utc::now() - chrono::Duration::hours(hours_ago),
                crm,
                changes: Vec::new(),
                exceptions: Vec::new(),
            },
            org: org.map(str::to_owned),
        }
    }

    fn here() -> PlanOrigin {
        PlanOrigin {
            crm: CrmKind::Hubspot,
            org: "https://portal-a".to_owned(),
            policy_version: Some("v2".to_owned()),
        }
    }

    #[test]
    fn a_plan_for_another_crm_or_org_is_refused_even_with_force() {
        let other_crm = file(CrmKind::Salesforce, Some("https://portal-a"), "v2", 0);
        let err = check_plan_file(&other_crm, &here(), Utc::now(), true).unwrap_err();
        assert!(err.contains("salesforce"), "{err}");
        let other_org = file(CrmKind::Hubspot, Some("https://portal-b"), "v2", 0);
        let err = check_plan_file(&other_org, &here(), Utc::now(), true).unwrap_err();
        assert!(err.contains("https://portal-b"), "{err}");
    }

    #[test]
    fn another_policy_version_or_an_old_plan_needs_force() {
        let old_policy = file(CrmKind::Hubspot, Some("https://portal-a"), "v1", 0);
        let err = check_plan_file(&old_policy, &here(), Utc::now(), false).unwrap_err();
        assert!(
            err.contains("policy version v1") && err.contains("--force"),
            "{err}"
        );
        let warnings = check_plan_file(&old_policy, &here(), Utc::now(), true).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let stale = file(CrmKind::Hubspot, Some("https://portal-a"), "v2", 30);
        let err = check_plan_file(&stale, &here(), Utc::now(), false).unwrap_err();
        assert!(err.contains("30 hours ago"), "{err}");
        let fresh = file(CrmKind::Hubspot, Some("https://portal-a"), "v2", 1);
        assert!(
            check_plan_file(&fresh, &here(), Utc::now(), false)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_old_plan_file_without_an_org_loads_with_a_warning() {
        let legacy = file(CrmKind::Hubspot, None, "v2", 0);
        let warnings = check_plan_file(&legacy, &here(), Utc::now(), false).unwrap();
        assert!(
            warnings[0].contains("does not name the org"),
            "{warnings:?}"
        );
        let json = plan_file_json(&legacy.plan, "https://portal-a");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        std::fs::write(&path, json).unwrap();
        let read = read_plan_file(&path).unwrap();
        assert_eq!(read.org.as_deref(), Some("https://portal-a"));
        assert_eq!(read.plan, legacy.plan);
    }
}
