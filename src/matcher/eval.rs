//! The matching evaluation: a seeded generator of messy, realistic accounts and contacts
//! with ground truth, and a scorer that prints precision, recall and false-match rate by
//! category.
//!
//! The generated world: organisations with a root account, some with subsidiaries and
//! country entities (own country domains or the root's domain), CRM duplicates (stale
//! copies, a few indistinguishable), small businesses whose "website" is a social page or a
//! shared host, extra domains, accented names and three-word names with acronyms, plus
//! adversarial near-names (same first word, different business). Contacts belong to an
//! account (their entity: the one in their country if their organisation has one there)
//! or to none (new logos, consumers). Each contact is tagged with the situation it tests.
//!
//! A match to any account other than the true one is a false match, including a sibling
//! entity of the right organisation; the report shows those separately as `wrong entity`.
//! Deterministic: a private SplitMix64 generator, so a seed means the same data forever.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use chrono::{TimeZone, Utc};

use super::{MatchInput, MatchStatus, Matcher};
use crate::domain::{AccountRecord, OwnerId, OwnerKind, OwnerRecord, RecordId};

/// How much data to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalConfig {
    pub seed: u64,
    /// Organisations; each has one or more accounts.
    pub orgs: usize,
    pub contacts: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            seed: 42,
            orgs: 20_000,
            contacts: 100_000,
        }
    }
}

/// The situation a contact tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Email at the organisation's own domain.
    WorkEmail,
    /// Email at a subdomain (`mail.eu.acme.com`).
    Subdomain,
    /// Works at a country entity (own ccTLD domain, or the root domain plus country).
    CountryEntity,
    /// Works at a subsidiary with its own domain.
    Subsidiary,
    /// The organisation has CRM duplicates of its account.
    Duplicate,
    /// Free mail; company name written with another legal suffix, case or punctuation.
    FreeMailName,
    /// Free mail; company name with a typo.
    Typo,
    /// Free mail; company given as an acronym.
    Acronym,
    /// Free mail; company website given.
    Website,
    /// Company not in the CRM (corporate email at an unknown domain).
    NewLogo,
    /// Not in the CRM, but named like one that is ("Acme Capital" vs "Acme Corp").
    NearName,
    /// Website on a shared platform or host, belonging to someone else.
    SharedHosting,
    /// Free or disposable mail, no company: nothing to go on.
    NoSignal,
}

impl Category {
    pub fn label(self) -> &'static str {
        match self {
            Category::WorkEmail => "work email",
            Category::Subdomain => "subdomain email",
            Category::CountryEntity => "country entity",
            Category::Subsidiary => "subsidiary",
            Category::Duplicate => "crm duplicate",
            Category::FreeMailName => "free mail + name",
            Category::Typo => "typo in name",
            Category::Acronym => "acronym",
            Category::Website => "free mail + website",
            Category::NewLogo => "new logo",
            Category::NearName => "adversarial near-name",
            Category::SharedHosting => "shared hosting",
            Category::NoSignal => "no signal",
        }
    }
}

/// One contact with the truth.
#[derive(Debug, Clone)]
pub struct EvalCase {
    pub input: MatchInput,
    /// The account the contact really belongs to; `None` when it belongs to none.
    pub expected: Option<RecordId>,
    pub category: Category,
}

/// A generated world.
#[derive(Debug, Clone)]
pub struct EvalSet {
    pub accounts: Vec<AccountRecord>,
    pub owners: Vec<OwnerRecord>,
    pub cases: Vec<EvalCase>,
    /// Account id → organisation number, to tell a wrong entity from a wrong company.
    pub org_of: HashMap<RecordId, usize>,
}

/// Counts for one category (or all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub cases: usize,
    /// Cases whose truth is an account.
    pub positives: usize,
    pub matched: usize,
    pub correct: usize,
    /// Matched to another account of the right organisation.
    pub wrong_entity: usize,
    /// Matched to another organisation, or matched when the truth is no account.
    pub wrong_company: usize,
    pub ambiguous: usize,
    pub unmatched: usize,
}

impl Tally {
    pub fn false_matches(&self) -> usize {
        self.wrong_entity + self.wrong_company
    }
    /// Correct matches over all matches (1 when nothing matched).
    pub fn precision(&self) -> f64 {
        ratio(self.correct, self.matched, 1.0)
    }
    /// Correct matches over cases whose truth is an account.
    pub fn recall(&self) -> f64 {
        ratio(self.correct, self.positives, 1.0)
    }
    /// False matches over all cases.
    pub fn false_match_rate(&self) -> f64 {
        ratio(self.false_matches(), self.cases, 0.0)
    }
    fn add(&mut self, other: &Tally) {
        self.cases += other.cases;
        self.positives += other.positives;
        self.matched += other.matched;
        self.correct += other.correct;
        self.wrong_entity += other.wrong_entity;
        self.wrong_company += other.wrong_company;
        self.ambiguous += other.ambiguous;
        self.unmatched += other.unmatched;
    }
}

fn ratio(num: usize, den: usize, empty: f64) -> f64 {
    if den == 0 {
        empty
    } else {
        num as f64 / den as f64
    }
}

/// The scorer's output.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub by_category: BTreeMap<Category, Tally>,
    pub total: Tally,
    /// A few false matches (category, expected, got, reason) for diagnosis.
    pub false_match_samples: Vec<String>,
}

impl Report {
    /// A fixed-width table: one row per category and a total.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<22} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6} {:>7} {:>9} {:>7} {:>7}",
            "category",
            "cases",
            "truth",
            "matched",
            "correct",
            "w.ent",
            "w.co",
            "abstain",
            "precision",
            "recall",
            "fmr%"
        );
        let row = |out: &mut String, label: &str, t: &Tally| {
            let _ = writeln!(
                out,
                "{:<22} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6} {:>7} {:>9.4} {:>7.4} {:>7.3}",
                label,
                t.cases,
                t.positives,
                t.matched,
                t.correct,
                t.wrong_entity,
                t.wrong_company,
                t.ambiguous + t.unmatched,
                t.precision(),
                t.recall(),
                100.0 * t.false_match_rate()
            );
        };
        for (category, tally) in &self.by_category {
            row(&mut out, category.label(), tally);
        }
        row(&mut out, "ALL", &self.total);
        out
    }
}

/// Run `matcher` over every case and score it.
pub fn score(matcher: &Matcher, set: &EvalSet) -> Report {
    let mut report = Report::default();
    for case in &set.cases {
        let result = matcher.match_input(&case.input);
        let tally = report.by_category.entry(case.category).or_default();
        tally.cases += 1;
        tally.positives += usize::from(case.expected.is_some());
        match result.status {
            MatchStatus::Matched => {
                tally.matched += 1;
                let got = result.account_id.as_ref();
                if got == case.expected.as_ref() {
                    tally.correct += 1;
                } else {
                    let same_org = match (got, &case.expected) {
                        (Some(g), Some(e)) => set.org_of.get(g) == set.org_of.get(e),
                        _ => false,
                    };
                    if same_org {
                        tally.wrong_entity += 1;
                    } else {
                        tally.wrong_company += 1;
                    }
                    if report.false_match_samples.len() < 20 {
                        report.false_match_samples.push(format!(
                            "{}: expected {:?} got {:?} ({}) input {:?}",
                            case.category.label(),
                            case.expected.as_ref().map(|r| r.as_str()),
                            got.map(|r| r.as_str()),
                            result.reason,
                            case.input
                        ));
                    }
                }
            }
            MatchStatus::Ambiguous => tally.ambiguous += 1,
            MatchStatus::Unmatched => tally.unmatched += 1,
        }
    }
    let mut total = Tally::default();
    for tally in report.by_category.values() {
        total.add(tally);
    }
    report.total = total;
    report
}

/// SplitMix64: tiny, fast, and stable across crate versions (unlike `rand`'s `StdRng`).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const SYLLABLES: &[&str] = &[
    "vor", "al", "um", "tek", "lin", "qua", "zer", "bri", "nov", "cal", "dex", "mar", "sol", "vin",
    "tor", "ex", "ia", "on", "ri", "zan", "pel", "gro", "fen", "kas", "lum", "ost", "ber", "cor",
    "dra", "ely", "fal", "gar", "hel", "ira", "jun", "kel", "lor", "mon", "nex", "orb", "pra",
    "rho", "sen", "tal", "ul", "var", "wen", "xan", "yor", "zel",
];
/// Accented syllables: the CRM holds "Zörbrück", the contact types "Zorbruck".
const ACCENTED: &[&str] = &["zö", "brü", "mé", "çal", "ñor", "lå", "ké"];
const INDUSTRY: &[&str] = &[
    "Systems",
    "Logistics",
    "Capital",
    "Foods",
    "Analytics",
    "Health",
    "Energy",
    "Robotics",
    "Labs",
    "Media",
    "Consulting",
    "Partners",
    "Software",
    "Networks",
    "Materials",
    "Pharma",
    "Motors",
    "Textiles",
    "Insurance",
    "Bank",
    "Biotech",
    "Security",
    "Aerospace",
    "Retail",
];
const ADJ: &[&str] = &[
    "Northern",
    "Pacific",
    "United",
    "General",
    "Advanced",
    "Allied",
    "Consolidated",
    "Western",
    "Atlantic",
    "Global",
    "Central",
    "Royal",
    "Coastal",
    "Summit",
    "Pioneer",
];
const NOUN: &[&str] = &[
    "Business",
    "Data",
    "Power",
    "Freight",
    "Medical",
    "Energy",
    "Steel",
    "Chemical",
    "Marine",
    "Aerospace",
    "Timber",
    "Grain",
    "Mining",
    "Transit",
    "Optical",
];
const PLURAL: &[&str] = &[
    "Machines",
    "Systems",
    "Industries",
    "Services",
    "Solutions",
    "Networks",
    "Holdings",
    "Devices",
    "Works",
    "Partners",
];

struct Country {
    code: &'static str,
    name: &'static str,
    local: &'static str,
    tld: &'static str,
    suffixes: &'static [&'static str],
    free_mail: &'static [&'static str],
}

const COUNTRIES: &[Country] = &[
    Country {
        code: "US",
        name: "United States",
        local: "USA",
        tld: "com",
        suffixes: &["Inc.", "Inc", "LLC", "Corp.", "Corporation", "Co."],
        free_mail: &[
            "gmail.com",
            "yahoo.com",
            "outlook.com",
            "aol.com",
            "icloud.com",
            "hotmail.com",
        ],
    },
    Country {
        code: "GB",
        name: "United Kingdom",
        local: "UK",
        tld: "co.uk",
        suffixes: &["Ltd", "Limited", "PLC", "Ltd."],
        free_mail: &[
            "btinternet.com",
            "yahoo.co.uk",
            "hotmail.co.uk",
            "gmail.com",
        ],
    },
    Country {
        code: "DE",
        name: "Germany",
        local: "Deutschland",
        tld: "de",
        suffixes: &["GmbH", "AG", "GmbH & Co. KG", "SE"],
        free_mail: &["gmx.de", "web.de", "t-online.de", "gmail.com"],
    },
    Country {
        code: "FR",
        name: "France",
        local: "France",
        tld: "fr",
        suffixes: &["SA", "SAS", "S.A.S.", "SARL"],
        free_mail: &["orange.fr", "free.fr", "laposte.net", "gmail.com"],
    },
    Country {
        code: "IT",
        name: "Italy",
        local: "Italia",
        tld: "it",
        suffixes: &["S.p.A.", "S.r.l.", "SpA"],
        free_mail: &["libero.it", "virgilio.it", "gmail.com"],
    },
    Country {
        code: "ES",
        name: "Spain",
        local: "España",
        tld: "es",
        suffixes: &["S.L.", "S.A."],
        free_mail: &["telefonica.net", "gmail.com", "hotmail.es"],
    },
    Country {
        code: "NL",
        name: "Netherlands",
        local: "Nederland",
        tld: "nl",
        suffixes: &["B.V.", "N.V.", "BV"],
        free_mail: &["ziggo.nl", "gmail.com", "home.nl"],
    },
    Country {
        code: "SE",
        name: "Sweden",
        local: "Sverige",
        tld: "se",
        suffixes: &["AB"],
        free_mail: &["telia.com", "gmail.com"],
    },
    Country {
        code: "DK",
        name: "Denmark",
        local: "Danmark",
        tld: "dk",
        suffixes: &["A/S", "ApS"],
        free_mail: &["gmail.com", "mail.dk"],
    },
    Country {
        code: "FI",
        name: "Finland",
        local: "Suomi",
        tld: "fi",
        suffixes: &["Oy", "Oyj"],
        free_mail: &["gmail.com", "kolumbus.fi"],
    },
    Country {
        code: "PL",
        name: "Poland",
        local: "Polska",
        tld: "pl",
        suffixes: &["Sp. z o.o.", "S.A."],
        free_mail: &["wp.pl", "onet.pl", "o2.pl"],
    },
    Country {
        code: "JP",
        name: "Japan",
        local: "Japan",
        tld: "co.jp",
        suffixes: &["K.K.", "KK", "Co., Ltd."],
        free_mail: &["yahoo.co.jp", "gmail.com"],
    },
    Country {
        code: "AU",
        name: "Australia",
        local: "Australia",
        tld: "com.au",
        suffixes: &["Pty Ltd", "Pty. Ltd."],
        free_mail: &["bigpond.com", "gmail.com"],
    },
    Country {
        code: "BR",
        name: "Brazil",
        local: "Brasil",
        tld: "com.br",
        suffixes: &["Ltda", "S.A."],
        free_mail: &["uol.com.br", "bol.com.br", "gmail.com"],
    },
    Country {
        code: "RU",
        name: "Russia",
        local: "Rus",
        tld: "ru",
        suffixes: &["OOO"],
        free_mail: &["yandex.ru", "mail.ru"],
    },
    Country {
        code: "CN",
        name: "China",
        local: "China",
        tld: "cn",
        suffixes: &["Co., Ltd."],
        free_mail: &["qq.com", "163.com"],
    },
    Country {
        code: "KR",
        name: "South Korea",
        local: "Korea",
        tld: "co.kr",
        suffixes: &["Co., Ltd."],
        free_mail: &["naver.com", "daum.net"],
    },
];

const DISPOSABLE: &[&str] = &[
    "mailinator.com",
    "guerrillamail.com",
    "yopmail.com",
    "10minutemail.com",
];
const FIRST: &[&str] = &[
    "anna", "ben", "chen", "dara", "eva", "farid", "gita", "hugo", "ines", "jon", "kofi", "lena",
    "mia", "noah", "olga", "priya", "raj", "sara", "tomas", "yuki",
];
const LAST: &[&str] = &[
    "smith", "muller", "garcia", "rossi", "kim", "tanaka", "silva", "novak", "dubois", "berg",
    "patel", "nguyen", "kowalski", "jensen", "ivanova",
];

/// An organisation as the generator knows it.
#[derive(Debug, Clone)]
struct Org {
    /// Words of the name without legal suffix, e.g. `["Voralum", "Foods"]`.
    words: Vec<String>,
    country: usize,
    domain: String,
    /// (account index, country index, own domain) of each entity; the first is the root.
    entities: Vec<(usize, usize, Option<String>)>,
    /// Index of the canonical account (root) — duplicates point elsewhere.
    acronym: Option<String>,
    /// Shared-platform small business: no own domain.
    platform_site: bool,
}

/// Generate a world.
pub fn generate(config: &EvalConfig) -> EvalSet {
    let mut rng = Rng::new(config.seed);
    let stamp = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date");
    let owners: Vec<OwnerRecord> = (0..50)
        .map(|i| OwnerRecord {
            id: OwnerId::new(format!("o{i}")),
            kind: OwnerKind::User,
            email: None,
            name: format!("Rep {i}"),
            // A few reps left the company; their accounts still point at them.
            active: i % 10 != 9,
            teams: Vec::new(),
            time_zone: None,
            manager_id: None,
            user_id: None,
            updated_at: None,
        })
        .collect();
    let active_owner =
        |rng: &mut Rng| OwnerId::new(format!("o{}", rng.below(45) / 9 * 10 + rng.below(9)));

    let mut accounts: Vec<AccountRecord> = Vec::new();
    let mut org_of: HashMap<RecordId, usize> = HashMap::new();
    let mut orgs: Vec<Org> = Vec::new();
    let mut used_bases: HashSet<String> = HashSet::new();
    let mut used_domains: HashSet<String> = HashSet::new();
    let mut new_account = |accounts: &mut Vec<AccountRecord>,
                           org: usize,
                           name: String,
                           website: Option<String>,
                           country: usize| {
        let id = RecordId::new(format!("A{}", accounts.len() + 1));
        org_of.insert(id.clone(), org);
        accounts.push(AccountRecord {
            id,
            name: Some(name),
            domain: None,
            website,
            extra_domains: Vec::new(),
            country: Some(COUNTRIES[country].code.to_owned()),
            state: None,
            parent_id: None,
            owner_id: None,
            employees: None,
            industry: None,
            created_at: None,
            updated_at: stamp,
            fields: BTreeMap::new(),
            raw: serde_json::Value::Null,
        });
        accounts.len() - 1
    };

    for org_ix in 0..config.orgs {
        // Name: a coined word (sometimes accented), an adjective-noun-plural triple with an
        // acronym, or — adversarially — an existing organisation's first word with another
        // industry ("Voralum Capital" beside "Voralum Foods").
        let mut adversarial = org_ix > 0 && rng.chance(0.06);
        let mut triple = !adversarial && rng.chance(0.05);
        let mut words: Vec<String>;
        let mut acronym = None;
        let mut attempts = 0;
        loop {
            // The triple and adversarial name spaces are small: after a few collisions,
            // coin a word instead.
            attempts += 1;
            if attempts > 20 {
                adversarial = false;
                triple = false;
            }
            words = if adversarial {
                let other = &orgs[rng.below(orgs.len())];
                vec![other.words[0].clone(), (*rng.pick(INDUSTRY)).to_owned()]
            } else if triple {
                vec![
                    (*rng.pick(ADJ)).to_owned(),
                    (*rng.pick(NOUN)).to_owned(),
                    (*rng.pick(PLURAL)).to_owned(),
                ]
            } else {
                let mut word = String::new();
                let n = 2 + rng.below(2);
                for i in 0..n {
                    let list = if i == 1 && rng.chance(0.05) {
                        ACCENTED
                    } else {
                        SYLLABLES
                    };
                    let syllable: &&str = rng.pick(list);
                    word.push_str(syllable);
                }
                let mut w = capitalise(&word);
                if rng.chance(0.5) {
                    w = format!("{w} {}", rng.pick(INDUSTRY));
                }
                w.split(' ').map(str::to_owned).collect()
            };
            let key = words.join(" ").to_lowercase();
            if used_bases.insert(key) {
                break;
            }
        }
        if triple {
            acronym = Some(
                words
                    .iter()
                    .map(|w| w.chars().next().unwrap_or('x'))
                    .collect::<String>(),
            );
        }
        let country = if rng.chance(0.55) {
            0
        } else {
            rng.below(COUNTRIES.len())
        };
        let mut domain_base: String = deunicode::deunicode(&words.join("")).to_lowercase();
        domain_base.retain(|c| c.is_ascii_alphanumeric());
        let mut domain = format!(
            "{domain_base}.{}",
            if rng.chance(0.7) {
                "com"
            } else {
                COUNTRIES[country].tld
            }
        );
        while !used_domains.insert(domain.clone()) {
            domain = format!("{domain_base}{}.com", rng.below(1000));
        }
        let platform_site = rng.chance(0.03);
        let website = if platform_site {
            Some(match rng.below(3) {
                0 => format!("https://www.facebook.com/{domain_base}"),
                1 => format!("https://{domain_base}.myshopify.com"),
                _ => format!("https://sites.google.com/view/{domain_base}"),
            })
        } else {
            Some(website_variant(&mut rng, &domain))
        };
        let root_name = format!(
            "{} {}",
            words.join(" "),
            rng.pick(COUNTRIES[country].suffixes)
        );
        let root = new_account(&mut accounts, org_ix, root_name, website, country);
        accounts[root].owner_id = Some(active_owner(&mut rng));
        accounts[root].employees = Some(10 + rng.below(5000) as i64);
        if !platform_site && rng.chance(0.05) {
            let extra = format!("{domain_base}-group.com");
            if used_domains.insert(extra.clone()) {
                accounts[root]
                    .fields
                    .insert("hs_additional_domains".into(), extra);
            }
        }
        let mut entities = vec![(root, country, None)];
        // Country entities and subsidiaries.
        if !platform_site && rng.chance(0.15) {
            for _ in 0..1 + rng.below(3) {
                let c = rng.below(COUNTRIES.len());
                if entities.iter().any(|e| e.1 == c) {
                    continue;
                }
                let own_domain = rng
                    .chance(0.5)
                    .then(|| format!("{domain_base}.{}", COUNTRIES[c].tld));
                let own_domain = own_domain.filter(|d| used_domains.insert(d.clone()));
                let name = if rng.chance(0.5) {
                    format!(
                        "{} {} {}",
                        words.join(" "),
                        COUNTRIES[c].local,
                        rng.pick(COUNTRIES[c].suffixes)
                    )
                } else {
                    format!("{} {}", words.join(" "), rng.pick(COUNTRIES[c].suffixes))
                };
                let site = own_domain.clone().unwrap_or_else(|| domain.clone());
                let child = new_account(
                    &mut accounts,
                    org_ix,
                    name,
                    Some(website_variant(&mut rng, &site)),
                    c,
                );
                accounts[child].parent_id = Some(accounts[root].id.clone());
                accounts[child].owner_id = Some(active_owner(&mut rng));
                accounts[child].employees = Some(5 + rng.below(500) as i64);
                entities.push((child, c, own_domain));
            }
        }
        // CRM duplicates of the root: usually stale (inactive or no owner, no size), a few
        // indistinguishable.
        if !platform_site && rng.chance(0.05) {
            let name = name_variant(&mut rng, &words, country);
            let site = website_variant(&mut rng, &domain);
            let dup = new_account(&mut accounts, org_ix, name, Some(site), country);
            if rng.chance(0.15) {
                accounts[dup].owner_id = accounts[root].owner_id.clone();
                accounts[dup].employees = accounts[root].employees;
            } else if rng.chance(0.5) {
                accounts[dup].owner_id = Some(OwnerId::new(format!("o{}", 9 + 10 * rng.below(5))));
            }
        }
        orgs.push(Org {
            words,
            country,
            domain,
            entities,
            acronym,
            platform_site,
        });
    }

    // Unique acronyms only are fair game for the acronym category.
    let mut acronym_count: HashMap<String, usize> = HashMap::new();
    for org in &orgs {
        if let Some(a) = &org.acronym {
            *acronym_count.entry(a.clone()).or_default() += 1;
        }
    }

    // Accounts per organisation: more than its entities means CRM duplicates.
    let mut accounts_per_org = vec![0usize; orgs.len()];
    for org in org_of.values() {
        accounts_per_org[*org] += 1;
    }
    // First words in use, so a "new logo" is really new.
    let first_words: HashSet<String> = orgs.iter().map(|o| o.words[0].to_lowercase()).collect();

    let mut cases = Vec::with_capacity(config.contacts);
    let mut new_logo_ix = 0usize;
    while cases.len() < config.contacts {
        let org_ix = rng.below(orgs.len());
        let org = &orgs[org_ix];
        let person = format!("{}.{}", rng.pick(FIRST), rng.pick(LAST));
        let roll = rng.below(1000);
        let case = match roll {
            // Work email, possibly at a subdomain; entity by country.
            0..=349 if !org.platform_site => {
                let (entity, c) = pick_entity(&mut rng, org);
                let own = org
                    .entities
                    .iter()
                    .find(|e| e.0 == entity)
                    .and_then(|e| e.2.clone());
                let subdomain = rng.chance(0.12);
                let domain = own.clone().unwrap_or_else(|| org.domain.clone());
                let host = if subdomain {
                    format!("{}.{domain}", rng.pick(&["mail", "eu", "us.corp", "de"]))
                } else {
                    domain
                };
                let category = if subdomain {
                    Category::Subdomain
                } else if entity != org.entities[0].0 {
                    if own.is_some() && rng.chance(0.3) {
                        Category::Subsidiary
                    } else {
                        Category::CountryEntity
                    }
                } else if accounts_per_org[org_ix] > org.entities.len() {
                    Category::Duplicate
                } else {
                    Category::WorkEmail
                };
                let company = rng
                    .chance(0.6)
                    .then(|| entity_name_variant(&mut rng, &accounts[entity]));
                EvalCase {
                    input: MatchInput {
                        email: Some(format!("{person}@{}", case_variant(&mut rng, &host))),
                        company,
                        website: None,
                        country: Some(country_variant(&mut rng, c)),
                        primary_account: None,
                    },
                    expected: Some(accounts[entity].id.clone()),
                    category,
                }
            }
            // Free mail with a company name (legal-suffix / case / punctuation variants).
            350..=549 => {
                let (entity, c) = pick_entity(&mut rng, org);
                let free = rng.pick(COUNTRIES[c].free_mail);
                EvalCase {
                    input: MatchInput {
                        email: Some(format!("{person}@{free}")),
                        company: Some(entity_name_variant(&mut rng, &accounts[entity])),
                        website: None,
                        country: Some(country_variant(&mut rng, c)),
                        primary_account: None,
                    },
                    expected: Some(accounts[entity].id.clone()),
                    category: Category::FreeMailName,
                }
            }
            // Typos.
            550..=619 => {
                let root = org.entities[0].0;
                let variant = entity_name_variant(&mut rng, &accounts[root]);
                let name = typo(&mut rng, &variant);
                EvalCase {
                    input: MatchInput {
                        email: Some(format!(
                            "{person}@{}",
                            rng.pick(COUNTRIES[org.country].free_mail)
                        )),
                        company: Some(name),
                        website: None,
                        country: Some(country_variant(&mut rng, org.country)),
                        primary_account: None,
                    },
                    expected: Some(accounts[root].id.clone()),
                    category: Category::Typo,
                }
            }
            // Acronyms of three-word names.
            620..=649 => {
                let Some((org_ix, acronym)) = (0..50).find_map(|_| {
                    let o = rng.below(orgs.len());
                    orgs[o]
                        .acronym
                        .clone()
                        .filter(|a| acronym_count[a] == 1 && orgs[o].entities.len() == 1)
                        .map(|a| (o, a))
                }) else {
                    continue;
                };
                let org = &orgs[org_ix];
                let root = org.entities[0].0;
                EvalCase {
                    input: MatchInput {
                        email: Some(format!("{person}@gmail.com")),
                        company: Some(acronym.to_uppercase()),
                        website: None,
                        country: Some(country_variant(&mut rng, org.country)),
                        primary_account: None,
                    },
                    expected: Some(accounts[root].id.clone()),
                    category: Category::Acronym,
                }
            }
            // Free mail with the company's website.
            650..=699 if !org.platform_site => {
                let root = org.entities[0].0;
                EvalCase {
                    input: MatchInput {
                        email: Some(format!(
                            "{person}@{}",
                            rng.pick(COUNTRIES[org.country].free_mail)
                        )),
                        company: None,
                        website: Some(website_variant(&mut rng, &org.domain)),
                        country: None,
                        primary_account: None,
                    },
                    expected: Some(accounts[root].id.clone()),
                    category: Category::Website,
                }
            }
            // New logos: unknown company at an unknown domain.
            700..=819 => {
                new_logo_ix += 1;
                let word = capitalise(&format!(
                    "{}{}{}",
                    rng.pick(SYLLABLES),
                    rng.pick(SYLLABLES),
                    rng.pick(SYLLABLES)
                ));
                let key = word.to_lowercase();
                if first_words.contains(&key) {
                    continue;
                }
                let domain = format!("{key}-{new_logo_ix}.io");
                EvalCase {
                    input: MatchInput {
                        email: Some(format!("{person}@{domain}")),
                        company: rng
                            .chance(0.8)
                            .then(|| format!("{word} {}", rng.pick(COUNTRIES[0].suffixes))),
                        website: None,
                        country: Some(country_variant(&mut rng, 0)),
                        primary_account: None,
                    },
                    expected: None,
                    category: Category::NewLogo,
                }
            }
            // Near-names: a company that is not in the CRM but shares a first word.
            820..=899 => {
                let other = rng.pick(INDUSTRY);
                let candidate = format!("{} {other}", org.words[0]);
                if used_bases.contains(&candidate.to_lowercase()) {
                    continue;
                }
                let corporate = rng.chance(0.5);
                let mut d = format!("{}{}", org.words[0].to_lowercase(), other.to_lowercase());
                d.retain(|c| c.is_ascii_alphanumeric());
                let email_domain = if corporate {
                    format!("{d}-x.net")
                } else {
                    (*rng.pick(COUNTRIES[0].free_mail)).to_owned()
                };
                EvalCase {
                    input: MatchInput {
                        email: Some(format!("{person}@{email_domain}")),
                        company: Some(format!(
                            "{candidate} {}",
                            rng.pick(COUNTRIES[org.country].suffixes)
                        )),
                        website: None,
                        country: Some(country_variant(&mut rng, org.country)),
                        primary_account: None,
                    },
                    expected: None,
                    category: Category::NearName,
                }
            }
            // Shared hosting: a website on the same platform/host as some account's, but
            // someone else's shop or page.
            900..=939 => {
                let word = format!(
                    "{}{}{}",
                    rng.pick(SYLLABLES),
                    rng.pick(SYLLABLES),
                    rng.below(100)
                );
                let site = match rng.below(4) {
                    0 => format!("https://www.facebook.com/{word}"),
                    1 => format!("{word}.myshopify.com"),
                    2 => format!("https://sites.google.com/view/{word}"),
                    _ => format!("https://www.linkedin.com/company/{word}"),
                };
                EvalCase {
                    input: MatchInput {
                        email: Some(format!("{person}@gmail.com")),
                        company: None,
                        website: Some(site),
                        country: None,
                        primary_account: None,
                    },
                    expected: None,
                    category: Category::SharedHosting,
                }
            }
            // Nothing to go on.
            940..=999 => {
                let country = rng.below(COUNTRIES.len());
                let domain = if rng.chance(0.3) {
                    rng.pick(DISPOSABLE)
                } else {
                    rng.pick(COUNTRIES[country].free_mail)
                };
                EvalCase {
                    input: MatchInput {
                        email: Some(format!("{person}@{domain}")),
                        company: None,
                        website: None,
                        country: None,
                        primary_account: None,
                    },
                    expected: None,
                    category: Category::NoSignal,
                }
            }
            _ => continue,
        };
        cases.push(case);
    }

    EvalSet {
        accounts,
        owners,
        cases,
        org_of,
    }
}

/// The entity a contact of `org` works at: the one in a randomly chosen country of the
/// organisation's footprint, else the root. Returns (account index, country index).
fn pick_entity(rng: &mut Rng, org: &Org) -> (usize, usize) {
    let e = &org.entities[rng.below(org.entities.len())];
    (e.0, e.1)
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn website_variant(rng: &mut Rng, domain: &str) -> String {
    match rng.below(6) {
        0 => domain.to_owned(),
        1 => format!("www.{domain}"),
        2 => format!("https://www.{domain}/"),
        3 => format!("http://{}", domain.to_uppercase()),
        4 => format!("https://{domain}/en/about-us?ref=crm"),
        _ => format!("https://www.{domain}:443"),
    }
}

fn case_variant(rng: &mut Rng, s: &str) -> String {
    if rng.chance(0.1) {
        s.to_uppercase()
    } else {
        s.to_owned()
    }
}

fn country_variant(rng: &mut Rng, c: usize) -> String {
    let country = &COUNTRIES[c];
    match rng.below(3) {
        0 => country.code.to_owned(),
        1 => country.name.to_owned(),
        _ => country.code.to_lowercase(),
    }
}

/// A name as a person types it: other legal suffix, case, punctuation, "&"/"and", "The",
/// no accents.
fn name_variant(rng: &mut Rng, words: &[String], country: usize) -> String {
    let mut name = words.join(" ");
    if rng.chance(0.3) {
        name = deunicode::deunicode(&name);
    }
    match rng.below(5) {
        0 => {}
        1 => name = format!("{name} {}", rng.pick(COUNTRIES[country].suffixes)),
        2 => name = format!("{name}, {}", rng.pick(COUNTRIES[country].suffixes)),
        3 => name = format!("The {name}"),
        _ => name = format!("{name} {}", rng.pick(COUNTRIES[0].suffixes)),
    }
    match rng.below(4) {
        0 => name.to_uppercase(),
        1 => name.to_lowercase(),
        _ => name,
    }
}

/// A variant of an account's name: its words without the legal suffix, re-suffixed.
fn entity_name_variant(rng: &mut Rng, account: &AccountRecord) -> String {
    let name = account.name.clone().unwrap_or_default();
    let country = COUNTRIES
        .iter()
        .position(|c| Some(c.code) == account.country.as_deref())
        .unwrap_or(0);
    // Drop the legal suffix the generator appended (the longest one that fits).
    let mut base = name.clone();
    let mut suffixes: Vec<&str> = COUNTRIES
        .iter()
        .flat_map(|c| c.suffixes.iter().copied())
        .collect();
    suffixes.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in suffixes {
        if let Some(stripped) = name.strip_suffix(s) {
            base = stripped.trim_end().to_owned();
            break;
        }
    }
    let words: Vec<String> = base.split(' ').map(str::to_owned).collect();
    name_variant(rng, &words, country)
}

/// One typo in the longest word of five letters or more: a dropped, doubled, swapped or
/// replaced letter.
fn typo(rng: &mut Rng, name: &str) -> String {
    let words: Vec<&str> = name.split(' ').collect();
    let Some((wi, word)) = words
        .iter()
        .enumerate()
        .filter(|(_, w)| w.chars().count() >= 6)
        .max_by_key(|(_, w)| w.len())
    else {
        return name.to_owned();
    };
    let mut chars: Vec<char> = word.chars().collect();
    // Keep the first two letters: people rarely mistype the start of a name.
    let at = 2 + rng.below(chars.len() - 3);
    match rng.below(4) {
        0 => {
            chars.remove(at);
        }
        1 => chars.insert(at, chars[at]),
        2 => chars.swap(at, at + 1),
        _ => chars[at] = *rng.pick(&['a', 'e', 'i', 'o', 'u', 'n', 'r']),
    }
    let mut out: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
    out[wi] = chars.into_iter().collect();
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::MatcherConfig;

    #[test]
    fn the_generator_is_deterministic_for_a_seed() {
        let config = EvalConfig {
            seed: 7,
            orgs: 300,
            contacts: 500,
        };
        let (a, b) = (generate(&config), generate(&config));
        assert_eq!(a.accounts, b.accounts);
        assert_eq!(
            a.cases.iter().map(|c| &c.input).collect::<Vec<_>>(),
            b.cases.iter().map(|c| &c.input).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_matcher_meets_its_precision_and_false_match_targets_on_a_seeded_set() {
        let set = generate(&EvalConfig {
            seed: 42,
            orgs: 3_000,
            contacts: 8_000,
        });
        let matcher = Matcher::new(&set.accounts, &set.owners, &MatcherConfig::default());
        let report = score(&matcher, &set);
        println!("{}", report.table());
        for sample in &report.false_match_samples {
            println!("{sample}");
        }
        assert!(
            report.by_category.len() >= 12,
            "every category is generated"
        );
        let total = report.total;
        assert!(
            total.precision() >= 0.99,
            "precision {:.4}",
            total.precision()
        );
        assert!(
            total.false_match_rate() <= 0.005,
            "fmr {:.4}",
            total.false_match_rate()
        );
        // Recall floor: catches a matcher that meets precision by abstaining on everything.
        assert!(total.recall() >= 0.80, "recall {:.4}", total.recall());
    }
}
