//! Probe an org with the connector: authenticate, read one page of every mirrored
//! object, print counts and the API allocation. Read-only; writes nothing.
//!
//! Configuration from the environment:
//! - `SF_LOGIN_URL` (default `https://login.salesforce.com`), `SF_API_VERSION`
//!   (default `62.0`), `SF_INSTANCE_URL` (needed for `SF_SESSION_TOKEN`);
//! - one flow: `SF_CLIENT_ID` + `SF_USERNAME` + `SF_PRIVATE_KEY_FILE` (JWT bearer),
//!   `SF_CLIENT_ID` + `SF_REFRESH_TOKEN` [+ `SF_CLIENT_SECRET`] (refresh token),
//!   `SF_CLIENT_ID` + `SF_CLIENT_SECRET` (client credentials, My Domain login URL), or
//!   `SF_SESSION_TOKEN`.
//!
//! Run: `cargo run -p leadroute-salesforce --example probe`.

use leadroute_crm::Crm;
use leadroute_salesforce::{Salesforce, SalesforceAuth, SalesforceSettings};
use secrecy::SecretString;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn auth(login_url: &str) -> Result<SalesforceAuth, String> {
    let secret = |name: &str| var(name).map(SecretString::from);
    if let Some(token) = secret("SF_SESSION_TOKEN") {
        return Ok(SalesforceAuth::Session { token });
    }
    let client_id = var("SF_CLIENT_ID").ok_or("set SF_CLIENT_ID (or SF_SESSION_TOKEN)")?;
    if let (Some(username), Some(key_file)) = (var("SF_USERNAME"), var("SF_PRIVATE_KEY_FILE")) {
        let pem = std::fs::read_to_string(&key_file).map_err(|e| format!("{key_file}: {e}"))?;
        return Ok(SalesforceAuth::JwtBearer {
            client_id,
            username,
            private_key_pem: SecretString::from(pem),
            audience: var("SF_AUDIENCE").unwrap_or_else(|| login_url.to_owned()),
        });
    }
    if let Some(refresh_token) = secret("SF_REFRESH_TOKEN") {
        return Ok(SalesforceAuth::RefreshToken {
            client_id,
            client_secret: secret("SF_CLIENT_SECRET"),
            refresh_token,
        });
    }
    let client_secret = secret("SF_CLIENT_SECRET")
        .ok_or("set SF_USERNAME + SF_PRIVATE_KEY_FILE, SF_REFRESH_TOKEN or SF_CLIENT_SECRET")?;
    Ok(SalesforceAuth::ClientCredentials {
        client_id,
        client_secret,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let login_url = var("SF_LOGIN_URL").unwrap_or_else(|| "https://login.salesforce.com".into());
    let auth = match auth(&login_url) {
        Ok(auth) => auth,
        Err(message) => {
            eprintln!("probe: {message}");
            std::process::exit(2);
        }
    };
    let mut settings = SalesforceSettings::new(login_url, auth);
    settings.instance_url = var("SF_INSTANCE_URL");
    if let Some(version) = var("SF_API_VERSION") {
        settings.api_version = version;
    }
    let crm = match Salesforce::new(settings) {
        Ok(crm) => crm,
        Err(e) => {
            eprintln!("probe: {e}");
            std::process::exit(2);
        }
    };
    for object in crm.objects() {
        match crm.changes(*object, None).await {
            Ok(page) => println!(
                "{object}: {} records on the first page ({} calls, done: {})",
                page.changes.len(),
                page.calls,
                page.done
            ),
            Err(e) => {
                eprintln!("probe: {object}: {e}");
                std::process::exit(1);
            }
        }
    }
    let usage = crm.usage();
    println!(
        "instance {}; daily allocation {:?} of {:?} remaining; calls made {}",
        crm.instance_url().unwrap_or_default(),
        usage.daily_remaining,
        usage.daily_max,
        usage.calls
    );
}
