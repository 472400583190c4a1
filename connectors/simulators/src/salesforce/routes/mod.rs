//! REST routing below `/services/data/vNN.N/`: one module per API family. Routes are
//! synchronous over in-memory state, so `/composite` can run subrequests through the
//! same router.

pub(crate) mod bulk2;
pub(crate) mod composite;
pub(crate) mod describe;
pub(crate) mod limits;
pub(crate) mod oauth;
pub(crate) mod query;
pub(crate) mod replication;
pub(crate) mod sobjects;

use axum::http::{Method, StatusCode};
use serde_json::{Value as Json, json};

use super::server::{Call, MAX_VERSION, MIN_VERSION, Resp, Shared};

/// `GET /services/data/`: every served version with its release label.
pub(crate) fn versions_list() -> Json {
    let versions: Vec<Json> = (MIN_VERSION..=MAX_VERSION)
        .map(|v| {
            // 62.0 is Winter '25; three releases a year, one version each.
            let k = i64::from(v) - 62;
            let season = ["Winter", "Spring", "Summer"][k.rem_euclid(3) as usize];
            let year = 25 + k.div_euclid(3);
            json!({
                "label": format!("{season} '{year:02}"),
                "url": format!("/services/data/v{v}.0"),
                "version": format!("{v}.0"),
            })
        })
        .collect();
    Json::Array(versions)
}

fn resources(version: &str) -> Json {
    let base = format!("/services/data/v{version}");
    let mut map = serde_json::Map::new();
    for name in [
        "sobjects",
        "query",
        "queryAll",
        "limits",
        "composite",
        "jobs",
        "search",
        "tooling",
    ] {
        map.insert(name.to_owned(), json!(format!("{base}/{name}")));
    }
    Json::Object(map)
}

fn method_not_allowed(method: &Method) -> Resp {
    Resp::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("HTTP Method '{method}' not allowed. Allowed are GET,HEAD,PATCH,POST,DELETE"),
    )
}

/// Routes one call; sets `call.endpoint` for statistics.
pub(crate) fn route(shared: &Shared, call: &mut Call) -> Resp {
    let segs: Vec<String> = call.segments.clone();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let method = call.method.clone();
    let (endpoint, resp) = match (&method, segs.as_slice()) {
        (&Method::GET, []) => (
            "GET resources".to_owned(),
            Resp::ok(resources(&call.version)),
        ),
        (&Method::GET, ["query" | "queryAll"]) => {
            let all = segs[0] == "queryAll";
            (format!("GET {}", segs[0]), query::run(shared, call, all))
        }
        (&Method::GET, ["query" | "queryAll", locator]) => (
            "GET query/next".to_owned(),
            query::next(shared, call, locator),
        ),
        (&Method::GET, ["limits"]) => ("GET limits".to_owned(), limits::get(shared)),
        (&Method::GET, ["sobjects"]) => {
            ("GET sobjects".to_owned(), describe::global(&call.version))
        }
        (_, ["sobjects", object]) => {
            let resp = match method {
                Method::GET => describe::basic(object, &call.version),
                Method::POST => sobjects::create(shared, call, object),
                _ => method_not_allowed(&method),
            };
            (format!("{method} sobjects/{{Type}}"), resp)
        }
        (&Method::GET, ["sobjects", object, "describe"]) => (
            "GET sobjects/{Type}/describe".to_owned(),
            describe::describe(object, &call.version),
        ),
        (&Method::GET, ["sobjects", object, kind @ ("updated" | "deleted")]) => (
            format!("GET sobjects/{{Type}}/{kind}"),
            replication::run(shared, call, object, kind == &"deleted"),
        ),
        (_, ["sobjects", object, id]) => {
            let resp = match method {
                Method::GET => sobjects::get(shared, call, object, id),
                Method::PATCH => sobjects::patch(shared, call, object, id),
                Method::DELETE => sobjects::delete(shared, object, id),
                _ => method_not_allowed(&method),
            };
            (format!("{method} sobjects/{{Type}}/{{id}}"), resp)
        }
        (_, ["composite", "sobjects"]) => (
            format!("{method} composite/sobjects"),
            composite::collections(shared, call),
        ),
        (_, ["composite", "sobjects", object]) => (
            format!("{method} composite/sobjects/{{Type}}"),
            composite::retrieve(shared, call, object),
        ),
        (&Method::POST, ["composite"]) => (
            "POST composite".to_owned(),
            composite::composite(shared, call),
        ),
        (&Method::POST, ["composite", "batch"]) => (
            "POST composite/batch".to_owned(),
            composite::batch(shared, call),
        ),
        (_, ["jobs", "ingest", rest @ ..]) => {
            let name = match rest {
                [] => format!("{method} jobs/ingest"),
                [_] => format!("{method} jobs/ingest/{{id}}"),
                [_, tail, ..] => format!("{method} jobs/ingest/{{id}}/{tail}"),
            };
            (name, bulk2::route(shared, call, rest))
        }
        _ => ("other".to_owned(), Resp::not_found()),
    };
    call.endpoint = endpoint;
    resp
}
