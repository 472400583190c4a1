//! Simulators (placeholder).
pub mod salesforce;
