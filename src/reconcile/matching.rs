//! The matcher as the reconciler sees it: the real `crate::matcher` (one import point,
//! so the reconciler, drift, explain and fixtures all match the same way).

pub use crate::matcher::*;
