//! The org's data: one table per object, the recycle-bin delete log, the write log, the
//! pending outbound notifications, and an undo journal so `allOrNone` requests and
//! `/composite` can roll back everything they did.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::ids::{self, IdAllocator};
use super::schema::{ObjType, Val};

/// A stored row. `shadow` holds the previous version while a late-visible commit is
/// still "in flight": queries before `visible_at_ms` see the old version (or nothing
/// for a create), exactly like a slow transaction in a real org.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) vals: Vec<Val>,
    pub(crate) shadow: Option<Box<Shadow>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Shadow {
    pub(crate) visible_at_ms: i64,
    pub(crate) old: Option<Vec<Val>>,
}

impl Row {
    pub(crate) fn new(vals: Vec<Val>) -> Self {
        Self { vals, shadow: None }
    }

    /// The version a query running at `now_ms` sees.
    pub(crate) fn visible(&self, now_ms: i64) -> Option<&[Val]> {
        match &self.shadow {
            Some(shadow) if now_ms < shadow.visible_at_ms => shadow.old.as_deref(),
            _ => Some(&self.vals),
        }
    }

    pub(crate) fn id(&self) -> &str {
        self.vals[0].as_str().unwrap_or("")
    }
}

/// One object's rows in insertion order, with an index by 18-character id.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    pub(crate) rows: Vec<Row>,
    pub(crate) by_id: HashMap<String, usize>,
    /// (committed `SystemModstamp`, row): the index incremental queries and getUpdated
    /// range over. A late-visible row's visible version is never newer than its
    /// committed one, so a lower bound on this index never misses a row.
    pub(crate) by_stamp: BTreeSet<(i64, usize)>,
}

impl Table {
    fn stamp(obj: ObjType, vals: &[Val]) -> i64 {
        match vals[obj.idx("SystemModstamp")] {
            Val::DateTime(s) => s,
            _ => i64::MIN,
        }
    }

    fn index_row(&mut self, obj: ObjType, idx: usize) {
        let stamp = Self::stamp(obj, &self.rows[idx].vals);
        self.by_stamp.insert((stamp, idx));
    }

    fn unindex_row(&mut self, obj: ObjType, idx: usize) {
        let stamp = Self::stamp(obj, &self.rows[idx].vals);
        self.by_stamp.remove(&(stamp, idx));
    }

    /// Rows whose committed stamp is at least `from` (epoch seconds), in stamp order.
    pub(crate) fn rows_stamped_from(&self, from: i64) -> impl Iterator<Item = usize> + '_ {
        self.by_stamp.range((from, 0)..).map(|(_, idx)| *idx)
    }
}

/// A recycle-bin / delete-log entry (getDeleted reads these).
#[derive(Debug, Clone)]
pub(crate) struct DeleteEntry {
    pub(crate) obj: ObjType,
    pub(crate) id: String,
    pub(crate) at_secs: i64,
}

/// One field written through the API (or rewritten by the assignment rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteLogEntry {
    /// When the write was stamped (`SystemModstamp`).
    pub at: String,
    pub object: String,
    pub id: String,
    pub field: String,
    pub old: serde_json::Value,
    pub new: serde_json::Value,
    /// `rest`, `collections`, `composite`, `composite_batch`, `bulk2`, or
    /// `assignment_rule` when the org's rule overwrote what the client sent.
    pub source: String,
}

/// A change an outbound message will announce.
#[derive(Debug, Clone)]
pub(crate) struct OutboundNote {
    pub(crate) obj: ObjType,
    pub(crate) id: String,
}

#[derive(Debug)]
enum UndoOp {
    Row { obj: ObjType, idx: usize, old: Row },
    Created { obj: ObjType, id: String },
}

/// A point `rollback_to` returns to. Savepoints nest: `/composite` with allOrNone may
/// contain a collections request with allOrNone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Savepoint {
    ops_len: usize,
    write_log_len: usize,
    delete_log_len: usize,
    outbound_len: usize,
    api_writes: u64,
}

/// The whole org.
#[derive(Debug)]
pub(crate) struct Org {
    pub(crate) org_id: String,
    pub(crate) tables: Vec<Table>,
    pub(crate) ids: IdAllocator,
    pub(crate) delete_log: Vec<DeleteEntry>,
    pub(crate) write_log: Vec<WriteLogEntry>,
    pub(crate) outbound: Vec<OutboundNote>,
    /// Round-robin positions of the lead assignment rule, per country.
    pub(crate) round_robin: HashMap<String, usize>,
    /// The integration user every API session runs as.
    pub(crate) api_user_id: String,
    /// Records changed through the API (undone with their savepoint).
    pub(crate) api_writes: u64,
    /// Delete-log entries before this (epoch seconds) have been purged.
    pub(crate) purged_before: i64,
    undo: Vec<UndoOp>,
    depth: usize,
}

impl Org {
    pub(crate) fn new(org_id: String) -> Self {
        Self {
            org_id,
            tables: ObjType::ALL.iter().map(|_| Table::default()).collect(),
            ids: IdAllocator::new("8d"),
            delete_log: Vec::new(),
            write_log: Vec::new(),
            outbound: Vec::new(),
            round_robin: HashMap::new(),
            api_user_id: String::new(),
            api_writes: 0,
            purged_before: i64::MIN,
            undo: Vec::new(),
            depth: 0,
        }
    }

    pub(crate) fn table(&self, obj: ObjType) -> &Table {
        &self.tables[obj.index()]
    }

    /// Row index of an 18-character id in its table.
    pub(crate) fn locate(&self, id18: &str) -> Option<(ObjType, usize)> {
        let obj = ObjType::from_prefix(ids::prefix(id18))?;
        let idx = *self.table(obj).by_id.get(id18)?;
        Some((obj, idx))
    }

    pub(crate) fn row(&self, obj: ObjType, id18: &str) -> Option<&Row> {
        let idx = *self.table(obj).by_id.get(id18)?;
        Some(&self.table(obj).rows[idx])
    }

    pub(crate) fn get(&self, obj: ObjType, id18: &str, field: &str) -> Option<&Val> {
        self.row(obj, id18).map(|row| &row.vals[obj.idx(field)])
    }

    /// Appends a new row (its id must be in `vals[0]`).
    pub(crate) fn insert(&mut self, obj: ObjType, vals: Vec<Val>, late_until_ms: Option<i64>) {
        let id = vals[0].as_str().unwrap_or_default().to_owned();
        let table = &mut self.tables[obj.index()];
        table.by_id.insert(id.clone(), table.rows.len());
        let mut row = Row::new(vals);
        if let Some(visible_at_ms) = late_until_ms {
            row.shadow = Some(Box::new(Shadow {
                visible_at_ms,
                old: None,
            }));
        }
        table.rows.push(row);
        let idx = table.rows.len() - 1;
        table.index_row(obj, idx);
        if self.depth > 0 {
            self.undo.push(UndoOp::Created { obj, id });
        }
    }

    /// Replaces a row's values, journaling the old row and keeping the old version
    /// visible until `late_until_ms` when a late commit is simulated.
    pub(crate) fn replace(
        &mut self,
        obj: ObjType,
        idx: usize,
        vals: Vec<Val>,
        late_until_ms: Option<i64>,
    ) {
        let table = &mut self.tables[obj.index()];
        table.unindex_row(obj, idx);
        let row = &mut table.rows[idx];
        if self.depth > 0 {
            self.undo.push(UndoOp::Row {
                obj,
                idx,
                old: row.clone(),
            });
        }
        let previous = std::mem::replace(&mut row.vals, vals);
        row.shadow = late_until_ms.map(|visible_at_ms| {
            // A second late write keeps showing the oldest committed version.
            let old = match row.shadow.take() {
                Some(shadow) => shadow.old,
                None => Some(previous),
            };
            Box::new(Shadow { visible_at_ms, old })
        });
        table.index_row(obj, idx);
    }

    pub(crate) fn log_write(&mut self, entry: WriteLogEntry) {
        self.write_log.push(entry);
    }

    pub(crate) fn log_delete(&mut self, obj: ObjType, id: String, at_secs: i64) {
        self.delete_log.push(DeleteEntry { obj, id, at_secs });
    }

    pub(crate) fn notify(&mut self, obj: ObjType, id: &str) {
        if matches!(obj, ObjType::Lead | ObjType::Contact | ObjType::Account) {
            self.outbound.push(OutboundNote {
                obj,
                id: id.to_owned(),
            });
        }
    }

    /// Starts journaling so `rollback_to` can undo everything after this point.
    pub(crate) fn begin(&mut self) -> Savepoint {
        self.depth += 1;
        Savepoint {
            ops_len: self.undo.len(),
            write_log_len: self.write_log.len(),
            delete_log_len: self.delete_log.len(),
            outbound_len: self.outbound.len(),
            api_writes: self.api_writes,
        }
    }

    /// Keeps the work since `begin`; the journal is dropped once no savepoint is open.
    pub(crate) fn commit(&mut self, _savepoint: Savepoint) {
        self.depth = self.depth.saturating_sub(1);
        if self.depth == 0 {
            self.undo.clear();
        }
    }

    /// Undoes everything since `savepoint` and closes it.
    pub(crate) fn rollback_to(&mut self, savepoint: Savepoint) {
        while self.undo.len() > savepoint.ops_len {
            let Some(op) = self.undo.pop() else { break };
            match op {
                UndoOp::Row { obj, idx, old } => {
                    let table = &mut self.tables[obj.index()];
                    table.unindex_row(obj, idx);
                    table.rows[idx] = old;
                    table.index_row(obj, idx);
                }
                UndoOp::Created { obj, id } => {
                    let table = &mut self.tables[obj.index()];
                    // Creates are appended and undone newest first, so this is the tail.
                    if let Some(idx) = table.by_id.remove(&id) {
                        for gone in idx..table.rows.len() {
                            table.unindex_row(obj, gone);
                        }
                        table.rows.truncate(idx);
                    }
                }
            }
        }
        self.write_log.truncate(savepoint.write_log_len);
        self.delete_log.truncate(savepoint.delete_log_len);
        self.outbound.truncate(savepoint.outbound_len);
        self.api_writes = savepoint.api_writes;
        self.commit(savepoint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::generator::blank;

    fn lead(org: &mut Org, stamp: i64) -> String {
        let id = org.ids.next("00Q");
        let mut vals = blank(ObjType::Lead, id.clone());
        vals[ObjType::Lead.idx("SystemModstamp")] = Val::DateTime(stamp);
        org.insert(ObjType::Lead, vals, None);
        id
    }

    fn indexed(org: &Org) -> Vec<(i64, usize)> {
        org.table(ObjType::Lead).by_stamp.iter().copied().collect()
    }

    #[test]
    fn the_stamp_index_follows_writes_and_rollbacks() {
        let mut org = Org::new("00D8d000000Sim0EAC".into());
        lead(&mut org, 10);
        lead(&mut org, 20);
        assert_eq!(indexed(&org), vec![(10, 0), (20, 1)]);
        let savepoint = org.begin();
        let mut vals = org.table(ObjType::Lead).rows[0].vals.clone();
        vals[ObjType::Lead.idx("SystemModstamp")] = Val::DateTime(30);
        org.replace(ObjType::Lead, 0, vals, None);
        lead(&mut org, 40);
        assert_eq!(indexed(&org), vec![(20, 1), (30, 0), (40, 2)]);
        assert_eq!(
            org.table(ObjType::Lead)
                .rows_stamped_from(25)
                .collect::<Vec<_>>(),
            vec![0, 2]
        );
        org.rollback_to(savepoint);
        assert_eq!(indexed(&org), vec![(10, 0), (20, 1)]);
        assert_eq!(org.table(ObjType::Lead).rows.len(), 2);
    }
}
