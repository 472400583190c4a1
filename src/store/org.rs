//! Which CRM org the store mirrors: the HubSpot portal id or Salesforce org id recorded
//! at the first sync, per configured org. The mirror refuses to sync another org into it
//! (`mirror::MirrorError::OtherOrg`); other commands may read it with
//! [`Store::org_identity`].

use chrono::{DateTime, Utc};
use leadroute_crm::OrgIdentity;

use crate::domain::OrgId;
use sqlx::Row;

use super::{Store, StoreError, from_ms, to_ms};

/// The CRM org recorded for one configured org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedOrg {
    pub id: String,
    pub recorded_at: DateTime<Utc>,
}

impl Store {
    /// The CRM org this store mirrors as `org`, if a sync has recorded one.
    pub async fn org_identity(&self, org: &OrgId) -> Result<Option<RecordedOrg>, StoreError> {
        let row = sqlx::query("SELECT org_id, recorded_at FROM org_identity WHERE org = $1")
            .bind(org.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::query("reading the recorded CRM org"))?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row
            .try_get("org_id")
            .map_err(StoreError::query("reading the recorded CRM org"))?;
        let recorded_at: i64 = row
            .try_get("recorded_at")
            .map_err(StoreError::query("reading the recorded CRM org"))?;
        Ok(Some(RecordedOrg {
            id,
            recorded_at: from_ms(recorded_at),
        }))
    }

    /// Records `identity` for `org` unless one is recorded already, and returns the one the
    /// store holds afterwards (two first syncs racing agree on the first to commit).
    pub async fn record_org_identity(
        &self,
        org: &OrgId,
        identity: &OrgIdentity,
    ) -> Result<RecordedOrg, StoreError> {
        sqlx::query(
            "INSERT INTO org_identity (org, org_id, name, recorded_at) VALUES ($1, $2, NULL, $3)
             ON CONFLICT (org) DO NOTHING",
        )
        .bind(org.as_str())
        .bind(identity.id.as_str())
        .bind(to_ms(Utc::now()))
        .execute(self.pool())
        .await
        .map_err(StoreError::query("recording the CRM org"))?;
        self.org_identity(org).await?.ok_or(StoreError::Corrupt {
            what: "CRM org",
            detail: "recorded but not readable back".to_owned(),
        })
    }

    /// Replaces the recorded CRM org of `org` (`sync --full --adopt-org`: this store now
    /// follows `identity`; the full sync that follows replaces the mirror's rows).
    pub async fn adopt_org_identity(
        &self,
        org: &OrgId,
        identity: &OrgIdentity,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO org_identity (org, org_id, name, recorded_at) VALUES ($1, $2, NULL, $3)
             ON CONFLICT (org) DO UPDATE SET org_id = excluded.org_id,
                 recorded_at = excluded.recorded_at",
        )
        .bind(org.as_str())
        .bind(identity.id.as_str())
        .bind(to_ms(Utc::now()))
        .execute(self.pool())
        .await
        .map_err(StoreError::query("replacing the recorded CRM org"))?;
        Ok(())
    }
}
