//! The writer's circuit breaker: stops hammering a CRM that keeps failing.
//!
//! Closed: calls go through; K consecutive server failures (5xx/Unavailable, timeouts,
//! resets) open it. Open: calls are refused until the cool-down passes. Half-open: the
//! next call is a probe; success closes the breaker, failure opens it again. The
//! writer counts consecutive trips and stops the run (resumable) after a few, rather
//! than waiting forever on a CRM that is down.

use std::sync::Mutex;
use std::time::Duration;

use leadroute_crm::ErrorKind;
use tokio::time::Instant;

/// Breaker state as seen by callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// Refusing calls for this much longer.
    Open(Duration),
    /// The next call is a probe.
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    half_open: bool,
    /// Trips since the last success.
    trips: u32,
}

/// A consecutive-failure circuit breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        CircuitBreaker {
            threshold: threshold.max(1),
            cooldown,
            inner: Mutex::new(Inner {
                consecutive_failures: 0,
                open_until: None,
                half_open: false,
                trips: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere mid-update of plain counters;
        // the counters are still meaningful.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks to make a call. After the cool-down the first caller becomes the probe.
    pub fn state(&self) -> BreakerState {
        let mut inner = self.lock();
        match inner.open_until {
            Some(until) => {
                let now = Instant::now();
                if now < until {
                    BreakerState::Open(until - now)
                } else {
                    inner.open_until = None;
                    inner.half_open = true;
                    BreakerState::HalfOpen
                }
            }
            None if inner.half_open => BreakerState::HalfOpen,
            None => BreakerState::Closed,
        }
    }

    /// Consecutive trips without a success in between.
    pub fn trips(&self) -> u32 {
        self.lock().trips
    }

    pub fn on_success(&self) {
        let mut inner = self.lock();
        inner.consecutive_failures = 0;
        inner.half_open = false;
        inner.trips = 0;
    }

    /// Records a failed call. Only server-side trouble counts: a 429 or a 400 says the
    /// CRM is up.
    pub fn on_failure(&self, kind: ErrorKind) {
        if !matches!(
            kind,
            ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::Network
        ) {
            return;
        }
        let mut inner = self.lock();
        inner.consecutive_failures += 1;
        if inner.half_open || inner.consecutive_failures >= self.threshold {
            inner.open_until = Some(Instant::now() + self.cooldown);
            inner.half_open = false;
            inner.consecutive_failures = 0;
            inner.trips += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn breaker_opens_after_k_server_errors_probes_after_cooldown_and_closes_on_success() {
        let breaker = CircuitBreaker::new(3, Duration::from_millis(20));
        breaker.on_failure(ErrorKind::Unavailable);
        breaker.on_failure(ErrorKind::RateLimited);
        breaker.on_failure(ErrorKind::Unavailable);
        assert_eq!(breaker.state(), BreakerState::Closed, "429s do not count");
        breaker.on_failure(ErrorKind::Unavailable);
        assert!(matches!(breaker.state(), BreakerState::Open(_)));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        breaker.on_success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.trips(), 0);
    }

    #[tokio::test]
    async fn a_failed_probe_reopens_the_breaker_at_once() {
        let breaker = CircuitBreaker::new(2, Duration::from_millis(20));
        breaker.on_failure(ErrorKind::Unavailable);
        breaker.on_failure(ErrorKind::Unavailable);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        breaker.on_failure(ErrorKind::Timeout);
        assert!(matches!(breaker.state(), BreakerState::Open(_)));
        assert_eq!(breaker.trips(), 2);
    }
}
