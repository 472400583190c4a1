//! The running pipeline (`leadroute run`) and the pieces every front end shares.
//!
//! `schedule`: cron jobs in a time zone with missed-run catch-up; `reports`: scheduled
//! drift reports on disk.

pub mod leader;
pub mod reports;
pub mod schedule;
