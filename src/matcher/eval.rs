//! Matching evaluation (placeholder while the generator is written).
