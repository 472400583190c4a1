//! Domains for matching: host normalisation of emails and website fields, the registrable
//! domain via the Public Suffix List (`psl`), and the classification of a domain as a
//! company's own, a free-mail provider, a disposable provider or a shared platform.
//!
//! Pure functions over strings; the lists are compiled in (see `data/`), so nothing here
//! touches the file system or the network.

use std::collections::HashSet;
use std::sync::LazyLock;

/// What kind of domain a contact's email or website is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainClass {
    /// Probably the organisation's own domain: usable for matching.
    Corporate,
    /// A consumer mailbox provider (gmail.com, gmx.de, qq.com, ...).
    FreeMail,
    /// A throwaway inbox provider (mailinator.com, ...).
    Disposable,
}

/// A normalised host and its registrable domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Lower-case ASCII (punycode) host without `www.`, port or trailing dot.
    pub host: String,
    /// The registrable domain ("eTLD+1") of `host`: `shop.acme.co.uk` → `acme.co.uk`.
    pub registrable: String,
}

/// The built-in domain lists, parsed once per process.
struct Lists {
    free: HashSet<&'static str>,
    disposable: HashSet<&'static str>,
    platforms: HashSet<&'static str>,
}

static FREE_MAIL_TXT: &str = include_str!("data/free_mail_domains.txt");
static PLATFORMS_TXT: &str = include_str!("data/shared_platform_domains.txt");

static LISTS: LazyLock<Lists> = LazyLock::new(|| Lists {
    free: data_lines(FREE_MAIL_TXT).collect(),
    // mailchecker's list is maintained upstream and republished often; it holds tens of
    // thousands of throwaway-inbox domains.
    disposable: mailchecker::blacklist().into_iter().collect(),
    platforms: data_lines(PLATFORMS_TXT).collect(),
});

fn data_lines(text: &'static str) -> impl Iterator<Item = &'static str> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
}

/// How many free-mail and disposable domains the built-in lists hold (for reports).
pub fn list_sizes() -> (usize, usize) {
    (LISTS.free.len(), LISTS.disposable.len())
}

/// The domain of an email address, normalised: `"Jane <J.Doe@Mail.ACME.com>"` →
/// `mail.acme.com` / `acme.com`. `None` when there is no usable domain.
pub fn email_host(email: &str) -> Option<Host> {
    let email = email.trim().trim_start_matches("mailto:");
    let email = match (email.rfind('<'), email.rfind('>')) {
        (Some(open), Some(close)) if open < close => &email[open + 1..close],
        _ => email,
    };
    let (_, domain) = email.rsplit_once('@')?;
    // A domain with a path or spaces is not an email domain.
    if domain.contains(['/', ' ', '?', '#']) {
        return None;
    }
    host_of(domain)
}

/// A website field as users type it (`HTTPS://WWW.Acme.com:443/about?x#y`, `acme.com.`,
/// `bücher.de`, `//acme.com`) → its host and registrable domain.
///
/// Returns `None` for values with no host, with an unknown public suffix (`acme.local`),
/// or for pages on a shared platform (`linkedin.com/company/acme`, `sites.google.com/...`)
/// that say nothing about the company's own domain.
pub fn website_host(website: &str) -> Option<Host> {
    let mut rest = website.trim();
    if let Some(pos) = rest.find("://") {
        rest = &rest[pos + 3..];
    }
    rest = rest.trim_start_matches('/');
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    // user:pass@host
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = host_of(authority)?;
    if is_shared_platform(&host.registrable) {
        let path_has_content = path.trim_matches(['/', '?', '#']).len() > 1;
        if host.host != host.registrable || path_has_content {
            return None;
        }
    }
    Some(host)
}

/// Normalise a bare host (possibly with port, trailing dot, `www.`, upper case or Unicode).
pub fn host_of(raw: &str) -> Option<Host> {
    let raw = raw.trim();
    // Strip a port; IPv6 literals are not company domains anyway.
    let raw = match raw.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => raw,
    };
    let raw = raw.trim_end_matches('.').trim_start_matches('.');
    if raw.is_empty() || raw.contains(['[', ']', ' ', '\t']) {
        return None;
    }
    // IDN → punycode (also lower-cases and applies UTS-46 mapping).
    let ascii = if raw.is_ascii() {
        raw.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(raw).ok()?
    };
    if ascii.is_empty()
        || !ascii
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        || ascii.split('.').any(str::is_empty)
    {
        return None;
    }
    // IPv4 literals have no registrable domain.
    if ascii.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let host = strip_www(&ascii).to_owned();
    let registrable = {
        let domain = psl::domain(host.as_bytes())?;
        // An unknown TLD matches only the PSL's implicit `*` rule: `acme.local` is no
        // public domain, so it cannot identify a company across systems.
        if !domain.suffix().is_known() {
            return None;
        }
        std::str::from_utf8(domain.as_bytes()).ok()?.to_owned()
    };
    Some(Host { host, registrable })
}

/// `www.`, `www2.`, `www3.` are presentation, not part of the company's host.
fn strip_www(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix("www")
        && let Some(dot) = rest.find('.')
        && rest[..dot].bytes().all(|b| b.is_ascii_digit())
        && rest[dot + 1..].contains('.')
    {
        return &rest[dot + 1..];
    }
    host
}

/// Whether many unrelated organisations have pages under `registrable`.
pub fn is_shared_platform(registrable: &str) -> bool {
    LISTS.platforms.contains(registrable)
}

/// Classify a host. Every dot-suffix from the full host down to the registrable domain is
/// checked, so `mail.yahoo.co.uk` and `x.0-00.usa.cc` are caught. `extra_free` and
/// `corporate` come from the matcher configuration (see
/// [`MatcherConfig`](super::MatcherConfig)); `corporate` wins over every list.
pub fn classify(
    host: &Host,
    extra_free: &HashSet<String>,
    corporate: &HashSet<String>,
) -> DomainClass {
    if corporate.contains(&host.registrable) || corporate.contains(&host.host) {
        return DomainClass::Corporate;
    }
    let lists = &*LISTS;
    let mut suffix = host.host.as_str();
    loop {
        // Disposable first: the free-mail list also carries some throwaway providers.
        if lists.disposable.contains(suffix) {
            return DomainClass::Disposable;
        }
        if lists.free.contains(suffix) || extra_free.contains(suffix) {
            return DomainClass::FreeMail;
        }
        if suffix.len() <= host.registrable.len() {
            break;
        }
        match suffix.find('.') {
            Some(dot) => suffix = &suffix[dot + 1..],
            None => break,
        }
    }
    DomainClass::Corporate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(website: &str) -> Option<String> {
        website_host(website).map(|h| h.registrable)
    }

    fn class(email: &str) -> DomainClass {
        let host = email_host(email).expect("test emails have domains");
        classify(&host, &HashSet::new(), &HashSet::new())
    }

    #[test]
    fn websites_normalise_scheme_www_port_path_case_and_trailing_dot() {
        assert_eq!(
            reg("HTTPS://WWW.Acme.com:443/about?x=1#top").as_deref(),
            Some("acme.com")
        );
        assert_eq!(reg("acme.com.").as_deref(), Some("acme.com"));
        assert_eq!(reg("//www2.acme.com/").as_deref(), Some("acme.com"));
        assert_eq!(
            reg("http://user:pw@shop.acme.co.uk:8080").as_deref(),
            Some("acme.co.uk")
        );
        assert_eq!(reg("  www.acme.de  ").as_deref(), Some("acme.de"));
    }

    #[test]
    fn subdomains_fold_to_the_registrable_domain_under_multi_label_suffixes() {
        assert_eq!(reg("eu.shop.acme.co.uk").as_deref(), Some("acme.co.uk"));
        assert_eq!(reg("acme.com.au").as_deref(), Some("acme.com.au"));
        assert_eq!(reg("tokyo.acme.co.jp").as_deref(), Some("acme.co.jp"));
        let host = email_host("j.doe@Mail.EU.Acme.com").unwrap();
        assert_eq!(host.registrable, "acme.com");
        assert_eq!(host.host, "mail.eu.acme.com");
    }

    #[test]
    fn internationalised_domains_become_punycode() {
        assert_eq!(
            reg("https://www.Bücher.de/").as_deref(),
            Some("xn--bcher-kva.de")
        );
        assert_eq!(reg("xn--bcher-kva.de").as_deref(), Some("xn--bcher-kva.de"));
        assert_eq!(
            email_host("info@müller.de")
                .map(|h| h.registrable)
                .as_deref(),
            Some("xn--mller-kva.de")
        );
    }

    #[test]
    fn private_suffix_hosting_keeps_each_tenant_apart() {
        assert_eq!(reg("acme.github.io").as_deref(), Some("acme.github.io"));
        assert_eq!(
            reg("https://acme.herokuapp.com/app").as_deref(),
            Some("acme.herokuapp.com")
        );
    }

    #[test]
    fn pages_on_shared_platforms_are_not_company_domains() {
        assert_eq!(reg("https://www.linkedin.com/company/acme"), None);
        assert_eq!(reg("https://sites.google.com/view/acme"), None);
        assert_eq!(reg("facebook.com/AcmeBakery"), None);
        // The platform's own company keeps its domain.
        assert_eq!(
            reg("https://www.linkedin.com/").as_deref(),
            Some("linkedin.com")
        );
    }

    #[test]
    fn garbage_and_private_names_have_no_domain() {
        for junk in [
            "",
            "n/a",
            "acme",
            "acme.local",
            "http://",
            "192.168.0.1",
            "a..b.com",
        ] {
            assert_eq!(reg(junk), None, "{junk:?}");
        }
        assert_eq!(email_host("no-at-sign.com"), None);
        assert_eq!(email_host("x@"), None);
    }

    #[test]
    fn emails_in_display_form_are_parsed() {
        let host = email_host("Jane Doe <jane@acme.com>").unwrap();
        assert_eq!(host.registrable, "acme.com");
        assert_eq!(
            email_host("mailto:jane@acme.com").unwrap().registrable,
            "acme.com"
        );
    }

    #[test]
    fn international_free_mail_providers_are_recognised() {
        for email in [
            "a@gmail.com",
            "a@gmx.de",
            "a@web.de",
            "a@qq.com",
            "a@163.com",
            "a@yandex.ru",
            "a@mail.ru",
            "a@naver.com",
            "a@orange.fr",
            "a@libero.it",
            "a@t-online.de",
            "a@yahoo.co.uk",
            "a@mail.yahoo.co.uk",
            "a@outlook.com",
            "a@icloud.com",
            "a@proton.me",
            "a@seznam.cz",
            "a@wp.pl",
            "a@uol.com.br",
            "a@rediffmail.com",
        ] {
            assert_eq!(class(email), DomainClass::FreeMail, "{email}");
        }
    }

    #[test]
    fn disposable_providers_and_their_subdomains_are_recognised() {
        assert_eq!(class("a@guerrillamailblock.com"), DomainClass::Disposable);
        assert_eq!(class("a@x.33mail.com"), DomainClass::Disposable);
    }

    #[test]
    fn company_domains_are_corporate_and_config_can_override_the_lists() {
        assert_eq!(class("a@acme.com"), DomainClass::Corporate);
        let host = email_host("a@gmx.de").unwrap();
        let corporate: HashSet<String> = ["gmx.de".to_owned()].into();
        assert_eq!(
            classify(&host, &HashSet::new(), &corporate),
            DomainClass::Corporate
        );
        let extra: HashSet<String> = ["acme.com".to_owned()].into();
        let acme = email_host("a@acme.com").unwrap();
        assert_eq!(
            classify(&acme, &extra, &HashSet::new()),
            DomainClass::FreeMail
        );
    }

    #[test]
    fn built_in_lists_are_sizeable() {
        let (free, disposable) = list_sizes();
        assert!(free > 4000, "{free}");
        assert!(disposable > 10_000, "{disposable}");
    }
}
