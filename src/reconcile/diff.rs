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
