//! SLA compliance for reports: met %, and p50/p95 time to first touch in working and in
//! wall time, overall, by rep and by team (the timer's pool). Pure over stored timers.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::policy::Policy;
use crate::policy::calendar::working_between;
use crate::store::sla::{TimerRow, TimerState};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ComplianceRow {
    /// `all`, `rep` or `team`.
    pub group: &'static str,
    pub name: String,
    /// Timers that ended met or breached.
    pub closed: u64,
    pub met: u64,
    pub breached: u64,
    pub met_pct: f64,
    pub p50_wall_secs: Option<f64>,
    pub p95_wall_secs: Option<f64>,
    pub p50_working_secs: Option<f64>,
    pub p95_working_secs: Option<f64>,
}

#[derive(Default)]
struct Acc {
    met: u64,
    breached: u64,
    wall: Vec<f64>,
    working: Vec<f64>,
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

pub fn compliance(timers: &[TimerRow], policy: &Policy) -> Vec<ComplianceRow> {
    let mut groups: BTreeMap<(u8, &'static str, String), Acc> = BTreeMap::new();
    for t in timers {
        let met = match t.state {
            TimerState::Met => true,
            TimerState::Breached => false,
            TimerState::Open | TimerState::Cancelled => continue,
        };
        let touch = t.touched_at.map(|at| {
            let wall = (at - t.started_at).num_milliseconds() as f64 / 1000.0;
            let working = match (met, t.working_ms) {
                (true, Some(ms)) => Some(ms as f64 / 1000.0),
                _ => policy.slas.iter().find(|s| s.name == t.sla).map(|sla| {
                    let cal = policy.sla_calendar(sla, &t.owner);
                    working_between(t.started_at, at, &cal).num_milliseconds() as f64 / 1000.0
                }),
            };
            (wall, working)
        });
        let keys = [
            (0u8, "all", "all".to_owned()),
            (1, "rep", policy.owner_label(&t.owner)),
            (
                2,
                "team",
                t.pool.clone().unwrap_or_else(|| "(no pool)".into()),
            ),
        ];
        for key in keys {
            let acc = groups.entry(key).or_default();
            if met {
                acc.met += 1;
            } else {
                acc.breached += 1;
            }
            if let Some((wall, working)) = touch {
                acc.wall.push(wall);
                acc.working.extend(working);
            }
        }
    }
    groups
        .into_iter()
        .map(|((_, group, name), mut acc)| {
            acc.wall.sort_by(f64::total_cmp);
            acc.working.sort_by(f64::total_cmp);
            let closed = acc.met + acc.breached;
            ComplianceRow {
                group,
                name,
                closed,
                met: acc.met,
                breached: acc.breached,
                met_pct: if closed == 0 {
                    0.0
                } else {
                    acc.met as f64 * 100.0 / closed as f64
                },
                p50_wall_secs: pct(&acc.wall, 0.5),
                p95_wall_secs: pct(&acc.wall, 0.95),
                p50_working_secs: pct(&acc.working, 0.5),
                p95_working_secs: pct(&acc.working, 0.95),
            }
        })
        .collect()
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |s| format!("{s:.0} s"))
}

/// The Markdown section the drift report gains.
pub fn to_markdown(rows: &[ComplianceRow]) -> String {
    let mut out = String::from("\n## SLA compliance\n\n");
    if rows.is_empty() {
        out.push_str("No SLA timer has ended yet.\n");
        return out;
    }
    out.push_str("| group | name | met % | met | breached | p50 first touch (working) | p95 (working) | p50 (wall) | p95 (wall) |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {:.1} | {} | {} | {} | {} | {} | {} |\n",
            r.group,
            r.name,
            r.met_pct,
            r.met,
            r.breached,
            secs(r.p50_working_secs),
            secs(r.p95_working_secs),
            secs(r.p50_wall_secs),
            secs(r.p95_wall_secs)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ObjectKind, OwnerId, RecordId};
    use chrono::{DateTime, Duration, Utc};

    fn row(owner: &str, pool: &str, state: TimerState, touch_after_secs: Option<i64>) -> TimerRow {
        let start = DateTime::parse_from_rfc3339("2026-01-05T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        TimerRow {
            id: 1,
            org: "hubspot".into(),
            sla: "first-touch".into(),
            object: ObjectKind::Contact,
            record_id: RecordId::new("1"),
            owner: OwnerId::new(owner),
            rule: "r".into(),
            pool: Some(pool.into()),
            run_id: "x".into(),
            seq: 1,
            attempt: 0,
            started_at: start,
            due_at: start + Duration::minutes(15),
            next_at: None,
            reminders_sent: 0,
            state,
            touched_at: touch_after_secs.map(|s| start + Duration::seconds(s)),
            touch_kind: None,
            closed_at: None,
            working_ms: touch_after_secs.map(|s| s * 1000),
        }
    }

    #[test]
    fn met_share_and_percentiles_by_rep_and_team() {
        let text = "[reps.a]\nowner = \"1\"\n[reps.b]\nowner = \"2\"\n[default]\naction = \"keep\"\n\
                    [[sla]]\nname = \"first-touch\"\nwithin_secs = 900\non_breach = \"exception\"\n";
        let (policy, _) = crate::policy::parse("p.toml", text).unwrap();
        let timers = vec![
            row("1", "inbound", TimerState::Met, Some(60)),
            row("1", "inbound", TimerState::Met, Some(300)),
            row("2", "inbound", TimerState::Breached, Some(1200)),
            row("2", "inbound", TimerState::Breached, None),
            row("2", "inbound", TimerState::Open, None),
        ];
        let rows = compliance(&timers, &policy);
        let all = &rows[0];
        assert_eq!((all.group, all.closed, all.met), ("all", 4, 2));
        assert_eq!(all.met_pct, 50.0);
        assert_eq!(all.p50_wall_secs, Some(300.0));
        assert_eq!(all.p95_wall_secs, Some(1200.0));
        let a = rows.iter().find(|r| r.name == "a (1)").unwrap();
        assert_eq!((a.met_pct, a.p50_working_secs), (100.0, Some(60.0)));
        let b = rows.iter().find(|r| r.name == "b (2)").unwrap();
        assert_eq!(
            (b.met, b.breached, b.p50_working_secs),
            (0, 2, Some(1200.0))
        );
        let md = to_markdown(&rows);
        assert!(md.contains("| team | inbound | 50.0 | 2 | 2 |"), "{md}");
    }
}
