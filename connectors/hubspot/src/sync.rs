//! Sync strategies behind `Crm::changes`: owner listing, full sync by list paging, and
//! incremental sync by search, plus the periodic archived sweep. Owns the cursor format.
//!
//! # Cursor
//! Opaque JSON text ([`CursorDoc`]): which object, and where the sync stands. Each page
//! returns the position *after* that page, so resuming after a crash re-reads at most one
//! page of ties (mid-run) or the overlap window (between runs).
//!
//! # Incremental sync and the 10,000 cap
//! Search is sorted ascending on the last-modified property, 200 per page. Instead of
//! following `after` offsets we restart the query after *every* page at `GTE` the last
//! timestamp seen, skipping the ids already emitted at exactly that timestamp (kept in
//! the cursor). This is the reference's "restart before the offset passes 10,000",
//! applied at every page, for two reasons: offsets are positions in a live, re-sorted
//! result set, so a record modified mid-scan moves to the end and shifts every later
//! record one place left, silently skipping the record at the next page boundary; and
//! a query restarted at offset 0 can never hit the 10,000 cap. It costs no extra calls
//! (the one repeated boundary record is de-duplicated). When a whole page shares one
//! timestamp (a bulk import), the query switches to keyset paging inside it:
//! `ts EQ t AND hs_object_id GT last` sorted by `hs_object_id`, then continues with
//! `GT t`.
//!
//! # Archives
//! Search never returns archived records, so deletions are learnt from webhook hints
//! (fetch → `Deleted`) and from a periodic archived sweep that lists `archived=true`.
//! The sweep costs ceil(archived/100) calls however few were archived recently (the list
//! cannot filter by `archivedAt`), so it runs at most once per `archived_sweep_interval`
//! (default one hour), after an incremental run, and the cursor remembers when the last
//! one started. The trade-off: without webhooks a deletion reaches the mirror up to one
//! interval late; a shorter interval buys freshness with calls.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::Utc;
use leadroute_crm::{
    Change, CrmError, Cursor, ErrorKind, ObjectKind, OrgIdentity, Page, Record, RecordId,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::batch::{self, protocol};
use crate::client::{Client, Request};
use crate::map::{self, CONTACTS, ObjectType, Parsed};
use crate::wire::{AccountDetails, CollectionPage, Paging};

/// Page sizes (HubSpot maxima).
pub(crate) const LIST_LIMIT: usize = 100;
pub(crate) const SEARCH_LIMIT: usize = 200;
pub(crate) const OWNER_LIMIT: usize = 500;

/// Sync tuning taken from the settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SyncConfig {
    pub overlap: Duration,
    pub archived_sweep_interval: Duration,
}

/// The cursor document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CursorDoc {
    /// Format version; bump when the shape changes incompatibly.
    pub v: u32,
    pub object: ObjectKind,
    pub state: SyncState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub(crate) enum SyncState {
    /// Owners have no search: every pass lists active then archived owners.
    Owners {
        archived: bool,
        after: Option<String>,
    },
    /// A full sync by list paging.
    Full {
        started_ms: i64,
        after: Option<String>,
    },
    Incremental(Incremental),
    /// Activities: the five engagement types in turn (`activities.rs`).
    Activities(crate::activities::ActivitiesState),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Incremental {
    /// Records modified before this instant (ms) were seen by earlier runs; the next run
    /// starts `overlap` before it to absorb search index lag.
    pub watermark_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Run>,
    /// When the last completed archived sweep started (ms).
    #[serde(default)]
    pub last_sweep_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Sweep>,
}

/// An incremental run in progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Run {
    /// Lower bound of the current query (ms).
    pub from_ms: i64,
    /// `GT from_ms` rather than `GTE`: a tie scan has covered `from_ms` completely.
    #[serde(default)]
    pub exclusive: bool,
    /// Ids already emitted with modification time == `from_ms`.
    #[serde(default)]
    pub seen: BTreeSet<String>,
    /// Keyset paging inside `from_ms`: the last `hs_object_id` emitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tie_after: Option<String>,
    /// Highest modification time emitted in this run (ms).
    pub high_ms: i64,
}

/// An archived sweep in progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Sweep {
    pub started_ms: i64,
    pub after: Option<String>,
}

const CURSOR_VERSION: u32 = 1;

pub(crate) fn encode(object: ObjectKind, state: SyncState) -> Cursor {
    let doc = CursorDoc {
        v: CURSOR_VERSION,
        object,
        state,
    };
    Cursor(serde_json::to_string(&doc).expect("cursor state always serialises"))
}

pub(crate) fn decode(object: ObjectKind, cursor: &Cursor) -> Result<SyncState, CrmError> {
    let doc: CursorDoc = serde_json::from_str(&cursor.0).map_err(|e| {
        CrmError::new(
            ErrorKind::BadRequest,
            "hubspot: stored cursor is not one this connector wrote; run a full sync (--full)",
        )
        .with_source(e)
    })?;
    if doc.v != CURSOR_VERSION || doc.object != object {
        return Err(CrmError::new(
            ErrorKind::BadRequest,
            format!(
                "hubspot: stored cursor is for {} (format v{}), not {object} (v{CURSOR_VERSION}); run a full sync (--full)",
                doc.object, doc.v
            ),
        ));
    }
    Ok(doc.state)
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `Crm::changes` for contacts and companies.
pub(crate) async fn changes(
    client: &Client,
    object: ObjectType,
    cursor: Option<&Cursor>,
    config: SyncConfig,
) -> Result<Page, CrmError> {
    let calls = AtomicU32::new(0);
    let state = match cursor {
        None => SyncState::Full {
            started_ms: now_ms(),
            after: None,
        },
        Some(c) => decode(object.kind, c)?,
    };
    let (changes, state, done) = match state {
        SyncState::Full { started_ms, after } => {
            full_page(client, object, started_ms, after, &calls).await?
        }
        SyncState::Incremental(inc) => {
            incremental_page(client, object, inc, config, &calls).await?
        }
        SyncState::Owners { .. } | SyncState::Activities(_) => {
            return Err(CrmError::new(
                ErrorKind::BadRequest,
                format!(
                    "hubspot: an owners or activities cursor was given for {}; run a full sync (--full)",
                    object.kind
                ),
            ));
        }
    };
    Ok(Page {
        changes,
        cursor: encode(object.kind, state),
        done,
        calls: calls.load(Ordering::Relaxed),
    })
}

/// One list page of a full sync.
async fn full_page(
    client: &Client,
    object: ObjectType,
    started_ms: i64,
    after: Option<String>,
    calls: &AtomicU32,
) -> Result<(Vec<Change>, SyncState, bool), CrmError> {
    let mut query = vec![
        ("limit", LIST_LIMIT.to_string()),
        ("archived", "false".to_owned()),
        ("properties", object.properties.join(",")),
    ];
    if object.kind == CONTACTS.kind {
        query.push(("associations", "companies".to_owned()));
    }
    if let Some(after) = &after {
        query.push(("after", after.clone()));
    }
    let response = client
        .call(
            &Request::get(format!("/crm/v3/objects/{}", object.path), query),
            calls,
        )
        .await?
        .success("list")?;
    let page: CollectionPage = response.json("list")?;
    let parsed: Vec<Parsed> = page.results.into_iter().map(map::parse_object).collect();

    // The list embeds associations, saving a call per page; only records whose embedded
    // list is truncated (paged) are re-read through v4, which is complete. Primacy comes
    // from the embedded type name and is cross-checked against `associatedcompanyid`.
    let mut links: HashMap<String, Vec<leadroute_crm::AccountLink>> = HashMap::new();
    if object.kind == CONTACTS.kind {
        let mut truncated = Vec::new();
        for p in &parsed {
            let Some(id) = p.wire.id.clone() else {
                continue;
            };
            match map::embedded_links(&p.wire) {
                Some(l) => {
                    links.insert(id, l);
                }
                None => truncated.push(id),
            }
        }
        if !truncated.is_empty() {
            links.extend(batch::read_associations(client, &truncated, calls).await?);
        }
    }
    let mut changes = Vec::with_capacity(parsed.len());
    for p in parsed {
        let absorbed = map::merged_ids(&p.wire);
        changes.extend(batch::to_changes(object, p, absorbed, Some(&links))?);
    }
    Ok(match Paging::after(&page.paging) {
        Some(next) => (
            changes,
            SyncState::Full {
                started_ms,
                after: Some(next),
            },
            false,
        ),
        // Done: anything modified since the full sync started is picked up by the
        // first incremental run, which starts `overlap` before that instant.
        None => (
            changes,
            SyncState::Incremental(Incremental {
                watermark_ms: started_ms,
                ..Incremental::default()
            }),
            true,
        ),
    })
}

/// The search body of the current run position.
pub(crate) fn search_body(object: ObjectType, run: &Run) -> Value {
    let modified = object.modified_property;
    match &run.tie_after {
        Some(last) => json!({
            "filterGroups": [{"filters": [
                {"propertyName": modified, "operator": "EQ", "value": run.from_ms.to_string()},
                {"propertyName": "hs_object_id", "operator": "GT", "value": last},
            ]}],
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "properties": object.properties,
            "limit": SEARCH_LIMIT,
        }),
        None => json!({
            "filterGroups": [{"filters": [
                {"propertyName": modified,
                 "operator": if run.exclusive { "GT" } else { "GTE" },
                 "value": run.from_ms.to_string()},
            ]}],
            "sorts": [{"propertyName": modified, "direction": "ASCENDING"}],
            "properties": object.properties,
            "limit": SEARCH_LIMIT,
        }),
    }
}

/// Where the run stands after a page: `None` when the run is complete.
///
/// `page` is the (id, modified ms) of every result in the order HubSpot returned them,
/// `full` whether HubSpot indicated more results (a full page or `paging.next`).
pub(crate) fn advance(run: &Run, page: &[(String, i64)], full: bool) -> Option<Run> {
    let mut next = run.clone();
    if let Some(max) = page.iter().map(|(_, ts)| *ts).max() {
        next.high_ms = next.high_ms.max(max);
    }
    if !full {
        if run.tie_after.is_some() {
            // The timestamp is exhausted; carry on after it.
            next.tie_after = None;
            next.exclusive = true;
            next.seen.clear();
            return Some(next);
        }
        return None;
    }
    if run.tie_after.is_some() {
        next.tie_after = page
            .iter()
            .map(|(id, _)| id.clone())
            .max_by_key(|id| id.parse::<u64>().unwrap_or(0))
            .or(next.tie_after);
        return Some(next);
    }
    let last = page.last().map(|(_, ts)| *ts).unwrap_or(run.from_ms);
    if last <= run.from_ms && !run.exclusive {
        // A whole page at one timestamp: GTE cannot move past it. Scan inside it by id,
        // skipping what this page already emitted.
        next.tie_after = Some("0".to_owned());
        next.seen.extend(
            page.iter()
                .filter(|(_, ts)| *ts == run.from_ms)
                .map(|(id, _)| id.clone()),
        );
        return Some(next);
    }
    next.from_ms = last;
    next.exclusive = false;
    next.seen = page
        .iter()
        .filter(|(_, ts)| *ts == last)
        .map(|(id, _)| id.clone())
        .collect();
    if last == run.from_ms {
        next.seen.extend(run.seen.iter().cloned());
    }
    Some(next)
}

/// One page of an incremental run (or of the archived sweep that follows it).
async fn incremental_page(
    client: &Client,
    object: ObjectType,
    mut inc: Incremental,
    config: SyncConfig,
    calls: &AtomicU32,
) -> Result<(Vec<Change>, SyncState, bool), CrmError> {
    if let Some(sweep) = inc.sweep.take() {
        return sweep_page(client, object, inc, sweep, calls).await;
    }
    let overlap_ms = i64::try_from(config.overlap.as_millis()).unwrap_or(i64::MAX);
    let run = inc.run.take().unwrap_or_else(|| Run {
        from_ms: inc.watermark_ms.saturating_sub(overlap_ms),
        high_ms: inc.watermark_ms,
        ..Run::default()
    });
    let body = search_body(object, &run);
    let response = client
        .call(
            &Request::post(format!("/crm/v3/objects/{}/search", object.path), &body),
            calls,
        )
        .await?
        .success("search")?;
    let page: CollectionPage = response.json("search")?;
    let more = page.results.len() >= SEARCH_LIMIT || Paging::after(&page.paging).is_some();
    let mut positions = Vec::with_capacity(page.results.len());
    let mut fresh = Vec::with_capacity(page.results.len());
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
        // Ties repeat under GTE: skip what this run already emitted at `from_ms`.
        if ts == run.from_ms && run.seen.contains(&id) {
            continue;
        }
        fresh.push(parsed);
    }
    let links = if object.kind == CONTACTS.kind && !fresh.is_empty() {
        let ids: Vec<String> = fresh.iter().filter_map(|p| p.wire.id.clone()).collect();
        Some(batch::read_associations(client, &ids, calls).await?)
    } else {
        None
    };
    let mut changes = Vec::with_capacity(fresh.len());
    for p in fresh {
        let absorbed = map::merged_ids(&p.wire);
        changes.extend(batch::to_changes(object, p, absorbed, links.as_ref())?);
    }
    if run.tie_after.is_none()
        && positions
            .iter()
            .any(|(_, ts)| *ts < run.from_ms || (run.exclusive && *ts == run.from_ms))
    {
        // Would make the run go backwards (or loop): HubSpot ignored the filter.
        return Err(CrmError::new(
            ErrorKind::Protocol,
            format!(
                "hubspot: search on {} returned records outside the requested window; the sync cannot advance safely",
                object.modified_property
            ),
        ));
    }
    match advance(&run, &positions, more) {
        Some(next) => {
            inc.run = Some(next);
            Ok((changes, SyncState::Incremental(inc), false))
        }
        None => {
            inc.watermark_ms = inc.watermark_ms.max(run.high_ms);
            for (_, ts) in &positions {
                inc.watermark_ms = inc.watermark_ms.max(*ts);
            }
            let sweep_due = inc.last_sweep_ms.is_none_or(|last| {
                now_ms().saturating_sub(last)
                    >= i64::try_from(config.archived_sweep_interval.as_millis()).unwrap_or(i64::MAX)
            });
            if sweep_due {
                inc.sweep = Some(Sweep {
                    started_ms: now_ms(),
                    after: None,
                });
                Ok((changes, SyncState::Incremental(inc), false))
            } else {
                Ok((changes, SyncState::Incremental(inc), true))
            }
        }
    }
}

/// One page of the archived sweep: every archived record becomes `Deleted`.
async fn sweep_page(
    client: &Client,
    object: ObjectType,
    mut inc: Incremental,
    sweep: Sweep,
    calls: &AtomicU32,
) -> Result<(Vec<Change>, SyncState, bool), CrmError> {
    let mut query = vec![
        ("limit", LIST_LIMIT.to_string()),
        ("archived", "true".to_owned()),
        ("properties", "hs_object_id".to_owned()),
    ];
    if let Some(after) = &sweep.after {
        query.push(("after", after.clone()));
    }
    let response = client
        .call(
            &Request::get(format!("/crm/v3/objects/{}", object.path), query),
            calls,
        )
        .await?
        .success("archived list")?;
    let page: CollectionPage = response.json("archived list")?;
    let changes = page
        .results
        .into_iter()
        .map(map::parse_object)
        .filter_map(|p| {
            let id = p.wire.id.clone()?;
            Some(Change::Deleted {
                object: object.kind,
                id: RecordId(id),
                at: p.wire.archived_at.as_deref().and_then(map::parse_time),
                purge: false,
            })
        })
        .collect();
    match Paging::after(&page.paging) {
        Some(next) => {
            inc.sweep = Some(Sweep {
                started_ms: sweep.started_ms,
                after: Some(next),
            });
            Ok((changes, SyncState::Incremental(inc), false))
        }
        None => {
            inc.last_sweep_ms = Some(sweep.started_ms);
            Ok((changes, SyncState::Incremental(inc), true))
        }
    }
}

/// `Crm::changes` for owners: active pages, then archived pages (inactive owners).
pub(crate) async fn owner_changes(
    client: &Client,
    cursor: Option<&Cursor>,
) -> Result<Page, CrmError> {
    let calls = AtomicU32::new(0);
    let (archived, after) = match cursor.map(|c| decode(ObjectKind::Owner, c)).transpose()? {
        Some(SyncState::Owners { archived, after }) => (archived, after),
        Some(_) => {
            return Err(CrmError::new(
                ErrorKind::BadRequest,
                "hubspot: a contacts/companies cursor was given for owners",
            ));
        }
        None => (false, None),
    };
    let mut query = vec![
        ("limit", OWNER_LIMIT.to_string()),
        ("archived", archived.to_string()),
    ];
    if let Some(after) = &after {
        query.push(("after", after.clone()));
    }
    let response = client
        .call(&Request::get("/crm/v3/owners", query), &calls)
        .await?
        .success("owners list")?;
    let page: CollectionPage = response.json("owners list")?;
    let mut changes = Vec::with_capacity(page.results.len());
    for raw in page.results {
        let owner = map::owner(raw, archived).map_err(protocol)?;
        changes.push(Change::Upsert(Record::Owner(owner)));
    }
    let (state, done) = match (Paging::after(&page.paging), archived) {
        (Some(next), archived) => (
            SyncState::Owners {
                archived,
                after: Some(next),
            },
            false,
        ),
        (None, false) => (
            SyncState::Owners {
                archived: true,
                after: None,
            },
            false,
        ),
        // A pass is complete; the next call starts a new one (owners have no search).
        (None, true) => (
            SyncState::Owners {
                archived: false,
                after: None,
            },
            true,
        ),
    };
    Ok(Page {
        changes,
        cursor: encode(ObjectKind::Owner, state),
        done,
        calls: calls.load(Ordering::Relaxed),
    })
}

/// `Crm::org_identity`: the portal (hub) id from `GET /account-info/v3/details`.
pub(crate) async fn portal_identity(client: &Client) -> Result<Option<OrgIdentity>, CrmError> {
    let calls = AtomicU32::new(0);
    let response = client
        .call(
            &Request::get("/account-info/v3/details", Vec::new()),
            &calls,
        )
        .await?
        .success("account details");
    let response = match response {
        Ok(response) => response,
        // A token not allowed to read the account's details still syncs; the store
        // just cannot tell this portal from another.
        Err(err) if err.kind == ErrorKind::Forbidden => {
            tracing::warn!(
                error = %err,
                "hubspot: the token may not read account details, so the portal id is unknown and the store's portal is not checked"
            );
            return Ok(None);
        }
        Err(err) => return Err(err),
    };
    let details: AccountDetails = response.json("account details")?;
    match details.portal_id.filter(|id| !id.trim().is_empty()) {
        Some(id) => Ok(Some(OrgIdentity { id })),
        None => Err(CrmError::new(
            ErrorKind::Protocol,
            "hubspot: account details carry no portalId, so the portal cannot be identified",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(from: i64) -> Run {
        Run {
            from_ms: from,
            high_ms: from,
            ..Run::default()
        }
    }

    fn page(items: &[(&str, i64)]) -> Vec<(String, i64)> {
        items
            .iter()
            .map(|(id, ts)| ((*id).to_owned(), *ts))
            .collect()
    }

    #[test]
    fn a_short_page_completes_the_run() {
        assert_eq!(
            advance(&run(100), &page(&[("1", 100), ("2", 105)]), false),
            None
        );
    }

    #[test]
    fn a_full_page_restarts_at_its_last_timestamp_remembering_the_ties() {
        let next = advance(
            &run(100),
            &page(&[("1", 100), ("2", 150), ("3", 150)]),
            true,
        )
        .unwrap();
        assert_eq!(next.from_ms, 150);
        assert!(!next.exclusive);
        assert_eq!(next.seen, BTreeSet::from(["2".to_owned(), "3".to_owned()]));
        assert_eq!(next.high_ms, 150);
        assert_eq!(next.tie_after, None);
    }

    #[test]
    fn a_page_entirely_at_one_timestamp_switches_to_keyset_paging_by_id() {
        let mut start = run(100);
        start.seen.insert("1".into());
        let next = advance(&start, &page(&[("1", 100), ("2", 100)]), true).unwrap();
        assert_eq!(next.tie_after.as_deref(), Some("0"));
        assert_eq!(next.from_ms, 100);
        assert!(
            next.seen.contains("2"),
            "the tie scan skips what this page emitted"
        );
        let body = search_body(CONTACTS, &next);
        let filters = &body["filterGroups"][0]["filters"];
        assert_eq!(filters[0]["operator"], "EQ");
        assert_eq!(filters[1]["propertyName"], "hs_object_id");
        assert_eq!(body["sorts"][0]["propertyName"], "hs_object_id");

        // Keyset pages advance by the largest id (numerically, not as text)…
        let next = advance(&next, &page(&[("9", 100), ("10", 100)]), true).unwrap();
        assert_eq!(next.tie_after.as_deref(), Some("10"));
        // …and when the timestamp is exhausted the run continues strictly after it.
        let next = advance(&next, &page(&[("11", 100)]), false).unwrap();
        assert_eq!(next.tie_after, None);
        assert!(next.exclusive);
        assert!(next.seen.is_empty());
        assert_eq!(
            search_body(COMPANIES_FOR_TEST, &next)["filterGroups"][0]["filters"][0]["operator"],
            "GT"
        );
    }

    const COMPANIES_FOR_TEST: ObjectType = map::COMPANIES;

    #[test]
    fn search_bodies_use_the_right_modified_property_and_stay_in_limits() {
        let body = search_body(map::COMPANIES, &run(1_767_225_600_000));
        let filter = &body["filterGroups"][0]["filters"][0];
        assert_eq!(filter["propertyName"], "hs_lastmodifieddate");
        assert_eq!(filter["operator"], "GTE");
        assert_eq!(filter["value"], "1767225600000");
        assert_eq!(body["limit"], 200);
        assert_eq!(body["sorts"][0]["direction"], "ASCENDING");
        assert!(body.get("after").is_none(), "queries restart at offset 0");
        let contacts = search_body(CONTACTS, &run(0));
        assert_eq!(
            contacts["filterGroups"][0]["filters"][0]["propertyName"],
            "lastmodifieddate"
        );
    }

    #[test]
    fn cursors_round_trip_and_refuse_another_objects_state() {
        let state = SyncState::Incremental(Incremental {
            watermark_ms: 42,
            run: Some(run(7)),
            last_sweep_ms: Some(3),
            sweep: None,
        });
        let cursor = encode(ObjectKind::Contact, state.clone());
        assert_eq!(decode(ObjectKind::Contact, &cursor).unwrap(), state);
        assert_eq!(
            decode(ObjectKind::Account, &cursor).unwrap_err().kind,
            ErrorKind::BadRequest
        );
        assert_eq!(
            decode(ObjectKind::Contact, &Cursor("garbage".into()))
                .unwrap_err()
                .kind,
            ErrorKind::BadRequest
        );
    }

    #[test]
    fn more_than_ten_thousand_changes_never_page_past_offset_zero() {
        // Simulate 60 full pages with strictly increasing timestamps: every query
        // restarts at GTE the last timestamp, so no `after` offset is ever sent.
        let mut r = run(0);
        for p in 0..60i64 {
            let items: Vec<(String, i64)> = (0..200)
                .map(|i| ((p * 200 + i).to_string(), p * 1000 + i))
                .collect();
            r = advance(&r, &items, true).unwrap();
            assert!(search_body(CONTACTS, &r).get("after").is_none());
        }
        assert_eq!(r.from_ms, 59 * 1000 + 199);
        assert_eq!(r.seen.len(), 1);
    }
}
