//! TOML shape errors, all at once. `toml::from_str` stops at the first unknown key or
//! wrong type; a file with three typos would take three runs to fix. [`parse_all`]
//! records the error, blanks out the offending line (or table) and parses again, so
//! every shape error comes back in one pass, each at its line and column in the text
//! as written, with a "did you mean" for a misspelt key. Pure: no I/O.

use serde::de::DeserializeOwned;

/// One problem with the shape of a TOML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError {
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// What is wrong, e.g. "unknown field `tokn` (did you mean `token`?)".
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

/// At most this many errors are collected (then the rest can wait for the next run).
const MAX_ERRORS: usize = 50;

/// Parses `text` as `T`, or returns every shape error found.
pub fn parse_all<T: DeserializeOwned>(text: &str) -> Result<T, Vec<ShapeError>> {
    match parse_lenient(text) {
        (Some(value), errors) if errors.is_empty() => Ok(value),
        (_, errors) => Err(errors),
    }
}

/// Every shape error, and the value parsed from the rest of the text (the offending
/// lines left out) when there is one, so later checks can report their problems in
/// the same run. Errors are empty only when the value is the whole text's.
pub fn parse_lenient<T: DeserializeOwned>(text: &str) -> (Option<T>, Vec<ShapeError>) {
    let mut work = text.to_owned();
    let mut errors = Vec::new();
    loop {
        let err = match toml::from_str::<T>(&work) {
            Ok(value) => return (Some(value), sorted(errors)),
            Err(err) => err,
        };
        let syntax = toml::from_str::<toml::Table>(&work).is_err();
        let (line, column) = err.span().map_or((1, 1), |s| line_col(&work, s.start));
        errors.push(describe(err.message().trim(), line, column, syntax));
        // A syntax error stops here: what follows cannot be trusted.
        let Some(span) = err.span().filter(|_| !syntax && errors.len() < MAX_ERRORS) else {
            return (None, sorted(errors));
        };
        let next = blank_at(&work, span.start);
        if next == work || toml::from_str::<toml::Table>(&next).is_err() {
            return (None, sorted(errors));
        }
        work = next;
    }
}

/// In file order (serde reports them in its own order).
fn sorted(mut errors: Vec<ShapeError>) -> Vec<ShapeError> {
    errors.sort_by_key(|e| (e.line, e.column));
    errors.dedup();
    errors
}

fn describe(message: &str, line: usize, column: usize, syntax: bool) -> ShapeError {
    let (message, fix) = if let Some((unknown, expected)) = unknown_field(message) {
        match closest(&unknown, &expected) {
            Some(best) => (
                format!("unknown field `{unknown}` (did you mean `{best}`?)"),
                format!("rename it to `{best}`, or remove it"),
            ),
            None => (
                format!("unknown field `{unknown}`"),
                if expected.is_empty() {
                    "remove it".to_owned()
                } else {
                    format!(
                        "remove it; the keys here are {}",
                        expected
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            ),
        }
    } else if message.contains("missing field") {
        (message.to_owned(), "add the missing key".to_owned())
    } else if syntax {
        (message.to_owned(), "fix the TOML syntax here".to_owned())
    } else {
        (message.to_owned(), "fix the value's type here".to_owned())
    };
    ShapeError {
        line,
        column,
        message,
        fix,
    }
}

/// "unknown field `tokn`, expected one of `a`, `b`" → ("tokn", ["a", "b"]).
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (name, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((name.to_owned(), expected))
}

/// The candidate nearest to `word` by edit distance, if near enough to be a typo.
fn closest(word: &str, candidates: &[String]) -> Option<String> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= limit || c.starts_with(word) || word.starts_with(c.as_str()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let best = (prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1);
            row.push(best);
        }
        prev = row;
    }
    prev[b.len()]
}

/// 1-based line and column (in characters) of byte `offset`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// `text` with the line holding `offset` replaced by spaces, or, for a table header,
/// the whole table up to the next header. Lengths and line breaks are kept, so later
/// spans still point into the original text.
fn blank_at(text: &str, offset: usize) -> String {
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .filter(|i| *i <= text.len())
        .collect();
    let index = starts.iter().rposition(|s| *s <= offset).unwrap_or(0);
    let line_end = |i: usize| starts.get(i + 1).copied().unwrap_or(text.len());
    let is_header = |i: usize| text[starts[i]..line_end(i)].trim_start().starts_with('[');
    let mut end = line_end(index);
    if is_header(index) {
        let mut i = index + 1;
        while i < starts.len() && !is_header(i) {
            end = line_end(i);
            i += 1;
        }
    }
    let start = starts[index];
    let blanked: String = text[start..end]
        .chars()
        .map(|c| if c == '\n' || c == '\r' { c } else { ' ' })
        .collect();
    format!("{}{}{}", &text[..start], blanked, &text[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        #[serde(default)]
        crm: Crm,
        #[serde(default)]
        sync: Sync,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Crm {
        token: Option<String>,
        base_url: Option<String>,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sync {
        interval_secs: Option<u64>,
    }

    #[test]
    fn every_unknown_key_and_wrong_type_is_reported_in_one_pass() {
        let text = "[crm]\ntokn = \"t\"\nbase_ulr = \"x\"\n[sync]\ninterval_secs = \"60\"\n[sink]\na = 1\n";
        let errors = parse_all::<Doc>(text).unwrap_err();
        let lines: Vec<String> = errors
            .iter()
            .map(|e| format!("{}:{}: {}; {}", e.line, e.column, e.message, e.fix))
            .collect();
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(
            lines[0].starts_with("2:1: unknown field `tokn` (did you mean `token`?); rename it"),
            "{lines:#?}"
        );
        assert!(
            lines[1].starts_with("3:1: unknown field `base_ulr` (did you mean `base_url`?)"),
            "{lines:#?}"
        );
        assert!(lines[2].starts_with("5:17: invalid type"), "{lines:#?}");
        assert!(
            lines[3].starts_with("6:2: unknown field `sink` (did you mean `sync`?)"),
            "{lines:#?}"
        );
    }

    #[test]
    fn a_syntax_error_stops_the_search_and_a_good_file_parses() {
        let errors = parse_all::<Doc>("[crm\n").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].fix, "fix the TOML syntax here");
        assert!(parse_all::<Doc>("[crm]\ntoken = \"t\"\n").is_ok());
    }
}
