//! One record's routing decision: match → manual-override check → rules in order →
//! action (with sticky ownership and the ledger) → desired owner or exception.
//!
//! `Engine` holds the per-plan indexes (owners, accounts, loads); `decide` is the only
//! place that mutates the ledger, and only for records whose owner actually changes.

use rustc_hash::FxHashMap as HashMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::ledger::{Assignment, Contender, Ledger};
use super::matching::{MatchResult, MatchStatus};
use crate::domain::{
    AccountRecord, ObjectKind, OwnerId, OwnerRecord, PersonRecord, RecordId, Snapshot,
};
use crate::policy::{
    Action, Availability, ConditionTrace, OnUnavailable, Policy, Pool, Rule, Strategy, Subject,
};

/// How a desired owner was arrived at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    AccountOwner,
    NamedOwner,
    Queue,
    Keep,
    /// The current owner is still valid under the rule.
    Sticky,
    /// An earlier plan's pick for this record, reused.
    Ledger,
    /// A fresh pick from a pool.
    Picked,
    /// A human changed the owner within the manual-override window.
    ManualOverride,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    Owner {
        owner: OwnerId,
        pool: Option<String>,
        via: Via,
    },
    Exception {
        exception: String,
    },
    /// Converted leads: read-only, never routed.
    NotRouted,
}

/// The full decision for one record; `trace` only when asked for (explain, policy test).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub object: ObjectKind,
    pub id: RecordId,
    pub current: Option<OwnerId>,
    pub outcome: Outcome,
    pub rule: String,
    pub reason: String,
    pub match_status: MatchStatus,
    /// The matched account. Left `None` by plan builders, which do not read it (see
    /// [`State::complete`]).
    pub account_id: Option<RecordId>,
    /// The first territory (in policy order) the record is in; like `account_id`, left
    /// `None` by plan builders.
    pub territory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Box<Trace>>,
}

impl Decision {
    /// The owner to write, when it differs from the current one.
    pub fn change(&self) -> Option<&OwnerId> {
        match &self.outcome {
            Outcome::Owner { owner, .. } if Some(owner) != self.current.as_ref() => Some(owner),
            _ => None,
        }
    }

    pub fn desired(&self) -> Option<&OwnerId> {
        match &self.outcome {
            Outcome::Owner { owner, .. } => Some(owner),
            _ => None,
        }
    }
}

/// Everything explain prints about one decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    pub now: DateTime<Utc>,
    pub policy_version: String,
    pub current_owner: Option<String>,
    pub current_owner_status: String,
    pub owner_assigned_at: Option<DateTime<Utc>>,
    #[serde(rename = "match")]
    pub match_result: MatchResult,
    pub territories: Vec<TerritoryTrace>,
    pub manual_override: String,
    pub rules: Vec<RuleTrace>,
    pub pool: Option<PoolTrace>,
    pub result: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TerritoryTrace {
    pub name: String,
    pub saw: String,
    pub holds: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleTrace {
    pub name: String,
    pub line: usize,
    pub conditions: Vec<ConditionTrace>,
    pub matched: bool,
    pub action: String,
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolTrace {
    pub pool: String,
    pub strategy: &'static str,
    pub picks: u64,
    pub members: Vec<MemberTrace>,
    pub picked: Option<String>,
    pub how: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberTrace {
    pub rep: String,
    pub owner: String,
    pub weight: u32,
    pub credit: f64,
    pub assigned: u64,
    pub today: u32,
    pub week: u32,
    pub load: u64,
    pub time_zone: String,
    pub status: String,
}

/// What does not change about a pool member during one plan: zone, local day, and
/// whether they are active, in office and in hours at `now`. Caps do change.
#[derive(Debug, Clone)]
struct MemberStatic {
    tz: Tz,
    local_day: chrono::NaiveDate,
    status: Result<(), String>,
    /// The reason given when this member is picked (formatting it per pick was a
    /// visible part of a large plan's routing time).
    picked: String,
}

/// Per-plan facts that do not change while a plan runs. Read-only, so the matching
/// workers share it: everything about a record that needs no ledger (territories,
/// conditions, every action but a pool pick) is evaluated there, in parallel.
pub struct Fixed<'a> {
    pub policy: &'a Policy,
    owners: Lookup<'a, OwnerId, OwnerRecord>,
    accounts: Lookup<'a, RecordId, AccountRecord>,
    now: DateTime<Utc>,
}

/// Records by id: an index built over a snapshot's lists, or a keyed map the caller
/// keeps (the sidecar's warm mirror), borrowed as is so a micro-batch builds nothing.
pub enum Lookup<'a, K, V> {
    Built(HashMap<&'a K, &'a V>),
    Kept(&'a HashMap<K, V>),
    /// A list and the position of each id in it.
    Listed(&'a [V], &'a HashMap<K, usize>),
}

impl<'a, K: std::hash::Hash + Eq, V> Lookup<'a, K, V> {
    pub fn get(&self, id: &K) -> Option<&'a V> {
        match self {
            Lookup::Built(map) => map.get(id).copied(),
            Lookup::Kept(map) => map.get(id),
            Lookup::Listed(list, at) => at.get(id).and_then(|&i| list.get(i)),
        }
    }
}

/// Per-plan state that routing changes: loads, pools' fair-share slots, cap counts.
/// Only the thread that decides records in order touches it.
pub struct State {
    load: HashMap<OwnerId, u64>,
    statics: HashMap<String, std::rc::Rc<Vec<MemberStatic>>>,
    /// Pool member state for this plan, dense and aligned with `Pool::members`; written
    /// back to the ledger by [`Engine::finish`]. Lookups by owner id in a map for every
    /// member on every pick would dominate large pools.
    dense: HashMap<String, Vec<super::ledger::MemberLedger>>,
    /// Per rep (by `Member::rep_index`): (local day, assignments that day, that week),
    /// loaded from the ledger on first use and counted up on each pick.
    rep_counts: Vec<Option<(chrono::NaiveDate, u32, u32)>>,
    /// Per rep: records owned, loaded from `load` on first use (least-loaded pools).
    rep_load: Vec<Option<u64>>,
}

/// Per-plan indexes over the snapshot: the shared [`Fixed`] part and the sequential
/// [`State`].
pub struct Engine<'a> {
    pub fixed: Fixed<'a>,
    pub state: State,
}

/// The result of trying one rule's action.
enum Tried {
    Owner(OwnerId, Option<String>, Via, String),
    Exception(String, String),
    Unavailable(String),
}

/// How far a walk over the rules got without the ledger.
enum Walked {
    /// Settled: outcome, rule name, reason.
    Done(Outcome, String, String),
    /// The rule at this index holds and routes to a pool: the pick needs the ledger.
    /// Carries the rule's trace (its conditions) when tracing.
    Pool(usize, Option<RuleTrace>),
}

/// A record with everything decided that needs no ledger, built on a matching worker
/// by [`Fixed::prepare`]; [`State::complete`] finishes it in record order.
///
/// It holds as little heap memory as it can: glibc's allocator is slow when one thread
/// frees what another allocated, so the strings a decision needs are cloned by the
/// thread that completes it, and the match result is dropped on the worker unless the
/// caller keeps it.
pub struct Prepared<'a> {
    pub person: &'a PersonRecord,
    /// The match result, when the caller asked to keep it.
    pub m: Option<MatchResult>,
    match_status: MatchStatus,
    account: Option<&'a AccountRecord>,
    /// Index of the record's first territory in `Policy::territories`.
    territory: Option<usize>,
    /// The owner was set within the manual-override window, at this time: the ledger
    /// tells whether it was leadroute's own change.
    override_at: Option<DateTime<Utc>>,
    /// Pool rules to try in order (indexes into `Policy::rules`); see [`PoolRules`].
    pools: PoolRules,
    /// Where the walk ends when every pool in `pools` has nobody; `None` when the last
    /// pool rule then raises an exception itself.
    last: Option<Routed>,
}

/// Rule indexes, the first few inline (no heap for the usual record).
#[derive(Default)]
struct PoolRules {
    inline: [u32; 3],
    len: usize,
    spill: Vec<usize>,
}

impl PoolRules {
    fn push(&mut self, index: usize) {
        match u32::try_from(index) {
            Ok(i) if self.len < self.inline.len() && self.spill.is_empty() => {
                self.inline[self.len] = i;
                self.len += 1;
            }
            _ => self.spill.push(index),
        }
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.inline[..self.len]
            .iter()
            .map(|i| *i as usize)
            .chain(self.spill.iter().copied())
    }
}

/// The rule name, reason and outcome of a decision.
type Routed = (Outcome, String, String);

impl<'a> Engine<'a> {
    pub fn new(policy: &'a Policy, snapshot: &'a Snapshot, now: DateTime<Utc>) -> Self {
        let mut load: HashMap<OwnerId, u64> = HashMap::default();
        for p in snapshot.people.iter().filter(|p| !p.converted) {
            if let Some(o) = &p.owner_id {
                // Look up before inserting: `entry` would clone the id for every record.
                match load.get_mut(o) {
                    Some(n) => *n += 1,
                    None => {
                        load.insert(o.clone(), 1);
                    }
                }
            }
        }
        Engine::from_parts(
            policy,
            Lookup::Built(snapshot.owners.iter().map(|o| (&o.id, o)).collect()),
            Lookup::Built(snapshot.accounts.iter().map(|a| (&a.id, a)).collect()),
            load,
            now,
        )
    }

    /// An engine over records the caller keeps by id, with `load` (records owned per
    /// owner, converted leads excluded) counted by the caller: nothing here is O(org).
    pub fn from_parts(
        policy: &'a Policy,
        owners: Lookup<'a, OwnerId, OwnerRecord>,
        accounts: Lookup<'a, RecordId, AccountRecord>,
        load: HashMap<OwnerId, u64>,
        now: DateTime<Utc>,
    ) -> Self {
        Engine {
            fixed: Fixed {
                policy,
                owners,
                accounts,
                now,
            },
            state: State {
                load,
                statics: HashMap::default(),
                dense: HashMap::default(),
                rep_counts: vec![None; policy.reps.len()],
                rep_load: vec![None; policy.reps.len()],
            },
        }
    }

    /// Write the pools' dense state back into the ledger. Call once after the last
    /// `decide` of a plan; until then the engine's copy is the authoritative one.
    pub fn finish(self, ledger: &mut Ledger) {
        self.state.finish(self.fixed.policy, ledger);
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.fixed.now
    }

    pub fn account(&self, id: &RecordId) -> Option<&'a AccountRecord> {
        self.fixed.account(id)
    }

    pub fn owner(&self, id: &OwnerId) -> Option<&'a OwnerRecord> {
        self.fixed.owners.get(id)
    }

    pub fn is_active(&self, id: &OwnerId) -> bool {
        self.fixed.is_active(id)
    }

    /// Decide one record. `m` is its match result. The same decision as
    /// [`Fixed::prepare`] then [`State::complete`], but rules after a pool rule are only
    /// evaluated when that pool has nobody, as the trace shows them.
    pub fn decide(
        &mut self,
        person: &'a PersonRecord,
        m: &MatchResult,
        ledger: &mut Ledger,
        want_trace: bool,
    ) -> Decision {
        let fx = &self.fixed;
        let (subject, territory) = fx.subject(person, m);
        let mut decision = fx.skeleton(person, m.status, subject.account, territory);
        let mut trace = want_trace.then(|| {
            Box::new(Trace {
                now: fx.now,
                policy_version: fx.policy.version.clone(),
                current_owner: person.owner_id.as_ref().map(|o| fx.policy.owner_label(o)),
                current_owner_status: fx.owner_status(person.owner_id.as_ref()),
                owner_assigned_at: person.owner_assigned_at,
                match_result: m.clone(),
                territories: fx
                    .policy
                    .territories
                    .iter()
                    .map(|t| TerritoryTrace {
                        name: t.name.clone(),
                        saw: t.describe_seen(&subject),
                        holds: t.contains(&subject),
                    })
                    .collect(),
                manual_override: String::new(),
                rules: Vec::new(),
                pool: None,
                result: String::new(),
            })
        });
        let (outcome, rule, reason) = if person.converted {
            converted()
        } else {
            match fx.manual_override(person, ledger, trace.is_some()) {
                Ok(why) => {
                    if let Some(t) = trace.as_mut() {
                        t.manual_override = why.clone();
                    }
                    overridden(person, why)
                }
                Err(why) => {
                    if let Some(t) = trace.as_mut() {
                        t.manual_override = why;
                    }
                    let first = fx.walk(person, &subject, m, 0, &mut trace);
                    self.state.route(
                        fx,
                        person,
                        first,
                        |start, trace| fx.walk(person, &subject, m, start, trace),
                        ledger,
                        &mut trace,
                    )
                }
            }
        };
        if let Some(t) = trace.as_mut() {
            t.result = reason.clone();
        }
        decision.outcome = outcome;
        decision.rule = rule;
        decision.reason = reason;
        decision.trace = trace;
        self.state.record(fx, person, &decision, ledger);
        decision
    }
}

fn converted() -> Routed {
    (
        Outcome::NotRouted,
        "(converted)".into(),
        "converted leads are read-only and never routed".into(),
    )
}

fn overridden(person: &PersonRecord, why: String) -> Routed {
    let owner = person
        .owner_id
        .clone()
        .expect("manual override only applies to owned records");
    (
        Outcome::Owner {
            owner,
            pool: None,
            via: Via::ManualOverride,
        },
        "(manual override)".into(),
        why,
    )
}

/// How a pool's strategy picks, as a pick's reason says.
fn pick_how(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::LeastLoaded => "fewest owned records per weight, then fair share",
        Strategy::Weighted => {
            "earliest deadline among members owed a record (credit grows by weight/total each pick)"
        }
        Strategy::RoundRobin => {
            "next in turn (earliest deadline among members owed a record, then owner id)"
        }
    }
}

/// Whether a rule settles the record even when its action finds nobody.
fn raises_when_unavailable(rule: &Rule) -> bool {
    rule.on_unavailable == OnUnavailable::Exception || rule.is_default
}

/// What a tried action means for the record: settled, or (`None`) try the next rule.
fn settle(
    rule: &Rule,
    tried: Tried,
    rule_trace: Option<RuleTrace>,
    trace: &mut Option<Box<Trace>>,
) -> Option<Routed> {
    let (outcome, why) = match tried {
        Tried::Owner(owner, pool, via, why) => (Outcome::Owner { owner, pool, via }, why),
        Tried::Exception(kind, why) => (Outcome::Exception { exception: kind }, why),
        Tried::Unavailable(why) if raises_when_unavailable(rule) => (
            Outcome::Exception {
                exception: "no_eligible_rep".into(),
            },
            why,
        ),
        Tried::Unavailable(why) => {
            if let (Some(t), Some(mut rt)) = (trace.as_mut(), rule_trace) {
                rt.outcome = format!("unavailable, trying the next rule: {why}");
                t.rules.push(rt);
            }
            return None;
        }
    };
    if let (Some(t), Some(mut rt)) = (trace.as_mut(), rule_trace) {
        rt.outcome = why.clone();
        t.rules.push(rt);
    }
    Some((outcome, rule.name.clone(), why))
}

impl<'a> Fixed<'a> {
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    pub fn account(&self, id: &RecordId) -> Option<&'a AccountRecord> {
        self.accounts.get(id)
    }

    pub fn is_active(&self, id: &OwnerId) -> bool {
        self.owners.get(id).is_some_and(|o| o.active)
    }

    fn owner_status(&self, id: Option<&OwnerId>) -> String {
        match id {
            None => "unowned".into(),
            Some(id) => match self.owners.get(id) {
                None => "not in the mirror's owner list".into(),
                Some(o) if o.active => "active".into(),
                Some(_) => "inactive".into(),
            },
        }
    }

    fn zone_of(&self, owner: &OwnerId, pool: Option<&Pool>) -> Tz {
        let crm_zone = self.owners.get(owner).and_then(|o| o.time_zone.as_deref());
        match self.policy.rep_for_owner(owner) {
            Some(rep) => rep.zone(pool, crm_zone),
            None => pool
                .and_then(|p| p.time_zone)
                .or_else(|| crm_zone.and_then(|z| z.parse().ok()))
                .unwrap_or(Tz::UTC),
        }
    }

    /// Whether `owner` may receive a new record now: active, and not out of office if
    /// the policy knows them as a rep. Hours and caps only apply to pool picks.
    fn can_receive(&self, owner: &OwnerId) -> Result<(), String> {
        match self.owners.get(owner) {
            None => {
                return Err(format!(
                    "{} is not in the mirror's owner list",
                    self.policy.owner_label(owner)
                ));
            }
            Some(o) if !o.active => {
                return Err(format!("{} is inactive", self.policy.owner_label(owner)));
            }
            Some(_) => {}
        }
        if let Some(rep) = self.policy.rep_for_owner(owner) {
            let tz = self.zone_of(owner, None);
            if let Some(w) = rep.out_of_office.iter().find(|w| w.contains(self.now, tz)) {
                return Err(format!("{} is out of office {}", rep.name, w.describe()));
            }
        }
        Ok(())
    }

    /// The subject conditions see and the index of its first territory.
    fn subject(&self, person: &'a PersonRecord, m: &MatchResult) -> (Subject<'a>, Option<usize>) {
        let account = match m.status {
            MatchStatus::Matched => m.account_id.as_ref().and_then(|id| self.account(id)),
            _ => None,
        };
        let subject = Subject::new(person, account, m.status);
        let territory = self
            .policy
            .territories
            .iter()
            .position(|t| t.contains(&subject));
        (subject, territory)
    }

    /// The decision so far: everything but the outcome.
    fn skeleton(
        &self,
        person: &PersonRecord,
        match_status: MatchStatus,
        account: Option<&AccountRecord>,
        territory: Option<usize>,
    ) -> Decision {
        Decision {
            object: person.object,
            id: person.id.clone(),
            current: person.owner_id.clone(),
            outcome: Outcome::NotRouted,
            rule: String::new(),
            reason: String::new(),
            match_status,
            account_id: account.map(|a| a.id.clone()),
            territory: territory.map(|i| self.policy.territories[i].name.clone()),
            trace: None,
        }
    }

    /// Everything about one record that needs no ledger. Pure, so the matching workers
    /// run it; [`State::complete`] finishes the decision in record order. `keep_match`:
    /// hand the match result on (else it is dropped here).
    pub fn prepare(
        &self,
        person: &'a PersonRecord,
        m: MatchResult,
        keep_match: bool,
    ) -> Prepared<'a> {
        let (subject, territory) = self.subject(person, &m);
        let mut override_at = None;
        let mut pools = PoolRules::default();
        let mut last = None;
        if !person.converted {
            override_at = self.override_window(person, false).ok();
            let mut start = 0;
            loop {
                match self.walk(person, &subject, &m, start, &mut None) {
                    Walked::Done(outcome, rule, why) => {
                        last = Some((outcome, rule, why));
                        break;
                    }
                    Walked::Pool(i, _) => {
                        pools.push(i);
                        if raises_when_unavailable(&self.policy.rules[i]) {
                            break;
                        }
                        start = i + 1;
                    }
                }
            }
        }
        Prepared {
            person,
            match_status: m.status,
            account: subject.account,
            m: keep_match.then_some(m),
            territory,
            override_at,
            pools,
            last,
        }
    }

    /// The ledger-free part of the manual-override check: `Ok(when the owner was set)`
    /// when the window holds, else `Err` with why not (spelled out only for `explain`:
    /// the texts are trace-only and formatting them for every record would dominate a
    /// large plan).
    fn override_window(
        &self,
        person: &PersonRecord,
        explain: bool,
    ) -> Result<DateTime<Utc>, String> {
        let why_not = |f: &dyn Fn() -> String| if explain { f() } else { String::new() };
        let Some(days) = self.policy.settings.manual_override_days else {
            return Err(why_not(&|| {
                "off (settings.manual_override_days not set)".into()
            }));
        };
        let Some(current) = &person.owner_id else {
            return Err(why_not(&|| "not applicable: unowned".into()));
        };
        if !self.is_active(current) {
            return Err(why_not(&|| {
                format!(
                    "not applicable: {} is not active",
                    self.policy.owner_label(current)
                )
            }));
        }
        let Some(at) = person.owner_assigned_at else {
            return Err(why_not(&|| {
                "not applicable: the CRM gives no owner-assigned time".into()
            }));
        };
        let window = Duration::days(i64::from(days));
        if self.now - at > window {
            return Err(why_not(&|| {
                format!(
                    "not applicable: owner set {} is older than {days} days",
                    at.to_rfc3339()
                )
            }));
        }
        Ok(at)
    }

    /// `Ok(why)` when a human's recent owner change must be kept; otherwise `Err` with
    /// why not (spelled out only when `explain` is set).
    fn manual_override(
        &self,
        person: &PersonRecord,
        ledger: &Ledger,
        explain: bool,
    ) -> Result<String, String> {
        let at = self.override_window(person, explain)?;
        self.override_kept(person, at, ledger, explain)
    }

    /// The ledger part of the manual-override check, once the window holds for a change
    /// made `at`: it must not be leadroute's own.
    fn override_kept(
        &self,
        person: &PersonRecord,
        at: DateTime<Utc>,
        ledger: &Ledger,
        explain: bool,
    ) -> Result<String, String> {
        let why_not = |f: &dyn Fn() -> String| if explain { f() } else { String::new() };
        let current = person
            .owner_id
            .as_ref()
            .expect("the override window only holds for owned records");
        let days = self.policy.settings.manual_override_days.unwrap_or(0);
        match ledger.assignment(person.object, &person.id) {
            Some(a) if &a.owner == current => Err(why_not(&|| {
                format!(
                    "not applicable: leadroute assigned {} at {}",
                    self.policy.owner_label(current),
                    a.at.to_rfc3339()
                )
            })),
            Some(a) if at <= a.at => Err(why_not(&|| {
                format!(
                    "not applicable: owner set {} before leadroute's own assignment at {}",
                    at.to_rfc3339(),
                    a.at.to_rfc3339()
                )
            })),
            _ => Ok(format!(
                "kept: {} was set by someone else at {}, within the {days}-day window",
                self.policy.owner_label(current),
                at.to_rfc3339()
            )),
        }
    }

    /// Walk the rules in order from `start`: conditions, then actions, until one settles
    /// the record or a rule needs a pool pick (which needs the ledger).
    fn walk(
        &self,
        person: &PersonRecord,
        subject: &Subject<'a>,
        m: &MatchResult,
        start: usize,
        trace: &mut Option<Box<Trace>>,
    ) -> Walked {
        let policy = self.policy;
        for (index, rule) in policy.rules.iter().enumerate().skip(start) {
            if m.status == MatchStatus::Ambiguous && !Policy::rule_accepts_ambiguous(rule) {
                if let Some(t) = trace.as_mut() {
                    t.rules.push(RuleTrace {
                        name: rule.name.clone(),
                        line: rule.line,
                        conditions: Vec::new(),
                        matched: false,
                        action: rule.action.describe(),
                        outcome: "skipped: the match is ambiguous and this rule has no `match = \"ambiguous\"` condition".into(),
                    });
                }
                continue;
            }
            let matched = rule.conditions.iter().all(|c| policy.holds(c, subject));
            let rule_trace = trace.as_ref().map(|_| RuleTrace {
                name: rule.name.clone(),
                line: rule.line,
                conditions: rule
                    .conditions
                    .iter()
                    .map(|c| policy.trace(c, subject))
                    .collect(),
                matched,
                action: rule.action.describe(),
                outcome: if matched {
                    String::new()
                } else {
                    "conditions do not hold".into()
                },
            });
            if !matched {
                if let (Some(t), Some(rt)) = (trace.as_mut(), rule_trace) {
                    t.rules.push(rt);
                }
                continue;
            }
            let tried = match &rule.action {
                Action::Pool { pool } => match self.sticky(rule, &policy.pools[pool], person) {
                    Some(tried) => tried,
                    None => return Walked::Pool(index, rule_trace),
                },
                _ => self.try_action(rule, person, subject),
            };
            if let Some((outcome, rule, why)) = settle(rule, tried, rule_trace, trace) {
                return Walked::Done(outcome, rule, why);
            }
        }
        // Only ambiguous records get here: every rule (the default included) skipped them.
        let names: Vec<String> = m
            .candidates
            .iter()
            .map(|c| format!("{} ({:.2})", c.account_id, c.score))
            .collect();
        Walked::Done(
            Outcome::Exception {
                exception: "ambiguous_match".into(),
            },
            "(ambiguous)".into(),
            format!(
                "ambiguous match: {}; candidates {}",
                m.reason,
                names.join(", ")
            ),
        )
    }

    /// Every action but a pool pick: they read the record, its account and the roster.
    fn try_action(&self, rule: &Rule, person: &PersonRecord, subject: &Subject<'_>) -> Tried {
        let current = person.owner_id.as_ref();
        let policy = self.policy;
        // The availability check comes first, whoever holds the record now: an inactive
        // owner who already holds it must not keep it (the rule falls through).
        let direct = |target: &OwnerId, via: Via, what: &str| -> Tried {
            match self.can_receive(target) {
                Ok(()) if Some(target) == current => Tried::Owner(
                    target.clone(),
                    None,
                    via,
                    format!("{what} {} already owns it", policy.owner_label(target)),
                ),
                Ok(()) => Tried::Owner(
                    target.clone(),
                    None,
                    via,
                    format!("{what} {}", policy.owner_label(target)),
                ),
                Err(why) => Tried::Unavailable(why),
            }
        };
        match &rule.action {
            Action::AccountOwner => match subject.account {
                None => Tried::Unavailable("no matched account".into()),
                Some(a) => match &a.owner_id {
                    None => Tried::Unavailable(format!("account {} has no owner", a.id)),
                    Some(o) => direct(o, Via::AccountOwner, &format!("owner of account {}:", a.id)),
                },
            },
            Action::Owner { rep } => {
                direct(&policy.reps[rep].owner, Via::NamedOwner, "named owner")
            }
            Action::Queue { queue } => Tried::Owner(
                queue.clone(),
                None,
                Via::Queue,
                format!("queue {}", policy.owner_label(queue)),
            ),
            Action::Keep => match current {
                Some(o) if self.is_active(o) => Tried::Owner(
                    o.clone(),
                    None,
                    Via::Keep,
                    format!("kept {}", policy.owner_label(o)),
                ),
                Some(o) => Tried::Unavailable(format!(
                    "current owner {} is not active",
                    policy.owner_label(o)
                )),
                None => Tried::Unavailable("the record has no owner to keep".into()),
            },
            Action::Exception { kind, reason } => Tried::Exception(
                kind.clone(),
                reason
                    .clone()
                    .unwrap_or_else(|| format!("rule {} raises {kind}", rule.name)),
            ),
            Action::Pool { .. } => unreachable!("pool actions are picked by State::pool_action"),
        }
    }

    /// A sticky rule keeps a current owner who is still an active member of its pool.
    fn sticky(&self, rule: &Rule, pool: &Pool, person: &PersonRecord) -> Option<Tried> {
        let c = person.owner_id.as_ref()?;
        (rule.sticky && pool.member_by_owner(c).is_some() && self.is_active(c)).then(|| {
            Tried::Owner(
                c.clone(),
                Some(pool.name.clone()),
                Via::Sticky,
                format!(
                    "sticky: {} is still an active member of pool {}",
                    self.policy.owner_label(c),
                    pool.name
                ),
            )
        })
    }
}

impl State {
    fn counts(
        &mut self,
        rep_index: usize,
        owner: &OwnerId,
        day: chrono::NaiveDate,
        ledger: &Ledger,
    ) -> (u32, u32) {
        match self.rep_counts[rep_index] {
            Some((d, today, week)) if d == day => (today, week),
            _ => {
                let (today, week) = (
                    ledger.count_on(owner, day),
                    ledger.count_in_week(owner, day),
                );
                self.rep_counts[rep_index] = Some((day, today, week));
                (today, week)
            }
        }
    }

    fn rep_load_of(&mut self, rep_index: usize, owner: &OwnerId) -> u64 {
        *self.rep_load[rep_index].get_or_insert_with(|| self.load.get(owner).copied().unwrap_or(0))
    }

    fn finish(self, policy: &Policy, ledger: &mut Ledger) {
        for (name, slots) in self.dense {
            let Some(pool) = policy.pools.get(&name) else {
                continue;
            };
            let state = ledger.pools.entry(name).or_default();
            for (m, slot) in pool.members.iter().zip(slots) {
                state.members.insert(m.owner.clone(), slot);
            }
        }
    }

    /// The dense state of a pool's members, loaded from the ledger on first use.
    fn dense_state(
        &mut self,
        pool: &Pool,
        ledger: &Ledger,
    ) -> &mut Vec<super::ledger::MemberLedger> {
        // Look up before inserting: `entry` would clone the pool name on every pick.
        if !self.dense.contains_key(&pool.name) {
            let stored = ledger.pools.get(&pool.name);
            let slots = pool
                .members
                .iter()
                .map(|m| {
                    stored
                        .and_then(|p| p.members.get(&m.owner))
                        .cloned()
                        .unwrap_or_default()
                })
                .collect();
            self.dense.insert(pool.name.clone(), slots);
        }
        self.dense
            .get_mut(&pool.name)
            .expect("inserted just above when missing")
    }

    /// Pool members' per-plan facts, computed once per pool per plan.
    fn pool_statics(&mut self, fx: &Fixed<'_>, pool: &Pool) -> std::rc::Rc<Vec<MemberStatic>> {
        if let Some(s) = self.statics.get(&pool.name) {
            return s.clone();
        }
        let list: Vec<MemberStatic> = pool
            .members
            .iter()
            .map(|m| {
                let tz = fx.zone_of(&m.owner, Some(pool));
                let local_day = fx.now.with_timezone(&tz).date_naive();
                let status = match fx.owners.get(&m.owner) {
                    None => Err("not in the mirror's owner list".to_owned()),
                    Some(o) if !o.active => Err("inactive".to_owned()),
                    Some(_) => match fx.policy.reps[&m.rep].availability(Some(pool), tz, fx.now) {
                        Availability::Available => Ok(()),
                        Availability::OutOfOffice(w) | Availability::OffHours(w) => Err(w),
                    },
                };
                MemberStatic {
                    tz,
                    local_day,
                    status,
                    picked: format!(
                        "pool {} ({}) picked {}: {}",
                        pool.name,
                        pool.strategy.as_str(),
                        fx.policy.owner_display(&m.owner),
                        pick_how(pool.strategy)
                    ),
                }
            })
            .collect();
        let rc = std::rc::Rc::new(list);
        self.statics.insert(pool.name.clone(), rc.clone());
        rc
    }

    /// Finish a prepared record in record order: the manual-override and pool checks
    /// that read the ledger, the pool picks, and the ledger update.
    ///
    /// `detail`: fill in [`Decision::account_id`] and [`Decision::territory`]. A plan
    /// reads neither, and cloning them for a million records was a visible part of the
    /// routing thread's time, so plan builders pass `false` (both are then `None`).
    pub fn complete<'a>(
        &mut self,
        fx: &Fixed<'a>,
        prepared: Prepared<'a>,
        ledger: &mut Ledger,
        detail: bool,
    ) -> (Decision, Option<MatchResult>) {
        let Prepared {
            person,
            m,
            match_status,
            account,
            territory,
            override_at,
            pools,
            last,
        } = prepared;
        let (account, territory) = if detail {
            (account, territory)
        } else {
            (None, None)
        };
        let mut decision = fx.skeleton(person, match_status, account, territory);
        let kept = override_at.and_then(|at| fx.override_kept(person, at, ledger, false).ok());
        let (outcome, rule, reason) = if person.converted {
            converted()
        } else if let Some(why) = kept {
            overridden(person, why)
        } else {
            let mut pool_rules = pools.iter();
            let mut last = last;
            let mut next = || match pool_rules.next() {
                Some(i) => Walked::Pool(i, None),
                None => {
                    let (outcome, rule, why) = last
                        .take()
                        .expect("prepare walks on after every pool rule that may find nobody");
                    Walked::Done(outcome, rule, why)
                }
            };
            let first = next();
            self.route(fx, person, first, |_, _| next(), ledger, &mut None)
        };
        decision.outcome = outcome;
        decision.rule = rule;
        decision.reason = reason;
        self.record(fx, person, &decision, ledger);
        (decision, m)
    }

    /// Follow a walk over the rules: pick from each pool rule reached until one settles
    /// the record; `next(i, trace)` walks on from rule `i` when a pool has nobody.
    fn route(
        &mut self,
        fx: &Fixed<'_>,
        person: &PersonRecord,
        first: Walked,
        mut next: impl FnMut(usize, &mut Option<Box<Trace>>) -> Walked,
        ledger: &mut Ledger,
        trace: &mut Option<Box<Trace>>,
    ) -> Routed {
        let mut walked = first;
        loop {
            match walked {
                Walked::Done(outcome, rule, why) => return (outcome, rule, why),
                Walked::Pool(index, rule_trace) => {
                    let rule = &fx.policy.rules[index];
                    let Action::Pool { pool } = &rule.action else {
                        unreachable!("a walk stops at pool rules only");
                    };
                    let tried = self.pool_action(fx, &fx.policy.pools[pool], person, ledger, trace);
                    if let Some(done) = settle(rule, tried, rule_trace, trace) {
                        return done;
                    }
                    walked = next(index + 1, trace);
                }
            }
        }
    }

    /// Count a decided record's change in the ledger and the owners' loads.
    fn record(
        &mut self,
        fx: &Fixed<'_>,
        person: &PersonRecord,
        decision: &Decision,
        ledger: &mut Ledger,
    ) {
        let Some(to) = decision.change() else {
            return;
        };
        ledger.assign(
            person.object,
            &person.id,
            Assignment {
                owner: to.clone(),
                pool: match &decision.outcome {
                    Outcome::Owner { pool, .. } => pool.clone(),
                    _ => None,
                },
                rule: decision.rule.clone(),
                at: fx.now,
            },
        );
        let policy = fx.policy;
        if let Some(l) = policy
            .rep_index_by_owner
            .get(to)
            .and_then(|i| self.rep_load[*i].as_mut())
        {
            *l += 1;
        }
        match self.load.get_mut(to) {
            Some(l) => *l += 1,
            None => {
                self.load.insert(to.clone(), 1);
            }
        }
        if let Some(from) = &decision.current {
            if let Some(l) = self.load.get_mut(from) {
                *l = l.saturating_sub(1);
            }
            if let Some(l) = policy
                .rep_index_by_owner
                .get(from)
                .and_then(|i| self.rep_load[*i].as_mut())
            {
                *l = l.saturating_sub(1);
            }
        }
    }

    /// A pick from a pool (the rule's sticky check has been made): an earlier plan's
    /// pick for the record, else the fair-share pick among members who can take it.
    fn pool_action(
        &mut self,
        fx: &Fixed<'_>,
        pool: &Pool,
        person: &PersonRecord,
        ledger: &mut Ledger,
        trace: &mut Option<Box<Trace>>,
    ) -> Tried {
        let policy = fx.policy;
        // An earlier plan already picked someone for this record: keep that pick while
        // the member is still in the pool and can take records, so re-planning an
        // unapplied plan does not advance the rotation again.
        if let Some(a) = ledger.assignment(person.object, &person.id)
            && a.pool.as_deref() == Some(pool.name.as_str())
            && pool.member_by_owner(&a.owner).is_some()
            && fx.can_receive(&a.owner).is_ok()
        {
            let owner = a.owner.clone();
            return Tried::Owner(
                owner.clone(),
                Some(pool.name.clone()),
                Via::Ledger,
                format!(
                    "pool {}: {} was picked for this record at {}",
                    pool.name,
                    policy.owner_label(&owner),
                    a.at.to_rfc3339()
                ),
            );
        }
        let statics = self.pool_statics(fx, pool);
        let mut contenders: Vec<(usize, Contender<'_>)> = Vec::with_capacity(pool.members.len());
        let mut members_trace = Vec::new();
        for (slot, (m, st)) in pool.members.iter().zip(statics.iter()).enumerate() {
            let needs_counts =
                trace.is_some() || m.cap_per_day.is_some() || m.cap_per_week.is_some();
            let (today, week) = if needs_counts {
                self.counts(m.rep_index, &m.owner, st.local_day, ledger)
            } else {
                (0, 0)
            };
            // Loads only matter to least-loaded pools (and explain).
            let load = if pool.strategy == Strategy::LeastLoaded || trace.is_some() {
                self.rep_load_of(m.rep_index, &m.owner)
            } else {
                0
            };
            if st.status.is_err() && trace.is_none() {
                continue;
            }
            let status: Result<(), String> = match &st.status {
                Err(e) => Err(e.clone()),
                Ok(()) if m.cap_per_day.is_some_and(|c| today >= c) => {
                    Err(format!("daily cap {} reached", m.cap_per_day.unwrap_or(0)))
                }
                Ok(()) if m.cap_per_week.is_some_and(|c| week >= c) => Err(format!(
                    "weekly cap {} reached",
                    m.cap_per_week.unwrap_or(0)
                )),
                Ok(()) => Ok(()),
            };
            if trace.is_some() {
                let ml = self.dense_state(pool, ledger)[slot].clone();
                members_trace.push(MemberTrace {
                    rep: m.rep.clone(),
                    owner: m.owner.to_string(),
                    weight: m.weight,
                    credit: ml.credit as f64 / super::ledger::CREDIT_SCALE as f64,
                    assigned: ml.assigned,
                    today,
                    week,
                    load,
                    time_zone: st.tz.to_string(),
                    status: match &status {
                        Ok(()) => "eligible".into(),
                        Err(e) => e.clone(),
                    },
                });
            }
            if status.is_ok() {
                contenders.push((
                    slot,
                    Contender {
                        owner: &m.owner,
                        weight: m.weight,
                        load,
                    },
                ));
            }
        }
        // Picks before this one, for explain.
        let picks = trace
            .as_ref()
            .map(|_| ledger.pools.get(&pool.name).map_or(0, |p| p.picks));
        let (tried, picked) = if contenders.is_empty() {
            (
                Tried::Unavailable(format!(
                    "pool {}: no member can take a record now",
                    pool.name
                )),
                None,
            )
        } else {
            let least_loaded = pool.strategy == Strategy::LeastLoaded;
            let now = fx.now;
            let slots = self.dense_state(pool, ledger);
            let best = super::ledger::pick_slots(slots, &contenders, least_loaded, now);
            let owner = contenders[best].1.owner.clone();
            match ledger.pools.get_mut(&pool.name) {
                Some(p) => p.picks += 1,
                None => {
                    ledger.pools.insert(
                        pool.name.clone(),
                        super::ledger::PoolLedger {
                            picks: 1,
                            ..Default::default()
                        },
                    );
                }
            }
            let slot = contenders[best].0;
            let local_day = statics[slot].local_day;
            ledger.count_assignment(&owner, local_day);
            if let Some((d, today, week)) = self.rep_counts[pool.members[slot].rep_index].as_mut()
                && *d == local_day
            {
                *today += 1;
                *week += 1;
            }
            // Only explain shows whom the pick chose.
            let picked = trace.is_some().then(|| owner.clone());
            (
                Tried::Owner(
                    owner,
                    Some(pool.name.clone()),
                    Via::Picked,
                    statics[slot].picked.clone(),
                ),
                picked,
            )
        };
        if let Some(t) = trace.as_mut() {
            t.pool = Some(PoolTrace {
                pool: pool.name.clone(),
                strategy: pool.strategy.as_str(),
                picks: picks.unwrap_or(0),
                members: members_trace,
                picked: picked.map(|o| policy.owner_label(&o)),
                how: match &tried {
                    Tried::Owner(_, _, _, why)
                    | Tried::Unavailable(why)
                    | Tried::Exception(_, why) => why.clone(),
                },
            });
        }
        tried
    }
}

#[cfg(test)]
mod tests {
    //! The router's two paths: [`Engine::decide`] (explain, fixtures) and
    //! [`Fixed::prepare`] + [`State::complete`] (plans, on the matching workers) must
    //! give the same decision and leave the same ledger, for any org, policy clock and
    //! ledger history.

    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::reconcile::matching::{Matcher, MatcherConfig};
    use crate::reconcile::synth::{self, OrgSize};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn decide_equals_prepare_then_complete(
            seed in 0u64..1_000_000,
            people in 20usize..300,
            owners in 4usize..24,
            // Any hour of a week: working hours, out-of-office windows and daily caps
            // all turn on the clock.
            hour in 0i64..(24 * 14),
            // A ledger that already routed part of the org (sticky owners, rotation state).
            warm in any::<bool>(),
        ) {
            let size = OrgSize { owners, accounts: (people / 4).max(5), people };
            let snapshot = synth::org(seed, size);
            let (policy, _) = crate::policy::parse("p.toml", &synth::policy_text(owners)).unwrap();
            let base = chrono::Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).single().unwrap();
            let now = base + Duration::hours(hour);
            let matcher = Matcher::new(&snapshot.accounts, &snapshot.owners, &MatcherConfig::default());
            let mut start = Ledger::default();
            if warm {
                crate::reconcile::plan(&snapshot, &policy, &mut start, now - Duration::days(1));
            }

            let mut ledger_a = start.clone();
            let mut a = Engine::new(&policy, &snapshot, now);
            let mut ledger_b = start;
            let mut b = Engine::new(&policy, &snapshot, now);
            let mut people: Vec<&PersonRecord> = snapshot.people.iter().collect();
            people.sort_by(|x, y| (x.object, &x.id).cmp(&(y.object, &y.id)));
            for person in people {
                let m = matcher.match_person(person);
                let one = a.decide(person, &m, &mut ledger_a, false);
                let prepared = b.fixed.prepare(person, m, false);
                let (two, _) = b.state.complete(&b.fixed, prepared, &mut ledger_b, true);
                prop_assert_eq!(&one, &two, "record {}:{}", person.object, person.id);
            }
            a.finish(&mut ledger_a);
            b.finish(&mut ledger_b);
            prop_assert_eq!(ledger_a, ledger_b);
        }
    }
}
