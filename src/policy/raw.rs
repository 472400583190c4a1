//! The policy file as written: serde structs with spans, before any checking.
//!
//! Every value a user can get wrong is `Spanned` so `check` can name its line and column.
//! Polymorphic values (a string or a list, a string or a number) stay `toml::Value` here
//! and are checked by hand: serde's "did not match any variant" is no help to a user.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub(crate) type Key = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    #[serde(default)]
    pub settings: Option<Spanned<RawSettings>>,
    #[serde(default)]
    pub reps: BTreeMap<Key, Spanned<RawRep>>,
    #[serde(default)]
    pub territories: BTreeMap<Key, Spanned<RawTerritory>>,
    #[serde(default)]
    pub pools: BTreeMap<Key, Spanned<RawPool>>,
    #[serde(default)]
    pub rules: Vec<Spanned<RawRule>>,
    #[serde(default)]
    pub default: Option<Spanned<RawRule>>,
    /// Working-time calendars for SLAs, by name.
    #[serde(default)]
    pub calendars: BTreeMap<Key, Spanned<RawCalendar>>,
    #[serde(default)]
    pub sla: Vec<Spanned<RawSla>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCalendar {
    pub time_zone: Option<Spanned<String>>,
    /// "09:00-17:00", or several windows: "09:00-12:00, 13:00-17:00".
    pub hours: Option<Spanned<String>>,
    pub days: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub holidays: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    pub holiday_sets: Vec<Spanned<String>>,
    #[serde(default)]
    pub out_of_office: Vec<Spanned<RawWindow>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSla {
    pub name: Spanned<String>,
    pub applies_to: Option<Spanned<String>>,
    pub rules: Option<Spanned<Vec<Spanned<String>>>>,
    pub pools: Option<Spanned<Vec<Spanned<String>>>>,
    pub within_secs: Spanned<i64>,
    pub calendar: Option<Spanned<String>>,
    pub on_breach: Spanned<toml::Value>,
    pub remind_before_secs: Option<Spanned<Vec<Spanned<i64>>>>,
    pub skip_last: Option<Spanned<i64>>,
    pub manager: Option<Spanned<String>>,
    pub managers: Option<Spanned<BTreeMap<Key, Spanned<String>>>>,
    pub exception_kind: Option<Spanned<String>>,
    pub touches: Option<Spanned<Vec<Spanned<String>>>>,
    pub new_status: Option<Spanned<String>>,
    pub touch_by: Option<Spanned<String>>,
    pub notify_url: Option<Spanned<String>>,
    pub notify_secret_env: Option<Spanned<String>>,
    pub notify_format: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    pub name: Option<Spanned<String>>,
    pub sticky: Option<Spanned<bool>>,
    pub manual_override_days: Option<Spanned<i64>>,
    pub duplicate_tie_breakers: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRep {
    pub owner: Spanned<String>,
    pub name: Option<String>,
    pub time_zone: Option<Spanned<String>>,
    pub hours: Option<Spanned<String>>,
    pub days: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub out_of_office: Vec<Spanned<RawWindow>>,
    pub cap_per_day: Option<Spanned<i64>>,
    pub cap_per_week: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWindow {
    pub from: Spanned<toml::Value>,
    pub to: Spanned<toml::Value>,
    pub note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTerritory {
    pub description: Option<String>,
    pub countries: Option<Spanned<Vec<Spanned<String>>>>,
    pub states: Option<Spanned<Vec<Spanned<String>>>>,
    pub employees: Option<Spanned<RawRange>>,
    #[serde(default)]
    pub when: Vec<Spanned<RawCondition>>,
    #[serde(default)]
    pub reps: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRange {
    pub min: Option<Spanned<toml::Value>>,
    pub max: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    pub description: Option<String>,
    pub strategy: Spanned<String>,
    pub time_zone: Option<Spanned<String>>,
    pub hours: Option<Spanned<String>>,
    pub days: Option<Spanned<toml::Value>>,
    pub cap_per_day: Option<Spanned<i64>>,
    pub cap_per_week: Option<Spanned<i64>>,
    pub members: Spanned<Vec<Spanned<toml::Value>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCondition {
    pub field: Option<Spanned<String>>,
    pub equals: Option<Spanned<toml::Value>>,
    #[serde(rename = "in")]
    pub in_: Option<Spanned<Vec<toml::Value>>>,
    pub prefix: Option<Spanned<toml::Value>>,
    pub range: Option<Spanned<RawRange>>,
    pub exists: Option<Spanned<bool>>,
    pub territory: Option<Spanned<String>>,
    #[serde(rename = "match")]
    pub match_: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub not: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub name: Option<Spanned<String>>,
    pub description: Option<String>,
    #[serde(default)]
    pub when: Vec<Spanned<RawCondition>>,
    pub action: Spanned<String>,
    pub pool: Option<Spanned<String>>,
    pub rep: Option<Spanned<String>>,
    pub queue: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
    pub reason: Option<String>,
    pub on_unavailable: Option<Spanned<String>>,
    pub sticky: Option<Spanned<bool>>,
}
