//! `policy diff OLD NEW`: shadow-evaluate two policies over the same mirror and count
//! the records whose desired owner differs, by rule and by rep.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ledger::Ledger;
use super::matching::Matcher;
use super::route::{Decision, Outcome};
use crate::domain::Snapshot;
use crate::policy::Policy;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyDiff {
    pub old_version: String,
    pub new_version: String,
    pub records: u64,
    /// Records whose desired outcome (owner or exception) differs.
    pub changed: u64,
    /// Owner changes a plan would make under each policy.
    pub old_plan_changes: u64,
    pub new_plan_changes: u64,
    /// Differing records by the new policy's rule.
    pub by_rule: BTreeMap<String, u64>,
    /// Per rep: records gained and lost going from old to new.
    pub by_rep: BTreeMap<String, (u64, u64)>,
    /// Up to 20 example records: (record, old outcome, new outcome).
    pub samples: Vec<(String, String, String)>,
}

fn outcome_label(policy: &Policy, d: &Decision) -> String {
    match &d.outcome {
        Outcome::Owner { owner, .. } => policy.owner_label(owner),
        Outcome::Exception { exception } => format!("exception: {exception}"),
        Outcome::NotRouted => "(not routed)".into(),
    }
}

/// Compare two policies over the snapshot; the ledger is not modified.
pub fn diff(
    snapshot: &Snapshot,
    old: &Policy,
    new: &Policy,
    ledger: &Ledger,
    now: DateTime<Utc>,
) -> PolicyDiff {
    // Each policy matches with its own duplicate tie-breakers; one matcher when equal.
    let matcher_for = |p: &Policy| {
        Matcher::new(
            &snapshot.accounts,
            &snapshot.owners,
            &p.settings.matcher_config(),
        )
    };
    let matcher = matcher_for(old);
    let new_matcher =
        (new.settings.matcher_config() != old.settings.matcher_config()).then(|| matcher_for(new));
    let mut before = Vec::with_capacity(snapshot.people.len());
    let mut scratch = ledger.clone();
    let mut d = PolicyDiff {
        old_version: old.version.clone(),
        new_version: new.version.clone(),
        ..Default::default()
    };
    super::decide_all(
        snapshot,
        old,
        &matcher,
        &mut scratch,
        now,
        None,
        |_, dec| {
            before.push(dec);
        },
    );
    let mut scratch = ledger.clone();
    let mut i = 0;
    super::decide_all(
        snapshot,
        new,
        new_matcher.as_ref().unwrap_or(&matcher),
        &mut scratch,
        now,
        None,
        |_, after| {
            let b = &before[i];
            i += 1;
            d.records += 1;
            d.old_plan_changes += u64::from(b.change().is_some());
            d.new_plan_changes += u64::from(after.change().is_some());
            if b.outcome == after.outcome
                || (b.desired().is_some() && b.desired() == after.desired())
            {
                return;
            }
            d.changed += 1;
            *d.by_rule.entry(after.rule.clone()).or_default() += 1;
            if let Some(o) = after.desired() {
                d.by_rep.entry(new.owner_label(o)).or_default().0 += 1;
            }
            if let Some(o) = b.desired() {
                d.by_rep.entry(old.owner_label(o)).or_default().1 += 1;
            }
            if d.samples.len() < 20 {
                d.samples.push((
                    format!("{}:{}", after.object, after.id),
                    outcome_label(old, b),
                    outcome_label(new, &after),
                ));
            }
        },
    );
    d
}

impl PolicyDiff {
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "policy {} → {}: {} of {} records would get a different owner or outcome",
            self.old_version, self.new_version, self.changed, self.records
        );
        let _ = writeln!(
            s,
            "plan size: {} owner changes today → {} under the new policy",
            self.old_plan_changes, self.new_plan_changes
        );
        if !self.by_rule.is_empty() {
            let _ = writeln!(s, "\nby rule (new policy):");
            for (r, n) in &self.by_rule {
                let _ = writeln!(s, "  {r:<28} {n:>8}");
            }
            let _ = writeln!(
                s,
                "\nby rep:\n  {:<28} {:>8} {:>8} {:>8}",
                "rep", "gains", "losses", "net"
            );
            for (r, (g, l)) in &self.by_rep {
                let _ = writeln!(s, "  {r:<28} {g:>8} {l:>8} {:>+8}", *g as i64 - *l as i64);
            }
            let _ = writeln!(s, "\nexamples:");
            for (rec, a, b) in &self.samples {
                let _ = writeln!(s, "  {rec:<30} {a} → {b}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy;
    use crate::reconcile::synth::{self, OrgSize};

    const NA_POOL: &str =
        "name = \"na\"\nwhen = [{ territory = \"na\" }]\naction = \"pool\"\npool = \"na\"\n";
    const NA_TO_R1: &str =
        "name = \"na\"\nwhen = [{ territory = \"na\" }]\naction = \"owner\"\nrep = \"r1\"\n";

    fn org() -> (Snapshot, Policy, Policy) {
        let size = OrgSize {
            owners: 12,
            accounts: 150,
            people: 600,
        };
        let snapshot = synth::org(11, size);
        let text = synth::policy_text(size.owners);
        assert!(text.contains(NA_POOL), "the synthetic policy changed shape");
        let (old, _) = policy::parse("old.toml", &text).unwrap();
        let (new, _) = policy::parse("new.toml", &text.replace(NA_POOL, NA_TO_R1)).unwrap();
        (snapshot, old, new)
    }

    #[test]
    fn the_same_policy_twice_changes_nothing_and_counts_the_plan() {
        let (snapshot, old, _) = org();
        let now = synth::base_time();
        let d = diff(&snapshot, &old, &old, &Ledger::default(), now);
        let plan = crate::reconcile::plan(&snapshot, &old, &mut Ledger::default(), now);
        assert_eq!(d.records, snapshot.people.len() as u64);
        assert_eq!(d.changed, 0);
        assert!(d.by_rule.is_empty() && d.by_rep.is_empty() && d.samples.is_empty());
        assert_eq!(d.old_plan_changes, plan.changes.len() as u64);
        assert_eq!(d.new_plan_changes, plan.changes.len() as u64);
    }

    #[test]
    fn sending_one_territory_to_one_rep_moves_exactly_that_territorys_records_to_them() {
        let (snapshot, old, new) = org();
        let now = synth::base_time();
        let ledger = Ledger::default();
        let d = diff(&snapshot, &old, &new, &ledger, now);
        let r1 = new.owner_label(&leadroute_crm::OwnerId::new("1001"));

        assert!(d.changed > 10, "{d:?}");
        // Only the edited rule moves records, and every move goes to r1.
        assert_eq!(d.by_rule.keys().collect::<Vec<_>>(), vec!["na"], "{d:?}");
        assert_eq!(d.by_rule["na"], d.changed);
        assert_eq!(d.by_rep[&r1].0, d.changed, "{:?}", d.by_rep);
        let gained_elsewhere: u64 = d
            .by_rep
            .iter()
            .filter(|(rep, _)| **rep != r1)
            .map(|(_, (gained, _))| gained)
            .sum();
        assert_eq!(gained_elsewhere, 0, "{:?}", d.by_rep);
        // Losses are the pool members' (r1 loses nothing it keeps).
        let lost: u64 = d.by_rep.values().map(|(_, lost)| lost).sum();
        assert!(lost <= d.changed && lost > 0, "{:?}", d.by_rep);
        assert_eq!(d.samples.len() as u64, d.changed.min(20));
        for (_, before, after) in &d.samples {
            assert_eq!(after, &r1);
            assert_ne!(before, &r1);
        }
        // The plan counts are what each policy's plan would do on its own.
        let old_plan = crate::reconcile::plan(&snapshot, &old, &mut ledger.clone(), now);
        let new_plan = crate::reconcile::plan(&snapshot, &new, &mut ledger.clone(), now);
        assert_eq!(d.old_plan_changes, old_plan.changes.len() as u64);
        assert_eq!(d.new_plan_changes, new_plan.changes.len() as u64);
        // The table names both versions and the count.
        let table = d.to_table();
        assert!(
            table.contains(&format!("{} of {} records", d.changed, d.records)),
            "{table}"
        );
    }
}
