//! Form-fill streams (`POST /__sim/stream`, `GET /__sim/stream/{id}`,
//! `GET /__sim/stream`): Web-to-Lead submissions, N a second for T seconds,
//! each one created through `writes::create` (the path `POST sobjects/Lead`
//! takes) with the active lead assignment rule on, as Web-to-Lead runs it, so
//! the rule picks the owner and an outbound message goes out for every lead.
//! `"object": "Contact"` streams contacts instead (no assignment rule; about
//! 40 % on an existing account).
//!
//! A generated lead has a name, a company, a country, `LeadSource = Web` and
//! an email unique in the org whose domain is an existing account's (about
//! 40 %), a free-mail provider's (about 25 %) or a new company's (the rest).
//! Web-to-Lead does not count against the API allocation, and neither do these.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value as Json, json};

use super::generator::{COUNTRIES, FIRST, FREE_MAIL, LAST, WORD1, WORD2, ascii};
use super::org::Org;
use super::routes::sobjects::with_writes;
use super::schema::ObjType;
use super::server::{Resp, Shared};
use super::writes;
use crate::stream::{self, StreamRequest};
use axum::http::{Method, StatusCode};

/// The write log's `source` for streamed records.
const SOURCE: &str = "web_to_lead";

fn pick<'a>(rng: &mut StdRng, list: &[&'a str], fallback: &'a str) -> &'a str {
    list.choose(rng).copied().unwrap_or(fallback)
}

/// A live account with a website: (id, name, domain, billing country).
fn existing_account(org: &Org, rng: &mut StdRng) -> Option<(String, String, String, String)> {
    let a = ObjType::Account;
    let rows = &org.table(a).rows;
    if rows.is_empty() {
        return None;
    }
    let start = rng.random_range(0..rows.len());
    rows[start..]
        .iter()
        .chain(rows[..start].iter())
        .filter(|r| !r.vals[a.idx("IsDeleted")].as_bool())
        .find_map(|r| {
            let website = r.vals[a.idx("Website")].as_str()?;
            let domain = website
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_start_matches("www.")
                .trim_end_matches('/')
                .to_owned();
            if domain.is_empty() {
                return None;
            }
            Some((
                r.id().to_owned(),
                r.vals[a.idx("Name")].as_str().unwrap_or("").to_owned(),
                domain,
                r.vals[a.idx("BillingCountry")]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            ))
        })
}

/// A company that is not in the org yet: (name, domain, country).
fn new_company(rng: &mut StdRng) -> (String, String, String) {
    let w1 = pick(rng, WORD1, "Acme");
    let w2 = pick(rng, WORD2, "Systems");
    let n: u32 = rng.random_range(100..1000);
    let (country, _, _, suffix, tld) =
        COUNTRIES
            .choose(rng)
            .copied()
            .unwrap_or(("United States", "", &[], "Inc.", "com"));
    let stem = format!("{w1} {w2} {n}");
    let domain = format!("{}.{tld}", ascii(&stem).replace(' ', ""));
    (format!("{stem} {suffix}"), domain, country.to_owned())
}

/// The fields one submission sets.
fn form_fill(
    org: &Org,
    obj: ObjType,
    rng: &mut StdRng,
    stream_id: u64,
    k: u64,
) -> Map<String, Json> {
    let first = pick(rng, FIRST, "Anna");
    let last = pick(rng, LAST, "Smith");
    let roll: u32 = rng.random_range(0..100);
    let known = existing_account(org, rng);
    let (account, company, domain, country) = match (roll, known) {
        (0..40, Some((id, name, domain, country))) => (Some(id), name, domain, country),
        (40..65, _) => {
            let (name, _, country) = new_company(rng);
            (
                None,
                name,
                pick(rng, FREE_MAIL, "gmail.com").to_owned(),
                country,
            )
        }
        _ => {
            let (name, domain, country) = new_company(rng);
            (None, name, domain, country)
        }
    };
    let mut fields = Map::new();
    fields.insert("FirstName".into(), json!(first));
    fields.insert("LastName".into(), json!(last));
    fields.insert(
        "Email".into(),
        json!(format!(
            "{}.{}.f{stream_id}n{k}@{domain}",
            ascii(first).replace(' ', ""),
            ascii(last).replace(' ', "")
        )),
    );
    match obj {
        ObjType::Contact => {
            if let Some(account) = account {
                fields.insert("AccountId".into(), json!(account));
            }
        }
        _ => {
            fields.insert("Company".into(), json!(company));
            if !country.is_empty() {
                fields.insert("Country".into(), json!(country));
            }
            fields.insert("LeadSource".into(), json!("Web"));
        }
    }
    fields
}

/// Creates one record through the API's create path; the id or the error text.
fn create(
    shared: &Shared,
    obj: ObjType,
    rng: &mut StdRng,
    stream_id: u64,
    k: u64,
) -> Result<String, String> {
    let result = {
        let _exec = shared.exec.lock();
        let fields = form_fill(&shared.org.lock(), obj, rng, stream_id, k);
        // Web-to-Lead runs the active assignment rule; contacts have none.
        with_writes(shared, obj == ObjType::Lead, SOURCE, |org, opts| {
            writes::create(org, &shared.config, obj, &fields, opts)
        })
    };
    // Queued outbound notes go out as after an API write.
    shared.outbound_wake.notify_one();
    result.map_err(|e| e.to_string())
}

/// Starts a stream: registers it, spawns the task creating its records, and
/// answers what `POST /__sim/stream` returns (`Err`: status and message).
pub(crate) fn start(shared: &Shared, request: StreamRequest) -> Result<Json, (StatusCode, String)> {
    let name = request.object.as_deref().unwrap_or("Lead");
    let obj = match name.to_ascii_lowercase().as_str() {
        "lead" | "leads" => ObjType::Lead,
        "contact" | "contacts" => ObjType::Contact,
        _ => {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("object {name:?} cannot be streamed; use \"Lead\" or \"Contact\""),
            ));
        }
    };
    let Some(owned) = shared.arc() else {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "the simulator is shutting down".to_owned(),
        ));
    };
    let (id, state) = shared.streams.lock().open(obj.name(), &request);
    let accepted = stream::accepted(id, obj.name(), &request);
    let seed = request
        .seed
        .unwrap_or_else(|| shared.config.seed.wrapping_add(id));
    let stop = shared.stopping();
    tokio::spawn(async move {
        let mut rng = StdRng::seed_from_u64(seed);
        stream::play(state, request, stop, |k| {
            create(&owned, obj, &mut rng, id, k)
        })
        .await;
    });
    Ok(accepted)
}

fn post_stream(shared: &Shared, body: &[u8]) -> Resp {
    let started = StreamRequest::parse(body)
        .map_err(|message| (StatusCode::BAD_REQUEST, message))
        .and_then(|request| start(shared, request));
    match started {
        Ok(accepted) => Resp::json(StatusCode::ACCEPTED, accepted),
        Err((status, message)) => Resp::json(status, json!({ "error": message })),
    }
}

/// Answers `stream` control calls; `None` for any other control path.
pub(crate) fn handle(shared: &Shared, method: &Method, rest: &str, body: &[u8]) -> Option<Resp> {
    let rest = rest.trim_end_matches('/');
    if rest == "stream" {
        return Some(match *method {
            Method::POST => post_stream(shared, body),
            _ => Resp::ok(shared.streams.lock().summaries()),
        });
    }
    let id = rest.strip_prefix("stream/")?;
    Some(match shared.streams.lock().report(id) {
        Some(report) => Resp::ok(report),
        None => Resp::json(
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no stream {id}; POST /__sim/stream starts one") }),
        ),
    })
}
