//! API accounting: the rolling 24-hour request allocation, the concurrent
//! long-running request limit, and per-endpoint call statistics.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Calls and allocation as `/__sim/stats` reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimStats {
    /// Calls per endpoint, e.g. `GET query`, `PATCH composite/sobjects`.
    pub calls: BTreeMap<String, u64>,
    /// Calls counted against the daily allocation in the last 24 hours.
    pub api_used: u64,
    pub api_limit: u64,
    /// Calls refused with 403 `REQUEST_LIMIT_EXCEEDED` (daily or concurrency).
    pub limit_rejections: u64,
    /// 401 `INVALID_SESSION_ID` answers.
    pub auth_failures: u64,
    /// Faults injected by the script (5xx, resets, row locks).
    pub faults_injected: u64,
    /// Records changed through the API.
    pub records_written: u64,
    /// Tokens issued by the token endpoint.
    pub tokens_issued: u64,
    /// Outbound envelopes posted / acknowledged.
    pub outbound_posts: u64,
    pub outbound_acks: u64,
}

/// The rolling allocation: counted calls bucketed per minute.
#[derive(Debug)]
pub(crate) struct Allocation {
    pub(crate) limit: u64,
    buckets: VecDeque<(Instant, u64)>,
    used: u64,
    /// Calls left before a scripted exhaustion.
    pub(crate) exhaust_after: Option<u64>,
}

impl Allocation {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit,
            buckets: VecDeque::new(),
            used: 0,
            exhaust_after: None,
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, n)) = self.buckets.front().copied() {
            if now.duration_since(at) < DAY {
                break;
            }
            self.used -= n;
            self.buckets.pop_front();
        }
    }

    pub(crate) fn used(&mut self, now: Instant) -> u64 {
        self.expire(now);
        self.used
    }

    /// Counts `cost` calls, or refuses when the allocation is spent.
    pub(crate) fn try_consume(&mut self, cost: u64, now: Instant) -> bool {
        self.expire(now);
        if self.used + cost > self.limit || self.exhaust_after == Some(0) {
            return false;
        }
        if let Some(left) = &mut self.exhaust_after {
            *left = left.saturating_sub(cost);
        }
        self.add(cost, now);
        true
    }

    /// Counts calls that are already being served (e.g. batch subrequests).
    pub(crate) fn add(&mut self, cost: u64, now: Instant) {
        match self.buckets.back_mut() {
            Some((at, n)) if now.duration_since(*at) < Duration::from_secs(60) => *n += cost,
            _ => self.buckets.push_back((now, cost)),
        }
        self.used += cost;
    }
}

/// Requests in flight, to apply the long-running concurrency limit.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    next: u64,
    started: HashMap<u64, Instant>,
}

impl InFlight {
    /// Registers a request unless `max` requests have already run longer than
    /// `threshold` (then the new request is refused, as the real limit does).
    pub(crate) fn enter(&mut self, now: Instant, threshold: Duration, max: usize) -> Option<u64> {
        let long = self
            .started
            .values()
            .filter(|at| now.duration_since(**at) >= threshold)
            .count();
        if long >= max {
            return None;
        }
        self.next += 1;
        self.started.insert(self.next, now);
        Some(self.next)
    }

    pub(crate) fn leave(&mut self, ticket: u64) {
        self.started.remove(&ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocation_refuses_once_spent_and_frees_after_a_day() {
        let start = Instant::now();
        let mut a = Allocation::new(2);
        assert!(a.try_consume(1, start));
        assert!(a.try_consume(1, start));
        assert!(!a.try_consume(1, start));
        assert!(a.try_consume(1, start + DAY + Duration::from_secs(61)));
    }

    #[test]
    fn scripted_exhaustion_counts_down() {
        let now = Instant::now();
        let mut a = Allocation::new(100);
        a.exhaust_after = Some(1);
        assert!(a.try_consume(1, now));
        assert!(!a.try_consume(1, now));
    }

    #[test]
    fn only_long_running_requests_count_toward_concurrency() {
        let now = Instant::now();
        let mut f = InFlight::default();
        let t = Duration::from_secs(20);
        assert!(f.enter(now, t, 1).is_some());
        assert!(
            f.enter(now, t, 1).is_some(),
            "short requests are not limited"
        );
        assert!(f.enter(now + t, t, 1).is_none());
    }
}
