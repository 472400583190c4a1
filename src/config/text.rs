//! Reading a config or policy file as text, saying where it is not UTF-8.

use std::fmt;
use std::path::Path;

/// Why a file could not be read as text.
#[derive(Debug)]
pub enum TextError {
    /// It could not be read at all (missing, a directory, no permission).
    Read(std::io::Error),
    /// It is not UTF-8: the first bad byte, 1-based line and column, 0-based offset.
    NotUtf8 {
        line: usize,
        column: usize,
        offset: usize,
    },
}

impl TextError {
    /// 1-based line and column of the problem (1:1 when the file is unreadable).
    pub fn line_col(&self) -> (usize, usize) {
        match self {
            TextError::Read(_) => (1, 1),
            TextError::NotUtf8 { line, column, .. } => (*line, *column),
        }
    }

    /// What to do about it.
    pub fn fix(&self) -> &'static str {
        match self {
            TextError::Read(_) => "check the path and that the file is readable",
            TextError::NotUtf8 { .. } => {
                "save the file as UTF-8 (it looks like another encoding, e.g. Latin-1 or UTF-16)"
            }
        }
    }
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextError::Read(err) => write!(f, "cannot read it: {err}"),
            TextError::NotUtf8 {
                line,
                column,
                offset,
            } => write!(
                f,
                "not UTF-8: invalid byte at line {line}, column {column} (byte offset {offset})"
            ),
        }
    }
}

/// Reads `path` as UTF-8 text.
pub fn read(path: &Path) -> Result<String, TextError> {
    let bytes = std::fs::read(path).map_err(TextError::Read)?;
    decode(bytes)
}

/// Decodes `bytes` as UTF-8, locating the first bad byte.
pub fn decode(bytes: Vec<u8>) -> Result<String, TextError> {
    String::from_utf8(bytes).map_err(|err| {
        let offset = err.utf8_error().valid_up_to();
        let good = &err.as_bytes()[..offset];
        let line = good.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        // Characters before the bad byte on its line (the prefix is valid UTF-8).
        let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
        TextError::NotUtf8 {
            line,
            column,
            offset,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latin1_byte_is_located_by_line_column_and_offset() {
        let err = decode(b"[crm]\nkind = \"h\xe9\"\n".to_vec()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not UTF-8: invalid byte at line 2, column 10 (byte offset 15)"
        );
        assert_eq!(err.line_col(), (2, 10));
        assert_eq!(decode(b"ok".to_vec()).unwrap(), "ok");
    }
}
