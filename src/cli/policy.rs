//! `leadroute policy init|check|test|graph|diff`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use super::plan::{Context, load_config, load_policy, policy_path};
use super::{GlobalArgs, out};
use crate::policy::{self, Severity};
use crate::reconcile::{diff, fixtures};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Write a starter policy fitted to the mirrored owners (run `leadroute sync` first):
    /// a pool of active users, account-based routing, exceptions for ambiguous matches.
    Init {
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Check a policy file: every error with file, line, column and fix (exit 1 on errors).
    Check {
        /// Policy file (default: `[policy] path` from the config).
        file: Option<PathBuf>,
    },
    /// Run fixture files: records with the owner and rule each should get.
    Test {
        /// Fixture files (TOML); see config/policies/*.fixtures.toml.
        #[arg(required = true)]
        fixtures: Vec<PathBuf>,
        /// Policy to test (default: the one each fixture file names, else the config's).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Draw the routing graph.
    Graph {
        /// Policy file (default: `[policy] path` from the config).
        file: Option<PathBuf>,
        /// Drawing format: SVG, Graphviz DOT or Mermaid.
        #[arg(long, value_enum, default_value = "svg")]
        format: GraphFormat,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Shadow-evaluate two policies over the mirror: who would change owner.
    Diff {
        /// The policy in force (the baseline).
        old: PathBuf,
        /// The candidate policy.
        new: PathBuf,
        /// Print the differences as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Evaluate as of this instant (RFC 3339) instead of now.
        #[arg(long)]
        now: Option<DateTime<Utc>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Svg,
    Dot,
    Mermaid,
}

/// Warnings about reps who are not active owners in the mirror, when a config names a
/// store; otherwise a note that the check was skipped.
async fn roster_warnings(p: &policy::Policy, global: &GlobalArgs) -> anyhow::Result<Vec<String>> {
    if global.config.is_none() && std::env::var_os("LEADROUTE_STORE_URL").is_none() {
        return Ok(vec![
            "note: no config (--config), so reps were not checked against the mirror's owners"
                .to_owned(),
        ]);
    }
    let config = load_config(global)?;
    let store = crate::service::load::store(&config).await?;
    let owners = store.owners(&config.org).await.context("reading owners")?;
    if owners.is_empty() {
        return Ok(vec![format!(
            "note: the {} mirror has no owners yet, so reps were not checked; run `leadroute sync`",
            config.crm.kind
        )]);
    }
    Ok(p.check_roster(&owners)
        .into_iter()
        .map(|w| format!("warning: {w}"))
        .collect())
}

/// The policy path without requiring a loadable config when a file is given.
fn resolve(file: Option<&Path>, global: &GlobalArgs) -> anyhow::Result<PathBuf> {
    match file {
        Some(f) => Ok(f.to_owned()),
        None => policy_path(None, Some(&load_config(global)?)),
    }
}

pub async fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    match args.command {
        PolicyCommand::Init { out, force } => init(&out, force, global).await,
        PolicyCommand::Check { file } => {
            let path = resolve(file.as_deref(), global)?;
            let issues = match policy::load_with_warnings(&path) {
                Ok((p, warnings)) => {
                    let mut text = String::new();
                    for w in &warnings {
                        text.push_str(&format!("{w}\n"));
                    }
                    let roster = roster_warnings(&p, global).await?;
                    for w in &roster {
                        text.push_str(&format!("{w}\n"));
                    }
                    text.push_str(&format!(
                        "{}: ok — version {}, {} reps, {} territories, {} pools, {} rules (+ default), {} warning(s)\n",
                        path.display(),
                        p.version,
                        p.reps.len(),
                        p.territories.len(),
                        p.pools.len(),
                        p.rules.len() - 1,
                        warnings.len() + roster.iter().filter(|w| w.starts_with("warning")).count()
                    ));
                    return out::print(text);
                }
                Err(issues) => issues,
            };
            let mut text = String::new();
            for i in &issues {
                text.push_str(&format!("{i}\n"));
            }
            let errors = issues
                .iter()
                .filter(|i| i.severity == Severity::Error)
                .count();
            text.push_str(&format!(
                "{}: {errors} error(s), {} warning(s)\n",
                path.display(),
                issues.len() - errors
            ));
            out::print(text)?;
            std::process::exit(1);
        }
        PolicyCommand::Test {
            fixtures: files,
            policy,
        } => {
            let mut failed = 0;
            let mut total = 0;
            for file in &files {
                let fx = fixtures::read(file)?;
                let path = match (&policy, fx.policy_path(file)) {
                    (Some(p), _) => p.clone(),
                    (None, Some(p)) => p,
                    (None, None) => resolve(None, global)?,
                };
                let pol = load_policy(&path)?;
                for r in fixtures::run(&fx, &pol) {
                    total += 1;
                    if r.passed() {
                        out::println(format_args!("ok     {} — {}", file.display(), r.name))?;
                    } else {
                        failed += 1;
                        out::println(format_args!(
                            "FAILED {} — {} ({})",
                            file.display(),
                            r.name,
                            r.record
                        ))?;
                        for f in &r.failures {
                            out::println(format_args!("    {f}"))?;
                        }
                        for line in r.trace.lines() {
                            out::println(format_args!("    | {line}"))?;
                        }
                    }
                }
            }
            out::println(format_args!("{} passed, {failed} failed", total - failed))?;
            if failed > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
        PolicyCommand::Graph { file, format, out } => {
            let path = resolve(file.as_deref(), global)?;
            let p = load_policy(&path)?;
            let text = match format {
                GraphFormat::Svg => policy::graph::to_svg(&p),
                GraphFormat::Dot => policy::graph::to_dot(&p),
                GraphFormat::Mermaid => policy::graph::to_mermaid(&p),
            };
            match out {
                Some(o) => {
                    std::fs::write(&o, text).with_context(|| format!("writing {}", o.display()))?
                }
                None => out::print(text)?,
            }
            Ok(())
        }
        PolicyCommand::Diff {
            old,
            new,
            json,
            now,
        } => {
            let ctx = Context::load(global, Some(&new)).await?;
            let old = load_policy(&old)?;
            let (snapshot, ledger) = ctx.mirror().await?;
            let d = diff::diff(
                &snapshot,
                &old,
                &ctx.policy,
                &ledger,
                now.unwrap_or_else(Utc::now),
            );
            if json {
                out::println(serde_json::to_string_pretty(&d)?)
            } else {
                out::print(d.to_table())
            }
        }
    }
}

/// `policy init`: the starter policy for the mirrored owners.
async fn init(out: &Path, force: bool, global: &GlobalArgs) -> anyhow::Result<()> {
    if out.exists() && !force {
        anyhow::bail!(
            "{} exists; pass --force to overwrite it, or choose another --out",
            out.display()
        );
    }
    let config = load_config(global)?;
    let store = crate::app::open_store(&config).await?;
    let owners = store
        .owners(&config.org)
        .await
        .context("reading the mirrored owners")?;
    let (text, reps) = crate::service::starter::starter_policy(&owners, "leadroute policy init")?;
    // The starter must check clean; a failure here is a bug, not the user's.
    if let Err(issues) = policy::parse(&out.display().to_string(), &text) {
        let lines: Vec<String> = issues.iter().map(ToString::to_string).collect();
        anyhow::bail!("the starter policy does not check:\n{}", lines.join("\n"));
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options
        .open(out)
        .with_context(|| format!("creating {}", out.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "wrote {}: {reps} reps from the mirrored owners; account owner for matched accounts, \
         exceptions for ambiguous matches and for records with no account and no country, \
         EMEA / North America round-robin pools",
        out.display()
    );
    println!(
        "next: `leadroute policy check {0}`, then set [policy] path = \"{0}\" (or LEADROUTE_POLICY)",
        out.display()
    );
    Ok(())
}
