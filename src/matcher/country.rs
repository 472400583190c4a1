//! Country values as CRMs hold them (`DE`, `DEU`, `Germany`, `Deutschland`, `U.S.A.`)
//! reduced to ISO 3166-1 alpha-2 codes, so the country tie-breaker compares like with like.

/// An ISO 3166-1 alpha-2 code, upper case.
pub type CountryCode = [u8; 2];

/// Names, native names and alpha-3 codes of the countries CRMs see most, with their
/// alpha-2 code. Any other two-letter value is taken as an alpha-2 code as written.
const ALIASES: &[(&str, &str)] = &[
    ("united states", "US"),
    ("united states of america", "US"),
    ("usa", "US"),
    ("america", "US"),
    ("us", "US"),
    ("united kingdom", "GB"),
    ("uk", "GB"),
    ("great britain", "GB"),
    ("england", "GB"),
    ("scotland", "GB"),
    ("wales", "GB"),
    ("northern ireland", "GB"),
    ("gbr", "GB"),
    ("germany", "DE"),
    ("deutschland", "DE"),
    ("deu", "DE"),
    ("france", "FR"),
    ("fra", "FR"),
    ("italy", "IT"),
    ("italia", "IT"),
    ("ita", "IT"),
    ("spain", "ES"),
    ("espana", "ES"),
    ("esp", "ES"),
    ("portugal", "PT"),
    ("prt", "PT"),
    ("netherlands", "NL"),
    ("the netherlands", "NL"),
    ("holland", "NL"),
    ("nederland", "NL"),
    ("nld", "NL"),
    ("belgium", "BE"),
    ("belgique", "BE"),
    ("belgie", "BE"),
    ("bel", "BE"),
    ("luxembourg", "LU"),
    ("switzerland", "CH"),
    ("schweiz", "CH"),
    ("suisse", "CH"),
    ("che", "CH"),
    ("austria", "AT"),
    ("osterreich", "AT"),
    ("aut", "AT"),
    ("ireland", "IE"),
    ("irl", "IE"),
    ("sweden", "SE"),
    ("sverige", "SE"),
    ("swe", "SE"),
    ("norway", "NO"),
    ("norge", "NO"),
    ("nor", "NO"),
    ("denmark", "DK"),
    ("danmark", "DK"),
    ("dnk", "DK"),
    ("finland", "FI"),
    ("suomi", "FI"),
    ("fin", "FI"),
    ("iceland", "IS"),
    ("poland", "PL"),
    ("polska", "PL"),
    ("pol", "PL"),
    ("czech republic", "CZ"),
    ("czechia", "CZ"),
    ("hungary", "HU"),
    ("romania", "RO"),
    ("bulgaria", "BG"),
    ("greece", "GR"),
    ("turkey", "TR"),
    ("turkiye", "TR"),
    ("russia", "RU"),
    ("russian federation", "RU"),
    ("rus", "RU"),
    ("ukraine", "UA"),
    ("israel", "IL"),
    ("united arab emirates", "AE"),
    ("uae", "AE"),
    ("saudi arabia", "SA"),
    ("egypt", "EG"),
    ("south africa", "ZA"),
    ("nigeria", "NG"),
    ("kenya", "KE"),
    ("india", "IN"),
    ("ind", "IN"),
    ("china", "CN"),
    ("chn", "CN"),
    ("peoples republic of china", "CN"),
    ("hong kong", "HK"),
    ("taiwan", "TW"),
    ("japan", "JP"),
    ("jpn", "JP"),
    ("nippon", "JP"),
    ("south korea", "KR"),
    ("korea", "KR"),
    ("republic of korea", "KR"),
    ("kor", "KR"),
    ("singapore", "SG"),
    ("sgp", "SG"),
    ("malaysia", "MY"),
    ("indonesia", "ID"),
    ("thailand", "TH"),
    ("vietnam", "VN"),
    ("viet nam", "VN"),
    ("philippines", "PH"),
    ("australia", "AU"),
    ("aus", "AU"),
    ("new zealand", "NZ"),
    ("nzl", "NZ"),
    ("canada", "CA"),
    ("can", "CA"),
    ("mexico", "MX"),
    ("mex", "MX"),
    ("brazil", "BR"),
    ("brasil", "BR"),
    ("bra", "BR"),
    ("argentina", "AR"),
    ("chile", "CL"),
    ("colombia", "CO"),
    ("peru", "PE"),
];

/// Reduce a country value to its alpha-2 code; `None` when it is empty or unknown.
///
/// Called once per record by the router, so the usual values (plain ASCII, like `DE`
/// or `Germany`) are folded on the stack; only other text goes through `deunicode`.
pub fn country_code(raw: &str) -> Option<CountryCode> {
    let raw = raw.trim();
    if raw.is_ascii() && raw.len() <= FOLD_MAX {
        let mut buf = [0u8; FOLD_MAX];
        let mut n = 0;
        for b in raw.bytes().filter(|b| *b != b'.') {
            buf[n] = b.to_ascii_lowercase();
            n += 1;
        }
        // ASCII in, ASCII out: always valid UTF-8.
        let folded = std::str::from_utf8(&buf[..n]).unwrap_or("");
        return code_of_folded(folded.trim());
    }
    let folded = deunicode::deunicode(raw)
        .to_ascii_lowercase()
        .replace('.', "");
    code_of_folded(folded.trim())
}

/// Longest value folded without allocating; longer ones are no alias anyway.
const FOLD_MAX: usize = 32;

/// `folded`: trimmed, lower case, ASCII, dots removed.
fn code_of_folded(folded: &str) -> Option<CountryCode> {
    if folded.is_empty() {
        return None;
    }
    if let Some((_, code)) = ALIASES.iter().find(|(alias, _)| *alias == folded) {
        let bytes = code.as_bytes();
        return Some([bytes[0], bytes[1]]);
    }
    let bytes = folded.as_bytes();
    (bytes.len() == 2 && bytes.iter().all(u8::is_ascii_alphabetic))
        .then(|| [bytes[0].to_ascii_uppercase(), bytes[1].to_ascii_uppercase()])
}

/// The country a name or alias (`germany`, `deutschland`, `uk`) stands for; `folded` is
/// lower-case ASCII. Unlike [`country_code`], an unknown two-letter value is no country.
pub fn country_of_name(folded: &str) -> Option<CountryCode> {
    static BY_NAME: std::sync::OnceLock<std::collections::HashMap<&'static str, CountryCode>> =
        std::sync::OnceLock::new();
    BY_NAME
        .get_or_init(|| {
            ALIASES
                .iter()
                .rev()
                .map(|(alias, code)| {
                    let bytes = code.as_bytes();
                    (*alias, [bytes[0], bytes[1]])
                })
                .collect()
        })
        .get(folded)
        .copied()
}

/// The code as text (`"DE"`).
pub fn code_str(code: &CountryCode) -> &str {
    std::str::from_utf8(code).unwrap_or("??")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_native_names_and_codes_reduce_to_alpha_2() {
        for raw in ["DE", "de", "DEU", "Germany", "Deutschland", " germany "] {
            assert_eq!(country_code(raw), Some(*b"DE"), "{raw}");
        }
        for raw in ["US", "USA", "U.S.A.", "United States"] {
            assert_eq!(country_code(raw), Some(*b"US"), "{raw}");
        }
        assert_eq!(country_code("UK"), Some(*b"GB"));
        assert_eq!(country_code("Österreich"), Some(*b"AT"));
        assert_eq!(country_code(""), None);
        assert_eq!(country_code("Atlantis"), None);
    }

    #[test]
    fn the_stack_fold_agrees_with_the_general_one() {
        // Values short enough for the stack path, and the same country spelled so that
        // it takes the general path (non-ASCII, or longer than the stack buffer).
        assert_eq!(country_code("U.K."), Some(*b"GB"));
        assert_eq!(country_code("  The Netherlands "), Some(*b"NL"));
        assert_eq!(country_code("España"), Some(*b"ES"));
        assert_eq!(country_code("Türkiye"), Some(*b"TR"));
        assert_eq!(country_code("United States of America"), Some(*b"US"));
        let long = "a country whose name is much longer than thirty-two letters";
        assert_eq!(country_code(long), None);
        assert_eq!(country_code("d"), None);
        assert_eq!(country_code("D3"), None);
    }
}
