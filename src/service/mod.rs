//! Library operations every front end (CLI, demo, sidecar) drives the same way.

pub mod commit;
