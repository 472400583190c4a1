//! Contact/lead → account matching. Pure and deterministic: no I/O, no clock, no
//! randomness; the same accounts, owners, config and person always give the same result.
//!
//! Evidence, strongest first:
//! 1. the person's existing primary account link (HubSpot primary association,
//!    Salesforce `AccountId`), when that account exists;
//! 2. the registrable domain of the email (never for free-mail or disposable domains);
//! 3. the registrable domain of the person's website field;
//! 4. the company name (normalised, fuzzy, acronyms), found through an inverted token
//!    index.
//!
//! Several accounts behind one piece of evidence (subsidiaries, country entities, CRM
//! duplicates) are narrowed by the configured [`TieBreaker`]s in order; whatever is still
//! tied is [`MatchStatus::Ambiguous`] with its candidates. The matcher abstains rather
//! than guesses: precision over recall.

pub mod country;
pub mod domain;
pub mod eval;
pub mod name;

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::{AccountRecord, OwnerId, OwnerRecord, PersonRecord, RecordId};
use country::{CountryCode, country_code};
use domain::{DomainClass, Host};
use name::{NameIndex, NameKey};

/// How the matcher decides. Every field has a default, so `[matcher]` in a config file
/// only names what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatcherConfig {
    /// Applied in order to narrow several candidate accounts to one.
    pub tie_breakers: Vec<TieBreaker>,
    /// Minimum name similarity (0–1) for a company-name match.
    pub name_threshold: f64,
    /// Names scoring within this of the best are tied with it.
    pub name_margin: f64,
    /// Match `IBM` ↔ `International Business Machines` when the acronym is unique.
    pub acronyms: bool,
    /// Account `fields` holding further domains, separated by `;`, `,` or spaces.
    pub domain_fields: Vec<String>,
    /// Domains treated as company domains even if a free-mail list has them.
    pub corporate_domains: Vec<String>,
    /// More free-mail domains, on top of the built-in lists.
    pub extra_free_mail_domains: Vec<String>,
    /// How many candidates a result carries at most.
    pub max_candidates: usize,
    /// Applied in order to pick one of several CRM duplicates of one company (same
    /// normalised name and country, and a shared domain or a parent link) before
    /// `tie_breakers` run. Duplicates still tied that route the same (same owner) give
    /// the lowest id; duplicates that would route differently are ambiguous. Empty:
    /// never pick among duplicates.
    pub duplicate_tie_breakers: Vec<DuplicateTieBreaker>,
    /// Account `fields` key holding the number of contacts (HubSpot's
    /// `num_associated_contacts`), for [`DuplicateTieBreaker::MostContacts`].
    pub contacts_field: String,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        MatcherConfig {
            tie_breakers: vec![
                TieBreaker::CountryMatch,
                TieBreaker::PreferParent,
                TieBreaker::ActiveOwner,
                TieBreaker::Largest,
            ],
            name_threshold: 0.90,
            name_margin: 0.03,
            acronyms: true,
            domain_fields: vec!["hs_additional_domains".to_owned()],
            corporate_domains: Vec::new(),
            extra_free_mail_domains: Vec::new(),
            max_candidates: 5,
            duplicate_tie_breakers: DuplicateTieBreaker::DEFAULT.to_vec(),
            contacts_field: "num_associated_contacts".to_owned(),
        }
    }
}

/// One way to prefer one account over others that the evidence supports equally.
/// A tie-breaker that would eliminate every candidate is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TieBreaker {
    /// Keep accounts with no ancestor among the candidates (the group's top).
    PreferParent,
    /// Keep accounts with no descendant among the candidates (the local entity).
    PreferChild,
    /// Keep accounts whose country is the person's.
    CountryMatch,
    /// Keep accounts whose owner is an active user (any owner id counts when the matcher
    /// was given no owner records).
    ActiveOwner,
    /// Keep the account(s) with the most employees.
    Largest,
}

impl TieBreaker {
    fn label(self) -> &'static str {
        match self {
            TieBreaker::PreferParent => "prefer parent",
            TieBreaker::PreferChild => "prefer child",
            TieBreaker::CountryMatch => "country",
            TieBreaker::ActiveOwner => "active owner",
            TieBreaker::Largest => "largest",
        }
    }
}

/// One way to pick one of several CRM duplicates of one company.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateTieBreaker {
    /// Keep duplicates whose owner is an active user.
    ActiveOwner,
    /// Keep duplicates with no ancestor among the duplicates.
    Parent,
    /// Keep the duplicate created first (records without a creation date count as newest).
    Oldest,
    /// Keep the duplicate with the most contacts.
    MostContacts,
}

impl DuplicateTieBreaker {
    /// The default order: active owner, parent, older record, more contacts.
    pub const DEFAULT: [DuplicateTieBreaker; 4] = [
        DuplicateTieBreaker::ActiveOwner,
        DuplicateTieBreaker::Parent,
        DuplicateTieBreaker::Oldest,
        DuplicateTieBreaker::MostContacts,
    ];

    /// The name policy files and flags use (`active_owner`).
    pub fn name(self) -> &'static str {
        match self {
            DuplicateTieBreaker::ActiveOwner => "active_owner",
            DuplicateTieBreaker::Parent => "parent",
            DuplicateTieBreaker::Oldest => "oldest",
            DuplicateTieBreaker::MostContacts => "most_contacts",
        }
    }

    /// Parse a policy/flag name; `None` for an unknown one.
    pub fn parse(name: &str) -> Option<DuplicateTieBreaker> {
        Self::DEFAULT.into_iter().find(|b| b.name() == name.trim())
    }

    fn label(self) -> &'static str {
        match self {
            DuplicateTieBreaker::ActiveOwner => "the one with an active owner",
            DuplicateTieBreaker::Parent => "the parent",
            DuplicateTieBreaker::Oldest => "the older record",
            DuplicateTieBreaker::MostContacts => "the one with more contacts",
        }
    }
}

/// A person to match, as the offline CSV path has it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MatchInput {
    pub email: Option<String>,
    pub company: Option<String>,
    pub website: Option<String>,
    pub country: Option<String>,
    /// An existing primary account link; honoured first when the account exists.
    pub primary_account: Option<RecordId>,
    /// The person's own name ("first last"): a company field holding it is no company.
    #[serde(default)]
    pub person_name: Option<String>,
}

/// The outcome class of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchStatus {
    Matched,
    Unmatched,
    Ambiguous,
}

impl MatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchStatus::Matched => "matched",
            MatchStatus::Unmatched => "unmatched",
            MatchStatus::Ambiguous => "ambiguous",
        }
    }
}

impl fmt::Display for MatchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which evidence put a candidate forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchVia {
    EmailDomain,
    Website,
    Name,
    Association,
}

/// An account the evidence pointed at, with how strongly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub account_id: RecordId,
    /// 0–1: how well this account fits the person.
    pub score: f64,
    pub via: MatchVia,
    /// What matched: `domain acme.com`, `name "acme" 0.97`, `acronym ibm`.
    pub note: String,
}

/// The matcher's answer for one person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchResult {
    pub status: MatchStatus,
    /// Set only when `status` is `Matched`.
    pub account_id: Option<RecordId>,
    /// Matched: how sure the matcher is of `account_id`. Ambiguous: the best candidate's
    /// score. Unmatched: 0.
    pub confidence: f64,
    /// Best first; the chosen account first when matched.
    pub candidates: Vec<Candidate>,
    /// One short sentence a person can act on. Never contains an email address.
    pub reason: String,
}

impl MatchResult {
    fn unmatched(reason: String, candidates: Vec<Candidate>) -> MatchResult {
        MatchResult {
            status: MatchStatus::Unmatched,
            account_id: None,
            confidence: 0.0,
            candidates,
            reason,
        }
    }
}

/// What the matcher knows of an account's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnerState {
    None,
    Active,
    Inactive,
    /// The account has an owner id but no owner records were given (CSV path).
    Unknown,
}

#[derive(Debug)]
struct Account {
    id: RecordId,
    display: String,
    key: Option<NameKey>,
    country: Option<CountryCode>,
    parent: Option<u32>,
    group: u32,
    employees: Option<i64>,
    owner: OwnerState,
    owner_id: Option<OwnerId>,
    /// Creation time, seconds since the epoch.
    created: Option<i64>,
    contacts: Option<u64>,
    domains: Vec<Box<str>>,
}

/// Borrowed view of a person, shared by [`Matcher::match_person`] and
/// [`Matcher::match_input`].
struct Query<'a> {
    email: Option<&'a str>,
    company: Option<&'a str>,
    website: Option<&'a str>,
    country: Option<&'a str>,
    link: Option<(&'a RecordId, bool)>,
    /// The person's first and last name, as given.
    person: [Option<&'a str>; 2],
}

/// The matcher over one CRM's accounts: a domain index and a name index, built once.
/// `Sync`, so one matcher serves many threads.
#[derive(Debug)]
pub struct Matcher {
    accounts: Vec<Account>,
    by_id: HashMap<RecordId, u32>,
    domains: HashMap<Box<str>, Vec<u32>>,
    hosts: HashMap<Box<str>, Vec<u32>>,
    /// Domain labels (`zanfel` of `zanfel.com`): a brand typed as the company name.
    labels: HashMap<Box<str>, Vec<u32>>,
    names: NameIndex,
    config: MatcherConfig,
    extra_free: HashSet<String>,
    corporate: HashSet<String>,
}

/// How a name candidate was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Name,
    Acronym,
    Brand,
}

/// How an email domain that no account lists relates to the account a name matched.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DomainRelation {
    /// The account's name plus group/country/filler words (`acme-group.com`, `acme.de`).
    Alias,
    /// The account's name plus another word: another company (`acme-rockets.io`).
    OtherCompany(String),
    /// Nothing to do with the name (a group or new brand domain).
    Unrelated,
}

/// Score of a name one typo away from an account's (see [`name::one_typo_apart`]).
const TYPO_SCORE: f64 = 0.92;

/// Score of a brand typed as the company: just below an exact name.
const BRAND_SCORE: f64 = 0.96;

/// A name match needs this score to stand against an email domain the account does not
/// list and that does not contain the name.
const UNLISTED_DOMAIN_SCORE: f64 = 0.95;

/// Parent chains longer than this are treated as cycles (CRMs do not prevent them).
const MAX_DEPTH: usize = 32;

impl Matcher {
    /// Index `accounts`. `owners` tells active from inactive owners for
    /// [`TieBreaker::ActiveOwner`]; pass `&[]` when unknown.
    pub fn new(
        accounts: &[AccountRecord],
        owners: &[OwnerRecord],
        config: &MatcherConfig,
    ) -> Matcher {
        let lower = |list: &[String]| -> HashSet<String> {
            list.iter()
                .filter_map(|d| domain::host_of(d).map(|h| h.host))
                .collect()
        };
        let extra_free = lower(&config.extra_free_mail_domains);
        let corporate = lower(&config.corporate_domains);
        let owner_active: HashMap<&OwnerId, bool> =
            owners.iter().map(|o| (&o.id, o.active)).collect();

        let mut by_id = HashMap::with_capacity(accounts.len());
        for (ix, record) in accounts.iter().enumerate() {
            // A duplicate id keeps its first record, so results do not depend on hashing.
            by_id.entry(record.id.clone()).or_insert(to_u32(ix));
        }

        let mut matcher = Matcher {
            accounts: Vec::with_capacity(accounts.len()),
            by_id,
            domains: HashMap::with_capacity(accounts.len()),
            hosts: HashMap::new(),
            labels: HashMap::new(),
            names: NameIndex::default(),
            config: config.clone(),
            extra_free,
            corporate,
        };

        for (ix, record) in accounts.iter().enumerate() {
            let ix = to_u32(ix);
            let hosts = matcher.account_hosts(record);
            let mut domains: Vec<Box<str>> = hosts
                .iter()
                .map(|h| Box::from(h.registrable.as_str()))
                .collect();
            domains.sort_unstable();
            domains.dedup();
            let mut full: Vec<Box<str>> = hosts
                .iter()
                .filter(|h| h.host != h.registrable)
                .map(|h| Box::from(h.host.as_str()))
                .collect();
            full.sort_unstable();
            full.dedup();
            for d in &domains {
                matcher.domains.entry(d.clone()).or_default().push(ix);
            }
            for h in &full {
                matcher.hosts.entry(h.clone()).or_default().push(ix);
            }
            // A label that is (part of) the account's own name is not a brand: typing it
            // is typing a shortened name, which the name rules judge ("Acme Capital" is
            // not "Acme Capital Partners" of acmecapital.com).
            let own = record.name.as_deref().and_then(name::normalize);
            for d in &domains {
                if let Some((label, _)) = d.split_once('.')
                    && label.len() >= 4
                    && !own.as_ref().is_some_and(|k| k.compact.contains(label))
                {
                    let list = matcher.labels.entry(Box::from(label)).or_default();
                    if list.last() != Some(&ix) {
                        list.push(ix);
                    }
                }
            }
            let key = record.name.as_deref().and_then(name::normalize);
            if let Some(key) = &key {
                matcher.names.insert(ix, key);
            }
            let owner = match &record.owner_id {
                None => OwnerState::None,
                Some(_) if owners.is_empty() => OwnerState::Unknown,
                Some(id) => match owner_active.get(id) {
                    Some(true) => OwnerState::Active,
                    _ => OwnerState::Inactive,
                },
            };
            matcher.accounts.push(Account {
                id: record.id.clone(),
                display: record
                    .name
                    .clone()
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| format!("account {}", record.id)),
                key,
                country: record.country.as_deref().and_then(country_code),
                parent: None,
                group: ix,
                employees: record.employees,
                owner,
                owner_id: record.owner_id.clone(),
                created: record.created_at.map(|t| t.timestamp()),
                contacts: record
                    .fields
                    .get(&config.contacts_field)
                    .and_then(|v| v.trim().parse::<u64>().ok()),
                domains,
            });
        }
        for (ix, record) in accounts.iter().enumerate() {
            let parent = record
                .parent_id
                .as_ref()
                .and_then(|p| matcher.by_id.get(p).copied())
                .filter(|&p| p != to_u32(ix));
            matcher.accounts[ix].parent = parent;
        }
        matcher.build_groups();
        matcher
    }

    /// Every host an account is known by: website, `domain`, `extra_domains` and the
    /// configured `fields`. Free-mail domains are dropped: an account whose website is
    /// `gmail.com` must not attract every Gmail user.
    fn account_hosts(&self, record: &AccountRecord) -> Vec<Host> {
        let mut raw: Vec<&str> = Vec::new();
        raw.extend(record.website.as_deref());
        raw.extend(record.domain.as_deref());
        raw.extend(record.extra_domains.iter().map(String::as_str));
        for field in &self.config.domain_fields {
            if let Some(value) = record.fields.get(field) {
                raw.extend(value.split([';', ',', ' ', '\n']).filter(|v| !v.is_empty()));
            }
        }
        raw.into_iter()
            .filter_map(domain::website_host)
            .filter(|h| {
                domain::classify(h, &self.extra_free, &self.corporate) == DomainClass::Corporate
            })
            .collect()
    }

    /// Groups: accounts joined by parent links or by a shared domain are one
    /// organisation, and only within one organisation do tie-breakers choose.
    fn build_groups(&mut self) {
        let n = self.accounts.len();
        let mut uf: Vec<u32> = (0..to_u32(n)).collect();
        fn find(uf: &mut [u32], mut x: u32) -> u32 {
            while uf[x as usize] != x {
                let up = uf[uf[x as usize] as usize];
                uf[x as usize] = up;
                x = up;
            }
            x
        }
        let union = |uf: &mut Vec<u32>, a: u32, b: u32| {
            let (ra, rb) = (find(uf, a), find(uf, b));
            if ra != rb {
                // The smaller index wins so groups do not depend on iteration order.
                let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
                uf[hi as usize] = lo;
            }
        };
        for ix in 0..n {
            if let Some(p) = self.accounts[ix].parent {
                union(&mut uf, to_u32(ix), p);
            }
        }
        for members in self.domains.values() {
            for pair in members.windows(2) {
                union(&mut uf, pair[0], pair[1]);
            }
        }
        for ix in 0..n {
            self.accounts[ix].group = find(&mut uf, to_u32(ix));
        }
    }

    /// How many accounts the matcher holds.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether the matcher holds no accounts.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Match a contact or lead from the mirror.
    pub fn match_person(&self, person: &PersonRecord) -> MatchResult {
        let link = person.accounts.as_deref().and_then(|links| {
            links
                .iter()
                .find(|l| l.primary)
                .map(|l| (&l.account_id, true))
                // A single unlabelled link is the person's account too.
                .or(match links {
                    [only] => Some((&only.account_id, false)),
                    _ => None,
                })
        });
        self.run(&Query {
            email: person.email.as_deref(),
            company: person.company.as_deref(),
            website: person.website.as_deref(),
            country: person.country.as_deref(),
            link,
            person: [person.first_name.as_deref(), person.last_name.as_deref()],
        })
    }

    /// Match the offline CSV shape: email, company, website, country.
    pub fn match_input(&self, input: &MatchInput) -> MatchResult {
        self.run(&Query {
            email: input.email.as_deref(),
            company: input.company.as_deref(),
            website: input.website.as_deref(),
            country: input.country.as_deref(),
            link: input.primary_account.as_ref().map(|id| (id, true)),
            person: [input.person_name.as_deref(), None],
        })
    }

    fn run(&self, q: &Query<'_>) -> MatchResult {
        if let Some((id, primary)) = q.link
            && let Some(&ix) = self.by_id.get(id)
        {
            let (confidence, what) = if primary {
                (1.0, "primary account link")
            } else {
                (0.97, "only account link")
            };
            return self.matched(
                ix,
                confidence,
                vec![self.candidate(ix, confidence, MatchVia::Association, what.to_owned())],
                format!("{what} to {}", self.accounts[ix as usize].display),
            );
        }
        let country = q.country.and_then(country_code);
        let name = q.company.and_then(name::normalize);
        let mut notes: Vec<String> = Vec::new();

        // The email's domain: the strongest evidence after an explicit link.
        let mut unknown_corporate: Option<String> = None;
        if let Some(host) = q.email.and_then(domain::email_host) {
            match domain::classify(&host, &self.extra_free, &self.corporate) {
                DomainClass::Corporate => match self.domains.get(host.registrable.as_str()) {
                    Some(hits) => {
                        return self.resolve_domain(
                            hits,
                            &host,
                            MatchVia::EmailDomain,
                            name.as_ref(),
                            country,
                        );
                    }
                    None => {
                        notes.push(format!("no account has email domain {}", host.registrable));
                        unknown_corporate = Some(host.registrable);
                    }
                },
                DomainClass::FreeMail => {
                    notes.push(format!("free-mail domain {} ignored", host.registrable));
                }
                DomainClass::Disposable => {
                    notes.push(format!("disposable domain {} ignored", host.registrable));
                }
            }
        }
        if let Some(host) = q.website.and_then(domain::website_host)
            && domain::classify(&host, &self.extra_free, &self.corporate) == DomainClass::Corporate
        {
            match self.domains.get(host.registrable.as_str()) {
                Some(hits) => {
                    return self.resolve_domain(
                        hits,
                        &host,
                        MatchVia::Website,
                        name.as_ref(),
                        country,
                    );
                }
                None => notes.push(format!(
                    "no account has website domain {}",
                    host.registrable
                )),
            }
        }
        // A website typed into the company field ("www.acme.com").
        if q.website.is_none()
            && let Some(raw) = q.company.map(str::trim)
            && !raw.contains(' ')
            && raw.contains('.')
            && let Some(host) = domain::website_host(raw)
            && host.registrable.contains('.')
            && domain::classify(&host, &self.extra_free, &self.corporate) == DomainClass::Corporate
            && let Some(hits) = self.domains.get(host.registrable.as_str())
        {
            return self.resolve_domain(hits, &host, MatchVia::Website, None, country);
        }
        let person: Vec<&str> = q.person.iter().flatten().copied().collect();
        match (name, q.company) {
            (Some(name), Some(raw)) => {
                if let Some(why) = name::not_a_company(&name, &person) {
                    notes.push(format!("company \"{}\" is {why}", name.key));
                    return MatchResult::unmatched(notes.join("; "), Vec::new());
                }
                let first = self.match_name(
                    &name,
                    country,
                    unknown_corporate.as_deref(),
                    notes.clone(),
                    None,
                );
                if first.status != MatchStatus::Unmatched {
                    return first;
                }
                // Words around the name ("Acme – Sales team", "Acme Corp (EMEA)").
                if !name::may_have_decoration(raw, &name) {
                    return first;
                }
                for form in name::core_forms(raw) {
                    if name::not_a_company(&form.key, &person).is_some() {
                        continue;
                    }
                    let result = self.match_name(
                        &form.key,
                        country.or(form.country),
                        unknown_corporate.as_deref(),
                        notes.clone(),
                        Some(&form),
                    );
                    if result.status != MatchStatus::Unmatched {
                        return result;
                    }
                }
                first
            }
            _ => {
                notes.push("no company name".to_owned());
                MatchResult::unmatched(notes.join("; "), Vec::new())
            }
        }
    }

    /// Several (or one) accounts share the person's domain.
    fn resolve_domain(
        &self,
        hits: &[u32],
        host: &Host,
        via: MatchVia,
        name: Option<&NameKey>,
        country: Option<CountryCode>,
    ) -> MatchResult {
        let what = match via {
            MatchVia::EmailDomain => "email domain",
            _ => "website domain",
        };
        let sims: Vec<Option<f64>> = hits
            .iter()
            .map(|&ix| {
                let key = self.accounts[ix as usize].key.as_ref()?;
                Some(name::similarity(name?, key))
            })
            .collect();
        let base = if via == MatchVia::EmailDomain {
            0.97
        } else {
            0.93
        };
        let mut candidates: Vec<Candidate> = hits
            .iter()
            .zip(&sims)
            .map(|(&ix, sim)| {
                let note = match sim {
                    Some(s) => format!("domain {} (name {:.2})", host.registrable, s),
                    None => format!("domain {}", host.registrable),
                };
                self.candidate(ix, base, via, note)
            })
            .collect();

        if let [only] = hits {
            let confidence = match sims[0] {
                Some(s) if s >= self.config.name_threshold => 0.99,
                Some(s) if s < 0.5 => base - 0.07,
                _ => base,
            };
            candidates[0].score = confidence;
            return self.matched(
                *only,
                confidence,
                candidates,
                format!(
                    "{what} {} → {}",
                    host.registrable, self.accounts[*only as usize].display
                ),
            );
        }

        // Several accounts: the most specific host first (eu.acme.com over acme.com) ...
        let mut set: Vec<u32> = hits.to_vec();
        let mut steps: Vec<String> = Vec::new();
        if host.host != host.registrable
            && let Some(exact) = self.hosts.get(host.host.as_str())
        {
            let narrowed: Vec<u32> = set
                .iter()
                .copied()
                .filter(|ix| exact.contains(ix))
                .collect();
            if !narrowed.is_empty() && narrowed.len() < set.len() {
                set = narrowed;
                steps.push(format!("host {}", host.host));
            }
        }
        // ... then the company name, when it clearly prefers some of them ...
        if set.len() > 1 && name.is_some() {
            let score_of = |ix: u32| -> f64 {
                hits.iter()
                    .position(|&h| h == ix)
                    .and_then(|p| sims[p])
                    .unwrap_or(0.0)
            };
            let best = set.iter().map(|&ix| score_of(ix)).fold(0.0, f64::max);
            if best >= self.config.name_threshold {
                let narrowed: Vec<u32> = set
                    .iter()
                    .copied()
                    .filter(|&ix| score_of(ix) >= best - self.config.name_margin)
                    .collect();
                if narrowed.len() < set.len() {
                    set = narrowed;
                    steps.push("company name".to_owned());
                }
            }
        }
        // ... then duplicates of one company collapse, then the configured tie-breakers.
        steps.extend(self.collapse_duplicates(&mut set));
        let applied = self.tie_break(&mut set, country);
        steps.extend(applied);
        for c in &mut candidates {
            if !set
                .iter()
                .any(|&ix| self.accounts[ix as usize].id == c.account_id)
            {
                c.score = base * 0.8;
            }
        }
        sort_candidates(&mut candidates);
        if let [chosen] = set[..] {
            let confidence = if steps
                .iter()
                .all(|s| s == "company name" || s.starts_with("host "))
            {
                0.95
            } else {
                0.9
            };
            if let Some(c) = candidates
                .iter_mut()
                .find(|c| c.account_id == self.accounts[chosen as usize].id)
            {
                c.score = confidence;
            }
            sort_candidates(&mut candidates);
            return self.matched(
                chosen,
                confidence,
                candidates,
                format!(
                    "{what} {} has {} accounts; chose {} by {}",
                    host.registrable,
                    hits.len(),
                    self.accounts[chosen as usize].display,
                    steps.join(", ")
                ),
            );
        }
        let confidence = candidates.first().map_or(0.0, |c| c.score);
        self.ambiguous(
            confidence,
            candidates,
            format!(
                "{what} {} has {} accounts that the tie-breakers cannot separate",
                host.registrable,
                set.len()
            ),
        )
    }

    /// Company-name matching, for people without a usable domain. `form`: the shorter
    /// form of the typed name this key comes from, if any.
    fn match_name(
        &self,
        name: &NameKey,
        country: Option<CountryCode>,
        unknown_corporate: Option<&str>,
        mut notes: Vec<String>,
        form: Option<&name::NameForm>,
    ) -> MatchResult {
        let threshold = self.config.name_threshold;
        let mut ids: Vec<u32> = Vec::new();
        self.names.candidates(name, &mut ids);
        // A token that is some account's real word is not a typo: "Tekzan Insurance" is
        // its own company, not a misspelling of "Tekxan Insurance".
        let known: Vec<&str> = name
            .tokens
            .iter()
            .filter(|t| self.names.knows(t))
            .map(String::as_str)
            .collect();
        let scorer = name::NameScorer::new(name);
        let mut scored: Vec<(u32, f64, How)> = ids
            .iter()
            .filter_map(|&ix| {
                let key = self.accounts[ix as usize].key.as_ref()?;
                let mut s = scorer.score(key);
                if s < 0.98 && known.iter().any(|t| !key.tokens.iter().any(|k| k == t)) {
                    s *= 0.8;
                }
                // One typo in one long unknown word: a replaced letter or a swap costs the
                // character ratio more than a dropped one, yet is as clearly a typo.
                if (0.7..TYPO_SCORE).contains(&s)
                    && name::one_typo_apart(name, key, |t| self.names.knows(t))
                {
                    s = TYPO_SCORE;
                }
                (s >= 0.7).then_some((ix, s, How::Name))
            })
            .collect();
        // A brand typed as the company: the label of an account's own domain. Just below
        // an exact name, above any fuzzy one.
        if let Some(hits) = self.labels.get(name.compact.as_str()) {
            for &ix in hits {
                match scored.iter_mut().find(|(i, _, _)| *i == ix) {
                    Some(entry) if entry.1 >= BRAND_SCORE => {}
                    Some(entry) => *entry = (ix, BRAND_SCORE, How::Brand),
                    None => scored.push((ix, BRAND_SCORE, How::Brand)),
                }
            }
        }
        if self.config.acronyms && scored.iter().all(|(_, s, _)| *s < threshold) {
            self.acronym_candidates(name, &mut scored);
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let form_note = form.map_or(String::new(), |f| format!(" (form without {})", f.dropped));
        // Notes are written for the candidates shown only.
        let note = |&(ix, s, how): &(u32, f64, How)| -> String {
            let account = &self.accounts[ix as usize];
            match (how, account.key.as_ref()) {
                (How::Acronym, _) => format!("acronym \"{}\"{form_note}", name.key),
                (How::Brand, _) => format!(
                    "brand \"{}\"{form_note} = domain {}",
                    name.compact,
                    account
                        .domains
                        .iter()
                        .find(|d| d.split_once('.').is_some_and(|(l, _)| l == name.compact))
                        .map_or("", |d| d)
                ),
                (How::Name, Some(key)) => {
                    format!("name \"{}\" {:.2}{form_note}", key.key, s)
                }
                (How::Name, None) => String::new(),
            }
        };
        let mut candidates: Vec<Candidate> = scored
            .iter()
            .take(self.config.max_candidates.max(1))
            .map(|entry| self.candidate(entry.0, entry.1, MatchVia::Name, note(entry)))
            .collect();
        let best = scored.first().map_or(0.0, |s| s.1);
        if best < threshold {
            notes.push(format!("no account name matches \"{}\"", name.key));
            candidates.truncate(self.config.max_candidates);
            return MatchResult::unmatched(notes.join("; "), candidates);
        }
        let mut set: Vec<u32> = scored
            .iter()
            .filter(|(_, s, _)| *s >= best - self.config.name_margin && *s >= threshold)
            .map(|(ix, _, _)| *ix)
            .collect();
        let mut steps: Vec<String> = Vec::new();
        let groups = |set: &[u32]| -> HashSet<u32> {
            set.iter()
                .map(|&ix| self.accounts[ix as usize].group)
                .collect()
        };
        let companies = groups(&set).len();
        if companies > 1 {
            // Unrelated companies with one name: only the person's country separates them.
            let kept: Vec<u32> = match country {
                Some(code) => set
                    .iter()
                    .copied()
                    .filter(|&ix| self.accounts[ix as usize].country == Some(code))
                    .collect(),
                None => Vec::new(),
            };
            if !kept.is_empty() && groups(&kept).len() == 1 {
                set = kept;
                steps.push(format!(
                    "country {} of {companies} companies sharing the name",
                    country.as_ref().map_or("", country::code_str)
                ));
            } else {
                notes.push(format!(
                    "company name \"{}\" fits {} accounts of {companies} different companies{}",
                    name.key,
                    set.len(),
                    if country.is_some() {
                        " that the country does not separate"
                    } else {
                        " and no country separates them"
                    }
                ));
                return self.ambiguous(best, candidates, notes.join("; "));
            }
        }
        steps.extend(self.collapse_duplicates(&mut set));
        steps.extend(self.tie_break(&mut set, country));
        let [chosen] = set[..] else {
            notes.push(format!(
                "company name \"{}\" fits {} related accounts that the tie-breakers cannot separate",
                name.key,
                set.len()
            ));
            return self.ambiguous(best, candidates, notes.join("; "));
        };
        let account = &self.accounts[chosen as usize];
        let score = scored
            .iter()
            .find(|(ix, _, _)| *ix == chosen)
            .map_or(best, |s| s.1);
        // A company domain that is not the account's own: an alias (group, country or
        // new brand domain) unless its label names a longer, other company
        // ("acme-rockets.io" for "Acme"). Absent domain evidence is not evidence against.
        if let Some(domain) = unknown_corporate
            && !account.domains.is_empty()
        {
            match self.domain_relation(domain, name, account) {
                DomainRelation::OtherCompany(extra) => {
                    notes.push(format!(
                        "company name matches {} but email domain {domain} names another company (\"{extra}\")",
                        account.display
                    ));
                    return self.ambiguous(best, candidates, notes.join("; "));
                }
                DomainRelation::Alias => {
                    notes.push(format!(
                        "email domain {domain} is the account's name with a group/country word"
                    ));
                }
                DomainRelation::Unrelated if score >= UNLISTED_DOMAIN_SCORE => {
                    notes.push(format!(
                        "email domain {domain} is not on the account (not evidence against a clear name)"
                    ));
                }
                DomainRelation::Unrelated => {
                    notes.push(format!(
                        "company name matches {} only loosely and its domains do not include {domain}",
                        account.display
                    ));
                    return self.ambiguous(best, candidates, notes.join("; "));
                }
            }
        }
        let mut confidence = (score * 0.92).min(0.92);
        if !steps.is_empty() {
            confidence *= 0.95;
        }
        if unknown_corporate.is_some() {
            confidence *= 0.95;
        }
        for c in &mut candidates {
            if c.account_id == account.id {
                c.score = confidence;
            }
        }
        sort_candidates(&mut candidates);
        let how = scored
            .iter()
            .find(|(ix, _, _)| *ix == chosen)
            .map_or(String::new(), note);
        notes.push(if steps.is_empty() {
            format!("company {how} → {}", account.display)
        } else {
            format!(
                "company {how} → {} by {}",
                account.display,
                steps.join(", ")
            )
        });
        self.matched(chosen, confidence, candidates, notes.join("; "))
    }

    /// How an email domain no account lists relates to the account a name matched.
    fn domain_relation(&self, domain: &str, name: &NameKey, account: &Account) -> DomainRelation {
        let label: String = domain
            .split('.')
            .next()
            .unwrap_or("")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        if let Some(own) = account.key.as_ref().map(|k| k.compact.as_str())
            && own.len() >= 3
            && let Some(at) = label.find(own)
        {
            let rest = format!("{}{}", &label[..at], &label[at + own.len()..]);
            let rest = rest.trim_matches(|c: char| c.is_ascii_digit());
            return if rest.is_empty() || name::is_domain_filler(rest) {
                DomainRelation::Alias
            } else {
                DomainRelation::OtherCompany(rest.to_owned())
            };
        }
        // The domain carries the name as typed, which is not the account's name exactly:
        // it is the typed company's own domain ("prafenfal-43.io" for "Prafenfal" against
        // the account "Prafenal").
        if name.compact.len() >= 3 && label.contains(name.compact.as_str()) {
            return DomainRelation::OtherCompany(name.compact.clone());
        }
        DomainRelation::Unrelated
    }

    /// Collapse CRM duplicates in `set` (same normalised name and country, and a shared
    /// domain or a parent link) to one each, by the configured duplicate tie-breakers;
    /// duplicates still tied that route the same (same owner) give the lowest id. Returns
    /// what was done, for the reason.
    fn collapse_duplicates(&self, set: &mut Vec<u32>) -> Vec<String> {
        let rules = &self.config.duplicate_tie_breakers;
        if set.len() < 2 || rules.is_empty() {
            return Vec::new();
        }
        let is_dup = |a: u32, b: u32| -> bool {
            let (x, y) = (&self.accounts[a as usize], &self.accounts[b as usize]);
            x.group == y.group
                && x.country == y.country
                && matches!((&x.key, &y.key), (Some(p), Some(q)) if p.key == q.key)
                && (x.domains.iter().any(|d| y.domains.contains(d))
                    || self.is_ancestor(a, b)
                    || self.is_ancestor(b, a))
        };
        let mut steps = Vec::new();
        let mut out: Vec<u32> = Vec::with_capacity(set.len());
        let mut done: Vec<bool> = vec![false; set.len()];
        for i in 0..set.len() {
            if done[i] {
                continue;
            }
            let mut cluster = vec![set[i]];
            for j in i + 1..set.len() {
                if !done[j] && cluster.iter().any(|&c| is_dup(c, set[j])) {
                    cluster.push(set[j]);
                    done[j] = true;
                }
            }
            if cluster.len() == 1 {
                out.push(set[i]);
                continue;
            }
            let ids = |c: &[u32]| -> String {
                c.iter()
                    .map(|&ix| self.accounts[ix as usize].id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let all = ids(&cluster);
            let mut kept = cluster.clone();
            let mut used: Vec<&str> = Vec::new();
            for &rule in rules {
                if kept.len() <= 1 {
                    break;
                }
                let next = self.duplicate_rule(rule, &kept);
                if !next.is_empty() && next.len() < kept.len() {
                    kept = next;
                    used.push(rule.label());
                }
            }
            if kept.len() > 1 {
                let owner = &self.accounts[kept[0] as usize].owner_id;
                if kept
                    .iter()
                    .all(|&ix| &self.accounts[ix as usize].owner_id == owner)
                {
                    kept.sort_by(|&a, &b| {
                        self.accounts[a as usize]
                            .id
                            .cmp(&self.accounts[b as usize].id)
                    });
                    kept.truncate(1);
                    used.push("the lowest id (they route to the same owner)");
                }
            }
            if kept.len() == 1 {
                steps.push(format!(
                    "duplicate accounts {all} → {} as {}",
                    self.accounts[kept[0] as usize].id,
                    used.join(", then ")
                ));
            }
            out.extend(kept);
        }
        out.sort_unstable();
        *set = out;
        steps
    }

    fn duplicate_rule(&self, rule: DuplicateTieBreaker, set: &[u32]) -> Vec<u32> {
        let acc = |ix: u32| &self.accounts[ix as usize];
        match rule {
            DuplicateTieBreaker::ActiveOwner => set
                .iter()
                .copied()
                .filter(|&a| matches!(acc(a).owner, OwnerState::Active | OwnerState::Unknown))
                .collect(),
            DuplicateTieBreaker::Parent => set
                .iter()
                .copied()
                .filter(|&a| !set.iter().any(|&b| b != a && self.is_ancestor(b, a)))
                .collect(),
            DuplicateTieBreaker::Oldest => match set.iter().filter_map(|&a| acc(a).created).min() {
                Some(min) => set
                    .iter()
                    .copied()
                    .filter(|&a| acc(a).created == Some(min))
                    .collect(),
                None => set.to_vec(),
            },
            DuplicateTieBreaker::MostContacts => {
                match set.iter().filter_map(|&a| acc(a).contacts).max() {
                    Some(max) => set
                        .iter()
                        .copied()
                        .filter(|&a| acc(a).contacts == Some(max))
                        .collect(),
                    None => set.to_vec(),
                }
            }
        }
    }

    /// `IBM` ↔ `International Business Machines`, only when exactly one organisation fits.
    fn acronym_candidates(&self, name: &NameKey, scored: &mut Vec<(u32, f64, How)>) {
        let score = self.config.name_threshold.max(0.9);
        let mut hits: Vec<u32> = Vec::new();
        if let Some(acronym) = name.as_acronym() {
            hits.extend_from_slice(self.names.by_acronym(acronym));
        }
        if let Some(acronym) = &name.acronym {
            let as_key = NameKey {
                tokens: vec![acronym.clone()],
                key: acronym.clone(),
                sorted: acronym.clone(),
                compact: acronym.clone(),
                acronym: None,
            };
            hits.extend_from_slice(self.names.exact(&as_key));
        }
        hits.sort_unstable();
        hits.dedup();
        let groups: HashSet<u32> = hits
            .iter()
            .map(|&ix| self.accounts[ix as usize].group)
            .collect();
        if groups.len() == 1 {
            for ix in hits {
                scored.retain(|(i, _, _)| *i != ix);
                scored.push((ix, score, How::Acronym));
            }
        }
    }

    /// Narrow `set` with the configured tie-breakers; returns the labels of those that
    /// removed someone.
    fn tie_break(&self, set: &mut Vec<u32>, country: Option<CountryCode>) -> Vec<String> {
        let mut applied = Vec::new();
        for &breaker in &self.config.tie_breakers {
            if set.len() <= 1 {
                break;
            }
            let kept: Vec<u32> = match breaker {
                TieBreaker::PreferParent => set
                    .iter()
                    .copied()
                    .filter(|&a| !set.iter().any(|&b| b != a && self.is_ancestor(b, a)))
                    .collect(),
                TieBreaker::PreferChild => set
                    .iter()
                    .copied()
                    .filter(|&a| !set.iter().any(|&b| b != a && self.is_ancestor(a, b)))
                    .collect(),
                TieBreaker::CountryMatch => match country {
                    Some(code) => set
                        .iter()
                        .copied()
                        .filter(|&a| self.accounts[a as usize].country == Some(code))
                        .collect(),
                    None => continue,
                },
                TieBreaker::ActiveOwner => set
                    .iter()
                    .copied()
                    .filter(|&a| {
                        matches!(
                            self.accounts[a as usize].owner,
                            OwnerState::Active | OwnerState::Unknown
                        )
                    })
                    .collect(),
                TieBreaker::Largest => {
                    let max = set
                        .iter()
                        .filter_map(|&a| self.accounts[a as usize].employees)
                        .max();
                    match max {
                        Some(max) => set
                            .iter()
                            .copied()
                            .filter(|&a| self.accounts[a as usize].employees == Some(max))
                            .collect(),
                        None => continue,
                    }
                }
            };
            if !kept.is_empty() && kept.len() < set.len() {
                *set = kept;
                applied.push(match (breaker, country) {
                    (TieBreaker::CountryMatch, Some(code)) => {
                        format!("country {}", country::code_str(&code))
                    }
                    _ => breaker.label().to_owned(),
                });
            }
        }
        applied
    }

    /// Whether `a` is a (transitive) parent of `b`.
    fn is_ancestor(&self, a: u32, b: u32) -> bool {
        let mut cur = self.accounts[b as usize].parent;
        for _ in 0..MAX_DEPTH {
            match cur {
                Some(p) if p == a => return true,
                Some(p) => cur = self.accounts[p as usize].parent,
                None => return false,
            }
        }
        false
    }

    fn candidate(&self, ix: u32, score: f64, via: MatchVia, note: String) -> Candidate {
        Candidate {
            account_id: self.accounts[ix as usize].id.clone(),
            score,
            via,
            note,
        }
    }

    fn matched(
        &self,
        ix: u32,
        confidence: f64,
        mut candidates: Vec<Candidate>,
        reason: String,
    ) -> MatchResult {
        candidates.truncate(self.config.max_candidates);
        MatchResult {
            status: MatchStatus::Matched,
            account_id: Some(self.accounts[ix as usize].id.clone()),
            confidence,
            candidates,
            reason,
        }
    }

    fn ambiguous(
        &self,
        confidence: f64,
        mut candidates: Vec<Candidate>,
        reason: String,
    ) -> MatchResult {
        candidates.truncate(self.config.max_candidates);
        MatchResult {
            status: MatchStatus::Ambiguous,
            account_id: None,
            confidence,
            candidates,
            reason,
        }
    }
}

fn sort_candidates(candidates: &mut [Candidate]) {
    candidates.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.account_id.cmp(&b.account_id))
    });
}

fn to_u32(ix: usize) -> u32 {
    u32::try_from(ix).expect("fewer than 4 billion accounts")
}

#[cfg(test)]
mod tests;
