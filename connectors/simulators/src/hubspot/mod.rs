//! Faithful HubSpot API simulator: CRM v3 objects (list, read, batch, search,
//! merge, archive), owners, v4 associations, OAuth, the real rate limits and
//! headers, scripted faults, human-like mutations and signed webhook
//! deliveries. Start it with [`spawn`]; it serves real HTTP on 127.0.0.1.
//!
//! Files by noun: `state` (records and indexes), `generator` (seeded org),
//! `schema` (property definitions), `objects`/`search`/`owners`/
//! `associations`/`auth` (HTTP routes per API family), `limits`, `faults`,
//! `webhooks`, `control` (`/__sim/*`, stats, write log, mutations), `create`
//! (record creation, single and batch), `form_fills` (`/__sim/stream`), `server`
//! (accept loop, middleware, connection resets), `wire` (shared JSON shapes).
//!
//! Decisions where HubSpot's behaviour is undocumented (connectors must not
//! depend on the simulator being kinder than this):
//! - Index lag: a record modified less than `search_lag` ago is absent from
//!   search entirely (its previous version is not served either); GET and
//!   list see it at once.
//! - `hubspot_owner_id` options are the ACTIVE owners: writing a deactivated
//!   (archived) owner's id, a user id or any other number is a whole-call
//!   400 `INVALID_OPTION`; records keep archived owners' ids set earlier.
//! - A write that changes nothing is applied and logged (write log
//!   `changed: false`) but does not move the last-modified stamp; imports
//!   (`Mutation::BulkImport`) stamp every row they touch.
//! - batch/update and PATCH of a merged-away id write to the surviving
//!   record and answer with the survivor's id (as GET does).
//! - Parent companies: `hs_parent_company_id` (read-only), as HubSpot mirrors
//!   its parent/child company association (types 13/14); company↔company
//!   associations themselves are not served.
//! - Owners' time zones exist only in [`HubSpotState`] (`SimOwner::time_zone`):
//!   HubSpot's owners API has no time-zone field, so none is served.
//! - OAuth calls share the configured 10-second limit and carry no daily
//!   limit or daily headers; static tokens count against both.
//! - Creates (`create.rs`): no company is associated by email domain (a portal
//!   setting, off here); `propertyChange` events for values set at creation
//!   only with `creation_property_events`; `contact.creation` events carry
//!   `changeFlag: "NEW"` as HubSpot's test events do. Form-fill streams
//!   (`form_fills.rs`) create through the same path with `changeSource: "FORM"`.

// Route helpers bail out early with a ready HTTP response; those Results
// live for one call frame, so boxing the response buys nothing.
#![allow(clippy::result_large_err)]

mod account;
mod associations;
mod auth;
mod clock;
mod control;
mod create;
mod engagements;
mod faults;
mod form_fills;
mod generator;
mod limits;
mod objects;
mod owners;
mod properties;
mod schema;
mod search;
mod server;
mod state;
mod webhooks;
mod wire;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use control::{Mutation, MutationResult, Regenerate, SimStats, WriteLogEntry};
pub use faults::{EndpointFamily, Fault, FaultRule, FaultScript, Trigger};
pub use schema::ObjectType;
pub use state::{HubSpotState, SimAssociation, SimOwner, SimRecord, SimTeam};

use faults::FaultEngine;
use limits::Limiter;
use state::{StampedEvent, Store};

/// Configuration of one simulated portal.
#[derive(Clone)]
pub struct HubSpotSimConfig {
    /// 0 = any free port on 127.0.0.1.
    pub port: u16,
    /// Generator and fault seed.
    pub seed: u64,
    /// Generated contacts.
    pub contacts: usize,
    /// Generated companies.
    pub companies: usize,
    /// Generated owners.
    pub owners: usize,
    /// Static private-app token accepted as Bearer.
    pub token: String,
    /// OAuth app client id.
    pub client_id: String,
    /// OAuth app client secret; also the webhook signing secret.
    pub client_secret: String,
    /// Refresh token accepted by `POST /oauth/v1/token` and `/oauth/v3/token`.
    pub refresh_token: String,
    /// Lifetime of issued OAuth access tokens (HubSpot: 30 minutes).
    pub access_token_ttl: Duration,
    /// Hub id.
    pub portal_id: u64,
    /// App id (webhook `appId`).
    pub app_id: u64,
    /// Calls per rolling 10 s (190 Professional/Enterprise, 100 Free/Starter).
    pub ten_second_limit: u32,
    /// Calls per day, reset at local midnight of `portal_time_zone`.
    pub daily_limit: u64,
    /// Search requests per second.
    pub search_per_second: u32,
    /// Search index lag: records modified more recently are not yet found.
    pub search_lag: Duration,
    /// Where to POST signed event batches.
    pub webhook_url: Option<String>,
    /// First webhook retry delay (real: minutes; tests: milliseconds).
    pub webhook_retry_base: Duration,
    /// IANA time zone of the portal (daily-limit reset).
    pub portal_time_zone: String,
    /// Associations per input page of the v4 batch read.
    pub association_page_size: usize,
    /// Serve HTTPS with a certificate generated at start-up (trust [`HubSpotSim::ca_pem`]).
    pub tls: bool,
    /// Also send a `propertyChange` event for each subscribed property set by a
    /// create (whether HubSpot does is unconfirmed; off by default).
    pub creation_property_events: bool,
}

impl Default for HubSpotSimConfig {
    fn default() -> Self {
        HubSpotSimConfig {
            port: 0,
            seed: 42,
            contacts: 500,
            companies: 80,
            owners: 12,
            token: "pat-na1-6b1f3c2e-4d5a-4e8b-9c0d-1a2b3c4d5e6f".into(),
            client_id: "5f2d7a3c-8e41-4b9a-a6d2-0c7e1f9b3a55".into(),
            client_secret: "c7a0e9d4-2b6f-4f18-9e3a-5d8c1b7f2e60".into(),
            refresh_token: "na1-8f3c-2d1e-4a5b-9c7d-6e0f1a2b3c4d".into(),
            access_token_ttl: Duration::from_secs(1800),
            portal_id: 62_515,
            app_id: 54_321,
            ten_second_limit: 190,
            daily_limit: 1_000_000,
            search_per_second: 5,
            search_lag: Duration::from_secs(2),
            webhook_url: None,
            webhook_retry_base: Duration::from_secs(60),
            portal_time_zone: "America/New_York".into(),
            association_page_size: 500,
            tls: false,
            creation_property_events: false,
        }
    }
}

impl fmt::Debug for HubSpotSimConfig {
    // Secrets stay out of logs even in a simulator.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSpotSimConfig")
            .field("port", &self.port)
            .field("seed", &self.seed)
            .field("contacts", &self.contacts)
            .field("companies", &self.companies)
            .field("owners", &self.owners)
            .field("portal_id", &self.portal_id)
            .field("app_id", &self.app_id)
            .field("ten_second_limit", &self.ten_second_limit)
            .field("daily_limit", &self.daily_limit)
            .field("search_per_second", &self.search_per_second)
            .field("search_lag", &self.search_lag)
            .field("webhook_url", &self.webhook_url)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Shared state behind every handle and handler.
pub(crate) struct Inner {
    pub(crate) config: HubSpotSimConfig,
    pub(crate) store: RwLock<Store>,
    pub(crate) tokens: Mutex<auth::TokenBook>,
    pub(crate) limits: Mutex<Limiter>,
    pub(crate) faults: Mutex<FaultEngine>,
    pub(crate) stats: Mutex<control::StatsBook>,
    pub(crate) write_log: Mutex<Vec<WriteLogEntry>>,
    pub(crate) webhook_url: RwLock<Option<String>>,
    pub(crate) events_tx: mpsc::UnboundedSender<Vec<StampedEvent>>,
    pub(crate) base_url: String,
    pub(crate) cancel: CancellationToken,
    /// Set when `config.tls`: the acceptor and the CA clients must trust.
    pub(crate) tls: Option<crate::tls::SimTls>,
    /// Form-fill streams started with `POST /__sim/stream`.
    pub(crate) streams: Mutex<crate::stream::Streams>,
}

impl Inner {
    /// Hands the events a change produced to the webhook dispatcher.
    pub(crate) fn flush_events(&self, store: &mut Store) {
        if store.pending_events.is_empty() {
            return;
        }
        let events = std::mem::take(&mut store.pending_events);
        // The dispatcher only goes away on shutdown, when events no longer matter.
        let _ = self.events_tx.send(events);
    }

    pub(crate) fn generate(config: &HubSpotSimConfig) -> Store {
        generator::generate(&generator::GenSpec {
            seed: config.seed,
            contacts: config.contacts,
            companies: config.companies,
            owners: config.owners,
            portal_id: config.portal_id,
            now_ms: clock::now_ms(),
        })
    }

    pub(crate) fn new_limiter(config: &HubSpotSimConfig) -> Limiter {
        let tz = config
            .portal_time_zone
            .parse::<chrono_tz::Tz>()
            .unwrap_or(chrono_tz::America::New_York);
        Limiter::new(
            config.ten_second_limit,
            config.daily_limit,
            config.search_per_second,
            tz,
        )
    }
}

/// Handle to a running simulator (cheap to clone).
#[derive(Clone)]
pub struct HubSpotSim {
    inner: Arc<Inner>,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl fmt::Debug for HubSpotSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSpotSim")
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

/// Generates the portal and starts serving it on 127.0.0.1.
pub async fn spawn(config: HubSpotSimConfig) -> std::io::Result<HubSpotSim> {
    if config.portal_time_zone.parse::<chrono_tz::Tz>().is_err() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "HubSpotSimConfig.portal_time_zone {:?} is not an IANA time zone; use e.g. \"America/New_York\"",
                config.portal_time_zone
            ),
        ));
    }
    let tls = if config.tls {
        Some(crate::tls::SimTls::generate()?)
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
    let addr = listener.local_addr()?;
    let store = Inner::generate(&config);
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let inner = Arc::new(Inner {
        tokens: Mutex::new(auth::TokenBook::default()),
        limits: Mutex::new(Inner::new_limiter(&config)),
        faults: Mutex::new(FaultEngine::new(&FaultScript::default())),
        stats: Mutex::new(control::StatsBook::default()),
        write_log: Mutex::new(Vec::new()),
        webhook_url: RwLock::new(config.webhook_url.clone()),
        events_tx,
        base_url: crate::tls::base_url(tls.as_ref(), addr),
        cancel: CancellationToken::new(),
        tls,
        streams: Mutex::new(crate::stream::Streams::default()),
        store: RwLock::new(store),
        config,
    });
    let server = tokio::spawn(server::serve(listener, inner.clone()));
    let dispatcher = tokio::spawn(webhooks::dispatch(inner.clone(), events_rx));
    Ok(HubSpotSim {
        inner,
        tasks: Arc::new(Mutex::new(vec![server, dispatcher])),
    })
}

impl HubSpotSim {
    /// `http://127.0.0.1:PORT`, or `https://127.0.0.1:PORT` with `tls`.
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// PEM of the CA certificate clients must trust when `tls` is on (`None` otherwise).
    pub fn ca_pem(&self) -> Option<String> {
        self.inner.tls.as_ref().map(crate::tls::SimTls::ca_pem)
    }

    /// The static private-app token.
    pub fn token(&self) -> String {
        self.inner.config.token.clone()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &HubSpotSimConfig {
        &self.inner.config
    }

    /// Deep copy of every record, owner and association (live and archived).
    pub fn state(&self) -> HubSpotState {
        self.inner.store.read().snapshot()
    }

    /// Calls per endpoint, statuses, 429s served, writes, webhook figures.
    pub fn stats(&self) -> SimStats {
        control::stats(&self.inner)
    }

    /// Every property write applied through the API, in order.
    pub fn write_log(&self) -> Vec<WriteLogEntry> {
        self.inner.write_log.lock().clone()
    }

    /// Replaces the fault script (also `POST /__sim/faults`).
    pub fn set_faults(&self, faults: FaultScript) {
        control::set_faults(&self.inner, &faults);
    }

    /// Changes records as a person in the UI would (also `POST /__sim/mutate`).
    pub fn mutate(&self, m: Mutation) -> Result<MutationResult, String> {
        control::mutate(&self.inner, m)
    }

    /// Starts a form-fill stream: `per_second` new `object` records a second for
    /// `seconds`, created in the background through the public create path (also
    /// `POST /__sim/stream`). Returns the stream id for [`HubSpotSim::stream_report`].
    /// Call it inside the tokio runtime the simulator runs on.
    pub fn start_stream(
        &self,
        per_second: u32,
        seconds: u32,
        object: ObjectType,
    ) -> Result<String, String> {
        let body = serde_json::json!({
            "per_second": per_second,
            "seconds": seconds,
            "object": object.as_str(),
        });
        let request = crate::stream::StreamRequest::parse(body.to_string().as_bytes())?;
        let accepted = form_fills::start(&self.inner, request)?;
        Ok(accepted["id"].as_str().unwrap_or_default().to_owned())
    }

    /// A stream's progress as `GET /__sim/stream/{id}` reports it: `created`,
    /// `done`, and `records` with each record's `id` and `created_at_ms`.
    pub fn stream_report(&self, id: &str) -> Option<serde_json::Value> {
        self.inner.streams.lock().report(id)
    }

    /// Regenerates the portal's records from another seed, with older stamps (also
    /// `POST /__sim/regenerate`): a refreshed sandbox or a restored backup.
    pub fn regenerate(&self, spec: Regenerate) {
        control::regenerate(&self.inner, spec);
    }

    /// Points webhook deliveries somewhere else (None stops them).
    pub fn set_webhook_url(&self, url: Option<String>) {
        *self.inner.webhook_url.write() = url;
    }

    /// Stops serving and delivering.
    pub async fn shutdown(self) {
        self.inner.cancel.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for task in tasks {
            let _ = task.await;
        }
    }
}
