//! Client-side rate limiting and API usage accounting for one HubSpot portal.
//!
//! Two governor (GCRA) limiters: the per-app rolling 10-second limit of the portal's tier,
//! and the separate 5-per-second search limit (search answers carry no rate headers, so
//! that one cannot adapt). The 10-second quota is chosen so that no rolling window can
//! hold more calls than HubSpot allows (see [`window_quota`]). Response headers then
//! adapt it: a lower `X-HubSpot-RateLimit-Max` than configured replaces the limiter, a
//! low `-Remaining` that our own count of calls does not explain (other processes of the
//! same app share the window) spreads the remaining calls over it, and a
//! `-Daily-Remaining` at or below the configured reserve stops all calls with
//! `QuotaExhausted` until the daily reset.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, Utc};
use governor::clock::DefaultClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use leadroute_crm::{ApiUsage, CrmError, ErrorKind};
use parking_lot::{Mutex, RwLock};
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, NoOpMiddleware>;

/// The portal's subscription, which sets the per-10-second limit (reference §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HubSpotTier {
    Free,
    Starter,
    #[default]
    Professional,
    Enterprise,
    /// Professional/Enterprise with the API Limit Increase add-on.
    ApiAddOn,
    /// A public (marketplace) OAuth app: per installing account, no daily cap.
    OAuthPublicApp,
}

impl HubSpotTier {
    /// Calls allowed per rolling 10 seconds.
    pub fn ten_second_limit(self) -> u32 {
        match self {
            HubSpotTier::Free | HubSpotTier::Starter => 100,
            HubSpotTier::Professional | HubSpotTier::Enterprise => 190,
            HubSpotTier::ApiAddOn => 250,
            HubSpotTier::OAuthPublicApp => 110,
        }
    }
}

/// The HubSpot short window.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// A GCRA quota that never lets more than `max` calls into any rolling `window`, and
/// otherwise uses the window to the last call.
///
/// governor admits `burst` calls at once and then one per period `t`. Counting the
/// worst case over a closed window of length `window`, the greedy caller gets
/// `burst + floor(window / t)` calls (the fake-clock test below checks it), so we pick
/// `t = window / (max - burst)`: burst + rate·window = max exactly, and the steady rate is
/// (max − burst) per window. HubSpot (and the simulator, which prunes calls at age ≥ the
/// window) refuses a call only when `max` others arrived less than one window before it,
/// i.e. `max + 1` arrivals inside one window; this quota needs a span of `window + t` for
/// `max + 1` departures, so arrivals may bunch up by a whole period (53 ms at 190 per
/// 10 s) before a 429 becomes possible. That is the network-jitter margin, and it costs
/// nothing.
///
/// The burst is 2 (1 below 20 calls per window, where each burst call is a large share of
/// the rate): one call of burst beyond the first lets the limiter absorb a caller that
/// comes back up to one period late (a scheduling hiccup, the acquire jitter) without
/// losing its place on the schedule; with a burst of 1, every late acquire shifts all
/// later ones. A larger burst only lowers the steady rate.
///
/// The only stretch is 1 ms on the window, for clock granularity: governor's clock
/// (quanta, 100 ns resolution, TSC calibrated against the OS monotonic clock) is not the
/// server's clock, and HubSpot stamps arrivals at millisecond resolution. Over 10 s, 1 ms
/// covers a 100 ppm rate difference plus a rounding of each end, and costs 0.01 % of the
/// rate. The period is also rounded up to the next nanosecond, so rounding never adds a
/// call.
pub(crate) fn window_quota(max: u32, window: Duration) -> Quota {
    let window = window + CLOCK_MARGIN;
    let max = max.max(2);
    let burst = if max >= 20 { 2 } else { 1 };
    let steady = max - burst;
    let period_ns = (window.as_nanos() as u64).div_ceil(u64::from(steady));
    let burst = NonZeroU32::new(burst).expect("burst is at least 1 by construction");
    Quota::with_period(Duration::from_nanos(period_ns.max(1)))
        .expect("period is non-zero by construction")
        .allow_burst(burst)
}

/// Clock-granularity margin on the window (see [`window_quota`]).
const CLOCK_MARGIN: Duration = Duration::from_millis(1);

/// Rate state of one portal, shared by every client pointing at it in this process.
#[derive(Debug)]
pub(crate) struct Limits {
    general: RwLock<Arc<Limiter>>,
    /// The per-window maximum the general limiter is configured for.
    configured_max: Mutex<u32>,
    search: Limiter,
    /// Departure instants of our own general calls in the last window (plus grace): what
    /// the portal's `Remaining` should say if nobody else shares the window.
    sent: Mutex<VecDeque<Instant>>,
    /// No call may start before this instant (window exhausted, 429 seen, pacing).
    pause_until: Mutex<Option<Instant>>,
    /// Set when the daily allocation reached the reserve: calls fail until then.
    stopped_until: Mutex<Option<DateTime<Utc>>>,
    usage: Mutex<ApiUsage>,
    daily_reset_offset: FixedOffset,
}

/// Rate headers of one response.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RateHeaders {
    pub max: Option<u64>,
    pub remaining: Option<u64>,
    pub interval: Option<Duration>,
    pub daily: Option<u64>,
    pub daily_remaining: Option<u64>,
}

impl RateHeaders {
    pub(crate) fn parse(headers: &HeaderMap) -> RateHeaders {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        RateHeaders {
            max: num("x-hubspot-ratelimit-max"),
            remaining: num("x-hubspot-ratelimit-remaining"),
            interval: num("x-hubspot-ratelimit-interval-milliseconds").map(Duration::from_millis),
            daily: num("x-hubspot-ratelimit-daily"),
            daily_remaining: num("x-hubspot-ratelimit-daily-remaining"),
        }
    }
}

/// Limiters are per portal, not per client: a second `HubSpot` built for the same base
/// URL and credential (a restart inside one process, the CLI and the web intake) shares
/// the budget instead of doubling it.
static REGISTRY: LazyLock<Mutex<HashMap<String, Weak<Limits>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl Limits {
    /// The limits for `portal_key` (base URL + credential fingerprint), created on first use.
    pub(crate) fn for_portal(
        portal_key: &str,
        tier: HubSpotTier,
        search_per_second: u32,
        daily_reserve: u64,
        daily_reset_offset: FixedOffset,
    ) -> Arc<Limits> {
        let mut registry = REGISTRY.lock();
        registry.retain(|_, weak| weak.strong_count() > 0);
        if let Some(existing) = registry.get(portal_key).and_then(Weak::upgrade) {
            return existing;
        }
        let limits = Arc::new(Limits::new(
            tier,
            search_per_second,
            daily_reserve,
            daily_reset_offset,
        ));
        registry.insert(portal_key.to_owned(), Arc::downgrade(&limits));
        limits
    }

    pub(crate) fn new(
        tier: HubSpotTier,
        search_per_second: u32,
        daily_reserve: u64,
        daily_reset_offset: FixedOffset,
    ) -> Limits {
        let max = tier.ten_second_limit();
        Limits {
            general: RwLock::new(Arc::new(RateLimiter::direct(window_quota(max, WINDOW)))),
            configured_max: Mutex::new(max),
            search: RateLimiter::direct(window_quota(
                search_per_second.max(2),
                Duration::from_secs(1),
            )),
            sent: Mutex::new(VecDeque::new()),
            pause_until: Mutex::new(None),
            stopped_until: Mutex::new(None),
            usage: Mutex::new(ApiUsage {
                window_max: Some(u64::from(max)),
                window: Some(WINDOW),
                daily_reserve,
                ..ApiUsage::default()
            }),
            daily_reset_offset,
        }
    }

    /// Waits until a call may start. Fails at once if the daily reserve was reached.
    pub(crate) async fn acquire(&self, search: bool) -> Result<(), CrmError> {
        if let Some(until) = *self.stopped_until.lock() {
            if Utc::now() < until {
                return Err(quota_exhausted(until, "daily API reserve reached"));
            }
        }
        // No jitter: the buckets already space the calls, and a jitter taken after
        // the token would only add latency to every call on a chain of calls.
        if search {
            self.search.until_ready().await;
        } else {
            let limiter = self.general.read().clone();
            limiter.until_ready().await;
        }
        loop {
            let wait =
                (*self.pause_until.lock()).and_then(|t| t.checked_duration_since(Instant::now()));
            match wait {
                Some(d) if !d.is_zero() => tokio::time::sleep(d).await,
                _ => break,
            }
        }
        if !search {
            let now = Instant::now();
            let mut sent = self.sent.lock();
            // Keep two windows at most: enough for any interval a header may announce.
            while sent
                .front()
                .is_some_and(|t| now.duration_since(*t) > 2 * WINDOW + ACCOUNTING_GRACE)
            {
                sent.pop_front();
            }
            sent.push_back(now);
        }
        self.usage.lock().calls += 1;
        Ok(())
    }

    /// Holds every caller back for `d` (a 429 or an exhausted window).
    pub(crate) fn pause_for(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut pause = self.pause_until.lock();
        if pause.is_none_or(|p| p < until) {
            *pause = Some(until);
        }
    }

    pub(crate) fn record_throttled(&self) {
        self.usage.lock().throttled += 1;
    }

    pub(crate) fn record_retry(&self) {
        self.usage.lock().retries += 1;
    }

    pub(crate) fn usage(&self) -> ApiUsage {
        self.usage.lock().clone()
    }

    /// Learns from a response's rate headers. Returns `QuotaExhausted` when the daily
    /// allocation has fallen to the reserve (the response itself is still usable).
    pub(crate) fn observe(&self, h: &RateHeaders) -> Option<CrmError> {
        let reserve;
        {
            let mut usage = self.usage.lock();
            if let Some(max) = h.max {
                usage.window_max = Some(max);
            }
            if h.remaining.is_some() {
                usage.window_remaining = h.remaining;
            }
            if let Some(interval) = h.interval {
                usage.window = Some(interval);
            }
            if h.daily.is_some() {
                usage.daily_max = h.daily;
            }
            if h.daily_remaining.is_some() {
                usage.daily_remaining = h.daily_remaining;
            }
            reserve = usage.daily_reserve;
        }
        let window = h.interval.unwrap_or(WINDOW);
        if let Some(max) = h.max.and_then(|m| u32::try_from(m).ok()).filter(|m| *m > 0) {
            let mut configured = self.configured_max.lock();
            // The portal knows its tier better than our configuration does.
            if *configured != max {
                *configured = max;
                *self.general.write() = Arc::new(RateLimiter::direct(window_quota(max, window)));
            }
        }
        if let (Some(max), Some(remaining)) = (h.max, h.remaining) {
            let ours = self.sent_within(window + ACCOUNTING_GRACE);
            if let Some(pace) = pacing_delay(max, remaining, ours, window) {
                self.pause_for(pace);
            }
        }
        if let Some(daily_remaining) = h.daily_remaining {
            if daily_remaining <= reserve {
                let until = next_daily_reset(Utc::now(), self.daily_reset_offset);
                *self.stopped_until.lock() = Some(until);
                return Some(quota_exhausted(
                    until,
                    &format!(
                        "daily API allocation down to {daily_remaining} calls, at or below the configured reserve of {reserve}"
                    ),
                ));
            }
        }
        None
    }

    /// How many of our own general calls departed within the last `span`.
    fn sent_within(&self, span: Duration) -> u64 {
        let now = Instant::now();
        let sent = self.sent.lock();
        sent.iter()
            .rev()
            .take_while(|t| now.duration_since(**t) <= span)
            .count() as u64
    }

    /// HubSpot said DAILY: stop until the reset.
    pub(crate) fn stop_for_the_day(&self) -> DateTime<Utc> {
        let until = next_daily_reset(Utc::now(), self.daily_reset_offset);
        *self.stopped_until.lock() = Some(until);
        until
    }

    #[cfg(test)]
    pub(crate) fn configured_max(&self) -> u32 {
        *self.configured_max.lock()
    }
}

/// How far back our own accounting reaches beyond the window before it is compared with
/// the portal's `Remaining`. The portal counts a call at its arrival and answers for a
/// window ending there; we compare when the answer is back. Calls of ours that left our
/// window but not the portal's are those sent within one request + response latency, so
/// counting half a second more of our own calls keeps normal latency from looking like a
/// foreign app. It errs on the side of counting too many of ours: a foreign app using
/// fewer than ~half a second's worth of our calls goes unnoticed, and if that ever tips
/// the window over, the 429 handler waits it out.
const ACCOUNTING_GRACE: Duration = Duration::from_millis(500);

/// Pacing when someone else shares the window (another process or app on the portal).
///
/// Our limiter alone never puts more than `max` calls into a window, so a lone client
/// running at full speed sits at `remaining` ≈ 0 by design and must not be braked: we
/// slow down only when the portal counts more calls (`max − remaining`) than we sent
/// ourselves (`ours`, over the window plus [`ACCOUNTING_GRACE`]), i.e. when the window
/// is genuinely fuller than our own accounting says. Then, below 10 % remaining, we pause
/// up to one slot (`window / max`), scaled by how deep into the reserve we are; if the
/// others still overrun the window, the 429 handler waits it out.
pub(crate) fn pacing_delay(
    max: u64,
    remaining: u64,
    ours: u64,
    window: Duration,
) -> Option<Duration> {
    let max = max.max(1);
    let foreign = max.saturating_sub(remaining).saturating_sub(ours);
    if foreign == 0 {
        return None;
    }
    let low_water = (max / 10).max(1);
    if remaining >= low_water {
        return None;
    }
    let slot = window / u32::try_from(max).unwrap_or(u32::MAX);
    let depth = u32::try_from(low_water - remaining).unwrap_or(u32::MAX);
    let scale = u32::try_from(low_water).unwrap_or(u32::MAX);
    Some(slot * depth / scale)
}

/// The next midnight in the portal's time zone (given as a fixed UTC offset), as UTC.
pub(crate) fn next_daily_reset(now: DateTime<Utc>, offset: FixedOffset) -> DateTime<Utc> {
    let local = now.with_timezone(&offset);
    let tomorrow = local.date_naive().succ_opt().unwrap_or(local.date_naive());
    let midnight = tomorrow
        .and_hms_opt(0, 0, 0)
        .expect("midnight is a valid time of day");
    match midnight.and_local_timezone(offset).single() {
        Some(t) => t.with_timezone(&Utc),
        None => now + chrono::Duration::days(1),
    }
}

fn quota_exhausted(until: DateTime<Utc>, why: &str) -> CrmError {
    let wait = (until - Utc::now()).to_std().unwrap_or_default();
    CrmError::new(
        ErrorKind::QuotaExhausted,
        format!("hubspot: {why}; resuming after {until} (raise the daily allocation or lower daily_reserve)"),
    )
    .with_resume_at(until)
    .with_retry_after(wait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    /// Greedy caller on a fake clock: tries every millisecond for `run`, returns the
    /// instants (ms) of admitted calls.
    fn admitted(quota: Quota, run: Duration) -> Vec<u64> {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(quota, clock.clone());
        let mut times = Vec::new();
        for ms in 0..run.as_millis() as u64 {
            while limiter.check().is_ok() {
                times.push(ms);
            }
            clock.advance(Duration::from_millis(1));
        }
        times
    }

    fn max_in_any_closed_window(times: &[u64], window_ms: u64) -> usize {
        times
            .iter()
            .map(|start| {
                times
                    .iter()
                    .filter(|t| **t >= *start && **t <= start + window_ms)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn no_rolling_ten_second_window_exceeds_the_tier_limit() {
        for tier in [
            HubSpotTier::Free,
            HubSpotTier::Professional,
            HubSpotTier::ApiAddOn,
            HubSpotTier::OAuthPublicApp,
        ] {
            let max = tier.ten_second_limit();
            let times = admitted(window_quota(max, WINDOW), Duration::from_secs(35));
            let worst = max_in_any_closed_window(&times, 10_000);
            assert!(
                worst <= max as usize,
                "{tier:?}: {worst} calls in 10 s > {max}"
            );
            // …and the limiter is not needlessly slow: it uses at least 95 % of the limit.
            assert!(
                worst as f64 >= 0.95 * max as f64,
                "{tier:?}: only {worst} of {max}"
            );
        }
    }

    #[test]
    fn the_search_limiter_keeps_any_second_at_or_below_five() {
        let times = admitted(
            window_quota(5, Duration::from_secs(1)),
            Duration::from_secs(5),
        );
        assert!(max_in_any_closed_window(&times, 1_000) <= 5);
    }

    #[test]
    fn tier_limits_match_hubspot_documentation() {
        assert_eq!(HubSpotTier::Starter.ten_second_limit(), 100);
        assert_eq!(HubSpotTier::Enterprise.ten_second_limit(), 190);
        assert_eq!(HubSpotTier::ApiAddOn.ten_second_limit(), 250);
        assert_eq!(HubSpotTier::OAuthPublicApp.ten_second_limit(), 110);
    }

    #[test]
    fn steady_state_rate_uses_at_least_97_percent_of_the_tier_limit() {
        for tier in [
            HubSpotTier::Free,
            HubSpotTier::Professional,
            HubSpotTier::ApiAddOn,
            HubSpotTier::OAuthPublicApp,
        ] {
            let max = tier.ten_second_limit();
            let run = Duration::from_secs(60);
            let times = admitted(window_quota(max, WINDOW), run);
            // Leave out the opening burst: what a long backfill sees is the schedule after it.
            let burst_end = times.iter().filter(|t| **t == 0).count();
            let steady = (times.len() - burst_end) as f64 / run.as_secs_f64();
            let limit = f64::from(max) / WINDOW.as_secs_f64();
            assert!(
                steady >= 0.97 * limit,
                "{tier:?}: {steady:.2} calls/s < 0.97 × {limit:.1}"
            );
        }
    }

    #[test]
    fn a_lone_client_at_full_speed_is_never_paced() {
        let w = Duration::from_secs(10);
        // The portal's window holds exactly our own calls: no brake, however low.
        assert_eq!(pacing_delay(190, 0, 190, w), None);
        assert_eq!(pacing_delay(190, 2, 188, w), None);
        // Our accounting may count more than the portal (calls still in flight): no brake.
        assert_eq!(pacing_delay(190, 5, 195, w), None);
    }

    #[test]
    fn pacing_starts_only_when_others_fill_the_window_and_never_exceeds_one_slot() {
        let w = Duration::from_secs(10);
        // Someone else used 90 calls, but 100 remain: plenty.
        assert_eq!(pacing_delay(190, 100, 0, w), None);
        let slot = w / 190;
        // At zero remaining with 40 foreign calls: one slot, never more.
        assert_eq!(pacing_delay(190, 0, 150, w), Some(slot));
        let shallow = pacing_delay(190, 18, 150, w).unwrap();
        assert!(shallow < slot / 10, "{shallow:?}");
    }

    fn professional_limits_having_sent(calls: usize) -> Limits {
        let limits = Limits::new(
            HubSpotTier::Professional,
            5,
            0,
            FixedOffset::east_opt(0).unwrap(),
        );
        let now = Instant::now();
        limits.sent.lock().extend(std::iter::repeat_n(now, calls));
        limits
    }

    #[test]
    fn the_portal_counting_more_than_we_sent_slows_us_down() {
        // We sent 150 calls; the portal says 188 of 190 are used: someone else is there.
        let limits = professional_limits_having_sent(150);
        limits.observe(&RateHeaders {
            max: Some(190),
            remaining: Some(2),
            ..RateHeaders::default()
        });
        assert!(limits.pause_until.lock().is_some());
    }

    #[test]
    fn our_own_calls_explaining_a_low_remaining_do_not_pause() {
        // We sent 189 calls and the portal counts 189: we are alone at full speed.
        let limits = professional_limits_having_sent(189);
        limits.observe(&RateHeaders {
            max: Some(190),
            remaining: Some(1),
            ..RateHeaders::default()
        });
        assert!(limits.pause_until.lock().is_none());
    }

    #[test]
    fn daily_reserve_reached_stops_calls_until_midnight() {
        let limits = Limits::new(
            HubSpotTier::Professional,
            5,
            1_000,
            FixedOffset::east_opt(0).unwrap(),
        );
        let err = limits
            .observe(&RateHeaders {
                daily: Some(625_000),
                daily_remaining: Some(999),
                ..RateHeaders::default()
            })
            .expect("reserve reached");
        assert_eq!(err.kind, ErrorKind::QuotaExhausted);
        let resume = err.resume_at.unwrap();
        assert!(resume > Utc::now());
        assert_eq!(resume.format("%H:%M:%S").to_string(), "00:00:00");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let again = rt.block_on(limits.acquire(false)).unwrap_err();
        assert_eq!(again.kind, ErrorKind::QuotaExhausted);
    }

    #[test]
    fn a_portal_reporting_a_different_max_replaces_the_configured_limiter() {
        let limits = Limits::new(
            HubSpotTier::Professional,
            5,
            0,
            FixedOffset::east_opt(0).unwrap(),
        );
        limits.observe(&RateHeaders {
            max: Some(100),
            remaining: Some(99),
            ..RateHeaders::default()
        });
        assert_eq!(limits.configured_max(), 100);
        assert_eq!(limits.usage().window_max, Some(100));
    }

    #[test]
    fn the_daily_reset_follows_the_portal_offset() {
        let now = DateTime::parse_from_rfc3339("2026-03-02T22:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let berlin = FixedOffset::east_opt(3600).unwrap();
        // 23:30 in UTC+1 → next local midnight is 23:00 UTC the same day.
        assert_eq!(
            next_daily_reset(now, berlin).to_rfc3339(),
            "2026-03-02T23:00:00+00:00"
        );
    }
}
