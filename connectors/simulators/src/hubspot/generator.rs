//! Seeded generator of a realistic portal: owners in teams and time zones
//! (some deactivated), companies with domains (country TLDs, subdomains) and
//! subsidiaries, contacts on corporate, subdomain and free-mail addresses,
//! some without a company. The same seed always yields the same portal.
//!
//! Subsidiaries: HubSpot models parent/child companies as a company↔company
//! association (HUBSPOT_DEFINED types 13 "Parent company"/14 "Child company")
//! and mirrors the parent in the read-only `hs_parent_company_id` property.
//! The simulator serves only contact↔company associations, so the parent is
//! exposed through `hs_parent_company_id`, exactly as a read would show it.

use std::collections::{BTreeMap, HashSet};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::clock::iso;
use super::schema::{COMPANY_TYPES, INDUSTRIES, LEAD_STATUSES, LIFECYCLE_STAGES, ObjectType};
use super::state::{SimOwner, SimRecord, SimTeam, Store};

/// Sizes and seed of a generated portal.
#[derive(Debug, Clone)]
pub(crate) struct GenSpec {
    pub(crate) seed: u64,
    pub(crate) contacts: usize,
    pub(crate) companies: usize,
    pub(crate) owners: usize,
    pub(crate) portal_id: u64,
    /// Wall-clock reference; every generated stamp is at least a minute older.
    pub(crate) now_ms: i64,
}

pub(crate) const FIRST: &[&str] = &[
    "Ana", "Ben", "Chloe", "Dario", "Elif", "Farah", "Gustav", "Hana", "Ivan", "Jana", "Kenji",
    "Lena", "Mateo", "Nina", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tariq", "Uma", "Viktor",
    "Wei", "Ximena", "Yusuf", "Zoe", "Liam", "Olivia", "Noah", "Emma", "Lukas", "Mia", "Aarav",
    "Sofia", "Mehmet", "Ingrid", "Pierre", "Chiara", "Diego", "Aiko",
];
pub(crate) const LAST: &[&str] = &[
    "Müller",
    "Patel",
    "Smith",
    "Garcia",
    "Nguyen",
    "Kowalski",
    "Rossi",
    "Tanaka",
    "Johansson",
    "O'Brien",
    "Schmidt",
    "Dubois",
    "Silva",
    "Kim",
    "Novak",
    "Haddad",
    "Jensen",
    "Lopez",
    "Chen",
    "Fischer",
    "Okafor",
    "Ivanova",
    "Brown",
    "Wilson",
    "Moreau",
    "Yilmaz",
    "Santos",
    "Berg",
    "Kaur",
    "Weber",
];
pub(crate) const WORDS_A: &[&str] = &[
    "Blue", "North", "Bright", "Iron", "Silver", "Green", "Quantum", "Summit", "Harbor", "Atlas",
    "Nova", "Granite", "Cedar", "Vertex", "Pioneer", "Orbit", "Crystal", "Falcon", "Maple",
    "Beacon",
];
pub(crate) const WORDS_B: &[&str] = &[
    "Analytics",
    "Logistics",
    "Systems",
    "Foods",
    "Robotics",
    "Health",
    "Labs",
    "Energy",
    "Capital",
    "Motors",
    "Networks",
    "Textiles",
    "Pharma",
    "Media",
    "Works",
    "Dynamics",
    "Bank",
    "Software",
    "Freight",
    "Studios",
];
pub(crate) const SUFFIX: &[&str] = &[
    "", "", " Inc.", " GmbH", " Ltd", " AG", " SA", " LLC", " Group",
];
pub(crate) const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "gmx.de",
    "web.de",
    "qq.com",
    "icloud.com",
    "yahoo.co.uk",
    "proton.me",
];
pub(crate) const JOBS: &[&str] = &[
    "CEO",
    "CTO",
    "VP Sales",
    "Head of Marketing",
    "Procurement Manager",
    "Software Engineer",
    "Operations Lead",
    "Account Manager",
    "Finance Director",
    "",
];

/// (country, TLD, states, cities)
struct Country {
    name: &'static str,
    tld: &'static str,
    states: &'static [&'static str],
    cities: &'static [&'static str],
}

const COUNTRIES: &[Country] = &[
    Country {
        name: "United States",
        tld: "com",
        states: &["California", "New York", "Texas", "Washington", "Illinois"],
        cities: &["San Francisco", "New York", "Austin", "Seattle", "Chicago"],
    },
    Country {
        name: "Germany",
        tld: "de",
        states: &["Bayern", "Berlin", "Hessen", "Hamburg"],
        cities: &["München", "Berlin", "Frankfurt", "Hamburg"],
    },
    Country {
        name: "United Kingdom",
        tld: "co.uk",
        states: &["England", "Scotland"],
        cities: &["London", "Manchester", "Edinburgh"],
    },
    Country {
        name: "France",
        tld: "fr",
        states: &["Île-de-France", "Auvergne-Rhône-Alpes"],
        cities: &["Paris", "Lyon"],
    },
    Country {
        name: "Japan",
        tld: "co.jp",
        states: &["Tokyo", "Osaka"],
        cities: &["Tokyo", "Osaka"],
    },
    Country {
        name: "Brazil",
        tld: "com.br",
        states: &["São Paulo", "Rio de Janeiro"],
        cities: &["São Paulo", "Rio de Janeiro"],
    },
    Country {
        name: "Australia",
        tld: "com.au",
        states: &["New South Wales", "Victoria"],
        cities: &["Sydney", "Melbourne"],
    },
    Country {
        name: "India",
        tld: "in",
        states: &["Karnataka", "Maharashtra"],
        cities: &["Bengaluru", "Mumbai"],
    },
    Country {
        name: "Canada",
        tld: "ca",
        states: &["Ontario", "British Columbia"],
        cities: &["Toronto", "Vancouver"],
    },
    Country {
        name: "Netherlands",
        tld: "nl",
        states: &["Noord-Holland", "Zuid-Holland"],
        cities: &["Amsterdam", "Rotterdam"],
    },
];

/// (team name, time zones of its reps)
const TEAMS: &[(&str, &[&str])] = &[
    ("West", &["America/Los_Angeles", "America/Denver"]),
    ("East", &["America/New_York", "America/Chicago"]),
    ("EMEA", &["Europe/Berlin", "Europe/London", "Europe/Paris"]),
    ("APAC", &["Asia/Tokyo", "Australia/Sydney", "Asia/Kolkata"]),
    ("LATAM", &["America/Sao_Paulo"]),
    ("Enterprise", &["America/New_York", "Europe/London"]),
];

const DAY_MS: i64 = 86_400_000;

pub(crate) fn slug(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

pub(crate) fn ascii_local(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'ü' => 'u',
            'ö' => 'o',
            'ä' => 'a',
            c => c,
        })
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Builds the portal.
pub(crate) fn generate(spec: &GenSpec) -> Store {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut store = Store::new(spec.portal_id);
    let now = spec.now_ms;
    let oldest = now - 730 * DAY_MS;
    let newest = now - 60_000;

    // Owners: ids and user ids are different number spaces (trap 7).
    let team_ids: Vec<String> = (0..TEAMS.len())
        .map(|i| (178_588 + 2 * i).to_string())
        .collect();
    let mut owner_id = 41_629_700_u64;
    let mut user_id = 9_586_400_u64;
    for i in 0..spec.owners {
        owner_id += rng.random_range(1..40);
        user_id += rng.random_range(1..25);
        let first = *FIRST.choose(&mut rng).unwrap_or(&"Ria");
        let last = *LAST.choose(&mut rng).unwrap_or(&"Patel");
        let team = i % TEAMS.len();
        let mut teams = vec![SimTeam {
            id: team_ids[team].clone(),
            name: TEAMS[team].0.to_owned(),
            primary: true,
        }];
        if rng.random_bool(0.2) {
            let other = (team + 1 + rng.random_range(0..TEAMS.len() - 1)) % TEAMS.len();
            teams.push(SimTeam {
                id: team_ids[other].clone(),
                name: TEAMS[other].0.to_owned(),
                primary: false,
            });
        }
        let created = rng.random_range(oldest..newest - DAY_MS);
        // Roughly one rep in eight has left the company (never the first two,
        // so small portals always have active owners).
        let archived = i >= 2 && rng.random_bool(0.12);
        store.owners.insert(
            owner_id,
            SimOwner {
                id: owner_id,
                user_id,
                email: format!(
                    "{}.{}{}@northwind-sales.com",
                    ascii_local(first),
                    ascii_local(last),
                    i
                ),
                first_name: first.to_owned(),
                last_name: last.to_owned(),
                owner_type: "PERSON".into(),
                archived,
                created_at_ms: created,
                updated_at_ms: if archived {
                    rng.random_range(created..newest)
                } else {
                    created
                },
                teams,
                time_zone: (*TEAMS[team].1.choose(&mut rng).unwrap_or(&"UTC")).to_owned(),
            },
        );
    }
    let owner_ids: Vec<u64> = store.owners.keys().copied().collect();
    let pick_owner = |rng: &mut StdRng| -> Option<u64> {
        if owner_ids.is_empty() || rng.random_bool(0.2) {
            None
        } else {
            owner_ids.choose(rng).copied()
        }
    };

    // Companies.
    let mut domains = HashSet::new();
    let mut company_ids = Vec::with_capacity(spec.companies);
    let mut company_domain: BTreeMap<u64, (String, usize)> = BTreeMap::new();
    let mut next_company = 8_400_000_000_u64;
    for _ in 0..spec.companies {
        next_company += rng.random_range(1..7);
        let id = next_company;
        let country_ix = rng.random_range(0..COUNTRIES.len());
        let country = &COUNTRIES[country_ix];
        let mut props = BTreeMap::new();
        let parent = if company_ids.len() > 10 && rng.random_bool(0.1) {
            company_ids.choose(&mut rng).copied()
        } else {
            None
        };
        let (name, domain) = match parent.and_then(|p| company_domain.get(&p).cloned()) {
            Some((parent_domain, _)) => {
                let base = parent_domain.split('.').next().unwrap_or("sub").to_owned();
                let domain = if rng.random_bool(0.5) {
                    // Country subdomain of the parent: "de.acme.com".
                    format!(
                        "{}.{}",
                        country.tld.split('.').next_back().unwrap_or("eu"),
                        parent_domain
                    )
                } else {
                    // Parent brand on a country TLD: "acme.co.uk".
                    format!("{base}.{}", country.tld)
                };
                (format!("{} {}", capitalise(&base), country.name), domain)
            }
            None => {
                let name = format!(
                    "{} {}{}",
                    WORDS_A.choose(&mut rng).unwrap_or(&"Acme"),
                    WORDS_B.choose(&mut rng).unwrap_or(&"Works"),
                    SUFFIX.choose(&mut rng).unwrap_or(&"")
                );
                let stem: String = slug(
                    name.split(' ')
                        .take(2)
                        .collect::<Vec<_>>()
                        .join("")
                        .as_str(),
                );
                (name, format!("{stem}.{}", country.tld))
            }
        };
        let mut domain = domain;
        let mut n = 2;
        while !domains.insert(domain.clone()) {
            domain = match domain.split_once('.') {
                Some((head, tail)) => format!("{head}{n}.{tail}"),
                None => format!("{domain}{n}"),
            };
            n += 1;
        }
        props.insert("name".into(), name);
        props.insert("domain".into(), domain.clone());
        props.insert("website".into(), format!("https://www.{domain}"));
        props.insert(
            "industry".into(),
            (*INDUSTRIES.choose(&mut rng).unwrap_or(&"RETAIL")).to_owned(),
        );
        let employees: u64 = [5, 12, 40, 120, 450, 1_200, 5_000, 25_000][rng.random_range(0..8)];
        props.insert("numberofemployees".into(), employees.to_string());
        props.insert("annualrevenue".into(), (employees * 180_000).to_string());
        props.insert("country".into(), country.name.into());
        props.insert(
            "state".into(),
            (*country.states.choose(&mut rng).unwrap_or(&"")).to_owned(),
        );
        props.insert(
            "city".into(),
            (*country.cities.choose(&mut rng).unwrap_or(&"")).to_owned(),
        );
        props.insert("lifecyclestage".into(), "customer".into());
        if rng.random_bool(0.6) {
            props.insert(
                "type".into(),
                (*COMPANY_TYPES.choose(&mut rng).unwrap_or(&"PROSPECT")).to_owned(),
            );
        }
        // Some companies also own a second domain (a rebrand or a short
        // alias), listed `;`-separated in `hs_additional_domains`.
        if rng.random_bool(0.08) {
            let stem = domain.split('.').next().unwrap_or("alias");
            let alias = format!(
                "{stem}-group.{}",
                if country.tld == "com" { "io" } else { "com" }
            );
            if domains.insert(alias.clone()) {
                props.insert("hs_additional_domains".into(), alias);
            }
        }
        if let Some(p) = parent {
            props.insert("hs_parent_company_id".into(), p.to_string());
        }
        let created = rng.random_range(oldest..newest);
        let modified = rng.random_range(created..=newest);
        if let Some(owner) = pick_owner(&mut rng) {
            add_owner(
                &store,
                &mut props,
                owner,
                rng.random_range(created..=modified),
            );
        }
        props.insert("num_associated_contacts".into(), "0".into());
        finish(&mut props, ObjectType::Companies, id, created, modified);
        store.companies.insert(SimRecord {
            id,
            properties: props,
            created_at_ms: created,
            updated_at_ms: modified,
            archived: false,
            archived_at_ms: None,
        });
        company_domain.insert(id, (domain, country_ix));
        company_ids.push(id);
    }

    // Contacts.
    let mut emails = HashSet::new();
    let mut next_contact = 100_000_u64;
    for _ in 0..spec.contacts {
        next_contact += rng.random_range(1..4);
        let id = next_contact;
        let first = *FIRST.choose(&mut rng).unwrap_or(&"Ana");
        let last = *LAST.choose(&mut rng).unwrap_or(&"Smith");
        let company = if !company_ids.is_empty() && rng.random_bool(0.82) {
            company_ids.choose(&mut rng).copied()
        } else {
            None
        };
        let (local_domain, country_ix) = match company.and_then(|c| company_domain.get(&c)) {
            Some((domain, country)) if rng.random_bool(0.85) => {
                if rng.random_bool(0.1) {
                    (format!("mail.{domain}"), *country)
                } else {
                    (domain.clone(), *country)
                }
            }
            Some((_, country)) => (
                (*FREE_MAIL.choose(&mut rng).unwrap_or(&"gmail.com")).to_owned(),
                *country,
            ),
            None => (
                (*FREE_MAIL.choose(&mut rng).unwrap_or(&"gmail.com")).to_owned(),
                rng.random_range(0..COUNTRIES.len()),
            ),
        };
        let local = match rng.random_range(0..3) {
            0 => format!("{}.{}", ascii_local(first), ascii_local(last)),
            1 => format!("{}{}", &ascii_local(first)[..1], ascii_local(last)),
            _ => format!(
                "{}_{}{}",
                ascii_local(first),
                ascii_local(last),
                rng.random_range(1..99)
            ),
        };
        let mut email = format!("{local}@{local_domain}");
        let mut n = 2;
        while !emails.insert(email.clone()) {
            email = format!("{local}{n}@{local_domain}");
            n += 1;
        }
        let country = &COUNTRIES[country_ix];
        let mut props = BTreeMap::new();
        props.insert("firstname".into(), first.to_owned());
        props.insert("lastname".into(), last.to_owned());
        props.insert("hs_email_domain".into(), local_domain.clone());
        props.insert("email".into(), email);
        props.insert("country".into(), country.name.into());
        if rng.random_bool(0.7) {
            props.insert(
                "state".into(),
                (*country.states.choose(&mut rng).unwrap_or(&"")).to_owned(),
            );
            props.insert(
                "city".into(),
                (*country.cities.choose(&mut rng).unwrap_or(&"")).to_owned(),
            );
        }
        let job = *JOBS.choose(&mut rng).unwrap_or(&"");
        if !job.is_empty() {
            props.insert("jobtitle".into(), job.to_owned());
        }
        props.insert(
            "lifecyclestage".into(),
            (*LIFECYCLE_STAGES.choose(&mut rng).unwrap_or(&"lead")).to_owned(),
        );
        if rng.random_bool(0.5) {
            props.insert(
                "hs_lead_status".into(),
                (*LEAD_STATUSES.choose(&mut rng).unwrap_or(&"NEW")).to_owned(),
            );
        }
        if let Some(c) = company {
            if let Some(name) = store
                .companies
                .records
                .get(&c)
                .and_then(|r| r.properties.get("name"))
            {
                props.insert("company".into(), name.clone());
            }
        }
        let created = rng.random_range(oldest..newest);
        let modified = rng.random_range(created..=newest);
        if let Some(owner) = pick_owner(&mut rng) {
            add_owner(
                &store,
                &mut props,
                owner,
                rng.random_range(created..=modified),
            );
        }
        if let Some(c) = company {
            props.insert("associatedcompanyid".into(), c.to_string());
            let mut links = BTreeMap::new();
            links.insert(c, true);
            // A few contacts also work with a second company (unlabeled only).
            if rng.random_bool(0.05)
                && let Some(other) = company_ids.choose(&mut rng).copied()
                && other != c
            {
                links.insert(other, false);
            }
            for company in links.keys() {
                store.rev.entry(*company).or_default().insert(id);
            }
            store.assoc.insert(id, links);
        } else {
            props.insert("associatedcompanyid".into(), String::new());
        }
        finish(&mut props, ObjectType::Contacts, id, created, modified);
        store.contacts.insert(SimRecord {
            id,
            properties: props,
            created_at_ms: created,
            updated_at_ms: modified,
            archived: false,
            archived_at_ms: None,
        });
    }
    for (company, contacts) in &store.rev {
        if let Some(record) = store.companies.records.get_mut(company) {
            record
                .properties
                .insert("num_associated_contacts".into(), contacts.len().to_string());
        }
    }
    store.contacts.next_id = store.contacts.next_id.max(next_contact + 1);
    store.companies.next_id = store.companies.next_id.max(next_company + 1);
    store
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn add_owner(store: &Store, props: &mut BTreeMap<String, String>, owner: u64, assigned: i64) {
    props.insert("hubspot_owner_id".into(), owner.to_string());
    props.insert("hs_all_owner_ids".into(), owner.to_string());
    props.insert("hubspot_owner_assigneddate".into(), iso(assigned));
    if let Some(team) = store
        .owners
        .get(&owner)
        .and_then(|o| o.teams.iter().find(|t| t.primary))
    {
        props.insert("hubspot_team_id".into(), team.id.clone());
        props.insert("hs_all_team_ids".into(), team.id.clone());
    }
}

fn finish(
    props: &mut BTreeMap<String, String>,
    object: ObjectType,
    id: u64,
    created: i64,
    modified: i64,
) {
    props.insert("hs_object_id".into(), id.to_string());
    props.insert("createdate".into(), iso(created));
    props.insert(object.last_modified_property().into(), iso(modified));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seed: u64) -> GenSpec {
        GenSpec {
            seed,
            contacts: 300,
            companies: 60,
            owners: 10,
            portal_id: 1,
            now_ms: 1_767_225_600_000,
        }
    }

    #[test]
    fn the_same_seed_generates_the_same_portal() {
        assert_eq!(generate(&spec(7)).snapshot(), generate(&spec(7)).snapshot());
        assert_ne!(generate(&spec(7)).snapshot(), generate(&spec(8)).snapshot());
    }

    #[test]
    fn generated_portals_mix_free_mail_subsidiaries_and_archived_owners() {
        let state = generate(&spec(42)).snapshot();
        assert_eq!(state.contacts.len(), 300);
        let free = state
            .contacts
            .iter()
            .filter(|c| {
                c.properties
                    .get("email")
                    .is_some_and(|e| FREE_MAIL.iter().any(|d| e.ends_with(&format!("@{d}"))))
            })
            .count();
        assert!(free > 10, "only {free} free-mail contacts");
        assert!(
            state
                .companies
                .iter()
                .any(|c| c.properties.contains_key("hs_parent_company_id"))
        );
        assert!(state.owners.iter().any(|o| o.archived));
        assert!(state.contacts.iter().any(|c| {
            c.properties
                .get("associatedcompanyid")
                .is_some_and(|v| v.is_empty())
        }));
    }
}
