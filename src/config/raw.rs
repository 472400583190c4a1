//! The config file as written: serde structs that mirror the TOML one to one
//! (`deny_unknown_fields`, so a typo is an error, not a silently ignored key), plus the
//! environment overlay and the reading of `*_file` secrets.
//!
//! Nothing here judges values; `Config::from_raw` (in `mod.rs`) does, so every problem
//! is reported at once with its place and fix.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

use super::ConfigIssue;

/// The whole file. Every section is optional: no file at all is a valid start.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub crm: RawCrm,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub sync: RawSync,
    #[serde(default)]
    pub webhook: RawWebhook,
    #[serde(default)]
    pub policy: RawPolicy,
    #[serde(default)]
    pub drift: RawDrift,
    #[serde(default)]
    pub writer: RawWriter,
    #[serde(default)]
    pub service: RawService,
    /// `[[org]]` sections: several CRM orgs in one store. Without any, `[crm]` is the
    /// one org.
    #[serde(default)]
    pub org: Vec<RawOrg>,
    /// Where each `[[org]]` section starts in the file (1-based line and column of its
    /// header, and of its `name` value when given), for messages.
    #[serde(skip)]
    pub org_places: Vec<OrgPlace>,
    #[serde(default)]
    pub ui: RawUi,
    /// Where values came from when not from the file: `"crm.token"` →
    /// `"LEADROUTE_CRM_TOKEN"`, so problems point at the place the user must edit.
    #[serde(skip)]
    pub origins: BTreeMap<&'static str, String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCrm {
    /// The org's name (default: the CRM kind, as stores written before orgs assume).
    pub name: Option<String>,
    /// `hubspot` (default) or `salesforce`.
    pub kind: Option<String>,
    /// HubSpot API base (`https://api.hubapi.com`) or Salesforce login URL.
    pub base_url: Option<String>,
    /// HubSpot private-app token or Salesforce session token.
    pub token: Option<SecretString>,
    pub token_file: Option<PathBuf>,
    /// HubSpot subscription tier, for the rate limiter: free, starter, professional,
    /// enterprise, api_add_on (Professional/Enterprise with the API limit increase).
    pub tier: Option<String>,
    pub overlap_secs: Option<u64>,
    pub daily_reserve: Option<u64>,
    pub request_timeout_secs: Option<u64>,
    pub max_retries: Option<usize>,
    #[serde(default)]
    pub oauth: RawOAuth,
    #[serde(default)]
    pub salesforce: RawSalesforce,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOAuth {
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub client_secret_file: Option<PathBuf>,
    pub refresh_token: Option<SecretString>,
    pub refresh_token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSalesforce {
    /// `jwt` (default when a private key is given), `refresh_token`,
    /// `client_credentials` or `session` (a token from `crm.token`).
    pub auth: Option<String>,
    pub instance_url: Option<String>,
    pub api_version: Option<String>,
    pub username: Option<String>,
    pub private_key_file: Option<PathBuf>,
    /// The key read from `private_key_file` (never from the TOML itself).
    #[serde(skip)]
    pub private_key_pem: Option<SecretString>,
    /// JWT audience; defaults to the login URL.
    pub audience: Option<String>,
    pub organization_id: Option<String>,
    pub bulk_threshold: Option<usize>,
    pub strict_writes: Option<bool>,
}

/// One `[[org]]` section: a name, the keys `[crm]` takes, and what each org has of its
/// own (webhook secret, policy, schedules).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrg {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub base_url: Option<String>,
    pub token: Option<SecretString>,
    pub token_file: Option<PathBuf>,
    pub tier: Option<String>,
    pub overlap_secs: Option<u64>,
    pub daily_reserve: Option<u64>,
    pub request_timeout_secs: Option<u64>,
    pub max_retries: Option<usize>,
    #[serde(default)]
    pub oauth: RawOAuth,
    #[serde(default)]
    pub salesforce: RawSalesforce,
    /// The secret this org's webhooks are signed with (default: `[webhook] secret`).
    pub webhook_secret: Option<SecretString>,
    pub webhook_secret_file: Option<PathBuf>,
    /// This org's routing policy (default: `[policy] path`).
    pub policy: Option<PathBuf>,
    /// Cron schedules for this org (default: `[service] full_sync` / `full_replan`).
    pub full_sync: Option<String>,
    pub full_replan: Option<String>,
    /// This org's scheduled drift report (default: `[drift] schedule`).
    pub drift_schedule: Option<String>,
}

impl RawOrg {
    /// The `[crm]`-shaped part, so one validator checks both forms.
    pub fn crm(&self) -> RawCrm {
        RawCrm {
            name: self.name.clone(),
            kind: self.kind.clone(),
            base_url: self.base_url.clone(),
            token: self.token.clone(),
            token_file: self.token_file.clone(),
            tier: self.tier.clone(),
            overlap_secs: self.overlap_secs,
            daily_reserve: self.daily_reserve,
            request_timeout_secs: self.request_timeout_secs,
            max_retries: self.max_retries,
            oauth: self.oauth.clone(),
            salesforce: self.salesforce.clone(),
        }
    }
}

/// Where an `[[org]]` section is in the file (1-based).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OrgPlace {
    pub line: usize,
    pub column: usize,
    /// The `name = "…"` line and the column of its value, when the section has one.
    pub name: Option<(usize, usize)>,
}

/// Finds each `[[org]]` header and its `name` key, in file order (serde keeps the
/// sections in the same order).
pub(super) fn org_places(text: &str) -> Vec<OrgPlace> {
    let mut places: Vec<OrgPlace> = Vec::new();
    let mut in_org = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let column = line.len() - trimmed.len() + 1;
        if trimmed.starts_with('[') {
            let header: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
            in_org = header.starts_with("[[org]]");
            if in_org {
                places.push(OrgPlace {
                    line: i + 1,
                    column,
                    name: None,
                });
            }
            continue;
        }
        if !in_org {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("name")
            && let Some(value) = rest.trim_start().strip_prefix('=')
            && let Some(place) = places.last_mut()
        {
            let value_col = line.len() - value.trim_start().len() + 1;
            place.name.get_or_insert((i + 1, value_col));
        }
    }
    places
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `sqlite://PATH`, a file path, or `postgres://…`.
    pub url: Option<SecretString>,
    pub url_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub interval_secs: Option<u64>,
    /// Records refetched per webhook-hint batch.
    pub hint_batch: Option<usize>,
    /// How often the hint processor looks at the inbox.
    pub hint_poll_ms: Option<u64>,
    /// Also mirror activities (calls, emails, meetings, notes, tasks; Salesforce Tasks
    /// and Events) for the SLA engine. Off by default: it costs API calls.
    pub activities: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// `127.0.0.1:8080`: serve the webhook route while syncing.
    pub listen: Option<String>,
    /// The public base URL the CRM calls (`https://leadroute.example.com`); HubSpot
    /// signs the URL it called, not the one a proxy forwarded.
    pub public_url: Option<String>,
    /// HubSpot: the app's client secret (defaults to `crm.oauth.client_secret`).
    pub secret: Option<SecretString>,
    pub secret_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDrift {
    /// Cron expression (with seconds) for the scheduled drift report.
    pub schedule: Option<String>,
    pub out_dir: Option<PathBuf>,
    /// How many scheduled report directories are kept (newest first).
    pub keep: Option<usize>,
}

/// `[writer]`: how `apply`, `backfill`, `rollback` and `exceptions retry` write.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWriter {
    /// Default for `apply --max-changes`.
    pub max_changes: Option<usize>,
    /// Caps write batches below the CRM's maximum.
    pub max_batch: Option<usize>,
    /// Use the CRM's bulk path (Salesforce Bulk API 2.0) for large change sets.
    pub bulk: Option<bool>,
    /// Changes of one object from which the bulk path is used (default: the CRM's,
    /// `crm.salesforce.bulk_threshold`).
    pub bulk_threshold: Option<usize>,
    /// Records per bulk job.
    pub bulk_job_size: Option<usize>,
    /// Attempts per record for retryable rejections (locked rows).
    pub record_attempts: Option<u32>,
    /// Retries of a failed call before the run stops resumably.
    pub call_retries: Option<usize>,
    pub retry_min_ms: Option<u64>,
    pub retry_max_ms: Option<u64>,
    pub breaker_threshold: Option<u32>,
    pub breaker_cooldown_secs: Option<u64>,
    pub breaker_max_trips: Option<u32>,
    /// Overlap the next batch's compare read with the current write.
    pub pipeline: Option<bool>,
}

/// `[service]`: the always-on sidecar (`leadroute run`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// How long a decided change may wait for others to fill its write batch.
    pub linger_ms: Option<u64>,
    /// How long SIGTERM / Ctrl-C waits for the in-flight batch before exiting.
    pub shutdown_grace_secs: Option<u64>,
    /// The safety-net full re-plan's period.
    pub full_replan_secs: Option<u64>,
    /// How often the policy file is checked for changes.
    pub policy_poll_ms: Option<u64>,
    /// Cron expression (with seconds) for the full re-plan; replaces
    /// `full_replan_secs` when set.
    pub full_replan: Option<String>,
    /// Cron expression (with seconds) for a full sync (repair pass); none by default.
    pub full_sync: Option<String>,
    /// IANA time zone the cron schedules are read in (default UTC).
    pub time_zone: Option<String>,
    /// How long the org's lease binds without renewal (hot standby).
    pub lease_ttl_secs: Option<u64>,
    /// The most orgs one `run` process leads at once when several share a store.
    pub max_orgs: Option<u64>,
}

/// `[ui]`: the web console (`leadroute run` and `leadroute ui`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUi {
    /// Where `leadroute ui` listens (default 127.0.0.1:8088); `leadroute run` serves
    /// the console on `webhook.listen`.
    pub listen: Option<String>,
    /// How long a console session lasts without a request.
    pub session_idle_secs: Option<u64>,
    /// Who may log in: `[[ui.users]]` with `name`, `role` (viewer, operator, admin) and
    /// `password_hash` (argon2, as `leadroute ui passwd NAME` prints it).
    #[serde(default)]
    pub users: Vec<RawUiUser>,
}

/// One `[[ui.users]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUiUser {
    pub name: Option<String>,
    pub role: Option<String>,
    pub password_hash: Option<String>,
}

impl RawConfig {
    /// Parses TOML; a syntax error or unknown key is reported at its line.
    pub fn from_toml(text: &str, file: &str) -> Result<RawConfig, Vec<ConfigIssue>> {
        match RawConfig::from_toml_lenient(text, file) {
            (Some(raw), issues) if issues.is_empty() => Ok(raw),
            (_, issues) => Err(issues),
        }
    }

    /// Every shape problem, and the config read from the rest of the file when there
    /// is one (so its values can be checked in the same run).
    pub fn from_toml_lenient(text: &str, file: &str) -> (Option<RawConfig>, Vec<ConfigIssue>) {
        let (raw, errors) = super::shape::parse_lenient::<RawConfig>(text);
        let raw = raw.map(|mut raw| {
            raw.org_places = org_places(text);
            raw
        });
        let issues = errors
            .into_iter()
            .map(|e| {
                ConfigIssue::new(
                    file,
                    format!("line {}, column {}", e.line, e.column),
                    e.message,
                    format!("{}; config/leadroute.example.toml lists every key", e.fix),
                )
            })
            .collect();
        (raw, issues)
    }

    /// Applies `LEADROUTE_*` environment overrides. `env` is injected so tests need not
    /// touch the process environment.
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        let mut take = |var: &'static str, key: &'static str| -> Option<String> {
            let value = env(var).filter(|v| !v.is_empty())?;
            self.origins.insert(key, var.to_owned());
            Some(value)
        };
        if let Some(v) = take("LEADROUTE_CRM_KIND", "crm.kind") {
            self.crm.kind = Some(v);
        }
        if let Some(v) = take("LEADROUTE_CRM_BASE_URL", "crm.base_url") {
            self.crm.base_url = Some(v);
        }
        if let Some(v) = take("LEADROUTE_CRM_TOKEN", "crm.token") {
            self.crm.token = Some(v.into());
            self.crm.token_file = None;
        }
        if let Some(v) = take("LEADROUTE_CRM_TOKEN_FILE", "crm.token_file") {
            self.crm.token_file = Some(v.into());
            self.crm.token = None;
        }
        if let Some(v) = take("LEADROUTE_CRM_TIER", "crm.tier") {
            self.crm.tier = Some(v);
        }
        if let Some(v) = take("LEADROUTE_CRM_CLIENT_ID", "crm.oauth.client_id") {
            self.crm.oauth.client_id = Some(v);
        }
        if let Some(v) = take("LEADROUTE_CRM_CLIENT_SECRET", "crm.oauth.client_secret") {
            self.crm.oauth.client_secret = Some(v.into());
            self.crm.oauth.client_secret_file = None;
        }
        if let Some(v) = take(
            "LEADROUTE_CRM_CLIENT_SECRET_FILE",
            "crm.oauth.client_secret_file",
        ) {
            self.crm.oauth.client_secret_file = Some(v.into());
            self.crm.oauth.client_secret = None;
        }
        if let Some(v) = take("LEADROUTE_CRM_REFRESH_TOKEN", "crm.oauth.refresh_token") {
            self.crm.oauth.refresh_token = Some(v.into());
            self.crm.oauth.refresh_token_file = None;
        }
        if let Some(v) = take(
            "LEADROUTE_CRM_REFRESH_TOKEN_FILE",
            "crm.oauth.refresh_token_file",
        ) {
            self.crm.oauth.refresh_token_file = Some(v.into());
            self.crm.oauth.refresh_token = None;
        }
        if let Some(v) = take("LEADROUTE_STORE_URL", "store.url") {
            self.store.url = Some(v.into());
            self.store.url_file = None;
        }
        if let Some(v) = take("LEADROUTE_STORE_URL_FILE", "store.url_file") {
            self.store.url_file = Some(v.into());
            self.store.url = None;
        }
        if let Some(v) = take("LEADROUTE_WEBHOOK_LISTEN", "webhook.listen") {
            self.webhook.listen = Some(v);
        }
        // The sidecar's one HTTP listener (webhooks, health, metrics).
        if let Some(v) = take("LEADROUTE_LISTEN", "webhook.listen") {
            self.webhook.listen = Some(v);
        }
        if let Some(v) = take("LEADROUTE_POLICY", "policy.path") {
            self.policy.path = Some(v.into());
        }
        if let Some(v) = take("LEADROUTE_WEBHOOK_PUBLIC_URL", "webhook.public_url") {
            self.webhook.public_url = Some(v);
        }
        if let Some(v) = take("LEADROUTE_WEBHOOK_SECRET", "webhook.secret") {
            self.webhook.secret = Some(v.into());
            self.webhook.secret_file = None;
        }
        if let Some(v) = take("LEADROUTE_WEBHOOK_SECRET_FILE", "webhook.secret_file") {
            self.webhook.secret_file = Some(v.into());
            self.webhook.secret = None;
        }
        // Each `[[org]]`'s secrets: LEADROUTE_ORG_<NAME>_TOKEN and _WEBHOOK_SECRET, the
        // name upper-cased with `-` as `_` (`north-eu` → LEADROUTE_ORG_NORTH_EU_TOKEN).
        for org in &mut self.org {
            let Some(name) = org.name.as_deref() else {
                continue;
            };
            let var = |what: &str| {
                format!(
                    "LEADROUTE_ORG_{}_{what}",
                    name.to_ascii_uppercase().replace('-', "_")
                )
            };
            if let Some(v) = env(&var("TOKEN")).filter(|v| !v.is_empty()) {
                org.token = Some(v.into());
                org.token_file = None;
            }
            if let Some(v) = env(&var("WEBHOOK_SECRET")).filter(|v| !v.is_empty()) {
                org.webhook_secret = Some(v.into());
                org.webhook_secret_file = None;
            }
        }
    }

    /// Reads every `*_file` secret into its value field, relative to `base` (the config
    /// file's directory). Unreadable files are issues, reported with the rest.
    pub fn read_secret_files(&mut self, base: &std::path::Path, file: &str) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let origins = &self.origins;
        let mut read =
            |key: &'static str, path: &Option<PathBuf>, into: &mut Option<SecretString>| {
                let Some(path) = path else { return };
                let full = if path.is_absolute() {
                    path.clone()
                } else {
                    base.join(path)
                };
                match std::fs::read_to_string(&full) {
                    // Secret files conventionally end with a newline that is not part of it.
                    Ok(text) => *into = Some(text.trim_end_matches(['\r', '\n']).to_owned().into()),
                    Err(err) => issues.push(ConfigIssue::at(
                        file,
                        origins,
                        key,
                        format!("cannot read {}: {err}", full.display()),
                        "point it at a readable file holding only the secret",
                    )),
                }
            };
        read("crm.token_file", &self.crm.token_file, &mut self.crm.token);
        read(
            "crm.oauth.client_secret_file",
            &self.crm.oauth.client_secret_file,
            &mut self.crm.oauth.client_secret,
        );
        read(
            "crm.oauth.refresh_token_file",
            &self.crm.oauth.refresh_token_file,
            &mut self.crm.oauth.refresh_token,
        );
        read("store.url_file", &self.store.url_file, &mut self.store.url);
        read(
            "webhook.secret_file",
            &self.webhook.secret_file,
            &mut self.webhook.secret,
        );
        read(
            "crm.salesforce.private_key_file",
            &self.crm.salesforce.private_key_file,
            &mut self.crm.salesforce.private_key_pem,
        );
        for org in &mut self.org {
            read("org.token_file", &org.token_file, &mut org.token);
            read(
                "org.oauth.client_secret_file",
                &org.oauth.client_secret_file,
                &mut org.oauth.client_secret,
            );
            read(
                "org.oauth.refresh_token_file",
                &org.oauth.refresh_token_file,
                &mut org.oauth.refresh_token,
            );
            read(
                "org.webhook_secret_file",
                &org.webhook_secret_file,
                &mut org.webhook_secret,
            );
            read(
                "org.salesforce.private_key_file",
                &org.salesforce.private_key_file,
                &mut org.salesforce.private_key_pem,
            );
        }
        issues
    }
}
