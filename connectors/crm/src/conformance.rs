//! The conformance suite every connector passes against its simulator.
//!
//! Filled in by the Salesforce issue; the HubSpot connector's integration tests cover
//! the same ground until then.
