//! `leadroute-salesforce`: the Salesforce REST connector implementing
//! [`leadroute_crm::Crm`].
//!
//! Reads mirror Leads, Contacts, Accounts, Users and Queues by SOQL ordered by
//! `SystemModstamp, Id` (full sync, then `>=` watermark minus overlap with
//! de-duplication, plus the recycle bin through `queryAll`); writes set `OwnerId`
//! through sObject Collections (or `/composite` with `If-Unmodified-Since` in strict
//! mode, or Bulk API 2.0 for large change sets) and always send
//! `Sforce-Auto-Assign: FALSE`. The org's rolling 24-hour API allocation is tracked
//! from `Sforce-Limit-Info` and a reserve is left for other integrations.
//!
//! Layout: `client` (HTTP, sessions, retries), `auth` (OAuth flows), `wire` (serde
//! shapes), `map` (wire → contract records), `ids` (15/18-character ids), `soql`
//! (query text), `sync` (cursor and paging), `write` (owner writes and retrieves),
//! `limits` (daily allocation), `webhook` (outbound messages).

mod auth;
mod client;
#[doc(hidden)]
pub mod fuzzing;
pub mod ids;
pub mod limits;
mod map;
pub mod soql;
mod sync;
mod webhook;
mod wire;
mod write;

use std::sync::Arc;
use std::time::Duration;

use leadroute_crm::{
    ApiUsage, BulkJob, BulkJobEnd, BulkWrite, Change, Crm, CrmError, CrmKind, CurrentOwner, Cursor,
    ErrorKind, InboundRequest, Intake, IntakeError, ObjectKind, OrgIdentity, OwnerChange, Page,
    RecordId, WriteLimits, WriteOutcome,
};
use secrecy::SecretString;

pub use auth::{RotationHook, SalesforceAuth};
pub use sync::DeletedWindow;
pub use webhook::ACK as OUTBOUND_MESSAGE_ACK;

/// Everything the connector needs to reach one org.
#[derive(Debug, Clone)]
pub struct SalesforceSettings {
    /// OAuth host: `https://login.salesforce.com`, `https://test.salesforce.com`, or
    /// the org's My Domain (required for client credentials).
    pub login_url: String,
    /// API host. Taken from every token response; needed up front only for
    /// [`SalesforceAuth::Session`].
    pub instance_url: Option<String>,
    /// Pinned REST API version, e.g. `"62.0"` (≥ 62.0 recommended).
    pub api_version: String,
    pub auth: SalesforceAuth,
    /// The org id (`00D…`, 15 or 18 characters) outbound messages must carry.
    pub organization_id: Option<String>,
    /// How far behind the watermark each incremental pass starts (late commits).
    pub overlap: Duration,
    /// Calls of the daily allocation left for other integrations: the connector stops
    /// with [`ErrorKind::QuotaExhausted`] before touching them.
    pub daily_reserve: u64,
    /// Change sets at least this large should go through Bulk API 2.0
    /// ([`Crm::apply_bulk`]); Salesforce's guidance is about 2,000 records.
    pub bulk_threshold: usize,
    /// Honour [`OwnerChange::if_unmodified_since`] (conditional writes via `/composite`).
    pub strict_writes: bool,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Whole-call retries on 5xx, timeouts, resets, lock contention.
    pub max_retries: usize,
    /// First retry delay (doubles, with jitter, up to 30 s).
    pub retry_base: Duration,
    /// Concurrent requests at most (Salesforce counts long-running ones per org).
    pub max_in_flight: usize,
    /// `Sforce-Query-Options: batchSize` (200–2,000).
    pub page_size: u32,
    /// Bulk API 2.0 job polling.
    pub bulk_poll_interval: Duration,
    pub bulk_timeout: Duration,
    /// While paused for the allocation, let one call through this often to re-read it.
    pub quota_probe_interval: Duration,
    /// Also mirror Tasks and Events as `ObjectKind::Activity`; off by default (config
    /// `[sync] activities`).
    pub activities: bool,
}

impl SalesforceSettings {
    /// Production defaults around the given hosts and credentials.
    pub fn new(login_url: impl Into<String>, auth: SalesforceAuth) -> Self {
        SalesforceSettings {
            login_url: login_url.into(),
            instance_url: None,
            api_version: "62.0".to_owned(),
            auth,
            organization_id: None,
            overlap: Duration::from_secs(300),
            daily_reserve: 0,
            bulk_threshold: 2_000,
            strict_writes: false,
            request_timeout: Duration::from_secs(120),
            max_retries: 4,
            retry_base: Duration::from_millis(500),
            max_in_flight: 5,
            page_size: 2_000,
            bulk_poll_interval: Duration::from_secs(5),
            bulk_timeout: Duration::from_secs(30 * 60),
            quota_probe_interval: Duration::from_secs(300),
            activities: false,
        }
    }

    fn validate(&self) -> Result<(), CrmError> {
        let bad = |msg: String| Err(CrmError::new(ErrorKind::BadRequest, msg));
        if url::Url::parse(&self.login_url).is_err() {
            return bad(format!(
                "salesforce login_url {:?} is not a URL; use e.g. https://login.salesforce.com",
                self.login_url
            ));
        }
        if let Some(instance) = &self.instance_url {
            if url::Url::parse(instance).is_err() {
                return bad(format!("salesforce instance_url {instance:?} is not a URL"));
            }
        }
        if matches!(self.auth, SalesforceAuth::Session { .. }) && self.instance_url.is_none() {
            return bad("salesforce session auth needs instance_url (the org's API host)".into());
        }
        let version_ok = self
            .api_version
            .trim_start_matches('v')
            .parse::<f64>()
            .is_ok_and(|v| v >= 31.0);
        if !version_ok {
            return bad(format!(
                "salesforce api_version {:?} is not a supported version like \"62.0\"",
                self.api_version
            ));
        }
        if let Some(org) = &self.organization_id {
            ids::canonical(org).map_err(|e| {
                CrmError::new(
                    ErrorKind::BadRequest,
                    format!("salesforce organization_id: {e}"),
                )
            })?;
        }
        if !(200..=2000).contains(&self.page_size) {
            return bad(format!(
                "salesforce page_size {} must be between 200 and 2000",
                self.page_size
            ));
        }
        Ok(())
    }
}

struct Inner {
    settings: SalesforceSettings,
    client: client::Client,
}

/// The Salesforce connector. Cheap to clone; clones share one session, one in-flight
/// cap and one view of the daily allocation.
#[derive(Clone)]
pub struct Salesforce {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Salesforce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Salesforce")
            .field("login_url", &self.inner.settings.login_url)
            .field("auth", &self.inner.settings.auth)
            .finish_non_exhaustive()
    }
}

impl Salesforce {
    /// Builds the connector; no network traffic until the first call.
    pub fn new(settings: SalesforceSettings) -> Result<Self, CrmError> {
        settings.validate()?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("leadroute/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                CrmError::new(ErrorKind::BadRequest, "building the HTTP client failed")
                    .with_source(e)
            })?;
        let authenticator = auth::Authenticator::new(
            http.clone(),
            settings.login_url.clone(),
            settings.instance_url.clone(),
            settings.auth.clone(),
        );
        let allocation =
            limits::DailyAllocation::new(settings.daily_reserve, settings.quota_probe_interval);
        let config = client::ClientConfig {
            api_version: settings.api_version.trim_start_matches('v').to_owned(),
            request_timeout: settings.request_timeout,
            max_retries: settings.max_retries,
            retry_base: settings.retry_base,
            max_in_flight: settings.max_in_flight,
        };
        let client = client::Client::new(http, config, authenticator, allocation);
        Ok(Salesforce {
            inner: Arc::new(Inner { settings, client }),
        })
    }

    pub fn settings(&self) -> &SalesforceSettings {
        &self.inner.settings
    }

    /// Registers the hook that receives each rotated refresh token (refresh-token flow
    /// with rotation on). The old token is dead once the new one is issued, so the hook
    /// must persist it durably before returning. It runs inside the single-flight token
    /// request, so it is never called concurrently with itself, and calls waiting for
    /// the new session wait for it: keep it short (write a file, not a network call).
    /// Without a hook the new token lives only in memory
    /// ([`Salesforce::current_refresh_token`]) and a restart falls back to the
    /// configured, now dead, token.
    pub fn on_refresh_token_rotated(&self, hook: impl Fn(&SecretString) + Send + Sync + 'static) {
        self.inner
            .client
            .authenticator()
            .set_rotation_hook(Arc::new(hook));
    }

    /// The refresh token in force (the configured one, or the latest rotated one).
    pub fn current_refresh_token(&self) -> Option<SecretString> {
        self.inner.client.authenticator().current_refresh_token()
    }

    /// Token requests made so far (one per session renewal, however many calls failed).
    pub fn token_requests(&self) -> u64 {
        self.inner.client.token_requests()
    }

    /// The instance URL from the latest token response.
    pub fn instance_url(&self) -> Option<String> {
        self.inner.client.instance_url()
    }
}

impl Salesforce {
    /// Deletions of `object` between `start` and `end` from the replication API
    /// (`getDeleted`), a cross-check for the `queryAll` recycle-bin pass that
    /// [`Crm::changes`] runs. When [`DeletedWindow::full_resync_required`] is set the
    /// delete log was purged past `start`: the caller must run a full resync.
    pub async fn get_deleted(
        &self,
        object: ObjectKind,
        start: chrono::DateTime<chrono::Utc>,
        end: chrono::DateTime<chrono::Utc>,
    ) -> Result<DeletedWindow, CrmError> {
        sync::get_deleted(&self.inner.client, object, start, end).await
    }

    fn bulk_config(&self) -> write::BulkConfig {
        write::BulkConfig {
            poll_interval: self.inner.settings.bulk_poll_interval,
            timeout: self.inner.settings.bulk_timeout,
        }
    }
}

impl Crm for Salesforce {
    fn kind(&self) -> CrmKind {
        CrmKind::Salesforce
    }

    fn objects(&self) -> &'static [ObjectKind] {
        if self.inner.settings.activities {
            // Activities last: they refer to leads and contacts.
            &[
                ObjectKind::Owner,
                ObjectKind::Account,
                ObjectKind::Contact,
                ObjectKind::Lead,
                ObjectKind::Activity,
            ]
        } else {
            &[
                ObjectKind::Owner,
                ObjectKind::Account,
                ObjectKind::Contact,
                ObjectKind::Lead,
            ]
        }
    }

    async fn changes(&self, object: ObjectKind, cursor: Option<&Cursor>) -> Result<Page, CrmError> {
        let config = sync::ReadConfig {
            overlap: self.inner.settings.overlap,
            batch_size: self.inner.settings.page_size,
        };
        sync::next_page(&self.inner.client, config, object, cursor).await
    }

    async fn fetch(&self, object: ObjectKind, ids: &[RecordId]) -> Result<Vec<Change>, CrmError> {
        write::fetch(&self.inner.client, object, ids).await
    }

    async fn current_owners(
        &self,
        object: ObjectKind,
        ids: &[RecordId],
    ) -> Result<Vec<CurrentOwner>, CrmError> {
        write::current_owners(&self.inner.client, object, ids).await
    }

    async fn apply(
        &self,
        object: ObjectKind,
        batch: &[OwnerChange],
    ) -> Result<Vec<WriteOutcome>, CrmError> {
        write::apply(
            &self.inner.client,
            object,
            batch,
            self.inner.settings.strict_writes,
        )
        .await
    }

    /// Creates a Bulk API 2.0 ingest job for the whole change set (no per-call size
    /// limit, no conditional writes, no assignment rule) and uploads it, unclosed.
    async fn bulk_start(
        &self,
        object: ObjectKind,
        batch: &[OwnerChange],
    ) -> Result<BulkJob, CrmError> {
        write::bulk_start(&self.inner.client, object, batch).await
    }

    /// Closes the job and waits for it. A job not finished within `bulk_timeout` is
    /// aborted and answers [`ErrorKind::Timeout`]: outcome unknown, re-read before
    /// retrying.
    async fn bulk_run(&self, job: BulkJob) -> Result<BulkWrite, CrmError> {
        write::bulk_run(&self.inner.client, job, self.bulk_config()).await
    }

    /// Aborts an ingest job unless it is final and waits (up to `bulk_timeout`) until
    /// it is.
    async fn bulk_abort(&self, _object: ObjectKind, job_id: &str) -> Result<BulkJobEnd, CrmError> {
        write::bulk_abort(&self.inner.client, job_id, self.bulk_config()).await
    }

    /// The org id (`00D…`) from the session's identity URL.
    async fn org_identity(&self) -> Result<Option<OrgIdentity>, CrmError> {
        sync::org_identity(
            &self.inner.client,
            self.inner.settings.organization_id.as_deref(),
        )
        .await
    }

    fn write_limits(&self) -> WriteLimits {
        WriteLimits {
            max_batch: write::COLLECTION_MAX,
            max_read_batch: write::RETRIEVE_MAX,
            bulk_threshold: Some(self.inner.settings.bulk_threshold),
            conditional_writes: self.inner.settings.strict_writes,
        }
    }

    fn usage(&self) -> ApiUsage {
        self.inner.client.allocation.usage()
    }

    fn intake(&self, request: &InboundRequest) -> Result<Intake, IntakeError> {
        // Without a configured org id, the org the session belongs to is the one
        // whose messages are accepted (known once any call has authenticated).
        let organization_id = self
            .inner
            .settings
            .organization_id
            .clone()
            .or_else(|| self.inner.client.session_organization_id());
        webhook::intake(request, organization_id.as_deref())
    }
}
