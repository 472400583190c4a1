//! Routing policy: a TOML file → parse → check → [`Policy`]. Evaluation is pure.
//!
//! The file has five parts: `[settings]`, `[reps.<name>]` (CRM owner id, time zone,
//! working hours, out-of-office windows, caps), `[territories.<name>]`,
//! `[pools.<name>]` (members, strategy), ordered `[[rules]]` and a `[default]` rule;
//! optionally `[calendars.<name>]` (working time, `calendar.rs`) and `[[sla]]` (first-touch
//! deadlines and escalation, checked in `check/sla.rs`).
//! See `config/policies/*.toml` for examples of every feature. Every problem is a
//! [`PolicyIssue`] naming file, line, column and the fix.

pub mod calendar;
mod check;
pub mod eval;
pub mod graph;
pub mod model;
mod raw;

use std::fmt;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use check::{ACCOUNT_FIELDS, RECORD_FIELDS};
pub use eval::{ConditionTrace, Subject};
pub use model::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyIssue {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub severity: Severity,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for PolicyIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {sev}: {}; fix: {}",
            self.file, self.line, self.column, self.message, self.fix
        )
    }
}

/// Load and check a policy file. On failure, every issue found (errors and warnings).
pub fn load(path: &Path) -> Result<Policy, Vec<PolicyIssue>> {
    load_with_warnings(path).map(|(p, _)| p)
}

/// [`load`], keeping the warnings. A file that is not UTF-8 is reported at its first
/// bad byte.
pub fn load_with_warnings(path: &Path) -> Result<(Policy, Vec<PolicyIssue>), Vec<PolicyIssue>> {
    let label = path.display().to_string();
    match crate::config::text::read(path) {
        Ok(text) => parse(&label, &text),
        Err(err) => {
            let (line, column) = err.line_col();
            let fix = match err {
                crate::config::text::TextError::Read(_) => {
                    "check the path ([policy] path in the config, or --policy FILE)"
                }
                crate::config::text::TextError::NotUtf8 { .. } => err.fix(),
            };
            Err(vec![PolicyIssue {
                file: label,
                line,
                column,
                severity: Severity::Error,
                message: format!("the policy file: {err}"),
                fix: fix.into(),
            }])
        }
    }
}

/// Parse and check policy text. `Ok` carries the policy and its warnings; `Err` carries
/// every issue (at least one of them an error).
pub fn parse(file: &str, text: &str) -> Result<(Policy, Vec<PolicyIssue>), Vec<PolicyIssue>> {
    // Every shape error (unknown keys, wrong types) at once, not one per run.
    let raw: raw::RawPolicy = match crate::config::shape::parse_all(text) {
        Ok(raw) => raw,
        Err(errors) => {
            return Err(errors
                .into_iter()
                .map(|e| PolicyIssue {
                    file: file.to_owned(),
                    line: e.line,
                    column: e.column,
                    severity: Severity::Error,
                    message: e.message,
                    fix: e.fix,
                })
                .collect());
        }
    };
    let mut checker = check::Checker::new(file, text);
    let policy = checker.check(raw);
    let mut issues = checker.issues;
    issues.sort_by_key(|i| (i.line, i.column));
    match policy {
        Some(mut policy) => {
            policy.version = content_hash(text);
            Ok((policy, issues))
        }
        None => Err(issues),
    }
}

/// The policy version: the first 16 hex digits of the SHA-256 of the file's bytes.
pub fn content_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
