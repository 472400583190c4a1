//! `leadroute report distribution|fairness|speed`: the routing analytics of the
//! console's `/analytics` page on the command line, as Markdown, CSV or JSON.

use std::path::PathBuf;

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use super::{GlobalArgs, out};
use crate::analytics::table::Section;
use crate::analytics::{AnalyticsReport, Window, load, parse_since};
use crate::service::load as service_load;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Md,
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum Which {
    /// Assignments by rep, team, source and territory, in total and per day.
    Distribution,
    /// Each rep's actual share of a pool against their target share.
    Fairness,
    /// Speed-to-lead: first seen to owner written, percentiles and bands.
    Speed,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub which: Which,
    /// The window: this long before now, e.g. 30d, 12h, 90m, 2w.
    #[arg(long, global = true, default_value = "30d")]
    pub since: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "md")]
    pub format: ReportFormat,
    /// With csv: which of the report's tables (default its first; md and json show all).
    #[arg(long, global = true, value_name = "NAME")]
    pub table: Option<String>,
    /// Policy file for the pools' weights (default: `[policy] path` from the config).
    #[arg(long, global = true, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// End the window at this instant (RFC 3339) instead of now.
    #[arg(long, global = true)]
    pub now: Option<DateTime<Utc>>,
}

pub async fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    // Bad input is refused before anything is opened.
    let since = parse_since(&args.since)?;
    let section = match args.which {
        Which::Distribution => Section::Distribution,
        Which::Fairness => Section::Fairness,
        Which::Speed => Section::Speed,
    };
    let names = AnalyticsReport::table_names(section);
    if let Some(name) = &args.table
        && !names.contains(&name.as_str())
    {
        anyhow::bail!(
            "--table {name:?}: not a table of this report; use one of {}",
            names.join(", ")
        );
    }
    let loaded = service_load::mirror(
        global.config.as_deref(),
        global.org.as_deref(),
        args.policy.as_deref(),
    )
    .await?;
    for w in &loaded.warnings {
        out::note(w);
    }
    let now = args.now.unwrap_or_else(Utc::now);
    let window = Window::ending(now, since);
    let report = load::report(
        &loaded.store,
        &loaded.org.name,
        &loaded.policy,
        Some(&loaded.config.drift.out_dir),
        window,
        now,
    )
    .await
    .context("reading the store for the report")?;
    let tables: Vec<_> = names.iter().filter_map(|n| report.table(n)).collect();
    match args.format {
        ReportFormat::Md => {
            out::println(format_args!(
                "# leadroute report ({} to {} UTC)\n",
                window.from.format("%Y-%m-%d %H:%M"),
                window.to.format("%Y-%m-%d %H:%M")
            ))?;
            for t in &tables {
                out::println(t.to_markdown())?;
            }
            if section == Section::Speed && report.sla.is_none() {
                out::println("SLA compliance: no SLA timers recorded.")?;
            }
            Ok(())
        }
        ReportFormat::Csv => {
            let name = args.table.as_deref().unwrap_or(names[0]);
            match tables.iter().find(|t| t.name == name) {
                Some(t) => out::print(t.to_csv()),
                None => Ok(()),
            }
        }
        ReportFormat::Json => {
            let mut obj = serde_json::Map::new();
            obj.insert("from".into(), window.from.to_rfc3339().into());
            obj.insert("to".into(), window.to.to_rfc3339().into());
            for t in &tables {
                obj.insert(t.name.to_owned(), t.to_json_value());
            }
            out::println(serde_json::to_string_pretty(&obj).context("rendering JSON")?)
        }
    }
}
