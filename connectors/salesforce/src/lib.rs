//! salesforce connector (placeholder).
