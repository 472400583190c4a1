//! Routing policy: a TOML file → parse → check → [`Policy`]. Evaluation is pure.
//!
//! The file has five parts: `[settings]`, `[reps.<name>]` (CRM owner id, time zone,
//! working hours, out-of-office windows, caps), `[territories.<name>]`,
//! `[pools.<name>]` (members, strategy), ordered `[[rules]]` and a `[default]` rule.
//! See `config/policies/*.toml` for examples of every feature. Every problem is a
//! [`PolicyIssue`] naming file, line, column and the fix.

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
    let label = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&label, &text).map(|(p, _)| p),
        Err(err) => Err(vec![PolicyIssue {
            file: label,
            line: 0,
            column: 0,
            severity: Severity::Error,
            message: format!("cannot read the policy file: {err}"),
            fix: "check the path ([policy] path in the config, or --policy FILE)".into(),
        }]),
    }
}

/// Parse and check policy text. `Ok` carries the policy and its warnings; `Err` carries
/// every issue (at least one of them an error).
pub fn parse(file: &str, text: &str) -> Result<(Policy, Vec<PolicyIssue>), Vec<PolicyIssue>> {
    let raw: raw::RawPolicy = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(err) => {
            let (line, column) = err
                .span()
                .map_or((1, 1), |s| check::line_col(text, s.start));
            let message = err.message().trim().to_owned();
            let fix = if message.contains("unknown field") {
                "remove or rename the key; the expected keys are listed in the message"
            } else if message.contains("missing field") {
                "add the missing key"
            } else {
                "fix the TOML syntax or value type at this place"
            };
            return Err(vec![PolicyIssue {
                file: file.to_owned(),
                line,
                column,
                severity: Severity::Error,
                message,
                fix: fix.into(),
            }]);
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
