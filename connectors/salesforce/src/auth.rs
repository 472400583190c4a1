//! OAuth 2.0 server-side flows: JWT bearer, refresh token (with rotation), client
//! credentials, and a pre-issued session token.
//!
//! Every flow returns an access token plus the `instance_url` to call; the instance URL
//! is re-read from every token response because it changes on org migrations and My
//! Domain renames. Salesforce gives no `expires_in`: a session lives until the org's
//! timeout policy ends it, which the client learns from a 401 `INVALID_SESSION_ID`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use leadroute_crm::{CrmError, ErrorKind};
use parking_lot::Mutex;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::wire::{OAuthError, TokenResponse};

/// How the connector authenticates.
#[derive(Clone)]
pub enum SalesforceAuth {
    /// JWT bearer: an RS256 assertion signed with the key whose certificate is on the
    /// connected app. No refresh token; a new assertion is minted whenever the session
    /// dies. The preferred flow for a server-side sidecar.
    JwtBearer {
        /// The connected app's consumer key (`iss`).
        client_id: String,
        /// The pre-authorized integration user (`sub`).
        username: String,
        /// PEM-encoded RSA private key (PKCS#1 or PKCS#8).
        private_key_pem: SecretString,
        /// `aud`: `https://login.salesforce.com`, `https://test.salesforce.com` or an
        /// Experience Cloud site URL. Not the My Domain URL.
        audience: String,
    },
    /// Refresh token from a prior interactive web-server flow. With rotation on, each
    /// refresh returns a new refresh token and kills the old one: the connector hands
    /// it to the hook registered with
    /// [`crate::Salesforce::on_refresh_token_rotated`] (persist it atomically) and
    /// uses it from then on ([`crate::Salesforce::current_refresh_token`]).
    RefreshToken {
        client_id: String,
        client_secret: Option<SecretString>,
        refresh_token: SecretString,
    },
    /// Client credentials; runs as the app's "Run As" user. Needs the My Domain host
    /// as `login_url` (login/test hosts reject this flow).
    ClientCredentials {
        client_id: String,
        client_secret: SecretString,
    },
    /// A session token issued out of band (e.g. `sf org display`, the simulator's
    /// `--token`). Needs `instance_url`; cannot be renewed, so a 401 is final.
    Session { token: SecretString },
}

impl std::fmt::Debug for SalesforceAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SalesforceAuth::JwtBearer {
                client_id,
                username,
                audience,
                ..
            } => f
                .debug_struct("JwtBearer")
                .field("client_id", client_id)
                .field("username", username)
                .field("audience", audience)
                .field("private_key_pem", &"[REDACTED]")
                .finish(),
            SalesforceAuth::RefreshToken { client_id, .. } => f
                .debug_struct("RefreshToken")
                .field("client_id", client_id)
                .field("refresh_token", &"[REDACTED]")
                .finish_non_exhaustive(),
            SalesforceAuth::ClientCredentials { client_id, .. } => f
                .debug_struct("ClientCredentials")
                .field("client_id", client_id)
                .field("client_secret", &"[REDACTED]")
                .finish(),
            SalesforceAuth::Session { .. } => f
                .debug_struct("Session")
                .field("token", &"[REDACTED]")
                .finish(),
        }
    }
}

impl SalesforceAuth {
    pub fn flow_name(&self) -> &'static str {
        match self {
            SalesforceAuth::JwtBearer { .. } => "jwt_bearer",
            SalesforceAuth::RefreshToken { .. } => "refresh_token",
            SalesforceAuth::ClientCredentials { .. } => "client_credentials",
            SalesforceAuth::Session { .. } => "session",
        }
    }
}

/// A hook that receives each rotated refresh token; it must persist it (the old one is
/// dead as soon as Salesforce issued the new one).
pub type RotationHook = Arc<dyn Fn(&SecretString) + Send + Sync>;

/// A usable session.
pub(crate) struct Session {
    pub(crate) access_token: SecretString,
    pub(crate) instance_url: String,
    /// `00D…` org id from the identity URL, when the token response carried one.
    pub(crate) organization_id: Option<String>,
}

/// JWT bearer claims. `exp` at most 3 minutes ahead, as Salesforce requires.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

/// Lifetime of a JWT assertion: under Salesforce's 3-minute maximum with room for
/// clock skew.
const ASSERTION_TTL: Duration = Duration::from_secs(150);

/// Builds the RS256 assertion for the JWT bearer flow.
pub(crate) fn jwt_assertion(
    client_id: &str,
    username: &str,
    audience: &str,
    private_key_pem: &SecretString,
) -> Result<String, CrmError> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.expose_secret().as_bytes())
        .map_err(|e| {
            CrmError::new(
                ErrorKind::Auth,
                "salesforce jwt bearer: private_key_pem is not a PEM RSA private key; give the key whose certificate is on the connected app",
            )
            .with_source(e)
        })?;
    let claims = Claims {
        iss: client_id,
        sub: username,
        aud: audience,
        exp: Utc::now().timestamp() + ASSERTION_TTL.as_secs() as i64,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .map_err(|e| {
        CrmError::new(
            ErrorKind::Auth,
            "salesforce jwt bearer: signing the assertion failed",
        )
        .with_source(e)
    })
}

/// Runs the configured flow against the token endpoint.
pub(crate) struct Authenticator {
    http: reqwest::Client,
    login_url: String,
    instance_url: Option<String>,
    auth: SalesforceAuth,
    /// The refresh token in force (rotated ones replace the configured one).
    refresh_token: Mutex<Option<SecretString>>,
    on_rotate: Mutex<Option<RotationHook>>,
}

impl Authenticator {
    pub(crate) fn new(
        http: reqwest::Client,
        login_url: String,
        instance_url: Option<String>,
        auth: SalesforceAuth,
    ) -> Self {
        let refresh_token = match &auth {
            SalesforceAuth::RefreshToken { refresh_token, .. } => Some(refresh_token.clone()),
            _ => None,
        };
        Authenticator {
            http,
            login_url: login_url.trim_end_matches('/').to_owned(),
            instance_url,
            auth,
            refresh_token: Mutex::new(refresh_token),
            on_rotate: Mutex::new(None),
        }
    }

    pub(crate) fn set_rotation_hook(&self, hook: RotationHook) {
        *self.on_rotate.lock() = Some(hook);
    }

    pub(crate) fn current_refresh_token(&self) -> Option<SecretString> {
        self.refresh_token.lock().clone()
    }

    pub(crate) fn flow_name(&self) -> &'static str {
        self.auth.flow_name()
    }

    /// The session to start with, if the flow needs no token request (pre-issued).
    pub(crate) fn initial_session(&self) -> Option<Session> {
        match &self.auth {
            SalesforceAuth::Session { token } => Some(Session {
                access_token: token.clone(),
                instance_url: self
                    .instance_url
                    .clone()
                    .unwrap_or_else(|| self.login_url.clone()),
                organization_id: None,
            }),
            _ => None,
        }
    }

    /// Obtains a new session from the token endpoint.
    pub(crate) async fn authenticate(&self, timeout: Duration) -> Result<Session, CrmError> {
        let mut form: Vec<(&str, String)> = Vec::new();
        match &self.auth {
            SalesforceAuth::JwtBearer {
                client_id,
                username,
                private_key_pem,
                audience,
            } => {
                form.push((
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                ));
                form.push((
                    "assertion",
                    jwt_assertion(client_id, username, audience, private_key_pem)?,
                ));
            }
            SalesforceAuth::RefreshToken {
                client_id,
                client_secret,
                ..
            } => {
                let refresh_token = self
                    .current_refresh_token()
                    .expect("refresh-token flow always holds a refresh token");
                form.push(("grant_type", "refresh_token".into()));
                form.push(("refresh_token", refresh_token.expose_secret().to_owned()));
                form.push(("client_id", client_id.clone()));
                if let Some(secret) = client_secret {
                    form.push(("client_secret", secret.expose_secret().to_owned()));
                }
            }
            SalesforceAuth::ClientCredentials {
                client_id,
                client_secret,
            } => {
                form.push(("grant_type", "client_credentials".into()));
                form.push(("client_id", client_id.clone()));
                form.push(("client_secret", client_secret.expose_secret().to_owned()));
            }
            SalesforceAuth::Session { .. } => {
                return Err(CrmError::new(
                    ErrorKind::Auth,
                    "salesforce session token expired or invalid (INVALID_SESSION_ID) and a pre-issued session cannot be renewed; issue a new token or configure jwt_bearer, refresh_token or client_credentials",
                )
                .with_status(401));
            }
        }
        let url = format!("{}/services/oauth2/token", self.login_url);
        let response = self
            .http
            .post(&url)
            .timeout(timeout)
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                let kind = if e.is_timeout() {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Network
                };
                CrmError::new(kind, format!("salesforce token endpoint {url}: no answer"))
                    .with_source(e)
            })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| {
            CrmError::new(
                ErrorKind::Network,
                "salesforce token endpoint: response body lost",
            )
            .with_source(e)
        })?;
        if !(200..300).contains(&status) {
            let error: OAuthError = serde_json::from_slice(&body).unwrap_or(OAuthError {
                error: String::new(),
                error_description: String::new(),
            });
            let kind = if status >= 500 {
                ErrorKind::Unavailable
            } else {
                ErrorKind::Auth
            };
            return Err(CrmError::new(
                kind,
                format!(
                    "salesforce {} flow refused: {} {} ({}); check the connected app, user pre-authorization and credentials",
                    self.auth.flow_name(),
                    error.error,
                    error.error_description,
                    status
                ),
            )
            .with_status(status));
        }
        let token: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            CrmError::new(
                ErrorKind::Protocol,
                "salesforce token endpoint answered an unreadable body",
            )
            .with_source(e)
        })?;
        if let Some(new_refresh) = token.refresh_token.as_deref().filter(|t| !t.is_empty()) {
            if matches!(self.auth, SalesforceAuth::RefreshToken { .. }) {
                let new_refresh = SecretString::from(new_refresh.to_owned());
                let rotated = self
                    .current_refresh_token()
                    .is_none_or(|old| old.expose_secret() != new_refresh.expose_secret());
                if rotated {
                    *self.refresh_token.lock() = Some(new_refresh.clone());
                    let hook = self.on_rotate.lock().clone();
                    if let Some(hook) = hook {
                        hook(&new_refresh);
                    }
                    tracing::info!("salesforce refresh token rotated");
                }
            }
        }
        let organization_id = token.id.as_deref().and_then(|id| {
            let mut parts = id.trim_end_matches('/').rsplit('/');
            let _user = parts.next()?;
            parts.next().map(str::to_owned)
        });
        Ok(Session {
            access_token: SecretString::from(token.access_token),
            instance_url: token.instance_url.trim_end_matches('/').to_owned(),
            organization_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_secrets() {
        let auth = SalesforceAuth::RefreshToken {
            client_id: "app".into(),
            client_secret: Some(SecretString::from("s3cret".to_owned())),
            refresh_token: SecretString::from("5Aep861-refresh".to_owned()),
        };
        let text = format!("{auth:?}");
        assert!(!text.contains("s3cret") && !text.contains("5Aep861"));
    }

    #[test]
    fn a_bad_private_key_is_an_auth_error_naming_the_fix() {
        let err = jwt_assertion(
            "app",
            "u@x",
            "https://login.salesforce.com",
            &SecretString::from("nope".to_owned()),
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Auth);
        assert!(err.message.contains("private_key_pem"));
    }
}
