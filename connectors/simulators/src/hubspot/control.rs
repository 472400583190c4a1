//! The simulator's own control surface (`/__sim/*` and the matching
//! `HubSpotSim` methods): call statistics, the write log, fault scripts,
//! reset, and mutations a person would make in HubSpot's UI (edits, creates,
//! merges, archive/restore, bulk imports sharing one timestamp, owner
//! deactivation, seeded random edits). Each mutation stamps records and emits
//! webhook events like the real portal.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::clock::now_ms;
use super::faults::{FaultEngine, FaultScript};
use super::schema::{self, LEAD_STATUSES, LIFECYCLE_STAGES, ObjectType};
use super::state::Source;
use super::wire::json_response;
use super::{Inner, auth};

/// Counters the simulator keeps (also `GET /__sim/stats`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimStats {
    /// Calls per endpoint, e.g. `"GET /crm/v3/objects/contacts"`,
    /// `"POST /crm/v3/objects/contacts/search"` (ids shown as `{id}`).
    pub calls: BTreeMap<String, u64>,
    /// Responses per HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// 429 responses served (real limits and injected storms).
    pub rate_limited: u64,
    /// Property writes applied through the API (no-op rewrites included).
    pub writes: u64,
    /// Records created through the API (single, batch) and form-fill streams.
    #[serde(default)]
    pub creates: u64,
    /// Connections dropped by a `ConnectionReset` fault.
    pub connection_resets: u64,
    /// OAuth token refreshes served.
    pub oauth_refreshes: u64,
    /// Calls counted against today's daily limit.
    pub daily_used: u64,
    /// Webhook batches acknowledged with a 2xx.
    pub webhook_batches_delivered: u64,
    /// Events in acknowledged batches.
    pub webhook_events_delivered: u64,
    /// Delivery attempts that failed (non-2xx, timeout, connection error).
    pub webhook_failed_attempts: u64,
    /// Events given up after the last retry.
    pub webhook_events_dropped: u64,
    /// Extra copies sent by a `DuplicateDelivery` fault.
    pub webhook_duplicates_sent: u64,
}

impl SimStats {
    /// Total API calls (excluding `/__sim`).
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    /// Calls to one endpoint name, 0 if never called.
    pub fn calls_to(&self, endpoint: &str) -> u64 {
        self.calls.get(endpoint).copied().unwrap_or(0)
    }
}

pub(crate) type StatsBook = SimStats;

impl SimStats {
    pub(crate) fn call(&mut self, endpoint: &str) {
        *self.calls.entry(endpoint.to_owned()).or_default() += 1;
    }

    pub(crate) fn status(&mut self, status: u16) {
        *self.statuses.entry(status).or_default() += 1;
    }
}

/// One property write applied through the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteLogEntry {
    /// 1-based order.
    pub seq: u64,
    /// When, epoch ms.
    pub at_ms: i64,
    /// Object type.
    pub object: ObjectType,
    /// Record written (after merge redirects).
    pub id: String,
    /// Id as the caller sent it.
    pub requested_id: String,
    /// Property name.
    pub property: String,
    /// Value before the write (None = unset).
    pub old_value: Option<String>,
    /// Value written.
    pub new_value: String,
    /// False for a no-op rewrite of the same value.
    pub changed: bool,
}

/// A change a person makes in HubSpot (also `POST /__sim/mutate`, JSON with
/// a `kind` tag, e.g. `{"kind":"set_owner","object":"contacts","id":"100003","owner_id":"41629779"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mutation {
    /// Edit properties of a record.
    UpdateProperties {
        /// Object type.
        object: ObjectType,
        /// Record id.
        id: String,
        /// New values (`""` clears).
        properties: BTreeMap<String, String>,
    },
    /// Reassign a record (`""` unassigns).
    SetOwner {
        /// Object type.
        object: ObjectType,
        /// Record id.
        id: String,
        /// Owner id.
        owner_id: String,
    },
    /// Create a record; contacts may be linked to a primary company.
    Create {
        /// Object type.
        object: ObjectType,
        /// Initial values.
        properties: BTreeMap<String, String>,
        /// Primary company of a new contact.
        #[serde(default)]
        company_id: Option<String>,
    },
    /// Merge two records into a new one (new id).
    Merge {
        /// Object type.
        object: ObjectType,
        /// Whose values win.
        primary_id: String,
        /// The other record.
        merged_id: String,
    },
    /// Delete (archive) a record.
    Archive {
        /// Object type.
        object: ObjectType,
        /// Record id.
        id: String,
    },
    /// Restore an archived record (same id).
    Restore {
        /// Object type.
        object: ObjectType,
        /// Record id.
        id: String,
    },
    /// Link a contact to a company.
    Associate {
        /// Contact id.
        contact_id: String,
        /// Company id.
        company_id: String,
        /// Make it the primary company.
        #[serde(default)]
        primary: bool,
    },
    /// Remove the link between a contact and a company.
    Disassociate {
        /// Contact id.
        contact_id: String,
        /// Company id.
        company_id: String,
    },
    /// A spreadsheet import: `update` existing records (seeded pick) and
    /// `create` new ones, all stamped with ONE identical timestamp.
    BulkImport {
        /// Object type.
        object: ObjectType,
        /// Existing records to touch.
        #[serde(default)]
        update: usize,
        /// New records.
        #[serde(default)]
        create: usize,
        /// Values written to every touched record (default: a lead status).
        #[serde(default)]
        properties: BTreeMap<String, String>,
        /// Picks which existing records.
        #[serde(default)]
        seed: u64,
    },
    /// Deactivate a user: the owner becomes archived; records keep its id.
    DeactivateOwner {
        /// Owner id.
        owner_id: String,
    },
    /// Reactivate a deactivated owner.
    ReactivateOwner {
        /// Owner id.
        owner_id: String,
    },
    /// `n` random human edits (owner changes, stage changes, field edits).
    RandomEdits {
        /// How many.
        n: usize,
        /// Seed.
        seed: u64,
    },
}

/// What a mutation did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MutationResult {
    /// Records created or touched (the new id for a merge).
    pub ids: Vec<String>,
    /// The stamp it applied, epoch ms.
    pub at_ms: i64,
}

pub(crate) fn stats(inner: &Inner) -> SimStats {
    let mut stats = inner.stats.lock().clone();
    stats.oauth_refreshes = inner.tokens.lock().refreshes();
    stats.daily_used = inner.limits.lock().daily_used();
    stats
}

pub(crate) fn set_faults(inner: &Inner, script: &FaultScript) {
    *inner.faults.lock() = FaultEngine::new(script);
    if script.expire_tokens {
        inner.tokens.lock().expire_all();
    }
}

fn id(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| format!("{text:?} is not a record id (ids are numeric strings)"))
}

fn check_values(
    store: &super::state::Store,
    object: ObjectType,
    values: &BTreeMap<String, String>,
) -> Result<(), String> {
    for (name, value) in values {
        let Some(def) = schema::property(object, name) else {
            return Err(format!(
                "property {name} does not exist on {}",
                object.as_str()
            ));
        };
        if def.read_only {
            return Err(format!("property {name} is read-only"));
        }
        if name == "hubspot_owner_id" && !value.is_empty() {
            let active = value
                .parse::<u64>()
                .ok()
                .and_then(|o| store.owners.get(&o))
                .is_some_and(|o| !o.archived);
            if !active {
                return Err(format!("{value} is not an active owner id"));
            }
        }
    }
    Ok(())
}

/// Applies a mutation and hands its events to the webhook dispatcher.
pub(crate) fn mutate(inner: &Inner, m: Mutation) -> Result<MutationResult, String> {
    let at = now_ms();
    let mut store = inner.store.write();
    let ui = Source::Ui {
        user_id: store
            .owners
            .values()
            .find(|o| !o.archived)
            .map_or(1, |o| o.user_id),
    };
    let result = match m {
        Mutation::UpdateProperties {
            object,
            id: rid,
            properties,
        } => {
            check_values(&store, object, &properties)?;
            let n = store
                .table(object)
                .live(id(&rid)?)
                .map(|r| r.id)
                .ok_or_else(|| format!("no live {} {rid}", object.singular()))?;
            store.set_properties(object, n, &properties, at, &ui);
            MutationResult {
                ids: vec![n.to_string()],
                at_ms: at,
            }
        }
        Mutation::SetOwner {
            object,
            id: rid,
            owner_id,
        } => {
            let properties = BTreeMap::from([("hubspot_owner_id".to_owned(), owner_id)]);
            check_values(&store, object, &properties)?;
            let n = store
                .table(object)
                .live(id(&rid)?)
                .map(|r| r.id)
                .ok_or_else(|| format!("no live {} {rid}", object.singular()))?;
            store.set_properties(object, n, &properties, at, &ui);
            MutationResult {
                ids: vec![n.to_string()],
                at_ms: at,
            }
        }
        Mutation::Create {
            object,
            properties,
            company_id,
        } => {
            check_values(&store, object, &properties)?;
            if let Some(email) = properties.get("email")
                && store
                    .contacts
                    .by_email
                    .contains_key(&email.to_ascii_lowercase())
                && object == ObjectType::Contacts
            {
                return Err(format!("Contact already exists with email {email}"));
            }
            let company = company_id.as_deref().map(id).transpose()?;
            if let Some(c) = company
                && !store.companies.is_live(c)
            {
                return Err(format!("no live company {c}"));
            }
            let n = store.create(object, properties, at, &ui);
            if let Some(c) = company
                && object == ObjectType::Contacts
            {
                store.associate(n, c, true, at, &ui);
            }
            MutationResult {
                ids: vec![n.to_string()],
                at_ms: at,
            }
        }
        Mutation::Merge {
            object,
            primary_id,
            merged_id,
        } => {
            let new_id = store.merge(object, id(&primary_id)?, id(&merged_id)?, at, &ui)?;
            MutationResult {
                ids: vec![new_id.to_string()],
                at_ms: at,
            }
        }
        Mutation::Archive { object, id: rid } => {
            let n = id(&rid)?;
            if !store.archive(object, n, at, &ui) {
                return Err(format!("no live {} {rid}", object.singular()));
            }
            MutationResult {
                ids: vec![rid],
                at_ms: at,
            }
        }
        Mutation::Restore { object, id: rid } => {
            let n = id(&rid)?;
            if !store.restore(object, n, at, &ui) {
                return Err(format!("no archived {} {rid}", object.singular()));
            }
            MutationResult {
                ids: vec![rid],
                at_ms: at,
            }
        }
        Mutation::Associate {
            contact_id,
            company_id,
            primary,
        } => {
            let (c, k) = (id(&contact_id)?, id(&company_id)?);
            if !store.contacts.is_live(c) || !store.companies.is_live(k) {
                return Err(format!("contact {c} or company {k} is not live"));
            }
            store.associate(c, k, primary, at, &ui);
            MutationResult {
                ids: vec![contact_id, company_id],
                at_ms: at,
            }
        }
        Mutation::Disassociate {
            contact_id,
            company_id,
        } => {
            if !store.disassociate(id(&contact_id)?, id(&company_id)?, at, &ui) {
                return Err(format!(
                    "contact {contact_id} is not linked to company {company_id}"
                ));
            }
            MutationResult {
                ids: vec![contact_id, company_id],
                at_ms: at,
            }
        }
        Mutation::BulkImport {
            object,
            update,
            create,
            properties,
            seed,
        } => {
            check_values(&store, object, &properties)?;
            let mut rng = StdRng::seed_from_u64(seed);
            let live: Vec<u64> = store
                .table(object)
                .by_modified
                .iter()
                .map(|(_, id)| *id)
                .collect();
            let mut chosen: Vec<u64> = live
                .choose_multiple(&mut rng, update.min(live.len()))
                .copied()
                .collect();
            chosen.sort_unstable();
            let mut ids = Vec::with_capacity(update + create);
            for n in chosen {
                let mut values = properties.clone();
                if values.is_empty() && object == ObjectType::Contacts {
                    values.insert(
                        "hs_lead_status".into(),
                        (*LEAD_STATUSES.choose(&mut rng).unwrap_or(&"NEW")).to_owned(),
                    );
                }
                store.set_properties(object, n, &values, at, &Source::Import);
                // Imports stamp every row they touch, changed or not.
                store.table_mut(object).stamp(object, n, at);
                ids.push(n.to_string());
            }
            for i in 0..create {
                let mut values = properties.clone();
                match object {
                    ObjectType::Contacts => {
                        values.insert(
                            "email".into(),
                            format!("import{at}.{i}@imported-leads.example"),
                        );
                        values.insert("firstname".into(), "Imported".into());
                        values.insert("lastname".into(), format!("Lead {i}"));
                    }
                    ObjectType::Companies => {
                        values.insert("name".into(), format!("Imported Company {i}"));
                        values.insert("domain".into(), format!("imported-{at}-{i}.example"));
                    }
                }
                ids.push(
                    store
                        .create(object, values, at, &Source::Import)
                        .to_string(),
                );
            }
            MutationResult { ids, at_ms: at }
        }
        Mutation::DeactivateOwner { owner_id } => {
            let n = id(&owner_id)?;
            let owner = store
                .owners
                .get_mut(&n)
                .ok_or_else(|| format!("no owner {owner_id}"))?;
            owner.archived = true;
            owner.updated_at_ms = at;
            MutationResult {
                ids: vec![owner_id],
                at_ms: at,
            }
        }
        Mutation::ReactivateOwner { owner_id } => {
            let n = id(&owner_id)?;
            let owner = store
                .owners
                .get_mut(&n)
                .ok_or_else(|| format!("no owner {owner_id}"))?;
            owner.archived = false;
            owner.updated_at_ms = at;
            MutationResult {
                ids: vec![owner_id],
                at_ms: at,
            }
        }
        Mutation::RandomEdits { n, seed } => {
            let mut rng = StdRng::seed_from_u64(seed);
            let active: Vec<(u64, u64)> = store
                .owners
                .values()
                .filter(|o| !o.archived)
                .map(|o| (o.id, o.user_id))
                .collect();
            let contacts: Vec<u64> = store
                .contacts
                .by_modified
                .iter()
                .map(|(_, id)| *id)
                .collect();
            let companies: Vec<u64> = store
                .companies
                .by_modified
                .iter()
                .map(|(_, id)| *id)
                .collect();
            let mut ids = Vec::with_capacity(n);
            let mut last = at;
            for i in 0..n {
                let object = if companies.is_empty() || rng.random_bool(0.8) {
                    ObjectType::Contacts
                } else {
                    ObjectType::Companies
                };
                let pool = match object {
                    ObjectType::Contacts => &contacts,
                    ObjectType::Companies => &companies,
                };
                let Some(&target) = pool.choose(&mut rng) else {
                    continue;
                };
                if !store.table(object).is_live(target) {
                    continue;
                }
                let (owner, user) = active.choose(&mut rng).copied().unwrap_or((0, 1));
                let mut values = BTreeMap::new();
                match rng.random_range(0..10) {
                    0..=3 if owner != 0 => {
                        values.insert("hubspot_owner_id".to_owned(), owner.to_string());
                    }
                    4..=6 => {
                        values.insert(
                            "lifecyclestage".to_owned(),
                            (*LIFECYCLE_STAGES.choose(&mut rng).unwrap_or(&"lead")).to_owned(),
                        );
                    }
                    _ => match object {
                        ObjectType::Contacts => {
                            values
                                .insert("jobtitle".to_owned(), format!("Edited title {seed}-{i}"));
                        }
                        ObjectType::Companies => {
                            values.insert(
                                "numberofemployees".to_owned(),
                                rng.random_range(5..50_000).to_string(),
                            );
                        }
                    },
                }
                // Humans are slower than a millisecond per edit; distinct
                // stamps keep the edits ordered.
                last = now_ms().max(last + 1);
                store.set_properties(object, target, &values, last, &Source::Ui { user_id: user });
                ids.push(target.to_string());
            }
            MutationResult { ids, at_ms: last }
        }
    };
    inner.flush_events(&mut store);
    Ok(result)
}

async fn get_stats(State(inner): State<Arc<Inner>>) -> Response {
    json_response(StatusCode::OK, json!(stats(&inner)))
}

async fn get_state(State(inner): State<Arc<Inner>>) -> Response {
    let state = inner.store.read().snapshot();
    json_response(StatusCode::OK, json!(state))
}

async fn get_write_log(State(inner): State<Arc<Inner>>) -> Response {
    let log = inner.write_log.lock().clone();
    json_response(StatusCode::OK, json!(log))
}

fn bad_request(message: String) -> Response {
    json_response(StatusCode::BAD_REQUEST, json!({ "error": message }))
}

async fn post_faults(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultScript>(&body) {
        Ok(script) => {
            set_faults(&inner, &script);
            json_response(StatusCode::OK, json!(script))
        }
        Err(e) => bad_request(format!("not a FaultScript: {e}")),
    }
}

async fn post_mutate(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Mutation>(&body) {
        Ok(m) => match mutate(&inner, m) {
            Ok(result) => json_response(StatusCode::OK, json!(result)),
            Err(e) => bad_request(e),
        },
        Err(e) => bad_request(format!("not a Mutation: {e}")),
    }
}

#[derive(Deserialize)]
struct WebhookTarget {
    url: Option<String>,
}

async fn post_webhook(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    match serde_json::from_slice::<WebhookTarget>(&body) {
        Ok(t) => {
            *inner.webhook_url.write() = t.url;
            json_response(StatusCode::OK, json!({ "ok": true }))
        }
        Err(e) => bad_request(format!("expected {{\"url\": \"…\"|null}}: {e}")),
    }
}

/// Regenerates the portal from the configured seed and clears counters,
/// faults, tokens and the write log.
async fn post_reset(State(inner): State<Arc<Inner>>) -> Response {
    let store = Inner::generate(&inner.config);
    *inner.store.write() = store;
    *inner.stats.lock() = SimStats::default();
    inner.write_log.lock().clear();
    *inner.faults.lock() = FaultEngine::new(&FaultScript::default());
    *inner.tokens.lock() = auth::TokenBook::default();
    *inner.limits.lock() = Inner::new_limiter(&inner.config);
    json_response(StatusCode::OK, json!({ "ok": true }))
}

/// A regenerated portal (also `POST /__sim/regenerate`, e.g. `{"seed":7,"age_secs":86400}`):
/// what a refreshed sandbox or a restored backup looks like to a connector. The same
/// portal id and record ids, but records, owners and associations generated afresh
/// from `seed`, with stamps as if generated `age_secs` ago (so older than what a
/// mirror may hold). Counters, faults and tokens are kept; no webhook is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Regenerate {
    /// Generator seed (the configured one gives the same portal again).
    pub seed: u64,
    /// How far back the generator's clock is set.
    #[serde(default)]
    pub age_secs: u64,
}

pub(crate) fn regenerate(inner: &Inner, spec: Regenerate) {
    let age_ms = i64::try_from(spec.age_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let config = &inner.config;
    let store = super::generator::generate(&super::generator::GenSpec {
        seed: spec.seed,
        contacts: config.contacts,
        companies: config.companies,
        owners: config.owners,
        portal_id: config.portal_id,
        now_ms: now_ms().saturating_sub(age_ms),
    });
    *inner.store.write() = store;
}

async fn post_regenerate(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Regenerate>(&body) {
        Ok(spec) => {
            regenerate(&inner, spec);
            json_response(StatusCode::OK, json!({ "ok": true }))
        }
        Err(e) => bad_request(format!("expected {{\"seed\": N, \"age_secs\": N}}: {e}")),
    }
}

pub(crate) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .route("/__sim/stats", get(get_stats))
        .route("/__sim/state", get(get_state))
        .route("/__sim/write-log", get(get_write_log))
        .route("/__sim/faults", post(post_faults))
        .route("/__sim/mutate", post(post_mutate))
        .route("/__sim/webhook", post(post_webhook))
        .route("/__sim/reset", post(post_reset))
        .route("/__sim/regenerate", post(post_regenerate))
        .route("/__sim/touch", post(super::engagements::post_touch))
}
