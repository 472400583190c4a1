//! HTTP serving: our own accept loop over hyper (so a scripted fault can
//! drop a connection with a TCP reset and no response, which axum's `serve`
//! cannot do), the route table, and the gate middleware every API call passes:
//! stats, authentication, faults, rate limits and HubSpot's response headers.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tower::ServiceExt;

use super::auth::{self, AuthKind};
use super::clock::uuid;
use super::faults::EndpointFamily;
use super::limits::{Admission, WINDOW};
use super::{
    Inner, account, associations, control, create, form_fills, objects, owners, properties, search,
    wire,
};

/// Lets a handler drop its connection without answering.
#[derive(Clone)]
pub(crate) struct ConnKill {
    notify: Arc<Notify>,
    reset: Arc<AtomicBool>,
}

impl ConnKill {
    fn fire(&self) {
        self.reset.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

/// A TCP stream that, when a reset was asked for, closes with `SO_LINGER=0`
/// so the peer sees a reset instead of an orderly close.
struct ResettableStream {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Accepts connections until the simulator is shut down.
pub(crate) async fn serve(listener: TcpListener, inner: Arc<Inner>) {
    let app = router(inner.clone());
    loop {
        let accepted = tokio::select! {
            () = inner.cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Usually EMFILE under load; back off instead of spinning.
                tracing::warn!(%error, "hubspot sim: accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let cancel = inner.cancel.clone();
        let tls = inner.tls.clone();
        tokio::spawn(async move {
            let kill = ConnKill {
                notify: Arc::new(Notify::new()),
                reset: Arc::new(AtomicBool::new(false)),
            };
            let stream = ResettableStream {
                stream,
                reset: kill.reset.clone(),
            };
            // TLS wraps the resettable stream, so a reset fault still ends in RST.
            let stream = tokio::select! {
                wrapped = crate::tls::wrap(tls.as_ref(), stream) => match wrapped {
                    Ok(stream) => stream,
                    Err(error) => {
                        tracing::debug!(%error, "hubspot sim: TLS handshake failed");
                        return;
                    }
                },
                () = cancel.cancelled() => return,
            };
            let io = TokioIo::new(stream);
            let handle = kill.clone();
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(handle.clone());
                app.clone().oneshot(req)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, service);
            tokio::select! {
                _ = conn => {}
                () = kill.notify.notified() => {}
                () = cancel.cancelled() => {}
            }
        });
    }
}

fn router(inner: Arc<Inner>) -> Router {
    let api = Router::new()
        .route(
            "/crm/v3/objects/{object}",
            get(objects::list).post(create::create_one),
        )
        .route(
            "/crm/v3/objects/{object}/{id}",
            get(objects::get_one)
                .patch(objects::patch_one)
                .delete(objects::archive_one),
        )
        .route(
            "/crm/v3/objects/{object}/batch/read",
            post(objects::batch_read),
        )
        .route(
            "/crm/v3/objects/{object}/batch/create",
            post(create::batch_create),
        )
        .route(
            "/crm/v3/objects/{object}/batch/update",
            post(objects::batch_update),
        )
        .route(
            "/crm/v3/objects/{object}/batch/archive",
            post(objects::batch_archive),
        )
        .route("/crm/v3/objects/{object}/search", post(search::search))
        .route("/crm/v3/objects/{object}/merge", post(objects::merge))
        .route("/crm/v3/properties/{object}", get(properties::list))
        .route(
            "/crm/v3/properties/{object}/{name}",
            get(properties::get_one),
        )
        .route("/crm/v3/schemas", get(properties::schemas))
        .route("/crm/v3/owners", get(owners::list))
        .route("/crm/v3/owners/", get(owners::list))
        .route("/crm/v3/owners/{id}", get(owners::get_one))
        .route(
            "/crm/v4/associations/{from}/{to}/batch/read",
            post(associations::batch_read),
        )
        .route(
            "/crm/v4/objects/{from}/{id}/associations/{to}",
            get(associations::list_for),
        )
        .route(
            "/crm/v4/objects/{from}/{id}/associations/{to}/{to_id}",
            put(associations::put_labeled).delete(associations::delete),
        )
        .route(
            "/crm/v4/objects/{from}/{id}/associations/default/{to}/{to_id}",
            put(associations::put_default),
        )
        .route("/oauth/v1/token", post(auth::token))
        .route("/oauth/v3/token", post(auth::token))
        .route("/account-info/v3/details", get(account::details))
        .layer(middleware::from_fn_with_state(inner.clone(), gate));
    Router::new()
        .merge(api)
        .merge(control::routes())
        .merge(form_fills::routes())
        .fallback(unknown_route)
        .with_state(inner)
}

async fn unknown_route() -> Response {
    wire::error(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        "resource not found",
    )
}

/// Endpoint family and stats name (ids replaced by `{id}`), from the path.
fn classify(method: &Method, path: &str) -> (EndpointFamily, String) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let get = *method == Method::GET;
    let (family, shape): (EndpointFamily, Vec<&str>) = match segments.as_slice() {
        ["oauth", ..] => (EndpointFamily::Oauth, segments.clone()),
        ["account-info", ..] => (EndpointFamily::Read, segments.clone()),
        ["crm", "v3", "owners"] => (EndpointFamily::Owners, segments.clone()),
        ["crm", "v3", "owners", _] => (EndpointFamily::Owners, vec!["crm", "v3", "owners", "{id}"]),
        ["crm", "v3", "objects", t] => (
            if get {
                EndpointFamily::List
            } else {
                EndpointFamily::Write
            },
            vec!["crm", "v3", "objects", t],
        ),
        ["crm", "v3", "objects", _, "search"] => (EndpointFamily::Search, segments.clone()),
        ["crm", "v3", "objects", _, "merge"] => (EndpointFamily::Write, segments.clone()),
        ["crm", "v3", "objects", _, "batch", op] => (
            match *op {
                "read" => EndpointFamily::BatchRead,
                "update" => EndpointFamily::BatchUpdate,
                _ => EndpointFamily::Write,
            },
            segments.clone(),
        ),
        ["crm", "v3", "objects", t, _] => (
            if get {
                EndpointFamily::Read
            } else {
                EndpointFamily::Write
            },
            vec!["crm", "v3", "objects", t, "{id}"],
        ),
        ["crm", "v3", "properties", t] => {
            (EndpointFamily::Read, vec!["crm", "v3", "properties", t])
        }
        ["crm", "v3", "properties", t, _] => (
            EndpointFamily::Read,
            vec!["crm", "v3", "properties", t, "{name}"],
        ),
        ["crm", "v3", "schemas"] => (EndpointFamily::Read, segments.clone()),
        ["crm", "v4", "associations", .., "batch", "read"] => {
            (EndpointFamily::Associations, segments.clone())
        }
        ["crm", "v4", "objects", f, _, "associations", rest @ ..] => {
            let mut shape = vec!["crm", "v4", "objects", f, "{id}", "associations"];
            for part in rest {
                shape.push(if part.chars().all(|c| c.is_ascii_digit()) {
                    "{toId}"
                } else {
                    part
                });
            }
            (
                if get {
                    EndpointFamily::Associations
                } else {
                    EndpointFamily::Write
                },
                shape,
            )
        }
        _ => (EndpointFamily::Write, segments.clone()),
    };
    (family, format!("{method} /{}", shape.join("/")))
}

/// Partial-failure fault for the batch/update handler.
#[derive(Clone, Debug)]
pub(crate) struct PartialFailure {
    pub(crate) fraction: f64,
    pub(crate) category: String,
}

const H_INTERVAL: &str = "x-hubspot-ratelimit-interval-milliseconds";
const H_MAX: &str = "x-hubspot-ratelimit-max";
const H_REMAINING: &str = "x-hubspot-ratelimit-remaining";
const H_DAILY: &str = "x-hubspot-ratelimit-daily";
const H_DAILY_REMAINING: &str = "x-hubspot-ratelimit-daily-remaining";

fn set_header(response: &mut Response, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(name), v);
    }
}

async fn gate(State(inner): State<Arc<Inner>>, mut req: Request, next: Next) -> Response {
    let (family, endpoint) = classify(req.method(), req.uri().path());
    inner.stats.lock().call(&endpoint);

    let mut response = handle(&inner, family, &mut req, next).await;
    set_header(&mut response, "x-hubspot-correlation-id", uuid());
    inner.stats.lock().status(response.status().as_u16());
    response
}

async fn handle(
    inner: &Arc<Inner>,
    family: EndpointFamily,
    req: &mut Request,
    next: Next,
) -> Response {
    let auth_kind = if family == EndpointFamily::Oauth {
        None
    } else {
        match auth::check(inner, req.headers()) {
            Ok(kind) => Some(kind),
            Err(response) => return response,
        }
    };

    let decision = inner.faults.lock().decide(family);
    if decision.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(decision.delay_ms)).await;
    }
    if decision.reset
        && let Some(kill) = req.extensions().get::<ConnKill>().cloned()
    {
        inner.stats.lock().connection_resets += 1;
        kill.fire();
        // The connection task drops this future together with the socket.
        std::future::pending::<()>().await;
    }
    let daily = auth_kind == Some(AuthKind::Static);
    let limit = inner.config.ten_second_limit;
    let headers =
        move |response: &mut Response, remaining: u32, daily_remaining: u64, daily_limit: u64| {
            set_header(response, H_INTERVAL, WINDOW.as_millis().to_string());
            set_header(response, H_MAX, limit.to_string());
            set_header(response, H_REMAINING, remaining.to_string());
            if daily {
                set_header(response, H_DAILY, daily_limit.to_string());
                set_header(response, H_DAILY_REMAINING, daily_remaining.to_string());
            }
        };
    if let Some((status, policy)) = decision.respond {
        let mut response = match policy {
            Some(policy) => {
                inner.stats.lock().rate_limited += 1;
                wire::rate_limited(&policy)
            }
            None => wire::server_error(status),
        };
        if family != EndpointFamily::Search && family != EndpointFamily::Oauth {
            let limits = inner.limits.lock();
            let daily_remaining = limits.daily_limit.saturating_sub(limits.daily_used());
            headers(&mut response, 0, daily_remaining, limits.daily_limit);
        }
        return response;
    }
    if let Some((fraction, category)) = decision.partial {
        req.extensions_mut()
            .insert(PartialFailure { fraction, category });
    }

    match family {
        EndpointFamily::Oauth => next.run(std::mem::take(req)).await,
        EndpointFamily::Search => {
            // Search has its own per-second limit and carries no
            // X-HubSpot-RateLimit-* headers (trap 2).
            if !inner.limits.lock().admit_search(daily) {
                inner.stats.lock().rate_limited += 1;
                return wire::rate_limited("SECONDLY");
            }
            next.run(std::mem::take(req)).await
        }
        _ => {
            let admission = inner.limits.lock().admit(daily);
            let daily_limit = inner.config.daily_limit;
            match admission {
                Admission::Allowed {
                    remaining,
                    daily_remaining,
                } => {
                    let mut response = next.run(std::mem::take(req)).await;
                    headers(&mut response, remaining, daily_remaining, daily_limit);
                    response
                }
                Admission::Refused {
                    policy,
                    remaining,
                    daily_remaining,
                } => {
                    inner.stats.lock().rate_limited += 1;
                    let mut response = wire::rate_limited(policy);
                    headers(&mut response, remaining, daily_remaining, daily_limit);
                    response
                }
            }
        }
    }
}
