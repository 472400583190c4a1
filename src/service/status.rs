//! What `/readyz` reports: the service's tasks record their latest state here (short
//! critical sections, never held across an await).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use leadroute_crm::ObjectKind;
use serde::Serialize;

/// The latest known state of the running service.
#[derive(Debug, Default)]
pub struct Status {
    inner: Mutex<StatusInner>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct StatusInner {
    /// The policy decisions are made with.
    pub policy_version: Option<String>,
    pub policy_path: Option<String>,
    /// The last reload's problems (`file:line:column: …; fix: …`); empty when the file
    /// on disk is the running policy.
    pub policy_errors: Vec<String>,
    /// Whether the last CRM call of the poller succeeded (`None`: none made yet).
    pub crm_ok: Option<bool>,
    pub last_successful_poll: Option<DateTime<Utc>>,
    /// Per object: the last successful poll of it.
    pub cursors: BTreeMap<String, DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    /// Changes written by the sidecar since it started.
    pub written: u64,
    pub last_write_at: Option<DateTime<Utc>>,
    /// Where this process stands for the org's lease (hot standby).
    pub lease: LeaseStatus,
    /// The last scheduled drift report directory written.
    pub last_drift_report: Option<String>,
}

/// The org lease as `/readyz` shows it.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct LeaseStatus {
    /// The lease's name (`org:<crm kind>`).
    pub name: String,
    /// `unknown` (starting, or the store did not answer), `standby` or `leader`.
    pub state: String,
    /// The epoch this process leads with (its fencing token).
    pub epoch: Option<i64>,
    /// Who holds the lease: this process when leading, another when standing by.
    pub holder: Option<String>,
    /// This process's holder string.
    pub this: String,
    /// Why the state is unknown, if the store said.
    pub error: Option<String>,
}

impl LeaseStatus {
    pub fn is_leader(&self) -> bool {
        self.state == "leader"
    }

    pub fn is_standby(&self) -> bool {
        self.state == "standby"
    }
}

impl Status {
    pub fn update(&self, f: impl FnOnce(&mut StatusInner)) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut inner);
    }

    pub fn get(&self) -> StatusInner {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn error(&self, now: DateTime<Utc>, what: String) {
        self.update(|s| {
            s.last_error = Some(what);
            s.last_error_at = Some(now);
        });
    }

    pub fn polled(&self, now: DateTime<Utc>, objects: &[ObjectKind]) {
        self.update(|s| {
            s.crm_ok = Some(true);
            s.last_successful_poll = Some(now);
            for object in objects {
                s.cursors.insert(object.to_string(), now);
            }
        });
    }
}
