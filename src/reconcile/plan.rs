//! The plan: desired vs actual owners as a list of changes and exceptions, and its
//! renderings (table, JSON, CSV, per-rep deltas). Plan JSON is what `apply --plan` reads.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{CrmKind, ObjectKind, OwnerId, OwnerRecord, RecordId};
use crate::policy::Policy;

/// How owners are shown to people: the policy's rep name, else the CRM's name for the
/// owner, with the id; owners inactive in the CRM are marked.
#[derive(Debug, Clone, Default)]
pub struct OwnerNames {
    /// Owner id → (CRM name, active).
    mirror: HashMap<OwnerId, (String, bool)>,
    /// Owner id → policy label ("alice (123)").
    policy: HashMap<OwnerId, String>,
}

impl OwnerNames {
    pub fn new(policy: Option<&Policy>, owners: &[OwnerRecord]) -> Self {
        OwnerNames {
            mirror: owners
                .iter()
                .map(|o| (o.id.clone(), (o.name.clone(), o.active)))
                .collect(),
            policy: policy
                .map(|p| {
                    p.reps
                        .values()
                        .map(|r| (r.owner.clone(), p.owner_label(&r.owner)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// "alice (123)", "Ann Lee (123)", "Ann Lee (123) [inactive]" or "123".
    pub fn label(&self, owner: &OwnerId) -> String {
        let mirror = self.mirror.get(owner);
        let mut label = match (self.policy.get(owner), mirror) {
            (Some(label), _) => label.clone(),
            (None, Some((name, _))) if !name.trim().is_empty() => format!("{name} ({owner})"),
            _ => owner.to_string(),
        };
        if mirror.is_some_and(|(_, active)| !active) {
            label.push_str(" [inactive]");
        }
        label
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub policy_version: String,
    pub created_at: DateTime<Utc>,
    pub crm: CrmKind,
    pub changes: Vec<PlannedChange>,
    pub exceptions: Vec<PlannedException>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedChange {
    pub object: ObjectKind,
    pub id: RecordId,
    /// Always `"owner"` today.
    pub field: String,
    pub from: Option<OwnerId>,
    pub to: OwnerId,
    pub rule: String,
    pub reason: String,
    pub policy_version: String,
    /// The record's modification stamp when planned (compare-before-write).
    pub record_updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedException {
    pub object: ObjectKind,
    pub id: RecordId,
    /// `ambiguous_match`, `no_eligible_rep`, or a policy exception kind.
    pub kind: String,
    pub rule: String,
    pub reason: String,
}

/// Net change in owned records per owner: gains and losses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepDelta {
    pub owner: String,
    pub gains: u64,
    pub losses: u64,
}

impl RepDelta {
    pub fn net(&self) -> i64 {
        self.gains as i64 - self.losses as i64
    }
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.exceptions.is_empty()
    }

    /// Per-owner gains and losses, labelled with policy rep names where known.
    pub fn rep_deltas(&self, policy: Option<&Policy>) -> Vec<RepDelta> {
        self.rep_deltas_named(&OwnerNames::new(policy, &[]))
    }

    /// Per-owner gains and losses, labelled by `names` (mirror names, inactive marked).
    pub fn rep_deltas_named(&self, names: &OwnerNames) -> Vec<RepDelta> {
        let label = |o: &OwnerId| names.label(o);
        let mut by: BTreeMap<String, RepDelta> = BTreeMap::new();
        for c in &self.changes {
            let to = label(&c.to);
            by.entry(to.clone())
                .or_insert_with(|| RepDelta {
                    owner: to,
                    ..Default::default()
                })
                .gains += 1;
            let from = c
                .from
                .as_ref()
                .map_or_else(|| "(unowned)".to_owned(), label);
            by.entry(from.clone())
                .or_insert_with(|| RepDelta {
                    owner: from,
                    ..Default::default()
                })
                .losses += 1;
        }
        by.into_values().collect()
    }

    /// Changes per rule.
    pub fn by_rule(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for c in &self.changes {
            *m.entry(c.rule.clone()).or_default() += 1;
        }
        m
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a plan always serializes")
    }

    /// One row per change, then one per exception (`to` empty, `kind` set).
    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record([
            "type",
            "object",
            "id",
            "from",
            "to",
            "rule",
            "kind",
            "reason",
            "policy_version",
        ]);
        for c in &self.changes {
            let _ = w.write_record([
                "change",
                c.object.as_str(),
                c.id.as_str(),
                c.from.as_ref().map_or("", |o| o.as_str()),
                c.to.as_str(),
                &c.rule,
                "",
                &c.reason,
                &c.policy_version,
            ]);
        }
        for e in &self.exceptions {
            let _ = w.write_record([
                "exception",
                e.object.as_str(),
                e.id.as_str(),
                "",
                "",
                &e.rule,
                &e.kind,
                &e.reason,
                &self.policy_version,
            ]);
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    /// A human table: summary, per-rep deltas, changes (up to `limit`), exceptions.
    pub fn to_table(&self, policy: Option<&Policy>, limit: usize) -> String {
        self.to_table_named(&OwnerNames::new(policy, &[]), limit)
    }

    /// [`Plan::to_table`] with owners labelled by `names`.
    pub fn to_table_named(&self, names: &OwnerNames, limit: usize) -> String {
        let label = |o: &OwnerId| names.label(o);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "plan for {} at {} (policy {}): {} changes, {} exceptions",
            self.crm,
            self.created_at.to_rfc3339(),
            self.policy_version,
            self.changes.len(),
            self.exceptions.len()
        );
        if !self.changes.is_empty() {
            let _ = writeln!(s, "\nper-rep deltas:");
            let _ = writeln!(
                s,
                "  {:<28} {:>7} {:>7} {:>7}",
                "owner", "gains", "losses", "net"
            );
            for d in self.rep_deltas_named(names) {
                let _ = writeln!(
                    s,
                    "  {:<28} {:>7} {:>7} {:>+7}",
                    d.owner,
                    d.gains,
                    d.losses,
                    d.net()
                );
            }
            let _ = writeln!(s, "\nby rule:");
            for (rule, n) in self.by_rule() {
                let _ = writeln!(s, "  {rule:<28} {n:>7}");
            }
            let _ = writeln!(s, "\nchanges:");
            let _ = writeln!(
                s,
                "  {:<8} {:<20} {:<22} {:<22} {:<18} reason",
                "object", "id", "from", "to", "rule"
            );
            for c in self.changes.iter().take(limit) {
                let from = c
                    .from
                    .as_ref()
                    .map_or_else(|| "(unowned)".to_owned(), label);
                let _ = writeln!(
                    s,
                    "  {:<8} {:<20} {:<22} {:<22} {:<18} {}",
                    c.object.as_str(),
                    c.id.as_str(),
                    from,
                    label(&c.to),
                    c.rule,
                    c.reason
                );
            }
            if self.changes.len() > limit {
                let _ = writeln!(
                    s,
                    "  … {} more (use --format json or csv for all)",
                    self.changes.len() - limit
                );
            }
        }
        if !self.exceptions.is_empty() {
            let _ = writeln!(s, "\nexceptions:");
            for e in self.exceptions.iter().take(limit) {
                let _ = writeln!(
                    s,
                    "  {:<8} {:<20} {:<18} {:<18} {}",
                    e.object.as_str(),
                    e.id.as_str(),
                    e.kind,
                    e.rule,
                    e.reason
                );
            }
            if self.exceptions.len() > limit {
                let _ = writeln!(s, "  … {} more", self.exceptions.len() - limit);
            }
        }
        s
    }
}

#[cfg(test)]
mod owner_name_tests {
    use super::*;
    use crate::domain::OwnerKind;

    fn owner(id: &str, name: &str, active: bool) -> OwnerRecord {
        OwnerRecord {
            id: OwnerId(id.to_owned()),
            kind: OwnerKind::User,
            email: None,
            name: name.to_owned(),
            active,
            teams: Vec::new(),
            time_zone: None,
            manager_id: None,
            user_id: None,
            updated_at: None,
        }
    }

    #[test]
    fn deltas_name_owners_from_the_mirror_and_mark_inactive_ones() {
        let owners = [owner("7", "Ann Lee", true), owner("8", "Bo Ek", false)];
        let names = OwnerNames::new(None, &owners);
        let change = |from: &str, to: &str| PlannedChange {
            object: ObjectKind::Contact,
            id: RecordId("1".into()),
            field: "owner".into(),
            from: Some(OwnerId(from.into())),
            to: OwnerId(to.into()),
            rule: "r".into(),
            reason: "x".into(),
            policy_version: "v".into(),
            record_updated_at: None,
        };
        let plan = Plan {
            policy_version: "v".into(),
            created_at: Utc::now(),
            crm: CrmKind::Hubspot,
            changes: vec![change("8", "7"), change("9", "7")],
            exceptions: Vec::new(),
        };
        let labels: Vec<String> = plan
            .rep_deltas_named(&names)
            .into_iter()
            .map(|d| d.owner)
            .collect();
        assert_eq!(labels, ["9", "Ann Lee (7)", "Bo Ek (8) [inactive]"]);
        assert!(
            plan.to_table_named(&names, 5)
                .contains("Bo Ek (8) [inactive]")
        );
    }
}
