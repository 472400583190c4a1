//! Rendering a traced [`Decision`] for humans: the match with its candidates, the
//! territories, the manual-override check, every rule with the values it saw, the pool
//! and ledger state at pick time, and the result with the policy version.

use std::fmt::Write as _;

use super::route::{Decision, Outcome};
use crate::policy::Policy;
use crate::policy::model::match_status_str;

/// Text explanation. `record` is the reference the user asked about.
pub fn render(record: &str, d: &Decision, policy: &Policy) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{record}");
    let Some(t) = &d.trace else {
        let _ = writeln!(s, "  (no trace recorded)");
        return s;
    };
    let _ = writeln!(s, "  policy      {} ({})", t.policy_version, policy.source);
    let _ = writeln!(s, "  evaluated   {}", t.now.to_rfc3339());
    let _ = writeln!(
        s,
        "  owner now   {} [{}]{}",
        t.current_owner.as_deref().unwrap_or("(none)"),
        t.current_owner_status,
        t.owner_assigned_at
            .map_or(String::new(), |a| format!(", set {}", a.to_rfc3339()))
    );
    let m = &t.match_result;
    let _ = writeln!(s, "\nmatch: {} — {}", match_status_str(m.status), m.reason);
    if let Some(a) = &m.account_id {
        let _ = writeln!(s, "  account     {a} (confidence {:.2})", m.confidence);
    }
    for c in &m.candidates {
        let _ = writeln!(
            s,
            "  candidate   {:<20} score {:.2} via {:?}: {}",
            c.account_id.as_str(),
            c.score,
            c.via,
            c.note
        );
    }
    if !t.territories.is_empty() {
        let _ = writeln!(s, "\nterritories:");
        for tt in &t.territories {
            let mark = if tt.holds { "in " } else { "out" };
            let _ = writeln!(s, "  [{mark}] {:<20} {}", tt.name, tt.saw);
        }
    }
    let _ = writeln!(s, "\nmanual override: {}", t.manual_override);
    let _ = writeln!(s, "\nrules:");
    for r in &t.rules {
        let mark = if r.matched { "✔" } else { "✘" };
        let _ = writeln!(s, "  {mark} {} (line {}) → {}", r.name, r.line, r.action);
        for c in &r.conditions {
            let cm = if c.holds { "✔" } else { "✘" };
            let _ = writeln!(
                s,
                "      {cm} {:<45} saw {}",
                c.condition,
                c.saw
                    .as_deref()
                    .map_or("(empty)".to_owned(), |v| format!("{v:?}"))
            );
        }
        if !r.outcome.is_empty() {
            let _ = writeln!(s, "      = {}", r.outcome);
        }
    }
    if let Some(p) = &t.pool {
        let _ = writeln!(
            s,
            "\npool {} ({}), {} picks so far:",
            p.pool, p.strategy, p.picks
        );
        let _ = writeln!(
            s,
            "  {:<10} {:<20} {:>6} {:>8} {:>8} {:>5} {:>5} {:>6}  {:<20} status",
            "rep", "owner", "weight", "credit", "assigned", "today", "week", "load", "zone"
        );
        for mt in &p.members {
            let _ = writeln!(
                s,
                "  {:<10} {:<20} {:>6} {:>8.3} {:>8} {:>5} {:>5} {:>6}  {:<20} {}",
                mt.rep,
                mt.owner,
                mt.weight,
                mt.credit,
                mt.assigned,
                mt.today,
                mt.week,
                mt.load,
                mt.time_zone,
                mt.status
            );
        }
        let _ = writeln!(s, "  → {}", p.how);
    }
    let result = match &d.outcome {
        Outcome::Owner { owner, .. } if d.change().is_some() => format!(
            "change owner {} → {}",
            d.current
                .as_ref()
                .map_or("(none)".to_owned(), |o| policy.owner_label(o)),
            policy.owner_label(owner)
        ),
        Outcome::Owner { owner, .. } => format!("no change: {} stays", policy.owner_label(owner)),
        Outcome::Exception { exception } => format!("exception {exception}"),
        Outcome::NotRouted => "not routed".into(),
    };
    let _ = writeln!(s, "\nresult: {result}\n  rule {} — {}", d.rule, d.reason);
    s
}
