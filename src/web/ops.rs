//! The sidecar's HTTP surface on the webhook listener: the webhook routes (counted in
//! `leadroute_webhooks_total`), `GET /healthz` (alive), `GET /readyz` (200 only when
//! the store answers, a policy is loaded and this process leads (its CRM calls
//! succeeding) or stands by cleanly; a JSON body with the org lease either way) and `GET /metrics` (Prometheus text).
//!
//! With several orgs in one process ([`orgs_router`]) each org contributes its webhook
//! route `POST /webhooks/{org}` and an [`OrgProbe`]; `/webhooks/<unknown>` is a 404 with
//! a JSON reason, `/readyz` has a section per org (503 while any org is not ready) and
//! `/metrics` carries an `org` label. The probe is a trait object because each org's
//! connector is a different type and the router must hold them side by side.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use leadroute_crm::Crm;
use serde_json::json;

use super::{WebState, handle_webhook};
use crate::domain::OrgId;
use crate::service::clock::Clock;
use crate::service::metrics::{self, Metrics};
use crate::service::status::Status;

/// What the sidecar's routes need.
pub struct OpsState<C: Crm> {
    pub web: WebState<C>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<Status>,
    pub clock: Arc<dyn Clock>,
}

impl<C: Crm> Clone for OpsState<C> {
    fn clone(&self) -> Self {
        OpsState {
            web: self.web.clone(),
            metrics: Arc::clone(&self.metrics),
            status: Arc::clone(&self.status),
            clock: Arc::clone(&self.clock),
        }
    }
}

/// The sidecar's router: webhooks, health, readiness and metrics.
pub fn router<C: Crm>(state: OpsState<C>) -> Router {
    Router::new()
        .route("/webhooks/hubspot", post(webhook::<C>))
        .route("/webhooks/salesforce", post(webhook::<C>))
        // The org's own name (`[crm] name`, or `run --org NAME`); another name is a 404.
        .route("/webhooks/{org}", post(webhook::<C>))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<C>))
        .route("/metrics", get(metrics_text::<C>))
        .with_state(state)
}

async fn webhook<C: Crm>(
    State(state): State<OpsState<C>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (response, result) = handle_webhook(&state.web, method, uri, headers, body).await;
    Metrics::inc(&state.metrics.webhooks, "result", result.as_str());
    response
}

/// Refreshes the gauges read from the store and the status; returns the inbox facts
/// (`None` when the store did not answer, with its error).
async fn refresh<C: Crm>(state: &OpsState<C>) -> Result<(u64, Option<f64>), String> {
    let org = &state.web.org;
    let now = state.clock.now();
    let status = state.status.get();
    for object in state.web.crm.objects() {
        let since = status
            .cursors
            .get(&object.to_string())
            .copied()
            .or(status.started_at);
        if let Some(since) = since {
            let age = (now - since).num_milliseconds().max(0) as f64 / 1000.0;
            state
                .metrics
                .cursor_age
                .get_or_create(&vec![("object", object.to_string())])
                .set(age);
        }
    }
    let store = &state.web.store;
    let counts = store
        .inbox_counts(org)
        .await
        .map_err(|err| crate::mirror::error_chain(&err))?;
    state
        .metrics
        .inbox_depth
        .set(i64::try_from(counts.pending).unwrap_or(i64::MAX));
    let lag = store
        .pending_hints(org, 1)
        .await
        .map_err(|err| crate::mirror::error_chain(&err))?
        .first()
        .map(|oldest| (now - oldest.received_at).num_milliseconds().max(0) as f64 / 1000.0);
    Ok((counts.pending, lag))
}

async fn readyz<C: Crm>(State(state): State<OpsState<C>>) -> Response {
    let (ready, body) = readiness(&state).await;
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

/// Whether the org is ready, and the `/readyz` body that says why.
async fn readiness<C: Crm>(state: &OpsState<C>) -> (bool, serde_json::Value) {
    let inbox = refresh(state).await;
    let status = state.status.get();
    let now = state.clock.now();
    let store_ok = inbox.is_ok();
    let crm_ok = status.crm_ok == Some(true);
    let policy_ok = status.policy_version.is_some();
    // Leader or clean standby: either has reached the CRM with its credentials (the
    // leader's polls, the standby's check at start).
    let lease = &status.lease;
    let lease_ok = lease.is_leader() || lease.is_standby();
    let ready = store_ok && crm_ok && policy_ok && lease_ok;
    let cursors: serde_json::Map<String, serde_json::Value> = state
        .web
        .crm
        .objects()
        .iter()
        .map(|object| {
            let last = status.cursors.get(&object.to_string()).copied();
            let age = last
                .or(status.started_at)
                .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
            (
                object.to_string(),
                json!({ "last_success": last, "age_seconds": age }),
            )
        })
        .collect();
    let (depth, lag, store_error) = match &inbox {
        Ok((depth, lag)) => (Some(*depth), *lag, None),
        Err(err) => (None, None, Some(err.clone())),
    };
    let body = json!({
        "ready": ready,
        "org": state.web.org.as_str(),
        "store": { "ok": store_ok, "error": store_error },
        "crm": {
            "kind": state.web.crm.kind().to_string(),
            "ok": crm_ok,
            "checked": status.crm_ok.is_some(),
        },
        "lease": {
            "name": lease.name,
            "state": lease.state,
            "epoch": lease.epoch,
            "holder": lease.holder,
            "this": lease.this,
            "error": lease.error,
        },
        "policy": {
            "version": status.policy_version,
            "path": status.policy_path,
            "errors": status.policy_errors,
        },
        "cursors": cursors,
        "last_successful_poll": status.last_successful_poll,
        "inbox": { "depth": depth, "lag_seconds": lag },
        "written": status.written,
        "last_write_at": status.last_write_at,
        "last_drift_report": status.last_drift_report,
        "last_error": status.last_error,
        "last_error_at": status.last_error_at,
    });
    (ready, body)
}

async fn metrics_text<C: Crm>(State(state): State<OpsState<C>>) -> Response {
    // A store outage leaves the store-fed gauges at their last value; /readyz says why.
    let _ = refresh(&state).await;
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

/// A boxed future, for [`OrgProbe`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the several-orgs router asks each org: its readiness and its metrics.
pub trait OrgProbe: Send + Sync {
    /// Ready or not, and the org's `/readyz` section.
    fn readiness(&self) -> BoxFuture<'_, (bool, serde_json::Value)>;
    /// The org's metrics (OpenMetrics text, each sample labelled with the org).
    fn metrics_text(&self) -> BoxFuture<'_, String>;
}

impl<C: Crm> OrgProbe for OpsState<C> {
    fn readiness(&self) -> BoxFuture<'_, (bool, serde_json::Value)> {
        Box::pin(readiness(self))
    }

    fn metrics_text(&self) -> BoxFuture<'_, String> {
        Box::pin(async move {
            let _ = refresh(self).await;
            self.metrics.render()
        })
    }
}

/// An org that could not start (its policy has errors, its connector cannot be
/// built): shown as not ready, with why, while the other orgs run.
#[derive(Debug, Clone)]
pub struct FailedOrg {
    pub org: OrgId,
    pub error: String,
}

impl OrgProbe for FailedOrg {
    fn readiness(&self) -> BoxFuture<'_, (bool, serde_json::Value)> {
        let body = json!({ "ready": false, "org": self.org.as_str(), "error": self.error });
        Box::pin(async move { (false, body) })
    }

    fn metrics_text(&self) -> BoxFuture<'_, String> {
        Box::pin(async { String::new() })
    }
}

/// One org's part of the several-orgs router.
#[derive(Clone)]
pub struct OrgEndpoint {
    pub org: OrgId,
    /// `POST /webhooks/{org}` with the org's state (none for an org that failed).
    pub webhooks: Option<Router>,
    pub probe: Arc<dyn OrgProbe>,
}

impl std::fmt::Debug for OrgEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgEndpoint")
            .field("org", &self.org)
            .finish_non_exhaustive()
    }
}

impl<C: Crm> OpsState<C> {
    /// This org's endpoint for [`orgs_router`].
    pub fn endpoint(self) -> OrgEndpoint {
        let org = self.web.org.clone();
        let webhooks = Router::new()
            .route(&format!("/webhooks/{org}"), post(webhook::<C>))
            .with_state(self.clone());
        OrgEndpoint {
            org,
            webhooks: Some(webhooks),
            probe: Arc::new(self),
        }
    }
}

/// The router of a process serving several orgs on one listener.
pub fn orgs_router(endpoints: Vec<OrgEndpoint>) -> Router {
    let probes: Arc<Vec<OrgEndpoint>> = Arc::new(endpoints.clone());
    let mut router = Router::new()
        .route("/webhooks/{org}", post(unknown_org))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(orgs_readyz))
        .route("/metrics", get(orgs_metrics))
        .with_state(probes);
    for endpoint in endpoints {
        if let Some(webhooks) = endpoint.webhooks {
            router = router.merge(webhooks);
        }
    }
    router
}

/// A webhook for an org this process does not serve: 404 with the reason, nothing
/// stored.
async fn unknown_org(
    State(orgs): State<Arc<Vec<OrgEndpoint>>>,
    Path(org): Path<String>,
) -> Response {
    let names: Vec<&str> = orgs.iter().map(|e| e.org.as_str()).collect();
    let body = json!({
        "error": "unknown org",
        "org": org,
        "orgs": names,
        "fix": "post to /webhooks/{org} with a configured org's name",
    });
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

async fn orgs_readyz(State(orgs): State<Arc<Vec<OrgEndpoint>>>) -> Response {
    let mut all_ready = !orgs.is_empty();
    let mut sections = serde_json::Map::new();
    for endpoint in orgs.iter() {
        let (ready, body) = endpoint.probe.readiness().await;
        all_ready &= ready;
        sections.insert(endpoint.org.to_string(), body);
    }
    let ready_orgs: Vec<&str> = sections
        .iter()
        .filter(|(_, b)| b["ready"] == json!(true))
        .map(|(name, _)| name.as_str())
        .collect();
    let body = json!({ "ready": all_ready, "ready_orgs": ready_orgs, "orgs": sections });
    let code = if all_ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

async fn orgs_metrics(State(orgs): State<Arc<Vec<OrgEndpoint>>>) -> Response {
    let mut texts = Vec::with_capacity(orgs.len());
    for endpoint in orgs.iter() {
        texts.push(endpoint.probe.metrics_text().await);
    }
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::merge(&texts),
    )
        .into_response()
}
