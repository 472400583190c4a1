//! Integration tests of the HubSpot connector against the HubSpot simulator over real
//! HTTP on 127.0.0.1.

mod common;
mod faults;
mod sync;
mod webhooks;
mod writes;
