//! SLA timers, their event log, the journal cursor they start from and the outbox of
//! breach actions (migration 0400). Every state change of a timer is a compare-and-set
//! (`WHERE state = 'open' AND next_at = <read>`) in one transaction with its events and
//! actions, so a timer breaches once even when two processes or a restart race.

use std::collections::{BTreeMap, HashMap};

use crate::domain::OrgId;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Row, any::AnyRow};

use super::{Store, StoreError, from_ms, in_list, to_ms};
use crate::domain::{ObjectKind, OwnerId, RecordId};

/// Timer states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerState {
    Open,
    Met,
    Breached,
    /// The record got another owner (or was deleted) before the timer ended.
    Cancelled,
}

impl TimerState {
    pub fn as_str(self) -> &'static str {
        match self {
            TimerState::Open => "open",
            TimerState::Met => "met",
            TimerState::Breached => "breached",
            TimerState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> TimerState {
        match s {
            "met" => TimerState::Met,
            "breached" => TimerState::Breached,
            "cancelled" => TimerState::Cancelled,
            _ => TimerState::Open,
        }
    }
}

/// An applied owner write from the journal (the acknowledgement that starts timers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedWrite {
    pub run_id: String,
    pub run_kind: String,
    pub seq: i64,
    pub object: ObjectKind,
    pub id: RecordId,
    pub owner: OwnerId,
    pub rule: String,
    pub acknowledged_at: DateTime<Utc>,
}

/// Where the engine has read the journal up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaCursor {
    pub outcome_at: i64,
    pub run_id: String,
    pub seq: i64,
}

/// A timer to start.
#[derive(Debug, Clone)]
pub struct NewTimer {
    pub sla: String,
    pub object: ObjectKind,
    pub id: RecordId,
    pub owner: OwnerId,
    pub rule: String,
    pub pool: Option<String>,
    pub run_id: String,
    pub seq: i64,
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub next_at: DateTime<Utc>,
}

/// A stored timer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TimerRow {
    pub id: i64,
    pub org: String,
    pub sla: String,
    pub object: ObjectKind,
    pub record_id: RecordId,
    pub owner: OwnerId,
    pub rule: String,
    pub pool: Option<String>,
    pub run_id: String,
    pub seq: i64,
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub next_at: Option<DateTime<Utc>>,
    pub reminders_sent: u32,
    pub state: TimerState,
    pub touched_at: Option<DateTime<Utc>>,
    pub touch_kind: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Working time from start to the touch (met) or the deadline (breached).
    pub working_ms: Option<i64>,
}

/// A state change of one timer, applied only if the timer is still as it was read.
#[derive(Debug, Clone)]
pub struct Transition {
    pub timer: i64,
    /// `next_at` as read (the compare-and-set guard).
    pub expected_next: Option<DateTime<Utc>>,
    pub state: TimerState,
    pub next_at: Option<DateTime<Utc>>,
    pub reminders_sent: u32,
    pub touched_at: Option<DateTime<Utc>>,
    pub touch_kind: Option<String>,
    pub working_ms: Option<i64>,
    pub events: Vec<NewEvent>,
    pub actions: Vec<NewAction>,
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: &'static str,
    pub at: DateTime<Utc>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewAction {
    pub kind: &'static str,
    pub payload: serde_json::Value,
}

/// A journaled SLA event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventRow {
    pub id: i64,
    pub timer_id: i64,
    pub sla: String,
    pub object: ObjectKind,
    pub record_id: RecordId,
    pub owner: OwnerId,
    pub kind: String,
    pub at: DateTime<Utc>,
    pub detail: Option<String>,
}

/// A breach action waiting in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRow {
    pub id: i64,
    pub timer_id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub attempts: u32,
}

const TIMER_COLUMNS: &str = "id, org, sla, object, record_id, owner, rule, pool, run_id, seq, attempt, \
     started_at, due_at, next_at, reminders_sent, state, touched_at, touch_kind, closed_at, working_ms";

fn ctx(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    StoreError::query(what)
}

fn object(row: &AnyRow, col: &str) -> Result<ObjectKind, StoreError> {
    let s: String = row.try_get(col).map_err(ctx("reading SLA rows"))?;
    s.parse().map_err(|_| StoreError::Corrupt {
        what: "SLA object kind",
        detail: s,
    })
}

fn timer_from_row(row: &AnyRow) -> Result<TimerRow, StoreError> {
    let e = || ctx("reading SLA timers");
    let opt_ms = |c: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(row.try_get::<Option<i64>, _>(c).map_err(e())?.map(from_ms))
    };
    let state: String = row.try_get("state").map_err(e())?;
    Ok(TimerRow {
        id: row.try_get("id").map_err(e())?,
        org: row.try_get("org").map_err(e())?,
        sla: row.try_get("sla").map_err(e())?,
        object: object(row, "object")?,
        record_id: RecordId::new(row.try_get::<String, _>("record_id").map_err(e())?),
        owner: OwnerId::new(row.try_get::<String, _>("owner").map_err(e())?),
        rule: row.try_get("rule").map_err(e())?,
        pool: row.try_get("pool").map_err(e())?,
        run_id: row.try_get("run_id").map_err(e())?,
        seq: row.try_get("seq").map_err(e())?,
        attempt: u32::try_from(row.try_get::<i64, _>("attempt").map_err(e())?).unwrap_or(0),
        started_at: from_ms(row.try_get("started_at").map_err(e())?),
        due_at: from_ms(row.try_get("due_at").map_err(e())?),
        next_at: opt_ms("next_at")?,
        reminders_sent: u32::try_from(row.try_get::<i64, _>("reminders_sent").map_err(e())?)
            .unwrap_or(0),
        state: TimerState::parse(&state),
        touched_at: opt_ms("touched_at")?,
        touch_kind: row.try_get("touch_kind").map_err(e())?,
        closed_at: opt_ms("closed_at")?,
        working_ms: row.try_get("working_ms").map_err(e())?,
    })
}

impl Store {
    /// Fields and modification time of mirrored people, for touches.
    pub async fn sla_person_fields(
        &self,
        org: &OrgId,
        keys: &[(ObjectKind, RecordId)],
    ) -> Result<
        HashMap<(ObjectKind, RecordId), (BTreeMap<String, String>, DateTime<Utc>)>,
        StoreError,
    > {
        let mut out = HashMap::new();
        for object in [ObjectKind::Contact, ObjectKind::Lead] {
            let ids: Vec<&RecordId> = keys
                .iter()
                .filter(|(o, _)| *o == object)
                .map(|(_, id)| id)
                .collect();
            for chunk in ids.chunks(200) {
                let sql = format!(
                    "SELECT id, fields, updated_at FROM people WHERE org = $1 AND object = $2 AND id IN ({})",
                    in_list(chunk.len(), 3)
                );
                let mut q = sqlx::query(AssertSqlSafe(sql))
                    .persistent(false)
                    .bind(org.as_str())
                    .bind(object.as_str());
                for id in chunk {
                    q = q.bind(id.as_str());
                }
                let rows = q
                    .fetch_all(self.pool())
                    .await
                    .map_err(ctx("reading people for SLA touches"))?;
                for row in rows {
                    let e = || ctx("reading people for SLA touches");
                    let id: String = row.try_get("id").map_err(e())?;
                    let text: String = row.try_get("fields").map_err(e())?;
                    let fields: BTreeMap<String, String> =
                        serde_json::from_str(&text).map_err(|err| StoreError::Corrupt {
                            what: "person fields",
                            detail: err.to_string(),
                        })?;
                    let updated: i64 = row.try_get("updated_at").map_err(e())?;
                    out.insert((object, RecordId::new(id)), (fields, from_ms(updated)));
                }
            }
        }
        Ok(out)
    }

    pub async fn sla_cursor(&self, org: &str) -> Result<Option<SlaCursor>, StoreError> {
        let row = sqlx::query("SELECT outcome_at, run_id, seq FROM sla_cursor WHERE org = $1")
            .bind(org)
            .fetch_optional(self.pool())
            .await
            .map_err(ctx("reading the SLA cursor"))?;
        row.map(|r| {
            let e = || ctx("reading the SLA cursor");
            Ok(SlaCursor {
                outcome_at: r.try_get("outcome_at").map_err(e())?,
                run_id: r.try_get("run_id").map_err(e())?,
                seq: r.try_get("seq").map_err(e())?,
            })
        })
        .transpose()
    }

    /// Sets the cursor only if there is none yet (the first start reads from now on).
    pub async fn sla_cursor_init(&self, org: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sla_cursor (org, outcome_at, run_id, seq) VALUES ($1, $2, '', 0)
             ON CONFLICT (org) DO NOTHING",
        )
        .bind(org)
        .bind(to_ms(at))
        .execute(self.pool())
        .await
        .map_err(ctx("starting the SLA cursor"))?;
        Ok(())
    }

    /// Applied owner writes after `cursor`, in acknowledgement order (rollbacks excluded).
    pub async fn sla_applied_since(
        &self,
        org: &OrgId,
        cursor: &SlaCursor,
        limit: i64,
    ) -> Result<Vec<AppliedWrite>, StoreError> {
        let rows = sqlx::query(
            "SELECT j.run_id, j.seq, j.object, j.record_id, j.after_owner, j.rule, j.outcome_at, r.kind
             FROM writer_journal j JOIN writer_runs r ON r.run_id = j.run_id
             WHERE j.org = $1 AND j.outcome = 'applied' AND j.outcome_at IS NOT NULL
               AND (j.outcome_at > $2 OR (j.outcome_at = $2 AND (j.run_id > $3 OR (j.run_id = $3 AND j.seq > $4))))
               AND r.kind <> 'rollback'
             ORDER BY j.outcome_at, j.run_id, j.seq LIMIT $5",
        )
        .bind(org.as_str())
        .bind(cursor.outcome_at)
        .bind(cursor.run_id.clone())
        .bind(cursor.seq)
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(ctx("reading applied writes for SLA timers"))?;
        rows.iter()
            .map(|r| {
                let e = || ctx("reading applied writes for SLA timers");
                Ok(AppliedWrite {
                    run_id: r.try_get("run_id").map_err(e())?,
                    run_kind: r.try_get("kind").map_err(e())?,
                    seq: r.try_get("seq").map_err(e())?,
                    object: object(r, "object")?,
                    id: RecordId::new(r.try_get::<String, _>("record_id").map_err(e())?),
                    owner: OwnerId::new(r.try_get::<String, _>("after_owner").map_err(e())?),
                    rule: r.try_get("rule").map_err(e())?,
                    acknowledged_at: from_ms(r.try_get("outcome_at").map_err(e())?),
                })
            })
            .collect()
    }

    /// The latest timer of each record for `sla` (for the escalation attempt number).
    pub async fn sla_latest_timer(
        &self,
        org: &str,
        sla: &str,
        object: ObjectKind,
        id: &RecordId,
    ) -> Result<Option<TimerRow>, StoreError> {
        let sql = format!(
            "SELECT {TIMER_COLUMNS} FROM sla_timers WHERE org = $1 AND sla = $2 AND object = $3 AND record_id = $4
             ORDER BY id DESC LIMIT 1"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(org)
            .bind(sla)
            .bind(object.as_str())
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(ctx("reading SLA timers"))?;
        row.as_ref().map(timer_from_row).transpose()
    }

    /// Starts timers and moves the cursor, in one transaction: a record's open timers
    /// of the same SLA are cancelled (it has a new owner), each new timer journals a
    /// `started` event. A timer already started for the same write is left alone.
    /// Returns how many timers started and how many open ones were cancelled.
    pub async fn sla_start(
        &self,
        org: &str,
        timers: &[NewTimer],
        cursor: &SlaCursor,
        now: DateTime<Utc>,
    ) -> Result<(u64, u64), StoreError> {
        let e = || ctx("starting SLA timers");
        let mut tx = self.begin_write().await?;
        let (mut started, mut cancelled) = (0u64, 0u64);
        for t in timers {
            let done = sqlx::query(
                "UPDATE sla_timers SET state = 'cancelled', next_at = NULL, closed_at = $5
                 WHERE org = $1 AND sla = $2 AND object = $3 AND record_id = $4 AND state = 'open'
                   AND NOT (run_id = $6 AND seq = $7)",
            )
            .bind(org)
            .bind(t.sla.clone())
            .bind(t.object.as_str())
            .bind(t.id.as_str())
            .bind(to_ms(now))
            .bind(t.run_id.clone())
            .bind(t.seq)
            .execute(&mut *tx)
            .await
            .map_err(e())?;
            cancelled += done.rows_affected();
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO sla_timers (org, sla, object, record_id, owner, rule, pool, run_id, seq, attempt,
                    started_at, due_at, next_at, reminders_sent, state)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, 'open')
                 ON CONFLICT (org, sla, run_id, seq) DO NOTHING RETURNING id",
            )
            .bind(org)
            .bind(t.sla.clone())
            .bind(t.object.as_str())
            .bind(t.id.as_str())
            .bind(t.owner.as_str())
            .bind(t.rule.clone())
            .bind(t.pool.clone())
            .bind(t.run_id.clone())
            .bind(t.seq)
            .bind(i64::from(t.attempt))
            .bind(to_ms(t.started_at))
            .bind(to_ms(t.due_at))
            .bind(to_ms(t.next_at))
            .fetch_optional(&mut *tx)
            .await
            .map_err(e())?;
            if let Some(id) = id {
                started += 1;
                insert_event(
                    &mut tx,
                    org,
                    id,
                    &t.sla,
                    t.object,
                    &t.id,
                    &t.owner,
                    &NewEvent {
                        kind: "started",
                        at: t.started_at,
                        detail: Some(format!(
                            "due {} (rule {}, attempt {})",
                            t.due_at.to_rfc3339(),
                            t.rule,
                            t.attempt
                        )),
                    },
                )
                .await?;
            }
        }
        sqlx::query(
            "INSERT INTO sla_cursor (org, outcome_at, run_id, seq) VALUES ($1, $2, $3, $4)
             ON CONFLICT (org) DO UPDATE SET outcome_at = excluded.outcome_at, run_id = excluded.run_id, seq = excluded.seq",
        )
        .bind(org)
        .bind(cursor.outcome_at)
        .bind(cursor.run_id.clone())
        .bind(cursor.seq)
        .execute(&mut *tx)
        .await
        .map_err(e())?;
        tx.commit().await.map_err(e())?;
        Ok((started, cancelled))
    }

    /// Open timers due for a look (`next_at <= now`), earliest first: an index range
    /// scan, O(due) whatever the number of open timers.
    pub async fn sla_due(
        &self,
        org: &str,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<TimerRow>, StoreError> {
        let sql = format!(
            "SELECT {TIMER_COLUMNS} FROM sla_timers WHERE org = $1 AND next_at <= $2
             ORDER BY next_at LIMIT $3"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(org)
            .bind(to_ms(now))
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .map_err(ctx("reading due SLA timers"))?;
        rows.iter().map(timer_from_row).collect()
    }

    /// Applies transitions, each only if its timer is unchanged since it was read;
    /// returns the ids of the timers changed. One transaction.
    pub async fn sla_apply(
        &self,
        org: &str,
        timers: &HashMap<i64, TimerRow>,
        transitions: &[Transition],
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        let e = || ctx("recording SLA timer changes");
        let mut tx = self.begin_write().await?;
        let mut changed = Vec::new();
        let mut events: Vec<(&TimerRow, &NewEvent)> = Vec::new();
        let mut actions: Vec<(i64, &NewAction)> = Vec::new();
        for t in transitions {
            let Some(timer) = timers.get(&t.timer) else {
                continue;
            };
            let closed = (t.state != TimerState::Open).then(|| to_ms(now));
            let done = sqlx::query(
                "UPDATE sla_timers SET state = $3, next_at = $4, reminders_sent = $5, touched_at = $6,
                    touch_kind = $7, working_ms = $8, closed_at = $9
                 WHERE org = $1 AND id = $2 AND state = 'open' AND next_at = $10",
            )
            .bind(org)
            .bind(t.timer)
            .bind(t.state.as_str())
            .bind(t.next_at.map(to_ms))
            .bind(i64::from(t.reminders_sent))
            .bind(t.touched_at.map(to_ms))
            .bind(t.touch_kind.clone())
            .bind(t.working_ms)
            .bind(closed)
            .bind(t.expected_next.map(to_ms))
            .execute(&mut *tx)
            .await
            .map_err(e())?;
            if done.rows_affected() != 1 {
                // Another process (or an earlier attempt) got there first.
                continue;
            }
            changed.push(t.timer);
            for ev in &t.events {
                events.push((timer, ev));
            }
            for a in &t.actions {
                actions.push((t.timer, a));
            }
        }
        // Events and actions in multi-row statements: a tick of 1,000 breaches is then
        // 1,000 guarded updates and a few dozen inserts.
        for chunk in events.chunks(super::rows_per_statement(9)) {
            let sql = format!(
                "INSERT INTO sla_events (org, timer_id, sla, object, record_id, owner, kind, at, detail) VALUES {}",
                super::placeholders(chunk.len(), 9, 1)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for (timer, ev) in chunk {
                q = q
                    .bind(org)
                    .bind(timer.id)
                    .bind(timer.sla.clone())
                    .bind(timer.object.as_str())
                    .bind(timer.record_id.as_str())
                    .bind(timer.owner.as_str())
                    .bind(ev.kind)
                    .bind(to_ms(ev.at))
                    .bind(ev.detail.clone());
            }
            q.execute(&mut *tx).await.map_err(e())?;
        }
        for chunk in actions.chunks(super::rows_per_statement(7)) {
            let sql = format!(
                "INSERT INTO sla_actions (org, timer_id, kind, payload, state, created_at, updated_at) VALUES {}",
                super::placeholders(chunk.len(), 7, 1)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for (timer, a) in chunk {
                q = q
                    .bind(org)
                    .bind(*timer)
                    .bind(a.kind)
                    .bind(a.payload.to_string())
                    .bind("pending")
                    .bind(to_ms(now))
                    .bind(to_ms(now));
            }
            q.execute(&mut *tx).await.map_err(e())?;
        }
        tx.commit().await.map_err(e())?;
        Ok(changed)
    }

    pub async fn sla_pending_actions(
        &self,
        org: &str,
        limit: i64,
    ) -> Result<Vec<ActionRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, timer_id, kind, payload, attempts FROM sla_actions
             WHERE org = $1 AND state = 'pending' ORDER BY id LIMIT $2",
        )
        .bind(org)
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(ctx("reading SLA actions"))?;
        rows.iter()
            .map(|r| {
                let e = || ctx("reading SLA actions");
                let payload: String = r.try_get("payload").map_err(e())?;
                Ok(ActionRow {
                    id: r.try_get("id").map_err(e())?,
                    timer_id: r.try_get("timer_id").map_err(e())?,
                    kind: r.try_get("kind").map_err(e())?,
                    payload: serde_json::from_str(&payload).unwrap_or_default(),
                    attempts: u32::try_from(r.try_get::<i64, _>("attempts").map_err(e())?)
                        .unwrap_or(0),
                })
            })
            .collect()
    }

    /// Saves what an action decided before it acts (a re-run after a crash repeats
    /// the same decision rather than making a new one).
    pub async fn sla_action_payload(
        &self,
        id: i64,
        payload: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sla_actions SET payload = $2, attempts = attempts + 1, updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(payload.to_string())
        .bind(to_ms(now))
        .execute(self.pool())
        .await
        .map_err(ctx("recording an SLA action"))?;
        Ok(())
    }

    /// Ends an action (`done` or `failed`) and journals its event, in one transaction.
    pub async fn sla_action_end(
        &self,
        org: &str,
        action: &ActionRow,
        timer: &TimerRow,
        state: &str,
        event: &NewEvent,
    ) -> Result<(), StoreError> {
        let e = || ctx("ending an SLA action");
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE sla_actions SET state = $2, message = $3, updated_at = $4 WHERE id = $1 AND state = 'pending'",
        )
        .bind(action.id)
        .bind(state)
        .bind(event.detail.clone())
        .bind(to_ms(event.at))
        .execute(&mut *tx)
        .await
        .map_err(e())?;
        if done.rows_affected() == 1 {
            insert_event(
                &mut tx,
                org,
                timer.id,
                &timer.sla,
                timer.object,
                &timer.record_id,
                &timer.owner,
                event,
            )
            .await?;
        }
        tx.commit().await.map_err(e())?;
        Ok(())
    }

    pub async fn sla_timer(&self, id: i64) -> Result<Option<TimerRow>, StoreError> {
        let sql = format!("SELECT {TIMER_COLUMNS} FROM sla_timers WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(ctx("reading an SLA timer"))?;
        row.as_ref().map(timer_from_row).transpose()
    }

    /// Timers, newest first: all, or only those in `state`, or those of one record.
    pub async fn sla_timers(
        &self,
        org: &str,
        state: Option<TimerState>,
        record: Option<(ObjectKind, &RecordId)>,
        limit: i64,
    ) -> Result<Vec<TimerRow>, StoreError> {
        let sql = format!(
            "SELECT {TIMER_COLUMNS} FROM sla_timers WHERE org = $1
               AND ($2 = '' OR state = $2) AND ($3 = '' OR (object = $3 AND record_id = $4))
             ORDER BY id DESC LIMIT $5"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(org)
            .bind(state.map_or("", TimerState::as_str))
            .bind(record.map_or("", |(o, _)| o.as_str()))
            .bind(record.map_or(String::new(), |(_, id)| id.0.clone()))
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .map_err(ctx("listing SLA timers"))?;
        rows.iter().map(timer_from_row).collect()
    }

    /// Owners of a record's timers for `sla`, most recent first (for skip-last-N).
    pub async fn sla_recent_owners(
        &self,
        org: &str,
        sla: &str,
        object: ObjectKind,
        id: &RecordId,
        limit: i64,
    ) -> Result<Vec<OwnerId>, StoreError> {
        let rows = sqlx::query(
            "SELECT owner FROM sla_timers WHERE org = $1 AND sla = $2 AND object = $3 AND record_id = $4
             ORDER BY id DESC LIMIT $5",
        )
        .bind(org)
        .bind(sla)
        .bind(object.as_str())
        .bind(id.as_str())
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(ctx("reading a record's SLA owners"))?;
        rows.iter()
            .map(|r| {
                Ok(OwnerId::new(
                    r.try_get::<String, _>("owner")
                        .map_err(ctx("reading a record's SLA owners"))?,
                ))
            })
            .collect()
    }

    /// Journaled events of `kinds` (all when empty) at or after `since`, oldest first.
    pub async fn sla_events(
        &self,
        org: &str,
        kinds: &[&str],
        since: Option<DateTime<Utc>>,
        record: Option<(ObjectKind, &RecordId)>,
    ) -> Result<Vec<EventRow>, StoreError> {
        let kinds_sql = if kinds.is_empty() {
            String::new()
        } else {
            format!(" AND kind IN ({})", in_list(kinds.len(), 5))
        };
        let sql = format!(
            "SELECT id, timer_id, sla, object, record_id, owner, kind, at, detail FROM sla_events
             WHERE org = $1 AND at >= $2 AND ($3 = '' OR (object = $3 AND record_id = $4)){kinds_sql}
             ORDER BY at, id"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .persistent(false)
            .bind(org)
            .bind(since.map_or(i64::MIN, to_ms))
            .bind(record.map_or("", |(o, _)| o.as_str()))
            .bind(record.map_or(String::new(), |(_, id)| id.0.clone()));
        for k in kinds {
            q = q.bind(*k);
        }
        let rows = q
            .fetch_all(self.pool())
            .await
            .map_err(ctx("reading SLA events"))?;
        rows.iter()
            .map(|r| {
                let e = || ctx("reading SLA events");
                Ok(EventRow {
                    id: r.try_get("id").map_err(e())?,
                    timer_id: r.try_get("timer_id").map_err(e())?,
                    sla: r.try_get("sla").map_err(e())?,
                    object: object(r, "object")?,
                    record_id: RecordId::new(r.try_get::<String, _>("record_id").map_err(e())?),
                    owner: OwnerId::new(r.try_get::<String, _>("owner").map_err(e())?),
                    kind: r.try_get("kind").map_err(e())?,
                    at: from_ms(r.try_get("at").map_err(e())?),
                    detail: r.try_get("detail").map_err(e())?,
                })
            })
            .collect()
    }

    /// The earliest next look of any open timer (the engine sleeps until then, or
    /// its tick, whichever is sooner).
    pub async fn sla_next_due(&self, org: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT next_at FROM sla_timers WHERE org = $1 AND next_at IS NOT NULL ORDER BY next_at LIMIT 1",
        )
        .bind(org)
        .fetch_optional(self.pool())
        .await
        .map_err(ctx("reading the next SLA deadline"))?;
        Ok(next.map(from_ms))
    }

    /// Open timers (for the `leadroute_sla_open` gauge at start).
    pub async fn sla_open_count(&self, org: &str) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM sla_timers WHERE org = $1 AND state = 'open'")
            .bind(org)
            .fetch_one(self.pool())
            .await
            .map_err(ctx("counting open SLA timers"))
    }
}

#[allow(clippy::too_many_arguments)]
async fn insert_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    org: &str,
    timer: i64,
    sla: &str,
    object: ObjectKind,
    id: &RecordId,
    owner: &OwnerId,
    ev: &NewEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sla_events (org, timer_id, sla, object, record_id, owner, kind, at, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(org)
    .bind(timer)
    .bind(sla)
    .bind(object.as_str())
    .bind(id.as_str())
    .bind(owner.as_str())
    .bind(ev.kind)
    .bind(to_ms(ev.at))
    .bind(ev.detail.clone())
    .execute(&mut **tx)
    .await
    .map_err(ctx("journaling an SLA event"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_stores;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn timer(n: i64, due: &str) -> NewTimer {
        NewTimer {
            sla: "first-touch".into(),
            object: ObjectKind::Contact,
            id: RecordId::new(n.to_string()),
            owner: OwnerId::new("1"),
            rule: "r".into(),
            pool: Some("p".into()),
            run_id: "run".into(),
            seq: n,
            attempt: 0,
            started_at: t("2026-01-05T10:00:00Z"),
            due_at: t(due),
            next_at: t(due),
        }
    }

    fn cursor(seq: i64) -> SlaCursor {
        SlaCursor {
            outcome_at: 1,
            run_id: "run".into(),
            seq,
        }
    }

    #[tokio::test]
    async fn due_timers_come_from_the_index_and_a_breach_is_recorded_once() {
        for ts in test_stores::all().await {
            let store = &ts.store;
            let now = t("2026-01-05T10:20:00Z");
            let timers = vec![
                timer(1, "2026-01-05T10:15:00Z"),
                timer(2, "2026-01-05T10:30:00Z"),
            ];
            assert_eq!(
                store
                    .sla_start("hubspot", &timers, &cursor(2), now)
                    .await
                    .unwrap(),
                (2, 0),
                "{}",
                ts.label()
            );
            // Starting the same writes again (a replayed journal) changes nothing.
            assert_eq!(
                store
                    .sla_start("hubspot", &timers, &cursor(2), now)
                    .await
                    .unwrap(),
                (0, 0)
            );
            let due = store.sla_due("hubspot", now, 10).await.unwrap();
            assert_eq!(due.len(), 1);
            assert_eq!(due[0].record_id.as_str(), "1");
            let by_id: HashMap<i64, TimerRow> = due.iter().map(|t| (t.id, t.clone())).collect();
            let breach = Transition {
                timer: due[0].id,
                expected_next: due[0].next_at,
                state: TimerState::Breached,
                next_at: None,
                reminders_sent: 0,
                touched_at: None,
                touch_kind: None,
                working_ms: Some(900_000),
                events: vec![NewEvent {
                    kind: "breached",
                    at: now,
                    detail: None,
                }],
                actions: vec![NewAction {
                    kind: "reassign",
                    payload: serde_json::json!({ "step": "reassign" }),
                }],
            };
            // Two engines (or a restarted one) decide the same breach: one wins.
            let a = store
                .sla_apply("hubspot", &by_id, std::slice::from_ref(&breach), now)
                .await
                .unwrap();
            let b = store
                .sla_apply("hubspot", &by_id, &[breach], now)
                .await
                .unwrap();
            assert_eq!((a.len(), b.len()), (1, 0), "{}", ts.label());
            let events = store
                .sla_events("hubspot", &["breached"], None, None)
                .await
                .unwrap();
            assert_eq!(events.len(), 1);
            assert_eq!(
                store
                    .sla_pending_actions("hubspot", 10)
                    .await
                    .unwrap()
                    .len(),
                1
            );
            assert!(store.sla_due("hubspot", now, 10).await.unwrap().is_empty());
            assert_eq!(store.sla_open_count("hubspot").await.unwrap(), 1);
            assert_eq!(
                store.sla_next_due("hubspot").await.unwrap(),
                Some(t("2026-01-05T10:30:00Z"))
            );
            // A new assignment of record 2 cancels its open timer.
            let mut again = timer(2, "2026-01-05T11:00:00Z");
            again.seq = 3;
            assert_eq!(
                store
                    .sla_start("hubspot", &[again], &cursor(3), now)
                    .await
                    .unwrap(),
                (1, 1)
            );
            ts.drop().await;
        }
    }
}
