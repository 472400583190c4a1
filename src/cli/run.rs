//! `leadroute run`: the always-on sidecar (see `service`).

use std::sync::Arc;

use leadroute_crm::Crm;

use super::GlobalArgs;
use crate::app::{self, CrmTask};
use crate::config::Config;
use crate::service::{self, Service};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let config = Config::from_process(global.config.as_deref())?;
    let store = app::open_store(&config).await?;
    app::with_crm(&config.clone(), RunTask { config, store }).await
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
