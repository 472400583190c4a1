//! Persisting the assignment ledger (tables from `migrations/*/0100_ledger.sql`).
//!
//! `save_ledger` only upserts: pool members that left keep their rows, so a rotation
//! never silently resets. It writes pool and daily state in full (small) and only the
//! record assignments made since the ledger was loaded (`Ledger::touched`), each also
//! appended to the history table, all in one transaction.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use sqlx::{AssertSqlSafe, Row};

use super::{Store, StoreError, from_ms, placeholders, to_ms};
use crate::domain::{ObjectKind, OrgId, OwnerId, RecordId};
use crate::reconcile::ledger::{Assignment, Ledger, MemberLedger, PoolLedger};

/// Rows per multi-row INSERT: member rows bind 6 values, the widest here (see
/// [`super::MAX_PARAMS`]).
const CHUNK: usize = super::rows_per_statement(6);

impl Store {
    /// The persisted ledger for `org` (empty when nothing was saved yet).
    pub async fn load_ledger(&self, org: &OrgId) -> Result<Ledger, StoreError> {
        let mut ledger = Ledger::default();
        let read = || StoreError::query("reading the assignment ledger");
        for row in sqlx::query("SELECT pool, picks FROM ledger_pools WHERE org = $1")
            .bind(org.as_str())
            .fetch_all(self.pool())
            .await
            .map_err(read())?
        {
            let pool: String = row.try_get("pool").map_err(read())?;
            let picks: i64 = row.try_get("picks").map_err(read())?;
            ledger.pools.entry(pool).or_default().picks = u64::try_from(picks).unwrap_or(0);
        }
        for row in sqlx::query(
            "SELECT pool, owner_id, credit, assigned, last_assigned_at FROM ledger_members WHERE org = $1",
        )
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(read())?
        {
            let pool: String = row.try_get("pool").map_err(read())?;
            let owner: String = row.try_get("owner_id").map_err(read())?;
            let member = MemberLedger {
                credit: row.try_get("credit").map_err(read())?,
                assigned: u64::try_from(row.try_get::<i64, _>("assigned").map_err(read())?).unwrap_or(0),
                last_assigned_at: row.try_get::<Option<i64>, _>("last_assigned_at").map_err(read())?.map(from_ms),
            };
            ledger.pools.entry(pool).or_insert_with(PoolLedger::default).members.insert(OwnerId::new(owner), member);
        }
        for row in sqlx::query("SELECT owner_id, day, count FROM ledger_daily WHERE org = $1")
            .bind(org.as_str())
            .fetch_all(self.pool())
            .await
            .map_err(read())?
        {
            let owner: String = row.try_get("owner_id").map_err(read())?;
            let day: String = row.try_get("day").map_err(read())?;
            let count: i64 = row.try_get("count").map_err(read())?;
            let day =
                NaiveDate::parse_from_str(&day, "%Y-%m-%d").map_err(|e| StoreError::Corrupt {
                    what: "ledger day",
                    detail: e.to_string(),
                })?;
            ledger
                .daily
                .entry(OwnerId::new(owner))
                .or_insert_with(BTreeMap::new)
                .insert(day, u32::try_from(count).unwrap_or(u32::MAX));
        }
        for row in sqlx::query(
            "SELECT object, id, owner_id, pool, rule, assigned_at FROM ledger_assignments WHERE org = $1",
        )
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(read())?
        {
            let object: String = row.try_get("object").map_err(read())?;
            let object: ObjectKind = object
                .parse()
                .map_err(|detail| StoreError::Corrupt { what: "ledger object kind", detail })?;
            let id: String = row.try_get("id").map_err(read())?;
            let assignment = Assignment {
                owner: OwnerId::new(row.try_get::<String, _>("owner_id").map_err(read())?),
                pool: row.try_get("pool").map_err(read())?,
                rule: row.try_get("rule").map_err(read())?,
                at: from_ms(row.try_get("assigned_at").map_err(read())?),
            };
            ledger.assignments.insert((object, RecordId::new(id)), assignment);
        }
        Ok(ledger)
    }

    /// Persist the ledger in one transaction and clear its `touched` set.
    pub async fn save_ledger(&self, org: &OrgId, ledger: &mut Ledger) -> Result<(), StoreError> {
        let write = || StoreError::query("saving the assignment ledger");
        let mut tx = self.begin_write().await?;
        for (pool, state) in &ledger.pools {
            sqlx::query(
                "INSERT INTO ledger_pools (org, pool, picks) VALUES ($1, $2, $3)
                 ON CONFLICT (org, pool) DO UPDATE SET picks = excluded.picks",
            )
            .bind(org.as_str())
            .bind(pool.clone())
            .bind(i64::try_from(state.picks).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(write())?;
            let members: Vec<(&OwnerId, &MemberLedger)> = state.members.iter().collect();
            for chunk in members.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO ledger_members (org, pool, owner_id, credit, assigned, last_assigned_at)
                     VALUES {} ON CONFLICT (org, pool, owner_id) DO UPDATE SET credit = excluded.credit,
                     assigned = excluded.assigned, last_assigned_at = excluded.last_assigned_at",
                    placeholders(chunk.len(), 6, 1)
                );
                let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
                for (owner, m) in chunk {
                    q = q
                        .bind(org.as_str())
                        .bind(pool.clone())
                        .bind(owner.0.clone())
                        .bind(m.credit)
                        .bind(i64::try_from(m.assigned).unwrap_or(i64::MAX))
                        .bind(m.last_assigned_at.map(to_ms));
                }
                q.execute(&mut *tx).await.map_err(write())?;
            }
        }
        // Daily counts: the ledger prunes old days, so the table does too.
        let oldest = ledger
            .daily
            .values()
            .filter_map(|d| d.keys().next())
            .min()
            .copied();
        if let Some(oldest) = oldest {
            sqlx::query("DELETE FROM ledger_daily WHERE org = $1 AND day < $2")
                .bind(org.as_str())
                .bind(oldest.format("%Y-%m-%d").to_string())
                .execute(&mut *tx)
                .await
                .map_err(write())?;
        }
        let days: Vec<(&OwnerId, &NaiveDate, &u32)> = ledger
            .daily
            .iter()
            .flat_map(|(o, d)| d.iter().map(move |(day, n)| (o, day, n)))
            .collect();
        for chunk in days.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO ledger_daily (org, owner_id, day, count) VALUES {}
                 ON CONFLICT (org, owner_id, day) DO UPDATE SET count = excluded.count",
                placeholders(chunk.len(), 4, 1)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for (owner, day, n) in chunk {
                q = q
                    .bind(org.as_str())
                    .bind(owner.0.clone())
                    .bind(day.format("%Y-%m-%d").to_string())
                    .bind(i64::from(**n));
            }
            q.execute(&mut *tx).await.map_err(write())?;
        }
        let touched: Vec<(&(ObjectKind, RecordId), &Assignment)> = ledger
            .touched_keys()
            .into_iter()
            .filter_map(|k| ledger.assignments.get(k).map(|a| (k, a)))
            .collect();
        for chunk in touched.chunks(CHUNK) {
            for table in ["ledger_assignments", "ledger_history"] {
                let conflict = if table == "ledger_assignments" {
                    " ON CONFLICT (org, object, id) DO UPDATE SET owner_id = excluded.owner_id, pool = excluded.pool,
                      rule = excluded.rule, assigned_at = excluded.assigned_at"
                } else {
                    ""
                };
                let sql = format!(
                    "INSERT INTO {table} (org, object, id, owner_id, pool, rule, assigned_at) VALUES {}{conflict}",
                    placeholders(chunk.len(), 7, 1)
                );
                let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
                for ((object, id), a) in chunk {
                    q = q
                        .bind(org.as_str())
                        .bind(object.as_str())
                        .bind(id.0.clone())
                        .bind(a.owner.0.clone())
                        .bind(a.pool.clone())
                        .bind(a.rule.clone())
                        .bind(to_ms(a.at));
                }
                q.execute(&mut *tx).await.map_err(write())?;
            }
        }
        tx.commit().await.map_err(write())?;
        ledger.touched.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[tokio::test]
    async fn a_saved_ledger_loads_back_equal_and_saving_never_forgets_members() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
        let mut ledger = Ledger::default();
        let pool = ledger.pools.entry("emea".into()).or_default();
        pool.picks = 7;
        pool.members.insert(
            OwnerId::new("101"),
            MemberLedger {
                credit: -333_333_333,
                assigned: 4,
                last_assigned_at: Some(at),
            },
        );
        pool.members.insert(
            OwnerId::new("102"),
            MemberLedger {
                credit: 333_333_333,
                assigned: 3,
                last_assigned_at: None,
            },
        );
        ledger.count_assignment(&OwnerId::new("101"), at.date_naive());
        ledger.assign(
            ObjectKind::Contact,
            &RecordId::new("c1"),
            Assignment {
                owner: OwnerId::new("101"),
                pool: Some("emea".into()),
                rule: "r".into(),
                at,
            },
        );
        store
            .save_ledger(
                &OrgId::default_for(leadroute_crm::CrmKind::Hubspot),
                &mut ledger,
            )
            .await
            .unwrap();
        assert!(ledger.touched.is_empty());
        let loaded = store
            .load_ledger(&OrgId::default_for(leadroute_crm::CrmKind::Hubspot))
            .await
            .unwrap();
        assert_eq!(loaded, ledger);

        // A member removed from the in-memory ledger keeps its stored row.
        let mut edited = loaded.clone();
        edited
            .pools
            .get_mut("emea")
            .unwrap()
            .members
            .remove(&OwnerId::new("102"));
        store
            .save_ledger(
                &OrgId::default_for(leadroute_crm::CrmKind::Hubspot),
                &mut edited,
            )
            .await
            .unwrap();
        let again = store
            .load_ledger(&OrgId::default_for(leadroute_crm::CrmKind::Hubspot))
            .await
            .unwrap();
        assert!(
            again.pools["emea"]
                .members
                .contains_key(&OwnerId::new("102"))
        );
        // Other CRMs are separate.
        assert_eq!(
            store
                .load_ledger(&OrgId::default_for(leadroute_crm::CrmKind::Salesforce))
                .await
                .unwrap(),
            Ledger::default()
        );
    }
}
