//! Mirrored activities (calls, emails, meetings, tasks, notes, events) and the reads the
//! SLA engine makes of them: a person's activities, and activities changed after a cursor.
//!
//! Rows are written by [`Store::apply_page`] (pages of `ObjectKind::Activity`) under the
//! same rules as the other mirror rows: newer wins outside a full pass, tombstones keep
//! deleted activities from coming back on a stale read, a completed full pass removes the
//! activities it did not list. Each stored change takes the next number of the org's
//! `activity_seq` inside the writing transaction, so [`Store::activities_changed`] pages
//! by a plain integer that never skips a late commit (see the 0410 migration).
//!
//! The `org` column holds the org's name; the API takes the org like the rest of the
//! mirror.

use chrono::{DateTime, Utc};
use leadroute_crm::{ActivityKind, ActivityRecord, Direction, ObjectKind, PersonRef, RecordId};
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use super::mirror_rows::FullPass;
use super::{Store, StoreError, from_ms, get_bool, in_list, to_ms};
use crate::domain::OrgId;

/// Where a reader of [`Store::activities_changed`] stands: the `seq` of the last change
/// it has read. `ActivityCursor::START` reads from the beginning. Store it as an integer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ActivityCursor(pub i64);

impl ActivityCursor {
    pub const START: ActivityCursor = ActivityCursor(0);
}

/// One page of [`Store::activities_changed`].
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityChanges {
    /// Activities stored or changed after the cursor, in store order.
    pub activities: Vec<ActivityRecord>,
    /// Pass it back for the next page; equal to the one given when nothing changed.
    pub cursor: ActivityCursor,
    /// True when more changes wait beyond this page.
    pub more: bool,
}

fn kind_text(kind: ActivityKind) -> &'static str {
    kind.as_str()
}

fn direction_text(direction: Option<Direction>) -> Option<&'static str> {
    direction.map(|d| match d {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    })
}

fn corrupt(what: &'static str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.into(),
    }
}

/// Takes `count` consecutive numbers from the org's sequence; returns the first.
async fn take_seq(
    tx: &mut Transaction<'static, Any>,
    org: &str,
    count: usize,
) -> Result<i64, StoreError> {
    let count = i64::try_from(count).map_err(|_| corrupt("activity count", "too many"))?;
    let row = sqlx::query(
        "INSERT INTO activity_seq (org, last) VALUES ($1, $2)
         ON CONFLICT (org) DO UPDATE SET last = activity_seq.last + excluded.last
         RETURNING last",
    )
    .bind(org)
    .bind(count)
    .fetch_one(&mut **tx)
    .await
    .map_err(StoreError::query("numbering stored activities"))?;
    let last: i64 = row
        .try_get("last")
        .map_err(StoreError::query("numbering stored activities"))?;
    Ok(last - count + 1)
}

/// Upserts activities (already filtered by tombstones) and replaces their people links.
/// Returns how many rows were written; the rest were stale (the store held a newer or
/// equally new version). `seen` is the full pass the rows count as seen by; `overwrite`
/// is true for a page of a full pass of activities.
pub(super) async fn upsert_activities(
    tx: &mut Transaction<'static, Any>,
    org: &OrgId,
    activities: &[&ActivityRecord],
    now: DateTime<Utc>,
    seen: Option<i64>,
    overwrite: bool,
) -> Result<usize, StoreError> {
    if activities.is_empty() {
        return Ok(0);
    }
    let org = org.as_str();
    let first = take_seq(tx, org, activities.len()).await?;
    // A full pass rewrites every row (to mark it seen) but a row whose CRM version did
    // not change keeps its number, so the SLA engine does not re-read the whole org.
    let guard = if overwrite {
        "1 = 1"
    } else {
        "activities.updated_at < excluded.updated_at"
    };
    let sql = format!(
        "INSERT INTO activities (org, id, kind, at, owner_id, direction, status, done,
                                 created_at, updated_at, raw, synced_at, seen_pass, seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (org, id) DO UPDATE SET
             kind = excluded.kind, at = excluded.at, owner_id = excluded.owner_id,
             direction = excluded.direction, status = excluded.status, done = excluded.done,
             created_at = excluded.created_at, updated_at = excluded.updated_at,
             raw = excluded.raw, synced_at = excluded.synced_at,
             seen_pass = COALESCE(excluded.seen_pass, activities.seen_pass),
             seq = CASE WHEN activities.updated_at = excluded.updated_at
                        THEN activities.seq ELSE excluded.seq END
         WHERE {guard}
         RETURNING id"
    );
    let mut stored = 0;
    for (n, activity) in activities.iter().enumerate() {
        let seq = first + i64::try_from(n).unwrap_or(i64::MAX - first);
        let raw = serde_json::to_string(&activity.raw)
            .map_err(|err| corrupt("activity payload", err.to_string()))?;
        let row = sqlx::query(AssertSqlSafe(sql.clone()))
            .bind(org)
            .bind(activity.id.as_str())
            .bind(kind_text(activity.kind))
            .bind(to_ms(activity.at))
            .bind(activity.owner_id.as_ref().map(|o| o.as_str().to_owned()))
            .bind(direction_text(activity.direction))
            .bind(activity.status.clone())
            .bind(activity.done)
            .bind(activity.created_at.map(to_ms))
            .bind(to_ms(activity.updated_at))
            .bind(raw)
            .bind(to_ms(now))
            .bind(seen)
            .bind(seq)
            .fetch_optional(&mut **tx)
            .await
            .map_err(StoreError::query("storing an activity"))?;
        if row.is_none() {
            continue;
        }
        stored += 1;
        sqlx::query("DELETE FROM activity_people WHERE org = $1 AND activity_id = $2")
            .bind(org)
            .bind(activity.id.as_str())
            .execute(&mut **tx)
            .await
            .map_err(StoreError::query("replacing an activity's people"))?;
        let mut people: Vec<&PersonRef> = activity.people.iter().collect();
        people.sort();
        people.dedup();
        for person in people {
            sqlx::query(
                "INSERT INTO activity_people (org, activity_id, object, person_id)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(org)
            .bind(activity.id.as_str())
            .bind(person.object.as_str())
            .bind(person.id.as_str())
            .execute(&mut **tx)
            .await
            .map_err(StoreError::query("storing an activity's people"))?;
        }
    }
    Ok(stored)
}

/// Removes one activity and its links and leaves a tombstone (so a stale read does not
/// bring it back). Returns false when the stored row is newer than the deletion.
pub(super) async fn remove_activity(
    tx: &mut Transaction<'static, Any>,
    org: &OrgId,
    id: &RecordId,
    at: Option<DateTime<Utc>>,
    reason: &'static str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let org = org.as_str();
    if reason == "deleted"
        && let Some(at) = at
    {
        let newer = sqlx::query(
            "SELECT 1 AS newer FROM activities WHERE org = $1 AND id = $2 AND updated_at > $3",
        )
        .bind(org)
        .bind(id.as_str())
        .bind(to_ms(at))
        .fetch_optional(&mut **tx)
        .await
        .map_err(StoreError::query(
            "checking a deletion against the stored activity",
        ))?;
        if newer.is_some() {
            return Ok(false);
        }
    }
    for sql in [
        "DELETE FROM activity_people WHERE org = $1 AND activity_id = $2",
        "DELETE FROM activities WHERE org = $1 AND id = $2",
    ] {
        sqlx::query(sql)
            .bind(org)
            .bind(id.as_str())
            .execute(&mut **tx)
            .await
            .map_err(StoreError::query("deleting an activity"))?;
    }
    sqlx::query(
        "INSERT INTO tombstones (org, object, id, reason, merged_into, deleted_at, recorded_at)
         VALUES ($1, $2, $3, $4, NULL, $5, $6)
         ON CONFLICT (org, object, id) DO UPDATE SET
             reason = excluded.reason, deleted_at = excluded.deleted_at,
             recorded_at = excluded.recorded_at",
    )
    .bind(org)
    .bind(ObjectKind::Activity.as_str())
    .bind(id.as_str())
    .bind(reason)
    .bind(to_ms(at.unwrap_or(now)))
    .bind(to_ms(now))
    .execute(&mut **tx)
    .await
    .map_err(StoreError::query("writing an activity's tombstone"))?;
    Ok(true)
}

/// Ends a completed full pass of activities: removes those it did not list (tombstoned,
/// dated when the pass started) and marks the pass complete.
pub(super) async fn sweep_activities(
    tx: &mut Transaction<'static, Any>,
    org: &OrgId,
    pass: FullPass,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let org = org.as_str();
    let unseen = "org = $1 AND (seen_pass IS NULL OR seen_pass <> $2)";
    let bind = |sql: String| sqlx::query(AssertSqlSafe(sql)).bind(org).bind(pass.pass);
    bind(format!(
        "INSERT INTO tombstones (org, object, id, reason, merged_into, deleted_at, recorded_at)
         SELECT org, 'activity', id, 'deleted', NULL, $3, $4 FROM activities WHERE {unseen}
         ON CONFLICT (org, object, id) DO NOTHING"
    ))
    .bind(to_ms(pass.started_at))
    .bind(to_ms(now))
    .execute(&mut **tx)
    .await
    .map_err(StoreError::query(
        "tombstoning activities a full pass did not list",
    ))?;
    bind(format!(
        "DELETE FROM activity_people WHERE org = $1 AND activity_id IN
             (SELECT id FROM activities WHERE {unseen})"
    ))
    .execute(&mut **tx)
    .await
    .map_err(StoreError::query(
        "removing links of activities a full pass did not list",
    ))?;
    let removed = bind(format!("DELETE FROM activities WHERE {unseen}"))
        .execute(&mut **tx)
        .await
        .map_err(StoreError::query(
            "removing activities a full pass did not list",
        ))?
        .rows_affected();
    sqlx::query(
        "UPDATE full_passes SET completed_at = $3 WHERE org = $1 AND object = 'activity' AND pass = $2",
    )
    .bind(org)
    .bind(pass.pass)
    .bind(to_ms(now))
    .execute(&mut **tx)
    .await
    .map_err(StoreError::query("completing a full pass of activities"))?;
    Ok(usize::try_from(removed).unwrap_or(usize::MAX))
}

const COLUMNS: &str =
    "id, kind, at, owner_id, direction, status, done, created_at, updated_at, raw, seq";

impl Store {
    /// Every mirrored activity associated with one person (a contact or lead), oldest
    /// `at` first. Empty when activities are not mirrored (`[sync] activities`).
    pub async fn activities_for(
        &self,
        org: &OrgId,
        object: ObjectKind,
        id: &RecordId,
    ) -> Result<Vec<ActivityRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM activities
             WHERE org = $1 AND id IN (SELECT activity_id FROM activity_people
                                       WHERE org = $1 AND object = $2 AND person_id = $3)
             ORDER BY at, id"
        )))
        .bind(org.as_str())
        .bind(object.as_str())
        .bind(id.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query("reading a person's activities"))?;
        self.with_people(org, rows)
            .await
            .map(|found| found.into_iter().map(|(_, activity)| activity).collect())
    }

    /// Activities stored or changed (a newer CRM version) after `cursor`, at most
    /// `limit` (1..=1000), in the order they were stored. Deletions are not reported: a
    /// touch that happened stays a fact for the SLA engine even if the CRM row goes.
    pub async fn activities_changed(
        &self,
        org: &OrgId,
        cursor: ActivityCursor,
        limit: usize,
    ) -> Result<ActivityChanges, StoreError> {
        let limit = limit.clamp(1, 1_000);
        let fetch = i64::try_from(limit + 1).unwrap_or(1_001);
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM activities WHERE org = $1 AND seq > $2
             ORDER BY seq LIMIT $3"
        )))
        .bind(org.as_str())
        .bind(cursor.0)
        .bind(fetch)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query("reading changed activities"))?;
        let more = rows.len() > limit;
        let mut found = self.with_people(org, rows).await?;
        found.truncate(limit);
        let cursor = found.last().map_or(cursor, |(seq, _)| ActivityCursor(*seq));
        Ok(ActivityChanges {
            activities: found.into_iter().map(|(_, activity)| activity).collect(),
            cursor,
            more,
        })
    }

    /// Decodes activity rows and loads their people.
    async fn with_people(
        &self,
        org: &OrgId,
        rows: Vec<AnyRow>,
    ) -> Result<Vec<(i64, ActivityRecord)>, StoreError> {
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            found.push(activity_from_row(row)?);
        }
        for chunk in found.chunks_mut(200) {
            let sql = format!(
                "SELECT activity_id, object, person_id FROM activity_people
                 WHERE org = $1 AND activity_id IN ({}) ORDER BY object, person_id",
                in_list(chunk.len(), 2)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(org.as_str());
            for (_, activity) in chunk.iter() {
                query = query.bind(activity.id.as_str().to_owned());
            }
            let links = query
                .fetch_all(self.pool())
                .await
                .map_err(StoreError::query("reading activities' people"))?;
            for link in links {
                let context = "reading activities' people";
                let activity_id: String = link
                    .try_get("activity_id")
                    .map_err(StoreError::query(context))?;
                let object: String = link.try_get("object").map_err(StoreError::query(context))?;
                let person_id: String = link
                    .try_get("person_id")
                    .map_err(StoreError::query(context))?;
                let object: ObjectKind = object
                    .parse()
                    .map_err(|detail: String| corrupt("activity person kind", detail))?;
                if let Some((_, activity)) = chunk
                    .iter_mut()
                    .find(|(_, activity)| activity.id.as_str() == activity_id)
                {
                    activity.people.push(PersonRef {
                        object,
                        id: RecordId(person_id),
                    });
                }
            }
        }
        Ok(found)
    }
}

fn activity_from_row(row: &AnyRow) -> Result<(i64, ActivityRecord), StoreError> {
    let context = "reading activities";
    let get_text = |name: &str| -> Result<Option<String>, StoreError> {
        row.try_get(name).map_err(StoreError::query(context))
    };
    let get_ms = |name: &str| -> Result<Option<i64>, StoreError> {
        row.try_get(name).map_err(StoreError::query(context))
    };
    let id = get_text("id")?.ok_or_else(|| corrupt("activity id", "NULL"))?;
    let kind: ActivityKind = get_text("kind")?
        .unwrap_or_default()
        .parse()
        .map_err(|detail: String| corrupt("activity kind", detail))?;
    let direction = match get_text("direction")?.as_deref() {
        None => None,
        Some("inbound") => Some(Direction::Inbound),
        Some("outbound") => Some(Direction::Outbound),
        Some(other) => return Err(corrupt("activity direction", other)),
    };
    let raw_text = get_text("raw")?.unwrap_or_default();
    let raw = serde_json::from_str(&raw_text)
        .map_err(|err| corrupt("activity payload", err.to_string()))?;
    let at = get_ms("at")?.ok_or_else(|| corrupt("activity time", "NULL"))?;
    let updated_at = get_ms("updated_at")?.ok_or_else(|| corrupt("activity stamp", "NULL"))?;
    let seq = get_ms("seq")?.ok_or_else(|| corrupt("activity seq", "NULL"))?;
    let activity = ActivityRecord {
        id: RecordId(id),
        kind,
        at: from_ms(at),
        owner_id: get_text("owner_id")?.map(leadroute_crm::OwnerId),
        people: Vec::new(),
        direction,
        status: get_text("status")?,
        done: get_bool(row, "done").map_err(StoreError::query(context))?,
        created_at: get_ms("created_at")?.map(from_ms),
        updated_at: from_ms(updated_at),
        raw,
    };
    Ok((seq, activity))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use leadroute_crm::{Change, OwnerId, Record};

    use super::*;
    use leadroute_crm::CrmKind;

    fn call(id: &str, at_ms: i64, updated_ms: i64, contact: &str) -> Change {
        Change::Upsert(Record::Activity(ActivityRecord {
            id: RecordId::new(id),
            kind: ActivityKind::Call,
            at: Utc.timestamp_millis_opt(at_ms).unwrap(),
            owner_id: Some(OwnerId::new("7")),
            people: vec![PersonRef {
                object: ObjectKind::Contact,
                id: RecordId::new(contact),
            }],
            direction: Some(Direction::Outbound),
            status: Some("COMPLETED".into()),
            done: true,
            created_at: None,
            updated_at: Utc.timestamp_millis_opt(updated_ms).unwrap(),
            raw: serde_json::json!({"id": id}),
        }))
    }

    #[tokio::test]
    async fn activities_are_read_per_person_and_by_change_cursor_on_every_backend() {
        for ts in crate::store::test_stores::all().await {
            let (store, label) = (&ts.store, ts.label());
            let org = crate::domain::OrgId::default_for(CrmKind::Hubspot);
            let crm = &org;
            let page = [call("a1", 1_000, 5_000, "c1"), call("a2", 500, 5_000, "c2")];
            store
                .apply_changes(crm, ObjectKind::Activity, &page, None)
                .await
                .unwrap();
            let mine = store
                .activities_for(crm, ObjectKind::Contact, &RecordId::new("c1"))
                .await
                .unwrap();
            assert_eq!(mine.len(), 1, "{label}");
            assert_eq!(
                mine[0].at.timestamp_millis(),
                1_000,
                "{label}: its own time"
            );
            assert_eq!(mine[0].owner_id, Some(OwnerId::new("7")), "{label}");
            assert_eq!(mine[0].people[0].id.as_str(), "c1", "{label}");

            let first = store
                .activities_changed(crm, ActivityCursor::START, 1)
                .await
                .unwrap();
            assert_eq!(first.activities.len(), 1, "{label}");
            assert!(first.more, "{label}");
            let rest = store
                .activities_changed(crm, first.cursor, 10)
                .await
                .unwrap();
            assert_eq!(rest.activities.len(), 1, "{label}");
            assert!(!rest.more, "{label}");

            // A repeat of the same version changes nothing; a newer one is reported again,
            // with its new person.
            store
                .apply_changes(
                    crm,
                    ObjectKind::Activity,
                    &[call("a1", 1_000, 5_000, "c1")],
                    None,
                )
                .await
                .unwrap();
            let none = store
                .activities_changed(crm, rest.cursor, 10)
                .await
                .unwrap();
            assert!(none.activities.is_empty(), "{label}");
            assert_eq!(none.cursor, rest.cursor, "{label}");
            store
                .apply_changes(
                    crm,
                    ObjectKind::Activity,
                    &[call("a1", 1_000, 6_000, "c3")],
                    None,
                )
                .await
                .unwrap();
            let again = store
                .activities_changed(crm, rest.cursor, 10)
                .await
                .unwrap();
            assert_eq!(again.activities.len(), 1, "{label}");
            assert_eq!(again.activities[0].people[0].id.as_str(), "c3", "{label}");
            assert!(
                store
                    .activities_for(crm, ObjectKind::Contact, &RecordId::new("c1"))
                    .await
                    .unwrap()
                    .is_empty(),
                "{label}: links replaced"
            );

            // Deleted: gone, and a stale read does not bring it back.
            let deleted = Change::Deleted {
                object: ObjectKind::Activity,
                id: RecordId::new("a2"),
                at: Some(Utc.timestamp_millis_opt(7_000).unwrap()),
                purge: false,
            };
            store
                .apply_changes(crm, ObjectKind::Activity, &[deleted], None)
                .await
                .unwrap();
            store
                .apply_changes(
                    crm,
                    ObjectKind::Activity,
                    &[call("a2", 500, 5_000, "c2")],
                    None,
                )
                .await
                .unwrap();
            assert!(
                store
                    .activities_for(crm, ObjectKind::Contact, &RecordId::new("c2"))
                    .await
                    .unwrap()
                    .is_empty(),
                "{label}: a deleted activity stays deleted"
            );
            assert_eq!(store.counts(crm).await.unwrap().activities, 1, "{label}");
        }
    }
}
