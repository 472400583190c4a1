//! getUpdated / getDeleted (`sobjects/{Type}/updated|deleted/?start&end`): minute
//! truncation, the 30/15-day lookback, the 600,000-id cap, `latestDateCovered`
//! held back by open (late-visible) commits, and `earliestDateAvailable`.

use axum::http::StatusCode;
use chrono::Utc;
use serde_json::json;

use super::super::schema::{Val, format_datetime, parse_datetime};
use super::super::server::{Call, Resp, Shared};
use super::sobjects;

const ID_CAP: usize = 600_000;
const UPDATED_LOOKBACK_DAYS: i64 = 30;
const DELETED_LOOKBACK_DAYS: i64 = 15;

fn invalid(message: impl Into<String>) -> Resp {
    Resp::error(StatusCode::BAD_REQUEST, "INVALID_REPLICATION_DATE", message)
}

fn minute(secs: i64) -> i64 {
    secs - secs.rem_euclid(60)
}

pub(crate) fn run(shared: &Shared, call: &Call, object_name: &str, deleted: bool) -> Resp {
    let obj = match sobjects::object(object_name) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let parse = |name: &str| -> Result<i64, Resp> {
        let raw = call.param(name).ok_or_else(|| {
            Resp::error(
                StatusCode::BAD_REQUEST,
                "MISSING_ARGUMENT",
                format!("{name} parameter is required"),
            )
        })?;
        parse_datetime(raw).map(minute).ok_or_else(|| {
            Resp::error(
                StatusCode::BAD_REQUEST,
                "INVALID_REPLICATION_DATE",
                format!("{name} is not a valid ISO-8601 dateTime: {raw}"),
            )
        })
    };
    let (start, end) = match (parse("start"), parse("end")) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let now = Utc::now().timestamp();
    if deleted && start + 60 > end || !deleted && start >= end {
        return invalid("startDate must chronologically precede endDate by more than one minute");
    }
    let lookback = if deleted {
        DELETED_LOOKBACK_DAYS
    } else {
        UPDATED_LOOKBACK_DAYS
    };
    if start < minute(now) - lookback * 86_400 {
        return invalid(format!("startDate cannot be more than {lookback} days ago"));
    }
    if start > now {
        return invalid("startDate cannot be in the future");
    }
    let now_ms = shared.now_ms();
    let org = shared.org.lock();
    // An open (not yet visible) commit holds latestDateCovered back to its minute.
    let stamp_idx = obj.idx("SystemModstamp");
    let pending = org
        .table(obj)
        .rows
        .iter()
        .filter(|r| r.shadow.as_ref().is_some_and(|s| now_ms < s.visible_at_ms))
        .filter_map(|r| match r.vals[stamp_idx] {
            Val::DateTime(s) => Some(minute(s)),
            _ => None,
        })
        .min();
    let latest = [end, minute(now)]
        .into_iter()
        .chain(pending)
        .min()
        .unwrap_or(end);
    if deleted {
        let records: Vec<_> = org
            .delete_log
            .iter()
            .filter(|e| e.obj == obj && e.at_secs >= start && e.at_secs < latest)
            .map(|e| json!({"id": e.id, "deletedDate": format_datetime(e.at_secs)}))
            .collect();
        if records.len() > ID_CAP {
            return Resp::error(
                StatusCode::BAD_REQUEST,
                "EXCEEDED_ID_LIMIT",
                "too many ids: split the window",
            );
        }
        // The log covers the lookback window unless it was purged more recently.
        let purged = org.purged_before.saturating_add(59).div_euclid(60) * 60;
        let earliest = (minute(now) - DELETED_LOOKBACK_DAYS * 86_400).max(purged);
        return Resp::ok(json!({
            "deletedRecords": records,
            "earliestDateAvailable": format_datetime(earliest),
            "latestDateCovered": format_datetime(latest),
        }));
    }
    let deleted_idx = obj.field_index("IsDeleted");
    let mut ids = Vec::new();
    let table = org.table(obj);
    let mut candidates: Vec<usize> = table.rows_stamped_from(start).collect();
    candidates.sort_unstable();
    for row in candidates.into_iter().map(|i| &table.rows[i]) {
        let Some(vals) = row.visible(now_ms) else {
            continue;
        };
        if deleted_idx.is_some_and(|d| vals[d].as_bool()) {
            continue;
        }
        if let Val::DateTime(s) = vals[stamp_idx]
            && s >= start
            && s < latest
        {
            ids.push(vals[0].as_str().unwrap_or_default().to_owned());
            if ids.len() > ID_CAP {
                return Resp::error(
                    StatusCode::BAD_REQUEST,
                    "EXCEEDED_ID_LIMIT",
                    "The result would contain more than 600,000 ids; split the window",
                );
            }
        }
    }
    Resp::ok(json!({"ids": ids, "latestDateCovered": format_datetime(latest)}))
}
