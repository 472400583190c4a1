//! The only module that names connector crates: it turns [`Config`] into a concrete CRM
//! client once (`match` on the kind) and hands it to generic code as `Arc<C: Crm>`.
//!
//! Commands express their CRM-generic part as a [`CrmTask`]; [`with_crm`] picks the
//! connector and runs the task with it. No `dyn`, no second dispatch.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use leadroute_crm::{Crm, CrmKind};
use leadroute_hubspot::{HubSpot, HubSpotAuth, HubSpotSettings, HubSpotTier};
use leadroute_salesforce::{Salesforce, SalesforceAuth, SalesforceSettings};
use secrecy::ExposeSecret;

use crate::config::{Config, CrmAuth, HubSpotTier as TierName};
use crate::store::Store;

/// Work that runs against whichever CRM the config names.
pub trait CrmTask {
    type Output;
    fn run<C: Crm>(self, crm: Arc<C>) -> impl Future<Output = anyhow::Result<Self::Output>>;
}

/// Builds the configured connector and runs `task` with it.
pub async fn with_crm<T: CrmTask>(config: &Config, task: T) -> anyhow::Result<T::Output> {
    match config.crm.kind {
        CrmKind::Hubspot => task.run(Arc::new(hubspot(config)?)).await,
        CrmKind::Salesforce => task.run(Arc::new(salesforce(config)?)).await,
    }
}

/// Starts one pipeline per configured org ([`crate::service::orgs::start_org`]), each
/// with its own connector; an org that cannot start is reported as failed (its
/// endpoint says why in `/readyz`) and the others run.
pub async fn start_orgs(
    config: &Config,
    store: &Store,
) -> (
    Vec<crate::service::orgs::OrgHandle>,
    Vec<crate::web::ops::OrgEndpoint>,
) {
    struct StartOrg {
        store: Store,
        config: Config,
    }
    impl CrmTask for StartOrg {
        type Output = crate::service::orgs::OrgHandle;
        async fn run<C: Crm>(self, crm: Arc<C>) -> anyhow::Result<Self::Output> {
            crate::service::orgs::start_org(crm, self.store, self.config).await
        }
    }
    let mut handles = Vec::new();
    let mut endpoints = Vec::new();
    for scoped in config.each_org() {
        let org = scoped.org.clone();
        let task = StartOrg {
            store: store.clone(),
            config: scoped.clone(),
        };
        match with_crm(&scoped, task).await {
            Ok(handle) => {
                endpoints.extend(handle.endpoint());
                handles.push(handle);
            }
            Err(err) => endpoints.push(crate::service::orgs::failed(org, &err)),
        }
    }
    (handles, endpoints)
}

/// Opens the configured store (creating and migrating it if needed).
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open(config.store.url.expose_secret())
        .await
        .with_context(|| format!("opening the store configured in {}", config.source))
}

/// The HubSpot connector settings for `config`.
pub fn hubspot_settings(config: &Config) -> anyhow::Result<HubSpotSettings> {
    let crm = &config.crm;
    let auth = match &crm.auth {
        CrmAuth::Token(token) => HubSpotAuth::PrivateApp {
            token: token.clone(),
        },
        CrmAuth::RefreshToken {
            client_id,
            client_secret,
            refresh_token,
        } => HubSpotAuth::OAuth {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            refresh_token: refresh_token.clone(),
        },
        CrmAuth::Unset => return Err(no_credentials(config)),
        CrmAuth::JwtBearer { .. } | CrmAuth::ClientCredentials { .. } => anyhow::bail!(
            "{}: crm.salesforce.auth applies to Salesforce only; HubSpot takes crm.token or crm.oauth",
            config.source
        ),
    };
    let mut settings = HubSpotSettings::new(crm.base_url.clone(), auth);
    settings.webhook_secret = config.webhook.secret.clone();
    settings.public_webhook_url = config
        .webhook
        .public_url
        .as_ref()
        .map(|base| format!("{base}/webhooks/hubspot"));
    settings.tier = match crm.tier {
        TierName::Free => HubSpotTier::Free,
        TierName::Starter => HubSpotTier::Starter,
        TierName::Professional => HubSpotTier::Professional,
        TierName::Enterprise => HubSpotTier::Enterprise,
        TierName::ApiAddOn => HubSpotTier::ApiAddOn,
        TierName::OAuthApp => HubSpotTier::OAuthPublicApp,
    };
    settings.overlap = crm.overlap;
    settings.daily_reserve = crm.daily_reserve;
    settings.request_timeout = crm.request_timeout;
    settings.max_retries = crm.max_retries;
    settings.activities = config.sync.activities;
    Ok(settings)
}

/// The Salesforce connector settings for `config`.
pub fn salesforce_settings(config: &Config) -> anyhow::Result<SalesforceSettings> {
    let crm = &config.crm;
    let auth = match &crm.auth {
        CrmAuth::Unset => return Err(no_credentials(config)),
        CrmAuth::Token(token) => SalesforceAuth::Session {
            token: token.clone(),
        },
        CrmAuth::RefreshToken {
            client_id,
            client_secret,
            refresh_token,
        } => SalesforceAuth::RefreshToken {
            client_id: client_id.clone(),
            client_secret: Some(client_secret.clone()),
            refresh_token: refresh_token.clone(),
        },
        CrmAuth::JwtBearer {
            client_id,
            username,
            private_key_pem,
            audience,
        } => SalesforceAuth::JwtBearer {
            client_id: client_id.clone(),
            username: username.clone(),
            private_key_pem: private_key_pem.clone(),
            audience: audience.clone(),
        },
        CrmAuth::ClientCredentials {
            client_id,
            client_secret,
        } => SalesforceAuth::ClientCredentials {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
        },
    };
    let sf = &crm.salesforce;
    let mut settings = SalesforceSettings::new(crm.base_url.clone(), auth);
    // A session token is only good on its instance; without an explicit instance URL
    // the base URL is taken to be it (a simulator serves both on one host).
    settings.instance_url = sf
        .instance_url
        .clone()
        .or_else(|| matches!(crm.auth, CrmAuth::Token(_)).then(|| crm.base_url.clone()));
    settings.api_version = sf.api_version.trim_start_matches('v').to_owned();
    settings.organization_id = sf.organization_id.clone();
    settings.overlap = crm.overlap;
    settings.daily_reserve = crm.daily_reserve;
    settings.bulk_threshold = sf.bulk_threshold;
    settings.strict_writes = sf.strict_writes;
    settings.request_timeout = crm.request_timeout;
    settings.max_retries = crm.max_retries;
    settings.activities = config.sync.activities;
    Ok(settings)
}

/// A config loaded for a mirror-only command reached a connector: a bug in the
/// command, reported as the missing setting it amounts to.
fn no_credentials(config: &Config) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: crm.token: missing: this command calls the CRM and needs its URL and credentials; \
         set crm.base_url and crm.token (or LEADROUTE_CRM_BASE_URL and LEADROUTE_CRM_TOKEN)",
        config.source
    )
}

pub fn hubspot(config: &Config) -> anyhow::Result<HubSpot> {
    HubSpot::new(hubspot_settings(config)?)
        .with_context(|| format!("setting up the HubSpot connector from {}", config.source))
}

pub fn salesforce(config: &Config) -> anyhow::Result<Salesforce> {
    Salesforce::new(salesforce_settings(config)?)
        .with_context(|| format!("setting up the Salesforce connector from {}", config.source))
}
