//! The HTTP client: authentication (static token or OAuth refresh), rate limiting, retries
//! and the mapping of HubSpot's whole-call failures to [`CrmError`].
//!
//! Every CRM call goes through [`Client::call`]: wait for the limiter, attach a bearer
//! token, send with the configured timeout, learn from the rate headers, and retry
//! (with `backon`) on 429, 423, 477, 5xx, timeouts and connection errors. A 401 forces
//! one token refresh (OAuth only) and one resend; a second 401 is `ErrorKind::Auth`.
//! Other statuses (400, 404, 409…) come back as [`Response`]s so the caller can read
//! per-record detail (batch update's validation 400) before deciding.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use leadroute_crm::{CrmError, ErrorKind};
use reqwest::header::{AUTHORIZATION, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::limits::{Limits, RateHeaders, WINDOW};
use crate::wire::{ErrorBody, TokenResponse};

/// How the connector authenticates (see [`crate::HubSpotAuth`]).
pub(crate) enum Auth {
    Static(SecretString),
    OAuth(OAuth),
}

/// OAuth refresh-token state. Refreshes are single-flight: the access token lives behind
/// an async mutex held for the duration of a refresh, so concurrent callers wait for
/// the one refresh instead of each starting their own.
pub(crate) struct OAuth {
    pub client_id: String,
    pub client_secret: SecretString,
    /// HubSpot may rotate the refresh token in a refresh answer; we keep the newest.
    refresh_token: parking_lot::Mutex<SecretString>,
    access: tokio::sync::Mutex<Option<AccessToken>>,
    generation: AtomicU64,
    refreshes: AtomicU64,
}

struct AccessToken {
    token: SecretString,
    refresh_at: Instant,
    generation: u64,
}

impl OAuth {
    pub(crate) fn new(
        client_id: String,
        client_secret: SecretString,
        refresh_token: SecretString,
    ) -> OAuth {
        OAuth {
            client_id,
            client_secret,
            refresh_token: parking_lot::Mutex::new(refresh_token),
            access: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
        }
    }
}

/// Refresh this long before `expires_in` runs out: a tenth of the lifetime, at least a
/// minute, at most half (so very short test lifetimes still refresh ahead).
pub(crate) fn refresh_margin(expires_in: Duration) -> Duration {
    (expires_in / 10)
        .max(Duration::from_secs(60))
        .min(expires_in / 2)
}

/// One CRM request.
#[derive(Debug, Clone)]
pub(crate) struct Request<'a> {
    pub method: Method,
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<&'a Value>,
    /// Search endpoints use their own limiter and carry no rate headers.
    pub search: bool,
}

impl<'a> Request<'a> {
    pub(crate) fn get(path: impl Into<String>, query: Vec<(&'static str, String)>) -> Self {
        Request {
            method: Method::GET,
            path: path.into(),
            query,
            body: None,
            search: false,
        }
    }

    pub(crate) fn post(path: impl Into<String>, body: &'a Value) -> Self {
        let path = path.into();
        Request {
            search: path.ends_with("/search"),
            method: Method::POST,
            path,
            query: Vec::new(),
            body: Some(body),
        }
    }
}

/// A response that was not retried away: 2xx, or a 4xx the caller may want to inspect.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Response {
    pub(crate) fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, CrmError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            CrmError::new(
                ErrorKind::Protocol,
                format!(
                    "hubspot: {what} answered {} with a body that is not the expected JSON",
                    self.status.as_u16()
                ),
            )
            .with_status(self.status.as_u16())
            .with_source(e)
        })
    }

    /// Turns a non-2xx (non-207) answer into the matching [`CrmError`].
    pub(crate) fn success(self, what: &str) -> Result<Response, CrmError> {
        if self.status.is_success() {
            return Ok(self);
        }
        let body = ErrorBody::parse(&self.body);
        let status = self.status.as_u16();
        let kind = match status {
            400 | 405 | 409 | 413 | 414 | 415 | 422 => ErrorKind::BadRequest,
            401 => ErrorKind::Auth,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            _ => ErrorKind::Protocol,
        };
        Err(CrmError::new(kind, describe(what, status, &body)).with_status(status))
    }
}

/// A message naming the call, the status and HubSpot's category/message, never a body.
fn describe(what: &str, status: u16, body: &ErrorBody) -> String {
    let mut text = format!("hubspot: {what} failed with HTTP {status}");
    if let Some(category) = &body.category {
        text.push_str(&format!(" {category}"));
    }
    if let Some(message) = &body.message {
        // Messages can quote property values; keep them short.
        let short: String = message.chars().take(300).collect();
        text.push_str(&format!(": {short}"));
    }
    if let Some(id) = &body.correlation_id {
        text.push_str(&format!(" (correlation id {id})"));
    }
    text
}

/// The HTTP client of one connector instance.
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    auth: Auth,
    pub(crate) limits: Arc<Limits>,
    max_retries: usize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print credentials, even redacted ones we cannot vouch for.
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn new(
        base_url: &str,
        auth: Auth,
        limits: Arc<Limits>,
        timeout: Duration,
        max_retries: usize,
    ) -> Result<Client, CrmError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("leadroute/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                CrmError::new(ErrorKind::Protocol, "hubspot: cannot build the HTTP client")
                    .with_source(e)
            })?;
        Ok(Client {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            auth,
            limits,
            max_retries,
        })
    }

    /// How many OAuth refreshes this client made (tests and diagnostics).
    pub(crate) fn refreshes(&self) -> u64 {
        match &self.auth {
            Auth::Static(_) => 0,
            Auth::OAuth(o) => o.refreshes.load(Ordering::Relaxed),
        }
    }

    /// Sends `req` with limiter, auth and retries; `calls` counts every HTTP request made.
    pub(crate) async fn call(
        &self,
        req: &Request<'_>,
        calls: &AtomicU32,
    ) -> Result<Response, CrmError> {
        // Shared across retries: one forced refresh per logical call, never a loop.
        let refreshed = AtomicBool::new(false);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(self.max_retries)
            .with_jitter();
        let retries = AtomicU32::new(0);
        let tries = self.max_retries.saturating_add(1);
        (|| self.attempt(req, calls, &refreshed))
            .retry(backoff)
            .when(|e: &CrmError| {
                // Nothing listens at the URL: retrying only makes the user wait.
                e.is_retryable()
                    && !connect_failed(e)
                    && !(e.message.contains(HTML_PAGE)
                        && retries.load(Ordering::Relaxed) >= HTML_RETRIES)
            })
            .adjust(|e: &CrmError, planned: Option<Duration>| {
                // `None` means the retry budget is spent: keep it that way.
                planned.map(|d| e.retry_after.unwrap_or(d))
            })
            .notify(|e: &CrmError, after: Duration| {
                self.limits.record_retry();
                let attempt = retries.fetch_add(1, Ordering::Relaxed).saturating_add(2);
                // HTML error pages get fewer tries than other server errors.
                let tries = if e.message.contains(HTML_PAGE) {
                    tries.min(HTML_RETRIES as usize + 1)
                } else {
                    tries
                };
                let reason = e
                    .status
                    .map_or_else(|| e.kind.to_string(), |s| s.to_string());
                // Announced at the default log level: a wait is never silent.
                tracing::warn!(
                    "retrying {} {} in {:.1} s ({reason}, attempt {attempt} of {tries})",
                    req.method,
                    req.path,
                    after.as_secs_f64()
                );
            })
            .await
    }

    async fn attempt(
        &self,
        req: &Request<'_>,
        calls: &AtomicU32,
        refreshed: &AtomicBool,
    ) -> Result<Response, CrmError> {
        loop {
            self.limits.acquire(req.search).await?;
            let (token, generation) = self.bearer().await?;
            let mut builder = self
                .http
                .request(req.method.clone(), format!("{}{}", self.base, req.path))
                .header(AUTHORIZATION, format!("Bearer {}", token.expose_secret()));
            if !req.query.is_empty() {
                builder = builder.query(&req.query);
            }
            if let Some(body) = req.body {
                builder = builder.json(body);
            }
            calls.fetch_add(1, Ordering::Relaxed);
            let response = builder.send().await.map_err(|e| {
                if e.is_connect() {
                    connect_error(&format!("{}{}", self.base, req.path), e)
                } else {
                    transport_error(&req.path, e)
                }
            })?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|e| transport_error(&req.path, e))?
                .to_vec();
            if !req.search {
                // The daily-reserve stop applies from the next call on; this answer is good.
                if let Some(stop) = self.limits.observe(&RateHeaders::parse(&headers)) {
                    tracing::warn!(error = %stop, "hubspot daily reserve reached");
                }
            }
            if status == StatusCode::UNAUTHORIZED {
                if let Auth::OAuth(oauth) = &self.auth {
                    if !refreshed.swap(true, Ordering::SeqCst) {
                        // A 401 is not proof of expiry, but a fresh token is the only
                        // thing worth trying; after that, an operator must act.
                        self.invalidate(oauth, generation).await;
                        continue;
                    }
                }
                let body = ErrorBody::parse(&body);
                return Err(CrmError::new(
                    ErrorKind::Auth,
                    format!(
                        "{}; check the private-app token or the OAuth app installation",
                        describe(&req.path, 401, &body)
                    ),
                )
                .with_status(401));
            }
            return classify(req, status, &headers, body, &self.limits);
        }
    }

    /// The bearer token to use now, refreshing OAuth tokens ahead of expiry.
    async fn bearer(&self) -> Result<(SecretString, u64), CrmError> {
        match &self.auth {
            Auth::Static(token) => Ok((token.clone(), 0)),
            Auth::OAuth(oauth) => {
                let mut access = oauth.access.lock().await;
                if let Some(current) = access.as_ref() {
                    if Instant::now() < current.refresh_at {
                        return Ok((current.token.clone(), current.generation));
                    }
                }
                let fresh = self.refresh(oauth).await?;
                let out = (fresh.token.clone(), fresh.generation);
                *access = Some(fresh);
                Ok(out)
            }
        }
    }

    /// Drops the access token the failed call used (unless another task already replaced it).
    async fn invalidate(&self, oauth: &OAuth, generation: u64) {
        let mut access = oauth.access.lock().await;
        if access.as_ref().is_some_and(|a| a.generation == generation) {
            *access = None;
        }
    }

    async fn refresh(&self, oauth: &OAuth) -> Result<AccessToken, CrmError> {
        let url = format!("{}/oauth/v1/token", self.base);
        let refresh_token = oauth.refresh_token.lock().clone();
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_times(self.max_retries.min(3));
        let send = || async {
            let form = [
                ("grant_type", "refresh_token"),
                ("client_id", oauth.client_id.as_str()),
                ("client_secret", oauth.client_secret.expose_secret()),
                ("refresh_token", refresh_token.expose_secret()),
            ];
            let response = self
                .http
                .post(&url)
                .form(&form)
                .send()
                .await
                .map_err(|e| transport_error("/oauth/v1/token", e))?;
            let status = response.status();
            let body = response
                .bytes()
                .await
                .map_err(|e| transport_error("/oauth/v1/token", e))?;
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                return Err(CrmError::new(
                    ErrorKind::Unavailable,
                    format!("hubspot: token refresh answered HTTP {}", status.as_u16()),
                )
                .with_status(status.as_u16()));
            }
            if !status.is_success() {
                // invalid_grant and friends: the app was uninstalled or the token revoked.
                return Err(CrmError::new(
                    ErrorKind::Auth,
                    format!(
                        "hubspot: OAuth refresh refused with HTTP {}; reinstall the app or update the refresh token",
                        status.as_u16()
                    ),
                )
                .with_status(status.as_u16()));
            }
            serde_json::from_slice::<TokenResponse>(&body).map_err(|e| {
                CrmError::new(
                    ErrorKind::Protocol,
                    "hubspot: token refresh answer is not JSON",
                )
                .with_source(e)
            })
        };
        let token = send
            .retry(backoff)
            .when(|e: &CrmError| e.is_retryable())
            .await?;
        let access = token
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                CrmError::new(
                    ErrorKind::Protocol,
                    "hubspot: token refresh answer lacks access_token",
                )
            })?;
        if let Some(rotated) = token.refresh_token.filter(|t| !t.is_empty()) {
            *oauth.refresh_token.lock() = SecretString::from(rotated);
        }
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(1800).max(1) as u64);
        oauth.refreshes.fetch_add(1, Ordering::Relaxed);
        let generation = oauth.generation.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::debug!(
            expires_in_secs = lifetime.as_secs(),
            "hubspot access token refreshed"
        );
        Ok(AccessToken {
            token: SecretString::from(access),
            refresh_at: Instant::now() + lifetime - refresh_margin(lifetime),
            generation,
        })
    }
}

/// Marks a 5xx answered with an HTML page (a proxy or gateway error page).
const HTML_PAGE: &str = "the CRM answered an HTML page, not JSON";
/// HTML error pages are retried at most this many times: a gateway that serves them is
/// rarely back within seconds.
const HTML_RETRIES: u32 = 2;

/// Whether `e` is a failure to connect (refused, DNS, TLS): nothing was sent.
fn connect_failed(e: &CrmError) -> bool {
    e.source
        .as_deref()
        .and_then(|s| s.downcast_ref::<reqwest::Error>())
        .is_some_and(reqwest::Error::is_connect)
}

/// Connection refused, unknown host, TLS failure: names the URL and what to check.
fn connect_error(url: &str, e: reqwest::Error) -> CrmError {
    let mut cause: &dyn std::error::Error = &e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let why = cause.to_string();
    CrmError::new(
        ErrorKind::Network,
        format!(
            "hubspot: cannot connect to {url}: {why}; check crm.base_url and that HubSpot (or `leadroute sim hubspot`) is running and reachable"
        ),
    )
    .with_source(e)
}

fn transport_error(path: &str, e: reqwest::Error) -> CrmError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connect() {
        ErrorKind::Network
    } else if e.is_decode() {
        ErrorKind::Protocol
    } else {
        // Resets mid-body and other I/O failures: the call may or may not have happened.
        ErrorKind::Network
    };
    CrmError::new(kind, format!("hubspot: {path}: {kind} talking to HubSpot")).with_source(e)
}

/// The longest `Retry-After` honoured: a larger (or absurd) value is clamped to it.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        // `from_secs_f64` panics above u64::MAX seconds: an outside number.
        .map(|s| Duration::try_from_secs_f64(s).map_or(MAX_RETRY_AFTER, |d| d.min(MAX_RETRY_AFTER)))
}

/// Maps a status to retry/stop/return.
fn classify(
    req: &Request<'_>,
    status: StatusCode,
    headers: &HeaderMap,
    body: Vec<u8>,
    limits: &Limits,
) -> Result<Response, CrmError> {
    let code = status.as_u16();
    match code {
        429 => {
            limits.record_throttled();
            let error = ErrorBody::parse(&body);
            let policy = error
                .policy_name
                .clone()
                .unwrap_or_default()
                .to_ascii_uppercase();
            let message = error
                .message
                .clone()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if policy == "DAILY" || message.contains("daily limit") {
                let until = limits.stop_for_the_day();
                return Err(CrmError::new(
                    ErrorKind::QuotaExhausted,
                    format!("hubspot: daily API limit reached; resuming after {until}"),
                )
                .with_status(429)
                .with_resume_at(until));
            }
            let secondly = req.search || policy == "SECONDLY" || message.contains("secondly limit");
            let wait = retry_after(headers).unwrap_or(if secondly {
                Duration::from_secs(1)
            } else {
                RateHeaders::parse(headers).interval.unwrap_or(WINDOW)
            });
            if !secondly {
                // The whole app is over its window: hold every task, not just this one.
                limits.pause_for(wait);
            }
            Err(CrmError::new(
                ErrorKind::RateLimited,
                format!(
                    "hubspot: {} rate limited ({})",
                    req.path,
                    if policy.is_empty() {
                        "no policy named"
                    } else {
                        policy.as_str()
                    }
                ),
            )
            .with_status(429)
            .with_retry_after(wait))
        }
        423 => Err(CrmError::new(
            ErrorKind::Unavailable,
            format!("hubspot: {} hit a record lock", req.path),
        )
        .with_status(423)
        .with_retry_after(retry_after(headers).unwrap_or(Duration::from_secs(2)))),
        477 | 500..=599 => {
            let html = headers
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("html"))
                || body.trim_ascii_start().starts_with(b"<");
            let message = if html {
                format!(
                    "hubspot: {} answered HTTP {code}: {HTML_PAGE} (a proxy or gateway error page?); check crm.base_url and HubSpot's status",
                    req.path
                )
            } else {
                format!("hubspot: {} answered HTTP {code}", req.path)
            };
            let mut err = CrmError::new(ErrorKind::Unavailable, message).with_status(code);
            if let Some(wait) = retry_after(headers) {
                err = err.with_retry_after(wait);
            }
            Err(err)
        }
        _ => Ok(Response { status, body }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_refresh_ahead_of_expiry_by_a_tenth_but_at_least_a_minute() {
        assert_eq!(
            refresh_margin(Duration::from_secs(1800)),
            Duration::from_secs(180)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(300)),
            Duration::from_secs(60)
        );
        // Very short lifetimes (tests) still leave half the lifetime usable.
        assert_eq!(
            refresh_margin(Duration::from_secs(4)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn retry_after_accepts_seconds_and_ignores_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn an_absurd_retry_after_is_clamped_not_a_panic() {
        let mut h = HeaderMap::new();
        for huge in ["1e300", "18446744073709551616", "99999999999999999999.5"] {
            h.insert(RETRY_AFTER, huge.parse().unwrap());
            assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER), "{huge}");
        }
        for bad in ["-1", "NaN", "inf"] {
            h.insert(RETRY_AFTER, bad.parse().unwrap());
            assert_eq!(retry_after(&h), None, "{bad}");
        }
    }

    #[test]
    fn a_ten_secondly_429_waits_out_the_window_and_a_daily_one_stops() {
        let limits = Limits::new(
            crate::HubSpotTier::Professional,
            5,
            0,
            chrono::FixedOffset::east_opt(0).unwrap(),
        );
        let req = Request::get("/crm/v3/objects/contacts", vec![]);
        let burst = br#"{"status":"error","policyName":"TEN_SECONDLY_ROLLING"}"#.to_vec();
        let err = classify(
            &req,
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            burst,
            &limits,
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::RateLimited);
        assert_eq!(err.retry_after, Some(Duration::from_secs(10)));

        let daily = br#"{"status":"error","policyName":"DAILY"}"#.to_vec();
        let err = classify(
            &req,
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            daily,
            &limits,
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::QuotaExhausted);
        assert!(!err.is_retryable());
        assert!(err.resume_at.is_some());
        assert_eq!(limits.usage().throttled, 2);
    }

    #[test]
    fn a_search_429_waits_about_a_second() {
        let limits = Limits::new(
            crate::HubSpotTier::Professional,
            5,
            0,
            chrono::FixedOffset::east_opt(0).unwrap(),
        );
        let body = Value::Null;
        let req = Request::post("/crm/v3/objects/contacts/search", &body);
        let msg = br#"{"message":"You have reached your secondly limit."}"#.to_vec();
        let err = classify(
            &req,
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            msg,
            &limits,
        )
        .unwrap_err();
        assert_eq!(err.retry_after, Some(Duration::from_secs(1)));
    }

    #[test]
    fn client_debug_output_carries_no_token() {
        let limits = Arc::new(Limits::new(
            crate::HubSpotTier::Professional,
            5,
            0,
            chrono::FixedOffset::east_opt(0).unwrap(),
        ));
        let client = Client::new(
            "http://127.0.0.1:1",
            Auth::Static(SecretString::from("pat-na1-supersecret")),
            limits,
            Duration::from_secs(1),
            0,
        )
        .unwrap();
        assert!(!format!("{client:?}").contains("supersecret"));
    }
}
