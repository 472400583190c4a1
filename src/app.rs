//! The only module that names connector crates and store backends: it picks the
//! concrete CRM client from config once and hands it to the generic core.
