//! `leadroute plan`: desired vs actual owners from the mirror, as a table, JSON or CSV.
//! Also the loading helpers the other policy commands share (config, store, policy, clock).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use super::GlobalArgs;
use crate::config::Config;
use crate::domain::{CrmKind, Snapshot};
use crate::policy::{Policy, Severity};
use crate::reconcile::{self, Ledger};
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy file (default: `[policy] path` from the config).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: PlanFormat,
    /// Write the plan as JSON here (what `leadroute apply --plan FILE` reads) and commit
    /// the ledger: the rotation advances for the records this plan assigns.
    #[arg(long)]
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
    if let Some(out) = &args.out {
        std::fs::write(out, plan.to_json())
            .with_context(|| format!("writing the plan to {}", out.display()))?;
        ctx.store
            .save_ledger(ctx.crm, &mut ledger)
            .await
            .context("saving the assignment ledger")?;
        eprintln!(
            "wrote {} changes and {} exceptions to {}; apply with `leadroute apply --plan {}`",
            plan.changes.len(),
            plan.exceptions.len(),
            out.display(),
            out.display()
        );
    }
    match args.format {
        PlanFormat::Table => print!("{}", plan.to_table(Some(&ctx.policy), args.limit)),
        PlanFormat::Json => println!("{}", plan.to_json()),
        PlanFormat::Csv => print!("{}", plan.to_csv()),
    }
    Ok(())
}

/// Config, store and policy for a command that reads the mirror.
pub(crate) struct Context {
    pub store: Store,
    pub crm: CrmKind,
    pub policy: Policy,
}

impl Context {
    pub(crate) async fn load(
        global: &GlobalArgs,
        policy: Option<&Path>,
    ) -> anyhow::Result<Context> {
        let config = load_config(global)?;
        let path = policy_path(policy, Some(&config))?;
        let policy = load_policy(&path)?;
        let store = Store::open(config.store.url.expose_secret())
            .await
            .context("opening the store")?;
        Ok(Context {
            crm: config.crm.kind,
            store,
            policy,
        })
    }

    /// The mirror snapshot and the persisted ledger.
    pub(crate) async fn mirror(&self) -> anyhow::Result<(Snapshot, Ledger)> {
        let snapshot = self
            .store
            .snapshot(self.crm)
            .await
            .context("reading the mirror")?;
        if snapshot.people.is_empty() && snapshot.owners.is_empty() {
            eprintln!(
                "note: the {} mirror is empty; run `leadroute sync` first",
                self.crm
            );
        }
        let ledger = self
            .store
            .load_ledger(self.crm)
            .await
            .context("reading the assignment ledger")?;
        Ok((snapshot, ledger))
    }
}

pub(crate) fn load_config(global: &GlobalArgs) -> anyhow::Result<Config> {
    Config::load(global.config.as_deref(), &|k| std::env::var(k).ok())
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// `--policy FILE`, else `[policy] path` from the config.
pub(crate) fn policy_path(arg: Option<&Path>, config: Option<&Config>) -> anyhow::Result<PathBuf> {
    if let Some(p) = arg {
        return Ok(p.to_owned());
    }
    config.and_then(|c| c.policy.path.clone()).ok_or_else(|| {
        anyhow::anyhow!("no policy file: pass --policy FILE or set `[policy] path` in the config")
    })
}

/// Load a policy, printing warnings; errors become one message listing every issue.
pub(crate) fn load_policy(path: &Path) -> anyhow::Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading policy {}", path.display()))?;
    match crate::policy::parse(&path.display().to_string(), &text) {
        Ok((policy, warnings)) => {
            for w in warnings {
                eprintln!("{w}");
            }
            Ok(policy)
        }
        Err(issues) => {
            let errors = issues
                .iter()
                .filter(|i| i.severity == Severity::Error)
                .count();
            let list: Vec<String> = issues.iter().map(ToString::to_string).collect();
            anyhow::bail!(
                "policy {} has {errors} error(s); run `leadroute policy check`:\n{}",
                path.display(),
                list.join("\n")
            )
        }
    }
}
