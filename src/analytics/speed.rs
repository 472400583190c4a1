//! Speed-to-lead: from the moment the mirror first stored a person to the moment
//! leadroute's write of its owner was applied (the first `applied` journal outcome).
//!
//! Percentiles use the nearest-rank method: over the N sorted times, the p-th
//! percentile is the value at 1-based rank ⌈p·N/100⌉ (rank 1 for p = 0), so it is
//! always one of the observed times, never an interpolation. Bands are half-open
//! minutes: [0, 5), [5, 15), [15, 60) and [60, ∞); exactly 5 minutes is in 5–15.
//!
//! SLA compliance needs the SLA timers of issue 12, which this module does not invent:
//! [`SlaCompliance`] is the shape the SLA work fills in, and the report leaves it `None`
//! until then.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::Window;

/// One person first seen in the window, and when its owner was first written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeadTiming {
    pub first_seen: DateTime<Utc>,
    pub written: Option<DateTime<Utc>>,
}

/// A speed band, in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    Under5,
    From5To15,
    From15To60,
    Over60,
}

impl Band {
    pub const ALL: [Band; 4] = [
        Band::Under5,
        Band::From5To15,
        Band::From15To60,
        Band::Over60,
    ];

    /// The band of an elapsed time (negative times, from clock skew, count as 0).
    pub fn of(elapsed: Duration) -> Band {
        let ms = elapsed.num_milliseconds();
        match ms {
            ..300_000 => Band::Under5,
            300_000..900_000 => Band::From5To15,
            900_000..3_600_000 => Band::From15To60,
            _ => Band::Over60,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Band::Under5 => "0-5 min",
            Band::From5To15 => "5-15 min",
            Band::From15To60 => "15-60 min",
            Band::Over60 => "60+ min",
        }
    }
}

/// The nearest-rank `p`-th percentile (0–100) of `sorted` (ascending); `None` when empty.
pub fn nearest_rank<T: Copy>(sorted: &[T], p: u32) -> Option<T> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let p = usize::try_from(p.min(100)).unwrap_or(100);
    // ⌈p·n/100⌉ without floating point; n is a slice length, so p·n cannot overflow
    // for any slice that fits in memory… but stay checked anyway.
    let rank = p
        .checked_mul(n)
        .map(|pn| pn.div_ceil(100))
        .unwrap_or(n)
        .clamp(1, n);
    sorted.get(rank - 1).copied()
}

/// The percentiles reported, in order.
pub const PERCENTILES: [u32; 4] = [50, 90, 95, 99];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeedReport {
    /// People first seen in the window.
    pub leads: u64,
    /// Of those, people whose owner leadroute wrote.
    pub routed: u64,
    /// First seen but never written (already owned as the policy wants, kept, an
    /// exception, or not yet routed).
    pub not_written: u64,
    /// (p, milliseconds) by the nearest-rank method, for the routed ones.
    pub percentiles: Vec<(u32, i64)>,
    /// Routed leads per band, in [`Band::ALL`] order.
    pub bands: Vec<(Band, u64)>,
}

/// Speed-to-lead over the people first seen in `window`. Pure.
pub fn speed(window: Window, leads: &[LeadTiming]) -> SpeedReport {
    let mut times: Vec<i64> = Vec::new();
    let mut total = 0;
    for lead in leads.iter().filter(|l| window.contains(l.first_seen)) {
        total += 1;
        if let Some(written) = lead.written {
            times.push(
                written
                    .signed_duration_since(lead.first_seen)
                    .num_milliseconds()
                    .max(0),
            );
        }
    }
    times.sort_unstable();
    let mut bands: Vec<(Band, u64)> = Band::ALL.iter().map(|b| (*b, 0)).collect();
    for ms in &times {
        let band = Band::of(Duration::milliseconds(*ms));
        if let Some(slot) = bands.iter_mut().find(|(b, _)| *b == band) {
            slot.1 += 1;
        }
    }
    let routed = times.len() as u64;
    SpeedReport {
        leads: total,
        routed,
        not_written: total - routed,
        percentiles: PERCENTILES
            .iter()
            .filter_map(|p| nearest_rank(&times, *p).map(|ms| (*p, ms)))
            .collect(),
        bands,
    }
}

/// SLA compliance, the extension point for issue 12's SLA timers: how many timers
/// were met, breached or are still open in the window, per band of the report. The
/// analytics report carries `Option<SlaCompliance>` and sets it only from real timer
/// data; until the SLA tables exist it is `None` and the page and `report speed` say
/// "no SLA timers recorded".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlaCompliance {
    pub met: u64,
    pub breached: u64,
    pub open: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn nearest_rank_percentiles_match_hand_computed_values() {
        // 10 values: p50 → rank ⌈5⌉ = 5 → 50; p90 → rank 9 → 90; p95 → ⌈9.5⌉ = 10 → 100.
        let v: Vec<i64> = (1..=10).map(|i| i * 10).collect();
        assert_eq!(nearest_rank(&v, 50), Some(50));
        assert_eq!(nearest_rank(&v, 90), Some(90));
        assert_eq!(nearest_rank(&v, 95), Some(100));
        assert_eq!(nearest_rank(&v, 0), Some(10));
        assert_eq!(nearest_rank(&v, 100), Some(100));
        // 5 values 1, 2, 3, 4, 100: p50 → rank ⌈2.5⌉ = 3 → 3; p99 → rank 5 → 100.
        let w = [1, 2, 3, 4, 100];
        assert_eq!(nearest_rank(&w, 50), Some(3));
        assert_eq!(nearest_rank(&w, 99), Some(100));
        // p20 of 5 → rank exactly 1.
        assert_eq!(nearest_rank(&w, 20), Some(1));
        assert_eq!(nearest_rank(&w, 21), Some(2));
        assert_eq!(nearest_rank::<i64>(&[], 50), None);
    }

    #[test]
    fn bands_are_half_open_at_5_15_and_60_minutes() {
        let m = |s: i64| Band::of(Duration::seconds(s));
        assert_eq!(m(0), Band::Under5);
        assert_eq!(m(299), Band::Under5);
        assert_eq!(m(300), Band::From5To15);
        assert_eq!(m(899), Band::From5To15);
        assert_eq!(m(900), Band::From15To60);
        assert_eq!(m(3599), Band::From15To60);
        assert_eq!(m(3600), Band::Over60);
        assert_eq!(m(-5), Band::Under5);
    }

    #[test]
    fn speed_counts_routed_and_unwritten_leads_with_percentiles_and_bands() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let window = Window {
            from: t0,
            to: t0 + Duration::days(1),
        };
        let lead = |seen_min: i64, after_secs: Option<i64>| LeadTiming {
            first_seen: t0 + Duration::minutes(seen_min),
            written: after_secs.map(|s| t0 + Duration::minutes(seen_min) + Duration::seconds(s)),
        };
        let leads = [
            lead(0, Some(30)),   // 0–5
            lead(1, Some(240)),  // 0–5
            lead(2, Some(300)),  // 5–15
            lead(3, Some(1200)), // 15–60
            lead(4, Some(7200)), // 60+
            lead(5, None),       // not written
            lead(-10, Some(1)),  // first seen before the window: not counted
        ];
        let r = speed(window, &leads);
        assert_eq!((r.leads, r.routed, r.not_written), (6, 5, 1));
        // Sorted: 30, 240, 300, 1200, 7200 s. p50 → rank 3 → 300 s; p90/p95/p99 → rank 5.
        assert_eq!(
            r.percentiles,
            vec![
                (50, 300_000),
                (90, 7_200_000),
                (95, 7_200_000),
                (99, 7_200_000)
            ]
        );
        assert_eq!(
            r.bands,
            vec![
                (Band::Under5, 2),
                (Band::From5To15, 1),
                (Band::From15To60, 1),
                (Band::Over60, 1)
            ]
        );
    }
}
