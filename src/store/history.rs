//! One record's journey for `leadroute explain`: its mirror row's arrival times, the
//! webhook hints that named it, its writer journal rows (with the runs' kinds and any
//! rollback of them) and its queued exceptions. Read-only.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::journal::{JournalError, exception_from_row};
use super::{Store, from_ms};
use crate::domain::{ObjectKind, OrgId, RecordId};
use crate::reconcile::explain::{Arrival, ExceptionFact, History, WriteFact};
use crate::store::{JournalEntry, RunRow};

fn sql_err(doing: &'static str) -> impl FnOnce(sqlx::Error) -> JournalError {
    move |source| JournalError::Sql { doing, source }
}

fn opt_ms(row: &AnyRow, name: &'static str) -> Result<Option<i64>, JournalError> {
    row.try_get(name)
        .map_err(sql_err("decoding a record's history"))
}

/// Why a journal row ended as it did, in words.
fn detail(entry: &JournalEntry) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(kind) = &entry.reject_kind {
        parts.push(kind.clone());
    }
    match (&entry.code, &entry.message) {
        (Some(code), Some(message)) => parts.push(format!("{code}: {message}")),
        (Some(code), None) => parts.push(code.clone()),
        (None, Some(message)) => parts.push(message.clone()),
        (None, None) => {}
    }
    if entry.replan {
        parts.push("to be re-planned".to_owned());
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

impl Store {
    /// Everything the store knows about one person's journey (see the module docs).
    pub async fn record_history(
        &self,
        org: &OrgId,
        object: ObjectKind,
        id: &RecordId,
    ) -> Result<History, JournalError> {
        let row = sqlx::query(
            "SELECT first_seen_at, synced_at, updated_at, owner_assigned_at FROM people \
             WHERE org = $1 AND object = $2 AND id = $3",
        )
        .bind(org.as_str())
        .bind(object.as_str())
        .bind(id.as_str().to_owned())
        .fetch_optional(self.pool())
        .await
        .map_err(sql_err("reading a record's mirror row"))?;
        let arrival = match row {
            None => None,
            Some(row) => {
                let hints = sqlx::query(
                    "SELECT COUNT(*) AS n, MAX(received_at) AS last, \
                     SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END) AS pending \
                     FROM webhook_inbox WHERE org = $1 AND object = $2 AND record_id = $3",
                )
                .bind(org.as_str())
                .bind(object.as_str())
                .bind(id.as_str().to_owned())
                .fetch_one(self.pool())
                .await
                .map_err(sql_err("counting a record's webhook hints"))?;
                Some(Arrival {
                    first_seen_at: opt_ms(&row, "first_seen_at")?.map(from_ms),
                    last_stored_at: from_ms(opt_ms(&row, "synced_at")?.unwrap_or_default()),
                    modified_at: from_ms(opt_ms(&row, "updated_at")?.unwrap_or_default()),
                    owner_assigned_at: opt_ms(&row, "owner_assigned_at")?.map(from_ms),
                    webhook_hints: opt_ms(&hints, "n")?.unwrap_or(0).max(0) as u64,
                    pending_hints: opt_ms(&hints, "pending")?.unwrap_or(0).max(0) as u64,
                    last_hint_at: opt_ms(&hints, "last")?.map(from_ms),
                })
            }
        };

        let entries = self.journal_for_record(org, object, id).await?;
        let mut runs: HashMap<String, Option<RunRow>> = HashMap::new();
        for entry in &entries {
            if !runs.contains_key(&entry.run_id) {
                let run = self.journal_run(&entry.run_id).await?;
                runs.insert(entry.run_id.clone(), run);
            }
        }
        let run = |id: &str| runs.get(id).and_then(Option::as_ref);
        let writes = entries
            .iter()
            .map(|entry| {
                // A rollback run whose parent is this entry's run, and that touched
                // this record, reverted it (or says why it could not).
                let rolled_back_by = entries
                    .iter()
                    .filter(|other| {
                        run(&other.run_id).is_some_and(|r| {
                            r.kind == "rollback" && r.parent_run.as_deref() == Some(&entry.run_id)
                        })
                    })
                    .map(|other| {
                        format!(
                            "run {} ({})",
                            other.run_id,
                            other.outcome.as_deref().unwrap_or("pending")
                        )
                    })
                    .next();
                WriteFact {
                    run_id: entry.run_id.clone(),
                    run_kind: run(&entry.run_id).map(|r| r.kind.clone()),
                    at: entry
                        .outcome_at
                        .or(entry.intent_at)
                        .unwrap_or(entry.planned_at),
                    from: entry.before.clone(),
                    to: entry.after.clone(),
                    rule: entry.rule.clone(),
                    reason: entry.reason.clone(),
                    policy_version: entry.policy_version.clone(),
                    outcome: entry.outcome.clone(),
                    state: entry.state.clone(),
                    detail: detail(entry),
                    rolled_back_by,
                }
            })
            .collect();

        let rows = sqlx::query(
            "SELECT * FROM writer_exceptions WHERE org = $1 AND object = $2 AND record_id = $3 \
             ORDER BY id",
        )
        .bind(org.as_str())
        .bind(object.as_str())
        .bind(id.as_str().to_owned())
        .fetch_all(self.pool())
        .await
        .map_err(sql_err("reading a record's exceptions"))?;
        let mut exceptions = Vec::new();
        for row in &rows {
            let e = exception_from_row(row)?;
            let detail = match (&e.code, &e.message) {
                (Some(code), Some(message)) => Some(format!("{code}: {message}")),
                (Some(one), None) | (None, Some(one)) => Some(one.clone()),
                (None, None) => None,
            };
            exceptions.push(ExceptionFact {
                id: e.id,
                kind: e.kind,
                rule: e.rule,
                status: e.status,
                detail: detail.or(Some(e.reason)).filter(|d| !d.is_empty()),
                run_id: e.run_id,
                created_at: e.created_at,
                resolved_at: e.resolved_at,
                resolved_owner: e.resolved_owner,
                resolution_run: e.resolution_run,
            });
        }
        Ok(History {
            arrival,
            writes,
            exceptions,
        })
    }
}
