//! Property definitions of the simulated portal (what `GET /crm/v3/properties`
//! would say): names, types, read-only flags and enumeration options, used to
//! validate writes the way HubSpot does and to type search comparisons.

use serde::{Deserialize, Serialize};

/// The two object types the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectType {
    /// `contacts`, object type id `0-1`.
    Contacts,
    /// `companies`, object type id `0-2`.
    Companies,
}

impl ObjectType {
    /// Parses a path segment: the plural name or the type id.
    pub(crate) fn from_path(segment: &str) -> Option<ObjectType> {
        match segment {
            "contacts" | "contact" | "0-1" => Some(ObjectType::Contacts),
            "companies" | "company" | "0-2" => Some(ObjectType::Companies),
            _ => None,
        }
    }

    /// The plural path name.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contacts",
            ObjectType::Companies => "companies",
        }
    }

    /// Singular name used in messages and webhook subscription types.
    pub(crate) fn singular(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contact",
            ObjectType::Companies => "company",
        }
    }

    /// HubSpot's object type id.
    pub(crate) fn type_id(self) -> &'static str {
        match self {
            ObjectType::Contacts => "0-1",
            ObjectType::Companies => "0-2",
        }
    }

    /// The last-modified property: `lastmodifieddate` on contacts but
    /// `hs_lastmodifieddate` on companies (trap 6).
    pub fn last_modified_property(self) -> &'static str {
        match self {
            ObjectType::Contacts => "lastmodifieddate",
            ObjectType::Companies => "hs_lastmodifieddate",
        }
    }

    /// Properties returned when a read names none.
    pub(crate) fn default_properties(self) -> &'static [&'static str] {
        match self {
            ObjectType::Contacts => &["firstname", "lastname", "email"],
            ObjectType::Companies => &["name", "domain"],
        }
    }

    /// Fields the free-text `query` of a search looks at.
    pub(crate) fn searchable(self) -> &'static [&'static str] {
        match self {
            ObjectType::Contacts => &["firstname", "lastname", "email", "phone", "company"],
            ObjectType::Companies => &["name", "domain", "website", "phone"],
        }
    }

    /// The other object type of the contact/company pair.
    pub(crate) fn other(self) -> ObjectType {
        match self {
            ObjectType::Contacts => ObjectType::Companies,
            ObjectType::Companies => ObjectType::Contacts,
        }
    }
}

/// How a property's values are validated and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PropertyType {
    Text,
    Email,
    Number,
    DateTime,
    /// Enumeration with a fixed option list.
    Enumeration(&'static [&'static str]),
    /// `hubspot_owner_id`: options are the portal's active owners.
    Owner,
    /// `hubspot_team_id`: options are the portal's teams.
    Team,
}

/// One property definition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PropertyDef {
    pub(crate) name: &'static str,
    pub(crate) kind: PropertyType,
    pub(crate) read_only: bool,
}

const fn rw(name: &'static str, kind: PropertyType) -> PropertyDef {
    PropertyDef {
        name,
        kind,
        read_only: false,
    }
}

const fn ro(name: &'static str, kind: PropertyType) -> PropertyDef {
    PropertyDef {
        name,
        kind,
        read_only: true,
    }
}

pub(crate) const LIFECYCLE_STAGES: &[&str] = &[
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
];

pub(crate) const LEAD_STATUSES: &[&str] = &[
    "NEW",
    "OPEN",
    "IN_PROGRESS",
    "OPEN_DEAL",
    "UNQUALIFIED",
    "ATTEMPTED_TO_CONTACT",
    "CONNECTED",
    "BAD_TIMING",
];

pub(crate) const COMPANY_TYPES: &[&str] = &["PROSPECT", "PARTNER", "RESELLER", "VENDOR", "OTHER"];

pub(crate) const INDUSTRIES: &[&str] = &[
    "COMPUTER_SOFTWARE",
    "INFORMATION_TECHNOLOGY_AND_SERVICES",
    "FINANCIAL_SERVICES",
    "HOSPITAL_HEALTH_CARE",
    "RETAIL",
    "MACHINERY",
    "AUTOMOTIVE",
    "TELECOMMUNICATIONS",
    "LOGISTICS_AND_SUPPLY_CHAIN",
    "MARKETING_AND_ADVERTISING",
    "EDUCATION_MANAGEMENT",
    "FOOD_BEVERAGES",
    "CONSTRUCTION",
    "PHARMACEUTICALS",
];

const COMMON: &[PropertyDef] = &[
    ro("hs_object_id", PropertyType::Number),
    ro("createdate", PropertyType::DateTime),
    rw("hubspot_owner_id", PropertyType::Owner),
    rw("hubspot_team_id", PropertyType::Team),
    ro("hubspot_owner_assigneddate", PropertyType::DateTime),
    ro("hs_all_owner_ids", PropertyType::Text),
    ro("hs_all_team_ids", PropertyType::Text),
    ro("hs_merged_object_ids", PropertyType::Text),
    rw(
        "lifecyclestage",
        PropertyType::Enumeration(LIFECYCLE_STAGES),
    ),
    rw("country", PropertyType::Text),
    rw("state", PropertyType::Text),
    rw("city", PropertyType::Text),
    rw("phone", PropertyType::Text),
    rw("website", PropertyType::Text),
    rw("zip", PropertyType::Text),
    rw("address", PropertyType::Text),
];

const CONTACT: &[PropertyDef] = &[
    ro("lastmodifieddate", PropertyType::DateTime),
    rw("email", PropertyType::Email),
    rw("firstname", PropertyType::Text),
    rw("lastname", PropertyType::Text),
    rw("company", PropertyType::Text),
    rw("jobtitle", PropertyType::Text),
    rw("hs_lead_status", PropertyType::Enumeration(LEAD_STATUSES)),
    ro("associatedcompanyid", PropertyType::Number),
    ro("hs_email_domain", PropertyType::Text),
    ro("hs_additional_emails", PropertyType::Text),
    ro("hs_calculated_merged_vids", PropertyType::Text),
    rw("mobilephone", PropertyType::Text),
    // Rollups of logged activities (engagements.rs): calculated, read-only.
    ro("notes_last_contacted", PropertyType::DateTime),
    ro("notes_last_updated", PropertyType::DateTime),
    ro("num_contacted_notes", PropertyType::Number),
    ro("hs_last_sales_activity_timestamp", PropertyType::DateTime),
    ro("hs_last_sales_activity_type", PropertyType::Text),
];

const COMPANY: &[PropertyDef] = &[
    ro("hs_lastmodifieddate", PropertyType::DateTime),
    rw("name", PropertyType::Text),
    rw("domain", PropertyType::Text),
    rw("industry", PropertyType::Enumeration(INDUSTRIES)),
    rw("numberofemployees", PropertyType::Number),
    rw("annualrevenue", PropertyType::Number),
    ro("hs_parent_company_id", PropertyType::Number),
    ro("num_associated_contacts", PropertyType::Number),
    rw("type", PropertyType::Enumeration(COMPANY_TYPES)),
    rw("hs_additional_domains", PropertyType::Text),
    rw("description", PropertyType::Text),
];

/// Every definition of `object`: its own, then the common ones.
pub(crate) fn properties(object: ObjectType) -> impl Iterator<Item = PropertyDef> {
    let own = match object {
        ObjectType::Contacts => CONTACT,
        ObjectType::Companies => COMPANY,
    };
    own.iter().chain(COMMON.iter()).copied()
}

/// Looks a property up; `None` means HubSpot would answer `PROPERTY_DOESNT_EXIST`.
pub(crate) fn property(object: ObjectType, name: &str) -> Option<PropertyDef> {
    let own = match object {
        ObjectType::Contacts => CONTACT,
        ObjectType::Companies => COMPANY,
    };
    own.iter()
        .chain(COMMON.iter())
        .find(|def| def.name == name)
        .copied()
}
