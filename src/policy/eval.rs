//! Pure evaluation of conditions and territories against one record and its account.
//!
//! No ledger, no clock: this is the part of a decision that depends only on the record,
//! so `policy test`, `explain` and the reconciler all see the same answers.

use std::borrow::Cow;

use serde::Serialize;

use super::model::*;
use crate::domain::{AccountRecord, PersonRecord};
use crate::matcher::country::{CountryCode, code_str, country_code};
use crate::reconcile::matching::MatchStatus;

/// What conditions look at: a person, the account it matched (if any), the match status.
/// Built by [`Subject::new`], which reads the country values as ISO codes once.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub person: &'a PersonRecord,
    pub account: Option<&'a AccountRecord>,
    pub match_status: MatchStatus,
    /// The record's `country` as an ISO code, when recognisable.
    record_country: Option<CountryCode>,
    /// The account's `country` as an ISO code, when recognisable.
    account_country: Option<CountryCode>,
}

/// One condition as evaluated: what it tested, the value it saw, the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConditionTrace {
    pub condition: String,
    pub saw: Option<String>,
    pub holds: bool,
}

fn email_domain(email: &str) -> &str {
    email.rsplit_once('@').map_or("", |(_, d)| d)
}

impl<'a> Subject<'a> {
    pub fn new(
        person: &'a PersonRecord,
        account: Option<&'a AccountRecord>,
        match_status: MatchStatus,
    ) -> Self {
        Subject {
            person,
            account,
            match_status,
            record_country: person.country.as_deref().and_then(country_code),
            account_country: account
                .and_then(|a| a.country.as_deref())
                .and_then(country_code),
        }
    }

    /// The value of a field, or `None` when it is absent or empty.
    pub fn value(&self, field: &FieldRef) -> Option<Cow<'a, str>> {
        let s: Option<Cow<'a, str>> = match field {
            FieldRef::Record(f) => {
                let p = self.person;
                match f.as_str() {
                    "id" => Some(Cow::Borrowed(p.id.as_str())),
                    "object" => Some(Cow::Borrowed(p.object.as_str())),
                    "email" => p.email.as_deref().map(Cow::Borrowed),
                    "email_domain" => p.email.as_deref().map(|e| Cow::Borrowed(email_domain(e))),
                    "first_name" => p.first_name.as_deref().map(Cow::Borrowed),
                    "last_name" => p.last_name.as_deref().map(Cow::Borrowed),
                    "company" => p.company.as_deref().map(Cow::Borrowed),
                    "website" => p.website.as_deref().map(Cow::Borrowed),
                    "country" => p.country.as_deref().map(Cow::Borrowed),
                    "state" => p.state.as_deref().map(Cow::Borrowed),
                    "owner" => p.owner_id.as_ref().map(|o| Cow::Borrowed(o.as_str())),
                    other => p.fields.get(other).map(|v| Cow::Borrowed(v.as_str())),
                }
            }
            FieldRef::Account(f) => {
                let a = self.account?;
                match f.as_str() {
                    "id" => Some(Cow::Borrowed(a.id.as_str())),
                    "name" => a.name.as_deref().map(Cow::Borrowed),
                    "domain" => a.domain.as_deref().map(Cow::Borrowed),
                    "website" => a.website.as_deref().map(Cow::Borrowed),
                    "country" => a.country.as_deref().map(Cow::Borrowed),
                    "state" => a.state.as_deref().map(Cow::Borrowed),
                    "employees" => a.employees.map(|e| Cow::Owned(e.to_string())),
                    "industry" => a.industry.as_deref().map(Cow::Borrowed),
                    "owner" => a.owner_id.as_ref().map(|o| Cow::Borrowed(o.as_str())),
                    "parent" => a.parent_id.as_ref().map(|o| Cow::Borrowed(o.as_str())),
                    other => a.fields.get(other).map(|v| Cow::Borrowed(v.as_str())),
                }
            }
        };
        s.filter(|v| !v.trim().is_empty())
    }

    /// Country for territory purposes: the account's when matched, else the record's.
    fn country(&self) -> Option<&'a str> {
        self.account
            .and_then(|a| a.country.as_deref())
            .or(self.person.country.as_deref())
            .filter(|c| !c.trim().is_empty())
    }

    /// [`Subject::country`] as an ISO code, when recognisable.
    fn country_code(&self) -> Option<CountryCode> {
        match self.account.and_then(|a| a.country.as_deref()) {
            Some(_) => self.account_country,
            None => self.record_country,
        }
    }

    /// The ISO code of a country field's value (`country`, `account.country`).
    fn field_country_code(&self, field: &FieldRef) -> Option<CountryCode> {
        match field {
            FieldRef::Record(_) => self.record_country,
            FieldRef::Account(_) => self.account_country,
        }
    }

    fn state(&self) -> Option<&'a str> {
        self.account
            .and_then(|a| a.state.as_deref())
            .or(self.person.state.as_deref())
            .filter(|c| !c.trim().is_empty())
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Whether a country value equals one written in the policy: as ISO codes when both
/// are recognisable countries, else as text (case-insensitive). `value` is trimmed.
fn same_country(
    written: &str,
    written_code: Option<CountryCode>,
    value: &str,
    code: Option<CountryCode>,
) -> bool {
    match (written_code, code) {
        (Some(a), Some(b)) => a == b,
        _ => value.eq_ignore_ascii_case(written),
    }
}

/// `codes`: the policy values as ISO codes (aligned with them) when the field is a
/// country, else empty; `code`: the record's value as an ISO code.
fn op_holds(
    op: &Op,
    value: Option<&str>,
    codes: &[Option<CountryCode>],
    code: Option<CountryCode>,
) -> bool {
    let value = value.map(str::trim);
    if !codes.is_empty() {
        match op {
            Op::Equals(v) => {
                return value
                    .is_some_and(|s| same_country(v, codes.first().copied().flatten(), s, code));
            }
            Op::In(vs) => {
                return value.is_some_and(|s| {
                    vs.iter()
                        .zip(codes)
                        .any(|(v, c)| same_country(v, *c, s, code))
                });
            }
            _ => {}
        }
    }
    match op {
        Op::Exists(want) => value.is_some() == *want,
        Op::Equals(v) => value.is_some_and(|s| s.eq_ignore_ascii_case(v)),
        Op::In(vs) => value.is_some_and(|s| vs.iter().any(|v| s.eq_ignore_ascii_case(v))),
        Op::Prefix(ps) => value.is_some_and(|s| ps.iter().any(|p| starts_with_ignore_case(s, p))),
        Op::Range(r) => value
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(|v| r.contains(v)),
    }
}

impl Territory {
    /// Whether the subject is in this territory: every criterion given must hold.
    pub fn contains(&self, s: &Subject<'_>) -> bool {
        let in_list = |list: &[String], v: Option<&str>| {
            list.is_empty()
                || v.is_some_and(|v| list.iter().any(|c| c.eq_ignore_ascii_case(v.trim())))
        };
        let in_countries = self.countries.is_empty()
            || s.country().is_some_and(|v| {
                let (v, code) = (v.trim(), s.country_code());
                self.countries
                    .iter()
                    .zip(&self.country_codes)
                    .any(|(c, cc)| same_country(c, *cc, v, code))
            });
        in_countries
            && in_list(&self.states, s.state())
            && self.employees.is_none_or(|r| {
                s.account
                    .and_then(|a| a.employees)
                    .is_some_and(|e| r.contains(e as f64))
            })
            && self.conditions.iter().all(|c| holds_plain(c, s))
    }

    /// What the territory looked at, for explain.
    pub fn describe_seen(&self, s: &Subject<'_>) -> String {
        let mut parts = Vec::new();
        if !self.countries.is_empty() {
            let seen = s.country().unwrap_or("∅");
            match s.country_code() {
                // Say which country a name was read as: `country=Germany (DE)`.
                Some(code) if !seen.trim().eq_ignore_ascii_case(code_str(&code)) => {
                    parts.push(format!("country={seen} ({})", code_str(&code)));
                }
                _ => parts.push(format!("country={seen}")),
            }
        }
        if !self.states.is_empty() {
            parts.push(format!("state={}", s.state().unwrap_or("∅")));
        }
        if self.employees.is_some() {
            parts.push(format!(
                "account.employees={}",
                s.account
                    .and_then(|a| a.employees)
                    .map_or("∅".to_owned(), |e| e.to_string())
            ));
        }
        parts.join(" ")
    }
}

/// A condition that does not refer to territories (used inside territories).
fn holds_plain(c: &Condition, s: &Subject<'_>) -> bool {
    match c {
        Condition::Field {
            field,
            op,
            negate,
            country_codes,
        } => {
            let code = if country_codes.is_empty() {
                None
            } else {
                s.field_country_code(field)
            };
            op_holds(op, s.value(field).as_deref(), country_codes, code) != *negate
        }
        Condition::Match { statuses, negate } => statuses.contains(&s.match_status) != *negate,
        Condition::Territory { negate, .. } => *negate,
    }
}

impl Policy {
    /// Names of the territories the subject is in, in policy order.
    pub fn territories_of<'p>(&'p self, s: &Subject<'_>) -> Vec<&'p str> {
        self.territories
            .iter()
            .filter(|t| t.contains(s))
            .map(|t| t.name.as_str())
            .collect()
    }

    /// Whether a condition holds for the subject.
    pub fn holds(&self, c: &Condition, s: &Subject<'_>) -> bool {
        match c {
            Condition::Territory { name, negate } => {
                self.territory(name).is_some_and(|t| t.contains(s)) != *negate
            }
            other => holds_plain(other, s),
        }
    }

    /// A condition with the value it saw, for explain.
    pub fn trace(&self, c: &Condition, s: &Subject<'_>) -> ConditionTrace {
        let saw = match c {
            Condition::Field { field, .. } => s.value(field).map(Cow::into_owned),
            Condition::Match { .. } => Some(match_status_str(s.match_status).to_owned()),
            Condition::Territory { name, .. } => self.territory(name).map(|t| t.describe_seen(s)),
        };
        ConditionTrace {
            condition: c.describe(),
            saw,
            holds: self.holds(c, s),
        }
    }

    /// Whether a rule explicitly accepts ambiguous matches (only such rules see them).
    pub fn rule_accepts_ambiguous(rule: &Rule) -> bool {
        rule.conditions.iter().any(|c| {
            matches!(c, Condition::Match { statuses, negate: false } if statuses.contains(&MatchStatus::Ambiguous))
        })
    }
}
