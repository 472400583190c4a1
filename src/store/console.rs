//! What the web console (`src/console`) reads beyond the other areas' APIs: record
//! search, decisions per rule in a window, the day's write outcomes and speed samples,
//! and its own audit trail (`console_audit`, migrations 0500). Read-only except
//! [`Store::audit_add`].

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, from_ms, to_ms};
use crate::domain::{ObjectKind, OrgId};

/// A person found by a search or a rule's click-through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonHit {
    pub object: ObjectKind,
    pub id: String,
    pub email: Option<String>,
    pub name: String,
    pub company: Option<String>,
    pub owner_id: Option<String>,
}

/// Records decided by one rule in a window: journaled changes and queued exceptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleCount {
    pub rule: String,
    /// Distinct records the rule's decisions were journaled for.
    pub records: u64,
    pub applied: u64,
    pub exceptions: u64,
}

/// Writes and their outcomes since an instant, with speed-to-lead samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayStats {
    /// Outcome (`applied`, `unchanged`, …, `pending`) → count.
    pub outcomes: Vec<(String, u64)>,
    /// Distinct records given an owner (applied) since the instant.
    pub routed: u64,
    /// Seconds from the record's creation to its applied write, for records created
    /// since the instant.
    pub speed_secs: Vec<f64>,
}

/// One console action as audited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub run_id: Option<String>,
    pub outcome: String,
}

fn count(row: &AnyRow, column: &str) -> Result<u64, sqlx::Error> {
    Ok(u64::try_from(row.try_get::<i64, _>(column)?).unwrap_or(0))
}

fn hit(row: &AnyRow) -> Result<PersonHit, StoreError> {
    let read = || -> Result<PersonHit, sqlx::Error> {
        let object: String = row.try_get("object")?;
        let first: Option<String> = row.try_get("first_name")?;
        let last: Option<String> = row.try_get("last_name")?;
        let name = [first, last]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        Ok(PersonHit {
            object: object.parse().unwrap_or(ObjectKind::Contact),
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            name,
            company: row.try_get("company")?,
            owner_id: row.try_get("owner_id")?,
        })
    };
    read().map_err(StoreError::query("decoding a person for the console"))
}

/// `LIKE` pattern for `text` anywhere, with the wildcards in it escaped.
fn contains_pattern(text: &str) -> String {
    let mut out = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Store {
    /// People whose id is `q`, or whose email, name or company contains it
    /// (case-insensitive); at most `limit`, emails first.
    pub async fn console_search_people(
        &self,
        org: &OrgId,
        q: &str,
        limit: i64,
    ) -> Result<Vec<PersonHit>, StoreError> {
        let pattern = contains_pattern(q.trim());
        let rows = sqlx::query(
            "SELECT object, id, email, first_name, last_name, company, owner_id FROM people \
             WHERE org = $1 AND (id = $2 OR LOWER(email) LIKE $3 ESCAPE '\\' \
               OR LOWER(COALESCE(first_name, '') || ' ' || COALESCE(last_name, '')) LIKE $3 ESCAPE '\\' \
               OR LOWER(company) LIKE $3 ESCAPE '\\') \
             ORDER BY email LIMIT $4",
        )
        .bind(org.as_str())
        .bind(q.trim().to_owned())
        .bind(pattern)
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query("searching people"))?;
        rows.iter().map(hit).collect()
    }

    /// People a rule's decisions were journaled for since `since`, newest first.
    pub async fn console_people_by_rule(
        &self,
        org: &OrgId,
        rule: &str,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<PersonHit>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.object, p.id, p.email, p.first_name, p.last_name, p.company, p.owner_id \
             FROM people p JOIN (SELECT object, record_id, MAX(planned_at) AS at FROM writer_journal \
               WHERE org = $1 AND rule = $2 AND planned_at >= $3 GROUP BY object, record_id) j \
             ON p.org = $1 AND p.object = j.object AND p.id = j.record_id \
             ORDER BY j.at DESC LIMIT $4",
        )
        .bind(org.as_str())
        .bind(rule.to_owned())
        .bind(to_ms(since))
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query("listing a rule's records"))?;
        rows.iter().map(hit).collect()
    }

    /// Per rule: records decided there since `since` (journaled changes and exceptions).
    pub async fn console_rule_counts(
        &self,
        org: &OrgId,
        since: DateTime<Utc>,
    ) -> Result<Vec<RuleCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT rule, COUNT(DISTINCT object || ':' || record_id) AS records, \
               SUM(CASE WHEN outcome = 'applied' THEN 1 ELSE 0 END) AS applied \
             FROM writer_journal WHERE org = $1 AND planned_at >= $2 GROUP BY rule",
        )
        .bind(org.as_str())
        .bind(to_ms(since))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query("counting decisions per rule"))?;
        let mut out: Vec<RuleCount> = Vec::new();
        for row in &rows {
            let read = || -> Result<RuleCount, sqlx::Error> {
                Ok(RuleCount {
                    rule: row.try_get("rule")?,
                    records: count(row, "records")?,
                    applied: count(row, "applied")?,
                    exceptions: 0,
                })
            };
            out.push(read().map_err(StoreError::query("decoding counts per rule"))?);
        }
        let rows = sqlx::query(
            "SELECT rule, COUNT(*) AS n FROM writer_exceptions \
             WHERE org = $1 AND created_at >= $2 GROUP BY rule",
        )
        .bind(org.as_str())
        .bind(to_ms(since))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query("counting exceptions per rule"))?;
        for row in &rows {
            let read = || -> Result<(String, u64), sqlx::Error> {
                Ok((row.try_get("rule")?, count(row, "n")?))
            };
            let (rule, n) = read().map_err(StoreError::query("decoding exceptions per rule"))?;
            match out.iter_mut().find(|c| c.rule == rule) {
                Some(c) => c.exceptions = n,
                None => out.push(RuleCount {
                    rule,
                    exceptions: n,
                    ..RuleCount::default()
                }),
            }
        }
        Ok(out)
    }

    /// Write outcomes, records routed and speed-to-lead samples since `since`.
    pub async fn console_day_stats(
        &self,
        org: &OrgId,
        since: DateTime<Utc>,
    ) -> Result<DayStats, StoreError> {
        let rows = sqlx::query(
            "SELECT COALESCE(outcome, 'pending') AS outcome, COUNT(*) AS n FROM writer_journal \
             WHERE org = $1 AND planned_at >= $2 GROUP BY COALESCE(outcome, 'pending') \
             ORDER BY 1",
        )
        .bind(org.as_str())
        .bind(to_ms(since))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query("counting the day's writes"))?;
        let mut stats = DayStats::default();
        for row in &rows {
            let read = || -> Result<(String, u64), sqlx::Error> {
                Ok((row.try_get("outcome")?, count(row, "n")?))
            };
            stats
                .outcomes
                .push(read().map_err(StoreError::query("decoding the day's writes"))?);
        }
        let rows = sqlx::query(
            "SELECT j.object, j.record_id, MIN(j.outcome_at) AS written, MIN(p.created_at) AS created \
             FROM writer_journal j LEFT JOIN people p \
               ON p.org = j.org AND p.object = j.object AND p.id = j.record_id \
             WHERE j.org = $1 AND j.outcome = 'applied' AND j.outcome_at >= $2 \
             GROUP BY j.object, j.record_id",
        )
        .bind(org.as_str())
        .bind(to_ms(since))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query("reading the day's routed records"))?;
        for row in &rows {
            let read = || -> Result<(Option<i64>, Option<i64>), sqlx::Error> {
                Ok((row.try_get("written")?, row.try_get("created")?))
            };
            let (written, created) =
                read().map_err(StoreError::query("decoding the day's routed records"))?;
            stats.routed = stats.routed.saturating_add(1);
            if let (Some(written), Some(created)) = (written, created)
                && created >= to_ms(since)
            {
                stats
                    .speed_secs
                    .push(written.saturating_sub(created).max(0) as f64 / 1000.0);
            }
        }
        Ok(stats)
    }

    /// Records one console action.
    #[allow(clippy::too_many_arguments)]
    pub async fn audit_add(
        &self,
        org: &str,
        at: DateTime<Utc>,
        actor: &str,
        action: &str,
        target: &str,
        run_id: Option<&str>,
        outcome: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO console_audit (org, at, actor, action, target, run_id, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(org.to_owned())
        .bind(to_ms(at))
        .bind(actor.to_owned())
        .bind(action.to_owned())
        .bind(target.to_owned())
        .bind(run_id.map(str::to_owned))
        .bind(outcome.to_owned())
        .execute(self.pool())
        .await
        .map_err(StoreError::query("recording a console action"))?;
        Ok(())
    }

    /// The org's latest console actions, newest first.
    pub async fn audit_recent(&self, org: &str, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, actor, action, target, run_id, outcome FROM console_audit \
             WHERE org = $1 ORDER BY at DESC, id DESC LIMIT $2",
        )
        .bind(org.to_owned())
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::query("reading the console's audit"))?;
        rows.iter()
            .map(|row| {
                let read = || -> Result<AuditRow, sqlx::Error> {
                    Ok(AuditRow {
                        at: from_ms(row.try_get("at")?),
                        actor: row.try_get("actor")?,
                        action: row.try_get("action")?,
                        target: row.try_get("target")?,
                        run_id: row.try_get("run_id")?,
                        outcome: row.try_get("outcome")?,
                    })
                };
                read().map_err(StoreError::query("decoding the console's audit"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn search_wildcards_are_literal() {
        assert_eq!(contains_pattern("50%_a\\"), "%50\\%\\_a\\\\%");
        assert_eq!(contains_pattern("Ada"), "%ada%");
    }
}
