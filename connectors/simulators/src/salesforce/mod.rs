//! A faithful Salesforce REST API simulator: one org (Leads, Contacts, Accounts, Users,
//! Queues) behind the OAuth token endpoint, SOQL query/queryAll, sObject and
//! Collections writes, `/composite`, Bulk API 2.0 ingest, getUpdated/getDeleted,
//! describe and limits, with the org's lead assignment rule, the daily API allocation,
//! scripted faults, outbound messages and `/__sim/` control endpoints.
//!
//! Spawn it in-process with [`spawn`]; everything a connector relies on goes over real
//! HTTP on 127.0.0.1 (HTTP/1.1; HTTPS with a generated certificate when `tls` is set).
//!
//! Behaviour a connector must survive, modelled on purpose:
//! - Activities: `Task` (`00T`) and `Event` (`00U`) are created, updated and queried
//!   like the other sObjects (`WhoId` a lead or contact, `WhatId` an account). A Task's
//!   `Status` defaults to `Not Started`, `Completed` closes it (`IsClosed`,
//!   `CompletedDateTime`); an Event's `ActivityDate` is its start's date. A closed
//!   Task (its `ActivityDate`, else today) or an Event moves the `WhoId` record's
//!   `LastActivityDate` (a Date, only forward, future dates included), which stamps
//!   that record and can fire its outbound message (`writes::bump_last_activity`).
//!   No control endpoint logs a Salesforce touch yet: use `POST sobjects/Task`.
//! - REST creates and updates of Leads run the active assignment rule unless the
//!   request (or the `/composite` subrequest) says `Sforce-Auto-Assign: FALSE`; Bulk
//!   API 2.0 runs it only when the job names an `assignmentRuleId`. The org has one
//!   rule, so an `01Q…` rule id in the header runs that rule. A create without an
//!   owner and without the rule is owned by the calling (integration) user.
//! - Form-fill streams (`POST /__sim/stream`, `form_fills.rs`) are Web-to-Lead
//!   submissions: created through the same `writes::create` as `POST sobjects/Lead`,
//!   with the assignment rule on, outbound messages sent, no API allocation used.
//! - `SystemModstamp` has one-second precision, moves on every write (even a no-op
//!   owner write), and with the `late_commit_ms` fault a write becomes visible to
//!   queries and getUpdated only after a delay, stamped at its original second.
//! - Query locators are single-use, sequential and expire when idle; `queryAll`
//!   continuations say `/query/`; `totalSize` counts the whole result.
//! - Collections answer HTTP 200 with per-record results by position; allOrNone
//!   failures mark innocent records `ALL_OR_NONE_OPERATION_ROLLED_BACK`.
//! - Limits answer 403 `REQUEST_LIMIT_EXCEEDED` (daily allocation, concurrent
//!   long-running requests), never 429.
//!
//! Known gaps (say so rather than pretend): SOQL has no child
//! sub-queries, semi-joins, `GROUP BY`, `TYPEOF` or `FIELDS()` (they fail with
//! `MALFORMED_QUERY` saying so); Bulk API 2.0 ingest implements insert, update and
//! delete (upsert and hardDelete answer an error saying so), and no query jobs;
//! records stay in the recycle bin until undeleted (no 15-day purge); no Change Data
//! Capture, SOAP API or UI flows beyond the human-style [`Mutation`]s.

mod bulk;
mod control;
mod faults;
mod form_fills;
#[doc(hidden)]
pub mod fuzzing;
mod generator;
pub mod ids;
mod limits;
mod org;
mod outbound;
mod routes;
mod schema;
mod server;
mod soql;
mod state;
mod writes;

use std::sync::Arc;
use std::time::Duration;

pub use control::{Mutation, MutationResult};
pub use faults::FaultScript;
pub use limits::SimStats;
pub use org::WriteLogEntry;
pub use state::{
    SalesforceState, SfAccount, SfContact, SfGroupMember, SfLead, SfQueue, SfQueueSobject, SfUser,
};

/// The org's active lead assignment rule, which REST creates and updates of Leads run
/// unless the request says `Sforce-Auto-Assign: FALSE`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LeadAssignmentRule {
    /// No active rule: REST writes keep the owner they send.
    Inactive,
    /// Every lead goes to this queue (by queue name).
    Queue { queue_name: String },
    /// Round robin over the active users whose `Country` equals the lead's `Country`;
    /// leads from other countries go to `fallback_queue` (by queue name).
    RoundRobinByCountry { fallback_queue: String },
}

/// How to build and run the simulated org. `Default` is a realistic small org, seed 42.
#[derive(Debug, Clone)]
pub struct SalesforceSimConfig {
    /// 0 = any free port on 127.0.0.1.
    pub port: u16,
    pub seed: u64,
    pub leads: usize,
    pub contacts: usize,
    pub accounts: usize,
    pub users: usize,
    pub queues: usize,
    /// 18-character organization id (`00D…`).
    pub org_id: String,
    /// Connected-app consumer key (JWT `iss`, refresh and client-credentials flows).
    pub client_id: String,
    pub client_secret: String,
    /// The refresh token the org starts with (as if a user had authorized the app).
    pub refresh_token: String,
    /// Each refresh returns a new refresh token and kills the old one.
    pub rotate_refresh_tokens: bool,
    /// Certificate (or public key) PEM the JWT bearer assertions must verify against;
    /// `None` disables the JWT flow (`invalid_grant`).
    pub jwt_certificate_pem: Option<String>,
    /// The integration user's username (JWT `sub`; client-credentials "run as").
    pub username: String,
    /// A session usable without OAuth (for tools that cannot do it).
    pub pre_issued_token: Option<String>,
    /// Idle timeout of sessions (real orgs: 2 h by default).
    pub session_ttl: Duration,
    /// Rolling 24-hour API request allocation.
    pub daily_api_limit: u64,
    /// Where outbound messages (SOAP notifications) are POSTed; `None` = off.
    pub outbound_url: Option<String>,
    /// First retry delay of an unacknowledged outbound message (doubles each time).
    pub outbound_retry_base: Duration,
    /// How long changes are gathered into one notifications envelope.
    pub outbound_batch_window: Duration,
    pub lead_assignment_rule: LeadAssignmentRule,
    /// The validation rule "a lead with Routing_Locked__c = true cannot change owner".
    pub validation_rule: bool,
    /// Fraction of generated leads with `Routing_Locked__c = true`.
    pub locked_lead_fraction: f64,
    /// A request running at least this long counts as long-running (real: 20 s).
    pub long_running_threshold: Duration,
    /// Concurrent long-running requests allowed (real: 25 production, 5 developer).
    pub max_long_running: usize,
    /// Idle lifetime of a query locator.
    pub query_locator_ttl: Duration,
    /// Generated records are stamped within this many days before now.
    pub history_days: u32,
    /// How long a Bulk API 2.0 job stays InProgress before completing.
    pub bulk_processing_delay: Duration,
    /// Rows an InProgress job processes per step (Salesforce works through a job in
    /// internal batches); between steps it may be aborted, leaving the rows already
    /// processed written and the rest unprocessed. `usize::MAX`: one step.
    pub bulk_step_rows: usize,
    /// Pause between two processing steps of one job.
    pub bulk_step_delay: Duration,
    /// Serve HTTPS with a certificate generated at start-up (trust
    /// [`SalesforceSim::ca_pem`]); the token response's `instance_url` is then https too.
    pub tls: bool,
}

impl Default for SalesforceSimConfig {
    fn default() -> Self {
        Self {
            port: 0,
            seed: 42,
            leads: 1_500,
            contacts: 1_000,
            accounts: 250,
            users: 20,
            queues: 3,
            org_id: ids::to18("00D8d000000Sim0"),
            client_id: "3MVG9sim.leadroute.consumer.key".to_owned(),
            client_secret: "sim-consumer-secret".to_owned(),
            refresh_token: "5Aep861sim.refresh.token".to_owned(),
            rotate_refresh_tokens: false,
            jwt_certificate_pem: None,
            username: "integration@leadroute-sim.example".to_owned(),
            pre_issued_token: None,
            session_ttl: Duration::from_secs(2 * 3600),
            daily_api_limit: 100_000,
            outbound_url: None,
            outbound_retry_base: Duration::from_secs(1),
            outbound_batch_window: Duration::from_millis(200),
            lead_assignment_rule: LeadAssignmentRule::RoundRobinByCountry {
                fallback_queue: "Lead Intake".to_owned(),
            },
            validation_rule: true,
            locked_lead_fraction: 0.005,
            long_running_threshold: Duration::from_secs(20),
            max_long_running: 25,
            query_locator_ttl: Duration::from_secs(15 * 60),
            history_days: 20,
            bulk_processing_delay: Duration::from_millis(50),
            bulk_step_rows: usize::MAX,
            bulk_step_delay: Duration::ZERO,
            tls: false,
        }
    }
}

/// A running simulator. Cheap to clone; `shutdown` stops the server for all clones.
#[derive(Clone)]
pub struct SalesforceSim {
    shared: Arc<server::Shared>,
}

impl std::fmt::Debug for SalesforceSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceSim")
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

/// Generates the org and serves it on 127.0.0.1.
pub async fn spawn(config: SalesforceSimConfig) -> std::io::Result<SalesforceSim> {
    let shared = server::start(config).await?;
    Ok(SalesforceSim { shared })
}

impl SalesforceSim {
    /// `http://127.0.0.1:PORT` (`https://` with `tls`): both the login host and the
    /// instance URL.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// PEM of the CA certificate clients must trust when `tls` is on (`None` otherwise).
    pub fn ca_pem(&self) -> Option<String> {
        self.shared.tls.as_ref().map(crate::tls::SimTls::ca_pem)
    }

    /// A valid access token (the pre-issued one when configured, else a new session).
    pub fn token(&self) -> String {
        self.shared.issue_token_for_tests()
    }

    pub fn org_id(&self) -> String {
        self.shared.config.org_id.clone()
    }

    /// A deep copy of every record, live and deleted.
    pub fn state(&self) -> SalesforceState {
        state::snapshot(&self.shared.org.lock())
    }

    pub fn stats(&self) -> SimStats {
        self.shared.stats()
    }

    /// Every field written through the API, in order.
    pub fn write_log(&self) -> Vec<WriteLogEntry> {
        self.shared.org.lock().write_log.clone()
    }

    /// Replaces the fault script (also `POST /__sim/faults`).
    pub fn set_faults(&self, faults: FaultScript) {
        self.shared.set_faults(faults);
    }

    /// Changes the org "as a human" would (also `POST /__sim/mutate`).
    pub fn mutate(&self, mutation: Mutation) -> Result<MutationResult, String> {
        control::mutate(&self.shared, mutation)
    }

    /// Starts a Web-to-Lead form-fill stream: `per_second` new records (`object`:
    /// "Lead" or "Contact") a second for `seconds`, created in the background through
    /// the REST create path (also `POST /__sim/stream`). Returns the stream id for
    /// [`SalesforceSim::stream_report`]. Call it inside the simulator's tokio runtime.
    pub fn start_stream(
        &self,
        per_second: u32,
        seconds: u32,
        object: &str,
    ) -> Result<String, String> {
        let body = serde_json::json!({
            "per_second": per_second,
            "seconds": seconds,
            "object": object,
        });
        let request = crate::stream::StreamRequest::parse(body.to_string().as_bytes())?;
        let accepted = form_fills::start(&self.shared, request).map_err(|(_, message)| message)?;
        Ok(accepted["id"].as_str().unwrap_or_default().to_owned())
    }

    /// A stream's progress as `GET /__sim/stream/{id}` reports it: `created`,
    /// `done`, and `records` with each record's `id` and `created_at_ms`.
    pub fn stream_report(&self, id: &str) -> Option<serde_json::Value> {
        self.shared.streams.lock().report(id)
    }

    pub fn set_outbound_url(&self, url: Option<String>) {
        *self.shared.outbound_url.lock() = url;
    }

    /// Stops the server and background tasks.
    pub async fn shutdown(self) {
        self.shared.shutdown().await;
    }
}
