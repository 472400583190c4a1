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
    let crate::service::load::Loaded { mut config, store } =
        crate::service::load::env(global.config.as_deref(), crate::config::Needs::Crm).await?;
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
        let writer = Writer::new(crm, env.store.clone(), settings).with_cancel(cancel);
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
        let (plan, policy, mut ledger) = match &args.plan {
            Some(path) => (read_plan(path)?, None, None),
            None => {
                let policy = load_policy(&env)?;
                let (plan, ledger) =
                    plan_from_mirror(&env, crm_kind(&writer), &policy, None).await?;
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
        let owners = env
            .store
            .owners(crm_kind(&writer))
            .await
            .unwrap_or_default();
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
        save_ledger(&env, crm_kind(&writer), ledger.as_mut()).await?;
        writer.queue_plan_exceptions(&plan, &run).await?;
        let spec = RunSpec {
            id: run,
            kind: "apply".to_owned(),
            parent: None,
        };
        let report = writer.apply_run(&plan, &spec, &BarProgress::new()).await?;
        finish(&report, &format!("leadroute apply --resume {}", spec.id))
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

/// A token cancelled by the first Ctrl-C: the writer finishes the in-flight batch,
/// journals it, and stops with a resumable run.
pub(crate) fn cancel_on_ctrl_c() -> CancellationToken {
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping after the in-flight batch (the journal stays consistent)…");
            token.cancel();
        }
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

pub(crate) fn read_plan(path: &Path) -> anyhow::Result<Plan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the plan file {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a plan (expected the JSON `leadroute plan --format json` writes)",
            path.display()
        )
    })
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
    crm: leadroute_crm::CrmKind,
    policy: &Policy,
    objects: Option<&[ObjectKind]>,
) -> anyhow::Result<(Plan, Ledger)> {
    let snapshot = env
        .store
        .snapshot(crm)
        .await
        .context("reading the mirror (run `leadroute sync` first)")?;
    let mut ledger = env
        .store
        .load_ledger(crm)
        .await
        .context("reading the assignment ledger")?;
    let mut plan = crate::reconcile::plan(&snapshot, policy, &mut ledger, Utc::now());
    if let Some(objects) = objects {
        plan.changes.retain(|c| objects.contains(&c.object));
        plan.exceptions.retain(|e| objects.contains(&e.object));
    }
    Ok((plan, ledger))
}

/// Commits the ledger of a plan about to be applied.
pub(crate) async fn save_ledger(
    env: &AppEnv,
    crm: leadroute_crm::CrmKind,
    ledger: Option<&mut Ledger>,
) -> anyhow::Result<()> {
    if let Some(ledger) = ledger {
        env.store
            .save_ledger(crm, ledger)
            .await
            .context("saving the assignment ledger")?;
    }
    Ok(())
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
