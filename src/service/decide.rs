//! The decide task: a warm [`Reconciler`] re-decides the records each micro-batch of
//! mirror changes can affect and passes new owner changes and exceptions to the write
//! task. A policy change and the periodic full re-plan (the safety net) re-decide
//! everything.
//!
//! The org's mirror is held in memory ([`Warm`]: people, accounts and owners by key),
//! loaded from the store once (at start, on the scheduled full re-plan and after a full
//! sync's sweep) and patched with the records every `Touched` message carries, so a
//! micro-batch reads nothing from the store and costs O(changed).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use leadroute_crm::OwnerId;

use crate::domain::OrgRef;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::clock::Clock;
use super::metrics::Metrics;
use super::status::Status;
use crate::mirror::Touched;
use crate::policy::Policy;
use crate::reconcile::{
    ApplyMode, Dirty, Key, Ledger, Plan, PlannedChange, PlannedException, Reconciler, Replanned,
    Warm,
};
use crate::store::Store;

/// New work for the write task.
#[derive(Debug)]
pub(crate) struct Decided {
    /// Each change with when leadroute first saw the record change (`None` for
    /// changes found by a full pass).
    pub(crate) changes: Vec<(PlannedChange, Option<Instant>)>,
    pub(crate) exceptions: Vec<PlannedException>,
    /// The assignment ledger's changes since the previous hand-over
    /// ([`Ledger::take_delta`]; saved before these decisions are written).
    pub(crate) ledger: Ledger,
    pub(crate) policy_version: String,
}

pub(crate) struct Decide {
    pub(crate) org: OrgRef,
    pub(crate) store: Store,
    pub(crate) rx: mpsc::Receiver<Touched>,
    pub(crate) policy: watch::Receiver<Arc<Policy>>,
    pub(crate) tx: mpsc::Sender<Decided>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) status: Arc<Status>,
    /// The periodic full re-plan; `None` when a cron schedule drives it instead.
    pub(crate) full_replan: Option<Duration>,
    /// Woken by the `service.full_replan` schedule: a full re-plan now.
    pub(crate) full_now: Arc<Notify>,
    /// Set to true once the first full pass has been decided and handed on.
    pub(crate) first_pass: Arc<watch::Sender<bool>>,
}

/// What the task remembers between passes.
#[derive(Default)]
struct Memory {
    reconciler: Option<Reconciler>,
    ledger: Option<Ledger>,
    /// Changes handed to the writer: not sent again until the record changes (its
    /// `record_updated_at`) or the desired owner does.
    sent: HashMap<Key, (OwnerId, Option<DateTime<Utc>>)>,
    /// Exceptions handed on, by record (one per record): its kind.
    queued: HashMap<Key, String>,
    first_seen: HashMap<Key, Instant>,
    /// Changes not yet re-decided (a failed pass keeps them).
    dirty: Dirty,
    /// The org's mirror in memory; `None` until loaded (or after a failed pass).
    warm: Option<Warm>,
    /// A full sync swept records the messages do not name: load the mirror again.
    reload: bool,
}

enum Pass {
    /// Re-decide what `Memory::dirty` can affect.
    Dirty,
    /// Re-decide everything (start, policy change).
    Full,
    /// The periodic safety net: everything, and resend what is still pending.
    Scheduled,
}

impl Decide {
    pub(crate) async fn run(mut self) {
        let mut memory = Memory::default();
        let mut policy_open = true;
        let mut pending = Some(Pass::Full);
        let mut full_tick = self.full_replan.map(|every| {
            let mut tick =
                tokio::time::interval_at(Instant::now() + every, every.max(Duration::from_secs(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick
        });
        let full_now = Arc::clone(&self.full_now);
        let mut retry_in = Duration::from_millis(250);
        loop {
            if let Some(pass) = pending.take() {
                if self.pass(&mut memory, &pass).await {
                    retry_in = Duration::from_millis(250);
                } else {
                    // The store is unavailable: try again after a growing pause, keeping
                    // the dirty keys (a later pass covers them).
                    pending = Some(pass);
                    tokio::select! {
                        () = tokio::time::sleep(retry_in) => {}
                        msg = self.rx.recv() => match msg {
                            Some(t) => add(&mut memory, t, self.clock.now()),
                            None => return,
                        },
                    }
                    retry_in = (retry_in * 2).min(Duration::from_secs(30));
                    continue;
                }
            }
            tokio::select! {
                biased;
                msg = self.rx.recv() => match msg {
                    Some(touched) => {
                        add(&mut memory, touched, self.clock.now());
                        // Everything already waiting joins this micro-batch.
                        while let Ok(more) = self.rx.try_recv() {
                            add(&mut memory, more, self.clock.now());
                        }
                        pending = Some(Pass::Dirty);
                    }
                    // Intake stopped (shutdown): everything it stored was decided.
                    None => return,
                },
                changed = self.policy.changed(), if policy_open => match changed {
                    Ok(()) => pending = Some(Pass::Full),
                    Err(_) => policy_open = false,
                },
                () = tick(&mut full_tick) => pending = Some(Pass::Scheduled),
                () = full_now.notified() => pending = Some(Pass::Scheduled),
            }
        }
    }

    /// One pass; false when the store could not be read.
    async fn pass(&mut self, memory: &mut Memory, pass: &Pass) -> bool {
        // The mirror is read from the store only at start, on the scheduled safety net
        // and after a sweep; every other pass decides over the warm copy.
        let reload = memory.warm.is_none() || memory.reload || matches!(pass, Pass::Scheduled);
        if reload {
            let started = std::time::Instant::now();
            let snapshot = match self.store.snapshot(&self.org).await {
                Ok(snapshot) => snapshot,
                Err(err) => {
                    let error = crate::mirror::error_chain(&err);
                    warn!(error = %error, "reading the mirror for a re-plan failed; retrying");
                    self.status
                        .error(self.clock.now(), format!("re-plan: {error}"));
                    return false;
                }
            };
            memory.warm = None;
            match tokio::task::spawn_blocking(move || Warm::from_snapshot(snapshot)).await {
                Ok(warm) => memory.warm = Some(warm),
                Err(err) => {
                    warn!(error = %err, "loading the mirror into memory failed; retrying");
                    return false;
                }
            }
            memory.reload = false;
            info!(
                people = memory.warm.as_ref().map_or(0, Warm::people_len),
                elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "mirror loaded into memory"
            );
        }
        let ledger = match memory.ledger.take() {
            Some(ledger) => ledger,
            None => match self.store.load_ledger(&self.org.name).await {
                Ok(ledger) => ledger,
                Err(err) => {
                    let error = crate::mirror::error_chain(&err);
                    warn!(error = %error, "reading the assignment ledger failed; retrying");
                    self.status
                        .error(self.clock.now(), format!("ledger: {error}"));
                    return false;
                }
            },
        };
        let policy = Arc::clone(&self.policy.borrow_and_update());
        let now = self.clock.now();
        let Some(warm) = memory.warm.take() else {
            return false;
        };
        let mut reconciler = memory.reconciler.take().unwrap_or_default();
        let dirty = std::mem::take(&mut memory.dirty);
        let full = reload || !matches!(pass, Pass::Dirty);
        let started = std::time::Instant::now();
        let joined = tokio::task::spawn_blocking(move || {
            let mut ledger = ledger;
            let replanned = if full {
                Replanned::Full(reconciler.full_warm(&warm, &policy, &mut ledger, now))
            } else {
                reconciler.replan_delta(&warm, &policy, &mut ledger, now, &dirty)
            };
            (reconciler, ledger, replanned, warm)
        })
        .await;
        let (reconciler, ledger, replanned) = match joined {
            Ok((reconciler, ledger, replanned, warm)) => {
                memory.warm = Some(warm);
                (reconciler, ledger, replanned)
            }
            Err(err) => {
                // A panic in planning is a bug; start over with a full pass.
                warn!(error = %err, "a re-plan failed; the next pass re-plans everything");
                return true;
            }
        };
        memory.reconciler = Some(reconciler);
        debug!(
            full,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            changes = match &replanned {
                Replanned::Full(plan) | Replanned::Delta { plan, .. } => plan.changes.len(),
            },
            "re-planned"
        );
        if matches!(pass, Pass::Scheduled) {
            memory.sent.clear();
            memory.queued.clear();
        }
        let mut ledger = ledger;
        let decided = match replanned {
            Replanned::Full(plan) => select_new(memory, plan, None, &mut ledger, &self.metrics),
            Replanned::Delta { plan, decided } => {
                select_new(memory, plan, Some(&decided), &mut ledger, &self.metrics)
            }
        };
        memory.ledger = Some(ledger);
        if let Some(decided) = decided {
            if full {
                info!(
                    changes = decided.changes.len(),
                    exceptions = decided.exceptions.len(),
                    "full re-plan found work"
                );
            }
            // Waits while the writer is behind: the mirror then slows too.
            if self.tx.send(decided).await.is_err() {
                warn!("the write task is gone; decisions are no longer written");
            }
        }
        if full {
            self.first_pass.send_replace(true);
        }
        true
    }
}

/// The next tick of the periodic full re-plan; never without one.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn add(memory: &mut Memory, touched: Touched, now: DateTime<Utc>) {
    if touched.swept {
        memory.reload = true;
    }
    if let Some(warm) = memory.warm.as_mut() {
        let mode = match touched.full {
            Some(object) => ApplyMode::Full(object),
            None => ApplyMode::Incremental,
        };
        warm.apply(&touched.changes, mode, now);
    }
    for key in touched.people {
        memory.first_seen.entry(key.clone()).or_insert(touched.seen);
        memory.dirty.people.insert(key);
    }
    memory.dirty.accounts.extend(touched.accounts);
    memory.dirty.owners.extend(touched.owners);
}

/// The plan's changes and exceptions not already handed to the writer. `decided`:
/// the plan covers only these records (a micro-batch); `None`: it is the whole plan.
fn select_new(
    memory: &mut Memory,
    plan: Plan,
    decided: Option<&[Key]>,
    ledger: &mut Ledger,
    metrics: &Metrics,
) -> Option<Decided> {
    let in_plan: HashSet<Key> = plan
        .changes
        .iter()
        .map(|c| (c.object, c.id.clone()))
        .collect();
    let exceptions_in_plan: HashMap<Key, &str> = plan
        .exceptions
        .iter()
        .map(|e| ((e.object, e.id.clone()), e.kind.as_str()))
        .collect();
    // Records whose decision is settled (or gone) are forgotten: sent again if they
    // become wrong again, and they no longer need a start time.
    let settled = |k: &Key| !in_plan.contains(k);
    let cleared = |k: &Key, kind: &String| exceptions_in_plan.get(k) != Some(&kind.as_str());
    match decided {
        None => {
            memory.sent.retain(|k, _| !settled(k));
            memory.queued.retain(|k, kind| !cleared(k, kind));
            memory.first_seen.retain(|k, _| !settled(k));
        }
        Some(keys) => {
            for k in keys {
                if settled(k) {
                    memory.sent.remove(k);
                    memory.first_seen.remove(k);
                }
                if memory.queued.get(k).is_some_and(|kind| cleared(k, kind)) {
                    memory.queued.remove(k);
                }
            }
        }
    }
    let mut changes = Vec::new();
    for change in plan.changes {
        let key = (change.object, change.id.clone());
        let stamp = (change.to.clone(), change.record_updated_at);
        if memory.sent.get(&key) == Some(&stamp) {
            continue;
        }
        Metrics::inc(&metrics.decisions, "rule", &change.rule);
        memory.sent.insert(key.clone(), stamp);
        let seen = memory.first_seen.remove(&key);
        changes.push((change, seen));
    }
    let mut exceptions = Vec::new();
    for exception in plan.exceptions {
        let key = (exception.object, exception.id.clone());
        if memory.queued.get(&key) != Some(&exception.kind) {
            memory.queued.insert(key, exception.kind.clone());
            Metrics::inc(&metrics.decisions, "rule", &exception.rule);
            exceptions.push(exception);
        }
    }
    if changes.is_empty() && exceptions.is_empty() {
        return None;
    }
    Some(Decided {
        changes,
        exceptions,
        // Only what changed since the last hand-over: the ledger lives as long as the
        // task, and saving it whole per micro-batch would be O(history).
        ledger: ledger.take_delta(),
        policy_version: plan.policy_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ObjectKind, RecordId};

    fn change(id: &str, to: &str, updated_secs: i64) -> PlannedChange {
        PlannedChange {
            object: ObjectKind::Contact,
            id: RecordId::new(id),
            field: "owner".into(),
            from: None,
            to: OwnerId::new(to),
            rule: "r".into(),
            reason: "why".into(),
            policy_version: "v".into(),
            record_updated_at: DateTime::<Utc>::from_timestamp(updated_secs, 0),
        }
    }

    fn plan(changes: Vec<PlannedChange>, exceptions: Vec<PlannedException>) -> Plan {
        Plan {
            policy_version: "v".into(),
            created_at: Utc::now(),
            crm: leadroute_crm::CrmKind::Hubspot,
            changes,
            exceptions,
        }
    }

    fn exception(id: &str) -> PlannedException {
        PlannedException {
            object: ObjectKind::Contact,
            id: RecordId::new(id),
            kind: "ambiguous_match".into(),
            rule: "r".into(),
            reason: "why".into(),
        }
    }

    fn sent(memory: &mut Memory, p: Plan) -> (Vec<String>, usize) {
        let metrics = Metrics::new();
        match select_new(memory, p, None, &mut Ledger::default(), &metrics) {
            Some(d) => (
                d.changes
                    .iter()
                    .map(|(c, _)| format!("{}>{}", c.id, c.to))
                    .collect(),
                d.exceptions.len(),
            ),
            None => (Vec::new(), 0),
        }
    }

    #[test]
    fn a_pending_change_is_handed_on_once_until_the_record_or_the_decision_changes() {
        let mut memory = Memory::default();
        let first = plan(vec![change("1", "a", 10)], vec![exception("2")]);
        assert_eq!(sent(&mut memory, first), (vec!["1>a".to_owned()], 1));
        // Re-planned, nothing new: nothing is sent again.
        let same = plan(vec![change("1", "a", 10)], vec![exception("2")]);
        assert_eq!(sent(&mut memory, same), (Vec::new(), 0));
        // The record changed in the CRM (a human edit after a skipped write).
        let edited = plan(vec![change("1", "a", 20)], vec![exception("2")]);
        assert_eq!(sent(&mut memory, edited).0, vec!["1>a".to_owned()]);
        // The decision changed (a policy reload).
        let moved = plan(vec![change("1", "b", 20)], vec![exception("2")]);
        assert_eq!(sent(&mut memory, moved).0, vec!["1>b".to_owned()]);
        // Settled (the write landed), then wrong again: handed on again.
        assert_eq!(
            sent(&mut memory, plan(Vec::new(), Vec::new())),
            (Vec::new(), 0)
        );
        let again = plan(vec![change("1", "b", 20)], vec![exception("2")]);
        assert_eq!(sent(&mut memory, again), (vec!["1>b".to_owned()], 1));
    }
}
