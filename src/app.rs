//! The only module that names connector crates and store backends: it picks the
//! concrete CRM client from config once and hands it to the generic core.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use leadroute_crm::{Crm, CrmKind};
use leadroute_hubspot::{HubSpot, HubSpotAuth, HubSpotSettings, HubSpotTier};
use leadroute_salesforce::{Salesforce, SalesforceAuth, SalesforceSettings};
use secrecy::ExposeSecret as _;

use crate::cli::GlobalArgs;
use crate::config::{self, Config, CrmAuth};
use crate::store::Store;

/// Everything a command needs besides the CRM client.
#[derive(Debug, Clone)]
pub struct AppEnv {
    pub config: Config,
    pub store: Store,
}

/// A command body that runs against whichever CRM the config names. Generic over the
/// connector (no `dyn`): [`run_job`] picks the concrete type once.
pub trait CrmJob: Send {
    type Output: Send;
    fn run<C: Crm>(
        self,
        crm: Arc<C>,
        env: AppEnv,
    ) -> impl Future<Output = anyhow::Result<Self::Output>> + Send;
}

/// Loads the config (file + environment), opens the store, builds the connector.
pub async fn load_env(global: &GlobalArgs) -> anyhow::Result<AppEnv> {
    let env = |name: &str| std::env::var(name).ok();
    let config =
        Config::load(global.config.as_deref(), &env).map_err(|err| anyhow::anyhow!("{err}"))?;
    let store = Store::open(config.store.url.expose_secret())
        .await
        .context("opening the store")?;
    Ok(AppEnv { config, store })
}

/// Runs `job` with the configured CRM.
pub async fn run_job<J: CrmJob>(global: &GlobalArgs, job: J) -> anyhow::Result<J::Output> {
    let env = load_env(global).await?;
    match env.config.crm.kind {
        CrmKind::Hubspot => {
            let crm = Arc::new(hubspot(&env.config)?);
            job.run(crm, env).await
        }
        CrmKind::Salesforce => {
            let crm = Arc::new(salesforce(&env.config)?);
            job.run(crm, env).await
        }
    }
}

fn hubspot(config: &Config) -> anyhow::Result<HubSpot> {
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
        other => anyhow::bail!(
            "{}: crm.auth: {} is a Salesforce flow; use a private-app token or OAuth for HubSpot",
            config.source,
            auth_name(other)
        ),
    };
    let mut settings = HubSpotSettings::new(crm.base_url.clone(), auth);
    settings.tier = match crm.tier {
        config::HubSpotTier::Free => HubSpotTier::Free,
        config::HubSpotTier::Starter => HubSpotTier::Starter,
        config::HubSpotTier::Professional => HubSpotTier::Professional,
        config::HubSpotTier::Enterprise => HubSpotTier::Enterprise,
        config::HubSpotTier::ApiAddOn => HubSpotTier::ApiAddOn,
    };
    settings.overlap = crm.overlap;
    settings.daily_reserve = crm.daily_reserve;
    settings.request_timeout = crm.request_timeout;
    settings.max_retries = crm.max_retries;
    settings.webhook_secret = config.webhook.secret.clone();
    settings.public_webhook_url = config.webhook.public_url.clone();
    HubSpot::new(settings).context("configuring the HubSpot connector")
}

fn salesforce(config: &Config) -> anyhow::Result<Salesforce> {
    let crm = &config.crm;
    let auth = match &crm.auth {
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
    let mut settings = SalesforceSettings::new(crm.base_url.clone(), auth);
    let sf = &crm.salesforce;
    // A session token needs the API host up front; with a simulator or proxy the
    // login URL is that host.
    settings.instance_url = sf
        .instance_url
        .clone()
        .or_else(|| matches!(crm.auth, CrmAuth::Token(_)).then(|| crm.base_url.clone()));
    settings.api_version = sf.api_version.trim_start_matches('v').to_owned();
    settings.organization_id = sf.organization_id.clone();
    settings.bulk_threshold = sf.bulk_threshold;
    settings.strict_writes = sf.strict_writes;
    settings.overlap = crm.overlap;
    settings.daily_reserve = crm.daily_reserve;
    settings.request_timeout = crm.request_timeout;
    settings.max_retries = crm.max_retries;
    Salesforce::new(settings).context("configuring the Salesforce connector")
}

fn auth_name(auth: &CrmAuth) -> &'static str {
    match auth {
        CrmAuth::Token(_) => "token",
        CrmAuth::RefreshToken { .. } => "oauth refresh token",
        CrmAuth::JwtBearer { .. } => "JWT bearer",
        CrmAuth::ClientCredentials { .. } => "client credentials",
    }
}
