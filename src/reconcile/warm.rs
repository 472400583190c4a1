//! The warm mirror: the sidecar's in-memory copy of an org's people, accounts and
//! owners, held by key and fed by the records the mirror stores, with the indexes an
//! incremental re-plan needs (people by linked account, by email registrable domain, and
//! records owned per owner). Pure: loaded once from a [`Snapshot`], then patched with
//! [`Change`]s by the same rules the store applies them.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use chrono::{DateTime, Utc};

use super::Key;
use crate::domain::{
    AccountRecord, CrmKind, ObjectKind, OwnerId, OwnerRecord, PersonRecord, RecordId, Snapshot,
};
use leadroute_crm::{Change, Record};

/// Accounts in id order (the store's snapshot order, which the matcher sees) with the
/// position of each id.
#[derive(Debug, Clone, Default)]
pub(crate) struct Accounts {
    pub(crate) list: Vec<AccountRecord>,
    pub(crate) at: HashMap<RecordId, usize>,
}

impl Accounts {
    fn new(list: Vec<AccountRecord>) -> Self {
        let mut at = HashMap::with_capacity_and_hasher(list.len(), Default::default());
        for (i, a) in list.iter().enumerate() {
            // A duplicate id keeps its first record, as the matcher does.
            at.entry(a.id.clone()).or_insert(i);
        }
        Accounts { list, at }
    }

    fn get(&self, id: &RecordId) -> Option<&AccountRecord> {
        self.at.get(id).and_then(|&i| self.list.get(i))
    }

    fn upsert(&mut self, account: AccountRecord) {
        if let Some(&i) = self.at.get(&account.id) {
            self.list[i] = account;
            return;
        }
        let pos = self.list.partition_point(|a| a.id < account.id);
        self.list.insert(pos, account);
        self.reindex(pos);
    }

    fn remove(&mut self, id: &RecordId) {
        if let Some(i) = self.at.remove(id) {
            self.list.remove(i);
            self.reindex(i);
        }
    }

    fn reindex(&mut self, from: usize) {
        for (i, a) in self.list.iter().enumerate().skip(from) {
            self.at.insert(a.id.clone(), i);
        }
    }
}

/// Why a record left: a deletion may be undone by a newer version; a merge or purge
/// only by a full pass.
#[derive(Debug, Clone, Copy)]
enum Stone {
    Deleted(DateTime<Utc>),
    Final,
}

/// An org's mirror in memory, by key. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Warm {
    pub crm: Option<CrmKind>,
    pub(crate) people: HashMap<Key, PersonRecord>,
    pub(crate) accounts: Accounts,
    pub(crate) owners: Vec<OwnerRecord>,
    /// People by the accounts their record links them to.
    linked: HashMap<RecordId, HashSet<Key>>,
    /// People by their email's registrable domain.
    by_domain: HashMap<String, HashSet<Key>>,
    /// Records owned per owner (converted leads excluded): the routing engine's load.
    pub(crate) load: HashMap<OwnerId, u64>,
    /// Records removed since the load, so a stale read does not bring them back.
    stones: HashMap<Key, Stone>,
}

/// How a batch of changes is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// Newer wins; removed records stay removed.
    Incremental,
    /// A page of a full pass of this object: its records overwrite what is held and
    /// come back from a removal (the CRM's listing is its current state).
    Full(ObjectKind),
}

fn email_domain(p: &PersonRecord) -> Option<String> {
    p.email
        .as_deref()
        .and_then(crate::matcher::domain::email_host)
        .map(|h| h.registrable)
}

impl Warm {
    /// The mirror as the store holds it.
    pub fn from_snapshot(snapshot: Snapshot) -> Warm {
        let mut warm = Warm {
            crm: snapshot.crm,
            people: HashMap::with_capacity_and_hasher(snapshot.people.len(), Default::default()),
            accounts: Accounts::new(snapshot.accounts),
            owners: snapshot.owners,
            ..Warm::default()
        };
        for p in snapshot.people {
            let key = (p.object, p.id.clone());
            warm.index(&key, &p);
            warm.people.insert(key, p);
        }
        warm
    }

    /// How many people (contacts and leads) are held.
    pub fn people_len(&self) -> usize {
        self.people.len()
    }

    pub fn person(&self, key: &Key) -> Option<&PersonRecord> {
        self.people.get(key)
    }

    pub fn account(&self, id: &RecordId) -> Option<&AccountRecord> {
        self.accounts.get(id)
    }

    /// People linked to `account` by their record.
    pub(crate) fn linked_to(&self, account: &RecordId) -> impl Iterator<Item = &Key> {
        self.linked.get(account).into_iter().flatten()
    }

    /// People whose email is at `registrable` (a registrable domain).
    pub(crate) fn at_domain(&self, registrable: &str) -> impl Iterator<Item = &Key> {
        self.by_domain.get(registrable).into_iter().flatten()
    }

    /// Applies changes the store has just stored, by the store's rules: an older version
    /// never overwrites a newer one, a deletion older than the held record is ignored,
    /// removed records stay removed (a deletion until a newer version), a record's
    /// account links are kept when it does not list them, and `owner_assigned_at` is
    /// stamped as `Store::apply_changes` stamps it.
    /// `now` dates a deletion that carries no time (the store dates its tombstone so).
    pub fn apply(&mut self, changes: &[Change], mode: ApplyMode, now: DateTime<Utc>) {
        for change in changes {
            match change {
                Change::Upsert(Record::Person(p)) => {
                    let overwrite = mode == ApplyMode::Full(p.object);
                    self.upsert_person(p, overwrite);
                }
                Change::Upsert(Record::Account(a)) => {
                    let overwrite = matches!(mode, ApplyMode::Full(_));
                    self.upsert_account(a, overwrite);
                }
                Change::Upsert(Record::Owner(o)) => {
                    let overwrite = matches!(mode, ApplyMode::Full(_));
                    self.upsert_owner(o, overwrite);
                }
                // Activities do not route (the SLA engine reads them from the store).
                Change::Upsert(Record::Activity(_)) => {}
                Change::Deleted {
                    object,
                    id,
                    at,
                    purge,
                } => {
                    let stone = match (purge, at) {
                        (false, Some(at)) => {
                            if self.updated_at(*object, id).is_some_and(|u| u > *at) {
                                // Restored and updated since: the deletion is stale.
                                continue;
                            }
                            Stone::Deleted(*at)
                        }
                        (false, None) => Stone::Deleted(now),
                        (true, _) => Stone::Final,
                    };
                    self.remove(*object, id, stone);
                }
                Change::Merged { object, loser, .. } => self.remove(*object, loser, Stone::Final),
            }
        }
    }

    fn updated_at(&self, object: ObjectKind, id: &RecordId) -> Option<DateTime<Utc>> {
        match object {
            ObjectKind::Contact | ObjectKind::Lead => {
                self.people.get(&(object, id.clone())).map(|p| p.updated_at)
            }
            ObjectKind::Account => self.accounts.get(id).map(|a| a.updated_at),
            ObjectKind::Owner | ObjectKind::Activity => None,
        }
    }

    /// Whether a record of this stamp may be held: not removed, or restored.
    fn admit(&mut self, key: &Key, updated_at: Option<DateTime<Utc>>, overwrite: bool) -> bool {
        match self.stones.get(key) {
            None => true,
            Some(stone) => {
                let restored = overwrite
                    || matches!(stone, Stone::Deleted(at)
                        if updated_at.is_none_or(|u| u > *at));
                if restored {
                    self.stones.remove(key);
                }
                restored
            }
        }
    }

    fn upsert_person(&mut self, p: &PersonRecord, overwrite: bool) {
        let key = (p.object, p.id.clone());
        if !self.admit(&key, Some(p.updated_at), overwrite) {
            return;
        }
        let mut new = p.clone();
        new.raw = serde_json::Value::Null;
        match self.people.remove(&key) {
            Some(old) => {
                if !overwrite && new.updated_at < old.updated_at {
                    self.people.insert(key, old);
                    return;
                }
                if new.owner_assigned_at.is_none() && new.owner_id.is_some() {
                    new.owner_assigned_at = if old.owner_id == new.owner_id {
                        old.owner_assigned_at
                    } else {
                        Some(new.updated_at)
                    };
                }
                if new.accounts.is_none() {
                    new.accounts = old.accounts.clone();
                }
                self.unindex(&key, &old);
            }
            None => {
                if new.accounts.is_none() {
                    new.accounts = Some(Vec::new());
                }
            }
        }
        self.index(&key, &new);
        self.people.insert(key, new);
    }

    fn upsert_account(&mut self, a: &AccountRecord, overwrite: bool) {
        let key = (ObjectKind::Account, a.id.clone());
        if !self.admit(&key, Some(a.updated_at), overwrite) {
            return;
        }
        if !overwrite
            && self
                .accounts
                .get(&a.id)
                .is_some_and(|old| a.updated_at < old.updated_at)
        {
            return;
        }
        let mut new = a.clone();
        new.raw = serde_json::Value::Null;
        self.accounts.upsert(new);
    }

    fn upsert_owner(&mut self, o: &OwnerRecord, overwrite: bool) {
        let key = (ObjectKind::Owner, RecordId::new(o.id.as_str()));
        if !self.admit(&key, o.updated_at, overwrite) {
            return;
        }
        match self.owners.iter_mut().find(|held| held.id == o.id) {
            Some(held) => {
                let older =
                    matches!((o.updated_at, held.updated_at), (Some(new), Some(old)) if new < old);
                if overwrite || !older {
                    *held = o.clone();
                }
            }
            None => {
                let pos = self.owners.partition_point(|held| held.id < o.id);
                self.owners.insert(pos, o.clone());
            }
        }
    }

    fn remove(&mut self, object: ObjectKind, id: &RecordId, stone: Stone) {
        let key = (object, id.clone());
        match object {
            ObjectKind::Contact | ObjectKind::Lead => {
                if let Some(old) = self.people.remove(&key) {
                    self.unindex(&key, &old);
                }
            }
            ObjectKind::Account => {
                self.accounts.remove(id);
                // The store drops every link to a removed account.
                if let Some(people) = self.linked.remove(id) {
                    for k in people {
                        if let Some(p) = self.people.get_mut(&k)
                            && let Some(links) = p.accounts.as_mut()
                        {
                            links.retain(|l| &l.account_id != id);
                        }
                    }
                }
            }
            ObjectKind::Owner => self.owners.retain(|o| o.id.as_str() != id.as_str()),
            // Not kept here: nothing to remove, and no tombstone to keep.
            ObjectKind::Activity => return,
        }
        self.stones.insert(key, stone);
    }

    fn index(&mut self, key: &Key, p: &PersonRecord) {
        for link in p.accounts.iter().flatten() {
            self.linked
                .entry(link.account_id.clone())
                .or_default()
                .insert(key.clone());
        }
        if let Some(d) = email_domain(p) {
            self.by_domain.entry(d).or_default().insert(key.clone());
        }
        if !p.converted
            && let Some(o) = &p.owner_id
        {
            match self.load.get_mut(o) {
                Some(n) => *n += 1,
                None => {
                    self.load.insert(o.clone(), 1);
                }
            }
        }
    }

    fn unindex(&mut self, key: &Key, p: &PersonRecord) {
        for link in p.accounts.iter().flatten() {
            if let Some(set) = self.linked.get_mut(&link.account_id) {
                set.remove(key);
                if set.is_empty() {
                    self.linked.remove(&link.account_id);
                }
            }
        }
        if let Some(d) = email_domain(p)
            && let Some(set) = self.by_domain.get_mut(&d)
        {
            set.remove(key);
            if set.is_empty() {
                self.by_domain.remove(&d);
            }
        }
        if !p.converted
            && let Some(o) = &p.owner_id
            && let Some(n) = self.load.get_mut(o)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.load.remove(o);
            }
        }
    }

    /// The held mirror as a snapshot (tests: compare with a fresh load).
    pub fn to_snapshot(&self) -> Snapshot {
        let mut people: Vec<PersonRecord> = self.people.values().cloned().collect();
        people.sort_by(|a, b| (a.object, &a.id).cmp(&(b.object, &b.id)));
        Snapshot {
            crm: self.crm,
            owners: self.owners.clone(),
            accounts: self.accounts.list.clone(),
            people,
        }
    }
}
