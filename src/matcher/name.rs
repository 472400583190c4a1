//! Company names: normalisation into comparable tokens (Unicode folding, case,
//! punctuation, "&"/"and"/"und"/"et", leading "The", legal suffixes across countries,
//! common abbreviations), acronyms, token-aware similarity, and the inverted token index
//! that keeps name matching from comparing every pair.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};

use rapidfuzz::fuzz;

/// A company name reduced to what identifies the company.
#[derive(Debug, Clone, PartialEq)]
pub struct NameKey {
    /// Canonical tokens in their original order: `"The Acme Intl. GmbH & Co. KG"` →
    /// `["acme", "international"]`.
    pub tokens: Vec<String>,
    /// `tokens` joined by one space.
    pub key: String,
    /// `tokens` sorted, joined by one space (order-insensitive comparison).
    pub sorted: String,
    /// `tokens` joined without spaces ("nex gen" = "nexgen").
    pub compact: String,
    /// Initials of the significant tokens when there are at least three
    /// (`international business machines` → `ibm`).
    pub acronym: Option<String>,
}

/// Legal-form suffixes, as token sequences after punctuation folding. Longest first so
/// `sp z oo` is removed before `oo` could be considered.
const LEGAL_SUFFIXES: &[&[&str]] = &[
    &["kabushiki", "kaisha"],
    &["sa", "de", "cv"],
    &["sab", "de", "cv"],
    &["de", "cv"],
    &["sp", "z", "oo"],
    &["spolka", "z", "oo"],
    &["sdn", "bhd"],
    &["pty", "ltd"],
    &["pte", "ltd"],
    &["pvt", "ltd"],
    &["private", "limited"],
    &["co", "ltd"],
    &["a", "s"],
    &["inc"],
    &["incorporated"],
    &["corp"],
    &["corporation"],
    &["co"],
    &["company"],
    &["cos"],
    &["llc"],
    &["llp"],
    &["lp"],
    &["ltd"],
    &["limited"],
    &["plc"],
    &["pllc"],
    &["pc"],
    &["gmbh"],
    &["mbh"],
    &["ag"],
    &["se"],
    &["kg"],
    &["kgaa"],
    &["ohg"],
    &["ug"],
    &["ev"],
    &["sa"],
    &["sas"],
    &["sasu"],
    &["sarl"],
    &["eurl"],
    &["sca"],
    &["snc"],
    &["spa"],
    &["srl"],
    &["srls"],
    &["sapa"],
    &["bv"],
    &["nv"],
    &["vof"],
    &["cv"],
    &["kk"],
    &["gk"],
    &["pty"],
    &["pte"],
    &["bhd"],
    &["oy"],
    &["oyj"],
    &["ab"],
    &["publ"],
    &["as"],
    &["asa"],
    &["aps"],
    &["sro"],
    &["spol"],
    &["doo"],
    &["dd"],
    &["ad"],
    &["ltda"],
    &["sl"],
    &["slu"],
    &["kft"],
    &["zrt"],
    &["nyrt"],
    &["tbk"],
    &["ooo"],
    &["oao"],
    &["zao"],
    &["pao"],
];

/// Legal forms written before the name (Indonesia's PT, Russia's OOO, ...).
const LEGAL_PREFIXES: &[&str] = &["pt", "ooo", "oao", "zao", "pao", "cv"];

/// Long legal suffixes that are caught even with one typo (`Corporaton`, `Limted`).
const FUZZY_SUFFIXES: &[&str] = &["corporation", "incorporated", "limited", "company", "gmbh"];

/// Words that only join other words.
const CONNECTORS: &[&str] = &["and", "und", "et"];

/// Words skipped when forming an acronym.
const ACRONYM_SKIP: &[&str] = &["of", "the", "for", "de", "der", "la", "le", "des", "du"];

/// Abbreviations and their canonical form; both spellings map to the same token.
fn canonical(token: &str) -> &str {
    match token {
        "intl" | "internat" | "international" => "international",
        "mfg" | "mfrs" | "manufacturing" => "manufacturing",
        "tech" | "techs" | "technology" | "technologies" | "techn" => "technologies",
        "sys" | "system" | "systems" => "systems",
        "grp" | "group" => "group",
        "svc" | "svcs" | "srvcs" | "service" | "services" => "services",
        "assoc" | "assocs" | "associates" => "associates",
        "bros" | "brothers" => "brothers",
        "natl" | "national" => "national",
        "mgmt" | "mgt" | "management" => "management",
        "hldg" | "hldgs" | "holding" | "holdings" => "holdings",
        "lab" | "labs" | "laboratory" | "laboratories" => "labs",
        "soln" | "solns" | "solution" | "solutions" => "solutions",
        "univ" | "university" => "university",
        "ctr" | "center" | "centre" => "center",
        "eng" | "engg" | "engineering" => "engineering",
        "pharma" | "pharmaceutical" | "pharmaceuticals" => "pharmaceuticals",
        "mktg" | "marketing" => "marketing",
        "comms" | "communication" | "communications" => "communications",
        "prods" | "product" | "products" => "products",
        "inds" | "industry" | "industries" => "industries",
        "dist" | "distr" | "distribution" => "distribution",
        "intg" | "integrated" => "integrated",
        "ins" | "insurance" => "insurance",
        "fin" | "financial" => "financial",
        other => other,
    }
}

/// Normalise a company name. `None` when nothing identifying is left (`""`, `"Inc."`,
/// `"-"`).
pub fn normalize(raw: &str) -> Option<NameKey> {
    // Apostrophes join ("McDonald's" = "McDonalds"); everything else that is not a letter,
    // digit, dot or slash separates tokens.
    let folded = deunicode::deunicode(raw)
        .to_ascii_lowercase()
        .replace(['\'', '`'], "");
    let mut tokens: Vec<String> = Vec::with_capacity(6);
    for chunk in folded.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '/')) {
        push_chunk(chunk, &mut tokens);
    }
    tokens.retain(|t| !CONNECTORS.contains(&t.as_str()));
    if tokens.len() > 1 && tokens[0] == "the" {
        tokens.remove(0);
    }
    strip_legal_forms(&mut tokens);
    if tokens.is_empty() {
        return None;
    }
    for token in &mut tokens {
        let canon = canonical(token);
        if canon != token {
            *token = canon.to_owned();
        }
    }
    Some(NameKey::from_tokens(tokens))
}

/// Split a chunk containing `.` or `/`: dotted initials join (`s.p.a.` → `spa`,
/// `a/s` → `as`, `l.l.c.` → `llc`); anything else splits (`amazon.com` → `amazon com`).
fn push_chunk(chunk: &str, tokens: &mut Vec<String>) {
    if chunk.is_empty() {
        return;
    }
    if !chunk.contains(['.', '/']) {
        tokens.push(chunk.to_owned());
        return;
    }
    let parts: Vec<&str> = chunk.split(['.', '/']).filter(|p| !p.is_empty()).collect();
    if parts.len() >= 2 && parts.iter().all(|p| p.len() <= 2) {
        tokens.push(parts.concat());
    } else {
        tokens.extend(parts.into_iter().map(str::to_owned));
    }
}

fn strip_legal_forms(tokens: &mut Vec<String>) {
    'outer: while tokens.len() > 1 {
        for suffix in LEGAL_SUFFIXES {
            if suffix.len() < tokens.len()
                && tokens[tokens.len() - suffix.len()..]
                    .iter()
                    .zip(suffix.iter())
                    .all(|(t, s)| t == s)
            {
                tokens.truncate(tokens.len() - suffix.len());
                continue 'outer;
            }
        }
        let last = &tokens[tokens.len() - 1];
        if last.len() >= 5
            && FUZZY_SUFFIXES.iter().any(|s| {
                // Cheap filters first: one typo keeps the first letter and the length
                // within one.
                s.as_bytes()[0] == last.as_bytes()[0]
                    && s.len().abs_diff(last.len()) <= 1
                    && fuzz::ratio(last.bytes(), s.bytes()) >= 0.88
            })
        {
            tokens.pop();
            continue;
        }
        break;
    }
    while tokens.len() > 1 && LEGAL_PREFIXES.contains(&tokens[0].as_str()) {
        tokens.remove(0);
    }
}

impl NameKey {
    fn from_tokens(tokens: Vec<String>) -> NameKey {
        let key = tokens.join(" ");
        let mut sorted_tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        sorted_tokens.sort_unstable();
        let sorted = sorted_tokens.join(" ");
        let compact = tokens.concat();
        let significant: Vec<&String> = tokens
            .iter()
            .filter(|t| !ACRONYM_SKIP.contains(&t.as_str()))
            .collect();
        let acronym = (significant.len() >= 3
            && significant
                .iter()
                .all(|t| t.as_bytes()[0].is_ascii_alphabetic()))
        .then(|| {
            significant
                .iter()
                .map(|t| char::from(t.as_bytes()[0]))
                .collect()
        });
        NameKey {
            tokens,
            key,
            sorted,
            compact,
            acronym,
        }
    }

    /// A single all-letter token of 3 to 6 letters could be an acronym (`IBM`, `BASF`).
    pub fn as_acronym(&self) -> Option<&str> {
        (self.tokens.len() == 1
            && (3..=6).contains(&self.key.len())
            && self.key.bytes().all(|b| b.is_ascii_alphabetic()))
        .then_some(self.key.as_str())
    }
}

/// How alike two normalised names are, in `[0, 1]`.
///
/// Character similarity (rapidfuzz indel ratio) of the token-sorted and in-order forms,
/// but only when every token on each side has a counterpart on the other (equal, or a
/// near-spelling for tokens of four letters or more). That rule is what keeps
/// "Acme Corp" away from "Acme Capital" and "First Bank of Ohio" away from
/// "First Bank of Omaha", which plain character ratios would happily join.
pub fn similarity(a: &NameKey, b: &NameKey) -> f64 {
    NameScorer::new(a).score(b)
}

/// [`similarity`] of one name against many.
///
/// rapidfuzz 0.5's `RatioBatchComparator` would precompute the name once, but it scores
/// some pairs differently from `fuzz::ratio` ("foods voralum"/"foods voralm": 0.92 vs
/// 0.96), so each pair goes through `fuzz::ratio`.
pub struct NameScorer<'a> {
    name: &'a NameKey,
}

impl<'a> NameScorer<'a> {
    pub fn new(name: &'a NameKey) -> NameScorer<'a> {
        NameScorer { name }
    }

    /// How alike `other` is to this scorer's name, in `[0, 1]`.
    pub fn score(&self, other: &NameKey) -> f64 {
        let a = self.name;
        if a.key == other.key {
            return 1.0;
        }
        if a.compact == other.compact {
            return 0.98;
        }
        // The indel ratio cannot exceed 2·min/(sum) of the lengths: skip hopeless pairs.
        let (la, lb) = (a.sorted.len(), other.sorted.len());
        let bound = 2.0 * la.min(lb) as f64 / (la + lb) as f64;
        if bound < 0.5 {
            return bound;
        }
        let score = fuzz::ratio(a.sorted.bytes(), other.sorted.bytes())
            .max(fuzz::ratio(a.key.bytes(), other.key.bytes()));
        if score < 0.5 {
            return score;
        }
        if all_paired(&a.tokens, &other.tokens) && all_paired(&other.tokens, &a.tokens) {
            score
        } else {
            score * 0.8
        }
    }
}

fn all_paired(from: &[String], to: &[String]) -> bool {
    from.iter().all(|t| {
        to.iter().any(|u| {
            t == u
                || (t.len() >= 4
                    && u.len() >= 4
                    // ratio ≥ 0.8 needs the shorter at least 2/3 of the longer.
                    && 3 * t.len().min(u.len()) >= 2 * t.len().max(u.len())
                    && fuzz::ratio(t.bytes(), u.bytes()) >= 0.8)
        })
    })
}

/// Postings lists longer than this are too common to block on: a name made only of such
/// tokens ("Global Services") is matched by its exact key, never fuzzily.
const MAX_POSTINGS: usize = 2_000;

/// Append the accounts on both sorted lists to `out`.
fn intersect_into(a: &[u32], b: &[u32], out: &mut Vec<u32>) {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
}

/// The name index over all accounts.
#[derive(Debug, Default)]
pub(crate) struct NameIndex {
    exact: HashMap<Box<str>, Vec<u32>>,
    compact: HashMap<Box<str>, Vec<u32>>,
    tokens: HashMap<Box<str>, Vec<u32>>,
    /// Deletion neighbourhood (SymSpell) of tokens of five letters or more: a hash of the
    /// token and of each one-letter deletion of it. An input token within one edit
    /// (insertion, deletion, substitution, transposition) shares a key with it, so a
    /// misspelt token finds exactly its near-spellings. Hash collisions only add
    /// candidates, which are scored anyway.
    deletes: HashMap<u64, Vec<u32>>,
    acronyms: HashMap<Box<str>, Vec<u32>>,
}

impl NameIndex {
    pub(crate) fn insert(&mut self, account: u32, name: &NameKey) {
        push(&mut self.exact, &name.key, account);
        push(&mut self.compact, &name.compact, account);
        let mut seen: Vec<&str> = Vec::with_capacity(name.tokens.len());
        for token in &name.tokens {
            if seen.contains(&token.as_str()) {
                continue;
            }
            seen.push(token);
            push(&mut self.tokens, token, account);
            if token.len() >= 5 {
                deletion_keys(token, |key| {
                    let list = self.deletes.entry(key).or_default();
                    if list.last() != Some(&account) {
                        list.push(account);
                    }
                });
            }
        }
        if let Some(acronym) = &name.acronym {
            push(&mut self.acronyms, acronym, account);
        }
    }

    /// Accounts whose name is exactly `name` after normalisation.
    pub(crate) fn exact(&self, name: &NameKey) -> &[u32] {
        self.exact.get(name.key.as_str()).map_or(&[], Vec::as_slice)
    }

    /// Whether some account's name has exactly this token.
    pub(crate) fn knows(&self, token: &str) -> bool {
        self.tokens.contains_key(token)
    }

    /// Accounts whose acronym is `acronym`.
    pub(crate) fn by_acronym(&self, acronym: &str) -> &[u32] {
        self.acronyms.get(acronym).map_or(&[], Vec::as_slice)
    }

    /// Candidate accounts for a fuzzy comparison with `name`, found through its rarest
    /// tokens (rare-token blocking). Sorted, without duplicates.
    pub(crate) fn candidates(&self, name: &NameKey, out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(self.exact(name));
        if let Some(hits) = self.compact.get(name.compact.as_str()) {
            out.extend_from_slice(hits);
        }
        // A true match holds every known input token exactly (a known token is some
        // company's real word, so the matcher does not accept it as a typo) and a
        // near-spelling (one edit) of every unknown one. Intersecting those lists is
        // exact blocking, and tiny.
        let mut known: Vec<&[u32]> = Vec::with_capacity(name.tokens.len());
        let mut typo_lists: Vec<Vec<u32>> = Vec::new();
        for token in &name.tokens {
            match self.tokens.get(token.as_str()) {
                Some(list) => known.push(list),
                None if token.len() >= 5 => {
                    let mut near: Vec<u32> = Vec::new();
                    deletion_keys(token, |key| {
                        if let Some(list) = self.deletes.get(&key) {
                            near.extend_from_slice(list);
                        }
                    });
                    near.sort_unstable();
                    near.dedup();
                    typo_lists.push(near);
                }
                // A short unknown token cannot be told from a typo of anything.
                None => return finish(out),
            }
        }
        known.sort_by_key(|list| list.len());
        let mut acc: Option<Vec<u32>> = None;
        for list in known
            .iter()
            .copied()
            .chain(typo_lists.iter().map(Vec::as_slice))
        {
            acc = Some(match acc {
                None => list.to_vec(),
                Some(prev) => {
                    let mut both = Vec::with_capacity(prev.len().min(list.len()));
                    intersect_into(&prev, list, &mut both);
                    both
                }
            });
            if acc.as_ref().is_some_and(Vec::is_empty) {
                break;
            }
        }
        if let Some(acc) = acc
            && acc.len() <= MAX_POSTINGS
        {
            out.extend_from_slice(&acc);
        }
        finish(out)
    }
}

fn finish(out: &mut Vec<u32>) {
    out.sort_unstable();
    out.dedup();
}

/// Call `f` with the hash of `token` and of every one-letter deletion of it. Tokens are
/// ASCII (names are transliterated), so bytes are letters. `DefaultHasher::new()` has
/// fixed keys: the same token hashes the same in every process.
fn deletion_keys(token: &str, mut f: impl FnMut(u64)) {
    let bytes = token.as_bytes();
    let hash = |skip: Option<usize>| {
        let mut hasher = DefaultHasher::new();
        for (i, b) in bytes.iter().enumerate() {
            if Some(i) != skip {
                hasher.write_u8(*b);
            }
        }
        hasher.finish()
    };
    f(hash(None));
    for i in 0..bytes.len() {
        f(hash(Some(i)));
    }
}

fn push(map: &mut HashMap<Box<str>, Vec<u32>>, key: &str, account: u32) {
    match map.get_mut(key) {
        Some(list) => {
            if list.last() != Some(&account) {
                list.push(account);
            }
        }
        None => {
            map.insert(key.into(), vec![account]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> String {
        normalize(name).map(|k| k.key).unwrap_or_default()
    }

    fn sim(a: &str, b: &str) -> f64 {
        similarity(&normalize(a).unwrap(), &normalize(b).unwrap())
    }

    #[test]
    fn legal_suffixes_across_countries_are_removed() {
        for name in [
            "Acme",
            "Acme Inc",
            "Acme, Inc.",
            "ACME INCORPORATED",
            "Acme Corp.",
            "Acme Corporation",
            "Acme LLC",
            "Acme L.L.C.",
            "Acme Ltd",
            "Acme Limited",
            "Acme PLC",
            "Acme GmbH",
            "Acme GmbH & Co. KG",
            "Acme AG",
            "Acme SE",
            "Acme S.A.",
            "Acme SA",
            "Acme S.A.S.",
            "Acme SARL",
            "Acme S.p.A.",
            "Acme S.r.l.",
            "Acme B.V.",
            "Acme N.V.",
            "Acme KK",
            "Acme K.K.",
            "Acme Pty Ltd",
            "Acme Pty. Ltd.",
            "Acme Oy",
            "Acme AB",
            "Acme AS",
            "Acme A/S",
            "Acme ApS",
            "Acme Sp. z o.o.",
            "Acme S.A. de C.V.",
            "Acme Co., Ltd.",
            "PT Acme Tbk",
            "OOO Acme",
            "Acme Sdn Bhd",
            "Acme Corporaton",
            "The Acme Company",
        ] {
            assert_eq!(key(name), "acme", "{name}");
        }
    }

    #[test]
    fn accents_case_ampersands_and_punctuation_fold() {
        assert_eq!(key("Müller & Söhne GmbH"), key("MULLER AND SOHNE"));
        assert_eq!(key("Procter & Gamble"), key("Procter and Gamble Co."));
        assert_eq!(key("Ernst und Young"), key("Ernst & Young"));
        assert_eq!(key("Moët et Chandon"), key("Moet & Chandon"));
        assert_eq!(key("Société Générale S.A."), "societe generale");
        assert_eq!(key("McDonald's Corp"), key("McDonalds"));
        assert_eq!(key("The Home Depot, Inc."), "home depot");
    }

    #[test]
    fn common_abbreviations_share_a_canonical_token() {
        assert_eq!(key("Acme Intl."), key("Acme International"));
        assert_eq!(key("Acme Mfg Co"), key("Acme Manufacturing Company"));
        assert_eq!(key("Acme Tech"), key("Acme Technologies Inc"));
        assert_eq!(key("Acme Sys"), key("Acme Systems"));
        assert_eq!(key("Acme Grp"), key("Acme Group"));
        assert_eq!(key("Acme Svcs"), key("Acme Services"));
    }

    #[test]
    fn a_name_that_is_only_a_legal_form_keeps_its_token_and_empty_names_are_none() {
        assert_eq!(key("AG"), "ag");
        assert_eq!(normalize("  - "), None);
        assert_eq!(normalize(""), None);
    }

    #[test]
    fn acronyms_come_from_three_or_more_significant_words() {
        let ibm = normalize("International Business Machines Corp").unwrap();
        assert_eq!(ibm.acronym.as_deref(), Some("ibm"));
        let boa = normalize("Bank of America").unwrap();
        assert_eq!(boa.acronym, None);
        assert_eq!(normalize("IBM").unwrap().as_acronym(), Some("ibm"));
        assert_eq!(normalize("Acme Widgets").unwrap().as_acronym(), None);
    }

    #[test]
    fn typos_and_word_order_score_high() {
        assert!(sim("Globex Logistics", "Globex Logistcs") >= 0.9);
        assert!(sim("Logistics Globex", "Globex Logistics") >= 0.99);
        assert!(sim("NexGen Analytics", "Nex Gen Analytics") >= 0.9);
    }

    #[test]
    fn near_names_of_different_companies_score_low() {
        assert!(sim("Acme Corp", "Acme Capital") < 0.8);
        assert!(
            sim(
                "First National Bank of Omaha",
                "First National Bank of Ohio"
            ) < 0.85
        );
        assert!(sim("Acme", "Acme Capital Partners") < 0.8);
        assert!(sim("Voralum Foods", "Voralum Logistics") < 0.8);
    }

    #[test]
    fn the_index_finds_misspelt_names_through_their_deletion_neighbourhood() {
        let mut index = NameIndex::default();
        let names = ["Globex Logistics", "Initech", "Voralum Foods", "Acme"];
        for (i, name) in names.iter().enumerate() {
            index.insert(i as u32, &normalize(name).unwrap());
        }
        let mut out = Vec::new();
        index.candidates(&normalize("Voralun Foods").unwrap(), &mut out);
        assert_eq!(out, vec![2]);
        index.candidates(&normalize("Globex").unwrap(), &mut out);
        assert_eq!(out, vec![0]);
    }
}
