//! `leadroute rollback RUN`: revert a run's applied changes where the CRM still holds
//! the owner leadroute wrote. Prints a summary of what was left alone by reason
//! (`--verbose` lists each record); `--dry-run` reads the CRM and writes nothing.
//! Records whose previous owner is inactive now are queued as exceptions, and the
//! command exits non-zero while anything is left for a person.

use std::sync::Arc;

use chrono::Utc;
use leadroute_crm::Crm;

use super::GlobalArgs;
use super::apply::{AppEnv, load_env};
use super::apply::{cancel_on_ctrl_c, confirm, writer_settings};
use crate::app::{self, CrmTask};
use crate::writer::{BarProgress, RollbackReport, RunId, Writer};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run to revert (printed by apply/backfill; `leadroute runs` lists them).
    pub run: String,
    /// Revert without asking. Required when stdin is not a terminal.
    #[arg(long)]
    pub yes: bool,
    /// Read the CRM and show what a rollback would revert and leave alone; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// List every record left alone, not only the counts by reason.
    #[arg(long)]
    pub verbose: bool,
}

pub async fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let env = load_env(global).await?;
    app::with_crm(&env.config.clone(), RollbackJob { args, env }).await
}

struct RollbackJob {
    args: Args,
    env: AppEnv,
}

impl CrmTask for RollbackJob {
    type Output = ();

    async fn run<C: Crm>(self, crm: Arc<C>) -> anyhow::Result<()> {
        let RollbackJob { args, env } = self;
        let writer = Writer::new(crm, env.store.clone(), writer_settings(&env, false))
            .with_org(env.config.org.clone())
            .with_cancel(cancel_on_ctrl_c());
        // Refused before asking: unknown run, another CRM, already rolled back.
        let row = writer.rollback_check(&args.run).await?;
        let counts = env.store.journal_counts(&args.run).await?;
        println!(
            "run {} ({}, started {}): {} changes applied; reverting those whose owner is \
             still the one written",
            args.run,
            row.kind,
            row.created_at.format("%Y-%m-%d %H:%M UTC"),
            counts.applied
        );
        if !args.dry_run && !confirm(args.yes, &format!("roll back run {}?", args.run))? {
            println!("not rolled back");
            return Ok(());
        }
        let rollback_run = RunId::new(format!("{}-rollback", RunId::generate(Utc::now())));
        let result = writer
            .rollback(&args.run, rollback_run, args.dry_run, &BarProgress::new())
            .await?;
        print_rollback(&result, args.verbose);
        if let Some(stop) = result.report.as_ref().and_then(|r| r.stopped.as_ref()) {
            anyhow::bail!(
                "the rollback stopped early ({}); run `leadroute apply --resume {}` to finish it",
                stop.message,
                result
                    .report
                    .as_ref()
                    .map(|r| r.run_id.as_str())
                    .unwrap_or_default()
            );
        }
        let undone = result.undone();
        if !result.dry_run && undone > 0 {
            anyhow::bail!(
                "{undone} changes of run {} were not reverted and need a person; see \
                 `leadroute exceptions list`",
                args.run
            );
        }
        Ok(())
    }
}

/// The rollback's outcome: its run report, what was (or would be) reverted, and what
/// was left alone by reason; each record only with `verbose`.
fn print_rollback(result: &RollbackReport, verbose: bool) {
    if let Some(report) = &result.report {
        // A rollback re-plans nothing: what it could not revert is summarised below by
        // reason (refusals queued as exceptions), not as "records need a re-plan".
        let mut shown = report.clone();
        shown.replan.clear();
        println!("{shown}");
    }
    if result.dry_run {
        println!(
            "dry run: would revert {} changes; nothing written",
            result.would_revert
        );
    } else {
        println!("reverted {} changes", result.reverted);
    }
    if result.exceptions_queued > 0 {
        println!(
            "{} exceptions queued (see `leadroute exceptions list`)",
            result.exceptions_queued
        );
    }
    let by_reason = result.by_reason();
    if by_reason.is_empty() {
        return;
    }
    let verb = if result.dry_run {
        "would leave alone"
    } else {
        "left alone"
    };
    println!("{verb} {}:", result.left_alone.len());
    for (reason, count) in &by_reason {
        println!("  {count:>7}  {}", reason.describe());
    }
    if verbose {
        for left in &result.left_alone {
            println!("  {}:{}: {}", left.object, left.id, left.why);
        }
    } else {
        println!("  (--verbose lists each record)");
    }
}
