//! Paging through changes: the sync cursor and the per-object pass.
//!
//! A pass runs a fixed list of stages per object (Lead: live rows, then recycle-bin
//! rows; Owner: Users, then Queues). Each stage is one SOQL query ordered by
//! `SystemModstamp, Id`, followed page by page through `nextRecordsUrl`.
//!
//! The cursor (opaque JSON) holds, per stage, the watermark (the highest stamp a
//! finished pass saw) and the `(Id, SystemModstamp)` pairs emitted recently. A new
//! pass queries `SystemModstamp >= watermark − overlap` — never a strict `>`, because
//! stamps have one-second precision and commits become visible late — and drops rows
//! already emitted with the same stamp. Mid-query, the cursor keeps the
//! `nextRecordsUrl`; if Salesforce has expired that locator (`INVALID_QUERY_LOCATOR`)
//! the stage re-queries from the highest stamp emitted so far (`>=`), and the recent
//! pairs make it skip exactly the rows already emitted, however many share that second.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use leadroute_crm::{Change, CrmError, Cursor, ErrorKind, ObjectKind, OrgIdentity, Page, RecordId};
use serde::{Deserialize, Serialize};

use crate::client::{Client, Request, Response, SfError, Target};
use crate::soql::{self, SObject};
use crate::wire::{self, QueryPage};
use crate::{ids, map};

/// Recent `(id, stamp)` pairs kept per stage. Beyond this, the oldest are forgotten
/// (never those in the newest second) and the caller's own de-duplication absorbs
/// the few repeats that follow.
pub(crate) const MAX_RECENT: usize = 20_000;

/// What a stage reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Live(SObject),
    Deleted(SObject),
}

/// The stages of one pass over `object`.
pub(crate) fn stages(object: ObjectKind) -> &'static [Stage] {
    match object {
        ObjectKind::Owner => &[Stage::Live(SObject::User), Stage::Live(SObject::Queue)],
        ObjectKind::Account => &[
            Stage::Live(SObject::Account),
            Stage::Deleted(SObject::Account),
        ],
        ObjectKind::Contact => &[
            Stage::Live(SObject::Contact),
            Stage::Deleted(SObject::Contact),
        ],
        ObjectKind::Lead => &[Stage::Live(SObject::Lead), Stage::Deleted(SObject::Lead)],
        // Activities: listed by `Salesforce::objects` only when asked. Deletions are
        // learnt from full syncs only (no recycle-bin stage).
        ObjectKind::Activity => &[Stage::Live(SObject::Task), Stage::Live(SObject::Event)],
    }
}

/// Per-stage position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StageState {
    /// Highest stamp of the last finished pass: the next pass starts `overlap` before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) wm: Option<DateTime<Utc>>,
    /// Highest stamp emitted in the pass in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) high: Option<DateTime<Utc>>,
    /// `(stamp as epoch seconds, id)` emitted recently, ordered by stamp.
    #[serde(default)]
    pub(crate) recent: BTreeSet<(i64, String)>,
}

/// The connector's cursor, serialised as JSON inside [`Cursor`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SyncCursor {
    pub(crate) v: u8,
    pub(crate) object: ObjectKind,
    /// A full sync is in progress (no stamp filter; recycle-bin stages skipped).
    pub(crate) full: bool,
    /// Index of the stage in progress; `== stages.len()` when the pass is finished.
    pub(crate) stage: usize,
    /// `nextRecordsUrl` of the open query, followed verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) next: Option<String>,
    /// Server time when the full sync began: the first recycle-bin watermark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) started_at: Option<DateTime<Utc>>,
    pub(crate) stages: Vec<StageState>,
}

impl SyncCursor {
    pub(crate) fn full(object: ObjectKind) -> Self {
        SyncCursor {
            v: 1,
            object,
            full: true,
            stage: 0,
            next: None,
            started_at: None,
            stages: vec![StageState::default(); stages(object).len()],
        }
    }

    pub(crate) fn decode(cursor: &Cursor, object: ObjectKind) -> Result<Self, CrmError> {
        let parsed: SyncCursor = serde_json::from_str(&cursor.0).map_err(|e| {
            CrmError::new(
                ErrorKind::BadRequest,
                format!("salesforce {object} cursor is not one this connector wrote ({e}); clear it to run a full sync"),
            )
        })?;
        if parsed.v != 1 || parsed.object != object || parsed.stages.len() != stages(object).len() {
            return Err(CrmError::new(
                ErrorKind::BadRequest,
                format!(
                    "salesforce cursor belongs to {} (v{}), not {object}; clear it to run a full sync",
                    parsed.object, parsed.v
                ),
            ));
        }
        Ok(parsed)
    }

    pub(crate) fn encode(&self) -> Cursor {
        Cursor(serde_json::to_string(self).expect("cursor always serialises"))
    }

    /// Whether the pass in progress has finished.
    pub(crate) fn finished(&self) -> bool {
        self.stage >= self.stages.len()
    }

    /// Starts the next incremental pass after a finished one.
    pub(crate) fn begin_pass(&mut self) {
        if self.finished() {
            self.stage = 0;
            self.next = None;
            self.full = false;
        }
    }

    /// Where the current stage's query starts: `None` = everything.
    pub(crate) fn query_from(&self, overlap: Duration) -> Option<DateTime<Utc>> {
        let state = &self.stages[self.stage];
        if let Some(high) = state.high {
            // Re-querying within a pass (expired locator): resume at the last second
            // emitted; the recent pairs filter what was already sent.
            return Some(high);
        }
        if self.full {
            return None;
        }
        let overlap = chrono::Duration::from_std(overlap).unwrap_or(chrono::Duration::minutes(5));
        state.wm.or(self.started_at).map(|wm| wm - overlap)
    }

    /// Whether `(id, stamp)` was already emitted by this stage.
    pub(crate) fn seen(&self, id: &str, stamp: DateTime<Utc>) -> bool {
        self.stages[self.stage]
            .recent
            .contains(&(stamp.timestamp(), id.to_owned()))
    }

    /// Records an emitted row and forgets pairs that can no longer be re-read.
    pub(crate) fn remember(&mut self, id: &str, stamp: DateTime<Utc>, overlap: Duration) {
        let state = &mut self.stages[self.stage];
        let secs = stamp.timestamp();
        state.high = Some(state.high.map_or(stamp, |h| h.max(stamp)));
        state.recent.insert((secs, id.to_owned()));
        let high = state.high.map_or(secs, |h| h.timestamp());
        let keep_from = high - overlap.as_secs() as i64;
        while let Some((s, _)) = state.recent.first() {
            let over_cap = state.recent.len() > MAX_RECENT && *s < high;
            if *s < keep_from || over_cap {
                state.recent.pop_first();
            } else {
                break;
            }
        }
    }

    /// Closes the current stage after its query's last page.
    pub(crate) fn finish_stage(&mut self) {
        let state = &mut self.stages[self.stage];
        if let Some(high) = state.high.take() {
            state.wm = Some(state.wm.map_or(high, |wm| wm.max(high)));
        }
        self.next = None;
        self.stage += 1;
        if self.finished() && self.full {
            // A full sync read every live row; deletions before it do not matter, and
            // ones during it are caught from its start on.
            let started_at = self.started_at;
            for state in &mut self.stages {
                state.wm = state.wm.or(started_at);
            }
            self.full = false;
        }
    }
}

/// Turns one recycle-bin row into a change: merge losers carry `MasterRecordId`.
pub(crate) fn deletion(
    object: ObjectKind,
    id: &str,
    master: Option<&str>,
    at: Option<DateTime<Utc>>,
) -> Change {
    match master {
        Some(winner) => Change::Merged {
            object,
            loser: RecordId(ids::canonical_or_raw(id)),
            winner: RecordId(ids::canonical_or_raw(winner)),
            at,
        },
        None => Change::Deleted {
            object,
            id: RecordId(ids::canonical_or_raw(id)),
            at,
            purge: false,
        },
    }
}

/// A page under construction.
pub(crate) struct PageBuilder {
    pub(crate) changes: Vec<Change>,
    pub(crate) calls: u32,
    ids_in_page: HashSet<(String, i64)>,
}

impl PageBuilder {
    pub(crate) fn new() -> Self {
        PageBuilder {
            changes: Vec::new(),
            calls: 0,
            ids_in_page: HashSet::new(),
        }
    }

    pub(crate) fn push(&mut self, id: &str, stamp: DateTime<Utc>, change: Change) {
        if self.ids_in_page.insert((id.to_owned(), stamp.timestamp())) {
            self.changes.push(change);
        }
    }

    pub(crate) fn finish(self, cursor: &SyncCursor, done: bool) -> Page {
        Page {
            changes: self.changes,
            cursor: cursor.encode(),
            done,
            calls: self.calls,
        }
    }
}

impl Default for PageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// Reading knobs from the settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadConfig {
    pub(crate) overlap: Duration,
    /// `Sforce-Query-Options: batchSize` (200..=2000).
    pub(crate) batch_size: u32,
}

fn query_options(config: ReadConfig) -> String {
    format!("batchSize={}", config.batch_size.clamp(200, 2000))
}

/// Issues the next query call of the current stage: the open locator if there is one,
/// else a fresh query from the stage's resume point. An expired locator
/// (`INVALID_QUERY_LOCATOR`) falls back to a fresh query; `calls` counts both.
async fn stage_page(
    client: &Client,
    cursor: &mut SyncCursor,
    stage: Stage,
    config: ReadConfig,
    calls: &mut u32,
) -> Result<(QueryPage, Response), SfError> {
    if let Some(next) = cursor.next.take() {
        let request = Request::get(Target::Relative(next))
            .header("Sforce-Query-Options", query_options(config));
        *calls += 1;
        match client.send_json::<QueryPage>(&request, "query page").await {
            Err(e) if e.code.as_deref() == Some("INVALID_QUERY_LOCATOR") => {
                tracing::info!(object = %cursor.object, "salesforce query locator expired; re-querying from the watermark");
            }
            other => return other,
        }
    }
    let (resource, soql) = match stage {
        Stage::Live(object) => (
            "/query",
            soql::live_query(object, cursor.query_from(config.overlap)),
        ),
        Stage::Deleted(object) => {
            let from = cursor
                .query_from(config.overlap)
                .or(cursor.started_at)
                .unwrap_or_else(Utc::now);
            ("/queryAll", soql::deleted_query(object, from))
        }
    };
    let request = Request::get(Target::Api(resource.to_owned()))
        .query("q", soql)
        .header("Sforce-Query-Options", query_options(config));
    *calls += 1;
    client.send_json::<QueryPage>(&request, "query").await
}

/// One page of changes for `object` (see [`leadroute_crm::Crm::changes`]).
pub(crate) async fn next_page(
    client: &Client,
    config: ReadConfig,
    object: ObjectKind,
    cursor: Option<&Cursor>,
) -> Result<Page, CrmError> {
    let mut cursor = match cursor {
        None => SyncCursor::full(object),
        Some(c) => SyncCursor::decode(c, object)?,
    };
    cursor.begin_pass();
    let mut page = PageBuilder::new();
    loop {
        if cursor.finished() {
            return Ok(page.finish(&cursor, true));
        }
        let stage = stages(object)[cursor.stage];
        if cursor.full && matches!(stage, Stage::Deleted(_)) {
            cursor.finish_stage();
            continue;
        }
        let before = cursor.clone();
        let (query_page, response) = match stage_page(
            client,
            &mut cursor,
            stage,
            config,
            &mut page.calls,
        )
        .await
        {
            Ok(x) => x,
            Err(e) if !page.changes.is_empty() => {
                // Hand over what earlier stages of this call produced; the failing
                // stage starts again on the next call (and fails there if it must).
                tracing::debug!(error = %e.error, "salesforce stage failed after earlier stages produced changes");
                return Ok(page.finish(&before, false));
            }
            Err(e) => return Err(e.into()),
        };
        if cursor.started_at.is_none() {
            cursor.started_at = Some(response.server_date().unwrap_or_else(Utc::now));
        }
        for row in query_page.records {
            match stage {
                Stage::Live(sobject) => {
                    let record = map::record(sobject, row).map_err(|e| {
                        CrmError::new(
                            ErrorKind::Protocol,
                            format!("salesforce sync of {object}: {e}"),
                        )
                    })?;
                    let stamp = record.updated_at().unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
                    let id = record.id().to_owned();
                    if cursor.seen(&id, stamp) {
                        continue;
                    }
                    cursor.remember(&id, stamp, config.overlap);
                    page.push(&id, stamp, Change::Upsert(record));
                }
                Stage::Deleted(_) => {
                    let Some(id) = wire::string_field(&row, "Id") else {
                        continue;
                    };
                    let id = ids::canonical_or_raw(&id);
                    let stamp = wire::datetime_field(&row, "SystemModstamp")
                        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
                    if cursor.seen(&id, stamp) {
                        continue;
                    }
                    cursor.remember(&id, stamp, config.overlap);
                    let master = wire::string_field(&row, "MasterRecordId");
                    page.push(
                        &id,
                        stamp,
                        deletion(object, &id, master.as_deref(), Some(stamp)),
                    );
                }
            }
        }
        match query_page.next_records_url {
            Some(next) if !query_page.done => {
                cursor.next = Some(next);
                return Ok(page.finish(&cursor, false));
            }
            _ => cursor.finish_stage(),
        }
    }
}

/// What `getDeleted` reports for a window.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletedWindow {
    /// One [`Change::Deleted`] per id (getDeleted cannot tell merges from deletes; the
    /// `queryAll` pass in [`next_page`] does).
    pub changes: Vec<Change>,
    /// Use as the next window's `start`: it trails `end` while long transactions run.
    pub latest_date_covered: Option<DateTime<Utc>>,
    pub earliest_date_available: Option<DateTime<Utc>>,
    /// The delete log no longer reaches back to `start` (it was purged), so deletions
    /// may have been missed: run a full resync of this object.
    pub full_resync_required: bool,
}

/// `GET /sobjects/{T}/deleted/?start&end` (replication API, ≤ 15 days back).
pub(crate) async fn get_deleted(
    client: &Client,
    object: ObjectKind,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<DeletedWindow, CrmError> {
    let sobject = match object {
        ObjectKind::Lead => SObject::Lead,
        ObjectKind::Contact => SObject::Contact,
        ObjectKind::Account => SObject::Account,
        ObjectKind::Owner | ObjectKind::Activity => {
            return Err(CrmError::new(
                ErrorKind::BadRequest,
                format!(
                    "salesforce: getDeleted is not read for {object}; it applies to Lead, Contact and Account"
                ),
            ));
        }
    };
    let iso = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let request = Request::get(Target::Api(format!(
        "/sobjects/{}/deleted/",
        sobject.api_name()
    )))
    .query("start", iso(start))
    .query("end", iso(end));
    let (body, _) = client
        .send_json::<wire::DeletedResponse>(&request, "getDeleted")
        .await?;
    let earliest = body
        .earliest_date_available
        .as_deref()
        .and_then(wire::parse_datetime);
    let changes = body
        .deleted_records
        .iter()
        .map(|r| {
            deletion(
                object,
                &r.id,
                None,
                r.deleted_date.as_deref().and_then(wire::parse_datetime),
            )
        })
        .collect();
    Ok(DeletedWindow {
        changes,
        latest_date_covered: body
            .latest_date_covered
            .as_deref()
            .and_then(wire::parse_datetime),
        earliest_date_available: earliest,
        full_resync_required: earliest.is_some_and(|e| e > start),
    })
}

/// `Crm::org_identity`: the org id from the identity URL of the token response
/// (`…/id/{orgId}/{userId}`). A session not yet opened is opened by one cheap call
/// (`GET /limits`); a pre-issued session token carries no identity URL, so the
/// configured `organization_id` answers, or nothing.
pub(crate) async fn org_identity(
    client: &Client,
    configured: Option<&str>,
) -> Result<Option<OrgIdentity>, CrmError> {
    if client.session_organization_id().is_none() {
        let request = Request::get(Target::Api("/limits".to_owned()));
        client.send(&request).await?;
    }
    let id = client
        .session_organization_id()
        .or_else(|| configured.map(str::to_owned))
        .filter(|id| !id.trim().is_empty());
    // 18 characters, whichever form the configuration used.
    Ok(id.map(|id| OrgIdentity {
        id: ids::canonical_or_raw(&id),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const OVERLAP: Duration = Duration::from_secs(300);

    fn t(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 4, 9, 0, 0).unwrap() + chrono::Duration::seconds(i64::from(s))
    }

    #[test]
    fn a_full_sync_queries_everything_then_incremental_passes_start_an_overlap_back() {
        let mut c = SyncCursor::full(ObjectKind::Lead);
        c.started_at = Some(t(100));
        assert_eq!(c.query_from(OVERLAP), None);
        c.remember("00Q000000000001AAA", t(50), OVERLAP);
        c.finish_stage();
        // The recycle-bin stage is skipped during a full sync by the caller.
        c.finish_stage();
        assert!(c.finished());
        assert!(!c.full);
        assert_eq!(c.stages[0].wm, Some(t(50)));
        assert_eq!(c.stages[1].wm, Some(t(100)));
        c.begin_pass();
        assert_eq!(
            c.query_from(OVERLAP),
            Some(t(50) - chrono::Duration::seconds(300))
        );
    }

    #[test]
    fn records_sharing_the_last_second_are_all_remembered_across_a_page_boundary() {
        let mut c = SyncCursor::full(ObjectKind::Contact);
        for i in 0..2500 {
            c.remember(&format!("id{i}"), t(7), OVERLAP);
        }
        // The locator expired: the stage re-queries from the shared second...
        assert_eq!(c.query_from(OVERLAP), Some(t(7)));
        // ...and every row of that second already sent is recognised.
        assert!((0..2500).all(|i| c.seen(&format!("id{i}"), t(7))));
        assert!(!c.seen("id2500", t(7)));
        // The same record with a newer stamp is a new change.
        assert!(!c.seen("id1", t(8)));
    }

    #[test]
    fn old_pairs_are_forgotten_once_outside_the_overlap() {
        let mut c = SyncCursor::full(ObjectKind::Lead);
        c.remember("a", t(0), OVERLAP);
        c.remember("b", t(400), OVERLAP);
        assert_eq!(c.stages[0].recent.len(), 1);
        assert!(c.seen("b", t(400)));
    }

    #[test]
    fn the_cap_never_drops_the_newest_second() {
        let mut c = SyncCursor::full(ObjectKind::Lead);
        for i in 0..(MAX_RECENT + 10) {
            c.remember(&format!("x{i}"), t(9), OVERLAP);
        }
        assert_eq!(c.stages[0].recent.len(), MAX_RECENT + 10);
        c.remember("y", t(10), OVERLAP);
        assert!(c.stages[0].recent.len() <= MAX_RECENT);
        assert!(c.seen("y", t(10)));
    }

    #[test]
    fn cursors_round_trip_as_text_and_refuse_other_objects() {
        let mut c = SyncCursor::full(ObjectKind::Lead);
        c.next = Some("/services/data/v62.0/query/01gXX-2000".into());
        c.remember("a", t(1), OVERLAP);
        let text = c.encode();
        assert_eq!(SyncCursor::decode(&text, ObjectKind::Lead).unwrap(), c);
        let err = SyncCursor::decode(&text, ObjectKind::Contact).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
        assert!(SyncCursor::decode(&Cursor("{".into()), ObjectKind::Lead).is_err());
    }

    #[test]
    fn merge_losers_become_merges_and_others_deletes() {
        let merged = deletion(
            ObjectKind::Lead,
            "00Q5e00000AbCdE",
            Some("00Q5e00000AbCdF"),
            None,
        );
        assert!(matches!(merged, Change::Merged { ref winner, .. } if winner.as_str().len() == 18));
        let deleted = deletion(ObjectKind::Lead, "00Q5e00000AbCdEEAV", None, None);
        assert!(matches!(deleted, Change::Deleted { purge: false, .. }));
    }
}
