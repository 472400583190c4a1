//! leadroute's integration tests: one binary, one module per area.

// clippy.toml allows unwrap in tests, but clippy only sees `#[test]` fns as tests, not
// the helpers and scenarios they call in this test-only crate.
#![allow(clippy::unwrap_used)]

mod activities;
mod canary;
mod cli;
mod commit;
mod console;
mod fleet;
mod helpers;
mod leases;
mod match_cli;
mod mirror;
mod orgs;
mod reconcile;
mod report_cli;
mod runs_cli;
mod sidecar;
mod sim_cli;
mod sla;
mod standby;
mod store;
mod tidy;
mod webhooks;
mod writer;
mod writer_salesforce;
