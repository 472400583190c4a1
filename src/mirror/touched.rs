//! What a stored page or refetch touched: its keys (what the sidecar re-decides) and
//! the records themselves (what the sidecar's warm mirror applies, so a micro-batch
//! reads nothing from the store).

use std::sync::Arc;

use tokio::time::Instant;

use leadroute_crm::{Change, ObjectKind, OwnerId, Record, RecordId};

/// Keys of records the mirror just stored (upserted, deleted or merged). A superset of
/// what changed: a repeated page (overlap window) reports its records again.
#[derive(Debug, Clone)]
pub struct Touched {
    pub people: Vec<(ObjectKind, RecordId)>,
    pub accounts: Vec<RecordId>,
    pub owners: Vec<OwnerId>,
    /// When leadroute stored them: the start of speed-to-lead.
    pub seen: Instant,
    /// The changes as stored (shared, not copied, between receivers).
    pub changes: Arc<[Change]>,
    /// The page belongs to a full pass of this object (its records overwrite).
    pub full: Option<ObjectKind>,
    /// The page completed a full pass, whose sweep removed records it did not list
    /// (not named here): a warm copy must reload.
    pub swept: bool,
}

impl Touched {
    pub fn from_changes(changes: &[Change]) -> Touched {
        let mut touched = Touched {
            people: Vec::new(),
            accounts: Vec::new(),
            owners: Vec::new(),
            seen: Instant::now(),
            changes: Arc::from(changes),
            full: None,
            swept: false,
        };
        for change in changes {
            match change {
                Change::Upsert(Record::Owner(owner)) => touched.owners.push(owner.id.clone()),
                Change::Upsert(Record::Account(account)) => {
                    touched.accounts.push(account.id.clone());
                }
                Change::Upsert(Record::Person(person)) => {
                    touched.people.push((person.object, person.id.clone()));
                }
                // Activities do not change routing decisions; the SLA engine reads
                // them from the store (`Store::activities_changed`).
                Change::Upsert(Record::Activity(_)) => {}
                Change::Deleted { object, id, .. } => touched.add(*object, id),
                Change::Merged {
                    object,
                    loser,
                    winner,
                    ..
                } => {
                    touched.add(*object, loser);
                    touched.add(*object, winner);
                }
            }
        }
        touched
    }

    fn add(&mut self, object: ObjectKind, id: &RecordId) {
        match object {
            ObjectKind::Owner => self.owners.push(OwnerId::new(id.as_str())),
            ObjectKind::Account => self.accounts.push(id.clone()),
            ObjectKind::Contact | ObjectKind::Lead => self.people.push((object, id.clone())),
            ObjectKind::Activity => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletions_and_merges_report_every_id_they_name() {
        let changes = vec![
            Change::Deleted {
                object: ObjectKind::Contact,
                id: RecordId::new("1"),
                at: None,
                purge: false,
            },
            Change::Merged {
                object: ObjectKind::Account,
                loser: RecordId::new("2"),
                winner: RecordId::new("3"),
                at: None,
            },
        ];
        let touched = Touched::from_changes(&changes);
        assert_eq!(
            touched.people,
            vec![(ObjectKind::Contact, RecordId::new("1"))]
        );
        assert_eq!(
            touched.accounts,
            vec![RecordId::new("2"), RecordId::new("3")]
        );
        assert!(touched.owners.is_empty());
    }
}
