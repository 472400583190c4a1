//! The webhook inbox: hints (records to refetch) accepted from CRM notifications,
//! de-duplicated by the connector's dedupe key, drained by the hint processor.
//!
//! The inbox holds ids and times only, never payloads, so a GDPR purge has nothing to
//! scrub here. Done rows are kept (for `DONE_RETENTION`) so a redelivery within the CRM's
//! retry horizon (HubSpot: ~24 h) is recognised as a duplicate.

use crate::domain::OrgId;
use chrono::{DateTime, Duration, Utc};
use leadroute_crm::{Hint, ObjectKind, RecordId};
use sqlx::{AssertSqlSafe, Row};

use super::{Store, StoreError, from_ms, in_list, placeholders, to_ms};

/// A hint is given up on (status `failed`) after this many failed refetches; polling
/// picks the record up anyway.
pub const MAX_ATTEMPTS: i64 = 10;

/// How long processed hints are kept for de-duplication.
pub const DONE_RETENTION: Duration = Duration::days(3);

/// One pending hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxItem {
    pub seq: i64,
    pub object: ObjectKind,
    pub id: RecordId,
    pub occurred_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub attempts: i64,
}

/// Inbox rows by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxCounts {
    pub pending: u64,
    pub done: u64,
    pub failed: u64,
}

impl Store {
    /// Stores hints not seen before (by `(org, dedupe_key)`); returns how many were new.
    pub async fn enqueue_hints(
        &self,
        org: &OrgId,
        hints: &[Hint],
        received_at: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut seen = std::collections::HashSet::new();
        let hints: Vec<&Hint> = hints
            .iter()
            .filter(|h| seen.insert(h.dedupe_key.as_str()))
            .collect();
        let mut fresh = 0;
        for chunk in hints.chunks(super::rows_per_statement(8)) {
            let sql = format!(
                "INSERT INTO webhook_inbox (org, object, record_id, dedupe_key, occurred_at,
                                            received_at, status, attempts)
                 VALUES {} ON CONFLICT (org, dedupe_key) DO NOTHING RETURNING seq",
                placeholders(chunk.len(), 8, 1)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for hint in chunk {
                query = query
                    .bind(org.as_str())
                    .bind(hint.object.as_str())
                    .bind(hint.id.as_str().to_owned())
                    .bind(hint.dedupe_key.clone())
                    .bind(hint.occurred_at.map(to_ms))
                    .bind(to_ms(received_at))
                    .bind("pending")
                    .bind(0_i64);
            }
            let rows = query
                .fetch_all(self.pool())
                .await
                .map_err(StoreError::query("storing webhook hints"))?;
            fresh += rows.len();
        }
        Ok(fresh)
    }

    /// The oldest pending hints, at most `limit`.
    pub async fn pending_hints(
        &self,
        org: &OrgId,
        limit: usize,
    ) -> Result<Vec<InboxItem>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, object, record_id, occurred_at, received_at, attempts FROM webhook_inbox
             WHERE org = $1 AND status = 'pending' ORDER BY seq LIMIT $2",
        )
        .bind(org.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query("reading pending webhook hints"))?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let read = || StoreError::query("reading pending webhook hints");
            let object: String = row.try_get("object").map_err(read())?;
            let occurred_at: Option<i64> = row.try_get("occurred_at").map_err(read())?;
            let received_at: i64 = row.try_get("received_at").map_err(read())?;
            items.push(InboxItem {
                seq: row.try_get("seq").map_err(read())?,
                object: object.parse().map_err(|detail| StoreError::Corrupt {
                    what: "webhook hint object",
                    detail,
                })?,
                id: RecordId(row.try_get("record_id").map_err(read())?),
                occurred_at: occurred_at.map(from_ms),
                received_at: from_ms(received_at),
                attempts: row.try_get("attempts").map_err(read())?,
            });
        }
        Ok(items)
    }

    /// Marks hints processed.
    pub async fn finish_hints(&self, seqs: &[i64], now: DateTime<Utc>) -> Result<(), StoreError> {
        for chunk in seqs.chunks(super::MAX_PARAMS - 3) {
            let sql = format!(
                "UPDATE webhook_inbox SET status = 'done', done_at = $1, last_error = NULL
                 WHERE seq IN ({})",
                in_list(chunk.len(), 2)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql))
                .persistent(false)
                .bind(to_ms(now));
            for seq in chunk {
                query = query.bind(*seq);
            }
            query
                .execute(self.pool())
                .await
                .map_err(StoreError::query("marking webhook hints done"))?;
        }
        Ok(())
    }

    /// Records a failed refetch; hints that failed [`MAX_ATTEMPTS`] times become `failed`.
    pub async fn fail_hints(&self, seqs: &[i64], error: &str) -> Result<(), StoreError> {
        for chunk in seqs.chunks(super::MAX_PARAMS - 3) {
            let sql = format!(
                "UPDATE webhook_inbox SET attempts = attempts + 1, last_error = $1,
                    status = CASE WHEN attempts + 1 >= $2 THEN 'failed' ELSE status END
                 WHERE seq IN ({})",
                in_list(chunk.len(), 3)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql))
                .persistent(false)
                .bind(error.to_owned())
                .bind(MAX_ATTEMPTS);
            for seq in chunk {
                query = query.bind(*seq);
            }
            query
                .execute(self.pool())
                .await
                .map_err(StoreError::query("recording a failed webhook refetch"))?;
        }
        Ok(())
    }

    /// Deletes processed hints older than [`DONE_RETENTION`].
    pub async fn prune_inbox(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let result =
            sqlx::query("DELETE FROM webhook_inbox WHERE status <> 'pending' AND received_at < $1")
                .bind(to_ms(now - DONE_RETENTION))
                .execute(self.pool())
                .await
                .map_err(StoreError::query("pruning the webhook inbox"))?;
        Ok(result.rows_affected())
    }

    pub async fn inbox_counts(&self, org: &OrgId) -> Result<InboxCounts, StoreError> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM webhook_inbox WHERE org = $1 GROUP BY status",
        )
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query("counting webhook hints"))?;
        let mut counts = InboxCounts::default();
        for row in rows {
            let read = || StoreError::query("counting webhook hints");
            let status: String = row.try_get("status").map_err(read())?;
            let n: i64 = row.try_get("n").map_err(read())?;
            let n = u64::try_from(n).unwrap_or(0);
            match status.as_str() {
                "pending" => counts.pending = n,
                "done" => counts.done = n,
                _ => counts.failed += n,
            }
        }
        Ok(counts)
    }
}
