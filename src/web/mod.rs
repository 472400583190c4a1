//! HTTP surface (axum): the webhook intake routes `POST /webhooks/hubspot` and
//! `POST /webhooks/salesforce` (the single-org form; `POST /webhooks/{org}` with
//! several orgs, see `ops::orgs_router`), plus `GET /healthz`; `ops.rs` adds the sidecar's
//! `GET /readyz` and `GET /metrics` on the same listener.
//!
//! A webhook is verified by the connector (`Crm::intake`), its hints go into the store's
//! inbox (de-duplicated), and the hint processor refetches the records later. The
//! handler never trusts payloads, never blocks on the CRM, and never shows a caller SQL
//! or signature details: a refused request gets its status and a one-word body.

pub mod ops;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use leadroute_crm::{Crm, CrmKind, InboundRequest};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::domain::OrgId;
use crate::store::Store;

/// What the webhook handler needs.
pub struct WebState<C: Crm> {
    pub crm: Arc<C>,
    pub store: Store,
    /// The org whose inbox the hints go into.
    pub org: OrgId,
    /// The public base URL the CRM calls (`https://leadroute.example.com`), without a
    /// trailing slash. HubSpot signs the URL it called, which a proxy may have
    /// rewritten, so it comes from config; without one, the `Host` header is used.
    pub public_url: Option<String>,
    /// Woken when new hints arrive, so the processor need not wait for its next poll.
    pub hints: Arc<Notify>,
}

impl<C: Crm> Clone for WebState<C> {
    fn clone(&self) -> Self {
        WebState {
            crm: Arc::clone(&self.crm),
            store: self.store.clone(),
            org: self.org.clone(),
            public_url: self.public_url.clone(),
            hints: Arc::clone(&self.hints),
        }
    }
}

/// The router for one CRM org.
pub fn router<C: Crm>(state: WebState<C>) -> Router {
    Router::new()
        .route("/webhooks/hubspot", post(webhook::<C>))
        .route("/webhooks/salesforce", post(webhook::<C>))
        // The org's own name (`[crm] name`, or `run --org NAME`); another name is a 404.
        .route("/webhooks/{org}", post(webhook::<C>))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

/// Serves `router` on `listener` until `cancel` fires, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}

/// Binds `addr` and serves in the background; returns the bound address (useful with
/// port 0) and the task.
pub async fn spawn(
    addr: SocketAddr,
    router: Router,
    cancel: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(serve(listener, router, cancel));
    Ok((local, task))
}

pub(crate) fn plain(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn webhook<C: Crm>(
    State(state): State<WebState<C>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle_webhook(&state, method, uri, headers, body).await.0
}

/// What became of one webhook delivery (the `result` label of
/// `leadroute_webhooks_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookResult {
    /// Verified, with at least one hint not seen before.
    Accepted,
    /// Verified, but every hint was already in the inbox (a redelivery).
    Duplicate,
    /// Signature missing, forged or tampered, or timestamp stale.
    Unauthorized,
    /// Not a notification the connector understands (or no `Host`).
    Malformed,
    /// Posted to the other CRM's route.
    WrongCrm,
    /// The store could not take the hints (the CRM retries).
    Unavailable,
}

impl WebhookResult {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookResult::Accepted => "accepted",
            WebhookResult::Duplicate => "duplicate",
            WebhookResult::Unauthorized => "unauthorized",
            WebhookResult::Malformed => "malformed",
            WebhookResult::WrongCrm => "wrong_crm",
            WebhookResult::Unavailable => "unavailable",
        }
    }
}

/// One WARN line per interval for refused webhooks, with how many were refused since:
/// a flood of forged requests must not flood the log.
struct RefusalLog {
    last_ms: AtomicI64,
    suppressed: AtomicU64,
}

static REFUSALS: RefusalLog = RefusalLog {
    last_ms: AtomicI64::new(i64::MIN),
    suppressed: AtomicU64::new(0),
};

const REFUSAL_LOG_EVERY_MS: i64 = 10_000;

impl RefusalLog {
    fn refused(&self, crm: CrmKind, status: u16, error: &dyn std::fmt::Display) {
        let now = Utc::now().timestamp_millis();
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == i64::MIN || now.saturating_sub(last) >= REFUSAL_LOG_EVERY_MS;
        if due
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
            warn!(crm = %crm, status, error = %error, suppressed, "webhook refused (one line per 10 s; all are counted in leadroute_webhooks_total)");
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            debug!(crm = %crm, status, error = %error, "webhook refused");
        }
    }
}

/// Verifies a delivery, stores its hints and answers; also says what became of it.
pub(crate) async fn handle_webhook<C: Crm>(
    state: &WebState<C>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (Response, WebhookResult) {
    // `/webhooks/{org}`, or the single-org form's `/webhooks/{crm kind}`.
    let segment = uri.path().rsplit('/').next().unwrap_or_default();
    let path_crm = state.crm.kind();
    if segment != state.org.as_str() && segment != path_crm.as_str() {
        return (
            plain(StatusCode::NOT_FOUND, "not found\n"),
            WebhookResult::WrongCrm,
        );
    }
    let path_and_query = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let base = match &state.public_url {
        Some(base) => base.clone(),
        None => match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
            Some(host) => format!("http://{host}"),
            None => {
                return (
                    plain(StatusCode::BAD_REQUEST, "missing host\n"),
                    WebhookResult::Malformed,
                );
            }
        },
    };
    let request = InboundRequest {
        method: method.as_str().to_owned(),
        url: format!("{base}{path_and_query}"),
        headers: headers
            .iter()
            .filter_map(|(name, value)| {
                // Header names from `http` are already lowercase.
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect(),
        body: body.to_vec(),
        received_at: Utc::now(),
    };
    let intake = match state.crm.intake(&request) {
        Ok(intake) => intake,
        Err(err) => {
            REFUSALS.refused(path_crm, err.status(), &err);
            let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let (body, result) = if status == StatusCode::UNAUTHORIZED {
                ("unauthorized\n", WebhookResult::Unauthorized)
            } else {
                ("bad request\n", WebhookResult::Malformed)
            };
            return (plain(status, body), result);
        }
    };
    let result = match state
        .store
        .enqueue_hints(&state.org, &intake.hints, request.received_at)
        .await
    {
        Ok(fresh) => {
            debug!(crm = %path_crm, hints = intake.hints.len(), fresh, "webhook accepted");
            if fresh > 0 {
                state.hints.notify_one();
                WebhookResult::Accepted
            } else {
                WebhookResult::Duplicate
            }
        }
        Err(err) => {
            // The CRM retries non-2xx deliveries, so refusing loses nothing.
            warn!(error = %crate::mirror::error_chain(&err), "webhook hints could not be stored");
            return (
                plain(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable\n"),
                WebhookResult::Unavailable,
            );
        }
    };
    let response = intake.response;
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::OK);
    (
        (
            status,
            [(header::CONTENT_TYPE, response.content_type)],
            response.body,
        )
            .into_response(),
        result,
    )
}
