//! Reconciler behaviour: determinism, idempotence, availability, caps, manual overrides,
//! incremental re-planning.

use std::collections::BTreeSet;

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;

use super::matching::MatcherConfig;
use super::synth::{self, OrgSize};
use super::*;
use crate::policy::{self, Availability};

fn synthetic(seed: u64, people: usize) -> (Snapshot, Policy) {
    let size = OrgSize {
        owners: 20,
        accounts: (people / 4).max(10),
        people,
    };
    let snapshot = synth::org(seed, size);
    let (policy, _) = policy::parse("synthetic.toml", &synth::policy_text(size.owners)).unwrap();
    (snapshot, policy)
}

fn owner_is_assignable(
    snapshot: &Snapshot,
    policy: &Policy,
    owner: &OwnerId,
    now: DateTime<Utc>,
) -> bool {
    let active = snapshot.owners.iter().any(|o| &o.id == owner && o.active);
    let ooo = policy.rep_for_owner(owner).is_some_and(|r| {
        let tz = r.zone(None, None);
        r.out_of_office.iter().any(|w| w.contains(now, tz))
    });
    active && !ooo
}

#[test]
fn the_synthetic_policy_is_valid_and_exercises_every_decision_kind() {
    let (snapshot, policy) = synthetic(7, 3000);
    let mut ledger = Ledger::default();
    let plan = plan(&snapshot, &policy, &mut ledger, synth::base_time());
    let rules: BTreeSet<&str> = plan.changes.iter().map(|c| c.rule.as_str()).collect();
    for r in ["enterprise-accounts", "emea", "na", "apac", "default"] {
        assert!(rules.contains(r), "no change by rule {r}: {rules:?}");
    }
    let kinds: BTreeSet<&str> = plan.exceptions.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains("ambiguous_match"), "{kinds:?}");
    assert!(kinds.contains("needs_country"), "{kinds:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn same_inputs_give_the_same_plan_whatever_the_record_order(seed in 0u64..10_000, people in 50usize..400) {
        let (snapshot, policy) = synthetic(seed, people);
        let now = synth::base_time();
        let mut a = Ledger::default();
        let first = plan(&snapshot, &policy, &mut a, now);
        let mut shuffled = snapshot.clone();
        shuffled.people.reverse();
        shuffled.accounts.reverse();
        shuffled.owners.reverse();
        let mut b = Ledger::default();
        let second = plan(&shuffled, &policy, &mut b, now);
        prop_assert_eq!(&first, &second);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn applying_a_plan_and_replanning_changes_nobody(seed in 0u64..10_000, people in 50usize..400, hours in 0i64..200) {
        let (mut snapshot, policy) = synthetic(seed, people);
        let now = synth::base_time() + Duration::hours(hours);
        let mut ledger = Ledger::default();
        let first = plan(&snapshot, &policy, &mut ledger, now);
        synth::apply(&mut snapshot, &first);
        // Same clock: time passing legitimately changes decisions (a manual-override
        // window expires, a rep's shift starts), which is not what this property is about.
        let second = plan(&snapshot, &policy, &mut ledger, now);
        prop_assert!(second.changes.is_empty(), "{:#?}", &second.changes[..second.changes.len().min(5)]);
        prop_assert_eq!(first.exceptions.len(), second.exceptions.len());
    }

    #[test]
    fn nobody_inactive_or_out_of_office_is_ever_assigned(seed in 0u64..10_000, hours in 0i64..400) {
        let (snapshot, policy) = synthetic(seed, 300);
        let now = synth::base_time() + Duration::hours(hours);
        let mut ledger = Ledger::default();
        let plan = plan(&snapshot, &policy, &mut ledger, now);
        for c in &plan.changes {
            prop_assert!(owner_is_assignable(&snapshot, &policy, &c.to, now), "{c:?}");
        }
    }

    #[test]
    fn pool_picks_happen_only_inside_the_reps_working_hours(seed in 0u64..10_000, hours in 0i64..400) {
        let (snapshot, policy) = synthetic(seed, 300);
        let now = synth::base_time() + Duration::hours(hours);
        let matcher = Matcher::new(&snapshot.accounts, &snapshot.owners, &MatcherConfig::default());
        let mut ledger = Ledger::default();
        decide_all(&snapshot, &policy, &matcher, &mut ledger, now, None, |_, d| {
            if let Outcome::Owner { owner, pool: Some(pool), via: Via::Picked } = &d.outcome {
                let rep = policy.rep_for_owner(owner).expect("pool members are reps");
                let pool = &policy.pools[pool];
                let tz = rep.zone(Some(pool), None);
                assert_eq!(rep.availability(Some(pool), tz, now), Availability::Available, "{d:?}");
            }
        });
    }
}

#[test]
fn replanning_an_unapplied_plan_gives_the_same_plan_without_advancing_the_rotation() {
    let (snapshot, policy) = synthetic(11, 500);
    let now = synth::base_time();
    let mut ledger = Ledger::default();
    let first = plan(&snapshot, &policy, &mut ledger, now);
    let pools_after_first = ledger.pools.clone();
    let second = plan(&snapshot, &policy, &mut ledger, now + Duration::minutes(1));
    assert_eq!(first.changes.len(), second.changes.len());
    for (a, b) in first.changes.iter().zip(&second.changes) {
        assert_eq!((&a.id, &a.to), (&b.id, &b.to));
    }
    assert_eq!(pools_after_first, ledger.pools);
}

const SMALL: &str = r#"
[settings]
manual_override_days = 10
[reps.ny]
owner = "1"
time_zone = "America/New_York"
hours = "09:00-17:00"
cap_per_day = 2
[reps.ber]
owner = "2"
time_zone = "Europe/Berlin"
hours = "09:00-17:00"
cap_per_day = 2
[reps.away]
owner = "3"
out_of_office = [{ from = "2026-03-01", to = "2026-03-31" }]
[pools.p]
strategy = "round_robin"
members = ["ny", "ber", "away"]
[default]
action = "pool"
pool = "p"
"#;

fn small_org(n: usize) -> Snapshot {
    let mut s = synth::org(
        3,
        OrgSize {
            owners: 0,
            accounts: 0,
            people: n,
        },
    );
    s.owners = (1..=3)
        .map(|i| crate::domain::OwnerRecord {
            id: OwnerId::new(i.to_string()),
            kind: crate::domain::OwnerKind::User,
            email: None,
            name: format!("o{i}"),
            active: true,
            teams: Vec::new(),
            time_zone: None,
            manager_id: None,
            user_id: None,
            updated_at: None,
        })
        .collect();
    for p in &mut s.people {
        p.owner_id = None;
        p.fields.clear();
        p.country = Some("DE".into());
    }
    s
}

#[test]
fn daily_caps_stop_assignment_and_overflow_becomes_an_exception() {
    let (policy, _) = policy::parse("small", SMALL).unwrap();
    // Monday 2026-03-09 15:00 UTC: Berlin 16:00 (in hours), New York 11:00 (EDT, in hours).
    let now = Utc.with_ymd_and_hms(2026, 3, 9, 15, 0, 0).unwrap();
    let snapshot = small_org(10);
    let mut ledger = Ledger::default();
    let plan = plan(&snapshot, &policy, &mut ledger, now);
    let per_owner = |id: &str| plan.changes.iter().filter(|c| c.to.as_str() == id).count();
    assert_eq!((per_owner("1"), per_owner("2"), per_owner("3")), (2, 2, 0));
    assert_eq!(plan.exceptions.len(), 6);
    assert!(plan.exceptions.iter().all(|e| e.kind == "no_eligible_rep"));
}

#[test]
fn dst_moves_the_new_york_rep_in_and_out_of_hours() {
    let (policy, _) = policy::parse("small", SMALL).unwrap();
    let snapshot = small_org(1);
    // 13:30 UTC: Friday 6 March is 08:30 EST (off), Monday 9 March is 09:30 EDT (on).
    // Berlin is 14:30 both days, so Berlin takes the Friday record.
    let friday = Utc.with_ymd_and_hms(2026, 3, 6, 13, 30, 0).unwrap();
    let monday = Utc.with_ymd_and_hms(2026, 3, 9, 13, 30, 0).unwrap();
    let mut l = Ledger::default();
    assert_eq!(
        plan(&snapshot, &policy, &mut l, friday).changes[0]
            .to
            .as_str(),
        "2"
    );
    // On Monday New York is eligible and goes first (owner id order breaks the tie).
    let mut l = Ledger::default();
    assert_eq!(
        plan(&snapshot, &policy, &mut l, monday).changes[0]
            .to
            .as_str(),
        "1"
    );
}

#[test]
fn a_recent_human_change_is_kept_and_an_old_one_is_re_routed() {
    let text = SMALL.replace("hours = \"09:00-17:00\"\n", "");
    let (policy, _) = policy::parse("small", &text).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
    let mut snapshot = small_org(2);
    // Owner 9 is active but in no pool; a human gave it both records.
    snapshot.owners.push(crate::domain::OwnerRecord {
        id: OwnerId::new("9"),
        name: "human pick".into(),
        ..snapshot.owners[0].clone()
    });
    snapshot.people[0].owner_id = Some(OwnerId::new("9"));
    snapshot.people[0].owner_assigned_at = Some(now - Duration::days(3));
    snapshot.people[1].owner_id = Some(OwnerId::new("9"));
    snapshot.people[1].owner_assigned_at = Some(now - Duration::days(30));
    let mut ledger = Ledger::default();
    let plan = plan(&snapshot, &policy, &mut ledger, now);
    assert_eq!(plan.changes.len(), 1);
    assert_eq!(plan.changes[0].id, snapshot.people[1].id);
    let d = explain(
        &snapshot,
        &policy,
        &ledger,
        now,
        ObjectKind::Contact,
        &snapshot.people[0].id,
    )
    .unwrap();
    assert_eq!(d.rule, "(manual override)");
}

#[test]
fn incremental_replanning_matches_a_full_plan_after_edits() {
    let (mut snapshot, policy) = synthetic(21, 2000);
    let now = synth::base_time();
    let mut ledger = Ledger::default();
    let mut reconciler = Reconciler::default();
    let first = reconciler.full(&snapshot, &policy, &mut ledger, now);
    synth::apply(&mut snapshot, &first);
    let mut dirty = Dirty::default();
    for c in &first.changes {
        dirty.people.insert((c.object, c.id.clone()));
    }
    // Edits: some people move country, an owner leaves, an account changes owner and domain.
    for p in snapshot.people.iter_mut().step_by(97) {
        p.country = Some("SG".into());
        p.email = Some(format!("{}@gmail.com", p.id));
        p.accounts = Some(Vec::new());
        dirty.people.insert((p.object, p.id.clone()));
    }
    let leaver = snapshot.owners[3].id.clone();
    snapshot.owners[3].active = false;
    dirty.owners.insert(leaver);
    let acct = &mut snapshot.accounts[5];
    acct.owner_id = Some(snapshot.owners[0].id.clone());
    acct.domain = Some("renamed.example".into());
    dirty.accounts.insert(acct.id.clone());
    // Records not in the dirty set keep their decisions; both passes start from the
    // same ledger and decide dirty records in the same order.
    let mut full_ledger = ledger.clone();
    let later = now + Duration::minutes(10);
    let incremental = reconciler.replan(&snapshot, &policy, &mut ledger, later, &dirty);
    let full = plan(&snapshot, &policy, &mut full_ledger, later);
    assert!(!full.changes.is_empty());
    assert_eq!(incremental, full);
    assert_eq!(ledger.pools, full_ledger.pools);
}

#[test]
fn a_changed_account_domain_re_decides_people_on_its_subdomains() {
    let (mut snapshot, policy) = synthetic(23, 1200);
    let now = synth::base_time();
    let mut ledger = Ledger::default();
    let mut reconciler = Reconciler::default();
    let first = reconciler.full(&snapshot, &policy, &mut ledger, now);
    synth::apply(&mut snapshot, &first);
    reconciler.full(&snapshot, &policy, &mut ledger, now);
    // A person on a mail subdomain of a domain no account has yet: unmatched by domain.
    let person = &mut snapshot.people[11];
    person.email = Some("jane@mail.newco-example.co.uk".into());
    person.company = None;
    person.website = None;
    person.accounts = Some(Vec::new());
    let key = (person.object, person.id.clone());
    let mut dirty = Dirty::default();
    dirty.people.insert(key.clone());
    let later = now + Duration::minutes(5);
    reconciler.replan(&snapshot, &policy, &mut ledger, later, &dirty);
    // Now an account takes that registrable domain (written as a bare host): only the
    // account is dirty, and the matcher links the person by registrable domain.
    let owner = snapshot.owners[0].id.clone();
    let acct = &mut snapshot.accounts[7];
    acct.domain = Some("WWW.newco-example.co.uk".into());
    acct.website = None;
    acct.extra_domains.clear();
    acct.owner_id = Some(owner);
    let mut dirty = Dirty::default();
    dirty.accounts.insert(acct.id.clone());
    let mut full_ledger = ledger.clone();
    let incremental = reconciler.replan(&snapshot, &policy, &mut ledger, later, &dirty);
    let full = plan(&snapshot, &policy, &mut full_ledger, later);
    assert_eq!(incremental, full);
}

#[test]
fn replanning_changed_people_only_keeps_the_matcher_and_equals_a_full_plan() {
    let (mut snapshot, policy) = synthetic(29, 1500);
    let now = synth::base_time();
    let mut ledger = Ledger::default();
    let mut reconciler = Reconciler::default();
    let first = reconciler.full(&snapshot, &policy, &mut ledger, now);
    synth::apply(&mut snapshot, &first);
    let mut dirty = Dirty::default();
    for c in &first.changes {
        dirty.people.insert((c.object, c.id.clone()));
    }
    for p in snapshot.people.iter_mut().step_by(53) {
        p.country = Some("US".into());
        p.owner_id = None;
        dirty.people.insert((p.object, p.id.clone()));
    }
    let mut full_ledger = ledger.clone();
    let later = now + Duration::minutes(3);
    let incremental = reconciler.replan(&snapshot, &policy, &mut ledger, later, &dirty);
    assert!(reconciler.matcher.is_some());
    let full = plan(&snapshot, &policy, &mut full_ledger, later);
    assert_eq!(incremental, full);
}

/// The plan as if every record were matched first and then decided one by one, with
/// no worker threads: the reference the pipelined pass must reproduce.
fn sequential_reference(snapshot: &Snapshot, policy: &Policy, now: DateTime<Utc>) -> Plan {
    let matcher = Matcher::new(
        &snapshot.accounts,
        &snapshot.owners,
        &MatcherConfig::default(),
    );
    let mut ledger = Ledger::default();
    let mut builder = PlanBuilder::new(snapshot, policy, now);
    let mut engine = Engine::new(policy, snapshot, now);
    for person in ordered(snapshot, None) {
        let m = matcher.match_person(person);
        let d = engine.decide(person, &m, &mut ledger, false);
        builder.add(person, d);
    }
    engine.finish(&mut ledger);
    builder.finish()
}

#[test]
fn a_large_plan_matched_on_worker_threads_equals_the_sequential_plan() {
    // Large enough for several pipelined batches on every worker.
    let (snapshot, policy) = synthetic(11, 6 * PIPE_BATCH + 123);
    let now = synth::base_time();
    let expected = sequential_reference(&snapshot, &policy, now);
    let mut ledger = Ledger::default();
    assert_eq!(plan(&snapshot, &policy, &mut ledger, now), expected);
    let mut ledger = Ledger::default();
    let incremental = Reconciler::default().full(&snapshot, &policy, &mut ledger, now);
    assert_eq!(incremental, expected);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The keyed (and two-core) sort orders records exactly as comparing `(object, id)`
    /// does: ids of every length, shared 8-byte prefixes, NUL bytes, non-ASCII, both
    /// record kinds, duplicates.
    #[test]
    fn records_are_sorted_by_object_and_id_like_a_plain_sort(
        ids in proptest::collection::vec(
            (any::<bool>(), "(00300000|5|[a-c]{0,3})[a-c0-9\u{0}é]{0,12}"),
            0..300,
        ),
        parallel_from in 0usize..400,
    ) {
        let template = synth::org(1, OrgSize { owners: 1, accounts: 1, people: 1 }).people.remove(0);
        let people: Vec<PersonRecord> = ids
            .iter()
            .map(|(lead, id)| {
                let mut p = template.clone();
                p.object = if *lead { ObjectKind::Lead } else { ObjectKind::Contact };
                p.id = RecordId::new(id.clone());
                p
            })
            .collect();
        let refs: Vec<&PersonRecord> = people.iter().collect();
        let mut expected = refs.clone();
        expected.sort_by(|a, b| (a.object, &a.id).cmp(&(b.object, &b.id)));
        let got = sort_keyed(refs, parallel_from);
        let key = |p: &&PersonRecord| (p.object, p.id.clone());
        prop_assert_eq!(
            got.iter().map(key).collect::<Vec<_>>(),
            expected.iter().map(key).collect::<Vec<_>>()
        );
    }
}

/// One edit of the property test below, as the mirror would report it.
#[derive(Debug, Clone)]
enum Edit {
    /// A person moves country and email domain (index into the people, account for the
    /// domain), or drops its owner.
    Person(usize, usize, bool),
    /// A new person at an account's domain, unowned.
    NewPerson(usize),
    /// A person is deleted.
    Delete(usize),
    /// A stale refetch: an older version of a person than the one held.
    Stale(usize),
    /// An account changes owner (owner index) and domain.
    Account(usize, usize),
    /// An owner is deactivated or comes back.
    Owner(usize),
    /// The previous plan's writes land (the records come back with their new owners).
    Writes,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (0usize..1000, 0usize..1000, any::<bool>()).prop_map(|(i, a, d)| Edit::Person(i, a, d)),
        2 => (0usize..1000).prop_map(Edit::NewPerson),
        1 => (0usize..1000).prop_map(Edit::Delete),
        1 => (0usize..1000).prop_map(Edit::Stale),
        1 => (0usize..1000, 0usize..20).prop_map(|(a, o)| Edit::Account(a, o)),
        1 => (0usize..20).prop_map(Edit::Owner),
        2 => Just(Edit::Writes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// A warm mirror patched with the changes of each step, re-planned only for what the
    /// step touched, holds the same records as the edited org and gives the same plan as
    /// a fresh full plan over it, after every step.
    #[test]
    fn incremental_updates_give_the_same_plan_as_a_fresh_full_plan(
        seed in 0u64..1_000,
        steps in proptest::collection::vec(proptest::collection::vec(edit(), 1..6), 1..6),
    ) {
        use leadroute_crm::{Change, Record};
        let (mut truth, _) = synthetic(seed, 300);
        // A least-loaded pool counts the unwritten changes of records decided earlier in
        // the same pass, which a re-decision of a few records cannot see (documented on
        // `Reconciler`); every other kind of pool is compared.
        let text = synth::policy_text(truth.owners.len()).replace("least_loaded", "round_robin");
        let (policy, _) = policy::parse("synthetic.toml", &text).unwrap();
        let mut ledger = Ledger::default();
        let mut now = synth::base_time();
        // A settled org: the first plan's writes have landed.
        let first = plan(&truth, &policy, &mut ledger, now);
        synth::apply(&mut truth, &first);
        let mut warm = Warm::from_snapshot(truth.clone());
        let mut reconciler = Reconciler::default();
        let mut last = reconciler.full_warm(&warm, &policy, &mut ledger, now);
        // What a user sees of a plan: who moves to whom by which rule, which records
        // become exceptions. (A reason names when the ledger made a pick, which a
        // re-decision of an unchanged record words differently.)
        let seen = |p: &Plan| {
            let changes: Vec<_> = p
                .changes
                .iter()
                .map(|c| (c.object, c.id.clone(), c.from.clone(), c.to.clone(), c.rule.clone()))
                .collect();
            let exceptions: Vec<_> = p
                .exceptions
                .iter()
                .map(|e| (e.object, e.id.clone(), e.kind.clone(), e.rule.clone()))
                .collect();
            (changes, exceptions)
        };
        for (step, edits) in steps.iter().enumerate() {
            now += Duration::minutes(1);
            let mut changes = Vec::new();
            let mut dirty = Dirty::default();
            for (n, e) in edits.iter().enumerate() {
                let people = truth.people.len();
                match e.clone() {
                    Edit::Person(i, a, drop_owner) if people > 0 => {
                        let domain = truth.accounts[a % truth.accounts.len()].domain.clone();
                        let p = &mut truth.people[i % people];
                        p.country = Some(["DE", "US", "SG", "FR"][a % 4].into());
                        p.email = domain.map(|d| format!("{}@{d}", p.id));
                        if drop_owner {
                            p.owner_id = None;
                            p.owner_assigned_at = None;
                        }
                        p.updated_at = now;
                        dirty.people.insert((p.object, p.id.clone()));
                        changes.push(Change::Upsert(Record::Person(p.clone())));
                    }
                    Edit::NewPerson(a) => {
                        let mut p = truth.people.first().cloned().unwrap_or_else(|| {
                            synth::org(1, synth::OrgSize { owners: 1, accounts: 1, people: 1 }).people.remove(0)
                        });
                        p.id = RecordId::new(format!("N{step:02}{n:02}"));
                        let domain = truth.accounts[a % truth.accounts.len()].domain.clone();
                        p.email = domain.map(|d| format!("new{step}{n}@{d}"));
                        p.owner_id = None;
                        p.owner_assigned_at = None;
                        p.accounts = Some(Vec::new());
                        p.updated_at = now;
                        truth.people.retain(|q| (q.object, &q.id) != (p.object, &p.id));
                        truth.people.push(p.clone());
                        dirty.people.insert((p.object, p.id.clone()));
                        changes.push(Change::Upsert(Record::Person(p)));
                    }
                    Edit::Delete(i) if people > 0 => {
                        let p = truth.people.remove(i % people);
                        dirty.people.insert((p.object, p.id.clone()));
                        changes.push(Change::Deleted { object: p.object, id: p.id, at: Some(now), purge: false });
                    }
                    Edit::Stale(i) if people > 0 => {
                        let mut p = truth.people[i % people].clone();
                        p.country = Some("ZZ".into());
                        p.updated_at -= Duration::days(400);
                        dirty.people.insert((p.object, p.id.clone()));
                        changes.push(Change::Upsert(Record::Person(p)));
                    }
                    Edit::Account(a, o) => {
                        let owner = truth.owners[o % truth.owners.len()].id.clone();
                        let len = truth.accounts.len();
                        let acct = &mut truth.accounts[a % len];
                        acct.owner_id = Some(owner);
                        acct.domain = Some(format!("moved{step}{n}.example"));
                        acct.updated_at = now;
                        dirty.accounts.insert(acct.id.clone());
                        changes.push(Change::Upsert(Record::Account(acct.clone())));
                    }
                    Edit::Owner(o) => {
                        let len = truth.owners.len();
                        let owner = &mut truth.owners[o % len];
                        owner.active = !owner.active;
                        dirty.owners.insert(owner.id.clone());
                        changes.push(Change::Upsert(Record::Owner(owner.clone())));
                    }
                    Edit::Writes => {
                        for c in &last.changes {
                            if let Some(p) = truth.people.iter_mut().find(|p| (p.object, &p.id) == (c.object, &c.id)) {
                                p.owner_id = Some(c.to.clone());
                                p.owner_assigned_at = Some(now);
                                p.updated_at = now;
                                dirty.people.insert((p.object, p.id.clone()));
                                changes.push(Change::Upsert(Record::Person(p.clone())));
                            }
                        }
                    }
                    _ => {}
                }
            }
            warm.apply(&changes, ApplyMode::Incremental, now);
            let mut expected = truth.people.clone();
            expected.sort_by(|a, b| (a.object, &a.id).cmp(&(b.object, &b.id)));
            let held = warm.to_snapshot();
            prop_assert_eq!(&held.people, &expected);
            prop_assert_eq!(&held.accounts, &truth.accounts);
            prop_assert_eq!(&held.owners, &truth.owners);
            let mut full_ledger = ledger.clone();
            // The sidecar's view: the last whole plan patched with each delta.
            let incremental = match reconciler.replan_delta(&warm, &policy, &mut ledger, now, &dirty) {
                Replanned::Full(plan) => plan,
                Replanned::Delta { plan: part, decided } => {
                    let decided: BTreeSet<Key> = decided.into_iter().collect();
                    let mut view = last.clone();
                    view.created_at = part.created_at;
                    view.changes.retain(|c| !decided.contains(&(c.object, c.id.clone())));
                    view.exceptions.retain(|e| !decided.contains(&(e.object, e.id.clone())));
                    view.changes.extend(part.changes);
                    view.exceptions.extend(part.exceptions);
                    view.changes.sort_by(|a, b| (a.object, &a.id).cmp(&(b.object, &b.id)));
                    view.exceptions.sort_by(|a, b| (a.object, &a.id).cmp(&(b.object, &b.id)));
                    view
                }
            };
            prop_assert_eq!(&incremental, &reconciler.plan_of_all(&warm, &policy, now));
            let full = plan(&truth, &policy, &mut full_ledger, now);
            let (got, want) = (seen(&incremental), seen(&full));
            let differ: Vec<_> = got.0.iter().filter(|c| !want.0.contains(c)).chain(want.0.iter().filter(|c| !got.0.contains(c))).collect();
            prop_assert!(got == want, "step {}: changes that differ {:?}; exceptions {:?} vs {:?}", step, differ, got.1.len(), want.1.len());
            last = incremental;
        }
    }
}
