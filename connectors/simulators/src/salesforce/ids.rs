//! Salesforce record ids: key prefixes, the 15 → 18 character case-safe suffix, and the
//! sequential id allocator the org uses for new records.
//!
//! A 15-character id is case-sensitive; the API always answers with 18 characters, the
//! extra three encoding which of the 15 were upper-case letters so the id survives
//! case-insensitive systems. Inputs may use either form.

const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The three-character checksum suffix of a 15-character id.
///
/// Each 5-character chunk gives a 5-bit number whose bit `i` (least significant first,
/// reading the chunk left to right) is set when character `i` is an upper-case letter.
pub fn suffix(id15: &str) -> String {
    let bytes = id15.as_bytes();
    let mut out = String::with_capacity(3);
    for chunk in bytes.chunks(5).take(3) {
        let mut n = 0usize;
        for (i, c) in chunk.iter().enumerate() {
            if c.is_ascii_uppercase() {
                n |= 1 << i;
            }
        }
        out.push(char::from(SUFFIX_ALPHABET[n]));
    }
    out
}

/// The 18-character form of a 15-character id.
pub fn to18(id15: &str) -> String {
    format!("{id15}{}", suffix(id15))
}

/// Canonical 18-character id for an input of 15 or 18 characters, or `None` when the
/// input is not a well-formed id (wrong length, characters outside base 62, or an
/// 18-character id whose suffix does not match).
///
/// An 18-character id is case-insensitive: its suffix says which of the first 15
/// characters are upper case, so the case is restored from it before checking.
pub fn canonical(input: &str) -> Option<String> {
    if !input.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    match input.len() {
        15 => Some(to18(input)),
        18 => {
            let (body, given) = input.split_at(15);
            let mut restored = String::with_capacity(18);
            for (chunk_no, chunk) in body.as_bytes().chunks(5).enumerate() {
                let code = given.as_bytes()[chunk_no].to_ascii_uppercase();
                let bits = SUFFIX_ALPHABET.iter().position(|c| *c == code)?;
                for (i, c) in chunk.iter().enumerate() {
                    let upper = bits & (1 << i) != 0;
                    let c = if upper {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    };
                    // A digit cannot be "upper case": a set bit on a digit is not an id.
                    if upper && c.is_ascii_digit() {
                        return None;
                    }
                    restored.push(char::from(c));
                }
            }
            let full = to18(&restored);
            full.eq_ignore_ascii_case(input).then_some(full)
        }
        _ => None,
    }
}

/// The key prefix (first three characters) of an id.
pub fn prefix(id: &str) -> &str {
    id.get(..3).unwrap_or("")
}

/// Allocates ids `{prefix}{pod}{counter}` with a fixed two-character pod and a
/// base-62 counter, then appends the checksum.
#[derive(Debug, Clone)]
pub struct IdAllocator {
    pod: String,
    next: u64,
}

impl IdAllocator {
    pub fn new(pod: &str) -> Self {
        Self {
            pod: pod.to_owned(),
            next: 1,
        }
    }

    pub fn next(&mut self, key_prefix: &str) -> String {
        let n = self.next;
        self.next += 1;
        to18(&format!("{key_prefix}{}{}", self.pod, base62(n, 10)))
    }
}

/// `n` in base 62, left-padded with zeros to `width` characters.
pub fn base62(mut n: u64, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(digits).expect("base-62 digits are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_gets_its_documented_suffix() {
        assert_eq!(to18("001xx000003DGb2"), "001xx000003DGb2AAG");
    }

    #[test]
    fn an_eighteen_character_id_is_accepted_in_any_case() {
        assert_eq!(
            canonical("001XX000003DGB2AAG").as_deref(),
            Some("001xx000003DGb2AAG")
        );
        assert_eq!(
            canonical("001xx000003DGb2").as_deref(),
            Some("001xx000003DGb2AAG")
        );
    }

    #[test]
    fn a_wrong_suffix_or_length_is_not_an_id() {
        // The suffix marks a digit as upper case, or uses a character outside its alphabet.
        assert_eq!(canonical("001xx000003DGb2AAB"), None);
        assert_eq!(canonical("001xx000003DGb2AA9"), None);
        // A consistent suffix names another (all lower-case) id, not an error.
        assert_eq!(
            canonical("001xx000003DGb2AAA").as_deref(),
            Some("001xx000003dgb2AAA")
        );
        assert_eq!(canonical("001xx000003DGb"), None);
        assert_eq!(canonical("001xx000003DG-2"), None);
    }

    #[test]
    fn allocated_ids_are_unique_and_checksummed() {
        let mut ids = IdAllocator::new("8d");
        let a = ids.next("00Q");
        let b = ids.next("00Q");
        assert_ne!(a, b);
        assert_eq!(a.len(), 18);
        assert_eq!(canonical(&a[..15]).as_deref(), Some(a.as_str()));
    }
}
