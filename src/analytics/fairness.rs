//! Fairness: each rep's actual share of a pool's picks against the share the pool's
//! weights entitle them to, judged only over the time they were in the pool.
//!
//! The method mirrors the ledger's own fair-share rule (`reconcile::ledger`): at every
//! pick a pool makes in the window, each member in the roster at that instant is
//! entitled to `weight / total weight of the members then in the pool` of that record.
//! A rep's *expected* count is the sum of those entitlements; their *tenure picks* are
//! the pool's picks made while they were a member. Then
//!
//! - actual share = assigned / tenure picks,
//! - target share = expected / tenure picks,
//! - deviation = actual share − target share (percentage points), and in records
//!   assigned − expected.
//!
//! So a rep who joined half-way is compared only with the picks made after they joined,
//! and a weight change counts from when it happened. A pick that went to someone not
//! in the roster at that instant (a rule-level override, or a roster that was not
//! recorded) counts in the pool's picks and in that owner's `assigned`, with no target.
//! The pool's max deviation is the largest absolute deviation among its members.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{AssignmentFact, OwnerFact, RosterSource, Window, owner_label};
use crate::domain::OwnerId;

/// One rep's membership of one pool, with one weight, over `[from, to)`; `None` is open
/// (before the window, or still a member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RosterSpan {
    pub pool: String,
    pub owner: OwnerId,
    pub weight: u32,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl RosterSpan {
    fn covers(&self, at: DateTime<Utc>) -> bool {
        self.from.is_none_or(|from| at >= from) && self.to.is_none_or(|to| at < to)
    }
}

/// One rep in one pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepFairness {
    pub owner: OwnerId,
    pub name: String,
    /// The member's weight at the end of their time in the window (0: never a member).
    pub weight: u32,
    /// Pool picks made while they were a member.
    pub tenure_picks: u64,
    pub assigned: u64,
    /// Records the weights entitled them to over their tenure.
    pub expected: f64,
    /// `assigned / tenure_picks` in percent (`None` with no tenure picks).
    pub actual_share_pct: Option<f64>,
    pub target_share_pct: Option<f64>,
    /// Actual minus target share, in percentage points.
    pub deviation_pct: Option<f64>,
    /// Whether the rep was in the roster at any pick (false: picks with no target).
    pub in_roster: bool,
}

/// One pool over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolFairness {
    pub pool: String,
    pub picks: u64,
    /// Picks that went to someone outside the roster at that instant.
    pub outside_roster: u64,
    pub reps: Vec<RepFairness>,
    /// The largest absolute `deviation_pct` among the reps (0 with no judged rep).
    pub max_deviation_pct: f64,
    /// The largest absolute `assigned - expected` among the reps, in records.
    pub max_deviation_records: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FairnessReport {
    pub roster_source: RosterSource,
    pub pools: Vec<PoolFairness>,
}

#[derive(Default)]
struct Tally {
    weight: u32,
    tenure_picks: u64,
    assigned: u64,
    expected: f64,
    in_roster: bool,
}

/// The members present over a stretch of picks with no roster change, and its picks.
#[derive(Default)]
struct Segment<'a> {
    present: Vec<&'a RosterSpan>,
    total_weight: u64,
    picks: u64,
}

impl<'a> Segment<'a> {
    fn at(spans: &[&'a RosterSpan], at: DateTime<Utc>) -> Segment<'a> {
        let present: Vec<&RosterSpan> = spans.iter().copied().filter(|s| s.covers(at)).collect();
        Segment {
            total_weight: present.iter().map(|s| u64::from(s.weight)).sum(),
            present,
            picks: 0,
        }
    }

    /// Credits each member present its tenure picks and its share of every pick.
    fn credit(&self, tally: &mut BTreeMap<&'a OwnerId, Tally>) {
        if self.picks == 0 {
            return;
        }
        for span in &self.present {
            let t = tally.entry(&span.owner).or_default();
            t.tenure_picks += self.picks;
            t.in_roster = true;
            t.weight = span.weight;
            if self.total_weight > 0 {
                t.expected += self.picks as f64 * f64::from(span.weight) / self.total_weight as f64;
            }
        }
    }
}

/// The fairness of every pool with picks or members in the window (see the module
/// docs for the method). Pure.
pub fn fairness(
    window: Window,
    assignments: &[AssignmentFact],
    roster: &[RosterSpan],
    roster_source: RosterSource,
    owners: &BTreeMap<OwnerId, OwnerFact>,
) -> FairnessReport {
    let mut spans: BTreeMap<&str, Vec<&RosterSpan>> = BTreeMap::new();
    for span in roster {
        spans.entry(span.pool.as_str()).or_default().push(span);
    }
    let mut picks: BTreeMap<&str, Vec<&AssignmentFact>> = BTreeMap::new();
    for a in assignments.iter().filter(|a| window.contains(a.at)) {
        if let Some(pool) = &a.pool {
            picks.entry(pool.as_str()).or_default().push(a);
        }
    }
    let mut names: Vec<&str> = spans.keys().chain(picks.keys()).copied().collect();
    names.sort_unstable();
    names.dedup();

    let mut pools = Vec::new();
    for name in names {
        let pool_spans = spans.get(name).map(Vec::as_slice).unwrap_or_default();
        let mut pool_picks: Vec<&AssignmentFact> = picks.remove(name).unwrap_or_default();
        pool_picks.sort_by_key(|a| a.at);
        let mut tally: BTreeMap<&OwnerId, Tally> = BTreeMap::new();
        for span in pool_spans {
            // Members appear even with no picks, so an idle member shows.
            if span.from.is_none_or(|f| f < window.to) && span.to.is_none_or(|t| t > window.from) {
                let t = tally.entry(&span.owner).or_default();
                t.weight = span.weight;
            }
        }
        // The roster changes only at span ends, so the picks between two of them share
        // one set of members: entitlements are credited per such segment, not per pick.
        let mut bounds: Vec<DateTime<Utc>> = pool_spans
            .iter()
            .flat_map(|s| [s.from, s.to])
            .flatten()
            .collect();
        bounds.sort_unstable();
        bounds.dedup();
        let mut segment = Segment::default();
        let mut valid_until: Option<Option<DateTime<Utc>>> = None;
        let mut outside_roster = 0;
        for pick in &pool_picks {
            let stale = match valid_until {
                None => true,
                Some(until) => until.is_some_and(|u| pick.at >= u),
            };
            if stale {
                segment.credit(&mut tally);
                segment = Segment::at(pool_spans, pick.at);
                valid_until = Some(bounds.iter().find(|b| **b > pick.at).copied());
            }
            segment.picks += 1;
            if !segment.present.iter().any(|s| s.owner == pick.owner) {
                outside_roster += 1;
            }
            tally.entry(&pick.owner).or_default().assigned += 1;
        }
        segment.credit(&mut tally);
        let mut reps: Vec<RepFairness> = tally
            .into_iter()
            .map(|(owner, t)| {
                let pct = |n: f64| (t.tenure_picks > 0).then(|| 100.0 * n / t.tenure_picks as f64);
                let actual = pct(t.assigned as f64);
                let target = pct(t.expected);
                RepFairness {
                    owner: owner.clone(),
                    name: owner_label(owners, owner),
                    weight: t.weight,
                    tenure_picks: t.tenure_picks,
                    assigned: t.assigned,
                    expected: t.expected,
                    actual_share_pct: actual,
                    target_share_pct: target,
                    deviation_pct: actual.zip(target).map(|(a, b)| a - b),
                    in_roster: t.in_roster,
                }
            })
            .collect();
        reps.sort_by(|a, b| a.name.cmp(&b.name).then(a.owner.cmp(&b.owner)));
        let judged = reps.iter().filter(|r| r.tenure_picks > 0);
        let max_deviation_pct = judged
            .clone()
            .filter_map(|r| r.deviation_pct)
            .map(f64::abs)
            .fold(0.0, f64::max);
        let max_deviation_records = judged
            .map(|r| (r.assigned as f64 - r.expected).abs())
            .fold(0.0, f64::max);
        pools.push(PoolFairness {
            pool: name.to_owned(),
            picks: pool_picks.len() as u64,
            outside_roster,
            reps,
            max_deviation_pct,
            max_deviation_records,
        });
    }
    FairnessReport {
        roster_source,
        pools,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ObjectKind;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
    }

    fn pick(h: u32, owner: &str) -> AssignmentFact {
        AssignmentFact {
            at: t(h),
            object: ObjectKind::Lead,
            owner: OwnerId::new(owner),
            pool: Some("emea".into()),
            rule: "r".into(),
            source: None,
        }
    }

    fn span(owner: &str, weight: u32, from: Option<u32>, to: Option<u32>) -> RosterSpan {
        RosterSpan {
            pool: "emea".into(),
            owner: OwnerId::new(owner),
            weight,
            from: from.map(t),
            to: to.map(t),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// Hand-computed: A and B (weight 1) all day; C (weight 2) joins at 05:00; B leaves
    /// at 07:00. Picks at 01..08 h.
    ///
    /// - 01–04: A, B present (total 2): A and B expect 0.5 each per pick → 2 each.
    /// - 05–06: A, B, C (total 4): A 0.25, B 0.25, C 0.5 per pick → A +0.5, B +0.5, C +1.
    /// - 07–08: A, C (total 3): A 1/3, C 2/3 per pick → A +2/3, C +4/3.
    ///
    /// Expected: A 3 1/6 over 8 tenure picks, B 2.5 over 6, C 2 1/3 over 4.
    /// Actual: A got 01, 03, 05, 07 (4); B got 02, 04 (2); C got 06, 08 (2).
    #[test]
    fn fairness_judges_a_rep_only_over_their_time_in_the_pool() {
        let window = Window {
            from: t(0),
            to: t(12),
        };
        let roster = vec![
            span("A", 1, None, None),
            span("B", 1, None, Some(7)),
            span("C", 2, Some(5), None),
        ];
        let picks = vec![
            pick(1, "A"),
            pick(2, "B"),
            pick(3, "A"),
            pick(4, "B"),
            pick(5, "A"),
            pick(6, "C"),
            pick(7, "A"),
            pick(8, "C"),
        ];
        let report = fairness(
            window,
            &picks,
            &roster,
            RosterSource::Recorded,
            &BTreeMap::new(),
        );
        let pool = &report.pools[0];
        assert_eq!(pool.picks, 8);
        assert_eq!(pool.outside_roster, 0);
        let rep = |o: &str| pool.reps.iter().find(|r| r.owner.0 == o).unwrap();
        let (a, b, c) = (rep("A"), rep("B"), rep("C"));
        assert_eq!((a.tenure_picks, b.tenure_picks, c.tenure_picks), (8, 6, 4));
        assert!(close(a.expected, 3.0 + 1.0 / 6.0), "{}", a.expected);
        assert!(close(b.expected, 2.5));
        assert!(close(c.expected, 2.0 + 1.0 / 3.0));
        // A: 4/8 = 50 % against 3 1/6 / 8 = 39.583… %.
        assert!(close(a.actual_share_pct.unwrap(), 50.0));
        assert!(close(
            a.target_share_pct.unwrap(),
            100.0 * (19.0 / 6.0) / 8.0
        ));
        // B: 2/6 = 33.3 % against 2.5/6 = 41.6 %: −8.3 points.
        assert!(close(b.deviation_pct.unwrap(), 100.0 * (2.0 - 2.5) / 6.0));
        // C: 2/4 = 50 % against 2 1/3 / 4 = 58.3 %: −8.3 points, judged from 05:00 only.
        assert!(close(
            c.deviation_pct.unwrap(),
            100.0 * (2.0 - 7.0 / 3.0) / 4.0
        ));
        // Max deviation: A's +10.416… points, and 5/6 of a record.
        assert!(close(
            pool.max_deviation_pct,
            100.0 * (4.0 - 19.0 / 6.0) / 8.0
        ));
        assert!(close(pool.max_deviation_records, 5.0 / 6.0));
        // Each pick's entitlements sum to one record.
        let expected: f64 = pool.reps.iter().map(|r| r.expected).sum();
        assert!(close(expected, 8.0));
    }

    #[test]
    fn a_pick_outside_the_roster_counts_without_a_target_and_idle_members_show() {
        let window = Window {
            from: t(0),
            to: t(12),
        };
        let roster = vec![span("A", 1, None, None), span("B", 3, None, None)];
        let picks = vec![pick(1, "A"), pick(2, "Z")];
        let report = fairness(
            window,
            &picks,
            &roster,
            RosterSource::CurrentPolicy,
            &BTreeMap::new(),
        );
        let pool = &report.pools[0];
        assert_eq!((pool.picks, pool.outside_roster), (2, 1));
        let z = pool.reps.iter().find(|r| r.owner.0 == "Z").unwrap();
        assert!(!z.in_roster);
        assert_eq!(z.target_share_pct, None);
        let b = pool.reps.iter().find(|r| r.owner.0 == "B").unwrap();
        // B (weight 3 of 4) expected 1.5 of the two picks and got none: −75 points.
        assert_eq!(b.assigned, 0);
        assert!(close(b.deviation_pct.unwrap(), -75.0));
        assert!(close(pool.max_deviation_pct, 75.0));
    }
}
