//! Drift report.
