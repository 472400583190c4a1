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
