//! Simulators (placeholder).
pub mod hubspot;
pub mod salesforce;
mod tls;
