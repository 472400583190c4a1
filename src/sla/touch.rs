//! Where touches come from. A [`TouchSource`] answers, for a batch of records, the
//! touches it knows of; the engine picks the first that counts for an SLA.
//!
//! Implemented now: [`MirrorTouches`] reads the mirrored person's fields (HubSpot
//! `hs_last_sales_activity_timestamp`, `notes_last_contacted`, `hs_lead_status`;
//! Salesforce `LastActivityDate`, Lead `Status`) and [`MemoryTouches`] for tests. The
//! engagement-object source (calls, emails, meetings, tasks, notes with their owner)
//! plugs in here when the mirror stores activities.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use crate::domain::{ObjectKind, OwnerId, RecordId};
use crate::policy::TouchKind;
use crate::store::{Store, StoreError};

pub type Key = (ObjectKind, RecordId);

/// One touch of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    pub at: DateTime<Utc>,
    pub kind: TouchKind,
    /// Who touched it, when the source knows (engagement objects do; person fields
    /// do not).
    pub by: Option<OwnerId>,
}

/// A source of touches.
pub trait TouchSource: Send + Sync + 'static {
    /// The touches known for each of `keys` (records without any may be absent).
    /// `new_status` is the status value a fresh record has (for status touches).
    fn touches(
        &self,
        keys: &[Key],
        new_status: Option<&str>,
    ) -> impl Future<Output = Result<HashMap<Key, Vec<Touch>>, StoreError>> + Send;
}

/// A timestamp as the CRMs write it: epoch milliseconds, RFC 3339, or a date (then
/// the start of that day, UTC).
pub fn parse_stamp(value: &str) -> Option<DateTime<Utc>> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if let Ok(ms) = v.parse::<i64>() {
        return Utc.timestamp_millis_opt(ms).single();
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t))
}

/// The touches a mirrored person's fields show. A status away from `new_status`
/// counts as a touch at the record's last modification (the CRMs keep no stamp of
/// the status change itself).
pub fn touches_from_fields(
    fields: &BTreeMap<String, String>,
    updated_at: DateTime<Utc>,
    new_status: Option<&str>,
) -> Vec<Touch> {
    let mut out = Vec::new();
    for (name, kind) in [
        ("hs_last_sales_activity_timestamp", TouchKind::Activity),
        ("LastActivityDate", TouchKind::Activity),
        ("notes_last_contacted", TouchKind::Contacted),
    ] {
        if let Some(at) = fields.get(name).and_then(|v| parse_stamp(v)) {
            out.push(Touch { at, kind, by: None });
        }
    }
    if let Some(new_status) = new_status {
        let status = ["hs_lead_status", "Status", "status"]
            .iter()
            .find_map(|f| fields.get(*f));
        if let Some(status) = status {
            if !status.trim().is_empty() && !status.trim().eq_ignore_ascii_case(new_status) {
                out.push(Touch {
                    at: updated_at,
                    kind: TouchKind::Status,
                    by: None,
                });
            }
        }
    }
    out
}

/// Touches read from the mirror's people rows.
#[derive(Clone)]
pub struct MirrorTouches {
    pub store: Store,
    pub org: crate::domain::OrgId,
}

impl TouchSource for MirrorTouches {
    async fn touches(
        &self,
        keys: &[Key],
        new_status: Option<&str>,
    ) -> Result<HashMap<Key, Vec<Touch>>, StoreError> {
        let rows = self.store.sla_person_fields(&self.org, keys).await?;
        Ok(rows
            .into_iter()
            .map(|(key, (fields, updated_at))| {
                let touches = touches_from_fields(&fields, updated_at, new_status);
                (key, touches)
            })
            .collect())
    }
}

/// Touches held in memory (tests, benchmarks).
#[derive(Clone, Default)]
pub struct MemoryTouches(Arc<Mutex<HashMap<Key, Vec<Touch>>>>);

impl MemoryTouches {
    pub fn add(&self, key: Key, touch: Touch) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .push(touch);
    }
}

impl TouchSource for MemoryTouches {
    async fn touches(
        &self,
        keys: &[Key],
        _new_status: Option<&str>,
    ) -> Result<HashMap<Key, Vec<Touch>>, StoreError> {
        let all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(keys
            .iter()
            .filter_map(|k| all.get(k).map(|t| (k.clone(), t.clone())))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_give_activity_contact_and_status_touches() {
        let fields: BTreeMap<String, String> = [
            ("hs_last_sales_activity_timestamp", "1767600000000"),
            ("notes_last_contacted", "2026-01-05T09:00:00Z"),
            ("hs_lead_status", "IN_PROGRESS"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        let updated = Utc.timestamp_millis_opt(1_767_700_000_000).unwrap();
        let got = touches_from_fields(&fields, updated, Some("NEW"));
        let kinds: Vec<TouchKind> = got.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            vec![TouchKind::Activity, TouchKind::Contacted, TouchKind::Status]
        );
        assert_eq!(got[2].at, updated);
        // Still "NEW": no status touch; garbage stamps are no touch.
        let fields: BTreeMap<String, String> = [
            ("hs_lead_status", "new"),
            ("notes_last_contacted", "yesterday"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        assert!(touches_from_fields(&fields, updated, Some("NEW")).is_empty());
    }
}
