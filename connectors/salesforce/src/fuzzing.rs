//! Entry points for the `fuzz/` crate (cargo fuzz): they feed outside bytes through the
//! connector's own decoders and mappers, exactly as `sync`, `write` and `client` do after
//! a response arrives. Not an API: hidden from the docs, no stability promise.

use crate::soql::SObject;
use crate::wire::{
    self, BulkJob, CollectionResult, CompositeResponse, DeletedResponse, QueryPage, RestError,
};
use crate::{ids, limits, map, write};

/// Decodes `body` as every Salesforce response shape the connector reads (query pages,
/// Collections and `/composite` results, REST error arrays, Bulk API 2.0 jobs and result
/// CSVs, getDeleted answers) and maps what decodes into contract records and outcomes.
/// The body read as text also goes through the header and id parsers.
pub fn decode_responses(body: &[u8]) {
    if let Ok(page) = serde_json::from_slice::<QueryPage>(body) {
        for row in page.records {
            for object in [
                SObject::Lead,
                SObject::Contact,
                SObject::Account,
                SObject::User,
                SObject::Queue,
            ] {
                let _ = map::record(object, row.clone());
            }
        }
    }
    if let Ok(results) = serde_json::from_slice::<Vec<CollectionResult>>(body) {
        let _ = write::outcomes_by_index(&results, results.len());
    }
    if let Ok(response) = serde_json::from_slice::<CompositeResponse>(body) {
        // As `write::apply` reads a failed subrequest: its body is a REST error array.
        let results: Vec<CollectionResult> = response
            .composite_response
            .into_iter()
            .map(|sub| CollectionResult {
                success: (200..300).contains(&sub.http_status_code),
                errors: serde_json::from_value::<Vec<RestError>>(sub.body).unwrap_or_default(),
            })
            .collect();
        let _ = write::outcomes_by_index(&results, results.len());
    }
    let errors = wire::parse_rest_errors(body);
    let _ = write::outcomes_by_index(
        &[CollectionResult {
            success: false,
            errors,
        }],
        1,
    );
    let _ = serde_json::from_slice::<BulkJob>(body);
    if let Ok(deleted) = serde_json::from_slice::<DeletedResponse>(body) {
        for record in &deleted.deleted_records {
            let _ = record.deleted_date.as_deref().map(wire::parse_datetime);
            let _ = ids::canonical(&record.id);
        }
        let _ = deleted
            .earliest_date_available
            .as_deref()
            .map(wire::parse_datetime);
        let _ = deleted
            .latest_date_covered
            .as_deref()
            .map(wire::parse_datetime);
    }
    if let Ok(rows) = write::bulk_result_rows(body) {
        for (id, error) in rows {
            let _ = ids::canonical(&id);
            if !error.is_empty() {
                let _ = write::bulk_error(&error);
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = limits::parse_limit_info(text);
        let _ = wire::parse_datetime(text);
        let _ = ids::canonical(text);
        let _ = ids::same(text, text.get(..15).unwrap_or(text));
    }
}
