//! Seeded generation of a realistic org: users (some inactive, with managers and time
//! zones), queues and their supported objects, accounts with parent/subsidiary
//! hierarchies and country entities, contacts on corporate or free-mail addresses,
//! leads (some converted, some locked by the validation rule), and a recycle bin with
//! deleted and merged records. The same seed always gives the same org.

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::SalesforceSimConfig;
use super::org::{Org, Row};
use super::schema::{FieldType, ObjType, Val};

pub(crate) const FIRST: &[&str] = &[
    "Anna", "Ben", "Chloe", "David", "Elena", "Felix", "Grace", "Hugo", "Ines", "Jonas", "Kara",
    "Liam", "Mia", "Noah", "Olivia", "Paul", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Victor",
    "Wendy", "Xavier", "Yuki", "Zoe", "Lukas", "Sofia", "Mateo", "Aiko",
];
pub(crate) const LAST: &[&str] = &[
    "Schmidt", "Martin", "Smith", "Dubois", "Rossi", "Garcia", "Müller", "Tanaka", "Silva",
    "Jansen", "Brown", "Nguyen", "Kowalski", "Novak", "O'Brien", "Larsen", "Fischer", "Moreau",
    "Lopez", "Weber", "Taylor", "Wilson", "Sato", "Costa", "Bakker",
];
pub(crate) const WORD1: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
    "Aperture",
    "Pied Piper",
    "Massive",
    "Gringotts",
    "Oscorp",
    "Nakatomi",
    "Monarch",
    "Virtucon",
    "Bluth",
    "Dunder",
    "Prestige",
    "Sirius",
    "Zorg",
];
pub(crate) const WORD2: &[&str] = &[
    "Systems",
    "Logistics",
    "Analytics",
    "Foods",
    "Energy",
    "Labs",
    "Media",
    "Health",
    "Robotics",
    "Capital",
    "Software",
    "Industries",
];
pub(crate) const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "gmx.de",
    "icloud.com",
];
const INDUSTRIES: &[&str] = &[
    "Technology",
    "Manufacturing",
    "Finance",
    "Healthcare",
    "Retail",
    "Energy",
    "Media",
    "Transportation",
    "Education",
];
const ACCOUNT_TYPES: &[&str] = &[
    "Customer - Direct",
    "Customer - Channel",
    "Prospect",
    "Partner",
];
const LEAD_STATUS: &[&str] = &[
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Not Converted",
];
pub(crate) const LEAD_SOURCES: &[&str] = &[
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
];

/// Country, time zone, states (empty = none), company suffix, top-level domain.
pub(crate) const COUNTRIES: &[(&str, &str, &[&str], &str, &str)] = &[
    (
        "United States",
        "America/New_York",
        &["CA", "NY", "TX", "WA", "MA"],
        "Inc.",
        "com",
    ),
    ("Germany", "Europe/Berlin", &[], "GmbH", "de"),
    ("United Kingdom", "Europe/London", &[], "Ltd", "co.uk"),
    ("France", "Europe/Paris", &[], "SAS", "fr"),
    (
        "Canada",
        "America/Toronto",
        &["ON", "QC", "BC"],
        "Corp.",
        "ca",
    ),
    (
        "Australia",
        "Australia/Sydney",
        &["NSW", "VIC"],
        "Pty Ltd",
        "com.au",
    ),
    ("Japan", "Asia/Tokyo", &[], "K.K.", "jp"),
    ("Netherlands", "Europe/Amsterdam", &[], "B.V.", "nl"),
    ("Spain", "Europe/Madrid", &[], "S.L.", "es"),
    ("Brazil", "America/Sao_Paulo", &[], "Ltda", "com.br"),
];

/// Queue names, and whether each may own Leads (the third supports only Cases).
const QUEUES: &[(&str, bool)] = &[
    ("Lead Intake", true),
    ("EMEA Leads", true),
    ("Support Cases", false),
    ("APAC Leads", true),
    ("Partner Leads", true),
];

/// A row with every field null, booleans false (booleans are never null).
pub(crate) fn blank(obj: ObjType, id: String) -> Vec<Val> {
    let mut vals: Vec<Val> = obj
        .fields()
        .iter()
        .map(|f| {
            if f.ty == FieldType::Boolean {
                Val::Bool(false)
            } else {
                Val::Null
            }
        })
        .collect();
    vals[0] = Val::Str(id.into());
    vals
}

struct Gen<'a> {
    rng: StdRng,
    org: Org,
    now: i64,
    config: &'a SalesforceSimConfig,
    /// A few seconds in which many records were stamped together (imports, mass updates).
    import_seconds: Vec<i64>,
}

/// Builds the org described by `config`.
pub(crate) fn generate(config: &SalesforceSimConfig) -> Org {
    let now = Utc::now().timestamp();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let history = i64::from(config.history_days.max(1)) * 86_400;
    let import_seconds = (0..8)
        .map(|_| now - rng.random_range(60..history))
        .collect();
    let mut g = Gen {
        rng,
        org: Org::new(config.org_id.clone()),
        now,
        config,
        import_seconds,
    };
    let users = g.users();
    let queues = g.queues(&users);
    let accounts = g.accounts(&users);
    let contacts = g.contacts(&users, &accounts);
    g.leads(&users, &queues, &accounts, &contacts);
    g.recycle_bin();
    g.org
}

impl Gen<'_> {
    fn push(&mut self, obj: ObjType, vals: Vec<Val>) {
        self.org.insert(obj, vals, None);
    }

    fn new_id(&mut self, obj: ObjType) -> String {
        self.org.ids.next(obj.key_prefix())
    }

    /// CreatedDate within two years; SystemModstamp within the history window, some
    /// shared by many records; LastModifiedDate sometimes behind SystemModstamp (a
    /// system-only bump).
    fn stamps(&mut self, vals: &mut [Val], obj: ObjType) {
        let history = i64::from(self.config.history_days.max(1)) * 86_400;
        let created = self.now
            - self
                .rng
                .random_range(history..(730 * 86_400).max(history + 1));
        let modstamp = if self.rng.random_bool(0.2) {
            *self
                .import_seconds
                .choose(&mut self.rng)
                .expect("import seconds are generated")
        } else {
            self.now - self.rng.random_range(30..history)
        };
        let last_modified = if self.rng.random_bool(0.1) {
            modstamp - self.rng.random_range(1..86_400)
        } else {
            modstamp
        };
        if let Some(i) = obj.field_index("CreatedDate") {
            vals[i] = Val::DateTime(created);
        }
        if let Some(i) = obj.field_index("LastModifiedDate") {
            vals[i] = Val::DateTime(last_modified.max(created));
        }
        vals[obj.idx("SystemModstamp")] = Val::DateTime(modstamp.max(created));
    }

    fn person_name(&mut self) -> (String, String) {
        let first = FIRST.choose(&mut self.rng).expect("names");
        let last = LAST.choose(&mut self.rng).expect("names");
        ((*first).to_owned(), (*last).to_owned())
    }

    fn users(&mut self) -> Vec<(String, bool, usize)> {
        let obj = ObjType::User;
        let mut users = Vec::new();
        let n = self.config.users.max(1);
        let managers = (n / 6).max(1);
        for i in 0..n {
            let id = self.new_id(obj);
            let mut v = blank(obj, id.clone());
            let (first, last, username, active, country) = if i == 0 {
                (
                    "Integration".to_owned(),
                    "User".to_owned(),
                    self.config.username.clone(),
                    true,
                    0,
                )
            } else {
                let (first, last) = self.person_name();
                let username = format!(
                    "{}.{}{}@leadroute-sim.example",
                    ascii(&first),
                    ascii(&last),
                    i
                );
                // Every seventh user has left the company.
                let active = i % 7 != 6;
                let country = if i <= COUNTRIES.len() * 2 {
                    (i - 1) % COUNTRIES.len()
                } else {
                    self.rng.random_range(0..COUNTRIES.len())
                };
                (first, last, username, active, country)
            };
            let (country_name, tz, ..) = COUNTRIES[country];
            v[obj.idx("Username")] = Val::str(username.clone());
            v[obj.idx("FirstName")] = Val::str(first.clone());
            v[obj.idx("LastName")] = Val::str(last.clone());
            v[obj.idx("Name")] = Val::str(format!("{first} {last}"));
            v[obj.idx("Email")] = Val::str(username.replace("@", "@mail."));
            v[obj.idx("IsActive")] = Val::Bool(active);
            v[obj.idx("UserType")] = Val::str("Standard");
            v[obj.idx("TimeZoneSidKey")] = Val::str(tz);
            v[obj.idx("Country")] = Val::str(country_name);
            if i > managers {
                let manager: &(String, bool, usize) = &users[self
                    .rng
                    .random_range(1..=managers.min(users.len() - 1).max(1))];
                v[obj.idx("ManagerId")] = Val::str(manager.0.clone());
            }
            self.stamps(&mut v, obj);
            self.push(obj, v);
            users.push((id, active, country));
        }
        self.org.api_user_id = users[0].0.clone();
        users
    }

    /// Queues (and one public group, which is not a queue), with members and the
    /// objects each queue may own. Returns the ids of queues that may own Leads.
    fn queues(&mut self, users: &[(String, bool, usize)]) -> Vec<String> {
        let mut lead_queues = Vec::new();
        let owner = users[0].0.clone();
        let active: Vec<&String> = users.iter().filter(|u| u.1).map(|u| &u.0).collect();
        let mut groups: Vec<(String, bool, bool)> = Vec::new();
        for i in 0..self.config.queues {
            let (name, owns_leads) = QUEUES
                .get(i)
                .map(|(n, l)| ((*n).to_owned(), *l))
                .unwrap_or_else(|| (format!("Lead Queue {i}"), true));
            groups.push((name, true, owns_leads));
        }
        groups.push(("All Sales".to_owned(), false, false));
        for (name, is_queue, owns_leads) in groups {
            let obj = ObjType::Group;
            let id = self.new_id(obj);
            let mut v = blank(obj, id.clone());
            v[obj.idx("Name")] = Val::str(name.clone());
            v[obj.idx("DeveloperName")] = Val::str(name.replace(' ', "_"));
            v[obj.idx("Type")] = Val::str(if is_queue { "Queue" } else { "Regular" });
            if is_queue {
                v[obj.idx("Email")] = Val::str(format!(
                    "{}@leadroute-sim.example",
                    name.to_lowercase().replace(' ', "-")
                ));
            }
            v[obj.idx("OwnerId")] = Val::str(owner.clone());
            self.stamps(&mut v, obj);
            let stamp = v[obj.idx("SystemModstamp")].clone();
            self.push(obj, v);
            if is_queue {
                let supported: &[&str] = if owns_leads {
                    &["Lead", "Case"]
                } else {
                    &["Case"]
                };
                for sobject in supported {
                    let qs = ObjType::QueueSobject;
                    let qid = self.new_id(qs);
                    let mut q = blank(qs, qid);
                    q[qs.idx("QueueId")] = Val::str(id.clone());
                    q[qs.idx("SobjectType")] = Val::str(*sobject);
                    q[qs.idx("SystemModstamp")] = stamp.clone();
                    self.push(qs, q);
                }
                if owns_leads {
                    lead_queues.push(id.clone());
                }
            }
            for _ in 0..3.min(active.len()) {
                let gm = ObjType::GroupMember;
                let mid = self.new_id(gm);
                let mut m = blank(gm, mid);
                m[gm.idx("GroupId")] = Val::str(id.clone());
                m[gm.idx("UserOrGroupId")] =
                    Val::str((*active.choose(&mut self.rng).expect("active users")).clone());
                m[gm.idx("SystemModstamp")] = stamp.clone();
                self.push(gm, m);
            }
        }
        lead_queues
    }

    fn owner(&mut self, users: &[(String, bool, usize)], active_only: bool) -> String {
        loop {
            let user = &users[self.rng.random_range(0..users.len())];
            // The integration user rarely owns business records.
            if users.len() > 1 && user.0 == users[0].0 {
                continue;
            }
            if user.1 || !active_only {
                return user.0.clone();
            }
        }
    }

    /// Accounts: about 70% top-level companies, the rest subsidiaries or country
    /// entities of one of them. Returns (id, name, domain, country index).
    fn accounts(
        &mut self,
        users: &[(String, bool, usize)],
    ) -> Vec<(String, String, String, usize)> {
        let obj = ObjType::Account;
        let mut out: Vec<(String, String, String, usize)> = Vec::new();
        let mut tops: Vec<usize> = Vec::new();
        for i in 0..self.config.accounts {
            let id = self.new_id(obj);
            let mut v = blank(obj, id.clone());
            let subsidiary = !tops.is_empty() && self.rng.random_bool(0.3);
            let (name, domain, country, parent) = if subsidiary {
                let parent = tops[self.rng.random_range(0..tops.len())];
                let (pid, pname, pdomain, _) = out[parent].clone();
                let country = self.rng.random_range(0..COUNTRIES.len());
                let (_, _, _, suffix, tld) = COUNTRIES[country];
                let base = pdomain.split('.').next().unwrap_or("example").to_owned();
                let name = format!("{} {suffix}", strip_suffix(&pname));
                let domain = if self.rng.random_bool(0.5) {
                    format!("{base}.{tld}")
                } else {
                    pdomain.clone()
                };
                (name, domain, country, Some(pid))
            } else {
                let w1 = WORD1[i % WORD1.len()];
                let w2 = WORD2[(i / WORD1.len()) % WORD2.len()];
                let round = i / (WORD1.len() * WORD2.len());
                let country = self.rng.random_range(0..COUNTRIES.len());
                let (_, _, _, suffix, tld) = COUNTRIES[country];
                let stem = if round == 0 {
                    format!("{w1} {w2}")
                } else {
                    format!("{w1} {w2} {}", round + 1)
                };
                let domain = format!("{}.{tld}", ascii(&stem).replace(' ', ""));
                tops.push(out.len());
                (format!("{stem} {suffix}"), domain, country, None)
            };
            let (country_name, _, states, ..) = COUNTRIES[country];
            v[obj.idx("Name")] = Val::str(name.clone());
            v[obj.idx("Type")] = Val::str(*ACCOUNT_TYPES.choose(&mut self.rng).expect("types"));
            v[obj.idx("ParentId")] = Val::opt_str(parent);
            v[obj.idx("Website")] = if self.rng.random_bool(0.9) {
                Val::str(format!("https://www.{domain}"))
            } else {
                Val::Null
            };
            v[obj.idx("BillingCountry")] = Val::str(country_name);
            if let Some(state) = states.choose(&mut self.rng) {
                v[obj.idx("BillingState")] = Val::str(*state);
            }
            v[obj.idx("Industry")] =
                Val::str(*INDUSTRIES.choose(&mut self.rng).expect("industries"));
            let employees = 10i64.pow(self.rng.random_range(1..5)) * self.rng.random_range(1..10);
            v[obj.idx("NumberOfEmployees")] = Val::Int(employees);
            v[obj.idx("AnnualRevenue")] = Val::Double((employees * 150_000) as f64);
            // Mostly active owners; some accounts still sit with people who left.
            let owner = {
                let active_only = self.rng.random_bool(0.93);
                self.owner(users, active_only)
            };
            v[obj.idx("OwnerId")] = Val::str(owner);
            self.stamps(&mut v, obj);
            self.push(obj, v);
            out.push((id, name, domain, country));
        }
        out
    }

    /// Contacts: most on an account (corporate address at its domain), some private.
    /// Returns (id, account id).
    fn contacts(
        &mut self,
        users: &[(String, bool, usize)],
        accounts: &[(String, String, String, usize)],
    ) -> Vec<(String, Option<String>)> {
        let obj = ObjType::Contact;
        let mut out = Vec::new();
        for i in 0..self.config.contacts {
            let id = self.new_id(obj);
            let mut v = blank(obj, id.clone());
            let (first, last) = self.person_name();
            let account = (!accounts.is_empty() && self.rng.random_bool(0.88))
                .then(|| &accounts[self.rng.random_range(0..accounts.len())]);
            let domain = match account {
                Some(a) if self.rng.random_bool(0.85) => a.2.clone(),
                _ => (*FREE_MAIL.choose(&mut self.rng).expect("free mail")).to_owned(),
            };
            v[obj.idx("FirstName")] = Val::str(first.clone());
            v[obj.idx("LastName")] = Val::str(last.clone());
            v[obj.idx("Name")] = Val::str(format!("{first} {last}"));
            v[obj.idx("Email")] = Val::str(format!(
                "{}.{}{}@{domain}",
                ascii(&first),
                ascii(&last),
                i % 97
            ));
            let country =
                account.map_or_else(|| self.rng.random_range(0..COUNTRIES.len()), |a| a.3);
            v[obj.idx("MailingCountry")] = Val::str(COUNTRIES[country].0);
            v[obj.idx("AccountId")] = Val::opt_str(account.map(|a| a.0.clone()));
            let owner = {
                let active_only = self.rng.random_bool(0.95);
                self.owner(users, active_only)
            };
            v[obj.idx("OwnerId")] = Val::str(owner);
            self.stamps(&mut v, obj);
            self.push(obj, v);
            out.push((id, account.map(|a| a.0.clone())));
        }
        out
    }

    fn leads(
        &mut self,
        users: &[(String, bool, usize)],
        queues: &[String],
        accounts: &[(String, String, String, usize)],
        contacts: &[(String, Option<String>)],
    ) {
        let obj = ObjType::Lead;
        for i in 0..self.config.leads {
            let id = self.new_id(obj);
            let mut v = blank(obj, id.clone());
            let (first, last) = self.person_name();
            let known = !accounts.is_empty() && self.rng.random_bool(0.4);
            let (company, domain, country) = if known {
                let a = &accounts[self.rng.random_range(0..accounts.len())];
                (a.1.clone(), a.2.clone(), a.3)
            } else {
                let w1 = WORD1.choose(&mut self.rng).expect("words");
                let w2 = WORD2.choose(&mut self.rng).expect("words");
                let n = self.rng.random_range(100..999);
                let country = self.rng.random_range(0..COUNTRIES.len());
                let stem = format!("{w1} {w2} {n}");
                let domain = format!("{}.{}", ascii(&stem).replace(' ', ""), COUNTRIES[country].4);
                (format!("{stem} {}", COUNTRIES[country].3), domain, country)
            };
            let free = self.rng.random_bool(0.2);
            let mail_domain = if free {
                (*FREE_MAIL.choose(&mut self.rng).expect("free mail")).to_owned()
            } else {
                domain.clone()
            };
            let (country_name, _, states, ..) = COUNTRIES[country];
            v[obj.idx("FirstName")] = Val::str(first.clone());
            v[obj.idx("LastName")] = Val::str(last.clone());
            v[obj.idx("Name")] = Val::str(format!("{first} {last}"));
            v[obj.idx("Company")] = Val::str(company);
            v[obj.idx("Email")] = Val::str(format!(
                "{}.{}{}@{mail_domain}",
                ascii(&first),
                ascii(&last),
                i % 89
            ));
            if self.rng.random_bool(0.7) {
                v[obj.idx("Website")] = Val::str(format!("www.{domain}"));
            }
            v[obj.idx("Country")] = Val::str(country_name);
            if let Some(state) = states.choose(&mut self.rng) {
                v[obj.idx("State")] = Val::str(*state);
            }
            v[obj.idx("Status")] = Val::str(*LEAD_STATUS.choose(&mut self.rng).expect("status"));
            v[obj.idx("LeadSource")] =
                Val::str(*LEAD_SOURCES.choose(&mut self.rng).expect("source"));
            let owner = if !queues.is_empty() && self.rng.random_bool(0.3) {
                queues[self.rng.random_range(0..queues.len())].clone()
            } else {
                {
                    let active_only = self.rng.random_bool(0.95);
                    self.owner(users, active_only)
                }
            };
            v[obj.idx("OwnerId")] = Val::str(owner);
            v[obj.idx("Routing_Locked__c")] = Val::Bool(
                self.rng
                    .random_bool(self.config.locked_lead_fraction.clamp(0.0, 1.0)),
            );
            self.stamps(&mut v, obj);
            if !contacts.is_empty() && self.rng.random_bool(0.05) {
                let (contact, account) = &contacts[self.rng.random_range(0..contacts.len())];
                if let Some(account) = account {
                    let stamp = v[obj.idx("SystemModstamp")].clone();
                    v[obj.idx("IsConverted")] = Val::Bool(true);
                    v[obj.idx("Status")] = Val::str("Closed - Converted");
                    v[obj.idx("ConvertedAccountId")] = Val::str(account.clone());
                    v[obj.idx("ConvertedContactId")] = Val::str(contact.clone());
                    if let Val::DateTime(secs) = stamp {
                        v[obj.idx("ConvertedDate")] = DateTime::<Utc>::from_timestamp(secs, 0)
                            .map_or(Val::Null, |d| Val::Date(d.date_naive()));
                    }
                }
            }
            self.push(obj, v);
        }
    }

    /// Puts about 0.5% of leads and contacts in the recycle bin (a third of them merge
    /// losers pointing at a live master), deleted within the last ten days.
    fn recycle_bin(&mut self) {
        for obj in [ObjType::Lead, ObjType::Contact] {
            let len = self.org.table(obj).rows.len();
            if len < 3 {
                continue;
            }
            let count = len / 200;
            for n in 0..count {
                let idx = self.rng.random_range(1..len);
                let master_idx = idx - 1;
                let row: &Row = &self.org.table(obj).rows[idx];
                if row.vals[obj.idx("IsDeleted")].as_bool() {
                    continue;
                }
                let master_deleted =
                    self.org.table(obj).rows[master_idx].vals[obj.idx("IsDeleted")].as_bool();
                let mut vals = row.vals.clone();
                let deleted_at = self.now - self.rng.random_range(60..10 * 86_400);
                vals[obj.idx("IsDeleted")] = Val::Bool(true);
                if n % 3 == 0 && !master_deleted {
                    let master = self.org.table(obj).rows[master_idx].id().to_owned();
                    vals[obj.idx("MasterRecordId")] = Val::str(master);
                }
                vals[obj.idx("SystemModstamp")] = Val::DateTime(deleted_at);
                vals[obj.idx("LastModifiedDate")] = Val::DateTime(deleted_at);
                let id = row.id().to_owned();
                self.org.replace(obj, idx, vals, None);
                self.org.log_delete(obj, id, deleted_at);
            }
        }
        self.org.delete_log.sort_by_key(|e| e.at_secs);
    }
}

/// ASCII, lower-case form of a name for addresses and domains.
pub(crate) fn ascii(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'ü' => Some('u'),
            'ö' => Some('o'),
            'ä' => Some('a'),
            '\'' | '.' => None,
            c if c.is_ascii_alphanumeric() || c == ' ' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// "Acme Systems Inc." → "Acme Systems".
fn strip_suffix(name: &str) -> String {
    for (.., suffix, _) in COUNTRIES {
        if let Some(stem) = name.strip_suffix(&format!(" {suffix}")) {
            return stem.to_owned();
        }
    }
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_org() {
        let config = SalesforceSimConfig {
            leads: 50,
            contacts: 30,
            accounts: 20,
            ..SalesforceSimConfig::default()
        };
        let a = generate(&config);
        let b = generate(&config);
        for obj in ObjType::ALL {
            let ids_a: Vec<_> = a.table(obj).rows.iter().map(|r| r.vals.clone()).collect();
            let ids_b: Vec<_> = b.table(obj).rows.iter().map(|r| r.vals.clone()).collect();
            // Stamps are relative to "now", which may tick between the two runs.
            assert_eq!(ids_a.len(), ids_b.len());
            assert_eq!(
                ids_a.iter().map(|v| v[0].clone()).collect::<Vec<_>>(),
                ids_b.iter().map(|v| v[0].clone()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn subsidiaries_point_at_existing_parents() {
        let org = generate(&SalesforceSimConfig::default());
        let obj = ObjType::Account;
        let parent = obj.idx("ParentId");
        let with_parent = org
            .table(obj)
            .rows
            .iter()
            .filter_map(|r| r.vals[parent].as_str())
            .inspect(|p| assert!(org.table(obj).by_id.contains_key(*p)))
            .count();
        assert!(
            with_parent > 10,
            "expected a hierarchy, got {with_parent} children"
        );
    }
}
