//! The OAuth 2.0 token endpoint (`POST /services/oauth2/token`): JWT bearer (RS256
//! assertion verified against the configured certificate; `iss`, `sub`, `aud`, `exp`
//! checked), refresh token (with optional rotation) and client credentials (form or
//! HTTP Basic). Also `revoke` and `userinfo`.

use axum::http::{HeaderMap, Method, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use sha2::Sha256;

use super::super::schema::ObjType;
use super::super::server::{Resp, Shared};

/// Audiences a JWT assertion may name besides the simulator's own URL.
const AUDIENCES: &[&str] = &[
    "https://login.salesforce.com",
    "https://test.salesforce.com",
];
/// How far ahead `exp` may be (Salesforce: three minutes), plus clock slack.
const MAX_EXP_AHEAD_SECS: i64 = 180 + 5;

fn oauth_error(error: &str, description: &str) -> Resp {
    Resp::json(
        StatusCode::BAD_REQUEST,
        json!({"error": error, "error_description": description}),
    )
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Json,
    exp: i64,
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The active user with this username.
fn user_by_username(shared: &Shared, username: &str) -> Option<String> {
    let org = shared.org.lock();
    let u = ObjType::User;
    org.table(u)
        .rows
        .iter()
        .find(|r| {
            r.vals[u.idx("Username")]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(username))
                && r.vals[u.idx("IsActive")].as_bool()
        })
        .map(|r| r.id().to_owned())
}

fn success(shared: &Shared, user_id: &str, scope: &str, refresh_token: Option<String>) -> Resp {
    let access_token = shared.new_session(user_id);
    shared.stats.lock().tokens_issued += 1;
    let id = format!("{}/id/{}/{user_id}", shared.base_url, shared.config.org_id);
    let issued_at = Utc::now().timestamp_millis().to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(shared.config.client_secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    let mut body = json!({
        "access_token": access_token,
        "instance_url": shared.base_url,
        "id": id,
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": signature,
        "scope": scope,
    });
    if let Some(refresh) = refresh_token {
        body["refresh_token"] = json!(refresh);
    }
    Resp::ok(body)
}

pub(crate) fn token(shared: &Shared, method: &Method, headers: &HeaderMap, body: &[u8]) -> Resp {
    if method != Method::POST {
        return oauth_error("invalid_request", "must use HTTP POST");
    }
    let form = form(body);
    match field(&form, "grant_type") {
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => jwt_bearer(shared, &form),
        Some("refresh_token") => refresh(shared, &form),
        Some("client_credentials") => client_credentials(shared, headers, &form),
        Some("password") => oauth_error(
            "unsupported_grant_type",
            "the username-password flow is disabled in this org",
        ),
        _ => oauth_error("unsupported_grant_type", "grant type not supported"),
    }
}

fn jwt_bearer(shared: &Shared, form: &[(String, String)]) -> Resp {
    let Some(assertion) = field(form, "assertion") else {
        return oauth_error("invalid_request", "assertion parameter is required");
    };
    let Some(key) = &shared.jwt_key else {
        return oauth_error(
            "invalid_grant",
            "invalid assertion: no certificate is configured on the connected app",
        );
    };
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 0;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let claims = match jsonwebtoken::decode::<Claims>(assertion, key, &validation) {
        Ok(data) => data.claims,
        Err(err) => {
            return match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    oauth_error("invalid_grant", "expired authorization code")
                }
                _ => oauth_error("invalid_grant", "invalid assertion"),
            };
        }
    };
    if claims.iss != shared.config.client_id {
        return oauth_error("invalid_client_id", "client identifier invalid");
    }
    let audiences: Vec<&str> = match &claims.aud {
        Json::String(s) => vec![s.as_str()],
        Json::Array(items) => items.iter().filter_map(Json::as_str).collect(),
        _ => Vec::new(),
    };
    let base = shared.base_url.as_str();
    let accepted = audiences.iter().any(|a| {
        let a = a.trim_end_matches('/');
        AUDIENCES.contains(&a) || a == base
    });
    if !accepted {
        return oauth_error("invalid_grant", "audience is invalid");
    }
    if claims.exp - Utc::now().timestamp() > MAX_EXP_AHEAD_SECS {
        return oauth_error(
            "invalid_grant",
            "invalid assertion: exp must be at most 3 minutes in the future",
        );
    }
    match user_by_username(shared, &claims.sub) {
        Some(user) => success(shared, &user, "api", None),
        None => oauth_error("invalid_grant", "user hasn't approved this consumer"),
    }
}

fn refresh(shared: &Shared, form: &[(String, String)]) -> Resp {
    let Some(token) = field(form, "refresh_token") else {
        return oauth_error("invalid_request", "refresh_token parameter is required");
    };
    if let Some(client_id) = field(form, "client_id")
        && client_id != shared.config.client_id
    {
        return oauth_error("invalid_client_id", "client identifier invalid");
    }
    if let Some(secret) = field(form, "client_secret")
        && secret != shared.config.client_secret
    {
        return oauth_error("invalid_client", "invalid client credentials");
    }
    let next = {
        let mut sessions = shared.sessions.lock();
        if !sessions.refresh_tokens.contains(token) {
            return oauth_error("invalid_grant", "expired access/refresh token");
        }
        if shared.config.rotate_refresh_tokens {
            sessions.refresh_tokens.remove(token);
            let next = format!("5Aep861{}", shared.new_refresh_suffix());
            sessions.refresh_tokens.insert(next.clone());
            Some(next)
        } else {
            None
        }
    };
    let user = shared.org.lock().api_user_id.clone();
    success(shared, &user, "api refresh_token", next)
}

fn client_credentials(shared: &Shared, headers: &HeaderMap, form: &[(String, String)]) -> Resp {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_owned(), b.to_owned())));
    let (id, secret) = match (
        basic,
        field(form, "client_id"),
        field(form, "client_secret"),
    ) {
        (Some((id, secret)), _, _) => (id, secret),
        (None, Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
        _ => return oauth_error("invalid_client", "client credentials are required"),
    };
    if id != shared.config.client_id {
        return oauth_error("invalid_client_id", "client identifier invalid");
    }
    if secret != shared.config.client_secret {
        return oauth_error("invalid_client", "invalid client credentials");
    }
    let user = shared.org.lock().api_user_id.clone();
    success(shared, &user, "api", None)
}

/// `revoke` and `userinfo`.
pub(crate) fn other(shared: &Shared, path: &str, headers: &HeaderMap, body: &[u8]) -> Resp {
    match path.trim_end_matches('/') {
        "/services/oauth2/revoke" => {
            let form = form(body);
            if let Some(token) = field(&form, "token") {
                let mut sessions = shared.sessions.lock();
                sessions.by_token.remove(token);
                sessions.refresh_tokens.remove(token);
            }
            Resp::empty(StatusCode::OK)
        }
        "/services/oauth2/userinfo" => {
            let token = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let user = token.and_then(|t| {
                shared
                    .sessions
                    .lock()
                    .by_token
                    .get(t)
                    .map(|s| s.user_id.clone())
            });
            match user {
                Some(user_id) => Resp::ok(json!({
                    "user_id": user_id,
                    "organization_id": shared.config.org_id,
                    "preferred_username": shared.config.username,
                    "sub": format!("{}/id/{}/{user_id}", shared.base_url, shared.config.org_id),
                })),
                None => Resp::json(StatusCode::FORBIDDEN, json!("Bad_OAuth_Token")),
            }
        }
        _ => Resp::not_found(),
    }
}
