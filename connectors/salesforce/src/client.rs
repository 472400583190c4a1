//! The HTTP client: sessions, single-flight re-authentication, the in-flight cap, the
//! daily-allocation guard, error classification and whole-call retries.
//!
//! A dead session fails every in-flight call with 401 at once; the first caller to
//! notice re-authenticates while the others wait on the same lock and then reuse the
//! new session (one token request, not one per call). A call that still gets 401 after
//! one re-authentication surfaces [`ErrorKind::Auth`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use leadroute_crm::{CrmError, ErrorKind};
use parking_lot::RwLock;
use reqwest::Method;
use reqwest::header::HeaderMap;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::auth::{Authenticator, Session};
use crate::limits::{DailyAllocation, parse_limit_info};
use crate::wire::parse_rest_errors;

/// A failed call with the Salesforce error code, when there was one.
#[derive(Debug)]
pub(crate) struct SfError {
    pub(crate) error: CrmError,
    pub(crate) code: Option<String>,
    /// A 401 a new session might fix.
    reauth: bool,
}

impl SfError {
    pub(crate) fn new(error: CrmError) -> Self {
        SfError {
            error,
            code: None,
            reauth: false,
        }
    }

    fn retryable(&self) -> bool {
        self.error.is_retryable()
    }
}

impl From<SfError> for CrmError {
    fn from(e: SfError) -> CrmError {
        e.error
    }
}

impl From<CrmError> for SfError {
    fn from(error: CrmError) -> SfError {
        SfError::new(error)
    }
}

/// Where a request goes.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A path under `/services/data/vNN.N` (`/query`, `/composite/sobjects`).
    Api(String),
    /// A server-relative path as Salesforce gave it (`nextRecordsUrl`), followed
    /// verbatim.
    Relative(String),
}

/// A request body.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Empty,
    Json(Vec<u8>),
    Csv(Vec<u8>),
}

/// One API request, replayable for retries and after a re-authentication.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) target: Target,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Body,
    /// Safe to send again after an unknown outcome: reads are. Owner writes are not
    /// (see [`Request::write`]), nor is creating a Bulk job.
    pub(crate) idempotent: bool,
}

impl Request {
    pub(crate) fn get(target: Target) -> Self {
        Request {
            method: Method::GET,
            target,
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::Empty,
            idempotent: true,
        }
    }

    pub(crate) fn json(method: Method, target: Target, body: &impl serde::Serialize) -> Self {
        Request {
            method,
            target,
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::Json(serde_json::to_vec(body).expect("wire types always serialise")),
            idempotent: true,
        }
    }

    pub(crate) fn query(mut self, key: &str, value: impl Into<String>) -> Self {
        self.query.push((key.to_owned(), value.into()));
        self
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Marks a REST record write: it carries `Sforce-Auto-Assign: FALSE`, or the org's
    /// active assignment rule silently overwrites the owner just written. It is also
    /// never resent after an unknown outcome (timeout, reset, 5xx): in between, a
    /// person may have changed the owner, and a blind resend of "owner = X" would
    /// erase that edit. The caller (the writer) re-reads first. Refusals that
    /// certainly did not run (403 ConcurrentRequests, 401 before a re-auth) are still
    /// retried here.
    pub(crate) fn write(self) -> Self {
        self.header("Sforce-Auto-Assign", "FALSE").not_idempotent()
    }

    pub(crate) fn not_idempotent(mut self) -> Self {
        self.idempotent = false;
        self
    }

    fn describe(&self) -> String {
        let path = match &self.target {
            Target::Api(p) => p.as_str(),
            Target::Relative(p) => p.as_str(),
        };
        // Paths never carry record bodies; query strings (SOQL) stay out of messages.
        format!("{} {}", self.method, path.split('?').next().unwrap_or(path))
    }
}

/// A successful response.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, SfError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            SfError::new(
                CrmError::new(
                    ErrorKind::Protocol,
                    format!("salesforce {what}: unreadable response body ({e})"),
                )
                .with_status(self.status)
                .with_source(e),
            )
        })
    }

    /// The server's clock (`Date` header), to take watermarks from the org's clock.
    pub(crate) fn server_date(&self) -> Option<DateTime<Utc>> {
        let value = self.headers.get(reqwest::header::DATE)?.to_str().ok()?;
        DateTime::parse_from_rfc2822(value)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }
}

/// Client tuning, from the settings.
#[derive(Debug, Clone)]
pub(crate) struct ClientConfig {
    pub(crate) api_version: String,
    pub(crate) request_timeout: Duration,
    pub(crate) max_retries: usize,
    pub(crate) retry_base: Duration,
    pub(crate) max_in_flight: usize,
}

struct Current {
    session: Arc<Session>,
    generation: u64,
}

/// The shared Salesforce HTTP client.
pub(crate) struct Client {
    http: reqwest::Client,
    config: ClientConfig,
    auth: Authenticator,
    current: RwLock<Option<Current>>,
    generation: AtomicU64,
    /// Serialises token requests: the single flight.
    auth_lock: tokio::sync::Mutex<()>,
    permits: Semaphore,
    pub(crate) allocation: DailyAllocation,
    token_requests: AtomicU64,
}

impl Client {
    pub(crate) fn new(
        http: reqwest::Client,
        config: ClientConfig,
        auth: Authenticator,
        allocation: DailyAllocation,
    ) -> Self {
        let current = auth.initial_session().map(|session| Current {
            session: Arc::new(session),
            generation: 1,
        });
        Client {
            http,
            permits: Semaphore::new(config.max_in_flight.max(1)),
            config,
            auth,
            generation: AtomicU64::new(if current.is_some() { 1 } else { 0 }),
            current: RwLock::new(current),
            auth_lock: tokio::sync::Mutex::new(()),
            allocation,
            token_requests: AtomicU64::new(0),
        }
    }

    pub(crate) fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    /// Token requests made so far (single-flight evidence for tests and metrics).
    pub(crate) fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::Relaxed)
    }

    /// The instance URL in use, if a session exists.
    pub(crate) fn instance_url(&self) -> Option<String> {
        self.current
            .read()
            .as_ref()
            .map(|c| c.session.instance_url.clone())
    }

    pub(crate) fn session_organization_id(&self) -> Option<String> {
        self.current
            .read()
            .as_ref()
            .and_then(|c| c.session.organization_id.clone())
    }

    /// `/services/data/vNN.N` + `path`, server-relative (composite subrequest URLs).
    pub(crate) fn api_path(&self, path: &str) -> String {
        format!("/services/data/v{}{}", self.config.api_version, path)
    }

    async fn session(&self) -> Result<(Arc<Session>, u64), SfError> {
        if let Some(c) = self.current.read().as_ref() {
            return Ok((c.session.clone(), c.generation));
        }
        self.reauthenticate(0).await?;
        let guard = self.current.read();
        let c = guard
            .as_ref()
            .expect("reauthenticate leaves a session or fails");
        Ok((c.session.clone(), c.generation))
    }

    /// Replaces the session that failed (`failed_generation`), unless another task
    /// already did: concurrent 401s cause one token request.
    async fn reauthenticate(&self, failed_generation: u64) -> Result<(), SfError> {
        let _flight = self.auth_lock.lock().await;
        if self.generation.load(Ordering::Acquire) != failed_generation {
            return Ok(());
        }
        self.token_requests.fetch_add(1, Ordering::Relaxed);
        let session = self.auth.authenticate(self.config.request_timeout).await?;
        let generation = failed_generation.max(self.generation.load(Ordering::Acquire)) + 1;
        *self.current.write() = Some(Current {
            session: Arc::new(session),
            generation,
        });
        self.generation.store(generation, Ordering::Release);
        tracing::debug!(
            generation,
            flow = self.auth.flow_name(),
            "salesforce session renewed"
        );
        Ok(())
    }

    /// Sends a request with whole-call retries (5xx, timeouts, resets, lock
    /// contention, concurrency limit) and one re-authentication on 401.
    pub(crate) async fn send(&self, request: &Request) -> Result<Response, SfError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.retry_base)
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(self.config.max_retries)
            .with_jitter();
        let retries = std::sync::atomic::AtomicU32::new(0);
        let tries = self.config.max_retries.saturating_add(1);
        (|| self.send_authenticated(request))
            .retry(backoff)
            .when(|e: &SfError| {
                e.retryable()
                    && (request.idempotent || !e.error.kind.is_outcome_unknown())
                    // Nothing listens at the URL: retrying only makes the user wait.
                    && !connect_failed(&e.error)
                    && !(e.error.message.contains(HTML_PAGE)
                        && retries.load(std::sync::atomic::Ordering::Relaxed) >= HTML_RETRIES)
            })
            .notify(|e: &SfError, after: Duration| {
                self.allocation.count_retry();
                let attempt = retries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    .saturating_add(2);
                // HTML error pages get fewer tries than other server errors.
                let tries = if e.error.message.contains(HTML_PAGE) {
                    tries.min(HTML_RETRIES as usize + 1)
                } else {
                    tries
                };
                let reason = e
                    .error
                    .status
                    .map_or_else(|| e.error.kind.to_string(), |s| s.to_string());
                // Announced at the default log level: a wait is never silent.
                tracing::warn!(
                    "retrying {} in {:.1} s ({reason}, attempt {attempt} of {tries})",
                    request.describe(),
                    after.as_secs_f64()
                );
            })
            .await
    }

    async fn send_authenticated(&self, request: &Request) -> Result<Response, SfError> {
        let (session, generation) = self.session().await?;
        match self.send_once(request, &session).await {
            Err(e) if e.reauth => {
                self.reauthenticate(generation).await?;
                let (session, _) = self.session().await?;
                self.send_once(request, &session).await.map_err(|mut e| {
                    if e.reauth {
                        e.reauth = false;
                        e.error.message = format!(
                            "{} (still refused after renewing the session; check the integration user and connected app)",
                            e.error.message
                        );
                    }
                    e
                })
            }
            other => other,
        }
    }

    async fn send_once(&self, request: &Request, session: &Session) -> Result<Response, SfError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the in-flight semaphore is never closed");
        self.allocation.before_call(Utc::now())?;
        let url = match &request.target {
            Target::Api(path) => format!("{}{}", session.instance_url, self.api_path(path)),
            Target::Relative(path) => format!("{}{}", session.instance_url, path),
        };
        let mut builder = self
            .http
            .request(request.method.clone(), &url)
            .timeout(self.config.request_timeout)
            .bearer_auth(session.access_token.expose_secret())
            .header("Sforce-Call-Options", "client=leadroute");
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        builder = match &request.body {
            Body::Empty => builder,
            Body::Json(bytes) => builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            Body::Csv(bytes) => builder
                .header(reqwest::header::CONTENT_TYPE, "text/csv")
                .body(bytes.clone()),
        };
        let what = request.describe();
        let response = builder.send().await.map_err(|e| {
            if e.is_connect() {
                connect_error(&url, e)
            } else {
                transport_error(&what, e)
            }
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if let Some(info) = headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_limit_info)
        {
            self.allocation.observe(info, Utc::now());
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(&what, e))?
            .to_vec();
        if (200..300).contains(&status) {
            return Ok(Response {
                status,
                headers,
                body,
            });
        }
        Err(self.classify(&what, status, &body))
    }

    fn classify(&self, what: &str, status: u16, body: &[u8]) -> SfError {
        let errors = parse_rest_errors(body);
        let first = errors.first();
        let code = first
            .map(|e| e.error_code.clone())
            .filter(|c| !c.is_empty());
        let message = first.map(|e| e.message.clone()).unwrap_or_default();
        let text = format!(
            "salesforce {what}: {} {} ({status})",
            code.as_deref().unwrap_or("error"),
            message
        );
        let mut reauth = false;
        let error = match (status, code.as_deref()) {
            (401, _) => {
                // jsforce's lesson: some 401s a new token cannot fix.
                reauth = !message.contains("not valid for use with the REST API");
                CrmError::new(ErrorKind::Auth, text)
            }
            (403, Some("REQUEST_LIMIT_EXCEEDED")) => {
                if message.contains("ConcurrentRequests") || message.contains("Concurrent") {
                    self.allocation.count_throttled();
                    CrmError::new(ErrorKind::Concurrency, text)
                        .with_retry_after(Duration::from_secs(20))
                } else {
                    return SfError {
                        error: self.allocation.exhausted(Utc::now(), &message),
                        code,
                        reauth: false,
                    };
                }
            }
            (403, _) => CrmError::new(
                ErrorKind::Forbidden,
                format!("{text}; check the integration user's permissions"),
            ),
            (404, _) => CrmError::new(ErrorKind::NotFound, text),
            (410, _) => CrmError::new(
                ErrorKind::BadRequest,
                format!(
                    "{text}; API version v{} is retired, configure a newer api_version",
                    self.config.api_version
                ),
            ),
            (_, Some("UNABLE_TO_LOCK_ROW")) => CrmError::new(ErrorKind::Unavailable, text),
            (429, _) => CrmError::new(ErrorKind::RateLimited, text),
            (408, _) => CrmError::new(ErrorKind::Timeout, text),
            (s, _) if s >= 500 && body.trim_ascii_start().starts_with(b"<") => CrmError::new(
                ErrorKind::Unavailable,
                format!(
                    "salesforce {what} answered HTTP {s}: {HTML_PAGE} (a proxy or gateway error page?); check crm.base_url and Salesforce's status"
                ),
            ),
            (s, _) if s >= 500 => CrmError::new(ErrorKind::Unavailable, text),
            _ => CrmError::new(ErrorKind::BadRequest, text),
        };
        SfError {
            error: error.with_status(status),
            code,
            reauth,
        }
    }

    /// Sends and decodes a JSON body.
    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        request: &Request,
        what: &str,
    ) -> Result<(T, Response), SfError> {
        let response = self.send(request).await?;
        let value = response.json(what)?;
        Ok((value, response))
    }
}

/// Marks a 5xx answered with an HTML page (a proxy or gateway error page).
const HTML_PAGE: &str = "the CRM answered an HTML page, not JSON";
/// HTML error pages are retried at most this many times.
const HTML_RETRIES: u32 = 2;

/// Whether `e` is a failure to connect (refused, DNS, TLS): nothing was sent.
fn connect_failed(e: &CrmError) -> bool {
    e.source
        .as_deref()
        .and_then(|s| s.downcast_ref::<reqwest::Error>())
        .is_some_and(reqwest::Error::is_connect)
}

/// Connection refused, unknown host, TLS failure: names the URL and what to check.
fn connect_error(url: &str, e: reqwest::Error) -> SfError {
    let mut cause: &dyn std::error::Error = &e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let why = cause.to_string();
    let url = url.split('?').next().unwrap_or(url).to_owned();
    SfError::new(
        CrmError::new(
            ErrorKind::Network,
            format!(
                "salesforce: cannot connect to {url}: {why}; check crm.base_url (or crm.salesforce.instance_url) and that Salesforce (or `leadroute sim salesforce`) is running and reachable"
            ),
        )
        .with_source(e),
    )
}

fn transport_error(what: &str, e: reqwest::Error) -> SfError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Network
    };
    SfError::new(
        CrmError::new(kind, format!("salesforce {what}: no answer ({kind})")).with_source(e),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::SalesforceAuth;
    use secrecy::SecretString;

    fn client() -> Client {
        let http = reqwest::Client::new();
        let auth = Authenticator::new(
            http.clone(),
            "https://login.example".into(),
            Some("https://org.example".into()),
            SalesforceAuth::Session {
                token: SecretString::from("00Dx!token".to_owned()),
            },
        );
        let config = ClientConfig {
            api_version: "62.0".into(),
            request_timeout: Duration::from_secs(5),
            max_retries: 1,
            retry_base: Duration::from_millis(1),
            max_in_flight: 5,
        };
        Client::new(
            http,
            config,
            auth,
            DailyAllocation::new(0, Duration::from_secs(300)),
        )
    }

    fn body(code: &str, message: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!([{ "errorCode": code, "message": message }])).unwrap()
    }

    #[test]
    fn total_requests_exceeded_is_quota_exhaustion_with_a_resume_time() {
        let c = client();
        let e = c.classify(
            "GET /query",
            403,
            &body("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
        );
        assert_eq!(e.error.kind, ErrorKind::QuotaExhausted);
        assert!(e.error.resume_at.is_some());
        assert!(!e.retryable());
    }

    #[test]
    fn concurrent_requests_exceeded_is_retried_later() {
        let c = client();
        let e = c.classify(
            "GET /query",
            403,
            &body(
                "REQUEST_LIMIT_EXCEEDED",
                "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
            ),
        );
        assert_eq!(e.error.kind, ErrorKind::Concurrency);
        assert!(e.retryable());
    }

    #[test]
    fn other_forbidden_answers_are_not_limits_or_auth_failures() {
        let c = client();
        let e = c.classify(
            "PATCH /composite/sobjects",
            403,
            &body("INSUFFICIENT_ACCESS_OR_READONLY", "no"),
        );
        assert_eq!(e.error.kind, ErrorKind::Forbidden);
        let e = c.classify(
            "GET /query",
            403,
            &body("API_DISABLED_FOR_ORG", "API is not enabled"),
        );
        assert_eq!(e.error.kind, ErrorKind::Forbidden);
    }

    #[test]
    fn expired_sessions_ask_for_a_new_one_but_rest_disabled_sessions_do_not() {
        let c = client();
        let e = c.classify(
            "GET /query",
            401,
            &body("INVALID_SESSION_ID", "Session expired or invalid"),
        );
        assert_eq!(e.error.kind, ErrorKind::Auth);
        assert!(e.reauth);
        let e = c.classify(
            "GET /query",
            401,
            &body(
                "INVALID_SESSION_ID",
                "This session is not valid for use with the REST API",
            ),
        );
        assert!(!e.reauth);
    }

    #[test]
    fn lock_contention_and_server_errors_are_retryable_and_codes_are_kept() {
        let c = client();
        let e = c.classify(
            "PATCH /sobjects/Lead/x",
            400,
            &body("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access"),
        );
        assert!(e.retryable());
        assert_eq!(e.code.as_deref(), Some("UNABLE_TO_LOCK_ROW"));
        let e = c.classify("GET /query", 503, &body("SERVER_UNAVAILABLE", "later"));
        assert_eq!(e.error.kind, ErrorKind::Unavailable);
        let e = c.classify(
            "GET /query/01g-2000",
            400,
            &body("INVALID_QUERY_LOCATOR", "invalid query locator"),
        );
        assert_eq!(e.code.as_deref(), Some("INVALID_QUERY_LOCATOR"));
        assert_eq!(e.error.kind, ErrorKind::BadRequest);
    }

    #[test]
    fn a_retired_api_version_names_the_setting_to_change() {
        let c = client();
        let e = c.classify("GET /query", 410, &body("GONE", "retired"));
        assert_eq!(e.error.kind, ErrorKind::BadRequest);
        assert!(e.error.message.contains("api_version"));
    }

    #[test]
    fn messages_name_the_call_without_its_query_string() {
        let request = Request::get(Target::Api("/query".into())).query("q", "SELECT Id FROM Lead");
        assert_eq!(request.describe(), "GET /query");
    }
}
