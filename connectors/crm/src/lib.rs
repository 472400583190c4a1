//! The contract between leadroute's core and a CRM connector.
//!
//! The core (mirror, reconciler, writer) is generic over [`Crm`]; each connector crate
//! (`leadroute-hubspot`, `leadroute-salesforce`) implements it, and only the binary's
//! `app.rs` names a concrete connector. Everything here is CRM-neutral: HubSpot
//! contacts and Salesforce Leads/Contacts are both [`PersonRecord`]s, HubSpot companies
//! and Salesforce Accounts are [`AccountRecord`]s, HubSpot owners and Salesforce
//! Users/Queues are [`OwnerRecord`]s.
//!
//! The module [`conformance`] holds the suite every connector must pass against its
//! simulator.

pub mod conformance;
mod error;
mod records;

pub use error::{CrmError, ErrorKind, Recovery};
pub use records::*;

use std::future::Future;

/// The org a connector talks to: one HubSpot portal or one Salesforce org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgIdentity {
    /// The CRM's own id for it: the HubSpot portal (hub) id, the Salesforce org id
    /// (`00D…`, 18 characters).
    pub id: String,
}

/// A CRM leadroute mirrors and writes owners to.
///
/// # Reading
/// [`Crm::changes`] pages through one object's changes. With no cursor it does a full
/// sync (every live record, using the largest page the API allows); with a cursor it
/// returns what changed since, starting an overlap window behind the watermark so that
/// late-visible writes (search index lag, late commits) are not missed. Pages may
/// therefore repeat records already seen: the caller de-duplicates by id and
/// modification time. The cursor returned with each page is opaque, serialisable
/// (store it as text) and safe to resume from after a crash: resuming never skips a
/// record, and re-reads at most the overlap window.
///
/// # Writing
/// [`Crm::apply`] sets owners. A batch never fails as a whole because of one bad
/// record: each change comes back with its own [`WriteOutcome`], in input order. It may
/// be retried after a timeout, so it is idempotent: the writer compares before writing
/// (via [`Crm::current_owners`]) and never sends a change the CRM already holds.
/// `Err` means the whole call did not happen (or its outcome is unknown, see
/// [`ErrorKind::is_outcome_unknown`]): the caller re-reads before retrying.
///
/// # Concurrency
/// Implementations are cheap to clone behind an `Arc` and safe to call from several
/// tasks; they share one rate budget per CRM org (see [`Crm::usage`]).
pub trait Crm: Send + Sync + 'static {
    /// Which CRM this is, for record references (`hubspot:contact:123`).
    fn kind(&self) -> CrmKind;

    /// Objects this CRM mirrors, in the order a full sync should fetch them
    /// (owners first, then accounts, then people).
    fn objects(&self) -> &'static [ObjectKind];

    /// One page of changes to `object` after `cursor` (`None`: full sync from scratch).
    fn changes(
        &self,
        object: ObjectKind,
        cursor: Option<&Cursor>,
    ) -> impl Future<Output = Result<Page, CrmError>> + Send;

    /// Reads the current state of specific records (a webhook hint, a compare before
    /// write, a refetch after a merge). Ids that no longer exist come back as
    /// [`Change::Deleted`]; ids merged away come back as [`Change::Merged`] followed
    /// by the survivor's upsert.
    fn fetch(
        &self,
        object: ObjectKind,
        ids: &[RecordId],
    ) -> impl Future<Output = Result<Vec<Change>, CrmError>> + Send;

    /// The owner each record has now, read in as few calls as the API allows. Missing
    /// or deleted records are absent from the result.
    fn current_owners(
        &self,
        object: ObjectKind,
        ids: &[RecordId],
    ) -> impl Future<Output = Result<Vec<CurrentOwner>, CrmError>> + Send;

    /// Sets owners; at most [`WriteLimits::max_batch`] changes of one object kind.
    /// One outcome per change, in input order.
    fn apply(
        &self,
        object: ObjectKind,
        batch: &[OwnerChange],
    ) -> impl Future<Output = Result<Vec<WriteOutcome>, CrmError>> + Send;

    /// Sets owners of one object kind through the CRM's bulk path (Salesforce Bulk API
    /// 2.0 ingest), for change sets of at least [`WriteLimits::bulk_threshold`]; any
    /// size the connector accepts in one job. Same contract as [`Crm::apply`]: one
    /// outcome per change in input order, a bad record never fails the job, `Err`
    /// means the job as a whole failed or its outcome is unknown (the caller re-reads
    /// before sending anything again). Bulk writes are never conditional
    /// (`if_unmodified_since` is ignored) and must not fire assignment rules.
    ///
    /// This is [`Crm::bulk_start`] then [`Crm::bulk_run`]; a caller that must record
    /// the job's id before the job can write anything (the writer's journal) calls the
    /// two itself.
    fn apply_bulk(
        &self,
        object: ObjectKind,
        batch: &[OwnerChange],
    ) -> impl Future<Output = Result<BulkWrite, CrmError>> + Send {
        let start = self.bulk_start(object, batch);
        async move {
            let job = start.await?;
            self.bulk_run(job).await
        }
    }

    /// The first half of a bulk write: creates the job and hands it the changes, but
    /// does not let it start: until [`Crm::bulk_run`] the job writes nothing, and
    /// [`Crm::bulk_abort`] with [`BulkJob::id`] ends it for good (after a crash, say).
    /// `Err` means no job holds these changes (one that was created is aborted).
    ///
    /// CRMs without a bulk path keep this default, which answers
    /// [`ErrorKind::Unsupported`] without a call, and report `bulk_threshold: None`.
    fn bulk_start(
        &self,
        object: ObjectKind,
        batch: &[OwnerChange],
    ) -> impl Future<Output = Result<BulkJob, CrmError>> + Send {
        let message = format!(
            "{} has no bulk write path ({} changes of {object} were not sent); use apply",
            self.kind(),
            batch.len()
        );
        async move { Err(CrmError::new(ErrorKind::Unsupported, message)) }
    }

    /// The second half of a bulk write: lets the job from [`Crm::bulk_start`] run,
    /// waits until it is finished and answers as [`Crm::apply_bulk`] does. A job the
    /// connector gives up waiting on is aborted (best effort) and answers an error
    /// whose outcome is unknown.
    fn bulk_run(&self, job: BulkJob) -> impl Future<Output = Result<BulkWrite, CrmError>> + Send {
        let message = format!(
            "{} has no bulk write path (job {:?} of {} changes was not run)",
            self.kind(),
            job.id,
            job.changes.len()
        );
        async move { Err(CrmError::new(ErrorKind::Unsupported, message)) }
    }

    /// Ends a bulk job known only by its id (one a crashed process started): aborts it
    /// if it has not finished, then waits (bounded by the connector's bulk timeout)
    /// until it is in a final state, and says which. Once this returns `Ok` the job
    /// writes nothing more, so reading owners tells what it did. A job the CRM no
    /// longer knows is [`BulkJobState::Gone`] (deleted once finished, or expired).
    /// `Err` means the job may still be running: do not write its records.
    fn bulk_abort(
        &self,
        object: ObjectKind,
        job_id: &str,
    ) -> impl Future<Output = Result<BulkJobEnd, CrmError>> + Send {
        let message = format!(
            "{} has no bulk write path, so it has no job {job_id} of {object} to abort",
            self.kind()
        );
        async move { Err(CrmError::new(ErrorKind::Unsupported, message)) }
    }

    /// Which org this connector talks to (HubSpot portal id, Salesforce org id), so a
    /// store that mirrors one org is never filled with another's records. `None` when
    /// the connector cannot tell; the default answers that without a call.
    fn org_identity(&self) -> impl Future<Output = Result<Option<OrgIdentity>, CrmError>> + Send {
        async { Ok(None) }
    }

    /// Batch sizes and other write facts the writer plans with.
    fn write_limits(&self) -> WriteLimits;

    /// API usage and headroom as last seen in response headers.
    fn usage(&self) -> ApiUsage;

    /// Verifies and parses an inbound notification (HubSpot webhook batch, Salesforce
    /// outbound message). Returns the records to refetch and the response to send.
    /// Notifications are hints only: the core refetches, never trusts payloads.
    fn intake(&self, request: &InboundRequest) -> Result<Intake, IntakeError>;
}
