//! What applying a plan will do and cost, shown before anything is written: per-rep
//! deltas, the API calls it needs and the time those take at the CRM's current limits.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use leadroute_crm::{ApiUsage, Crm, ObjectKind};

use super::Writer;
use crate::policy::Policy;
use crate::reconcile::{Plan, RepDelta};

/// A plan's effect and cost.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSummary {
    pub changes: usize,
    pub exceptions: usize,
    pub by_object: BTreeMap<ObjectKind, usize>,
    pub by_rule: BTreeMap<String, u64>,
    pub deltas: Vec<RepDelta>,
    /// Minimum write calls (ceil(N / batch)) and compare reads.
    pub write_calls: u64,
    pub read_calls: u64,
    pub batch: usize,
    /// Objects whose changes go through the bulk path: the jobs' size (their HTTP
    /// calls are in `write_calls`).
    pub bulk_job: Option<usize>,
    /// Calls per second the CRM's short-window limit allows, when known.
    pub calls_per_sec: Option<f64>,
    /// Time the calls take at that rate.
    pub estimated: Option<Duration>,
    /// Daily calls left after the reserve, when the CRM reports it.
    pub daily_available: Option<u64>,
}

impl PlanSummary {
    /// The fewest HTTP calls one Salesforce bulk job takes (create, upload, close,
    /// poll, results): how a job counts in `write_calls`.
    pub const BULK_JOB_CALLS: u64 = super::bulk::BULK_JOB_CALLS;

    /// Labels the per-rep deltas with `names` (the CRM's owner names, inactive owners
    /// marked) instead of bare ids for owners the policy does not name.
    pub fn name_owners(&mut self, plan: &Plan, names: &crate::reconcile::OwnerNames) {
        self.deltas = plan.rep_deltas_named(names);
    }

    pub fn calls(&self) -> u64 {
        self.write_calls + self.read_calls
    }

    /// Whether the plan needs more calls than today's allocation leaves.
    pub fn exceeds_daily(&self) -> bool {
        self.daily_available.is_some_and(|left| self.calls() > left)
    }
}

/// Calls per second the short window allows (`window_max / window`).
pub fn rate_from_usage(usage: &ApiUsage) -> Option<f64> {
    let max = usage.window_max?;
    let window = usage.window?.as_secs_f64();
    (window > 0.0).then(|| max as f64 / window)
}

/// Summarises `plan` for `writer`'s CRM.
pub fn summarize<C: Crm>(writer: &Writer<C>, plan: &Plan, policy: Option<&Policy>) -> PlanSummary {
    let mut by_object: BTreeMap<ObjectKind, usize> = BTreeMap::new();
    for change in &plan.changes {
        *by_object.entry(change.object).or_default() += 1;
    }
    // Batches hold one object kind, so the minimum is per object.
    let (mut write_calls, mut read_calls) = (0, 0);
    let bulk_job = by_object
        .values()
        .any(|count| writer.bulk_minimum_calls(*count).is_some())
        .then_some(writer.settings.bulk_job_size);
    for count in by_object.values() {
        let (w, r) = writer.minimum_calls(*count);
        write_calls += w;
        read_calls += r;
    }
    let usage = writer.crm().usage();
    let calls_per_sec = rate_from_usage(&usage);
    let estimated = calls_per_sec
        .filter(|rate| *rate > 0.0)
        .map(|rate| Duration::from_secs_f64((write_calls + read_calls) as f64 / rate));
    let daily_available = usage
        .daily_remaining
        .map(|left| left.saturating_sub(usage.daily_reserve));
    PlanSummary {
        changes: plan.changes.len(),
        exceptions: plan.exceptions.len(),
        by_object,
        by_rule: plan.by_rule(),
        deltas: plan.rep_deltas(policy),
        write_calls,
        read_calls,
        batch: writer.batch_size(),
        bulk_job,
        calls_per_sec,
        estimated,
        daily_available,
    }
}

impl fmt::Display for PlanSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} owner changes, {} exceptions",
            self.changes, self.exceptions
        )?;
        for (object, count) in &self.by_object {
            writeln!(f, "  {object}: {count}")?;
        }
        if !self.by_rule.is_empty() {
            writeln!(f, "by rule:")?;
            for (rule, count) in &self.by_rule {
                writeln!(f, "  {rule}: {count}")?;
            }
        }
        if !self.deltas.is_empty() {
            writeln!(f, "per-rep deltas (gains / losses / net):")?;
            for delta in &self.deltas {
                writeln!(
                    f,
                    "  {:<40} +{:<6} -{:<6} {:+}",
                    delta.owner,
                    delta.gains,
                    delta.losses,
                    delta.net()
                )?;
            }
        }
        let how = match self.bulk_job {
            Some(job) => format!(
                "bulk jobs of up to {job} records (at least {} calls each), batches of {} for the rest",
                super::bulk::BULK_JOB_CALLS,
                self.batch
            ),
            None => format!("batches of {}", self.batch),
        };
        write!(
            f,
            "API cost: {} write calls ({how}) + {} compare reads = {} calls",
            self.write_calls,
            self.read_calls,
            self.calls()
        )?;
        match (self.calls_per_sec, self.estimated) {
            (Some(rate), Some(time)) => writeln!(
                f,
                "; about {:.0} s at the CRM's limit of {rate:.1} calls/s",
                time.as_secs_f64().ceil()
            )?,
            _ => writeln!(f, "; time unknown until the CRM reports its limits")?,
        }
        if let Some(left) = self.daily_available {
            if self.exceeds_daily() {
                writeln!(
                    f,
                    "warning: today's API allocation leaves {left} calls after the reserve; \
                     the run will pause when it runs out and can be resumed after the reset"
                )?;
            } else {
                writeln!(f, "daily allocation: {left} calls left after the reserve")?;
            }
        }
        Ok(())
    }
}
