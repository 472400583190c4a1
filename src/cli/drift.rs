//! `leadroute drift`: the drift report (Markdown, HTML, CSV, JSON).

use std::path::PathBuf;

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use super::plan::Context;
use super::{GlobalArgs, out};
use crate::reconcile::drift;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DriftFormat {
    Md,
    Html,
    Csv,
    Json,
    /// All four (needs --out).
    All,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy file to judge the owners by (default: `[policy] path` from the config).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value = "md")]
    pub format: DriftFormat,
    /// Write drift.<ext> into this directory instead of printing.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Evaluate as of this instant (RFC 3339) instead of now.
    #[arg(long)]
    pub now: Option<DateTime<Utc>>,
}

pub async fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let ctx = Context::load(global, args.policy.as_deref()).await?;
    let now = args.now.unwrap_or_else(Utc::now);
    let (snapshot, ledger) = ctx.mirror().await?;
    let report = drift::build(&snapshot, &ctx.policy, &ledger, now);
    // SLA compliance (issue 12), when any SLA timer has run.
    let sla_timers = ctx
        .store
        .sla_timers(ctx.org_ref.name.as_str(), None, None, 100_000)
        .await
        .context("reading SLA timers for the drift report")?;
    let sla_section = if sla_timers.is_empty() {
        String::new()
    } else {
        crate::sla::report::to_markdown(&crate::sla::report::compliance(&sla_timers, &ctx.policy))
    };
    let render = |f: DriftFormat| match f {
        DriftFormat::Md | DriftFormat::All => ("md", report.to_markdown() + &sla_section),
        DriftFormat::Html => ("html", report.to_html()),
        DriftFormat::Csv => ("csv", report.to_csv()),
        DriftFormat::Json => ("json", report.to_json()),
    };
    let formats = if args.format == DriftFormat::All {
        vec![
            DriftFormat::Md,
            DriftFormat::Html,
            DriftFormat::Csv,
            DriftFormat::Json,
        ]
    } else {
        vec![args.format]
    };
    match &args.out {
        None if formats.len() > 1 => anyhow::bail!("--format all needs --out DIR"),
        None => out::print(render(args.format).1)?,
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for f in formats {
                let (ext, text) = render(f);
                let path = dir.join(format!("drift.{ext}"));
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                out::note(format_args!("wrote {}", path.display()));
            }
        }
    }
    Ok(())
}
