//! `leadroute rollback RUN`: revert a run's applied changes where the CRM still holds
//! the owner leadroute wrote, and say which ones were left alone and why.

use std::sync::Arc;

use chrono::Utc;
use leadroute_crm::Crm;

use super::GlobalArgs;
use super::apply::{AppEnv, load_env};
use super::apply::{cancel_on_ctrl_c, confirm, writer_settings};
use crate::app::{self, CrmTask};
use crate::writer::{BarProgress, RunId, Writer};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run to revert (printed by apply/backfill; also in the journal).
    pub run: String,
    /// Revert without asking. Required when stdin is not a terminal.
    #[arg(long)]
    pub yes: bool,
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
        let counts = env.store.journal_counts(&args.run).await?;
        if counts.total == 0 {
            anyhow::bail!(
                "run {} is not in the journal; use the run id apply/backfill printed",
                args.run
            );
        }
        println!(
            "run {}: {} changes applied; reverting those whose owner is still the one written",
            args.run, counts.applied
        );
        if !confirm(args.yes, &format!("roll back run {}?", args.run))? {
            println!("not rolled back");
            return Ok(());
        }
        let writer = Writer::new(crm, env.store.clone(), writer_settings(&env, false))
            .with_cancel(cancel_on_ctrl_c());
        let rollback_run = RunId::new(format!("{}-rollback", RunId::generate(Utc::now())));
        let result = writer
            .rollback(&args.run, rollback_run, &BarProgress::new())
            .await?;
        if let Some(report) = &result.report {
            println!("{report}");
        }
        println!("reverted {} changes", result.reverted);
        if !result.left_alone.is_empty() {
            println!("left alone ({}):", result.left_alone.len());
            for left in &result.left_alone {
                println!("  {}:{}: {}", left.object, left.id, left.why);
            }
        }
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
        Ok(())
    }
}
