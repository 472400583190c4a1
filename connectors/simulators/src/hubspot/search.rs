//! `POST /crm/v3/objects/{type}/search`: filter groups (AND inside, OR
//! across), one sort, offset paging capped at 10,000, `total`, the 5/10/25
//! filter limits, epoch-ms date filters, index lag (recently modified records
//! are not yet visible) and no archived records or associations in results.
//!
//! Queries sorted by the last-modified property or `hs_object_id` walk an
//! index in order (bounded by the range filters of a single group), so paging
//! a window costs O(matches in the window), not a sort of the portal.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Inner;
use super::clock::{now_ms, parse_datetime};
use super::engagements::{self, Engagement};
use super::objects::{object_type, parse_body};
use super::schema::{self, ObjectType, PropertyType};
use super::state::{SimRecord, Store};
use super::wire::{json_response, render_record, validation};

/// Results a query can page through.
pub(crate) const SEARCH_CAP: usize = 10_000;
/// Largest search page.
pub(crate) const SEARCH_LIMIT: usize = 200;
const MAX_GROUPS: usize = 5;
const MAX_FILTERS_PER_GROUP: usize = 10;
const MAX_FILTERS: usize = 25;

#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Filter {
    property_name: String,
    operator: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    high_value: Option<Value>,
    #[serde(default)]
    values: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize, Default)]
struct FilterGroup {
    #[serde(default)]
    filters: Vec<Filter>,
}

/// HubSpot's spec types a sort as a string; live requests send objects.
/// Both are accepted (a string means ascending, `-name` descending).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SortSpec {
    Object {
        #[serde(rename = "propertyName")]
        property_name: String,
        #[serde(default)]
        direction: Option<String>,
    },
    Text(String),
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SearchBody {
    #[serde(default)]
    filter_groups: Vec<FilterGroup>,
    #[serde(default)]
    sorts: Vec<SortSpec>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    properties: Vec<String>,
    #[serde(default)]
    limit: Option<Value>,
    #[serde(default)]
    after: Option<Value>,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Number,
    Date,
    Text,
}

fn kind_of(object: ObjectType, name: &str) -> Kind {
    match schema::property(object, name).map(|d| d.kind) {
        Some(PropertyType::Number | PropertyType::Owner | PropertyType::Team) => Kind::Number,
        Some(PropertyType::DateTime) => Kind::Date,
        _ => Kind::Text,
    }
}

/// Compares a stored value with a filter value in the property's type.
fn compare(kind: Kind, stored: &str, wanted: &str) -> Option<Ordering> {
    match kind {
        Kind::Number => {
            let a = stored.parse::<f64>().ok()?;
            let b = wanted.parse::<f64>().ok()?;
            a.partial_cmp(&b)
        }
        Kind::Date => {
            let a = parse_datetime(stored)?;
            let b = parse_datetime(wanted)?;
            Some(a.cmp(&b))
        }
        Kind::Text => Some(stored.to_lowercase().cmp(&wanted.to_lowercase())),
    }
}

fn glob(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return false;
    };
    if parts.len() == 1 {
        return pattern == value;
    }
    if value.len() < first.len() + last.len() || !value.starts_with(first) || !value.ends_with(last)
    {
        return false;
    }
    let mut rest = &value[first.len()..value.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

fn contains_token(stored: &str, wanted: &str) -> bool {
    let stored = stored.to_lowercase();
    let wanted = wanted.to_lowercase();
    if wanted.contains('*') {
        return glob(&wanted, &stored);
    }
    stored == wanted
        || stored
            .split(|c: char| c.is_whitespace() || ",;".contains(c))
            .any(|t| t == wanted)
}

fn value_of<'a>(
    store: &Store,
    object: ObjectType,
    record: &'a SimRecord,
    name: &str,
) -> Option<std::borrow::Cow<'a, str>> {
    if name == "associations.company" || name == "associations.contact" {
        let ids: Vec<String> = store
            .associated(object, record.id)
            .into_iter()
            .map(|(id, _)| id.to_string())
            .collect();
        return Some(std::borrow::Cow::Owned(ids.join(";")));
    }
    record
        .properties
        .get(name)
        .map(|v| std::borrow::Cow::Borrowed(v.as_str()))
}

fn matches(store: &Store, object: ObjectType, record: &SimRecord, f: &Filter) -> bool {
    let stored = value_of(store, object, record, &f.property_name);
    let present = stored.as_deref().is_some_and(|v| !v.is_empty());
    if f.property_name.starts_with("associations.") {
        let wanted = f.value.as_ref().map(text).unwrap_or_default();
        let ids = stored.unwrap_or_default();
        let hit = ids.split(';').any(|id| id == wanted);
        return match f.operator.as_str() {
            "NEQ" => !hit,
            _ => hit,
        };
    }
    let kind = kind_of(object, &f.property_name);
    let wanted = f.value.as_ref().map(text).unwrap_or_default();
    let cmp = || {
        stored
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(|s| compare(kind, s, &wanted))
    };
    let in_list = || {
        let values = f.values.as_deref().unwrap_or_default();
        stored.as_deref().is_some_and(|s| {
            values
                .iter()
                .any(|v| compare(kind, s, &text(v)) == Some(Ordering::Equal))
        })
    };
    match f.operator.as_str() {
        "EQ" => cmp() == Some(Ordering::Equal),
        "NEQ" => cmp() != Some(Ordering::Equal),
        "LT" => cmp() == Some(Ordering::Less),
        "LTE" => matches!(cmp(), Some(Ordering::Less | Ordering::Equal)),
        "GT" => cmp() == Some(Ordering::Greater),
        "GTE" => matches!(cmp(), Some(Ordering::Greater | Ordering::Equal)),
        "BETWEEN" => {
            let high = f.high_value.as_ref().map(text).unwrap_or_default();
            let lo = cmp();
            let hi = stored
                .as_deref()
                .filter(|s| !s.is_empty())
                .and_then(|s| compare(kind, s, &high));
            matches!(lo, Some(Ordering::Greater | Ordering::Equal))
                && matches!(hi, Some(Ordering::Less | Ordering::Equal))
        }
        "IN" => in_list(),
        "NOT_IN" => !in_list(),
        "HAS_PROPERTY" => present,
        "NOT_HAS_PROPERTY" => !present,
        "CONTAINS_TOKEN" => stored
            .as_deref()
            .is_some_and(|s| contains_token(s, &wanted)),
        "NOT_CONTAINS_TOKEN" => !stored
            .as_deref()
            .is_some_and(|s| contains_token(s, &wanted)),
        _ => false,
    }
}

const OPERATORS: &[&str] = &[
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
];

/// Index bounds implied by one group's range filters on `name`.
fn bounds_i64(
    group: &FilterGroup,
    name: &str,
    parse: impl Fn(&str) -> Option<i64>,
) -> (Bound<i64>, Bound<i64>) {
    let mut lo = Bound::Unbounded;
    let mut hi = Bound::Unbounded;
    let tighten_lo = |lo: &mut Bound<i64>, b: Bound<i64>| {
        let key = |b: &Bound<i64>| match b {
            Bound::Included(v) => (*v, 0),
            Bound::Excluded(v) => (*v, 1),
            Bound::Unbounded => (i64::MIN, -1),
        };
        if key(&b) > key(lo) {
            *lo = b;
        }
    };
    let tighten_hi = |hi: &mut Bound<i64>, b: Bound<i64>| {
        let key = |b: &Bound<i64>| match b {
            Bound::Included(v) => (*v, 0),
            Bound::Excluded(v) => (*v, -1),
            Bound::Unbounded => (i64::MAX, 1),
        };
        if key(&b) < key(hi) {
            *hi = b;
        }
    };
    for f in group.filters.iter().filter(|f| f.property_name == name) {
        let Some(v) = f.value.as_ref().map(text).and_then(|t| parse(&t)) else {
            continue;
        };
        match f.operator.as_str() {
            "GT" => tighten_lo(&mut lo, Bound::Excluded(v)),
            "GTE" => tighten_lo(&mut lo, Bound::Included(v)),
            "LT" => tighten_hi(&mut hi, Bound::Excluded(v)),
            "LTE" => tighten_hi(&mut hi, Bound::Included(v)),
            "EQ" => {
                tighten_lo(&mut lo, Bound::Included(v));
                tighten_hi(&mut hi, Bound::Included(v));
            }
            "BETWEEN" => {
                tighten_lo(&mut lo, Bound::Included(v));
                if let Some(h) = f.high_value.as_ref().map(text).and_then(|t| parse(&t)) {
                    tighten_hi(&mut hi, Bound::Included(h));
                }
            }
            _ => {}
        }
    }
    (lo, hi)
}

fn empty_range(lo: &Bound<i64>, hi: &Bound<i64>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
        _ => false,
    }
}

/// `POST /crm/v3/objects/{type}/search`.
pub(crate) async fn search(
    State(inner): State<Arc<Inner>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(kind) = Engagement::from_path(&object) {
        return engagements::search(&inner, kind, &body);
    }
    let object = match object_type(&object) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let body: SearchBody = if body.is_empty() {
        SearchBody::default()
    } else {
        match parse_body(&body) {
            Ok(b) => b,
            Err(r) => return r,
        }
    };
    let total_filters: usize = body.filter_groups.iter().map(|g| g.filters.len()).sum();
    if body.filter_groups.len() > MAX_GROUPS
        || body
            .filter_groups
            .iter()
            .any(|g| g.filters.len() > MAX_FILTERS_PER_GROUP)
        || total_filters > MAX_FILTERS
    {
        return validation(format!(
            "Too many filters: at most {MAX_GROUPS} filterGroups, {MAX_FILTERS_PER_GROUP} filters per group and {MAX_FILTERS} filters in total are allowed (got {} groups, {total_filters} filters)",
            body.filter_groups.len()
        ));
    }
    for f in body.filter_groups.iter().flat_map(|g| &g.filters) {
        if !OPERATORS.contains(&f.operator.as_str()) {
            return validation(format!("Unknown filter operator: {}", f.operator));
        }
        // A filter on a property the object does not have is a 400 (e.g.
        // `lastmodifieddate` on companies, which use `hs_lastmodifieddate`).
        let association = f.property_name.starts_with("associations.");
        if !association && schema::property(object, &f.property_name).is_none() {
            return validation(format!(
                "Invalid filter: property {} does not exist on {}",
                f.property_name,
                object.as_str()
            ));
        }
    }
    if body.sorts.len() > 1 {
        return validation("Only one sort is allowed per search request");
    }
    if body.query.as_deref().is_some_and(|q| q.len() > 3_000) {
        return validation("query must be at most 3000 characters");
    }
    let limit = match body.limit.as_ref().map(text) {
        None => 10,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=SEARCH_LIMIT).contains(&n) => n,
            _ => {
                return validation(format!("limit must be between 1 and {SEARCH_LIMIT}"));
            }
        },
    };
    let offset = match body.after.as_ref().map(text) {
        None => 0,
        Some(t) if t.is_empty() => 0,
        Some(t) => match t.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return validation(format!("after must be a numeric offset, got {t:?}")),
        },
    };
    if offset >= SEARCH_CAP {
        return validation(format!(
            "The search API cannot page past {SEARCH_CAP} results (after={offset}); narrow the query, e.g. by the last-modified date or hs_object_id"
        ));
    }
    let (sort_name, descending) = match body.sorts.first() {
        Some(SortSpec::Object {
            property_name,
            direction,
        }) => (
            Some(property_name.clone()),
            direction
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case("DESCENDING")),
        ),
        Some(SortSpec::Text(t)) => match t.strip_prefix('-') {
            Some(name) => (Some(name.to_owned()), true),
            None => (Some(t.clone()), false),
        },
        None => (None, false),
    };
    if let Some(name) = &sort_name
        && schema::property(object, name).is_none()
    {
        return validation(format!(
            "Invalid sort: property {name} does not exist on {}",
            object.as_str()
        ));
    }

    // Index lag: a record only becomes searchable `search_lag` after its
    // last modification.
    let lag_ms = i64::try_from(inner.config.search_lag.as_millis()).unwrap_or(i64::MAX);
    let visible_before = now_ms().saturating_sub(lag_ms);
    let query = body
        .query
        .as_deref()
        .map(str::to_lowercase)
        .filter(|q| !q.is_empty());

    let store = inner.store.read();
    let table = store.table(object);
    let lm = object.last_modified_property();
    // When the sort walks an index and every filter is a range on that same
    // key, the index bounds already apply the filters: matching then only
    // needs the archived and lag checks (keeps keyset and watermark paging
    // O(range) with a tiny constant, `total` included).
    let index_key = match sort_name.as_deref() {
        Some(name) if name == lm => Some(lm),
        None | Some("hs_object_id") => Some("hs_object_id"),
        Some(_) => None,
    };
    let absorbed = query.is_none()
        && index_key.is_some_and(|key| {
            let parses = |v: &Option<Value>| {
                v.as_ref().map(text).is_some_and(|t| {
                    if key == lm {
                        parse_datetime(&t).is_some()
                    } else {
                        t.parse::<i64>().is_ok()
                    }
                })
            };
            let groups: Vec<&FilterGroup> = body
                .filter_groups
                .iter()
                .filter(|g| !g.filters.is_empty())
                .collect();
            match groups.as_slice() {
                [] => true,
                [group] => {
                    body.filter_groups.len() == 1
                        && group.filters.iter().all(|f| {
                            f.property_name == key
                                && parses(&f.value)
                                && match f.operator.as_str() {
                                    "GT" | "GTE" | "LT" | "LTE" | "EQ" => true,
                                    "BETWEEN" => parses(&f.high_value),
                                    _ => false,
                                }
                        })
                }
                _ => false,
            }
        });
    let accept = |record: &SimRecord| -> bool {
        if record.archived || record.updated_at_ms > visible_before {
            return false;
        }
        if absorbed {
            return true;
        }
        if let Some(q) = &query {
            let hit = object.searchable().iter().any(|name| {
                record
                    .properties
                    .get(*name)
                    .is_some_and(|v| v.to_lowercase().contains(q.as_str()))
            });
            if !hit {
                return false;
            }
        }
        body.filter_groups.is_empty()
            || body
                .filter_groups
                .iter()
                .filter(|g| !g.filters.is_empty())
                .any(|g| g.filters.iter().all(|f| matches(&store, object, record, f)))
            || body.filter_groups.iter().all(|g| g.filters.is_empty())
    };

    let single = (body.filter_groups.len() == 1).then(|| &body.filter_groups[0]);
    let end = (offset + limit).min(SEARCH_CAP);
    let candidates: Box<dyn Iterator<Item = &SimRecord> + '_> = match sort_name.as_deref() {
        Some(name) if name == lm => {
            let (lo, hi) = match single {
                Some(g) => bounds_i64(g, lm, parse_datetime),
                None => (Bound::Unbounded, Bound::Unbounded),
            };
            if empty_range(&lo, &hi) {
                Box::new(std::iter::empty())
            } else {
                let lo = match lo {
                    Bound::Included(v) => Bound::Included((v, 0)),
                    Bound::Excluded(v) => Bound::Excluded((v, u64::MAX)),
                    Bound::Unbounded => Bound::Unbounded,
                };
                let hi = match hi {
                    Bound::Included(v) => Bound::Included((v, u64::MAX)),
                    Bound::Excluded(v) => Bound::Excluded((v, 0)),
                    Bound::Unbounded => Bound::Unbounded,
                };
                let range = table.by_modified.range((lo, hi));
                let ids: Box<dyn Iterator<Item = &(i64, u64)>> = if descending {
                    Box::new(range.rev())
                } else {
                    Box::new(range)
                };
                Box::new(ids.filter_map(|(_, id)| table.records.get(id)))
            }
        }
        None | Some("hs_object_id") => {
            let (lo, hi) = match single {
                Some(g) => bounds_i64(g, "hs_object_id", |t| t.parse::<i64>().ok()),
                None => (Bound::Unbounded, Bound::Unbounded),
            };
            if empty_range(&lo, &hi) {
                Box::new(std::iter::empty())
            } else {
                let conv = |b: Bound<i64>| match b {
                    Bound::Included(v) => Bound::Included(u64::try_from(v.max(0)).unwrap_or(0)),
                    Bound::Excluded(v) => Bound::Excluded(u64::try_from(v.max(0)).unwrap_or(0)),
                    Bound::Unbounded => Bound::Unbounded,
                };
                let range = table.records.range((conv(lo), conv(hi)));
                if descending {
                    Box::new(range.rev().map(|(_, r)| r))
                } else {
                    Box::new(range.map(|(_, r)| r))
                }
            }
        }
        Some(name) => {
            // Arbitrary sort property: collect matches and sort (unset values last).
            let kind = kind_of(object, name);
            let mut all: Vec<&SimRecord> = table.records.values().filter(|r| accept(r)).collect();
            all.sort_by(|a, b| {
                let va = a.properties.get(name).filter(|v| !v.is_empty());
                let vb = b.properties.get(name).filter(|v| !v.is_empty());
                let ord = match (va, vb) {
                    (Some(x), Some(y)) => compare(kind, x, y).unwrap_or(Ordering::Equal),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                };
                let ord = if descending { ord.reverse() } else { ord };
                ord.then(a.id.cmp(&b.id))
            });
            Box::new(all.into_iter())
        }
    };
    let mut total = 0usize;
    let mut page: Vec<&SimRecord> = Vec::with_capacity(limit);
    for record in candidates {
        if accept(record) {
            if total >= offset && total < end {
                page.push(record);
            }
            total += 1;
        }
    }

    let results: Vec<Value> = page
        .iter()
        .map(|r| render_record(object, r, Some(&body.properties)))
        .collect();
    let mut response = json!({ "total": total, "results": results });
    // HubSpot offers a next page whenever more matches exist, even when that
    // page lies past the cap (asking for it then fails with 400).
    if end < total {
        let after = end.to_string();
        response["paging"] = json!({"next": {"after": after, "link": format!("?after={after}")}});
    }
    json_response(StatusCode::OK, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_tokens_match_email_domains() {
        assert!(contains_token("ana@acme.io", "*@acme.io"));
        assert!(!contains_token("ana@acme.io.evil", "*@acme.io"));
        assert!(contains_token("Blue Robotics GmbH", "robotics"));
        assert!(contains_token("ana@acme.io", "ana*"));
    }
}
