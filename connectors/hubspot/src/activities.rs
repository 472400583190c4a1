//! Activities (`ObjectKind::Activity`): HubSpot's engagement objects `calls`, `emails`,
//! `meetings`, `notes` and `tasks`, mirrored incrementally when
//! `HubSpotSettings::activities` is on (reference §14).
//!
//! # Reading
//! One search strategy for both the first (full) and later (incremental) syncs: per type,
//! search on `hs_lastmodifieddate` (GTE the watermark minus the overlap, ascending) and
//! restart after every page at the last timestamp seen, exactly as contacts do (see
//! `sync.rs` for why this never hits the 10,000 cap nor skips a record). A first sync
//! starts at 0. Search results carry no associations, so each page's contacts are read
//! with one v4 batch read (`/crm/v4/associations/{type}/contacts/batch/read`).
//!
//! # Cursor
//! `SyncState::Activities`: which type is being read and, per type, its watermark and
//! the run in progress. A page ends within one type; the pass is `done` after the fifth
//! type catches up, and the next pass starts again at calls.
//!
//! # Limits
//! Search never returns archived engagements and HubSpot has no classic webhooks for
//! them (trap 21), so a deletion reaches the mirror only through a full sync
//! (`sync --full`, or the `service.full_sync` schedule), whose completed pass removes
//! what it did not list.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};

use leadroute_crm::{
    ActivityKind, ActivityRecord, Change, CrmError, Cursor, Direction, ErrorKind, ObjectKind,
    OwnerId, Page, PersonRef, Record, RecordId,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::batch::protocol;
use crate::client::{Client, Request};
use crate::map::{self, ObjectType, Parsed, parse_time};
use crate::sync::{self, Run, SEARCH_LIMIT, SyncConfig, SyncState};
use crate::wire::{AssociationBatchResponse, CollectionPage, Paging};

/// Properties read on every engagement type (unknown names are simply not returned).
const PROPERTIES: &[&str] = &[
    "hs_timestamp",
    "hubspot_owner_id",
    "hs_createdate",
    "hs_lastmodifieddate",
    "hs_object_id",
    "hs_call_direction",
    "hs_call_status",
    "hs_email_direction",
    "hs_email_status",
    "hs_meeting_outcome",
    "hs_meeting_start_time",
    "hs_task_status",
    "hs_task_type",
];

const fn engagement(path: &'static str) -> ObjectType {
    ObjectType {
        kind: ObjectKind::Activity,
        path,
        modified_property: "hs_lastmodifieddate",
        properties: PROPERTIES,
    }
}

/// The five types in the order a pass reads them, with the contract's kind.
const TYPES: [(ObjectType, ActivityKind); 5] = [
    (engagement("calls"), ActivityKind::Call),
    (engagement("emails"), ActivityKind::Email),
    (engagement("meetings"), ActivityKind::Meeting),
    (engagement("notes"), ActivityKind::Note),
    (engagement("tasks"), ActivityKind::Task),
];

/// Where the activity sync stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ActivitiesState {
    /// Index into the five types of the one being read.
    pub at: usize,
    /// Per type, in [`TYPES`] order.
    pub types: Vec<TypeState>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct TypeState {
    /// Engagements modified before this instant (ms) were read by earlier passes;
    /// `None` until the first pass over this type completes (it starts at 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Run>,
}

/// `Crm::changes` for `ObjectKind::Activity`.
pub(crate) async fn changes(
    client: &Client,
    cursor: Option<&Cursor>,
    config: SyncConfig,
) -> Result<Page, CrmError> {
    let calls = AtomicU32::new(0);
    let mut state = match cursor {
        None => ActivitiesState::default(),
        Some(c) => match sync::decode(ObjectKind::Activity, c)? {
            SyncState::Activities(state) => state,
            _ => {
                return Err(CrmError::new(
                    ErrorKind::BadRequest,
                    "hubspot: the stored activities cursor is not one this connector wrote; run a full sync (--full)",
                ));
            }
        },
    };
    state.types.resize(TYPES.len(), TypeState::default());
    if state.at >= TYPES.len() {
        state.at = 0;
    }
    let (object, kind) = TYPES[state.at];
    let slot = &mut state.types[state.at];
    let overlap_ms = i64::try_from(config.overlap.as_millis()).unwrap_or(i64::MAX);
    let run = slot.run.take().unwrap_or_else(|| {
        let watermark = slot.watermark_ms.unwrap_or(0);
        Run {
            from_ms: watermark.saturating_sub(overlap_ms).max(0),
            high_ms: watermark,
            ..Run::default()
        }
    });
    let body = sync::search_body(object, &run);
    let response = client
        .call(
            &Request::post(format!("/crm/v3/objects/{}/search", object.path), &body),
            &calls,
        )
        .await?
        .success("activity search")?;
    let page: CollectionPage = response.json("activity search")?;
    let more = page.results.len() >= SEARCH_LIMIT || Paging::after(&page.paging).is_some();
    let mut positions = Vec::with_capacity(page.results.len());
    let mut fresh: Vec<Parsed> = Vec::with_capacity(page.results.len());
    for raw in page.results {
        let parsed = map::parse_object(raw);
        let id = parsed
            .wire
            .id
            .clone()
            .ok_or_else(|| protocol(map::MapError::MissingId))?;
        let ts = map::modified_at(&parsed.wire, object)
            .ok_or_else(|| protocol(map::MapError::MissingModified(id.clone())))?
            .timestamp_millis();
        positions.push((id.clone(), ts));
        if ts == run.from_ms && run.seen.contains(&id) {
            continue;
        }
        fresh.push(parsed);
    }
    if run.tie_after.is_none()
        && positions
            .iter()
            .any(|(_, ts)| *ts < run.from_ms || (run.exclusive && *ts == run.from_ms))
    {
        return Err(CrmError::new(
            ErrorKind::Protocol,
            format!(
                "hubspot: search on {} hs_lastmodifieddate returned records outside the requested window; the sync cannot advance safely",
                object.path
            ),
        ));
    }
    let ids: Vec<String> = fresh.iter().filter_map(|p| p.wire.id.clone()).collect();
    let people = contacts_of(client, object.path, &ids, &calls).await?;
    let mut changes = Vec::with_capacity(fresh.len());
    for parsed in fresh {
        let id = parsed.wire.id.clone().unwrap_or_default();
        let contacts = people.get(&id).cloned().unwrap_or_default();
        let activity = activity(parsed, kind, contacts).map_err(protocol)?;
        changes.push(Change::Upsert(Record::Activity(activity)));
    }
    let done = match sync::advance(&run, &positions, more) {
        Some(next) => {
            state.types[state.at].run = Some(next);
            false
        }
        None => {
            let slot = &mut state.types[state.at];
            let mut watermark = slot.watermark_ms.unwrap_or(0).max(run.high_ms);
            for (_, ts) in &positions {
                watermark = watermark.max(*ts);
            }
            slot.watermark_ms = Some(watermark);
            state.at += 1;
            // The pass has caught up once the last type has.
            let finished = state.at >= TYPES.len();
            if finished {
                state.at = 0;
            }
            finished
        }
    };
    Ok(Page {
        changes,
        cursor: sync::encode(ObjectKind::Activity, SyncState::Activities(state)),
        done,
        calls: calls.load(Ordering::Relaxed),
    })
}

/// The contacts each engagement is associated with (v4 batch read; inputs without
/// links come back as 207 errors, which mean "none").
async fn contacts_of(
    client: &Client,
    path: &str,
    ids: &[String],
    calls: &AtomicU32,
) -> Result<HashMap<String, BTreeSet<String>>, CrmError> {
    let mut links: HashMap<String, BTreeSet<String>> = HashMap::new();
    // At most 200 ids per search page, within the 1,000-input association batch limit.
    for chunk in ids.chunks(1_000) {
        if chunk.is_empty() {
            continue;
        }
        let inputs: Vec<Value> = chunk.iter().map(|id| json!({ "id": id })).collect();
        let response = client
            .call(
                &Request::post(
                    format!("/crm/v4/associations/{path}/contacts/batch/read"),
                    &json!({ "inputs": inputs }),
                ),
                calls,
            )
            .await?
            .success("activity association batch read")?;
        let batch: AssociationBatchResponse = response.json("activity association batch read")?;
        for result in batch.results {
            let Some(from) = result.from.id else {
                continue;
            };
            let entry = links.entry(from).or_default();
            entry.extend(result.to.into_iter().filter_map(|to| to.to_object_id));
        }
    }
    Ok(links)
}

/// Maps an engagement to the contract's record.
pub(crate) fn activity(
    parsed: Parsed,
    kind: ActivityKind,
    contacts: BTreeSet<String>,
) -> Result<ActivityRecord, map::MapError> {
    let o = &parsed.wire;
    let id = o.id.clone().ok_or(map::MapError::MissingId)?;
    let updated_at = o
        .prop("hs_lastmodifieddate")
        .and_then(parse_time)
        .or_else(|| o.updated_at.as_deref().and_then(parse_time))
        .ok_or_else(|| map::MapError::MissingModified(id.clone()))?;
    let created_at = o
        .prop("hs_createdate")
        .and_then(parse_time)
        .or_else(|| o.created_at.as_deref().and_then(parse_time));
    // `hs_timestamp` is required by HubSpot (trap 20); meetings default it to their
    // start. A record without either falls back to its creation, then modification.
    let at = o
        .prop("hs_timestamp")
        .and_then(parse_time)
        .or_else(|| o.prop("hs_meeting_start_time").and_then(parse_time))
        .or(created_at)
        .unwrap_or(updated_at);
    let direction = match o
        .prop("hs_call_direction")
        .or_else(|| o.prop("hs_email_direction"))
    {
        Some("INBOUND" | "INCOMING_EMAIL") => Some(Direction::Inbound),
        Some("OUTBOUND" | "EMAIL" | "FORWARDED_EMAIL") => Some(Direction::Outbound),
        _ => None,
    };
    let status = [
        "hs_call_status",
        "hs_task_status",
        "hs_meeting_outcome",
        "hs_email_status",
    ]
    .into_iter()
    .find_map(|name| o.prop(name))
    .map(str::to_owned);
    let done = match kind {
        ActivityKind::Task => status.as_deref() == Some("COMPLETED"),
        ActivityKind::Meeting => !matches!(
            status.as_deref(),
            Some("SCHEDULED" | "RESCHEDULED" | "CANCELED" | "NO_SHOW")
        ),
        _ => true,
    };
    let people = contacts
        .into_iter()
        .map(|id| PersonRef {
            object: ObjectKind::Contact,
            id: RecordId(id),
        })
        .collect();
    Ok(ActivityRecord {
        id: RecordId(id),
        kind,
        at,
        owner_id: o.prop("hubspot_owner_id").map(OwnerId::new),
        people,
        direction,
        status,
        done,
        created_at,
        updated_at,
        raw: parsed.raw,
    })
}

/// The engagement type of a path segment, for tests and the fuzzing entry points.
#[allow(dead_code)]
pub(crate) fn kind_of(path: &str) -> Option<ActivityKind> {
    TYPES
        .iter()
        .find(|(object, _)| object.path == path)
        .map(|(_, kind)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(value: Value) -> Parsed {
        map::parse_object(value)
    }

    #[test]
    fn a_call_decodes_with_its_own_time_owner_direction_and_contacts() {
        let call = parsed(json!({
            "id": "1000000007",
            "properties": {"hs_timestamp": "2026-01-05T10:00:00.000Z", "hubspot_owner_id": "71",
                           "hs_call_direction": "OUTBOUND", "hs_call_status": "COMPLETED",
                           "hs_createdate": "2026-01-06T08:00:00.000Z",
                           "hs_lastmodifieddate": "2026-01-06T08:00:00.000Z", "hs_task_status": null},
            "createdAt": "2026-01-06T08:00:00.000Z", "updatedAt": "2026-01-06T08:00:00.000Z",
            "archived": false
        }));
        let contacts = BTreeSet::from(["12".to_owned()]);
        let a = activity(call, ActivityKind::Call, contacts).unwrap();
        assert_eq!(
            a.at.to_rfc3339(),
            "2026-01-05T10:00:00+00:00",
            "logged a day late"
        );
        assert_eq!(a.owner_id, Some(OwnerId::new("71")));
        assert_eq!(a.direction, Some(Direction::Outbound));
        assert_eq!(a.status.as_deref(), Some("COMPLETED"));
        assert!(a.done);
        assert_eq!(a.people[0].id.as_str(), "12");
    }

    #[test]
    fn an_open_task_is_not_done_and_epoch_ms_timestamps_parse() {
        let task = parsed(json!({
            "id": "5",
            "properties": {"hs_timestamp": "1767607200000", "hs_task_status": "NOT_STARTED",
                           "hs_lastmodifieddate": "1767607200000"}
        }));
        let a = activity(task, ActivityKind::Task, BTreeSet::new()).unwrap();
        assert!(!a.done);
        assert_eq!(a.at.timestamp_millis(), 1_767_607_200_000);
        assert!(a.people.is_empty());
    }

    #[test]
    fn an_engagement_without_a_modification_time_is_refused() {
        let bad = parsed(json!({"id": "9", "properties": {"hs_timestamp": "1"}}));
        assert_eq!(
            activity(bad, ActivityKind::Note, BTreeSet::new()).unwrap_err(),
            map::MapError::MissingModified("9".into())
        );
    }

    #[test]
    fn activity_cursors_round_trip_and_refuse_a_contacts_cursor() {
        let state = ActivitiesState {
            at: 2,
            types: vec![TypeState {
                watermark_ms: Some(5),
                run: None,
            }],
        };
        let cursor = sync::encode(ObjectKind::Activity, SyncState::Activities(state.clone()));
        assert_eq!(
            sync::decode(ObjectKind::Activity, &cursor).unwrap(),
            SyncState::Activities(state)
        );
        assert!(sync::decode(ObjectKind::Contact, &cursor).is_err());
        assert_eq!(kind_of("meetings"), Some(ActivityKind::Meeting));
    }
}
