//! The HTTP server: accept loop (so a fault can drop a connection without answering),
//! request pipeline (faults, version, session, concurrency and daily allocation, the
//! `Sforce-Limit-Info` header) and the shared state every route reads.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use jsonwebtoken::DecodingKey;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value as Json, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tower::ServiceExt;

use super::bulk::BulkJobs;
use super::faults::{FaultScript, FaultState, ServerError};
use super::limits::{Allocation, InFlight, SimStats};
use super::org::Org;
use super::soql::Cursors;
use super::{SalesforceSimConfig, control, generator, outbound, routes};
use crate::tls::SimTls;

/// Oldest version still served; 21.0–30.0 are retired (410) and so is anything older.
pub(crate) const MIN_VERSION: u32 = 31;
/// Newest generally available version (Summer '26).
pub(crate) const MAX_VERSION: u32 = 67;

/// Longest request URI the REST API accepts (Salesforce: 16,384 bytes with headers).
const MAX_URI_BYTES: usize = 16_384;

/// A live API session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) user_id: String,
    pub(crate) last_used: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Sessions {
    pub(crate) by_token: HashMap<String, Session>,
    pub(crate) refresh_tokens: HashSet<String>,
}

/// Everything the routes share.
pub(crate) struct Shared {
    pub(crate) config: SalesforceSimConfig,
    pub(crate) base_url: String,
    /// Set when `config.tls`: the acceptor and the CA clients must trust.
    pub(crate) tls: Option<SimTls>,
    pub(crate) org: Mutex<Org>,
    pub(crate) sessions: Mutex<Sessions>,
    pub(crate) allocation: Mutex<Allocation>,
    pub(crate) in_flight: Mutex<InFlight>,
    pub(crate) stats: Mutex<SimStats>,
    pub(crate) faults: Mutex<FaultState>,
    pub(crate) cursors: Mutex<Cursors>,
    pub(crate) bulk: Mutex<BulkJobs>,
    pub(crate) outbound_url: Mutex<Option<String>>,
    pub(crate) outbound_wake: Notify,
    pub(crate) jwt_key: Option<DecodingKey>,
    pub(crate) rng: Mutex<StdRng>,
    /// Serializes request execution, mutations and bulk processing, so `/composite`
    /// with allOrNone can roll back without undoing another request's work.
    pub(crate) exec: Mutex<()>,
    /// Form-fill streams started with `POST /__sim/stream`.
    pub(crate) streams: Mutex<crate::stream::Streams>,
    self_ref: std::sync::OnceLock<std::sync::Weak<Shared>>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// Per-connection control: a route can ask for the connection to be dropped.
#[derive(Clone)]
pub(crate) struct ConnCtl {
    reset: Arc<Notify>,
}

/// Builds the org, binds the port and starts the server and background tasks.
pub(crate) async fn start(mut config: SalesforceSimConfig) -> std::io::Result<Arc<Shared>> {
    config.org_id = match super::ids::canonical(&config.org_id) {
        Some(id) if id.starts_with("00D") => id,
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "org_id: '{}' is not a 15- or 18-character organization id (00D…); leave the default or pass a real one",
                    config.org_id
                ),
            ));
        }
    };
    let jwt_key = match &config.jwt_certificate_pem {
        Some(pem) => Some(DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|err| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("jwt_certificate_pem: not an RSA certificate or public key ({err}); pass the PEM of the connected app's certificate"),
            )
        })?),
        None => None,
    };
    let tls = if config.tls {
        Some(SimTls::generate()?)
    } else {
        None
    };
    let listener = TcpListener::bind(("127.0.0.1", config.port)).await?;
    let addr = listener.local_addr()?;
    let base_url = crate::tls::base_url(tls.as_ref(), addr);
    let org = generator::generate(&config);
    let mut sessions = Sessions::default();
    sessions.refresh_tokens.insert(config.refresh_token.clone());
    if let Some(token) = &config.pre_issued_token {
        sessions.by_token.insert(
            token.clone(),
            Session {
                user_id: org.api_user_id.clone(),
                last_used: Instant::now(),
            },
        );
    }
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        base_url,
        tls: tls.clone(),
        org: Mutex::new(org),
        sessions: Mutex::new(sessions),
        allocation: Mutex::new(Allocation::new(config.daily_api_limit)),
        in_flight: Mutex::new(InFlight::default()),
        stats: Mutex::new(SimStats::default()),
        faults: Mutex::new(FaultState::default()),
        cursors: Mutex::new(Cursors::new(config.query_locator_ttl)),
        bulk: Mutex::new(BulkJobs::default()),
        outbound_url: Mutex::new(config.outbound_url.clone()),
        outbound_wake: Notify::new(),
        jwt_key,
        rng: Mutex::new(StdRng::seed_from_u64(config.seed ^ 0x5f5f)),
        exec: Mutex::new(()),
        streams: Mutex::new(crate::stream::Streams::default()),
        self_ref: std::sync::OnceLock::new(),
        shutdown_tx,
        tasks: Mutex::new(Vec::new()),
        config,
    });
    let _ = shared.self_ref.set(Arc::downgrade(&shared));
    let router = Router::new()
        .fallback(dispatch)
        .with_state(Arc::clone(&shared));
    let accept = tokio::spawn(accept_loop(listener, router, tls, shutdown_rx.clone()));
    let outbound = tokio::spawn(outbound::run(Arc::clone(&shared), shutdown_rx));
    shared.tasks.lock().extend([accept, outbound]);
    Ok(shared)
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    tls: Option<SimTls>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "salesforce sim accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let ctl = ConnCtl {
            reset: Arc::new(Notify::new()),
        };
        let reset = Arc::clone(&ctl.reset);
        let router = router.clone();
        let mut shutdown = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let stream = tokio::select! {
                wrapped = crate::tls::wrap(tls.as_ref(), stream) => match wrapped {
                    Ok(stream) => stream,
                    Err(err) => {
                        tracing::debug!(error = %err, "salesforce sim TLS handshake failed");
                        return;
                    }
                },
                _ = shutdown.changed() => return,
            };
            let service =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ctl.clone());
                    router.clone().oneshot(req.map(Body::new))
                });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            // Dropping the connection future closes the socket with no response.
            tokio::select! {
                _ = conn => {}
                _ = reset.notified() => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

/// A route's answer before it becomes an HTTP response.
#[derive(Debug, Clone)]
pub(crate) struct Resp {
    pub(crate) status: StatusCode,
    pub(crate) body: RespBody,
    pub(crate) headers: Vec<(header::HeaderName, String)>,
}

#[derive(Debug, Clone)]
pub(crate) enum RespBody {
    Empty,
    Json(Json),
    /// JSON already serialized (query pages).
    RawJson(String),
    Text(String, &'static str),
}

impl Resp {
    pub(crate) fn json(status: StatusCode, body: Json) -> Resp {
        Resp {
            status,
            body: RespBody::Json(body),
            headers: Vec::new(),
        }
    }

    pub(crate) fn raw_json(text: String) -> Resp {
        Resp {
            status: StatusCode::OK,
            body: RespBody::RawJson(text),
            headers: Vec::new(),
        }
    }

    pub(crate) fn ok(body: Json) -> Resp {
        Self::json(StatusCode::OK, body)
    }

    /// The REST error array `[{"message","errorCode"}]`.
    pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Resp {
        Self::json(
            status,
            json!([{"message": message.into(), "errorCode": code}]),
        )
    }

    pub(crate) fn empty(status: StatusCode) -> Resp {
        Resp {
            status,
            body: RespBody::Empty,
            headers: Vec::new(),
        }
    }

    pub(crate) fn text(status: StatusCode, text: String, content_type: &'static str) -> Resp {
        Resp {
            status,
            body: RespBody::Text(text, content_type),
            headers: Vec::new(),
        }
    }

    pub(crate) fn not_found() -> Resp {
        Self::error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }

    pub(crate) fn body_json(&self) -> Json {
        match &self.body {
            RespBody::Json(j) => j.clone(),
            RespBody::RawJson(text) => serde_json::from_str(text).unwrap_or(Json::Null),
            RespBody::Text(t, _) => Json::String(t.clone()),
            RespBody::Empty => Json::Null,
        }
    }
}

impl IntoResponse for Resp {
    fn into_response(self) -> Response {
        let mut response = match self.body {
            RespBody::Empty => self.status.into_response(),
            RespBody::Json(_) | RespBody::RawJson(_) => {
                let text = match self.body {
                    RespBody::RawJson(text) => text,
                    RespBody::Json(body) => body.to_string(),
                    _ => String::new(),
                };
                let mut r = (self.status, text).into_response();
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json;charset=UTF-8"),
                );
                r
            }
            RespBody::Text(text, content_type) => {
                let mut r = (self.status, text).into_response();
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                r
            }
        };
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

/// One REST call as the routes see it (also built for composite subrequests).
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) method: Method,
    /// `62.0`
    pub(crate) version: String,
    /// Path after `/services/data/vNN.N/`, split on `/`, empty segments removed.
    pub(crate) segments: Vec<String>,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) user_id: String,
    /// Where writes are logged from (`rest`, `composite`, `composite_batch`).
    pub(crate) source: &'static str,
    /// Endpoint name for statistics, set by the router.
    pub(crate) endpoint: String,
    /// Calls beyond this one to count (composite/batch subrequests).
    pub(crate) extra_cost: u64,
}

impl Call {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Sforce-Auto-Assign`: absent or TRUE runs the assignment rule; FALSE does not.
    pub(crate) fn auto_assign(&self) -> bool {
        !self
            .header("sforce-auto-assign")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
    }
}

pub(crate) fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// `v62.0` → `62.0` when well-formed.
pub(crate) fn parse_version(segment: &str) -> Option<(u32, String)> {
    let rest = segment.strip_prefix('v')?;
    let (major, minor) = rest.split_once('.')?;
    if minor != "0" {
        return None;
    }
    let n: u32 = major.parse().ok()?;
    Some((n, rest.to_owned()))
}

async fn dispatch(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let ctl = req.extensions().get::<ConnCtl>().cloned();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    if let Some(rest) = path.strip_prefix("/__sim/") {
        let body = axum::body::to_bytes(body, 512 * 1024 * 1024)
            .await
            .unwrap_or_default();
        return control::handle(&shared, &parts.method, rest, &body).into_response();
    }
    let request_faults = shared.faults.lock().on_request(&path);
    if request_faults.reset {
        shared.stats.lock().faults_injected += 1;
        if let Some(ctl) = ctl {
            ctl.reset.notify_one();
            // The connection task drops this request with its connection.
            std::future::pending::<()>().await;
        }
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let body = match axum::body::to_bytes(body, 512 * 1024 * 1024).await {
        Ok(body) => body,
        Err(_) => {
            return Resp::error(
                StatusCode::BAD_REQUEST,
                "JSON_PARSER_ERROR",
                "unreadable body",
            )
            .into_response();
        }
    };
    // REST limits the request line; long SOQL belongs in a POST to /composite.
    if parts.uri.to_string().len() > MAX_URI_BYTES {
        return Resp::error(
            StatusCode::URI_TOO_LONG,
            "URI_TOO_LONG",
            format!("The request URI exceeds {MAX_URI_BYTES} bytes; shorten it (chunk id lists) or use composite/sobjects retrieve"),
        )
        .into_response();
    }
    let query = parse_query(parts.uri.query());
    if path == "/services/oauth2/token" {
        delay(request_faults.delay_ms).await;
        if let Some(err) = request_faults.server_error {
            return server_error(&shared, err).into_response();
        }
        count_endpoint(&shared, "POST oauth2/token");
        return routes::oauth::token(&shared, &parts.method, &parts.headers, &body).into_response();
    }
    if path.starts_with("/services/oauth2/") {
        count_endpoint(&shared, "oauth2 other");
        return routes::oauth::other(&shared, &path, &parts.headers, &body).into_response();
    }
    let Some(after) = path.strip_prefix("/services/data") else {
        return Resp::not_found().into_response();
    };
    let mut segments: Vec<String> = after
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    if segments.is_empty() {
        // The versions list: no session needed, not counted, no limit header.
        count_endpoint(&shared, "GET versions");
        return Resp::ok(routes::versions_list()).into_response();
    }
    let version_segment = segments.remove(0);
    let version = match parse_version(&version_segment) {
        Some((n, _)) if n < MIN_VERSION => {
            return Resp::error(
                StatusCode::GONE,
                "GONE",
                format!("Version {version_segment} of the REST API has been retired."),
            )
            .into_response();
        }
        Some((n, v)) if n <= MAX_VERSION => v,
        _ => return Resp::not_found().into_response(),
    };
    let user_id = match authenticate(&shared, &parts.headers) {
        Ok(user) => user,
        Err(resp) => return resp.into_response(),
    };
    if request_faults.concurrency_limit {
        shared.stats.lock().limit_rejections += 1;
        shared.stats.lock().faults_injected += 1;
        return with_limit_info(
            &shared,
            Resp::error(
                StatusCode::FORBIDDEN,
                "REQUEST_LIMIT_EXCEEDED",
                "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
            ),
        )
        .into_response();
    }
    let now = Instant::now();
    let ticket = {
        let entered = shared.in_flight.lock().enter(
            now,
            shared.config.long_running_threshold,
            shared.config.max_long_running,
        );
        match entered {
            Some(ticket) => ticket,
            None => {
                shared.stats.lock().limit_rejections += 1;
                return with_limit_info(
                    &shared,
                    Resp::error(
                        StatusCode::FORBIDDEN,
                        "REQUEST_LIMIT_EXCEEDED",
                        "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
                    ),
                )
                .into_response();
            }
        }
    };
    let response = serve_counted(
        &shared,
        Call {
            method: parts.method.clone(),
            version,
            segments,
            query,
            headers: parts.headers.clone(),
            body,
            user_id,
            source: "rest",
            endpoint: String::new(),
            extra_cost: 0,
        },
        request_faults.delay_ms,
        request_faults.server_error,
    )
    .await;
    shared.in_flight.lock().leave(ticket);
    if request_faults.lose_answer
        && let Some(ctl) = ctl
    {
        // The work is done; the answer never arrives.
        ctl.reset.notify_one();
        std::future::pending::<()>().await;
    }
    response.into_response()
}

async fn serve_counted(
    shared: &Arc<Shared>,
    mut call: Call,
    delay_ms: u64,
    server_err: Option<ServerError>,
) -> Resp {
    {
        let allowed = shared.allocation.lock().try_consume(1, Instant::now());
        if !allowed {
            shared.stats.lock().limit_rejections += 1;
            return with_limit_info(
                shared,
                Resp::error(
                    StatusCode::FORBIDDEN,
                    "REQUEST_LIMIT_EXCEEDED",
                    "TotalRequests Limit exceeded.",
                ),
            );
        }
    }
    delay(delay_ms).await;
    if let Some(err) = server_err {
        return with_limit_info(shared, server_error(shared, err));
    }
    let resp = {
        let _exec = shared.exec.lock();
        routes::route(shared, &mut call)
    };
    if call.extra_cost > 0 {
        shared
            .allocation
            .lock()
            .add(call.extra_cost, Instant::now());
    }
    count_endpoint(shared, &call.endpoint);
    // Queued outbound notes go out after the write is answered.
    shared.outbound_wake.notify_one();
    with_limit_info(shared, resp)
}

async fn delay(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

fn server_error(shared: &Shared, err: ServerError) -> Resp {
    shared.stats.lock().faults_injected += 1;
    match err {
        ServerError::Unavailable => Resp::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_UNAVAILABLE",
            "Server temporarily unavailable; please retry your request.",
        ),
        ServerError::Unknown => Resp::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)",
        ),
    }
}

fn with_limit_info(shared: &Shared, mut resp: Resp) -> Resp {
    let (used, limit) = {
        let mut allocation = shared.allocation.lock();
        (allocation.used(Instant::now()), allocation.limit)
    };
    resp.headers.push((
        header::HeaderName::from_static("sforce-limit-info"),
        format!("api-usage={used}/{limit}"),
    ));
    resp
}

fn count_endpoint(shared: &Shared, endpoint: &str) {
    let mut stats = shared.stats.lock();
    *stats.calls.entry(endpoint.to_owned()).or_default() += 1;
}

/// The session's user, or the 401 a dead or missing session gets.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<String, Resp> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("OAuth "))
                .map(str::trim)
        });
    let now = Instant::now();
    let ttl = shared.config.session_ttl;
    let mut sessions = shared.sessions.lock();
    if let Some(token) = token
        && let Some(session) = sessions.by_token.get_mut(token)
    {
        if now.duration_since(session.last_used) < ttl {
            session.last_used = now;
            return Ok(session.user_id.clone());
        }
        sessions.by_token.remove(token);
    }
    drop(sessions);
    shared.stats.lock().auth_failures += 1;
    Err(Resp::error(
        StatusCode::UNAUTHORIZED,
        "INVALID_SESSION_ID",
        "Session expired or invalid",
    ))
}

impl Shared {
    /// A new random access token in the org's format (`00D…!AR…`).
    pub(crate) fn new_session(&self, user_id: &str) -> String {
        let random: String = {
            let mut rng = self.rng.lock();
            (0..96)
                .map(|_| {
                    let n = rng.random_range(0..64u32);
                    char::from(
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._"
                            [n as usize],
                    )
                })
                .collect()
        };
        let token = format!("{}!AR{random}", &self.config.org_id[..15]);
        let mut sessions = self.sessions.lock();
        // Sessions idle past the timeout are dead anyway; forget them.
        let ttl = self.config.session_ttl;
        sessions.by_token.retain(|_, s| s.last_used.elapsed() < ttl);
        sessions.by_token.insert(
            token.clone(),
            Session {
                user_id: user_id.to_owned(),
                last_used: Instant::now(),
            },
        );
        token
    }

    /// Resolves once the simulator is shutting down (or already has).
    pub(crate) fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown_tx.subscribe();
        async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
    }

    /// A strong handle for background work started by a route.
    pub(crate) fn arc(&self) -> Option<Arc<Shared>> {
        self.self_ref.get().and_then(std::sync::Weak::upgrade)
    }

    pub(crate) fn new_refresh_suffix(&self) -> String {
        let mut rng = self.rng.lock();
        (0..40)
            .map(|_| {
                char::from(
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                        [rng.random_range(0..62usize)],
                )
            })
            .collect()
    }

    /// Rebuilds the org from the configuration and forgets calls, faults, locators,
    /// jobs and sessions (the pre-issued token and the configured refresh token
    /// work again).
    pub(crate) fn reset(&self) {
        let _exec = self.exec.lock();
        let org = generator::generate(&self.config);
        let mut sessions = Sessions::default();
        sessions
            .refresh_tokens
            .insert(self.config.refresh_token.clone());
        if let Some(token) = &self.config.pre_issued_token {
            sessions.by_token.insert(
                token.clone(),
                Session {
                    user_id: org.api_user_id.clone(),
                    last_used: Instant::now(),
                },
            );
        }
        *self.org.lock() = org;
        *self.sessions.lock() = sessions;
        *self.allocation.lock() = Allocation::new(self.config.daily_api_limit);
        *self.stats.lock() = SimStats::default();
        *self.faults.lock() = FaultState::default();
        *self.cursors.lock() = Cursors::new(self.config.query_locator_ttl);
        *self.bulk.lock() = BulkJobs::default();
    }

    pub(crate) fn issue_token_for_tests(&self) -> String {
        if let Some(token) = &self.config.pre_issued_token {
            // Re-arm it in case a fault expired it: tests asking for a token want one.
            let user = self.org.lock().api_user_id.clone();
            self.sessions.lock().by_token.insert(
                token.clone(),
                Session {
                    user_id: user,
                    last_used: Instant::now(),
                },
            );
            return token.clone();
        }
        let user = self.org.lock().api_user_id.clone();
        self.new_session(&user)
    }

    pub(crate) fn stats(&self) -> SimStats {
        let mut stats = self.stats.lock().clone();
        let mut allocation = self.allocation.lock();
        stats.api_used = allocation.used(Instant::now());
        stats.api_limit = allocation.limit;
        stats.faults_injected += self.faults.lock().injected;
        stats.records_written = self.org.lock().api_writes;
        stats
    }

    pub(crate) fn set_faults(&self, script: FaultScript) {
        if script.expire_sessions {
            self.sessions.lock().by_token.clear();
        }
        if script.expire_query_locators {
            *self.cursors.lock() = Cursors::new(self.config.query_locator_ttl);
        }
        self.allocation.lock().exhaust_after = script.exhaust_after_calls;
        let mut faults = self.faults.lock();
        let injected = faults.injected;
        *faults = FaultState::new(script);
        faults.injected = injected;
    }

    /// Milliseconds since the epoch (the org clock).
    pub(crate) fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    pub(crate) async fn shutdown(&self) {
        let _ = self.shutdown_tx.send(true);
        let tasks: Vec<_> = self.tasks.lock().drain(..).collect();
        for task in tasks {
            let _ = task.await;
        }
    }

    pub(crate) fn spawn_task(&self, task: JoinHandle<()>) {
        self.tasks.lock().push(task);
    }
}
