//! Salesforce record ids: 15-character (case-sensitive) to 18-character (case-safe)
//! canonicalisation with the real checksum, and key-prefix classification.
//!
//! The connector stores and compares only the canonical 18-character form: the API
//! returns 18 characters, while people paste 15-character ids from the UI. Two
//! 15-character ids that differ only in letter case are different records, so a
//! 15-character id is never lower- or upper-cased.

/// The alphabet the checksum suffix maps 5-bit values onto.
const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// Why a string is not a Salesforce id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("salesforce id {0:?} must be 15 or 18 characters long")]
    Length(String),
    #[error("salesforce id {0:?} may contain only ASCII letters and digits")]
    Charset(String),
    #[error(
        "salesforce id {0:?} has a checksum suffix that matches no letter case of its first 15 characters"
    )]
    Checksum(String),
}

/// The 3-character suffix for a 15-character id: for each 5-character chunk, bit `i`
/// is set when character `i` of the chunk is an upper-case letter.
fn suffix(id15: &[u8]) -> [u8; 3] {
    let mut out = [0u8; 3];
    for (chunk_index, chunk) in id15.chunks(5).enumerate() {
        let mut bits = 0usize;
        for (i, c) in chunk.iter().enumerate() {
            if c.is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        out[chunk_index] = SUFFIX_ALPHABET[bits];
    }
    out
}

/// The canonical 18-character form of a 15- or 18-character id.
///
/// An 18-character id is case-insensitive: its suffix encodes the case of the first
/// 15 characters, so a lower-cased copy (say, from a spreadsheet) is restored to the
/// id Salesforce returns.
pub fn canonical(id: &str) -> Result<String, IdError> {
    let bytes = id.as_bytes();
    if !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return Err(IdError::Charset(id.to_owned()));
    }
    match bytes.len() {
        15 => {
            let mut out = id.to_owned();
            out.push_str(std::str::from_utf8(&suffix(bytes)).expect("suffix alphabet is ASCII"));
            Ok(out)
        }
        18 => {
            let (head, tail) = bytes.split_at(15);
            let mut restored: Vec<u8> = head.to_vec();
            for (chunk_index, suffix_char) in tail.iter().enumerate() {
                let upper = suffix_char.to_ascii_uppercase();
                let bits = SUFFIX_ALPHABET
                    .iter()
                    .position(|c| *c == upper)
                    .ok_or_else(|| IdError::Checksum(id.to_owned()))?;
                for i in 0..5 {
                    let c = &mut restored[chunk_index * 5 + i];
                    let want_upper = bits & (1 << i) != 0;
                    if want_upper {
                        if !c.is_ascii_alphabetic() {
                            // A digit can never be upper case: the suffix is corrupt.
                            return Err(IdError::Checksum(id.to_owned()));
                        }
                        *c = c.to_ascii_uppercase();
                    } else {
                        *c = c.to_ascii_lowercase();
                    }
                }
            }
            let mut out = String::from_utf8(restored).expect("ASCII stays ASCII");
            out.push_str(std::str::from_utf8(&suffix(&out.as_bytes()[..15])).expect("ASCII"));
            Ok(out)
        }
        _ => Err(IdError::Length(id.to_owned())),
    }
}

/// The canonical form if `id` is a valid id, else `id` unchanged (for values read from
/// the API, which are already canonical; never fails a sync over one odd value).
pub fn canonical_or_raw(id: &str) -> String {
    canonical(id).unwrap_or_else(|_| id.to_owned())
}

/// True when two ids (15 or 18 characters) name the same record.
pub fn same(a: &str, b: &str) -> bool {
    match (canonical(a), canonical(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// What a key prefix says an id points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Account,
    Contact,
    Lead,
    User,
    /// Queues and public groups share the `00G` prefix.
    Group,
    Organization,
    Other,
}

/// Classifies an id by its 3-character key prefix (case-sensitive: `00E` is a role,
/// `00e` a profile).
pub fn kind_of(id: &str) -> IdKind {
    match id.get(..3) {
        Some("001") => IdKind::Account,
        Some("003") => IdKind::Contact,
        Some("00Q") => IdKind::Lead,
        Some("005") => IdKind::User,
        Some("00G") => IdKind::Group,
        Some("00D") => IdKind::Organization,
        _ => IdKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_gets_the_documented_suffix() {
        assert_eq!(canonical("001xx000003DGb2").unwrap(), "001xx000003DGb2AAG");
    }

    #[test]
    fn canonical_ids_are_left_alone() {
        assert_eq!(
            canonical("001xx000003DGb2AAG").unwrap(),
            "001xx000003DGb2AAG"
        );
        assert_eq!(
            canonical("00Q5e00000AbCdEEAV").unwrap(),
            "00Q5e00000AbCdEEAV"
        );
    }

    #[test]
    fn a_lowercased_18_character_id_is_restored_from_its_suffix() {
        assert_eq!(
            canonical("001xx000003dgb2aag").unwrap(),
            "001xx000003DGb2AAG"
        );
    }

    #[test]
    fn fifteen_character_ids_differing_in_case_stay_different() {
        let a = canonical("001xx000003DGb2").unwrap();
        let b = canonical("001xx000003dGb2").unwrap();
        assert_ne!(a, b);
        assert!(!same("001xx000003DGb2", "001xx000003dGb2"));
        assert!(same("001xx000003DGb2", "001xx000003dgb2aag"));
        assert!(same("001xx000003DGb2", "001XX000003DGB2AAG"));
    }

    #[test]
    fn malformed_ids_are_refused_with_the_reason() {
        assert!(matches!(canonical("001"), Err(IdError::Length(_))));
        assert!(matches!(
            canonical("001xx000003DG-2"),
            Err(IdError::Charset(_))
        ));
        // Suffix '5' = 31 claims all five characters of chunk 1 are upper case, but
        // the chunk "001xx" starts with digits.
        assert!(matches!(
            canonical("001xx000003DGb25AG"),
            Err(IdError::Checksum(_))
        ));
    }

    #[test]
    fn prefixes_tell_users_from_queues() {
        assert_eq!(kind_of("0055e000009KlMnAAK"), IdKind::User);
        assert_eq!(kind_of("00G5e000001XyZqEAK"), IdKind::Group);
        assert_eq!(kind_of("00Q5e00000AbCdEEAV"), IdKind::Lead);
    }
}
