//! `leadroute runs`: the journaled writer runs, newest first, with their status and
//! outcome counts (the ids `apply --resume`, `rollback` and `explain` take).

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::GlobalArgs;
use super::apply::load_env;
use crate::store::{RunCounts, RunRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunsFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output: a table for people, or JSON (one object per run) for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub format: RunsFormat,
    /// Show at most N runs (newest first).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: u32,
}

/// One run as `--format json` prints it.
#[derive(Debug, Serialize)]
struct RunLine {
    run_id: String,
    kind: String,
    crm: String,
    /// For a rollback: the run it reverts.
    parent_run: Option<String>,
    started: DateTime<Utc>,
    finished: Option<DateTime<Utc>>,
    status: String,
    message: Option<String>,
    total: u64,
    applied: u64,
    /// Unchanged (already held) plus skipped because someone changed the owner.
    skipped: u64,
    /// Rejected by the CRM plus given up.
    failed: u64,
    pending: u64,
}

impl RunLine {
    fn new(row: RunRow, counts: &RunCounts) -> Self {
        RunLine {
            run_id: row.run_id,
            kind: row.kind,
            crm: row.org.to_string(),
            parent_run: row.parent_run,
            started: row.created_at,
            finished: row.finished_at,
            status: row.status.as_str().to_owned(),
            message: row.message,
            total: counts.total,
            applied: counts.applied,
            skipped: counts.unchanged.saturating_add(counts.skipped_changed),
            failed: counts.rejected.saturating_add(counts.failed),
            pending: counts.pending,
        }
    }
}

pub async fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let env = load_env(global).await?;
    let rows = env
        .store
        .journal_runs(i64::from(args.limit))
        .await
        .context("listing runs")?;
    let mut lines = Vec::with_capacity(rows.len());
    // The org's runs (`--org`; the only org's when one is configured).
    for row in rows.into_iter().filter(|row| row.org == env.config.org) {
        let counts = env
            .store
            .journal_counts(&row.run_id)
            .await
            .context("counting a run's outcomes")?;
        lines.push(RunLine::new(row, &counts));
    }
    match args.format {
        RunsFormat::Json => super::out::println(
            serde_json::to_string_pretty(&lines).context("writing runs as JSON")?,
        ),
        RunsFormat::Table => super::out::print(table(&lines)),
    }
}

fn table(lines: &[RunLine]) -> String {
    if lines.is_empty() {
        return "no runs yet (apply, backfill and rollback journal theirs)\n".to_owned();
    }
    let width = lines
        .iter()
        .map(|l| l.run_id.len())
        .max()
        .unwrap_or(0)
        .max(3);
    let mut out = format!(
        "{:<width$}  {:<9}  {:<17}  {:<9}  {:>7}  {:>7}  {:>7}  {:>7}\n",
        "RUN", "KIND", "STARTED", "STATUS", "APPLIED", "SKIPPED", "FAILED", "PENDING"
    );
    for l in lines {
        let kind = match &l.parent_run {
            Some(_) => format!("{}*", l.kind),
            None => l.kind.clone(),
        };
        out.push_str(&format!(
            "{:<width$}  {:<9}  {:<17}  {:<9}  {:>7}  {:>7}  {:>7}  {:>7}\n",
            l.run_id,
            kind,
            l.started.format("%Y-%m-%d %H:%M"),
            l.status,
            l.applied,
            l.skipped,
            l.failed,
            l.pending
        ));
    }
    if lines.iter().any(|l| l.parent_run.is_some()) {
        out.push_str("* reverts another run (see --format json: parent_run)\n");
    }
    out
}
