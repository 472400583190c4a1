//! The checked routing policy: what `check` produces and `eval` reads.
//!
//! Every name in here has been resolved: a rule's pool exists, a pool's members are
//! declared reps, time zones parse. Evaluation therefore never fails on the policy
//! itself, only on what the mirror holds.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::domain::OwnerId;
use crate::matcher::country::CountryCode;
use crate::matcher::{DuplicateTieBreaker, MatcherConfig};
use crate::reconcile::matching::MatchStatus;

/// A checked routing policy. Built by [`crate::policy::load`] or [`crate::policy::parse`].
#[derive(Debug, Clone)]
pub struct Policy {
    /// Content hash of the policy file (first 16 hex digits of its SHA-256).
    pub version: String,
    /// Where the policy came from (a path as given, or a label for in-memory text).
    pub source: String,
    pub name: Option<String>,
    pub settings: Settings,
    /// Reps by their policy name.
    pub reps: BTreeMap<String, Rep>,
    /// Territories in name order; a record's primary territory is the first it is in.
    pub territories: Vec<Territory>,
    pub pools: BTreeMap<String, Pool>,
    /// Ordered rules; the last one is always the default rule.
    pub rules: Vec<Rule>,
    /// Working-time calendars by name (`[calendars.<name>]`).
    pub calendars: BTreeMap<String, super::calendar::Calendar>,
    /// SLAs in file order (`[[sla]]`).
    pub slas: Vec<Sla>,
    pub(crate) rep_by_owner: FxHashMap<OwnerId, String>,
    /// Position in `reps` (name order) by owner id.
    pub(crate) rep_index_by_owner: FxHashMap<OwnerId, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// Keep an owner who is still valid under the rule that routes the record.
    pub sticky: bool,
    /// Keep a human's ownership change made within this many days.
    pub manual_override_days: Option<u32>,
    /// `duplicate_tie_breakers`: how the matcher picks one of several CRM duplicates of
    /// one company, in order (see [`MatcherConfig::duplicate_tie_breakers`]); empty: it
    /// never picks among duplicates.
    pub duplicate_tie_breakers: Vec<DuplicateTieBreaker>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sticky: true,
            manual_override_days: None,
            duplicate_tie_breakers: DuplicateTieBreaker::DEFAULT.to_vec(),
        }
    }
}

impl Settings {
    /// The matcher configuration this policy asks for: the defaults with the policy's
    /// duplicate tie-breakers.
    pub fn matcher_config(&self) -> MatcherConfig {
        MatcherConfig {
            duplicate_tie_breakers: self.duplicate_tie_breakers.clone(),
            ..MatcherConfig::default()
        }
    }
}

/// A person who can be assigned records.
#[derive(Debug, Clone, PartialEq)]
pub struct Rep {
    pub name: String,
    pub owner: OwnerId,
    pub display_name: Option<String>,
    /// Falls back to the pool's zone, then the CRM's zone for the owner, then UTC.
    pub time_zone: Option<Tz>,
    pub hours: Option<WorkingHours>,
    pub out_of_office: Vec<Window>,
    pub cap_per_day: Option<u32>,
    pub cap_per_week: Option<u32>,
}

/// Daily working hours on some weekdays, in local time. `end <= start` wraps past
/// midnight (a night shift), and the shift belongs to the day it starts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkingHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
    /// Monday first.
    pub days: [bool; 7],
}

impl WorkingHours {
    /// Whether local wall-clock time `local` (date and time) falls in these hours.
    pub fn contains(&self, date: NaiveDate, time: NaiveTime) -> bool {
        let day_on = |d: NaiveDate| self.days[d.weekday().num_days_from_monday() as usize];
        if self.start < self.end {
            day_on(date) && time >= self.start && time < self.end
        } else {
            // Night shift: the evening part belongs to today, the morning part to the
            // shift that started yesterday.
            (time >= self.start && day_on(date))
                || (time < self.end && date.pred_opt().is_some_and(day_on))
        }
    }

    pub fn describe(&self) -> String {
        const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let days: Vec<&str> = NAMES
            .iter()
            .zip(self.days)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect();
        format!(
            "{}-{} {}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M"),
            days.join(",")
        )
    }
}

/// One end of an out-of-office window: a whole local date or an exact instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowBound {
    Date(NaiveDate),
    Instant(DateTime<Utc>),
}

/// Out of office from `from` to `to`, both inclusive for dates (the whole day in the
/// rep's zone), `to` exclusive for instants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub from: WindowBound,
    pub to: WindowBound,
    pub note: Option<String>,
}

impl Window {
    pub fn contains(&self, now: DateTime<Utc>, tz: Tz) -> bool {
        let local_date = now.with_timezone(&tz).date_naive();
        let after_from = match self.from {
            WindowBound::Date(d) => local_date >= d,
            WindowBound::Instant(t) => now >= t,
        };
        let before_to = match self.to {
            WindowBound::Date(d) => local_date <= d,
            WindowBound::Instant(t) => now < t,
        };
        after_from && before_to
    }

    pub fn describe(&self) -> String {
        let b = |b: &WindowBound| match b {
            WindowBound::Date(d) => d.to_string(),
            WindowBound::Instant(t) => t.to_rfc3339(),
        };
        format!("{} .. {}", b(&self.from), b(&self.to))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Equal shares, in turn.
    RoundRobin,
    /// Shares proportional to each member's weight.
    Weighted,
    /// The member owning the fewest records (relative to weight) gets the next one.
    LeastLoaded,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::Weighted => "weighted",
            Strategy::LeastLoaded => "least_loaded",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    pub description: Option<String>,
    pub strategy: Strategy,
    pub members: Vec<Member>,
    pub time_zone: Option<Tz>,
    pub hours: Option<WorkingHours>,
    /// Position of each member by owner id.
    pub(crate) index: FxHashMap<OwnerId, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub rep: String,
    pub owner: OwnerId,
    /// Always 1 for round robin.
    pub weight: u32,
    pub cap_per_day: Option<u32>,
    pub cap_per_week: Option<u32>,
    /// Position of the rep in `Policy::reps` (name order), for dense per-plan state.
    pub(crate) rep_index: usize,
}

impl Pool {
    pub fn member_by_owner(&self, owner: &OwnerId) -> Option<&Member> {
        self.index.get(owner).map(|i| &self.members[*i])
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Territory {
    pub name: String,
    pub description: Option<String>,
    /// Upper-case, as written. Compared with the account's (else record's) country as
    /// ISO codes when both sides are recognisable countries (`Germany` = `DE`), else as
    /// text, case-insensitively.
    pub countries: Vec<String>,
    /// `countries` as ISO codes, aligned with it; `None` for a value that is no country.
    pub country_codes: Vec<Option<CountryCode>>,
    pub states: Vec<String>,
    pub employees: Option<NumRange>,
    pub conditions: Vec<Condition>,
    /// Reps who cover this territory (empty: anyone may own its records).
    pub reps: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumRange {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl NumRange {
    pub fn contains(&self, v: f64) -> bool {
        self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }

    pub fn describe(&self) -> String {
        match (self.min, self.max) {
            (Some(a), Some(b)) => format!("{a}..={b}"),
            (Some(a), None) => format!(">= {a}"),
            (None, Some(b)) => format!("<= {b}"),
            (None, None) => "any".into(),
        }
    }
}

/// A field a condition reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldRef {
    /// `email`, `email_domain`, `country`, … or any CRM field by name.
    Record(String),
    /// `account.country`, `account.employees`, … or any account field by name.
    Account(String),
}

impl FieldRef {
    /// Whether this is `country` or `account.country`, whose values are compared as
    /// country codes.
    pub fn is_country(&self) -> bool {
        matches!(self, FieldRef::Record(f) | FieldRef::Account(f) if f == "country")
    }

    pub fn describe(&self) -> String {
        match self {
            FieldRef::Record(f) => f.clone(),
            FieldRef::Account(f) => format!("account.{f}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Equals(String),
    In(Vec<String>),
    Prefix(Vec<String>),
    Range(NumRange),
    Exists(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Field {
        field: FieldRef,
        op: Op,
        negate: bool,
        /// For `equals` / `in` on `country` or `account.country`: the values as ISO codes
        /// (aligned with them; `None` for a value that is no country). Empty otherwise.
        country_codes: Vec<Option<CountryCode>>,
    },
    Territory {
        name: String,
        negate: bool,
    },
    Match {
        statuses: Vec<MatchStatus>,
        negate: bool,
    },
}

impl Condition {
    pub fn describe(&self) -> String {
        let not = |n: bool| if n { "not " } else { "" };
        match self {
            Condition::Field {
                field, op, negate, ..
            } => {
                let f = field.describe();
                let o = match op {
                    Op::Equals(v) => format!("equals {v:?}"),
                    Op::In(vs) => format!("in {vs:?}"),
                    Op::Prefix(ps) => format!("starts with {ps:?}"),
                    Op::Range(r) => format!("in range {}", r.describe()),
                    Op::Exists(true) => "exists".into(),
                    Op::Exists(false) => "is empty".into(),
                };
                format!("{}{f} {o}", not(*negate))
            }
            Condition::Territory { name, negate } => format!("{}in territory {name}", not(*negate)),
            Condition::Match { statuses, negate } => {
                let s: Vec<&str> = statuses.iter().map(|s| match_status_str(*s)).collect();
                format!("{}match is {}", not(*negate), s.join("|"))
            }
        }
    }
}

pub fn match_status_str(s: MatchStatus) -> &'static str {
    match s {
        MatchStatus::Matched => "matched",
        MatchStatus::Unmatched => "unmatched",
        MatchStatus::Ambiguous => "ambiguous",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The matched account's owner (account-based routing).
    AccountOwner,
    /// One named rep.
    Owner {
        rep: String,
    },
    Pool {
        pool: String,
    },
    /// A CRM queue (Salesforce Queue id, or a HubSpot owner used as a holding queue).
    Queue {
        queue: OwnerId,
    },
    /// Leave the current owner.
    Keep,
    /// Stop and raise an exception for a human.
    Exception {
        kind: String,
        reason: Option<String>,
    },
}

impl Action {
    pub fn describe(&self) -> String {
        match self {
            Action::AccountOwner => "account owner".into(),
            Action::Owner { rep } => format!("owner {rep}"),
            Action::Pool { pool } => format!("pool {pool}"),
            Action::Queue { queue } => format!("queue {queue}"),
            Action::Keep => "keep current owner".into(),
            Action::Exception { kind, .. } => format!("exception {kind}"),
        }
    }
}

/// What a rule does when its action finds nobody (account owner inactive, pool empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnavailable {
    /// Try the next rule.
    Next,
    /// Raise a `no_eligible_rep` exception.
    Exception,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub description: Option<String>,
    pub conditions: Vec<Condition>,
    pub action: Action,
    pub on_unavailable: OnUnavailable,
    pub sticky: bool,
    /// Line in the policy file, for explain and graph output.
    pub line: usize,
    pub is_default: bool,
}

impl Policy {
    /// The rep whose CRM owner id this is, if the policy declares one.
    pub fn rep_for_owner(&self, owner: &OwnerId) -> Option<&Rep> {
        self.rep_by_owner.get(owner).and_then(|n| self.reps.get(n))
    }

    /// A human label for an owner id: `alice (101)` or just `101`.
    pub fn owner_label(&self, owner: &OwnerId) -> String {
        match self.rep_by_owner.get(owner) {
            Some(name) => format!("{name} ({owner})"),
            None => owner.to_string(),
        }
    }

    /// [`Policy::owner_label`] for formatting, without building the label first.
    pub fn owner_display<'p>(&'p self, owner: &'p OwnerId) -> impl std::fmt::Display + 'p {
        struct Label<'p>(Option<&'p String>, &'p OwnerId);
        impl std::fmt::Display for Label<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.0 {
                    Some(name) => write!(f, "{name} ({})", self.1),
                    None => write!(f, "{}", self.1),
                }
            }
        }
        Label(self.rep_by_owner.get(owner), owner)
    }

    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    pub fn territory(&self, name: &str) -> Option<&Territory> {
        self.territories.iter().find(|t| t.name == name)
    }
}

/// Where a rep is and whether they work right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Available,
    OutOfOffice(String),
    OffHours(String),
}

impl Rep {
    /// The zone the rep's hours, windows and caps are counted in.
    pub fn zone(&self, pool: Option<&Pool>, crm_zone: Option<&str>) -> Tz {
        self.time_zone
            .or_else(|| pool.and_then(|p| p.time_zone))
            .or_else(|| crm_zone.and_then(|z| z.parse::<Tz>().ok()))
            .unwrap_or(Tz::UTC)
    }

    /// Whether the rep can take a new record at `now`: not out of office and, when
    /// hours are set (on the rep, else the pool), inside them in the rep's own zone.
    pub fn availability(&self, pool: Option<&Pool>, tz: Tz, now: DateTime<Utc>) -> Availability {
        if let Some(w) = self.out_of_office.iter().find(|w| w.contains(now, tz)) {
            return Availability::OutOfOffice(format!("out of office {}", w.describe()));
        }
        if let Some(hours) = self.hours.or_else(|| pool.and_then(|p| p.hours)) {
            let local = tz.from_utc_datetime(&now.naive_utc());
            if !hours.contains(local.date_naive(), local.time()) {
                return Availability::OffHours(format!(
                    "off hours: {} local ({tz}) is outside {}",
                    local.format("%a %H:%M"),
                    hours.describe()
                ));
            }
        }
        Availability::Available
    }
}

impl Policy {
    /// Reps whose CRM owner is missing from, or inactive in, the mirror's owner list:
    /// they can never be assigned. One line per problem, with the fix.
    pub fn check_roster(&self, owners: &[crate::domain::OwnerRecord]) -> Vec<String> {
        let by_id: HashMap<&OwnerId, &crate::domain::OwnerRecord> =
            owners.iter().map(|o| (&o.id, o)).collect();
        let mut out = Vec::new();
        for rep in self.reps.values() {
            match by_id.get(&rep.owner) {
                None => out.push(format!(
                    "{}: reps.{}.owner {:?} is not an owner in the mirror; fix the id or run `leadroute sync`",
                    self.source, rep.name, rep.owner.as_str()
                )),
                Some(o) if !o.active => out.push(format!(
                    "{}: reps.{} ({}) is inactive in the CRM and will never be assigned; remove the rep or reactivate the user",
                    self.source, rep.name, rep.owner
                )),
                Some(_) => {}
            }
        }
        out
    }
}

/// An SLA: a deadline, in working time on a calendar, for the first touch of a record
/// after leadroute assigned it, and what to do when it passes.
#[derive(Debug, Clone, PartialEq)]
pub struct Sla {
    pub name: String,
    pub applies_to: AppliesTo,
    /// Working time allowed from the acknowledged assignment to the first touch.
    pub within: chrono::Duration,
    pub calendar: SlaCalendar,
    /// Reminders, each this much working time before the deadline (largest first).
    pub remind_before: Vec<chrono::Duration>,
    /// The escalation chain: breach number `k` (0 for the first owner's) takes step
    /// `min(k, len - 1)`.
    pub on_breach: Vec<BreachStep>,
    /// Reassignment skips the last this-many owners of the record.
    pub skip_last: u32,
    /// Owner id of each rep's manager (by the rep's owner id), and the fallback.
    pub managers: BTreeMap<OwnerId, OwnerId>,
    pub manager: Option<OwnerId>,
    pub exception_kind: String,
    pub touches: Vec<TouchKind>,
    /// A status field leaving this value counts as a touch (`TouchKind::Status`).
    pub new_status: Option<String>,
    /// Only the record's owner's touches count (sources that know who touched).
    pub owner_only: bool,
    pub notify: Option<Notify>,
    /// Line in the policy file.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppliesTo {
    All,
    Rules(Vec<String>),
    Pools(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlaCalendar {
    /// 24×7.
    Always,
    /// The owner's own hours, zone and out-of-office (rep, else pool; 24×7 without).
    Owner,
    Named(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreachStep {
    Reassign,
    Manager,
    Exception,
    Notify,
}

impl BreachStep {
    pub fn as_str(self) -> &'static str {
        match self {
            BreachStep::Reassign => "reassign",
            BreachStep::Manager => "manager",
            BreachStep::Exception => "exception",
            BreachStep::Notify => "notify",
        }
    }
}

/// What counts as a touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TouchKind {
    /// The CRM's last sales activity (HubSpot `hs_last_sales_activity_timestamp`,
    /// Salesforce `LastActivityDate`).
    Activity,
    /// HubSpot `notes_last_contacted`.
    Contacted,
    /// The status field leaving `new_status` (HubSpot `hs_lead_status`, Salesforce
    /// Lead `Status`).
    Status,
    Call,
    Email,
    Meeting,
    Task,
    Note,
}

impl TouchKind {
    pub const ALL: [(&'static str, TouchKind); 8] = [
        ("activity", TouchKind::Activity),
        ("contacted", TouchKind::Contacted),
        ("status", TouchKind::Status),
        ("call", TouchKind::Call),
        ("email", TouchKind::Email),
        ("meeting", TouchKind::Meeting),
        ("task", TouchKind::Task),
        ("note", TouchKind::Note),
    ];

    pub fn as_str(self) -> &'static str {
        TouchKind::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("activity", |(n, _)| n)
    }

    pub fn parse(s: &str) -> Option<TouchKind> {
        TouchKind::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, k)| *k)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyFormat {
    Json,
    /// `{"text": …}`, accepted by Slack incoming webhooks and compatibles.
    Slack,
}

/// An outgoing webhook for reminders and breaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub url: String,
    /// The environment variable holding the HMAC-SHA256 key (read by the service).
    pub secret_env: Option<String>,
    pub format: NotifyFormat,
}

impl Sla {
    /// Whether a record routed by `rule` (into `pool`, if any) falls under this SLA.
    pub fn applies(&self, rule: &str, pool: Option<&str>) -> bool {
        match &self.applies_to {
            AppliesTo::All => true,
            AppliesTo::Rules(rules) => rules.iter().any(|r| r == rule),
            AppliesTo::Pools(pools) => pool.is_some_and(|p| pools.iter().any(|x| x == p)),
        }
    }
}

impl Policy {
    /// The pool a rule routes into, if it routes into one.
    pub fn rule_pool(&self, rule: &str) -> Option<&str> {
        match &self.rule(rule)?.action {
            Action::Pool { pool } => Some(pool.as_str()),
            _ => None,
        }
    }

    /// The calendar an SLA's clock runs on for a record owned by `owner`.
    pub fn sla_calendar(&self, sla: &Sla, owner: &OwnerId) -> super::calendar::Calendar {
        use super::calendar::Calendar;
        match &sla.calendar {
            SlaCalendar::Always => Calendar::always(),
            SlaCalendar::Named(name) => self
                .calendars
                .get(name)
                .cloned()
                .unwrap_or_else(Calendar::always),
            SlaCalendar::Owner => {
                let Some(rep) = self.rep_for_owner(owner) else {
                    return Calendar::always();
                };
                let pool = self
                    .pools
                    .values()
                    .find(|p| p.member_by_owner(owner).is_some());
                let hours = rep.hours.or_else(|| pool.and_then(|p| p.hours));
                Calendar {
                    name: format!("owner:{}", rep.name),
                    zone: rep.zone(pool, None),
                    hours: hours.into_iter().collect(),
                    holidays: Default::default(),
                    out_of_office: rep.out_of_office.clone(),
                }
            }
        }
    }
}
