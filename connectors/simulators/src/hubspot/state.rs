//! The simulated portal's records: contacts, companies, owners and the
//! contact↔company associations, with the indexes that keep list pages and
//! search O(page) instead of O(portal): records in a `BTreeMap` by numeric id
//! and live records in a `(last modified, id)` set. Every change goes through
//! the methods here so stamps, indexes and webhook events stay consistent.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::clock::iso;
use super::schema::ObjectType;

/// One contact or company as the simulator holds it.
///
/// `properties` holds exactly what a read would serve, stamps included
/// (`createdate`, the last-modified property, `hs_object_id`); a cleared value
/// is `""`, an unset one is absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimRecord {
    /// Numeric record id (served as a string).
    pub id: u64,
    /// Property values, all strings.
    pub properties: BTreeMap<String, String>,
    /// `createdAt` in epoch ms.
    pub created_at_ms: i64,
    /// `updatedAt` (= last-modified property) in epoch ms.
    pub updated_at_ms: i64,
    /// Archived ("deleted" in the UI).
    pub archived: bool,
    /// When it was archived.
    pub archived_at_ms: Option<i64>,
}

/// A team an owner belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimTeam {
    /// Team id (string, like HubSpot's).
    pub id: String,
    /// Team name.
    pub name: String,
    /// Whether this is the owner's primary team.
    pub primary: bool,
}

/// An owner (derived from a HubSpot user).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimOwner {
    /// Owner id: the value that goes into `hubspot_owner_id`.
    pub id: u64,
    /// User id: a different number, for the settings/users APIs.
    pub user_id: u64,
    /// Login email.
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// `PERSON` or `QUEUE`.
    pub owner_type: String,
    /// Deactivated user.
    pub archived: bool,
    /// Created, epoch ms.
    pub created_at_ms: i64,
    /// Updated, epoch ms.
    pub updated_at_ms: i64,
    /// Teams, one primary (empty when the portal has none for this owner).
    pub teams: Vec<SimTeam>,
    /// IANA time zone of the rep. HubSpot's owners API does NOT carry a time
    /// zone (it lives in the user's personal settings, which no public API
    /// serves), so the simulator never puts it on the wire: it is ground truth
    /// for tests and policies that route by working hours only.
    pub time_zone: String,
}

/// One contact→company link; every link is "unlabeled" (279), and at most one
/// per contact is also "primary" (1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimAssociation {
    /// Contact id.
    pub contact_id: u64,
    /// Company id.
    pub company_id: u64,
    /// Also carries the primary label.
    pub primary: bool,
}

/// Deep copy of everything the simulator holds (live and archived).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubSpotState {
    /// Hub id.
    pub portal_id: u64,
    /// All contacts in id order, archived included.
    pub contacts: Vec<SimRecord>,
    /// All companies in id order, archived included.
    pub companies: Vec<SimRecord>,
    /// All owners in id order, archived included.
    pub owners: Vec<SimOwner>,
    /// Contact→company links in (contact, company) order; links touching an
    /// archived record are kept here but not served.
    pub associations: Vec<SimAssociation>,
    /// Merged-away contact ids → the id they now resolve to.
    pub merged_contacts: BTreeMap<u64, u64>,
    /// Merged-away company ids → the id they now resolve to.
    pub merged_companies: BTreeMap<u64, u64>,
}

/// Who made a change, for webhook `changeSource`/`sourceId`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    /// A call through the public API by the app.
    Api,
    /// A person in the UI.
    Ui { user_id: u64 },
    /// A spreadsheet import.
    Import,
    /// A visitor submitting a HubSpot form (the form-fill streams).
    Form,
}

/// A change, as webhook subscriptions see it.
#[derive(Debug, Clone)]
pub(crate) enum ChangeEvent {
    Creation {
        object: ObjectType,
        id: u64,
    },
    Deletion {
        object: ObjectType,
        id: u64,
    },
    Restore {
        object: ObjectType,
        id: u64,
    },
    PropertyChange {
        object: ObjectType,
        id: u64,
        name: String,
        value: String,
    },
    Merge {
        object: ObjectType,
        primary: u64,
        merged: u64,
        new_id: u64,
        moved: usize,
    },
    AssociationChange {
        contact: u64,
        company: u64,
        removed: bool,
        primary: bool,
    },
}

/// A change plus when and by whom.
#[derive(Debug, Clone)]
pub(crate) struct StampedEvent {
    pub(crate) at_ms: i64,
    pub(crate) source: Source,
    pub(crate) event: ChangeEvent,
}

/// Records of one object type with their indexes.
#[derive(Debug, Default, Clone)]
pub(crate) struct ObjectTable {
    pub(crate) records: BTreeMap<u64, SimRecord>,
    /// Live (not archived) records by (last modified ms, id): search order.
    pub(crate) by_modified: BTreeSet<(i64, u64)>,
    /// Merged-away id → the id that absorbed it (may itself be merged later).
    pub(crate) redirects: HashMap<u64, u64>,
    /// Live contacts by lower-cased email (for `idProperty=email`).
    pub(crate) by_email: HashMap<String, u64>,
    pub(crate) next_id: u64,
}

impl ObjectTable {
    /// Follows merge redirects to the record an id now means.
    pub(crate) fn resolve(&self, id: u64) -> Option<u64> {
        let mut current = id;
        // Redirect chains are acyclic (new ids are always fresh); the bound
        // only guards against a corrupted table.
        for _ in 0..300 {
            if self.records.contains_key(&current) {
                return Some(current);
            }
            current = *self.redirects.get(&current)?;
        }
        None
    }

    /// A live record by id, following merges.
    pub(crate) fn live(&self, id: u64) -> Option<&SimRecord> {
        let id = self.resolve(id)?;
        self.records.get(&id).filter(|r| !r.archived)
    }

    pub(crate) fn is_live(&self, id: u64) -> bool {
        self.records.get(&id).is_some_and(|r| !r.archived)
    }

    /// Inserts a new record, keeping indexes in step.
    pub(crate) fn insert(&mut self, record: SimRecord) {
        if !record.archived {
            self.by_modified.insert((record.updated_at_ms, record.id));
            if let Some(email) = record.properties.get("email").filter(|e| !e.is_empty()) {
                self.by_email.insert(email.to_ascii_lowercase(), record.id);
            }
        }
        self.next_id = self.next_id.max(record.id + 1);
        self.records.insert(record.id, record);
    }

    /// Removes a record entirely (merge), returning it.
    fn take(&mut self, id: u64) -> Option<SimRecord> {
        let record = self.records.remove(&id)?;
        self.by_modified.remove(&(record.updated_at_ms, id));
        if let Some(email) = record.properties.get("email") {
            let key = email.to_ascii_lowercase();
            if self.by_email.get(&key) == Some(&id) {
                self.by_email.remove(&key);
            }
        }
        Some(record)
    }

    /// Moves a record's modification stamp, keeping the search index in step.
    pub(crate) fn stamp(&mut self, object: ObjectType, id: u64, at_ms: i64) {
        let Some(record) = self.records.get_mut(&id) else {
            return;
        };
        if !record.archived {
            self.by_modified.remove(&(record.updated_at_ms, id));
            self.by_modified.insert((at_ms, id));
        }
        record.updated_at_ms = at_ms;
        record
            .properties
            .insert(object.last_modified_property().to_owned(), iso(at_ms));
    }
}

/// The whole portal.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub(crate) portal_id: u64,
    pub(crate) contacts: ObjectTable,
    pub(crate) companies: ObjectTable,
    pub(crate) owners: BTreeMap<u64, SimOwner>,
    /// contact → (company → primary)
    pub(crate) assoc: BTreeMap<u64, BTreeMap<u64, bool>>,
    /// company → contacts
    pub(crate) rev: BTreeMap<u64, BTreeSet<u64>>,
    /// Events not yet handed to the webhook dispatcher.
    pub(crate) pending_events: Vec<StampedEvent>,
    /// Calls, emails, meetings, notes and tasks (`engagements.rs`).
    pub(crate) engagements: super::engagements::EngagementTable,
}

impl Store {
    pub(crate) fn new(portal_id: u64) -> Store {
        Store {
            portal_id,
            contacts: ObjectTable {
                next_id: 1,
                ..ObjectTable::default()
            },
            companies: ObjectTable {
                next_id: 1,
                ..ObjectTable::default()
            },
            owners: BTreeMap::new(),
            assoc: BTreeMap::new(),
            rev: BTreeMap::new(),
            pending_events: Vec::new(),
            engagements: Default::default(),
        }
    }

    pub(crate) fn table(&self, object: ObjectType) -> &ObjectTable {
        match object {
            ObjectType::Contacts => &self.contacts,
            ObjectType::Companies => &self.companies,
        }
    }

    pub(crate) fn table_mut(&mut self, object: ObjectType) -> &mut ObjectTable {
        match object {
            ObjectType::Contacts => &mut self.contacts,
            ObjectType::Companies => &mut self.companies,
        }
    }

    fn emit(&mut self, at_ms: i64, source: &Source, event: ChangeEvent) {
        self.pending_events.push(StampedEvent {
            at_ms,
            source: source.clone(),
            event,
        });
    }

    /// Deep copy for `HubSpotSim::state`.
    pub(crate) fn snapshot(&self) -> HubSpotState {
        let redirects = |t: &ObjectTable| {
            t.redirects
                .keys()
                .filter_map(|old| t.resolve(*old).map(|new| (*old, new)))
                .collect()
        };
        HubSpotState {
            portal_id: self.portal_id,
            contacts: self.contacts.records.values().cloned().collect(),
            companies: self.companies.records.values().cloned().collect(),
            owners: self.owners.values().cloned().collect(),
            associations: self
                .assoc
                .iter()
                .flat_map(|(contact, links)| {
                    links.iter().map(|(company, primary)| SimAssociation {
                        contact_id: *contact,
                        company_id: *company,
                        primary: *primary,
                    })
                })
                .collect(),
            merged_contacts: redirects(&self.contacts),
            merged_companies: redirects(&self.companies),
        }
    }

    /// Live companies of a live contact: (company, primary), archived
    /// companies left out as HubSpot does.
    pub(crate) fn companies_of(&self, contact: u64) -> Vec<(u64, bool)> {
        self.assoc
            .get(&contact)
            .map(|links| {
                links
                    .iter()
                    .filter(|(company, _)| self.companies.is_live(**company))
                    .map(|(c, p)| (*c, *p))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Live contacts of a company: (contact, primary).
    pub(crate) fn contacts_of(&self, company: u64) -> Vec<(u64, bool)> {
        self.rev
            .get(&company)
            .map(|contacts| {
                contacts
                    .iter()
                    .filter(|contact| self.contacts.is_live(**contact))
                    .map(|contact| {
                        let primary = self
                            .assoc
                            .get(contact)
                            .and_then(|l| l.get(&company))
                            .copied()
                            .unwrap_or(false);
                        (*contact, primary)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Associations from `object`'s record `id` to the other type.
    pub(crate) fn associated(&self, object: ObjectType, id: u64) -> Vec<(u64, bool)> {
        match object {
            ObjectType::Contacts => self.companies_of(id),
            ObjectType::Companies => self.contacts_of(id),
        }
    }

    /// Sets properties on a record as a human or the API would: only values
    /// that differ count as changes; owner changes stamp
    /// `hubspot_owner_assigneddate` and fill in the owner's primary team.
    /// Returns the names that actually changed. Stamps the record when
    /// anything changed.
    pub(crate) fn set_properties(
        &mut self,
        object: ObjectType,
        id: u64,
        values: &BTreeMap<String, String>,
        at_ms: i64,
        source: &Source,
    ) -> Vec<String> {
        let owner_team = values
            .get("hubspot_owner_id")
            .and_then(|o| o.parse::<u64>().ok())
            .and_then(|o| self.owners.get(&o))
            .and_then(|o| o.teams.iter().find(|t| t.primary))
            .map(|t| t.id.clone());
        let Some(record) = self.table_mut(object).records.get_mut(&id) else {
            return Vec::new();
        };
        let mut changed = Vec::new();
        for (name, value) in values {
            if record.properties.get(name) != Some(value) {
                record.properties.insert(name.clone(), value.clone());
                changed.push(name.clone());
            }
        }
        if changed.iter().any(|n| n == "hubspot_owner_id") {
            let owner = record
                .properties
                .get("hubspot_owner_id")
                .cloned()
                .unwrap_or_default();
            record
                .properties
                .insert("hubspot_owner_assigneddate".into(), iso(at_ms));
            record.properties.insert("hs_all_owner_ids".into(), owner);
            if !values.contains_key("hubspot_team_id") {
                let team = owner_team.unwrap_or_default();
                if record.properties.get("hubspot_team_id") != Some(&team) {
                    record
                        .properties
                        .insert("hubspot_team_id".into(), team.clone());
                    record.properties.insert("hs_all_team_ids".into(), team);
                    changed.push("hubspot_team_id".into());
                }
            }
        }
        if object == ObjectType::Contacts && changed.iter().any(|n| n == "email") {
            let table = self.table_mut(object);
            table.by_email.retain(|_, v| *v != id);
            if let Some(record) = table.records.get_mut(&id) {
                let email = record.properties.get("email").cloned().unwrap_or_default();
                let domain = email.rsplit_once('@').map(|(_, d)| d.to_owned());
                match domain {
                    Some(d) => record.properties.insert("hs_email_domain".into(), d),
                    None => record.properties.remove("hs_email_domain"),
                };
                if !email.is_empty() && !record.archived {
                    table.by_email.insert(email.to_ascii_lowercase(), id);
                }
            }
        }
        if !changed.is_empty() {
            self.table_mut(object).stamp(object, id, at_ms);
            for name in &changed {
                let value = self
                    .table(object)
                    .records
                    .get(&id)
                    .and_then(|r| r.properties.get(name))
                    .cloned()
                    .unwrap_or_default();
                self.emit(
                    at_ms,
                    source,
                    ChangeEvent::PropertyChange {
                        object,
                        id,
                        name: name.clone(),
                        value,
                    },
                );
            }
        }
        changed
    }

    /// Creates a record with a fresh id and the stamps HubSpot sets.
    pub(crate) fn create(
        &mut self,
        object: ObjectType,
        mut properties: BTreeMap<String, String>,
        at_ms: i64,
        source: &Source,
    ) -> u64 {
        let id = self.table(object).next_id;
        properties.insert("hs_object_id".into(), id.to_string());
        properties.insert("createdate".into(), iso(at_ms));
        properties.insert(object.last_modified_property().into(), iso(at_ms));
        if let Some(owner) = properties.get("hubspot_owner_id").cloned() {
            properties.insert("hubspot_owner_assigneddate".into(), iso(at_ms));
            properties.insert("hs_all_owner_ids".into(), owner);
        }
        if let Some(domain) = properties
            .get("email")
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d.to_owned())
        {
            properties.insert("hs_email_domain".into(), domain);
        }
        if object == ObjectType::Companies {
            properties.insert("num_associated_contacts".into(), "0".into());
        }
        self.table_mut(object).insert(SimRecord {
            id,
            properties,
            created_at_ms: at_ms,
            updated_at_ms: at_ms,
            archived: false,
            archived_at_ms: None,
        });
        self.emit(at_ms, source, ChangeEvent::Creation { object, id });
        id
    }

    /// Archives a live record ("delete" in the UI). Returns false when there
    /// was nothing live to archive.
    pub(crate) fn archive(
        &mut self,
        object: ObjectType,
        id: u64,
        at_ms: i64,
        source: &Source,
    ) -> bool {
        let table = self.table_mut(object);
        let Some(record) = table.records.get_mut(&id).filter(|r| !r.archived) else {
            return false;
        };
        table.by_modified.remove(&(record.updated_at_ms, id));
        record.archived = true;
        record.archived_at_ms = Some(at_ms);
        record.updated_at_ms = at_ms;
        if let Some(email) = record.properties.get("email") {
            let key = email.to_ascii_lowercase();
            if table.by_email.get(&key) == Some(&id) {
                table.by_email.remove(&key);
            }
        }
        self.refresh_after_link_change(object, id, at_ms);
        self.emit(at_ms, source, ChangeEvent::Deletion { object, id });
        true
    }

    /// Restores an archived record (UI only; same id).
    pub(crate) fn restore(
        &mut self,
        object: ObjectType,
        id: u64,
        at_ms: i64,
        source: &Source,
    ) -> bool {
        let table = self.table_mut(object);
        let Some(record) = table.records.get_mut(&id).filter(|r| r.archived) else {
            return false;
        };
        record.archived = false;
        record.archived_at_ms = None;
        if let Some(email) = record.properties.get("email").filter(|e| !e.is_empty()) {
            table.by_email.insert(email.to_ascii_lowercase(), id);
        }
        table.by_modified.insert((record.updated_at_ms, id));
        table.stamp(object, id, at_ms);
        self.refresh_after_link_change(object, id, at_ms);
        self.emit(at_ms, source, ChangeEvent::Restore { object, id });
        true
    }

    /// Recomputes the derived association properties touched by a record
    /// appearing or disappearing (companies' contact counts, contacts'
    /// `associatedcompanyid`).
    fn refresh_after_link_change(&mut self, object: ObjectType, id: u64, at_ms: i64) {
        match object {
            ObjectType::Contacts => {
                let companies: Vec<u64> = self
                    .assoc
                    .get(&id)
                    .map(|l| l.keys().copied().collect())
                    .unwrap_or_default();
                for company in companies {
                    self.refresh_company_count(company, at_ms);
                }
            }
            ObjectType::Companies => {
                let contacts: Vec<u64> = self
                    .rev
                    .get(&id)
                    .map(|c| c.iter().copied().collect())
                    .unwrap_or_default();
                for contact in contacts {
                    self.refresh_primary_property(contact, at_ms);
                }
            }
        }
    }

    /// `num_associated_contacts` is calculated; HubSpot bumps
    /// `hs_lastmodifieddate` when a calculated property moves (trap 6).
    fn refresh_company_count(&mut self, company: u64, at_ms: i64) {
        let count = self.contacts_of(company).len().to_string();
        let Some(record) = self.companies.records.get_mut(&company) else {
            return;
        };
        if record.properties.get("num_associated_contacts") != Some(&count) {
            record
                .properties
                .insert("num_associated_contacts".into(), count);
            self.companies.stamp(ObjectType::Companies, company, at_ms);
        }
    }

    /// `associatedcompanyid` mirrors the live primary company ("" when none).
    fn refresh_primary_property(&mut self, contact: u64, at_ms: i64) {
        let primary = self
            .companies_of(contact)
            .into_iter()
            .find(|(_, p)| *p)
            .map(|(c, _)| c.to_string())
            .unwrap_or_default();
        let Some(record) = self.contacts.records.get_mut(&contact) else {
            return;
        };
        let current = record
            .properties
            .get("associatedcompanyid")
            .cloned()
            .unwrap_or_default();
        if current != primary {
            if primary.is_empty() {
                record
                    .properties
                    .insert("associatedcompanyid".into(), String::new());
            } else {
                record
                    .properties
                    .insert("associatedcompanyid".into(), primary);
            }
            self.contacts.stamp(ObjectType::Contacts, contact, at_ms);
        }
    }

    /// Links a contact to a company (unlabeled, and primary when asked; a new
    /// primary demotes the old one to unlabeled).
    pub(crate) fn associate(
        &mut self,
        contact: u64,
        company: u64,
        primary: bool,
        at_ms: i64,
        source: &Source,
    ) {
        let links = self.assoc.entry(contact).or_default();
        let existed = links.get(&company).copied();
        let mut demoted = Vec::new();
        if primary {
            for (other, p) in links.iter_mut() {
                if *other != company && *p {
                    *p = false;
                    demoted.push(*other);
                }
            }
        }
        let now_primary = primary || existed.unwrap_or(false);
        links.insert(company, now_primary);
        self.rev.entry(company).or_default().insert(contact);
        if existed != Some(now_primary) {
            self.emit(
                at_ms,
                source,
                ChangeEvent::AssociationChange {
                    contact,
                    company,
                    removed: false,
                    primary: now_primary,
                },
            );
        }
        if existed.is_none() {
            self.refresh_company_count(company, at_ms);
        }
        for old in demoted {
            self.emit(
                at_ms,
                source,
                ChangeEvent::AssociationChange {
                    contact,
                    company: old,
                    removed: true,
                    primary: true,
                },
            );
        }
        self.refresh_primary_property(contact, at_ms);
    }

    /// Removes every link between a contact and a company.
    pub(crate) fn disassociate(
        &mut self,
        contact: u64,
        company: u64,
        at_ms: i64,
        source: &Source,
    ) -> bool {
        let Some(primary) = self
            .assoc
            .get_mut(&contact)
            .and_then(|l| l.remove(&company))
        else {
            return false;
        };
        if let Some(set) = self.rev.get_mut(&company) {
            set.remove(&contact);
        }
        self.emit(
            at_ms,
            source,
            ChangeEvent::AssociationChange {
                contact,
                company,
                removed: true,
                primary,
            },
        );
        self.refresh_company_count(company, at_ms);
        self.refresh_primary_property(contact, at_ms);
        true
    }

    /// Merges two live records into a NEW record with a fresh id (HubSpot's
    /// current contact/company merge): values from the primary, gaps filled
    /// from the other, associations from both (the primary's primary company
    /// wins), both old ids redirect to the new one.
    pub(crate) fn merge(
        &mut self,
        object: ObjectType,
        primary: u64,
        merged: u64,
        at_ms: i64,
        source: &Source,
    ) -> Result<u64, String> {
        if primary == merged {
            return Err("primaryObjectId and objectIdToMerge must differ".into());
        }
        for id in [primary, merged] {
            if !self.table(object).is_live(id) {
                return Err(format!(
                    "Object {id} of type {} was not found",
                    object.singular()
                ));
            }
        }
        let table = self.table_mut(object);
        let a = table.take(primary).ok_or("primary vanished")?;
        let b = table.take(merged).ok_or("merged vanished")?;
        let new_id = table.next_id;
        let mut properties = a.properties.clone();
        let mut moved = 0;
        for (k, v) in &b.properties {
            if properties.get(k).is_none_or(|x| x.is_empty()) && !v.is_empty() {
                properties.insert(k.clone(), v.clone());
                moved += 1;
            }
        }
        let mut absorbed: BTreeSet<u64> = [primary, merged].into_iter().collect();
        for rec in [&a, &b] {
            if let Some(ids) = rec.properties.get("hs_merged_object_ids") {
                absorbed.extend(ids.split(';').filter_map(|s| s.parse::<u64>().ok()));
            }
        }
        let joined = absorbed
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(";");
        properties.insert("hs_merged_object_ids".into(), joined);
        properties.insert("hs_object_id".into(), new_id.to_string());
        if object == ObjectType::Contacts {
            let vids = absorbed
                .iter()
                .map(|id| format!("{id}:{at_ms}"))
                .collect::<Vec<_>>()
                .join(";");
            properties.insert("hs_calculated_merged_vids".into(), vids);
            if let Some(other) = b.properties.get("email").filter(|e| !e.is_empty())
                && a.properties.get("email") != Some(other)
            {
                properties.insert("hs_additional_emails".into(), other.clone());
            }
        }
        let created = a.created_at_ms.min(b.created_at_ms);
        properties.insert("createdate".into(), iso(created));
        properties.insert(object.last_modified_property().into(), iso(at_ms));
        table.insert(SimRecord {
            id: new_id,
            properties,
            created_at_ms: created,
            updated_at_ms: at_ms,
            archived: false,
            archived_at_ms: None,
        });
        table.redirects.insert(primary, new_id);
        table.redirects.insert(merged, new_id);

        // Associations move from both inputs to the new record.
        match object {
            ObjectType::Contacts => {
                let la = self.assoc.remove(&primary).unwrap_or_default();
                let lb = self.assoc.remove(&merged).unwrap_or_default();
                let has_primary = la.values().any(|p| *p);
                let mut links = BTreeMap::new();
                for (company, p) in lb {
                    links.insert(company, p && !has_primary);
                }
                for (company, p) in la {
                    let e = links.entry(company).or_insert(false);
                    *e = *e || p;
                }
                for company in links.keys() {
                    if let Some(set) = self.rev.get_mut(company) {
                        set.remove(&primary);
                        set.remove(&merged);
                        set.insert(new_id);
                    }
                }
                if !links.is_empty() {
                    self.assoc.insert(new_id, links);
                }
                self.refresh_primary_property(new_id, at_ms);
                let companies: Vec<u64> = self
                    .assoc
                    .get(&new_id)
                    .map(|l| l.keys().copied().collect())
                    .unwrap_or_default();
                for company in companies {
                    self.refresh_company_count(company, at_ms);
                }
            }
            ObjectType::Companies => {
                let ca = self.rev.remove(&primary).unwrap_or_default();
                let cb = self.rev.remove(&merged).unwrap_or_default();
                let contacts: BTreeSet<u64> = ca.union(&cb).copied().collect();
                for contact in &contacts {
                    if let Some(links) = self.assoc.get_mut(contact) {
                        let pa = links.remove(&primary).unwrap_or(false);
                        let pb = links.remove(&merged).unwrap_or(false);
                        links.insert(new_id, pa || pb);
                    }
                }
                self.rev.insert(new_id, contacts.clone());
                for contact in contacts {
                    self.refresh_primary_property(contact, at_ms);
                }
                self.refresh_company_count(new_id, at_ms);
            }
        }
        self.emit(
            at_ms,
            source,
            ChangeEvent::Merge {
                object,
                primary,
                merged,
                new_id,
                moved,
            },
        );
        Ok(new_id)
    }
}
