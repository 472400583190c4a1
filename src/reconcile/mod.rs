//! Desired vs actual owners → [`Plan`]. Pure: no I/O, no clock (callers pass `now`).
//!
//! [`plan`] is the whole-world pass; [`Reconciler`] keeps the previous pass's decisions
//! and re-plans only a dirty set (changed records, accounts and owners), giving the same
//! plan as a full pass from the same state. Records are always decided in
//! `(object, id)` order so the ledger's picks, and therefore the plan, are deterministic.

pub mod diff;
pub mod drift;
pub mod explain;
pub mod fixtures;
pub mod ledger;
pub mod matching;
pub mod plan;
pub mod route;
pub mod synth;
pub mod warm;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::domain::{CrmKind, ObjectKind, OwnerId, PersonRecord, RecordId, Snapshot};
use crate::policy::Policy;
pub use ledger::Ledger;
use matching::{MatchResult, Matcher};
pub use plan::{OwnerNames, Plan, PlannedChange, PlannedException, RepDelta};
pub use route::{Decision, Engine, Outcome, Trace, Via};
pub use warm::{ApplyMode, Warm};

/// A record key: object kind and id.
pub type Key = (ObjectKind, RecordId);

/// Records matched per parallel batch: bounds memory while keeping both cores busy.
const BATCH: usize = 32 * 1024;

/// Plan every live contact and lead in the snapshot.
pub fn plan(snapshot: &Snapshot, policy: &Policy, ledger: &mut Ledger, now: DateTime<Utc>) -> Plan {
    let matcher = Matcher::new(
        &snapshot.accounts,
        &snapshot.owners,
        &policy.settings.matcher_config(),
    );
    plan_with(snapshot, policy, &matcher, ledger, now)
}

/// [`plan`] with a matcher the caller built (and may reuse).
pub fn plan_with(
    snapshot: &Snapshot,
    policy: &Policy,
    matcher: &Matcher,
    ledger: &mut Ledger,
    now: DateTime<Utc>,
) -> Plan {
    let mut builder = PlanBuilder::new(snapshot, policy, now);
    // A plan reads neither the account nor the territory of a decision.
    decide_each(snapshot, policy, matcher, ledger, now, false, |p, d| {
        builder.add(p, d)
    });
    builder.finish()
}

/// Collects decisions into a plan.
pub struct PlanBuilder<'a> {
    policy: &'a Policy,
    plan: Plan,
}

impl<'a> PlanBuilder<'a> {
    pub fn new(snapshot: &Snapshot, policy: &'a Policy, now: DateTime<Utc>) -> Self {
        PlanBuilder {
            policy,
            plan: Plan {
                policy_version: policy.version.clone(),
                created_at: now,
                crm: snapshot.crm.unwrap_or(CrmKind::Hubspot),
                changes: Vec::new(),
                exceptions: Vec::new(),
            },
        }
    }

    /// Add one decision; takes it by value so its strings move into the plan.
    pub fn add(&mut self, person: &PersonRecord, d: Decision) {
        match d.outcome {
            // The same test as `Decision::change`: an owner that differs from the current.
            Outcome::Owner { owner: to, .. } if Some(&to) != d.current.as_ref() => {
                self.plan.changes.push(PlannedChange {
                    object: d.object,
                    id: d.id,
                    field: "owner".into(),
                    from: d.current,
                    to,
                    rule: d.rule,
                    reason: d.reason,
                    policy_version: self.policy.version.clone(),
                    record_updated_at: Some(person.updated_at),
                });
            }
            Outcome::Exception { exception } => {
                self.plan.exceptions.push(PlannedException {
                    object: d.object,
                    id: d.id,
                    kind: exception,
                    rule: d.rule,
                    reason: d.reason,
                });
            }
            Outcome::Owner { .. } | Outcome::NotRouted => {}
        }
    }

    pub fn finish(self) -> Plan {
        self.plan
    }
}

/// People in decision order, optionally restricted to `only`.
fn ordered<'s>(snapshot: &'s Snapshot, only: Option<&HashSet<Key>>) -> Vec<&'s PersonRecord> {
    let people: Vec<&PersonRecord> = snapshot
        .people
        .iter()
        .filter(|p| p.object.is_person())
        .filter(|p| only.is_none_or(|o| o.contains(&(p.object, p.id.clone()))))
        .collect();
    sort_by_key(people)
}

/// Sort records by `(object, id)`. A million ids compared as strings through pointers
/// dominated the serial start of a plan, so each record gets an integer key (object
/// kind, then the id's first 8 bytes, big-endian, zero-padded: it orders like the
/// strings wherever it differs) and only equal keys compare whole ids. Large inputs
/// sort in two halves on two cores, then merge.
fn sort_by_key(people: Vec<&PersonRecord>) -> Vec<&PersonRecord> {
    sort_keyed(people, 64 * 1024)
}

/// [`sort_by_key`], on two cores from `parallel_from` records on.
fn sort_keyed(people: Vec<&PersonRecord>, parallel_from: usize) -> Vec<&PersonRecord> {
    fn key(p: &PersonRecord) -> u128 {
        let id = p.id.as_str().as_bytes();
        let mut prefix = [0u8; 8];
        let n = id.len().min(8);
        prefix[..n].copy_from_slice(&id[..n]);
        // Fieldless enum: the discriminant follows declaration order, as `Ord` does.
        ((p.object as u128) << 64) | u128::from(u64::from_be_bytes(prefix))
    }
    fn cmp(a: &(u128, &PersonRecord), b: &(u128, &PersonRecord)) -> std::cmp::Ordering {
        a.0.cmp(&b.0)
            .then_with(|| (a.1.object, &a.1.id).cmp(&(b.1.object, &b.1.id)))
    }
    let mut keyed: Vec<(u128, &PersonRecord)> = people.into_iter().map(|p| (key(p), p)).collect();
    if keyed.len() < parallel_from.max(2) {
        keyed.sort_unstable_by(cmp);
        return keyed.into_iter().map(|(_, p)| p).collect();
    }
    let mid = keyed.len() / 2;
    let (left, right) = keyed.split_at_mut(mid);
    std::thread::scope(|scope| {
        scope.spawn(|| left.sort_unstable_by(cmp));
        right.sort_unstable_by(cmp);
    });
    let (left, right) = keyed.split_at(mid);
    let mut out = Vec::with_capacity(keyed.len());
    let (mut i, mut j) = (0, 0);
    while i < left.len() && j < right.len() {
        if cmp(&right[j], &left[i]).is_lt() {
            out.push(right[j].1);
            j += 1;
        } else {
            out.push(left[i].1);
            i += 1;
        }
    }
    out.extend(left[i..].iter().map(|(_, p)| *p));
    out.extend(right[j..].iter().map(|(_, p)| *p));
    out
}

/// Match and prepare (in parallel batches) and decide (in order) every person, or only
/// `only`; `sink` receives each decision in `(object, id)` order.
pub fn decide_all<'s>(
    snapshot: &'s Snapshot,
    policy: &'s Policy,
    matcher: &Matcher,
    ledger: &mut Ledger,
    now: DateTime<Utc>,
    only: Option<&HashSet<Key>>,
    sink: impl FnMut(&'s PersonRecord, Decision),
) {
    decide_some(snapshot, policy, matcher, ledger, now, only, true, sink);
}

/// [`decide_all`] over every person; `detail`: see [`route::State::complete`].
fn decide_each<'s>(
    snapshot: &'s Snapshot,
    policy: &'s Policy,
    matcher: &Matcher,
    ledger: &mut Ledger,
    now: DateTime<Utc>,
    detail: bool,
    sink: impl FnMut(&'s PersonRecord, Decision),
) {
    decide_some(snapshot, policy, matcher, ledger, now, None, detail, sink);
}

#[allow(clippy::too_many_arguments)]
fn decide_some<'s>(
    snapshot: &'s Snapshot,
    policy: &'s Policy,
    matcher: &Matcher,
    ledger: &mut Ledger,
    now: DateTime<Utc>,
    only: Option<&HashSet<Key>>,
    detail: bool,
    mut sink: impl FnMut(&'s PersonRecord, Decision),
) {
    ledger.prune(now.date_naive());
    let mut engine = Engine::new(policy, snapshot, now);
    let people = ordered(snapshot, only);
    let Engine { fixed, state } = &mut engine;
    let fixed = &*fixed;
    for_each_prepared(matcher, fixed, &people, false, |prepared| {
        let person = prepared.person;
        let (d, _) = state.complete(fixed, prepared, ledger, detail);
        sink(person, d);
    });
    engine.finish(ledger);
}

/// Records per pipelined batch: small enough that routing starts almost at once.
const PIPE_BATCH: usize = 4 * 1024;

/// Call `f` with every person (in order) matched and prepared ([`route::Fixed::prepare`]:
/// everything about its decision that needs no ledger), with its match result when
/// `keep_match`.
///
/// Matching and preparing are pure and run on worker threads (batch `k` on worker
/// `k % workers`), overlapped with `f` on the calling thread: the rest of routing must
/// stay sequential because the ledger's picks depend on record order, but it no longer
/// waits for the pure part. Workers plus the caller oversubscribe the cores on purpose,
/// so whichever side is slower gets the spare core. Results are consumed strictly in
/// order, so the output is the same as preparing everything first.
fn for_each_prepared<'s>(
    matcher: &Matcher,
    fixed: &route::Fixed<'s>,
    people: &[&'s PersonRecord],
    keep_match: bool,
    mut f: impl FnMut(route::Prepared<'s>),
) {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    if threads <= 1 || people.len() < 2 * PIPE_BATCH {
        for batch in people.chunks(BATCH) {
            let matches = match_batch(matcher, batch, threads);
            for (person, m) in batch.iter().zip(matches) {
                f(fixed.prepare(person, m, keep_match));
            }
        }
        return;
    }
    std::thread::scope(|scope| {
        let channels: Vec<_> = (0..threads)
            .map(|w| {
                // Two batches in flight per worker bound the memory held in results.
                let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<route::Prepared<'s>>>(2);
                // Emptied batches go back to their worker to be filled again: a fresh
                // megabyte-sized buffer per batch, allocated on one thread and freed on
                // another, keeps glibc's allocator consolidating its free lists.
                let (back_tx, back_rx) = std::sync::mpsc::channel::<Vec<route::Prepared<'s>>>();
                scope.spawn(move || {
                    for batch in people.chunks(PIPE_BATCH).skip(w).step_by(threads) {
                        let mut prepared = back_rx
                            .try_recv()
                            .unwrap_or_else(|_| Vec::with_capacity(PIPE_BATCH));
                        prepared.extend(
                            batch
                                .iter()
                                .map(|p| fixed.prepare(p, matcher.match_person(p), keep_match)),
                        );
                        if tx.send(prepared).is_err() {
                            // The consumer is gone (it panicked); stop quietly.
                            return;
                        }
                    }
                });
                (rx, back_tx)
            })
            .collect();
        for k in 0..people.len().div_ceil(PIPE_BATCH) {
            let (rx, back) = &channels[k % threads];
            let mut prepared = rx
                .recv()
                .expect("a matching worker sends every batch it owns before exiting");
            for p in prepared.drain(..) {
                f(p);
            }
            // The worker may be done already; then the buffer is simply dropped.
            let _ = back.send(prepared);
        }
    });
}

fn match_batch(matcher: &Matcher, batch: &[&PersonRecord], threads: usize) -> Vec<MatchResult> {
    if threads <= 1 || batch.len() < 1024 {
        return batch.iter().map(|p| matcher.match_person(p)).collect();
    }
    let per = batch.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = batch
            .chunks(per)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|p| matcher.match_person(p))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("matching threads do not panic"))
            .collect()
    })
}

/// Decide one record with a full trace, as if it were the next record planned with
/// this ledger (what the sidecar does when it changes). The ledger is not modified.
pub fn explain(
    snapshot: &Snapshot,
    policy: &Policy,
    ledger: &Ledger,
    now: DateTime<Utc>,
    object: ObjectKind,
    id: &RecordId,
) -> Option<Decision> {
    let person = snapshot
        .people
        .iter()
        .find(|p| p.object == object && &p.id == id)?;
    let matcher = Matcher::new(
        &snapshot.accounts,
        &snapshot.owners,
        &policy.settings.matcher_config(),
    );
    let m = matcher.match_person(person);
    let mut scratch = ledger.clone();
    let mut engine = Engine::new(policy, snapshot, now);
    let d = engine.decide(person, &m, &mut scratch, true);
    engine.finish(&mut scratch);
    Some(d)
}

/// What changed in the mirror since the last pass.
#[derive(Debug, Clone, Default)]
pub struct Dirty {
    pub people: BTreeSet<Key>,
    pub accounts: BTreeSet<RecordId>,
    pub owners: BTreeSet<OwnerId>,
}

/// What the incremental reconciler remembers about each record.
#[derive(Debug, Clone)]
struct Cached {
    account: Option<RecordId>,
    candidates: Box<[RecordId]>,
    desired: Option<OwnerId>,
    current: Option<OwnerId>,
}

#[derive(Debug, Clone)]
enum Pending {
    Change(PlannedChange),
    Exception(PlannedException),
}

/// What [`Reconciler::replan_delta`] re-decided.
#[derive(Debug)]
pub enum Replanned {
    /// A full pass ran: the whole plan.
    Full(Plan),
    /// Only `decided` (in record order) were re-decided; `plan` holds their changes and
    /// exceptions, and a decided key not in it is settled.
    Delta { plan: Plan, decided: Vec<Key> },
}

/// Incremental reconciliation over a long-lived mirror.
///
/// After a full pass it keeps each record's decision, indexed by the accounts it matched
/// or had as candidates and by its current and desired owner. `replan_warm` re-decides
/// only the records a [`Dirty`] set can affect, found through those indexes and the
/// [`Warm`] mirror's (people linked to a changed account or whose email shares its
/// registrable domain, by the public suffix list as the matcher compares them), so a
/// micro-batch costs O(changed), not O(org): the changed records; people linked to,
/// matched to or candidates of a changed account, or sharing its email domain; people
/// whose current or desired owner changed in the roster. Everything else keeps its
/// decision and its pending change, so the plan equals a full pass from the same state.
/// Limitation: fuzzy company-name matches to a renamed account that share no domain
/// are only picked up by the next full pass (the sidecar runs one on a schedule).
/// The matcher is kept between passes and rebuilt only when accounts or owners change.
#[derive(Debug, Default)]
pub struct Reconciler {
    cache: HashMap<Key, Cached>,
    /// What each record contributes to the plan (the usual settled record: nothing).
    pending: BTreeMap<Key, Pending>,
    /// Records by the account they matched and their candidates.
    by_account: HashMap<RecordId, HashSet<Key>>,
    /// Records by their current and desired owner.
    by_owner: HashMap<OwnerId, HashSet<Key>>,
    policy_version: String,
    /// Rebuilt only when accounts or owners change.
    matcher: Option<Matcher>,
}

impl Reconciler {
    /// A full pass over a snapshot; remembers every decision.
    pub fn full(
        &mut self,
        snapshot: &Snapshot,
        policy: &Policy,
        ledger: &mut Ledger,
        now: DateTime<Utc>,
    ) -> Plan {
        let warm = Warm::from_snapshot(snapshot.clone());
        self.full_warm(&warm, policy, ledger, now)
    }

    /// Re-plan what `dirty` can affect in a snapshot (tests and benches: it copies the
    /// snapshot; the sidecar keeps a [`Warm`] mirror and calls [`Reconciler::replan_warm`]).
    pub fn replan(
        &mut self,
        snapshot: &Snapshot,
        policy: &Policy,
        ledger: &mut Ledger,
        now: DateTime<Utc>,
        dirty: &Dirty,
    ) -> Plan {
        let warm = Warm::from_snapshot(snapshot.clone());
        // Records that left the snapshot count as changed.
        let mut dirty = dirty.clone();
        for key in self.cache.keys() {
            if warm.person(key).is_none() {
                dirty.people.insert(key.clone());
            }
        }
        self.replan_warm(&warm, policy, ledger, now, &dirty)
    }

    /// A full pass over the warm mirror; remembers every decision.
    pub fn full_warm(
        &mut self,
        warm: &Warm,
        policy: &Policy,
        ledger: &mut Ledger,
        now: DateTime<Utc>,
    ) -> Plan {
        self.cache.clear();
        self.pending.clear();
        self.by_account.clear();
        self.by_owner.clear();
        self.policy_version = policy.version.clone();
        self.matcher = None;
        let people: Vec<&PersonRecord> = warm
            .people
            .values()
            .filter(|p| p.object.is_person())
            .collect();
        self.run(warm, policy, ledger, now, people);
        self.plan_of_all(warm, policy, now)
    }

    /// Re-plan what `dirty` can affect; the whole plan (every pending record). Falls
    /// back to a full pass after a policy change.
    pub fn replan_warm(
        &mut self,
        warm: &Warm,
        policy: &Policy,
        ledger: &mut Ledger,
        now: DateTime<Utc>,
        dirty: &Dirty,
    ) -> Plan {
        match self.replan_delta(warm, policy, ledger, now, dirty) {
            Replanned::Full(plan) => plan,
            Replanned::Delta { .. } => self.plan_of_all(warm, policy, now),
        }
    }

    /// [`Reconciler::replan_warm`] answering only what it re-decided (O(changed)): the
    /// plan of those records and their keys (a key re-decided but not in the plan is
    /// settled). A full pass (after a policy change, or with nothing cached) answers
    /// the whole plan.
    pub fn replan_delta(
        &mut self,
        warm: &Warm,
        policy: &Policy,
        ledger: &mut Ledger,
        now: DateTime<Utc>,
        dirty: &Dirty,
    ) -> Replanned {
        if self.policy_version != policy.version || self.cache.is_empty() {
            return Replanned::Full(self.full_warm(warm, policy, ledger, now));
        }
        let mut affected: HashSet<Key> = dirty.people.iter().cloned().collect();
        for id in &dirty.accounts {
            affected.extend(self.by_account.get(id).into_iter().flatten().cloned());
            affected.extend(warm.linked_to(id).cloned());
            let Some(a) = warm.account(id) else { continue };
            // The matcher compares registrable domains (public suffix list), so the
            // affected people are found the same way.
            let mut domains: HashSet<String> = HashSet::new();
            for d in a
                .domain
                .iter()
                .chain(a.website.iter())
                .chain(a.extra_domains.iter())
            {
                if let Some(host) = crate::matcher::domain::website_host(d) {
                    domains.insert(host.registrable);
                }
            }
            for d in &domains {
                affected.extend(warm.at_domain(d).cloned());
            }
        }
        if !dirty.owners.is_empty() {
            for o in &dirty.owners {
                affected.extend(self.by_owner.get(o).into_iter().flatten().cloned());
            }
            // An owner coming back (or leaving) changes who the accounts it owns route
            // to, and the matcher's active-owner tie-breaker among them. A roster change
            // is rare, so the accounts are scanned rather than indexed by owner.
            for a in &warm.accounts.list {
                if a.owner_id
                    .as_ref()
                    .is_some_and(|o| dirty.owners.contains(o))
                {
                    affected.extend(self.by_account.get(&a.id).into_iter().flatten().cloned());
                    affected.extend(warm.linked_to(&a.id).cloned());
                }
            }
        }
        // Records that left the mirror drop out of the plan.
        let mut people = Vec::with_capacity(affected.len());
        for key in &affected {
            match warm.person(key).filter(|p| p.object.is_person()) {
                Some(p) => people.push(p),
                None => self.forget(key),
            }
        }
        // The matcher indexes accounts and owners only: changed people keep it warm.
        if !(dirty.accounts.is_empty() && dirty.owners.is_empty()) {
            self.matcher = None;
        }
        self.run(warm, policy, ledger, now, people);
        let mut decided: Vec<Key> = affected.into_iter().collect();
        decided.sort_unstable();
        let mut plan = self.empty_plan(warm, policy, now);
        for key in &decided {
            match self.pending.get(key) {
                Some(Pending::Change(c)) => plan.changes.push(c.clone()),
                Some(Pending::Exception(e)) => plan.exceptions.push(e.clone()),
                None => {}
            }
        }
        Replanned::Delta { plan, decided }
    }

    fn empty_plan(&self, warm: &Warm, policy: &Policy, now: DateTime<Utc>) -> Plan {
        Plan {
            policy_version: policy.version.clone(),
            created_at: now,
            crm: warm.crm.unwrap_or(CrmKind::Hubspot),
            changes: Vec::new(),
            exceptions: Vec::new(),
        }
    }

    /// The plan of every pending record, in record order.
    fn plan_of_all(&self, warm: &Warm, policy: &Policy, now: DateTime<Utc>) -> Plan {
        let mut plan = self.empty_plan(warm, policy, now);
        for p in self.pending.values() {
            match p {
                Pending::Change(c) => plan.changes.push(c.clone()),
                Pending::Exception(e) => plan.exceptions.push(e.clone()),
            }
        }
        plan
    }

    /// Drops what is remembered about `key`.
    fn forget(&mut self, key: &Key) {
        self.pending.remove(key);
        if let Some(old) = self.cache.remove(key) {
            self.unindex(key, &old);
        }
    }

    fn unindex(&mut self, key: &Key, c: &Cached) {
        for a in c.account.iter().chain(c.candidates.iter()) {
            if let Some(set) = self.by_account.get_mut(a) {
                set.remove(key);
                if set.is_empty() {
                    self.by_account.remove(a);
                }
            }
        }
        for o in c.current.iter().chain(c.desired.iter()) {
            if let Some(set) = self.by_owner.get_mut(o) {
                set.remove(key);
                if set.is_empty() {
                    self.by_owner.remove(o);
                }
            }
        }
    }

    fn index(&mut self, key: &Key, c: &Cached) {
        for a in c.account.iter().chain(c.candidates.iter()) {
            match self.by_account.get_mut(a) {
                Some(set) => {
                    set.insert(key.clone());
                }
                None => {
                    self.by_account
                        .insert(a.clone(), HashSet::from([key.clone()]));
                }
            }
        }
        for o in c.current.iter().chain(c.desired.iter()) {
            match self.by_owner.get_mut(o) {
                Some(set) => {
                    set.insert(key.clone());
                }
                None => {
                    self.by_owner
                        .insert(o.clone(), HashSet::from([key.clone()]));
                }
            }
        }
    }

    /// Decide `people` (in record order) and return the plan of every pending record.
    fn run(
        &mut self,
        warm: &Warm,
        policy: &Policy,
        ledger: &mut Ledger,
        now: DateTime<Utc>,
        people: Vec<&PersonRecord>,
    ) {
        let matcher = match self.matcher.take() {
            Some(matcher) => matcher,
            None => Matcher::new(
                &warm.accounts.list,
                &warm.owners,
                &policy.settings.matcher_config(),
            ),
        };
        let mut fresh: Vec<(Key, Cached, Option<Box<Pending>>)> = Vec::with_capacity(people.len());
        ledger.prune(now.date_naive());
        let mut engine = Engine::from_parts(
            policy,
            route::Lookup::Built(warm.owners.iter().map(|o| (&o.id, o)).collect()),
            route::Lookup::Listed(&warm.accounts.list, &warm.accounts.at),
            warm.load.clone(),
            now,
        );
        let people = sort_by_key(people);
        let Engine { fixed, state } = &mut engine;
        let fixed = &*fixed;
        for_each_prepared(&matcher, fixed, &people, true, |prepared| {
            let p = prepared.person;
            // The cache keeps neither the decision's account nor its territory.
            let (d, m) = state.complete(fixed, prepared, ledger, false);
            let m = m.expect("kept: asked for above");
            let desired = d.desired().cloned();
            fresh.push((
                (p.object, p.id.clone()),
                Cached {
                    account: m.account_id,
                    candidates: m
                        .candidates
                        .into_iter()
                        .map(|c| c.account_id)
                        .collect::<Vec<_>>()
                        .into_boxed_slice(),
                    desired,
                    current: p.owner_id.clone(),
                },
                pending(d, p, policy),
            ));
        });
        engine.finish(ledger);
        for (key, cached, pending) in fresh {
            if let Some(old) = self.cache.remove(&key) {
                self.unindex(&key, &old);
            }
            self.index(&key, &cached);
            match pending {
                Some(p) => {
                    self.pending.insert(key.clone(), *p);
                }
                None => {
                    self.pending.remove(&key);
                }
            }
            self.cache.insert(key, cached);
        }
        self.matcher = Some(matcher);
    }
}

/// A decision's contribution to a plan; takes it by value so its strings move.
fn pending(d: Decision, person: &PersonRecord, policy: &Policy) -> Option<Box<Pending>> {
    match d.outcome {
        // The same test as `Decision::change`: an owner that differs from the current.
        Outcome::Owner { owner: to, .. } if Some(&to) != d.current.as_ref() => {
            Some(Box::new(Pending::Change(PlannedChange {
                object: d.object,
                id: d.id,
                field: "owner".into(),
                from: d.current,
                to,
                rule: d.rule,
                reason: d.reason,
                policy_version: policy.version.clone(),
                record_updated_at: Some(person.updated_at),
            })))
        }
        Outcome::Exception { exception } => Some(Box::new(Pending::Exception(PlannedException {
            object: d.object,
            id: d.id,
            kind: exception,
            rule: d.rule,
            reason: d.reason,
        }))),
        Outcome::Owner { .. } | Outcome::NotRouted => None,
    }
}

#[cfg(test)]
mod tests;
