//! The console's handlers: each checks the session first (no session: to the login
//! page), reads through the store and the same library calls as the CLI, and renders
//! a view. Actions (POST) also check the CSRF token (403) and the role (403).

// Handlers return `Result<Response, Response>` (axum's idiom): the error is the page.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration, TimeZone as _, Utc};
use leadroute_crm::{Crm, OwnerId};
use tracing::{info, warn};

use super::auth::{LoginError, Session, clear_cookie, cookie, set_cookie};
use super::views::*;
use super::{ConsoleState, Inner, MAX_FORM, auth};
use crate::config::UiRole;
use crate::domain::RecordRef;
use crate::store::ExceptionRow;
use crate::writer::{NoProgress, RunId, Writer, WriterSettings};

type Page = Result<Response, Response>;

/// The logged-in user of a request.
struct Visitor {
    name: String,
    role: UiRole,
    session_id: String,
    session: Session,
}

fn render(view: &impl Template) -> Response {
    match view.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => {
            warn!(error = %err, "rendering a console page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered\n",
            )
                .into_response()
        }
    }
}

fn query_pairs(raw: Option<&str>) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn fmt_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn fmt_age(secs: i64) -> String {
    match secs.max(0) {
        s if s < 120 => format!("{s} s"),
        s if s < 7_200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3_600),
        s => format!("{} d", s / 86_400),
    }
}

/// Nearest-rank percentile of sorted samples (`p` in 0..=100).
pub(super) fn percentile(sorted: &[f64], p: u32) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (u64::from(p.min(100)) * sorted.len() as u64)
        .div_ceil(100)
        .max(1);
    sorted.get(usize::try_from(rank - 1).unwrap_or(0)).copied()
}

fn fmt_secs(secs: f64) -> String {
    if secs < 120.0 {
        format!("{secs:.0} s")
    } else if secs < 7_200.0 {
        format!("{:.1} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3_600.0)
    }
}

/// `1h`, `24h`, `7d`, `30d` as a duration.
fn window(text: &str) -> Option<Duration> {
    match text {
        "1h" => Some(Duration::hours(1)),
        "24h" => Some(Duration::hours(24)),
        "7d" => Some(Duration::days(7)),
        "30d" => Some(Duration::days(30)),
        _ => None,
    }
}
const WINDOWS: [&str; 4] = ["1h", "24h", "7d", "30d"];

impl<C: Crm> Inner<C> {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn org(&self) -> String {
        self.crm.kind().as_str().to_owned()
    }

    fn chrome(&self, who: &Visitor, title: &str, nav: &'static str) -> Chrome {
        Chrome {
            title: title.to_owned(),
            nav,
            user: who.name.clone(),
            role: who.role.as_str(),
            can_act: who.role.can_act(),
            csrf: who.session.csrf.clone(),
            org: self.org(),
            notice: None,
        }
    }

    /// The visitor, or a redirect to the login page (back here after it).
    fn visitor(&self, headers: &HeaderMap, uri: &Uri) -> Result<Visitor, Response> {
        let to_login = || {
            let next = uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".to_owned());
            let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
            Redirect::to(&format!("/login?next={next}")).into_response()
        };
        let Some((session_id, session)) = self.auth.session(headers, self.now()) else {
            return Err(to_login());
        };
        let Some((name, role)) = session.user.clone() else {
            return Err(to_login());
        };
        Ok(Visitor {
            name,
            role,
            session_id,
            session,
        })
    }

    /// For a change: the visitor with a valid CSRF token and a role that may act.
    fn actor(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        form: &[(String, String)],
    ) -> Result<Visitor, Response> {
        let who = self.visitor(headers, uri)?;
        if !who.session.csrf_ok(field(form, "csrf")) {
            warn!(user = %who.name, path = %uri.path(), "console: refused a change without a valid CSRF token");
            return Err(self.message(
                &who,
                StatusCode::FORBIDDEN,
                "Refused",
                "This form has expired or did not come from this console (its CSRF token is missing or wrong). Reload the page and try again.",
            ));
        }
        if !who.role.can_act() {
            return Err(self.message(
                &who,
                StatusCode::FORBIDDEN,
                "Not allowed",
                "Viewers can read everything but change nothing; ask an operator or admin.",
            ));
        }
        Ok(who)
    }

    fn message(&self, who: &Visitor, code: StatusCode, heading: &str, text: &str) -> Response {
        let view = Message {
            chrome: self.chrome(who, heading, ""),
            heading: heading.to_owned(),
            text: text.to_owned(),
        };
        (code, render(&view)).into_response()
    }

    fn writer(&self) -> Writer<C> {
        let settings = WriterSettings {
            strict: self.config.crm.salesforce.strict_writes,
            ..self.config.writer.settings.clone()
        };
        Writer::new(
            std::sync::Arc::clone(&self.crm),
            self.store.clone(),
            settings,
        )
    }

    async fn audit(
        &self,
        who: &Visitor,
        action: &str,
        target: &str,
        run: Option<&str>,
        outcome: &str,
    ) {
        info!(user = %who.name, action, target, run = run.unwrap_or("-"), outcome, "console action");
        if let Err(err) = self
            .store
            .audit_add(
                &self.org(),
                self.now(),
                &who.name,
                action,
                target,
                run,
                outcome,
            )
            .await
        {
            warn!(error = %crate::mirror::error_chain(&err), "recording a console action failed");
        }
    }

    fn store_error(&self, who: &Visitor, err: &dyn std::error::Error) -> Response {
        warn!(error = %crate::mirror::error_chain(err), "console: the store did not answer");
        self.message(
            who,
            StatusCode::SERVICE_UNAVAILABLE,
            "The store did not answer",
            "The page could not be read from the store; the server log has the cause. Try again shortly.",
        )
    }
}

fn internal<E: std::error::Error>(
    inner: &Inner<impl Crm>,
    who: &Visitor,
) -> impl FnOnce(E) -> Response {
    move |err| inner.store_error(who, &err)
}

// ---------------------------------------------------------------- login

pub(super) async fn login_form<C: Crm>(
    State(state): State<ConsoleState<C>>,
    RawQuery(q): RawQuery,
) -> Response {
    let inner = &state.inner;
    let (id, session) = inner.auth.anonymous(inner.now());
    let next = safe_next(query_pairs(q.as_deref()).get("next").map(String::as_str));
    let error = (!inner.auth.has_users()).then(|| {
        format!(
            "No console users are configured: add [[ui.users]] (`leadroute ui passwd NAME`) or set {} and restart.",
            auth::ADMIN_PASSWORD_ENV
        )
    });
    let view = Login {
        csrf: session.csrf,
        error,
        next,
    };
    (
        [(header::SET_COOKIE, set_cookie(&id, inner.secure))],
        render(&view),
    )
        .into_response()
}

/// Only local paths: never redirect to another site after login.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

pub(super) async fn login<C: Crm>(
    State(state): State<ConsoleState<C>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inner = &state.inner;
    let form = form_pairs(&body);
    let now = inner.now();
    let old = cookie(&headers, auth::COOKIE);
    let pre = inner.auth.session(&headers, now);
    if !pre
        .as_ref()
        .is_some_and(|(_, s)| s.csrf_ok(field(&form, "csrf")))
    {
        return (
            StatusCode::FORBIDDEN,
            login_page(inner, "This login form expired; log in again.", "/"),
        )
            .into_response();
    }
    let next = safe_next(field(&form, "next"));
    let name = field(&form, "user").unwrap_or_default().trim().to_owned();
    let password = field(&form, "password").unwrap_or_default();
    if name.is_empty() || password.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            login_page(inner, "Enter a user name and a password.", &next),
        )
            .into_response();
    }
    match inner.auth.login(old.as_deref(), &name, password, now) {
        Ok(id) => {
            info!(user = %name, "console: logged in");
            (
                [(header::SET_COOKIE, set_cookie(&id, inner.secure))],
                Redirect::to(&next),
            )
                .into_response()
        }
        Err(LoginError::RateLimited) => {
            warn!(user = %name, "console: login attempts rate-limited");
            (
                StatusCode::TOO_MANY_REQUESTS,
                login_page(
                    inner,
                    "Too many login attempts for this user; wait a minute and try again.",
                    &next,
                ),
            )
                .into_response()
        }
        Err(LoginError::NoUsers) => (
            StatusCode::FORBIDDEN,
            login_page(inner, "No console users are configured.", &next),
        )
            .into_response(),
        Err(LoginError::Refused) => {
            warn!(user = %name, "console: login refused");
            (
                StatusCode::UNAUTHORIZED,
                login_page(inner, "Wrong user name or password.", &next),
            )
                .into_response()
        }
    }
}

fn login_page<C: Crm>(inner: &Inner<C>, error: &str, next: &str) -> Response {
    let (id, session) = inner.auth.anonymous(inner.now());
    let view = Login {
        csrf: session.csrf,
        error: Some(error.to_owned()),
        next: next.to_owned(),
    };
    (
        [(header::SET_COOKIE, set_cookie(&id, inner.secure))],
        render(&view),
    )
        .into_response()
}

pub(super) async fn logout<C: Crm>(
    State(state): State<ConsoleState<C>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let inner = &state.inner;
    let form = form_pairs(&body);
    let who = match inner.visitor(&headers, &uri) {
        Ok(who) => who,
        Err(to_login) => return to_login,
    };
    if !who.session.csrf_ok(field(&form, "csrf")) {
        return inner.message(
            &who,
            StatusCode::FORBIDDEN,
            "Refused",
            "This form did not come from this console.",
        );
    }
    inner.auth.logout(&who.session_id);
    (
        [(header::SET_COOKIE, clear_cookie(inner.secure))],
        Redirect::to("/login"),
    )
        .into_response()
}

pub(super) async fn not_found<C: Crm>(
    State(state): State<ConsoleState<C>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let inner = &state.inner;
    match inner.visitor(&headers, &uri) {
        Ok(who) => inner.message(
            &who,
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("There is no page at {}.", uri.path()),
        ),
        Err(_) => (StatusCode::NOT_FOUND, Html("<!doctype html><title>Not found</title><h1>Not found</h1><p><a href=\"/login\">Log in</a></p>")).into_response(),
    }
}

// ---------------------------------------------------------------- overview

async fn figures<C: Crm>(inner: &Inner<C>, who: &Visitor) -> Result<OverviewFigures, Response> {
    let now = inner.now();
    let org = inner.config.org_ref();
    let mut health = Vec::new();
    let status = inner.status.as_ref().map(|s| s.get());
    // The org lease: this process's view when it runs the pipeline, the store's otherwise.
    match &status {
        Some(status) => {
            let lease = &status.lease;
            health.push(Figure {
                label: "Lease",
                value: lease.state.clone(),
                note: lease
                    .epoch
                    .map(|e| format!("epoch {e}"))
                    .unwrap_or_default(),
                tone: if lease.is_leader() {
                    "ok"
                } else if lease.is_standby() {
                    "warn"
                } else {
                    "bad"
                },
            });
        }
        None => {
            let lease = inner
                .store
                .lease(&crate::service::org_lease_name(&org.name))
                .await
                .map_err(internal(inner, who))?;
            let held = lease
                .as_ref()
                .filter(|l| l.holder.is_some() && l.expires_at.is_some_and(|e| e > now));
            health.push(Figure {
                label: "Lease",
                value: if held.is_some() {
                    "held".to_owned()
                } else {
                    "nobody".to_owned()
                },
                note: held
                    .map(|l| format!("epoch {} · a sidecar runs the pipeline", l.epoch))
                    .unwrap_or_else(|| "no sidecar leads this org".to_owned()),
                tone: if held.is_some() { "ok" } else { "warn" },
            });
        }
    }
    if let Some(status) = &status {
        for object in inner.crm.objects() {
            let last = status
                .cursors
                .get(&object.to_string())
                .copied()
                .or(status.started_at);
            let age = last.map(|t| (now - t).num_seconds());
            health.push(Figure {
                label: "Cursor age",
                value: age.map(fmt_age).unwrap_or_else(|| "—".to_owned()),
                note: object.to_string(),
                tone: match age {
                    Some(a) if a < 600 => "ok",
                    Some(_) => "warn",
                    None => "bad",
                },
            });
        }
        health.push(Figure {
            label: "Last poll",
            value: status
                .last_successful_poll
                .map(|t| format!("{} ago", fmt_age((now - t).num_seconds())))
                .unwrap_or_else(|| "none yet".to_owned()),
            note: status
                .last_error
                .as_ref()
                .map(|_| "last error: see /readyz".to_owned())
                .unwrap_or_default(),
            tone: if status.crm_ok == Some(false) {
                "bad"
            } else {
                "ok"
            },
        });
    }
    let inbox = inner
        .store
        .inbox_counts(&org.name)
        .await
        .map_err(internal(inner, who))?;
    health.push(Figure {
        label: "Inbox",
        value: inbox.pending.to_string(),
        note: "webhook hints waiting".to_owned(),
        tone: if inbox.pending < 1_000 { "ok" } else { "warn" },
    });
    let usage = inner.crm.usage();
    let budget = match (usage.daily_remaining, usage.daily_max) {
        (Some(left), Some(max)) => Figure {
            label: "API budget left",
            value: left.to_string(),
            note: format!("of {max} today"),
            tone: if left.saturating_mul(10) < max {
                "bad"
            } else {
                "ok"
            },
        },
        _ => Figure {
            label: "API budget left",
            value: "—".to_owned(),
            note: format!("{} calls by this process", usage.calls),
            tone: "ok",
        },
    };
    health.push(budget);

    let tz = inner.config.service.time_zone;
    let local = now.with_timezone(&tz).date_naive();
    let midnight = local
        .and_hms_opt(0, 0, 0)
        .and_then(|t| tz.from_local_datetime(&t).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now - Duration::hours(24));
    let stats = inner
        .store
        .console_day_stats(&org.name, midnight)
        .await
        .map_err(internal(inner, who))?;
    let mut speed = stats.speed_secs.clone();
    speed.sort_by(f64::total_cmp);
    let open = inner
        .store
        .exceptions(Some("open"))
        .await
        .map_err(internal(inner, who))?
        .len();
    let today = vec![
        Figure {
            label: "Leads routed",
            value: stats.routed.to_string(),
            note: format!("since midnight {tz}"),
            tone: "ok",
        },
        Figure {
            label: "Speed-to-lead p50",
            value: percentile(&speed, 50)
                .map(fmt_secs)
                .unwrap_or_else(|| "—".to_owned()),
            note: format!("{} new records", speed.len()),
            tone: "ok",
        },
        Figure {
            label: "Speed-to-lead p95",
            value: percentile(&speed, 95)
                .map(fmt_secs)
                .unwrap_or_else(|| "—".to_owned()),
            note: "created → owner written".to_owned(),
            tone: match percentile(&speed, 95) {
                Some(s) if s > 900.0 => "warn",
                _ => "ok",
            },
        },
        Figure {
            label: "Open exceptions",
            value: open.to_string(),
            note: "waiting for a person".to_owned(),
            tone: if open == 0 { "ok" } else { "warn" },
        },
        Figure {
            label: "SLA breaches",
            value: "—".to_owned(),
            note: "SLA timers not configured".to_owned(),
            tone: "ok",
        },
    ];
    Ok(OverviewFigures {
        updated: fmt_time(now),
        health,
        today,
        outcomes: stats.outcomes,
    })
}

pub(super) async fn overview<C: Crm>(
    State(state): State<ConsoleState<C>>,
    headers: HeaderMap,
    uri: Uri,
) -> Page {
    let inner = &state.inner;
    let who = inner.visitor(&headers, &uri)?;
    let body = figures(inner, &who).await?;
    Ok(render(&Overview {
        chrome: inner.chrome(&who, "Overview", "overview"),
        body,
    }))
}

pub(super) async fn overview_partial<C: Crm>(
    State(state): State<ConsoleState<C>>,
    headers: HeaderMap,
    uri: Uri,
) -> Page {
    let inner = &state.inner;
    let who = inner.visitor(&headers, &uri)?;
    Ok(render(&figures(inner, &who).await?))
}

// ---------------------------------------------------------------- graph

pub(super) async fn graph<C: Crm>(
    State(state): State<ConsoleState<C>>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> Page {
    let inner = &state.inner;
    let who = inner.visitor(&headers, &uri)?;
    let query = query_pairs(q.as_deref());
    let win = query.get("window").map(String::as_str).unwrap_or("24h");
    let Some(span) = window(win) else {
        return Err(inner.message(
            &who,
            StatusCode::BAD_REQUEST,
            "Bad window",
            &format!("window={win:?} is not one of 1h, 24h, 7d, 30d."),
        ));
    };
    let Some(path) = inner.config.policy.path.clone() else {
        return Err(inner.message(
            &who,
            StatusCode::OK,
            "No policy",
            "policy.path is not set in the config, so there is no graph to show.",
        ));
    };
    let policy = crate::policy::load(&path).map_err(|issues| {
        let first = issues.first().map(ToString::to_string).unwrap_or_default();
        inner.message(
            &who,
            StatusCode::OK,
            "The policy has problems",
            &format!("Run `leadroute policy check`: {first}"),
        )
    })?;
    let counts = inner
        .store
        .console_rule_counts(&inner.config.org, inner.now() - span)
        .await
        .map_err(internal(inner, &who))?;
    let busiest = counts
        .iter()
        .map(|c| c.records.max(c.exceptions))
        .max()
        .unwrap_or(0)
        .max(1);
    let rules: Vec<GraphRule> = crate::policy::graph::nodes(&policy)
        .into_iter()
        .enumerate()
        .map(|(i, node)| {
            let c = counts
                .iter()
                .find(|c| c.rule == node.name)
                .cloned()
                .unwrap_or_default();
            let link = format!(
                "/records?rule={}&window={win}",
                url::form_urlencoded::byte_serialize(node.name.as_bytes()).collect::<String>()
            );
            GraphRule {
                position: i + 1,
                share: c.records.max(c.exceptions).saturating_mul(100) / busiest,
                name: node.name,
                conditions: node.conditions,
                action: node.action,
                action_kind: node.action_kind,
                records: c.records,
                applied: c.applied,
                exceptions: c.exceptions,
                link,
                fallthrough: node.unavailable,
                passed: 0,
            }
        })
        .collect();
    // The "no" edge below a rule carried every record a later rule decided.
    let mut later = 0u64;
    let mut rules = rules;
    for rule in rules.iter_mut().rev() {
        rule.passed = later;
        later = later.saturating_add(rule.records.max(rule.exceptions));
    }
    let other = counts
        .iter()
        .filter(|c| !rules.iter().any(|r| r.name == c.rule))
        .map(|c| (c.rule.clone(), c.records.max(c.exceptions)))
        .collect();
    let body = GraphRules {
        window: win.to_owned(),
        rules,
    };
    // `/partials/graph`: the rules alone, for the page's refresh.
    if uri.path().starts_with("/partials/") {
        return Ok(render(&body));
    }
    Ok(render(&Graph {
        chrome: inner.chrome(&who, "Graph", "graph"),
        policy: policy.name.clone().unwrap_or_else(|| policy.source.clone()),
        version: policy.version.clone(),
        windows: WINDOWS.iter().map(|w| (*w, *w == win)).collect(),
        window: win.to_owned(),
        body,
        other,
    }))
}

// ---------------------------------------------------------------- records

pub(super) async fn records<C: Crm>(
    State(state): State<ConsoleState<C>>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> Page {
    let inner = &state.inner;
    let who = inner.visitor(&headers, &uri)?;
    let query = query_pairs(q.as_deref());
    let text = query
        .get("q")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let org = inner.config.org_ref();
    let chrome = inner.chrome(&who, "Records", "records");
    if text.chars().count() > 200 {
        return Err(inner.message(
            &who,
            StatusCode::BAD_REQUEST,
            "Search too long",
            "Search with at most 200 characters.",
        ));
    }
    let (heading, hits, searched) = if let Some(rule) = query.get("rule") {
        let win = query.get("window").map(String::as_str).unwrap_or("24h");
        let Some(span) = window(win) else {
            return Err(inner.message(
                &who,
                StatusCode::BAD_REQUEST,
                "Bad window",
                &format!("window={win:?} is not one of 1h, 24h, 7d, 30d."),
            ));
        };
        let hits = inner
            .store
            .console_people_by_rule(&org.name, rule, inner.now() - span, 200)
            .await
            .map_err(internal(inner, &who))?;
        (
            format!("Decided by rule {rule} in the last {win}"),
            hits,
            true,
        )
    } else if text.is_empty() {
        (String::new(), Vec::new(), false)
    } else {
        // A full reference goes straight to the record.
        if let Ok(reference) = text.parse::<RecordRef>() {
            return Ok(Redirect::to(&format!("/records/{reference}")).into_response());
        }
        let hits = inner
            .store
            .console_search_people(&org.name, &text, 50)
            .await
            .map_err(internal(inner, &who))?;
        (format!("Results for “{text}”"), hits, true)
    };
    let rows = hits
        .into_iter()
        .map(|h| PersonRow {
            reference: format!("{}:{}:{}", org.name, h.object, h.id),
            name: h.name,
            email: h.email.unwrap_or_default(),
            company: h.company.unwrap_or_default(),
            owner: h.owner_id.unwrap_or_default(),
        })
        .collect();
    Ok(render(&Records {
        chrome,
        q: text,
        heading,
        rows,
        searched,
    }))
}

pub(super) async fn record<C: Crm>(
    State(state): State<ConsoleState<C>>,
    headers: HeaderMap,
    uri: Uri,
    Path(text): Path<String>,
) -> Page {
    let inner = &state.inner;
    let who = inner.visitor(&headers, &uri)?;
    let reference: RecordRef = text.parse().map_err(|err: String| {
        inner.message(
            &who,
            StatusCode::BAD_REQUEST,
            "Not a record reference",
            &err,
        )
    })?;
    let org = inner.config.org_ref();
    // `hubspot:contact:1` names this org when it is the only HubSpot one.
    let named = crate::domain::resolve_org(reference.org.as_str(), &inner.config.org_refs());
    if named.as_ref() != Ok(&org.name) {
        return Err(inner.message(
            &who,
            StatusCode::NOT_FOUND,
            "Another org",
            &format!(
                "{reference} is not a record of the {} org this console shows.",
                org.name
            ),
        ));
    }
    let policy = inner
        .config
        .policy
        .path
        .as_deref()
        .map(crate::policy::load)
        .transpose()
        .map_err(|issues| {
            let first = issues.first().map(ToString::to_string).unwrap_or_default();
            inner.message(
                &who,
                StatusCode::OK,
                "The policy has problems",
                &format!("Run `leadroute policy check`: {first}"),
            )
        })?;
    let history = inner
        .store
        .record_history(&org.name, reference.object, &reference.id)
        .await
        .map_err(internal(inner, &who))?;
    let snapshot = inner
        .store
        .snapshot(&org)
        .await
        .map_err(internal(inner, &who))?;
    let ledger = inner
        .store
        .load_ledger(&org.name)
        .await
        .map_err(internal(inner, &who))?;
    let person = snapshot
        .people
        .iter()
        .find(|p| p.object == reference.object && p.id == reference.id);
    let mut facts = Vec::new();
    if let Some(p) = person {
        let name = [p.first_name.as_deref(), p.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        facts.push(("Name", name));
        facts.push(("Email", p.email.clone().unwrap_or_default()));
        facts.push(("Company", p.company.clone().unwrap_or_default()));
        let owner = p.owner_id.as_ref().map(|o| {
            snapshot
                .owners
                .iter()
                .find(|w| &w.id == o)
                .map(|w| format!("{} ({o})", w.name))
                .unwrap_or_else(|| o.to_string())
        });
        facts.push(("Owner", owner.unwrap_or_else(|| "none".to_owned())));
    }
    let (decision, journey) = match &policy {
        Some(policy) => (
            crate::reconcile::explain(
                &snapshot,
                policy,
                &ledger,
                inner.now(),
                reference.object,
                &reference.id,
            )
            .map(|d| crate::reconcile::explain::render(&reference.to_string(), &d, policy)),
            crate::reconcile::explain::render_history(&history, policy),
        ),
        None => (
            None,
            "policy.path is not set: no decision to show".to_owned(),
        ),
    };
    let missing = person.is_none().then(|| {
        "Not in the mirror (deleted, merged, or not synced yet); what leadroute did to it is still journaled below.".to_owned()
    });
    if person.is_none() && history.writes.is_empty() && history.exceptions.is_empty() {
        return Err(inner.message(
            &who,
            StatusCode::NOT_FOUND,
            "Record not found",
            &format!("{reference} is not in the mirror and leadroute never touched it."),
        ));
    }
    Ok(render(&Record {
        chrome: inner.chrome(&who, &reference.to_string(), "records"),
        reference: reference.to_string(),
        facts,
        decision,
        journey: journey.trim_start_matches('\n').to_owned(),
        missing,
    }))
}

// ---------------------------------------------------------------- exceptions

const AGES: [(&str, &str); 5] = [
    ("", "any age"),
    ("1h", "1 hour"),
    ("24h", "1 day"),
    ("7d", "7 days"),
    ("30d", "30 days"),
];
const MAX_ROWS: usize = 200;

pub(super) async fn exceptions<C: Crm>(
    State(state): State<ConsoleState<C>>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> Page {
    let inner = &state.inner;
    let mut who = inner.visitor(&headers, &uri)?;
    let query = query_pairs(q.as_deref());
    let kind = query.get("kind").cloned().unwrap_or_default();
    let rule = query.get("rule").cloned().unwrap_or_default();
    let age = query.get("age").cloned().unwrap_or_default();
    let min_age = match age.as_str() {
        "" => None,
        other => match window(other) {
            Some(d) => Some(d),
            None => {
                return Err(inner.message(
                    &who,
                    StatusCode::BAD_REQUEST,
                    "Bad filter",
                    &format!("age={other:?} is not one of 1h, 24h, 7d, 30d."),
                ));
            }
        },
    };
    let now = inner.now();
    let open = inner
        .store
        .exceptions(Some("open"))
        .await
        .map_err(internal(inner, &who))?;
    let kinds: BTreeSet<String> = open.iter().map(|e| e.kind.clone()).collect();
    let rules: BTreeSet<String> = open.iter().map(|e| e.rule.clone()).collect();
    let matching: Vec<&ExceptionRow> = open
        .iter()
        .filter(|e| kind.is_empty() || e.kind == kind)
        .filter(|e| rule.is_empty() || e.rule == rule)
        .filter(|e| min_age.is_none_or(|d| now - e.created_at >= d))
        .collect();
    let owners: Vec<(String, String)> = inner
        .store
        .owners(&inner.config.org)
        .await
        .map_err(internal(inner, &who))?
        .into_iter()
        .filter(|o| o.active && o.kind == leadroute_crm::OwnerKind::User)
        .map(|o| {
            let label = match &o.email {
                Some(email) => format!("{} <{email}>", o.name),
                None => o.name.clone(),
            };
            (o.id.to_string(), label)
        })
        .collect();
    // A rule that routes to a pool: its active members are the eligible reps.
    let policy = inner
        .config
        .policy
        .path
        .as_deref()
        .and_then(|path| crate::policy::load(path).ok());
    let eligible = |rule: &str| -> Vec<(String, String)> {
        let members: Option<Vec<String>> = policy.as_ref().and_then(|p| {
            let r = p.rules.iter().find(|r| r.name == rule)?;
            let crate::policy::model::Action::Pool { pool } = &r.action else {
                return None;
            };
            let pool = p.pools.get(pool)?;
            Some(pool.members.iter().map(|m| m.owner.to_string()).collect())
        });
        match members {
            Some(ids) => {
                let pool: Vec<(String, String)> = owners
                    .iter()
                    .filter(|(id, _)| ids.contains(id))
                    .cloned()
                    .collect();
                if pool.is_empty() {
                    owners.clone()
                } else {
                    pool
                }
            }
            None => owners.clone(),
        }
    };
    let rows = matching
        .iter()
        .take(MAX_ROWS)
        .map(|e| ExceptionView {
            id: e.id,
            record: format!("{}:{}:{}", e.org, e.object, e.record_id),
            kind: e.kind.clone(),
            rule: e.rule.clone(),
            reason: e.reason.clone(),
            desired: e
                .desired
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            age: fmt_age((now - e.created_at).num_seconds()),
            can_retry: e.desired.is_some(),
            owners: eligible(&e.rule),
        })
        .collect::<Vec<_>>();
    let mut chrome = inner.chrome(&who, "Exceptions", "exceptions");
    chrome.notice = inner.auth.take_flash(&who.session_id);
    who.session.csrf = chrome.csrf.clone();
    Ok(render(&Exceptions {
        chrome,
        kind,
        rule,
        age,
        kinds: kinds.into_iter().collect(),
        rules: rules.into_iter().collect(),
        ages: AGES.to_vec(),
        shown: rows.len(),
        rows,
        total: matching.len(),
        owners,
    }))
}

/// One exception action asked for by the form.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Act {
    Resolve { id: i64, owner: String },
    Retry { id: i64 },
}

/// Reads the exceptions form: a row's Resolve/Retry button, or a bulk button with the
/// checked rows. Errors say what is wrong with the form.
fn parse_acts(form: &[(String, String)]) -> Result<Vec<Act>, String> {
    let id_of = |text: &str| -> Result<i64, String> {
        text.parse::<i64>()
            .map_err(|_| format!("{text:?} is not an exception number"))
    };
    if let Some(id) = field(form, "resolve") {
        let id = id_of(id)?;
        let owner = field(form, &format!("owner-{id}"))
            .unwrap_or_default()
            .trim();
        if owner.is_empty() {
            return Err(format!(
                "Choose a rep to give the record of exception {id} to."
            ));
        }
        return Ok(vec![Act::Resolve {
            id,
            owner: owner.to_owned(),
        }]);
    }
    if let Some(id) = field(form, "retry") {
        return Ok(vec![Act::Retry { id: id_of(id)? }]);
    }
    let ids = form
        .iter()
        .filter(|(k, _)| k == "id")
        .map(|(_, v)| id_of(v))
        .collect::<Result<Vec<i64>, String>>()?;
    match field(form, "bulk") {
        Some(_) if ids.is_empty() => Err("Select at least one exception first.".to_owned()),
        Some("retry") => Ok(ids.into_iter().map(|id| Act::Retry { id }).collect()),
        Some("resolve") => {
            let owner = field(form, "owner").unwrap_or_default().trim();
            if owner.is_empty() {
                return Err("Choose a rep to give the selected records to.".to_owned());
            }
            Ok(ids
                .into_iter()
                .map(|id| Act::Resolve {
                    id,
                    owner: owner.to_owned(),
                })
                .collect())
        }
        Some(other) => Err(format!("{other:?} is not an action; use Resolve or Retry.")),
        None => Err("Use a Resolve or Retry button.".to_owned()),
    }
}

pub(super) async fn exceptions_act<C: Crm>(
    State(state): State<ConsoleState<C>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Page {
    let inner = &state.inner;
    if body.len() > MAX_FORM {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            "the form is too large; select fewer rows\n",
        )
            .into_response());
    }
    let form = form_pairs(&body);
    let who = inner.actor(&headers, &uri, &form)?;
    let acts = match parse_acts(&form) {
        Ok(acts) => acts,
        Err(problem) => {
            return Err(inner.message(&who, StatusCode::BAD_REQUEST, "Nothing done", &problem));
        }
    };
    if let Some(Act::Resolve { owner, .. }) = acts.first() {
        let known = inner
            .store
            .owners(&inner.config.org)
            .await
            .map_err(internal(inner, &who))?
            .into_iter()
            .any(|o| o.id.as_str() == owner && o.active);
        if !known {
            return Err(inner.message(
                &who,
                StatusCode::BAD_REQUEST,
                "Nothing done",
                &format!("{owner:?} is not an active owner of this org; pick one from the list."),
            ));
        }
    }
    let writer = inner.writer();
    let mut closed = 0usize;
    let mut problems = Vec::new();
    for act in &acts {
        let (action, id, result) = match act {
            Act::Resolve { id, owner } => (
                "resolve",
                *id,
                writer
                    .resolve_exception(*id, OwnerId::new(owner.clone()), &NoProgress)
                    .await,
            ),
            Act::Retry { id } => ("retry", *id, writer.retry_exception(*id, &NoProgress).await),
        };
        let target = format!("exception {id}");
        match result {
            Ok(report) if report.applied + report.unchanged == 1 => {
                closed += 1;
                inner
                    .audit(&who, action, &target, Some(report.run_id.as_str()), "done")
                    .await;
            }
            Ok(report) => {
                problems.push(format!("{id}: not applied (see run {})", report.run_id));
                inner
                    .audit(
                        &who,
                        action,
                        &target,
                        Some(report.run_id.as_str()),
                        "not applied",
                    )
                    .await;
            }
            Err(err) => {
                let why = crate::mirror::error_chain(&err);
                problems.push(format!("{id}: {why}"));
                inner
                    .audit(&who, action, &target, None, &format!("failed: {why}"))
                    .await;
            }
        }
    }
    let mut notice = format!(
        "{closed} exception{} closed",
        if closed == 1 { "" } else { "s" }
    );
    if !problems.is_empty() {
        notice.push_str(&format!("; still open: {}", problems.join("; ")));
    }
    inner.auth.set_flash(&who.session_id, notice);
    Ok(Redirect::to("/exceptions").into_response())
}

// ---------------------------------------------------------------- runs

fn run_view(row: &crate::store::RunRow, counts: &crate::store::RunCounts) -> RunView {
    RunView {
        id: row.run_id.clone(),
        kind: row.kind.clone(),
        parent: row.parent_run.clone().unwrap_or_default(),
        started: fmt_time(row.created_at),
        status: row.status.as_str().to_owned(),
        applied: counts.applied,
        skipped: counts.unchanged.saturating_add(counts.skipped_changed),
        failed: counts.rejected.saturating_add(counts.failed),
        pending: counts.pending,
    }
}

pub(super) async fn runs<C: Crm>(
    State(state): State<ConsoleState<C>>,
    headers: HeaderMap,
    uri: Uri,
) -> Page {
    let inner = &state.inner;
    let who = inner.visitor(&headers, &uri)?;
    let rows = inner
        .store
        .journal_runs(50)
        .await
        .map_err(internal(inner, &who))?;
    let mut runs = Vec::with_capacity(rows.len());
    for row in &rows {
        let counts = inner
            .store
            .journal_counts(&row.run_id)
            .await
            .map_err(internal(inner, &who))?;
        runs.push(run_view(row, &counts));
    }
    let audit = inner
        .store
        .audit_recent(&inner.org(), 20)
        .await
        .map_err(internal(inner, &who))?
        .into_iter()
        .map(|a| AuditView {
            at: fmt_time(a.at),
            actor: a.actor,
            action: a.action,
            target: a.target,
            run: a.run_id.unwrap_or_default(),
            outcome: a.outcome,
        })
        .collect();
    let mut chrome = inner.chrome(&who, "Runs", "runs");
    chrome.notice = inner.auth.take_flash(&who.session_id);
    Ok(render(&Runs {
        chrome,
        runs,
        audit,
    }))
}

const MAX_ENTRIES: usize = 500;

pub(super) async fn run<C: Crm>(
    State(state): State<ConsoleState<C>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Page {
    let inner = &state.inner;
    let who = inner.visitor(&headers, &uri)?;
    let Some(row) = inner
        .store
        .journal_run(&id)
        .await
        .map_err(internal(inner, &who))?
    else {
        return Err(inner.message(
            &who,
            StatusCode::NOT_FOUND,
            "No such run",
            &format!("There is no run {id}; the Runs page lists them."),
        ));
    };
    let counts = inner
        .store
        .journal_counts(&id)
        .await
        .map_err(internal(inner, &who))?;
    let entries = inner
        .store
        .journal_entries(&id)
        .await
        .map_err(internal(inner, &who))?;
    let names: std::collections::HashMap<String, String> = inner
        .store
        .owners(&inner.config.org)
        .await
        .map_err(internal(inner, &who))?
        .into_iter()
        .map(|o| (o.id.to_string(), o.name))
        .collect();
    let owner = |id: Option<&OwnerId>| match id {
        None => "none".to_owned(),
        Some(id) => match names.get(id.as_str()) {
            Some(name) => format!("{name} ({id})"),
            None => id.to_string(),
        },
    };
    let more = entries.len().saturating_sub(MAX_ENTRIES);
    let entries = entries
        .iter()
        .take(MAX_ENTRIES)
        .map(|e| EntryView {
            seq: e.seq,
            record: format!("{}:{}:{}", e.org, e.object, e.id),
            change: format!("{} → {}", owner(e.before.as_ref()), owner(Some(&e.after))),
            rule: e.rule.clone(),
            outcome: e.outcome.clone().unwrap_or_else(|| e.state.clone()),
            detail: [
                e.reject_kind.as_deref(),
                e.code.as_deref(),
                e.message.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": "),
        })
        .collect();
    let mut chrome = inner.chrome(&who, &format!("Run {id}"), "runs");
    chrome.notice = inner.auth.take_flash(&who.session_id);
    Ok(render(&Run {
        can_roll_back: who.role.can_act() && counts.applied > 0,
        chrome,
        run: run_view(&row, &counts),
        message: row.message.clone().unwrap_or_default(),
        entries,
        more,
    }))
}

pub(super) async fn rollback<C: Crm>(
    State(state): State<ConsoleState<C>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let inner = &state.inner;
    let form = form_pairs(&body);
    let who = inner.actor(&headers, &uri, &form)?;
    let writer = inner.writer();
    if let Err(err) = writer.rollback_check(&id).await {
        return Err(inner.message(
            &who,
            StatusCode::CONFLICT,
            "Cannot roll back",
            &crate::mirror::error_chain(&err),
        ));
    }
    let confirmed = field(&form, "confirm") == Some("yes");
    let rollback_run = RunId::new(format!("{}-rollback", RunId::generate(inner.now())));
    let result = writer
        .rollback(&id, rollback_run, !confirmed, &NoProgress)
        .await
        .map_err(|err| {
            inner.message(
                &who,
                StatusCode::BAD_GATEWAY,
                "Rollback failed",
                &crate::mirror::error_chain(&err),
            )
        })?;
    if !confirmed {
        let left = result
            .by_reason()
            .into_iter()
            .map(|(reason, n)| (n, reason.describe().to_owned()))
            .collect();
        return Ok(render(&Rollback {
            chrome: inner.chrome(&who, &format!("Roll back {id}"), "runs"),
            run: id,
            would_revert: result.would_revert,
            left,
        }));
    }
    let run_id = result.report.as_ref().map(|r| r.run_id.to_string());
    let outcome = format!(
        "reverted {}, left alone {}",
        result.reverted,
        result.left_alone.len()
    );
    inner
        .audit(
            &who,
            "rollback",
            &format!("run {id}"),
            run_id.as_deref(),
            &outcome,
        )
        .await;
    inner
        .auth
        .set_flash(&who.session_id, format!("Run {id}: {outcome}"));
    Ok(Redirect::to("/runs").into_response())
}

pub(super) async fn analytics<C: Crm>(
    State(state): State<ConsoleState<C>>,
    headers: HeaderMap,
    uri: Uri,
) -> Page {
    let inner = &state.inner;
    let who = inner.visitor(&headers, &uri)?;
    let (since, report) = analytics_report(inner, &who, &uri).await?;
    Ok(render(&Analytics {
        chrome: inner.chrome(&who, "Analytics", "analytics"),
        options: ["7d", "30d", "90d"]
            .iter()
            .map(|w| {
                let selected = if *w == since { " selected" } else { "" };
                format!("<option value=\"{w}\"{selected}>{w}</option>")
            })
            .collect(),
        body: crate::analytics::page::render(&report),
    }))
}

/// `/analytics/{table}.csv|json`: one table of the report, for download.
pub(super) async fn analytics_table<C: Crm>(
    State(state): State<ConsoleState<C>>,
    headers: HeaderMap,
    uri: Uri,
    Path(file): Path<String>,
) -> Page {
    let inner = &state.inner;
    let who = inner.visitor(&headers, &uri)?;
    let (name, format) = match file.rsplit_once('.') {
        Some((name, ext @ ("csv" | "json"))) => (name.to_owned(), ext),
        _ => {
            return Err(inner.message(
                &who,
                StatusCode::NOT_FOUND,
                "Not a table",
                "Tables download as /analytics/NAME.csv or /analytics/NAME.json.",
            ));
        }
    };
    let (_, report) = analytics_report(inner, &who, &uri).await?;
    let Some(table) = report.table(&name) else {
        return Err(inner.message(
            &who,
            StatusCode::NOT_FOUND,
            "No such table",
            &format!("The report has no table {name:?}."),
        ));
    };
    let (body, content_type) = if format == "csv" {
        (table.to_csv(), "text/csv; charset=utf-8")
    } else {
        (table.to_json(), "application/json")
    };
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, content_type.to_owned()),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.{format}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// The analytics report over `since=` (default 30 days) for this console's org.
async fn analytics_report<C: Crm>(
    inner: &Inner<C>,
    who: &Visitor,
    uri: &Uri,
) -> Result<(String, crate::analytics::AnalyticsReport), Response> {
    let since = query_pairs(uri.query())
        .remove("since")
        .unwrap_or_else(|| "30d".to_owned());
    let span = crate::analytics::parse_since(&since).map_err(|err| {
        inner.message(who, StatusCode::BAD_REQUEST, "Bad window", &err.to_string())
    })?;
    let Some(path) = inner.config.policy.path.clone() else {
        return Err(inner.message(
            who,
            StatusCode::OK,
            "No policy",
            "policy.path is not set in the config: fairness needs the pools.",
        ));
    };
    let policy = crate::policy::load(&path).map_err(|issues| {
        let first = issues.first().map(ToString::to_string).unwrap_or_default();
        inner.message(
            who,
            StatusCode::OK,
            "The policy has problems",
            &format!("Run `leadroute policy check`: {first}"),
        )
    })?;
    let now = inner.now();
    let report = crate::analytics::load::report(
        &inner.store,
        &inner.config.org,
        &policy,
        Some(&inner.config.drift.out_dir),
        crate::analytics::Window::ending(now, span),
        now,
    )
    .await
    .map_err(internal(inner, who))?;
    Ok((since, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&s, 50), Some(5.0));
        assert_eq!(percentile(&s, 95), Some(10.0));
        assert_eq!(percentile(&s, 0), Some(1.0));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn the_exceptions_form_says_what_is_wrong() {
        assert_eq!(
            parse_acts(&form(&[("resolve", "7"), ("owner-7", "o1")])),
            Ok(vec![Act::Resolve {
                id: 7,
                owner: "o1".to_owned()
            }])
        );
        assert_eq!(
            parse_acts(&form(&[("resolve", "7"), ("owner-7", "")])),
            Err("Choose a rep to give the record of exception 7 to.".to_owned())
        );
        assert_eq!(
            parse_acts(&form(&[("retry", "x")])),
            Err("\"x\" is not an exception number".to_owned())
        );
        assert_eq!(
            parse_acts(&form(&[("bulk", "retry")])),
            Err("Select at least one exception first.".to_owned())
        );
        assert_eq!(
            parse_acts(&form(&[("bulk", "retry"), ("id", "1"), ("id", "2")])),
            Ok(vec![Act::Retry { id: 1 }, Act::Retry { id: 2 }])
        );
        assert_eq!(
            parse_acts(&form(&[("bulk", "resolve"), ("id", "1")])),
            Err("Choose a rep to give the selected records to.".to_owned())
        );
    }

    #[test]
    fn login_never_redirects_off_site() {
        assert_eq!(safe_next(Some("/graph?window=7d")), "/graph?window=7d");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
