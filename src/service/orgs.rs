//! Several orgs in one process: one pipeline per org ([`start_org`] → [`OrgHandle`],
//! the org's own [`Service`] with its lease `org:<name>`, rate budget, cursors, policy
//! and ledger) and one HTTP listener for all of them (`web::ops::orgs_router`:
//! `POST /webhooks/{org}`, `/readyz` per org, `/metrics` with an `org` label).
//!
//! Each pipeline starts and stops on its own, so a broken policy, a revoked token or an
//! exhausted quota in one org stops only that org (it shows as not ready in its
//! `/readyz` section), and a fleet of processes can start and stop orgs as their
//! leases move.

use std::sync::Arc;

use leadroute_crm::Crm;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Running, Service, Stopped};
use crate::config::Config;
use crate::domain::OrgId;
use crate::store::Store;
use crate::web::{self, ops::FailedOrg, ops::OrgEndpoint};

/// One org's running pipeline.
pub struct OrgHandle {
    org: OrgId,
    running: Running,
}

impl std::fmt::Debug for OrgHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgHandle")
            .field("org", &self.org)
            .finish_non_exhaustive()
    }
}

impl OrgHandle {
    pub fn org(&self) -> &OrgId {
        &self.org
    }

    /// The org's webhook route and probe, for the shared router.
    pub fn endpoint(&self) -> Option<OrgEndpoint> {
        self.running.endpoint()
    }

    pub fn running(&self) -> &Running {
        &self.running
    }

    /// Stops the org's pipeline (intake first, then the in-flight batch) and releases
    /// its lease once nothing is in flight (else it lapses after its TTL).
    pub async fn stop(self) -> Stopped {
        self.running.stop().await
    }
}

/// Starts the pipeline of the org `config` is scoped to ([`Config::for_org`]), sharing
/// the process's HTTP listener.
pub async fn start_org<C: Crm>(
    crm: Arc<C>,
    store: Store,
    config: Config,
) -> anyhow::Result<OrgHandle> {
    let org = config.org.clone();
    let running = Service::new(crm, store, config)
        .with_shared_http()
        .start()
        .await?;
    info!(org = %org, "org pipeline started");
    Ok(OrgHandle { org, running })
}

/// An org that failed to start, for the shared router (not ready, with why).
pub fn failed(org: OrgId, error: &anyhow::Error) -> OrgEndpoint {
    let error = format!("{error:#}");
    warn!(org = %org, error = %error, "the org could not start; the other orgs run");
    OrgEndpoint {
        org: org.clone(),
        webhooks: None,
        probe: Arc::new(FailedOrg { org, error }),
    }
}

/// Serves `endpoints` on `listener` until `cancel` fires.
pub fn serve(
    listener: TcpListener,
    endpoints: Vec<OrgEndpoint>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let router = web::ops::orgs_router(endpoints);
    tokio::spawn(web::serve(listener, router, cancel))
}
