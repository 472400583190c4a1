//! Behaviour of the matcher as a RevOps user sees it: which account a person lands on,
//! when it abstains, and what it says about it.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};

use super::*;
use crate::domain::{AccountLink, ObjectKind, OwnerKind};

pub(super) fn account(id: &str, name: &str, website: &str) -> AccountRecord {
    AccountRecord {
        id: RecordId::new(id),
        name: (!name.is_empty()).then(|| name.to_owned()),
        domain: None,
        website: (!website.is_empty()).then(|| website.to_owned()),
        extra_domains: Vec::new(),
        country: None,
        state: None,
        parent_id: None,
        owner_id: None,
        employees: None,
        industry: None,
        created_at: None,
        updated_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        fields: BTreeMap::new(),
        raw: serde_json::Value::Null,
    }
}

fn owner(id: &str, active: bool) -> OwnerRecord {
    OwnerRecord {
        id: OwnerId::new(id),
        kind: OwnerKind::User,
        email: None,
        name: id.to_owned(),
        active,
        teams: Vec::new(),
        time_zone: None,
        manager_id: None,
        user_id: None,
        updated_at: None,
    }
}

fn input(email: &str, company: &str, country: &str) -> MatchInput {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    MatchInput {
        email: opt(email),
        company: opt(company),
        website: None,
        country: opt(country),
        primary_account: None,
        person_name: None,
    }
}

fn matcher(accounts: &[AccountRecord]) -> Matcher {
    Matcher::new(accounts, &[], &MatcherConfig::default())
}

fn matched_id(result: &MatchResult) -> Option<&str> {
    (result.status == MatchStatus::Matched)
        .then(|| result.account_id.as_ref().map(RecordId::as_str))
        .flatten()
}

#[test]
fn a_work_email_matches_the_account_with_that_domain_even_from_a_subdomain() {
    let m = matcher(&[
        account("1", "Acme Inc", "https://www.acme.com"),
        account("2", "Globex", "globex.com"),
    ]);
    let r = m.match_input(&input("jane@mail.eu.acme.com", "", ""));
    assert_eq!(matched_id(&r), Some("1"));
    assert!(r.confidence >= 0.95);
    assert!(r.reason.contains("acme.com"), "{}", r.reason);
    assert!(
        !r.reason.contains("jane"),
        "reasons never carry the email: {}",
        r.reason
    );
}

#[test]
fn accounts_are_found_by_every_domain_they_are_known_by() {
    let mut a = account("1", "Acme", "acme.com");
    a.domain = Some("acme.io".into());
    a.extra_domains = vec!["acme.co.uk".into()];
    a.fields.insert(
        "hs_additional_domains".into(),
        "acme-labs.com; acme.de".into(),
    );
    let m = matcher(&[a]);
    for email in ["a@acme.io", "a@acme.co.uk", "a@acme-labs.com", "a@acme.de"] {
        assert_eq!(
            matched_id(&m.match_input(&input(email, "", ""))),
            Some("1"),
            "{email}"
        );
    }
}

#[test]
fn free_mail_never_matches_by_domain_and_falls_back_to_the_company_name() {
    // An account that (wrongly) lists gmail.com must not attract every Gmail user.
    let m = matcher(&[
        account("1", "Acme Corporation", "acme.com"),
        account("2", "Gmail Fans", "gmail.com"),
    ]);
    let r = m.match_input(&input("jane@gmail.com", "", ""));
    assert_eq!(r.status, MatchStatus::Unmatched);
    assert!(r.reason.contains("free-mail"), "{}", r.reason);
    let r = m.match_input(&input("jane@gmx.de", "ACME Corp.", ""));
    assert_eq!(matched_id(&r), Some("1"));
    assert_eq!(r.candidates[0].via, MatchVia::Name);
    let r = m.match_input(&input("x@mailinator.com", "", ""));
    assert!(r.reason.contains("disposable"), "{}", r.reason);
}

#[test]
fn a_contact_website_is_used_when_the_email_is_free_mail() {
    let m = matcher(&[account("1", "Acme", "acme.com")]);
    let mut q = input("jane@yahoo.co.uk", "", "");
    q.website = Some("http://shop.ACME.com/about".into());
    let r = m.match_input(&q);
    assert_eq!(matched_id(&r), Some("1"));
    assert_eq!(r.candidates[0].via, MatchVia::Website);
}

#[test]
fn near_names_of_other_companies_are_not_matched() {
    let m = matcher(&[account("1", "Acme Corp", "acme.com")]);
    let r = m.match_input(&input("j@gmail.com", "Acme Capital", ""));
    assert_eq!(r.status, MatchStatus::Unmatched, "{r:?}");
}

#[test]
fn two_unrelated_accounts_with_the_same_name_are_ambiguous_unless_the_country_separates_them() {
    let mut us = account("1", "Summit Consulting LLC", "summitconsulting.com");
    us.country = Some("US".into());
    let mut uk = account("2", "Summit Consulting Ltd", "summit-consulting.co.uk");
    uk.country = Some("GB".into());
    let m = matcher(&[us, uk]);
    for country in ["", "France"] {
        let r = m.match_input(&input("a@gmail.com", "Summit Consulting", country));
        assert_eq!(r.status, MatchStatus::Ambiguous, "{country}: {r:?}");
        assert_eq!(r.candidates.len(), 2);
        assert_eq!(r.account_id, None);
        assert!(r.reason.contains("2 different companies"), "{}", r.reason);
    }
    let r = m.match_input(&input("a@gmail.com", "Summit Consulting", "United Kingdom"));
    assert_eq!(matched_id(&r), Some("2"), "{r:?}");
    assert!(r.reason.contains("country GB"), "{}", r.reason);
    // The email domain or the website separates them too.
    let r = m.match_input(&input("a@summitconsulting.com", "Summit Consulting", ""));
    assert_eq!(matched_id(&r), Some("1"));
    let mut q = input("a@gmail.com", "Summit Consulting", "");
    q.website = Some("https://www.summit-consulting.co.uk/".into());
    assert_eq!(matched_id(&m.match_input(&q)), Some("2"));
}

#[test]
fn country_entities_sharing_a_domain_resolve_by_the_contacts_country_then_the_parent() {
    let mut parent = account("p", "Acme Inc", "acme.com");
    parent.country = Some("US".into());
    let mut de = account("de", "Acme GmbH", "acme.com");
    de.country = Some("DE".into());
    de.parent_id = Some(RecordId::new("p"));
    let mut fr = account("fr", "Acme SAS", "acme.fr");
    fr.country = Some("FR".into());
    fr.parent_id = Some(RecordId::new("p"));
    let m = matcher(&[parent, de, fr]);
    let r = m.match_input(&input("a@acme.com", "", "Germany"));
    assert_eq!(matched_id(&r), Some("de"));
    assert!(r.reason.contains("country DE"), "{}", r.reason);
    let r = m.match_input(&input("a@acme.com", "", "Brazil"));
    assert_eq!(matched_id(&r), Some("p"));
    assert!(r.reason.contains("prefer parent"), "{}", r.reason);
    assert_eq!(
        matched_id(&m.match_input(&input("a@acme.fr", "", "DE"))),
        Some("fr")
    );
}

#[test]
fn tie_breakers_follow_the_configured_order() {
    let mut parent = account("p", "Acme", "acme.com");
    parent.employees = Some(50);
    let mut child = account("c", "Acme Labs", "acme.com");
    child.parent_id = Some(RecordId::new("p"));
    child.employees = Some(500);
    let accounts = [parent, child];
    let child_first = MatcherConfig {
        tie_breakers: vec![TieBreaker::PreferChild],
        ..MatcherConfig::default()
    };
    let m = Matcher::new(&accounts, &[], &child_first);
    assert_eq!(
        matched_id(&m.match_input(&input("a@acme.com", "", ""))),
        Some("c")
    );
    let largest = MatcherConfig {
        tie_breakers: vec![TieBreaker::Largest, TieBreaker::PreferParent],
        ..MatcherConfig::default()
    };
    let m = Matcher::new(&accounts, &[], &largest);
    assert_eq!(
        matched_id(&m.match_input(&input("a@acme.com", "", ""))),
        Some("c")
    );
    let none = MatcherConfig {
        tie_breakers: vec![],
        ..MatcherConfig::default()
    };
    let m = Matcher::new(&accounts, &[], &none);
    assert_eq!(
        m.match_input(&input("a@acme.com", "", "")).status,
        MatchStatus::Ambiguous
    );
}

#[test]
fn crm_duplicates_prefer_the_one_with_an_active_owner_and_otherwise_abstain() {
    let mut a = account("a", "Acme", "acme.com");
    a.owner_id = Some(OwnerId::new("gone"));
    let mut b = account("b", "ACME Inc.", "acme.com");
    b.owner_id = Some(OwnerId::new("rep"));
    let owners = [
        owner("gone", false),
        owner("rep", true),
        owner("rep2", true),
    ];
    let m = Matcher::new(&[a.clone(), b.clone()], &owners, &MatcherConfig::default());
    let r = m.match_input(&input("x@acme.com", "", ""));
    assert_eq!(matched_id(&r), Some("b"));
    assert!(r.reason.contains("active owner"), "{}", r.reason);
    // Indistinguishable duplicates owned by the same rep route the same: the lowest id.
    let mut b2 = b.clone();
    b2.id = RecordId::new("b2");
    let m = Matcher::new(&[b2.clone(), b.clone()], &owners, &MatcherConfig::default());
    let r = m.match_input(&input("x@acme.com", "", ""));
    assert_eq!(matched_id(&r), Some("b"), "{r:?}");
    assert!(r.reason.contains("same owner"), "{}", r.reason);
    // Owned by different active reps and nothing else to go on: ambiguous, both shown.
    b2.owner_id = Some(OwnerId::new("rep2"));
    let m = Matcher::new(&[b.clone(), b2.clone()], &owners, &MatcherConfig::default());
    for q in [
        input("x@acme.com", "", ""),
        input("x@gmail.com", "Acme", ""),
    ] {
        let r = m.match_input(&q);
        assert_eq!(r.status, MatchStatus::Ambiguous, "{r:?}");
        assert_eq!(r.candidates.len(), 2);
    }
}

#[test]
fn crm_duplicates_are_separated_by_age_then_contacts_and_the_policy_can_turn_that_off() {
    let owners = [owner("rep", true), owner("rep2", true)];
    let mut old = account("z-old", "Acme GmbH", "acme.de");
    old.owner_id = Some(OwnerId::new("rep"));
    old.created_at = Some(Utc.with_ymd_and_hms(2019, 5, 1, 0, 0, 0).unwrap());
    let mut new = account("a-new", "ACME", "https://www.acme.de/");
    new.owner_id = Some(OwnerId::new("rep2"));
    new.created_at = Some(Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap());
    let m = Matcher::new(
        &[old.clone(), new.clone()],
        &owners,
        &MatcherConfig::default(),
    );
    let r = m.match_input(&input("x@gmx.de", "Acme", "DE"));
    assert_eq!(matched_id(&r), Some("z-old"), "{r:?}");
    assert!(r.reason.contains("older record"), "{}", r.reason);
    assert!(r.reason.contains("duplicate accounts"), "{}", r.reason);
    // Same age: the one with more contacts.
    new.created_at = old.created_at;
    new.fields
        .insert("num_associated_contacts".into(), "40".into());
    old.fields
        .insert("num_associated_contacts".into(), "3".into());
    let m = Matcher::new(
        &[old.clone(), new.clone()],
        &owners,
        &MatcherConfig::default(),
    );
    let r = m.match_input(&input("x@acme.de", "", ""));
    assert_eq!(matched_id(&r), Some("a-new"), "{r:?}");
    assert!(r.reason.contains("more contacts"), "{}", r.reason);
    // A parent/child pair of one name: the parent.
    let only_parent = MatcherConfig {
        tie_breakers: Vec::new(),
        duplicate_tie_breakers: vec![DuplicateTieBreaker::Parent],
        ..MatcherConfig::default()
    };
    let mut child = new.clone();
    child.parent_id = Some(RecordId::new("z-old"));
    let m = Matcher::new(&[old.clone(), child], &owners, &only_parent);
    let r = m.match_input(&input("x@gmail.com", "Acme", ""));
    assert_eq!(matched_id(&r), Some("z-old"), "{r:?}");
    assert!(r.reason.contains("the parent"), "{}", r.reason);
    // No duplicate tie-breakers: duplicates that route differently are left to a person.
    let abstain = MatcherConfig {
        tie_breakers: Vec::new(),
        duplicate_tie_breakers: Vec::new(),
        ..MatcherConfig::default()
    };
    let m = Matcher::new(&[old, new], &owners, &abstain);
    let r = m.match_input(&input("x@acme.de", "", ""));
    assert_eq!(r.status, MatchStatus::Ambiguous, "{r:?}");
}

#[test]
fn words_around_the_name_do_not_hide_the_company() {
    let mut acme = account("1", "Acme Corp", "acme.com");
    acme.country = Some("US".into());
    let mut de = account("2", "Acme GmbH", "acme.de");
    de.country = Some("DE".into());
    de.parent_id = Some(RecordId::new("1"));
    let m = matcher(&[acme, de, account("3", "Acme Capital", "acmecapital.com")]);
    for typed in [
        "Acme – Sales team",
        "Acme Corp (EMEA)",
        "Acme Marketing Dept",
        "Acme / IT",
        "ACME INC. - Vertrieb",
        "Acme (Abteilung Einkauf)",
        "Acme Departamento de Marketing",
        "Sales - Acme",
        "Acme North America",
        "Acme Inc [USA]",
    ] {
        let r = m.match_input(&input("a@gmail.com", typed, ""));
        assert_eq!(matched_id(&r), Some("1"), "{typed}: {r:?}");
        assert!(r.reason.contains("form without"), "{typed}: {}", r.reason);
    }
    // A country word picks the country entity.
    let r = m.match_input(&input("a@gmail.com", "Acme Germany", ""));
    assert_eq!(matched_id(&r), Some("2"), "{r:?}");
    // The words go, not the company's own: "Acme Capital (EMEA)" is Acme Capital.
    let r = m.match_input(&input("a@gmail.com", "Acme Capital (EMEA)", ""));
    assert_eq!(matched_id(&r), Some("3"), "{r:?}");
    let r = m.match_input(&input("a@gmail.com", "Acme Rockets - Sales", ""));
    assert_eq!(r.status, MatchStatus::Unmatched, "{r:?}");
}

#[test]
fn values_that_are_not_companies_never_match() {
    let m = matcher(&[
        account("1", "Novak GmbH", "novak.de"),
        account("2", "Private Equity Partners", "pep.com"),
        account("3", "Berlin Partners GmbH", "berlin-partners.de"),
        account("4", "None Ltd", "none.co.uk"),
        account("5", "Lyon", "lyon-sa.fr"),
    ]);
    for typed in [
        "Self-employed",
        "self employed",
        "Freelance",
        "Student",
        "Retired",
        "None",
        "n/a",
        "Private",
        "home",
        "-",
        "Selbstständig",
        "Keine Angabe",
        "Indépendant",
        "Autónomo",
        "Libero professionista",
        "ZZP",
        "Egenföretagare",
        "Lyon",
        "München",
        "Department of Physics, University of Lyon",
        "Institut für Informatik, Universität Wien",
    ] {
        let r = m.match_input(&input("a@gmail.com", typed, "DE"));
        assert_eq!(r.status, MatchStatus::Unmatched, "{typed}: {r:?}");
    }
    // The person's own name, in full or as the surname.
    for typed in ["Tomas Novak", "Novak", "T. Novak"] {
        let mut q = input("tomas.novak@gmail.com", typed, "DE");
        q.person_name = Some("Tomas Novak".into());
        let r = m.match_input(&q);
        assert_eq!(r.status, MatchStatus::Unmatched, "{typed}: {r:?}");
        assert!(r.reason.contains("own name"), "{}", r.reason);
    }
    // Someone else typing the company's name still matches it.
    let mut q = input("anna.berg@gmail.com", "Novak GmbH", "DE");
    q.person_name = Some("Anna Berg".into());
    assert_eq!(matched_id(&m.match_input(&q)), Some("1"));
}

#[test]
fn an_unlisted_company_domain_does_not_count_against_a_clear_name() {
    let m = matcher(&[account("1", "Voralum Foods Inc", "voralumfoods.com")]);
    for email in [
        "a@voralumfoods-group.com",
        "a@voralumfoods.de",
        "a@voralumfoodsglobal.com",
        "a@newbrand.io",
    ] {
        let r = m.match_input(&input(email, "Voralum Foods", "US"));
        assert_eq!(matched_id(&r), Some("1"), "{email}: {r:?}");
        let domain = email.split_once('@').unwrap().1;
        assert!(r.reason.contains(domain), "{}", r.reason);
    }
    // A domain that names a longer, other company is left to a person.
    let r = m.match_input(&input("a@voralumfoodsrobotics.com", "Voralum Foods", "US"));
    assert_eq!(r.status, MatchStatus::Ambiguous, "{r:?}");
}

#[test]
fn a_brand_that_is_the_companys_domain_label_finds_the_company() {
    let m = matcher(&[
        account("1", "Tekvin Industries Ltd", "https://www.zanfel.com"),
        account("2", "Anfel Corp", "anfel.com"),
    ]);
    let r = m.match_input(&input("a@gmail.com", "Zanfel", ""));
    assert_eq!(matched_id(&r), Some("1"), "{r:?}");
    assert!(r.reason.contains("zanfel.com"), "{}", r.reason);
    // A website typed into the company field is a website.
    let r = m.match_input(&input("a@gmail.com", "www.zanfel.com", ""));
    assert_eq!(matched_id(&r), Some("1"), "{r:?}");
}

#[test]
fn the_company_name_picks_among_accounts_sharing_a_domain() {
    let m = matcher(&[
        account("1", "Acme Bank", "acme.com"),
        account("2", "Acme Insurance", "acme.com"),
    ]);
    let r = m.match_input(&input("a@acme.com", "ACME Insurance Co.", ""));
    assert_eq!(matched_id(&r), Some("2"));
}

#[test]
fn an_existing_primary_link_is_honoured_first_when_the_account_exists() {
    let m = matcher(&[
        account("1", "Acme", "acme.com"),
        account("2", "Globex", "globex.com"),
    ]);
    let mut person = PersonRecord {
        id: RecordId::new("c1"),
        object: ObjectKind::Contact,
        email: Some("a@acme.com".into()),
        first_name: None,
        last_name: None,
        company: None,
        website: None,
        country: None,
        state: None,
        owner_id: None,
        accounts: Some(vec![AccountLink {
            account_id: RecordId::new("2"),
            primary: true,
        }]),
        owner_assigned_at: None,
        converted: false,
        created_at: None,
        updated_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        fields: BTreeMap::new(),
        raw: serde_json::Value::Null,
    };
    let r = m.match_person(&person);
    assert_eq!(matched_id(&r), Some("2"));
    assert_eq!(r.candidates[0].via, MatchVia::Association);
    assert_eq!(r.confidence, 1.0);
    // A link to an account the mirror does not have falls through to the evidence.
    person.accounts = Some(vec![AccountLink {
        account_id: RecordId::new("404"),
        primary: true,
    }]);
    assert_eq!(matched_id(&m.match_person(&person)), Some("1"));
}

#[test]
fn acronyms_match_only_when_unique() {
    let m = matcher(&[
        account("1", "International Business Machines Corp", "ibm.com"),
        account("2", "Acme", "acme.com"),
    ]);
    let r = m.match_input(&input("a@gmail.com", "IBM", ""));
    assert_eq!(matched_id(&r), Some("1"), "{r:?}");
    let m = matcher(&[
        account("1", "International Business Machines Corp", "ibm.com"),
        account("2", "Institute of Bio Medicine", "ibmed.org"),
    ]);
    let r = m.match_input(&input("a@gmail.com", "IBM", ""));
    assert_ne!(r.status, MatchStatus::Matched, "{r:?}");
}

#[test]
fn a_name_match_against_a_different_company_domain_is_left_to_a_person() {
    let m = matcher(&[account("1", "Acme", "acme.com")]);
    let r = m.match_input(&input("a@acme-rockets.io", "Acme", ""));
    assert_eq!(r.status, MatchStatus::Ambiguous, "{r:?}");
    assert!(r.reason.contains("acme-rockets.io"), "{}", r.reason);
    // An account without any domain can still be matched by name.
    let m = matcher(&[account("1", "Acme", "")]);
    assert_eq!(
        matched_id(&m.match_input(&input("a@acme-rockets.io", "Acme", ""))),
        Some("1")
    );
}

#[test]
fn people_with_no_evidence_are_unmatched_with_a_reason() {
    let m = matcher(&[account("1", "Acme", "acme.com")]);
    let r = m.match_input(&MatchInput::default());
    assert_eq!(r.status, MatchStatus::Unmatched);
    assert_eq!(r.confidence, 0.0);
    assert!(!r.reason.is_empty());
    let r = m.match_input(&input("a@newco.io", "Newco", ""));
    assert_eq!(r.status, MatchStatus::Unmatched);
    assert!(r.reason.contains("newco.io"), "{}", r.reason);
}

#[test]
fn results_do_not_depend_on_account_order_beyond_ids() {
    let accounts = vec![
        account("1", "Acme", "acme.com"),
        account("2", "Acme Europe", "acme.com"),
        account("3", "Globex", "globex.com"),
    ];
    let mut reversed = accounts.clone();
    reversed.reverse();
    let a = matcher(&accounts);
    let b = matcher(&reversed);
    for q in [
        input("x@acme.com", "", ""),
        input("x@gmail.com", "Globex", ""),
    ] {
        let (ra, rb) = (a.match_input(&q), b.match_input(&q));
        assert_eq!(ra.status, rb.status);
        assert_eq!(ra.account_id, rb.account_id);
        let ids = |r: &MatchResult| {
            let mut v: Vec<String> = r
                .candidates
                .iter()
                .map(|c| c.account_id.0.clone())
                .collect();
            v.sort();
            v
        };
        assert_eq!(ids(&ra), ids(&rb));
    }
}

#[test]
fn config_round_trips_through_toml_with_snake_case_tie_breakers() {
    let config: MatcherConfig = toml::from_str(
        "tie_breakers = [\"prefer_child\", \"country_match\"]\nname_threshold = 0.95",
    )
    .unwrap();
    assert_eq!(
        config.tie_breakers,
        vec![TieBreaker::PreferChild, TieBreaker::CountryMatch]
    );
    assert_eq!(config.name_threshold, 0.95);
    assert!(toml::from_str::<MatcherConfig>("tie_breaker = []").is_err());
}

#[test]
fn parent_cycles_and_dangling_parents_do_not_hang_or_panic() {
    let mut a = account("a", "Acme", "acme.com");
    a.parent_id = Some(RecordId::new("b"));
    let mut b = account("b", "Acme Two", "acme.com");
    b.parent_id = Some(RecordId::new("a"));
    let mut c = account("c", "Acme Three", "acme.com");
    c.parent_id = Some(RecordId::new("missing"));
    let m = matcher(&[a, b, c]);
    let r = m.match_input(&input("x@acme.com", "", ""));
    // c has no ancestor among the candidates while a and b are each other's: c is the top.
    assert_eq!(matched_id(&r), Some("c"), "{r:?}");
}

#[test]
fn internationalised_account_websites_match_unicode_and_punycode_emails() {
    let m = matcher(&[account("1", "Müller GmbH", "https://www.müller.de/")]);
    assert_eq!(
        matched_id(&m.match_input(&input("a@müller.de", "", ""))),
        Some("1")
    );
    assert_eq!(
        matched_id(&m.match_input(&input("a@xn--mller-kva.de", "", ""))),
        Some("1")
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn small_matcher() -> Matcher {
        let mut child = account("2", "Acme GmbH", "acme.de");
        child.parent_id = Some(RecordId::new("1"));
        matcher(&[
            account("1", "Acme Inc", "acme.com"),
            child,
            account("3", "International Business Machines", "ibm.com"),
            account("4", "Zörbrück AG", "https://zörbrück.de"),
        ])
    }

    proptest! {
        /// Arbitrary (also non-ASCII, malformed) emails, names, websites and countries never
        /// panic, and the same input always gets the same answer.
        #[test]
        fn arbitrary_input_never_panics_and_is_deterministic(
            email in "\\PC{0,30}(@\\PC{0,20})?",
            company in "\\PC{0,40}",
            website in "\\PC{0,40}",
            country in "\\PC{0,12}",
        ) {
            let m = small_matcher();
            let q = MatchInput {
                email: Some(email),
                company: Some(company.clone()),
                website: Some(website),
                country: Some(country),
                primary_account: None,
                person_name: Some(company.clone()),
            };
            let a = m.match_input(&q);
            let b = m.match_input(&q);
            prop_assert_eq!(&a, &b);
            prop_assert!((0.0..=1.0).contains(&a.confidence));
            prop_assert_eq!(a.account_id.is_some(), a.status == MatchStatus::Matched);
        }
    }
}
