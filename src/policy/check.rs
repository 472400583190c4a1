//! Turning a parsed policy file into a checked [`Policy`], collecting every problem.
//!
//! Nothing stops at the first issue: each section is checked on its own and every
//! finding carries the file, line, column and a fix, so one `policy check` run shows a
//! reviewer everything that is wrong.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use toml::Spanned;

use super::model::*;
use super::raw::*;
use super::{PolicyIssue, Severity};
use crate::domain::OwnerId;
use crate::matcher::DuplicateTieBreaker;
use crate::matcher::country::{CountryCode, country_code};
use crate::reconcile::matching::MatchStatus;

mod sla;

/// Fields a person record has by name; anything else is looked up in its CRM fields.
pub const RECORD_FIELDS: &[&str] = &[
    "id",
    "object",
    "email",
    "email_domain",
    "first_name",
    "last_name",
    "company",
    "website",
    "country",
    "state",
    "owner",
];

/// Fields an account has by name (`account.<field>`); anything else is a CRM field.
pub const ACCOUNT_FIELDS: &[&str] = &[
    "id",
    "name",
    "domain",
    "website",
    "country",
    "state",
    "employees",
    "industry",
    "owner",
    "parent",
];

pub(crate) struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    pub(super) issues: Vec<PolicyIssue>,
    /// Where each pool and territory is defined, for warnings about them.
    spans: HashMap<String, Range<usize>>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(file: &'a str, text: &'a str) -> Self {
        Checker {
            file,
            text,
            issues: Vec::new(),
            spans: HashMap::new(),
        }
    }

    pub(super) fn issue(
        &mut self,
        severity: Severity,
        span: Range<usize>,
        message: String,
        fix: String,
    ) {
        let (line, column) = line_col(self.text, span.start);
        self.issues.push(PolicyIssue {
            file: self.file.to_owned(),
            line,
            column,
            severity,
            message,
            fix,
        });
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>, fix: impl Into<String>) {
        self.issue(Severity::Error, span, message.into(), fix.into());
    }

    fn warn(&mut self, span: Range<usize>, message: impl Into<String>, fix: impl Into<String>) {
        self.issue(Severity::Warning, span, message.into(), fix.into());
    }

    fn has_errors(&self) -> bool {
        self.issues.iter().any(|i| i.severity == Severity::Error)
    }

    pub(super) fn check(&mut self, raw: RawPolicy) -> Option<Policy> {
        let (name, settings) = self.settings(raw.settings);
        let reps = self.reps(raw.reps);
        let pools = self.pools(raw.pools, &reps);
        let territory_names: BTreeSet<String> = raw
            .territories
            .keys()
            .map(|k| k.get_ref().clone())
            .collect();
        let territories = self.territories(raw.territories, &reps);
        let mut rules = Vec::new();
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        let mut rule_spans = Vec::new();
        for raw_rule in raw.rules {
            let span = raw_rule.span();
            if let Some(rule) =
                self.rule(raw_rule, false, &reps, &pools, &territory_names, &settings)
            {
                if let Some(first) = names.get(&rule.name) {
                    let (l, _) = line_col(self.text, first.start);
                    self.error(
                        span.clone(),
                        format!(
                            "rule name {:?} is used twice (first at line {l})",
                            rule.name
                        ),
                        "give every rule a unique name; explain and plans refer to rules by name",
                    );
                }
                names.insert(rule.name.clone(), span.clone());
                rules.push(rule);
                rule_spans.push(span);
            }
        }
        match raw.default {
            None => self.error(
                0..0,
                "the policy has no [default] rule",
                "add a [default] table, e.g. `[default]\\naction = \"exception\"` or `action = \"pool\"` with `pool = \"...\"`",
            ),
            Some(d) => {
                let span = d.span();
                if !d.get_ref().when.is_empty() {
                    self.error(
                        span.clone(),
                        "the [default] rule has conditions",
                        "remove `when` from [default]: it catches every record no rule routed",
                    );
                }
                if let Some(rule) = self.rule(d, true, &reps, &pools, &territory_names, &settings) {
                    rules.push(rule);
                    rule_spans.push(span);
                }
            }
        }
        self.reachability(&rules, &rule_spans);
        self.contradictions(&rules, &rule_spans);
        self.unused(&rules, &pools, &territories);
        let calendars = self.calendars(raw.calendars);
        let slas = self.slas(raw.sla, &calendars, &reps, &pools, &rules);
        if self.has_errors() {
            return None;
        }
        let rep_index_by_owner = reps
            .values()
            .enumerate()
            .map(|(i, r)| (r.owner.clone(), i))
            .collect();
        let rep_by_owner = reps
            .values()
            .map(|r| (r.owner.clone(), r.name.clone()))
            .collect();
        Some(Policy {
            version: String::new(),
            source: self.file.to_owned(),
            name,
            settings,
            reps,
            territories,
            pools,
            rules,
            calendars,
            slas,
            rep_index_by_owner,
            rep_by_owner,
        })
    }

    fn settings(&mut self, raw: Option<Spanned<RawSettings>>) -> (Option<String>, Settings) {
        let mut settings = Settings::default();
        let Some(raw) = raw else {
            return (None, settings);
        };
        let raw = raw.into_inner();
        if let Some(s) = raw.sticky {
            settings.sticky = *s.get_ref();
        }
        if let Some(days) = raw.manual_override_days {
            match u32::try_from(*days.get_ref()) {
                Ok(0) => settings.manual_override_days = None,
                Ok(d) => settings.manual_override_days = Some(d),
                Err(_) => self.error(
                    days.span(),
                    format!("settings.manual_override_days is {}", days.get_ref()),
                    "use a number of days ≥ 0 (0 turns manual-override protection off)",
                ),
            }
        }
        if let Some(list) = raw.duplicate_tie_breakers {
            let mut breakers = Vec::new();
            for item in list.into_inner() {
                match DuplicateTieBreaker::parse(item.get_ref()) {
                    Some(b) if breakers.contains(&b) => self.error(
                        item.span(),
                        format!(
                            "settings.duplicate_tie_breakers lists {:?} twice",
                            item.get_ref()
                        ),
                        "name each tie-breaker once",
                    ),
                    Some(b) => breakers.push(b),
                    None => self.error(
                        item.span(),
                        format!(
                            "settings.duplicate_tie_breakers: unknown tie-breaker {:?}",
                            item.get_ref()
                        ),
                        "use active_owner, parent, oldest or most_contacts, in the order to \
                         apply them (an empty list never picks among duplicates)",
                    ),
                }
            }
            settings.duplicate_tie_breakers = breakers;
        }
        (raw.name.map(|n| n.into_inner()), settings)
    }

    fn reps(&mut self, raw: BTreeMap<Key, Spanned<RawRep>>) -> BTreeMap<String, Rep> {
        let mut reps = BTreeMap::new();
        let mut owners: HashMap<String, String> = HashMap::new();
        for (key, raw_rep) in raw {
            let name = key.get_ref().clone();
            let span = raw_rep.span();
            let r = raw_rep.into_inner();
            let owner = r.owner.get_ref().trim().to_owned();
            if owner.is_empty() {
                self.error(
                    r.owner.span(),
                    format!("reps.{name}.owner is empty"),
                    "set owner to the CRM owner id (HubSpot owner id, Salesforce User id)",
                );
            } else if let Some(other) = owners.insert(owner.clone(), name.clone()) {
                self.error(
                    r.owner.span(),
                    format!("reps.{name}.owner {owner:?} is also rep {other:?}"),
                    "declare each CRM owner once and refer to it by that rep name",
                );
            }
            let time_zone = r
                .time_zone
                .as_ref()
                .and_then(|z| self.zone(z, &format!("reps.{name}")));
            let hours = self.hours(
                r.hours.as_ref(),
                r.days.as_ref(),
                &format!("reps.{name}"),
                &span,
            );
            let out_of_office = r
                .out_of_office
                .iter()
                .filter_map(|w| self.window(w, &name))
                .collect();
            let cap_per_day = self.cap(r.cap_per_day.as_ref(), &format!("reps.{name}.cap_per_day"));
            let cap_per_week = self.cap(
                r.cap_per_week.as_ref(),
                &format!("reps.{name}.cap_per_week"),
            );
            reps.insert(
                name.clone(),
                Rep {
                    name,
                    owner: OwnerId::new(owner),
                    display_name: r.name,
                    time_zone,
                    hours,
                    out_of_office,
                    cap_per_day,
                    cap_per_week,
                },
            );
        }
        reps
    }

    fn zone(&mut self, z: &Spanned<String>, place: &str) -> Option<Tz> {
        match z.get_ref().parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                self.error(
                    z.span(),
                    format!(
                        "{place}.time_zone {:?} is not an IANA time zone",
                        z.get_ref()
                    ),
                    "use a zone name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\"",
                );
                None
            }
        }
    }

    fn cap(&mut self, cap: Option<&Spanned<i64>>, place: &str) -> Option<u32> {
        let cap = cap?;
        match u32::try_from(*cap.get_ref()) {
            Ok(c) if c > 0 => Some(c),
            _ => {
                self.error(
                    cap.span(),
                    format!("{place} is {}", cap.get_ref()),
                    "use a cap ≥ 1, or remove the rep from the pool to stop assignments",
                );
                None
            }
        }
    }

    fn hours(
        &mut self,
        hours: Option<&Spanned<String>>,
        days: Option<&Spanned<toml::Value>>,
        place: &str,
        span: &Range<usize>,
    ) -> Option<WorkingHours> {
        let Some(hours) = hours else {
            if let Some(d) = days {
                self.error(
                    d.span(),
                    format!("{place}.days is set without hours"),
                    "add `hours = \"09:00-17:00\"` or remove `days`",
                );
            }
            return None;
        };
        let _ = span;
        let fix = "write hours as \"HH:MM-HH:MM\" in 24-hour local time, e.g. \"09:00-17:30\"";
        let parsed = hours.get_ref().split_once('-').and_then(|(a, b)| {
            Some((
                NaiveTime::parse_from_str(a.trim(), "%H:%M").ok()?,
                NaiveTime::parse_from_str(b.trim(), "%H:%M").ok()?,
            ))
        });
        let Some((start, end)) = parsed else {
            self.error(
                hours.span(),
                format!("{place}.hours {:?} is not a time window", hours.get_ref()),
                fix,
            );
            return None;
        };
        if start == end {
            self.error(
                hours.span(),
                format!(
                    "{place}.hours {:?} is empty (start equals end)",
                    hours.get_ref()
                ),
                "give an end time after the start, or remove hours to mean always available",
            );
            return None;
        }
        let days = match days {
            None => Some([true, true, true, true, true, false, false]),
            Some(d) => self.days(d, place),
        }?;
        Some(WorkingHours { start, end, days })
    }

    fn days(&mut self, value: &Spanned<toml::Value>, place: &str) -> Option<[bool; 7]> {
        const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let fix = "list weekdays as [\"mon\", \"tue\", …] or a range such as \"mon-fri\"";
        let index = |s: &str| {
            let s = s.trim().to_ascii_lowercase();
            NAMES.iter().position(|n| s.starts_with(n))
        };
        let mut days = [false; 7];
        let ok = match value.get_ref() {
            toml::Value::String(s) => s.split(',').all(|part| match part.split_once('-') {
                Some((a, b)) => match (index(a), index(b)) {
                    (Some(a), Some(b)) => {
                        let mut i = a;
                        loop {
                            days[i] = true;
                            if i == b {
                                break true;
                            }
                            i = (i + 1) % 7;
                        }
                    }
                    _ => false,
                },
                None => index(part).map(|i| days[i] = true).is_some(),
            }),
            toml::Value::Array(items) => items
                .iter()
                .all(|v| v.as_str().and_then(index).map(|i| days[i] = true).is_some()),
            _ => false,
        };
        if !ok || !days.iter().any(|d| *d) {
            self.error(
                value.span(),
                format!("{place}.days is not a list of weekdays"),
                fix,
            );
            return None;
        }
        Some(days)
    }

    fn bound(&mut self, v: &Spanned<toml::Value>, place: &str) -> Option<WindowBound> {
        let text = match v.get_ref() {
            toml::Value::String(s) => s.clone(),
            toml::Value::Datetime(d) => d.to_string(),
            _ => String::new(),
        };
        if let Ok(d) = NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
            return Some(WindowBound::Date(d));
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(&text) {
            return Some(WindowBound::Instant(t.with_timezone(&Utc)));
        }
        self.error(
            v.span(),
            format!("{place} {text:?} is neither a date nor an RFC 3339 instant"),
            "write a local date \"2026-12-24\" (whole day in the rep's zone) or an instant \"2026-12-24T13:00:00Z\"",
        );
        None
    }

    fn window(&mut self, w: &Spanned<RawWindow>, rep: &str) -> Option<Window> {
        self.window_at(w, format!("reps.{rep}.out_of_office"))
    }

    fn window_at(&mut self, w: &Spanned<RawWindow>, place: String) -> Option<Window> {
        let raw = w.get_ref();
        let from = self.bound(&raw.from, &format!("{place}.from"));
        let to = self.bound(&raw.to, &format!("{place}.to"));
        let (from, to) = (from?, to?);
        let backwards = match (from, to) {
            (WindowBound::Date(a), WindowBound::Date(b)) => b < a,
            (WindowBound::Instant(a), WindowBound::Instant(b)) => b <= a,
            (WindowBound::Date(a), WindowBound::Instant(b)) => b.date_naive() < a,
            (WindowBound::Instant(a), WindowBound::Date(b)) => b < a.date_naive(),
        };
        if backwards {
            self.error(
                w.span(),
                format!("{place}: the window ends before it starts"),
                "swap `from` and `to`, or fix the dates",
            );
            return None;
        }
        Some(Window {
            from,
            to,
            note: raw.note.clone(),
        })
    }

    fn pools(
        &mut self,
        raw: BTreeMap<Key, Spanned<RawPool>>,
        reps: &BTreeMap<String, Rep>,
    ) -> BTreeMap<String, Pool> {
        let mut pools = BTreeMap::new();
        for (key, raw_pool) in raw {
            let name = key.get_ref().clone();
            let span = raw_pool.span();
            self.spans.insert(format!("pool:{name}"), key.span());
            let p = raw_pool.into_inner();
            let strategy = match p.strategy.get_ref().as_str() {
                "round_robin" => Some(Strategy::RoundRobin),
                "weighted" => Some(Strategy::Weighted),
                "least_loaded" => Some(Strategy::LeastLoaded),
                other => {
                    self.error(
                        p.strategy.span(),
                        format!("pools.{name}.strategy {other:?} is unknown"),
                        "use \"round_robin\", \"weighted\" or \"least_loaded\"",
                    );
                    None
                }
            };
            let time_zone = p
                .time_zone
                .as_ref()
                .and_then(|z| self.zone(z, &format!("pools.{name}")));
            let hours = self.hours(
                p.hours.as_ref(),
                p.days.as_ref(),
                &format!("pools.{name}"),
                &span,
            );
            let pool_day = self.cap(p.cap_per_day.as_ref(), &format!("pools.{name}.cap_per_day"));
            let pool_week = self.cap(
                p.cap_per_week.as_ref(),
                &format!("pools.{name}.cap_per_week"),
            );
            let mut members = Vec::new();
            let mut seen = BTreeSet::new();
            if p.members.get_ref().is_empty() {
                self.error(
                    p.members.span(),
                    format!("pools.{name}.members is empty"),
                    "list at least one rep, e.g. members = [\"alice\", { rep = \"bob\", weight = 2 }]",
                );
            }
            for m in p.members.get_ref() {
                if let Some(member) = self.member(m, &name, strategy, reps, pool_day, pool_week) {
                    if !seen.insert(member.rep.clone()) {
                        self.error(
                            m.span(),
                            format!("pools.{name}: rep {:?} is listed twice", member.rep),
                            "list each rep once; use `weight` to give a rep a larger share",
                        );
                        continue;
                    }
                    members.push(member);
                }
            }
            if let Some(strategy) = strategy {
                let index = members
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (m.owner.clone(), i))
                    .collect();
                pools.insert(
                    name.clone(),
                    Pool {
                        name,
                        description: p.description,
                        strategy,
                        members,
                        time_zone,
                        hours,
                        index,
                    },
                );
            }
        }
        pools
    }

    fn member(
        &mut self,
        m: &Spanned<toml::Value>,
        pool: &str,
        strategy: Option<Strategy>,
        reps: &BTreeMap<String, Rep>,
        pool_day: Option<u32>,
        pool_week: Option<u32>,
    ) -> Option<Member> {
        let span = m.span();
        let fix_shape = "write a member as \"rep-name\" or { rep = \"rep-name\", weight = 2, cap_per_day = 10 }";
        let (rep, weight, day, week) = match m.get_ref() {
            toml::Value::String(s) => (s.clone(), None, None, None),
            toml::Value::Table(t) => {
                if let Some(k) = t.keys().find(|k| {
                    !["rep", "weight", "cap_per_day", "cap_per_week"].contains(&k.as_str())
                }) {
                    self.error(
                        span,
                        format!("pools.{pool}: member has unknown key {k:?}"),
                        fix_shape,
                    );
                    return None;
                }
                let Some(rep) = t.get("rep").and_then(|v| v.as_str()) else {
                    self.error(
                        span,
                        format!("pools.{pool}: member has no `rep`"),
                        fix_shape,
                    );
                    return None;
                };
                let int = |k: &str| t.get(k).map(|v| v.as_integer());
                (
                    rep.to_owned(),
                    int("weight"),
                    int("cap_per_day"),
                    int("cap_per_week"),
                )
            }
            _ => {
                self.error(
                    span,
                    format!("pools.{pool}: a member is neither a name nor a table"),
                    fix_shape,
                );
                return None;
            }
        };
        let Some(r) = reps.get(&rep) else {
            let known: Vec<&str> = reps.keys().map(String::as_str).collect();
            self.error(
                span,
                format!("pools.{pool}: unknown rep {rep:?}"),
                format!(
                    "declare it under [reps.{rep}] with its CRM owner id, or use one of {known:?}"
                ),
            );
            return None;
        };
        let weight = match (weight, strategy) {
            (None, _) => 1,
            (Some(Some(w)), Some(Strategy::RoundRobin)) => {
                self.warn(
                    span.clone(),
                    format!("pools.{pool}: weight {w} for {rep:?} is ignored by round_robin"),
                    "set strategy = \"weighted\" to use weights, or drop the weight",
                );
                1
            }
            (Some(Some(w)), _) if w >= 1 && w <= i64::from(u16::MAX) => w as u32,
            (Some(Some(0)), _) => {
                self.error(
                    span,
                    format!("pools.{pool}: rep {rep:?} has weight 0"),
                    "use a weight ≥ 1, or remove the rep from the pool (a zero share is no share)",
                );
                return None;
            }
            (Some(_), _) => {
                self.error(
                    span,
                    format!(
                        "pools.{pool}: weight for {rep:?} is not a whole number between 1 and 65535"
                    ),
                    "give weights as small whole numbers, e.g. 1, 2, 3",
                );
                return None;
            }
        };
        let cap = |me: &mut Self, v: Option<Option<i64>>, what: &str| -> Option<u32> {
            match v {
                None => None,
                Some(Some(c)) if c >= 1 && c <= i64::from(u32::MAX) => Some(c as u32),
                Some(_) => {
                    me.error(
                        span.clone(),
                        format!("pools.{pool}: {what} for {rep:?} is not a whole number ≥ 1"),
                        "use a cap ≥ 1, or remove the rep from the pool",
                    );
                    None
                }
            }
        };
        let day = cap(self, day, "cap_per_day");
        let week = cap(self, week, "cap_per_week");
        Some(Member {
            rep_index: reps.keys().position(|k| *k == rep).unwrap_or(0),
            rep,
            owner: r.owner.clone(),
            weight,
            cap_per_day: day.or(r.cap_per_day).or(pool_day),
            cap_per_week: week.or(r.cap_per_week).or(pool_week),
        })
    }

    fn territories(
        &mut self,
        raw: BTreeMap<Key, Spanned<RawTerritory>>,
        reps: &BTreeMap<String, Rep>,
    ) -> Vec<Territory> {
        let mut out = Vec::new();
        for (key, raw_t) in raw {
            let name = key.get_ref().clone();
            let span = raw_t.span();
            self.spans.insert(format!("territory:{name}"), key.span());
            let t = raw_t.into_inner();
            let list = |v: &Option<Spanned<Vec<Spanned<String>>>>| -> Vec<String> {
                v.as_ref()
                    .map(|l| {
                        l.get_ref()
                            .iter()
                            .map(|s| s.get_ref().trim().to_uppercase())
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let countries = list(&t.countries);
            let states = list(&t.states);
            let employees = t
                .employees
                .as_ref()
                .and_then(|r| self.range(r, &format!("territories.{name}.employees")));
            let mut conditions = Vec::new();
            for c in &t.when {
                if c.get_ref().territory.is_some() {
                    self.error(
                        c.span(),
                        format!("territories.{name}: a territory condition inside a territory"),
                        "territories cannot refer to territories; repeat the criteria or use a rule with two territory conditions",
                    );
                    continue;
                }
                if let Some(cond) =
                    self.condition(c, &format!("territories.{name}"), &BTreeSet::new())
                {
                    conditions.push(cond);
                }
            }
            if countries.is_empty() && states.is_empty() && employees.is_none() && t.when.is_empty()
            {
                self.error(
                    span.clone(),
                    format!("territories.{name} has no criteria"),
                    "give it countries, states, employees = { min = …, max = … } or `when` conditions",
                );
            }
            for c in t
                .countries
                .iter()
                .flat_map(|l| l.get_ref())
                .chain(t.states.iter().flat_map(|l| l.get_ref()))
            {
                if c.get_ref().trim().is_empty() {
                    self.error(
                        c.span(),
                        format!("territories.{name}: an empty country or state"),
                        "remove the empty string",
                    );
                }
            }
            let country_codes = self.country_codes(
                t.countries
                    .iter()
                    .flat_map(|l| l.get_ref())
                    .map(|c| (c.get_ref().as_str(), c.span())),
                &format!("territories.{name}.countries"),
            );
            let mut rep_names = Vec::new();
            for r in &t.reps {
                if reps.contains_key(r.get_ref()) {
                    rep_names.push(r.get_ref().clone());
                } else {
                    self.error(
                        r.span(),
                        format!("territories.{name}.reps: unknown rep {:?}", r.get_ref()),
                        format!("declare [reps.{}] or remove it from the list", r.get_ref()),
                    );
                }
            }
            out.push(Territory {
                name,
                description: t.description,
                countries,
                country_codes,
                states,
                employees,
                conditions,
                reps: rep_names,
            });
        }
        out
    }

    fn number(&mut self, v: &Spanned<toml::Value>, place: &str) -> Option<f64> {
        match v.get_ref() {
            toml::Value::Integer(i) => Some(*i as f64),
            toml::Value::Float(f) if f.is_finite() => Some(*f),
            _ => {
                self.error(
                    v.span(),
                    format!("{place} is not a number"),
                    "write a number, e.g. 1000",
                );
                None
            }
        }
    }

    fn range(&mut self, r: &Spanned<RawRange>, place: &str) -> Option<NumRange> {
        let raw = r.get_ref();
        let min = raw
            .min
            .as_ref()
            .map(|v| self.number(v, &format!("{place}.min")));
        let max = raw
            .max
            .as_ref()
            .map(|v| self.number(v, &format!("{place}.max")));
        if matches!(min, Some(None)) || matches!(max, Some(None)) {
            return None;
        }
        let (min, max) = (min.flatten(), max.flatten());
        if min.is_none() && max.is_none() {
            self.error(
                r.span(),
                format!("{place} has neither min nor max"),
                "give min, max or both",
            );
            return None;
        }
        if let (Some(a), Some(b)) = (min, max)
            && b < a
        {
            self.error(
                r.span(),
                format!("{place}: max {b} is below min {a}"),
                "swap min and max",
            );
            return None;
        }
        Some(NumRange { min, max })
    }

    fn scalar(v: &toml::Value) -> Option<String> {
        match v {
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Integer(i) => Some(i.to_string()),
            toml::Value::Float(f) => Some(f.to_string()),
            toml::Value::Boolean(b) => Some(b.to_string()),
            _ => None,
        }
    }

    fn strings(&mut self, v: &Spanned<toml::Value>, place: &str) -> Option<Vec<String>> {
        let out = match v.get_ref() {
            toml::Value::Array(items) => items.iter().map(Self::scalar).collect::<Option<Vec<_>>>(),
            other => Self::scalar(other).map(|s| vec![s]),
        };
        if out.is_none() {
            self.error(
                v.span(),
                format!("{place} must be a string or a list of strings"),
                "e.g. [\"+44\", \"+353\"]",
            );
        }
        out
    }

    pub(crate) fn condition(
        &mut self,
        c: &Spanned<RawCondition>,
        place: &str,
        territories: &BTreeSet<String>,
    ) -> Option<Condition> {
        let raw = c.get_ref();
        let span = c.span();
        let negate = raw.not;
        if let Some(t) = &raw.territory {
            if raw.field.is_some() || raw.match_.is_some() {
                self.error(
                    span,
                    format!("{place}: a condition mixes `territory` with other tests"),
                    "split it into separate conditions",
                );
                return None;
            }
            if !territories.contains(t.get_ref()) {
                let known: Vec<&String> = territories.iter().collect();
                self.error(
                    t.span(),
                    format!("{place}: unknown territory {:?}", t.get_ref()),
                    format!(
                        "define [territories.{}] or use one of {known:?}",
                        t.get_ref()
                    ),
                );
                return None;
            }
            return Some(Condition::Territory {
                name: t.get_ref().clone(),
                negate,
            });
        }
        if let Some(m) = &raw.match_ {
            if raw.field.is_some() {
                self.error(
                    span,
                    format!("{place}: a condition mixes `match` with `field`"),
                    "split it into separate conditions",
                );
                return None;
            }
            let values = self.strings(m, &format!("{place}.match"))?;
            let mut statuses = Vec::new();
            for v in values {
                match v.as_str() {
                    "matched" => statuses.push(MatchStatus::Matched),
                    "unmatched" => statuses.push(MatchStatus::Unmatched),
                    "ambiguous" => statuses.push(MatchStatus::Ambiguous),
                    other => {
                        self.error(
                            m.span(),
                            format!("{place}: match status {other:?} is unknown"),
                            "use \"matched\", \"unmatched\" or \"ambiguous\"",
                        );
                        return None;
                    }
                }
            }
            return Some(Condition::Match { statuses, negate });
        }
        let Some(field) = &raw.field else {
            self.error(
                span,
                format!("{place}: a condition needs `field`, `territory` or `match`"),
                "e.g. { field = \"account.country\", in = [\"DE\", \"AT\"] } or { territory = \"dach\" }",
            );
            return None;
        };
        let name = field.get_ref().trim();
        let field_ref = match name.strip_prefix("account.") {
            Some(f) if !f.is_empty() => FieldRef::Account(f.to_owned()),
            _ if name.is_empty() || name == "account" || name.contains(char::is_whitespace) => {
                self.error(
                    field.span(),
                    format!("{place}: field {:?} is not a field name", field.get_ref()),
                    format!(
                        "use a record field ({}) or account.<field>",
                        RECORD_FIELDS.join(", ")
                    ),
                );
                return None;
            }
            _ => FieldRef::Record(name.to_owned()),
        };
        let ops = [
            raw.equals.is_some(),
            raw.in_.is_some(),
            raw.prefix.is_some(),
            raw.range.is_some(),
            raw.exists.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if ops != 1 {
            self.error(
                span,
                format!("{place}: condition on {name:?} has {ops} tests"),
                "give exactly one of equals, in, prefix, range, exists",
            );
            return None;
        }
        let op = if let Some(v) = &raw.equals {
            let Some(s) = Self::scalar(v.get_ref()) else {
                self.error(
                    v.span(),
                    format!("{place}: equals takes one value"),
                    "use `in = [...]` for several values",
                );
                return None;
            };
            Op::Equals(s)
        } else if let Some(vs) = &raw.in_ {
            let Some(list) = vs
                .get_ref()
                .iter()
                .map(Self::scalar)
                .collect::<Option<Vec<_>>>()
            else {
                self.error(
                    vs.span(),
                    format!("{place}: `in` takes a list of plain values"),
                    "e.g. in = [\"DE\", \"AT\"]",
                );
                return None;
            };
            if list.is_empty() {
                self.error(
                    vs.span(),
                    format!("{place}: `in` is an empty list, so it never holds"),
                    "list at least one value or remove the condition",
                );
                return None;
            }
            Op::In(list)
        } else if let Some(p) = &raw.prefix {
            Op::Prefix(self.strings(p, &format!("{place}.prefix"))?)
        } else if let Some(r) = &raw.range {
            Op::Range(self.range(r, &format!("{place}.range"))?)
        } else if let Some(e) = &raw.exists {
            Op::Exists(*e.get_ref())
        } else {
            return None;
        };
        let country_codes = match (&op, field_ref.is_country()) {
            (Op::Equals(v), true) => {
                let span = raw.equals.as_ref().map_or(span.clone(), |e| e.span());
                self.country_codes([(v.as_str(), span)], &format!("{place}: {name}"))
            }
            (Op::In(vs), true) => {
                let span = raw.in_.as_ref().map_or(span.clone(), |e| e.span());
                self.country_codes(
                    vs.iter().map(|v| (v.as_str(), span.clone())),
                    &format!("{place}: {name}"),
                )
            }
            _ => Vec::new(),
        };
        Some(Condition::Field {
            field: field_ref,
            op,
            negate,
            country_codes,
        })
    }

    /// Country values written in the policy as ISO codes, read once here so routing
    /// compares codes (`Germany`, `Deutschland` and `DE` are one country). A value that
    /// is no recognisable country still works as text; it gets a warning, since it is
    /// most likely a typo or a name leadroute does not know.
    fn country_codes<'v>(
        &mut self,
        values: impl IntoIterator<Item = (&'v str, Range<usize>)>,
        place: &str,
    ) -> Vec<Option<CountryCode>> {
        let mut codes = Vec::new();
        for (value, span) in values {
            let code = country_code(value);
            if code.is_none() && !value.trim().is_empty() {
                self.warn(
                    span,
                    format!(
                        "{place}: {value:?} is not a country leadroute recognises, so it only matches that exact text"
                    ),
                    "write an ISO 3166-1 alpha-2 code (\"DE\") or a common country name (\"Germany\", \"Deutschland\")",
                );
            }
            codes.push(code);
        }
        codes
    }

    #[allow(clippy::too_many_arguments)]
    fn rule(
        &mut self,
        raw: Spanned<RawRule>,
        is_default: bool,
        reps: &BTreeMap<String, Rep>,
        pools: &BTreeMap<String, Pool>,
        territories: &BTreeSet<String>,
        settings: &Settings,
    ) -> Option<Rule> {
        let span = raw.span();
        let (line, _) = line_col(self.text, span.start);
        let r = raw.into_inner();
        let name = match (&r.name, is_default) {
            (Some(n), _) if !n.get_ref().trim().is_empty() => n.get_ref().trim().to_owned(),
            (_, true) => "default".to_owned(),
            _ => {
                self.error(
                    span.clone(),
                    "a rule has no name",
                    "add `name = \"…\"`; plans and explain refer to rules by name",
                );
                format!("line-{line}")
            }
        };
        let place = if is_default {
            "default".to_owned()
        } else {
            format!("rules.{name}")
        };
        let conditions: Vec<Condition> = r
            .when
            .iter()
            .filter_map(|c| self.condition(c, &place, territories))
            .collect();
        let conditions_ok = conditions.len() == r.when.len();
        let extra = |me: &mut Self, v: &Option<Spanned<String>>, key: &str, action: &str| {
            if let Some(v) = v {
                me.error(
                    v.span(),
                    format!("{place}: `{key}` means nothing for action {action:?}"),
                    format!("remove `{key}` or change the action"),
                );
            }
        };
        let action_name = r.action.get_ref().as_str();
        let action = match action_name {
            "account_owner" | "owner" | "pool" | "queue" | "keep" | "exception" => {
                for (v, key, used_by) in [
                    (&r.pool, "pool", "pool"),
                    (&r.rep, "rep", "owner"),
                    (&r.queue, "queue", "queue"),
                    (&r.kind, "kind", "exception"),
                ] {
                    if action_name != used_by {
                        extra(self, v, key, action_name);
                    }
                }
                match action_name {
                    "account_owner" => Some(Action::AccountOwner),
                    "keep" => Some(Action::Keep),
                    "owner" => match &r.rep {
                        None => {
                            self.error(
                                span.clone(),
                                format!("{place}: action \"owner\" needs `rep`"),
                                "add rep = \"<rep name from [reps]>\"",
                            );
                            None
                        }
                        Some(rep) if !reps.contains_key(rep.get_ref()) => {
                            self.error(
                                rep.span(),
                                format!("{place}: unknown rep {:?}", rep.get_ref()),
                                format!("declare [reps.{}] with its CRM owner id", rep.get_ref()),
                            );
                            None
                        }
                        Some(rep) => Some(Action::Owner {
                            rep: rep.get_ref().clone(),
                        }),
                    },
                    "pool" => match &r.pool {
                        None => {
                            self.error(
                                span.clone(),
                                format!("{place}: action \"pool\" needs `pool`"),
                                "add pool = \"<name from [pools]>\"",
                            );
                            None
                        }
                        Some(p) if !pools.contains_key(p.get_ref()) => {
                            let known: Vec<&String> = pools.keys().collect();
                            self.error(
                                p.span(),
                                format!("{place}: unknown pool {:?}", p.get_ref()),
                                format!("define [pools.{}] or use one of {known:?}", p.get_ref()),
                            );
                            None
                        }
                        Some(p) => Some(Action::Pool {
                            pool: p.get_ref().clone(),
                        }),
                    },
                    "queue" => match &r.queue {
                        Some(q) if !q.get_ref().trim().is_empty() => Some(Action::Queue {
                            queue: OwnerId::new(q.get_ref().trim()),
                        }),
                        _ => {
                            self.error(
                                span.clone(),
                                format!("{place}: action \"queue\" needs `queue`"),
                                "add queue = \"<CRM queue or holding owner id>\"",
                            );
                            None
                        }
                    },
                    _ => Some(Action::Exception {
                        kind: r
                            .kind
                            .as_ref()
                            .map(|k| k.get_ref().clone())
                            .unwrap_or_else(|| "policy_exception".into()),
                        reason: r.reason.clone(),
                    }),
                }
            }
            other => {
                self.error(
                    r.action.span(),
                    format!("{place}: action {other:?} is unknown"),
                    "use account_owner, owner, pool, queue, keep or exception",
                );
                None
            }
        };
        let on_unavailable = match r.on_unavailable.as_ref().map(|s| s.get_ref().as_str()) {
            None if is_default => OnUnavailable::Exception,
            None | Some("next") => OnUnavailable::Next,
            Some("exception") => OnUnavailable::Exception,
            Some(other) => {
                self.error(
                    r.on_unavailable
                        .as_ref()
                        .map(|s| s.span())
                        .unwrap_or(span.clone()),
                    format!("{place}: on_unavailable {other:?} is unknown"),
                    "use \"next\" (try the next rule) or \"exception\"",
                );
                OnUnavailable::Next
            }
        };
        if is_default && on_unavailable == OnUnavailable::Next {
            self.error(
                span.clone(),
                "default: on_unavailable = \"next\" but there is no next rule",
                "remove on_unavailable from [default]; when it finds nobody the record becomes a no_eligible_rep exception",
            );
        }
        let sticky = r.sticky.map(|s| *s.get_ref()).unwrap_or(settings.sticky);
        if !conditions_ok {
            return None;
        }
        Some(Rule {
            name,
            description: r.description,
            conditions,
            action: action?,
            on_unavailable,
            sticky,
            line,
            is_default,
        })
    }

    /// Rules that can never fire, and rules whose values earlier rules already take.
    fn reachability(&mut self, rules: &[Rule], spans: &[Range<usize>]) {
        let never_falls_through = |r: &Rule| {
            matches!(r.action, Action::Exception { .. } | Action::Queue { .. })
                || r.on_unavailable == OnUnavailable::Exception
        };
        let key = |r: &Rule| {
            let mut k: Vec<String> = r.conditions.iter().map(Condition::describe).collect();
            k.sort();
            k
        };
        for (j, later) in rules.iter().enumerate() {
            if later.is_default {
                continue;
            }
            let later_key = key(later);
            for earlier in &rules[..j] {
                let earlier_key = key(earlier);
                // An earlier rule whose conditions are a subset of this one's sees every
                // record this one would; if it never passes a record on, this is dead.
                let covers = earlier_key.iter().all(|c| later_key.contains(c));
                if covers && never_falls_through(earlier) {
                    self.error(
                        spans[j].clone(),
                        format!(
                            "rule {:?} is unreachable: rule {:?} (line {}) above matches every record it would, and never passes one on",
                            later.name, earlier.name, earlier.line
                        ),
                        format!("move {:?} above {:?}, narrow {:?}, or delete it", later.name, earlier.name, earlier.name),
                    );
                    break;
                }
                if covers && earlier_key.is_empty() {
                    // A catch-all above: this rule only sees what it could not place.
                    self.warn(
                        spans[j].clone(),
                        format!(
                            "rule {:?} comes after the catch-all rule {:?} (line {}, no conditions): it only sees records that rule finds nobody for",
                            later.name, earlier.name, earlier.line
                        ),
                        format!(
                            "move {:?} above {:?}, or give {:?} conditions",
                            later.name, earlier.name, earlier.name
                        ),
                    );
                    break;
                }
                if earlier_key == later_key && !later_key.is_empty() {
                    self.warn(
                        spans[j].clone(),
                        format!("rule {:?} repeats the conditions of rule {:?} (line {}); it only sees what that rule passes on", later.name, earlier.name, earlier.line),
                        "merge the two rules or make their conditions differ",
                    );
                    break;
                }
                if let (Some((fa, va)), Some((fb, vb))) =
                    (single_values(earlier), single_values(later))
                    && fa == fb
                {
                    let shared: Vec<&String> = vb
                        .iter()
                        .filter(|v| {
                            va.iter().any(|a| {
                                a.eq_ignore_ascii_case(v)
                                    || (fa.is_country()
                                        && country_code(a).is_some()
                                        && country_code(a) == country_code(v))
                            })
                        })
                        .collect();
                    if !shared.is_empty() {
                        self.warn(
                            spans[j].clone(),
                            format!(
                                "rules {:?} and {:?} overlap: {} {shared:?} is routed by {:?} (line {}) first",
                                earlier.name, later.name, fa.describe(), earlier.name, earlier.line
                            ),
                            format!("remove {shared:?} from one of the two rules"),
                        );
                    }
                }
            }
        }
    }

    /// Rules whose conditions cannot all hold at once (`country = "DE"` and
    /// `country = "US"`; `in = [..]` lists with nothing in common; a value both required
    /// and excluded; `exists = false` beside a value test): they can never match.
    fn contradictions(&mut self, rules: &[Rule], spans: &[Range<usize>]) {
        for (rule, span) in rules.iter().zip(spans) {
            if let Some(why) = contradiction(&rule.conditions) {
                self.warn(
                    span.clone(),
                    format!("rule {:?} can never match: {why}", rule.name),
                    "fix the conditions (all of `when` must hold at once), or delete the rule",
                );
            }
        }
    }

    fn unused(
        &mut self,
        rules: &[Rule],
        pools: &BTreeMap<String, Pool>,
        territories: &[Territory],
    ) {
        let mut used_pools = BTreeSet::new();
        let mut used_territories = BTreeSet::new();
        for r in rules {
            if let Action::Pool { pool } = &r.action {
                used_pools.insert(pool.as_str());
            }
            for c in &r.conditions {
                if let Condition::Territory { name, .. } = c {
                    used_territories.insert(name.as_str());
                }
            }
        }
        for p in pools.keys() {
            if !used_pools.contains(p.as_str()) {
                let span = self
                    .spans
                    .get(&format!("pool:{p}"))
                    .cloned()
                    .unwrap_or(0..0);
                self.warn(
                    span,
                    format!("pool {p:?} is not used by any rule"),
                    format!("route to it with action = \"pool\", pool = \"{p}\", or delete it"),
                );
            }
        }
        for t in territories {
            if !used_territories.contains(t.name.as_str()) && t.reps.is_empty() {
                let span = self
                    .spans
                    .get(&format!("territory:{}", t.name))
                    .cloned()
                    .unwrap_or(0..0);
                self.warn(
                    span,
                    format!("territory {:?} is used by no rule and has no reps", t.name),
                    "use it in a rule (`{ territory = \"…\" }`) or give it reps for drift's outside-territory check",
                );
            }
        }
    }
}

/// Why `conditions` cannot all hold, if they cannot.
fn contradiction(conditions: &[Condition]) -> Option<String> {
    // Values compare as ISO country codes where known, else case-insensitively.
    fn values(vs: &[String], codes: &[Option<CountryCode>]) -> BTreeSet<String> {
        vs.iter()
            .enumerate()
            .map(|(i, v)| match codes.get(i).copied().flatten() {
                Some(code) => format!("{code:?}"),
                None => v.to_ascii_lowercase(),
            })
            .collect()
    }
    let mut fields: Vec<&FieldRef> = Vec::new();
    for c in conditions {
        if let Condition::Field { field, .. } = c
            && !fields.contains(&field)
        {
            fields.push(field);
        }
    }
    for field in fields {
        let mut allowed: Option<BTreeSet<String>> = None;
        let mut excluded = BTreeSet::new();
        let mut must_be_empty = false;
        let mut must_have_value = false;
        for c in conditions {
            let Condition::Field {
                field: f,
                op,
                negate,
                country_codes,
            } = c
            else {
                continue;
            };
            if f != field {
                continue;
            }
            let set = match op {
                Op::Equals(v) => Some(values(std::slice::from_ref(v), country_codes)),
                Op::In(vs) => Some(values(vs, country_codes)),
                Op::Exists(e) => {
                    if *e != *negate {
                        must_have_value = true;
                    } else {
                        must_be_empty = true;
                    }
                    None
                }
                Op::Prefix(_) | Op::Range(_) => {
                    if !negate {
                        must_have_value = true;
                    }
                    None
                }
            };
            match (set, negate) {
                (Some(set), false) => {
                    must_have_value = true;
                    allowed = Some(match allowed {
                        Some(prev) => prev.intersection(&set).cloned().collect(),
                        None => set,
                    });
                }
                (Some(set), true) => excluded.extend(set),
                (None, _) => {}
            }
        }
        let name = field.describe();
        if must_be_empty && must_have_value {
            return Some(format!("{name} must be empty and have a value at once"));
        }
        if let Some(allowed) = allowed
            && allowed.iter().all(|v| excluded.contains(v))
        {
            return Some(format!(
                "no value of {name} satisfies all of its conditions"
            ));
        }
    }
    None
}

/// A rule with exactly one positive equals/in condition: its field and values.
fn single_values(r: &Rule) -> Option<(&FieldRef, Vec<String>)> {
    match r.conditions.as_slice() {
        [
            Condition::Field {
                field,
                op: Op::Equals(v),
                negate: false,
                ..
            },
        ] => Some((field, vec![v.clone()])),
        [
            Condition::Field {
                field,
                op: Op::In(vs),
                negate: false,
                ..
            },
        ] => Some((field, vs.clone())),
        _ => None,
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod warning_tests {
    fn warnings(text: &str) -> Vec<String> {
        match crate::policy::parse("p.toml", text) {
            Ok((_, warnings)) => warnings.iter().map(ToString::to_string).collect(),
            Err(issues) => panic!("{issues:#?}"),
        }
    }

    const REPS: &str = "[reps.al]\nowner = \"1\"\n[reps.bo]\nowner = \"2\"\n[pools.all]\nstrategy = \"round_robin\"\nmembers = [\"al\", \"bo\"]\n";

    #[test]
    fn a_rule_after_a_catch_all_is_a_warning() {
        let text = format!(
            "{REPS}[[rules]]\nname = \"everyone\"\naction = \"pool\"\npool = \"all\"\n\
             [[rules]]\nname = \"germany\"\nwhen = [{{ field = \"country\", equals = \"DE\" }}]\naction = \"owner\"\nrep = \"al\"\n\
             [default]\naction = \"exception\"\n"
        );
        let got = warnings(&text);
        assert!(
            got.iter().any(|w| w.contains(
                "rule \"germany\" comes after the catch-all rule \"everyone\""
            )),
            "{got:#?}"
        );
    }

    #[test]
    fn contradictory_conditions_are_a_warning() {
        let text = format!(
            "{REPS}[[rules]]\nname = \"nowhere\"\n\
             when = [{{ field = \"country\", equals = \"Germany\" }}, {{ field = \"country\", in = [\"US\", \"FR\"] }}]\n\
             action = \"owner\"\nrep = \"al\"\n\
             [[rules]]\nname = \"both\"\n\
             when = [{{ field = \"state\", equals = \"CA\" }}, {{ field = \"state\", equals = \"ca\", not = true }}]\n\
             action = \"owner\"\nrep = \"bo\"\n\
             [[rules]]\nname = \"fine\"\n\
             when = [{{ field = \"country\", in = [\"DE\", \"US\"] }}, {{ field = \"country\", equals = \"Deutschland\" }}]\n\
             action = \"owner\"\nrep = \"bo\"\n\
             [default]\naction = \"pool\"\npool = \"all\"\n"
        );
        let got = warnings(&text);
        assert!(
            got.iter()
                .any(|w| w.contains("rule \"nowhere\" can never match: no value of country")),
            "{got:#?}"
        );
        assert!(
            got.iter()
                .any(|w| w.contains("rule \"both\" can never match")),
            "{got:#?}"
        );
        assert!(
            !got.iter().any(|w| w.contains("\"fine\" can never")),
            "{got:#?}"
        );
    }

    #[test]
    fn every_shape_error_in_a_policy_is_reported_at_once() {
        let text =
            "[reps.al]\nowner = \"1\"\nhour = \"9-5\"\n[default]\naction = \"keep\"\nflavour = 1\n";
        let issues = crate::policy::parse("p.toml", text).unwrap_err();
        let got: Vec<String> = issues.iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(
            got[0].starts_with("p.toml:3:1: error: unknown field `hour` (did you mean `hours`?)"),
            "{got:#?}"
        );
        assert!(
            got[1].starts_with("p.toml:6:1: error: unknown field `flavour`"),
            "{got:#?}"
        );
    }
}
