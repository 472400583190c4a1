//! The matcher as the reconciler sees it.
//!
//! TEMPORARY STAND-IN: the real matcher (`src/matcher/`, branch `matcher`) is built
//! concurrently. Until it is merged this file provides the same API (INTERFACES.md
//! "Matcher") with a deliberately small behaviour: the primary account link is honoured,
//! then an exact email/website domain match (`www.` stripped, a short free-mail list
//! ignored); several accounts on one domain are ambiguous. No fuzzy name matching.
//! When `matcher` lands this file becomes `pub use crate::matcher::*;`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::domain::{AccountRecord, OwnerRecord, PersonRecord, RecordId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TieBreaker {
    PreferParent,
    PreferChild,
    CountryMatch,
    ActiveOwner,
    Largest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatcherConfig {
    pub tie_breakers: Vec<TieBreaker>,
    pub name_threshold: f64,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        MatcherConfig {
            tie_breakers: Vec::new(),
            name_threshold: 0.9,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchStatus {
    Matched,
    Unmatched,
    Ambiguous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchVia {
    EmailDomain,
    Website,
    Name,
    Association,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub account_id: RecordId,
    pub score: f64,
    pub via: MatchVia,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchResult {
    pub status: MatchStatus,
    pub account_id: Option<RecordId>,
    pub confidence: f64,
    pub candidates: Vec<Candidate>,
    pub reason: String,
}

/// Domain index over all accounts.
#[derive(Debug, Default)]
pub struct Matcher {
    by_domain: HashMap<String, Vec<RecordId>>,
    ids: std::collections::HashSet<RecordId>,
}

const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "aol.com",
    "icloud.com",
    "gmx.de",
    "web.de",
    "mail.ru",
    "yandex.ru",
    "qq.com",
    "163.com",
    "protonmail.com",
    "proton.me",
];

fn host(raw: &str) -> Option<String> {
    let s = raw.trim().to_ascii_lowercase();
    let s = s.split_once("://").map_or(s.as_str(), |(_, r)| r);
    let s = s.split(['/', '?', '#', ':']).next().unwrap_or("");
    let s = s.strip_prefix("www.").unwrap_or(s);
    (!s.is_empty()).then(|| s.to_owned())
}

impl Matcher {
    pub fn new(
        accounts: &[AccountRecord],
        _owners: &[OwnerRecord],
        _config: &MatcherConfig,
    ) -> Matcher {
        let mut m = Matcher::default();
        for a in accounts {
            m.ids.insert(a.id.clone());
            let mut domains: Vec<String> = a
                .domain
                .iter()
                .chain(a.website.iter())
                .chain(a.extra_domains.iter())
                .filter_map(|d| host(d))
                .collect();
            domains.sort();
            domains.dedup();
            for d in domains {
                m.by_domain.entry(d).or_default().push(a.id.clone());
            }
        }
        for ids in m.by_domain.values_mut() {
            ids.sort();
        }
        m
    }

    pub fn match_person(&self, person: &PersonRecord) -> MatchResult {
        if let Some(link) = person
            .accounts
            .iter()
            .flatten()
            .find(|l| l.primary && self.ids.contains(&l.account_id))
        {
            return MatchResult {
                status: MatchStatus::Matched,
                account_id: Some(link.account_id.clone()),
                confidence: 1.0,
                candidates: vec![Candidate {
                    account_id: link.account_id.clone(),
                    score: 1.0,
                    via: MatchVia::Association,
                    note: "primary account link".into(),
                }],
                reason: "primary account link in the CRM".into(),
            };
        }
        let email_domain = person
            .email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .and_then(|(_, d)| host(d))
            .filter(|d| !FREE_MAIL.contains(&d.as_str()));
        let (domain, via) = match (email_domain, person.website.as_deref().and_then(host)) {
            (Some(d), _) => (d, MatchVia::EmailDomain),
            (None, Some(w)) => (w, MatchVia::Website),
            (None, None) => {
                return MatchResult {
                    status: MatchStatus::Unmatched,
                    account_id: None,
                    confidence: 0.0,
                    candidates: Vec::new(),
                    reason: "no business email domain or website".into(),
                };
            }
        };
        let ids = self
            .by_domain
            .get(&domain)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let candidates: Vec<Candidate> = ids
            .iter()
            .map(|id| Candidate {
                account_id: id.clone(),
                score: 0.95,
                via,
                note: format!("domain {domain}"),
            })
            .collect();
        match ids {
            [] => MatchResult {
                status: MatchStatus::Unmatched,
                account_id: None,
                confidence: 0.0,
                candidates,
                reason: format!("no account has domain {domain}"),
            },
            [one] => MatchResult {
                status: MatchStatus::Matched,
                account_id: Some(one.clone()),
                confidence: 0.95,
                candidates,
                reason: format!("domain {domain}"),
            },
            many => MatchResult {
                status: MatchStatus::Ambiguous,
                account_id: None,
                confidence: 0.0,
                candidates,
                reason: format!("{} accounts share domain {domain}", many.len()),
            },
        }
    }
}
