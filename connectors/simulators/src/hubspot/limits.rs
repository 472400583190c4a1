//! HubSpot's two-level rate limits: a rolling 10-second window per app and a
//! daily allowance that resets at midnight in the portal's time zone, plus the
//! separate 5-requests-per-second search limit (trap 9).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;

/// Window length of the burst limit.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// Outcome of admitting one request.
#[derive(Debug, Clone)]
pub(crate) enum Admission {
    /// Allowed; header figures after counting this call.
    Allowed {
        remaining: u32,
        daily_remaining: u64,
    },
    /// Refused with this policy name.
    Refused {
        policy: &'static str,
        remaining: u32,
        daily_remaining: u64,
    },
}

/// Counters for one portal.
pub(crate) struct Limiter {
    pub(crate) ten_second_limit: u32,
    pub(crate) daily_limit: u64,
    search_per_second: u32,
    window: VecDeque<Instant>,
    search_window: VecDeque<Instant>,
    daily_used: u64,
    daily_resets_at_ms: i64,
    tz: Tz,
}

/// Epoch ms of the next local midnight after `now_ms` in `tz`.
fn next_midnight(tz: Tz, now_ms: i64) -> i64 {
    let now = Utc
        .timestamp_millis_opt(now_ms)
        .single()
        .unwrap_or_else(Utc::now)
        .with_timezone(&tz);
    let tomorrow = now.date_naive().succ_opt().unwrap_or(now.date_naive());
    let midnight = tomorrow.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&midnight)
        .earliest()
        .map(|d| d.timestamp_millis())
        .unwrap_or(now_ms + 86_400_000)
}

impl Limiter {
    pub(crate) fn new(
        ten_second_limit: u32,
        daily_limit: u64,
        search_per_second: u32,
        tz: Tz,
    ) -> Limiter {
        Limiter {
            ten_second_limit,
            daily_limit,
            search_per_second,
            window: VecDeque::new(),
            search_window: VecDeque::new(),
            daily_used: 0,
            daily_resets_at_ms: next_midnight(tz, super::clock::now_ms()),
            tz,
        }
    }

    fn roll_day(&mut self, now_ms: i64) {
        if now_ms >= self.daily_resets_at_ms {
            self.daily_used = 0;
            self.daily_resets_at_ms = next_midnight(self.tz, now_ms);
        }
    }

    fn prune(window: &mut VecDeque<Instant>, span: Duration, now: Instant) {
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= span)
        {
            window.pop_front();
        }
    }

    /// Admits a non-search call. `daily` is false for OAuth apps, which have
    /// no daily cap.
    pub(crate) fn admit(&mut self, daily: bool) -> Admission {
        let now = Instant::now();
        self.roll_day(super::clock::now_ms());
        Self::prune(&mut self.window, WINDOW, now);
        let used = self.window.len() as u32;
        let remaining = self.ten_second_limit.saturating_sub(used);
        let daily_remaining = self.daily_limit.saturating_sub(self.daily_used);
        if daily && daily_remaining == 0 {
            return Admission::Refused {
                policy: "DAILY",
                remaining,
                daily_remaining,
            };
        }
        if remaining == 0 {
            return Admission::Refused {
                policy: "TEN_SECONDLY_ROLLING",
                remaining,
                daily_remaining,
            };
        }
        self.window.push_back(now);
        if daily {
            self.daily_used += 1;
        }
        Admission::Allowed {
            remaining: remaining - 1,
            daily_remaining: self.daily_limit.saturating_sub(self.daily_used),
        }
    }

    /// Admits a search call (its own per-second limit; counts toward the day).
    pub(crate) fn admit_search(&mut self, daily: bool) -> bool {
        let now = Instant::now();
        self.roll_day(super::clock::now_ms());
        Self::prune(&mut self.search_window, Duration::from_secs(1), now);
        if self.search_window.len() as u32 >= self.search_per_second {
            return false;
        }
        if daily && self.daily_used >= self.daily_limit {
            return false;
        }
        self.search_window.push_back(now);
        if daily {
            self.daily_used += 1;
        }
        true
    }

    /// Daily calls used so far today.
    pub(crate) fn daily_used(&self) -> u64 {
        self.daily_used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_call_in_a_window_of_ten_is_refused_as_ten_secondly() {
        let mut l = Limiter::new(10, 1_000, 5, chrono_tz::UTC);
        for i in 0..10 {
            match l.admit(true) {
                Admission::Allowed { remaining, .. } => assert_eq!(remaining, 9 - i),
                other => panic!("call {i} refused: {other:?}"),
            }
        }
        assert!(matches!(
            l.admit(true),
            Admission::Refused {
                policy: "TEN_SECONDLY_ROLLING",
                ..
            }
        ));
    }

    #[test]
    fn the_daily_limit_wins_over_the_burst_window() {
        let mut l = Limiter::new(10, 2, 5, chrono_tz::UTC);
        assert!(matches!(l.admit(true), Admission::Allowed { .. }));
        assert!(matches!(l.admit(true), Admission::Allowed { .. }));
        assert!(matches!(
            l.admit(true),
            Admission::Refused {
                policy: "DAILY",
                ..
            }
        ));
        // OAuth apps have no daily cap.
        assert!(matches!(l.admit(false), Admission::Allowed { .. }));
    }

    #[test]
    fn daily_reset_falls_on_local_midnight() {
        // 2026-01-01T12:00Z; New York midnight is 05:00Z next day.
        let at = next_midnight(chrono_tz::America::New_York, 1_767_268_800_000);
        assert_eq!(at, 1_767_330_000_000);
    }
}
