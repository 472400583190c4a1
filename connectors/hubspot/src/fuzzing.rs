//! Entry points for the `fuzz/` crate (cargo fuzz): they feed outside bytes through the
//! connector's own decoders and mappers, exactly as `sync`, `batch` and `client` do after
//! a response arrives. Not an API: hidden from the docs, no stability promise.

use std::collections::HashMap;

use leadroute_crm::{OwnerChange, OwnerId, RecordId};

use crate::batch;
use crate::map::{self, COMPANIES, CONTACTS};
use crate::wire::{AssociationBatchResponse, BatchResponse, CollectionPage, ErrorBody, Paging};

/// Decodes `body` as every HubSpot response shape the connector reads (list and search
/// pages, owners pages, batch read/update results, v4 association pages, error bodies)
/// and maps what decodes into contract records, outcomes and narrowed batches.
pub fn decode_responses(body: &[u8]) {
    if let Ok(page) = serde_json::from_slice::<CollectionPage>(body) {
        let _ = Paging::after(&page.paging);
        for raw in page.results {
            // Owners pages are CollectionPages too.
            let _ = map::owner(raw.clone(), false);
            for object in [CONTACTS, COMPANIES] {
                let parsed = map::parse_object(raw.clone());
                let links = map::embedded_links(&parsed.wire);
                let _ = map::modified_at(&parsed.wire, object);
                let absorbed = map::merged_ids(&parsed.wire);
                let links =
                    links.map(|l| HashMap::from([(parsed.wire.id.clone().unwrap_or_default(), l)]));
                let _ = batch::to_changes(object, parsed, absorbed, links.as_ref());
            }
        }
    }
    if let Ok(response) = serde_json::from_slice::<BatchResponse>(body) {
        for raw in response.results {
            let parsed = map::parse_object(raw);
            let absorbed = map::merged_ids(&parsed.wire);
            let _ = batch::to_changes(CONTACTS, parsed, absorbed, None);
        }
        for error in &response.errors {
            let _ = batch::is_no_associations(error);
            let _ = error.ids();
            let codes: Vec<String> = error.sub_category().into_iter().collect();
            let _ = batch::reject_kind(error.category.as_deref(), &codes);
        }
    }
    if let Ok(response) = serde_json::from_slice::<AssociationBatchResponse>(body) {
        for result in &response.results {
            let _ = Paging::after(&result.paging);
        }
        for error in &response.errors {
            let _ = batch::is_no_associations(error);
        }
    }
    let error = ErrorBody::parse(body);
    let codes = error.codes();
    let _ = batch::reject_kind(error.category.as_deref(), &codes);
    // A whole-call 400 over a batch whose ids and owners are the ones HubSpot examples use.
    let changes: Vec<OwnerChange> = ["512", "513", "99", "41629779"]
        .iter()
        .map(|id| OwnerChange {
            id: RecordId::new(*id),
            from: None,
            to: OwnerId::new(*id),
            if_unmodified_since: None,
        })
        .collect();
    for group in [vec![0], vec![0, 1, 2, 3], vec![3, 1]] {
        let _ = batch::narrow(&error, &group, &changes);
    }
}
