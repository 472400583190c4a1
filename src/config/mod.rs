//! Configuration: a TOML file (optional), `LEADROUTE_*` environment overrides and
//! secret files, validated into a [`Config`] in one pass that reports every problem as
//! `file: section.key: problem; fix`.
//!
//! The flow is `RawConfig::from_toml` → `RawConfig::apply_env` →
//! `RawConfig::read_secret_files` → [`Config::from_raw`] (pure). [`Config::load`] runs
//! all four. Secrets are `SecretString`s: `Debug` prints `[REDACTED]`, so a config can be
//! logged whole.

mod raw;
pub mod shape;
pub mod text;

pub use raw::{
    OrgPlace, RawConfig, RawCrm, RawDrift, RawOAuth, RawOrg, RawPolicy, RawSalesforce, RawService,
    RawStore, RawSync, RawWebhook, RawWriter,
};

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use leadroute_crm::CrmKind;
use secrecy::{ExposeSecret, SecretString};

use crate::domain::{OrgId, OrgRef};

/// One problem with the configuration, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The config file, or `environment` for a value from a `LEADROUTE_*` variable.
    pub file: String,
    /// `section.key` (and the variable name when it came from the environment).
    pub place: String,
    pub problem: String,
    pub fix: String,
}

impl ConfigIssue {
    pub fn new(
        file: &str,
        place: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        ConfigIssue {
            file: file.to_owned(),
            place: place.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// An issue about `key`, pointing at the environment variable if that is where the
    /// value came from.
    fn at(
        file: &str,
        origins: &BTreeMap<&'static str, String>,
        key: &str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        match origins.get(key) {
            Some(var) => ConfigIssue::new("environment", format!("{var} ({key})"), problem, fix),
            None => ConfigIssue::new(file, key, problem, fix),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}; {}",
            self.file, self.place, self.problem, self.fix
        )
    }
}

/// Why configuration could not be loaded: every issue found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        write!(
            f,
            "{n} configuration problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            write!(f, "\n  {issue}")?;
        }
        Ok(())
    }
}

/// HubSpot subscription tier: sets the client-side rate limit before response headers
/// refine it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubSpotTier {
    Free,
    Starter,
    Professional,
    Enterprise,
    /// Professional/Enterprise with the API Limit Increase add-on.
    ApiAddOn,
    /// A public (marketplace) OAuth app: 110 per 10 s per installing account.
    OAuthApp,
}

impl HubSpotTier {
    /// Requests per rolling 10 s per app.
    pub fn ten_second_limit(self) -> u32 {
        match self {
            HubSpotTier::Free | HubSpotTier::Starter => 100,
            HubSpotTier::Professional | HubSpotTier::Enterprise => 190,
            HubSpotTier::ApiAddOn => 250,
            HubSpotTier::OAuthApp => 110,
        }
    }

    /// Requests per day per account.
    pub fn daily_limit(self) -> u64 {
        match self {
            HubSpotTier::Free | HubSpotTier::Starter => 250_000,
            HubSpotTier::Professional => 625_000,
            HubSpotTier::Enterprise => 1_000_000,
            HubSpotTier::ApiAddOn => 2_000_000,
            // Public OAuth apps have no daily cap of their own.
            HubSpotTier::OAuthApp => u64::MAX,
        }
    }

    fn parse(s: &str) -> Option<HubSpotTier> {
        match s {
            "free" => Some(HubSpotTier::Free),
            "starter" => Some(HubSpotTier::Starter),
            "professional" => Some(HubSpotTier::Professional),
            "enterprise" => Some(HubSpotTier::Enterprise),
            "api_add_on" => Some(HubSpotTier::ApiAddOn),
            "oauth_app" => Some(HubSpotTier::OAuthApp),
            _ => None,
        }
    }
}

/// How leadroute authenticates to the CRM.
#[derive(Debug, Clone)]
pub enum CrmAuth {
    /// No credentials: the config was loaded for a command that only reads the mirror
    /// ([`Needs::Mirror`]). The connectors refuse it.
    Unset,
    /// HubSpot private-app token, or a Salesforce session token.
    Token(SecretString),
    /// OAuth refresh-token flow (HubSpot apps, Salesforce connected apps).
    RefreshToken {
        client_id: String,
        client_secret: SecretString,
        refresh_token: SecretString,
    },
    /// Salesforce JWT bearer flow.
    JwtBearer {
        client_id: String,
        username: String,
        private_key_pem: SecretString,
        audience: String,
    },
    /// Salesforce client-credentials flow.
    ClientCredentials {
        client_id: String,
        client_secret: SecretString,
    },
}

#[derive(Debug, Clone)]
pub struct CrmConfig {
    pub kind: CrmKind,
    /// HubSpot API base or Salesforce login URL, without a trailing slash.
    pub base_url: String,
    pub auth: CrmAuth,
    pub tier: HubSpotTier,
    /// How far behind the watermark incremental syncs start.
    pub overlap: Duration,
    /// Daily calls left for other integrations.
    pub daily_reserve: u64,
    pub request_timeout: Duration,
    pub max_retries: usize,
    pub salesforce: SalesforceConfig,
}

#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    pub instance_url: Option<String>,
    pub api_version: String,
    pub organization_id: Option<String>,
    pub bulk_threshold: usize,
    pub strict_writes: bool,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// May hold a database password.
    pub url: SecretString,
}

#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub interval: Duration,
    pub hint_batch: usize,
    pub hint_poll: Duration,
    /// `sync.activities`: mirror activities (`ObjectKind::Activity`) too.
    pub activities: bool,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub listen: Option<SocketAddr>,
    /// Public base URL, without a trailing slash.
    pub public_url: Option<String>,
    pub secret: Option<SecretString>,
}

#[derive(Debug, Clone)]
pub struct PolicyConfig {
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct DriftConfig {
    pub schedule: Option<String>,
    pub out_dir: PathBuf,
    /// How many scheduled report directories are kept.
    pub keep: usize,
}

/// Default for `drift.keep`.
pub const DEFAULT_DRIFT_KEEP: usize = 30;

/// `[service]`: the sidecar's timing.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// How long a decided change waits for others to fill its write batch.
    pub linger: Duration,
    /// How long shutdown waits for the in-flight batch.
    pub shutdown_grace: Duration,
    /// The periodic full re-plan (the safety net behind incremental decisions).
    pub full_replan: Duration,
    /// How often the policy file is checked for changes.
    pub policy_poll: Duration,
    /// `service.full_replan`: a cron schedule for the full re-plan; when set it
    /// replaces the `full_replan` period.
    pub full_replan_cron: Option<String>,
    /// `service.full_sync`: a cron schedule for a full sync (repair pass).
    pub full_sync: Option<String>,
    /// `service.time_zone`: the zone every cron schedule is read in.
    pub time_zone: chrono_tz::Tz,
    /// `service.lease_ttl_secs`: how long the org's lease binds without renewal; it is
    /// renewed (and a standby tries to take it) every third of it.
    pub lease_ttl: Duration,
    /// `service.max_orgs`: the most orgs this process leads at once (its capacity in
    /// the fleet, `service::fleet`); `None`: no limit.
    pub max_orgs: Option<usize>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            linger: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(30),
            full_replan: Duration::from_secs(3_600),
            policy_poll: Duration::from_secs(1),
            full_replan_cron: None,
            full_sync: None,
            time_zone: chrono_tz::UTC,
            lease_ttl: Duration::from_secs(15),
            max_orgs: None,
        }
    }
}

/// `[writer]`: tuning for every command that writes owners.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterConfig {
    /// Default for `apply --max-changes`.
    pub max_changes: Option<usize>,
    /// The writer settings, except strict mode (`crm.salesforce.strict_writes` or
    /// `--strict`).
    pub settings: crate::writer::WriterSettings,
}

/// One configured org: an `[[org]]` section, or the single `[crm]` form.
#[derive(Debug, Clone)]
pub struct OrgConfig {
    pub name: OrgId,
    pub crm: CrmConfig,
    /// This org's webhook secret (else `[webhook] secret`).
    pub webhook_secret: Option<SecretString>,
    /// This org's policy (else `[policy] path`).
    pub policy: Option<PathBuf>,
    pub full_sync: Option<String>,
    pub full_replan: Option<String>,
    pub drift_schedule: Option<String>,
}

impl OrgConfig {
    pub fn org_ref(&self) -> OrgRef {
        OrgRef {
            name: self.name.clone(),
            kind: self.crm.kind,
        }
    }
}

/// The top-level values an `[[org]]` may override.
#[derive(Debug, Clone)]
struct Shared {
    webhook_secret: Option<SecretString>,
    policy: Option<PathBuf>,
    full_sync: Option<String>,
    full_replan: Option<String>,
    drift_schedule: Option<String>,
    drift_out_dir: PathBuf,
}

/// The validated configuration.
///
/// A config holds every org (`orgs`, at least one) and is scoped to one of them
/// (`org`): `crm`, `policy`, `webhook.secret` and the schedules are that org's. Commands
/// scope it with [`Config::for_org`] (`--org NAME`); the sidecar makes one scoped
/// config per org.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from (a path, or `(no config file)`), for messages.
    pub source: String,
    /// The org this config is scoped to.
    pub org: OrgId,
    /// Every configured org, in file order.
    pub orgs: Vec<OrgConfig>,
    /// What an org without its own webhook secret, policy or schedules gets.
    shared: Shared,
    pub crm: CrmConfig,
    pub store: StoreConfig,
    pub sync: SyncConfig,
    pub webhook: WebhookConfig,
    pub policy: PolicyConfig,
    pub drift: DriftConfig,
    pub writer: WriterConfig,
    pub service: ServiceConfig,
    pub ui: UiConfig,
}

/// `[ui]`: the web console's listener, sessions and users.
#[derive(Debug, Clone)]
pub struct UiConfig {
    pub listen: SocketAddr,
    pub session_idle: Duration,
    pub users: Vec<UiUser>,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8088)),
            session_idle: Duration::from_secs(8 * 3600),
            users: Vec::new(),
        }
    }
}

/// A console user from the config: the password only as its argon2 hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiUser {
    pub name: String,
    pub role: UiRole,
    pub password_hash: String,
}

/// What a console user may do: viewers read, operators also resolve and retry
/// exceptions and roll back runs, admins too (and are the built-in `admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum UiRole {
    Viewer,
    Operator,
    Admin,
}

impl UiRole {
    pub fn as_str(self) -> &'static str {
        match self {
            UiRole::Viewer => "viewer",
            UiRole::Operator => "operator",
            UiRole::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<UiRole> {
        match s {
            "viewer" => Some(UiRole::Viewer),
            "operator" => Some(UiRole::Operator),
            "admin" => Some(UiRole::Admin),
            _ => None,
        }
    }

    /// Whether this role may change anything (resolve, retry, roll back).
    pub fn can_act(self) -> bool {
        self >= UiRole::Operator
    }
}

pub const DEFAULT_OVERLAP_SECS: u64 = 300;
pub const DEFAULT_INTERVAL_SECS: u64 = 60;
pub const DEFAULT_SALESFORCE_API_VERSION: &str = "v62.0";
pub const DEFAULT_SALESFORCE_LOGIN_URL: &str = "https://login.salesforce.com";

/// The label used in messages when no config file was given.
pub const NO_FILE: &str = "(no config file)";

/// What a command needs from the configuration. Commands that only read the mirror
/// (`plan`, `drift`, `explain`, `policy diff`, `exceptions list`) need the store and the
/// policy, not CRM credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Calls the CRM: `crm.base_url` and credentials are required.
    Crm,
    /// Reads the mirror only: missing CRM credentials are not a problem.
    Mirror,
}

impl Config {
    /// Reads `path` (if any), applies the environment and secret files, and validates.
    pub fn load(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Config::load_for(path, env, Needs::Crm)
    }

    /// [`Config::load`] for a command that needs only what `needs` says.
    pub fn load_for(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        needs: Needs,
    ) -> Result<Config, ConfigError> {
        let (mut raw, file, base, shape) = match path {
            Some(path) => {
                let file = path.display().to_string();
                let text = text::read(path).map_err(|err| {
                    let (place, fix) = match &err {
                        text::TextError::Read(_) => (
                            "file".to_owned(),
                            "check the --config path (or LEADROUTE_CONFIG)",
                        ),
                        text::TextError::NotUtf8 { line, .. } => {
                            (format!("line {line}"), err.fix())
                        }
                    };
                    ConfigError {
                        issues: vec![ConfigIssue::new(&file, place, err.to_string(), fix)],
                    }
                })?;
                // Shape problems (unknown keys, wrong types) and value problems are
                // reported together: the values are checked without the bad lines.
                let (raw, shape) = RawConfig::from_toml_lenient(&text, &file);
                let Some(raw) = raw else {
                    return Err(ConfigError { issues: shape });
                };
                let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
                (raw, file, base, shape)
            }
            None => (
                RawConfig::default(),
                NO_FILE.to_owned(),
                PathBuf::new(),
                Vec::new(),
            ),
        };
        raw.apply_env(env);
        let mut issues = shape;
        issues.extend(raw.read_secret_files(&base, &file));
        match Config::from_raw_for(raw, &file, needs) {
            Ok(config) if issues.is_empty() => Ok(config),
            Ok(_) => Err(ConfigError { issues }),
            Err(more) => {
                issues.extend(more.issues);
                Err(ConfigError { issues })
            }
        }
    }

    /// [`Config::load`] with the process environment: what commands use.
    pub fn from_process(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load(path, &|name| std::env::var(name).ok())
    }

    /// Parses and validates TOML text (with environment overrides), for tests and the
    /// demo. Secret files are not read.
    pub fn from_toml(
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut raw = RawConfig::from_toml(text, file).map_err(|issues| ConfigError { issues })?;
        raw.apply_env(env);
        Config::from_raw(raw, file)
    }

    /// Validates a raw config: pure, and reports every problem at once.
    pub fn from_raw(raw: RawConfig, file: &str) -> Result<Config, ConfigError> {
        Config::from_raw_for(raw, file, Needs::Crm)
    }

    /// [`Config::from_raw`] for a command that needs only what `needs` says.
    pub fn from_raw_for(raw: RawConfig, file: &str, needs: Needs) -> Result<Config, ConfigError> {
        let mut v = Validator {
            file,
            origins: &raw.origins,
            issues: Vec::new(),
            needs,
            section: "crm".to_owned(),
        };
        let orgs = v.orgs(&raw);
        let store = v.store(&raw.store);
        let sync = v.sync(&raw.sync);
        let webhook = v.webhook(&raw.webhook, &raw.crm, &raw.org);
        let drift = v.drift(&raw.drift);
        let writer = v.writer(&raw.writer);
        let service = v.service(&raw.service);
        let ui = v.ui(&raw.ui);
        let policy = PolicyConfig {
            path: raw.policy.path.clone(),
        };
        let issues = v.issues;
        match orgs.first() {
            Some(first) if issues.is_empty() => Ok(Config {
                source: file.to_owned(),
                org: first.name.clone(),
                crm: first.crm.clone(),
                orgs: orgs.clone(),
                shared: Shared {
                    webhook_secret: webhook.secret.clone(),
                    policy: policy.path.clone(),
                    full_sync: service.full_sync.clone(),
                    full_replan: service.full_replan_cron.clone(),
                    drift_schedule: drift.schedule.clone(),
                    drift_out_dir: drift.out_dir.clone(),
                },
                store,
                sync,
                webhook,
                policy,
                drift,
                writer,
                service,
                ui,
            }),
            _ => Err(ConfigError { issues }),
        }
        .map(|config| config.scoped_to_first())
    }

    /// The configured orgs' names and kinds.
    pub fn org_refs(&self) -> Vec<OrgRef> {
        self.orgs.iter().map(OrgConfig::org_ref).collect()
    }

    /// This config's org.
    pub fn org_ref(&self) -> OrgRef {
        OrgRef {
            name: self.org.clone(),
            kind: self.crm.kind,
        }
    }

    /// "north (hubspot), south (salesforce)", for messages.
    pub fn org_list(&self) -> String {
        self.orgs
            .iter()
            .map(|o| format!("{} ({})", o.name, o.crm.kind))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn scoped_to_first(self) -> Config {
        let first = self.orgs[0].name.clone();
        let mut config = self;
        config.scope(&first);
        config
    }

    /// Scopes the config to the org named `name` (`--org`): with one org configured
    /// the name may be left out; with several it must be given, and the error lists
    /// them.
    pub fn for_org(&self, name: Option<&str>) -> Result<Config, String> {
        let org = match name {
            Some(name) => self
                .orgs
                .iter()
                .find(|o| o.name.as_str() == name)
                .ok_or_else(|| {
                    format!(
                        "no org named {name:?} in {}; the orgs are: {}",
                        self.source,
                        self.org_list()
                    )
                })?,
            None if self.orgs.len() == 1 => &self.orgs[0],
            None => {
                return Err(format!(
                    "{} configures {} orgs; pass --org NAME (or LEADROUTE_ORG) with one of: {}",
                    self.source,
                    self.orgs.len(),
                    self.org_list()
                ));
            }
        };
        let name = org.name.clone();
        let mut config = self.clone();
        config.scope(&name);
        Ok(config)
    }

    /// Every org's scoped config, in file order (the sidecar runs one pipeline each).
    pub fn each_org(&self) -> Vec<Config> {
        self.orgs
            .iter()
            .map(|o| {
                let mut config = self.clone();
                config.scope(&o.name);
                config
            })
            .collect()
    }

    fn scope(&mut self, name: &OrgId) {
        let Some(org) = self.orgs.iter().find(|o| &o.name == name).cloned() else {
            return;
        };
        let shared = self.shared.clone();
        self.org = org.name.clone();
        self.crm = org.crm.clone();
        self.webhook.secret = org.webhook_secret.or(shared.webhook_secret);
        self.policy.path = org.policy.or(shared.policy);
        self.service.full_sync = org.full_sync.or(shared.full_sync);
        self.service.full_replan_cron = org.full_replan.or(shared.full_replan);
        self.drift.schedule = org.drift_schedule.or(shared.drift_schedule);
        // Several orgs keep their scheduled reports (and their pruning) apart.
        self.drift.out_dir = if self.orgs.len() > 1 {
            shared.drift_out_dir.join(org.name.as_str())
        } else {
            shared.drift_out_dir
        };
    }
}

struct Validator<'a> {
    file: &'a str,
    origins: &'a BTreeMap<&'static str, String>,
    issues: Vec<ConfigIssue>,
    needs: Needs,
    /// Where the CRM keys being checked live: `crm`, or an `[[org]]` section's place.
    section: String,
}

impl Validator<'_> {
    fn issue(&mut self, key: &str, problem: impl Into<String>, fix: impl Into<String>) {
        self.issues
            .push(ConfigIssue::at(self.file, self.origins, key, problem, fix));
    }

    /// A missing CRM setting: a problem only for commands that call the CRM.
    fn missing(&mut self, key: &str, problem: impl Into<String>, fix: impl Into<String>) {
        if self.needs == Needs::Crm {
            self.issue(key, problem, fix);
        }
    }

    /// An http(s) URL without a trailing slash.
    fn url(&mut self, key: &str, value: &str) -> Option<String> {
        match url::Url::parse(value) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(value.trim_end_matches('/').to_owned())
            }
            Ok(_) => {
                self.issue(
                    key,
                    format!("{value:?} is not an http(s) URL"),
                    "write it as https://host[:port][/path]",
                );
                None
            }
            Err(err) => {
                self.issue(
                    key,
                    format!("{value:?} is not a URL ({err})"),
                    "write it as https://host[:port][/path]",
                );
                None
            }
        }
    }

    fn secs(&mut self, key: &str, value: Option<u64>, default: u64, range: (u64, u64)) -> Duration {
        let secs = value.unwrap_or(default);
        if secs < range.0 || secs > range.1 {
            self.issue(
                key,
                format!("{secs} is out of range"),
                format!("use a value from {} to {}", range.0, range.1),
            );
        }
        Duration::from_secs(secs)
    }

    /// The orgs: each `[[org]]` section, else `[crm]` as the one org.
    fn orgs(&mut self, raw: &RawConfig) -> Vec<OrgConfig> {
        if raw.org.is_empty() {
            let crm = self.crm(&raw.crm);
            let name = match raw.crm.name.as_deref() {
                None => crm.as_ref().map(|c| OrgId::default_for(c.kind)),
                Some(name) => match OrgId::new(name) {
                    Ok(id) => Some(id),
                    Err(err) => {
                        self.issue("crm.name", err.to_string(), "rename it");
                        None
                    }
                },
            };
            return match (name, crm) {
                (Some(name), Some(crm)) => vec![OrgConfig {
                    name,
                    crm,
                    webhook_secret: None,
                    policy: None,
                    full_sync: None,
                    full_replan: None,
                    drift_schedule: None,
                }],
                _ => Vec::new(),
            };
        }
        let crm = &raw.crm;
        if crm.name.is_some()
            || crm.kind.is_some()
            || crm.base_url.is_some()
            || crm.token.is_some()
            || crm.oauth.client_id.is_some()
        {
            self.issue(
                "crm",
                "[crm] is set as well as [[org]] sections",
                "move its keys into an [[org]] section (a config has either one [crm] or [[org]]s)",
            );
        }
        let mut orgs: Vec<OrgConfig> = Vec::new();
        let mut seen: Vec<(OrgId, String)> = Vec::new();
        for (i, org) in raw.org.iter().enumerate() {
            let place = raw.org_places.get(i).copied().unwrap_or_default();
            let at = if place.line == 0 {
                format!("org[{}]", i + 1)
            } else {
                format!("line {}, column {}: org", place.line, place.column)
            };
            let name_at = match place.name {
                Some((line, column)) => format!("line {line}, column {column}: org.name"),
                None => format!("{at}.name"),
            };
            let name = match org.name.as_deref() {
                None => {
                    self.issue(
                        &name_at,
                        "missing: every [[org]] needs a name",
                        "add name = \"…\" (e.g. \"acme-hubspot\"): it keys the org's rows, \
                         lease, webhook path and --org",
                    );
                    None
                }
                Some(name) => match OrgId::new(name) {
                    Ok(id) => Some(id),
                    Err(err) => {
                        self.issue(&name_at, err.to_string(), "rename it");
                        None
                    }
                },
            };
            if let Some(name) = &name {
                if let Some((_, first)) = seen.iter().find(|(n, _)| n == name) {
                    self.issue(
                        &name_at,
                        format!(
                            "a second org named {:?} (the first is at {first})",
                            name.as_str()
                        ),
                        "give each [[org]] its own name",
                    );
                } else {
                    seen.push((name.clone(), name_at.clone()));
                }
            }
            self.section = at.clone();
            let crm = self.crm(&org.crm());
            self.section = "crm".to_owned();
            let full_sync = self.cron(&format!("{at}.full_sync"), org.full_sync.as_deref());
            let full_replan = self.cron(&format!("{at}.full_replan"), org.full_replan.as_deref());
            let drift_schedule = self.cron(
                &format!("{at}.drift_schedule"),
                org.drift_schedule.as_deref(),
            );
            if let (Some(name), Some(crm)) = (name, crm) {
                // A HubSpot app signs webhooks with its client secret.
                let webhook_secret = org.webhook_secret.clone().or_else(|| {
                    (crm.kind == CrmKind::Hubspot)
                        .then(|| org.oauth.client_secret.clone())
                        .flatten()
                });
                orgs.push(OrgConfig {
                    name,
                    crm,
                    webhook_secret,
                    policy: org.policy.clone(),
                    full_sync,
                    full_replan,
                    drift_schedule,
                });
            }
        }
        orgs
    }

    fn crm(&mut self, raw: &RawCrm) -> Option<CrmConfig> {
        let section = self.section.clone();
        let k = |key: &str| format!("{section}.{key}");
        let kind = match raw.kind.as_deref().unwrap_or("hubspot") {
            "hubspot" => Some(CrmKind::Hubspot),
            "salesforce" => Some(CrmKind::Salesforce),
            other => {
                self.issue(
                    &k("kind"),
                    format!("unknown CRM {other:?}"),
                    "use \"hubspot\" or \"salesforce\"",
                );
                None
            }
        };
        let base_url = match (raw.base_url.as_deref(), kind) {
            (Some(url), _) => self.url(&k("base_url"), url),
            (None, Some(CrmKind::Salesforce)) => Some(DEFAULT_SALESFORCE_LOGIN_URL.to_owned()),
            (None, _) => {
                self.missing(
                    &k("base_url"),
                    "missing",
                    "set crm.base_url in a config file (--config) or LEADROUTE_CRM_BASE_URL: \
                     https://api.hubapi.com for HubSpot, or the URL `leadroute sim hubspot` prints",
                );
                None
            }
        };
        let tier = match raw.tier.as_deref() {
            None => HubSpotTier::Professional,
            Some(name) => HubSpotTier::parse(name).unwrap_or_else(|| {
                self.issue(
                    &k("tier"),
                    format!("unknown tier {name:?}"),
                    "use free, starter, professional, enterprise, api_add_on or oauth_app",
                );
                HubSpotTier::Professional
            }),
        };
        let overlap = self.secs(
            &k("overlap_secs"),
            raw.overlap_secs,
            DEFAULT_OVERLAP_SECS,
            (0, 86_400),
        );
        let request_timeout = self.secs(
            &k("request_timeout_secs"),
            raw.request_timeout_secs,
            30,
            (1, 600),
        );
        let max_retries = raw.max_retries.unwrap_or(8);
        if max_retries > 100 {
            self.issue(
                &k("max_retries"),
                format!("{max_retries} is too many"),
                "use at most 100",
            );
        }
        let salesforce = self.salesforce(&raw.salesforce);
        let auth = match kind {
            Some(CrmKind::Hubspot) => self.hubspot_auth(raw),
            Some(CrmKind::Salesforce) => self.salesforce_auth(raw, base_url.as_deref()),
            None => None,
        };
        // A command that only reads the mirror runs without CRM credentials.
        let read_only = self.needs == Needs::Mirror;
        let base_url = base_url.or_else(|| read_only.then(String::new));
        let auth = auth.or_else(|| read_only.then_some(CrmAuth::Unset));
        Some(CrmConfig {
            kind: kind?,
            base_url: base_url?,
            auth: auth?,
            tier,
            overlap,
            daily_reserve: raw.daily_reserve.unwrap_or(0),
            request_timeout,
            max_retries,
            salesforce,
        })
    }

    fn hubspot_auth(&mut self, raw: &RawCrm) -> Option<CrmAuth> {
        let section = self.section.clone();
        let k = |key: &str| format!("{section}.{key}");
        if let Some(token) = &raw.token {
            if token.expose_secret().trim().is_empty() {
                self.issue(&k("token"), "empty", "paste the private app's access token");
                return None;
            }
            return Some(CrmAuth::Token(token.clone()));
        }
        let oauth = &raw.oauth;
        match (&oauth.client_id, &oauth.client_secret, &oauth.refresh_token) {
            (Some(client_id), Some(client_secret), Some(refresh_token)) => {
                Some(CrmAuth::RefreshToken {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    refresh_token: refresh_token.clone(),
                })
            }
            (None, None, None) => {
                let fix = if section == "crm" {
                    "set LEADROUTE_CRM_TOKEN (or crm.token / crm.token_file), or crm.oauth.client_id, \
                     client_secret and refresh_token"
                } else {
                    "set token_file (or token) in this [[org]], or LEADROUTE_ORG_<NAME>_TOKEN, or \
                     its oauth.client_id, client_secret and refresh_token"
                };
                self.missing(
                    &k("token"),
                    "missing: HubSpot needs a private-app token or OAuth credentials",
                    fix,
                );
                None
            }
            (client_id, client_secret, refresh_token) => {
                for (key, missing) in [
                    (&k("oauth.client_id"), client_id.is_none()),
                    (&k("oauth.client_secret"), client_secret.is_none()),
                    (&k("oauth.refresh_token"), refresh_token.is_none()),
                ] {
                    if missing {
                        self.missing(
                            key,
                            "missing while other crm.oauth keys are set",
                            "set all of client_id, client_secret and refresh_token, or use crm.token",
                        );
                    }
                }
                None
            }
        }
    }

    fn salesforce_auth(&mut self, raw: &RawCrm, login_url: Option<&str>) -> Option<CrmAuth> {
        let section = self.section.clone();
        let k = |key: &str| format!("{section}.{key}");
        let sf = &raw.salesforce;
        let oauth = &raw.oauth;
        let mode = sf.auth.as_deref().unwrap_or(if raw.token.is_some() {
            "session"
        } else if sf.private_key_file.is_some() {
            "jwt"
        } else if oauth.refresh_token.is_some() {
            "refresh_token"
        } else {
            "client_credentials"
        });
        let need = |v: &mut Self, key: &str, present: bool| {
            if !present {
                v.missing(
                    key,
                    format!("missing, and crm.salesforce.auth = {mode:?} needs it"),
                    "set it, or pick another crm.salesforce.auth",
                );
            }
            present
        };
        match mode {
            "session" => {
                let ok = need(self, &k("token"), raw.token.is_some());
                ok.then(|| raw.token.clone().map(CrmAuth::Token)).flatten()
            }
            "jwt" => {
                let a = need(self, &k("oauth.client_id"), oauth.client_id.is_some());
                let b = need(self, &k("salesforce.username"), sf.username.is_some());
                let c = need(
                    self,
                    &k("salesforce.private_key_file"),
                    sf.private_key_file.is_some(),
                );
                if !(a && b && c) {
                    return None;
                }
                // A key file that could not be read is reported by `read_secret_files`;
                // `from_toml` (no file reading) leaves an empty key the connector rejects.
                Some(CrmAuth::JwtBearer {
                    client_id: oauth.client_id.clone()?,
                    username: sf.username.clone()?,
                    private_key_pem: sf
                        .private_key_pem
                        .clone()
                        .unwrap_or_else(|| SecretString::from(String::new())),
                    audience: sf
                        .audience
                        .clone()
                        .or_else(|| login_url.map(str::to_owned))
                        .unwrap_or_else(|| DEFAULT_SALESFORCE_LOGIN_URL.to_owned()),
                })
            }
            "refresh_token" => {
                let a = need(self, &k("oauth.client_id"), oauth.client_id.is_some());
                let b = need(
                    self,
                    &k("oauth.client_secret"),
                    oauth.client_secret.is_some(),
                );
                let c = need(
                    self,
                    &k("oauth.refresh_token"),
                    oauth.refresh_token.is_some(),
                );
                if !(a && b && c) {
                    return None;
                }
                Some(CrmAuth::RefreshToken {
                    client_id: oauth.client_id.clone()?,
                    client_secret: oauth.client_secret.clone()?,
                    refresh_token: oauth.refresh_token.clone()?,
                })
            }
            "client_credentials" => {
                let a = need(self, &k("oauth.client_id"), oauth.client_id.is_some());
                let b = need(
                    self,
                    &k("oauth.client_secret"),
                    oauth.client_secret.is_some(),
                );
                if !(a && b) {
                    return None;
                }
                Some(CrmAuth::ClientCredentials {
                    client_id: oauth.client_id.clone()?,
                    client_secret: oauth.client_secret.clone()?,
                })
            }
            other => {
                self.issue(
                    &k("salesforce.auth"),
                    format!("unknown auth {other:?}"),
                    "use jwt, refresh_token, client_credentials or session",
                );
                None
            }
        }
    }

    fn salesforce(&mut self, raw: &RawSalesforce) -> SalesforceConfig {
        let section = self.section.clone();
        let k = |key: &str| format!("{section}.{key}");
        let instance_url = raw
            .instance_url
            .as_deref()
            .and_then(|url| self.url(&k("salesforce.instance_url"), url));
        let api_version = raw
            .api_version
            .clone()
            .unwrap_or_else(|| DEFAULT_SALESFORCE_API_VERSION.to_owned());
        let well_formed = api_version
            .strip_prefix('v')
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(major, minor)| {
                major.parse::<u32>().is_ok_and(|m| m >= 62) && minor.parse::<u32>().is_ok()
            });
        if !well_formed {
            self.issue(
                &k("salesforce.api_version"),
                format!("{api_version:?} is not a supported API version"),
                "write it as v62.0 or later",
            );
        }
        SalesforceConfig {
            instance_url,
            api_version,
            organization_id: raw.organization_id.clone(),
            bulk_threshold: raw.bulk_threshold.unwrap_or(2_000),
            strict_writes: raw.strict_writes.unwrap_or(false),
        }
    }

    fn store(&mut self, raw: &RawStore) -> StoreConfig {
        let url = raw.url.clone().unwrap_or_else(|| {
            SecretString::from(format!(
                "sqlite://{}",
                crate::store::default_sqlite_path().display()
            ))
        });
        if let Err(err) = crate::store::check_url(url.expose_secret()) {
            self.issue(
                "store.url",
                err.to_string(),
                "use sqlite://PATH (the default is .leadroute/leadroute.db) or postgres://USER@HOST/DB",
            );
        }
        StoreConfig { url }
    }

    fn sync(&mut self, raw: &RawSync) -> SyncConfig {
        let interval = self.secs(
            "sync.interval_secs",
            raw.interval_secs,
            DEFAULT_INTERVAL_SECS,
            (1, 86_400),
        );
        let hint_batch = raw.hint_batch.unwrap_or(100);
        if !(1..=1_000).contains(&hint_batch) {
            self.issue(
                "sync.hint_batch",
                format!("{hint_batch} is out of range"),
                "use 1 to 1000 (HubSpot batch reads take 100)",
            );
        }
        let hint_poll_ms = raw.hint_poll_ms.unwrap_or(250);
        if !(10..=60_000).contains(&hint_poll_ms) {
            self.issue(
                "sync.hint_poll_ms",
                format!("{hint_poll_ms} is out of range"),
                "use 10 to 60000",
            );
        }
        SyncConfig {
            interval,
            hint_batch,
            hint_poll: Duration::from_millis(hint_poll_ms),
            activities: raw.activities.unwrap_or(false),
        }
    }

    fn ui(&mut self, raw: &raw::RawUi) -> UiConfig {
        let d = UiConfig::default();
        let listen = match raw.listen.as_deref() {
            None => d.listen,
            Some(text) => match text.parse::<SocketAddr>() {
                Ok(addr) => addr,
                Err(_) => {
                    self.issue(
                        "ui.listen",
                        format!("{text:?} is not an address with a port"),
                        "write it as \"127.0.0.1:8088\" or \"[::1]:8088\"",
                    );
                    d.listen
                }
            },
        };
        let idle = self.ranged(
            "ui.session_idle_secs",
            raw.session_idle_secs,
            d.session_idle.as_secs(),
            (60, 30 * 86_400),
            "a session ends after this long without a request",
        );
        let mut users: Vec<UiUser> = Vec::new();
        for (i, user) in raw.users.iter().enumerate() {
            let place = format!("ui.users[{i}]");
            let Some(name) = user.name.as_deref().filter(|n| !n.trim().is_empty()) else {
                self.issue(
                    &format!("{place}.name"),
                    "missing",
                    "give every console user a name (what they type to log in)",
                );
                continue;
            };
            if users.iter().any(|u| u.name == name) {
                self.issue(
                    &format!("{place}.name"),
                    format!("{name:?} is listed twice"),
                    "keep one entry per user",
                );
                continue;
            }
            let role = match user.role.as_deref().map(UiRole::parse) {
                Some(Some(role)) => role,
                Some(None) | None => {
                    self.issue(
                        &format!("{place}.role"),
                        format!("{:?} is not a role", user.role.as_deref().unwrap_or("")),
                        "write viewer, operator or admin",
                    );
                    continue;
                }
            };
            let Some(hash) = user
                .password_hash
                .as_deref()
                .filter(|h| h.starts_with("$argon2"))
            else {
                self.issue(
                    &format!("{place}.password_hash"),
                    "missing or not an argon2 hash",
                    format!("run `leadroute ui passwd {name}` and paste the line it prints"),
                );
                continue;
            };
            users.push(UiUser {
                name: name.to_owned(),
                role,
                password_hash: hash.to_owned(),
            });
        }
        UiConfig {
            listen,
            session_idle: Duration::from_secs(idle),
            users,
        }
    }

    fn service(&mut self, raw: &RawService) -> ServiceConfig {
        let d = ServiceConfig::default();
        let ms = |v: Duration| u64::try_from(v.as_millis()).unwrap_or(u64::MAX);
        let linger = self.ranged(
            "service.linger_ms",
            raw.linger_ms,
            ms(d.linger),
            (0, 60_000),
            "a trickle is written within it; 200 ms fills batches in a burst",
        );
        let grace = self.ranged(
            "service.shutdown_grace_secs",
            raw.shutdown_grace_secs,
            d.shutdown_grace.as_secs(),
            (1, 3_600),
            "long enough for one write batch with its retries",
        );
        let full = self.ranged(
            "service.full_replan_secs",
            raw.full_replan_secs,
            d.full_replan.as_secs(),
            (60, 7 * 86_400),
            "the safety net behind incremental decisions",
        );
        let poll = self.ranged(
            "service.policy_poll_ms",
            raw.policy_poll_ms,
            ms(d.policy_poll),
            (50, 600_000),
            "how soon an edited policy file is noticed",
        );
        let lease_ttl = self.ranged(
            "service.lease_ttl_secs",
            raw.lease_ttl_secs,
            d.lease_ttl.as_secs(),
            (1, 3_600),
            "the longest a dead leader's org waits for a standby",
        );
        let max_orgs = raw.max_orgs.map(|n| {
            self.ranged(
                "service.max_orgs",
                Some(n),
                1,
                (1, 100_000),
                "the most orgs this process leads; remove it for no limit",
            )
        });
        let full_replan_cron = self.cron("service.full_replan", raw.full_replan.as_deref());
        let full_sync = self.cron("service.full_sync", raw.full_sync.as_deref());
        let time_zone = match raw.time_zone.as_deref() {
            None => d.time_zone,
            Some(zone) => match zone.parse::<chrono_tz::Tz>() {
                Ok(tz) => tz,
                Err(_) => {
                    self.issue(
                        "service.time_zone",
                        format!("{zone:?} is not an IANA time zone"),
                        "write a zone name such as \"UTC\", \"Europe/Berlin\" or \"America/New_York\"",
                    );
                    d.time_zone
                }
            },
        };
        ServiceConfig {
            linger: Duration::from_millis(linger),
            shutdown_grace: Duration::from_secs(grace),
            full_replan: Duration::from_secs(full),
            policy_poll: Duration::from_millis(poll),
            full_replan_cron,
            full_sync,
            time_zone,
            lease_ttl: Duration::from_secs(lease_ttl),
            max_orgs: max_orgs.and_then(|n| usize::try_from(n).ok()),
        }
    }

    /// A cron expression with seconds, as the `cron` crate reads it.
    fn cron(&mut self, key: &str, value: Option<&str>) -> Option<String> {
        let value = value?;
        match value.parse::<cron::Schedule>() {
            Ok(schedule) => {
                if schedule.upcoming(chrono::Utc).next().is_none() {
                    self.issue(
                        key,
                        format!("{value:?} never fires again"),
                        "remove the year field or use a year to come",
                    );
                    return None;
                }
                Some(value.to_owned())
            }
            Err(err) => {
                self.issue(
                    key,
                    format!("{value:?} is not a cron expression ({err})"),
                    "write sec min hour day-of-month month day-of-week, e.g. \"0 0 3 * * *\" for 03:00 daily",
                );
                None
            }
        }
    }

    fn webhook(&mut self, raw: &RawWebhook, crm: &RawCrm, orgs: &[RawOrg]) -> WebhookConfig {
        let listen = raw
            .listen
            .as_deref()
            .and_then(|listen| match listen.parse() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.issue(
                        "webhook.listen",
                        format!("{listen:?} is not an address"),
                        "write IP:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080",
                    );
                    None
                }
            });
        let public_url = raw
            .public_url
            .as_deref()
            .and_then(|url| self.url("webhook.public_url", url));
        let secret = raw
            .secret
            .clone()
            .or_else(|| crm.oauth.client_secret.clone());
        let is_hubspot = crm.kind.as_deref().unwrap_or("hubspot") == "hubspot";
        if raw.listen.is_some() {
            if raw.public_url.is_none() {
                self.issue(
                    "webhook.public_url",
                    "missing while webhook.listen is set",
                    "set the public base URL the CRM calls (HubSpot signs that URL), e.g. https://leadroute.example.com",
                );
            }
            for org in orgs {
                let hubspot = org.kind.as_deref().unwrap_or("hubspot") == "hubspot";
                let signed = org.webhook_secret.is_some()
                    || secret.is_some()
                    || org.oauth.client_secret.is_some();
                if hubspot && !signed {
                    self.issue(
                        &format!("org {:?}.webhook_secret", org.name.as_deref().unwrap_or("?")),
                        "missing while webhook.listen is set: this HubSpot org's webhooks cannot be verified",
                        "set webhook_secret or webhook_secret_file in its [[org]] section (or LEADROUTE_ORG_<NAME>_WEBHOOK_SECRET)",
                    );
                }
            }
            if orgs.is_empty() && is_hubspot && secret.is_none() {
                self.issue(
                    "webhook.secret",
                    "missing while webhook.listen is set: HubSpot webhooks cannot be verified",
                    "set the HubSpot app's client secret in webhook.secret, webhook.secret_file or LEADROUTE_WEBHOOK_SECRET",
                );
            }
        }
        WebhookConfig {
            listen,
            public_url,
            secret,
        }
    }

    /// `value` (or `default`) if within `range`, else an issue and the default.
    fn ranged<T>(&mut self, key: &str, value: Option<T>, default: T, range: (T, T), why: &str) -> T
    where
        T: PartialOrd + Copy + fmt::Display,
    {
        let Some(v) = value else { return default };
        if v < range.0 || v > range.1 {
            self.issue(
                key,
                format!("{v} is out of range"),
                format!("use {} to {} ({why})", range.0, range.1),
            );
            return default;
        }
        v
    }

    fn writer(&mut self, raw: &RawWriter) -> WriterConfig {
        use crate::writer::WriterSettings;
        let d = WriterSettings::default();
        if raw.max_changes == Some(0) {
            self.issue(
                "writer.max_changes",
                "0 would apply nothing",
                "remove it to apply whole plans, or set 1 or more",
            );
        }
        let max_batch = raw.max_batch.map(|b| {
            self.ranged(
                "writer.max_batch",
                Some(b),
                b,
                (1, 200),
                "the CRM's own maximum is used above it: HubSpot 100, Salesforce 200",
            )
        });
        let bulk_threshold = raw.bulk_threshold.map(|t| {
            self.ranged(
                "writer.bulk_threshold",
                Some(t),
                2_000,
                (1, 150_000_000),
                "Salesforce suggests Bulk API 2.0 from about 2,000 records",
            )
        });
        let bulk_job_size = self.ranged(
            "writer.bulk_job_size",
            raw.bulk_job_size,
            d.bulk_job_size,
            (200, 1_000_000),
            "Salesforce splits jobs in 10,000-record batches; an upload must stay under 100 MB",
        );
        if let (Some(threshold), Some(size)) = (bulk_threshold, raw.bulk_job_size)
            && threshold > size
        {
            self.issue(
                "writer.bulk_threshold",
                format!(
                    "{threshold} is above writer.bulk_job_size {size}: no job could ever start"
                ),
                "set bulk_threshold at or below bulk_job_size",
            );
        }
        let record_attempts = self.ranged(
            "writer.record_attempts",
            raw.record_attempts,
            d.record_attempts,
            (1, 20),
            "1 means no retry of a locked row",
        );
        let call_retries = self.ranged(
            "writer.call_retries",
            raw.call_retries,
            d.call_retries,
            (0, 50),
            "a run that keeps failing stops resumably",
        );
        let retry_min_ms = self.ranged(
            "writer.retry_min_ms",
            raw.retry_min_ms,
            d.retry_min.as_millis() as u64,
            (1, 60_000),
            "the first backoff",
        );
        let retry_max_ms = self.ranged(
            "writer.retry_max_ms",
            raw.retry_max_ms,
            d.retry_max.as_millis() as u64,
            (1, 600_000),
            "the longest backoff",
        );
        if retry_max_ms < retry_min_ms {
            self.issue(
                "writer.retry_max_ms",
                format!("{retry_max_ms} is below writer.retry_min_ms {retry_min_ms}"),
                "set retry_max_ms at or above retry_min_ms",
            );
        }
        let breaker_threshold = self.ranged(
            "writer.breaker_threshold",
            raw.breaker_threshold,
            d.breaker_threshold,
            (1, 100),
            "consecutive server failures that open the circuit breaker",
        );
        let breaker_cooldown = self.secs(
            "writer.breaker_cooldown_secs",
            raw.breaker_cooldown_secs,
            d.breaker_cooldown.as_secs(),
            (1, 3_600),
        );
        let breaker_max_trips = self.ranged(
            "writer.breaker_max_trips",
            raw.breaker_max_trips,
            d.breaker_max_trips,
            (1, 100),
            "breaker trips in a row before the run stops",
        );
        WriterConfig {
            max_changes: raw.max_changes.filter(|n| *n > 0),
            settings: WriterSettings {
                strict: false,
                max_batch,
                record_attempts,
                retry_min: Duration::from_millis(retry_min_ms),
                retry_max: Duration::from_millis(retry_max_ms.max(retry_min_ms)),
                call_retries,
                breaker_threshold,
                breaker_cooldown,
                breaker_max_trips,
                pipeline: raw.pipeline.unwrap_or(d.pipeline),
                bulk: raw.bulk.unwrap_or(d.bulk),
                bulk_threshold,
                bulk_job_size,
                ..d
            },
        }
    }

    fn drift(&mut self, raw: &RawDrift) -> DriftConfig {
        if let Some(schedule) = &raw.schedule
            && let Err(err) = schedule.parse::<cron::Schedule>()
        {
            self.issue(
                "drift.schedule",
                format!("{schedule:?} is not a cron expression ({err})"),
                "write sec min hour day-of-month month day-of-week, e.g. \"0 0 6 * * *\" for 06:00 daily",
            );
        }
        let keep = self.ranged(
            "drift.keep",
            raw.keep,
            DEFAULT_DRIFT_KEEP,
            (1, 100_000),
            "how many report directories stay on disk",
        );
        DriftConfig {
            keep,
            schedule: raw.schedule.clone(),
            out_dir: raw
                .out_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("drift")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn messages(err: ConfigError) -> Vec<String> {
        err.issues.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn no_file_and_a_base_url_and_token_from_the_environment_is_enough() {
        let config = Config::from_raw(
            {
                let mut raw = RawConfig::default();
                raw.apply_env(&env(&[
                    ("LEADROUTE_CRM_BASE_URL", "http://127.0.0.1:4010/"),
                    ("LEADROUTE_CRM_TOKEN", "pat-na1-secret"),
                ]));
                raw
            },
            NO_FILE,
        )
        .unwrap();
        assert_eq!(config.crm.kind, CrmKind::Hubspot);
        assert_eq!(config.crm.base_url, "http://127.0.0.1:4010");
        assert_eq!(
            config.store.url.expose_secret(),
            "sqlite://.leadroute/leadroute.db"
        );
        assert_eq!(config.crm.overlap, Duration::from_secs(300));
        assert!(
            !format!("{config:?}").contains("pat-na1-secret"),
            "secrets are redacted"
        );
    }

    #[test]
    fn the_sidecar_listen_address_and_policy_come_from_the_environment() {
        let config = Config::from_toml(
            "[crm]\nbase_url = \"http://127.0.0.1:1\"\ntoken = \"t\"\n[webhook]\npublic_url = \"https://lr.example.com\"\nsecret = \"s\"\n[service]\nlinger_ms = 50\n",
            "x.toml",
            &env(&[
                ("LEADROUTE_LISTEN", "127.0.0.1:9191"),
                ("LEADROUTE_POLICY", "/etc/leadroute/policy.toml"),
            ]),
        )
        .unwrap();
        assert_eq!(
            config.webhook.listen,
            Some("127.0.0.1:9191".parse().unwrap())
        );
        assert_eq!(
            config.policy.path.as_deref(),
            Some(Path::new("/etc/leadroute/policy.toml"))
        );
        assert_eq!(config.service.linger, Duration::from_millis(50));
        assert_eq!(config.service.shutdown_grace, Duration::from_secs(30));
    }

    #[test]
    fn a_missing_base_url_names_the_variable_to_set() {
        let err = Config::from_raw(
            {
                let mut raw = RawConfig::default();
                raw.apply_env(&env(&[("LEADROUTE_CRM_TOKEN", "t")]));
                raw
            },
            NO_FILE,
        )
        .unwrap_err();
        let messages = messages(err);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].starts_with("(no config file): crm.base_url: missing; set"));
        assert!(messages[0].contains("LEADROUTE_CRM_BASE_URL"));
    }

    #[test]
    fn every_problem_is_reported_with_its_place_and_fix() {
        let text = r#"
            [crm]
            kind = "hubspot"
            base_url = "ftp://example.com"
            tier = "gold"
            overlap_secs = 100000
            [store]
            url = "mysql://db/x"
            [sync]
            interval_secs = 0
            [webhook]
            listen = "localhost"
            [drift]
            schedule = "every day"
        "#;
        let err = Config::from_toml(text, "config/leadroute.toml", &env(&[])).unwrap_err();
        let messages = messages(err);
        let places: Vec<&str> = messages
            .iter()
            .map(|m| m.split(": ").nth(1).unwrap())
            .collect();
        for place in [
            "crm.base_url",
            "crm.tier",
            "crm.overlap_secs",
            "crm.token",
            "store.url",
            "sync.interval_secs",
            "webhook.listen",
            "webhook.public_url",
            "webhook.secret",
            "drift.schedule",
        ] {
            assert!(
                places.contains(&place),
                "{place} not reported in {messages:#?}"
            );
        }
        for message in &messages {
            assert!(message.starts_with("config/leadroute.toml: "), "{message}");
            assert!(message.contains("; "), "every issue has a fix: {message}");
        }
    }

    #[test]
    fn the_sidecar_schedules_zone_and_lease_are_read_and_checked_together() {
        let base = "[crm]\nbase_url = \"http://127.0.0.1:1\"\ntoken = \"t\"\n";
        let good = format!(
            "{base}[drift]\nschedule = \"0 0 6 * * *\"\nkeep = 7\n[service]\nfull_replan = \"0 0 3 * * *\"\nfull_sync = \"0 30 * * * *\"\ntime_zone = \"Europe/Berlin\"\nlease_ttl_secs = 3\nmax_orgs = 4\n"
        );
        let config = Config::from_toml(&good, "x.toml", &env(&[])).unwrap();
        assert_eq!(config.drift.keep, 7);
        assert_eq!(
            config.service.full_replan_cron.as_deref(),
            Some("0 0 3 * * *")
        );
        assert_eq!(config.service.full_sync.as_deref(), Some("0 30 * * * *"));
        assert_eq!(config.service.time_zone, chrono_tz::Europe::Berlin);
        assert_eq!(config.service.lease_ttl, Duration::from_secs(3));
        assert_eq!(config.service.max_orgs, Some(4));
        let defaults = Config::from_toml(base, "x.toml", &env(&[])).unwrap();
        assert_eq!(defaults.drift.keep, DEFAULT_DRIFT_KEEP);
        assert_eq!(defaults.service.time_zone, chrono_tz::UTC);
        assert_eq!(defaults.service.lease_ttl, Duration::from_secs(15));
        assert_eq!(defaults.service.max_orgs, None, "no limit by default");
        assert_eq!(defaults.service.full_sync, None);

        let bad = format!(
            "{base}[drift]\nkeep = 0\n[service]\nfull_replan = \"nightly\"\nfull_sync = \"0 0 25 * * *\"\ntime_zone = \"Mars/Olympus\"\nlease_ttl_secs = 0\nmax_orgs = 0\n"
        );
        let messages = messages(Config::from_toml(&bad, "x.toml", &env(&[])).unwrap_err());
        for place in [
            "drift.keep",
            "service.full_replan",
            "service.full_sync",
            "service.time_zone",
            "service.lease_ttl_secs",
            "service.max_orgs",
        ] {
            assert!(
                messages
                    .iter()
                    .any(|m| m.starts_with(&format!("x.toml: {place}: "))),
                "{place} not reported in {messages:#?}"
            );
        }
        assert!(
            messages
                .iter()
                .any(|m| m.contains("\"Mars/Olympus\" is not an IANA time zone")),
            "{messages:#?}"
        );
    }

    #[test]
    fn values_from_the_environment_are_blamed_on_the_variable() {
        let err = Config::from_toml(
            "[crm]\ntoken = \"t\"\n",
            "lr.toml",
            &env(&[("LEADROUTE_CRM_BASE_URL", "not a url")]),
        )
        .unwrap_err();
        assert!(
            messages(err)[0].starts_with("environment: LEADROUTE_CRM_BASE_URL (crm.base_url): ")
        );
    }

    #[test]
    fn unknown_keys_are_errors_at_their_line() {
        let err = Config::from_toml(
            "[crm]\nbase_url = \"http://x\"\ntokn = \"t\"\n",
            "lr.toml",
            &env(&[]),
        )
        .unwrap_err();
        let messages = messages(err);
        assert!(
            messages[0].starts_with(
                "lr.toml: line 3, column 1: unknown field `tokn` (did you mean `token`?); rename it to `token`"
            ),
            "{messages:?}"
        );
    }

    #[test]
    fn every_unknown_key_is_reported_in_one_run() {
        let err = Config::from_toml(
            "[crm]\nbase_url = \"http://x\"\ntokn = \"t\"\ntier = \"free\"\noverlap = 5\n[sync]\nintervall_secs = 5\n",
            "lr.toml",
            &env(&[]),
        )
        .unwrap_err();
        let messages = messages(err);
        assert_eq!(messages.len(), 3, "{messages:#?}");
        assert!(
            messages[0].contains("line 3, column 1: unknown field `tokn`"),
            "{messages:#?}"
        );
        assert!(
            messages[1].contains(
                "line 5, column 1: unknown field `overlap` (did you mean `overlap_secs`?)"
            ),
            "{messages:#?}"
        );
        assert!(
            messages[2].contains(
                "line 7, column 1: unknown field `intervall_secs` (did you mean `interval_secs`?)"
            ),
            "{messages:#?}"
        );
    }

    #[test]
    fn a_config_file_that_is_not_utf8_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lr.toml");
        std::fs::write(&path, b"[crm]\nbase_url = \"http://x\"\n# caf\xe9\n").unwrap();
        let messages = messages(Config::load(Some(&path), &env(&[])).unwrap_err());
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].ends_with(
                "line 3: not UTF-8: invalid byte at line 3, column 6 (byte offset 33); save the file as UTF-8 (it looks like another encoding, e.g. Latin-1 or UTF-16)"
            ),
            "{messages:?}"
        );
    }

    #[test]
    fn mirror_only_commands_need_no_crm_credentials() {
        let config = Config::load_for(None, &env(&[]), Needs::Mirror).unwrap();
        assert!(matches!(config.crm.auth, CrmAuth::Unset));
        // A command that calls the CRM still needs them.
        let lines = messages(Config::load_for(None, &env(&[]), Needs::Crm).unwrap_err());
        assert!(
            lines.iter().any(|m| m.contains("crm.base_url: missing")),
            "{lines:?}"
        );
        // A malformed value is still a problem for every command.
        let err = Config::load_for(
            None,
            &env(&[("LEADROUTE_CRM_BASE_URL", "nope")]),
            Needs::Mirror,
        )
        .unwrap_err();
        assert!(messages(err)[0].contains("crm.base_url"));
    }

    #[test]
    fn salesforce_picks_its_auth_flow_and_says_what_it_lacks() {
        let err = Config::from_toml(
            "[crm]\nkind = \"salesforce\"\n[crm.salesforce]\nauth = \"jwt\"\n",
            "sf.toml",
            &env(&[]),
        )
        .unwrap_err();
        let messages = messages(err);
        assert!(
            messages
                .iter()
                .any(|m| m.contains("crm.salesforce.username: missing"))
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("crm.oauth.client_id: missing"))
        );
        let config = Config::from_toml(
            "[crm]\nkind = \"salesforce\"\ntoken = \"00D!session\"\n[crm.salesforce]\ninstance_url = \"https://acme.my.salesforce.com\"\n",
            "sf.toml",
            &env(&[]),
        )
        .unwrap();
        assert!(matches!(config.crm.auth, CrmAuth::Token(_)));
        assert_eq!(config.crm.base_url, DEFAULT_SALESFORCE_LOGIN_URL);
    }

    #[test]
    fn secret_files_are_read_and_trimmed_and_unreadable_ones_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "pat-from-file\n").unwrap();
        let path = dir.path().join("lr.toml");
        std::fs::write(
            &path,
            "[crm]\nbase_url = \"http://127.0.0.1:1\"\ntoken_file = \"token\"\n[webhook]\nsecret_file = \"nope\"\n",
        )
        .unwrap();
        let err = Config::load(Some(&path), &env(&[])).unwrap_err();
        assert_eq!(err.issues.len(), 1);
        assert_eq!(err.issues[0].place, "webhook.secret_file");
        std::fs::write(
            &path,
            "[crm]\nbase_url = \"http://127.0.0.1:1\"\ntoken_file = \"token\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&path), &env(&[])).unwrap();
        let CrmAuth::Token(token) = config.crm.auth else {
            panic!("expected token auth")
        };
        assert_eq!(token.expose_secret(), "pat-from-file");
    }

    #[test]
    fn the_writer_section_tunes_the_writer_and_defaults_to_its_defaults() {
        let base = "[crm]\nbase_url = \"http://127.0.0.1:1\"\ntoken = \"t\"\n";
        let config = Config::from_toml(base, "lr.toml", &env(&[])).unwrap();
        assert_eq!(
            config.writer.settings,
            crate::writer::WriterSettings::default()
        );
        assert_eq!(config.writer.max_changes, None);
        let text = format!(
            "{base}[writer]\nmax_changes = 5000\nmax_batch = 50\nbulk = false\nbulk_threshold = 5000\n\
             bulk_job_size = 20000\nrecord_attempts = 3\ncall_retries = 2\nretry_min_ms = 100\n\
             retry_max_ms = 2000\nbreaker_threshold = 4\nbreaker_cooldown_secs = 10\n\
             breaker_max_trips = 2\npipeline = false\n"
        );
        let writer = Config::from_toml(&text, "lr.toml", &env(&[]))
            .unwrap()
            .writer;
        let s = &writer.settings;
        assert_eq!(writer.max_changes, Some(5000));
        assert_eq!(s.max_batch, Some(50));
        assert!(!s.bulk && !s.pipeline && !s.strict);
        assert_eq!((s.bulk_threshold, s.bulk_job_size), (Some(5000), 20_000));
        assert_eq!((s.record_attempts, s.call_retries), (3, 2));
        assert_eq!(s.retry_min, Duration::from_millis(100));
        assert_eq!(s.retry_max, Duration::from_secs(2));
        assert_eq!((s.breaker_threshold, s.breaker_max_trips), (4, 2));
        assert_eq!(s.breaker_cooldown, Duration::from_secs(10));
    }

    #[test]
    fn bad_writer_values_are_each_reported_with_their_place_and_fix() {
        let text = "[crm]\nbase_url = \"http://127.0.0.1:1\"\ntoken = \"t\"\n[writer]\n\
                    max_changes = 0\nmax_batch = 0\nbulk_threshold = 50000\nbulk_job_size = 20000\n\
                    record_attempts = 0\ncall_retries = 500\nretry_min_ms = 5000\nretry_max_ms = 10\n\
                    breaker_threshold = 0\nbreaker_cooldown_secs = 0\nbreaker_max_trips = 1000\n";
        let messages = messages(Config::from_toml(text, "lr.toml", &env(&[])).unwrap_err());
        for place in [
            "writer.max_changes",
            "writer.max_batch",
            "writer.bulk_threshold",
            "writer.record_attempts",
            "writer.call_retries",
            "writer.retry_max_ms",
            "writer.breaker_threshold",
            "writer.breaker_cooldown_secs",
            "writer.breaker_max_trips",
        ] {
            assert!(
                messages
                    .iter()
                    .any(|m| m.starts_with(&format!("lr.toml: {place}: "))),
                "{place} not reported in {messages:#?}"
            );
        }
        assert!(
            messages
                .iter()
                .any(|m| m.contains("no job could ever start")),
            "{messages:#?}"
        );
        let err = Config::from_toml(
            "[crm]\nbase_url = \"http://x\"\ntoken = \"t\"\n[writer]\nbulk_jobsize = 5\n",
            "lr.toml",
            &env(&[]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `bulk_jobsize`"),
            "{err}"
        );
    }

    fn example(name: &str) -> (String, String) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        (text, path.display().to_string())
    }

    #[test]
    fn the_hubspot_example_config_loads_with_a_token_from_the_environment() {
        let (text, file) = example("leadroute.example.toml");
        let config =
            Config::from_toml(&text, &file, &env(&[("LEADROUTE_CRM_TOKEN", "pat")])).unwrap();
        assert_eq!(config.crm.kind, CrmKind::Hubspot);
        assert_eq!(config.crm.tier, HubSpotTier::Professional);
        assert_eq!(config.drift.schedule.as_deref(), Some("0 0 6 * * Mon-Fri"));
        // The example's [writer] shows the defaults.
        assert_eq!(
            config.writer.settings,
            crate::writer::WriterSettings::default()
        );
        // And its [service] too.
        assert_eq!(config.service, ServiceConfig::default());
        // Without the token it says exactly what to set.
        let err = Config::from_toml(&text, &file, &env(&[])).unwrap_err();
        assert!(err.to_string().contains("LEADROUTE_CRM_TOKEN"), "{err}");
    }

    #[test]
    fn the_salesforce_example_config_loads() {
        let (text, file) = example("salesforce.example.toml");
        let config = Config::from_toml(&text, &file, &env(&[])).unwrap();
        assert_eq!(config.crm.kind, CrmKind::Salesforce);
        let CrmAuth::JwtBearer {
            username, audience, ..
        } = &config.crm.auth
        else {
            panic!("expected the JWT bearer flow, got {:?}", config.crm.auth)
        };
        assert_eq!(username, "integration@acme.example");
        assert_eq!(audience, "https://login.salesforce.com");
        assert_eq!(config.crm.salesforce.api_version, "v62.0");
        assert_eq!(config.writer.settings.bulk_job_size, 10_000);
    }

    /// The issue's example: two orgs, secrets from files, one of them Salesforce.
    const TWO_ORGS: &str = r#"
[store]
url = "sqlite://leadroute.db"
[webhook]
listen = "127.0.0.1:8080"
public_url = "https://leadroute.example.com"
[[org]]
name = "north"
kind = "hubspot"
base_url = "https://api.hubapi.com"
token_file = "north-token"
webhook_secret_file = "north-webhook"
tier = "professional"
policy = "policies/north.toml"
full_sync = "0 0 3 * * *"
[[org]]
name = "south"
kind = "salesforce"
base_url = "https://login.salesforce.com"
policy = "policies/south.toml"
[org.oauth]
client_id = "cid"
client_secret_file = "south-secret"
[org.salesforce]
auth = "client_credentials"
instance_url = "https://south.my.salesforce.com"
"#;

    #[test]
    fn org_sections_load_each_with_its_own_secrets_policy_and_schedules() {
        let dir = tempfile::tempdir().unwrap();
        for (file, text) in [
            ("north-token", "pat-north\n"),
            ("north-webhook", "hook-north\n"),
            ("south-secret", "sf-secret\n"),
        ] {
            std::fs::write(dir.path().join(file), text).unwrap();
        }
        let path = dir.path().join("leadroute.toml");
        std::fs::write(&path, TWO_ORGS).unwrap();
        let config = Config::load(Some(&path), &env(&[])).unwrap();
        let names: Vec<&str> = config.orgs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["north", "south"]);
        let err = config.for_org(None).unwrap_err();
        assert!(
            err.contains("pass --org NAME") && err.contains("north (hubspot), south (salesforce)"),
            "{err}"
        );
        let err = config.for_org(Some("west")).unwrap_err();
        assert!(
            err.contains("no org named \"west\"") && err.contains("north (hubspot)"),
            "{err}"
        );

        let north = config.for_org(Some("north")).unwrap();
        assert_eq!(north.org.as_str(), "north");
        assert_eq!(north.crm.kind, CrmKind::Hubspot);
        let CrmAuth::Token(token) = &north.crm.auth else {
            panic!("{:?}", north.crm.auth)
        };
        assert_eq!(token.expose_secret(), "pat-north");
        assert_eq!(
            north
                .webhook
                .secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            Some("hook-north".to_owned())
        );
        assert_eq!(
            north.policy.path,
            Some(PathBuf::from("policies/north.toml"))
        );
        assert_eq!(north.service.full_sync.as_deref(), Some("0 0 3 * * *"));

        let south = config.for_org(Some("south")).unwrap();
        assert_eq!(south.crm.kind, CrmKind::Salesforce);
        assert!(matches!(south.crm.auth, CrmAuth::ClientCredentials { .. }));
        assert_eq!(
            south.policy.path,
            Some(PathBuf::from("policies/south.toml"))
        );
        assert_eq!(south.service.full_sync, None);
        assert_eq!(
            south.drift.out_dir.file_name().and_then(|n| n.to_str()),
            Some("south"),
            "each org's drift reports in its own directory"
        );
        assert_eq!(config.each_org().len(), 2);
    }

    #[test]
    fn an_org_token_can_come_from_the_environment() {
        let text = "[[org]]\nname = \"north-eu\"\nbase_url = \"https://api.hubapi.com\"\n";
        let config = Config::from_toml(
            text,
            "leadroute.toml",
            &env(&[("LEADROUTE_ORG_NORTH_EU_TOKEN", "pat")]),
        )
        .unwrap();
        assert!(matches!(config.crm.auth, CrmAuth::Token(_)));
        assert_eq!(config.org.as_str(), "north-eu");
        // One org: --org may be left out.
        assert_eq!(config.for_org(None).unwrap().org.as_str(), "north-eu");
    }

    #[test]
    fn the_single_crm_form_is_one_org_named_after_its_kind_unless_named() {
        let vars = [("LEADROUTE_CRM_TOKEN", "pat")];
        let text = "[crm]\nbase_url = \"https://api.hubapi.com\"\n";
        let config = Config::from_toml(text, "f.toml", &env(&vars)).unwrap();
        assert_eq!(config.org.as_str(), "hubspot");
        assert_eq!(config.orgs.len(), 1);
        let text = "[crm]\nname = \"acme\"\nbase_url = \"https://api.hubapi.com\"\n";
        let config = Config::from_toml(text, "f.toml", &env(&vars)).unwrap();
        assert_eq!(config.org.as_str(), "acme");
    }

    #[test]
    fn two_orgs_with_one_name_and_an_org_without_credentials_are_located_with_a_fix() {
        let text = "[[org]]\nname = \"north\"\nbase_url = \"https://api.hubapi.com\"\ntoken = \"a\"\n\
                    \n[[org]]\nname = \"north\"\nbase_url = \"https://api.hubapi.com\"\n";
        let lines = messages(Config::from_toml(text, "leadroute.toml", &env(&[])).unwrap_err());
        assert!(
            lines.iter().any(|l| l.starts_with("leadroute.toml: line 7, column 8: org.name: a second org named \"north\" (the first is at line 2, column 8")
                && l.ends_with("give each [[org]] its own name")),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(
                |l| l.starts_with("leadroute.toml: line 6, column 1: org.token: missing")
                    // The fix names the org's own keys, not the [crm] section's.
                    && l.contains("in this [[org]], or LEADROUTE_ORG_<NAME>_TOKEN")
            ),
            "{lines:#?}"
        );
        let text =
            "[[org]]\nname = \"North\"\nbase_url = \"https://api.hubapi.com\"\ntoken = \"a\"\n";
        let lines = messages(Config::from_toml(text, "leadroute.toml", &env(&[])).unwrap_err());
        assert!(
            lines[0].starts_with(
                "leadroute.toml: line 2, column 8: org.name: \"North\" is not an org name"
            ),
            "{lines:#?}"
        );
        let text = "[crm]\nbase_url = \"https://api.hubapi.com\"\ntoken = \"a\"\n[[org]]\nname = \"n\"\nbase_url = \"https://api.hubapi.com\"\ntoken = \"b\"\n";
        let lines = messages(Config::from_toml(text, "leadroute.toml", &env(&[])).unwrap_err());
        assert!(
            lines
                .iter()
                .any(|l| l.contains("move its keys into an [[org]] section")),
            "{lines:#?}"
        );
    }
}
