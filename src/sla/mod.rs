//! SLA timers to first touch (issue 12): when leadroute's write of an owner is
//! acknowledged (an `applied` outcome in the writer's journal), each `[[sla]]` of the
//! policy that applies to the record's rule or pool starts a timer on its calendar;
//! a touch (read through a [`touch::TouchSource`]) stops it at the touch's own time;
//! reminders fire before the deadline; a breach takes the next step of the escalation
//! chain (reassign within the pool skipping the last N owners, the rep's manager, an
//! exception, an outgoing webhook).
//!
//! `engine` is the pure part (what a timer does at `now`, given its touches),
//! `touch` the sources of touches, `notify` the signed outgoing webhook, and `run`
//! the sidecar task that drives timers through the store (`store::sla`) with O(due)
//! work per tick.

pub mod engine;
pub mod notify;
pub mod report;
pub mod run;
pub mod touch;
