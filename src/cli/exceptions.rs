//! `leadroute exceptions list|resolve|retry`: the queue of what could not or must not be
//! done automatically (validation rules, ambiguous matches, no eligible rep, …).

use std::sync::Arc;

use anyhow::Context as _;
use leadroute_crm::{Crm, OwnerId};

use super::apply::{AppEnv, confirm, load_env, writer_settings};
use super::{GlobalArgs, out};
use crate::app::{self, CrmTask};
use crate::service::load::{self, Needs};
use crate::store::ExceptionRow;
use crate::writer::{NoProgress, Writer};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Status {
    Open,
    Resolved,
    Retried,
    /// Every status.
    All,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Include resolved and retried ones (same as `--status all`).
    #[arg(long)]
    pub all: bool,
    /// Only exceptions with this status.
    #[arg(long, value_enum, default_value = "open")]
    pub status: Status,
    /// Only this kind (e.g. `rejected`, `no_eligible`, `ambiguous_match`).
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// Only records of this object (contact, company, lead, account, …).
    #[arg(long, value_name = "OBJECT")]
    pub object: Option<String>,
    /// Only exceptions raised by this policy rule.
    #[arg(long, value_name = "RULE")]
    pub rule: Option<String>,
    /// Show at most N rows (0: all).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
    /// Skip the first N matching rows (for the next page).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub offset: usize,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Show queued exceptions, filtered and a page at a time.
    List(ListArgs),
    /// Assign the record by hand and close the exception.
    Resolve {
        /// The exception id (the first column of `leadroute exceptions list`).
        id: i64,
        /// The owner id to assign (HubSpot owner id, Salesforce User/Queue id).
        #[arg(long, value_name = "OWNER")]
        owner: String,
        /// Write without asking. Required when stdin is not a terminal.
        #[arg(long)]
        yes: bool,
    },
    /// Try the original change again (e.g. after fixing a validation rule).
    Retry {
        /// The exception id (the first column of `leadroute exceptions list`).
        id: i64,
    },
}

pub async fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    if let Command::List(list) = args.command {
        // Listing needs only the store, not CRM credentials.
        let env = load::env(
            global.config.as_deref(),
            global.org.as_deref(),
            Needs::Mirror,
        )
        .await?;
        return print_list(&env.store, &env.config.org, &list).await;
    }
    let env = load_env(global).await?;
    let job = ExceptionJob {
        command: args.command,
        env,
    };
    app::with_crm(&job.env.config.clone(), job).await
}

/// Whether `row` passes the list filters.
fn keep(row: &ExceptionRow, args: &ListArgs) -> bool {
    args.kind.as_deref().is_none_or(|k| row.kind == k)
        && args
            .object
            .as_deref()
            .is_none_or(|o| row.object.as_str() == o)
        && args.rule.as_deref().is_none_or(|r| row.rule == r)
}

async fn print_list(
    store: &crate::store::Store,
    org: &crate::domain::OrgId,
    args: &ListArgs,
) -> anyhow::Result<()> {
    let status = match (args.all, args.status) {
        (true, _) | (_, Status::All) => None,
        (false, Status::Open) => Some("open"),
        (false, Status::Resolved) => Some("resolved"),
        (false, Status::Retried) => Some("retried"),
    };
    let rows: Vec<ExceptionRow> = store
        .exceptions(status)
        .await
        .context("listing exceptions")?
        .into_iter()
        .filter(|row| &row.org == org && keep(row, args))
        .collect();
    if rows.is_empty() {
        return out::println(format_args!(
            "no {}exceptions{}",
            status.map(|s| format!("{s} ")).unwrap_or_default(),
            if args.kind.is_some() || args.object.is_some() || args.rule.is_some() {
                " matching the filters"
            } else {
                ""
            }
        ));
    }
    let limit = if args.limit == 0 {
        usize::MAX
    } else {
        args.limit
    };
    let mut text = format!(
        "{:>6}  {:<8} {:<40} {:<18} {:<14} reason\n",
        "id", "status", "record", "kind", "desired"
    );
    let page: Vec<&ExceptionRow> = rows.iter().skip(args.offset).take(limit).collect();
    for row in &page {
        text.push_str(&format!(
            "{:>6}  {:<8} {:<40} {:<18} {:<14} {}{}\n",
            row.id,
            row.status,
            format!("{}:{}:{}", row.org, row.object, row.record_id),
            row.kind,
            row.desired.as_ref().map(|o| o.as_str()).unwrap_or("-"),
            row.reason,
            row.message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ));
    }
    let shown_to = args.offset.saturating_add(page.len());
    if shown_to < rows.len() {
        text.push_str(&format!(
            "rows {}-{} of {}; next page: --offset {shown_to}\n",
            args.offset.saturating_add(1),
            shown_to,
            rows.len()
        ));
    } else if args.offset > 0 || page.len() < rows.len() {
        text.push_str(&format!(
            "rows {}-{} of {}\n",
            args.offset.saturating_add(1).min(rows.len()),
            shown_to,
            rows.len()
        ));
    }
    out::print(text)
}

struct ExceptionJob {
    command: Command,
    env: AppEnv,
}

impl CrmTask for ExceptionJob {
    type Output = ();

    async fn run<C: Crm>(self, crm: Arc<C>) -> anyhow::Result<()> {
        let env = self.env;
        let writer = Writer::new(crm, env.store.clone(), writer_settings(&env, false))
            .with_org(env.config.org.clone());
        let (id, report) = match self.command {
            Command::Resolve { id, owner, yes } => {
                let row = env
                    .store
                    .exception(id)
                    .await
                    .context("reading the exception")?
                    .ok_or_else(|| {
                        anyhow::anyhow!("no exception {id}; see `leadroute exceptions list`")
                    })?;
                let question = format!(
                    "assign {}:{}:{} to owner {owner} in the CRM and close exception {id} ({})?",
                    row.org, row.object, row.record_id, row.reason
                );
                if !confirm(yes, &question)? {
                    out::note("nothing written");
                    return Ok(());
                }
                (
                    id,
                    writer
                        .resolve_exception(id, OwnerId::new(owner), &NoProgress)
                        .await?,
                )
            }
            Command::Retry { id } => (id, writer.retry_exception(id, &NoProgress).await?),
            Command::List(_) => return Ok(()),
        };
        out::println(&report)?;
        if report.applied + report.unchanged == 1 {
            out::println(format_args!("exception {id} closed"))?;
            Ok(())
        } else {
            // The CRM's own words, from the journal of the run that tried.
            let why = refusal(&env, &report.run_id).await.unwrap_or_default();
            anyhow::bail!("exception {id} stays open: the change was not applied{why}")
        }
    }
}

/// "; the CRM said: CODE: message" from the journaled outcome of `run_id`.
async fn refusal(env: &AppEnv, run_id: &str) -> Option<String> {
    let entries = env.store.journal_entries(run_id).await.ok()?;
    let entry = entries
        .iter()
        .find(|e| e.code.is_some() || e.message.is_some() || e.reject_kind.is_some())?;
    let said = [
        entry.reject_kind.as_deref(),
        entry.code.as_deref(),
        entry.message.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(": ");
    Some(format!("; the CRM said: {said}"))
}
