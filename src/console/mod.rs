//! The web console (issue 13): server-rendered pages over the store, mounted in the
//! sidecar's axum app (`leadroute run`) and served alone by `leadroute ui`.
//!
//! Pages: `/` overview (its figures refresh from `/partials/overview`), `/graph`
//! (the policy with counts per rule in a window, refreshed from `/partials/graph`), `/records?q=` and `/records/{ref}`
//! (the `explain` journey), `/exceptions` (filter, resolve, retry, bulk), `/runs` and
//! `/runs/{id}` (journal, rollback with a dry run first), `/analytics` (the
//! report of `src/analytics` with CSV/JSON downloads per table). Templates are askama (`templates/console/`), static assets
//! are embedded, and every page reads without JavaScript (`static/console.js` only
//! refreshes the overview's figures and the graph's counts).
//!
//! Access (`auth.rs`): no page without login; changes need an operator or admin, a
//! valid CSRF token (else 403), and go through the same `Writer` (run lease, journal)
//! as the CLI, each one recorded in `console_audit` with who made it.

pub mod auth;
mod pages;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use leadroute_crm::Crm;

use crate::config::Config;
use crate::service::clock::Clock;
use crate::service::status::Status;
use crate::store::Store;
use auth::Auth;

/// Longest query string a console page accepts (longer: 414).
pub const MAX_QUERY: usize = 2048;
/// Largest form body a console action accepts (bulk selections included).
pub const MAX_FORM: usize = 256 * 1024;

/// What the console's routes need.
pub struct ConsoleState<C: Crm> {
    inner: Arc<Inner<C>>,
}

impl<C: Crm> Clone for ConsoleState<C> {
    fn clone(&self) -> Self {
        ConsoleState {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<C: Crm> {
    crm: Arc<C>,
    store: Store,
    config: Config,
    auth: Auth,
    clock: Arc<dyn Clock>,
    /// The running sidecar's status (`leadroute run`); `None` under `leadroute ui`.
    status: Option<Arc<Status>>,
    /// Whether cookies carry `Secure` (everything but plain http on loopback).
    secure: bool,
}

/// How the console is served.
pub struct ConsoleOptions {
    /// `LEADROUTE_UI_ADMIN_PASSWORD`, read by the caller.
    pub admin_password: Option<String>,
    /// The sidecar's status, when the console runs inside `leadroute run`.
    pub status: Option<Arc<Status>>,
    /// Set `Secure` on cookies: true unless the listener is plain http on loopback.
    pub secure_cookies: bool,
}

impl<C: Crm> ConsoleState<C> {
    pub fn new(
        crm: Arc<C>,
        store: Store,
        config: Config,
        clock: Arc<dyn Clock>,
        options: ConsoleOptions,
    ) -> anyhow::Result<Self> {
        let auth = Auth::new(
            config.ui.users.clone(),
            options.admin_password.as_deref(),
            config.ui.session_idle,
        )
        .map_err(anyhow::Error::msg)?;
        if !auth.has_users() {
            tracing::warn!(
                "the console has no users: add [[ui.users]] to the config (`leadroute ui passwd NAME`) \
                 or set {} for the built-in admin",
                auth::ADMIN_PASSWORD_ENV
            );
        }
        Ok(ConsoleState {
            inner: Arc::new(Inner {
                crm,
                store,
                config,
                auth,
                clock,
                status: options.status,
                secure: options.secure_cookies,
            }),
        })
    }
}

/// The console's routes; merge into another router or serve alone.
pub fn router<C: Crm>(state: ConsoleState<C>) -> Router {
    Router::new()
        .route("/", get(pages::overview::<C>))
        .route("/partials/overview", get(pages::overview_partial::<C>))
        .route(
            "/login",
            get(pages::login_form::<C>).post(pages::login::<C>),
        )
        .route("/logout", post(pages::logout::<C>))
        .route("/graph", get(pages::graph::<C>))
        .route("/partials/graph", get(pages::graph::<C>))
        .route("/records", get(pages::records::<C>))
        .route("/records/{record}", get(pages::record::<C>))
        .route("/exceptions", get(pages::exceptions::<C>))
        .route("/exceptions/act", post(pages::exceptions_act::<C>))
        .route("/runs", get(pages::runs::<C>))
        .route("/runs/{run}", get(pages::run::<C>))
        .route("/runs/{run}/rollback", post(pages::rollback::<C>))
        .route("/analytics", get(pages::analytics::<C>))
        .route("/analytics/{file}", get(pages::analytics_table::<C>))
        .route("/static/console.css", get(css))
        .route("/static/console.js", get(js))
        .fallback(pages::not_found::<C>)
        .layer(middleware::from_fn(guard))
        .with_state(state)
}

/// Refuses huge query strings and bodies, and adds the headers every page carries.
async fn guard(request: Request<Body>, next: Next) -> Response {
    if request.uri().query().is_some_and(|q| q.len() > MAX_QUERY) {
        return (
            StatusCode::URI_TOO_LONG,
            "the query string is too long; search with fewer words\n",
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("static/console.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("static/console.js"),
    )
        .into_response()
}
