//! Credentials: the static private-app Bearer token, OAuth access tokens
//! minted by `POST /oauth/v1/token` and `/oauth/v3/token` (refresh-token
//! grant, form-encoded, snake_case answer), their expiry, and the 401 bodies
//! for missing, invalid and expired credentials.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::json;

use super::Inner;
use super::clock::{now_ms, uuid};
use super::wire::{self, json_response};

/// How a request authenticated; OAuth calls get no daily limit or headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthKind {
    Static,
    OAuth,
}

/// Issued OAuth access tokens → expiry (epoch ms).
#[derive(Debug, Default)]
pub(crate) struct TokenBook {
    access: HashMap<String, i64>,
    refreshes: u64,
}

impl TokenBook {
    /// Makes every issued access token expire now (fault `expire_tokens`).
    pub(crate) fn expire_all(&mut self) {
        let now = now_ms();
        for expiry in self.access.values_mut() {
            *expiry = (*expiry).min(now - 1);
        }
    }

    /// How many refreshes were served.
    pub(crate) fn refreshes(&self) -> u64 {
        self.refreshes
    }
}

const SCOPES: &[&str] = &[
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.owners.read",
];

/// Checks the `Authorization` header.
pub(crate) fn check(inner: &Inner, headers: &HeaderMap) -> Result<AuthKind, Response> {
    let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(wire::error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        ));
    };
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .unwrap_or("")
        .trim();
    if !token.is_empty() && token == inner.config.token {
        return Ok(AuthKind::Static);
    }
    let expiry = inner.tokens.lock().access.get(token).copied();
    match expiry {
        Some(expires_at) if expires_at > now_ms() => Ok(AuthKind::OAuth),
        Some(expires_at) => {
            let ago_min = ((now_ms() - expires_at) / 60_000).max(0);
            Err(wire::error(
                StatusCode::UNAUTHORIZED,
                "EXPIRED_AUTHENTICATION",
                format!("The OAuth token used to make this call expired {ago_min} minute(s) ago."),
            ))
        }
        None => Err(wire::error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        )),
    }
}

fn oauth_error(status: &str, message: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"status": status, "message": message, "correlationId": uuid()}),
    )
}

/// Access tokens vary in length and can exceed 300 characters (docs); the
/// simulator mints long ones so clients don't assume a size.
fn mint_access_token() -> String {
    let mut rng = rand::rng();
    let len = rng.random_range(280..340);
    let tail: String = (&mut rng)
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect();
    format!("CN{tail}")
}

/// `POST /oauth/v1/token` and `POST /oauth/v3/token`.
pub(crate) async fn token(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    match field("grant_type") {
        "refresh_token" => {}
        "authorization_code" => {
            return oauth_error("BAD_AUTH_CODE", "missing or unknown auth code");
        }
        "" => return oauth_error("BAD_GRANT_TYPE", "missing grant_type"),
        _ => return oauth_error("BAD_GRANT_TYPE", "unsupported grant_type"),
    }
    if field("client_id") != inner.config.client_id {
        return oauth_error("BAD_CLIENT_ID", "missing or unknown client id");
    }
    if field("client_secret") != inner.config.client_secret {
        return oauth_error("BAD_CLIENT_SECRET", "missing or invalid client secret");
    }
    if field("refresh_token") != inner.config.refresh_token {
        return oauth_error("BAD_REFRESH_TOKEN", "missing or unknown refresh token");
    }
    let ttl_ms = i64::try_from(inner.config.access_token_ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let access = mint_access_token();
    {
        let mut book = inner.tokens.lock();
        book.access.insert(access.clone(), now_ms() + ttl_ms);
        book.refreshes += 1;
    }
    json_response(
        StatusCode::OK,
        json!({
            "token_type": "bearer",
            "refresh_token": inner.config.refresh_token,
            "access_token": access,
            "expires_in": inner.config.access_token_ttl.as_secs(),
            "hub_id": inner.config.portal_id,
            "scopes": SCOPES,
            "token_use": "access_token",
        }),
    )
}
