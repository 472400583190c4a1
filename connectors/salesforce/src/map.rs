//! Wire records (JSON objects from SOQL / retrieve) to contract records.
//!
//! Lead and Contact become [`PersonRecord`]s, Account an [`AccountRecord`], User and
//! Queue (`Group` with `Type = 'Queue'`) [`OwnerRecord`]s. Ids are canonicalised to 18
//! characters; the record as returned travels along in `raw`, and every scalar field is
//! copied into `fields` for policy conditions on arbitrary fields.

use std::collections::BTreeMap;
use std::str::FromStr;

use leadroute_crm::{
    AccountLink, AccountRecord, ActivityKind, ActivityRecord, Direction, ObjectKind, OwnerId,
    OwnerKind, OwnerRecord, PersonRecord, PersonRef, Record, RecordId,
};
use serde_json::{Map, Value};

use crate::ids;
use crate::soql::SObject;
use crate::wire::{bool_field, datetime_field, int_field, string_field};

/// A record the API returned that cannot be mirrored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MapError {
    #[error("salesforce {object} record has no Id")]
    MissingId { object: &'static str },
    #[error("salesforce {object} {id} has no parseable SystemModstamp")]
    MissingStamp { object: &'static str, id: String },
}

fn id_field(record: &Map<String, Value>, field: &str) -> Option<String> {
    string_field(record, field).map(|id| ids::canonical_or_raw(&id))
}

fn scalar_fields(record: &Map<String, Value>) -> BTreeMap<String, String> {
    record
        .iter()
        .filter(|(k, _)| k.as_str() != "attributes")
        .filter_map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((k.clone(), text))
        })
        .collect()
}

fn required_id(object: SObject, record: &Map<String, Value>) -> Result<String, MapError> {
    id_field(record, "Id").ok_or(MapError::MissingId {
        object: object.api_name(),
    })
}

fn stamp(
    object: SObject,
    id: &str,
    record: &Map<String, Value>,
) -> Result<chrono::DateTime<chrono::Utc>, MapError> {
    datetime_field(record, "SystemModstamp").ok_or_else(|| MapError::MissingStamp {
        object: object.api_name(),
        id: id.to_owned(),
    })
}

/// Maps any mirrored sObject row.
pub(crate) fn record(object: SObject, row: Map<String, Value>) -> Result<Record, MapError> {
    match object {
        SObject::Lead | SObject::Contact => person(object, row).map(Record::Person),
        SObject::Account => account(row).map(Record::Account),
        SObject::User => user(row).map(Record::Owner),
        SObject::Queue => queue(row).map(Record::Owner),
        SObject::Task | SObject::Event => activity(object, row).map(Record::Activity),
    }
}

/// A date-only field (`YYYY-MM-DD`) as midnight UTC.
fn date_field(row: &Map<String, Value>, field: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = string_field(row, field)?;
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Task or Event → activity (reference §12). A Task's time is `CompletedDateTime`,
/// else its due date `ActivityDate` (date only: midnight UTC), else `CreatedDate`; an
/// Event's is `StartDateTime` (may lie in the future). `TaskSubtype` says call or email.
pub(crate) fn activity(
    object: SObject,
    row: Map<String, Value>,
) -> Result<ActivityRecord, MapError> {
    let id = required_id(object, &row)?;
    let updated_at = stamp(object, &id, &row)?;
    let created_at = datetime_field(&row, "CreatedDate");
    let (kind, at, done) = match object {
        SObject::Event => (
            ActivityKind::Event,
            datetime_field(&row, "StartDateTime").or(created_at),
            true,
        ),
        _ => {
            let kind = match string_field(&row, "TaskSubtype").as_deref() {
                Some("Call") => ActivityKind::Call,
                Some("Email" | "ListEmail") => ActivityKind::Email,
                _ => ActivityKind::Task,
            };
            let at = datetime_field(&row, "CompletedDateTime")
                .or_else(|| date_field(&row, "ActivityDate"))
                .or(created_at);
            (kind, at, bool_field(&row, "IsClosed").unwrap_or(false))
        }
    };
    let people = id_field(&row, "WhoId")
        .and_then(|who| {
            let object = match who.get(..3).unwrap_or_default() {
                "00Q" => ObjectKind::Lead,
                "003" => ObjectKind::Contact,
                _ => return None,
            };
            Some(PersonRef {
                object,
                id: RecordId(who),
            })
        })
        .into_iter()
        .collect();
    let direction = match string_field(&row, "CallType").as_deref() {
        Some("Inbound") => Some(Direction::Inbound),
        Some("Outbound") => Some(Direction::Outbound),
        _ => None,
    };
    Ok(ActivityRecord {
        id: RecordId(id),
        kind,
        at: at.unwrap_or(updated_at),
        owner_id: id_field(&row, "OwnerId").map(OwnerId),
        people,
        direction,
        status: string_field(&row, "Status"),
        done,
        created_at,
        updated_at,
        raw: Value::Object(row),
    })
}

/// Lead or Contact → person. A Lead links to an account only once converted
/// (`ConvertedAccountId`); a Contact's `AccountId` is its primary account.
pub(crate) fn person(object: SObject, row: Map<String, Value>) -> Result<PersonRecord, MapError> {
    let id = required_id(object, &row)?;
    let updated_at = stamp(object, &id, &row)?;
    let (kind, account_field, country_field, state_field) = match object {
        SObject::Lead => (ObjectKind::Lead, "ConvertedAccountId", "Country", "State"),
        _ => (
            ObjectKind::Contact,
            "AccountId",
            "MailingCountry",
            "MailingState",
        ),
    };
    let accounts = Some(
        id_field(&row, account_field)
            .map(|account_id| AccountLink {
                account_id: RecordId(account_id),
                primary: true,
            })
            .into_iter()
            .collect(),
    );
    Ok(PersonRecord {
        id: RecordId(id),
        object: kind,
        email: string_field(&row, "Email"),
        first_name: string_field(&row, "FirstName"),
        last_name: string_field(&row, "LastName"),
        company: string_field(&row, "Company"),
        website: string_field(&row, "Website"),
        country: string_field(&row, country_field),
        state: string_field(&row, state_field),
        owner_id: id_field(&row, "OwnerId").map(OwnerId),
        accounts,
        owner_assigned_at: None,
        converted: bool_field(&row, "IsConverted").unwrap_or(false),
        created_at: datetime_field(&row, "CreatedDate"),
        updated_at,
        fields: scalar_fields(&row),
        raw: Value::Object(row),
    })
}

/// Account → account record.
pub(crate) fn account(row: Map<String, Value>) -> Result<AccountRecord, MapError> {
    let id = required_id(SObject::Account, &row)?;
    let updated_at = stamp(SObject::Account, &id, &row)?;
    let website = string_field(&row, "Website");
    Ok(AccountRecord {
        id: RecordId(id),
        name: string_field(&row, "Name"),
        domain: website.as_deref().and_then(domain_of),
        website,
        extra_domains: Vec::new(),
        country: string_field(&row, "BillingCountry"),
        state: string_field(&row, "BillingState"),
        parent_id: id_field(&row, "ParentId").map(RecordId),
        owner_id: id_field(&row, "OwnerId").map(OwnerId),
        employees: int_field(&row, "NumberOfEmployees"),
        industry: string_field(&row, "Industry"),
        created_at: datetime_field(&row, "CreatedDate"),
        updated_at,
        fields: scalar_fields(&row),
        raw: Value::Object(row),
    })
}

/// User → owner (inactive users included: records can still point at them).
pub(crate) fn user(row: Map<String, Value>) -> Result<OwnerRecord, MapError> {
    let id = required_id(SObject::User, &row)?;
    let name = string_field(&row, "Name")
        .or_else(|| string_field(&row, "Username"))
        .unwrap_or_else(|| id.clone());
    Ok(OwnerRecord {
        kind: OwnerKind::User,
        email: string_field(&row, "Email"),
        name,
        active: bool_field(&row, "IsActive").unwrap_or(true),
        teams: Vec::new(),
        time_zone: string_field(&row, "TimeZoneSidKey")
            .as_deref()
            .and_then(iana_time_zone),
        manager_id: id_field(&row, "ManagerId").map(OwnerId),
        user_id: string_field(&row, "Username"),
        updated_at: datetime_field(&row, "SystemModstamp"),
        id: OwnerId(id),
    })
}

/// Queue (`Group`, `Type = 'Queue'`) → owner. Queues are always active.
pub(crate) fn queue(row: Map<String, Value>) -> Result<OwnerRecord, MapError> {
    let id = required_id(SObject::Queue, &row)?;
    let name = string_field(&row, "Name")
        .or_else(|| string_field(&row, "DeveloperName"))
        .unwrap_or_else(|| id.clone());
    Ok(OwnerRecord {
        kind: OwnerKind::Queue,
        email: string_field(&row, "Email"),
        name,
        active: true,
        teams: Vec::new(),
        time_zone: None,
        manager_id: None,
        user_id: string_field(&row, "DeveloperName"),
        updated_at: datetime_field(&row, "SystemModstamp"),
        id: OwnerId(id),
    })
}

/// `TimeZoneSidKey` → IANA name. Salesforce keys are IANA names (`Europe/Berlin`)
/// except a few legacy aliases; anything chrono-tz does not know is dropped rather
/// than passed on as a zone the scheduler cannot use.
pub(crate) fn iana_time_zone(sid: &str) -> Option<String> {
    let sid = match sid {
        // Legacy keys Salesforce still offers, mapped to their current IANA names.
        "America/Indianapolis" => "America/Indiana/Indianapolis",
        "Asia/Calcutta" => "Asia/Kolkata",
        "Asia/Saigon" => "Asia/Ho_Chi_Minh",
        "Asia/Katmandu" => "Asia/Kathmandu",
        "Asia/Rangoon" => "Asia/Yangon",
        "America/Buenos_Aires" => "America/Argentina/Buenos_Aires",
        "Pacific/Enderbury" => "Pacific/Kanton",
        "Europe/Kiev" => "Europe/Kyiv",
        other => other,
    };
    chrono_tz::Tz::from_str(sid)
        .ok()
        .map(|tz| tz.name().to_owned())
}

/// The host of a website, without scheme, `www.`, port or path (`acme.com`).
pub(crate) fn domain_of(website: &str) -> Option<String> {
    let s = website.trim().to_ascii_lowercase();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(&s);
    let host = s.split(['/', '?', '#', ':']).next().unwrap_or("");
    let host = host.strip_prefix("www.").unwrap_or(host);
    (!host.is_empty() && host.contains('.')).then(|| host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_task_decodes_by_subtype_with_its_completion_time_and_lead() {
        let task = row(json!({
            "attributes": {"type": "Task"},
            "Id": "00T5e00000AbCdEEAV", "WhoId": "00Q5e00000AbCdEEAV", "OwnerId": "0055e000009KlMnAAK",
            "Status": "Completed", "IsClosed": true, "TaskSubtype": "Email", "CallType": null,
            "ActivityDate": "2026-01-05", "CompletedDateTime": "2026-01-05T09:15:27.000+0000",
            "CreatedDate": "2026-01-05T09:00:00.000+0000", "SystemModstamp": "2026-01-05T09:15:27.000+0000"
        }));
        let a = activity(SObject::Task, task).unwrap();
        assert_eq!(a.kind, ActivityKind::Email);
        assert_eq!(a.at.to_rfc3339(), "2026-01-05T09:15:27+00:00");
        assert!(a.done);
        assert_eq!(a.people[0].object, ObjectKind::Lead);
        // An open task with only a due date sits at that date's midnight UTC.
        let open = row(json!({
            "Id": "00T5e00000AbCdFEAV", "Status": "Not Started", "IsClosed": false,
            "ActivityDate": "2026-02-01", "SystemModstamp": "2026-01-05T09:15:27.000+0000"
        }));
        let a = activity(SObject::Task, open).unwrap();
        assert_eq!(a.kind, ActivityKind::Task);
        assert!(!a.done);
        assert_eq!(a.at.to_rfc3339(), "2026-02-01T00:00:00+00:00");
        assert!(a.people.is_empty());
    }

    fn row(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_converted_lead_links_to_its_converted_account_and_is_marked_converted() {
        let lead = person(
            SObject::Lead,
            row(json!({"attributes":{"type":"Lead"},"Id":"00Q5e00000AbCdE","OwnerId":"00G5e000001XyZq",
                "Company":"Acme GmbH","IsConverted":true,"ConvertedAccountId":"0015e00000QrStUAAV",
                "SystemModstamp":"2025-03-04T09:15:27.000+0000","Email":null})),
        )
        .unwrap();
        assert_eq!(lead.object, ObjectKind::Lead);
        assert_eq!(lead.id.as_str().len(), 18);
        assert!(lead.converted);
        assert_eq!(lead.owner_id.unwrap().as_str().len(), 18);
        assert_eq!(
            lead.accounts.unwrap(),
            vec![AccountLink {
                account_id: RecordId::new("0015e00000QrStUAAV"),
                primary: true
            }]
        );
        assert_eq!(lead.email, None);
        assert_eq!(
            lead.fields.get("Company").map(String::as_str),
            Some("Acme GmbH")
        );
        assert!(lead.raw.get("attributes").is_some());
    }

    #[test]
    fn an_unconverted_lead_has_no_account_links_but_says_so() {
        let lead = person(
            SObject::Lead,
            row(
                json!({"Id":"00Q5e00000AbCdEEAV","IsConverted":false,"ConvertedAccountId":null,
                "SystemModstamp":"2025-03-04T09:15:27.000+0000"}),
            ),
        )
        .unwrap();
        assert_eq!(lead.accounts, Some(vec![]));
        assert!(!lead.converted);
    }

    #[test]
    fn a_contact_links_to_its_account_as_primary() {
        let contact = person(
            SObject::Contact,
            row(json!({"Id":"0035e00000AbCdEAAV","AccountId":"0015e00000QrStUAAV","MailingCountry":"DE",
                "SystemModstamp":"2025-03-04T09:15:27.000+0000"})),
        )
        .unwrap();
        assert_eq!(contact.object, ObjectKind::Contact);
        assert_eq!(contact.country.as_deref(), Some("DE"));
        assert!(contact.accounts.unwrap()[0].primary);
    }

    #[test]
    fn users_keep_inactive_state_manager_and_time_zone() {
        let owner = user(row(
            json!({"Id":"0055e000009KlMnAAK","Name":"Ada","IsActive":false,
            "ManagerId":"0055e000009KlMoAAK","TimeZoneSidKey":"Asia/Calcutta",
            "SystemModstamp":"2025-03-04T09:15:27.000+0000"}),
        ))
        .unwrap();
        assert_eq!(owner.kind, OwnerKind::User);
        assert!(!owner.active);
        assert_eq!(owner.time_zone.as_deref(), Some("Asia/Kolkata"));
        assert_eq!(owner.manager_id.unwrap().as_str(), "0055e000009KlMoAAK");
    }

    #[test]
    fn queues_are_active_queue_owners() {
        let owner = queue(row(
            json!({"Id":"00G5e000001XyZqEAK","Name":"EMEA Inbound","Type":"Queue",
            "SystemModstamp":"2025-03-04T09:15:27.000+0000"}),
        ))
        .unwrap();
        assert_eq!(owner.kind, OwnerKind::Queue);
        assert!(owner.active);
    }

    #[test]
    fn accounts_get_a_domain_from_their_website_and_tolerate_double_employee_counts() {
        let acct = account(row(
            json!({"Id":"0015e00000QrStUAAV","Website":"https://www.Acme.com/about",
            "NumberOfEmployees":250.0,"ParentId":"0015e00000QrStV",
            "SystemModstamp":"2025-03-04T09:15:27.000+0000"}),
        ))
        .unwrap();
        assert_eq!(acct.domain.as_deref(), Some("acme.com"));
        assert_eq!(acct.employees, Some(250));
        assert_eq!(acct.parent_id.unwrap().as_str().len(), 18);
    }

    #[test]
    fn a_row_without_a_stamp_is_refused_with_its_id() {
        let err = account(row(json!({"Id":"0015e00000QrStUAAV"}))).unwrap_err();
        assert!(err.to_string().contains("0015e00000QrStUAAV"));
    }
}
