//! Faithful HubSpot and Salesforce API simulators for tests, benchmarks and
//! the demo. Each serves real HTTP on 127.0.0.1 and imports nothing from the
//! connectors, so one misreading of an API cannot pass on both sides.

pub mod hubspot;
pub mod salesforce;
mod stream;
mod tls;
