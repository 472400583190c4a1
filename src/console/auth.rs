//! Console access: users and roles from `[[ui.users]]` (argon2 hashes) plus the
//! built-in `admin` whose password `LEADROUTE_UI_ADMIN_PASSWORD` sets for a first
//! start; sessions kept in memory (a restart logs everyone out) behind an HttpOnly,
//! SameSite=Strict cookie (`Secure` unless served as plain http on loopback); a CSRF
//! token per session checked on every form; login attempts rate-limited per user name.
//!
//! Nothing here logs or renders a password, hash, session or CSRF token.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore as _;
use subtle::ConstantTimeEq as _;

use crate::config::{UiRole, UiUser};

/// The session cookie's name.
pub const COOKIE: &str = "leadroute_session";
/// The environment variable that sets the built-in `admin` user's password.
pub const ADMIN_PASSWORD_ENV: &str = "LEADROUTE_UI_ADMIN_PASSWORD";
/// Login forms (anonymous sessions) kept at most, and for how long.
pub const MAX_ANONYMOUS: usize = 10_000;
pub const ANONYMOUS_TTL_MINUTES: i64 = 30;
/// Login attempts allowed per user name per minute (then 429 until the minute passes).
pub const LOGIN_ATTEMPTS_PER_MINUTE: u32 = 5;

/// Hashes `password` for `[[ui.users]]` (argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| format!("hashing the password failed: {err}"))
}

fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A random token (256 bits, hex).
fn token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A logged-in (or, before login, anonymous) browser session.
#[derive(Debug, Clone)]
pub struct Session {
    /// `None` before login: the session then only carries the login form's CSRF token.
    pub user: Option<(String, UiRole)>,
    pub csrf: String,
    pub last_seen: DateTime<Utc>,
    /// A notice shown once on the next page (the result of an action).
    pub flash: Option<String>,
}

impl Session {
    /// Whether `given` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, given: Option<&str>) -> bool {
        given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(self.csrf.as_bytes())))
    }
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong name or password (which one is not said).
    Refused,
    /// Too many attempts for this name; try again in a minute.
    RateLimited,
    /// Nobody can log in: no users configured and no admin password set.
    NoUsers,
}

/// Users, sessions and the login limiter.
pub struct Auth {
    users: Vec<UiUser>,
    idle: chrono::Duration,
    sessions: Mutex<HashMap<String, Session>>,
    limiter: DefaultKeyedRateLimiter<String>,
    /// A hash verified when the name is unknown, so timing does not tell names apart.
    decoy: String,
    /// [`MAX_ANONYMOUS`], smaller in tests.
    max_anonymous: usize,
}

impl Auth {
    /// From the configured users plus the built-in `admin` when `admin_password` is set
    /// (a configured user named `admin` wins).
    pub fn new(
        mut users: Vec<UiUser>,
        admin_password: Option<&str>,
        idle: Duration,
    ) -> Result<Auth, String> {
        if let Some(password) = admin_password.filter(|p| !p.is_empty())
            && !users.iter().any(|u| u.name == "admin")
        {
            users.push(UiUser {
                name: "admin".to_owned(),
                role: UiRole::Admin,
                password_hash: hash_password(password)?,
            });
        }
        let per_minute = NonZeroU32::new(LOGIN_ATTEMPTS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Ok(Auth {
            users,
            idle: chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::hours(8)),
            sessions: Mutex::new(HashMap::new()),
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            decoy: hash_password(&token())?,
            max_anonymous: MAX_ANONYMOUS,
        })
    }

    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The live session named by the request's cookie (touching it), and its id.
    pub fn session(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Option<(String, Session)> {
        let id = cookie(headers, COOKIE)?;
        let mut sessions = self.sessions();
        let idle = self.idle;
        sessions.retain(|_, s| now - s.last_seen <= idle);
        let session = sessions.get_mut(&id)?;
        session.last_seen = now;
        Some((id, session.clone()))
    }

    /// A new anonymous session for the login form; returns its id. Login forms older
    /// than [`ANONYMOUS_TTL_MINUTES`] expire, and at most [`MAX_ANONYMOUS`] are kept
    /// (the oldest go first), so fetching the login page in a loop cannot grow memory.
    pub fn anonymous(&self, now: DateTime<Utc>) -> (String, Session) {
        let mut sessions = self.sessions();
        let ttl = chrono::Duration::minutes(ANONYMOUS_TTL_MINUTES);
        sessions.retain(|_, s| s.user.is_some() || now - s.last_seen <= ttl);
        let anonymous = sessions.values().filter(|s| s.user.is_none()).count();
        if anonymous >= self.max_anonymous {
            let mut old: Vec<(DateTime<Utc>, String)> = sessions
                .iter()
                .filter(|(_, s)| s.user.is_none())
                .map(|(id, s)| (s.last_seen, id.clone()))
                .collect();
            old.sort();
            for (_, id) in old.iter().take(anonymous + 1 - self.max_anonymous) {
                sessions.remove(id);
            }
        }
        drop(sessions);
        let id = token();
        let session = Session {
            user: None,
            csrf: token(),
            last_seen: now,
            flash: None,
        };
        self.sessions().insert(id.clone(), session.clone());
        (id, session)
    }

    /// Checks a login; on success replaces `old` (the anonymous session) by a fresh one
    /// and returns its id.
    pub fn login(
        &self,
        old: Option<&str>,
        name: &str,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<String, LoginError> {
        if self.users.is_empty() {
            return Err(LoginError::NoUsers);
        }
        // Unknown long names are refused before they take a limiter slot; the
        // limiter forgets names whose minute has passed.
        if name.len() > 100 {
            return Err(LoginError::Refused);
        }
        self.limiter.retain_recent();
        if self.limiter.check_key(&name.to_owned()).is_err() {
            return Err(LoginError::RateLimited);
        }
        let user = self.users.iter().find(|u| u.name == name);
        let ok = match user {
            Some(user) => verify(password, &user.password_hash),
            None => {
                let _ = verify(password, &self.decoy);
                false
            }
        };
        let Some(user) = user.filter(|_| ok) else {
            return Err(LoginError::Refused);
        };
        let id = token();
        let mut sessions = self.sessions();
        if let Some(old) = old {
            sessions.remove(old);
        }
        sessions.insert(
            id.clone(),
            Session {
                user: Some((user.name.clone(), user.role)),
                csrf: token(),
                last_seen: now,
                flash: None,
            },
        );
        Ok(id)
    }

    /// Keeps `notice` for the session's next page.
    pub fn set_flash(&self, id: &str, notice: String) {
        if let Some(session) = self.sessions().get_mut(id) {
            session.flash = Some(notice);
        }
    }

    /// The session's pending notice, once.
    pub fn take_flash(&self, id: &str) -> Option<String> {
        self.sessions().get_mut(id).and_then(|s| s.flash.take())
    }

    pub fn logout(&self, id: &str) {
        self.sessions().remove(id);
    }
}

/// A cookie's value from the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The `Set-Cookie` value for session `id` (`secure` adds `Secure`).
pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that clears the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        let users = vec![UiUser {
            name: "vic".to_owned(),
            role: UiRole::Viewer,
            password_hash: hash_password("viewer-pw").expect("hash"),
        }];
        Auth::new(users, Some("admin-pw"), Duration::from_secs(600)).expect("auth")
    }

    fn with_cookie(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            format!("other=1; {COOKIE}={id}").parse().expect("header"),
        );
        headers
    }

    #[test]
    fn the_admin_password_from_the_environment_logs_in_and_a_wrong_one_does_not() {
        let auth = auth();
        let now = Utc::now();
        assert_eq!(
            auth.login(None, "admin", "nope", now),
            Err(LoginError::Refused)
        );
        let id = auth.login(None, "admin", "admin-pw", now).expect("login");
        let (_, session) = auth.session(&with_cookie(&id), now).expect("session");
        assert_eq!(session.user, Some(("admin".to_owned(), UiRole::Admin)));
        assert!(session.csrf_ok(Some(&session.csrf)));
        assert!(!session.csrf_ok(Some("forged")));
        assert!(!session.csrf_ok(None));
    }

    #[test]
    fn an_idle_session_expires() {
        let auth = auth();
        let now = Utc::now();
        let id = auth.login(None, "vic", "viewer-pw", now).expect("login");
        assert!(auth.session(&with_cookie(&id), now).is_some());
        let later = now + chrono::Duration::seconds(601);
        assert!(auth.session(&with_cookie(&id), later).is_none());
    }

    #[test]
    fn login_attempts_are_rate_limited_per_name() {
        let auth = auth();
        let now = Utc::now();
        for _ in 0..LOGIN_ATTEMPTS_PER_MINUTE {
            assert_eq!(auth.login(None, "vic", "x", now), Err(LoginError::Refused));
        }
        assert_eq!(
            auth.login(None, "vic", "viewer-pw", now),
            Err(LoginError::RateLimited)
        );
        // Another name is not held up.
        assert!(auth.login(None, "admin", "admin-pw", now).is_ok());
    }

    #[test]
    fn login_forms_are_bounded_and_expire() {
        let mut auth = auth();
        auth.max_anonymous = 50;
        let now = Utc::now();
        for _ in 0..55 {
            auth.anonymous(now);
        }
        assert_eq!(auth.sessions().len(), 50);
        let id = auth.login(None, "vic", "viewer-pw", now).expect("login");
        let later = now + chrono::Duration::minutes(ANONYMOUS_TTL_MINUTES + 1);
        auth.anonymous(later);
        // The old forms are gone; the logged-in session and the new form stay.
        assert_eq!(auth.sessions().len(), 2);
        assert!(auth.sessions().contains_key(&id));
    }

    #[test]
    fn nobody_logs_in_without_users() {
        let auth = Auth::new(Vec::new(), None, Duration::from_secs(60)).expect("auth");
        assert_eq!(
            auth.login(None, "admin", "x", Utc::now()),
            Err(LoginError::NoUsers)
        );
    }
}
