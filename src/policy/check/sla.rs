//! Checking `[calendars.<name>]` and `[[sla]]`: every mistake with line, column and
//! fix (unknown calendar, an escalation that cannot pick anyone, a deadline no
//! calendar hour can ever meet, overlapping or inverted hours, a week with no working
//! hour).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use toml::Spanned;

use super::Checker;
use crate::domain::OwnerId;
use crate::policy::calendar::{self, Calendar};
use crate::policy::model::*;
use crate::policy::raw::*;

/// The instant reachability is judged from: a Monday, so a calendar's first week
/// counts whole.
fn reference() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_767_571_200, 0).unwrap_or_default() // 2026-01-05
}

impl Checker<'_> {
    pub(super) fn calendars(
        &mut self,
        raw: BTreeMap<Key, Spanned<RawCalendar>>,
    ) -> BTreeMap<String, Calendar> {
        let mut out = BTreeMap::new();
        for (key, raw_cal) in raw {
            let name = key.get_ref().clone();
            let place = format!("calendars.{name}");
            if name == "always" || name == "owner" {
                self.error(
                    key.span(),
                    format!("{place}: {name:?} is a built-in calendar"),
                    "give the calendar another name; \"always\" is 24×7 and \"owner\" follows each rep's hours",
                );
                continue;
            }
            let span = raw_cal.span();
            let c = raw_cal.into_inner();
            let zone = match &c.time_zone {
                Some(z) => self.zone(z, &place),
                None => Some(Tz::UTC),
            };
            let hours = self.calendar_hours(c.hours.as_ref(), c.days.as_ref(), &place);
            let mut holidays = BTreeSet::new();
            for h in &c.holidays {
                let text = match h.get_ref() {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Datetime(d) => d.to_string(),
                    _ => String::new(),
                };
                match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
                    Ok(d) => {
                        holidays.insert(d);
                    }
                    Err(_) => self.error(
                        h.span(),
                        format!("{place}.holidays: {text:?} is not a date"),
                        "write holidays as local dates, e.g. holidays = [\"2026-12-25\"]",
                    ),
                }
            }
            for set in &c.holiday_sets {
                match calendar::holiday_set(set.get_ref()) {
                    Some(dates) => holidays.extend(
                        dates
                            .iter()
                            .filter_map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
                    ),
                    None => self.error(
                        set.span(),
                        format!(
                            "{place}.holiday_sets: {:?} is not a known set",
                            set.get_ref()
                        ),
                        format!(
                            "use one of {}, or list the dates in `holidays`",
                            calendar::HOLIDAY_SETS.join(", ")
                        ),
                    ),
                }
            }
            let out_of_office: Vec<Window> = c
                .out_of_office
                .iter()
                .filter_map(|w| self.window_at(w, format!("{place}.out_of_office")))
                .collect();
            let (Some(zone), Some(hours)) = (zone, hours) else {
                continue;
            };
            let cal = Calendar {
                name: name.clone(),
                zone,
                hours,
                holidays,
                out_of_office,
            };
            let monday = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap_or_default();
            if calendar::working_in_week(&cal, monday) <= Duration::zero() {
                self.error(
                    span,
                    format!("{place} has no working hour in a week"),
                    "give the calendar hours on at least one day, or use calendar = \"always\"",
                );
                continue;
            }
            out.insert(name, cal);
        }
        out
    }

    /// `hours = "09:00-12:00, 13:00-17:00"`: windows on the same `days`. `None` after an
    /// error; an empty list (no `hours`) means every hour.
    fn calendar_hours(
        &mut self,
        hours: Option<&Spanned<String>>,
        days: Option<&Spanned<toml::Value>>,
        place: &str,
    ) -> Option<Vec<WorkingHours>> {
        let days = match days {
            None => [true, true, true, true, true, false, false],
            Some(d) => self.days(d, place)?,
        };
        let Some(hours) = hours else {
            if days != [true; 7] {
                return Some(vec![WorkingHours {
                    start: NaiveTime::MIN,
                    end: NaiveTime::MIN,
                    days,
                }]);
            }
            return Some(Vec::new());
        };
        let mut windows = Vec::new();
        let parts: Vec<&str> = hours.get_ref().split(',').collect();
        for part in &parts {
            let parsed = part.split_once('-').and_then(|(a, b)| {
                Some((
                    NaiveTime::parse_from_str(a.trim(), "%H:%M").ok()?,
                    NaiveTime::parse_from_str(b.trim(), "%H:%M").ok()?,
                ))
            });
            let Some((start, end)) = parsed else {
                self.error(
                    hours.span(),
                    format!("{place}.hours {:?} is not a list of time windows", hours.get_ref()),
                    "write hours as \"HH:MM-HH:MM\" in 24-hour local time, several separated by commas: \"09:00-12:00, 13:00-17:00\"",
                );
                return None;
            };
            if start == end {
                self.error(
                    hours.span(),
                    format!("{place}.hours: the window {} is empty", part.trim()),
                    "give an end time after the start, or remove hours to mean every hour",
                );
                return None;
            }
            if end < start && parts.len() > 1 {
                self.error(
                    hours.span(),
                    format!("{place}.hours: the window {} is inverted (ends before it starts)", part.trim()),
                    "write windows in order within one day; a night shift (\"22:00-06:00\") must be the calendar's only window",
                );
                return None;
            }
            windows.push(WorkingHours { start, end, days });
        }
        windows.sort_by_key(|w| w.start);
        for pair in windows.windows(2) {
            if pair[1].start < pair[0].end {
                self.error(
                    hours.span(),
                    format!(
                        "{place}.hours: the windows {} and {} overlap",
                        pair[0].describe(),
                        pair[1].describe()
                    ),
                    "make the windows disjoint, e.g. \"09:00-12:00, 13:00-17:00\"",
                );
                return None;
            }
        }
        Some(windows)
    }

    pub(super) fn slas(
        &mut self,
        raw: Vec<Spanned<RawSla>>,
        calendars: &BTreeMap<String, Calendar>,
        reps: &BTreeMap<String, Rep>,
        pools: &BTreeMap<String, Pool>,
        rules: &[Rule],
    ) -> Vec<Sla> {
        let mut out = Vec::new();
        let mut names = BTreeSet::new();
        for raw_sla in raw {
            let span = raw_sla.span();
            let s = raw_sla.into_inner();
            let name = s.name.get_ref().trim().to_owned();
            if name.is_empty() {
                self.error(
                    s.name.span(),
                    "sla.name is empty",
                    "name the SLA, e.g. name = \"first-touch\"",
                );
                continue;
            }
            if !names.insert(name.clone()) {
                self.error(
                    s.name.span(),
                    format!("sla {name:?} is defined twice"),
                    "give every [[sla]] a unique name; timers and breaches refer to it by name",
                );
            }
            if let Some(sla) = self.sla(name, s, span, calendars, reps, pools, rules) {
                out.push(sla);
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn sla(
        &mut self,
        name: String,
        s: RawSla,
        span: std::ops::Range<usize>,
        calendars: &BTreeMap<String, Calendar>,
        reps: &BTreeMap<String, Rep>,
        pools: &BTreeMap<String, Pool>,
        rules: &[Rule],
    ) -> Option<Sla> {
        let place = format!("sla {name:?}");
        let errors_before = self.issues.len();
        let list = |l: &Option<Spanned<Vec<Spanned<String>>>>| -> Vec<Spanned<String>> {
            l.as_ref()
                .map(|l| {
                    l.get_ref()
                        .iter()
                        .map(|x| Spanned::new(x.span(), x.get_ref().clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let applies_to = match s
            .applies_to
            .as_ref()
            .map(|a| (a.get_ref().as_str(), a.span()))
        {
            None | Some(("all", _)) => {
                if let Some(r) = s.rules.as_ref().or(s.pools.as_ref()) {
                    self.error(
                        r.span(),
                        format!("{place}: `rules`/`pools` are set but applies_to is \"all\""),
                        "set applies_to = \"rules\" or \"pools\", or remove the list",
                    );
                }
                AppliesTo::All
            }
            Some(("rules", at)) => {
                let names = list(&s.rules);
                if names.is_empty() {
                    self.error(
                        at,
                        format!("{place}: applies_to = \"rules\" without `rules`"),
                        "list the rules, e.g. rules = [\"inbound-us\"]",
                    );
                }
                for r in &names {
                    if !rules.iter().any(|x| &x.name == r.get_ref()) {
                        let known: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
                        self.error(
                            r.span(),
                            format!("{place}: rule {:?} does not exist", r.get_ref()),
                            format!("use one of: {}", known.join(", ")),
                        );
                    }
                }
                AppliesTo::Rules(names.into_iter().map(Spanned::into_inner).collect())
            }
            Some(("pools", at)) => {
                let names = list(&s.pools);
                if names.is_empty() {
                    self.error(
                        at,
                        format!("{place}: applies_to = \"pools\" without `pools`"),
                        "list the pools, e.g. pools = [\"emea\"]",
                    );
                }
                for p in &names {
                    if !pools.contains_key(p.get_ref()) {
                        let known: Vec<&str> = pools.keys().map(String::as_str).collect();
                        self.error(
                            p.span(),
                            format!("{place}: pool {:?} does not exist", p.get_ref()),
                            format!("use one of: {}", known.join(", ")),
                        );
                    }
                }
                AppliesTo::Pools(names.into_iter().map(Spanned::into_inner).collect())
            }
            Some((other, at)) => {
                self.error(
                    at,
                    format!("{place}: applies_to {other:?} is unknown"),
                    "use \"all\", \"rules\" (with rules = [...]) or \"pools\" (with pools = [...])",
                );
                AppliesTo::All
            }
        };
        let within = match *s.within_secs.get_ref() {
            secs if secs > 0 && secs <= 10 * 366 * 86_400 => Duration::seconds(secs),
            secs => {
                self.error(
                    s.within_secs.span(),
                    format!("{place}: within_secs is {secs}"),
                    "give the deadline in seconds of working time, at least 1 (900 = 15 working minutes)",
                );
                Duration::seconds(1)
            }
        };
        let calendar = match s
            .calendar
            .as_ref()
            .map(|c| (c.get_ref().as_str(), c.span()))
        {
            None | Some(("always", _)) => Some(SlaCalendar::Always),
            Some(("owner", _)) => Some(SlaCalendar::Owner),
            Some((c, at)) if calendars.contains_key(c) => {
                let _ = at;
                Some(SlaCalendar::Named(c.to_owned()))
            }
            Some((c, at)) => {
                let mut known: Vec<&str> = vec!["always", "owner"];
                known.extend(calendars.keys().map(String::as_str));
                self.error(
                    at,
                    format!("{place}: calendar {c:?} is not defined"),
                    format!("define [calendars.{c}] or use one of: {}", known.join(", ")),
                );
                None
            }
        };
        // A deadline no calendar hour can ever meet.
        if let Some(SlaCalendar::Named(c)) = &calendar {
            if let Some(cal) = calendars.get(c) {
                if calendar::add_working(reference(), within, cal).is_none() {
                    self.error(
                        s.within_secs.span(),
                        format!(
                            "{place}: within_secs {} is more working time than calendar {c:?} holds in {} days; no deadline can be met",
                            within.num_seconds(),
                            calendar::HORIZON_DAYS
                        ),
                        "shorten within_secs, or give the calendar more working hours",
                    );
                }
            }
        }
        let mut remind_before = Vec::new();
        if let Some(r) = &s.remind_before_secs {
            for secs in r.get_ref() {
                let v = *secs.get_ref();
                if v <= 0 || v >= within.num_seconds() {
                    self.error(
                        secs.span(),
                        format!("{place}: remind_before_secs {v} is not inside the deadline ({} s)", within.num_seconds()),
                        "give each reminder as seconds of working time before the deadline, between 1 and within_secs - 1",
                    );
                } else {
                    remind_before.push(Duration::seconds(v));
                }
            }
        }
        remind_before.sort_by(|a, b| b.cmp(a));
        remind_before.dedup();
        let steps: Vec<Spanned<String>> = match s.on_breach.get_ref() {
            toml::Value::String(v) => vec![Spanned::new(s.on_breach.span(), v.clone())],
            toml::Value::Array(items) if !items.is_empty() && items.iter().all(|v| v.is_str()) => {
                items
                    .iter()
                    .filter_map(|v| v.as_str())
                    .map(|v| Spanned::new(s.on_breach.span(), v.to_owned()))
                    .collect()
            }
            _ => {
                self.error(
                    s.on_breach.span(),
                    format!("{place}: on_breach is not a step or a list of steps"),
                    "write on_breach = \"reassign\" or an escalation chain, e.g. [\"reassign\", \"manager\", \"exception\"]",
                );
                Vec::new()
            }
        };
        let mut on_breach = Vec::new();
        for step in &steps {
            match step.get_ref().as_str() {
                "reassign" => on_breach.push(BreachStep::Reassign),
                "manager" => on_breach.push(BreachStep::Manager),
                "exception" => on_breach.push(BreachStep::Exception),
                "notify" => on_breach.push(BreachStep::Notify),
                other => self.error(
                    step.span(),
                    format!("{place}: on_breach step {other:?} is unknown"),
                    "use \"reassign\", \"manager\", \"exception\" or \"notify\"",
                ),
            }
        }
        let skip_last = match &s.skip_last {
            None => 1,
            Some(n) => match u32::try_from(*n.get_ref()) {
                Ok(n) => n,
                Err(_) => {
                    self.error(n.span(), format!("{place}: skip_last is {}", n.get_ref()), "give the number of recent owners to skip, 0 or more (1 skips the owner who breached)");
                    1
                }
            },
        };
        // Reassignment needs a pool with someone left after skipping the last owners.
        if on_breach.contains(&BreachStep::Reassign) {
            let in_scope: Vec<&Pool> = match &applies_to {
                AppliesTo::Pools(ps) => ps.iter().filter_map(|p| pools.get(p)).collect(),
                AppliesTo::Rules(rs) => rules
                    .iter()
                    .filter(|r| rs.contains(&r.name))
                    .filter_map(|r| match &r.action {
                        Action::Pool { pool } => pools.get(pool),
                        _ => None,
                    })
                    .collect(),
                AppliesTo::All => rules
                    .iter()
                    .filter_map(|r| match &r.action {
                        Action::Pool { pool } => pools.get(pool),
                        _ => None,
                    })
                    .collect(),
            };
            let enough = |p: &&Pool| p.members.len() > skip_last as usize;
            if !in_scope.iter().any(enough) {
                self.error(
                    s.on_breach.span(),
                    format!(
                        "{place}: reassign cannot pick anyone: no pool in the SLA's scope has more than skip_last = {skip_last} members"
                    ),
                    "apply the SLA to rules that route into a pool with more members, lower skip_last, or use \"manager\" / \"exception\"",
                );
            } else if let Some(small) = in_scope.iter().find(|p| !enough(p)) {
                self.warn(
                    s.on_breach.span(),
                    format!(
                        "{place}: pool {:?} has no member left after skipping the last {skip_last} owners; its records go to the next step",
                        small.name
                    ),
                    "add members to the pool, lower skip_last, or add a later step such as \"exception\"",
                );
            }
        }
        let owner_of = |rep: &Spanned<String>, this: &mut Self| -> Option<OwnerId> {
            match reps.get(rep.get_ref()) {
                Some(r) => Some(r.owner.clone()),
                None => {
                    this.error(
                        rep.span(),
                        format!("{place}: rep {:?} is not declared", rep.get_ref()),
                        "declare the rep under [reps.<name>] or fix the name",
                    );
                    None
                }
            }
        };
        let manager = s.manager.as_ref().and_then(|m| owner_of(m, self));
        let mut managers = BTreeMap::new();
        if let Some(m) = &s.managers {
            for (rep, boss) in m.get_ref() {
                let rep_owner = owner_of(&Spanned::new(rep.span(), rep.get_ref().clone()), self);
                let boss_owner = owner_of(boss, self);
                if let (Some(a), Some(b)) = (rep_owner, boss_owner) {
                    managers.insert(a, b);
                }
            }
        }
        if on_breach.contains(&BreachStep::Manager) && manager.is_none() && managers.is_empty() {
            self.error(
                s.on_breach.span(),
                format!("{place}: on_breach \"manager\" cannot pick anyone: no manager is named"),
                "add manager = \"<rep>\" (everyone's) and/or managers = { alice = \"carol\" }",
            );
        }
        let exception_kind = s
            .exception_kind
            .as_ref()
            .map_or_else(|| "sla_breach".to_owned(), |k| k.get_ref().clone());
        let mut touches = Vec::new();
        match &s.touches {
            None => touches.extend([TouchKind::Activity, TouchKind::Contacted]),
            Some(list) => {
                for t in list.get_ref() {
                    match TouchKind::parse(t.get_ref()) {
                        Some(k) => touches.push(k),
                        None => {
                            let known: Vec<&str> = TouchKind::ALL.iter().map(|(n, _)| *n).collect();
                            self.error(
                                t.span(),
                                format!("{place}: touch {:?} is unknown", t.get_ref()),
                                format!("use some of: {}", known.join(", ")),
                            );
                        }
                    }
                }
            }
        }
        let new_status = s.new_status.as_ref().map(|v| v.get_ref().clone());
        if new_status.is_some() && !touches.contains(&TouchKind::Status) {
            touches.push(TouchKind::Status);
        }
        if touches.contains(&TouchKind::Status) && new_status.is_none() {
            let at = s.touches.as_ref().map_or(span.clone(), |t| t.span());
            self.error(
                at,
                format!("{place}: the \"status\" touch needs new_status"),
                "set new_status to the status a fresh lead has (e.g. \"NEW\" in HubSpot, \"Open - Not Contacted\" in Salesforce)",
            );
        }
        let owner_only = match s
            .touch_by
            .as_ref()
            .map(|t| (t.get_ref().as_str(), t.span()))
        {
            None | Some(("anyone", _)) => false,
            Some(("owner", _)) => true,
            Some((other, at)) => {
                self.error(
                    at,
                    format!("{place}: touch_by {other:?} is unknown"),
                    "use \"anyone\" or \"owner\"",
                );
                false
            }
        };
        let format = match s
            .notify_format
            .as_ref()
            .map(|f| (f.get_ref().as_str(), f.span()))
        {
            None | Some(("json", _)) => NotifyFormat::Json,
            Some(("slack", _)) => NotifyFormat::Slack,
            Some((other, at)) => {
                self.error(
                    at,
                    format!("{place}: notify_format {other:?} is unknown"),
                    "use \"json\" or \"slack\"",
                );
                NotifyFormat::Json
            }
        };
        let notify = match &s.notify_url {
            Some(url) => {
                let u = url.get_ref();
                if !(u.starts_with("https://") || u.starts_with("http://"))
                    || url::Url::parse(u).is_err()
                {
                    self.error(url.span(), format!("{place}: notify_url {u:?} is not an http(s) URL"), "give the full URL of the receiving webhook, e.g. \"https://hooks.slack.com/services/…\"");
                }
                Some(Notify {
                    url: u.clone(),
                    secret_env: s.notify_secret_env.as_ref().map(|e| e.get_ref().clone()),
                    format,
                })
            }
            None => {
                if on_breach.contains(&BreachStep::Notify) {
                    self.error(
                        s.on_breach.span(),
                        format!("{place}: on_breach \"notify\" has no notify_url"),
                        "add notify_url = \"https://…\" (and notify_secret_env to sign the body)",
                    );
                }
                None
            }
        };
        let (line, _) = super::line_col(self.text, span.start);
        if self.issues.len() > errors_before
            && self.issues[errors_before..]
                .iter()
                .any(|i| i.severity == crate::policy::Severity::Error)
        {
            return None;
        }
        Some(Sla {
            name,
            applies_to,
            within,
            calendar: calendar?,
            remind_before,
            on_breach,
            skip_last,
            managers,
            manager,
            exception_kind,
            touches,
            new_status,
            owner_only,
            notify,
            line,
        })
    }
}

#[cfg(test)]
mod tests {
    const BASE: &str = r#"
[reps.alice]
owner = "1"
[reps.bob]
owner = "2"
[reps.carol]
owner = "3"
[pools.inbound]
strategy = "round_robin"
members = ["alice", "bob"]
[default]
action = "pool"
pool = "inbound"
"#;

    fn check(extra: &str) -> Result<crate::policy::Policy, Vec<String>> {
        let text = format!("{BASE}{extra}");
        match crate::policy::parse("p.toml", &text) {
            Ok((policy, warnings)) if warnings.is_empty() => Ok(policy),
            Ok((_, warnings)) => Err(warnings.iter().map(ToString::to_string).collect()),
            Err(issues) => Err(issues.iter().map(ToString::to_string).collect()),
        }
    }

    #[test]
    fn the_minimal_sla_of_the_issue_is_valid() {
        let policy = check(
            r#"
[[sla]]
name = "first-touch"
applies_to = "all"          # or rules / pools by name
within_secs = 900           # working time
calendar = "always"         # or a named calendar
on_breach = "reassign"      # reassign | manager | exception | notify
"#,
        )
        .unwrap();
        let sla = &policy.slas[0];
        assert_eq!(sla.name, "first-touch");
        assert_eq!(sla.within.num_seconds(), 900);
        assert_eq!(sla.on_breach, vec![crate::policy::BreachStep::Reassign]);
        assert_eq!(sla.skip_last, 1);
        assert_eq!(sla.line, 15);
    }

    #[test]
    fn a_full_sla_with_a_calendar_and_a_chain_is_valid() {
        let policy = check(
            r#"
[calendars.emea]
time_zone = "Europe/Berlin"
hours = "09:00-12:30, 13:30-17:00"
days = "mon-fri"
holiday_sets = ["de"]
holidays = ["2026-12-24"]

[[sla]]
name = "qualified"
applies_to = "pools"
pools = ["inbound"]
within_secs = 7200
calendar = "emea"
remind_before_secs = [600, 1800]
on_breach = ["reassign", "manager", "exception"]
manager = "carol"
touches = ["call", "email"]
touch_by = "owner"
notify_url = "https://hooks.example.test/sla"
notify_secret_env = "SLA_HOOK_SECRET"
notify_format = "slack"
"#,
        )
        .unwrap();
        let sla = &policy.slas[0];
        assert_eq!(sla.remind_before.len(), 2);
        assert!(sla.remind_before[0] > sla.remind_before[1]);
        assert!(sla.owner_only);
        let cal = &policy.calendars["emea"];
        assert_eq!(cal.hours.len(), 2);
        assert!(cal.holidays.len() > 20);
    }

    #[test]
    fn every_sla_mistake_is_reported_with_its_place_and_fix() {
        let got = check(
            r#"
[[sla]]
name = "a"
within_secs = 900
calendar = "emae"
on_breach = "reassign"
skip_last = 2

[[sla]]
name = "b"
within_secs = 0
on_breach = ["manager", "shout"]
remind_before_secs = [900]
"#,
        )
        .unwrap_err();
        let all = got.join("\n");
        assert!(
            all.contains("p.toml:18:12: error: sla \"a\": calendar \"emae\" is not defined; fix: define [calendars.emae] or use one of: always, owner"),
            "{all}"
        );
        assert!(all.contains("reassign cannot pick anyone: no pool in the SLA's scope has more than skip_last = 2 members"), "{all}");
        assert!(all.contains("sla \"b\": within_secs is 0"), "{all}");
        assert!(all.contains("on_breach step \"shout\" is unknown"), "{all}");
        assert!(
            all.contains("\"manager\" cannot pick anyone: no manager is named"),
            "{all}"
        );
        assert!(
            all.contains("remind_before_secs 900 is not inside the deadline"),
            "{all}"
        );
    }

    #[test]
    fn a_deadline_no_calendar_hour_can_meet_is_rejected() {
        let got = check(
            r#"
[calendars.never]
hours = "09:00-17:00"
days = "mon-fri"
out_of_office = [{ from = "2000-01-01", to = "2099-12-31" }]

[[sla]]
name = "t"
within_secs = 60
calendar = "never"
on_breach = "exception"
"#,
        )
        .unwrap_err();
        assert!(got[0].contains("no deadline can be met"), "{got:?}");
    }

    #[test]
    fn a_week_with_no_working_hour_and_bad_hours_are_rejected() {
        let got = check(
            r#"
[calendars.empty]
hours = "09:00-17:00"
days = []

[calendars.overlap]
hours = "09:00-13:00, 12:00-17:00"

[calendars.inverted]
hours = "09:00-12:00, 17:00-13:00"

[calendars.always]
"#,
        )
        .unwrap_err();
        let all = got.join("\n");
        assert!(
            all.contains("calendars.empty.days is not a list of weekdays"),
            "{all}"
        );
        assert!(
            all.contains("calendars.overlap.hours: the windows"),
            "{all}"
        );
        assert!(all.contains("overlap"), "{all}");
        assert!(all.contains("is inverted"), "{all}");
        assert!(all.contains("\"always\" is a built-in calendar"), "{all}");
    }
}
