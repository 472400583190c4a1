//! `OrgId`: the configured name of one CRM org (a HubSpot portal, a Salesforce org),
//! the key of every row the store keeps for it. No I/O.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use leadroute_crm::CrmKind;

/// The longest org name: it goes into lease names, metric labels and URL paths.
pub const ORG_NAME_MAX: usize = 63;

/// A configured org name such as `acme-hubspot`: one lowercase ASCII letter or digit,
/// then up to 62 more of letters, digits, `-` and `_`. Cheap to clone.
///
/// A store written before orgs existed keyed its rows by CRM kind; the single `[crm]`
/// config form names its org after that kind (`hubspot`, `salesforce`), so those rows
/// are the default org's rows without any rewrite.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgId(Arc<str>);

/// Why a string is not an org name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{name:?} is not an org name: {problem}; use 1 to 63 lowercase letters, digits, '-' or \
     '_', starting with a letter or digit (e.g. \"acme-hubspot\")"
)]
pub struct OrgIdError {
    pub name: String,
    pub problem: &'static str,
}

impl OrgId {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, OrgIdError> {
        let problem = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > ORG_NAME_MAX {
            Some("it is longer than 63 characters")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            Some("it has a character other than a-z, 0-9, '-' and '_'")
        } else if !name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            Some("it does not start with a letter or digit")
        } else {
            None
        };
        match problem {
            Some(problem) => Err(OrgIdError {
                name: name.to_owned(),
                problem,
            }),
            None => Ok(OrgId(Arc::from(name))),
        }
    }

    /// The org of the single `[crm]` form (and of every store written before orgs):
    /// named after its CRM kind.
    pub fn default_for(kind: CrmKind) -> Self {
        OrgId(Arc::from(kind.as_str()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for OrgId {
    type Err = OrgIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrgId::new(s)
    }
}

impl AsRef<str> for OrgId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// One configured org as commands see it: its name and CRM kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRef {
    pub name: OrgId,
    pub kind: CrmKind,
}

impl OrgRef {
    /// The default org of a CRM kind (the single `[crm]` form, the demo).
    pub fn default_for(kind: CrmKind) -> Self {
        OrgRef {
            name: OrgId::default_for(kind),
            kind,
        }
    }
}

/// Resolves the first segment of a record reference (`north:contact:1` or the older
/// `hubspot:contact:1`) to a configured org: an org of that name, else the only org of
/// that CRM kind. The error lists the orgs so the fix is one copy away.
pub fn resolve_org(segment: &str, orgs: &[OrgRef]) -> Result<OrgId, String> {
    if let Some(org) = orgs.iter().find(|o| o.name.as_str() == segment) {
        return Ok(org.name.clone());
    }
    let names = || {
        orgs.iter()
            .map(|o| format!("{} ({})", o.name, o.kind))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Ok(kind) = segment.parse::<CrmKind>() {
        let of_kind: Vec<&OrgRef> = orgs.iter().filter(|o| o.kind == kind).collect();
        return match of_kind.as_slice() {
            [only] => Ok(only.name.clone()),
            [] => Err(format!(
                "no configured org is a {kind} org; the orgs are: {}",
                names()
            )),
            _ => Err(format!(
                "{segment:?} is ambiguous: several {kind} orgs are configured; write the org \
                 name instead of the CRM kind, one of: {}",
                names()
            )),
        };
    }
    Err(format!(
        "no org is named {segment:?}; the orgs are: {}",
        names()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_names_are_validated_with_a_fix() {
        assert_eq!(
            OrgId::new("acme-hubspot_2").unwrap().as_str(),
            "acme-hubspot_2"
        );
        assert!(OrgId::new("0north").is_ok());
        for bad in ["", "North", "-north", "_x", "a b", "é", &"a".repeat(64)] {
            let err = OrgId::new(bad).unwrap_err().to_string();
            assert!(err.contains("e.g. \"acme-hubspot\""), "{err}");
        }
        assert!(OrgId::new(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn a_crm_kind_resolves_to_the_only_org_of_that_kind() {
        let org = |n: &str, kind| OrgRef {
            name: OrgId::new(n).unwrap(),
            kind,
        };
        let orgs = [
            org("north", CrmKind::Hubspot),
            org("south", CrmKind::Hubspot),
            org("emea", CrmKind::Salesforce),
        ];
        assert_eq!(resolve_org("north", &orgs).unwrap().as_str(), "north");
        assert_eq!(resolve_org("salesforce", &orgs).unwrap().as_str(), "emea");
        let err = resolve_org("hubspot", &orgs).unwrap_err();
        assert!(
            err.contains("ambiguous") && err.contains("north (hubspot), south (hubspot)"),
            "{err}"
        );
        let err = resolve_org("west", &orgs).unwrap_err();
        assert!(
            err.contains("no org is named \"west\"") && err.contains("emea"),
            "{err}"
        );
    }
}
