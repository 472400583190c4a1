//! The simulated org's schema: object types, their fields (name, type, writability,
//! references) and the field value type. Describe, SOQL and writes all read from here,
//! so a field exists for one exactly when it exists for all.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value as Json;

/// Objects the simulator stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ObjType {
    Lead,
    Contact,
    Account,
    User,
    Group,
    QueueSobject,
    GroupMember,
    /// Activities (`writes::log_activity` bumps the `WhoId`'s `LastActivityDate`).
    Task,
    Event,
}

impl ObjType {
    pub(crate) const ALL: [ObjType; 9] = [
        ObjType::Lead,
        ObjType::Contact,
        ObjType::Account,
        ObjType::User,
        ObjType::Group,
        ObjType::QueueSobject,
        ObjType::GroupMember,
        ObjType::Task,
        ObjType::Event,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            ObjType::Lead => "Lead",
            ObjType::Contact => "Contact",
            ObjType::Account => "Account",
            ObjType::User => "User",
            ObjType::Group => "Group",
            ObjType::QueueSobject => "QueueSobject",
            ObjType::GroupMember => "GroupMember",
            ObjType::Task => "Task",
            ObjType::Event => "Event",
        }
    }

    /// Object names are case-insensitive in SOQL and URLs.
    pub(crate) fn parse(name: &str) -> Option<ObjType> {
        Self::ALL
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(name))
    }

    pub(crate) fn key_prefix(self) -> &'static str {
        match self {
            ObjType::Lead => "00Q",
            ObjType::Contact => "003",
            ObjType::Account => "001",
            ObjType::User => "005",
            ObjType::Group => "00G",
            ObjType::QueueSobject => "03g",
            ObjType::GroupMember => "011",
            ObjType::Task => "00T",
            ObjType::Event => "00U",
        }
    }

    pub(crate) fn from_prefix(prefix: &str) -> Option<ObjType> {
        Self::ALL.into_iter().find(|o| o.key_prefix() == prefix)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Objects a REST client may update (the others are setup objects here).
    pub(crate) fn updateable(self) -> bool {
        matches!(
            self,
            ObjType::Lead | ObjType::Contact | ObjType::Account | ObjType::Task | ObjType::Event
        )
    }

    /// Objects that go to the recycle bin and show up in queryAll/getDeleted.
    pub(crate) fn soft_deletes(self) -> bool {
        matches!(
            self,
            ObjType::Lead | ObjType::Contact | ObjType::Account | ObjType::Task | ObjType::Event
        )
    }

    pub(crate) fn fields(self) -> &'static [FieldDef] {
        match self {
            ObjType::Lead => LEAD,
            ObjType::Contact => CONTACT,
            ObjType::Account => ACCOUNT,
            ObjType::User => USER,
            ObjType::Group => GROUP,
            ObjType::QueueSobject => QUEUE_SOBJECT,
            ObjType::GroupMember => GROUP_MEMBER,
            ObjType::Task => TASK,
            ObjType::Event => EVENT,
        }
    }

    /// Index of a field by case-insensitive name.
    pub(crate) fn field_index(self, name: &str) -> Option<usize> {
        self.fields()
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Index of a field the code itself names; panics on a typo, which tests catch.
    pub(crate) fn idx(self, name: &str) -> usize {
        self.field_index(name)
            .unwrap_or_else(|| panic!("schema invariant: {} has no field {name}", self.name()))
    }

    /// The relationship field (`Owner`, `Account`, `Parent`, ...) and its lookup.
    pub(crate) fn relationship(self, name: &str) -> Option<(usize, &'static FieldDef)> {
        self.fields()
            .iter()
            .enumerate()
            .find(|(_, f)| f.relationship.is_some_and(|r| r.eq_ignore_ascii_case(name)))
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            ObjType::QueueSobject => "Queue Sobject",
            ObjType::GroupMember => "Group Member",
            other => other.name(),
        }
    }
}

/// Field data types, named as describe names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldType {
    Id,
    Reference,
    String,
    Email,
    Url,
    Picklist,
    Boolean,
    Int,
    Currency,
    DateTime,
    Date,
}

impl FieldType {
    pub(crate) fn describe_name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::Reference => "reference",
            FieldType::String => "string",
            FieldType::Email => "email",
            FieldType::Url => "url",
            FieldType::Picklist => "picklist",
            FieldType::Boolean => "boolean",
            FieldType::Int => "int",
            FieldType::Currency => "currency",
            FieldType::DateTime => "datetime",
            FieldType::Date => "date",
        }
    }

    pub(crate) fn soap_type(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "tns:ID",
            FieldType::Boolean => "xsd:boolean",
            FieldType::Int => "xsd:int",
            FieldType::Currency => "xsd:double",
            FieldType::DateTime => "xsd:dateTime",
            FieldType::Date => "xsd:date",
            _ => "xsd:string",
        }
    }

    pub(crate) fn is_textual(self) -> bool {
        matches!(
            self,
            FieldType::Id
                | FieldType::Reference
                | FieldType::String
                | FieldType::Email
                | FieldType::Url
                | FieldType::Picklist
        )
    }
}

/// One field of an object.
#[derive(Debug)]
pub(crate) struct FieldDef {
    pub(crate) name: &'static str,
    pub(crate) label: &'static str,
    pub(crate) ty: FieldType,
    /// Writable by an API update.
    pub(crate) updateable: bool,
    pub(crate) nillable: bool,
    pub(crate) length: u32,
    /// Objects a reference may point at (polymorphic when more than one).
    pub(crate) reference_to: &'static [ObjType],
    /// Name of the parent relationship (`Owner` for `OwnerId`).
    pub(crate) relationship: Option<&'static str>,
}

const fn f(name: &'static str, label: &'static str, ty: FieldType) -> FieldDef {
    FieldDef {
        name,
        label,
        ty,
        updateable: false,
        nillable: true,
        length: 0,
        reference_to: &[],
        relationship: None,
    }
}

/// A writable field.
const fn w(name: &'static str, label: &'static str, ty: FieldType, length: u32) -> FieldDef {
    FieldDef {
        name,
        label,
        ty,
        updateable: true,
        nillable: true,
        length,
        reference_to: &[],
        relationship: None,
    }
}

/// A read-only, never-null field (Id, system stamps, IsDeleted).
const fn sys(name: &'static str, label: &'static str, ty: FieldType) -> FieldDef {
    FieldDef {
        name,
        label,
        ty,
        updateable: false,
        nillable: false,
        length: if matches!(ty, FieldType::Id) { 18 } else { 0 },
        reference_to: &[],
        relationship: None,
    }
}

const fn r(
    name: &'static str,
    label: &'static str,
    updateable: bool,
    to: &'static [ObjType],
    rel: &'static str,
) -> FieldDef {
    FieldDef {
        name,
        label,
        ty: FieldType::Reference,
        updateable,
        nillable: true,
        length: 18,
        reference_to: to,
        relationship: Some(rel),
    }
}

use FieldType as T;
use ObjType as O;

const OWNER_USER_OR_QUEUE: &[ObjType] = &[O::Group, O::User];

static LEAD: &[FieldDef] = &[
    sys("Id", "Lead ID", T::Id),
    sys("IsDeleted", "Deleted", T::Boolean),
    r(
        "MasterRecordId",
        "Master Record ID",
        false,
        &[O::Lead],
        "MasterRecord",
    ),
    w("FirstName", "First Name", T::String, 40),
    FieldDef {
        nillable: false,
        ..w("LastName", "Last Name", T::String, 80)
    },
    f("Name", "Full Name", T::String),
    FieldDef {
        nillable: false,
        ..w("Company", "Company", T::String, 255)
    },
    w("Email", "Email", T::Email, 80),
    w("Website", "Website", T::Url, 255),
    w("Country", "Country", T::String, 80),
    w("State", "State/Province", T::String, 80),
    FieldDef {
        nillable: false,
        ..w("Status", "Status", T::Picklist, 255)
    },
    w("LeadSource", "Lead Source", T::Picklist, 255),
    FieldDef {
        nillable: false,
        ..r("OwnerId", "Owner ID", true, OWNER_USER_OR_QUEUE, "Owner")
    },
    sys("IsConverted", "Converted", T::Boolean),
    r(
        "ConvertedAccountId",
        "Converted Account ID",
        false,
        &[O::Account],
        "ConvertedAccount",
    ),
    r(
        "ConvertedContactId",
        "Converted Contact ID",
        false,
        &[O::Contact],
        "ConvertedContact",
    ),
    f("ConvertedDate", "Converted Date", T::Date),
    w("Routing_Locked__c", "Routing Locked", T::Boolean, 0),
    f("LastActivityDate", "Last Activity", T::Date),
    sys("CreatedDate", "Created Date", T::DateTime),
    sys("LastModifiedDate", "Last Modified Date", T::DateTime),
    sys("SystemModstamp", "System Modstamp", T::DateTime),
];

static CONTACT: &[FieldDef] = &[
    sys("Id", "Contact ID", T::Id),
    sys("IsDeleted", "Deleted", T::Boolean),
    r(
        "MasterRecordId",
        "Master Record ID",
        false,
        &[O::Contact],
        "MasterRecord",
    ),
    r("AccountId", "Account ID", true, &[O::Account], "Account"),
    w("FirstName", "First Name", T::String, 40),
    FieldDef {
        nillable: false,
        ..w("LastName", "Last Name", T::String, 80)
    },
    f("Name", "Full Name", T::String),
    w("Email", "Email", T::Email, 80),
    w("MailingCountry", "Mailing Country", T::String, 80),
    FieldDef {
        nillable: false,
        ..r("OwnerId", "Owner ID", true, &[O::User], "Owner")
    },
    f("LastActivityDate", "Last Activity", T::Date),
    sys("CreatedDate", "Created Date", T::DateTime),
    sys("LastModifiedDate", "Last Modified Date", T::DateTime),
    sys("SystemModstamp", "System Modstamp", T::DateTime),
];

/// A lead or contact an activity is about (polymorphic `WhoId`).
const WHO: &[ObjType] = &[O::Contact, O::Lead];

static TASK: &[FieldDef] = &[
    sys("Id", "Activity ID", T::Id),
    sys("IsDeleted", "Deleted", T::Boolean),
    r("WhoId", "Name ID", true, WHO, "Who"),
    r("WhatId", "Related To ID", true, &[O::Account], "What"),
    w("Subject", "Subject", T::String, 255),
    w("Description", "Description", T::String, 32_000),
    FieldDef {
        nillable: false,
        ..w("Status", "Status", T::Picklist, 255)
    },
    FieldDef {
        nillable: false,
        ..w("Priority", "Priority", T::Picklist, 255)
    },
    sys("IsClosed", "Closed", T::Boolean),
    w("TaskSubtype", "Task Subtype", T::Picklist, 255),
    w("CallType", "Call Type", T::Picklist, 255),
    w("CallDurationInSeconds", "Call Duration", T::Int, 0),
    w("ActivityDate", "Due Date Only", T::Date, 0),
    f("CompletedDateTime", "Completed Date/Time", T::DateTime),
    FieldDef {
        nillable: false,
        ..r("OwnerId", "Assigned To ID", true, &[O::User], "Owner")
    },
    sys("CreatedDate", "Created Date", T::DateTime),
    sys("LastModifiedDate", "Last Modified Date", T::DateTime),
    sys("SystemModstamp", "System Modstamp", T::DateTime),
];

static EVENT: &[FieldDef] = &[
    sys("Id", "Activity ID", T::Id),
    sys("IsDeleted", "Deleted", T::Boolean),
    r("WhoId", "Name ID", true, WHO, "Who"),
    r("WhatId", "Related To ID", true, &[O::Account], "What"),
    w("Subject", "Subject", T::String, 255),
    w("Description", "Description", T::String, 32_000),
    FieldDef {
        nillable: false,
        ..w("StartDateTime", "Start Date Time", T::DateTime, 0)
    },
    w("EndDateTime", "End Date Time", T::DateTime, 0),
    w("DurationInMinutes", "Duration", T::Int, 0),
    f("ActivityDate", "Due Date Only", T::Date),
    FieldDef {
        nillable: false,
        ..r("OwnerId", "Assigned To ID", true, &[O::User], "Owner")
    },
    sys("CreatedDate", "Created Date", T::DateTime),
    sys("LastModifiedDate", "Last Modified Date", T::DateTime),
    sys("SystemModstamp", "System Modstamp", T::DateTime),
];

static ACCOUNT: &[FieldDef] = &[
    sys("Id", "Account ID", T::Id),
    sys("IsDeleted", "Deleted", T::Boolean),
    r(
        "MasterRecordId",
        "Master Record ID",
        false,
        &[O::Account],
        "MasterRecord",
    ),
    FieldDef {
        nillable: false,
        ..w("Name", "Account Name", T::String, 255)
    },
    w("Type", "Account Type", T::Picklist, 255),
    r(
        "ParentId",
        "Parent Account ID",
        true,
        &[O::Account],
        "Parent",
    ),
    w("Website", "Website", T::Url, 255),
    w("BillingCountry", "Billing Country", T::String, 80),
    w("BillingState", "Billing State/Province", T::String, 80),
    w("Industry", "Industry", T::Picklist, 255),
    w("NumberOfEmployees", "Employees", T::Int, 0),
    w("AnnualRevenue", "Annual Revenue", T::Currency, 0),
    FieldDef {
        nillable: false,
        ..r("OwnerId", "Owner ID", true, &[O::User], "Owner")
    },
    sys("CreatedDate", "Created Date", T::DateTime),
    sys("LastModifiedDate", "Last Modified Date", T::DateTime),
    sys("SystemModstamp", "System Modstamp", T::DateTime),
];

static USER: &[FieldDef] = &[
    sys("Id", "User ID", T::Id),
    FieldDef {
        nillable: false,
        ..f("Username", "Username", T::String)
    },
    f("FirstName", "First Name", T::String),
    f("LastName", "Last Name", T::String),
    f("Name", "Full Name", T::String),
    f("Email", "Email", T::Email),
    sys("IsActive", "Active", T::Boolean),
    f("UserType", "User Type", T::Picklist),
    f("TimeZoneSidKey", "Time Zone", T::Picklist),
    f("Country", "Country", T::String),
    r("ManagerId", "Manager ID", false, &[O::User], "Manager"),
    f("UserRoleId", "Role ID", T::Reference),
    f("ProfileId", "Profile ID", T::Reference),
    sys("CreatedDate", "Created Date", T::DateTime),
    sys("LastModifiedDate", "Last Modified Date", T::DateTime),
    sys("SystemModstamp", "System Modstamp", T::DateTime),
];

static GROUP: &[FieldDef] = &[
    sys("Id", "Group ID", T::Id),
    f("Name", "Name", T::String),
    f("DeveloperName", "Developer Name", T::String),
    f("Type", "Type", T::Picklist),
    f("Email", "Email", T::Email),
    r("OwnerId", "Owner ID", false, &[O::User], "Owner"),
    sys("CreatedDate", "Created Date", T::DateTime),
    sys("LastModifiedDate", "Last Modified Date", T::DateTime),
    sys("SystemModstamp", "System Modstamp", T::DateTime),
];

static QUEUE_SOBJECT: &[FieldDef] = &[
    sys("Id", "Queue Sobject ID", T::Id),
    r("QueueId", "Group ID", false, &[O::Group], "Queue"),
    f("SobjectType", "Sobject Type", T::Picklist),
    sys("SystemModstamp", "System Modstamp", T::DateTime),
];

static GROUP_MEMBER: &[FieldDef] = &[
    sys("Id", "Group Member ID", T::Id),
    r("GroupId", "Group ID", false, &[O::Group], "Group"),
    r(
        "UserOrGroupId",
        "User/Group ID",
        false,
        &[O::User, O::Group],
        "UserOrGroup",
    ),
    sys("SystemModstamp", "System Modstamp", T::DateTime),
];

/// A field value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Null,
    Str(Box<str>),
    Bool(bool),
    Int(i64),
    Double(f64),
    /// Seconds since the epoch (Salesforce stamps have one-second precision).
    DateTime(i64),
    Date(NaiveDate),
}

impl Val {
    pub(crate) fn str(s: impl Into<Box<str>>) -> Val {
        Val::Str(s.into())
    }

    pub(crate) fn opt_str(s: Option<impl Into<Box<str>>>) -> Val {
        s.map_or(Val::Null, |s| Val::Str(s.into()))
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_bool(&self) -> bool {
        matches!(self, Val::Bool(true))
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// JSON as the REST API renders it.
    pub(crate) fn to_json(&self) -> Json {
        match self {
            Val::Null => Json::Null,
            Val::Str(s) => Json::String(s.to_string()),
            Val::Bool(b) => Json::Bool(*b),
            Val::Int(i) => Json::from(*i),
            Val::Double(d) => serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number),
            Val::DateTime(secs) => Json::String(format_datetime(*secs)),
            Val::Date(d) => Json::String(d.format("%Y-%m-%d").to_string()),
        }
    }

    /// Text as CSV and SOAP render it (`None` for null).
    pub(crate) fn to_text(&self) -> Option<String> {
        match self {
            Val::Null => None,
            Val::Str(s) => Some(s.to_string()),
            Val::Bool(b) => Some(b.to_string()),
            Val::Int(i) => Some(i.to_string()),
            Val::Double(d) => Some(d.to_string()),
            Val::DateTime(secs) => Some(format_datetime(*secs)),
            Val::Date(d) => Some(d.format("%Y-%m-%d").to_string()),
        }
    }
}

/// `2025-03-04T09:15:27.000+0000`: the REST datetime format (no colon in the offset,
/// milliseconds always zero).
pub(crate) fn format_datetime(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S.000+0000")
        .to_string()
}

/// Parses the datetime forms Salesforce accepts on input: `Z`, `+hh:mm`, `+hhmm`, with
/// or without fractional seconds. Returns epoch seconds (fraction truncated).
pub(crate) fn parse_datetime(text: &str) -> Option<i64> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.timestamp());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(dt) = DateTime::parse_from_str(text, format) {
            return Some(dt.timestamp());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_starts_with_id_and_has_a_stamp() {
        for obj in ObjType::ALL {
            assert_eq!(obj.fields()[0].name, "Id");
            assert!(obj.field_index("systemmodstamp").is_some(), "{obj:?}");
        }
    }

    #[test]
    fn datetimes_render_without_a_colon_in_the_offset() {
        let secs = parse_datetime("2025-03-04T09:15:27Z").expect("valid");
        assert_eq!(format_datetime(secs), "2025-03-04T09:15:27.000+0000");
        assert_eq!(parse_datetime("2025-03-04T10:15:27+01:00"), Some(secs));
        assert_eq!(parse_datetime("2025-03-04T09:15:27.000+0000"), Some(secs));
    }
}
