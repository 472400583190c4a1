//! Policy hot reload: the policy file is re-read when its content changes (checked every
//! `poll`) and on demand (SIGHUP). A file with errors never replaces the running
//! policy: its problems are logged with file:line:column and fix, counted in
//! `leadroute_policy_reload_failures_total` and shown by `/readyz` until a good file
//! lands. A good file is sent to the decide task, whose next decisions carry its version.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::metrics::Metrics;
use super::status::Status;
use crate::policy::{self, Policy, Severity};

pub(crate) struct PolicyWatch {
    pub(crate) path: PathBuf,
    pub(crate) poll: Duration,
    pub(crate) tx: watch::Sender<Arc<Policy>>,
    pub(crate) reload: Arc<Notify>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) status: Arc<Status>,
    pub(crate) cancel: CancellationToken,
}

impl PolicyWatch {
    pub(crate) async fn run(self) {
        let mut ticker = tokio::time::interval(self.poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The content hash of the last file refused, so a broken file is reported once
        // (again only when it changes, or on SIGHUP).
        let mut refused: Option<String> = None;
        loop {
            let forced = tokio::select! {
                () = self.cancel.cancelled() => return,
                _ = ticker.tick() => false,
                () = self.reload.notified() => true,
            };
            self.check(forced, &mut refused).await;
        }
    }

    async fn check(&self, forced: bool, refused: &mut Option<String>) {
        let label = self.path.display().to_string();
        let text = match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => text,
            Err(err) => {
                let problem = format!(
                    "{label}:0:0: error: cannot read the policy file: {err}; fix: restore the file \
                     (the running policy stays in force)"
                );
                if forced || refused.as_deref() != Some("(unreadable)") {
                    self.refuse(vec![problem]);
                    *refused = Some("(unreadable)".to_owned());
                }
                return;
            }
        };
        let version = policy::content_hash(&text);
        if !forced && version == self.tx.borrow().version {
            return;
        }
        if !forced && refused.as_deref() == Some(version.as_str()) {
            return;
        }
        match policy::parse(&label, &text) {
            Ok((policy, warnings)) => {
                for w in &warnings {
                    warn!(issue = %w, "policy warning");
                }
                *refused = None;
                let changed = policy.version != self.tx.borrow().version;
                let version = policy.version.clone();
                self.status.update(|s| {
                    s.policy_version = Some(version.clone());
                    s.policy_errors.clear();
                });
                if changed {
                    info!(version = %version, "policy reloaded");
                    self.tx.send_replace(Arc::new(policy));
                }
            }
            Err(issues) => {
                let lines: Vec<String> = issues
                    .iter()
                    .filter(|i| i.severity == Severity::Error)
                    .map(ToString::to_string)
                    .collect();
                self.refuse(lines);
                *refused = Some(version);
            }
        }
    }

    fn refuse(&self, problems: Vec<String>) {
        self.metrics.policy_reload_failures.inc();
        let running = self.tx.borrow().version.clone();
        for problem in &problems {
            warn!(problem = %problem, running = %running, "policy reload refused; the running policy stays");
        }
        self.status.update(|s| s.policy_errors = problems);
    }
}
