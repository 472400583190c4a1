//! The one loader every command uses: config (validated for what the command needs),
//! the store, and the routing policy. Commands that only read the mirror load with
//! [`Needs::Mirror`] and run without CRM credentials.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use secrecy::ExposeSecret as _;

use crate::config::Config;
pub use crate::config::Needs;
use crate::domain::{CrmKind, OrgRef};
use crate::policy::{Policy, PolicyIssue, Severity};
use crate::store::Store;

/// Config and an open store.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub store: Store,
}

/// Config, store and policy for a command that reads the mirror.
#[derive(Debug, Clone)]
pub struct Mirror {
    pub config: Config,
    pub store: Store,
    pub crm: CrmKind,
    /// The org the command acts on (`--org`).
    pub org: OrgRef,
    pub policy: Policy,
    /// The policy's warnings (the caller prints them).
    pub warnings: Vec<PolicyIssue>,
}

/// Loads the config at `path` (else from the environment alone) with the process
/// environment, reporting every problem at once, scoped to the org named `org`
/// (`--org`; required when several are configured, and the error lists them).
pub fn config(path: Option<&Path>, org: Option<&str>, needs: Needs) -> anyhow::Result<Config> {
    let config = Config::load_for(path, &|name| std::env::var(name).ok(), needs)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    config.for_org(org).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The config with every org, scoped to none in particular (the first): for commands
/// that pick the org from their input (`explain hubspot:contact:1`) or serve them all
/// (`run`).
pub fn config_all(path: Option<&Path>, needs: Needs) -> anyhow::Result<Config> {
    Config::load_for(path, &|name| std::env::var(name).ok(), needs)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Opens the configured store (creating and migrating it if needed).
pub async fn store(config: &Config) -> anyhow::Result<Store> {
    Store::open(config.store.url.expose_secret())
        .await
        .with_context(|| format!("opening the store configured in {}", config.source))
}

/// Config (scoped to `org`) and store.
pub async fn env(path: Option<&Path>, org: Option<&str>, needs: Needs) -> anyhow::Result<Loaded> {
    let config = config(path, org, needs)?;
    let store = store(&config).await?;
    Ok(Loaded { config, store })
}

/// Config, store and policy for a mirror-only command. `policy` overrides
/// `[policy] path`. The policy is read before the store is opened, so a bad policy
/// costs nothing.
pub async fn mirror(
    config_path: Option<&Path>,
    org: Option<&str>,
    policy: Option<&Path>,
) -> anyhow::Result<Mirror> {
    let config = config(config_path, org, Needs::Mirror)?;
    let path = policy_path(policy, Some(&config))?;
    let (policy, warnings) = self::policy(&path)?;
    let store = store(&config).await?;
    Ok(Mirror {
        crm: config.crm.kind,
        org: config.org_ref(),
        config,
        store,
        policy,
        warnings,
    })
}

/// One retry layer for commands that write through the writer (`apply`, `backfill`,
/// `rollback`, `exceptions resolve|retry`): the writer retries failed calls itself,
/// bounded by `[writer] call_retries` and `retry_max_ms`, so the connector must not
/// retry under it (8 connector retries under 2 writer retries made 27 attempts and
/// minutes of silence). Rate limits are still honoured: the writer waits out
/// `Retry-After`.
pub fn one_retry_layer(config: &mut Config) {
    config.crm.max_retries = 0;
}

/// `--policy FILE`, else `[policy] path` from the config.
pub fn policy_path(arg: Option<&Path>, config: Option<&Config>) -> anyhow::Result<PathBuf> {
    if let Some(p) = arg {
        return Ok(p.to_owned());
    }
    config.and_then(|c| c.policy.path.clone()).ok_or_else(|| {
        anyhow::anyhow!(
            "no policy file: pass --policy FILE or set `[policy] path` in the config ({})",
            config.map_or(crate::config::NO_FILE, |c| c.source.as_str())
        )
    })
}

/// Loads a policy: the policy and its warnings, or one error listing every issue.
pub fn policy(path: &Path) -> anyhow::Result<(Policy, Vec<PolicyIssue>)> {
    match crate::policy::load_with_warnings(path) {
        Ok(loaded) => Ok(loaded),
        Err(issues) => {
            let errors = issues
                .iter()
                .filter(|i| i.severity == Severity::Error)
                .count();
            let list: Vec<String> = issues.iter().map(ToString::to_string).collect();
            anyhow::bail!(
                "policy {} has {errors} error(s); run `leadroute policy check`:\n{}",
                path.display(),
                list.join("\n")
            )
        }
    }
}
