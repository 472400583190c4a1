//! Routing analytics (issue 13): who got which records, whether the pools were fair,
//! how fast new leads were routed and how drift moved, over a window of time.
//!
//! Pure maths on plain inputs ([`Inputs`], read by `Store::analytics_inputs` and
//! [`load`]) into an [`AnalyticsReport`], whose sections become [`table::Table`]s for
//! `leadroute report` (Markdown, CSV, JSON) and for the console's `/analytics` page
//! ([`page::render`], with the same tables as CSV/JSON downloads).
//!
//! Sources: the ledger's append-only history (`ledger_history`: every assignment with
//! its owner, pool and deciding rule), the mirror (a person's source field and first
//! arrival, owners' teams), the writer journal (when an owner was written), the pool
//! roster recorded over time (`analytics_roster`) and the scheduled drift reports.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::domain::{ObjectKind, OwnerId};

pub mod fairness;
pub mod load;
pub mod page;
pub mod speed;
pub mod table;

pub use fairness::{FairnessReport, PoolFairness, RepFairness, RosterSpan};
pub use speed::{Band, LeadTiming, SlaCompliance, SpeedReport};
pub use table::Table;

/// The longest window `--since` accepts: ten years.
const MAX_SINCE_DAYS: i64 = 3650;

/// A `--since` value that is not a duration like `30d`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--since {given:?}: {problem}; write a whole number and a unit m, h, d or w (e.g. 30d, 12h, 2w)"
)]
pub struct SinceError {
    pub given: String,
    pub problem: &'static str,
}

/// Parses a window length such as `30d`, `12h`, `90m` or `2w` (at most ten years).
pub fn parse_since(text: &str) -> Result<Duration, SinceError> {
    let err = |problem| SinceError {
        given: text.to_owned(),
        problem,
    };
    let trimmed = text.trim();
    let Some(unit) = trimmed.chars().last() else {
        return Err(err("empty"));
    };
    let digits = &trimmed[..trimmed.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("not a whole number followed by a unit"));
    }
    let n: i64 = digits.parse().map_err(|_| err("number too large"))?;
    let minutes_per_unit: i64 = match unit {
        'm' => 1,
        'h' => 60,
        'd' => 24 * 60,
        'w' => 7 * 24 * 60,
        _ => return Err(err("unknown unit")),
    };
    let minutes = n
        .checked_mul(minutes_per_unit)
        .filter(|m| *m <= MAX_SINCE_DAYS * 24 * 60)
        .ok_or_else(|| err("longer than ten years"))?;
    if minutes == 0 {
        return Err(err("zero length"));
    }
    Ok(Duration::minutes(minutes))
}

/// The half-open interval `[from, to)` the report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Window {
    /// The `since` before `now`.
    pub fn ending(now: DateTime<Utc>, since: Duration) -> Window {
        Window {
            from: now
                .checked_sub_signed(since)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            to: now,
        }
    }

    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        at >= self.from && at < self.to
    }
}

/// One assignment leadroute made (a `ledger_history` row) with what the mirror adds.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentFact {
    pub at: DateTime<Utc>,
    pub object: ObjectKind,
    pub owner: OwnerId,
    pub pool: Option<String>,
    /// The rule that decided (the territory rule, for territory routing).
    pub rule: String,
    /// The person's lead source as mirrored, if any.
    pub source: Option<String>,
}

/// What the report needs to know about an owner.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnerFact {
    pub name: String,
    /// The owner's primary team (else the first) in the CRM.
    pub team: Option<String>,
}

/// One scheduled drift report's headline numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftPoint {
    pub at: DateTime<Utc>,
    pub records: u64,
    pub in_policy: u64,
    pub would_change: u64,
}

/// Everything the maths reads, already limited to the window.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub assignments: Vec<AssignmentFact>,
    pub owners: BTreeMap<OwnerId, OwnerFact>,
    /// Pool membership over time (see [`fairness`]).
    pub roster: Vec<RosterSpan>,
    /// Where the roster came from, for the reader: recorded spans or the current policy.
    pub roster_source: RosterSource,
    pub leads: Vec<LeadTiming>,
    pub drift: Vec<DriftPoint>,
}

/// Where the pool roster of a fairness report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RosterSource {
    /// Spans recorded in the store as policies took effect.
    #[default]
    Recorded,
    /// Nothing recorded for the window: the current policy's pools, taken as unchanged
    /// over the whole window.
    CurrentPolicy,
}

/// The distribution dimensions, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Rep,
    Team,
    Source,
    Territory,
}

impl Dimension {
    pub const ALL: [Dimension; 4] = [
        Dimension::Rep,
        Dimension::Team,
        Dimension::Source,
        Dimension::Territory,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Rep => "rep",
            Dimension::Team => "team",
            Dimension::Source => "source",
            Dimension::Territory => "territory",
        }
    }
}

/// Value shown when a person has no mirrored source, or an owner no team.
pub const UNKNOWN: &str = "unknown";

/// Assignments per dimension value, in total and per UTC day.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Distribution {
    pub total: u64,
    /// (dimension, value) → assignments in the window.
    pub totals: BTreeMap<(Dimension, String), u64>,
    /// (day, dimension, value) → assignments that day.
    pub daily: BTreeMap<(NaiveDate, Dimension, String), u64>,
    /// Assignments per day, all values together (every day of the window, zeros too).
    pub per_day: BTreeMap<NaiveDate, u64>,
}

impl Distribution {
    /// Values of one dimension with their counts, most assignments first.
    pub fn ranked(&self, dimension: Dimension) -> Vec<(&str, u64)> {
        let mut out: Vec<(&str, u64)> = self
            .totals
            .iter()
            .filter(|((d, _), _)| *d == dimension)
            .map(|((_, v), n)| (v.as_str(), *n))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        out
    }
}

/// The label of an owner: its CRM name, else its id.
fn owner_label(owners: &BTreeMap<OwnerId, OwnerFact>, owner: &OwnerId) -> String {
    match owners.get(owner) {
        Some(fact) if !fact.name.is_empty() => fact.name.clone(),
        _ => owner.0.clone(),
    }
}

/// Counts assignments by rep, team, source and territory (the deciding rule), in total
/// and per UTC day. Assignments outside `window` are ignored.
pub fn distribution(
    window: Window,
    assignments: &[AssignmentFact],
    owners: &BTreeMap<OwnerId, OwnerFact>,
) -> Distribution {
    let mut out = Distribution::default();
    let mut day = window.from.date_naive();
    let last = window.to.date_naive();
    // Every day of the window appears, so a chart shows quiet days as zero.
    while day <= last && out.per_day.len() <= (MAX_SINCE_DAYS as usize) + 1 {
        out.per_day.insert(day, 0);
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    // Count distinct (day, owner, source, rule) first, borrowing: a window holds far
    // fewer combinations than assignments, so labels are built once per combination.
    let mut combos: FxHashMap<(NaiveDate, &OwnerId, Option<&str>, &str), u64> =
        FxHashMap::default();
    for a in assignments.iter().filter(|a| window.contains(a.at)) {
        *combos
            .entry((
                a.at.date_naive(),
                &a.owner,
                a.source.as_deref(),
                a.rule.as_str(),
            ))
            .or_default() += 1;
    }
    for ((date, owner, source, rule), n) in combos {
        out.total += n;
        *out.per_day.entry(date).or_default() += n;
        let team = owners
            .get(owner)
            .and_then(|o| o.team.clone())
            .unwrap_or_else(|| UNKNOWN.to_owned());
        let values = [
            (Dimension::Rep, owner_label(owners, owner)),
            (Dimension::Team, team),
            (Dimension::Source, source.unwrap_or(UNKNOWN).to_owned()),
            (Dimension::Territory, rule.to_owned()),
        ];
        for (dimension, value) in values {
            *out.daily
                .entry((date, dimension, value.clone()))
                .or_default() += n;
            *out.totals.entry((dimension, value)).or_default() += n;
        }
    }
    out
}

/// The whole analytics report over one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalyticsReport {
    pub generated_at: DateTime<Utc>,
    pub window: Window,
    pub distribution: Distribution,
    pub fairness: FairnessReport,
    pub speed: SpeedReport,
    /// SLA compliance: `None` until SLA timers exist (issue 12); see
    /// [`speed::SlaCompliance`] for the extension point. Never estimated.
    pub sla: Option<SlaCompliance>,
    pub drift: Vec<DriftPoint>,
}

/// Builds the report from its inputs. Pure.
pub fn build(now: DateTime<Utc>, window: Window, inputs: &Inputs) -> AnalyticsReport {
    let mut drift: Vec<DriftPoint> = inputs
        .drift
        .iter()
        .filter(|d| window.contains(d.at))
        .cloned()
        .collect();
    drift.sort_by_key(|d| d.at);
    AnalyticsReport {
        generated_at: now,
        window,
        distribution: distribution(window, &inputs.assignments, &inputs.owners),
        fairness: fairness::fairness(
            window,
            &inputs.assignments,
            &inputs.roster,
            inputs.roster_source,
            &inputs.owners,
        ),
        speed: speed::speed(window, &inputs.leads),
        sla: None,
        drift,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, d, h, 0, 0).unwrap()
    }

    #[test]
    fn since_takes_minutes_hours_days_and_weeks_and_names_the_fix_otherwise() {
        assert_eq!(parse_since("30d").unwrap(), Duration::days(30));
        assert_eq!(parse_since("12h").unwrap(), Duration::hours(12));
        assert_eq!(parse_since("90m").unwrap(), Duration::minutes(90));
        assert_eq!(parse_since("2w").unwrap(), Duration::days(14));
        for bad in [
            "",
            "d",
            "30",
            "30x",
            "-3d",
            "3.5d",
            "0d",
            "99999999999999999999d",
            "5000w",
        ] {
            let err = parse_since(bad).unwrap_err().to_string();
            assert!(err.contains("e.g. 30d"), "{bad}: {err}");
        }
    }

    #[test]
    fn distribution_counts_each_dimension_per_day_with_unknown_sources_and_teams() {
        let window = Window {
            from: at(1, 0),
            to: at(3, 12),
        };
        let owners = BTreeMap::from([(
            OwnerId::new("1"),
            OwnerFact {
                name: "Ada".into(),
                team: Some("EMEA".into()),
            },
        )]);
        let fact = |when, owner: &str, source: Option<&str>, rule: &str| AssignmentFact {
            at: when,
            object: ObjectKind::Contact,
            owner: OwnerId::new(owner),
            pool: None,
            rule: rule.into(),
            source: source.map(str::to_owned),
        };
        let facts = vec![
            fact(at(1, 9), "1", Some("Web"), "emea"),
            fact(at(1, 10), "2", None, "emea"),
            fact(at(3, 9), "1", Some("Web"), "us"),
            // Outside the window: ignored.
            fact(at(3, 13), "1", Some("Web"), "us"),
        ];
        let d = distribution(window, &facts, &owners);
        assert_eq!(d.total, 3);
        assert_eq!(d.ranked(Dimension::Rep), vec![("Ada", 2), ("2", 1)]);
        assert_eq!(d.ranked(Dimension::Team), vec![("EMEA", 2), (UNKNOWN, 1)]);
        assert_eq!(d.ranked(Dimension::Source), vec![("Web", 2), (UNKNOWN, 1)]);
        assert_eq!(d.ranked(Dimension::Territory), vec![("emea", 2), ("us", 1)]);
        let days: Vec<u64> = d.per_day.values().copied().collect();
        assert_eq!(days, vec![2, 0, 1], "quiet days are zero");
        let day1 = at(1, 0).date_naive();
        assert_eq!(d.daily[&(day1, Dimension::Territory, "emea".to_owned())], 2);
    }
}
