//! Running a parsed query against the org: filtering (visible rows only; deleted rows
//! only for queryAll), sorting, paging through single-use expiring query locators,
//! and rendering records with `attributes` and nested parent objects.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json, json};

use super::super::ids;
use super::super::org::Org;
use super::super::schema::{ObjType, Val};
use super::{CmpOp, Column, Expr, FieldPath, Lit, OrderItem, Query, Select, SoqlError};

/// An open query locator: the matching rows, where the next page starts, and when it
/// was last read (locators expire when idle).
#[derive(Debug)]
struct Cursor {
    query: Arc<Query>,
    rows: Vec<usize>,
    next: usize,
    page_size: usize,
    last_used: Instant,
}

/// Open query locators by id.
#[derive(Debug)]
pub(crate) struct Cursors {
    open: HashMap<String, Cursor>,
    counter: u64,
    /// Idle lifetime of a locator.
    ttl: Duration,
}

impl Cursors {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            open: HashMap::new(),
            counter: 0,
            ttl,
        }
    }
}

impl Cursors {}

fn invalid_locator() -> SoqlError {
    SoqlError {
        code: "INVALID_QUERY_LOCATOR",
        message: "invalid query locator".to_owned(),
    }
}

/// Runs `query` and renders its first page (`queryAll` when `all_rows`).
pub(crate) fn execute(
    org: &Org,
    cursors: &mut Cursors,
    query: Query,
    all_rows: bool,
    page_size: usize,
    version: &str,
    now_ms: i64,
) -> String {
    let obj = query.object;
    let deleted = obj.field_index("IsDeleted");
    let table = org.table(obj);
    let mut rows: Vec<usize> = Vec::new();
    let candidates: Box<dyn Iterator<Item = usize>> =
        match query.filter.as_ref().and_then(|f| plan(obj, f)) {
            Some(Plan::Ids(ids)) => {
                let mut idxs: Vec<usize> = ids
                    .iter()
                    .filter_map(|id| table.by_id.get(id).copied())
                    .collect();
                idxs.sort_unstable();
                idxs.dedup();
                Box::new(idxs.into_iter())
            }
            Some(Plan::StampFrom(from)) => {
                let mut idxs: Vec<usize> = table.rows_stamped_from(from).collect();
                // Without ORDER BY, rows come in creation order, index or not.
                idxs.sort_unstable();
                Box::new(idxs.into_iter())
            }
            None => Box::new(0..table.rows.len()),
        };
    for i in candidates {
        let row = &table.rows[i];
        let Some(vals) = row.visible(now_ms) else {
            continue;
        };
        if !all_rows && deleted.is_some_and(|d| vals[d].as_bool()) {
            continue;
        }
        if query.filter.as_ref().is_none_or(|f| matches(org, vals, f)) {
            rows.push(i);
        }
    }
    if !query.order.is_empty() {
        sort_rows(org, obj, &mut rows, &query.order, now_ms);
    }
    let skip = query.offset.min(rows.len());
    rows.drain(..skip);
    if let Some(limit) = query.limit {
        rows.truncate(limit);
    }
    match &query.select {
        Select::CountOnly => {
            json!({"totalSize": rows.len(), "done": true, "records": []}).to_string()
        }
        Select::CountField { alias, path } => {
            let n = rows
                .iter()
                .filter(|i| {
                    let vals = &table.rows[**i].vals;
                    !value(org, vals, path).is_null()
                })
                .count();
            let mut record = Map::new();
            record.insert("attributes".into(), json!({"type": "AggregateResult"}));
            record.insert(alias.clone(), json!(n));
            json!({"totalSize": 1, "done": true, "records": [record]}).to_string()
        }
        Select::Columns(_) => {
            let total = rows.len();
            let query = Arc::new(query);
            if total <= page_size {
                let records = render_rows(org, &query, &rows, version, now_ms);
                return page_json(total, None, &records);
            }
            let records = render_rows(org, &query, &rows[..page_size], version, now_ms);
            // Abandoned locators are dropped after the idle TTL, whoever asks next.
            let now = Instant::now();
            let ttl = cursors.ttl;
            cursors
                .open
                .retain(|_, c| now.duration_since(c.last_used) < ttl);
            cursors.counter += 1;
            let locator = ids::to18(&format!("01g8d{}", ids::base62(cursors.counter, 10)));
            let next_url = format!("/services/data/v{version}/query/{locator}-{page_size}");
            cursors.open.insert(
                locator,
                Cursor {
                    query,
                    rows,
                    next: page_size,
                    page_size,
                    last_used: Instant::now(),
                },
            );
            page_json(total, Some(&next_url), &records)
        }
    }
}

/// How to find candidate rows without scanning the table.
enum Plan {
    /// `Id = …` or `Id IN (…)`: look the ids up.
    Ids(Vec<String>),
    /// A lower bound on `SystemModstamp`: range over the stamp index.
    StampFrom(i64),
}

/// An index plan for a filter: top-level conjuncts on `Id` or a lower bound on
/// `SystemModstamp`. The full filter still runs on every candidate.
fn plan(obj: ObjType, expr: &Expr) -> Option<Plan> {
    let stamp = obj.idx("SystemModstamp");
    match expr {
        Expr::And(parts) => {
            let plans: Vec<Plan> = parts.iter().filter_map(|p| plan(obj, p)).collect();
            let mut best: Option<Plan> = None;
            for p in plans {
                best = match (best, p) {
                    (Some(Plan::Ids(ids)), _) | (_, Plan::Ids(ids)) => Some(Plan::Ids(ids)),
                    (Some(Plan::StampFrom(a)), Plan::StampFrom(b)) => {
                        Some(Plan::StampFrom(a.max(b)))
                    }
                    (None, p) => Some(p),
                };
            }
            best
        }
        Expr::Cmp {
            path: FieldPath::Direct { idx: 0 },
            op: CmpOp::Eq,
            lit: Lit::Id(id),
        } => Some(Plan::Ids(vec![id.clone()])),
        Expr::In {
            path: FieldPath::Direct { idx: 0 },
            negated: false,
            lits,
        } if lits.iter().all(|l| matches!(l, Lit::Id(_) | Lit::Text(_))) => Some(Plan::Ids(
            lits.iter()
                .filter_map(|l| match l {
                    Lit::Id(id) => Some(id.clone()),
                    _ => None,
                })
                .collect(),
        )),
        Expr::Cmp {
            path: FieldPath::Direct { idx },
            op,
            lit,
        } if *idx == stamp => match (op, lit) {
            (CmpOp::Ge | CmpOp::Eq, Lit::Secs(s)) => Some(Plan::StampFrom(*s)),
            (CmpOp::Gt, Lit::Secs(s)) => Some(Plan::StampFrom(s + 1)),
            (CmpOp::Ge | CmpOp::Eq, Lit::Range(start, _)) => Some(Plan::StampFrom(*start)),
            (CmpOp::Gt, Lit::Range(_, end)) => Some(Plan::StampFrom(*end)),
            _ => None,
        },
        _ => None,
    }
}

/// `{"totalSize","done","nextRecordsUrl"?,"records"}` around already-rendered records.
fn page_json(total: usize, next_url: Option<&str>, records: &str) -> String {
    let mut out = String::with_capacity(records.len() + 128);
    out.push_str(&format!(
        "{{\"totalSize\":{total},\"done\":{}",
        next_url.is_none()
    ));
    if let Some(url) = next_url {
        out.push_str(",\"nextRecordsUrl\":");
        push_str_json(&mut out, url);
    }
    out.push_str(",\"records\":");
    out.push_str(records);
    out.push('}');
    out
}

/// Appends `s` as a JSON string literal.
fn push_str_json(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_val_json(out: &mut String, v: &Val) {
    match v {
        Val::Str(s) => push_str_json(out, s),
        Val::Null => out.push_str("null"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Int(i) => out.push_str(&i.to_string()),
        other => out.push_str(&other.to_json().to_string()),
    }
}

/// Serves `GET …/query/{locator}-{offset}`. Each page can be read once, in order;
/// an idle locator older than `ttl` is gone.
pub(crate) fn next_page(
    org: &Org,
    cursors: &mut Cursors,
    locator_offset: &str,
    version: &str,
    now_ms: i64,
) -> Result<String, SoqlError> {
    let (locator, offset) = locator_offset
        .rsplit_once('-')
        .ok_or_else(invalid_locator)?;
    let offset: usize = offset.parse().map_err(|_| invalid_locator())?;
    let now = Instant::now();
    let ttl = cursors.ttl;
    cursors
        .open
        .retain(|_, c| now.duration_since(c.last_used) < ttl);
    let cursor = cursors.open.get_mut(locator).ok_or_else(invalid_locator)?;
    if offset != cursor.next {
        return Err(invalid_locator());
    }
    let end = (offset + cursor.page_size).min(cursor.rows.len());
    let records = render_rows(
        org,
        &cursor.query,
        &cursor.rows[offset..end],
        version,
        now_ms,
    );
    let total = cursor.rows.len();
    if end >= total {
        cursors.open.remove(locator);
        return Ok(page_json(total, None, &records));
    }
    cursor.next = end;
    cursor.last_used = now;
    let next_url = format!("/services/data/v{version}/query/{locator}-{end}");
    Ok(page_json(total, Some(&next_url), &records))
}

/// The records of a page as a JSON array, written directly as text (pages are the
/// hot path of a full sync).
fn render_rows(org: &Org, query: &Query, rows: &[usize], version: &str, now_ms: i64) -> String {
    let mut out = String::from("[");
    let Select::Columns(columns) = &query.select else {
        out.push(']');
        return out;
    };
    let table = org.table(query.object);
    let mut first = true;
    for row in rows.iter().filter_map(|i| table.rows.get(*i)) {
        if !first {
            out.push(',');
        }
        first = false;
        let vals = row.visible(now_ms).unwrap_or(&row.vals);
        write_record(&mut out, org, query.object, vals, columns, version);
    }
    out.push(']');
    out
}

/// Text form of [`render_record`].
fn write_record(
    out: &mut String,
    org: &Org,
    obj: ObjType,
    vals: &[Val],
    columns: &[Column],
    version: &str,
) {
    let direct = columns
        .iter()
        .all(|c| matches!(c.path, FieldPath::Direct { .. }));
    if !direct {
        out.push_str(&render_record(org, obj, vals, columns, version).to_string());
        return;
    }
    let id = vals[0].as_str().unwrap_or_default();
    out.push_str("{\"attributes\":{\"type\":\"");
    out.push_str(obj.name());
    out.push_str("\",\"url\":\"/services/data/v");
    out.push_str(version);
    out.push_str("/sobjects/");
    out.push_str(obj.name());
    out.push('/');
    out.push_str(id);
    out.push_str("\"}");
    for column in columns {
        if let FieldPath::Direct { idx } = column.path {
            out.push_str(",\"");
            out.push_str(&column.name);
            out.push_str("\":");
            push_val_json(out, &vals[idx]);
        }
    }
    out.push('}');
}

pub(crate) fn attributes(obj_name: &str, url_obj: ObjType, id: &str, version: &str) -> Json {
    json!({
        "type": obj_name,
        "url": format!("/services/data/v{version}/sobjects/{}/{id}", url_obj.name()),
    })
}

/// One record with `attributes`, selected fields in order, and each parent
/// relationship as a nested object (or null) where it was first selected.
pub(crate) fn render_record(
    org: &Org,
    obj: ObjType,
    vals: &[Val],
    columns: &[Column],
    version: &str,
) -> Json {
    let mut out = Map::new();
    let id = vals[0].as_str().unwrap_or_default();
    out.insert(
        "attributes".into(),
        attributes(obj.name(), obj, id, version),
    );
    for column in columns {
        match &column.path {
            FieldPath::Direct { idx } => {
                out.insert(column.name.clone(), vals[*idx].to_json());
            }
            FieldPath::Parent {
                lookup,
                relationship,
                targets,
                ..
            } => {
                if out.contains_key(*relationship) {
                    continue;
                }
                let parent = vals[*lookup]
                    .as_str()
                    .and_then(|pid| org.locate(pid))
                    .map(|(pobj, pidx)| (pobj, &org.table(pobj).rows[pidx].vals));
                let nested = match parent {
                    None => Json::Null,
                    Some((pobj, pvals)) => {
                        let pid = pvals[0].as_str().unwrap_or_default();
                        // Polymorphic lookups come back as the `Name` object.
                        let type_name = if targets.len() > 1 {
                            "Name"
                        } else {
                            pobj.name()
                        };
                        let mut nested = Map::new();
                        nested.insert(
                            "attributes".into(),
                            attributes(type_name, pobj, pid, version),
                        );
                        for c in columns {
                            if let FieldPath::Parent {
                                relationship: r,
                                parent_field,
                                ..
                            } = &c.path
                                && r == relationship
                            {
                                nested.insert(
                                    parent_field.clone(),
                                    parent_value(pobj, pvals, parent_field).to_json(),
                                );
                            }
                        }
                        Json::Object(nested)
                    }
                };
                out.insert((*relationship).to_owned(), nested);
            }
        }
    }
    Json::Object(out)
}

/// A field of a parent record; `Type` of the polymorphic `Name` object is `User` or
/// the group's type (`Queue`).
fn parent_value(pobj: ObjType, pvals: &[Val], field: &str) -> Val {
    if pobj == ObjType::User && field == "Type" {
        return Val::str("User");
    }
    pobj.field_index(field)
        .map_or(Val::Null, |i| pvals[i].clone())
}

/// The value a path reads from a row (parents read at their committed version).
pub(crate) fn value(org: &Org, vals: &[Val], path: &FieldPath) -> Val {
    match path {
        FieldPath::Direct { idx } => vals[*idx].clone(),
        FieldPath::Parent {
            lookup,
            parent_field,
            ..
        } => vals[*lookup]
            .as_str()
            .and_then(|pid| org.locate(pid))
            .map_or(Val::Null, |(pobj, pidx)| {
                parent_value(pobj, &org.table(pobj).rows[pidx].vals, parent_field)
            }),
    }
}

fn with_value<R>(org: &Org, vals: &[Val], path: &FieldPath, f: impl FnOnce(&Val) -> R) -> R {
    match path {
        FieldPath::Direct { idx } => f(&vals[*idx]),
        FieldPath::Parent { .. } => f(&value(org, vals, path)),
    }
}

fn matches(org: &Org, vals: &[Val], expr: &Expr) -> bool {
    match expr {
        Expr::And(parts) => parts.iter().all(|e| matches(org, vals, e)),
        Expr::Or(parts) => parts.iter().any(|e| matches(org, vals, e)),
        Expr::Not(inner) => !matches(org, vals, inner),
        Expr::Cmp { path, op, lit } => with_value(org, vals, path, |v| compare(v, *op, lit)),
        Expr::In {
            path,
            negated,
            lits,
        } => {
            let found = with_value(org, vals, path, |v| {
                lits.iter().any(|l| compare(v, CmpOp::Eq, l))
            });
            found != *negated
        }
        Expr::Like { path, pattern } => with_value(org, vals, path, |v| match v {
            Val::Str(s) => like(&s.to_lowercase(), pattern),
            _ => false,
        }),
    }
}

/// Case-insensitive ordering of two texts without allocating.
fn cmp_ci(a: &str, b: &str) -> Ordering {
    a.chars()
        .flat_map(char::to_lowercase)
        .cmp(b.chars().flat_map(char::to_lowercase))
}

fn midnight(d: chrono::NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp()
}

/// SOQL comparison semantics: `= null` / `!= null` test presence; any other
/// comparison with a null value is false except `!=`.
fn compare(v: &Val, op: CmpOp, lit: &Lit) -> bool {
    if matches!(lit, Lit::Null) {
        return match op {
            CmpOp::Eq => v.is_null(),
            _ => !v.is_null(),
        };
    }
    if v.is_null() {
        return op == CmpOp::Ne;
    }
    if let Lit::Range(start, end) = lit {
        let secs = match v {
            Val::DateTime(s) => *s,
            Val::Date(d) => midnight(*d),
            _ => return false,
        };
        return match op {
            CmpOp::Eq => (*start..*end).contains(&secs),
            CmpOp::Ne => !(*start..*end).contains(&secs),
            CmpOp::Lt => secs < *start,
            CmpOp::Le => secs < *end,
            CmpOp::Gt => secs >= *end,
            CmpOp::Ge => secs >= *start,
        };
    }
    let ord = match (v, lit) {
        (Val::Str(s), Lit::Text(t) | Lit::Id(t)) => Some(cmp_ci(s, t)),
        (Val::Bool(a), Lit::Bool(b)) => Some(a.cmp(b)),
        (Val::Int(a), Lit::Num(b)) => (*a as f64).partial_cmp(b),
        (Val::Double(a), Lit::Num(b)) => a.partial_cmp(b),
        (Val::DateTime(a), Lit::Secs(b)) => Some(a.cmp(b)),
        (Val::Date(a), Lit::Date(b)) => Some(a.cmp(b)),
        _ => None,
    };
    let Some(ord) = ord else {
        return op == CmpOp::Ne;
    };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

/// LIKE with `%` (any run) and `_` (one character); `\%`, `\_` and `\\` are literal.
fn like(text: &str, pattern: &str) -> bool {
    enum P {
        Any,
        One,
        Lit(char),
    }
    let mut parts = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        parts.push(match c {
            '%' => P::Any,
            '_' => P::One,
            '\\' => P::Lit(chars.next().unwrap_or('\\')),
            c => P::Lit(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    // dp[j]: the pattern prefix consumed so far matches text[..j].
    let mut dp = vec![false; text.len() + 1];
    dp[0] = true;
    for part in &parts {
        let mut next = vec![false; text.len() + 1];
        match part {
            P::Any => {
                let mut reachable = false;
                for j in 0..=text.len() {
                    reachable |= dp[j];
                    next[j] = reachable;
                }
            }
            P::One => {
                next[1..].copy_from_slice(&dp[..text.len()]);
            }
            P::Lit(c) => {
                for j in 0..text.len() {
                    next[j + 1] = dp[j] && text[j] == *c;
                }
            }
        }
        dp = next;
    }
    dp[text.len()]
}

fn cmp_vals(a: &Val, b: &Val) -> Ordering {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => cmp_ci(x, y).then_with(|| x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => x.cmp(y),
        (Val::Int(x), Val::Int(y)) => x.cmp(y),
        (Val::Double(x), Val::Double(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Val::DateTime(x), Val::DateTime(y)) => x.cmp(y),
        (Val::Date(x), Val::Date(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

fn sort_rows(org: &Org, obj: ObjType, rows: &mut Vec<usize>, order: &[OrderItem], now_ms: i64) {
    let table = org.table(obj);
    let mut keyed: Vec<(Vec<Val>, usize)> = rows
        .iter()
        .map(|i| {
            let row = &table.rows[*i];
            let vals = row.visible(now_ms).unwrap_or(&row.vals);
            (
                order.iter().map(|o| value(org, vals, &o.path)).collect(),
                *i,
            )
        })
        .collect();
    keyed.sort_by(|(a, ai), (b, bi)| {
        for (k, o) in order.iter().enumerate() {
            let ord = match (a[k].is_null(), b[k].is_null()) {
                (true, true) => Ordering::Equal,
                (true, false) => {
                    if o.nulls_first {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (false, true) => {
                    if o.nulls_first {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                (false, false) => {
                    let ord = cmp_vals(&a[k], &b[k]);
                    if o.descending { ord.reverse() } else { ord }
                }
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        ai.cmp(bi)
    });
    *rows = keyed.into_iter().map(|(_, i)| i).collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_handles_wildcards_and_escapes() {
        assert!(like("acme gmbh", "acme%"));
        assert!(like("acme gmbh", "%gmb_"));
        assert!(!like("acme gmbh", "acme"));
        assert!(like("50% off", r"50\% off"));
        assert!(!like("50x off", r"50\% off"));
    }

    #[test]
    fn nulls_compare_like_soql() {
        assert!(compare(&Val::Null, CmpOp::Eq, &Lit::Null));
        assert!(compare(&Val::Null, CmpOp::Ne, &Lit::Text("x".into())));
        assert!(!compare(&Val::Null, CmpOp::Lt, &Lit::Secs(5)));
        assert!(compare(
            &Val::str("ACME"),
            CmpOp::Eq,
            &Lit::Text("acme".into())
        ));
    }
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn hand_written_json_escapes_like_serde() {
        let tricky = "a\"b\\c\nd\te\u{1}f é";
        let mut out = String::new();
        push_str_json(&mut out, tricky);
        assert_eq!(out, serde_json::to_string(tricky).expect("serializes"));
    }
}
