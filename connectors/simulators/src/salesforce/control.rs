//! `/__sim/` control endpoints and human-style mutations: edits, creates, owner
//! changes, user deactivation, merges, deletes, undeletes, lead conversion, seeded
//! random edits and bulk stamps. Mutations bypass the API (no call counting, no
//! assignment rule, no write log) but stamp records and send outbound messages.

use axum::http::{Method, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

use super::faults::FaultScript;
use super::generator::blank;
use super::ids;
use super::org::Org;
use super::schema::{ObjType, Val, format_datetime};
use super::server::{Resp, Shared};
use super::state;
use super::writes::{self, apply_row};

/// A change made "as a human" in the org's UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mutation {
    /// Sets fields (API names, case-insensitive) on a record.
    Edit {
        object: String,
        id: String,
        fields: Map<String, Json>,
    },
    /// Creates a record; returns its id.
    Create {
        object: String,
        fields: Map<String, Json>,
    },
    /// Changes a record's owner (no checks beyond the owner existing).
    ChangeOwner {
        object: String,
        id: String,
        owner_id: String,
    },
    DeactivateUser {
        id: String,
    },
    ActivateUser {
        id: String,
    },
    /// Merges up to two losers into `master`: losers go to the recycle bin with
    /// `MasterRecordId`, their children are re-parented to the master.
    Merge {
        object: String,
        master_id: String,
        loser_ids: Vec<String>,
    },
    Delete {
        object: String,
        id: String,
    },
    Undelete {
        object: String,
        id: String,
    },
    /// Converts a lead into a new (or existing) account and a new contact.
    Convert {
        lead_id: String,
        account_id: Option<String>,
        owner_id: Option<String>,
    },
    /// `count` seeded random edits (names, countries, statuses) on live records.
    RandomEdits {
        object: String,
        count: usize,
        seed: u64,
    },
    /// Purges delete-log entries older than `older_than_secs` (the org does this every
    /// 2 hours when the log is large): getDeleted's `earliestDateAvailable` moves up.
    PurgeDeleteLog {
        older_than_secs: u64,
    },
    /// Touches `count` live records so they share one `SystemModstamp` second.
    BulkStamp {
        object: String,
        count: usize,
    },
}

/// What a mutation did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MutationResult {
    /// Records changed or created.
    pub ids: Vec<String>,
    /// The `SystemModstamp` given to them.
    pub stamp: Option<String>,
}

fn obj(name: &str) -> Result<ObjType, String> {
    ObjType::parse(name)
        .ok_or_else(|| format!("unknown object '{name}'; use Lead, Contact, Account or User"))
}

fn locate(org: &Org, obj: ObjType, id: &str) -> Result<(String, usize), String> {
    let canonical = ids::canonical(id).ok_or_else(|| format!("'{id}' is not a Salesforce id"))?;
    let idx = *org
        .table(obj)
        .by_id
        .get(&canonical)
        .ok_or_else(|| format!("no {} with id {canonical}", obj.name()))?;
    Ok((canonical, idx))
}

fn set_fields(obj: ObjType, vals: &mut [Val], fields: &Map<String, Json>) -> Result<(), String> {
    let changes = writes::parse_fields(obj, fields).map_err(|e| e.to_string())?;
    for (i, v) in changes {
        vals[i] = v;
    }
    Ok(())
}

fn stamp_of(org: &Org, obj: ObjType, id: &str) -> Option<String> {
    match org.get(obj, id, "SystemModstamp") {
        Some(Val::DateTime(s)) => Some(format_datetime(*s)),
        _ => None,
    }
}

/// Applies a mutation to the org.
pub(crate) fn mutate(shared: &Shared, mutation: Mutation) -> Result<MutationResult, String> {
    let _exec = shared.exec.lock();
    let mut org = shared.org.lock();
    let result = apply(&mut org, mutation);
    drop(org);
    shared.outbound_wake.notify_one();
    result
}

fn apply(org: &mut Org, mutation: Mutation) -> Result<MutationResult, String> {
    match mutation {
        Mutation::Edit { object, id, fields } => {
            let obj = obj(&object)?;
            let (id, idx) = locate(org, obj, &id)?;
            let mut vals = org.table(obj).rows[idx].vals.clone();
            set_fields(obj, &mut vals, &fields)?;
            let stamp = apply_row(org, obj, idx, vals, 0);
            Ok(MutationResult {
                ids: vec![id],
                stamp: Some(format_datetime(stamp)),
            })
        }
        Mutation::Create { object, fields } => {
            let obj = obj(&object)?;
            let id = org.ids.next(obj.key_prefix());
            let mut vals = blank(obj, id.clone());
            if let Some(owner) = obj.field_index("OwnerId") {
                vals[owner] = Val::str(org.api_user_id.clone());
            }
            if obj == ObjType::Lead {
                vals[obj.idx("Status")] = Val::str("Open - Not Contacted");
            }
            set_fields(obj, &mut vals, &fields)?;
            let now = chrono::Utc::now().timestamp();
            if let Some(i) = obj.field_index("CreatedDate") {
                vals[i] = Val::DateTime(now);
            }
            org.insert(obj, vals.clone(), None);
            let idx = org.table(obj).rows.len() - 1;
            let stamp = apply_row(org, obj, idx, vals, 0);
            Ok(MutationResult {
                ids: vec![id],
                stamp: Some(format_datetime(stamp)),
            })
        }
        Mutation::ChangeOwner {
            object,
            id,
            owner_id,
        } => {
            let obj = obj(&object)?;
            let owner =
                ids::canonical(&owner_id).ok_or_else(|| format!("'{owner_id}' is not an id"))?;
            if org.locate(&owner).is_none() {
                return Err(format!("owner {owner} does not exist"));
            }
            let (id, idx) = locate(org, obj, &id)?;
            let mut vals = org.table(obj).rows[idx].vals.clone();
            vals[obj.idx("OwnerId")] = Val::str(owner);
            let stamp = apply_row(org, obj, idx, vals, 0);
            Ok(MutationResult {
                ids: vec![id],
                stamp: Some(format_datetime(stamp)),
            })
        }
        Mutation::DeactivateUser { id } => set_active(org, &id, false),
        Mutation::ActivateUser { id } => set_active(org, &id, true),
        Mutation::Merge {
            object,
            master_id,
            loser_ids,
        } => {
            let obj = obj(&object)?;
            if !matches!(obj, ObjType::Lead | ObjType::Contact | ObjType::Account) {
                return Err("only Lead, Contact and Account records can be merged".into());
            }
            if loser_ids.is_empty() || loser_ids.len() > 2 {
                return Err("a merge takes a master and one or two losers".into());
            }
            let (master, _) = locate(org, obj, &master_id)?;
            let mut changed = vec![master.clone()];
            for loser in &loser_ids {
                let (loser, _) = locate(org, obj, loser)?;
                if loser == master {
                    return Err("a record cannot be merged into itself".into());
                }
                reparent(org, obj, &loser, &master, &mut changed);
                writes::soft_delete(org, obj, &loser, Some(&master)).map_err(|e| e.to_string())?;
                changed.push(loser);
            }
            let (_, midx) = locate(org, obj, &master)?;
            let vals = org.table(obj).rows[midx].vals.clone();
            let stamp = apply_row(org, obj, midx, vals, 0);
            Ok(MutationResult {
                ids: changed,
                stamp: Some(format_datetime(stamp)),
            })
        }
        Mutation::Delete { object, id } => {
            let obj = obj(&object)?;
            let (id, _) = locate(org, obj, &id)?;
            writes::soft_delete(org, obj, &id, None).map_err(|e| e.to_string())?;
            let stamp = stamp_of(org, obj, &id);
            Ok(MutationResult {
                ids: vec![id],
                stamp,
            })
        }
        Mutation::Undelete { object, id } => {
            let obj = obj(&object)?;
            let (id, _) = locate(org, obj, &id)?;
            writes::undelete(org, obj, &id).map_err(|e| e.to_string())?;
            let stamp = stamp_of(org, obj, &id);
            Ok(MutationResult {
                ids: vec![id],
                stamp,
            })
        }
        Mutation::Convert {
            lead_id,
            account_id,
            owner_id,
        } => convert(org, &lead_id, account_id, owner_id),
        Mutation::RandomEdits {
            object,
            count,
            seed,
        } => random_edits(org, obj(&object)?, count, seed),
        Mutation::PurgeDeleteLog { older_than_secs } => {
            let cutoff = chrono::Utc::now().timestamp() - older_than_secs as i64;
            let ids = org
                .delete_log
                .iter()
                .filter(|e| e.at_secs < cutoff)
                .map(|e| e.id.clone())
                .collect();
            org.delete_log.retain(|e| e.at_secs >= cutoff);
            org.purged_before = org.purged_before.max(cutoff);
            Ok(MutationResult { ids, stamp: None })
        }
        Mutation::BulkStamp { object, count } => {
            let obj = obj(&object)?;
            let deleted = obj.field_index("IsDeleted");
            let targets: Vec<usize> = (0..org.table(obj).rows.len())
                .rev()
                .filter(|i| deleted.is_none_or(|d| !org.table(obj).rows[*i].vals[d].as_bool()))
                .take(count)
                .collect();
            // All records in one transaction: one second for all of them.
            let now = chrono::Utc::now().timestamp();
            let mut ids = Vec::new();
            for idx in targets {
                let mut vals = org.table(obj).rows[idx].vals.clone();
                vals[obj.idx("SystemModstamp")] = Val::DateTime(now);
                if let Some(i) = obj.field_index("LastModifiedDate") {
                    vals[i] = Val::DateTime(now);
                }
                ids.push(vals[0].as_str().unwrap_or_default().to_owned());
                org.replace(obj, idx, vals, None);
                let id = ids.last().cloned().unwrap_or_default();
                org.notify(obj, &id);
            }
            Ok(MutationResult {
                ids,
                stamp: Some(format_datetime(now)),
            })
        }
    }
}

fn set_active(org: &mut Org, id: &str, active: bool) -> Result<MutationResult, String> {
    let u = ObjType::User;
    let (id, idx) = locate(org, u, id)?;
    let mut vals = org.table(u).rows[idx].vals.clone();
    vals[u.idx("IsActive")] = Val::Bool(active);
    let stamp = apply_row(org, u, idx, vals, 0);
    Ok(MutationResult {
        ids: vec![id],
        stamp: Some(format_datetime(stamp)),
    })
}

/// Points the loser's children at the master (their SystemModstamp moves).
fn reparent(org: &mut Org, obj: ObjType, loser: &str, master: &str, changed: &mut Vec<String>) {
    let links: &[(ObjType, &str)] = match obj {
        ObjType::Account => &[
            (ObjType::Contact, "AccountId"),
            (ObjType::Account, "ParentId"),
        ],
        _ => &[],
    };
    for (child, field) in links {
        let f = child.idx(field);
        let idxs: Vec<usize> = org
            .table(*child)
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.vals[f].as_str() == Some(loser))
            .map(|(i, _)| i)
            .collect();
        for idx in idxs {
            let mut vals = org.table(*child).rows[idx].vals.clone();
            vals[f] = Val::str(master);
            changed.push(vals[0].as_str().unwrap_or_default().to_owned());
            apply_row(org, *child, idx, vals, 0);
        }
    }
}

fn convert(
    org: &mut Org,
    lead_id: &str,
    account_id: Option<String>,
    owner_id: Option<String>,
) -> Result<MutationResult, String> {
    let l = ObjType::Lead;
    let (lead_id, lidx) = locate(org, l, lead_id)?;
    let lead = org.table(l).rows[lidx].vals.clone();
    if lead[l.idx("IsConverted")].as_bool() {
        return Err(format!("lead {lead_id} is already converted"));
    }
    if lead[l.idx("IsDeleted")].as_bool() {
        return Err(format!("lead {lead_id} is deleted"));
    }
    let lead_owner = lead[l.idx("OwnerId")]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // A queue cannot own the new account and contact: the converting user must pick one.
    let owner = match owner_id {
        Some(o) => ids::canonical(&o).ok_or_else(|| format!("'{o}' is not an id"))?,
        None if ids::prefix(&lead_owner) == "005" => lead_owner,
        None => {
            return Err("the lead is owned by a queue: give owner_id for the new records".into());
        }
    };
    let mut changed = Vec::new();
    let account = match account_id {
        Some(a) => locate(org, ObjType::Account, &a)?.0,
        None => {
            let a = ObjType::Account;
            let id = org.ids.next(a.key_prefix());
            let mut vals = blank(a, id.clone());
            vals[a.idx("Name")] = lead[l.idx("Company")].clone();
            vals[a.idx("Website")] = lead[l.idx("Website")].clone();
            vals[a.idx("BillingCountry")] = lead[l.idx("Country")].clone();
            vals[a.idx("BillingState")] = lead[l.idx("State")].clone();
            vals[a.idx("OwnerId")] = Val::str(owner.clone());
            vals[a.idx("CreatedDate")] = Val::DateTime(chrono::Utc::now().timestamp());
            org.insert(a, vals.clone(), None);
            let idx = org.table(a).rows.len() - 1;
            apply_row(org, a, idx, vals, 0);
            id
        }
    };
    changed.push(account.clone());
    let c = ObjType::Contact;
    let contact = org.ids.next(c.key_prefix());
    let mut vals = blank(c, contact.clone());
    vals[c.idx("AccountId")] = Val::str(account.clone());
    vals[c.idx("FirstName")] = lead[l.idx("FirstName")].clone();
    vals[c.idx("LastName")] = lead[l.idx("LastName")].clone();
    vals[c.idx("Email")] = lead[l.idx("Email")].clone();
    vals[c.idx("MailingCountry")] = lead[l.idx("Country")].clone();
    vals[c.idx("OwnerId")] = Val::str(owner);
    vals[c.idx("CreatedDate")] = Val::DateTime(chrono::Utc::now().timestamp());
    org.insert(c, vals.clone(), None);
    let idx = org.table(c).rows.len() - 1;
    apply_row(org, c, idx, vals, 0);
    changed.push(contact.clone());
    let mut lvals = lead;
    lvals[l.idx("IsConverted")] = Val::Bool(true);
    lvals[l.idx("Status")] = Val::str("Closed - Converted");
    lvals[l.idx("ConvertedAccountId")] = Val::str(account);
    lvals[l.idx("ConvertedContactId")] = Val::str(contact);
    lvals[l.idx("ConvertedDate")] = Val::Date(chrono::Utc::now().date_naive());
    let stamp = apply_row(org, l, lidx, lvals, 0);
    changed.insert(0, lead_id);
    Ok(MutationResult {
        ids: changed,
        stamp: Some(format_datetime(stamp)),
    })
}

fn random_edits(
    org: &mut Org,
    obj: ObjType,
    count: usize,
    seed: u64,
) -> Result<MutationResult, String> {
    if !obj.updateable() {
        return Err(format!(
            "random edits apply to Lead, Contact and Account, not {}",
            obj.name()
        ));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let deleted = obj.idx("IsDeleted");
    let live: Vec<usize> = org
        .table(obj)
        .rows
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.vals[deleted].as_bool())
        .filter(|(_, r)| obj != ObjType::Lead || !r.vals[obj.idx("IsConverted")].as_bool())
        .map(|(i, _)| i)
        .collect();
    if live.is_empty() {
        return Ok(MutationResult::default());
    }
    let users: Vec<String> = {
        let u = ObjType::User;
        org.table(u)
            .rows
            .iter()
            .filter(|r| r.vals[u.idx("IsActive")].as_bool())
            .map(|r| r.id().to_owned())
            .collect()
    };
    let countries = ["Germany", "France", "United States", "Japan", "Spain"];
    let mut ids = Vec::new();
    let mut stamp = 0;
    for _ in 0..count {
        let idx = live[rng.random_range(0..live.len())];
        let mut vals = org.table(obj).rows[idx].vals.clone();
        match rng.random_range(0..3) {
            0 if !users.is_empty() => {
                vals[obj.idx("OwnerId")] =
                    Val::str(users[rng.random_range(0..users.len())].clone());
            }
            1 => {
                let field = match obj {
                    ObjType::Lead => "Country",
                    ObjType::Contact => "MailingCountry",
                    _ => "BillingCountry",
                };
                vals[obj.idx(field)] = Val::str(countries[rng.random_range(0..countries.len())]);
            }
            _ => {
                let field = if obj == ObjType::Account {
                    "Name"
                } else {
                    "LastName"
                };
                let base = vals[obj.idx(field)].as_str().unwrap_or("Edited").to_owned();
                let base = base.split(" (ed").next().unwrap_or(&base).to_owned();
                vals[obj.idx(field)] = Val::str(format!("{base} (ed {})", rng.random_range(1..99)));
            }
        }
        ids.push(vals[0].as_str().unwrap_or_default().to_owned());
        stamp = apply_row(org, obj, idx, vals, 0);
    }
    Ok(MutationResult {
        ids,
        stamp: Some(format_datetime(stamp)),
    })
}

/// `/__sim/{stats,state,write-log,faults,mutate,reset}`
pub(crate) fn handle(shared: &Shared, method: &Method, rest: &str, body: &[u8]) -> Resp {
    if let Some(resp) = super::form_fills::handle(shared, method, rest, body) {
        return resp;
    }
    match (method, rest.trim_end_matches('/')) {
        (&Method::GET, "stats") => Resp::ok(json!(shared.stats())),
        (&Method::GET, "state") => Resp::ok(json!(state::snapshot(&shared.org.lock()))),
        (&Method::GET, "write-log") => Resp::ok(json!(shared.org.lock().write_log)),
        (&Method::POST, "faults") => match serde_json::from_slice::<FaultScript>(body) {
            Ok(script) => {
                shared.set_faults(script);
                Resp::empty(StatusCode::NO_CONTENT)
            }
            Err(err) => Resp::json(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("fault script: {err}")}),
            ),
        },
        (&Method::POST, "mutate") => match serde_json::from_slice::<Mutation>(body) {
            Ok(m) => match mutate(shared, m) {
                Ok(result) => Resp::ok(json!(result)),
                Err(err) => Resp::json(StatusCode::BAD_REQUEST, json!({"error": err})),
            },
            Err(err) => Resp::json(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("mutation: {err}")}),
            ),
        },
        (&Method::POST, "reset") => {
            shared.reset();
            Resp::empty(StatusCode::NO_CONTENT)
        }
        _ => Resp::json(
            StatusCode::NOT_FOUND,
            json!({"error": "unknown control endpoint; use GET stats|state|write-log, POST faults|mutate|reset"}),
        ),
    }
}
