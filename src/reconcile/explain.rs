//! Explain rendering.
