//! leadroute: the routing layer beside HubSpot and Salesforce.
//!
//! Mirror (connectors + `mirror` + `store`), reconcile (`matcher`, `policy`,
//! `reconcile`), converge (`writer`), operate (`cli`, `web`). See ARCHITECTURE.md.

pub mod analytics;
pub mod app;
pub mod cli;
pub mod config;
pub mod console;
pub mod domain;
pub mod matcher;
pub mod mirror;
pub mod policy;
pub mod reconcile;
pub mod service;
pub mod sla;
pub mod store;
pub mod web;
pub mod writer;
