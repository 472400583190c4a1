//! `leadroute plan`: desired vs actual owners from the mirror, as a table, JSON or CSV.
//! Also the loading helpers the other policy commands share (config, store, policy, clock).

use std::path::{Path, PathBuf};

use super::{GlobalArgs, out};
use crate::config::Config;
use crate::domain::{OrgRef, Snapshot};
use crate::policy::Policy;
use crate::reconcile::{self, Ledger};
use crate::service::load::{self, Needs};
use crate::store::Store;
use anyhow::Context as _;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy file (default: `[policy] path` from the config).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Output format: a table for reading, JSON (what `apply --plan` reads) or CSV.
    #[arg(long, value_enum, default_value = "table")]
    pub format: PlanFormat,
    /// Write the plan to FILE and print only its summary. With `--format csv` the file
    /// is CSV (a report); otherwise it is JSON (what `leadroute apply --plan FILE` reads)
    /// and the ledger is committed: the rotation advances for the records it assigns.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Rows shown in the table.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Evaluate as of this instant (RFC 3339) instead of now: hours, leave and caps.
    #[arg(long)]
    pub now: Option<DateTime<Utc>>,
}

pub async fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let ctx = Context::load(global, args.policy.as_deref()).await?;
    let now = args.now.unwrap_or_else(Utc::now);
    let (snapshot, mut ledger) = ctx.mirror().await?;
    let plan = reconcile::plan(&snapshot, &ctx.policy, &mut ledger, now);
    let names = reconcile::OwnerNames::new(Some(&ctx.policy), &snapshot.owners);
    if let Some(path) = &args.out {
        if args.format == PlanFormat::Csv {
            // A CSV plan is a report (nothing applies it): the ledger stays as it is.
            std::fs::write(path, plan.to_csv())
                .with_context(|| format!("writing the plan to {}", path.display()))?;
            out::note(format_args!(
                "wrote {} changes and {} exceptions as CSV to {}",
                plan.changes.len(),
                plan.exceptions.len(),
                path.display()
            ));
        } else {
            std::fs::write(path, super::apply::plan_file_json(&plan, &ctx.org))
                .with_context(|| format!("writing the plan to {}", path.display()))?;
            ctx.store
                .save_ledger(&ctx.org_ref.name, &mut ledger)
                .await
                .context("saving the assignment ledger")?;
            out::note(format_args!(
                "wrote {} changes and {} exceptions to {}; apply with `leadroute apply --plan {}`",
                plan.changes.len(),
                plan.exceptions.len(),
                path.display(),
                path.display()
            ));
        }
        // The file holds the plan; the terminal gets the summary.
        return out::print(plan.to_table_named(&names, 0));
    }
    match args.format {
        PlanFormat::Table => out::print(plan.to_table_named(&names, args.limit)),
        PlanFormat::Json => out::println(plan.to_json()),
        PlanFormat::Csv => out::print(plan.to_csv()),
    }
}

/// Config, store and policy for a command that reads the mirror (no CRM credentials
/// needed).
pub(crate) struct Context {
    pub store: Store,
    /// The org the command acts on (`--org`).
    pub org_ref: OrgRef,
    pub policy: Policy,
    /// The org a plan made here is for (written into plan files).
    pub org: String,
}

impl Context {
    pub(crate) async fn load(
        global: &GlobalArgs,
        policy: Option<&Path>,
    ) -> anyhow::Result<Context> {
        let loaded = load::mirror(global.config.as_deref(), global.org.as_deref(), policy).await?;
        for w in &loaded.warnings {
            out::note(w);
        }
        let org = super::apply::org_label(&loaded.config, &loaded.store).await;
        Ok(Context {
            store: loaded.store,
            org_ref: loaded.org.clone(),
            policy: loaded.policy,
            org,
        })
    }

    /// The mirror snapshot and the persisted ledger.
    pub(crate) async fn mirror(&self) -> anyhow::Result<(Snapshot, Ledger)> {
        let snapshot = self
            .store
            .snapshot(&self.org_ref)
            .await
            .context("reading the mirror")?;
        if snapshot.people.is_empty() && snapshot.owners.is_empty() {
            out::note(format_args!(
                "note: the {} mirror is empty; run `leadroute sync` first",
                self.org_ref.name
            ));
        }
        let ledger = self
            .store
            .load_ledger(&self.org_ref.name)
            .await
            .context("reading the assignment ledger")?;
        Ok((snapshot, ledger))
    }
}

/// The config for a command that only reads (no CRM credentials needed).
pub(crate) fn load_config(global: &GlobalArgs) -> anyhow::Result<Config> {
    load::config(
        global.config.as_deref(),
        global.org.as_deref(),
        Needs::Mirror,
    )
}

/// `--policy FILE`, else `[policy] path` from the config.
pub(crate) fn policy_path(arg: Option<&Path>, config: Option<&Config>) -> anyhow::Result<PathBuf> {
    load::policy_path(arg, config)
}

/// Load a policy, printing warnings; errors become one message listing every issue.
pub(crate) fn load_policy(path: &Path) -> anyhow::Result<Policy> {
    let (policy, warnings) = load::policy(path)?;
    for w in warnings {
        out::note(w);
    }
    Ok(policy)
}
