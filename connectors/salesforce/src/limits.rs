//! The org's rolling 24-hour API request allocation, as seen in `Sforce-Limit-Info`.
//!
//! Salesforce has no per-second limit and no `Retry-After`: the one budget that
//! matters is the daily allocation shared by every integration of the org. This module
//! parses the header, keeps usage samples, refuses calls that would eat into the
//! configured reserve, and estimates honestly when a paused run can resume: calls
//! leave the rolling window 24 hours after they were made, so usage observed at time
//! `t` is certainly gone by `t + 24h`.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use leadroute_crm::{ApiUsage, CrmError, ErrorKind};
use parking_lot::Mutex;

/// The rolling window of the daily allocation.
pub const WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// `api-usage=used/total` from a `Sforce-Limit-Info` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitInfo {
    pub used: u64,
    pub total: u64,
}

/// Parses `Sforce-Limit-Info`, e.g. `api-usage=18/15000` or
/// `api-usage=18/15000; per-app-api-usage=17/250(appName=sample-app)`. Other segments
/// and unknown formatting are ignored; `None` when no `api-usage` segment parses.
pub fn parse_limit_info(value: &str) -> Option<LimitInfo> {
    value.split([';', ',']).find_map(|segment| {
        let (key, rest) = segment.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("api-usage") {
            return None;
        }
        let (used, total) = rest.trim().split_once('/')?;
        // Tolerate a trailing annotation such as "(appName=x)".
        let total: String = total
            .trim()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Some(LimitInfo {
            used: used.trim().parse().ok()?,
            total: total.parse().ok()?,
        })
    })
}

#[derive(Debug, Default)]
struct State {
    usage: ApiUsage,
    /// The last `used` reported plus calls started since (our own view of "now").
    used_estimate: Option<u64>,
    /// (when observed, used) samples, at most one a minute, covering 24 hours.
    samples: VecDeque<(DateTime<Utc>, u64)>,
    /// When the last figures were read from a response.
    observed_at: Option<DateTime<Utc>>,
}

/// Shared tracker of the daily allocation for one org.
#[derive(Debug)]
pub struct DailyAllocation {
    state: Mutex<State>,
    /// While refusing calls, let one through this often to re-read the figures (the
    /// allocation may have grown, or other integrations' calls aged out).
    probe_interval: Duration,
}

impl DailyAllocation {
    pub fn new(reserve: u64, probe_interval: Duration) -> Self {
        let state = State {
            usage: ApiUsage {
                daily_reserve: reserve,
                ..ApiUsage::default()
            },
            ..State::default()
        };
        DailyAllocation {
            state: Mutex::new(state),
            probe_interval,
        }
    }

    pub fn usage(&self) -> ApiUsage {
        self.state.lock().usage.clone()
    }

    /// Called before every counted API call: refuses when one more call would reach
    /// the reserve kept for other integrations.
    pub fn before_call(&self, now: DateTime<Utc>) -> Result<(), CrmError> {
        let mut state = self.state.lock();
        let reserve = state.usage.daily_reserve;
        if let (Some(used), Some(total)) = (state.used_estimate, state.usage.daily_max) {
            let probe_due = state.observed_at.is_none_or(|at| {
                now - at >= chrono::Duration::from_std(self.probe_interval).unwrap_or(WINDOW)
            });
            if used.saturating_add(1).saturating_add(reserve) > total && !probe_due {
                let resume_at = resume_estimate(&state.samples, used, total, reserve, now);
                return Err(CrmError::new(
                    ErrorKind::QuotaExhausted,
                    format!(
                        "salesforce daily API allocation: {used} of {total} used and {reserve} kept in reserve for other integrations; pausing until about {resume_at} (rolling 24 h window); lower `daily_reserve` or buy more calls to go on sooner"
                    ),
                )
                .with_resume_at(resume_at));
            }
            if probe_due {
                // This call is the probe; its response re-arms the refusal if needed.
                state.observed_at = Some(now);
            }
        }
        state.usage.calls += 1;
        if let Some(used) = state.used_estimate.as_mut() {
            *used += 1;
        }
        Ok(())
    }

    /// Records the figures from a response's `Sforce-Limit-Info`.
    pub fn observe(&self, info: LimitInfo, now: DateTime<Utc>) {
        let mut state = self.state.lock();
        state.usage.daily_max = Some(info.total);
        state.usage.daily_remaining = Some(info.total.saturating_sub(info.used));
        state.used_estimate = Some(info.used);
        state.observed_at = Some(now);
        // About one sample a minute: the last sample is a "current" slot that newer
        // figures overwrite (time included, as the calls they count may be that
        // recent) until it is a minute past the one before it.
        let len = state.samples.len();
        let push = len < 2 || now - state.samples[len - 2].0 >= chrono::Duration::minutes(1);
        if push {
            state.samples.push_back((now, info.used));
        } else if let Some(last) = state.samples.back_mut() {
            *last = (now, info.used);
        }
        while state
            .samples
            .front()
            .is_some_and(|(at, _)| now - *at > WINDOW)
        {
            state.samples.pop_front();
        }
    }

    /// A 403 `REQUEST_LIMIT_EXCEEDED` (TotalRequests): the org is over its allocation.
    pub fn exhausted(&self, now: DateTime<Utc>, message: &str) -> CrmError {
        let mut state = self.state.lock();
        state.usage.throttled += 1;
        let total = state.usage.daily_max.unwrap_or(0);
        let used = state.used_estimate.unwrap_or(total).max(total);
        state.used_estimate = Some(used);
        state.usage.daily_remaining = Some(0);
        state.observed_at = Some(now);
        let resume_at =
            resume_estimate(&state.samples, used, total, state.usage.daily_reserve, now);
        CrmError::new(
            ErrorKind::QuotaExhausted,
            format!(
                "salesforce refused the call: daily API allocation exhausted ({message}); resume after about {resume_at} (rolling 24 h window)"
            ),
        )
        .with_status(403)
        .with_resume_at(resume_at)
    }

    pub fn count_retry(&self) {
        self.state.lock().usage.retries += 1;
    }

    pub fn count_throttled(&self) {
        self.state.lock().usage.throttled += 1;
    }
}

/// When enough calls will have left the rolling window for one call to fit above the
/// reserve again, assuming nobody else calls meanwhile.
///
/// Every call counted in a sample `(t, u)` was made at or before `t`, so it leaves the
/// window by `t + 24h`: at that point usage is at most `used - u`. The first sample
/// with `u >= excess` gives the bound. Without a usable sample, 24 hours from now is
/// the only honest answer.
pub fn resume_estimate(
    samples: &VecDeque<(DateTime<Utc>, u64)>,
    used: u64,
    total: u64,
    reserve: u64,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let excess = used
        .saturating_add(reserve)
        .saturating_add(1)
        .saturating_sub(total);
    samples
        .iter()
        .find(|(_, u)| *u >= excess)
        .map(|(at, _)| (*at + WINDOW).max(now))
        .unwrap_or(now + WINDOW)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 4, h, m, 0).unwrap()
    }

    #[test]
    fn plain_limit_info_parses() {
        assert_eq!(
            parse_limit_info("api-usage=18/15000"),
            Some(LimitInfo {
                used: 18,
                total: 15000
            })
        );
    }

    #[test]
    fn limit_info_with_extra_segments_and_spaces_parses() {
        let v =
            "per-app-api-usage=17/250(appName=sample-app); api-usage = 25/100000 ;api-bursts=1/2";
        assert_eq!(
            parse_limit_info(v),
            Some(LimitInfo {
                used: 25,
                total: 100000
            })
        );
        assert_eq!(
            parse_limit_info("api-usage=5/10(x)"),
            Some(LimitInfo { used: 5, total: 10 })
        );
    }

    #[test]
    fn garbage_limit_info_is_ignored() {
        assert_eq!(parse_limit_info(""), None);
        assert_eq!(parse_limit_info("api-usage=lots"), None);
        assert_eq!(parse_limit_info("per-app-api-usage=1/2(appName=a)"), None);
    }

    #[test]
    fn calls_stop_before_the_reserve_is_touched() {
        let alloc = DailyAllocation::new(10, Duration::from_secs(300));
        alloc.observe(
            LimitInfo {
                used: 88,
                total: 100,
            },
            t(9, 0),
        );
        assert!(alloc.before_call(t(9, 0)).is_ok()); // 89 + 10 <= 100
        assert!(alloc.before_call(t(9, 0)).is_ok()); // 90 + 10 <= 100
        let err = alloc.before_call(t(9, 0)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::QuotaExhausted);
        let resume = err.resume_at.unwrap();
        assert_eq!(resume, t(9, 0) + WINDOW);
        assert!(err.message.contains("daily_reserve"));
    }

    #[test]
    fn a_probe_call_is_let_through_after_the_probe_interval() {
        let alloc = DailyAllocation::new(0, Duration::from_secs(300));
        alloc.observe(
            LimitInfo {
                used: 100,
                total: 100,
            },
            t(9, 0),
        );
        assert!(alloc.before_call(t(9, 1)).is_err());
        assert!(alloc.before_call(t(9, 6)).is_ok());
        assert!(alloc.before_call(t(9, 6)).is_err());
    }

    #[test]
    fn resume_estimate_uses_the_oldest_sample_that_frees_enough_calls() {
        let mut samples = VecDeque::new();
        samples.push_back((t(1, 0), 40));
        samples.push_back((t(5, 0), 70));
        samples.push_back((t(9, 0), 100));
        // Need 1 call (+ reserve 0) to fit: 40 calls made by 01:00 leave by 01:00 next day.
        assert_eq!(
            resume_estimate(&samples, 100, 100, 0, t(9, 0)),
            t(1, 0) + WINDOW
        );
        // With a reserve of 50 we need 51 calls gone: the 05:00 sample (70) is the first.
        assert_eq!(
            resume_estimate(&samples, 100, 100, 50, t(9, 0)),
            t(5, 0) + WINDOW
        );
        // No samples: a full window from now.
        assert_eq!(
            resume_estimate(&VecDeque::new(), 100, 100, 0, t(9, 0)),
            t(9, 0) + WINDOW
        );
    }

    #[test]
    fn a_limit_header_at_u64_max_does_not_overflow() {
        let info = parse_limit_info("api-usage=18446744073709551615/18446744073709551615")
            .unwrap_or_else(|| panic!("parses"));
        assert_eq!(info.used, u64::MAX);
        let mut samples = VecDeque::new();
        samples.push_back((t(1, 0), 40));
        // Nothing frees enough: a full window from now, no panic.
        assert_eq!(
            resume_estimate(&samples, u64::MAX, 100, u64::MAX, t(9, 0)),
            t(9, 0) + WINDOW
        );
        assert!(parse_limit_info("api-usage=18446744073709551616/1").is_none());
    }

    #[test]
    fn frequent_observations_still_leave_a_sample_a_minute() {
        let alloc = DailyAllocation::new(0, Duration::from_secs(300));
        for second in 0..600 {
            let at = t(9, 0) + chrono::Duration::seconds(second);
            alloc.observe(
                LimitInfo {
                    used: second as u64,
                    total: 1000,
                },
                at,
            );
        }
        let samples = alloc.state.lock().samples.clone();
        assert!(
            (9..=12).contains(&samples.len()),
            "{} samples",
            samples.len()
        );
        assert_eq!(samples[0], (t(9, 0), 0));
    }

    #[test]
    fn a_limit_exceeded_answer_reports_when_to_resume() {
        let alloc = DailyAllocation::new(0, Duration::from_secs(300));
        alloc.observe(
            LimitInfo {
                used: 99,
                total: 100,
            },
            t(8, 0),
        );
        let err = alloc.exhausted(t(9, 0), "TotalRequests Limit exceeded.");
        assert_eq!(err.kind, ErrorKind::QuotaExhausted);
        assert_eq!(err.resume_at, Some(t(8, 0) + WINDOW));
        assert_eq!(alloc.usage().throttled, 1);
        assert!(alloc.before_call(t(9, 1)).is_err());
    }
}
