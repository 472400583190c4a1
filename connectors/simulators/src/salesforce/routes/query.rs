//! `query` and `queryAll`: parse, run, page (`Sforce-Query-Options: batchSize=N`), and
//! follow `nextRecordsUrl` locators.

use axum::http::StatusCode;

use super::super::server::{Call, Resp, Shared};
use super::super::soql::{self, SoqlError};

/// Default and maximum page size.
const MAX_PAGE: usize = 2_000;
const MIN_PAGE: usize = 200;

fn soql_error(err: SoqlError) -> Resp {
    Resp::error(StatusCode::BAD_REQUEST, err.code, err.message)
}

/// The page size a request asks for; outside 200–2,000 it is clamped.
fn page_size(shared: &Shared, call: &Call) -> usize {
    let cap = shared
        .faults
        .lock()
        .script
        .short_pages
        .unwrap_or(MAX_PAGE)
        .max(1);
    let asked = call
        .header("sforce-query-options")
        .and_then(|v| {
            v.split([',', ';']).find_map(|part| {
                let (k, n) = part.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("batchSize")
                    .then(|| n.trim().parse::<usize>().ok())
                    .flatten()
            })
        })
        .map_or(MAX_PAGE, |n| n.clamp(MIN_PAGE, MAX_PAGE));
    asked.min(cap)
}

pub(crate) fn run(shared: &Shared, call: &Call, all_rows: bool) -> Resp {
    let Some(text) = call.param("q") else {
        return Resp::error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string has to be specified",
        );
    };
    if text.len() > 100_000 {
        return Resp::error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "Query is too long: the SOQL statement exceeds 100,000 characters",
        );
    }
    let query = match soql::parse(text) {
        Ok(q) => q,
        Err(err) => return soql_error(err),
    };
    let now_ms = shared.now_ms();
    let page_size = page_size(shared, call);
    let org = shared.org.lock();
    let mut cursors = shared.cursors.lock();
    Resp::raw_json(soql::execute(
        &org,
        &mut cursors,
        query,
        all_rows,
        page_size,
        &call.version,
        now_ms,
    ))
}

pub(crate) fn next(shared: &Shared, call: &Call, locator: &str) -> Resp {
    let now_ms = shared.now_ms();
    let org = shared.org.lock();
    let mut cursors = shared.cursors.lock();
    match soql::next_page(&org, &mut cursors, locator, &call.version, now_ms) {
        Ok(page) => Resp::raw_json(page),
        Err(err) => soql_error(err),
    }
}
