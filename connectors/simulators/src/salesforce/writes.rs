//! Record writes as the org's save order runs them: id and type checks, field parsing
//! (names case-insensitive), row locks, reference checks (inactive owners, queues that
//! may not own the object), required fields, the validation rule, the lead assignment
//! rule, then stamping (`SystemModstamp` moves even when nothing changed), the write
//! log and outbound notifications. Per-record failures are values ([`RecError`]).

use chrono::Utc;
use serde_json::{Map, Value as Json, json};

use super::generator::blank;
use super::ids;
use super::org::{Org, WriteLogEntry};
use super::schema::{FieldDef, FieldType, ObjType, Val, format_datetime, parse_datetime};
use super::{LeadAssignmentRule, SalesforceSimConfig};

/// A per-record error (`statusCode` in collections results, `errorCode` at top level).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status_code}: {message}")]
pub(crate) struct RecError {
    pub(crate) status_code: &'static str,
    pub(crate) message: String,
    pub(crate) fields: Vec<String>,
}

impl RecError {
    pub(crate) fn new(
        status_code: &'static str,
        message: impl Into<String>,
        fields: &[&str],
    ) -> Self {
        Self {
            status_code,
            message: message.into(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    /// The collections/composite result shape.
    pub(crate) fn to_result_json(&self) -> Json {
        json!({"statusCode": self.status_code, "message": self.message, "fields": self.fields})
    }

    /// The top-level REST error shape.
    pub(crate) fn to_rest_json(&self) -> Json {
        json!({"errorCode": self.status_code, "message": self.message, "fields": self.fields})
    }

    pub(crate) fn rolled_back() -> Self {
        Self::new(
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using AllOrNone header",
            &[],
        )
    }
}

/// How one write request asks to be treated.
pub(crate) struct WriteOpts<'a> {
    /// `Sforce-Auto-Assign` is absent or TRUE (REST) / an assignmentRuleId was given (bulk).
    pub(crate) auto_assign: bool,
    /// Where the write log says it came from.
    pub(crate) source: &'static str,
    /// Late-visible commit delay in ms (0 = visible at once).
    pub(crate) late_ms: u64,
    /// Whether this record hits a scripted row lock.
    pub(crate) lock_row: &'a mut dyn FnMut() -> bool,
}

fn malformed_id(obj: ObjType, id: &str) -> RecError {
    RecError::new(
        "MALFORMED_ID",
        format!("{} ID: id value of incorrect type: {id}", obj.label()),
        &["Id"],
    )
}

/// Canonical id of a record of type `obj`, or the error a real org gives.
pub(crate) fn record_id(obj: ObjType, input: &str) -> Result<String, RecError> {
    let id = ids::canonical(input).ok_or_else(|| malformed_id(obj, input))?;
    if ids::prefix(&id) != obj.key_prefix() {
        return Err(malformed_id(obj, input));
    }
    Ok(id)
}

/// Converts an input JSON value to a stored value for `field`.
fn to_val(field: &FieldDef, value: &Json) -> Result<Val, RecError> {
    let bad = || {
        RecError::new(
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            format!("{}: value not of required type: {value}", field.label),
            &[field.name],
        )
    };
    if value.is_null() {
        return Ok(Val::Null);
    }
    let text = value.as_str();
    Ok(match field.ty {
        FieldType::Id | FieldType::Reference => {
            let raw = text.ok_or_else(bad)?;
            if raw.is_empty() {
                return Ok(Val::Null);
            }
            Val::str(ids::canonical(raw).ok_or_else(|| {
                RecError::new(
                    "MALFORMED_ID",
                    format!("{}: id value of incorrect type: {raw}", field.label),
                    &[field.name],
                )
            })?)
        }
        FieldType::String | FieldType::Email | FieldType::Url | FieldType::Picklist => {
            let s = text.ok_or_else(bad)?;
            if s.is_empty() {
                return Ok(Val::Null);
            }
            if field.length > 0 && s.chars().count() > field.length as usize {
                return Err(RecError::new(
                    "STRING_TOO_LONG",
                    format!(
                        "{}: data value too large: {s} (max length={})",
                        field.label, field.length
                    ),
                    &[field.name],
                ));
            }
            if field.ty == FieldType::Email && !s.contains('@') {
                return Err(RecError::new(
                    "INVALID_EMAIL_ADDRESS",
                    format!("{}: invalid email address: {s}", field.label),
                    &[field.name],
                ));
            }
            Val::str(s)
        }
        FieldType::Boolean => match (value.as_bool(), text) {
            (Some(b), _) => Val::Bool(b),
            (None, Some(s)) if s.eq_ignore_ascii_case("true") => Val::Bool(true),
            (None, Some(s)) if s.eq_ignore_ascii_case("false") => Val::Bool(false),
            _ => return Err(bad()),
        },
        FieldType::Int => match (value.as_i64(), text.and_then(|s| s.parse().ok())) {
            (Some(n), _) | (None, Some(n)) => Val::Int(n),
            _ => return Err(bad()),
        },
        FieldType::Currency => match (value.as_f64(), text.and_then(|s| s.parse().ok())) {
            (Some(n), _) | (None, Some(n)) => Val::Double(n),
            _ => return Err(bad()),
        },
        FieldType::DateTime => Val::DateTime(text.and_then(parse_datetime).ok_or_else(bad)?),
        FieldType::Date => Val::Date(
            text.and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                .ok_or_else(bad)?,
        ),
    })
}

/// Parses a request body's fields (case-insensitive names; `attributes` and `Id` are
/// skipped) into writable field changes.
pub(crate) fn parse_fields(
    obj: ObjType,
    body: &Map<String, Json>,
) -> Result<Vec<(usize, Val)>, RecError> {
    let mut changes = Vec::new();
    let mut unwritable = Vec::new();
    for (key, value) in body {
        if key == "attributes" || key.eq_ignore_ascii_case("id") {
            continue;
        }
        let Some(idx) = obj.field_index(key) else {
            return Err(RecError::new(
                "INVALID_FIELD",
                format!("No such column '{key}' on sobject of type {}", obj.name()),
                &[],
            ));
        };
        let field = &obj.fields()[idx];
        if !field.updateable {
            unwritable.push(field.name);
            continue;
        }
        changes.push((idx, to_val(field, value)?));
    }
    if !unwritable.is_empty() {
        return Err(RecError::new(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            format!(
                "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                unwritable.join(", ")
            ),
            &unwritable,
        ));
    }
    Ok(changes)
}

fn owner_kind(obj: ObjType) -> &'static str {
    match obj {
        ObjType::Lead => "lead",
        ObjType::Contact => "contact",
        _ => "account",
    }
}

/// Reference checks for the values a record would hold after the write.
fn check_references(
    org: &Org,
    obj: ObjType,
    vals: &[Val],
    changed: &[usize],
) -> Result<(), RecError> {
    for idx in changed {
        let field = &obj.fields()[*idx];
        if field.ty != FieldType::Reference {
            continue;
        }
        let Some(target) = vals[*idx].as_str() else {
            continue;
        };
        let incorrect = || {
            RecError::new(
                "FIELD_INTEGRITY_EXCEPTION",
                format!("{}: id value of incorrect type: {target}", field.label),
                &[field.name],
            )
        };
        let missing = || {
            RecError::new(
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
                &[],
            )
        };
        let Some(target_obj) = ObjType::from_prefix(ids::prefix(target)) else {
            return Err(incorrect());
        };
        if !field.reference_to.contains(&target_obj) {
            return Err(incorrect());
        }
        let Some(row) = org.row(target_obj, target) else {
            return Err(missing());
        };
        match target_obj {
            ObjType::User => {
                if field.name == "OwnerId" && !row.vals[ObjType::User.idx("IsActive")].as_bool() {
                    return Err(RecError::new(
                        "INACTIVE_OWNER_OR_USER",
                        format!(
                            "operation performed with inactive user [{}] as owner of {}",
                            &target[..15],
                            owner_kind(obj)
                        ),
                        &[],
                    ));
                }
            }
            ObjType::Group => {
                let is_queue = row.vals[ObjType::Group.idx("Type")].as_str() == Some("Queue");
                let supported = org.table(ObjType::QueueSobject).rows.iter().any(|q| {
                    q.vals[ObjType::QueueSobject.idx("QueueId")].as_str() == Some(target)
                        && q.vals[ObjType::QueueSobject.idx("SobjectType")].as_str()
                            == Some(obj.name())
                });
                if !is_queue || !supported {
                    return Err(incorrect());
                }
            }
            _ => {
                if row.vals[0].as_str() == vals[0].as_str() {
                    return Err(RecError::new(
                        "FIELD_INTEGRITY_EXCEPTION",
                        format!("{}: a record cannot reference itself", field.label),
                        &[field.name],
                    ));
                }
                if target_obj
                    .field_index("IsDeleted")
                    .is_some_and(|d| row.vals[d].as_bool())
                {
                    return Err(RecError::new(
                        "ENTITY_IS_DELETED",
                        "entity is deleted",
                        &[field.name],
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_required(obj: ObjType, vals: &[Val]) -> Result<(), RecError> {
    let missing: Vec<&str> = obj
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, f)| f.updateable && !f.nillable && vals[*i].is_null())
        .map(|(_, f)| f.name)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(RecError::new(
            "REQUIRED_FIELD_MISSING",
            format!("Required fields are missing: [{}]", missing.join(", ")),
            &missing,
        ))
    }
}

/// The owner the active lead assignment rule picks for a lead, if any.
pub(crate) fn assignment_rule_owner(
    org: &mut Org,
    rule: &LeadAssignmentRule,
    lead: &[Val],
) -> Option<String> {
    let queue_by_name = |org: &Org, name: &str| {
        let g = ObjType::Group;
        org.table(g)
            .rows
            .iter()
            .find(|r| {
                r.vals[g.idx("Type")].as_str() == Some("Queue")
                    && r.vals[g.idx("Name")].as_str() == Some(name)
            })
            .map(|r| r.id().to_owned())
    };
    match rule {
        LeadAssignmentRule::Inactive => None,
        LeadAssignmentRule::Queue { queue_name } => queue_by_name(org, queue_name),
        LeadAssignmentRule::RoundRobinByCountry { fallback_queue } => {
            let country = lead[ObjType::Lead.idx("Country")]
                .as_str()
                .unwrap_or("")
                .to_lowercase();
            let u = ObjType::User;
            let api_user = org.api_user_id.clone();
            let candidates: Vec<String> = org
                .table(u)
                .rows
                .iter()
                .filter(|r| {
                    r.vals[u.idx("IsActive")].as_bool()
                        && r.id() != api_user
                        && !country.is_empty()
                        && r.vals[u.idx("Country")]
                            .as_str()
                            .is_some_and(|c| c.to_lowercase() == country)
                })
                .map(|r| r.id().to_owned())
                .collect();
            if candidates.is_empty() {
                return queue_by_name(org, fallback_queue);
            }
            let turn = org.round_robin.entry(country).or_insert(0);
            let owner = candidates[*turn % candidates.len()].clone();
            *turn += 1;
            Some(owner)
        }
    }
}

/// Sets `changes` on a row, recomputes `Name`, stamps it now and queues an outbound
/// notification. Returns the stamp (epoch seconds).
pub(crate) fn apply_row(
    org: &mut Org,
    obj: ObjType,
    idx: usize,
    mut vals: Vec<Val>,
    late_ms: u64,
) -> i64 {
    let now = Utc::now();
    let secs = now.timestamp();
    if let (Some(first), Some(last), Some(name)) = (
        obj.field_index("FirstName"),
        obj.field_index("LastName"),
        obj.field_index("Name")
            .filter(|_| obj != ObjType::Account && obj != ObjType::Group),
    ) {
        let full = [vals[first].as_str(), vals[last].as_str()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        vals[name] = Val::opt_str((!full.is_empty()).then_some(full));
    }
    if let Some(i) = obj.field_index("LastModifiedDate") {
        vals[i] = Val::DateTime(secs);
    }
    vals[obj.idx("SystemModstamp")] = Val::DateTime(secs);
    let late = (late_ms > 0).then(|| now.timestamp_millis() + late_ms as i64);
    let id = vals[0].as_str().unwrap_or_default().to_owned();
    org.replace(obj, idx, vals, late);
    org.notify(obj, &id);
    secs
}

/// Updates one record through the API. Returns its 18-character id.
pub(crate) fn update(
    org: &mut Org,
    config: &SalesforceSimConfig,
    obj: ObjType,
    id_input: &str,
    body: &Map<String, Json>,
    opts: &mut WriteOpts<'_>,
) -> Result<String, RecError> {
    if !obj.updateable() {
        return Err(RecError::new(
            "INSUFFICIENT_ACCESS_OR_READONLY",
            format!(
                "insufficient access rights on object {}: the simulator keeps {} read-only",
                obj.name(),
                obj.name()
            ),
            &[],
        ));
    }
    let id = record_id(obj, id_input)?;
    let Some(&idx) = org.table(obj).by_id.get(&id) else {
        return Err(RecError::new(
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id",
            &[],
        ));
    };
    let old = org.table(obj).rows[idx].vals.clone();
    if old[obj.idx("IsDeleted")].as_bool() {
        return Err(RecError::new("ENTITY_IS_DELETED", "entity is deleted", &[]));
    }
    if obj == ObjType::Lead && old[obj.idx("IsConverted")].as_bool() {
        return Err(RecError::new(
            "CANNOT_UPDATE_CONVERTED_LEAD",
            "cannot reference converted lead",
            &[],
        ));
    }
    let changes = parse_fields(obj, body)?;
    if (opts.lock_row)() {
        return Err(RecError::new(
            "UNABLE_TO_LOCK_ROW",
            format!("unable to obtain exclusive access to this record or 1 records: {id}"),
            &[],
        ));
    }
    let mut vals = old.clone();
    let changed: Vec<usize> = changes.iter().map(|(i, _)| *i).collect();
    for (i, v) in &changes {
        vals[*i] = v.clone();
    }
    derive_activity_fields(obj, &mut vals, Utc::now().timestamp());
    check_references(org, obj, &vals, &changed)?;
    check_required(obj, &vals)?;
    let owner = obj.idx("OwnerId");
    if config.validation_rule
        && obj == ObjType::Lead
        && vals[obj.idx("Routing_Locked__c")].as_bool()
        && vals[owner] != old[owner]
    {
        return Err(RecError::new(
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "Lead owner cannot change while Routing Locked is checked.",
            &[],
        ));
    }
    let sent_owner = vals[owner].clone();
    if obj == ObjType::Lead && opts.auto_assign {
        if let Some(rule_owner) = assignment_rule_owner(org, &config.lead_assignment_rule, &vals) {
            vals[owner] = Val::str(rule_owner);
        }
    }
    let stamp = apply_row(org, obj, idx, vals.clone(), opts.late_ms);
    org.api_writes += 1;
    let at = format_datetime(stamp);
    if matches!(obj, ObjType::Task | ObjType::Event) {
        bump_last_activity(org, obj, &vals);
    }
    for (i, v) in &changes {
        org.log_write(WriteLogEntry {
            at: at.clone(),
            object: obj.name().to_owned(),
            id: id.clone(),
            field: obj.fields()[*i].name.to_owned(),
            old: old[*i].to_json(),
            new: v.to_json(),
            source: opts.source.to_owned(),
        });
    }
    if vals[owner] != sent_owner {
        org.log_write(WriteLogEntry {
            at,
            object: obj.name().to_owned(),
            id: id.clone(),
            field: "OwnerId".to_owned(),
            old: sent_owner.to_json(),
            new: vals[owner].to_json(),
            source: "assignment_rule".to_owned(),
        });
    }
    Ok(id)
}

/// Creates one record through the API. Returns its new id.
pub(crate) fn create(
    org: &mut Org,
    config: &SalesforceSimConfig,
    obj: ObjType,
    body: &Map<String, Json>,
    opts: &mut WriteOpts<'_>,
) -> Result<String, RecError> {
    if !obj.updateable() {
        return Err(RecError::new(
            "INSUFFICIENT_ACCESS_OR_READONLY",
            format!(
                "insufficient access rights on object {}: the simulator keeps {} read-only",
                obj.name(),
                obj.name()
            ),
            &[],
        ));
    }
    if body.keys().any(|k| k.eq_ignore_ascii_case("id")) {
        return Err(RecError::new(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            "cannot specify Id in an insert call",
            &["Id"],
        ));
    }
    let changes = parse_fields(obj, body)?;
    let id = org.ids.next(obj.key_prefix());
    let mut vals = blank(obj, id.clone());
    vals[obj.idx("OwnerId")] = Val::str(org.api_user_id.clone());
    if obj == ObjType::Lead {
        vals[obj.idx("Status")] = Val::str("Open - Not Contacted");
    }
    if obj == ObjType::Task {
        vals[obj.idx("Status")] = Val::str("Not Started");
        vals[obj.idx("Priority")] = Val::str("Normal");
    }
    let changed: Vec<usize> = changes.iter().map(|(i, _)| *i).collect();
    for (i, v) in &changes {
        vals[*i] = v.clone();
    }
    derive_activity_fields(obj, &mut vals, Utc::now().timestamp());
    check_references(org, obj, &vals, &changed)?;
    check_required(obj, &vals)?;
    let owner = obj.idx("OwnerId");
    let sent_owner = vals[owner].clone();
    if obj == ObjType::Lead && opts.auto_assign {
        if let Some(rule_owner) = assignment_rule_owner(org, &config.lead_assignment_rule, &vals) {
            vals[owner] = Val::str(rule_owner);
        }
    }
    let now = Utc::now().timestamp();
    vals[obj.idx("CreatedDate")] = Val::DateTime(now);
    // Insert a placeholder, then stamp through the same path as updates.
    let late = (opts.late_ms > 0).then(|| Utc::now().timestamp_millis() + opts.late_ms as i64);
    org.insert(obj, vals.clone(), late);
    let idx = org.table(obj).rows.len() - 1;
    let stamp = apply_row(org, obj, idx, vals.clone(), 0);
    org.api_writes += 1;
    if late.is_some() {
        // Keep the create invisible until the late commit lands.
        if let Some(row) = org.tables[obj.index()].rows.get_mut(idx) {
            row.shadow = late.map(|visible_at_ms| {
                Box::new(super::org::Shadow {
                    visible_at_ms,
                    old: None,
                })
            });
        }
    }
    let at = format_datetime(stamp);
    if matches!(obj, ObjType::Task | ObjType::Event) {
        bump_last_activity(org, obj, &vals);
    }
    for (i, v) in &changes {
        org.log_write(WriteLogEntry {
            at: at.clone(),
            object: obj.name().to_owned(),
            id: id.clone(),
            field: obj.fields()[*i].name.to_owned(),
            old: Json::Null,
            new: v.to_json(),
            source: opts.source.to_owned(),
        });
    }
    if vals[owner] != sent_owner {
        org.log_write(WriteLogEntry {
            at,
            object: obj.name().to_owned(),
            id: id.clone(),
            field: "OwnerId".to_owned(),
            old: sent_owner.to_json(),
            new: vals[owner].to_json(),
            source: "assignment_rule".to_owned(),
        });
    }
    Ok(id)
}

/// Moves a record to the recycle bin (a merge loser also gets `MasterRecordId`).
/// Deleting an Account takes its Contacts with it, as a real org does.
pub(crate) fn soft_delete(
    org: &mut Org,
    obj: ObjType,
    id: &str,
    master: Option<&str>,
) -> Result<(), RecError> {
    if !obj.soft_deletes() {
        return Err(RecError::new(
            "INSUFFICIENT_ACCESS_OR_READONLY",
            format!("{} records cannot be deleted in the simulator", obj.name()),
            &[],
        ));
    }
    let Some(&idx) = org.table(obj).by_id.get(id) else {
        return Err(RecError::new(
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id",
            &[],
        ));
    };
    let mut vals = org.table(obj).rows[idx].vals.clone();
    if vals[obj.idx("IsDeleted")].as_bool() {
        return Err(RecError::new("ENTITY_IS_DELETED", "entity is deleted", &[]));
    }
    vals[obj.idx("IsDeleted")] = Val::Bool(true);
    if let Some(master) = master {
        vals[obj.idx("MasterRecordId")] = Val::str(master);
    }
    let stamp = apply_row(org, obj, idx, vals, 0);
    org.log_delete(obj, id.to_owned(), stamp);
    if obj == ObjType::Account && master.is_none() {
        let c = ObjType::Contact;
        let children: Vec<String> = org
            .table(c)
            .rows
            .iter()
            .filter(|r| {
                r.vals[c.idx("AccountId")].as_str() == Some(id)
                    && !r.vals[c.idx("IsDeleted")].as_bool()
            })
            .map(|r| r.id().to_owned())
            .collect();
        for child in children {
            soft_delete(org, c, &child, None)?;
        }
    }
    Ok(())
}

/// Restores a record from the recycle bin with the same id.
pub(crate) fn undelete(org: &mut Org, obj: ObjType, id: &str) -> Result<(), RecError> {
    let Some(&idx) = org.table(obj).by_id.get(id) else {
        return Err(RecError::new(
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id",
            &[],
        ));
    };
    let mut vals = org.table(obj).rows[idx].vals.clone();
    let Some(deleted) = obj.field_index("IsDeleted").filter(|d| vals[*d].as_bool()) else {
        return Err(RecError::new(
            "UNDELETE_FAILED",
            "Entity is not in the recycle bin",
            &[],
        ));
    };
    vals[deleted] = Val::Bool(false);
    vals[obj.idx("MasterRecordId")] = Val::Null;
    apply_row(org, obj, idx, vals, 0);
    org.delete_log.retain(|e| e.id != id);
    Ok(())
}

/// A Task's `IsClosed` and `CompletedDateTime` follow its `Status` (`Completed` is the
/// default closed status); an Event's `ActivityDate` is its start's date.
fn derive_activity_fields(obj: ObjType, vals: &mut [Val], now_secs: i64) {
    match obj {
        ObjType::Task => {
            let closed = vals[obj.idx("Status")].as_str() == Some("Completed");
            vals[obj.idx("IsClosed")] = Val::Bool(closed);
            let completed = obj.idx("CompletedDateTime");
            if closed && vals[completed].is_null() {
                vals[completed] = Val::DateTime(now_secs);
            }
        }
        ObjType::Event => {
            if let Val::DateTime(start) = vals[obj.idx("StartDateTime")] {
                vals[obj.idx("ActivityDate")] = chrono::DateTime::from_timestamp(start, 0)
                    .map_or(Val::Null, |at| Val::Date(at.date_naive()));
            }
        }
        _ => {}
    }
}

/// Moves the `WhoId` lead's or contact's `LastActivityDate` (a Date) forward to the
/// activity's date, as Salesforce does: a closed Task's `ActivityDate` (its due date,
/// else today), an Event's date (which may lie in the future). Open tasks do not count
/// (reference §12). The change stamps the person (`SystemModstamp`) and so can fire its
/// outbound message like any other update.
fn bump_last_activity(org: &mut Org, obj: ObjType, vals: &[Val]) {
    let Some(who) = vals[obj.idx("WhoId")].as_str().map(str::to_owned) else {
        return;
    };
    let date = match obj {
        ObjType::Task => {
            if !vals[obj.idx("IsClosed")].as_bool() {
                return;
            }
            match &vals[obj.idx("ActivityDate")] {
                Val::Date(d) => *d,
                _ => Utc::now().date_naive(),
            }
        }
        _ => match &vals[obj.idx("ActivityDate")] {
            Val::Date(d) => *d,
            _ => return,
        },
    };
    let Some((who_obj, idx)) = org.locate(&who) else {
        return;
    };
    let mut row = org.table(who_obj).rows[idx].vals.clone();
    let field = who_obj.idx("LastActivityDate");
    if matches!(&row[field], Val::Date(old) if *old >= date) {
        return;
    }
    row[field] = Val::Date(date);
    apply_row(org, who_obj, idx, row, 0);
}
