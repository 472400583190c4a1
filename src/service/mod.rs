//! Services the commands and the sidecar share: loading config, store and policy.

pub mod load;
