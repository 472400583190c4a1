//! `leadroute sla list|breaches`: SLA timers and the breach log, as a table, JSON or
//! CSV. Reads the store only (no CRM call).

use anyhow::Context as _;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

use super::GlobalArgs;
use crate::store::sla::{EventRow, TimerRow, TimerState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateArg {
    Open,
    Met,
    Breached,
    Cancelled,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// SLA timers, newest first: record, owner, SLA, started, due, state, touch.
    List {
        /// Only timers in this state.
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        /// Only timers started at or after this: an RFC 3339 instant, a date, or an age
        /// such as 24h or 7d.
        #[arg(long)]
        since: Option<String>,
        /// Output: a table for people, JSON or CSV for scripts and spreadsheets.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Show at most N timers.
        #[arg(long, value_name = "N", default_value_t = 200)]
        limit: u32,
    },
    /// SLA compliance: met %, p50/p95 time to first touch (working and wall), overall,
    /// by rep and by team.
    Report {
        /// Only timers started at or after this (instant, date or age such as 30d).
        #[arg(long)]
        since: Option<String>,
        /// Output: a table for people, JSON or CSV for scripts and spreadsheets.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// The breach log: every breach and what escalation did about it, oldest first.
    Breaches {
        /// Only breaches at or after this: an RFC 3339 instant, a date, or an age such
        /// as 24h or 7d.
        #[arg(long)]
        since: Option<String>,
        /// Output: a table for people, JSON or CSV for scripts and spreadsheets.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

/// `--since`: an instant, a date (midnight UTC), or an age back from `now`.
pub fn parse_since(text: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Some(day) = NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Ok(day.and_utc());
    }
    let (num, unit) = t.split_at(t.len().saturating_sub(1));
    let n: i64 = num.parse().map_err(|_| bad_since(text))?;
    let age = match unit {
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        _ => None,
    }
    .ok_or_else(|| bad_since(text))?;
    now.checked_sub_signed(age).ok_or_else(|| bad_since(text))
}

fn bad_since(text: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "--since {text:?} is not a time; give an RFC 3339 instant (2026-12-01T09:00:00Z), a date (2026-12-01) or an age (90m, 24h, 7d)"
    )
}

/// One breach as printed.
#[derive(Debug, Default, Serialize)]
struct BreachLine {
    at: DateTime<Utc>,
    sla: String,
    object: String,
    record_id: String,
    owner: String,
    detail: String,
    /// What escalation did (`reassigned to bob (2)`), once it has.
    escalation: Option<String>,
}

pub async fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let loaded = crate::service::load::env(
        global.config.as_deref(),
        global.org.as_deref(),
        crate::config::Needs::Mirror,
    )
    .await?;
    let org = loaded.config.org.as_str().to_owned();
    let store = loaded.store;
    let now = Utc::now();
    match args.command {
        Sub::List {
            state,
            since,
            format,
            limit,
        } => {
            let since = since.map(|s| parse_since(&s, now)).transpose()?;
            let state = state.map(|s| match s {
                StateArg::Open => TimerState::Open,
                StateArg::Met => TimerState::Met,
                StateArg::Breached => TimerState::Breached,
                StateArg::Cancelled => TimerState::Cancelled,
            });
            let timers: Vec<TimerRow> = store
                .sla_timers(&org, state, None, i64::from(limit))
                .await
                .context("listing SLA timers")?
                .into_iter()
                .filter(|t| since.is_none_or(|s| t.started_at >= s))
                .collect();
            super::out::print(render_timers(&timers, format)?)
        }
        Sub::Report { since, format } => {
            let since = since.map(|s| parse_since(&s, now)).transpose()?;
            let path = crate::service::load::policy_path(None, Some(&loaded.config))?;
            let (policy, _) = crate::service::load::policy(&path)?;
            let timers: Vec<TimerRow> = store
                .sla_timers(&org, None, None, 1_000_000)
                .await
                .context("listing SLA timers")?
                .into_iter()
                .filter(|t| since.is_none_or(|s| t.started_at >= s))
                .collect();
            let rows = crate::sla::report::compliance(&timers, &policy);
            super::out::print(match format {
                Format::Json => serde_json::to_string_pretty(&rows).context("writing JSON")? + "\n",
                Format::Csv => csv_of(&rows)?,
                Format::Table => crate::sla::report::to_markdown(&rows),
            })
        }
        Sub::Breaches { since, format } => {
            let since = since.map(|s| parse_since(&s, now)).transpose()?;
            let events = store
                .sla_events(&org, &["breached", "escalated"], since, None)
                .await
                .context("reading the breach log")?;
            super::out::print(render_breaches(&breaches(&events), format)?)
        }
    }
}

fn breaches(events: &[EventRow]) -> Vec<BreachLine> {
    let mut out: Vec<(i64, BreachLine)> = Vec::new();
    for e in events {
        match e.kind.as_str() {
            "breached" => out.push((
                e.timer_id,
                BreachLine {
                    at: e.at,
                    sla: e.sla.clone(),
                    object: e.object.to_string(),
                    record_id: e.record_id.to_string(),
                    owner: e.owner.to_string(),
                    detail: e.detail.clone().unwrap_or_default(),
                    escalation: None,
                },
            )),
            _ => {
                if let Some((_, line)) = out.iter_mut().rev().find(|(t, _)| *t == e.timer_id) {
                    let d = e.detail.clone().unwrap_or_default();
                    line.escalation = Some(match line.escalation.take() {
                        Some(prev) => format!("{prev}; {d}"),
                        None => d,
                    });
                }
            }
        }
    }
    out.into_iter().map(|(_, l)| l).collect()
}

/// The rows as CSV with a header; with no rows, the header alone (the csv crate writes
/// the header with the first record, so it is taken from a blank one).
fn csv_of<T: Serialize + Default>(rows: &[T]) -> anyhow::Result<String> {
    if rows.is_empty() {
        let text = csv_of(&[T::default()])?;
        return Ok(text
            .lines()
            .next()
            .map(|h| format!("{h}\n"))
            .unwrap_or_default());
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).context("writing CSV")?;
    }
    let bytes = w.into_inner().context("writing CSV")?;
    String::from_utf8(bytes).context("writing CSV")
}

/// A timer as the CSV and JSON outputs show it (flat).
#[derive(Debug, Default, Serialize)]
struct TimerLine<'a> {
    id: i64,
    sla: &'a str,
    object: String,
    record_id: &'a str,
    owner: &'a str,
    rule: &'a str,
    pool: Option<&'a str>,
    attempt: u32,
    started_at: DateTime<Utc>,
    due_at: DateTime<Utc>,
    state: &'static str,
    touched_at: Option<DateTime<Utc>>,
    touch_kind: Option<&'a str>,
    working_secs: Option<i64>,
}

fn line(t: &TimerRow) -> TimerLine<'_> {
    TimerLine {
        id: t.id,
        sla: &t.sla,
        object: t.object.to_string(),
        record_id: t.record_id.as_str(),
        owner: t.owner.as_str(),
        rule: &t.rule,
        pool: t.pool.as_deref(),
        attempt: t.attempt,
        started_at: t.started_at,
        due_at: t.due_at,
        state: t.state.as_str(),
        touched_at: t.touched_at,
        touch_kind: t.touch_kind.as_deref(),
        working_secs: t.working_ms.map(|ms| ms / 1000),
    }
}

fn render_timers(timers: &[TimerRow], format: Format) -> anyhow::Result<String> {
    let lines: Vec<TimerLine<'_>> = timers.iter().map(line).collect();
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(&lines).context("writing JSON")? + "\n",
        Format::Csv => csv_of(&lines)?,
        Format::Table => {
            if lines.is_empty() {
                return Ok(
                    "no SLA timers (they start when leadroute's owner writes are acknowledged)\n"
                        .into(),
                );
            }
            let mut out = format!(
                "{:<14} {:<20} {:<10} {:<16} {:<17} {:<17} {:<9} {}\n",
                "SLA", "RECORD", "OWNER", "RULE", "STARTED", "DUE", "STATE", "TOUCH"
            );
            for l in &lines {
                out.push_str(&format!(
                    "{:<14} {:<20} {:<10} {:<16} {:<17} {:<17} {:<9} {}\n",
                    l.sla,
                    format!("{}:{}", l.object, l.record_id),
                    l.owner,
                    l.rule,
                    l.started_at.format("%Y-%m-%d %H:%M:%S"),
                    l.due_at.format("%Y-%m-%d %H:%M:%S"),
                    l.state,
                    l.touched_at.map_or(String::new(), |t| format!(
                        "{} {}",
                        l.touch_kind.unwrap_or(""),
                        t.format("%Y-%m-%d %H:%M:%S")
                    ))
                ));
            }
            out
        }
    })
}

fn render_breaches(lines: &[BreachLine], format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(lines).context("writing JSON")? + "\n",
        Format::Csv => csv_of(lines)?,
        Format::Table => {
            if lines.is_empty() {
                return Ok("no SLA breaches\n".into());
            }
            let mut out = format!(
                "{:<20} {:<14} {:<20} {:<10} {}\n",
                "BREACHED", "SLA", "RECORD", "OWNER", "ESCALATION"
            );
            for l in lines {
                out.push_str(&format!(
                    "{:<20} {:<14} {:<20} {:<10} {}\n",
                    l.at.format("%Y-%m-%d %H:%M:%S"),
                    l.sla,
                    format!("{}:{}", l.object, l.record_id),
                    l.owner,
                    l.escalation.as_deref().unwrap_or("pending")
                ));
            }
            out
        }
    })
}

/// A record's SLA timers and their events, for `explain` (empty when it has none).
pub(crate) fn render_record(
    timers: &[TimerRow],
    events: &[EventRow],
    policy: &crate::policy::Policy,
) -> String {
    if timers.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nSLA timers:\n");
    for t in timers.iter().rev() {
        out.push_str(&format!(
            "  {} for {} (attempt {}): started {}, due {}, {}{}\n",
            t.sla,
            policy.owner_label(&t.owner),
            t.attempt,
            t.started_at.format("%Y-%m-%d %H:%M:%S"),
            t.due_at.format("%Y-%m-%d %H:%M:%S"),
            t.state.as_str(),
            t.touched_at.map_or(String::new(), |at| format!(
                " (touch {} at {})",
                t.touch_kind.as_deref().unwrap_or("?"),
                at.format("%Y-%m-%d %H:%M:%S")
            ))
        ));
        for e in events.iter().filter(|e| e.timer_id == t.id) {
            out.push_str(&format!(
                "    {} {}{}\n",
                e.at.format("%Y-%m-%d %H:%M:%S"),
                e.kind,
                e.detail
                    .as_ref()
                    .map_or(String::new(), |d| format!(": {d}"))
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_csv_still_has_its_header_and_rows_keep_theirs() {
        let empty: Vec<BreachLine> = Vec::new();
        assert_eq!(
            csv_of(&empty).unwrap(),
            "at,sla,object,record_id,owner,detail,escalation\n"
        );
        let one = csv_of(&[BreachLine {
            sla: "first-touch".into(),
            ..BreachLine::default()
        }])
        .unwrap();
        let lines: Vec<&str> = one.lines().collect();
        assert_eq!(lines.len(), 2, "{one}");
        assert_eq!(lines[0], "at,sla,object,record_id,owner,detail,escalation");
        assert!(lines[1].contains("first-touch"), "{one}");
    }

    #[test]
    fn since_takes_instants_dates_and_ages() {
        let now = DateTime::parse_from_rfc3339("2026-12-08T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_since("24h", now).unwrap(), now - Duration::hours(24));
        assert_eq!(
            parse_since("2026-12-01", now).unwrap().to_rfc3339(),
            "2026-12-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_since("2026-12-07T09:00:00Z", now)
                .unwrap()
                .to_rfc3339(),
            "2026-12-07T09:00:00+00:00"
        );
        let err = parse_since("yesterday", now).unwrap_err().to_string();
        assert!(err.contains("give an RFC 3339 instant"), "{err}");
    }
}
