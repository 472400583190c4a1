//! `leadroute report distribution|fairness|speed` over a demo org's store: the numbers
//! agree with the ledger and the journal the demo's backfill wrote, every format
//! parses, bad input is refused with the fix, and a closed stdout is a quiet exit.

use std::collections::BTreeMap;

use leadroute::store::Store;
use leadroute_crm::CrmKind;

use crate::cli::{leadroute, mirrored_org, text, with_closed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_numbers_agree_with_the_ledger_and_journal_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let config = mirrored_org(dir.path()).await;
    let config = config.to_str().unwrap();
    let report = |args: &'static [&'static str]| {
        let dir = dir.path().to_owned();
        async move {
            let mut all = vec!["--config", config];
            all.extend(args);
            let out = leadroute(&all, &[], &dir).await;
            assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
            text(&out.stdout)
        }
    };

    // What the demo's backfill stored: every assignment in the ledger, per owner name.
    let db = dir.path().join(".leadroute/demo/hubspot.db");
    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let ledger = store
        .load_ledger(&leadroute::domain::OrgId::default_for(CrmKind::Hubspot))
        .await
        .unwrap();
    let names: BTreeMap<String, String> = store
        .owners(&leadroute::domain::OrgId::default_for(CrmKind::Hubspot))
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.id.0, o.name))
        .collect();
    let mut per_rep: BTreeMap<String, i64> = BTreeMap::new();
    for a in ledger.assignments.values() {
        let name = names.get(&a.owner.0).cloned().unwrap_or(a.owner.0.clone());
        *per_rep.entry(name).or_default() += 1;
    }
    let pooled = ledger
        .assignments
        .values()
        .filter(|a| a.pool.is_some())
        .count() as i64;
    let mut applied = 0;
    for run in store.journal_runs(100).await.unwrap() {
        applied += store.journal_counts(&run.run_id).await.unwrap().applied as i64;
    }
    store.close().await;
    assert!(
        !per_rep.is_empty() && applied > 0,
        "the demo assigned and wrote"
    );

    // Distribution as JSON: the rep rows are the ledger's assignments per owner.
    let json: serde_json::Value =
        serde_json::from_str(&report(&["report", "distribution", "--format", "json"]).await)
            .unwrap();
    let got: BTreeMap<String, i64> = json["distribution"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["dimension"] == "rep")
        .map(|r| {
            (
                r["value"].as_str().unwrap().to_owned(),
                r["assignments"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, per_rep);
    // Every dimension counts every assignment once.
    for dim in ["team", "source", "territory"] {
        let sum: i64 = json["distribution"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["dimension"] == dim)
            .map(|r| r["assignments"].as_i64().unwrap())
            .sum();
        assert_eq!(sum, per_rep.values().sum::<i64>(), "{dim}");
    }
    assert!(!json["distribution_daily"].as_array().unwrap().is_empty());

    // Fairness as CSV (both tables): the pools' picks are the pooled assignments, the
    // roster is the one the demo recorded, and each pool's expectations add up.
    let pools = report(&[
        "report",
        "fairness",
        "--format",
        "csv",
        "--table",
        "fairness_pools",
    ])
    .await;
    let mut csv = csv::Reader::from_reader(pools.as_bytes());
    let headers = csv.headers().unwrap().clone();
    assert_eq!(&headers[0], "pool");
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    let picks: i64 = rows.iter().map(|r| r[1].parse::<i64>().unwrap()).sum();
    assert_eq!(picks, pooled);
    assert!(rows.iter().all(|r| &r[6] == "recorded"), "{pools}");
    let reps = report(&["report", "fairness", "--format", "csv"]).await;
    let mut csv = csv::Reader::from_reader(reps.as_bytes());
    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    for r in csv.records().map(Result::unwrap) {
        *expected.entry(r[0].to_owned()).or_default() += r[6].parse::<f64>().unwrap();
    }
    for r in &rows {
        let want: f64 = r[1].parse().unwrap();
        let got = expected.get(&r[0]).copied().unwrap_or(0.0);
        assert!(
            (got - want).abs() < 0.01 * (want + 1.0),
            "{}: {got} vs {want}",
            &r[0]
        );
    }

    // Speed as CSV: the routed leads are the journal's applied writes (one per record
    // in the demo), and the bands hold them all.
    let speed = report(&["report", "speed", "--format", "csv"]).await;
    let mut csv = csv::Reader::from_reader(speed.as_bytes());
    let metrics: BTreeMap<String, String> = csv
        .records()
        .map(Result::unwrap)
        .map(|r| (r[0].to_owned(), r[1].to_owned()))
        .collect();
    assert_eq!(metrics["routed"], applied.to_string(), "{speed}");
    let p50: f64 = metrics["p50_seconds"].parse().unwrap();
    let p95: f64 = metrics["p95_seconds"].parse().unwrap();
    assert!(p50 <= p95);
    assert_eq!(metrics["sla"], "", "no SLA numbers are invented");
    let bands = report(&["report", "speed", "--format", "json"]).await;
    let bands: serde_json::Value = serde_json::from_str(&bands).unwrap();
    let banded: i64 = bands["speed_bands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["leads"].as_i64().unwrap())
        .sum();
    assert_eq!(banded, applied);

    // Markdown for reading; a window before the demo is empty.
    let md = report(&["report", "distribution", "--since", "12h"]).await;
    assert!(md.contains("## Distribution of assignments"), "{md}");
    let old = report(&[
        "report",
        "speed",
        "--now",
        "2020-01-01T00:00:00Z",
        "--format",
        "csv",
    ])
    .await;
    assert!(old.contains("routed,0"), "{old}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_report_input_names_the_fix_and_a_closed_stdout_is_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let config = mirrored_org(dir.path()).await;
    let config = config.to_str().unwrap();
    for (args, says) in [
        (vec!["report", "speed", "--since", "30x"], "e.g. 30d"),
        (vec!["report", "speed", "--since", "0d"], "zero length"),
        (
            vec!["report", "fairness", "--table", "speed"],
            "fairness, fairness_pools",
        ),
        (
            vec!["report", "speed", "--format", "xml"],
            "possible values",
        ),
        (vec!["report", "everything"], "unrecognized subcommand"),
    ] {
        let mut all = vec!["--config", config];
        all.extend(&args);
        let out = leadroute(&all, &[], dir.path()).await;
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    for which in ["distribution", "fairness", "speed"] {
        for format in ["md", "csv", "json"] {
            let out = with_closed(
                "stdout",
                &["--config", config, "report", which, "--format", format],
                dir.path(),
            )
            .await;
            let stderr = text(&out.stderr);
            assert!(!stderr.contains("panicked"), "{which} {format}: {stderr}");
            assert_eq!(out.status.code(), Some(0), "{which} {format}: {stderr}");
        }
    }
}

#[tokio::test]
async fn the_analytics_reads_work_on_both_backends() {
    use chrono::{Duration, TimeZone, Utc};
    use leadroute::analytics::Window;
    use leadroute::domain::{ObjectKind, OwnerId, RecordId};
    use leadroute::reconcile::ledger::{Assignment, Ledger};

    let at = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    for test in crate::helpers::all_stores().await {
        let store = &test.store;
        let mut ledger = Ledger::default();
        for (i, owner) in ["1", "2", "1"].iter().enumerate() {
            ledger.assign(
                ObjectKind::Contact,
                &RecordId::new(format!("c{i}")),
                Assignment {
                    owner: OwnerId::new(*owner),
                    pool: Some("emea".into()),
                    rule: "emea".into(),
                    at: at + Duration::minutes(i as i64),
                },
            );
        }
        store
            .save_ledger(
                &leadroute::domain::OrgId::default_for(CrmKind::Hubspot),
                &mut ledger,
            )
            .await
            .unwrap();
        let members = |w| vec![("emea".to_owned(), OwnerId::new("1"), w)];
        store.note_roster("hubspot", &members(1), at).await.unwrap();
        store
            .note_roster("hubspot", &members(2), at + Duration::minutes(1))
            .await
            .unwrap();
        let window = Window {
            from: at,
            to: at + Duration::minutes(2),
        };
        let facts = store
            .analytics_assignments(
                &leadroute::domain::OrgId::default_for(CrmKind::Hubspot),
                window,
            )
            .await
            .unwrap();
        assert_eq!(facts.len(), 2, "{}: the window is half-open", test.label);
        assert!(facts.iter().all(|f| f.source.is_none()));
        let roster = store.analytics_roster("hubspot", window).await.unwrap();
        assert_eq!(roster.len(), 2, "{}", test.label);
        let leads = store
            .analytics_lead_timings(
                &leadroute::domain::OrgId::default_for(CrmKind::Hubspot),
                window,
            )
            .await
            .unwrap();
        assert!(leads.is_empty(), "{}", test.label);
    }
}
