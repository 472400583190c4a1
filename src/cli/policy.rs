//! `leadroute policy init|check|test|graph|diff`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use super::GlobalArgs;
use super::plan::{Context, load_config, load_policy, policy_path};
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
        file: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "svg")]
        format: GraphFormat,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Shadow-evaluate two policies over the mirror: who would change owner.
    Diff {
        old: PathBuf,
        new: PathBuf,
        #[arg(long)]
        json: bool,
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
            let issues = match policy::load(&path) {
                Ok(p) => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let warnings = policy::parse(&path.display().to_string(), &text)
                        .map(|(_, w)| w)
                        .unwrap_or_default();
                    for w in &warnings {
                        println!("{w}");
                    }
                    println!(
                        "{}: ok — version {}, {} reps, {} territories, {} pools, {} rules (+ default), {} warning(s)",
                        path.display(),
                        p.version,
                        p.reps.len(),
                        p.territories.len(),
                        p.pools.len(),
                        p.rules.len() - 1,
                        warnings.len()
                    );
                    // With a config, also check the reps against the mirror's owners.
                    if global.config.is_some() {
                        let config = load_config(global)?;
                        let store = crate::store::Store::open(
                            secrecy::ExposeSecret::expose_secret(&config.store.url),
                        )
                        .await
                        .context("opening the store")?;
                        let owners = store
                            .owners(config.crm.kind)
                            .await
                            .context("reading owners")?;
                        for w in p.check_roster(&owners) {
                            println!("warning: {w}");
                        }
                    }
                    return Ok(());
                }
                Err(issues) => issues,
            };
            for i in &issues {
                println!("{i}");
            }
            let errors = issues
                .iter()
                .filter(|i| i.severity == Severity::Error)
                .count();
            println!(
                "{}: {errors} error(s), {} warning(s)",
                path.display(),
                issues.len() - errors
            );
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
                        println!("ok     {} — {}", file.display(), r.name);
                    } else {
                        failed += 1;
                        println!("FAILED {} — {} ({})", file.display(), r.name, r.record);
                        for f in &r.failures {
                            println!("    {f}");
                        }
                        for line in r.trace.lines() {
                            println!("    | {line}");
                        }
                    }
                }
            }
            println!("{} passed, {failed} failed", total - failed);
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
                None => print!("{text}"),
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
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                print!("{}", d.to_table());
            }
            Ok(())
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
        .owners(config.crm.kind)
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
