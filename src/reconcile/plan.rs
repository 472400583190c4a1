//! The plan: what should change, and why. STAND-IN on the writer branch with exactly
//! the fields INTERFACES.md fixes; the policy branch owns this file.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{CrmKind, ObjectKind, OwnerId, RecordId};

/// Desired owner changes for one CRM, computed under one policy version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub policy_version: String,
    pub created_at: DateTime<Utc>,
    pub crm: CrmKind,
    pub changes: Vec<PlannedChange>,
    pub exceptions: Vec<PlannedException>,
}

/// One record's owner moving from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedChange {
    pub object: ObjectKind,
    pub id: RecordId,
    pub field: String,
    pub from: Option<OwnerId>,
    pub to: OwnerId,
    pub rule: String,
    pub reason: String,
    pub policy_version: String,
    pub record_updated_at: Option<DateTime<Utc>>,
}

/// A record the policy could not (or must not) route automatically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedException {
    pub object: ObjectKind,
    pub id: RecordId,
    pub kind: String,
    pub rule: String,
    pub reason: String,
}
