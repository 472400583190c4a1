//! `leadroute exceptions list|resolve|retry`: the queue of what could not or must not be
//! done automatically (validation rules, ambiguous matches, no eligible rep, …).

use std::sync::Arc;

use leadroute_crm::{Crm, OwnerId};

use super::GlobalArgs;
use super::apply::writer_settings;
use super::apply::{AppEnv, load_env};
use crate::app::{self, CrmTask};
use crate::writer::{NoProgress, Writer};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Show queued exceptions.
    List {
        /// Include resolved and retried ones.
        #[arg(long)]
        all: bool,
    },
    /// Assign the record by hand and close the exception.
    Resolve {
        id: i64,
        /// The owner id to assign (HubSpot owner id, Salesforce User/Queue id).
        #[arg(long)]
        owner: String,
    },
    /// Try the original change again (e.g. after fixing a validation rule).
    Retry { id: i64 },
}

pub async fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    if let Command::List { all } = args.command {
        // Listing needs only the store, not CRM credentials.
        let env = load_env(global).await?;
        let rows = env
            .store
            .exceptions(if all { None } else { Some("open") })
            .await?;
        if rows.is_empty() {
            println!("no {}exceptions", if all { "" } else { "open " });
            return Ok(());
        }
        println!(
            "{:>6}  {:<8} {:<40} {:<18} {:<14} reason",
            "id", "status", "record", "kind", "desired"
        );
        for row in rows {
            println!(
                "{:>6}  {:<8} {:<40} {:<18} {:<14} {}{}",
                row.id,
                row.status,
                format!("{}:{}:{}", row.crm, row.object, row.record_id),
                row.kind,
                row.desired.as_ref().map(|o| o.as_str()).unwrap_or("-"),
                row.reason,
                row.message
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            );
        }
        return Ok(());
    }
    let env = load_env(global).await?;
    let job = ExceptionJob {
        command: args.command,
        env,
    };
    app::with_crm(&job.env.config.clone(), job).await
}

struct ExceptionJob {
    command: Command,
    env: AppEnv,
}

impl CrmTask for ExceptionJob {
    type Output = ();

    async fn run<C: Crm>(self, crm: Arc<C>) -> anyhow::Result<()> {
        let env = self.env;
        let writer = Writer::new(crm, env.store.clone(), writer_settings(&env, false));
        let (id, report) = match self.command {
            Command::Resolve { id, owner } => (
                id,
                writer
                    .resolve_exception(id, OwnerId::new(owner), &NoProgress)
                    .await?,
            ),
            Command::Retry { id } => (id, writer.retry_exception(id, &NoProgress).await?),
            Command::List { .. } => return Ok(()),
        };
        println!("{report}");
        if report.applied + report.unchanged == 1 {
            println!("exception {id} closed");
            Ok(())
        } else {
            anyhow::bail!("exception {id} stays open: the change was not applied (see above)")
        }
    }
}
