//! `policy test`: fixture files of records with the owner and rule each should get.
//!
//! A fixture file is TOML: `now` (the injected clock), optional `[[owners]]` (by default
//! every rep in the policy, active), `[[accounts]]`, and `[[cases]]`, each with a
//! `record` and an `expect` (`owner` as rep name or owner id, `rule`, `exception`).
//! Every case is decided alone against an empty ledger, so cases do not affect each other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::ledger::Ledger;
use super::matching::Matcher;
use super::route::{Engine, Outcome};
use crate::domain::{
    AccountLink, AccountRecord, ObjectKind, OwnerId, OwnerKind, OwnerRecord, PersonRecord,
    RecordId, Snapshot,
};
use crate::policy::Policy;

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot read fixtures {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}:{line}:{column}: {message}; fix the fixture file (see config/policies/*.fixtures.toml)"
    )]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureFile {
    /// Policy file, relative to the fixture file (the CLI may override it).
    pub policy: Option<String>,
    pub now: DateTime<Utc>,
    #[serde(default)]
    pub owners: Vec<FixtureOwner>,
    #[serde(default)]
    pub accounts: Vec<FixtureAccount>,
    pub cases: Vec<FixtureCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureOwner {
    pub id: String,
    pub name: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub queue: bool,
    pub time_zone: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureAccount {
    pub id: String,
    pub name: Option<String>,
    pub domain: Option<String>,
    pub website: Option<String>,
    pub country: Option<String>,
    pub state: Option<String>,
    pub employees: Option<i64>,
    pub industry: Option<String>,
    pub owner: Option<String>,
    pub parent: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureCase {
    pub name: String,
    pub record: FixtureRecord,
    pub expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureRecord {
    #[serde(default = "contact")]
    pub object: ObjectKind,
    pub id: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub website: Option<String>,
    pub country: Option<String>,
    pub state: Option<String>,
    pub owner: Option<String>,
    pub owner_assigned_at: Option<DateTime<Utc>>,
    /// Primary account link.
    pub account: Option<String>,
    #[serde(default)]
    pub converted: bool,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

fn contact() -> ObjectKind {
    ObjectKind::Contact
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Rep name or CRM owner id.
    pub owner: Option<String>,
    pub rule: Option<String>,
    pub exception: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    pub record: String,
    pub failures: Vec<String>,
    /// The explain trace, rendered.
    pub trace: String,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

pub fn read(path: &Path) -> Result<FixtureFile, FixtureError> {
    let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| {
            let before = &text[..s.start.min(text.len())];
            (
                before.matches('\n').count() + 1,
                before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
            )
        });
        FixtureError::Parse {
            path: path.to_owned(),
            line,
            column,
            message: e.message().trim().to_owned(),
        }
    })
}

impl FixtureFile {
    /// The policy path named in the file, resolved next to the fixture file.
    pub fn policy_path(&self, fixture_path: &Path) -> Option<PathBuf> {
        self.policy
            .as_ref()
            .map(|p| fixture_path.parent().unwrap_or(Path::new(".")).join(p))
    }

    fn snapshot(&self, policy: &Policy) -> Snapshot {
        let mut owners: BTreeMap<String, OwnerRecord> = policy
            .reps
            .values()
            .map(|r| {
                (
                    r.owner.to_string(),
                    owner_record(
                        &r.owner.0,
                        r.display_name.clone().unwrap_or_else(|| r.name.clone()),
                        true,
                        false,
                        None,
                    ),
                )
            })
            .collect();
        for o in &self.owners {
            owners.insert(
                o.id.clone(),
                owner_record(
                    &o.id,
                    o.name.clone().unwrap_or_else(|| o.id.clone()),
                    o.active,
                    o.queue,
                    o.time_zone.clone(),
                ),
            );
        }
        Snapshot {
            crm: None,
            owners: owners.into_values().collect(),
            accounts: self.accounts.iter().map(account_record).collect(),
            people: Vec::new(),
        }
    }
}

fn owner_record(
    id: &str,
    name: String,
    active: bool,
    queue: bool,
    tz: Option<String>,
) -> OwnerRecord {
    OwnerRecord {
        id: OwnerId::new(id),
        kind: if queue {
            OwnerKind::Queue
        } else {
            OwnerKind::User
        },
        email: None,
        name,
        active,
        teams: Vec::new(),
        time_zone: tz,
        manager_id: None,
        user_id: None,
        updated_at: None,
    }
}

fn account_record(a: &FixtureAccount) -> AccountRecord {
    AccountRecord {
        id: RecordId::new(&a.id),
        name: a.name.clone(),
        domain: a.domain.clone(),
        website: a.website.clone(),
        extra_domains: Vec::new(),
        country: a.country.clone(),
        state: a.state.clone(),
        parent_id: a.parent.as_deref().map(RecordId::new),
        owner_id: a.owner.as_deref().map(OwnerId::new),
        employees: a.employees,
        industry: a.industry.clone(),
        created_at: None,
        updated_at: DateTime::<Utc>::UNIX_EPOCH,
        fields: a.fields.clone(),
        raw: serde_json::Value::Null,
    }
}

fn person_record(r: &FixtureRecord, index: usize, now: DateTime<Utc>) -> PersonRecord {
    PersonRecord {
        id: RecordId::new(
            r.id.clone()
                .unwrap_or_else(|| format!("case-{}", index + 1)),
        ),
        object: r.object,
        email: r.email.clone(),
        first_name: r.first_name.clone(),
        last_name: r.last_name.clone(),
        company: r.company.clone(),
        website: r.website.clone(),
        country: r.country.clone(),
        state: r.state.clone(),
        owner_id: r.owner.as_deref().map(OwnerId::new),
        accounts: Some(
            r.account
                .iter()
                .map(|a| AccountLink {
                    account_id: RecordId::new(a),
                    primary: true,
                })
                .collect(),
        ),
        owner_assigned_at: r.owner_assigned_at,
        converted: r.converted,
        created_at: None,
        updated_at: now,
        fields: r.fields.clone(),
        raw: serde_json::Value::Null,
    }
}

/// Run every case against the policy.
pub fn run(file: &FixtureFile, policy: &Policy) -> Vec<CaseResult> {
    let base = file.snapshot(policy);
    let mut results = Vec::new();
    for (i, case) in file.cases.iter().enumerate() {
        let mut snapshot = base.clone();
        snapshot
            .people
            .push(person_record(&case.record, i, file.now));
        let matcher = Matcher::new(
            &snapshot.accounts,
            &snapshot.owners,
            &policy.settings.matcher_config(),
        );
        let person = &snapshot.people[0];
        let m = matcher.match_person(person);
        let mut ledger = Ledger::default();
        let mut engine = Engine::new(policy, &snapshot, file.now);
        let d = engine.decide(person, &m, &mut ledger, true);
        engine.finish(&mut ledger);
        let record = format!("{}:{}", person.object, person.id);
        let mut failures = Vec::new();
        if let Some(want) = &case.expect.owner {
            let want_id = policy
                .reps
                .get(want)
                .map_or_else(|| OwnerId::new(want), |r| r.owner.clone());
            match d.desired() {
                Some(got) if *got == want_id => {}
                Some(got) => failures.push(format!(
                    "owner: expected {}, got {}",
                    policy.owner_label(&want_id),
                    policy.owner_label(got)
                )),
                None => failures.push(format!(
                    "owner: expected {}, got no owner ({})",
                    policy.owner_label(&want_id),
                    d.reason
                )),
            }
        }
        if let Some(want) = &case.expect.rule
            && &d.rule != want
        {
            failures.push(format!("rule: expected {want:?}, got {:?}", d.rule));
        }
        match (&case.expect.exception, &d.outcome) {
            (Some(want), Outcome::Exception { exception }) if exception == want => {}
            (Some(want), Outcome::Exception { exception }) => {
                failures.push(format!("exception: expected {want:?}, got {exception:?}"))
            }
            (Some(want), _) => failures.push(format!("exception: expected {want:?}, got none")),
            (None, Outcome::Exception { exception }) if case.expect.owner.is_some() => {
                failures.push(format!("unexpected exception {exception:?}: {}", d.reason))
            }
            _ => {}
        }
        if case.expect.owner.is_none()
            && case.expect.rule.is_none()
            && case.expect.exception.is_none()
        {
            failures.push(
                "the case expects nothing; give expect.owner, expect.rule or expect.exception"
                    .into(),
            );
        }
        results.push(CaseResult {
            name: case.name.clone(),
            trace: super::explain::render(&record, &d, policy),
            record,
            failures,
        });
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_fixture_file_passes_against_its_policy() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/policies");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).expect("config/policies exists") {
            let path = entry.expect("dir entry").path();
            if !path.to_string_lossy().ends_with(".fixtures.toml") {
                continue;
            }
            files += 1;
            let file = read(&path).unwrap();
            let policy_path = file
                .policy_path(&path)
                .expect("example fixtures name their policy");
            let policy = crate::policy::load(&policy_path).unwrap();
            for r in run(&file, &policy) {
                assert!(
                    r.passed(),
                    "{}: {}\n{:?}\n{}",
                    path.display(),
                    r.name,
                    r.failures,
                    r.trace
                );
            }
        }
        assert!(files >= 2);
    }
}
