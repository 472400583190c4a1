//! Policy parsing and checking: the examples load, and mistakes are reported with place and fix.

use super::*;
use chrono::Utc;

fn issues(text: &str) -> Vec<String> {
    match parse("p.toml", text) {
        Ok((_, warnings)) => warnings.iter().map(ToString::to_string).collect(),
        Err(issues) => issues.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn every_example_policy_loads_without_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/policies");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("config/policies exists") {
        let path = entry.expect("readable dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !name.ends_with(".toml") || name.ends_with(".fixtures.toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable policy");
        match parse(name, &text) {
            Ok((policy, warnings)) => {
                assert!(warnings.is_empty(), "{name}: {warnings:#?}");
                assert_eq!(policy.version.len(), 16);
                n += 1;
            }
            Err(issues) => panic!(
                "{name}: {}",
                issues
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }
    assert!(n >= 2, "expected several example policies, found {n}");
}

#[test]
fn the_version_is_a_hash_of_the_file_content() {
    let a = "[default]\naction = \"exception\"\n";
    let b = "[default]\naction = \"exception\" # changed\n";
    let (pa, _) = parse("a", a).unwrap();
    let (pa2, _) = parse("a2", a).unwrap();
    let (pb, _) = parse("b", b).unwrap();
    assert_eq!(pa.version, pa2.version);
    assert_ne!(pa.version, pb.version);
}

#[test]
fn syntax_errors_name_line_and_column() {
    let got = issues("[default]\naction = \"pool\"\npool = \n");
    assert_eq!(got.len(), 1);
    assert!(got[0].starts_with("p.toml:3:"), "{got:?}");
}

#[test]
fn unknown_keys_are_errors_with_their_place() {
    let got = issues("[default]\naction = \"exception\"\nflavour = 1\n");
    assert!(
        got[0].starts_with("p.toml:3:1: error: unknown field `flavour`"),
        "{got:?}"
    );
}

#[test]
fn every_semantic_problem_is_reported_at_once_with_a_fix() {
    let text = r#"
[reps.al]
owner = "1"
time_zone = "Mars/Olympus"
hours = "9am-5pm"
out_of_office = [{ from = "2026-12-24", to = "2026-12-01" }]

[pools.p]
strategy = "weighted"
members = ["al", "zed", { rep = "al", weight = 0 }]

[pools.q]
strategy = "lottery"
members = []

[[rules]]
name = "to-nowhere"
when = [{ territory = "atlantis" }]
action = "pool"
pool = "nope"

[[rules]]
name = "catch-all"
action = "exception"

[[rules]]
name = "dead"
when = [{ field = "country", equals = "DE" }]
action = "owner"
rep = "al"

[default]
action = "exception"
"#;
    let got = issues(text).join("\n");
    for needle in [
        "p.toml:4:13: error: reps.al.time_zone \"Mars/Olympus\" is not an IANA time zone",
        "p.toml:5:9: error: reps.al.hours \"9am-5pm\" is not a time window",
        "p.toml:6:18: error: reps.al.out_of_office: the window ends before it starts",
        "unknown rep \"zed\"",
        "rep \"al\" has weight 0; fix: use a weight ≥ 1",
        "strategy \"lottery\" is unknown",
        "pools.q.members is empty",
        "unknown territory \"atlantis\"",
        "unknown pool \"nope\"",
        "rule \"dead\" is unreachable: rule \"catch-all\"",
    ] {
        assert!(got.contains(needle), "missing {needle:?} in\n{got}");
    }
    assert!(got.lines().all(|l| l.contains("; fix: ")), "{got}");
}

#[test]
fn a_policy_without_a_default_rule_is_rejected() {
    let got = issues("[settings]\nsticky = true\n").join("\n");
    assert!(got.contains("no [default] rule"), "{got}");
}

#[test]
fn duplicate_tie_breakers_default_parse_and_reject_unknown_or_repeated_names() {
    use crate::matcher::DuplicateTieBreaker as D;
    let tail = "[default]\naction = \"exception\"\n";
    let (p, _) = parse("p.toml", tail).unwrap();
    assert_eq!(
        p.settings.matcher_config().duplicate_tie_breakers,
        D::DEFAULT.to_vec()
    );
    let text = format!("[settings]\nduplicate_tie_breakers = [\"oldest\", \"parent\"]\n{tail}");
    let (p, _) = parse("p.toml", &text).unwrap();
    assert_eq!(
        p.settings.duplicate_tie_breakers,
        vec![D::Oldest, D::Parent]
    );
    let text = format!("[settings]\nduplicate_tie_breakers = []\n{tail}");
    let (p, _) = parse("p.toml", &text).unwrap();
    assert!(
        p.settings
            .matcher_config()
            .duplicate_tie_breakers
            .is_empty()
    );
    let text = format!(
        "[settings]\nduplicate_tie_breakers = [\"oldest\", \"newest\", \"oldest\"]\n{tail}"
    );
    let got = issues(&text).join("\n");
    assert!(
        got.contains("p.toml:2:")
            && got.contains("unknown tie-breaker \"newest\"")
            && got.contains("active_owner, parent, oldest or most_contacts"),
        "{got}"
    );
    assert!(got.contains("lists \"oldest\" twice"), "{got}");
}

#[test]
fn overlapping_rules_are_warned_about() {
    let text = r#"
[reps.a]
owner = "1"
[[rules]]
name = "first"
when = [{ field = "country", in = ["DE", "FR"] }]
action = "owner"
rep = "a"
[[rules]]
name = "second"
when = [{ field = "country", in = ["fr", "ES"] }]
action = "keep"
[default]
action = "exception"
"#;
    let got = issues(text).join("\n");
    assert!(
        got.contains("warning: rules \"first\" and \"second\" overlap"),
        "{got}"
    );
}

#[test]
fn working_hours_follow_the_reps_zone_across_dst() {
    use chrono::TimeZone;
    let text = r#"
[reps.ny]
owner = "1"
time_zone = "America/New_York"
hours = "09:00-17:00"
days = "mon-fri"
[pools.p]
strategy = "round_robin"
members = ["ny"]
[default]
action = "pool"
pool = "p"
"#;
    let (policy, _) = parse("p", text).unwrap();
    let rep = &policy.reps["ny"];
    let tz = rep.zone(None, None);
    // 13:30 UTC is 09:30 in New York in winter (EST, UTC-5) but 09:30 in summer too
    // only because of DST (EDT, UTC-4: 13:30 UTC = 09:30). 13:30 UTC on the Friday
    // before the March switch is 08:30 EST: off hours.
    let before = Utc.with_ymd_and_hms(2026, 3, 6, 13, 30, 0).unwrap();
    let after = Utc.with_ymd_and_hms(2026, 3, 9, 13, 30, 0).unwrap();
    assert!(matches!(
        rep.availability(None, tz, before),
        Availability::OffHours(_)
    ));
    assert_eq!(rep.availability(None, tz, after), Availability::Available);
    // Saturday is never a working day.
    let saturday = Utc.with_ymd_and_hms(2026, 3, 7, 15, 0, 0).unwrap();
    assert!(matches!(
        rep.availability(None, tz, saturday),
        Availability::OffHours(_)
    ));
}

#[test]
fn night_shifts_wrap_past_midnight_and_belong_to_the_day_they_start() {
    use chrono::NaiveTime;
    let h = WorkingHours {
        start: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
        end: NaiveTime::from_hms_opt(6, 0, 0).unwrap(),
        days: [false, false, false, false, true, false, false], // Friday night only
    };
    let fri = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let sat = chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    assert!(h.contains(fri, NaiveTime::from_hms_opt(23, 0, 0).unwrap()));
    assert!(h.contains(sat, NaiveTime::from_hms_opt(5, 0, 0).unwrap()));
    assert!(!h.contains(sat, NaiveTime::from_hms_opt(23, 0, 0).unwrap()));
    assert!(!h.contains(fri, NaiveTime::from_hms_opt(5, 0, 0).unwrap()));
}

#[test]
fn reps_missing_or_inactive_in_the_mirror_are_reported() {
    let text = "[reps.a]\nowner = \"1\"\n[reps.b]\nowner = \"2\"\n[reps.c]\nowner = \"3\"\n[default]\naction = \"exception\"\n";
    let (policy, _) = parse("p.toml", text).unwrap();
    let owner = |id: &str, active: bool| crate::domain::OwnerRecord {
        id: crate::domain::OwnerId::new(id),
        kind: crate::domain::OwnerKind::User,
        email: None,
        name: id.into(),
        active,
        teams: Vec::new(),
        time_zone: None,
        manager_id: None,
        user_id: None,
        updated_at: None,
    };
    let got = policy.check_roster(&[owner("1", true), owner("2", false)]);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].contains("reps.b (2) is inactive"), "{got:?}");
    assert!(
        got[1].contains("reps.c.owner \"3\" is not an owner in the mirror"),
        "{got:?}"
    );
}

fn person_in(country: Option<&str>) -> crate::domain::PersonRecord {
    crate::domain::PersonRecord {
        id: crate::domain::RecordId::new("1"),
        object: crate::domain::ObjectKind::Contact,
        email: Some("a@example.com".into()),
        first_name: None,
        last_name: None,
        company: None,
        website: None,
        country: country.map(str::to_owned),
        state: None,
        owner_id: None,
        accounts: None,
        owner_assigned_at: None,
        converted: false,
        created_at: None,
        updated_at: Utc::now(),
        fields: std::collections::BTreeMap::new(),
        raw: serde_json::Value::Null,
    }
}

fn account_in(country: Option<&str>) -> crate::domain::AccountRecord {
    crate::domain::AccountRecord {
        id: crate::domain::RecordId::new("A1"),
        name: Some("Acme".into()),
        domain: Some("acme.example".into()),
        website: None,
        extra_domains: Vec::new(),
        country: country.map(str::to_owned),
        state: None,
        parent_id: None,
        owner_id: None,
        employees: None,
        industry: None,
        created_at: None,
        updated_at: Utc::now(),
        fields: std::collections::BTreeMap::new(),
        raw: serde_json::Value::Null,
    }
}

const COUNTRY_POLICY: &str = r#"
[territories.dach]
countries = ["DE", "Austria", "schweiz"]

[territories.homeland]
countries = ["Atlantis"]

[[rules]]
name = "france-or-spain"
when = [{ field = "country", in = ["France", "ES"] }]
action = "keep"

[[rules]]
name = "us-accounts"
when = [{ field = "account.country", equals = "United States" }]
action = "keep"

[[rules]]
name = "dach"
when = [{ territory = "dach" }]
action = "keep"

[[rules]]
name = "homeland"
when = [{ territory = "homeland" }]
action = "keep"

[default]
action = "exception"
"#;

/// Names of the territories a record with this country (and account country) is in.
fn territories_for(policy: &Policy, country: Option<&str>, account: Option<&str>) -> Vec<String> {
    let person = person_in(country);
    let acct = account.map(|c| account_in(Some(c)));
    let status = if acct.is_some() {
        crate::reconcile::matching::MatchStatus::Matched
    } else {
        crate::reconcile::matching::MatchStatus::Unmatched
    };
    let subject = Subject::new(&person, acct.as_ref(), status);
    policy
        .territories_of(&subject)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[test]
fn territory_countries_match_codes_names_and_local_names_alike() {
    let (policy, _) = parse("p.toml", COUNTRY_POLICY).unwrap();
    for value in [
        "DE",
        "de",
        "Germany",
        "Deutschland",
        "DEU",
        " germany ",
        "AT",
        "Österreich",
        "Switzerland",
        "CH",
    ] {
        assert_eq!(
            territories_for(&policy, Some(value), None),
            vec!["dach"],
            "{value}"
        );
    }
    for value in ["FR", "France", "United States", "Denmark", "Narnia"] {
        assert!(
            territories_for(&policy, Some(value), None).is_empty(),
            "{value}"
        );
    }
    // The matched account's country decides, whatever the record says.
    assert_eq!(
        territories_for(&policy, Some("France"), Some("Deutschland")),
        vec!["dach"]
    );
    assert!(territories_for(&policy, Some("Germany"), Some("FR")).is_empty());
}

#[test]
fn values_that_are_no_country_still_compare_as_text() {
    let (policy, _) = parse("p.toml", COUNTRY_POLICY).unwrap();
    for value in ["Atlantis", "atlantis", " ATLANTIS "] {
        assert_eq!(
            territories_for(&policy, Some(value), None),
            vec!["homeland"],
            "{value}"
        );
    }
    assert!(territories_for(&policy, Some("Atlantida"), None).is_empty());
    assert!(territories_for(&policy, None, None).is_empty());
    assert!(territories_for(&policy, Some("  "), None).is_empty());
}

#[test]
fn country_conditions_compare_country_codes() {
    let (policy, _) = parse("p.toml", COUNTRY_POLICY).unwrap();
    let holds = |rule: &str, country: Option<&str>, account: Option<&str>| {
        let person = person_in(country);
        let acct = account.map(|c| account_in(Some(c)));
        let subject = Subject::new(
            &person,
            acct.as_ref(),
            crate::reconcile::matching::MatchStatus::Matched,
        );
        let rule = policy.rule(rule).expect("the rule exists");
        rule.conditions.iter().all(|c| policy.holds(c, &subject))
    };
    for value in ["FR", "fr", "France", "ES", "Spain", "España"] {
        assert!(holds("france-or-spain", Some(value), None), "{value}");
    }
    for value in ["DE", "Frankreich", ""] {
        assert!(!holds("france-or-spain", Some(value), None), "{value}");
    }
    for value in ["US", "USA", "U.S.A.", "united states of america"] {
        assert!(holds("us-accounts", None, Some(value)), "{value}");
    }
    // `account.country` reads the account, not the record.
    assert!(!holds("us-accounts", Some("US"), Some("CA")));
    assert!(!holds("us-accounts", Some("US"), None));
}

#[test]
fn a_country_value_that_is_no_country_is_warned_about_with_its_place() {
    let text = COUNTRY_POLICY.replace("in = [\"France\", \"ES\"]", "in = [\"France\", \"Frnace\"]");
    let got = issues(&text);
    let homeland: Vec<&String> = got.iter().filter(|l| l.contains("Atlantis")).collect();
    assert_eq!(homeland.len(), 1, "{got:#?}");
    assert!(
        homeland[0].starts_with(
            "p.toml:6:14: warning: territories.homeland.countries: \"Atlantis\" is not a country"
        ),
        "{got:#?}"
    );
    assert!(
        homeland[0].contains("; fix: write an ISO 3166-1 alpha-2 code"),
        "{got:#?}"
    );
    let typo: Vec<&String> = got.iter().filter(|l| l.contains("Frnace")).collect();
    assert_eq!(typo.len(), 1, "{got:#?}");
    assert!(typo[0].starts_with("p.toml:10:"), "{got:#?}");
    assert!(typo[0].contains("rules.france-or-spain"), "{got:#?}");
    // Codes, names and local names are all fine.
    assert_eq!(got.len(), 2, "{got:#?}");
}

#[test]
fn rules_naming_the_same_country_differently_are_warned_to_overlap() {
    let text = r#"
[reps.a]
owner = "1"
[[rules]]
name = "first"
when = [{ field = "country", in = ["DE", "FR"] }]
action = "owner"
rep = "a"
[[rules]]
name = "second"
when = [{ field = "country", in = ["Deutschland", "ES"] }]
action = "keep"
[default]
action = "exception"
"#;
    let got = issues(text).join("\n");
    assert!(
        got.contains("warning: rules \"first\" and \"second\" overlap: country [\"Deutschland\"]"),
        "{got}"
    );
}
