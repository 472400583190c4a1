//! The running pipeline (`leadroute run`) and the pieces every front end (CLI, demo,
//! sidecar) drives the same way.
//!
//! `commit`: the one "commit a plan" path (ledger, exceptions, run); `leader`: a named
//! lease kept by a task; `schedule`: cron jobs in a time zone with missed-run catch-up;
//! `reports`: scheduled drift reports on disk.

pub mod commit;
pub mod leader;
pub mod reports;
pub mod schedule;
