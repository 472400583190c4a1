//! Wire records → contract records (`PersonRecord`, `AccountRecord`, `OwnerRecord`).
//!
//! Also owns the property lists the connector asks for, so what is read and what is
//! mapped cannot drift apart. The raw JSON travels along in `raw`; every property not
//! mapped to a named field lands in `fields` for policy conditions.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use leadroute_crm::{
    AccountLink, AccountRecord, Change, ObjectKind, OwnerId, OwnerKind, OwnerRecord, PersonRecord,
    Record, RecordId, Team,
};
use serde_json::Value;

use crate::wire::{EmbeddedAssociations, ObjectWire, OwnerWire};

/// Contact properties read on every list/search/batch read.
pub(crate) const CONTACT_PROPERTIES: &[&str] = &[
    "email",
    "firstname",
    "lastname",
    "company",
    "website",
    "country",
    "state",
    "city",
    "jobtitle",
    "phone",
    "lifecyclestage",
    "hs_lead_status",
    // First-touch stamps for SLA timers (issue 12); absent properties are left out.
    "hs_last_sales_activity_timestamp",
    "notes_last_contacted",
    "hubspot_owner_id",
    "hubspot_owner_assigneddate",
    "hubspot_team_id",
    "associatedcompanyid",
    "hs_merged_object_ids",
    "createdate",
    "lastmodifieddate",
    "hs_object_id",
];

/// Company properties read on every list/search/batch read.
pub(crate) const COMPANY_PROPERTIES: &[&str] = &[
    "name",
    "domain",
    "website",
    "hs_additional_domains",
    "country",
    "state",
    "city",
    "hs_parent_company_id",
    "numberofemployees",
    "industry",
    "type",
    "lifecyclestage",
    "hubspot_owner_id",
    "hubspot_owner_assigneddate",
    "hubspot_team_id",
    "hs_merged_object_ids",
    "createdate",
    "hs_lastmodifieddate",
    "hs_object_id",
];

/// The HubSpot path segment and last-modified property of a mirrored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ObjectType {
    pub kind: ObjectKind,
    pub path: &'static str,
    pub modified_property: &'static str,
    pub properties: &'static [&'static str],
}

pub(crate) const CONTACTS: ObjectType = ObjectType {
    kind: ObjectKind::Contact,
    path: "contacts",
    modified_property: "lastmodifieddate",
    properties: CONTACT_PROPERTIES,
};

pub(crate) const COMPANIES: ObjectType = ObjectType {
    kind: ObjectKind::Account,
    path: "companies",
    modified_property: "hs_lastmodifieddate",
    properties: COMPANY_PROPERTIES,
};

/// Embedded association type strings (v3 naming) meaning "primary company" (type 1).
const PRIMARY_EMBEDDED_TYPES: &[&str] = &["contact_to_company"];

/// Association type id of "Contact with Primary Company".
pub(crate) const PRIMARY_CONTACT_TO_COMPANY: i64 = 1;

/// Parses an ISO-8601 timestamp or epoch milliseconds (HubSpot mixes both, Trap 5).
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(ms) = text.parse::<i64>() {
        return Utc.timestamp_millis_opt(ms).single();
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    // Date-only properties (`YYYY-MM-DD`) read as midnight UTC.
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc())
}

/// A record's modification stamp: the last-modified property first (it is what search
/// filters on), then `updatedAt`.
pub(crate) fn modified_at(object: &ObjectWire, object_type: ObjectType) -> Option<DateTime<Utc>> {
    object
        .prop(object_type.modified_property)
        .and_then(parse_time)
        .or_else(|| object.updated_at.as_deref().and_then(parse_time))
}

/// Why a wire record could not become a contract record.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum MapError {
    #[error("record without an id")]
    MissingId,
    #[error("record {0} carries no modification time (lastmodifieddate/updatedAt)")]
    MissingModified(String),
}

/// A parsed record with its raw JSON.
pub(crate) struct Parsed {
    pub wire: ObjectWire,
    pub raw: Value,
}

pub(crate) fn parse_object(raw: Value) -> Parsed {
    // Tolerant: a body that is not an object parses to an empty record (no id), which
    // the callers report as a protocol problem for that record only.
    let wire = serde_json::from_value::<ObjectWire>(raw.clone()).unwrap_or_default();
    Parsed { wire, raw }
}

fn split_list(value: Option<&str>) -> Vec<String> {
    value
        .map(|v| {
            v.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Ids a merge survivor absorbed (`hs_merged_object_ids`, `;`-separated).
pub(crate) fn merged_ids(object: &ObjectWire) -> Vec<String> {
    let own = object.id.as_deref();
    split_list(object.prop("hs_merged_object_ids"))
        .into_iter()
        .filter(|id| Some(id.as_str()) != own)
        .collect()
}

fn extra_fields(object: &ObjectWire, mapped: &[&str]) -> BTreeMap<String, String> {
    object
        .properties
        .iter()
        .filter(|(k, _)| !mapped.contains(&k.as_str()))
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
        .collect()
}

const CONTACT_MAPPED: &[&str] = &[
    "email",
    "firstname",
    "lastname",
    "company",
    "website",
    "country",
    "state",
    "hubspot_owner_id",
    "hubspot_owner_assigneddate",
    "createdate",
    "lastmodifieddate",
    "hs_object_id",
];

const COMPANY_MAPPED: &[&str] = &[
    "name",
    "domain",
    "website",
    "hs_additional_domains",
    "country",
    "state",
    "hs_parent_company_id",
    "hubspot_owner_id",
    "numberofemployees",
    "industry",
    "createdate",
    "hs_lastmodifieddate",
    "hs_object_id",
];

fn owned(v: Option<&str>) -> Option<String> {
    v.map(str::to_owned)
}

/// Maps a contact. `accounts` is what the caller learnt about its company links
/// (`None`: not read on this page).
pub(crate) fn person(
    parsed: Parsed,
    accounts: Option<Vec<AccountLink>>,
) -> Result<PersonRecord, MapError> {
    let o = &parsed.wire;
    let id = o.id.clone().ok_or(MapError::MissingId)?;
    let updated_at =
        modified_at(o, CONTACTS).ok_or_else(|| MapError::MissingModified(id.clone()))?;
    Ok(PersonRecord {
        id: RecordId(id),
        object: ObjectKind::Contact,
        email: o.prop("email").map(|e| e.to_ascii_lowercase()),
        first_name: owned(o.prop("firstname")),
        last_name: owned(o.prop("lastname")),
        company: owned(o.prop("company")),
        website: owned(o.prop("website")),
        country: owned(o.prop("country")),
        state: owned(o.prop("state")),
        owner_id: o.prop("hubspot_owner_id").map(OwnerId::new),
        accounts,
        owner_assigned_at: o.prop("hubspot_owner_assigneddate").and_then(parse_time),
        converted: false,
        created_at: o
            .prop("createdate")
            .and_then(parse_time)
            .or_else(|| o.created_at.as_deref().and_then(parse_time)),
        updated_at,
        fields: extra_fields(o, CONTACT_MAPPED),
        raw: parsed.raw,
    })
}

/// Maps a company.
pub(crate) fn account(parsed: Parsed) -> Result<AccountRecord, MapError> {
    let o = &parsed.wire;
    let id = o.id.clone().ok_or(MapError::MissingId)?;
    let updated_at =
        modified_at(o, COMPANIES).ok_or_else(|| MapError::MissingModified(id.clone()))?;
    Ok(AccountRecord {
        id: RecordId(id),
        name: owned(o.prop("name")),
        domain: o.prop("domain").map(|d| d.to_ascii_lowercase()),
        website: owned(o.prop("website")),
        extra_domains: split_list(o.prop("hs_additional_domains"))
            .into_iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
        country: owned(o.prop("country")),
        state: owned(o.prop("state")),
        parent_id: o.prop("hs_parent_company_id").map(RecordId::new),
        owner_id: o.prop("hubspot_owner_id").map(OwnerId::new),
        employees: o
            .prop("numberofemployees")
            .and_then(|n| n.parse::<f64>().ok())
            .map(|n| n as i64),
        industry: owned(o.prop("industry")),
        created_at: o
            .prop("createdate")
            .and_then(parse_time)
            .or_else(|| o.created_at.as_deref().and_then(parse_time)),
        updated_at,
        fields: extra_fields(o, COMPANY_MAPPED),
        raw: parsed.raw,
    })
}

/// Maps an owner; `archived_pass` is true when it came from `archived=true`.
pub(crate) fn owner(raw: Value, archived_pass: bool) -> Result<OwnerRecord, MapError> {
    let o: OwnerWire = serde_json::from_value(raw).unwrap_or_default();
    let id = o.id.clone().ok_or(MapError::MissingId)?;
    let name = [o.first_name.as_deref(), o.last_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let name = if name.is_empty() {
        o.email.clone().unwrap_or_else(|| id.clone())
    } else {
        name
    };
    Ok(OwnerRecord {
        id: OwnerId(id),
        kind: if o.kind.as_deref() == Some("QUEUE") {
            OwnerKind::Queue
        } else {
            OwnerKind::User
        },
        email: o.email.as_ref().map(|e| e.to_ascii_lowercase()),
        name,
        active: !(archived_pass || o.archived == Some(true)),
        teams: o
            .teams
            .iter()
            .filter_map(|t| {
                Some(Team {
                    id: t.id.clone()?,
                    name: t.name.clone().unwrap_or_default(),
                    primary: t.primary.unwrap_or(false),
                })
            })
            .collect(),
        // HubSpot's owners API does not expose a time zone or a manager.
        time_zone: None,
        manager_id: None,
        user_id: o.user_id.or(o.user_id_including_inactive),
        updated_at: o.updated_at.as_deref().and_then(parse_time),
    })
}

/// Account links from embedded (`associations=companies`) data. `None` when the embedded
/// list is truncated (the caller then reads v4 for that record).
pub(crate) fn embedded_links(object: &ObjectWire) -> Option<Vec<AccountLink>> {
    let Some(companies) = object.associations.get("companies") else {
        // HubSpot omits the key when a record has no associations of that type.
        return Some(Vec::new());
    };
    links_from_embedded(companies, object.prop("associatedcompanyid"))
}

fn links_from_embedded(
    companies: &EmbeddedAssociations,
    associated_company: Option<&str>,
) -> Option<Vec<AccountLink>> {
    if companies.paging.as_ref().is_some_and(|p| p.next.is_some()) {
        return None;
    }
    let mut links: BTreeMap<String, bool> = BTreeMap::new();
    for a in &companies.results {
        let Some(id) = a.id.clone() else { continue };
        let primary = a
            .kind
            .as_deref()
            .is_some_and(|k| PRIMARY_EMBEDDED_TYPES.contains(&k));
        *links.entry(id).or_default() |= primary;
    }
    // `associatedcompanyid` mirrors the primary company (reference §7); use it to confirm
    // primacy where the embedded type names are ambiguous.
    if let Some(primary_id) = associated_company
        && let Some(flag) = links.get_mut(primary_id)
    {
        *flag = true;
    }
    Some(
        links
            .into_iter()
            .map(|(id, primary)| AccountLink {
                account_id: RecordId(id),
                primary,
            })
            .collect(),
    )
}

/// Emits `Merged` for each absorbed id, then the survivor's upsert.
pub(crate) fn with_merges(
    object_kind: ObjectKind,
    absorbed: Vec<String>,
    record: Record,
) -> Vec<Change> {
    let winner = RecordId::new(record.id());
    let mut changes: Vec<Change> = absorbed
        .into_iter()
        .map(|loser| Change::Merged {
            object: object_kind,
            loser: RecordId(loser),
            winner: winner.clone(),
            at: None,
        })
        .collect();
    changes.push(Change::Upsert(record));
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_parse_from_iso_and_epoch_milliseconds() {
        let iso = parse_time("2026-03-02T10:15:30.120Z").unwrap();
        let ms = parse_time("1772446530120").unwrap();
        assert_eq!(iso, ms);
        assert_eq!(
            parse_time("2026-03-02").unwrap().to_rfc3339(),
            "2026-03-02T00:00:00+00:00"
        );
        assert_eq!(parse_time(""), None);
    }

    #[test]
    fn contact_maps_fields_and_keeps_the_raw_payload() {
        let raw = json!({"id":"512","properties":{"email":"Ana@Acme.io","firstname":"Ana",
            "hubspot_owner_id":"41","lastmodifieddate":"2026-03-02T10:15:30.120Z",
            "lifecyclestage":"lead","company":null},"createdAt":"2026-03-01T08:00:00.000Z"});
        let p = person(parse_object(raw.clone()), None).unwrap();
        assert_eq!(p.id.as_str(), "512");
        assert_eq!(p.email.as_deref(), Some("ana@acme.io"));
        assert_eq!(p.owner_id, Some(OwnerId::new("41")));
        assert_eq!(p.company, None);
        assert_eq!(
            p.fields.get("lifecyclestage").map(String::as_str),
            Some("lead")
        );
        assert_eq!(p.created_at, parse_time("2026-03-01T08:00:00.000Z"));
        assert_eq!(p.raw, raw);
    }

    #[test]
    fn company_splits_additional_domains_and_reads_parent_and_size() {
        let raw = json!({"id":"9","properties":{"domain":"Acme.io",
            "hs_additional_domains":"acme.com; acme.de","hs_parent_company_id":"7",
            "numberofemployees":"250","hs_lastmodifieddate":"1772446530120"}});
        let a = account(parse_object(raw)).unwrap();
        assert_eq!(a.domain.as_deref(), Some("acme.io"));
        assert_eq!(a.extra_domains, vec!["acme.com", "acme.de"]);
        assert_eq!(a.parent_id, Some(RecordId::new("7")));
        assert_eq!(a.employees, Some(250));
    }

    #[test]
    fn a_record_without_a_modification_time_is_refused_not_guessed() {
        let raw = json!({"id":"9","properties":{}});
        assert_eq!(
            account(parse_object(raw)).unwrap_err(),
            MapError::MissingModified("9".into())
        );
    }

    #[test]
    fn owners_from_the_archived_pass_are_inactive() {
        let raw = json!({"id":"41","userIdIncludingInactive":9586504,"firstName":"Ria",
            "lastName":"Patel","type":"PERSON","teams":[{"id":"1","name":"West","primary":true}]});
        let active = owner(raw.clone(), false).unwrap();
        let archived = owner(raw, true).unwrap();
        assert!(active.active);
        assert!(!archived.active);
        assert_eq!(active.name, "Ria Patel");
        assert_eq!(active.user_id.as_deref(), Some("9586504"));
        assert!(active.teams[0].primary);
    }

    #[test]
    fn embedded_associations_collapse_duplicate_types_and_flag_the_primary() {
        let raw = json!({"id":"101","properties":{"associatedcompanyid":"9001"},
            "associations":{"companies":{"results":[
                {"id":"9001","type":"contact_to_company"},
                {"id":"9001","type":"contact_to_company_unlabeled"},
                {"id":"9002","type":"contact_to_company_unlabeled"}]}}});
        let links = embedded_links(&parse_object(raw).wire).unwrap();
        assert_eq!(links.len(), 2);
        assert!(
            links
                .iter()
                .any(|l| l.account_id.as_str() == "9001" && l.primary)
        );
        assert!(
            links
                .iter()
                .any(|l| l.account_id.as_str() == "9002" && !l.primary)
        );
    }

    #[test]
    fn truncated_embedded_associations_ask_for_a_v4_read() {
        let raw = json!({"id":"101","associations":{"companies":{"results":[
            {"id":"9001","type":"contact_to_company"}],"paging":{"next":{"after":"x"}}}}});
        assert_eq!(embedded_links(&parse_object(raw).wire), None);
    }

    #[test]
    fn merged_ids_exclude_the_survivor_itself() {
        let raw = json!({"id":"777","properties":{"hs_merged_object_ids":"512;513;777"}});
        assert_eq!(merged_ids(&parse_object(raw).wire), vec!["512", "513"]);
    }
}
