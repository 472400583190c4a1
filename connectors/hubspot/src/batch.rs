//! Batch endpoints: batch read (fetch, current owners), batch update (apply) and the v4
//! association batch read, each with HubSpot's partial-failure rules applied.
//!
//! HubSpot's batch answers are unordered and can be partial (Trap 8): results are matched
//! by id, an id in neither `results` nor `errors` counts as failed, and a whole-call 400
//! on batch update (one bad owner value fails every input) is narrowed down to the
//! offending inputs and the rest resent.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::AtomicU32;

use leadroute_crm::{
    AccountLink, Change, CrmError, CurrentOwner, ErrorKind, OwnerChange, OwnerId, Record, RecordId,
    RejectKind, WriteOutcome,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::client::{Client, Request};
use crate::map::{self, CONTACTS, ObjectType, PRIMARY_CONTACT_TO_COMPANY, Parsed};
use crate::wire::{AssociationBatchResponse, BatchResponse, ErrorBody, Paging, StandardError};

/// Inputs per batch read/update call (HubSpot maximum).
pub(crate) const BATCH_LIMIT: usize = 100;
/// Inputs per v4 association batch read (HubSpot maximum since 2025-02-10).
pub(crate) const ASSOCIATION_BATCH_LIMIT: usize = 1_000;

/// What a batch read found.
#[derive(Default)]
pub(crate) struct ReadResult {
    pub records: Vec<Parsed>,
    /// Ids HubSpot said do not exist (archived or never existed).
    pub not_found: BTreeSet<String>,
}

/// Batch-reads `ids` (deduplicated, ≤100 per call) with `properties`.
pub(crate) async fn read(
    client: &Client,
    object: ObjectType,
    ids: &[String],
    properties: &[&str],
    calls: &AtomicU32,
) -> Result<ReadResult, CrmError> {
    let unique: Vec<String> = ids
        .iter()
        .filter(|id| !id.is_empty())
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut out = ReadResult::default();
    let path = format!("/crm/v3/objects/{}/batch/read", object.path);
    for chunk in unique.chunks(BATCH_LIMIT) {
        let body = json!({
            "properties": properties,
            "inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
        });
        let mut request = Request::post(path.clone(), &body);
        request.query.push(("archived", "false".into()));
        let response = client.call(&request, calls).await?;
        if response.status == StatusCode::NOT_FOUND {
            // Some deployments answer a whole-call 404 when no input exists.
            out.not_found.extend(chunk.iter().cloned());
            continue;
        }
        let response = response.success("batch read")?;
        let batch: BatchResponse = response.json("batch read")?;
        for error in &batch.errors {
            if error.category.as_deref() == Some("OBJECT_NOT_FOUND") {
                out.not_found.extend(error.ids());
            } else {
                tracing::warn!(category = ?error.category, "hubspot batch read reported an error for some ids");
            }
        }
        out.records
            .extend(batch.results.into_iter().map(map::parse_object));
    }
    Ok(out)
}

/// Reads the contacts→companies links of `ids` via v4 (≤1,000 per call, following
/// per-record paging). `Some(vec![])` for ids HubSpot says have no associations;
/// ids it reported nothing about are left out (unknown: keep stored links).
pub(crate) async fn read_associations(
    client: &Client,
    ids: &[String],
    calls: &AtomicU32,
) -> Result<HashMap<String, Vec<AccountLink>>, CrmError> {
    let mut links: HashMap<String, BTreeMap<String, bool>> = HashMap::new();
    let mut pending: Vec<(String, Option<String>)> = ids
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|id| (id, None))
        .collect();
    let mut none_found: BTreeSet<String> = BTreeSet::new();
    while !pending.is_empty() {
        let take = pending.len().min(ASSOCIATION_BATCH_LIMIT);
        let chunk: Vec<_> = pending.drain(..take).collect();
        let inputs: Vec<Value> = chunk
            .iter()
            .map(|(id, after)| match after {
                Some(after) => json!({"id": id, "after": after}),
                None => json!({"id": id}),
            })
            .collect();
        let body = json!({ "inputs": inputs });
        let response = client
            .call(
                &Request::post("/crm/v4/associations/contacts/companies/batch/read", &body),
                calls,
            )
            .await?
            .success("association batch read")?;
        let batch: AssociationBatchResponse = response.json("association batch read")?;
        for result in batch.results {
            let Some(from) = result.from.id.clone() else {
                continue;
            };
            let entry = links.entry(from.clone()).or_default();
            for to in &result.to {
                let Some(company) = to.to_object_id.clone() else {
                    continue;
                };
                let primary = to.association_types.iter().any(|t| {
                    t.type_id == Some(PRIMARY_CONTACT_TO_COMPANY)
                        && t.category.as_deref().is_none_or(|c| c == "HUBSPOT_DEFINED")
                });
                *entry.entry(company).or_default() |= primary;
            }
            if let Some(after) = Paging::after(&result.paging) {
                pending.push((from, Some(after)));
            }
        }
        for error in &batch.errors {
            if is_no_associations(error) {
                none_found.extend(error.ids());
            } else {
                tracing::warn!(category = ?error.category, "hubspot association read failed for some contacts");
            }
        }
    }
    let mut out: HashMap<String, Vec<AccountLink>> = links
        .into_iter()
        .map(|(id, companies)| {
            let list = companies
                .into_iter()
                .map(|(account, primary)| AccountLink {
                    account_id: RecordId(account),
                    primary,
                })
                .collect();
            (id, list)
        })
        .collect();
    for id in none_found {
        out.entry(id).or_default();
    }
    Ok(out)
}

/// The 207 "NO_ASSOCIATIONS_FOUND" error means "this contact has no companies".
pub(crate) fn is_no_associations(error: &StandardError) -> bool {
    error
        .sub_category()
        .is_some_and(|s| s.contains("NO_ASSOCIATIONS_FOUND"))
        || error
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("No ") && m.contains(" is associated with "))
}

/// `Crm::fetch`: current state of `ids`, resolving merges and deletions.
pub(crate) async fn fetch(
    client: &Client,
    object: ObjectType,
    ids: &[RecordId],
    calls: &AtomicU32,
) -> Result<Vec<Change>, CrmError> {
    let requested: Vec<String> = ids.iter().map(|i| i.0.clone()).collect();
    let read = read(client, object, &requested, object.properties, calls).await?;
    let mut unresolved: BTreeSet<String> = requested.iter().cloned().collect();
    let mut survivors: Vec<(Parsed, Vec<String>)> = Vec::new();
    let mut unattributed = false;
    let mut survivor_ids = BTreeSet::new();
    for parsed in read.records {
        let Some(id) = parsed.wire.id.clone() else {
            continue;
        };
        if !survivor_ids.insert(id.clone()) {
            // Two requested ids merged into one survivor: it comes back once per input.
            unresolved.remove(&id);
            for absorbed in map::merged_ids(&parsed.wire) {
                unresolved.remove(&absorbed);
            }
            continue;
        }
        let absorbed = map::merged_ids(&parsed.wire);
        unresolved.remove(&id);
        let losers: Vec<String> = absorbed
            .iter()
            .filter(|a| unresolved.remove(*a) || requested.contains(a))
            .cloned()
            .collect();
        if !requested.contains(&id) && losers.is_empty() {
            // A survivor for an id we asked about, but its merge list does not say which.
            unattributed = true;
        }
        survivors.push((parsed, absorbed));
    }
    let mut changes = Vec::new();
    for id in &unresolved {
        if read.not_found.contains(id) && !unattributed {
            changes.push(Change::Deleted {
                object: object.kind,
                id: RecordId(id.clone()),
                at: None,
                purge: false,
            });
        } else {
            // Rare: a survivor we cannot attribute (chained merges) or an id HubSpot said
            // nothing about. Reading it alone answers with its survivor or a 404.
            changes.extend(fetch_one(client, object, id, calls).await?);
        }
    }
    let links = if object.kind == CONTACTS.kind {
        let ids: Vec<String> = survivors
            .iter()
            .filter_map(|(p, _)| p.wire.id.clone())
            .collect();
        Some(read_associations(client, &ids, calls).await?)
    } else {
        None
    };
    for (parsed, absorbed) in survivors {
        changes.extend(to_changes(object, parsed, absorbed, links.as_ref())?);
    }
    Ok(changes)
}

async fn fetch_one(
    client: &Client,
    object: ObjectType,
    id: &str,
    calls: &AtomicU32,
) -> Result<Vec<Change>, CrmError> {
    let request = Request::get(
        format!("/crm/v3/objects/{}/{id}", object.path),
        vec![("properties", object.properties.join(","))],
    );
    let response = client.call(&request, calls).await?;
    if response.status == StatusCode::NOT_FOUND {
        return Ok(vec![Change::Deleted {
            object: object.kind,
            id: RecordId::new(id),
            at: None,
            purge: false,
        }]);
    }
    let raw: Value = response.success("read")?.json("read")?;
    let parsed = map::parse_object(raw);
    let survivor = parsed.wire.id.clone().unwrap_or_default();
    let mut absorbed = map::merged_ids(&parsed.wire);
    if survivor != id && !absorbed.iter().any(|a| a == id) {
        absorbed.push(id.to_owned());
    }
    let links = if object.kind == CONTACTS.kind {
        Some(read_associations(client, &[survivor], calls).await?)
    } else {
        None
    };
    to_changes(object, parsed, absorbed, links.as_ref())
}

/// A parsed record (+ links for contacts) as `Merged…` + `Upsert`.
pub(crate) fn to_changes(
    object: ObjectType,
    parsed: Parsed,
    absorbed: Vec<String>,
    links: Option<&HashMap<String, Vec<AccountLink>>>,
) -> Result<Vec<Change>, CrmError> {
    let id = parsed.wire.id.clone().unwrap_or_default();
    let record = if object.kind == CONTACTS.kind {
        let accounts = links.and_then(|l| l.get(&id).cloned());
        Record::Person(map::person(parsed, accounts).map_err(protocol)?)
    } else {
        Record::Account(map::account(parsed).map_err(protocol)?)
    };
    Ok(map::with_merges(object.kind, absorbed, record))
}

pub(crate) fn protocol(e: map::MapError) -> CrmError {
    CrmError::new(ErrorKind::Protocol, format!("hubspot: {e}")).with_source(e)
}

/// `Crm::current_owners`.
pub(crate) async fn current_owners(
    client: &Client,
    object: ObjectType,
    ids: &[RecordId],
    calls: &AtomicU32,
) -> Result<Vec<CurrentOwner>, CrmError> {
    let requested: Vec<String> = ids.iter().map(|i| i.0.clone()).collect();
    let properties = ["hubspot_owner_id", object.modified_property];
    let read = read(client, object, &requested, &properties, calls).await?;
    let wanted: BTreeSet<&String> = requested.iter().collect();
    Ok(read
        .records
        .into_iter()
        // A merged-away id answers with the survivor: the record asked about is gone.
        .filter(|p| p.wire.id.as_ref().is_some_and(|id| wanted.contains(id)))
        .map(|p| CurrentOwner {
            id: RecordId(p.wire.id.clone().unwrap_or_default()),
            owner_id: p.wire.prop("hubspot_owner_id").map(OwnerId::new),
            writable: true,
            updated_at: map::modified_at(&p.wire, object),
        })
        .collect())
}

/// How an error category/code maps to a reject kind.
pub(crate) fn reject_kind(category: Option<&str>, codes: &[String]) -> RejectKind {
    let has = |c: &str| codes.iter().any(|x| x == c);
    if has("INVALID_OPTION") || has("INACTIVE_OWNER") {
        RejectKind::InactiveOwner
    } else if has("READ_ONLY_VALUE") {
        RejectKind::ReadOnly
    } else {
        match category.unwrap_or_default() {
            "OBJECT_NOT_FOUND" => RejectKind::NotFound,
            "VALIDATION_ERROR" => RejectKind::Validation,
            "CONFLICT" => RejectKind::Conflict,
            "LOCKED" | "OBJECT_LOCKED" => RejectKind::Locked,
            // HubSpot's own failure for this record: nothing was written.
            "INTERNAL_ERROR" => RejectKind::Unprocessed,
            _ => RejectKind::Other,
        }
    }
}

fn rejected(kind: RejectKind, code: &str, message: impl Into<String>) -> WriteOutcome {
    WriteOutcome::Rejected {
        kind,
        code: code.to_owned(),
        message: message.into(),
    }
}

/// `Crm::apply`: batch update of `hubspot_owner_id`, one outcome per change in order.
///
/// A whole-call 400 means one (or more) inputs carried a bad value and nothing was
/// written. We name the offenders from the error where HubSpot says which (ids in
/// `context`, or the rejected owner value quoted in the INVALID_OPTION message), reject
/// them and resend the rest; where it does not say, we bisect the group. Bisection
/// finds k bad inputs among n in about 2·k·log2(n) calls and never writes a record twice.
pub(crate) async fn apply(
    client: &Client,
    object: ObjectType,
    batch: &[OwnerChange],
    calls: &AtomicU32,
) -> Result<Vec<WriteOutcome>, CrmError> {
    if batch.len() > BATCH_LIMIT {
        return Err(CrmError::new(
            ErrorKind::BadRequest,
            format!(
                "hubspot: apply got {} changes; at most {BATCH_LIMIT} per call (see write_limits)",
                batch.len()
            ),
        ));
    }
    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; batch.len()];
    let mut first: BTreeMap<&str, usize> = BTreeMap::new();
    let mut group: Vec<usize> = Vec::new();
    for (i, change) in batch.iter().enumerate() {
        if first.insert(change.id.as_str(), i).is_some() {
            // HubSpot rejects a batch holding one id twice; which value should win is
            // the writer's decision, not ours.
            outcomes[i] = Some(rejected(
                RejectKind::Other,
                "DUPLICATE_ID_IN_BATCH",
                format!("record {} appears more than once in this batch", change.id),
            ));
        } else {
            group.push(i);
        }
    }
    let path = format!("/crm/v3/objects/{}/batch/update", object.path);
    let mut work = vec![group];
    while let Some(group) = work.pop() {
        if group.is_empty() {
            continue;
        }
        let inputs: Vec<Value> = group
            .iter()
            .map(|i| {
                json!({"id": batch[*i].id.as_str(), "properties": {"hubspot_owner_id": batch[*i].to.as_str()}})
            })
            .collect();
        let body = json!({ "inputs": inputs });
        let response = client
            .call(&Request::post(path.clone(), &body), calls)
            .await?;
        if response.status == StatusCode::BAD_REQUEST {
            let error = ErrorBody::parse(&response.body);
            let codes = error.codes();
            let kind = reject_kind(error.category.as_deref(), &codes);
            let code = codes
                .first()
                .cloned()
                .or_else(|| error.category.clone())
                .unwrap_or_else(|| "BAD_REQUEST".into());
            let narrowed = narrow(&error, &group, batch);
            for i in narrowed.rejected {
                outcomes[i] = Some(rejected(kind, &code, message_for(&error, &batch[i])));
            }
            // Pushed in reverse so groups are sent in input order.
            work.extend(narrowed.resend.into_iter().rev());
            continue;
        }
        let response = response.success("batch update")?;
        let result: BatchResponse = response.json("batch update")?;
        let applied: BTreeSet<String> = result
            .results
            .iter()
            .filter_map(|r| r.get("id").and_then(crate::wire::value_to_string))
            .collect();
        let mut failed: HashMap<String, WriteOutcome> = HashMap::new();
        for error in &result.errors {
            let codes: Vec<String> = error.errors.iter().filter_map(|e| e.code.clone()).collect();
            let kind = reject_kind(error.category.as_deref(), &codes);
            let code = codes
                .first()
                .cloned()
                .or_else(|| error.category.clone())
                .unwrap_or_else(|| "ERROR".into());
            for id in error.ids() {
                failed.insert(
                    id,
                    rejected(kind, &code, error.message.clone().unwrap_or_default()),
                );
            }
        }
        for i in group {
            let id = batch[i].id.as_str();
            outcomes[i] = Some(if applied.contains(id) {
                WriteOutcome::Applied
            } else if let Some(outcome) = failed.remove(id) {
                outcome
            } else {
                rejected(
                    RejectKind::Unprocessed,
                    "MISSING_FROM_RESULTS",
                    "HubSpot did not confirm this update; re-read the record before retrying",
                )
            });
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every input is decided: rejected, applied or missing"))
        .collect())
}

/// What to do with a group after a whole-call 400.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Narrowed {
    /// Inputs the error pins the failure on.
    pub rejected: Vec<usize>,
    /// Groups to send again.
    pub resend: Vec<Vec<usize>>,
}

/// Rejects the inputs the error names and resends the rest; when it names none, splits
/// the group in halves so each half can fail or pass on its own (a single input is
/// rejected outright: it is the offender).
pub(crate) fn narrow(error: &ErrorBody, group: &[usize], batch: &[OwnerChange]) -> Narrowed {
    if group.len() == 1 {
        return Narrowed {
            rejected: group.to_vec(),
            resend: Vec::new(),
        };
    }
    let named = offenders(error, group, batch);
    if named.is_empty() {
        let (left, right) = group.split_at(group.len() / 2);
        return Narrowed {
            rejected: Vec::new(),
            resend: vec![left.to_vec(), right.to_vec()],
        };
    }
    let (bad, rest): (Vec<usize>, Vec<usize>) = group.iter().partition(|i| named.contains(i));
    Narrowed {
        rejected: bad,
        resend: if rest.is_empty() {
            Vec::new()
        } else {
            vec![rest]
        },
    }
}

/// Inputs of `group` a whole-call 400 names: by record id in the error context, or by the
/// owner value quoted in an INVALID_OPTION message ("99 was not one of the allowed options").
fn offenders(error: &ErrorBody, group: &[usize], batch: &[OwnerChange]) -> BTreeSet<usize> {
    let mut ids: BTreeSet<String> = error
        .context
        .iter()
        .filter(|(k, _)| k.as_str() == "ids" || k.as_str() == "id")
        .flat_map(|(_, v)| v.iter().cloned())
        .collect();
    for detail in &error.errors {
        for key in ["ids", "id", "objectId"] {
            ids.extend(detail.context.get(key).into_iter().flatten().cloned());
        }
    }
    let by_id: BTreeSet<usize> = group
        .iter()
        .copied()
        .filter(|i| ids.contains(batch[*i].id.as_str()))
        .collect();
    if !by_id.is_empty() {
        return by_id;
    }
    let mut texts: Vec<String> = error
        .embedded_property_errors()
        .into_iter()
        .filter(|p| p.error.as_deref() == Some("INVALID_OPTION"))
        .filter_map(|p| p.message)
        .collect();
    texts.extend(
        error
            .errors
            .iter()
            .filter(|e| e.code.as_deref() == Some("INVALID_OPTION"))
            .filter_map(|e| e.message.clone()),
    );
    let values: BTreeSet<String> = texts.iter().filter_map(|t| quoted_value(t)).collect();
    group
        .iter()
        .copied()
        .filter(|i| values.contains(batch[*i].to.as_str()))
        .collect()
}

/// The part of a whole-call 400 that concerns `change`: the embedded property error or
/// error detail quoting its owner value or naming its id, so one record's outcome never
/// carries another record's error; the whole message only when nothing is specific.
fn message_for(error: &ErrorBody, change: &OwnerChange) -> String {
    let id = change.id.as_str();
    let to = change.to.as_str();
    let embedded = error
        .embedded_property_errors()
        .into_iter()
        .filter_map(|p| p.message)
        .find(|m| quoted_value(m).as_deref() == Some(to));
    let detail = || {
        error
            .errors
            .iter()
            .find(|d| {
                d.message.as_deref().and_then(quoted_value).as_deref() == Some(to)
                    || ["ids", "id", "objectId"]
                        .iter()
                        .any(|k| d.context.get(*k).is_some_and(|v| v.iter().any(|x| x == id)))
            })
            .and_then(|d| d.message.clone())
    };
    embedded
        .or_else(detail)
        .or_else(|| error.message.clone())
        .unwrap_or_default()
}

/// The value an INVALID_OPTION message rejects: the token before " was not one of".
fn quoted_value(text: &str) -> Option<String> {
    let head = text.split(" was not one of").next()?;
    if head.len() == text.len() {
        return None;
    }
    let token = head
        .rsplit([' ', '"', '\''])
        .next()?
        .trim_matches(['"', '\'', '(', ')']);
    (!token.is_empty()).then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: &str, to: &str) -> OwnerChange {
        OwnerChange {
            id: RecordId::new(id),
            from: None,
            to: OwnerId::new(to),
            if_unmodified_since: None,
        }
    }

    #[test]
    fn invalid_option_messages_name_the_rejected_owner_value() {
        assert_eq!(
            quoted_value("999 was not one of the allowed options: [label: \"Ria\" value: \"41\"]"),
            Some("999".into())
        );
        assert_eq!(quoted_value("something else"), None);
    }

    #[test]
    fn a_whole_call_400_is_pinned_on_the_inputs_carrying_the_bad_owner() {
        let batch = vec![change("1", "41"), change("2", "999"), change("3", "41")];
        let error = ErrorBody::parse(
            br#"{"status":"error","category":"VALIDATION_ERROR","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"999 was not one of the allowed options: [...]\",\"error\":\"INVALID_OPTION\",\"name\":\"hubspot_owner_id\"}]"}"#,
        );
        let found = offenders(&error, &[0, 1, 2], &batch);
        assert_eq!(found, BTreeSet::from([1]));
    }

    #[test]
    fn an_anonymous_400_bisects_until_the_offender_stands_alone() {
        let batch: Vec<OwnerChange> = (0..4).map(|i| change(&i.to_string(), "41")).collect();
        let anonymous = ErrorBody::parse(br#"{"category":"VALIDATION_ERROR","message":"bad"}"#);
        assert_eq!(
            narrow(&anonymous, &[0, 1, 2, 3], &batch),
            Narrowed {
                rejected: vec![],
                resend: vec![vec![0, 1], vec![2, 3]]
            }
        );
        assert_eq!(
            narrow(&anonymous, &[2], &batch),
            Narrowed {
                rejected: vec![2],
                resend: vec![]
            }
        );
    }

    #[test]
    fn a_named_offender_is_rejected_and_the_rest_resent_once() {
        let batch = vec![change("1", "41"), change("2", "999"), change("3", "41")];
        let error = ErrorBody::parse(
            br#"{"category":"VALIDATION_ERROR","message":"Property values were not valid: [{\"error\":\"INVALID_OPTION\",\"message\":\"999 was not one of the allowed options\"}]"}"#,
        );
        assert_eq!(
            narrow(&error, &[0, 1, 2], &batch),
            Narrowed {
                rejected: vec![1],
                resend: vec![vec![0, 2]]
            }
        );
    }

    #[test]
    fn each_rejected_record_carries_its_own_error_text() {
        let batch = [change("1", "998"), change("2", "41"), change("3", "999")];
        let error = ErrorBody::parse(
            br#"{"category":"VALIDATION_ERROR","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"998 was not one of the allowed options\",\"error\":\"INVALID_OPTION\",\"name\":\"hubspot_owner_id\"},{\"isValid\":false,\"message\":\"999 was not one of the allowed options\",\"error\":\"INVALID_OPTION\",\"name\":\"hubspot_owner_id\"}]"}"#,
        );
        assert_eq!(
            message_for(&error, &batch[0]),
            "998 was not one of the allowed options"
        );
        assert_eq!(
            message_for(&error, &batch[2]),
            "999 was not one of the allowed options"
        );
        // Nothing specific: the whole message.
        assert!(message_for(&error, &batch[1]).starts_with("Property values were not valid"));
        let by_id = ErrorBody::parse(
            br#"{"category":"VALIDATION_ERROR","message":"2 errors","errors":[{"message":"record 1 is locked","context":{"id":["1"]}},{"message":"record 3 is gone","context":{"id":["3"]}}]}"#,
        );
        assert_eq!(message_for(&by_id, &batch[2]), "record 3 is gone");
        assert_eq!(message_for(&by_id, &batch[0]), "record 1 is locked");
    }

    #[test]
    fn error_context_ids_identify_offenders_directly() {
        let batch = vec![change("1", "41"), change("2", "42")];
        let error = ErrorBody::parse(br#"{"category":"VALIDATION_ERROR","context":{"ids":["2"]}}"#);
        assert_eq!(offenders(&error, &[0, 1], &batch), BTreeSet::from([1]));
    }

    #[test]
    fn categories_map_to_reject_kinds_the_writer_can_act_on() {
        assert_eq!(
            reject_kind(Some("OBJECT_NOT_FOUND"), &[]),
            RejectKind::NotFound
        );
        assert_eq!(
            reject_kind(Some("VALIDATION_ERROR"), &["INVALID_OPTION".into()]),
            RejectKind::InactiveOwner
        );
        assert_eq!(
            reject_kind(Some("VALIDATION_ERROR"), &[]),
            RejectKind::Validation
        );
        assert_eq!(reject_kind(Some("WEIRD"), &[]), RejectKind::Other);
        // HubSpot's own failure for one record is retried, not sent to an operator.
        assert_eq!(
            reject_kind(Some("INTERNAL_ERROR"), &[]),
            RejectKind::Unprocessed
        );
        assert_eq!(
            RejectKind::Unprocessed.recovery(),
            leadroute_crm::Recovery::Retry
        );
    }

    #[test]
    fn the_no_associations_207_error_reads_as_no_links() {
        let err: StandardError = serde_json::from_str(
            r#"{"status":"error","category":"OBJECT_NOT_FOUND","subCategory":"crm.associations.NO_ASSOCIATIONS_FOUND","message":"No company is associated with contact 101.","context":{"fromObjectId":["101"]}}"#,
        )
        .unwrap();
        assert!(is_no_associations(&err));
        assert_eq!(err.ids(), vec!["101"]);
        let other: StandardError =
            serde_json::from_str(r#"{"category":"RATE_LIMITS","message":"slow down"}"#).unwrap();
        assert!(!is_no_associations(&other));
    }
}
