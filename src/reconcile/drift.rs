//! The drift report: every record's actual owner against the policy's desired owner.
//!
//! Categories (a record can be in several): wrong owner, unowned, inactive owner, owner
//! outside the record's territory, unmatched, ambiguous, manual override kept, exception.
//! Counts by category, rule, territory and rep, with sample records; rendered as
//! Markdown, HTML (inline SVG bar chart), CSV (one row per drifting record) and JSON.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ledger::Ledger;
use super::matching::{MatchStatus, Matcher};
use super::route::{Decision, Outcome, Via};
use crate::domain::{
    AccountRecord, CrmKind, OwnerId, OwnerRecord, PersonRecord, RecordId, Snapshot,
};
use crate::policy::{Policy, Subject};

/// Report categories in display order.
pub const CATEGORIES: [&str; 8] = [
    "wrong_owner",
    "unowned",
    "inactive_owner",
    "outside_territory",
    "unmatched",
    "ambiguous",
    "manual_override_kept",
    "exception",
];

const SAMPLES: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftReport {
    pub generated_at: DateTime<Utc>,
    pub policy_version: String,
    pub crm: CrmKind,
    pub records: u64,
    /// Records whose owner is what the policy wants and that are in no category.
    pub in_policy: u64,
    /// Records a plan would give another owner. Zero is compliance, even when some
    /// records are listed for other reasons (unmatched, exceptions).
    pub would_change: u64,
    pub categories: BTreeMap<String, u64>,
    pub by_rule: BTreeMap<String, Tally>,
    pub by_territory: BTreeMap<String, Tally>,
    pub by_rep: BTreeMap<String, RepTally>,
    pub samples: BTreeMap<String, Vec<DriftRow>>,
    /// Every drifting record (CSV output); not in JSON to keep it small.
    #[serde(skip)]
    pub rows: Vec<DriftRow>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub records: u64,
    pub drifted: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepTally {
    /// Records the rep owns now.
    pub owned: u64,
    /// Of those, records the policy would give someone else.
    pub should_lose: u64,
    /// Records the policy would give this rep that someone else owns (or nobody).
    pub should_gain: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftRow {
    pub categories: Vec<&'static str>,
    pub object: String,
    pub id: String,
    pub current: String,
    pub desired: String,
    pub rule: String,
    pub territory: String,
    pub reason: String,
}

struct Builder<'a> {
    policy: &'a Policy,
    names: super::OwnerNames,
    owners: HashMap<&'a OwnerId, &'a OwnerRecord>,
    accounts: HashMap<&'a RecordId, &'a AccountRecord>,
    report: DriftReport,
}

impl<'a> Builder<'a> {
    fn label(&self, o: Option<&OwnerId>) -> String {
        o.map_or_else(|| "(none)".to_owned(), |o| self.names.label(o))
    }

    fn add(&mut self, person: &PersonRecord, d: &Decision) {
        if matches!(d.outcome, Outcome::NotRouted) {
            return;
        }
        self.report.records += 1;
        let mut cats: Vec<&'static str> = Vec::new();
        let current = d.current.as_ref();
        let active = current.is_some_and(|o| self.owners.get(o).is_some_and(|r| r.active));
        match current {
            None => cats.push("unowned"),
            Some(_) if !active => cats.push("inactive_owner"),
            Some(_) => {}
        }
        if active && d.change().is_some() {
            cats.push("wrong_owner");
        }
        let subject = Subject::new(
            person,
            d.account_id
                .as_ref()
                .and_then(|a| self.accounts.get(a).copied()),
            d.match_status,
        );
        let with_reps: Vec<&crate::policy::Territory> = self
            .policy
            .territories
            .iter()
            .filter(|t| !t.reps.is_empty() && t.contains(&subject))
            .collect();
        // An owner the policy wants is in policy, whatever the territory's rep list.
        let wanted = matches!(&d.outcome, Outcome::Owner { owner, .. } if Some(owner) == current);
        if let Some(c) = current
            && active
            && !wanted
            && !with_reps.is_empty()
        {
            let covered = with_reps
                .iter()
                .any(|t| t.reps.iter().any(|r| &self.policy.reps[r].owner == c));
            if !covered {
                cats.push("outside_territory");
            }
        }
        match d.match_status {
            MatchStatus::Unmatched => cats.push("unmatched"),
            MatchStatus::Ambiguous => cats.push("ambiguous"),
            MatchStatus::Matched => {}
        }
        if matches!(
            d.outcome,
            Outcome::Owner {
                via: Via::ManualOverride,
                ..
            }
        ) {
            cats.push("manual_override_kept");
        }
        if matches!(d.outcome, Outcome::Exception { .. }) {
            cats.push("exception");
        }
        // "Drifted" means the owner is not what the policy wants (or nobody can say).
        let drifted =
            d.change().is_some() || matches!(d.outcome, Outcome::Exception { .. }) || !active;
        self.report.would_change += u64::from(d.change().is_some());
        let territory = d.territory.clone().unwrap_or_else(|| "(none)".into());
        let rule = self.report.by_rule.entry(d.rule.clone()).or_default();
        rule.records += 1;
        rule.drifted += u64::from(drifted);
        let terr = self
            .report
            .by_territory
            .entry(territory.clone())
            .or_default();
        terr.records += 1;
        terr.drifted += u64::from(drifted);
        if let Some(c) = current {
            let t = self.report.by_rep.entry(self.label(Some(c))).or_default();
            t.owned += 1;
            t.should_lose += u64::from(d.change().is_some());
        }
        if let Some(to) = d.change() {
            self.report
                .by_rep
                .entry(self.label(Some(to)))
                .or_default()
                .should_gain += 1;
        }
        for c in &cats {
            *self.report.categories.entry((*c).to_owned()).or_default() += 1;
        }
        if cats.is_empty() {
            self.report.in_policy += 1;
            return;
        }
        let row = DriftRow {
            categories: cats.clone(),
            object: d.object.to_string(),
            id: d.id.to_string(),
            current: self.label(current),
            desired: match &d.outcome {
                Outcome::Owner { owner, .. } => self.names.label(owner),
                Outcome::Exception { exception } => format!("exception: {exception}"),
                Outcome::NotRouted => "(not routed)".into(),
            },
            rule: d.rule.clone(),
            territory,
            reason: d.reason.clone(),
        };
        for c in &cats {
            let samples = self.report.samples.entry((*c).to_owned()).or_default();
            if samples.len() < SAMPLES {
                samples.push(row.clone());
            }
        }
        self.report.rows.push(row);
    }
}

/// Build the drift report over the snapshot. The ledger is not modified: the report
/// shows what a plan would do from the persisted state.
pub fn build(
    snapshot: &Snapshot,
    policy: &Policy,
    ledger: &Ledger,
    now: DateTime<Utc>,
) -> DriftReport {
    let matcher = Matcher::new(
        &snapshot.accounts,
        &snapshot.owners,
        &policy.settings.matcher_config(),
    );
    let mut scratch = ledger.clone();
    let mut b = Builder {
        policy,
        names: super::OwnerNames::new(Some(policy), &snapshot.owners),
        owners: snapshot.owners.iter().map(|o| (&o.id, o)).collect(),
        accounts: snapshot.accounts.iter().map(|a| (&a.id, a)).collect(),
        report: DriftReport {
            generated_at: now,
            policy_version: policy.version.clone(),
            crm: snapshot.crm.unwrap_or(CrmKind::Hubspot),
            records: 0,
            in_policy: 0,
            would_change: 0,
            categories: CATEGORIES.iter().map(|c| ((*c).to_owned(), 0)).collect(),
            by_rule: BTreeMap::new(),
            by_territory: BTreeMap::new(),
            by_rep: BTreeMap::new(),
            samples: BTreeMap::new(),
            rows: Vec::new(),
        },
    };
    super::decide_all(
        snapshot,
        policy,
        &matcher,
        &mut scratch,
        now,
        None,
        |p, d| b.add(p, &d),
    );
    b.report
}

fn count(r: &DriftReport, c: &str) -> u64 {
    r.categories.get(c).copied().unwrap_or(0)
}

impl DriftReport {
    /// One sentence a person reads first: compliance when no owner would change.
    pub fn summary(&self) -> String {
        let listed = self.records.saturating_sub(self.in_policy);
        let exceptions = count(self, "exception");
        if self.would_change == 0 {
            let mut text = format!(
                "In policy: no record would change owner; all {} have the owner the policy gives them.",
                self.records
            );
            if exceptions > 0 {
                text.push_str(&format!(" {exceptions} need a person (see exception)."));
            }
            if listed > exceptions {
                text.push_str(&format!(
                    " {listed} are listed below, also for reasons that need no change (unmatched, manual override)."
                ));
            }
            return text;
        }
        let pct = if self.records == 0 {
            0.0
        } else {
            self.would_change as f64 * 100.0 / self.records as f64
        };
        format!(
            "{} records: {} ({pct:.1} %) would change owner, {} are in policy.",
            self.records, self.would_change, self.in_policy
        )
    }

    /// Said when category counts add up to more than the records in them.
    pub fn overlap_note(&self) -> Option<String> {
        let sum: u64 = self.categories.values().sum();
        let records = self.records.saturating_sub(self.in_policy);
        (sum > records).then(|| {
            format!(
                "A record can be in several categories: these counts add up to {sum} for {records} records."
            )
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a drift report always serializes")
    }

    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record([
            "categories",
            "object",
            "id",
            "current_owner",
            "desired_owner",
            "rule",
            "territory",
            "reason",
        ]);
        for r in &self.rows {
            let _ = w.write_record([
                r.categories.join("|").as_str(),
                &r.object,
                &r.id,
                &r.current,
                &r.desired,
                &r.rule,
                &r.territory,
                &r.reason,
            ]);
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Drift report — {}\n", self.crm);
        let _ = writeln!(
            s,
            "Generated {} with policy `{}`.\n\n{}\n",
            self.generated_at.to_rfc3339(),
            self.policy_version,
            self.summary()
        );
        let _ = writeln!(s, "## Categories\n\n| category | records |\n|---|---:|");
        for c in CATEGORIES {
            let _ = writeln!(s, "| {} | {} |", c.replace('_', " "), count(self, c));
        }
        if let Some(note) = self.overlap_note() {
            let _ = writeln!(s, "\n{note}");
        }
        let _ = writeln!(
            s,
            "\n## By rule\n\n| rule | records | drifted |\n|---|---:|---:|"
        );
        for (k, t) in &self.by_rule {
            let _ = writeln!(s, "| {k} | {} | {} |", t.records, t.drifted);
        }
        let _ = writeln!(
            s,
            "\n## By territory\n\n| territory | records | drifted |\n|---|---:|---:|"
        );
        for (k, t) in &self.by_territory {
            let _ = writeln!(s, "| {k} | {} | {} |", t.records, t.drifted);
        }
        let _ = writeln!(
            s,
            "\n## By rep\n\n| rep | owns | should lose | should gain |\n|---|---:|---:|---:|"
        );
        for (k, t) in &self.by_rep {
            let _ = writeln!(
                s,
                "| {k} | {} | {} | {} |",
                t.owned, t.should_lose, t.should_gain
            );
        }
        let _ = writeln!(s, "\n## Samples");
        for c in CATEGORIES {
            let Some(rows) = self.samples.get(c) else {
                continue;
            };
            let _ = writeln!(
                s,
                "\n### {}\n\n| record | owner now | policy wants | rule | reason |\n|---|---|---|---|---|",
                c.replace('_', " ")
            );
            for r in rows {
                let _ = writeln!(
                    s,
                    "| {}:{} | {} | {} | {} | {} |",
                    r.object,
                    r.id,
                    r.current,
                    r.desired,
                    r.rule,
                    r.reason.replace('|', "\\|")
                );
            }
        }
        s
    }

    /// A horizontal bar chart of category counts, as inline SVG.
    pub fn chart_svg(&self) -> String {
        let max = CATEGORIES
            .iter()
            .map(|c| count(self, c))
            .max()
            .unwrap_or(0)
            .max(1);
        let (label_w, bar_w, row_h) = (170u64, 420u64, 26u64);
        let height = row_h * CATEGORIES.len() as u64 + 10;
        let mut s = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="Helvetica,Arial,sans-serif" font-size="12" role="img" aria-label="drift by category">"#,
            label_w + bar_w + 80
        );
        for (i, c) in CATEGORIES.iter().enumerate() {
            let n = count(self, c);
            let y = i as u64 * row_h + 5;
            let w = n * bar_w / max;
            let _ = write!(
                s,
                r##"<text x="0" y="{}">{}</text><rect x="{label_w}" y="{y}" width="{w}" height="{}" fill="#4a78b5"/><text x="{}" y="{}">{n}</text>"##,
                y + 15,
                c.replace('_', " "),
                row_h - 8,
                label_w + w + 6,
                y + 15
            );
        }
        s.push_str("</svg>");
        s
    }

    pub fn to_html(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let mut s = String::new();
        let _ = writeln!(
            s,
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>leadroute drift — {}</title>\n<style>body{{font-family:Helvetica,Arial,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}td.n{{text-align:right}}</style></head><body>",
            self.crm
        );
        let _ = writeln!(
            s,
            "<h1>Drift report — {}</h1>\n<p>Generated {} with policy <code>{}</code>.</p>\n<p>{}</p>",
            self.crm,
            self.generated_at.to_rfc3339(),
            esc(&self.policy_version),
            esc(&self.summary())
        );
        let _ = writeln!(s, "<h2>Categories</h2>\n{}", self.chart_svg());
        let table = |s: &mut String, title: &str, head: &[&str], rows: Vec<Vec<String>>| {
            let _ = writeln!(
                s,
                "<h2>{title}</h2>\n<table><tr>{}</tr>",
                head.iter()
                    .map(|h| format!("<th>{h}</th>"))
                    .collect::<String>()
            );
            for r in rows {
                let cells: String = r
                    .iter()
                    .map(|c| {
                        if c.parse::<u64>().is_ok() {
                            format!("<td class=\"n\">{c}</td>")
                        } else {
                            format!("<td>{}</td>", esc(c))
                        }
                    })
                    .collect();
                let _ = writeln!(s, "<tr>{cells}</tr>");
            }
            let _ = writeln!(s, "</table>");
        };
        table(
            &mut s,
            "By rule",
            &["rule", "records", "drifted"],
            self.by_rule
                .iter()
                .map(|(k, t)| vec![k.clone(), t.records.to_string(), t.drifted.to_string()])
                .collect(),
        );
        table(
            &mut s,
            "By territory",
            &["territory", "records", "drifted"],
            self.by_territory
                .iter()
                .map(|(k, t)| vec![k.clone(), t.records.to_string(), t.drifted.to_string()])
                .collect(),
        );
        table(
            &mut s,
            "By rep",
            &["rep", "owns", "should lose", "should gain"],
            self.by_rep
                .iter()
                .map(|(k, t)| {
                    vec![
                        k.clone(),
                        t.owned.to_string(),
                        t.should_lose.to_string(),
                        t.should_gain.to_string(),
                    ]
                })
                .collect(),
        );
        for c in CATEGORIES {
            let Some(rows) = self.samples.get(c) else {
                continue;
            };
            table(
                &mut s,
                &format!("Samples: {}", c.replace('_', " ")),
                &["record", "owner now", "policy wants", "rule", "reason"],
                rows.iter()
                    .map(|r| {
                        vec![
                            format!("{}:{}", r.object, r.id),
                            r.current.clone(),
                            r.desired.clone(),
                            r.rule.clone(),
                            r.reason.clone(),
                        ]
                    })
                    .collect(),
            );
        }
        let _ = writeln!(s, "</body></html>");
        s
    }
}

#[cfg(test)]
mod plain_tests {
    use super::*;
    use crate::reconcile::synth;

    #[test]
    fn after_convergence_the_report_reads_as_compliance_and_names_owners() {
        let size = synth::OrgSize {
            owners: 8,
            accounts: 100,
            people: 80,
        };
        let mut org = synth::org(2026, size);
        let (policy, _) =
            crate::policy::parse("synthetic.toml", &synth::policy_text(size.owners)).unwrap();
        let mut ledger = Ledger::default();
        let before = build(&org, &policy, &ledger, synth::base_time());
        assert!(
            before.summary().contains("would change owner,"),
            "{}",
            before.summary()
        );
        assert!(
            before
                .to_markdown()
                .contains("A record can be in several categories"),
            "overlapping counts are said to overlap"
        );
        let plan = crate::reconcile::plan(&org, &policy, &mut ledger, synth::base_time());
        synth::apply(&mut org, &plan);
        let after = build(&org, &policy, &ledger, synth::base_time());
        assert!(
            after
                .summary()
                .starts_with("In policy: no record would change owner; all 80"),
            "{}",
            after.summary()
        );
        assert_eq!(count(&after, "wrong_owner"), 0);
        assert_eq!(
            count(&after, "outside_territory"),
            0,
            "an owner the policy wants is not outside its territory"
        );
        // Owners outside the policy are named from the mirror; inactive ones marked.
        let inactive = org.owners.iter().find(|o| !o.active);
        if let Some(o) = inactive {
            let label = crate::reconcile::OwnerNames::new(Some(&policy), &org.owners).label(&o.id);
            assert!(label.ends_with("[inactive]"), "{label}");
        }
        assert!(
            before
                .by_rep
                .keys()
                .all(|k| k.contains('(') || k == "(none)"),
            "{:?}",
            before.by_rep.keys()
        );
    }
}
