//! Simulators (placeholder).
pub mod hubspot;
