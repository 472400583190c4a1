//! Where touches come from. A [`TouchSource`] answers, for a batch of records, the
//! touches it knows of; the engine picks the first that counts for an SLA.
//!
//! [`MirrorTouches`] reads the mirrored person's fields (HubSpot
//! `hs_last_sales_activity_timestamp`, `notes_last_contacted`, `hs_lead_status`;
//! Salesforce `LastActivityDate`, Lead `Status`) and, when the mirror keeps activities
//! (`[sync] activities = true`), the person's calls, emails, meetings, tasks, notes and
//! events with who did them ([`touches_from_activities`]); [`MemoryTouches`] is for
//! tests.

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

/// The touches a person's mirrored activities show, each dated by the activity's own
/// time and carrying who did it. An e-mail the person sent the rep (inbound) is not
/// the rep touching them; a task counts once it is done; a Salesforce event is a
/// meeting.
pub fn touches_from_activities(activities: &[leadroute_crm::ActivityRecord]) -> Vec<Touch> {
    use leadroute_crm::{ActivityKind, Direction};
    activities
        .iter()
        .filter_map(|a| {
            let kind = match a.kind {
                ActivityKind::Email if a.direction == Some(Direction::Inbound) => return None,
                ActivityKind::Task if !a.done => return None,
                ActivityKind::Call => TouchKind::Call,
                ActivityKind::Email => TouchKind::Email,
                ActivityKind::Meeting | ActivityKind::Event => TouchKind::Meeting,
                ActivityKind::Task => TouchKind::Task,
                ActivityKind::Note => TouchKind::Note,
            };
            Some(Touch {
                at: a.at,
                kind,
                by: a.owner_id.clone(),
            })
        })
        .collect()
}

/// Touches read from the mirror: people rows' fields, and their activities.
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
        let mut out: HashMap<Key, Vec<Touch>> = rows
            .into_iter()
            .map(|(key, (fields, updated_at))| {
                let touches = touches_from_fields(&fields, updated_at, new_status);
                (key, touches)
            })
            .collect();
        // One indexed read per record the engine looks at (only due timers are).
        for key in keys {
            let activities = self.store.activities_for(&self.org, key.0, &key.1).await?;
            if !activities.is_empty() {
                out.entry(key.clone())
                    .or_default()
                    .extend(touches_from_activities(&activities));
            }
        }
        Ok(out)
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
    use leadroute_crm::{ActivityKind, ActivityRecord, Direction, PersonRef};

    fn activity(kind: ActivityKind, direction: Option<Direction>, done: bool) -> ActivityRecord {
        ActivityRecord {
            id: RecordId::new("a1"),
            kind,
            at: Utc
                .with_ymd_and_hms(2026, 12, 1, 9, 30, 0)
                .single()
                .unwrap(),
            owner_id: Some(OwnerId::new("77")),
            people: vec![PersonRef {
                object: ObjectKind::Contact,
                id: RecordId::new("c1"),
            }],
            direction,
            status: None,
            done,
            created_at: None,
            updated_at: Utc
                .with_ymd_and_hms(2026, 12, 1, 10, 0, 0)
                .single()
                .unwrap(),
            raw: serde_json::Value::Null,
        }
    }

    #[test]
    fn activities_are_touches_at_their_own_time_by_their_owner_except_inbound_mail_and_open_tasks()
    {
        let touches = touches_from_activities(&[
            activity(ActivityKind::Call, Some(Direction::Inbound), false),
            activity(ActivityKind::Email, Some(Direction::Outbound), false),
            activity(ActivityKind::Email, Some(Direction::Inbound), false),
            activity(ActivityKind::Task, None, false),
            activity(ActivityKind::Task, None, true),
            activity(ActivityKind::Event, None, false),
            activity(ActivityKind::Note, None, false),
        ]);
        let kinds: Vec<TouchKind> = touches.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            vec![
                TouchKind::Call,
                TouchKind::Email,
                TouchKind::Task,
                TouchKind::Meeting,
                TouchKind::Note
            ]
        );
        for t in &touches {
            assert_eq!(
                t.at,
                Utc.with_ymd_and_hms(2026, 12, 1, 9, 30, 0)
                    .single()
                    .unwrap()
            );
            assert_eq!(t.by, Some(OwnerId::new("77")));
        }
    }

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
