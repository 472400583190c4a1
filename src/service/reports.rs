//! Scheduled drift reports on disk: each report in every format (`drift.md`,
//! `drift.html`, `drift.csv`, `drift.json`) in a directory of its own named by its UTC
//! time (`drift-20261207T060000Z`), the newest `keep` kept.
//!
//! A report directory appears whole or not at all: it is written under a hidden
//! temporary name and renamed into place, so a reader (or a crash) never sees half a
//! report, and pruning only ever removes complete, older report directories.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::reconcile::drift::DriftReport;

/// Name prefix of report directories; nothing else in the directory is touched.
const PREFIX: &str = "drift-";

/// Writes `report` (made at `at`) in every format under `dir`, then removes report
/// directories beyond the newest `keep` (at least one, the new one, is kept). Returns
/// the new report's directory.
pub fn write_drift_reports(
    dir: &Path,
    report: &DriftReport,
    at: DateTime<Utc>,
    keep: usize,
) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| with_path(e, "creating", dir))?;
    let name = format!("{PREFIX}{}", at.format("%Y%m%dT%H%M%SZ"));
    let target = dir.join(&name);
    let temp = dir.join(format!(".{name}.partial"));
    if temp.exists() {
        std::fs::remove_dir_all(&temp).map_err(|e| with_path(e, "removing", &temp))?;
    }
    std::fs::create_dir(&temp).map_err(|e| with_path(e, "creating", &temp))?;
    for (file, text) in [
        ("drift.md", report.to_markdown()),
        ("drift.html", report.to_html()),
        ("drift.csv", report.to_csv()),
        ("drift.json", report.to_json()),
    ] {
        let path = temp.join(file);
        std::fs::write(&path, text).map_err(|e| with_path(e, "writing", &path))?;
    }
    if target.exists() {
        // The same second twice (a manual run beside the schedule): the newer wins.
        std::fs::remove_dir_all(&target).map_err(|e| with_path(e, "replacing", &target))?;
    }
    std::fs::rename(&temp, &target).map_err(|e| with_path(e, "renaming into", &target))?;
    prune(dir, keep.max(1))?;
    Ok(target)
}

/// Report directories under `dir`, oldest first (their names sort by time).
pub fn list_reports(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| with_path(e, "reading", dir))? {
        let entry = entry.map_err(|e| with_path(e, "reading", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(PREFIX) && entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

fn prune(dir: &Path, keep: usize) -> io::Result<()> {
    let reports = list_reports(dir)?;
    let excess = reports.len().saturating_sub(keep);
    for old in reports.into_iter().take(excess) {
        std::fs::remove_dir_all(&old).map_err(|e| with_path(e, "removing", &old))?;
    }
    Ok(())
}

fn with_path(err: io::Error, doing: &str, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{doing} {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::{Ledger, drift, synth};

    fn report() -> DriftReport {
        let org = synth::org(
            7,
            synth::OrgSize {
                owners: 5,
                accounts: 10,
                people: 50,
            },
        );
        let (policy, _) = crate::policy::parse("synthetic.toml", &synth::policy_text(5))
            .unwrap_or_else(|e| panic!("{e:?}"));
        drift::build(&org, &policy, &Ledger::default(), synth::base_time())
    }

    #[test]
    fn every_format_is_written_and_only_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let report = report();
        // An unrelated file in the directory is never touched.
        std::fs::write(dir.path().join("README"), "mine").unwrap_or_else(|e| panic!("{e}"));
        let base = DateTime::parse_from_rfc3339("2026-12-07T06:00:00Z")
            .unwrap_or_else(|e| panic!("{e}"))
            .with_timezone(&Utc);
        let mut last = PathBuf::new();
        for day in 0..5 {
            last = write_drift_reports(dir.path(), &report, base + chrono::Duration::days(day), 3)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let kept = list_reports(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<_> = kept
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        assert_eq!(
            names,
            [
                "drift-20261209T060000Z",
                "drift-20261210T060000Z",
                "drift-20261211T060000Z"
            ]
        );
        assert_eq!(last, kept[2]);
        for file in ["drift.md", "drift.html", "drift.csv", "drift.json"] {
            let text = std::fs::read_to_string(last.join(file)).unwrap_or_else(|e| panic!("{e}"));
            assert!(!text.is_empty(), "{file} is empty");
        }
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(last.join("drift.json")).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(json.is_object());
        assert!(dir.path().join("README").exists());
        // No partial directory is left behind.
        let hidden = std::fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .count();
        assert_eq!(hidden, 0);
    }

    #[test]
    fn an_unwritable_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap_or_else(|e| panic!("{e}"));
        let err = write_drift_reports(&file, &report(), Utc::now(), 3)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("not-a-dir"), "{err}");
    }
}
