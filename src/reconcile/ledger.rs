//! The assignment ledger: fair-share position per pool, per-rep daily counts and the last
//! assignment leadroute made per record. Pure data; `store::ledger` persists it.
//!
//! Fairness is a credit scheme keyed by owner id, never by list position (smooth
//! weighted round robin, normalised): at every pick each eligible member earns its share
//! `weight / total eligible weight` of one record, and the member picked pays one. A
//! member's credit is therefore exactly its
//! entitlement (the shares it earned while eligible) minus what it received. Among the
//! members owed something, the one whose credit would reach a whole record soonest goes
//! next (earliest deadline), which keeps everyone within one assignment of their share. A member who joins starts at zero credit, so
//! nobody else loses their place or share; a member who is away (leave, off hours, cap)
//! earns nothing and keeps its credit, so it returns without a burst of "owed" records.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use rustc_hash::FxHashMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{ObjectKind, OwnerId, RecordId};

/// Credits are fixed-point: this many units make one record.
pub const CREDIT_SCALE: i64 = 1_000_000_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub pools: BTreeMap<String, PoolLedger>,
    /// Assignments per rep per local calendar day (the rep's own zone), for caps.
    pub daily: BTreeMap<OwnerId, BTreeMap<NaiveDate, u32>>,
    /// The last owner leadroute chose for each record.
    /// (Fx-hashed: a large plan inserts hundreds of thousands of keys, and SipHash was a
    /// visible part of routing; no output depends on the maps' iteration order.)
    #[serde(with = "assignments_as_list")]
    pub assignments: FxHashMap<(ObjectKind, RecordId), Assignment>,
    /// Records assigned since the ledger was loaded, in assignment order and possibly
    /// more than once: what `Store::save_ledger` writes (see [`Ledger::touched_keys`]).
    /// A list, not a set: a large plan pushes hundreds of thousands of keys, and a
    /// second hash insert per change was a visible part of routing.
    #[serde(skip)]
    pub touched: Vec<(ObjectKind, RecordId)>,
}

/// A record key that can be looked up without cloning the id: `(ObjectKind, RecordId)`
/// keys borrow as `dyn RecordKey`, and so does `(ObjectKind, &RecordId)`.
trait RecordKey {
    fn key(&self) -> (ObjectKind, &RecordId);
}

impl RecordKey for (ObjectKind, RecordId) {
    fn key(&self) -> (ObjectKind, &RecordId) {
        (self.0, &self.1)
    }
}

impl RecordKey for (ObjectKind, &RecordId) {
    fn key(&self) -> (ObjectKind, &RecordId) {
        (self.0, self.1)
    }
}

impl<'a> Borrow<dyn RecordKey + 'a> for (ObjectKind, RecordId) {
    fn borrow(&self) -> &(dyn RecordKey + 'a) {
        self
    }
}

// Hash and equality must agree with the owned tuple's: `&RecordId` hashes as `RecordId`.
impl Hash for dyn RecordKey + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialEq for dyn RecordKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for dyn RecordKey + '_ {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolLedger {
    /// Picks made in this pool, ever.
    pub picks: u64,
    pub members: BTreeMap<OwnerId, MemberLedger>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberLedger {
    /// Entitlement minus assignments, in billionths of a record ([`CREDIT_SCALE`]).
    pub credit: i64,
    /// Real picks in this pool, ever.
    pub assigned: u64,
    pub last_assigned_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub owner: OwnerId,
    pub pool: Option<String>,
    pub rule: String,
    pub at: DateTime<Utc>,
}

mod assignments_as_list {
    use super::*;
    use serde::{Deserializer, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Entry {
        object: ObjectKind,
        id: RecordId,
        #[serde(flatten)]
        assignment: Assignment,
    }

    pub(super) fn serialize<S: Serializer>(
        map: &FxHashMap<(ObjectKind, RecordId), Assignment>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<_> = map.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        s.collect_seq(entries.into_iter().map(|((object, id), a)| Entry {
            object: *object,
            id: id.clone(),
            assignment: a.clone(),
        }))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<FxHashMap<(ObjectKind, RecordId), Assignment>, D::Error> {
        let entries = Vec::<Entry>::deserialize(d)?;
        Ok(entries
            .into_iter()
            .map(|e| ((e.object, e.id), e.assignment))
            .collect())
    }
}

/// A member as the picker sees it: identity, weight, and whether it may take a record.
#[derive(Debug, Clone)]
pub struct Contender<'a> {
    pub owner: &'a OwnerId,
    pub weight: u32,
    /// Records currently owned (least-loaded only).
    pub load: u64,
}

/// Compare `a_num / a_den` with `b_num / b_den` exactly.
fn cmp_frac(a_num: u64, a_den: u64, b_num: u64, b_den: u64) -> Ordering {
    (u128::from(a_num) * u128::from(b_den)).cmp(&(u128::from(b_num) * u128::from(a_den)))
}

impl PoolLedger {
    /// Choose among eligible contenders (non-empty) and record the pick. `least_loaded`
    /// orders by load per weight first and uses the rotation only to break ties.
    pub fn pick(
        &mut self,
        contenders: &[Contender<'_>],
        least_loaded: bool,
        at: DateTime<Utc>,
    ) -> OwnerId {
        let mut slots: Vec<MemberLedger> = contenders
            .iter()
            .map(|c| self.members.get(c.owner).cloned().unwrap_or_default())
            .collect();
        let indexed: Vec<(usize, Contender<'_>)> = contenders.iter().cloned().enumerate().collect();
        let best = pick_slots(&mut slots, &indexed, least_loaded, at);
        for (c, m) in contenders.iter().zip(slots) {
            self.members.insert(c.owner.clone(), m);
        }
        self.picks += 1;
        contenders[best].owner.clone()
    }
}

/// The fair-share pick over dense member state: `slots[i]` is the state of the member
/// that `contenders` refer to by index. Credits every contender its share, charges the
/// winner one record, and returns the winner's position in `contenders`. The caller
/// counts the pick in its pool (`PoolLedger::picks`).
pub fn pick_slots(
    slots: &mut [MemberLedger],
    contenders: &[(usize, Contender<'_>)],
    least_loaded: bool,
    at: DateTime<Utc>,
) -> usize {
    let total: i64 = contenders.iter().map(|(_, c)| i64::from(c.weight)).sum();
    // Each eligible member earns its share of this one record. Pools have few distinct
    // weights (often one), so the division is reused while the weight repeats.
    let (mut last_weight, mut share) = (None, 0);
    for (slot, c) in contenders {
        if last_weight != Some(c.weight) {
            last_weight = Some(c.weight);
            share = i64::from(c.weight) * CREDIT_SCALE / total;
        }
        slots[*slot].credit += share;
    }
    // Earliest deadline first among members owed something (credit > 0): the member
    // whose credit would reach a whole record soonest, `(1 - credit) / weight`, goes next.
    // Plain "largest credit" can drift slightly past one record of lag; this keeps every
    // member within one record of its share (Tijdeman's chairman-assignment rule).
    let deadline_cmp = |i: usize, j: usize| {
        let ((si, a), (sj, b)) = (&contenders[i], &contenders[j]);
        let di = i128::from(CREDIT_SCALE - slots[*si].credit) * i128::from(b.weight);
        let dj = i128::from(CREDIT_SCALE - slots[*sj].credit) * i128::from(a.weight);
        di.cmp(&dj)
    };
    let best = (0..contenders.len())
        .filter(|&i| least_loaded || slots[contenders[i].0].credit > 0)
        .min_by(|&i, &j| {
            let ((si, a), (sj, b)) = (&contenders[i], &contenders[j]);
            let by_load = if least_loaded {
                cmp_frac(a.load, u64::from(a.weight), b.load, u64::from(b.weight))
            } else {
                Ordering::Equal
            };
            by_load
                .then_with(|| deadline_cmp(i, j))
                .then_with(|| slots[*sj].credit.cmp(&slots[*si].credit))
                .then_with(|| a.owner.cmp(b.owner))
        })
        .or_else(|| (0..contenders.len()).max_by_key(|&i| slots[contenders[i].0].credit))
        .expect("pick is only called with at least one contender");
    let m = &mut slots[contenders[best].0];
    m.credit -= CREDIT_SCALE;
    m.assigned += 1;
    m.last_assigned_at = Some(at);
    best
}

impl Ledger {
    pub fn count_on(&self, owner: &OwnerId, day: NaiveDate) -> u32 {
        self.daily
            .get(owner)
            .and_then(|d| d.get(&day))
            .copied()
            .unwrap_or(0)
    }

    /// Assignments in the ISO week (Monday to Sunday) containing `day`.
    pub fn count_in_week(&self, owner: &OwnerId, day: NaiveDate) -> u32 {
        let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
        let sunday = monday + Duration::days(6);
        self.daily
            .get(owner)
            .map(|d| d.range(monday..=sunday).map(|(_, n)| *n).sum())
            .unwrap_or(0)
    }

    pub fn count_assignment(&mut self, owner: &OwnerId, day: NaiveDate) {
        // Look up before inserting: `entry` would clone the owner id on every pick.
        match self.daily.get_mut(owner) {
            Some(days) => *days.entry(day).or_default() += 1,
            None => {
                self.daily.insert(owner.clone(), BTreeMap::from([(day, 1)]));
            }
        }
    }

    /// Forget daily counts older than two weeks before `today`: no cap looks further back.
    pub fn prune(&mut self, today: NaiveDate) {
        let horizon = today - Duration::days(14);
        for days in self.daily.values_mut() {
            days.retain(|d, _| *d >= horizon);
        }
        self.daily.retain(|_, d| !d.is_empty());
    }

    /// Record leadroute's choice of owner for a record.
    pub fn assign(&mut self, object: ObjectKind, id: &RecordId, assignment: Assignment) {
        self.assignments.insert((object, id.clone()), assignment);
        self.touched.push((object, id.clone()));
    }

    /// The records assigned since the ledger was loaded, each once, in key order.
    pub fn touched_keys(&self) -> Vec<&(ObjectKind, RecordId)> {
        let mut keys: Vec<&(ObjectKind, RecordId)> = self.touched.iter().collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// What a save needs of the assignments made since the last delta: the pools and
    /// daily counts (small) and only the touched records' assignments. Clears
    /// `touched`, so a long-lived ledger (the sidecar's) hands on O(changed) per
    /// micro-batch instead of cloning and re-saving every assignment it ever made.
    pub fn take_delta(&mut self) -> Ledger {
        let touched = std::mem::take(&mut self.touched);
        let assignments = touched
            .iter()
            .filter_map(|k| self.assignments.get(k).map(|a| (k.clone(), a.clone())))
            .collect();
        Ledger {
            pools: self.pools.clone(),
            daily: self.daily.clone(),
            assignments,
            touched,
        }
    }

    /// Adds a later [`Ledger::take_delta`] to this one (deltas waiting to be saved
    /// together): its pools and daily counts are newer, its assignments join.
    pub fn absorb(&mut self, later: Ledger) {
        self.pools = later.pools;
        self.daily = later.daily;
        self.assignments.extend(later.assignments);
        self.touched.extend(later.touched);
    }

    pub fn assignment(&self, object: ObjectKind, id: &RecordId) -> Option<&Assignment> {
        // Borrowed as `dyn RecordKey`: no clone of the id per lookup.
        self.assignments.get(&(object, id) as &dyn RecordKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn owners(n: usize) -> Vec<OwnerId> {
        (0..n).map(|i| OwnerId::new(format!("o{i:02}"))).collect()
    }

    #[test]
    fn a_delta_holds_only_what_was_assigned_since_the_last_and_deltas_join() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let assignment = |o: &str| Assignment {
            owner: OwnerId::new(o),
            pool: None,
            rule: "r".into(),
            at,
        };
        let mut ledger = Ledger::default();
        ledger.assign(ObjectKind::Contact, &RecordId::new("1"), assignment("a"));
        ledger.assign(ObjectKind::Contact, &RecordId::new("2"), assignment("b"));
        let mut first = ledger.take_delta();
        assert_eq!(first.assignments.len(), 2);
        assert!(ledger.touched.is_empty());
        ledger.assign(ObjectKind::Contact, &RecordId::new("3"), assignment("c"));
        let second = ledger.take_delta();
        assert_eq!(second.assignments.len(), 1);
        assert_eq!(
            ledger.assignments.len(),
            3,
            "the ledger itself keeps everything"
        );
        first.absorb(second);
        assert_eq!(first.touched_keys().len(), 3);
    }

    /// Run `n` picks; track each member's count and entitlement (share earned while in the set).
    fn run(
        pool: &mut PoolLedger,
        members: &[(OwnerId, u32)],
        n: usize,
        tally: &mut BTreeMap<OwnerId, (u64, f64)>,
    ) {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let total: u32 = members.iter().map(|(_, w)| *w).sum();
        for _ in 0..n {
            let cs: Vec<Contender<'_>> = members
                .iter()
                .map(|(o, w)| Contender {
                    owner: o,
                    weight: *w,
                    load: 0,
                })
                .collect();
            for (o, w) in members {
                tally.entry(o.clone()).or_default().1 += f64::from(*w) / f64::from(total);
            }
            let o = pool.pick(&cs, false, at);
            tally.entry(o).or_default().0 += 1;
        }
    }

    fn assert_fair(tally: &BTreeMap<OwnerId, (u64, f64)>) {
        for (o, (got, entitled)) in tally {
            assert!(
                (*got as f64 - entitled).abs() < 1.0 + 1e-6,
                "{o}: got {got}, entitled to {entitled:.3} ({tally:?})"
            );
        }
    }

    #[test]
    fn equal_weights_take_strict_turns_in_owner_id_order() {
        let os = owners(3);
        let members: Vec<_> = os.iter().map(|o| (o.clone(), 1)).collect();
        let mut pool = PoolLedger::default();
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let picks: Vec<String> = (0..6)
            .map(|_| {
                let cs: Vec<_> = members
                    .iter()
                    .map(|(o, w)| Contender {
                        owner: o,
                        weight: *w,
                        load: 0,
                    })
                    .collect();
                pool.pick(&cs, false, at).0
            })
            .collect();
        assert_eq!(picks, ["o00", "o01", "o02", "o00", "o01", "o02"]);
    }

    #[test]
    fn a_record_assigned_twice_is_saved_once_with_its_last_assignment() {
        let mut ledger = Ledger::default();
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let assignment = |owner: &str| Assignment {
            owner: OwnerId::new(owner),
            pool: Some("inbound".into()),
            rule: "r".into(),
            at,
        };
        let (a, b) = (RecordId::new("c2"), RecordId::new("c1"));
        ledger.assign(ObjectKind::Contact, &a, assignment("o1"));
        ledger.assign(ObjectKind::Contact, &b, assignment("o1"));
        ledger.assign(ObjectKind::Contact, &a, assignment("o2"));
        let keys = ledger.touched_keys();
        assert_eq!(
            keys,
            [
                &(ObjectKind::Contact, b.clone()),
                &(ObjectKind::Contact, a.clone())
            ]
        );
        assert_eq!(
            ledger
                .assignment(ObjectKind::Contact, &a)
                .map(|x| x.owner.as_str()),
            Some("o2")
        );
        assert_eq!(ledger.assignment(ObjectKind::Lead, &a), None);
    }

    proptest! {
        #[test]
        fn every_prefix_of_a_long_run_is_within_one_assignment_of_target_share(
            weights in proptest::collection::vec(1u32..6, 1..8),
            n in 1usize..2000,
        ) {
            let os = owners(weights.len());
            let members: Vec<_> = os.into_iter().zip(weights).collect();
            let mut pool = PoolLedger::default();
            let mut tally = BTreeMap::new();
            for step in [n / 3, n / 3, n - 2 * (n / 3)] {
                run(&mut pool, &members, step, &mut tally);
                assert_fair(&tally);
            }
        }

        #[test]
        fn adding_and_removing_reps_keeps_everyone_elses_share(
            weights in proptest::collection::vec(1u32..5, 2..7),
            warmup in 0usize..500,
            n in 1usize..1500,
        ) {
            let os = owners(weights.len() + 1);
            let mut members: Vec<_> = os[..weights.len()].iter().cloned().zip(weights.clone()).collect();
            let mut pool = PoolLedger::default();
            let mut tally = BTreeMap::new();
            run(&mut pool, &members, warmup, &mut tally);
            // Roster edit: the first rep leaves, a new rep joins; everyone's lifetime
            // count stays within one of what they earned while they were in the pool.
            members.remove(0);
            members.push((os[weights.len()].clone(), 2));
            run(&mut pool, &members, n, &mut tally);
            assert_fair(&tally);
        }
    }
}
