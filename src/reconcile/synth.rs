//! A seeded synthetic org (owners, accounts, people) and a policy over it, for tests,
//! golden files and the reconcile benchmark. Deterministic: same seed, same org.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::domain::{
    AccountLink, AccountRecord, CrmKind, ObjectKind, OwnerId, OwnerKind, OwnerRecord, PersonRecord,
    RecordId, Snapshot,
};

/// SplitMix64: tiny, fast and good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Sizes of a synthetic org.
#[derive(Debug, Clone, Copy)]
pub struct OrgSize {
    pub owners: usize,
    pub accounts: usize,
    pub people: usize,
}

const COUNTRIES: [&str; 12] = [
    "DE", "FR", "GB", "US", "US", "US", "CA", "NL", "SG", "AU", "BR", "JP",
];
const US_STATES: [&str; 6] = ["CA", "NY", "TX", "WA", "MA", "IL"];
const INDUSTRIES: [&str; 5] = [
    "Software",
    "Banking",
    "Retail",
    "Manufacturing",
    "Healthcare",
];

/// The epoch the synthetic org's timestamps are relative to.
pub fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 14, 0, 0)
        .single()
        .expect("valid date")
}

fn owner_id(i: usize) -> OwnerId {
    OwnerId::new(format!("{}", 1000 + i))
}

/// Generate an org. Owner `1000+i` is inactive when `i % 7 == 6`.
pub fn org(seed: u64, size: OrgSize) -> Snapshot {
    let mut rng = Rng::new(seed);
    let base = base_time();
    let owners: Vec<OwnerRecord> = (0..size.owners)
        .map(|i| OwnerRecord {
            id: owner_id(i),
            kind: OwnerKind::User,
            email: Some(format!("rep{i}@vendor.example")),
            name: format!("Rep {i}"),
            active: i % 7 != 6,
            teams: Vec::new(),
            time_zone: None,
            manager_id: None,
            user_id: None,
            updated_at: None,
        })
        .collect();
    let accounts: Vec<AccountRecord> = (0..size.accounts)
        .map(|i| {
            // Every 50th account duplicates its neighbour's domain, country and size, with
            // no owner: no tie-breaker can choose, so people at that domain are ambiguous.
            let twin = matches!(i % 50, 48 | 49);
            let country = if twin {
                "DE"
            } else {
                COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize]
            };
            let domain_index = if i % 50 == 49 { i - 1 } else { i };
            AccountRecord {
                id: RecordId::new(format!("A{i:07}")),
                name: Some(format!("Company {i} Ltd")),
                domain: Some(format!("acct{domain_index}.com")),
                website: None,
                extra_domains: Vec::new(),
                country: Some(country.to_owned()),
                state: (country == "US").then(|| US_STATES[rng.below(6) as usize].to_owned()),
                parent_id: None,
                owner_id: (rng.chance(70) && !twin)
                    .then(|| owner_id(rng.below(size.owners as u64) as usize)),
                employees: Some(match i % 50 {
                    48 | 49 => 200,
                    _ => [12, 80, 450, 2500, 12000][rng.below(5) as usize],
                }),
                industry: Some(INDUSTRIES[rng.below(5) as usize].to_owned()),
                created_at: None,
                updated_at: base - Duration::days(30),
                fields: BTreeMap::new(),
                raw: serde_json::Value::Null,
            }
        })
        .collect();
    let people: Vec<PersonRecord> = (0..size.people)
        .map(|j| {
            let free = rng.chance(20);
            // One person in 25 works at a duplicated (ambiguous) company.
            let account = if rng.chance(4) && size.accounts >= 50 {
                (rng.below(size.accounts as u64 / 50) * 50 + 48) as usize
            } else {
                rng.below(size.accounts.max(1) as u64) as usize
            };
            let new_logo = !free && rng.chance(4);
            let (email, country) = if new_logo {
                // A company nobody has an account for, with no country: unroutable.
                (format!("person{j}@newlogo{j}.io"), None)
            } else if free || size.accounts == 0 {
                (
                    format!("person{j}@gmail.com"),
                    Some(COUNTRIES[rng.below(12) as usize].to_owned()),
                )
            } else {
                (format!("person{j}@acct{account}.com"), None)
            };
            let owner = rng
                .chance(75)
                .then(|| owner_id(rng.below(size.owners as u64) as usize));
            let recent = owner.is_some() && rng.chance(5);
            let assigned_at = match (&owner, recent) {
                (None, _) => None,
                (Some(_), true) => Some(base - Duration::days(2)),
                (Some(_), false) => Some(base - Duration::days(90)),
            };
            PersonRecord {
                id: RecordId::new(format!("{}", 5_000_000 + j)),
                object: ObjectKind::Contact,
                email: Some(email),
                first_name: Some(format!("First{j}")),
                last_name: Some(format!("Last{j}")),
                company: None,
                website: None,
                country,
                state: None,
                owner_id: owner,
                accounts: Some(if !free && !new_logo && rng.chance(30) {
                    vec![AccountLink {
                        account_id: RecordId::new(format!("A{account:07}")),
                        primary: true,
                    }]
                } else {
                    Vec::new()
                }),
                owner_assigned_at: assigned_at,
                converted: false,
                created_at: None,
                updated_at: base - Duration::days(1),
                fields: if rng.chance(5) {
                    BTreeMap::from([("lead_source".to_owned(), "Partner".to_owned())])
                } else {
                    BTreeMap::new()
                },
                raw: serde_json::Value::Null,
            }
        })
        .collect();
    Snapshot {
        crm: Some(CrmKind::Hubspot),
        owners,
        accounts,
        people,
    }
}

/// A policy over [`org`]'s owners with territories, three pool strategies, account-based
/// routing, keep, exceptions and a manual-override window.
pub fn policy_text(owners: usize) -> String {
    let mut s = String::from("[settings]\nname = \"synthetic\"\nmanual_override_days = 7\n\n");
    let zones = [
        "Europe/Berlin",
        "America/New_York",
        "Asia/Singapore",
        "America/Los_Angeles",
    ];
    for i in 0..owners {
        s.push_str(&format!(
            "[reps.r{i}]\nowner = \"{}\"\ntime_zone = \"{}\"\n",
            1000 + i,
            zones[i % 4]
        ));
        if i % 4 == 1 {
            // New York reps work 08:00-20:00 local so the synthetic clock finds some in hours.
            s.push_str("hours = \"08:00-20:00\"\n");
        }
        if i % 9 == 4 {
            s.push_str("out_of_office = [{ from = \"2026-11-20\", to = \"2026-11-30\" }]\n");
        }
        s.push('\n');
    }
    let members = |pick: &dyn Fn(usize) -> bool, weighted: bool| -> String {
        let list: Vec<String> = (0..owners)
            .filter(|i| pick(*i))
            .map(|i| {
                if weighted {
                    format!("{{ rep = \"r{i}\", weight = {} }}", 1 + i % 3)
                } else {
                    format!("\"r{i}\"")
                }
            })
            .collect();
        list.join(", ")
    };
    s.push_str(&format!(
        "[territories.emea]\ncountries = [\"DE\", \"FR\", \"GB\", \"NL\"]\nreps = [{}]\n\n[territories.na]\ncountries = [\"US\", \"CA\"]\nreps = [{}]\n\n[territories.apac]\ncountries = [\"SG\", \"AU\", \"JP\"]\nreps = [{}]\n\n[territories.enterprise]\nemployees = {{ min = 1000 }}\n\n\
[pools.emea]\nstrategy = \"weighted\"\nmembers = [{}]\n\n[pools.na]\nstrategy = \"round_robin\"\nmembers = [{}]\ncap_per_day = 5000\n\n[pools.apac]\nstrategy = \"least_loaded\"\nmembers = [{}]\n\n[pools.overflow]\nstrategy = \"round_robin\"\nmembers = [{}]\n\n",
        members(&|i| i % 4 == 0 || i % 4 == 3, false),
        members(&|i| i % 4 == 1, false),
        members(&|i| i % 4 == 2, false),
        members(&|i| i % 4 == 0 || i % 4 == 3, true),
        members(&|i| i % 4 == 1, false),
        members(&|i| i % 4 == 2, false),
        members(&|_| true, false),
    ));
    s.push_str(
        "[[rules]]\nname = \"partners\"\nwhen = [{ field = \"lead_source\", equals = \"Partner\" }]\naction = \"keep\"\n\n\
[[rules]]\nname = \"enterprise-accounts\"\nwhen = [{ match = \"matched\" }, { territory = \"enterprise\" }]\naction = \"account_owner\"\n\n\
[[rules]]\nname = \"emea\"\nwhen = [{ territory = \"emea\" }]\naction = \"pool\"\npool = \"emea\"\n\n\
[[rules]]\nname = \"na\"\nwhen = [{ territory = \"na\" }]\naction = \"pool\"\npool = \"na\"\n\n\
[[rules]]\nname = \"apac\"\nwhen = [{ territory = \"apac\" }]\naction = \"pool\"\npool = \"apac\"\n\n\
[[rules]]\nname = \"no-country\"\nwhen = [{ match = \"unmatched\" }, { field = \"country\", exists = false }]\naction = \"exception\"\nkind = \"needs_country\"\n\n\
[default]\naction = \"pool\"\npool = \"overflow\"\n",
    );
    s
}

/// Set every planned owner in the snapshot, as a successful apply would.
pub fn apply(snapshot: &mut Snapshot, plan: &super::Plan) {
    let index: std::collections::HashMap<(ObjectKind, &RecordId), usize> = snapshot
        .people
        .iter()
        .enumerate()
        .map(|(i, p)| ((p.object, &p.id), i))
        .collect();
    let mut updates = Vec::new();
    for c in &plan.changes {
        if let Some(i) = index.get(&(c.object, &c.id)) {
            updates.push((*i, c.to.clone()));
        }
    }
    for (i, to) in updates {
        let p = &mut snapshot.people[i];
        p.owner_id = Some(to);
        p.owner_assigned_at = Some(plan.created_at);
    }
}
