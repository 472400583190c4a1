//! Desired vs actual -> Plan. STAND-IN on the writer branch: only the plan types the
//! writer consumes (INTERFACES.md "Policy and reconcile"); the policy branch owns this
//! module and its version replaces this file on merge.

pub mod plan;

pub use plan::{Plan, PlannedChange, PlannedException};
