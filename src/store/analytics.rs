//! Reads for routing analytics (`crate::analytics`) over a window, and the pool roster
//! recorded over time (`analytics_roster`, migration 0510, which also adds the time
//! indexes these reads use). Read-only apart from [`Store::note_roster`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::Row;

use super::{Store, StoreError, from_ms, to_ms};
use crate::analytics::{AssignmentFact, LeadTiming, OwnerFact, RosterSpan, Window};
use crate::domain::{ObjectKind, OrgId, OwnerId};

/// The mirrored fields a person's lead source is read from, first present wins:
/// the synthetic orgs' `lead_source`, Salesforce `LeadSource`, HubSpot's original
/// source `hs_analytics_source`, and a plain `source`.
#[derive(Deserialize)]
struct SourceFields {
    lead_source: Option<String>,
    #[serde(rename = "LeadSource")]
    sf_lead_source: Option<String>,
    hs_analytics_source: Option<String>,
    source: Option<String>,
}

fn source_of(fields: Option<&str>) -> Option<String> {
    // A field that is not a string, or fields that do not parse, leave it unknown.
    let f: SourceFields = serde_json::from_str(fields?).ok()?;
    [
        f.lead_source,
        f.sf_lead_source,
        f.hs_analytics_source,
        f.source,
    ]
    .into_iter()
    .flatten()
    .find(|s| !s.trim().is_empty())
}

/// One pool member as a policy has it: pool, owner, weight.
pub type RosterMember = (String, OwnerId, u32);

impl Store {
    /// Assignments leadroute made in `window` (the ledger's history), each with the
    /// person's mirrored lead source.
    pub async fn analytics_assignments(
        &self,
        org: &OrgId,
        window: Window,
    ) -> Result<Vec<AssignmentFact>, StoreError> {
        let read = || StoreError::query("reading assignments for analytics");
        let rows = sqlx::query(
            "SELECT h.object, h.owner_id, h.pool, h.rule, h.assigned_at, p.fields \
             FROM ledger_history h LEFT JOIN people p \
               ON p.org = h.org AND p.object = h.object AND p.id = h.id \
             WHERE h.org = $1 AND h.assigned_at >= $2 AND h.assigned_at < $3",
        )
        .bind(org.as_str())
        .bind(to_ms(window.from))
        .bind(to_ms(window.to))
        .fetch_all(self.pool())
        .await
        .map_err(read())?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let object: String = row.try_get("object").map_err(read())?;
            let object: ObjectKind = object.parse().map_err(|detail| StoreError::Corrupt {
                what: "ledger history object kind",
                detail,
            })?;
            let fields: Option<String> = row.try_get("fields").map_err(read())?;
            out.push(AssignmentFact {
                at: from_ms(row.try_get("assigned_at").map_err(read())?),
                object,
                owner: OwnerId::new(row.try_get::<String, _>("owner_id").map_err(read())?),
                pool: row.try_get("pool").map_err(read())?,
                rule: row.try_get("rule").map_err(read())?,
                source: source_of(fields.as_deref()),
            });
        }
        Ok(out)
    }

    /// Owners' names and teams (the primary team, else the first).
    pub async fn analytics_owners(
        &self,
        org: &OrgId,
    ) -> Result<BTreeMap<OwnerId, OwnerFact>, StoreError> {
        Ok(self
            .owners(org)
            .await?
            .into_iter()
            .map(|o| {
                let team = o
                    .teams
                    .iter()
                    .find(|t| t.primary)
                    .or_else(|| o.teams.first())
                    .map(|t| t.name.clone());
                (o.id, OwnerFact { name: o.name, team })
            })
            .collect())
    }

    /// People first stored in `window`, each with the time leadroute's first applied
    /// write of its owner finished (the journal's first `applied` outcome).
    pub async fn analytics_lead_timings(
        &self,
        org: &OrgId,
        window: Window,
    ) -> Result<Vec<LeadTiming>, StoreError> {
        let read = || StoreError::query("reading speed-to-lead for analytics");
        let rows = sqlx::query(
            "SELECT p.first_seen_at, \
               (SELECT MIN(j.outcome_at) FROM writer_journal j \
                WHERE j.org = p.org AND j.object = p.object AND j.record_id = p.id \
                  AND j.outcome = 'applied') AS written_at \
             FROM people p \
             WHERE p.org = $1 AND p.first_seen_at >= $2 AND p.first_seen_at < $3",
        )
        .bind(org.as_str())
        .bind(to_ms(window.from))
        .bind(to_ms(window.to))
        .fetch_all(self.pool())
        .await
        .map_err(read())?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let seen: i64 = row.try_get("first_seen_at").map_err(read())?;
            let written: Option<i64> = row.try_get("written_at").map_err(read())?;
            out.push(LeadTiming {
                first_seen: from_ms(seen),
                written: written.map(from_ms),
            });
        }
        Ok(out)
    }

    /// Records the pools' membership as of `at` for `org`: a member that is new, or
    /// whose weight changed, opens a span; a span whose member left (or changed weight)
    /// is closed at `at`. Idempotent: recording the same roster again changes nothing.
    pub async fn note_roster(
        &self,
        org: &str,
        members: &[RosterMember],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let write = || StoreError::query("recording the pool roster");
        let mut tx = self.begin_write().await?;
        let open = sqlx::query(
            "SELECT pool, owner_id, weight FROM analytics_roster WHERE org = $1 AND left_at IS NULL",
        )
        .bind(org.to_owned())
        .fetch_all(&mut *tx)
        .await
        .map_err(write())?;
        let mut current: BTreeSet<(String, String, i64)> = BTreeSet::new();
        for row in open {
            current.insert((
                row.try_get("pool").map_err(write())?,
                row.try_get("owner_id").map_err(write())?,
                row.try_get("weight").map_err(write())?,
            ));
        }
        let wanted: BTreeSet<(String, String, i64)> = members
            .iter()
            .map(|(pool, owner, weight)| (pool.clone(), owner.0.clone(), i64::from(*weight)))
            .collect();
        for (pool, owner, weight) in current.difference(&wanted) {
            sqlx::query(
                "UPDATE analytics_roster SET left_at = $1 \
                 WHERE org = $2 AND pool = $3 AND owner_id = $4 AND weight = $5 AND left_at IS NULL",
            )
            .bind(to_ms(at))
            .bind(org.to_owned())
            .bind(pool.clone())
            .bind(owner.clone())
            .bind(*weight)
            .execute(&mut *tx)
            .await
            .map_err(write())?;
        }
        for (pool, owner, weight) in wanted.difference(&current) {
            sqlx::query(
                "INSERT INTO analytics_roster (org, pool, owner_id, weight, joined_at, left_at) \
                 VALUES ($1, $2, $3, $4, $5, NULL) \
                 ON CONFLICT (org, pool, owner_id, joined_at) DO UPDATE SET \
                 weight = excluded.weight, left_at = NULL",
            )
            .bind(org.to_owned())
            .bind(pool.clone())
            .bind(owner.clone())
            .bind(*weight)
            .bind(to_ms(at))
            .execute(&mut *tx)
            .await
            .map_err(write())?;
        }
        tx.commit().await.map_err(write())?;
        Ok(())
    }

    /// Roster spans of `org` overlapping `window`. A pool's earliest recorded spans are
    /// open backwards (`from: None`): nothing is known before the first recording, and
    /// the roster first recorded is taken to have held until then.
    pub async fn analytics_roster(
        &self,
        org: &str,
        window: Window,
    ) -> Result<Vec<RosterSpan>, StoreError> {
        let read = || StoreError::query("reading the pool roster");
        let first: BTreeMap<String, i64> = sqlx::query(
            "SELECT pool, MIN(joined_at) AS first FROM analytics_roster WHERE org = $1 GROUP BY pool",
        )
        .bind(org.to_owned())
        .fetch_all(self.pool())
        .await
        .map_err(read())?
        .into_iter()
        .map(|row| Ok((row.try_get("pool")?, row.try_get("first")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(read())?;
        let rows = sqlx::query(
            "SELECT pool, owner_id, weight, joined_at, left_at FROM analytics_roster \
             WHERE org = $1 AND joined_at < $2 AND (left_at IS NULL OR left_at > $3)",
        )
        .bind(org.to_owned())
        .bind(to_ms(window.to))
        .bind(to_ms(window.from))
        .fetch_all(self.pool())
        .await
        .map_err(read())?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let pool: String = row.try_get("pool").map_err(read())?;
            let joined: i64 = row.try_get("joined_at").map_err(read())?;
            let weight: i64 = row.try_get("weight").map_err(read())?;
            let left: Option<i64> = row.try_get("left_at").map_err(read())?;
            out.push(RosterSpan {
                from: (first.get(&pool) != Some(&joined)).then(|| from_ms(joined)),
                to: left.map(from_ms),
                owner: OwnerId::new(row.try_get::<String, _>("owner_id").map_err(read())?),
                weight: u32::try_from(weight).unwrap_or(0),
                pool,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_source_is_the_first_present_source_field_else_unknown() {
        assert_eq!(
            source_of(Some(r#"{"LeadSource":"Web","x":"y"}"#)).as_deref(),
            Some("Web")
        );
        assert_eq!(
            source_of(Some(r#"{"lead_source":"Partner"}"#)).as_deref(),
            Some("Partner")
        );
        assert_eq!(source_of(Some(r#"{"lifecyclestage":"lead"}"#)), None);
        assert_eq!(source_of(Some("not json")), None);
        assert_eq!(source_of(None), None);
    }

    #[tokio::test]
    async fn the_roster_records_joins_leaves_and_weight_changes_once() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let t = |h| Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap();
        let m = |o: &str, w| ("emea".to_owned(), OwnerId::new(o), w);
        store
            .note_roster("hubspot", &[m("A", 1), m("B", 1)], t(1))
            .await
            .unwrap();
        store
            .note_roster("hubspot", &[m("A", 1), m("B", 1)], t(2))
            .await
            .unwrap();
        store
            .note_roster("hubspot", &[m("A", 2), m("C", 1)], t(3))
            .await
            .unwrap();
        let window = Window {
            from: t(0),
            to: t(10),
        };
        let mut spans = store.analytics_roster("hubspot", window).await.unwrap();
        spans.sort_by(|a, b| (&a.owner, a.from).cmp(&(&b.owner, b.from)));
        type Span<'a> = (&'a str, u32, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
        let got: Vec<Span<'_>> = spans
            .iter()
            .map(|s| (s.owner.0.as_str(), s.weight, s.from, s.to))
            .collect();
        assert_eq!(
            got,
            vec![
                // The first recording is open backwards.
                ("A", 1, None, Some(t(3))),
                ("A", 2, Some(t(3)), None),
                ("B", 1, None, Some(t(3))),
                ("C", 1, Some(t(3)), None),
            ]
        );
        // Another org sees nothing.
        assert!(
            store
                .analytics_roster("salesforce", window)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
