//! Command-line interface: one file per command. Each command's `run` takes its
//! parsed args and the global options and returns `anyhow::Result`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod apply;
pub mod backfill;
pub mod demo;
pub mod drift;
pub mod exceptions;
pub mod explain;
pub mod match_cmd;
pub mod out;
pub mod plan;
pub mod policy;
pub mod report;
pub mod rollback;
pub mod run;
pub mod runs;
pub mod sim;
pub mod sla;
pub mod sync;
pub mod ui;

/// leadroute: lead routing and CRM-ownership reconciliation for HubSpot and Salesforce.
#[derive(Debug, Parser)]
#[command(name = "leadroute", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Config file (TOML). Environment variables LEADROUTE_* override it.
    #[arg(long, global = true, env = "LEADROUTE_CONFIG")]
    pub config: Option<PathBuf>,
    /// The org to act on, by its configured name; needed when the config has several
    /// `[[org]]` sections (with one it may be left out).
    #[arg(long, global = true, env = "LEADROUTE_ORG", value_name = "NAME")]
    pub org: Option<String>,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `leadroute=debug`.
    #[arg(long, global = true, env = "LEADROUTE_LOG", default_value = "warn")]
    pub log: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a simulator with a generated org and run the main job against it.
    Demo(demo::Args),
    /// Mirror the configured CRM into the local store.
    Sync(sync::Args),
    /// Compute desired owners and print the plan.
    Plan(plan::Args),
    /// Apply a plan to the CRM.
    Apply(apply::Args),
    /// Plan and apply ownership for all existing records.
    Backfill(backfill::Args),
    /// The drift report: actual owners against the policy.
    Drift(drift::Args),
    /// Run continuously as a sidecar.
    Run(run::Args),
    /// Explain one record's routing decision and journey.
    Explain(explain::Args),
    /// Routing policy tooling: check, test, graph, diff.
    Policy(policy::Args),
    /// Match contacts to accounts offline, from CSV files.
    Match(match_cmd::Args),
    /// Revert a run's changes where the CRM still holds what we wrote.
    Rollback(rollback::Args),
    /// The exceptions queue.
    Exceptions(exceptions::Args),
    /// Routing analytics: distribution, fairness or speed-to-lead over a window.
    Report(report::Args),
    /// List writer runs (apply, backfill, rollback): id, kind, started, status, counts.
    Runs(runs::Args),
    /// Run a CRM API simulator.
    Sim(sim::Args),
    /// SLA timers and breaches (`sla list`, `sla breaches`).
    Sla(sla::Args),
    /// The web console over the store, without the pipeline; `ui passwd USER` for users.
    Ui(ui::Args),
}

impl GlobalArgs {
    /// The config, validated for what the command `needs` and scoped to `--org`.
    pub fn config(&self, needs: crate::config::Needs) -> anyhow::Result<crate::config::Config> {
        crate::service::load::config(self.config.as_deref(), self.org.as_deref(), needs)
    }
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let global = cli.global;
    match cli.command {
        Command::Demo(args) => demo::run(args, &global).await,
        Command::Sync(args) => sync::run(args, &global).await,
        Command::Plan(args) => plan::run(args, &global).await,
        Command::Apply(args) => apply::run(args, &global).await,
        Command::Backfill(args) => backfill::run(args, &global).await,
        Command::Drift(args) => drift::run(args, &global).await,
        Command::Run(args) => run::run(args, &global).await,
        Command::Explain(args) => explain::run(args, &global).await,
        Command::Policy(args) => policy::run(args, &global).await,
        Command::Match(args) => match_cmd::run(args, &global).await,
        Command::Rollback(args) => rollback::run(args, &global).await,
        Command::Exceptions(args) => exceptions::run(args, &global).await,
        Command::Report(args) => report::run(args, &global).await,
        Command::Runs(args) => runs::run(args, &global).await,
        Command::Sim(args) => sim::run(args, &global).await,
        Command::Ui(args) => ui::run(args, &global).await,
        Command::Sla(args) => sla::run(args, &global).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every argument of every command, as `command sub --arg`, that has no help text.
    fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") || arg.is_hide_set() {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                out.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            undocumented(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_argument_has_help_text() {
        let mut missing = Vec::new();
        undocumented(&super::Cli::command(), "leadroute", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
    }
}
