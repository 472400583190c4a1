//! `leadroute match`: offline contact → account matching from CSV files, with the same
//! [`Matcher`] the engine uses.
//!
//! Input columns (extra columns are ignored, order is free):
//! - accounts: `id,name,website,country,state,parent_id,owner_id,employees`
//! - contacts: `id,email,first_name,last_name,company,website,country`
//!
//! Output: `contact_id,account_id,status,confidence,reason`, one row per usable contact, in
//! input order; `account_id` is empty unless `status` is `matched`. A malformed row is
//! reported on stderr as `FILE:LINE: problem` and skipped; only unusable input (a missing
//! file, missing columns, an unwritable output) stops the command.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::GlobalArgs;
use crate::domain::{AccountRecord, OwnerId, RecordId};
use crate::matcher::{MatchInput, MatchStatus, Matcher, MatcherConfig, TieBreaker};

/// The account columns PRODUCT.md fixes.
pub const ACCOUNT_COLUMNS: [&str; 8] = [
    "id",
    "name",
    "website",
    "country",
    "state",
    "parent_id",
    "owner_id",
    "employees",
];
/// The contact columns PRODUCT.md fixes.
pub const CONTACT_COLUMNS: [&str; 7] = [
    "id",
    "email",
    "first_name",
    "last_name",
    "company",
    "website",
    "country",
];
/// The output columns PRODUCT.md fixes.
pub const OUTPUT_COLUMNS: [&str; 5] =
    ["contact_id", "account_id", "status", "confidence", "reason"];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Accounts CSV: id,name,website,country,state,parent_id,owner_id,employees
    #[arg(long)]
    pub accounts: PathBuf,
    /// Contacts CSV: id,email,first_name,last_name,company,website,country
    #[arg(long)]
    pub contacts: PathBuf,
    /// Where to write contact_id,account_id,status,confidence,reason
    #[arg(long)]
    pub out: PathBuf,
    /// Tie-breakers in order, comma-separated: country_match, prefer_parent,
    /// prefer_child, active_owner, largest. Default: country_match,prefer_parent,active_owner,largest
    #[arg(long, value_delimiter = ',')]
    pub tie_breakers: Option<Vec<String>>,
    /// Minimum company-name similarity (0–1) for a name match. Default 0.90.
    #[arg(long)]
    pub name_threshold: Option<f64>,
}

/// Input the command cannot work with at all.
#[derive(Debug, thiserror::Error)]
pub enum MatchCmdError {
    #[error("{path}: cannot open: {source}; check the path")]
    Open {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: cannot read the header row: {source}")]
    Header {
        path: String,
        #[source]
        source: csv::Error,
    },
    #[error("{path}: missing column(s) {missing}; the header must include {expected}")]
    Columns {
        path: String,
        missing: String,
        expected: String,
    },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "--tie-breakers: unknown tie-breaker {0:?}; use country_match, prefer_parent, prefer_child, active_owner or largest"
    )]
    TieBreaker(String),
    #[error("--name-threshold: {0} is outside 0..=1")]
    Threshold(f64),
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub accounts: usize,
    pub accounts_skipped: usize,
    pub contacts: usize,
    pub contacts_skipped: usize,
    pub matched: usize,
    pub ambiguous: usize,
    pub unmatched: usize,
}

pub async fn run(args: Args, _global: &GlobalArgs) -> anyhow::Result<()> {
    let mut config = MatcherConfig::default();
    if let Some(list) = &args.tie_breakers {
        config.tie_breakers = parse_tie_breakers(list)?;
    }
    if let Some(threshold) = args.name_threshold {
        if !(0.0..=1.0).contains(&threshold) {
            return Err(MatchCmdError::Threshold(threshold).into());
        }
        config.name_threshold = threshold;
    }
    let out_display = args.out.display().to_string();
    let paths = (args.accounts, args.contacts, args.out);
    let summary = tokio::task::spawn_blocking(move || {
        let stderr = io::stderr();
        let mut stderr = stderr.lock();
        run_files(&paths.0, &paths.1, &paths.2, &config, &mut stderr)
    })
    .await??;
    println!(
        "matched {} · ambiguous {} · unmatched {} of {} contacts against {} accounts; \
         skipped rows: {} account, {} contact → {}",
        summary.matched,
        summary.ambiguous,
        summary.unmatched,
        summary.contacts,
        summary.accounts,
        summary.accounts_skipped,
        summary.contacts_skipped,
        out_display
    );
    Ok(())
}

fn parse_tie_breakers(list: &[String]) -> Result<Vec<TieBreaker>, MatchCmdError> {
    list.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            serde_json::from_value::<TieBreaker>(serde_json::Value::String(s.to_owned()))
                .map_err(|_| MatchCmdError::TieBreaker(s.to_owned()))
        })
        .collect()
}

/// Match `contacts` against `accounts` into `out`; problems with single rows go to
/// `diagnostics` as `FILE:LINE: problem`.
pub fn run_files(
    accounts: &Path,
    contacts: &Path,
    out: &Path,
    config: &MatcherConfig,
    diagnostics: &mut dyn Write,
) -> Result<Summary, MatchCmdError> {
    let mut summary = Summary::default();
    let accounts_name = accounts.display().to_string();
    let contacts_name = contacts.display().to_string();
    let (account_records, skipped) = read_accounts(accounts, &accounts_name, diagnostics)?;
    summary.accounts = account_records.len();
    summary.accounts_skipped = skipped;
    let matcher = Matcher::new(&account_records, &[], config);
    drop(account_records);

    let mut reader = open_csv(contacts, &contacts_name)?;
    let columns = column_map(&mut reader, &contacts_name, &CONTACT_COLUMNS)?;
    let out_name = out.display().to_string();
    let file = File::create(out).map_err(|source| MatchCmdError::Write {
        path: out_name.clone(),
        source,
    })?;
    let mut writer = csv::Writer::from_writer(BufWriter::new(file));
    let write_err = |e: csv::Error| MatchCmdError::Write {
        path: out_name.clone(),
        source: io::Error::other(e),
    };
    writer.write_record(OUTPUT_COLUMNS).map_err(write_err)?;

    let mut seen: HashSet<String> = HashSet::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line() + 1;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(err) => {
                report(
                    diagnostics,
                    &contacts_name,
                    line_of(&err, line),
                    &format!("{}; row skipped", csv_problem(&err)),
                );
                summary.contacts_skipped += 1;
                continue;
            }
        }
        let line = record.position().map_or(line, csv::Position::line);
        let field = |name: &str| columns.get(&record, name);
        let Some(id) = field("id") else {
            report(diagnostics, &contacts_name, line, "empty id; row skipped");
            summary.contacts_skipped += 1;
            continue;
        };
        if !seen.insert(id.to_owned()) {
            report(
                diagnostics,
                &contacts_name,
                line,
                &format!("duplicate id {id:?}; row skipped"),
            );
            summary.contacts_skipped += 1;
            continue;
        }
        let input = MatchInput {
            email: field("email").map(str::to_owned),
            company: field("company").map(str::to_owned),
            website: field("website").map(str::to_owned),
            country: field("country").map(str::to_owned),
            primary_account: None,
            person_name: person_name(field("first_name"), field("last_name")),
        };
        let result = matcher.match_input(&input);
        match result.status {
            MatchStatus::Matched => summary.matched += 1,
            MatchStatus::Ambiguous => summary.ambiguous += 1,
            MatchStatus::Unmatched => summary.unmatched += 1,
        }
        summary.contacts += 1;
        let account_id = result.account_id.as_ref().map_or("", RecordId::as_str);
        let confidence = format!("{:.3}", result.confidence);
        let mut reason = result.reason.clone();
        if result.status == MatchStatus::Ambiguous && !result.candidates.is_empty() {
            let ids: Vec<&str> = result
                .candidates
                .iter()
                .map(|c| c.account_id.as_str())
                .collect();
            reason.push_str(&format!(" (candidates: {})", ids.join(" ")));
        }
        writer
            .write_record([id, account_id, result.status.as_str(), &confidence, &reason])
            .map_err(write_err)?;
    }
    writer
        .into_inner()
        .map_err(|e| MatchCmdError::Write {
            path: out_name.clone(),
            source: io::Error::other(e.to_string()),
        })?
        .flush()
        .map_err(|source| MatchCmdError::Write {
            path: out_name.clone(),
            source,
        })?;
    Ok(summary)
}

/// "first last" from whichever of the two is present.
fn person_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [first, last].into_iter().flatten().collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn read_accounts(
    path: &Path,
    name: &str,
    diagnostics: &mut dyn Write,
) -> Result<(Vec<AccountRecord>, usize), MatchCmdError> {
    let mut reader = open_csv(path, name)?;
    let columns = column_map(&mut reader, name, &ACCOUNT_COLUMNS)?;
    let mut accounts: Vec<AccountRecord> = Vec::new();
    let mut lines: HashMap<String, u64> = HashMap::new();
    let mut skipped = 0;
    let mut record = csv::StringRecord::new();
    // CSV accounts carry no modification stamp; a fixed one keeps records comparable.
    let stamp = DateTime::<Utc>::UNIX_EPOCH;
    loop {
        let line = reader.position().line() + 1;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(err) => {
                report(
                    diagnostics,
                    name,
                    line_of(&err, line),
                    &format!("{}; row skipped", csv_problem(&err)),
                );
                skipped += 1;
                continue;
            }
        }
        let line = record.position().map_or(line, csv::Position::line);
        let field = |col: &str| columns.get(&record, col);
        let Some(id) = field("id") else {
            report(diagnostics, name, line, "empty id; row skipped");
            skipped += 1;
            continue;
        };
        if let Some(first) = lines.get(id) {
            report(
                diagnostics,
                name,
                line,
                &format!("duplicate id {id:?} (first on line {first}); row skipped"),
            );
            skipped += 1;
            continue;
        }
        let employees = match field("employees") {
            None => None,
            Some(raw) => {
                let digits: String = raw
                    .chars()
                    .filter(|c| !matches!(c, ',' | '_' | ' '))
                    .collect();
                match digits.parse::<i64>() {
                    Ok(n) if n >= 0 => Some(n),
                    _ => {
                        report(
                            diagnostics,
                            name,
                            line,
                            &format!("employees {raw:?} is not a whole number; treated as unknown"),
                        );
                        None
                    }
                }
            }
        };
        lines.insert(id.to_owned(), line);
        accounts.push(AccountRecord {
            id: RecordId::new(id),
            name: field("name").map(str::to_owned),
            domain: columns.get(&record, "domain").map(str::to_owned),
            website: field("website").map(str::to_owned),
            extra_domains: Vec::new(),
            country: field("country").map(str::to_owned),
            state: field("state").map(str::to_owned),
            parent_id: field("parent_id").map(RecordId::new),
            owner_id: field("owner_id").map(OwnerId::new),
            employees,
            industry: None,
            created_at: None,
            updated_at: stamp,
            fields: BTreeMap::new(),
            raw: serde_json::Value::Null,
        });
    }
    for account in &accounts {
        if let Some(parent) = &account.parent_id
            && !lines.contains_key(parent.as_str())
        {
            let line = lines.get(account.id.as_str()).copied().unwrap_or(0);
            report(
                diagnostics,
                name,
                line,
                &format!(
                    "parent_id {:?} is not an account in this file; treated as no parent",
                    parent.as_str()
                ),
            );
        }
    }
    Ok((accounts, skipped))
}

fn open_csv(path: &Path, name: &str) -> Result<csv::Reader<BufReader<File>>, MatchCmdError> {
    let file = File::open(path).map_err(|source| MatchCmdError::Open {
        path: name.to_owned(),
        source,
    })?;
    Ok(csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(BufReader::new(file)))
}

/// Header name → column index, checked against the required columns.
struct Columns(HashMap<String, usize>);

impl Columns {
    /// A non-empty trimmed field, or `None`.
    fn get<'r>(&self, record: &'r csv::StringRecord, name: &str) -> Option<&'r str> {
        let ix = *self.0.get(name)?;
        record.get(ix).map(str::trim).filter(|v| !v.is_empty())
    }
}

fn column_map(
    reader: &mut csv::Reader<BufReader<File>>,
    path: &str,
    required: &[&str],
) -> Result<Columns, MatchCmdError> {
    let headers = reader.headers().map_err(|source| MatchCmdError::Header {
        path: path.to_owned(),
        source,
    })?;
    let map: HashMap<String, usize> = headers
        .iter()
        .enumerate()
        // Spreadsheet exports often start with a byte-order mark and vary in case.
        .map(|(i, h)| {
            (
                h.trim_start_matches('\u{feff}').trim().to_ascii_lowercase(),
                i,
            )
        })
        .collect();
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|c| !map.contains_key(*c))
        .collect();
    if !missing.is_empty() {
        return Err(MatchCmdError::Columns {
            path: path.to_owned(),
            missing: missing.join(","),
            expected: required.join(","),
        });
    }
    Ok(Columns(map))
}

fn line_of(err: &csv::Error, fallback: u64) -> u64 {
    err.position().map_or(fallback, csv::Position::line)
}

fn csv_problem(err: &csv::Error) -> String {
    match err.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("{len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_owned(),
        _ => err.to_string(),
    }
}

fn report(diagnostics: &mut dyn Write, file: &str, line: u64, problem: &str) {
    // Diagnostics are best effort: a closed stderr must not stop the matching.
    let _ = writeln!(diagnostics, "{file}:{line}: {problem}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        path
    }

    #[test]
    fn malformed_rows_are_reported_by_line_and_the_rest_is_matched() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = write(
            dir.path(),
            "a.csv",
            "id,name,website,country,state,parent_id,owner_id,employees\n\
             1,Acme Inc,acme.com,US,,,o1,120\n\
             2,Broken row\n\
             3,Globex,globex.com,DE,,99,o2,lots\n\
             1,Acme again,acme.net,US,,,,\n",
        );
        let contacts = write(
            dir.path(),
            "c.csv",
            "id,email,first_name,last_name,company,website,country\n\
             c1,jane@acme.com,Jane,Doe,,,US\n\
             ,x@globex.com,,,,,\n\
             c2,\"unterminated,,,,,,\n",
        );
        let out = dir.path().join("m.csv");
        let mut diag = Vec::new();
        let summary = run_files(
            &accounts,
            &contacts,
            &out,
            &MatcherConfig::default(),
            &mut diag,
        )
        .unwrap();
        let diag = String::from_utf8(diag).unwrap();
        assert!(
            diag.contains("a.csv:3: 2 fields where the header has 8"),
            "{diag}"
        );
        assert!(diag.contains("a.csv:4: employees \"lots\""), "{diag}");
        assert!(diag.contains("a.csv:5: duplicate id \"1\""), "{diag}");
        assert!(diag.contains("a.csv:4: parent_id \"99\""), "{diag}");
        assert!(diag.contains("c.csv:3: empty id"), "{diag}");
        assert_eq!(summary.accounts, 2);
        assert_eq!(summary.matched, 1);
        let body = std::fs::read_to_string(&out).unwrap();
        assert!(
            body.starts_with("contact_id,account_id,status,confidence,reason\n"),
            "{body}"
        );
        assert!(body.contains("c1,1,matched,"), "{body}");
    }

    #[test]
    fn missing_columns_are_unusable_input() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = write(dir.path(), "a.csv", "id,name\n1,Acme\n");
        let contacts = write(
            dir.path(),
            "c.csv",
            "id,email,first_name,last_name,company,website,country\n",
        );
        let err = run_files(
            &accounts,
            &contacts,
            &dir.path().join("m.csv"),
            &MatcherConfig::default(),
            &mut Vec::new(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("missing column(s) website,country,state,parent_id,owner_id,employees"),
            "{msg}"
        );
        let err = run_files(
            &dir.path().join("nope.csv"),
            &contacts,
            &dir.path().join("m.csv"),
            &MatcherConfig::default(),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(matches!(err, MatchCmdError::Open { .. }));
    }

    #[test]
    fn tie_breakers_parse_from_snake_case_and_reject_unknown_names() {
        assert_eq!(
            parse_tie_breakers(&["prefer_child".into(), " largest".into()]).unwrap(),
            vec![TieBreaker::PreferChild, TieBreaker::Largest]
        );
        assert!(parse_tie_breakers(&["biggest".into()]).is_err());
    }
}
