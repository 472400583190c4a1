//! What an SLA timer does at `now`: the pure decisions behind the sidecar's SLA task.
//! No I/O and no clock: `now` is a parameter.

use chrono::{DateTime, Duration, Utc};

use super::touch::Touch;
use crate::domain::OwnerId;
use crate::policy::calendar::{Calendar, add_working, working_between};
use crate::policy::{BreachStep, Sla};

/// A touch dated this far past `now` is taken as a clock error and ignored.
pub const FUTURE_SKEW: Duration = Duration::minutes(5);

/// The timer as the engine needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerClock {
    pub owner: OwnerId,
    pub started_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub reminders_sent: u32,
}

/// Why a touch did not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    BeforeAssignment,
    InTheFuture,
    NotTheOwner,
    KindNotCounted,
}

impl Rejected {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejected::BeforeAssignment => "dated before the assignment",
            Rejected::InTheFuture => "dated in the future",
            Rejected::NotTheOwner => "not by the owner",
            Rejected::KindNotCounted => "a kind this SLA does not count",
        }
    }
}

/// The first touch that counts for `sla` on a timer, and those that did not count.
pub fn first_touch<'t>(
    sla: &Sla,
    timer: &TimerClock,
    touches: &'t [Touch],
    now: DateTime<Utc>,
) -> (Option<&'t Touch>, Vec<(&'t Touch, Rejected)>) {
    let mut rejected = Vec::new();
    let mut first: Option<&Touch> = None;
    for t in touches {
        let why = if !sla.touches.contains(&t.kind) {
            Some(Rejected::KindNotCounted)
        } else if t.at < timer.started_at {
            Some(Rejected::BeforeAssignment)
        } else if t.at > now + FUTURE_SKEW {
            Some(Rejected::InTheFuture)
        } else if sla.owner_only && t.by.as_ref().is_some_and(|by| *by != timer.owner) {
            Some(Rejected::NotTheOwner)
        } else {
            None
        };
        match why {
            // Kinds the SLA ignores and old stamps are normal, not worth a log line.
            Some(Rejected::KindNotCounted | Rejected::BeforeAssignment) => {}
            Some(why) => rejected.push((t, why)),
            None => {
                if first.is_none_or(|f| t.at < f.at) {
                    first = Some(t);
                }
            }
        }
    }
    (first, rejected)
}

/// When a timer started at `started_at` is due, and when it is next looked at (the
/// first reminder, else the due time). `None` when the calendar never reaches it.
pub fn schedule(
    sla: &Sla,
    calendar: &Calendar,
    started_at: DateTime<Utc>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let due = add_working(started_at, sla.within, calendar)?;
    let next = reminder_at(sla, calendar, started_at, 0).unwrap_or(due);
    Some((due, next.min(due)))
}

/// When reminder `index` (largest lead first) fires.
pub fn reminder_at(
    sla: &Sla,
    calendar: &Calendar,
    started_at: DateTime<Utc>,
    index: usize,
) -> Option<DateTime<Utc>> {
    let before = *sla.remind_before.get(index)?;
    add_working(started_at, sla.within - before, calendar)
}

/// What to do with a timer at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Touched in time: the clock stopped at the touch.
    Met { touch: Touch, working: Duration },
    /// Send reminder `index`; look again at `next_at`.
    Remind { index: u32, next_at: DateTime<Utc> },
    /// The deadline passed untouched (a touch after it may be known).
    Breached { late_touch: Option<Touch> },
    /// Nothing yet; look again at `next_at`.
    Wait { next_at: DateTime<Utc> },
}

pub fn evaluate(
    sla: &Sla,
    calendar: &Calendar,
    timer: &TimerClock,
    touch: Option<&Touch>,
    now: DateTime<Utc>,
) -> Verdict {
    if let Some(t) = touch {
        if t.at <= timer.due_at {
            return Verdict::Met {
                touch: t.clone(),
                working: working_between(timer.started_at, t.at, calendar),
            };
        }
    }
    if now >= timer.due_at {
        return Verdict::Breached {
            late_touch: touch.cloned(),
        };
    }
    let sent = timer.reminders_sent as usize;
    let pending = reminder_at(sla, calendar, timer.started_at, sent);
    let next_reminder = |i: usize| {
        reminder_at(sla, calendar, timer.started_at, i)
            .map_or(timer.due_at, |r| r.min(timer.due_at))
    };
    match pending {
        Some(at) if at <= now => Verdict::Remind {
            index: u32::try_from(sent).unwrap_or(u32::MAX),
            next_at: next_reminder(sent + 1),
        },
        Some(at) => Verdict::Wait {
            next_at: at.min(timer.due_at),
        },
        None => Verdict::Wait {
            next_at: timer.due_at,
        },
    }
}

/// The escalation step for breach number `attempt` of a record (0: the first owner's).
pub fn step_for(sla: &Sla, attempt: u32) -> Option<BreachStep> {
    let last = sla.on_breach.len().checked_sub(1)?;
    sla.on_breach.get((attempt as usize).min(last)).copied()
}

/// The members a reassignment may pick: the pool's members except the last
/// `skip_last` owners of the record (most recent first; the breaching owner is first).
pub fn reassign_candidates<'p>(
    members: impl Iterator<Item = &'p OwnerId>,
    recent_owners: &[OwnerId],
    skip_last: u32,
) -> Vec<&'p OwnerId> {
    let skip = &recent_owners[..recent_owners.len().min(skip_last.max(1) as usize)];
    members.filter(|m| !skip.contains(m)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::TouchKind;

    fn sla(extra: &str) -> Sla {
        let text = format!(
            r#"
[reps.a]
owner = "1"
[reps.b]
owner = "2"
[pools.p]
strategy = "round_robin"
members = ["a", "b"]
[default]
action = "pool"
pool = "p"
[[sla]]
name = "first-touch"
within_secs = 900
on_breach = ["reassign", "exception"]
{extra}
"#
        );
        let (policy, _) = crate::policy::parse("p.toml", &text).unwrap();
        policy.slas[0].clone()
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn timer() -> TimerClock {
        TimerClock {
            owner: OwnerId::new("1"),
            started_at: t("2026-01-05T10:00:00Z"),
            due_at: t("2026-01-05T10:15:00Z"),
            reminders_sent: 0,
        }
    }

    #[test]
    fn a_touch_in_time_meets_the_sla_even_when_learned_late() {
        let sla = sla("");
        let touch = Touch {
            at: t("2026-01-05T10:10:00Z"),
            kind: TouchKind::Activity,
            by: None,
        };
        // Learned an hour after the deadline (a lost webhook caught by polling).
        let v = evaluate(
            &sla,
            &Calendar::always(),
            &timer(),
            Some(&touch),
            t("2026-01-05T11:15:00Z"),
        );
        assert_eq!(
            v,
            Verdict::Met {
                touch,
                working: Duration::minutes(10)
            }
        );
    }

    #[test]
    fn reminders_come_before_the_breach() {
        let sla = sla("remind_before_secs = [300]");
        let cal = Calendar::always();
        let (due, next) = schedule(&sla, &cal, timer().started_at).unwrap();
        assert_eq!((due, next), (timer().due_at, t("2026-01-05T10:10:00Z")));
        let v = evaluate(&sla, &cal, &timer(), None, next);
        assert_eq!(
            v,
            Verdict::Remind {
                index: 0,
                next_at: due
            }
        );
        let reminded = TimerClock {
            reminders_sent: 1,
            ..timer()
        };
        assert_eq!(
            evaluate(&sla, &cal, &reminded, None, t("2026-01-05T10:12:00Z")),
            Verdict::Wait { next_at: due }
        );
        assert_eq!(
            evaluate(&sla, &cal, &reminded, None, due),
            Verdict::Breached { late_touch: None }
        );
    }

    #[test]
    fn touches_before_the_assignment_in_the_future_or_by_others_do_not_count() {
        let sla = sla("touch_by = \"owner\"\ntouches = [\"call\", \"email\"]");
        let now = t("2026-01-05T10:05:00Z");
        let touches = vec![
            Touch {
                at: t("2026-01-05T09:00:00Z"),
                kind: TouchKind::Call,
                by: Some(OwnerId::new("1")),
            },
            Touch {
                at: t("2026-01-06T09:00:00Z"),
                kind: TouchKind::Call,
                by: Some(OwnerId::new("1")),
            },
            Touch {
                at: t("2026-01-05T10:01:00Z"),
                kind: TouchKind::Email,
                by: Some(OwnerId::new("2")),
            },
            Touch {
                at: t("2026-01-05T10:02:00Z"),
                kind: TouchKind::Note,
                by: Some(OwnerId::new("1")),
            },
            Touch {
                at: t("2026-01-05T10:03:00Z"),
                kind: TouchKind::Call,
                by: Some(OwnerId::new("1")),
            },
        ];
        let (first, rejected) = first_touch(&sla, &timer(), &touches, now);
        assert_eq!(first.unwrap().at, t("2026-01-05T10:03:00Z"));
        let why: Vec<Rejected> = rejected.iter().map(|(_, w)| *w).collect();
        assert_eq!(why, vec![Rejected::InTheFuture, Rejected::NotTheOwner]);
        // Anyone's touch counts when the SLA says so.
        let anyone = self::sla("touches = [\"call\", \"email\"]");
        let (first, _) = first_touch(&anyone, &timer(), &touches, now);
        assert_eq!(first.unwrap().at, t("2026-01-05T10:01:00Z"));
    }

    #[test]
    fn the_chain_advances_per_breach_and_stays_on_its_last_step() {
        let sla = sla("");
        assert_eq!(step_for(&sla, 0), Some(BreachStep::Reassign));
        assert_eq!(step_for(&sla, 1), Some(BreachStep::Exception));
        assert_eq!(step_for(&sla, 7), Some(BreachStep::Exception));
    }

    #[test]
    fn reassignment_skips_the_last_owners() {
        let members = [OwnerId::new("1"), OwnerId::new("2"), OwnerId::new("3")];
        let recent = [OwnerId::new("2"), OwnerId::new("1")];
        let got = reassign_candidates(members.iter(), &recent, 2);
        assert_eq!(got, vec![&OwnerId::new("3")]);
        let got = reassign_candidates(members.iter(), &recent, 1);
        assert_eq!(got, vec![&OwnerId::new("1"), &OwnerId::new("3")]);
    }
}
