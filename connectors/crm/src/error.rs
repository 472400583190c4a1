//! `CrmError`: what can go wrong with a whole CRM call, and what to do about it.
//!
//! Per-record failures are not errors: they are [`crate::WriteOutcome::Rejected`]
//! values. A `CrmError` means the call as a whole failed. [`ErrorKind::recovery`] is the
//! one place that maps a failure to retry, stop, or "needs an operator".

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// What the caller should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recovery {
    /// Try again after a backoff (honouring `retry_after`).
    Retry,
    /// Re-read and re-plan: the world changed under us.
    Replan,
    /// Nothing to do for this record: it is gone or read-only.
    Drop,
    /// Stop this run cleanly; it can resume later (daily allocation exhausted).
    Pause,
    /// A person must act (credentials, permissions, configuration, a client bug).
    Operator,
}

/// The class of a failed CRM call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Short-window rate limit (HubSpot 429 TEN_SECONDLY_ROLLING / SECONDLY).
    RateLimited,
    /// Daily / rolling-24h allocation used up, or our configured reserve reached
    /// (HubSpot 429 DAILY, Salesforce 403 REQUEST_LIMIT_EXCEEDED TotalRequests).
    QuotaExhausted,
    /// Too many concurrent long-running requests (Salesforce ConcurrentRequests).
    Concurrency,
    /// Credentials rejected even after a re-auth (401, `invalid_grant`).
    Auth,
    /// Authenticated but not allowed (403 MISSING_SCOPES, INSUFFICIENT_ACCESS).
    Forbidden,
    /// 5xx, 423 lock, 477 migration: the CRM is having trouble; retry with backoff.
    Unavailable,
    /// No answer in time, or the connection dropped: the call may or may not have
    /// happened.
    Timeout,
    /// Connection refused / reset before a response.
    Network,
    /// The CRM refused the request as malformed (400): a bug or bad config.
    BadRequest,
    /// The thing addressed does not exist (404 on a whole call).
    NotFound,
    /// The CRM answered something we cannot parse.
    Protocol,
    /// The circuit breaker is open after repeated failures.
    CircuitOpen,
    /// This CRM (or this connector) has no such operation, e.g. a bulk write path on
    /// HubSpot: a caller bug or a configuration mismatch, never worth retrying.
    Unsupported,
}

impl ErrorKind {
    pub fn recovery(self) -> Recovery {
        match self {
            ErrorKind::RateLimited
            | ErrorKind::Concurrency
            | ErrorKind::Unavailable
            | ErrorKind::Timeout
            | ErrorKind::Network => Recovery::Retry,
            ErrorKind::QuotaExhausted | ErrorKind::CircuitOpen => Recovery::Pause,
            ErrorKind::NotFound => Recovery::Drop,
            ErrorKind::Auth
            | ErrorKind::Forbidden
            | ErrorKind::BadRequest
            | ErrorKind::Protocol
            | ErrorKind::Unsupported => Recovery::Operator,
        }
    }

    /// A write that failed this way may still have been applied by the CRM, so the
    /// caller must re-read before retrying it.
    pub fn is_outcome_unknown(self) -> bool {
        matches!(
            self,
            ErrorKind::Timeout | ErrorKind::Network | ErrorKind::Unavailable
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::QuotaExhausted => "quota_exhausted",
            ErrorKind::Concurrency => "concurrency",
            ErrorKind::Auth => "auth",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Network => "network",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Protocol => "protocol",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed CRM call.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct CrmError {
    pub kind: ErrorKind,
    /// What the CRM said (or what went wrong), without secrets or record bodies.
    pub message: String,
    /// How long the CRM asked us to wait (Retry-After), or how long the window has left.
    pub retry_after: Option<Duration>,
    /// For [`ErrorKind::QuotaExhausted`]: when the run can resume.
    pub resume_at: Option<DateTime<Utc>>,
    /// HTTP status, where there was one.
    pub status: Option<u16>,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl CrmError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CrmError {
            kind,
            message: message.into(),
            retry_after: None,
            resume_at: None,
            status: None,
            source: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    pub fn with_resume_at(mut self, at: DateTime<Utc>) -> Self {
        self.resume_at = Some(at);
        self
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn is_retryable(&self) -> bool {
        self.kind.recovery() == Recovery::Retry
    }

    pub fn recovery(&self) -> Recovery {
        self.kind.recovery()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_responses_are_outcome_unknown_but_rejections_are_not() {
        assert!(ErrorKind::Timeout.is_outcome_unknown());
        assert!(ErrorKind::Network.is_outcome_unknown());
        assert!(!ErrorKind::BadRequest.is_outcome_unknown());
        assert!(!ErrorKind::RateLimited.is_outcome_unknown());
    }

    #[test]
    fn exhausted_quota_pauses_instead_of_retrying() {
        let err = CrmError::new(ErrorKind::QuotaExhausted, "TotalRequests Limit exceeded.");
        assert!(!err.is_retryable());
        assert_eq!(err.recovery(), Recovery::Pause);
    }
}
