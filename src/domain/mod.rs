//! Domain types shared by every core module. No I/O.
//!
//! The CRM-neutral records come from the contract crate (`leadroute-crm`), so the core
//! and the connectors speak one vocabulary; this module adds what only the core needs.

pub use leadroute_crm::{
    AccountLink, AccountRecord, CrmKind, ObjectKind, OwnerId, OwnerKind, OwnerRecord, PersonRecord,
    RecordId, Team,
};

mod org;

pub use org::{ORG_NAME_MAX, OrgId, OrgIdError, OrgRef, resolve_org};

use std::fmt;
use std::str::FromStr;

/// A fully qualified record reference: `north:contact:123`, `emea:lead:00Q…`. The first
/// segment is an org name; a store's default org is named after its CRM kind, so
/// `hubspot:contact:123` keeps its meaning (see [`resolve_org`] for a kind that names
/// no org).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordRef {
    pub org: OrgId,
    pub object: ObjectKind,
    pub id: RecordId,
}

impl fmt::Display for RecordRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.org, self.object, self.id)
    }
}

impl FromStr for RecordRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(3, ':');
        let (Some(org), Some(object), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "{s:?} is not a record reference; write <org>:<object>:<id>, e.g. hubspot:contact:123"
            ));
        };
        if id.is_empty() {
            return Err(format!(
                "{s:?} has an empty id; write e.g. hubspot:contact:123"
            ));
        }
        Ok(RecordRef {
            org: org.parse().map_err(|e: OrgIdError| e.to_string())?,
            object: object.parse()?,
            id: RecordId::new(id),
        })
    }
}

/// Everything the reconciler reads from the mirror, loaded in one go.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub crm: Option<CrmKind>,
    pub owners: Vec<OwnerRecord>,
    pub accounts: Vec<AccountRecord>,
    /// Contacts and leads that are live (not deleted, not merged away).
    pub people: Vec<PersonRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_refs_round_trip_and_reject_garbage() {
        let r: RecordRef = "hubspot:contact:123".parse().unwrap();
        assert_eq!(r.to_string(), "hubspot:contact:123");
        assert!("hubspot:contact".parse::<RecordRef>().is_err());
        assert!("Zoho:contact:1".parse::<RecordRef>().is_err());
        let r: RecordRef = "acme-north:lead:00Q1".parse().unwrap();
        assert_eq!(r.org.as_str(), "acme-north");
        assert!("hubspot:widget:1".parse::<RecordRef>().is_err());
    }
}
