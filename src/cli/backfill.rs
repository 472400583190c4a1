//! `leadroute backfill`: plan ownership for every existing record and apply it with a
//! progress bar. Resumable: an unfinished backfill run in the journal is continued
//! (finished batches are never redone) instead of planning afresh.

use std::sync::Arc;

use chrono::Utc;
use leadroute_crm::{Crm, ObjectKind};

use super::GlobalArgs;
use super::apply::{AppEnv, load_env};
use super::apply::{
    cancel_on_ctrl_c, confirm, crm_kind, finish, finish_commit, load_policy, plan_from_mirror,
    writer_settings,
};
use crate::app::{self, CrmTask};
use crate::reconcile::{Ledger, Plan};
use crate::service::commit::commit_plan;
use crate::writer::{ApplyReport, BarProgress, Progress, RunId, RunSpec, Writer, summarize};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only these objects (contact, lead, account); repeat or comma-separate.
    #[arg(long, value_delimiter = ',', value_name = "OBJECT")]
    pub object: Vec<ObjectKind>,
    /// Show the plan summary and cost, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply without asking. Required when stdin is not a terminal.
    #[arg(long)]
    pub yes: bool,
    /// Plan afresh even if an unfinished backfill run exists (that run stays resumable
    /// with `leadroute apply --resume RUN`).
    #[arg(long)]
    pub restart: bool,
    /// Salesforce: conditional writes (If-Unmodified-Since).
    #[arg(long)]
    pub strict: bool,
}

pub async fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let env = load_env(global).await?;
    app::with_crm(&env.config.clone(), BackfillJob { args, env }).await
}

struct BackfillJob {
    args: Args,
    env: AppEnv,
}

impl CrmTask for BackfillJob {
    type Output = ();

    async fn run<C: Crm>(self, crm: Arc<C>) -> anyhow::Result<()> {
        let BackfillJob { args, env } = self;
        let writer = Writer::new(crm, env.store.clone(), writer_settings(&env, args.strict))
            .with_cancel(cancel_on_ctrl_c());
        let kind = crm_kind(&writer);
        if !args.dry_run && !args.restart {
            if let Some(run) = env.store.journal_unfinished_run(kind, "backfill").await? {
                let counts = env.store.journal_counts(&run.run_id).await?;
                eprintln!(
                    "resuming backfill run {} ({} of {} changes done{})",
                    run.run_id,
                    counts.done(),
                    counts.total,
                    run.message
                        .as_deref()
                        .map(|m| format!("; it stopped: {m}"))
                        .unwrap_or_default()
                );
                let report = writer
                    .resume(&RunId::new(run.run_id.clone()), &BarProgress::new())
                    .await?;
                return finish(&report, "leadroute backfill");
            }
        }
        let policy = load_policy(&env)?;
        let objects = (!args.object.is_empty()).then_some(args.object.as_slice());
        let (plan, mut ledger) = plan_from_mirror(&env, kind, &policy, objects).await?;
        println!("{}", summarize(&writer, &plan, Some(&policy)));
        if args.dry_run {
            println!("dry run: nothing written");
            return Ok(());
        }
        if plan.changes.is_empty() {
            // Nothing to write to the CRM, but the plan's exceptions still belong in
            // the queue (queueing them asks for no confirmation: the CRM is untouched).
            let spec = backfill_spec();
            let committed =
                commit_plan(&writer, &plan, Some(&mut ledger), &spec, &BarProgress::new()).await?;
            finish_commit(&committed, "leadroute backfill")?;
            println!("every record already has its desired owner");
            return Ok(());
        }
        if !confirm(
            args.yes,
            &format!("backfill {} owner changes?", plan.changes.len()),
        )? {
            println!("not applied");
            return Ok(());
        }
        let spec = backfill_spec();
        let committed =
            commit_plan(&writer, &plan, Some(&mut ledger), &spec, &BarProgress::new()).await?;
        finish_commit(&committed, "leadroute backfill")
    }
}

/// A new `backfill` run.
fn backfill_spec() -> RunSpec {
    RunSpec {
        id: RunId::generate(Utc::now()),
        kind: "backfill".to_owned(),
        parent: None,
    }
}

/// Commits to the plan as a new `backfill` run through the shared commit path
/// ([`commit_plan`]: ledger, exceptions, changes). The demo uses this.
pub(crate) async fn start_backfill<C: Crm>(
    writer: &Writer<C>,
    _env: &AppEnv,
    plan: &Plan,
    ledger: &mut Ledger,
    progress: &dyn Progress,
) -> anyhow::Result<ApplyReport> {
    let spec = backfill_spec();
    let committed = commit_plan(writer, plan, Some(ledger), &spec, progress).await?;
    match committed.report {
        Some(report) => Ok(report),
        // No owner changes: an empty run, so the caller still gets a report.
        None => Ok(writer.apply_run(plan, &spec, progress).await?),
    }
}
