//! The SLA engine as the sidecar's leader runs it, one tick at a time:
//!
//! 1. **Start.** Applied owner writes after the engine's journal cursor (the CRM's
//!    acknowledgement, journaled by the writer) start a timer for each SLA that applies
//!    to the write's rule or pool; the cursor moves in the same transaction.
//! 2. **Due.** Timers whose next look (`next_at`: a reminder or the deadline) has come
//!    are read through the due-time index, their touches read in one batch, and each
//!    is met, reminded, breached or rescheduled by a compare-and-set transition that
//!    also writes its events and breach actions (the outbox).
//! 3. **Act.** Pending actions run: reassign within the pool skipping the last N
//!    owners (a ledger pick, written through the writer and its journal as a run of
//!    kind `sla`), the manager, an exception, or the signed webhook. A run is named
//!    after its action, so an action interrupted by a crash resumes the same run.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use leadroute_crm::Crm;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::engine::{self, TimerClock, Verdict};
use super::notify;
use super::touch::TouchSource;
use crate::domain::OwnerId;
use crate::policy::{BreachStep, Policy, Sla};
use crate::reconcile::ledger::{Assignment, Contender};
use crate::reconcile::{Plan, PlannedChange};
use crate::service::clock::Clock;
use crate::service::metrics::Metrics;
use crate::store::sla::{
    ActionRow, NewAction, NewEvent, NewTimer, SlaCursor, TimerRow, TimerState, Transition,
};
use crate::store::{NewException, Store};
use crate::writer::{NoProgress, RunId, RunSpec, Writer};

/// The journaled kind of the engine's reassignment runs.
pub const RUN_KIND: &str = "sla";

/// Timers started or looked at per pass at most.
pub const BATCH: i64 = 1000;

/// Breach actions run per pass at most, so a burst of escalations never holds up the
/// detection of the next deadlines.
pub const ACT_BATCH: i64 = 100;

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    pub started: u64,
    pub cancelled: u64,
    pub met: u64,
    pub reminded: u64,
    pub breached: u64,
    pub actions: u64,
    /// Due timers read (the tick's size).
    pub due: u64,
}

/// The SLA engine over one org.
pub struct Engine<C: Crm, T: TouchSource> {
    pub org: String,
    pub store: Store,
    pub writer: Writer<C>,
    pub touches: T,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub http: reqwest::Client,
    /// Delivery attempts of a notification.
    pub notify_attempts: usize,
}

impl<C: Crm, T: TouchSource> Engine<C, T> {
    /// Ticks every `every` until `cancel` fires (the leader's term).
    pub async fn run(
        self,
        policy: watch::Receiver<Arc<Policy>>,
        every: Duration,
        cancel: CancellationToken,
    ) {
        if let Err(err) = self
            .store
            .sla_cursor_init(&self.org, self.clock.now())
            .await
        {
            warn!(error = %err, "starting the SLA cursor failed; retrying on the next tick");
        }
        if let Ok(open) = self.store.sla_open_count(&self.org).await {
            self.metrics.sla_open.set(open);
        }
        let mut wait = Duration::ZERO;
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            wait = every;
            let current = Arc::clone(&policy.borrow());
            if current.slas.is_empty() {
                continue;
            }
            match self.tick(&current).await {
                Ok(report) => {
                    // A full batch means more is waiting: go again at once.
                    if report.due >= BATCH as u64
                        || report.started >= BATCH as u64
                        || report.actions >= ACT_BATCH as u64
                    {
                        wait = Duration::ZERO;
                    }
                }
                Err(err) => {
                    warn!(error = %format!("{err:#}"), "an SLA tick failed; retrying on the next");
                }
            }
            // Wake for the next deadline or reminder rather than a tick later.
            if let Ok(Some(next)) = self.store.sla_next_due(&self.org).await {
                let until = (next - self.clock.now()).to_std().unwrap_or(Duration::ZERO);
                wait = wait.min(until);
            }
        }
    }

    /// One pass: start timers, look at due ones, run pending actions.
    pub async fn tick(&self, policy: &Policy) -> anyhow::Result<TickReport> {
        let mut report = self.detect(policy).await?;
        self.act(policy, &mut report).await?;
        Ok(report)
    }

    /// Starts timers and looks at the due ones (met, reminded, breached: journaled
    /// with their actions), without running the actions.
    pub async fn detect(&self, policy: &Policy) -> anyhow::Result<TickReport> {
        let mut report = TickReport::default();
        self.start(policy, &mut report).await?;
        self.due(policy, &mut report).await?;
        Ok(report)
    }

    async fn start(&self, policy: &Policy, report: &mut TickReport) -> anyhow::Result<()> {
        self.store
            .sla_cursor_init(&self.org, self.clock.now())
            .await?;
        let Some(cursor) = self.store.sla_cursor(&self.org).await? else {
            return Ok(());
        };
        let writes = self
            .store
            .sla_applied_since(self.writer.org(), &cursor, BATCH)
            .await?;
        let Some(last) = writes.last() else {
            return Ok(());
        };
        let next_cursor = SlaCursor {
            outcome_at: crate::store::to_ms(last.acknowledged_at),
            run_id: last.run_id.clone(),
            seq: last.seq,
        };
        let mut timers = Vec::new();
        for w in &writes {
            let pool = policy.rule_pool(&w.rule).map(str::to_owned);
            for sla in policy
                .slas
                .iter()
                .filter(|s| s.applies(&w.rule, pool.as_deref()))
            {
                let calendar = policy.sla_calendar(sla, &w.owner);
                let Some((due_at, next_at)) = engine::schedule(sla, &calendar, w.acknowledged_at)
                else {
                    warn!(sla = %sla.name, record = %w.id, "the SLA's calendar never reaches its deadline; no timer started");
                    continue;
                };
                let attempt = if w.run_kind == RUN_KIND {
                    self.store
                        .sla_latest_timer(&self.org, &sla.name, w.object, &w.id)
                        .await?
                        .map_or(0, |t| t.attempt.saturating_add(1))
                } else {
                    0
                };
                timers.push(NewTimer {
                    sla: sla.name.clone(),
                    object: w.object,
                    id: w.id.clone(),
                    owner: w.owner.clone(),
                    rule: w.rule.clone(),
                    pool: pool.clone(),
                    run_id: w.run_id.clone(),
                    seq: w.seq,
                    attempt,
                    started_at: w.acknowledged_at,
                    due_at,
                    next_at,
                });
            }
        }
        let (started, cancelled) = self
            .store
            .sla_start(&self.org, &timers, &next_cursor, self.clock.now())
            .await?;
        report.started += started;
        report.cancelled += cancelled;
        self.metrics
            .sla_open
            .inc_by(i64::try_from(started).unwrap_or(0) - i64::try_from(cancelled).unwrap_or(0));
        Ok(())
    }

    async fn due(&self, policy: &Policy, report: &mut TickReport) -> anyhow::Result<()> {
        let now = self.clock.now();
        let due = self.store.sla_due(&self.org, now, BATCH).await?;
        report.due = due.len() as u64;
        if due.is_empty() {
            return Ok(());
        }
        let keys: Vec<_> = {
            let mut k: Vec<_> = due
                .iter()
                .map(|t| (t.object, t.record_id.clone()))
                .collect();
            k.sort();
            k.dedup();
            k
        };
        let new_status = policy.slas.iter().find_map(|s| s.new_status.as_deref());
        let touches = self.touches.touches(&keys, new_status).await?;
        let mut transitions = Vec::new();
        let mut observed = Vec::new();
        for timer in &due {
            let Some(sla) = policy.slas.iter().find(|s| s.name == timer.sla) else {
                // The SLA left the policy: its open timers end without a breach.
                transitions.push(close(
                    timer,
                    TimerState::Cancelled,
                    "the SLA is no longer in the policy",
                    now,
                ));
                continue;
            };
            let calendar = policy.sla_calendar(sla, &timer.owner);
            let clock = TimerClock {
                owner: timer.owner.clone(),
                started_at: timer.started_at,
                due_at: timer.due_at,
                reminders_sent: timer.reminders_sent,
            };
            let known = touches
                .get(&(timer.object, timer.record_id.clone()))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let (first, rejected) = engine::first_touch(sla, &clock, known, now);
            let mut events: Vec<NewEvent> = rejected
                .iter()
                .map(|(t, why)| NewEvent {
                    kind: "rejected_touch",
                    at: now,
                    detail: Some(format!(
                        "{} touch at {} {}",
                        t.kind.as_str(),
                        t.at.to_rfc3339(),
                        why.as_str()
                    )),
                })
                .collect();
            let t = match engine::evaluate(sla, &calendar, &clock, first, now) {
                Verdict::Met { touch, working } => {
                    report.met += 1;
                    observed.push((timer.sla.clone(), touch.at - timer.started_at, false));
                    events.push(NewEvent {
                        kind: "touched",
                        at: touch.at,
                        detail: Some(format!("{} touch", touch.kind.as_str())),
                    });
                    events.push(NewEvent {
                        kind: "met",
                        at: now,
                        detail: Some(format!(
                            "touched after {} s of working time (deadline {} s)",
                            working.num_seconds(),
                            sla.within.num_seconds()
                        )),
                    });
                    Transition {
                        timer: timer.id,
                        expected_next: timer.next_at,
                        state: TimerState::Met,
                        next_at: None,
                        reminders_sent: timer.reminders_sent,
                        touched_at: Some(touch.at),
                        touch_kind: Some(touch.kind.as_str().to_owned()),
                        working_ms: Some(working.num_milliseconds()),
                        events,
                        actions: Vec::new(),
                    }
                }
                Verdict::Remind { index, next_at } => {
                    report.reminded += 1;
                    events.push(NewEvent {
                        kind: "reminder",
                        at: now,
                        detail: Some(format!("due {}", timer.due_at.to_rfc3339())),
                    });
                    let actions = sla
                        .notify
                        .as_ref()
                        .map(|_| NewAction {
                            kind: "notify",
                            payload: serde_json::json!({ "event": "reminder" }),
                        })
                        .into_iter()
                        .collect();
                    Transition {
                        timer: timer.id,
                        expected_next: timer.next_at,
                        state: TimerState::Open,
                        next_at: Some(next_at),
                        reminders_sent: index.saturating_add(1),
                        touched_at: None,
                        touch_kind: None,
                        working_ms: None,
                        events,
                        actions,
                    }
                }
                Verdict::Breached { late_touch } => {
                    report.breached += 1;
                    let step = engine::step_for(sla, timer.attempt);
                    if let Some(t) = &late_touch {
                        observed.push((timer.sla.clone(), t.at - timer.started_at, true));
                        events.push(NewEvent {
                            kind: "touched",
                            at: t.at,
                            detail: Some(format!("{} touch, after the deadline", t.kind.as_str())),
                        });
                    }
                    events.push(NewEvent {
                        kind: "breached",
                        at: now,
                        detail: Some(format!(
                            "not touched within {} s of working time (due {}); next: {}",
                            sla.within.num_seconds(),
                            timer.due_at.to_rfc3339(),
                            step.map_or("nothing", BreachStep::as_str)
                        )),
                    });
                    let mut actions = Vec::new();
                    if let Some(step) = step.filter(|s| *s != BreachStep::Notify) {
                        actions.push(NewAction {
                            kind: step.as_str(),
                            payload: serde_json::json!({ "step": step.as_str() }),
                        });
                    }
                    if sla.notify.is_some() {
                        actions.push(NewAction {
                            kind: "notify",
                            payload: serde_json::json!({ "event": "breach" }),
                        });
                    }
                    Transition {
                        timer: timer.id,
                        expected_next: timer.next_at,
                        state: TimerState::Breached,
                        next_at: None,
                        reminders_sent: timer.reminders_sent,
                        touched_at: late_touch.as_ref().map(|t| t.at),
                        touch_kind: late_touch.as_ref().map(|t| t.kind.as_str().to_owned()),
                        working_ms: Some(sla.within.num_milliseconds()),
                        events,
                        actions,
                    }
                }
                Verdict::Wait { next_at } => Transition {
                    timer: timer.id,
                    expected_next: timer.next_at,
                    state: TimerState::Open,
                    next_at: Some(next_at.max(now + chrono::Duration::milliseconds(1))),
                    reminders_sent: timer.reminders_sent,
                    touched_at: None,
                    touch_kind: None,
                    working_ms: None,
                    events,
                    actions: Vec::new(),
                },
            };
            transitions.push(t);
        }
        let by_id: HashMap<i64, TimerRow> = due.into_iter().map(|t| (t.id, t)).collect();
        let changed = self
            .store
            .sla_apply(&self.org, &by_id, &transitions, now)
            .await?;
        let changed: std::collections::HashSet<i64> = changed.into_iter().collect();
        for t in &transitions {
            if !changed.contains(&t.timer) {
                continue;
            }
            if t.state != TimerState::Open {
                self.metrics.sla_open.dec();
            }
            if t.state == TimerState::Breached {
                if let Some(timer) = by_id.get(&t.timer) {
                    crate::service::metrics::Metrics::add(
                        &self.metrics.sla_breaches,
                        &[("sla", timer.sla.as_str())],
                        1,
                    );
                    info!(sla = %timer.sla, object = %timer.object, record = %timer.record_id, owner = %timer.owner, "sla breached");
                }
            }
        }
        for (_, wall, _) in observed {
            self.metrics
                .time_to_first_touch
                .observe(wall.num_milliseconds().max(0) as f64 / 1000.0);
        }
        Ok(())
    }

    /// Runs pending breach actions (at most [`ACT_BATCH`]).
    pub async fn act(&self, policy: &Policy, report: &mut TickReport) -> anyhow::Result<()> {
        let actions = self.store.sla_pending_actions(&self.org, ACT_BATCH).await?;
        for action in actions {
            let Some(timer) = self.store.sla_timer(action.timer_id).await? else {
                continue;
            };
            let sla = policy.slas.iter().find(|s| s.name == timer.sla);
            let (state, event) = match sla {
                None => (
                    "failed",
                    NewEvent {
                        kind: "escalated",
                        at: self.clock.now(),
                        detail: Some("not done: the SLA is no longer in the policy".into()),
                    },
                ),
                Some(sla) => self.action(policy, sla, &timer, &action).await?,
            };
            self.store
                .sla_action_end(&self.org, &action, &timer, state, &event)
                .await?;
            report.actions += 1;
        }
        Ok(())
    }

    /// Runs one action; says how it ended and what to journal.
    async fn action(
        &self,
        policy: &Policy,
        sla: &Sla,
        timer: &TimerRow,
        action: &ActionRow,
    ) -> anyhow::Result<(&'static str, NewEvent)> {
        let now = self.clock.now();
        let event = |kind: &'static str, detail: String| NewEvent {
            kind,
            at: now,
            detail: Some(detail),
        };
        match action.kind.as_str() {
            "notify" => {
                let Some(n) = &sla.notify else {
                    return Ok(("failed", event("notify_failed", "no notify_url".into())));
                };
                let secret = n
                    .secret_env
                    .as_ref()
                    .and_then(|var| std::env::var(var).ok());
                let kind = action.payload["event"]
                    .as_str()
                    .unwrap_or("breach")
                    .to_owned();
                let body = notify::body(
                    n,
                    &notify::Event {
                        event: kind.clone(),
                        sla: sla.name.clone(),
                        org: self.org.clone(),
                        object: timer.object.to_string(),
                        record_id: timer.record_id.to_string(),
                        owner: timer.owner.to_string(),
                        owner_label: policy.owner_label(&timer.owner),
                        started_at: timer.started_at.to_rfc3339(),
                        due_at: timer.due_at.to_rfc3339(),
                        action: None,
                    },
                );
                let delivery = format!("{}-{}", self.org, action.id);
                match notify::send(
                    &self.http,
                    n,
                    secret.as_deref().map(str::as_bytes),
                    &delivery,
                    body,
                    self.notify_attempts,
                )
                .await
                {
                    Ok(()) => Ok((
                        "done",
                        event("notified", format!("{kind} posted to the notify webhook")),
                    )),
                    Err(err) => {
                        warn!(sla = %sla.name, error = %err, "an SLA notification failed");
                        Ok(("failed", event("notify_failed", err.to_string())))
                    }
                }
            }
            "exception" => {
                self.exception(sla, timer, now).await?;
                Ok((
                    "done",
                    event(
                        "escalated",
                        format!("exception {} queued", sla.exception_kind),
                    ),
                ))
            }
            "reassign" | "manager" => {
                // A decision made before a crash is kept, never made again.
                let decided = action.payload["to"].as_str().map(OwnerId::new);
                let mut ledger = None;
                let to = match decided {
                    Some(to) => Some(to),
                    None if action.kind == "manager" => sla
                        .managers
                        .get(&timer.owner)
                        .or(sla.manager.as_ref())
                        .filter(|m| **m != timer.owner)
                        .cloned(),
                    None => {
                        let picked = self.pick(policy, sla, timer, now).await?;
                        if let Some((to, l)) = picked {
                            ledger = Some(l);
                            Some(to)
                        } else {
                            None
                        }
                    }
                };
                let Some(to) = to else {
                    // Nobody to hand it to: the exception queue, so a human does.
                    self.exception(sla, timer, now).await?;
                    return Ok((
                        "done",
                        event(
                            "escalated",
                            format!(
                                "{}: nobody eligible; exception {} queued",
                                action.kind, sla.exception_kind
                            ),
                        ),
                    ));
                };
                let mut payload = action.payload.clone();
                payload["to"] = serde_json::Value::String(to.to_string());
                self.store
                    .sla_action_payload(action.id, &payload, now)
                    .await?;
                let plan = Plan {
                    policy_version: policy.version.clone(),
                    created_at: now,
                    crm: self.writer.crm().kind(),
                    changes: vec![PlannedChange {
                        object: timer.object,
                        id: timer.record_id.clone(),
                        field: "owner".into(),
                        from: Some(timer.owner.clone()),
                        to: to.clone(),
                        rule: timer.rule.clone(),
                        reason: format!(
                            "SLA {} breached by {}: {}",
                            sla.name,
                            policy.owner_label(&timer.owner),
                            if action.kind == "manager" {
                                "to the manager"
                            } else {
                                "reassigned in the pool"
                            }
                        ),
                        policy_version: policy.version.clone(),
                        record_updated_at: None,
                    }],
                    exceptions: Vec::new(),
                };
                let spec = RunSpec {
                    id: RunId::new(format!("sla-{}-{}", self.org, action.id)),
                    kind: RUN_KIND.to_owned(),
                    parent: None,
                };
                let committed = crate::service::commit::commit_plan(
                    &self.writer,
                    &plan,
                    ledger.as_mut(),
                    &spec,
                    &NoProgress,
                )
                .await?;
                let applied = committed
                    .report
                    .as_ref()
                    .is_some_and(|r| r.applied > 0 || r.unchanged > 0);
                if applied {
                    info!(sla = %sla.name, record = %timer.record_id, from = %timer.owner, to = %to, "sla escalation: owner changed");
                    Ok((
                        "done",
                        event(
                            "escalated",
                            format!(
                                "{} to {} (run {})",
                                if action.kind == "manager" {
                                    "manager"
                                } else {
                                    "reassigned"
                                },
                                policy.owner_label(&to),
                                spec.id
                            ),
                        ),
                    ))
                } else if committed.report.as_ref().is_some_and(|r| r.pending > 0) {
                    anyhow::bail!(
                        "the SLA reassignment run {} is unfinished; it resumes next tick",
                        spec.id
                    )
                } else {
                    Ok((
                        "done",
                        event(
                            "escalated",
                            format!(
                                "not reassigned: the CRM's owner changed or the record was refused (run {})",
                                spec.id
                            ),
                        ),
                    ))
                }
            }
            other => Ok((
                "failed",
                event("escalated", format!("unknown action {other}")),
            )),
        }
    }

    async fn exception(
        &self,
        sla: &Sla,
        timer: &TimerRow,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.store
            .exception_add(
                &NewException {
                    org: self.writer.org().clone(),
                    object: timer.object,
                    id: timer.record_id.clone(),
                    kind: sla.exception_kind.clone(),
                    rule: timer.rule.clone(),
                    reason: format!(
                        "SLA {} breached: not touched by {} by {}",
                        sla.name,
                        timer.owner,
                        timer.due_at.to_rfc3339()
                    ),
                    code: None,
                    message: None,
                    run_id: None,
                    seq: None,
                    before: Some(timer.owner.clone()),
                    desired: None,
                },
                now,
            )
            .await?;
        Ok(())
    }

    /// A fair-share pick in the timer's pool, skipping the record's last owners and
    /// anyone away; the ledger comes back with the pick recorded.
    async fn pick(
        &self,
        policy: &Policy,
        sla: &Sla,
        timer: &TimerRow,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<(OwnerId, crate::reconcile::Ledger)>> {
        let Some(pool) = timer.pool.as_ref().and_then(|p| policy.pools.get(p)) else {
            return Ok(None);
        };
        let recent = self
            .store
            .sla_recent_owners(
                &self.org,
                &sla.name,
                timer.object,
                &timer.record_id,
                i64::from(sla.skip_last.max(1)),
            )
            .await?;
        let candidates = engine::reassign_candidates(
            pool.members.iter().map(|m| &m.owner),
            &recent,
            sla.skip_last,
        );
        let contenders: Vec<Contender<'_>> = pool
            .members
            .iter()
            .filter(|m| candidates.contains(&&m.owner))
            .filter(|m| {
                policy.reps.get(&m.rep).is_none_or(|rep| {
                    let tz = rep.zone(Some(pool), None);
                    rep.availability(Some(pool), tz, now) == crate::policy::Availability::Available
                })
            })
            .map(|m| Contender {
                owner: &m.owner,
                weight: m.weight,
                load: 0,
            })
            .collect();
        if contenders.is_empty() {
            return Ok(None);
        }
        let mut ledger = self.store.load_ledger(self.writer.org()).await?;
        let to = ledger
            .pools
            .entry(pool.name.clone())
            .or_default()
            .pick(&contenders, false, now);
        let day = now.with_timezone(&chrono_tz::Tz::UTC).date_naive();
        ledger.count_assignment(&to, day);
        ledger.assign(
            timer.object,
            &timer.record_id,
            Assignment {
                owner: to.clone(),
                pool: Some(pool.name.clone()),
                rule: timer.rule.clone(),
                at: now,
            },
        );
        let _ = day.weekday();
        Ok(Some((to, ledger)))
    }
}

fn close(timer: &TimerRow, state: TimerState, why: &str, now: DateTime<Utc>) -> Transition {
    Transition {
        timer: timer.id,
        expected_next: timer.next_at,
        state,
        next_at: None,
        reminders_sent: timer.reminders_sent,
        touched_at: None,
        touch_kind: None,
        working_ms: None,
        events: vec![NewEvent {
            kind: "cancelled",
            at: now,
            detail: Some(why.to_owned()),
        }],
        actions: Vec::new(),
    }
}
