//! Rendering a traced [`Decision`] for humans: the match with its candidates, the
//! territories, the manual-override check, every rule with the values it saw, the pool
//! and ledger state at pick time, and the result with the policy version. Then the
//! record's journey as the store knows it ([`History`]): when the mirror saw it, the
//! webhook hints that named it, every journaled write and every queued exception.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::route::{Decision, Outcome};
use crate::domain::OwnerId;
use crate::policy::Policy;
use crate::policy::model::match_status_str;

/// One record's journey, as the store knows it (filled by `Store::record_history`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct History {
    /// `None` when the mirror has no row for the record.
    pub arrival: Option<Arrival>,
    /// Journaled writes for the record, newest first (rollbacks included).
    pub writes: Vec<WriteFact>,
    /// Exceptions queued for the record, oldest first.
    pub exceptions: Vec<ExceptionFact>,
}

/// How the record reached the mirror.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Arrival {
    /// When the mirror first stored it (`None`: stored before this was recorded).
    pub first_seen_at: Option<DateTime<Utc>>,
    /// When the mirror last stored a newer version.
    pub last_stored_at: DateTime<Utc>,
    /// The CRM's modification time of the stored version.
    pub modified_at: DateTime<Utc>,
    /// When its current owner was set: the CRM's value, or the mirror's stamp of the
    /// first observation showing this owner.
    pub owner_assigned_at: Option<DateTime<Utc>>,
    /// Webhook hints that named the record (processed hints are pruned after a while).
    pub webhook_hints: u64,
    pub pending_hints: u64,
    pub last_hint_at: Option<DateTime<Utc>>,
}

/// One journaled change of the record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriteFact {
    pub run_id: String,
    /// `apply`, `backfill`, `rollback`, `exception` (`None`: run row missing).
    pub run_kind: Option<String>,
    /// When it was decided (the outcome's time), else when it was sent, else planned.
    pub at: DateTime<Utc>,
    pub from: Option<OwnerId>,
    pub to: OwnerId,
    pub rule: String,
    pub reason: String,
    pub policy_version: String,
    /// `applied`, `unchanged`, `skipped_changed`, `rejected`, `failed`; `None` while
    /// pending (`state` says planned or in flight).
    pub outcome: Option<String>,
    pub state: String,
    /// Why it was rejected, skipped or failed (code, message, observed owner).
    pub detail: Option<String>,
    /// A rollback run that reverted this write, and how that went.
    pub rolled_back_by: Option<String>,
}

/// One queued exception for the record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExceptionFact {
    pub id: i64,
    pub kind: String,
    pub rule: String,
    pub status: String,
    pub detail: Option<String>,
    pub run_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_owner: Option<OwnerId>,
    pub resolution_run: Option<String>,
}

fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Text for a record's [`History`], after [`render`]'s decision.
pub fn render_history(h: &History, policy: &Policy) -> String {
    let mut s = String::new();
    let owner = |o: &Option<OwnerId>| {
        o.as_ref()
            .map_or("(none)".to_owned(), |o| policy.owner_label(o))
    };
    let _ = writeln!(s, "\nhistory:");
    match &h.arrival {
        Some(a) => {
            let _ = writeln!(
                s,
                "  mirror      first stored {}, last stored {}, CRM modified {}",
                a.first_seen_at.map_or("(before tracking)".to_owned(), ts),
                ts(a.last_stored_at),
                ts(a.modified_at)
            );
            if let Some(at) = a.owner_assigned_at {
                let _ = writeln!(s, "  owner set   {}", ts(at));
            }
            let _ = writeln!(
                s,
                "  webhooks    {} hint(s){}{}",
                a.webhook_hints,
                a.last_hint_at
                    .map_or(String::new(), |at| format!(", last received {}", ts(at))),
                if a.pending_hints > 0 {
                    format!(", {} pending", a.pending_hints)
                } else {
                    String::new()
                }
            );
        }
        None => {
            let _ = writeln!(s, "  mirror      (no stored row)");
        }
    }
    if h.writes.is_empty() {
        let _ = writeln!(s, "  writes      none journaled");
    }
    for w in &h.writes {
        let outcome = w
            .outcome
            .clone()
            .unwrap_or_else(|| format!("pending ({})", w.state));
        let _ = writeln!(
            s,
            "  write       {}  run {} ({})  {} → {}  {}",
            ts(w.at),
            w.run_id,
            w.run_kind.as_deref().unwrap_or("?"),
            owner(&w.from),
            policy.owner_label(&w.to),
            outcome
        );
        let _ = writeln!(
            s,
            "                rule {} — {} (policy {})",
            w.rule, w.reason, w.policy_version
        );
        if let Some(detail) = &w.detail {
            let _ = writeln!(s, "                why: {detail}");
        }
        if let Some(by) = &w.rolled_back_by {
            let _ = writeln!(s, "                rolled back by {by}");
        }
    }
    for e in &h.exceptions {
        let _ = writeln!(
            s,
            "  exception   #{} {} [{}] since {}, rule {}{}",
            e.id,
            e.kind,
            e.status,
            ts(e.created_at),
            e.rule,
            e.run_id
                .as_ref()
                .map_or(String::new(), |r| format!(", run {r}"))
        );
        if let Some(detail) = &e.detail {
            let _ = writeln!(s, "                why: {detail}");
        }
        if let Some(at) = e.resolved_at {
            let _ = writeln!(
                s,
                "                closed {} with owner {}{}",
                ts(at),
                owner(&e.resolved_owner),
                e.resolution_run
                    .as_ref()
                    .map_or(String::new(), |r| format!(" by run {r}"))
            );
        }
    }
    s
}

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
