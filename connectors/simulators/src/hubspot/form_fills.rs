//! Form-fill streams (`POST /__sim/stream`, `GET /__sim/stream/{id}`,
//! `GET /__sim/stream`): visitors submitting the portal's lead form, N a
//! second for T seconds, each one created through [`create::create_checked`]
//! (the public create path), so `contact.creation` webhooks fire as for any
//! other create (`changeSource: "FORM"`).
//!
//! A generated contact has a name, a job title and an email that is unique in
//! the portal; its domain is an existing company's (about 40 %), a free-mail
//! provider's (about 25 %) or a new company's (the rest). No owner is set and
//! no company is associated: routing them is the sidecar's job.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::Inner;
use super::create::{self, CreateInput};
use super::generator::{FIRST, FREE_MAIL, JOBS, LAST, SUFFIX, WORDS_A, WORDS_B, ascii_local, slug};
use super::schema::ObjectType;
use super::state::{Source, Store};
use super::wire::json_response;
use crate::stream::{self, StreamRequest};

fn pick<'a>(rng: &mut StdRng, list: &[&'a str], fallback: &'a str) -> &'a str {
    list.choose(rng).copied().unwrap_or(fallback)
}

/// A company that does not exist in the portal yet: (name, domain).
fn new_company(rng: &mut StdRng) -> (String, String) {
    let a = pick(rng, WORDS_A, "Blue");
    let b = pick(rng, WORDS_B, "Labs");
    let n: u32 = rng.random_range(100..1000);
    let suffix = pick(rng, SUFFIX, "");
    let tld = pick(rng, &["com", "io", "de", "co.uk", "fr"], "com");
    (
        format!("{a} {b} {n}{suffix}"),
        format!("{}{n}.{tld}", slug(&format!("{a}{b}"))),
    )
}

/// A live company with a domain, picked at random (by id, so cheap).
fn existing_company(store: &Store, rng: &mut StdRng) -> Option<(String, String)> {
    let table = &store.companies;
    let first = *table.records.keys().next()?;
    let last = *table.records.keys().next_back()?;
    let start = rng.random_range(first..=last);
    table
        .records
        .range(start..)
        .chain(table.records.range(..start))
        .map(|(_, r)| r)
        .filter(|r| !r.archived)
        .find_map(|r| {
            let domain = r.properties.get("domain").filter(|d| !d.is_empty())?;
            let name = r.properties.get("name").cloned().unwrap_or_default();
            Some((name, domain.clone()))
        })
}

/// The values one form submission sets.
fn form_fill(
    store: &Store,
    object: ObjectType,
    rng: &mut StdRng,
    stream_id: u64,
    k: u64,
) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    match object {
        ObjectType::Contacts => {
            let first = pick(rng, FIRST, "Ana");
            let last = pick(rng, LAST, "Smith");
            let roll: u32 = rng.random_range(0..100);
            let (company, domain) = match (roll, existing_company(store, rng)) {
                (0..40, Some(known)) => (Some(known.0), known.1),
                (40..65, _) => {
                    // Free-mail visitors sometimes still type their employer.
                    let employer = rng.random_bool(0.5).then(|| new_company(rng).0);
                    (employer, pick(rng, FREE_MAIL, "gmail.com").to_owned())
                }
                _ => {
                    let (name, domain) = new_company(rng);
                    (Some(name), domain)
                }
            };
            values.insert("firstname".into(), first.to_owned());
            values.insert("lastname".into(), last.to_owned());
            values.insert(
                "email".into(),
                format!(
                    "{}.{}.f{stream_id}n{k}@{domain}",
                    ascii_local(first),
                    ascii_local(last)
                ),
            );
            if let Some(company) = company.filter(|c| !c.is_empty()) {
                values.insert("company".into(), company);
            }
            let job = pick(rng, JOBS, "");
            if !job.is_empty() {
                values.insert("jobtitle".into(), job.to_owned());
            }
        }
        ObjectType::Companies => {
            let (name, domain) = new_company(rng);
            values.insert("name".into(), name);
            values.insert("domain".into(), format!("f{stream_id}n{k}-{domain}"));
        }
    }
    values
}

fn bad_request(message: String) -> Response {
    json_response(StatusCode::BAD_REQUEST, json!({ "error": message }))
}

/// Starts a stream: registers it, spawns the task creating its records, and
/// answers what `POST /__sim/stream` returns (`Err`: the message of a 400).
pub(crate) fn start(
    inner: &Arc<Inner>,
    request: StreamRequest,
) -> Result<serde_json::Value, String> {
    let object_name = request.object.as_deref().unwrap_or("contacts");
    let Some(object) = ObjectType::from_path(object_name) else {
        return Err(format!(
            "object {object_name:?} cannot be streamed; use \"contacts\" or \"companies\""
        ));
    };
    let (id, state) = inner.streams.lock().open(object.as_str(), &request);
    let accepted = stream::accepted(id, object.as_str(), &request);
    let seed = request
        .seed
        .unwrap_or_else(|| inner.config.seed.wrapping_add(id));
    let task_inner = inner.clone();
    tokio::spawn(async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let cancel = task_inner.cancel.clone();
        stream::play(state, request, cancel.cancelled(), |k| {
            let values = form_fill(&task_inner.store.read(), object, &mut rng, id, k);
            create::create_checked(
                &task_inner,
                object,
                &CreateInput::from_properties(values),
                &Source::Form,
            )
            .map(|n| n.to_string())
            .map_err(|e| e.summary())
        })
        .await;
    });
    Ok(accepted)
}

/// `POST /__sim/stream` `{"per_second": 5, "seconds": 60, "object": "contacts"}`
/// → 202 with the stream id; the records are created in the background.
async fn post_stream(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let started = StreamRequest::parse(&body).and_then(|request| start(&inner, request));
    match started {
        Ok(accepted) => json_response(StatusCode::ACCEPTED, accepted),
        Err(message) => bad_request(message),
    }
}

/// `GET /__sim/stream/{id}`: created count, and each record's id and creation instant.
async fn get_stream(State(inner): State<Arc<Inner>>, Path(id): Path<String>) -> Response {
    match inner.streams.lock().report(&id) {
        Some(report) => json_response(StatusCode::OK, report),
        None => json_response(
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no stream {id}; POST /__sim/stream starts one") }),
        ),
    }
}

/// `GET /__sim/stream`: every stream's progress, without the records.
async fn list_streams(State(inner): State<Arc<Inner>>) -> Response {
    json_response(StatusCode::OK, inner.streams.lock().summaries())
}

pub(crate) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .route("/__sim/stream", post(post_stream).get(list_streams))
        .route("/__sim/stream/{id}", get(get_stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hubspot::generator::{GenSpec, generate};

    #[test]
    fn form_fills_mix_known_company_domains_free_mail_and_new_companies() {
        let store = generate(&GenSpec {
            seed: 7,
            contacts: 20,
            companies: 30,
            owners: 4,
            portal_id: 1,
            now_ms: 1_767_225_600_000,
        });
        let known: std::collections::HashSet<String> = store
            .companies
            .records
            .values()
            .filter_map(|r| r.properties.get("domain").cloned())
            .collect();
        let mut rng = StdRng::seed_from_u64(1);
        let (mut on_known, mut free, mut new) = (0, 0, 0);
        let mut emails = std::collections::HashSet::new();
        for k in 0..300 {
            let fill = form_fill(&store, ObjectType::Contacts, &mut rng, 1, k);
            assert!(!fill.contains_key("hubspot_owner_id"));
            let email = fill["email"].clone();
            let domain = email.rsplit_once('@').unwrap().1.to_owned();
            if known.contains(&domain) {
                on_known += 1;
            } else if FREE_MAIL.contains(&domain.as_str()) {
                free += 1;
            } else {
                new += 1;
            }
            assert!(emails.insert(email), "emails are unique");
        }
        assert!(
            on_known > 60 && free > 40 && new > 60,
            "{on_known} {free} {new}"
        );
    }
}
