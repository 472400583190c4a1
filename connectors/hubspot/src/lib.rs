//! `leadroute-hubspot`: the HubSpot CRM v3/v4 connector implementing [`leadroute_crm::Crm`].
//!
//! Entry point: [`HubSpot::new`] with [`HubSpotSettings`]. Modules:
//! `client` (HTTP, auth, retries), `limits` (rate limiters, usage), `wire` (JSON shapes),
//! `map` (wire → contract records), `sync` (full/incremental strategies and the cursor),
//! `batch` (batch read/update, v4 associations) and `webhook` (v3 signatures, hints).
//! Facts about the API come from `shared/reference/hubspot.md`; its Traps are cited by
//! number in comments.
//!
//! GDPR deletions: a [`leadroute_crm::Hint`] cannot say "purge", so `intake` remembers
//! the contacts named by `contact.privacyDeletion` events and the next `fetch` of such
//! an id answers `Change::Deleted { purge: true }`. The memory is per process: if it
//! restarts between intake and fetch, the record is still deleted but not purged.

mod activities;
mod batch;
mod client;
#[doc(hidden)]
pub mod fuzzing;
mod limits;
mod map;
mod sync;
mod webhook;
mod wire;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use chrono::FixedOffset;
use leadroute_crm::{
    ApiUsage, Change, Crm, CrmError, CrmKind, CurrentOwner, Cursor, ErrorKind, InboundRequest,
    Intake, IntakeError, ObjectKind, OrgIdentity, OwnerChange, Page, RecordId, WriteLimits,
    WriteOutcome,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub use limits::HubSpotTier;

use crate::client::{Auth, Client, OAuth};
use crate::map::{COMPANIES, CONTACTS, ObjectType};
use crate::sync::SyncConfig;

/// How the connector authenticates.
#[derive(Debug, Clone)]
pub enum HubSpotAuth {
    /// A static (private / legacy) app token, sent as `Authorization: Bearer`.
    PrivateApp { token: SecretString },
    /// An OAuth app: access tokens come from `POST {base}/oauth/v1/token` with the
    /// refresh token, are refreshed ahead of `expires_in`, and once more on a 401.
    OAuth {
        client_id: String,
        client_secret: SecretString,
        refresh_token: SecretString,
    },
}

/// Everything the connector needs to talk to one portal. `Debug` redacts secrets.
#[derive(Debug, Clone)]
pub struct HubSpotSettings {
    /// `https://api.hubapi.com`, a proxy, or a simulator; no trailing path.
    pub base_url: String,
    pub auth: HubSpotAuth,
    /// The app's client secret used to sign webhooks; defaults to the OAuth client secret.
    pub webhook_secret: Option<SecretString>,
    /// The public URL HubSpot calls (`https://host/path`), used when the web layer hands
    /// [`Crm::intake`] a bare path.
    pub public_webhook_url: Option<String>,
    pub tier: HubSpotTier,
    /// How far behind the watermark each incremental run starts (search index lag).
    pub overlap: Duration,
    /// Daily calls left for other integrations: at or below this, calls stop with
    /// `QuotaExhausted` until the daily reset.
    pub daily_reserve: u64,
    pub request_timeout: Duration,
    /// Retries per call on 429, 423, 477, 5xx, timeouts and connection errors.
    pub max_retries: usize,
    /// How often the incremental sync lists archived records to learn deletions.
    pub archived_sweep_interval: Duration,
    /// Search requests per second (HubSpot: 5 per account).
    pub search_per_second: u32,
    /// The portal's UTC offset in seconds: the daily limit resets at its local midnight.
    pub daily_reset_utc_offset_secs: i32,
    /// Also mirror activities (calls, emails, meetings, notes, tasks) as
    /// `ObjectKind::Activity`; off by default (config `[sync] activities`).
    pub activities: bool,
}

impl HubSpotSettings {
    /// Settings with production defaults: Professional tier, 2-minute overlap, 30 s
    /// timeout, 8 retries, hourly archived sweep, daily reset at UTC midnight.
    pub fn new(base_url: impl Into<String>, auth: HubSpotAuth) -> HubSpotSettings {
        HubSpotSettings {
            base_url: base_url.into(),
            auth,
            webhook_secret: None,
            public_webhook_url: None,
            tier: HubSpotTier::Professional,
            overlap: Duration::from_secs(120),
            daily_reserve: 1_000,
            request_timeout: Duration::from_secs(30),
            max_retries: 8,
            archived_sweep_interval: Duration::from_secs(3_600),
            search_per_second: 5,
            daily_reset_utc_offset_secs: 0,
            activities: false,
        }
    }
}

/// The HubSpot connector. Cheap to clone; clones share limits, tokens and usage.
#[derive(Clone)]
pub struct HubSpot {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    sync: SyncConfig,
    /// Whether `objects()` lists activities.
    activities: bool,
    webhook_secret: Option<SecretString>,
    public_webhook_url: Option<String>,
    /// Contacts a `contact.privacyDeletion` event named, until a fetch reports them
    /// deleted with `purge: true`. In memory only: a restart between intake and fetch
    /// loses the purge flag (the record is still deleted), see the crate docs.
    privacy_deleted: parking_lot::Mutex<BTreeSet<String>>,
}

/// Most pending GDPR purges remembered between intake and fetch.
const MAX_PENDING_PURGES: usize = 100_000;

impl std::fmt::Debug for HubSpot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSpot")
            .field("client", &self.inner.client)
            .finish_non_exhaustive()
    }
}

fn invalid(field: &str, problem: &str, fix: &str) -> CrmError {
    CrmError::new(
        ErrorKind::BadRequest,
        format!("hubspot settings: {field}: {problem}; {fix}"),
    )
}

impl HubSpot {
    /// Validates `settings` and builds the connector (no network call is made).
    pub fn new(settings: HubSpotSettings) -> Result<Self, CrmError> {
        let base = url::Url::parse(&settings.base_url).map_err(|_| {
            invalid(
                "base_url",
                &format!("{:?} is not a URL", settings.base_url),
                "use https://api.hubapi.com or the simulator's http://127.0.0.1:PORT",
            )
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(
                "base_url",
                "scheme must be http or https",
                "use https://api.hubapi.com",
            ));
        }
        if settings.request_timeout.is_zero() {
            return Err(invalid(
                "request_timeout",
                "is zero",
                "use a few seconds, e.g. 30",
            ));
        }
        if settings.overlap > Duration::from_secs(86_400) {
            return Err(invalid(
                "overlap",
                "exceeds one day",
                "a few minutes covers search index lag",
            ));
        }
        if settings.search_per_second == 0 {
            return Err(invalid("search_per_second", "is zero", "HubSpot allows 5"));
        }
        let offset =
            FixedOffset::east_opt(settings.daily_reset_utc_offset_secs).ok_or_else(|| {
                invalid(
                    "daily_reset_utc_offset_secs",
                    "is not a valid UTC offset",
                    "use -50400..=50400",
                )
            })?;
        let (auth, fingerprint, oauth_secret) = match &settings.auth {
            HubSpotAuth::PrivateApp { token } => {
                if token.expose_secret().trim().is_empty() {
                    return Err(invalid("token", "is empty", "set the private-app token"));
                }
                (
                    Auth::Static(token.clone()),
                    fingerprint(token.expose_secret()),
                    None,
                )
            }
            HubSpotAuth::OAuth {
                client_id,
                client_secret,
                refresh_token,
            } => {
                if refresh_token.expose_secret().trim().is_empty() {
                    return Err(invalid(
                        "oauth.refresh_token",
                        "is empty",
                        "install the app and store its refresh token",
                    ));
                }
                (
                    Auth::OAuth(OAuth::new(
                        client_id.clone(),
                        client_secret.clone(),
                        refresh_token.clone(),
                    )),
                    fingerprint(&format!("{client_id}:{}", refresh_token.expose_secret())),
                    Some(client_secret.clone()),
                )
            }
        };
        let limits = limits::Limits::for_portal(
            &format!("{}#{fingerprint}", settings.base_url.trim_end_matches('/')),
            settings.tier,
            settings.search_per_second,
            settings.daily_reserve,
            offset,
        );
        let client = Client::new(
            &settings.base_url,
            auth,
            limits,
            settings.request_timeout,
            settings.max_retries,
        )?;
        Ok(HubSpot {
            inner: Arc::new(Inner {
                client,
                sync: SyncConfig {
                    overlap: settings.overlap,
                    archived_sweep_interval: settings.archived_sweep_interval,
                },
                activities: settings.activities,
                webhook_secret: settings.webhook_secret.clone().or(oauth_secret),
                public_webhook_url: settings.public_webhook_url.clone(),
                privacy_deleted: parking_lot::Mutex::new(BTreeSet::new()),
            }),
        })
    }

    /// OAuth access-token refreshes made so far (0 for private-app tokens).
    pub fn oauth_refreshes(&self) -> u64 {
        self.inner.client.refreshes()
    }
}

/// A short, non-reversible tag for a credential (limiter registry key; never logged).
fn fingerprint(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn object_type(object: ObjectKind) -> Result<ObjectType, CrmError> {
    match object {
        ObjectKind::Contact => Ok(CONTACTS),
        ObjectKind::Account => Ok(COMPANIES),
        ObjectKind::Owner | ObjectKind::Lead | ObjectKind::Activity => Err(CrmError::new(
            ErrorKind::BadRequest,
            format!(
                "hubspot: {object} records cannot be read or written this way (HubSpot has contacts, companies and owners)"
            ),
        )),
    }
}

const OBJECTS: &[ObjectKind] = &[ObjectKind::Owner, ObjectKind::Account, ObjectKind::Contact];
/// [`OBJECTS`] plus activities, last: they refer to contacts.
const OBJECTS_WITH_ACTIVITIES: &[ObjectKind] = &[
    ObjectKind::Owner,
    ObjectKind::Account,
    ObjectKind::Contact,
    ObjectKind::Activity,
];

impl Crm for HubSpot {
    fn kind(&self) -> CrmKind {
        CrmKind::Hubspot
    }

    fn objects(&self) -> &'static [ObjectKind] {
        if self.inner.activities {
            OBJECTS_WITH_ACTIVITIES
        } else {
            OBJECTS
        }
    }

    async fn changes(&self, object: ObjectKind, cursor: Option<&Cursor>) -> Result<Page, CrmError> {
        if object == ObjectKind::Owner {
            return sync::owner_changes(&self.inner.client, cursor).await;
        }
        if object == ObjectKind::Activity {
            return activities::changes(&self.inner.client, cursor, self.inner.sync).await;
        }
        sync::changes(
            &self.inner.client,
            object_type(object)?,
            cursor,
            self.inner.sync,
        )
        .await
    }

    async fn fetch(&self, object: ObjectKind, ids: &[RecordId]) -> Result<Vec<Change>, CrmError> {
        let calls = AtomicU32::new(0);
        let mut changes =
            batch::fetch(&self.inner.client, object_type(object)?, ids, &calls).await?;
        if object == ObjectKind::Contact {
            let mut pending = self.inner.privacy_deleted.lock();
            for change in &mut changes {
                if let Change::Deleted { id, purge, .. } = change
                    && pending.remove(id.as_str())
                {
                    *purge = true;
                }
            }
        }
        Ok(changes)
    }

    async fn current_owners(
        &self,
        object: ObjectKind,
        ids: &[RecordId],
    ) -> Result<Vec<CurrentOwner>, CrmError> {
        let calls = AtomicU32::new(0);
        batch::current_owners(&self.inner.client, object_type(object)?, ids, &calls).await
    }

    async fn apply(
        &self,
        object: ObjectKind,
        batch: &[OwnerChange],
    ) -> Result<Vec<WriteOutcome>, CrmError> {
        let calls = AtomicU32::new(0);
        batch::apply(&self.inner.client, object_type(object)?, batch, &calls).await
    }

    /// The portal id, from `GET /account-info/v3/details` (one call).
    async fn org_identity(&self) -> Result<Option<OrgIdentity>, CrmError> {
        sync::portal_identity(&self.inner.client).await
    }

    fn write_limits(&self) -> WriteLimits {
        WriteLimits {
            max_batch: batch::BATCH_LIMIT,
            max_read_batch: batch::BATCH_LIMIT,
            bulk_threshold: None,
            conditional_writes: false,
        }
    }

    fn usage(&self) -> ApiUsage {
        self.inner.client.limits.usage()
    }

    fn intake(&self, request: &InboundRequest) -> Result<Intake, IntakeError> {
        let parsed = webhook::intake(
            request,
            self.inner.webhook_secret.as_ref(),
            self.inner.public_webhook_url.as_deref(),
        )?;
        if !parsed.privacy_deleted.is_empty() {
            let mut pending = self.inner.privacy_deleted.lock();
            for id in parsed.privacy_deleted {
                if pending.len() >= MAX_PENDING_PURGES {
                    tracing::warn!(
                        "too many pending privacy deletions; purge flag dropped for the rest"
                    );
                    break;
                }
                pending.insert(id);
            }
        }
        Ok(parsed.intake)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> HubSpotSettings {
        HubSpotSettings::new(
            "http://127.0.0.1:9",
            HubSpotAuth::PrivateApp {
                token: SecretString::from("pat-na1-0000-secret"),
            },
        )
    }

    #[test]
    fn settings_debug_never_shows_tokens() {
        let mut s = settings();
        s.auth = HubSpotAuth::OAuth {
            client_id: "cid".into(),
            client_secret: SecretString::from("shh-client-secret"),
            refresh_token: SecretString::from("shh-refresh"),
        };
        let text = format!("{s:?}");
        assert!(!text.contains("shh"), "{text}");
        let hs = HubSpot::new(s).unwrap();
        assert!(!format!("{hs:?}").contains("shh"));
    }

    #[test]
    fn bad_settings_are_refused_with_the_field_and_a_fix() {
        let mut s = settings();
        s.base_url = "api.hubapi.com".into();
        let err = HubSpot::new(s).unwrap_err();
        assert!(err.message.contains("base_url"), "{}", err.message);
        let mut s = settings();
        s.request_timeout = Duration::ZERO;
        assert!(
            HubSpot::new(s)
                .unwrap_err()
                .message
                .contains("request_timeout")
        );
    }

    #[test]
    fn write_limits_are_hubspots_batch_sizes_without_bulk_or_conditions() {
        let hs = HubSpot::new(settings()).unwrap();
        let limits = hs.write_limits();
        assert_eq!(limits.max_batch, 100);
        assert_eq!(limits.max_read_batch, 100);
        assert_eq!(limits.bulk_threshold, None);
        assert!(!limits.conditional_writes);
        assert_eq!(
            hs.objects(),
            &[ObjectKind::Owner, ObjectKind::Account, ObjectKind::Contact]
        );
    }

    #[tokio::test]
    async fn hubspot_has_no_bulk_path_and_says_so_without_calling_out() {
        // The contract's default: nothing is sent (the base URL does not listen).
        let hs = HubSpot::new(settings()).unwrap();
        let change = OwnerChange {
            id: RecordId::from("1"),
            from: None,
            to: leadroute_crm::OwnerId::new("2"),
            if_unmodified_since: None,
        };
        let err = hs
            .apply_bulk(ObjectKind::Contact, &[change])
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unsupported);
        assert!(
            err.message.contains("hubspot has no bulk write path"),
            "{}",
            err.message
        );
        let err = hs
            .bulk_abort(ObjectKind::Contact, "750x")
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unsupported);
        assert_eq!(hs.usage().calls, 0);
    }
}
