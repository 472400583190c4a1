//! What a writer run did: outcome counts, API cost, the residual race window, and
//! why it stopped early if it did.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use leadroute_crm::{ApiUsage, ObjectKind, OwnerId, RecordId};

/// Why a run stopped before finishing. Every stop leaves a consistent journal; the
/// run resumes with the same run id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The daily allocation (minus the reserve) is used up.
    QuotaExhausted,
    /// The CRM kept failing; the circuit breaker tripped repeatedly.
    CircuitOpen,
    /// Ctrl-C / shutdown: the in-flight batch finished first.
    Cancelled,
    /// The CRM refused the calls in a way a person must fix (credentials, permissions,
    /// a malformed request).
    Operator,
    /// Whole calls kept failing past the retry budget.
    RetriesExhausted,
    /// The writer's fence (an org lease) is no longer current: another process leads
    /// the org now, and this one makes no further CRM write.
    Fenced,
}

impl StopReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            StopReason::QuotaExhausted => "quota_exhausted",
            StopReason::CircuitOpen => "circuit_open",
            StopReason::Cancelled => "cancelled",
            StopReason::Operator => "operator",
            StopReason::RetriesExhausted => "retries_exhausted",
            StopReason::Fenced => "fenced",
        }
    }
}

/// An early stop with what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub reason: StopReason,
    pub message: String,
    /// When resuming makes sense (quota reset, breaker cool-down).
    pub resume_at: Option<DateTime<Utc>>,
}

/// A change to re-evaluate: the world moved under the plan, or the CRM refused the
/// new owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replan {
    pub object: ObjectKind,
    pub id: RecordId,
    pub planned_from: Option<OwnerId>,
    pub planned_to: OwnerId,
    /// What the CRM held when we looked (skipped_changed).
    pub observed: Option<OwnerId>,
    pub why: String,
}

/// Min / median / p99 / max of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowStats {
    pub samples: usize,
    pub min: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl WindowStats {
    pub fn from_samples(samples: &[Duration]) -> Option<WindowStats> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        Some(WindowStats {
            samples: sorted.len(),
            min: sorted[0],
            p50: at(0.5),
            p99: at(0.99),
            max: sorted[sorted.len() - 1],
        })
    }
}

impl fmt::Display for WindowStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "min {:.1} ms, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} batches",
            self.min.as_secs_f64() * 1e3,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3,
            self.samples
        )
    }
}

/// The result of [`super::Writer::apply`].
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyReport {
    pub run_id: String,
    /// Changes in the run (all sessions).
    pub total: u64,
    pub applied: u64,
    pub unchanged: u64,
    pub skipped_changed: u64,
    pub rejected: u64,
    pub failed: u64,
    /// Not finished (the run stopped early): resume with the same run id.
    pub pending: u64,
    /// Exceptions queued in this session.
    pub exceptions: u64,
    /// Records to re-plan (this session).
    pub replan: Vec<Replan>,
    /// API calls this session: owner writes and compare reads. A bulk job counts as
    /// one write call here (it is several HTTP calls: see `usage`).
    pub write_calls: u64,
    pub read_calls: u64,
    /// Whole-call failures (all causes) and the retries they caused.
    pub call_failures: u64,
    pub retries: u64,
    /// Records carried by write calls (a record resent after a retryable rejection
    /// counts again).
    pub records_sent: u64,
    /// Of `write_calls`, the bulk jobs (Salesforce Bulk API 2.0).
    pub bulk_jobs: u64,
    /// Time between the compare read and the write call, per batch. On HubSpot, which
    /// has no conditional writes, a human edit landing inside this window can still
    /// be overwritten; this is the residual race.
    pub race_window: Option<WindowStats>,
    /// Whether writes were conditional (Salesforce strict mode).
    pub conditional_writes: bool,
    pub usage: ApiUsage,
    pub elapsed: Duration,
    pub stopped: Option<Stop>,
}

impl ApplyReport {
    pub fn is_complete(&self) -> bool {
        self.stopped.is_none() && self.pending == 0
    }
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "run {}: {} changes: {} applied, {} unchanged, {} skipped (owner changed since plan), \
             {} rejected, {} failed, {} pending",
            self.run_id,
            self.total,
            self.applied,
            self.unchanged,
            self.skipped_changed,
            self.rejected,
            self.failed,
            self.pending
        )?;
        writeln!(
            f,
            "api: {} write calls, {} compare reads, {} failed calls, {} retries, {:.1} s",
            self.write_calls,
            self.read_calls,
            self.call_failures,
            self.retries,
            self.elapsed.as_secs_f64()
        )?;
        if self.bulk_jobs > 0 {
            writeln!(
                f,
                "bulk: {} of the write calls were bulk jobs",
                self.bulk_jobs
            )?;
        }
        if let Some(window) = &self.race_window {
            let label = if self.conditional_writes {
                "read-to-write window (writes conditional)"
            } else {
                "residual race window (read to write)"
            };
            writeln!(f, "{label}: {window}")?;
        }
        if self.exceptions > 0 {
            writeln!(
                f,
                "{} exceptions queued: see `leadroute exceptions list`",
                self.exceptions
            )?;
        }
        if !self.replan.is_empty() {
            writeln!(f, "{} records need a re-plan", self.replan.len())?;
        }
        if let Some(stop) = &self.stopped {
            write!(f, "stopped ({}): {}", stop.reason.as_str(), stop.message)?;
            if let Some(at) = stop.resume_at {
                write!(f, "; resume after {}", at.format("%Y-%m-%d %H:%M:%S UTC"))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_stats_pick_min_median_and_p99() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let stats = WindowStats::from_samples(&samples).unwrap();
        assert_eq!(stats.min, Duration::from_millis(1));
        assert_eq!(stats.p50, Duration::from_millis(51));
        assert_eq!(stats.p99, Duration::from_millis(99));
        assert_eq!(stats.max, Duration::from_millis(100));
        assert!(WindowStats::from_samples(&[]).is_none());
    }
}
