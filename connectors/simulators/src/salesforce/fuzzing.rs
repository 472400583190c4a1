//! Entry point for the `fuzz/` crate (cargo fuzz): SOQL text through the simulator's own
//! lexer, parser and evaluator, as the query route runs it. Not an API: hidden from the
//! docs, no stability promise.

use std::time::Duration;

use chrono::NaiveDate;

use super::generator::blank;
use super::org::Org;
use super::schema::{FieldType, ObjType, Val};
use super::soql;

/// Parses `text` as SOQL; when it parses, runs it (then its continuation) on a tiny org
/// with one blank and one filled record of every type, then reads `text` as a query
/// locator too (`/query/{locator}-{offset}` comes from the client).
pub fn soql(text: &str) {
    let org = tiny_org();
    let mut cursors = soql::Cursors::new(Duration::from_secs(60));
    let now_ms = 1_767_225_600_000;
    if let Ok(query) = soql::parse(text) {
        for all_rows in [false, true] {
            let page = soql::execute(
                &org,
                &mut cursors,
                query.clone(),
                all_rows,
                1,
                "v62.0",
                now_ms,
            );
            if let Some(locator) = next_locator(&page) {
                let _ = soql::next_page(&org, &mut cursors, &locator, "v62.0", now_ms);
            }
        }
    }
    let _ = soql::next_page(&org, &mut cursors, text, "v62.0", now_ms);
}

fn next_locator(page: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(page).ok()?;
    let url = json.get("nextRecordsUrl")?.as_str()?;
    Some(url.rsplit('/').next()?.to_owned())
}

fn tiny_org() -> Org {
    let mut org = Org::new("00D8d000000Sim0EAC".into());
    for obj in ObjType::ALL {
        let id = org.ids.next(obj.key_prefix());
        org.insert(obj, blank(obj, id), None);
        let id = org.ids.next(obj.key_prefix());
        let mut vals = blank(obj, id);
        for (i, field) in obj.fields().iter().enumerate().skip(1) {
            vals[i] = match field.ty {
                FieldType::Id | FieldType::Reference => Val::Null,
                FieldType::Boolean => Val::Bool(true),
                FieldType::Int => Val::Int(42),
                FieldType::Currency => Val::Double(1.5),
                FieldType::DateTime => Val::DateTime(1_767_225_000),
                FieldType::Date => NaiveDate::from_ymd_opt(2026, 1, 1).map_or(Val::Null, Val::Date),
                FieldType::String | FieldType::Email | FieldType::Url | FieldType::Picklist => {
                    Val::str(format!("{} x@example.com", field.name))
                }
            };
        }
        org.insert(obj, vals, None);
    }
    org
}
