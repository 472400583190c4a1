//! `leadroute match` end to end: the real binary on the CSV fixtures in
//! tests/fixtures/match, checking the output file, stderr diagnostics and exit codes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/match")
        .join(name)
}

fn leadroute() -> Command {
    Command::new(env!("CARGO_BIN_EXE_leadroute"))
}

/// (account_id, status, confidence, reason) of one output row.
type Row = (String, String, f64, String);

/// The header and contact_id → row.
fn read_output(path: &Path) -> (Vec<String>, HashMap<String, Row>) {
    let mut reader = csv::Reader::from_path(path).expect("output is CSV");
    let header = reader
        .headers()
        .expect("a header row")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| {
            let r = r.expect("well-formed output rows");
            (
                r[0].to_owned(),
                (
                    r[1].to_owned(),
                    r[2].to_owned(),
                    r[3].parse().expect("numeric confidence"),
                    r[4].to_owned(),
                ),
            )
        })
        .collect();
    (header, rows)
}

#[test]
fn match_writes_one_row_per_contact_with_the_documented_columns() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.csv");
    let output = leadroute()
        .args(["match", "--accounts"])
        .arg(fixture("accounts.csv"))
        .arg("--contacts")
        .arg(fixture("contacts.csv"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "stderr: {stderr}");

    // Malformed rows: reported by file and line, the run goes on.
    assert!(
        stderr.contains("accounts.csv:10: 2 fields where the header has 8; row skipped"),
        "{stderr}"
    );
    assert!(
        stderr.contains("contacts.csv:12: 2 fields where the header has 7; row skipped"),
        "{stderr}"
    );
    assert!(
        stderr.contains("contacts.csv:13: empty id; row skipped"),
        "{stderr}"
    );
    assert!(
        stdout.contains("matched 7 · ambiguous 0 · unmatched 3 of 10 contacts against 9 accounts"),
        "{stdout}"
    );

    let (header, rows) = read_output(&out);
    assert_eq!(
        header,
        ["contact_id", "account_id", "status", "confidence", "reason"]
    );
    assert_eq!(rows.len(), 10);
    let expect = [
        ("c1", "A1", "matched"),  // work email at the parent's domain, US
        ("c2", "A2", "matched"),  // subdomain of acme.com, Germany → the German entity
        ("c3", "A3", "matched"),  // the French entity's own domain
        ("c4", "A4", "matched"),  // free mail → company name
        ("c5", "A5", "matched"),  // CRM duplicates A5/A6 with one owner: the lowest id
        ("c6", "A7", "matched"),  // acronym, unique
        ("c7", "A8", "matched"),  // IDN website + free mail
        ("c8", "", "unmatched"),  // new logo
        ("c9", "", "unmatched"),  // near-name: Acme Capital is not Acme Capital Partners
        ("c10", "", "unmatched"), // disposable, nothing else
    ];
    for (contact, account, status) in expect {
        let row = &rows[contact];
        assert_eq!(
            (row.0.as_str(), row.1.as_str()),
            (account, status),
            "{contact}: {row:?}"
        );
        assert!(!row.3.is_empty(), "{contact} has a reason");
        match status {
            "matched" => assert!(row.2 > 0.5, "{contact}: {row:?}"),
            _ => assert_eq!(row.2, 0.0, "{contact}: {row:?}"),
        }
    }
    // The reason names the evidence: the duplicates and the tie-breaker.
    let c5 = &rows["c5"].3;
    assert!(
        c5.contains("duplicate accounts A5, A6") && c5.contains("same owner"),
        "{c5}"
    );
    assert!(!rows.contains_key(""), "rows without an id are not written");
}

#[test]
fn missing_files_and_columns_exit_non_zero_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.csv");
    let output = leadroute()
        .args(["match", "--accounts", "/nonexistent/a.csv", "--contacts"])
        .arg(fixture("contacts.csv"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/nonexistent/a.csv: cannot open"),
        "{stderr}"
    );

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "id,mail\n1,a@b.com\n").unwrap();
    let output = leadroute()
        .args(["match", "--accounts"])
        .arg(fixture("accounts.csv"))
        .arg("--contacts")
        .arg(&bad)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("missing column(s) email,first_name"),
        "{stderr}"
    );
}
