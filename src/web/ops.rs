//! The sidecar's HTTP surface on the webhook listener: the webhook routes (counted in
//! `leadroute_webhooks_total`), `GET /healthz` (alive), `GET /readyz` (200 only when
//! the store answers, a policy is loaded and this process leads (its CRM calls
//! succeeding) or stands by cleanly; a JSON body with the org lease either way) and `GET /metrics` (Prometheus text).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use leadroute_crm::Crm;
use serde_json::json;

use super::{WebState, handle_webhook};
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
    let inbox = refresh(&state).await;
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
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
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
