//! SOQL text the connector sends: field lists per object, the sync queries, id-list
//! chunks, and datetime / string literal formatting.
//!
//! Only a small, fixed set of query shapes is built here, so the simulator's SOQL
//! subset and a real org see exactly the same text.

use chrono::{DateTime, SecondsFormat, Utc};

/// An sObject the connector reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SObject {
    Lead,
    Contact,
    Account,
    User,
    /// `Group WHERE Type = 'Queue'`.
    Queue,
    /// Activities, mirrored as `ObjectKind::Activity` when asked.
    Task,
    Event,
}

impl SObject {
    /// The API name (`Group` for queues).
    pub fn api_name(self) -> &'static str {
        match self {
            SObject::Lead => "Lead",
            SObject::Contact => "Contact",
            SObject::Account => "Account",
            SObject::User => "User",
            SObject::Queue => "Group",
            SObject::Task => "Task",
            SObject::Event => "Event",
        }
    }

    /// Fields mirrored for this object (the `SELECT` list and the retrieve list).
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            SObject::Lead => &[
                "Id",
                "FirstName",
                "LastName",
                "Email",
                "Company",
                "Website",
                "Country",
                "State",
                "Status",
                "LastActivityDate",
                "LeadSource",
                "OwnerId",
                "IsConverted",
                "ConvertedAccountId",
                "ConvertedContactId",
                "ConvertedDate",
                "CreatedDate",
                "SystemModstamp",
            ],
            SObject::Contact => &[
                "Id",
                "FirstName",
                "LastName",
                "Email",
                "AccountId",
                "MailingCountry",
                "OwnerId",
                "LastActivityDate",
                "CreatedDate",
                "SystemModstamp",
            ],
            SObject::Account => &[
                "Id",
                "Name",
                "Website",
                "BillingCountry",
                "BillingState",
                "ParentId",
                "OwnerId",
                "Type",
                "Industry",
                "NumberOfEmployees",
                "CreatedDate",
                "SystemModstamp",
            ],
            SObject::User => &[
                "Id",
                "Username",
                "Name",
                "Email",
                "IsActive",
                "UserRoleId",
                "ManagerId",
                "TimeZoneSidKey",
                "UserType",
                "SystemModstamp",
            ],
            SObject::Queue => &[
                "Id",
                "Name",
                "DeveloperName",
                "Type",
                "Email",
                "SystemModstamp",
            ],
            SObject::Task => &[
                "Id",
                "WhoId",
                "WhatId",
                "OwnerId",
                "Subject",
                "Status",
                "IsClosed",
                "TaskSubtype",
                "CallType",
                "ActivityDate",
                "CompletedDateTime",
                "CreatedDate",
                "SystemModstamp",
            ],
            SObject::Event => &[
                "Id",
                "WhoId",
                "WhatId",
                "OwnerId",
                "Subject",
                "StartDateTime",
                "EndDateTime",
                "ActivityDate",
                "CreatedDate",
                "SystemModstamp",
            ],
        }
    }

    /// Whether the object has a recycle bin (`IsDeleted`, `MasterRecordId`) to poll.
    pub fn has_deletes(self) -> bool {
        matches!(self, SObject::Lead | SObject::Contact | SObject::Account)
    }

    /// Fixed filter every query on this object carries.
    fn base_filter(self) -> Option<&'static str> {
        match self {
            SObject::Queue => Some("Type = 'Queue'"),
            _ => None,
        }
    }
}

/// A SOQL datetime literal: unquoted, UTC, whole seconds (`2025-03-04T09:15:27Z`).
pub fn datetime_literal(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A quoted SOQL string literal with `\` and `'` escaped.
pub fn string_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn with_filters(object: SObject, filters: &[String]) -> String {
    let all: Vec<String> = object
        .base_filter()
        .map(str::to_owned)
        .into_iter()
        .chain(filters.iter().cloned())
        .collect();
    if all.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", all.join(" AND "))
    }
}

/// The live-record sync query: every record (`since: None`, full sync) or those with
/// `SystemModstamp >= since`, in `SystemModstamp, Id` order so a resume point is a
/// position in a total order.
pub fn live_query(object: SObject, since: Option<DateTime<Utc>>) -> String {
    let filters: Vec<String> = since
        .map(|at| format!("SystemModstamp >= {}", datetime_literal(at)))
        .into_iter()
        .collect();
    format!(
        "SELECT {} FROM {}{} ORDER BY SystemModstamp, Id",
        object.fields().join(", "),
        object.api_name(),
        with_filters(object, &filters)
    )
}

/// The recycle-bin query (sent to `queryAll`): records deleted or merged away at or
/// after `since`.
pub fn deleted_query(object: SObject, since: DateTime<Utc>) -> String {
    let filters = vec![
        "IsDeleted = true".to_owned(),
        format!("SystemModstamp >= {}", datetime_literal(since)),
    ];
    format!(
        "SELECT Id, MasterRecordId, SystemModstamp FROM {}{} ORDER BY SystemModstamp, Id",
        object.api_name(),
        with_filters(object, &filters)
    )
}

/// Deletion facts for specific ids (sent to `queryAll`), to tell a merge from a delete.
pub fn deleted_by_ids(object: SObject, ids: &[String]) -> String {
    let list: Vec<String> = ids.iter().map(|id| string_literal(id)).collect();
    format!(
        "SELECT Id, IsDeleted, MasterRecordId, SystemModstamp FROM {} WHERE Id IN ({})",
        object.api_name(),
        list.join(", ")
    )
}

/// Ids per `IN (...)` list: keeps the URL well under the 16 KB URI limit.
pub const MAX_IDS_PER_IN: usize = 300;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn datetime_literals_are_unquoted_utc_whole_seconds() {
        let at = Utc.with_ymd_and_hms(2025, 3, 4, 9, 15, 27).unwrap()
            + chrono::Duration::milliseconds(999);
        assert_eq!(datetime_literal(at), "2025-03-04T09:15:27Z");
    }

    #[test]
    fn incremental_query_uses_greater_or_equal_and_a_total_order() {
        let at = Utc.with_ymd_and_hms(2025, 3, 4, 9, 0, 0).unwrap();
        let q = live_query(SObject::Lead, Some(at));
        assert!(q.starts_with("SELECT Id, FirstName"));
        assert!(q.ends_with(
            "FROM Lead WHERE SystemModstamp >= 2025-03-04T09:00:00Z ORDER BY SystemModstamp, Id"
        ));
    }

    #[test]
    fn queue_queries_always_filter_on_group_type() {
        assert!(
            live_query(SObject::Queue, None).contains("FROM Group WHERE Type = 'Queue' ORDER BY")
        );
        let at = Utc.with_ymd_and_hms(2025, 3, 4, 9, 0, 0).unwrap();
        assert!(
            live_query(SObject::Queue, Some(at))
                .contains("WHERE Type = 'Queue' AND SystemModstamp >= 2025-03-04T09:00:00Z")
        );
    }

    #[test]
    fn deleted_query_asks_for_recycle_bin_rows_with_their_master() {
        let at = Utc.with_ymd_and_hms(2025, 3, 4, 9, 0, 0).unwrap();
        assert_eq!(
            deleted_query(SObject::Contact, at),
            "SELECT Id, MasterRecordId, SystemModstamp FROM Contact WHERE IsDeleted = true AND SystemModstamp >= 2025-03-04T09:00:00Z ORDER BY SystemModstamp, Id"
        );
    }

    #[test]
    fn string_literals_escape_quotes_and_backslashes() {
        assert_eq!(string_literal("O'Brien\\x"), "'O\\'Brien\\\\x'");
    }
}
