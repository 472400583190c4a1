//! Mirror rows: owners, accounts, people and their account links, tombstones for
//! deletes and merges, and sync cursors.
//!
//! Invariants this file keeps:
//! - A page of changes and its cursor are stored in one transaction, so a crash never
//!   loses records nor advances a cursor past records that were not stored.
//! - A row is never overwritten by an older version (`updated_at` guard in the upsert),
//!   so overlapping pages, webhook refetches and out-of-order delivery are harmless.
//!   The exception is a full pass ([`PageMode::Full`]), a repair: the CRM's listing is
//!   its current state, so it overwrites whatever the store holds, clears tombstones
//!   of ids it lists live, and at the end of a completed pass removes the object's rows
//!   the pass did not see (mark and sweep: `seen_pass` against `full_passes.pass`).
//! - A deleted record is not resurrected by a stale read (tombstone guard); a record
//!   updated after its deletion (a HubSpot restore) comes back. Merged-away and purged
//!   ids never come back.
//! - A purge (GDPR) removes the row, its raw payload and links; the tombstone keeps only
//!   the id.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use leadroute_crm::{
    AccountLink, AccountRecord, Change, Cursor, ObjectKind, OwnerId, OwnerKind, OwnerRecord,
    PersonRecord, Record, RecordId, Team,
};
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use super::activities;
use super::{
    Store, StoreError, from_ms, get_bool, in_list, placeholders, rows_per_statement, to_ms,
};
use crate::domain::{OrgId, OrgRef, Snapshot};

/// Rows per multi-row statement: people rows bind 20 values, the widest here (see
/// [`super::MAX_PARAMS`] for why statements stay small).
const CHUNK: usize = rows_per_statement(20);

/// What one [`Store::apply_changes`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Records inserted or updated.
    pub upserted: usize,
    /// Upserts skipped because the store already held a newer (or equally new) version,
    /// or the record was deleted later than this version.
    pub stale: usize,
    /// Records removed as deleted/archived.
    pub deleted: usize,
    /// Records removed as merged into another.
    pub merged: usize,
    /// Records whose personal data was purged.
    pub purged: usize,
    /// Records removed because a completed full pass did not list them.
    pub pruned: usize,
}

impl std::ops::AddAssign for ApplyStats {
    fn add_assign(&mut self, other: ApplyStats) {
        self.upserted += other.upserted;
        self.stale += other.stale;
        self.deleted += other.deleted;
        self.merged += other.merged;
        self.purged += other.purged;
        self.pruned += other.pruned;
    }
}

/// One object's full pass: a numbered read of everything the CRM lists, which may span
/// several runs (an interrupted pass resumes from the stored cursor with its number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FullPass {
    pub pass: i64,
    pub started_at: DateTime<Utc>,
}

/// How [`Store::apply_page`] stores a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageMode {
    /// Newer wins: an older version never overwrites a newer one, tombstones hold.
    Incremental,
    /// A page of a full pass: the CRM's state wins (see the module docs). `last` marks
    /// the page that completes the pass: the object's rows the pass did not see are
    /// removed in the same transaction, and the pass is marked complete.
    Full { pass: FullPass, last: bool },
}

/// How many live rows the mirror holds for one CRM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MirrorCounts {
    pub owners: u64,
    pub accounts: u64,
    pub contacts: u64,
    pub leads: u64,
    pub activities: u64,
    pub links: u64,
    pub tombstones: u64,
}

/// Why a record left the mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TombstoneReason {
    Deleted,
    Merged,
    Purged,
}

impl TombstoneReason {
    fn as_str(self) -> &'static str {
        match self {
            TombstoneReason::Deleted => "deleted",
            TombstoneReason::Merged => "merged",
            TombstoneReason::Purged => "purged",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "deleted" => Ok(TombstoneReason::Deleted),
            "merged" => Ok(TombstoneReason::Merged),
            "purged" => Ok(TombstoneReason::Purged),
            other => Err(StoreError::Corrupt {
                what: "tombstone reason",
                detail: other.to_owned(),
            }),
        }
    }
}

/// A record that left the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub object: ObjectKind,
    pub id: RecordId,
    pub reason: TombstoneReason,
    pub merged_into: Option<RecordId>,
    pub deleted_at: DateTime<Utc>,
}

/// The table an object's rows live in.
fn table(object: ObjectKind) -> &'static str {
    match object {
        ObjectKind::Owner => "owners",
        ObjectKind::Account => "accounts",
        ObjectKind::Contact | ObjectKind::Lead => "people",
        // Keyed by `org`, not `crm`: `activities.rs` owns its statements.
        ObjectKind::Activity => "activities",
    }
}

fn parse_object(s: &str) -> Result<ObjectKind, StoreError> {
    s.parse().map_err(|detail| StoreError::Corrupt {
        what: "object kind",
        detail,
    })
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value)
        .expect("records serialise to JSON: they hold no maps with non-string keys")
}

fn from_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt {
        what,
        detail: err.to_string(),
    })
}

/// The last word on each record within one page, in page order.
///
/// Connectors may repeat a record within a page (overlap windows, merges), and one
/// multi-row upsert cannot touch a row twice on PostgreSQL, so we reduce first: a later
/// deletion wins; a later upsert wins over an earlier upsert unless it is older, and over
/// a deletion only if it is newer than the deletion.
fn reduce(changes: &[Change]) -> Vec<&Change> {
    let mut order: Vec<(ObjectKind, &str)> = Vec::new();
    let mut last: HashMap<(ObjectKind, &str), &Change> = HashMap::new();
    for change in changes {
        let key = match change {
            Change::Upsert(record) => (record.object(), record.id()),
            Change::Deleted { object, id, .. } => (*object, id.as_str()),
            Change::Merged { object, loser, .. } => (*object, loser.as_str()),
        };
        match last.get(&key) {
            None => {
                order.push(key);
                last.insert(key, change);
            }
            Some(previous) => {
                let keep_new = match (previous, change) {
                    (Change::Upsert(old), Change::Upsert(new)) => {
                        match (old.updated_at(), new.updated_at()) {
                            (Some(old), Some(new)) => new >= old,
                            _ => true,
                        }
                    }
                    (
                        Change::Deleted { at, .. } | Change::Merged { at, .. },
                        Change::Upsert(new),
                    ) => {
                        matches!((at, new.updated_at()), (Some(at), Some(new)) if new > *at)
                    }
                    (_, Change::Deleted { .. } | Change::Merged { .. }) => true,
                };
                if keep_new {
                    last.insert(key, change);
                }
            }
        }
    }
    order.into_iter().map(|key| last[&key]).collect()
}

impl Store {
    /// Stores one page of changes and (if given) the cursor after it, in one transaction.
    ///
    /// Safe to call with overlapping, repeated or out-of-order changes: see the module
    /// docs for the guards. `object` names the page's object kind (for the cursor);
    /// changes carry their own kinds.
    pub async fn apply_changes(
        &self,
        org: &OrgId,
        object: ObjectKind,
        changes: &[Change],
        cursor: Option<&Cursor>,
    ) -> Result<ApplyStats, StoreError> {
        self.apply_page(org, object, changes, cursor, PageMode::Incremental)
            .await
    }

    /// [`Store::apply_changes`] with the page's mode: a page of a full pass overwrites
    /// regardless of stored `updated_at`, and its last page sweeps (see [`PageMode`]).
    pub async fn apply_page(
        &self,
        org: &OrgId,
        object: ObjectKind,
        changes: &[Change],
        cursor: Option<&Cursor>,
        mode: PageMode,
    ) -> Result<ApplyStats, StoreError> {
        let now = Utc::now();
        let mut stats = ApplyStats::default();
        let reduced = reduce(changes);
        let full = matches!(mode, PageMode::Full { .. });
        let mut tx = self.begin_write().await?;
        // Every row stored while a full pass of its object is in progress counts as
        // seen by it (a webhook refetch shows the record is live just as well).
        let passes = passes_in_progress(&mut tx, org).await?;
        let seen = |kind: ObjectKind| match mode {
            PageMode::Full { pass, .. } if kind == object => Some(pass.pass),
            _ => passes.get(&kind).copied(),
        };

        let mut owners = Vec::new();
        let mut accounts = Vec::new();
        let mut people = Vec::new();
        let mut activities = Vec::new();
        for change in reduced {
            match change {
                Change::Upsert(Record::Owner(owner)) => owners.push(owner),
                Change::Upsert(Record::Account(account)) => accounts.push(account),
                Change::Upsert(Record::Person(person)) => people.push(person),
                Change::Upsert(Record::Activity(activity)) => activities.push(activity),
                Change::Deleted {
                    object: ObjectKind::Activity,
                    id,
                    at,
                    ..
                } => {
                    if activities::remove_activity(&mut tx, org, id, *at, "deleted", now).await? {
                        stats.deleted += 1;
                    }
                }
                Change::Merged {
                    object: ObjectKind::Activity,
                    loser,
                    at,
                    ..
                } => {
                    if activities::remove_activity(&mut tx, org, loser, *at, "merged", now).await? {
                        stats.merged += 1;
                    }
                }
                Change::Deleted {
                    object,
                    id,
                    at,
                    purge,
                } => {
                    let reason = if *purge {
                        TombstoneReason::Purged
                    } else {
                        TombstoneReason::Deleted
                    };
                    if remove(&mut tx, org, *object, id, reason, None, *at, now).await? {
                        if *purge {
                            stats.purged += 1;
                        } else {
                            stats.deleted += 1;
                        }
                    }
                }
                Change::Merged {
                    object,
                    loser,
                    winner,
                    at,
                } => {
                    if remove(
                        &mut tx,
                        org,
                        *object,
                        loser,
                        TombstoneReason::Merged,
                        Some(winner),
                        *at,
                        now,
                    )
                    .await?
                    {
                        stats.merged += 1;
                    }
                }
            }
        }

        // Writers lock rows in statement order; one order (by id) everywhere keeps a
        // sync page and a concurrent webhook refetch from deadlocking on PostgreSQL.
        owners.sort_by(|a, b| a.id.cmp(&b.id));
        accounts.sort_by(|a, b| a.id.cmp(&b.id));
        people.sort_by(|a, b| (a.object, &a.id).cmp(&(b.object, &b.id)));
        for chunk in owners.chunks(CHUNK) {
            let live = drop_tombstoned(&mut tx, org, ObjectKind::Owner, chunk, full, |o| {
                (o.id.as_str(), o.updated_at)
            })
            .await?;
            stats.stale += chunk.len() - live.len();
            let write = Write {
                now,
                seen: seen(ObjectKind::Owner),
                overwrite: full,
            };
            let stored = upsert_owners(&mut tx, org, &live, write).await?;
            stats.upserted += stored.len();
            stats.stale += live.len() - stored.len();
        }
        for chunk in accounts.chunks(CHUNK) {
            let live = drop_tombstoned(&mut tx, org, ObjectKind::Account, chunk, full, |a| {
                (a.id.as_str(), Some(a.updated_at))
            })
            .await?;
            stats.stale += chunk.len() - live.len();
            let write = Write {
                now,
                seen: seen(ObjectKind::Account),
                overwrite: full,
            };
            let stored = upsert_accounts(&mut tx, org, &live, write).await?;
            stats.upserted += stored.len();
            stats.stale += live.len() - stored.len();
        }
        // People of both kinds may share a page (a fetch after a lead conversion), and
        // tombstones are per object, so group by object first.
        for kind in [ObjectKind::Contact, ObjectKind::Lead] {
            let of_kind: Vec<&PersonRecord> = people
                .iter()
                .copied()
                .filter(|p| p.object == kind)
                .collect();
            for chunk in of_kind.chunks(CHUNK) {
                let repair = full && kind == object;
                let live = drop_tombstoned(&mut tx, org, kind, chunk, repair, |p| {
                    (p.id.as_str(), Some(p.updated_at))
                })
                .await?;
                stats.stale += chunk.len() - live.len();
                let write = Write {
                    now,
                    seen: seen(kind),
                    overwrite: repair,
                };
                let stored = upsert_people(&mut tx, org, kind, &live, write).await?;
                stats.upserted += stored.len();
                stats.stale += live.len() - stored.len();
                let relink: Vec<&PersonRecord> = live
                    .iter()
                    .copied()
                    .filter(|p| p.accounts.is_some() && stored.contains(p.id.as_str()))
                    .collect();
                replace_links(&mut tx, org, kind, &relink).await?;
            }
        }

        activities.sort_by(|a, b| a.id.cmp(&b.id));
        for chunk in activities.chunks(CHUNK) {
            let repair = full && object == ObjectKind::Activity;
            let live = drop_tombstoned(&mut tx, org, ObjectKind::Activity, chunk, repair, |a| {
                (a.id.as_str(), Some(a.updated_at))
            })
            .await?;
            stats.stale += chunk.len() - live.len();
            let stored = activities::upsert_activities(
                &mut tx,
                org,
                &live,
                now,
                seen(ObjectKind::Activity),
                repair,
            )
            .await?;
            stats.upserted += stored;
            stats.stale += live.len() - stored;
        }

        if let Some(cursor) = cursor {
            sqlx::query(
                "INSERT INTO sync_cursors (org, object, cursor, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (org, object) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            )
            .bind(org.as_str())
            .bind(object.as_str())
            .bind(cursor.0.as_str())
            .bind(to_ms(now))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("storing a sync cursor"))?;
        }
        if let PageMode::Full { pass, last: true } = mode {
            stats.pruned = if object == ObjectKind::Activity {
                activities::sweep_activities(&mut tx, org, pass, now).await?
            } else {
                sweep(&mut tx, org, object, pass, now).await?
            };
        }
        tx.commit()
            .await
            .map_err(StoreError::query("committing a page of changes"))?;
        Ok(stats)
    }

    /// The stored cursor for `(org, object)`, if a sync has stored one.
    pub async fn cursor(
        &self,
        org: &OrgId,
        object: ObjectKind,
    ) -> Result<Option<Cursor>, StoreError> {
        let row = sqlx::query("SELECT cursor FROM sync_cursors WHERE org = $1 AND object = $2")
            .bind(org.as_str())
            .bind(object.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::query("reading a sync cursor"))?;
        row.map(|row| row.try_get::<String, _>("cursor").map(Cursor))
            .transpose()
            .map_err(StoreError::query("reading a sync cursor"))
    }

    /// Forgets the cursors of `org` (all objects, or one), so the next sync is a full one.
    /// Mirror rows stay: a full sync overwrites them in place.
    pub async fn reset_cursors(
        &self,
        org: &OrgId,
        object: Option<ObjectKind>,
    ) -> Result<(), StoreError> {
        let query = match object {
            Some(object) => sqlx::query("DELETE FROM sync_cursors WHERE org = $1 AND object = $2")
                .bind(org.as_str())
                .bind(object.as_str()),
            None => sqlx::query("DELETE FROM sync_cursors WHERE org = $1").bind(org.as_str()),
        };
        query
            .execute(self.pool())
            .await
            .map_err(StoreError::query("resetting sync cursors"))?;
        Ok(())
    }

    /// The full pass of `(org, object)` in progress (started, not completed), if any: a
    /// sync that finds one resumes it from the stored cursor.
    pub async fn full_pass(
        &self,
        org: &OrgId,
        object: ObjectKind,
    ) -> Result<Option<FullPass>, StoreError> {
        let row = sqlx::query(
            "SELECT pass, started_at FROM full_passes
             WHERE org = $1 AND object = $2 AND completed_at IS NULL",
        )
        .bind(org.as_str())
        .bind(object.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::query("reading the full pass in progress"))?;
        row.map(|row| full_pass_from_row(&row)).transpose()
    }

    /// Starts a new full pass of `(org, object)`: forgets its cursor (the next page is
    /// the CRM's first) and numbers the pass one above the last, in one transaction. A
    /// pass in progress is abandoned; rows it saw count as unseen by the new one.
    pub async fn begin_full_pass(
        &self,
        org: &OrgId,
        object: ObjectKind,
    ) -> Result<FullPass, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM sync_cursors WHERE org = $1 AND object = $2")
            .bind(org.as_str())
            .bind(object.as_str())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("starting a full pass"))?;
        let row = sqlx::query(
            "INSERT INTO full_passes (org, object, pass, started_at, completed_at)
             VALUES ($1, $2, 1, $3, NULL)
             ON CONFLICT (org, object) DO UPDATE SET pass = full_passes.pass + 1,
                 started_at = excluded.started_at, completed_at = NULL
             RETURNING pass, started_at",
        )
        .bind(org.as_str())
        .bind(object.as_str())
        .bind(to_ms(Utc::now()))
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::query("starting a full pass"))?;
        let pass = full_pass_from_row(&row)?;
        tx.commit()
            .await
            .map_err(StoreError::query("starting a full pass"))?;
        Ok(pass)
    }

    /// Everything the reconciler reads, in one go: all owners (active and inactive),
    /// live accounts and live people with their account links.
    ///
    /// To keep a large org's snapshot small, `raw` is `Value::Null` on accounts and
    /// people here; [`Store::person`] returns the full record.
    pub async fn snapshot(&self, org_ref: &OrgRef) -> Result<Snapshot, StoreError> {
        let org = &org_ref.name;
        let owners = self.owners(org).await?;
        let account_rows = sqlx::query(
            "SELECT id, name, domain, website, extra_domains, country, state, parent_id, owner_id,
                    employees, industry, created_at, updated_at, fields
             FROM accounts WHERE org = $1 ORDER BY id",
        )
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query("loading accounts"))?;
        let mut accounts = Vec::with_capacity(account_rows.len());
        for row in &account_rows {
            accounts.push(account_from_row(row, serde_json::Value::Null)?);
        }
        drop(account_rows);

        let mut links = load_links(self, org, None).await?;
        let person_rows = sqlx::query(
            "SELECT object, id, email, first_name, last_name, company, website, country, state,
                    owner_id, owner_assigned_at, converted, created_at, updated_at, fields
             FROM people WHERE org = $1 ORDER BY object, id",
        )
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query("loading people"))?;
        let mut people = Vec::with_capacity(person_rows.len());
        for row in &person_rows {
            let mut person = person_from_row(row, serde_json::Value::Null)?;
            person.accounts = Some(
                links
                    .remove(&(person.object, person.id.0.clone()))
                    .unwrap_or_default(),
            );
            people.push(person);
        }
        Ok(Snapshot {
            crm: Some(org_ref.kind),
            owners,
            accounts,
            people,
        })
    }

    /// Every owner of `org`, active and inactive.
    pub async fn owners(&self, org: &OrgId) -> Result<Vec<OwnerRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, email, name, active, teams, time_zone, manager_id, user_id, updated_at
             FROM owners WHERE org = $1 ORDER BY id",
        )
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query("loading owners"))?;
        rows.iter().map(owner_from_row).collect()
    }

    /// One live person, with its raw payload and account links.
    pub async fn person(
        &self,
        org: &OrgId,
        object: ObjectKind,
        id: &RecordId,
    ) -> Result<Option<PersonRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT object, id, email, first_name, last_name, company, website, country, state,
                    owner_id, owner_assigned_at, converted, created_at, updated_at, fields, raw
             FROM people WHERE org = $1 AND object = $2 AND id = $3",
        )
        .bind(org.as_str())
        .bind(object.as_str())
        .bind(id.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::query("loading a person"))?;
        let Some(row) = row else { return Ok(None) };
        let raw: String = row
            .try_get("raw")
            .map_err(StoreError::query("loading a person"))?;
        let mut person = person_from_row(&row, from_json("raw payload", &raw)?)?;
        let mut links = load_links(self, org, Some((object, id))).await?;
        person.accounts = Some(links.remove(&(object, id.0.clone())).unwrap_or_default());
        Ok(Some(person))
    }

    /// One live account, with its raw payload.
    pub async fn account(
        &self,
        org: &OrgId,
        id: &RecordId,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, domain, website, extra_domains, country, state, parent_id, owner_id,
                    employees, industry, created_at, updated_at, fields, raw
             FROM accounts WHERE org = $1 AND object = 'account' AND id = $2",
        )
        .bind(org.as_str())
        .bind(id.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::query("loading an account"))?;
        let Some(row) = row else { return Ok(None) };
        let raw: String = row
            .try_get("raw")
            .map_err(StoreError::query("loading an account"))?;
        account_from_row(&row, from_json("raw payload", &raw)?).map(Some)
    }

    /// Why a record left the mirror, if it did.
    pub async fn tombstone(
        &self,
        org: &OrgId,
        object: ObjectKind,
        id: &RecordId,
    ) -> Result<Option<Tombstone>, StoreError> {
        let row = sqlx::query(
            "SELECT object, id, reason, merged_into, deleted_at FROM tombstones
             WHERE org = $1 AND object = $2 AND id = $3",
        )
        .bind(org.as_str())
        .bind(object.as_str())
        .bind(id.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::query("loading a tombstone"))?;
        let Some(row) = row else { return Ok(None) };
        let object: String = column(&row, "object", "loading a tombstone")?;
        let id: String = column(&row, "id", "loading a tombstone")?;
        let reason: String = column(&row, "reason", "loading a tombstone")?;
        let merged_into: Option<String> = column(&row, "merged_into", "loading a tombstone")?;
        let deleted_at: i64 = column(&row, "deleted_at", "loading a tombstone")?;
        Ok(Some(Tombstone {
            object: parse_object(&object)?,
            id: RecordId(id),
            reason: TombstoneReason::parse(&reason)?,
            merged_into: merged_into.map(RecordId),
            deleted_at: from_ms(deleted_at),
        }))
    }

    /// Live row counts for `org`.
    pub async fn counts(&self, org: &OrgId) -> Result<MirrorCounts, StoreError> {
        let row = sqlx::query(
            "SELECT
                (SELECT COUNT(*) FROM owners WHERE org = $1) AS owners,
                (SELECT COUNT(*) FROM accounts WHERE org = $1) AS accounts,
                (SELECT COUNT(*) FROM people WHERE org = $1 AND object = 'contact') AS contacts,
                (SELECT COUNT(*) FROM people WHERE org = $1 AND object = 'lead') AS leads,
                (SELECT COUNT(*) FROM activities WHERE org = $1) AS activities,
                (SELECT COUNT(*) FROM person_accounts WHERE org = $1) AS links,
                (SELECT COUNT(*) FROM tombstones WHERE org = $1) AS tombstones",
        )
        .bind(org.as_str())
        .fetch_one(self.pool())
        .await
        .map_err(StoreError::query("counting mirror rows"))?;
        let get = |column: &str| -> Result<u64, StoreError> {
            let n: i64 = row
                .try_get(column)
                .map_err(StoreError::query("counting mirror rows"))?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(MirrorCounts {
            owners: get("owners")?,
            accounts: get("accounts")?,
            contacts: get("contacts")?,
            leads: get("leads")?,
            activities: get("activities")?,
            links: get("links")?,
            tombstones: get("tombstones")?,
        })
    }
}

fn full_pass_from_row(row: &AnyRow) -> Result<FullPass, StoreError> {
    let pass: i64 = column(row, "pass", "reading a full pass")?;
    let started_at: i64 = column(row, "started_at", "reading a full pass")?;
    Ok(FullPass {
        pass,
        started_at: from_ms(started_at),
    })
}

/// The pass number of each object of `org` with a full pass in progress.
async fn passes_in_progress(
    tx: &mut Transaction<'static, Any>,
    org: &OrgId,
) -> Result<HashMap<ObjectKind, i64>, StoreError> {
    let rows =
        sqlx::query("SELECT object, pass FROM full_passes WHERE org = $1 AND completed_at IS NULL")
            .bind(org.as_str())
            .fetch_all(&mut **tx)
            .await
            .map_err(StoreError::query("reading full passes in progress"))?;
    let mut passes = HashMap::with_capacity(rows.len());
    for row in rows {
        let object: String = column(&row, "object", "reading full passes in progress")?;
        let pass: i64 = column(&row, "pass", "reading full passes in progress")?;
        passes.insert(parse_object(&object)?, pass);
    }
    Ok(passes)
}

/// Ends a completed full pass: removes the rows of `object` it did not see (with their
/// account links), leaves a `deleted` tombstone for each, dated when the pass started
/// (a record changed since is not held back by it), and marks the pass complete.
/// Set-based statements over the object's rows: no id lists, whatever the size.
async fn sweep(
    tx: &mut Transaction<'static, Any>,
    org: &OrgId,
    object: ObjectKind,
    pass: FullPass,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let table = table(object);
    let unseen = "org = $1 AND object = $2 AND (seen_pass IS NULL OR seen_pass <> $3)";
    // Each statement binds exactly the parameters it uses (PostgreSQL refuses extras).
    let bind = |sql: String| {
        sqlx::query(AssertSqlSafe(sql))
            .bind(org.as_str())
            .bind(object.as_str())
            .bind(pass.pass)
    };
    bind(format!(
        "INSERT INTO tombstones (org, object, id, reason, merged_into, deleted_at, recorded_at)
         SELECT org, object, id, 'deleted', NULL, $4, $5 FROM {table} WHERE {unseen}
         ON CONFLICT (org, object, id) DO NOTHING"
    ))
    .bind(to_ms(pass.started_at))
    .bind(to_ms(now))
    .execute(&mut **tx)
    .await
    .map_err(StoreError::query(
        "writing tombstones of records a full pass did not list",
    ))?;
    let links = if object.is_person() {
        Some(format!(
            "DELETE FROM person_accounts WHERE org = $1 AND object = $2 AND person_id IN
                 (SELECT id FROM {table} WHERE {unseen})"
        ))
    } else if object == ObjectKind::Account {
        Some(format!(
            "DELETE FROM person_accounts WHERE org = $1 AND account_id IN
                 (SELECT id FROM {table} WHERE {unseen})"
        ))
    } else {
        None
    };
    if let Some(sql) = links {
        bind(sql)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::query(
                "removing links of records a full pass did not list",
            ))?;
    }
    let removed = bind(format!("DELETE FROM {table} WHERE {unseen}"))
        .execute(&mut **tx)
        .await
        .map_err(StoreError::query(
            "removing records a full pass did not list",
        ))?
        .rows_affected();
    bind(
        "UPDATE full_passes SET completed_at = $4 WHERE org = $1 AND object = $2 AND pass = $3"
            .to_owned(),
    )
    .bind(to_ms(now))
    .execute(&mut **tx)
    .await
    .map_err(StoreError::query("completing a full pass"))?;
    Ok(usize::try_from(removed).unwrap_or(usize::MAX))
}

/// How one upsert statement writes: when, which full pass the rows count as seen by,
/// and whether it overwrites regardless of the stored `updated_at` (a full pass).
#[derive(Clone, Copy)]
struct Write {
    now: DateTime<Utc>,
    seen: Option<i64>,
    overwrite: bool,
}

impl Write {
    /// The upsert's `WHERE`: the newer-wins guard, or none for a full pass.
    fn guard(self, newer_wins: &str) -> &str {
        if self.overwrite { "1 = 1" } else { newer_wins }
    }
}

/// Removes one record (and its links) and writes its tombstone. Returns false when the
/// deletion is older than the stored row (the record was restored and updated since),
/// in which case nothing changes. Merges and purges are final and always apply.
#[allow(clippy::too_many_arguments)]
async fn remove(
    tx: &mut Transaction<'static, Any>,
    org: &OrgId,
    object: ObjectKind,
    id: &RecordId,
    reason: TombstoneReason,
    merged_into: Option<&RecordId>,
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let table = table(object);
    let at_ms = at.map(to_ms);
    if reason == TombstoneReason::Deleted
        && let Some(at_ms) = at_ms
    {
        let newer = sqlx::query(AssertSqlSafe(format!(
            "SELECT 1 AS newer FROM {table} WHERE org = $1 AND object = $2 AND id = $3 AND updated_at > $4"
        )))
        .bind(org.as_str())
        .bind(object.as_str())
        .bind(id.as_str())
        .bind(at_ms)
        .fetch_optional(&mut **tx)
        .await
        .map_err(StoreError::query("checking a deletion against the stored row"))?;
        if newer.is_some() {
            return Ok(false);
        }
    }
    sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE org = $1 AND object = $2 AND id = $3"
    )))
    .bind(org.as_str())
    .bind(object.as_str())
    .bind(id.as_str())
    .execute(&mut **tx)
    .await
    .map_err(StoreError::query("deleting a mirror row"))?;
    if object.is_person() {
        sqlx::query(
            "DELETE FROM person_accounts WHERE org = $1 AND object = $2 AND person_id = $3",
        )
        .bind(org.as_str())
        .bind(object.as_str())
        .bind(id.as_str())
        .execute(&mut **tx)
        .await
        .map_err(StoreError::query("deleting a person's account links"))?;
    } else if object == ObjectKind::Account {
        sqlx::query("DELETE FROM person_accounts WHERE org = $1 AND account_id = $2")
            .bind(org.as_str())
            .bind(id.as_str())
            .execute(&mut **tx)
            .await
            .map_err(StoreError::query("deleting links to an account"))?;
    }
    // A merge or purge outranks a plain deletion of the same id whatever the times;
    // otherwise the later deletion is kept.
    sqlx::query(
        "INSERT INTO tombstones (org, object, id, reason, merged_into, deleted_at, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (org, object, id) DO UPDATE SET
             reason = excluded.reason, merged_into = excluded.merged_into,
             deleted_at = excluded.deleted_at, recorded_at = excluded.recorded_at
         WHERE excluded.reason <> 'deleted' OR tombstones.reason = 'deleted'",
    )
    .bind(org.as_str())
    .bind(object.as_str())
    .bind(id.as_str())
    .bind(reason.as_str())
    .bind(merged_into.map(|w| w.as_str()))
    .bind(at_ms.unwrap_or_else(|| to_ms(now)))
    .bind(to_ms(now))
    .execute(&mut **tx)
    .await
    .map_err(StoreError::query("writing a tombstone"))?;
    Ok(true)
}

/// Filters out records that a tombstone says must stay gone, and clears tombstones of
/// records restored after their deletion. In a full pass (`full`) the CRM's listing is
/// its current state: every listed record is live and its tombstone is cleared.
async fn drop_tombstoned<'a, T>(
    tx: &mut Transaction<'static, Any>,
    org: &OrgId,
    object: ObjectKind,
    chunk: &[&'a T],
    full: bool,
    key: impl Fn(&T) -> (&str, Option<DateTime<Utc>>),
) -> Result<Vec<&'a T>, StoreError> {
    if chunk.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id, reason, deleted_at FROM tombstones WHERE org = $1 AND object = $2 AND id IN ({})",
        in_list(chunk.len(), 3)
    );
    let mut query = sqlx::query(AssertSqlSafe(sql))
        .bind(org.as_str())
        .bind(object.as_str());
    for record in chunk {
        query = query.bind(key(record).0.to_owned());
    }
    let rows = query
        .fetch_all(&mut **tx)
        .await
        .map_err(StoreError::query("reading tombstones"))?;
    if rows.is_empty() {
        return Ok(chunk.to_vec());
    }
    let mut stones: HashMap<String, (String, i64)> = HashMap::new();
    for row in rows {
        let id: String = column(&row, "id", "reading tombstones")?;
        let reason: String = column(&row, "reason", "reading tombstones")?;
        let deleted_at: i64 = column(&row, "deleted_at", "reading tombstones")?;
        stones.insert(id, (reason, deleted_at));
    }
    let mut live = Vec::with_capacity(chunk.len());
    for record in chunk {
        let (id, updated_at) = key(record);
        match stones.get(id) {
            None => live.push(*record),
            Some((reason, deleted_at)) => {
                // Owners carry no modification stamp; one listed again after its
                // deletion is back.
                let restored = full
                    || reason == "deleted"
                        && updated_at.is_none_or(|updated| to_ms(updated) > *deleted_at);
                if restored {
                    sqlx::query(
                        "DELETE FROM tombstones WHERE org = $1 AND object = $2 AND id = $3",
                    )
                    .bind(org.as_str())
                    .bind(object.as_str())
                    .bind(id)
                    .execute(&mut **tx)
                    .await
                    .map_err(StoreError::query("clearing a tombstone"))?;
                    live.push(*record);
                }
            }
        }
    }
    Ok(live)
}

/// Collects the ids a `… RETURNING id` upsert touched.
async fn run_returning_ids(
    tx: &mut Transaction<'static, Any>,
    query: sqlx::query::Query<'_, Any, sqlx::any::AnyArguments>,
    context: &'static str,
) -> Result<HashSet<String>, StoreError> {
    let rows = query
        .fetch_all(&mut **tx)
        .await
        .map_err(StoreError::query(context))?;
    rows.iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect::<Result<_, _>>()
        .map_err(StoreError::query(context))
}

async fn upsert_owners(
    tx: &mut Transaction<'static, Any>,
    org: &OrgId,
    owners: &[&OwnerRecord],
    write: Write,
) -> Result<HashSet<String>, StoreError> {
    if owners.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!(
        "INSERT INTO owners (org, object, id, kind, email, name, active, teams, time_zone,
                             manager_id, user_id, updated_at, raw, synced_at, seen_pass)
         VALUES {}
         ON CONFLICT (org, object, id) DO UPDATE SET
             kind = excluded.kind, email = excluded.email, name = excluded.name,
             active = excluded.active, teams = excluded.teams, time_zone = excluded.time_zone,
             manager_id = excluded.manager_id, user_id = excluded.user_id,
             updated_at = excluded.updated_at, raw = excluded.raw, synced_at = excluded.synced_at,
             seen_pass = COALESCE(excluded.seen_pass, owners.seen_pass)
         WHERE {}
         RETURNING id",
        placeholders(owners.len(), 15, 1),
        write.guard(
            "excluded.updated_at IS NULL OR owners.updated_at IS NULL
            OR excluded.updated_at >= owners.updated_at"
        )
    );
    let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(owners.len() == CHUNK);
    for owner in owners {
        query = query
            .bind(org.as_str())
            .bind(ObjectKind::Owner.as_str())
            .bind(owner.id.as_str().to_owned())
            .bind(match owner.kind {
                OwnerKind::User => "user",
                OwnerKind::Queue => "queue",
            })
            .bind(owner.email.clone())
            .bind(owner.name.clone())
            .bind(owner.active)
            .bind(json(&owner.teams))
            .bind(owner.time_zone.clone())
            .bind(owner.manager_id.as_ref().map(|m| m.0.clone()))
            .bind(owner.user_id.clone())
            .bind(owner.updated_at.map(to_ms))
            .bind(json(owner))
            .bind(to_ms(write.now))
            .bind(write.seen);
    }
    run_returning_ids(tx, query, "storing owners").await
}

async fn upsert_accounts(
    tx: &mut Transaction<'static, Any>,
    org: &OrgId,
    accounts: &[&AccountRecord],
    write: Write,
) -> Result<HashSet<String>, StoreError> {
    if accounts.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!(
        "INSERT INTO accounts (org, object, id, name, domain, website, extra_domains, country,
                               state, parent_id, owner_id, employees, industry, created_at,
                               updated_at, fields, raw, synced_at, seen_pass)
         VALUES {}
         ON CONFLICT (org, object, id) DO UPDATE SET
             name = excluded.name, domain = excluded.domain, website = excluded.website,
             extra_domains = excluded.extra_domains, country = excluded.country,
             state = excluded.state, parent_id = excluded.parent_id,
             owner_id = excluded.owner_id, employees = excluded.employees,
             industry = excluded.industry, created_at = excluded.created_at,
             updated_at = excluded.updated_at, fields = excluded.fields, raw = excluded.raw,
             synced_at = excluded.synced_at,
             seen_pass = COALESCE(excluded.seen_pass, accounts.seen_pass)
         WHERE {}
         RETURNING id",
        placeholders(accounts.len(), 19, 1),
        write.guard("excluded.updated_at >= accounts.updated_at")
    );
    let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(accounts.len() == CHUNK);
    for account in accounts {
        query = query
            .bind(org.as_str())
            .bind(ObjectKind::Account.as_str())
            .bind(account.id.as_str().to_owned())
            .bind(account.name.clone())
            .bind(account.domain.clone())
            .bind(account.website.clone())
            .bind(json(&account.extra_domains))
            .bind(account.country.clone())
            .bind(account.state.clone())
            .bind(account.parent_id.as_ref().map(|p| p.0.clone()))
            .bind(account.owner_id.as_ref().map(|o| o.0.clone()))
            .bind(account.employees)
            .bind(account.industry.clone())
            .bind(account.created_at.map(to_ms))
            .bind(to_ms(account.updated_at))
            .bind(json(&account.fields))
            .bind(json(&account.raw))
            .bind(to_ms(write.now))
            .bind(write.seen);
    }
    run_returning_ids(tx, query, "storing accounts").await
}

/// Stores people, newest version wins. `first_seen_at` is set on insert only.
///
/// `owner_assigned_at` is the CRM's when it gives one (HubSpot's
/// `hubspot_owner_assigneddate`). When it does not (Salesforce has no such field), the
/// mirror stamps it CRM-neutrally: an observation showing a different owner than the
/// stored row is stamped with that observation's `updated_at` (the modification that
/// first showed the new owner); an unchanged owner keeps the stored stamp, so later
/// upserts never erase it; an unowned record has none. A record's first observation
/// leaves it unknown (`NULL`): the mirror did not see when that owner was set.
async fn upsert_people(
    tx: &mut Transaction<'static, Any>,
    org: &OrgId,
    object: ObjectKind,
    people: &[&PersonRecord],
    write: Write,
) -> Result<HashSet<String>, StoreError> {
    if people.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!(
        "INSERT INTO people (org, object, id, email, first_name, last_name, company, website,
                             country, state, owner_id, owner_assigned_at, converted, created_at,
                             updated_at, fields, raw, synced_at, first_seen_at, seen_pass)
         VALUES {}
         ON CONFLICT (org, object, id) DO UPDATE SET
             email = excluded.email, first_name = excluded.first_name,
             last_name = excluded.last_name, company = excluded.company,
             website = excluded.website, country = excluded.country, state = excluded.state,
             owner_id = excluded.owner_id,
             owner_assigned_at = CASE
                 WHEN excluded.owner_assigned_at IS NOT NULL THEN excluded.owner_assigned_at
                 WHEN excluded.owner_id IS NULL THEN NULL
                 WHEN people.owner_id = excluded.owner_id THEN people.owner_assigned_at
                 ELSE excluded.updated_at
             END,
             converted = excluded.converted, created_at = excluded.created_at,
             updated_at = excluded.updated_at, fields = excluded.fields, raw = excluded.raw,
             synced_at = excluded.synced_at,
             seen_pass = COALESCE(excluded.seen_pass, people.seen_pass)
         WHERE {}
         RETURNING id",
        placeholders(people.len(), 20, 1),
        write.guard("excluded.updated_at >= people.updated_at")
    );
    let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(people.len() == CHUNK);
    for person in people {
        query = query
            .bind(org.as_str())
            .bind(object.as_str())
            .bind(person.id.as_str().to_owned())
            .bind(person.email.clone())
            .bind(person.first_name.clone())
            .bind(person.last_name.clone())
            .bind(person.company.clone())
            .bind(person.website.clone())
            .bind(person.country.clone())
            .bind(person.state.clone())
            .bind(person.owner_id.as_ref().map(|o| o.0.clone()))
            .bind(person.owner_assigned_at.map(to_ms))
            .bind(person.converted)
            .bind(person.created_at.map(to_ms))
            .bind(to_ms(person.updated_at))
            .bind(json(&person.fields))
            .bind(json(&person.raw))
            .bind(to_ms(write.now))
            .bind(to_ms(write.now))
            .bind(write.seen);
    }
    run_returning_ids(tx, query, "storing people").await
}

/// Replaces the account links of people whose record says what they are.
async fn replace_links(
    tx: &mut Transaction<'static, Any>,
    org: &OrgId,
    object: ObjectKind,
    people: &[&PersonRecord],
) -> Result<(), StoreError> {
    if people.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "DELETE FROM person_accounts WHERE org = $1 AND object = $2 AND person_id IN ({})",
        in_list(people.len(), 3)
    );
    let mut query = sqlx::query(AssertSqlSafe(sql))
        .bind(org.as_str())
        .bind(object.as_str());
    for person in people {
        query = query.bind(person.id.as_str().to_owned());
    }
    query
        .execute(&mut **tx)
        .await
        .map_err(StoreError::query("replacing account links"))?;

    // One link per (person, account); if a connector repeats one, primary wins.
    let mut links: BTreeMap<(&str, &str), bool> = BTreeMap::new();
    for person in people {
        for link in person.accounts.iter().flatten() {
            let primary = links
                .entry((person.id.as_str(), link.account_id.as_str()))
                .or_default();
            *primary |= link.primary;
        }
    }
    let links: Vec<_> = links.into_iter().collect();
    for chunk in links.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO person_accounts (org, object, person_id, account_id, is_primary) VALUES {}",
            placeholders(chunk.len(), 5, 1)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(chunk.len() == CHUNK);
        for ((person_id, account_id), primary) in chunk {
            query = query
                .bind(org.as_str())
                .bind(object.as_str())
                .bind((*person_id).to_owned())
                .bind((*account_id).to_owned())
                .bind(*primary);
        }
        query
            .execute(&mut **tx)
            .await
            .map_err(StoreError::query("storing account links"))?;
    }
    Ok(())
}

type LinkMap = HashMap<(ObjectKind, String), Vec<AccountLink>>;

/// Account links of all people of `org` (or one person), grouped by person.
async fn load_links(
    store: &Store,
    org: &OrgId,
    one: Option<(ObjectKind, &RecordId)>,
) -> Result<LinkMap, StoreError> {
    let rows = match one {
        Some((object, id)) => {
            sqlx::query(
                "SELECT object, person_id, account_id, is_primary FROM person_accounts
             WHERE org = $1 AND object = $2 AND person_id = $3 ORDER BY account_id",
            )
            .bind(org.as_str())
            .bind(object.as_str())
            .bind(id.as_str())
            .fetch_all(store.pool())
            .await
        }
        None => {
            sqlx::query(
                "SELECT object, person_id, account_id, is_primary FROM person_accounts
             WHERE org = $1 ORDER BY object, person_id, account_id",
            )
            .bind(org.as_str())
            .fetch_all(store.pool())
            .await
        }
    }
    .map_err(StoreError::query("loading account links"))?;
    let mut links: LinkMap = HashMap::new();
    for row in rows {
        let object: String = column(&row, "object", "loading account links")?;
        let person_id: String = column(&row, "person_id", "loading account links")?;
        let account_id: String = column(&row, "account_id", "loading account links")?;
        let primary =
            get_bool(&row, "is_primary").map_err(StoreError::query("loading account links"))?;
        links
            .entry((parse_object(&object)?, person_id))
            .or_default()
            .push(AccountLink {
                account_id: RecordId(account_id),
                primary,
            });
    }
    Ok(links)
}

/// One typed column, with what we were doing as the error context.
fn column<'r, T>(row: &'r AnyRow, name: &str, context: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(name).map_err(StoreError::query(context))
}

/// Typed column access with one error context per row kind.
struct Columns<'r> {
    row: &'r AnyRow,
    context: &'static str,
}

impl Columns<'_> {
    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.row
            .try_get(column)
            .map_err(StoreError::query(self.context))
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.row
            .try_get(column)
            .map_err(StoreError::query(self.context))
    }
    fn opt_ms(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let ms: Option<i64> = self
            .row
            .try_get(column)
            .map_err(StoreError::query(self.context))?;
        Ok(ms.map(from_ms))
    }
    fn ms(&self, column: &str) -> Result<DateTime<Utc>, StoreError> {
        let ms: i64 = self
            .row
            .try_get(column)
            .map_err(StoreError::query(self.context))?;
        Ok(from_ms(ms))
    }
    fn opt_i64(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.row
            .try_get(column)
            .map_err(StoreError::query(self.context))
    }
    fn bool(&self, column: &str) -> Result<bool, StoreError> {
        get_bool(self.row, column).map_err(StoreError::query(self.context))
    }
}

fn owner_from_row(row: &AnyRow) -> Result<OwnerRecord, StoreError> {
    let c = Columns {
        row,
        context: "loading owners",
    };
    let kind = match c.text("kind")?.as_str() {
        "queue" => OwnerKind::Queue,
        _ => OwnerKind::User,
    };
    let teams: Vec<Team> = from_json("owner teams", &c.text("teams")?)?;
    Ok(OwnerRecord {
        id: OwnerId(c.text("id")?),
        kind,
        email: c.opt_text("email")?,
        name: c.text("name")?,
        active: c.bool("active")?,
        teams,
        time_zone: c.opt_text("time_zone")?,
        manager_id: c.opt_text("manager_id")?.map(OwnerId),
        user_id: c.opt_text("user_id")?,
        updated_at: c.opt_ms("updated_at")?,
    })
}

fn account_from_row(row: &AnyRow, raw: serde_json::Value) -> Result<AccountRecord, StoreError> {
    let c = Columns {
        row,
        context: "loading accounts",
    };
    Ok(AccountRecord {
        id: RecordId(c.text("id")?),
        name: c.opt_text("name")?,
        domain: c.opt_text("domain")?,
        website: c.opt_text("website")?,
        extra_domains: from_json("account domains", &c.text("extra_domains")?)?,
        country: c.opt_text("country")?,
        state: c.opt_text("state")?,
        parent_id: c.opt_text("parent_id")?.map(RecordId),
        owner_id: c.opt_text("owner_id")?.map(OwnerId),
        employees: c.opt_i64("employees")?,
        industry: c.opt_text("industry")?,
        created_at: c.opt_ms("created_at")?,
        updated_at: c.ms("updated_at")?,
        fields: from_json("account fields", &c.text("fields")?)?,
        raw,
    })
}

fn person_from_row(row: &AnyRow, raw: serde_json::Value) -> Result<PersonRecord, StoreError> {
    let c = Columns {
        row,
        context: "loading people",
    };
    Ok(PersonRecord {
        id: RecordId(c.text("id")?),
        object: parse_object(&c.text("object")?)?,
        email: c.opt_text("email")?,
        first_name: c.opt_text("first_name")?,
        last_name: c.opt_text("last_name")?,
        company: c.opt_text("company")?,
        website: c.opt_text("website")?,
        country: c.opt_text("country")?,
        state: c.opt_text("state")?,
        owner_id: c.opt_text("owner_id")?.map(OwnerId),
        accounts: None,
        owner_assigned_at: c.opt_ms("owner_assigned_at")?,
        converted: c.bool("converted")?,
        created_at: c.opt_ms("created_at")?,
        updated_at: c.ms("updated_at")?,
        fields: from_json("person fields", &c.text("fields")?)?,
        raw,
    })
}

/// Tells the mirror about leadroute's own applied writes, inside the journal
/// transaction that records their outcomes (`Store::journal_step`): each person named
/// by an open journal row of `run_id` among `seqs` gets the row's new owner, assigned
/// `now`. Call it before the outcomes are written (it reads rows whose outcome is still
/// unset), so a change is reflected once. The row's `updated_at` moves one millisecond
/// past the version the mirror held: a later sync of that same (pre-write) version, as
/// a lagging search index may return, no longer passes the upsert's age guard and
/// cannot undo the write, while the CRM's own post-write version is newer still and
/// wins as usual. A row whose owner is no longer the change's `from` (a sync already
/// brought a later edit) is left to the sync.
pub(super) async fn mirror_owners_written(
    tx: &mut Transaction<'static, Any>,
    run_id: &str,
    seqs: &[i64],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if seqs.is_empty() {
        return Ok(());
    }
    // `$3…` appear three times: both backends let a placeholder be used more than once.
    let list = in_list(seqs.len(), 3);
    let sql = format!(
        "UPDATE people SET
             owner_id = (SELECT j.after_owner FROM writer_journal j
                         WHERE j.run_id = $1 AND j.org = people.org
                           AND j.object = people.object AND j.record_id = people.id
                           AND j.outcome IS NULL AND j.seq IN ({list})
                         ORDER BY j.seq DESC LIMIT 1),
             owner_assigned_at = $2,
             updated_at = updated_at + 1
         WHERE (org, object, id) IN (SELECT org, object, record_id FROM writer_journal
                                     WHERE run_id = $1 AND outcome IS NULL
                                       AND seq IN ({list}))
           AND EXISTS (SELECT 1 FROM writer_journal j
                       WHERE j.run_id = $1 AND j.org = people.org
                         AND j.object = people.object AND j.record_id = people.id
                         AND j.outcome IS NULL AND j.seq IN ({list})
                         AND (j.before_owner = people.owner_id
                              OR (j.before_owner IS NULL AND people.owner_id IS NULL)))"
    );
    let mut query = sqlx::query(AssertSqlSafe(sql))
        .bind(run_id.to_owned())
        .bind(to_ms(now));
    for seq in seqs {
        query = query.bind(*seq);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn contact(id: &str, ms: i64) -> Change {
        Change::Upsert(Record::Person(PersonRecord {
            id: RecordId::new(id),
            object: ObjectKind::Contact,
            email: None,
            first_name: None,
            last_name: None,
            company: None,
            website: None,
            country: None,
            state: None,
            owner_id: None,
            accounts: None,
            owner_assigned_at: None,
            converted: false,
            created_at: None,
            updated_at: Utc.timestamp_millis_opt(ms).unwrap(),
            fields: BTreeMap::new(),
            raw: serde_json::Value::Null,
        }))
    }

    fn deleted(id: &str, ms: Option<i64>) -> Change {
        Change::Deleted {
            object: ObjectKind::Contact,
            id: RecordId::new(id),
            at: ms.map(|ms| Utc.timestamp_millis_opt(ms).unwrap()),
            purge: false,
        }
    }

    #[test]
    fn a_page_is_reduced_to_the_last_word_on_each_record_in_page_order() {
        let page = [
            contact("a", 20),
            contact("b", 10),
            contact("a", 10), // older repeat: ignored
            deleted("b", Some(15)),
            contact("c", 5),
            deleted("c", None),
            contact("c", 6), // after a deletion with no time: the deletion stands
            deleted("d", Some(5)),
            contact("d", 9), // restored after its deletion
        ];
        let reduced = reduce(&page);
        assert_eq!(reduced.len(), 4, "one change per record");
        assert_eq!(reduced[0], &page[0]);
        assert_eq!(reduced[1], &page[3]);
        assert_eq!(reduced[2], &page[5]);
        assert_eq!(reduced[3], &page[8]);
    }

    /// A Salesforce-shaped lead (no owner-assigned time from the CRM) observed at `ms`.
    fn lead(ms: i64, owner: Option<&str>, assigned: Option<i64>) -> Change {
        let Change::Upsert(Record::Person(mut person)) = contact("L1", ms) else {
            unreachable!()
        };
        person.object = ObjectKind::Lead;
        person.owner_id = owner.map(OwnerId::new);
        person.owner_assigned_at = assigned.map(|ms| Utc.timestamp_millis_opt(ms).unwrap());
        Change::Upsert(Record::Person(person))
    }

    #[tokio::test]
    async fn an_owner_change_is_stamped_when_the_crm_gives_no_assigned_time_on_every_backend() {
        for ts in crate::store::test_stores::all().await {
            let (store, label) = (&ts.store, ts.label());
            let org = &OrgId::default_for(leadroute_crm::CrmKind::Salesforce);
            let id = &RecordId::new("L1");
            let step = |change: Change| async move {
                store
                    .apply_changes(org, ObjectKind::Lead, &[change], None)
                    .await
                    .unwrap();
                let person = store.person(org, ObjectKind::Lead, id).await.unwrap();
                person
                    .unwrap()
                    .owner_assigned_at
                    .map(|at| at.timestamp_millis())
            };
            // First sight: when this owner was set is unknown, and stays unknown while
            // the owner does not change.
            assert_eq!(step(lead(1_000, Some("005A"), None)).await, None, "{label}");
            assert_eq!(step(lead(2_000, Some("005A"), None)).await, None, "{label}");
            // The owner changes: stamped with the modification that showed it.
            assert_eq!(
                step(lead(3_000, Some("005B"), None)).await,
                Some(3_000),
                "{label}"
            );
            // Later edits with the same owner never erase or move the stamp.
            assert_eq!(
                step(lead(4_000, Some("005B"), None)).await,
                Some(3_000),
                "{label}"
            );
            // A stale replay of the old owner is ignored altogether.
            assert_eq!(
                step(lead(2_000, Some("005A"), None)).await,
                Some(3_000),
                "{label}"
            );
            // Unowned has no assigned time; owned again is a new assignment.
            assert_eq!(step(lead(5_000, None, None)).await, None, "{label}");
            assert_eq!(
                step(lead(6_000, Some("005C"), None)).await,
                Some(6_000),
                "{label}"
            );
            // A time the CRM gives (HubSpot) wins, and survives later observations that
            // lack it.
            assert_eq!(
                step(lead(8_000, Some("005D"), Some(7_500))).await,
                Some(7_500),
                "{label}"
            );
            assert_eq!(
                step(lead(9_000, Some("005D"), None)).await,
                Some(7_500),
                "{label}"
            );
            ts.drop().await;
        }
    }
}
