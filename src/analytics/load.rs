//! Reading a report's inputs: the store's analytics reads, the policy's pools (the
//! roster when none was recorded) and the scheduled drift reports on disk. The one
//! part of `analytics` that does I/O; `leadroute report` and the console call
//! [`report`].

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{AnalyticsReport, DriftPoint, Inputs, RosterSource, RosterSpan, Window, build};
use crate::domain::OrgId;
use crate::policy::Policy;
use crate::service::clock::Clock;
use crate::service::reports::list_reports;
use crate::store::{RosterMember, Store, StoreError};

/// The pools' members and weights in `policy`, as `Store::note_roster` records them.
pub fn policy_roster(policy: &Policy) -> Vec<RosterMember> {
    policy
        .pools
        .values()
        .flat_map(|pool| {
            pool.members
                .iter()
                .map(|m| (pool.name.clone(), m.owner.clone(), m.weight))
        })
        .collect()
}

/// The headline numbers of the drift reports under `dir` (`drift-*/drift.json`),
/// oldest first. A missing directory has none; a report that cannot be read or parsed
/// is skipped with a warning (a half-written or hand-edited file must not hide the
/// others).
pub fn drift_points(dir: &Path) -> Vec<DriftPoint> {
    #[derive(Deserialize)]
    struct Headline {
        generated_at: DateTime<Utc>,
        records: u64,
        in_policy: u64,
        would_change: u64,
    }
    let Ok(reports) = list_reports(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for report in reports {
        let path = report.join("drift.json");
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str::<Headline>(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok(h) => out.push(DriftPoint {
                at: h.generated_at,
                records: h.records,
                in_policy: h.in_policy,
                would_change: h.would_change,
            }),
            Err(error) => {
                warn!(path = %path.display(), %error, "skipping an unreadable drift report")
            }
        }
    }
    out
}

/// Everything a report over `window` reads, for one org. Without any roster recorded for the window, the policy's
/// current pools stand for the whole window ([`RosterSource::CurrentPolicy`]).
pub async fn inputs(
    store: &Store,
    org: &OrgId,
    policy: &Policy,
    drift_dir: Option<&Path>,
    window: Window,
) -> Result<Inputs, StoreError> {
    let mut roster = store.analytics_roster(org.as_str(), window).await?;
    let mut roster_source = RosterSource::Recorded;
    if roster.is_empty() {
        roster_source = RosterSource::CurrentPolicy;
        roster = policy_roster(policy)
            .into_iter()
            .map(|(pool, owner, weight)| RosterSpan {
                pool,
                owner,
                weight,
                from: None,
                to: None,
            })
            .collect();
    }
    Ok(Inputs {
        assignments: store.analytics_assignments(org, window).await?,
        owners: store.analytics_owners(org).await?,
        roster,
        roster_source,
        leads: store.analytics_lead_timings(org, window).await?,
        drift: drift_dir.map(drift_points).unwrap_or_default(),
    })
}

/// The analytics report over `window`, made at `now`.
pub async fn report(
    store: &Store,
    org: &OrgId,
    policy: &Policy,
    drift_dir: Option<&Path>,
    window: Window,
    now: DateTime<Utc>,
) -> Result<AnalyticsReport, StoreError> {
    let inputs = inputs(store, org, policy, drift_dir, window).await?;
    Ok(build(now, window, &inputs))
}

/// Records `policy`'s pools as the roster in force from `at` (see
/// `Store::note_roster`). Best effort: a failure is logged and never stops routing.
pub async fn record_roster(store: &Store, org: &OrgId, policy: &Policy, at: DateTime<Utc>) {
    if let Err(error) = store
        .note_roster(org.as_str(), &policy_roster(policy), at)
        .await
    {
        warn!(error = %error, "recording the pool roster for analytics failed");
    }
}

/// The sidecar's roster keeper: records the policy's pools at start and after each
/// reload (`watch` sends only changed policies), until `cancel`.
pub async fn keep_roster(
    store: Store,
    org: OrgId,
    mut policy: watch::Receiver<Arc<Policy>>,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) {
    loop {
        let current = Arc::clone(&policy.borrow_and_update());
        record_roster(&store, &org, &current, clock.now()).await;
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = policy.changed() => if changed.is_err() { return },
        }
    }
}
