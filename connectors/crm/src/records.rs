//! CRM-neutral records, cursors, changes and write outcomes.
//!
//! Field names follow the product's vocabulary, not either CRM's. Connectors map wire
//! shapes into these in their `map.rs`; the raw payload travels along in `raw` so the
//! mirror can keep it verbatim.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Recovery;

/// Which CRM a record lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrmKind {
    Hubspot,
    Salesforce,
}

impl CrmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CrmKind::Hubspot => "hubspot",
            CrmKind::Salesforce => "salesforce",
        }
    }
}

impl fmt::Display for CrmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CrmKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hubspot" => Ok(CrmKind::Hubspot),
            "salesforce" => Ok(CrmKind::Salesforce),
            other => Err(format!(
                "unknown CRM kind {other:?}; use \"hubspot\" or \"salesforce\""
            )),
        }
    }
}

/// The kinds of object leadroute mirrors.
///
/// HubSpot has `Contact`, `Account` (companies) and `Owner`; Salesforce has all four,
/// with `Owner` covering both Users and Queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Owner,
    Account,
    Contact,
    Lead,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 4] = [
        ObjectKind::Owner,
        ObjectKind::Account,
        ObjectKind::Contact,
        ObjectKind::Lead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Owner => "owner",
            ObjectKind::Account => "account",
            ObjectKind::Contact => "contact",
            ObjectKind::Lead => "lead",
        }
    }

    /// People are what leadroute routes: contacts and leads.
    pub fn is_person(self) -> bool {
        matches!(self, ObjectKind::Contact | ObjectKind::Lead)
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ObjectKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" | "owners" => Ok(ObjectKind::Owner),
            "account" | "accounts" | "company" | "companies" => Ok(ObjectKind::Account),
            "contact" | "contacts" => Ok(ObjectKind::Contact),
            "lead" | "leads" => Ok(ObjectKind::Lead),
            other => Err(format!(
                "unknown object {other:?}; use owner, account (company), contact or lead"
            )),
        }
    }
}

/// A record id as the CRM spells it (HubSpot `"512"`, Salesforce 18-character ids).
///
/// Salesforce connectors always store the canonical 18-character form, so equality of
/// `RecordId`s is equality of records.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordId(pub String);

impl RecordId {
    pub fn new(id: impl Into<String>) -> Self {
        RecordId(id.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for RecordId {
    fn from(s: &str) -> Self {
        RecordId(s.to_owned())
    }
}

/// An owner id (HubSpot owner id, Salesforce User `005…` or Queue `00G…` id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OwnerId(pub String);

impl OwnerId {
    pub fn new(id: impl Into<String>) -> Self {
        OwnerId(id.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for OwnerId {
    fn from(s: &str) -> Self {
        OwnerId(s.to_owned())
    }
}

/// An opaque sync position, produced and understood only by the connector that made it.
/// The store keeps it as text per (crm, object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub String);

/// Whether an owner is a person or a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OwnerKind {
    User,
    Queue,
}

/// A team an owner belongs to (HubSpot teams; Salesforce roles map here too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub primary: bool,
}

/// A user or queue that can own records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub id: OwnerId,
    pub kind: OwnerKind,
    pub email: Option<String>,
    pub name: String,
    /// False for HubSpot archived owners and Salesforce inactive users. Records can
    /// still point at inactive owners.
    pub active: bool,
    pub teams: Vec<Team>,
    /// IANA time zone (`Europe/Berlin`) where the CRM knows it.
    pub time_zone: Option<String>,
    pub manager_id: Option<OwnerId>,
    /// Other ids this owner is known by (HubSpot `userId`), never written as an owner.
    pub user_id: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A company / account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub id: RecordId,
    pub name: Option<String>,
    /// The CRM's own domain field (HubSpot `domain`), without scheme.
    pub domain: Option<String>,
    pub website: Option<String>,
    /// Further domains the account is known by (HubSpot `hs_additional_domains`).
    pub extra_domains: Vec<String>,
    pub country: Option<String>,
    pub state: Option<String>,
    pub parent_id: Option<RecordId>,
    pub owner_id: Option<OwnerId>,
    pub employees: Option<i64>,
    pub industry: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    /// The CRM's modification stamp (`hs_lastmodifieddate`, `SystemModstamp`).
    pub updated_at: DateTime<Utc>,
    /// Any other fields, as strings, for policy conditions on arbitrary fields.
    pub fields: BTreeMap<String, String>,
    /// The record exactly as the CRM returned it.
    pub raw: serde_json::Value,
}

/// A link from a person to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLink {
    pub account_id: RecordId,
    /// HubSpot primary association (type 1); Salesforce `Contact.AccountId` and a
    /// converted lead's `ConvertedAccountId` are primary.
    pub primary: bool,
}

/// A contact or lead: the thing leadroute routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonRecord {
    pub id: RecordId,
    pub object: ObjectKind,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Free-text company name (Lead `Company`, HubSpot `company`).
    pub company: Option<String>,
    pub website: Option<String>,
    pub country: Option<String>,
    pub state: Option<String>,
    pub owner_id: Option<OwnerId>,
    /// Known account links (HubSpot v4 associations, Salesforce `AccountId` /
    /// `ConvertedAccountId`). `None` means the connector did not read them on this
    /// page (leave the stored links alone); `Some(vec![])` means "no links".
    pub accounts: Option<Vec<AccountLink>>,
    /// When the owner last changed, where the CRM says (`hubspot_owner_assigneddate`).
    pub owner_assigned_at: Option<DateTime<Utc>>,
    /// Salesforce: converted leads are read-only and never routed.
    pub converted: bool,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub fields: BTreeMap<String, String>,
    pub raw: serde_json::Value,
}

/// Any mirrored record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Record {
    Owner(OwnerRecord),
    Account(AccountRecord),
    Person(PersonRecord),
}

impl Record {
    pub fn object(&self) -> ObjectKind {
        match self {
            Record::Owner(_) => ObjectKind::Owner,
            Record::Account(_) => ObjectKind::Account,
            Record::Person(p) => p.object,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Record::Owner(o) => o.id.as_str(),
            Record::Account(a) => a.id.as_str(),
            Record::Person(p) => p.id.as_str(),
        }
    }

    /// The modification stamp used for de-duplication (`None` for owners that lack one).
    pub fn updated_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Record::Owner(o) => o.updated_at,
            Record::Account(a) => Some(a.updated_at),
            Record::Person(p) => Some(p.updated_at),
        }
    }
}

/// One thing that happened to a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "lowercase")]
#[allow(clippy::large_enum_variant)] // upserts are the common case; boxing each costs more
pub enum Change {
    /// Created or updated; the record is its current state.
    Upsert(Record),
    /// Archived (HubSpot), deleted to the recycle bin (Salesforce) or GDPR-deleted.
    Deleted {
        object: ObjectKind,
        id: RecordId,
        at: Option<DateTime<Utc>>,
        /// GDPR / privacy deletion: the mirror must purge personal data, not just mark.
        purge: bool,
    },
    /// `loser` was merged into `winner` (HubSpot merges mint a new id; Salesforce
    /// merge losers carry `MasterRecordId`). The winner's upsert comes separately.
    Merged {
        object: ObjectKind,
        loser: RecordId,
        winner: RecordId,
        at: Option<DateTime<Utc>>,
    },
}

impl Change {
    pub fn object(&self) -> ObjectKind {
        match self {
            Change::Upsert(r) => r.object(),
            Change::Deleted { object, .. } | Change::Merged { object, .. } => *object,
        }
    }
}

/// One page of changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub changes: Vec<Change>,
    /// Where to resume; store it once `changes` are stored.
    pub cursor: Cursor,
    /// True when this page caught up with the CRM (a full sync finished, or an
    /// incremental sync reached "now"); polling can sleep until the next interval.
    pub done: bool,
    /// API calls this page cost (for progress and efficiency figures).
    pub calls: u32,
}

/// The owner a record holds right now, read just before a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentOwner {
    pub id: RecordId,
    pub owner_id: Option<OwnerId>,
    /// Salesforce: a converted lead cannot be written.
    pub writable: bool,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Set `id`'s owner from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerChange {
    pub id: RecordId,
    /// The owner the plan saw; the writer skips the change if the CRM no longer holds it.
    pub from: Option<OwnerId>,
    pub to: OwnerId,
    /// Salesforce strict mode: only write if unmodified since this instant.
    pub if_unmodified_since: Option<DateTime<Utc>>,
}

/// Why a single record was not written. The writer maps each to retry, re-plan or
/// exception (see [`RejectKind::recovery`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    /// The new owner is inactive / archived (`INACTIVE_OWNER_OR_USER`, `INVALID_OPTION`).
    InactiveOwner,
    /// The owner id does not exist or is the wrong kind (`INVALID_CROSS_REFERENCE_KEY`,
    /// queue on an Account).
    InvalidOwner,
    /// The record is gone (`ENTITY_IS_DELETED`, `OBJECT_NOT_FOUND`).
    NotFound,
    /// Row lock contention (`UNABLE_TO_LOCK_ROW`, HubSpot 423): retry later.
    Locked,
    /// A validation rule, trigger or duplicate rule refused the save.
    Validation,
    /// Converted lead or other read-only record.
    ReadOnly,
    /// Strict mode: the record changed since the plan read it (412).
    Conflict,
    /// The CRM rolled this record back because another in the batch failed.
    RolledBack,
    /// The CRM did not process the record: a transient internal error for it (HubSpot
    /// 207 `INTERNAL_ERROR`), a result missing from the response, a bulk job that
    /// stopped before reaching it. Nothing was written; retry after a fresh read.
    Unprocessed,
    /// Anything else the CRM said.
    Other,
}

impl RejectKind {
    /// What the writer should do about a record rejected this way.
    pub fn recovery(self) -> Recovery {
        match self {
            RejectKind::Locked | RejectKind::RolledBack | RejectKind::Unprocessed => {
                Recovery::Retry
            }
            RejectKind::InactiveOwner | RejectKind::InvalidOwner | RejectKind::Conflict => {
                Recovery::Replan
            }
            RejectKind::NotFound | RejectKind::ReadOnly => Recovery::Drop,
            RejectKind::Validation | RejectKind::Other => Recovery::Operator,
        }
    }
}

/// What happened to one [`OwnerChange`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WriteOutcome {
    /// The CRM now holds `to`.
    Applied,
    /// The CRM already held `to`; nothing was sent for this record.
    Unchanged,
    /// The CRM refused this record; the rest of the batch is unaffected.
    Rejected {
        kind: RejectKind,
        /// The CRM's own code (`INACTIVE_OWNER_OR_USER`, `VALIDATION_ERROR`).
        code: String,
        message: String,
    },
}

/// What one bulk write ([`crate::Crm::apply_bulk`]) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkWrite {
    /// The CRM's id for the job (Salesforce `750…`), for the journal and support.
    pub job_id: Option<String>,
    /// One outcome per change, in input order.
    pub outcomes: Vec<WriteOutcome>,
}

/// A bulk job created and loaded by [`crate::Crm::bulk_start`] that has not started
/// yet; [`crate::Crm::bulk_run`] runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkJob {
    /// The CRM's id for the job (Salesforce `750…`); `None` when no job was needed
    /// because every change was refused up front (malformed ids): `bulk_run` then
    /// answers those refusals without a call.
    pub id: Option<String>,
    pub object: ObjectKind,
    /// The changes, in the order `bulk_run` answers their outcomes.
    pub changes: Vec<OwnerChange>,
}

/// The final state [`crate::Crm::bulk_abort`] left a job in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkJobState {
    /// Aborted before it finished: rows it had processed stay written, no more will be.
    Aborted,
    /// It had finished processing every row before the abort could land.
    Complete,
    /// It failed as a whole; rows it had processed stay written.
    Failed,
    /// The CRM no longer knows the job (deleted after it finished, or expired).
    Gone,
}

/// What [`crate::Crm::bulk_abort`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkJobEnd {
    pub state: BulkJobState,
    /// Rows the job processed (written or refused), as the CRM reports; 0 when gone.
    pub processed: u64,
    /// Of those, rows the CRM refused.
    pub failed: u64,
}

/// How a connector writes, so the writer can plan batches and cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteLimits {
    /// Largest batch one `apply` call accepts (HubSpot 100, Salesforce Collections 200).
    pub max_batch: usize,
    /// Largest id list one `current_owners` call reads in one API call.
    pub max_read_batch: usize,
    /// Change sets at least this large go through a bulk path where the CRM has one
    /// (Salesforce Bulk API 2.0); `None` if there is none.
    pub bulk_threshold: Option<usize>,
    /// Whether `apply` can honour `if_unmodified_since` (Salesforce strict mode).
    pub conditional_writes: bool,
}

/// Rate-limit headroom, as last reported by the CRM.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiUsage {
    /// Calls this process made.
    pub calls: u64,
    /// 429 / REQUEST_LIMIT_EXCEEDED answers received.
    pub throttled: u64,
    /// Retries made (all causes).
    pub retries: u64,
    /// Short-window limit (HubSpot per 10 s) and what remained at the last response.
    pub window_max: Option<u64>,
    pub window_remaining: Option<u64>,
    pub window: Option<Duration>,
    /// Daily allocation (HubSpot per day, Salesforce rolling 24 h) and use.
    pub daily_max: Option<u64>,
    pub daily_remaining: Option<u64>,
    /// The configured share of the daily allocation kept for other integrations.
    pub daily_reserve: u64,
}

/// An inbound HTTP request from the CRM, as the web layer received it.
#[derive(Debug, Clone)]
pub struct InboundRequest {
    pub method: String,
    /// The full public URL the CRM called (`https://host/path?query`), from the
    /// configured public base URL, not as a proxy rewrote it.
    pub url: String,
    /// Header names lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Receipt time, injected for testability.
    pub received_at: DateTime<Utc>,
}

impl InboundRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A record a notification says has changed: refetch it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hint {
    pub object: ObjectKind,
    pub id: RecordId,
    /// Stable key for de-duplicating redeliveries (the webhook inbox keys on it).
    pub dedupe_key: String,
    pub occurred_at: Option<DateTime<Utc>>,
}

/// A verified notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Intake {
    pub hints: Vec<Hint>,
    /// What to answer (HubSpot: 200 empty; Salesforce: the SOAP `<Ack>true</Ack>`).
    pub response: InboundResponse,
}

/// A response to an inbound notification.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// Why an inbound notification was refused. The web layer answers `status()`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IntakeError {
    /// Signature missing, forged or tampered; timestamp stale; wrong organization.
    #[error("notification rejected: {0}")]
    Unauthorized(String),
    /// Not a notification this connector understands.
    #[error("malformed notification: {0}")]
    Malformed(String),
}

impl IntakeError {
    pub fn status(&self) -> u16 {
        match self {
            IntakeError::Unauthorized(_) => 401,
            IntakeError::Malformed(_) => 400,
        }
    }
}
