//! `leadroute run`: the always-on sidecar (see `service`).

use std::sync::Arc;

use leadroute_crm::Crm;

use super::GlobalArgs;
use crate::app::{self, CrmTask};
use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Needs};
use crate::service::{self, Service, orgs};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let all = crate::service::load::config_all(global.config.as_deref(), Needs::Crm)?;
    if all.orgs.len() > 1 && global.org.is_none() {
        return run_orgs(all).await;
    }
    let config = global.config(Needs::Crm)?;
    let store = app::open_store(&config).await?;
    app::with_crm(&config.clone(), RunTask { config, store }).await
}

/// Several orgs in this process: one pipeline each, one listener for all.
async fn run_orgs(config: Config) -> anyhow::Result<()> {
    let store = app::open_store(&config).await?;
    let (handles, endpoints) = app::start_orgs(&config, &store).await;
    if handles.is_empty() {
        anyhow::bail!("no org could start; see the errors above");
    }
    let cancel = CancellationToken::new();
    let server = match config.webhook.listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding webhook.listen {addr}"))?;
            eprintln!(
                "leadroute run: {} orgs; serving http://{addr}/webhooks/{{org}}, /readyz and /metrics",
                handles.len()
            );
            Some(orgs::serve(listener, endpoints, cancel.clone()))
        }
        None => None,
    };
    crate::service::shutdown_signal().await;
    // Every org stops at once (each within its own grace).
    let mut stopping = tokio::task::JoinSet::new();
    for handle in handles {
        stopping.spawn(handle.stop());
    }
    let stopped: Vec<service::Stopped> = stopping.join_all().await;
    cancel.cancel();
    if let Some(server) = server {
        let _ = server.await;
    }
    if stopped.iter().any(|s| !s.clean) {
        anyhow::bail!(
            "stopped after the shutdown grace with work in flight; the journal is \
             consistent and the next `leadroute run` resumes it"
        );
    }
    Ok(())
}

struct RunTask {
    config: Config,
    store: Store,
}

impl CrmTask for RunTask {
    type Output = ();

    async fn run<C: Crm>(self, crm: Arc<C>) -> anyhow::Result<()> {
        let running = Service::new(crm, self.store, self.config).start().await?;
        if let Some(addr) = running.addr() {
            eprintln!("leadroute run: serving http://{addr}/readyz and /metrics");
        }
        let stopped = service::run_until_signal(running).await;
        if !stopped.clean {
            anyhow::bail!(
                "stopped after the shutdown grace with work in flight; the journal is \
                 consistent and the next `leadroute run` resumes it"
            );
        }
        Ok(())
    }
}
