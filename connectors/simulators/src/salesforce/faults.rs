//! Scripted faults: platform errors, slow answers, dropped connections, row locks,
//! session expiry, allocation exhaustion, late-visible commits and outbound-message
//! misbehaviour. Set with `SalesforceSim::set_faults` or `POST /__sim/faults`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// What should go wrong. Every field defaults to "nothing"; a new script replaces the
/// previous one (counters restart).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultScript {
    /// Only requests whose path contains this apply the request faults below.
    pub path_contains: Option<String>,
    /// The next N matching requests answer a platform error.
    pub server_errors_next: u32,
    /// Fraction of matching requests answering a platform error.
    pub server_error_rate: f64,
    /// 503 (`SERVER_UNAVAILABLE`, the default) or 500 (`UNKNOWN_EXCEPTION`).
    pub server_error_status: Option<u16>,
    /// The next N matching requests are delayed by `slow_ms`.
    pub slow_next: u32,
    /// Every matching request is delayed by `slow_ms`.
    pub slow_all: bool,
    pub slow_ms: u64,
    /// The next N matching requests get their connection dropped without an answer.
    pub resets_next: u32,
    /// Fraction of matching requests whose connection is dropped before they run.
    pub reset_rate: f64,
    /// Fraction of matching requests that run, then lose their answer (the connection
    /// drops after the work is done): the client cannot tell from a reset.
    pub lost_answer_rate: f64,
    /// Fraction of matching requests delayed by `slow_ms`.
    pub slow_rate: f64,
    /// Fraction of matching requests refused with 403 `REQUEST_LIMIT_EXCEEDED`
    /// ("ConcurrentRequests"), as an org at its concurrent long-running limit answers.
    pub concurrency_limit_rate: f64,
    /// Fraction of record writes failing with `UNABLE_TO_LOCK_ROW`.
    pub lock_row_rate: f64,
    /// The next N record writes fail with `UNABLE_TO_LOCK_ROW`.
    pub lock_row_next: u32,
    /// Kill every session now (one-shot, applied when the script is set).
    pub expire_sessions: bool,
    /// The daily allocation runs out after this many more counted calls.
    pub exhaust_after_calls: Option<u64>,
    /// Writes are stamped when made but visible to queries only this much later.
    pub late_commit_ms: u64,
    /// Fraction of outbound notifications delivered twice.
    pub outbound_duplicate_rate: f64,
    /// Deliver outbound envelopes newest first.
    pub outbound_reverse_order: bool,
    /// Query pages hold at most this many records, whatever batchSize asked for
    /// (real orgs shorten pages for wide rows).
    pub short_pages: Option<usize>,
    /// Forget every open query locator now (one-shot): the next `nextRecordsUrl`
    /// answers `INVALID_QUERY_LOCATOR`.
    pub expire_query_locators: bool,
    /// Seed for the fractions above (same script, same faults).
    pub seed: u64,
}

/// Platform error a request should answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerError {
    Unavailable,
    Unknown,
}

/// What the request fault check decided.
#[derive(Debug, Default)]
pub(crate) struct RequestFaults {
    pub(crate) reset: bool,
    /// Run the request, then drop the connection instead of answering.
    pub(crate) lose_answer: bool,
    /// Refuse with 403 REQUEST_LIMIT_EXCEEDED (ConcurrentRequests).
    pub(crate) concurrency_limit: bool,
    pub(crate) delay_ms: u64,
    pub(crate) server_error: Option<ServerError>,
}

/// The live script with its counters and random source.
#[derive(Debug)]
pub(crate) struct FaultState {
    pub(crate) script: FaultScript,
    rng: StdRng,
    pub(crate) injected: u64,
}

impl Default for FaultState {
    fn default() -> Self {
        Self::new(FaultScript::default())
    }
}

impl FaultState {
    pub(crate) fn new(script: FaultScript) -> Self {
        let rng = StdRng::seed_from_u64(script.seed);
        Self {
            script,
            rng,
            injected: 0,
        }
    }

    /// Decides the request-level faults for a request to `path`.
    pub(crate) fn on_request(&mut self, path: &str) -> RequestFaults {
        let mut out = RequestFaults::default();
        if let Some(filter) = &self.script.path_contains
            && !path.contains(filter.as_str())
        {
            return out;
        }
        if self.script.resets_next > 0 {
            self.script.resets_next -= 1;
            self.injected += 1;
            out.reset = true;
            return out;
        }
        if self.chance(self.script.reset_rate) {
            self.injected += 1;
            out.reset = true;
            return out;
        }
        if self.chance(self.script.concurrency_limit_rate) {
            self.injected += 1;
            out.concurrency_limit = true;
            return out;
        }
        if self.script.slow_all || self.script.slow_next > 0 {
            self.script.slow_next = self.script.slow_next.saturating_sub(1);
            out.delay_ms = self.script.slow_ms;
        } else if self.chance(self.script.slow_rate) {
            out.delay_ms = self.script.slow_ms;
        }
        if self.chance(self.script.lost_answer_rate) {
            self.injected += 1;
            out.lose_answer = true;
        }
        let fail = if self.script.server_errors_next > 0 {
            self.script.server_errors_next -= 1;
            true
        } else {
            self.script.server_error_rate > 0.0
                && self
                    .rng
                    .random_bool(self.script.server_error_rate.clamp(0.0, 1.0))
        };
        if fail {
            self.injected += 1;
            out.server_error = Some(match self.script.server_error_status {
                Some(500) => ServerError::Unknown,
                _ => ServerError::Unavailable,
            });
        }
        out
    }

    /// A draw with probability `p` (none at all when `p` is 0, so scripts without
    /// rates keep their sequence).
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    /// Whether the next record write hits a row lock.
    pub(crate) fn lock_row(&mut self) -> bool {
        if self.script.lock_row_next > 0 {
            self.script.lock_row_next -= 1;
            self.injected += 1;
            return true;
        }
        let hit = self.script.lock_row_rate > 0.0
            && self
                .rng
                .random_bool(self.script.lock_row_rate.clamp(0.0, 1.0));
        if hit {
            self.injected += 1;
        }
        hit
    }

    /// Whether one outbound notification is sent twice.
    pub(crate) fn duplicate_notification(&mut self) -> bool {
        self.script.outbound_duplicate_rate > 0.0
            && self
                .rng
                .random_bool(self.script.outbound_duplicate_rate.clamp(0.0, 1.0))
    }
}
