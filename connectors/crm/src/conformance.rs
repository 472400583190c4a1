//! The conformance suite every connector passes against its simulator.
//!
//! # Wiring a connector to it
//! In the connector's integration tests (`connectors/<crm>/tests/conformance.rs`):
//! 1. Spawn the simulator on `127.0.0.1:0` and build the connector against it with a
//!    small page size (so the data spans several pages) and a known overlap.
//! 2. Implement [`OrgControl`] for a small struct holding the simulator handle. Each
//!    method drives the simulator's control API (`mutate`, `set_faults`, `state`):
//!    - `random_edits`: human-style edits (owner changes, field edits, creates,
//!      deletes, merges where the CRM has them) chosen from the seed.
//!    - `expected`: the simulator's live records of an object, converted to contract
//!      [`Record`]s. Only the fields in [`Fingerprint`] are compared, so `raw` and
//!      `fields` may be left empty.
//!    - `expire_sessions`: make every issued access token answer the CRM's 401.
//!    - `exhaust_quota` / `restore_quota`: make the daily allocation run out (the
//!      next call is refused as the CRM refuses it) and back.
//!    - `bulk_stamp`: give `count` records one identical modification stamp (Salesforce:
//!      one `SystemModstamp` second; HubSpot: one `lastmodifieddate` millisecond).
//!    - `write_fixture`: owner changes that must succeed, ones whose target owner is
//!      inactive, and ones whose record is deleted.
//!    - `owner_of`: the owner a record holds in the simulator now.
//! 3. Call [`run`] (or the individual `check_*` functions) and assert it returns `Ok`;
//!    the error names the check and the first differences.
//!
//! The suite is CRM-neutral: it talks to the connector only through [`Crm`], and to the
//! org only through [`OrgControl`]. It needs no runtime of its own.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::{
    Change, Crm, Cursor, ErrorKind, ObjectKind, OwnerChange, OwnerId, Record, RecordId, RejectKind,
    WriteOutcome,
};

/// Test-side control of the simulated org. See the module docs for each method.
pub trait OrgControl: Send + Sync {
    fn random_edits(
        &self,
        seed: u64,
        count: usize,
    ) -> impl Future<Output = Result<(), String>> + Send;
    fn expected(
        &self,
        object: ObjectKind,
    ) -> impl Future<Output = Result<Vec<Record>, String>> + Send;
    fn expire_sessions(&self) -> impl Future<Output = Result<(), String>> + Send;
    fn exhaust_quota(&self) -> impl Future<Output = Result<(), String>> + Send;
    fn restore_quota(&self) -> impl Future<Output = Result<(), String>> + Send;
    fn bulk_stamp(
        &self,
        object: ObjectKind,
        count: usize,
    ) -> impl Future<Output = Result<Vec<RecordId>, String>> + Send;
    fn write_fixture(
        &self,
        object: ObjectKind,
    ) -> impl Future<Output = Result<WriteFixture, String>> + Send;
    fn owner_of(
        &self,
        object: ObjectKind,
        id: &RecordId,
    ) -> impl Future<Output = Result<Option<OwnerId>, String>> + Send;
}

/// Owner changes with known expected outcomes.
#[derive(Debug, Clone, Default)]
pub struct WriteFixture {
    /// Must come back [`WriteOutcome::Applied`], and the org must then hold `to`.
    pub good: Vec<OwnerChange>,
    /// Target owner is inactive: [`RejectKind::InactiveOwner`].
    pub inactive_owner: Vec<OwnerChange>,
    /// Record deleted: [`RejectKind::NotFound`].
    pub deleted: Vec<OwnerChange>,
}

/// Suite knobs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The connector's overlap window (restarts may re-read at most this far back).
    pub overlap: Duration,
    /// The connector's page size: `bulk_stamp` stamps one and a half pages' worth.
    pub page_size: usize,
    /// Random edits per incremental check.
    pub edits: usize,
    pub seed: u64,
    /// Guard against a connector that never says `done`.
    pub max_pages: usize,
    /// The object used for the single-object checks (the largest person object).
    pub person_object: ObjectKind,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            overlap: Duration::from_secs(300),
            page_size: 200,
            edits: 40,
            seed: 7,
            max_pages: 10_000,
            person_object: ObjectKind::Contact,
        }
    }
}

/// A failed check: which one and what differed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conformance check `{check}` failed: {detail}")]
pub struct Failure {
    pub check: &'static str,
    pub detail: String,
}

fn fail(check: &'static str, detail: impl Into<String>) -> Failure {
    Failure {
        check,
        detail: detail.into(),
    }
}

/// What the suite compares between the mirror and the org: ownership, identity,
/// links and freshness — not the raw payloads, which differ in representation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fingerprint {
    pub object: ObjectKind,
    pub id: String,
    pub owner_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    /// Owners: active flag. People: converted flag.
    pub flag: bool,
    pub account_ids: Vec<String>,
    /// Epoch seconds; `None` when the org side does not know it (compared only then).
    pub updated_at: Option<i64>,
}

impl Fingerprint {
    pub fn of(record: &Record) -> Fingerprint {
        match record {
            Record::Owner(o) => Fingerprint {
                object: ObjectKind::Owner,
                id: o.id.0.clone(),
                owner_id: None,
                email: o.email.clone(),
                name: Some(o.name.clone()),
                flag: o.active,
                account_ids: Vec::new(),
                updated_at: None,
            },
            Record::Account(a) => Fingerprint {
                object: ObjectKind::Account,
                id: a.id.0.clone(),
                owner_id: a.owner_id.as_ref().map(|o| o.0.clone()),
                email: None,
                name: a.name.clone(),
                flag: false,
                account_ids: a.parent_id.iter().map(|p| p.0.clone()).collect(),
                updated_at: Some(a.updated_at.timestamp()),
            },
            Record::Activity(a) => {
                // The people it concerns stand where a person's accounts do.
                let mut account_ids: Vec<String> =
                    a.people.iter().map(|p| p.id.0.clone()).collect();
                account_ids.sort();
                Fingerprint {
                    object: ObjectKind::Activity,
                    id: a.id.0.clone(),
                    owner_id: a.owner_id.as_ref().map(|o| o.0.clone()),
                    email: None,
                    name: Some(a.kind.as_str().to_owned()),
                    flag: a.done,
                    account_ids,
                    updated_at: Some(a.updated_at.timestamp()),
                }
            }
            Record::Person(p) => {
                let mut account_ids: Vec<String> = p
                    .accounts
                    .iter()
                    .flatten()
                    .map(|l| l.account_id.0.clone())
                    .collect();
                account_ids.sort();
                Fingerprint {
                    object: p.object,
                    id: p.id.0.clone(),
                    owner_id: p.owner_id.as_ref().map(|o| o.0.clone()),
                    email: p.email.clone(),
                    name: p.last_name.clone(),
                    flag: p.converted,
                    account_ids,
                    updated_at: Some(p.updated_at.timestamp()),
                }
            }
        }
    }
}

/// An in-memory mirror built only from [`Page`](crate::Page)s, as the store builds it.
#[derive(Debug, Default, Clone)]
pub struct Mirror {
    pub records: BTreeMap<(ObjectKind, String), Record>,
    /// The stored cursor per object, kept as text exactly as a store would keep it.
    pub cursors: BTreeMap<ObjectKind, String>,
}

/// What one sync run saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncStats {
    pub pages: usize,
    pub calls: u64,
    pub upserts: usize,
    pub deletes: usize,
    /// Upserts of an `(id, stamp)` already emitted in this run or held by the mirror.
    pub repeats: usize,
    /// The oldest stamp among the repeats.
    pub oldest_repeat: Option<DateTime<Utc>>,
}

impl Mirror {
    /// Applies one change, as the store does: newer-or-equal upserts win; deletes and
    /// merge losers leave.
    pub fn apply(&mut self, change: &Change, stats: &mut SyncStats) {
        match change {
            Change::Upsert(record) => {
                let key = (record.object(), record.id().to_owned());
                let stamp = record.updated_at();
                if let Some(old) = self.records.get(&key) {
                    if old.updated_at() == stamp {
                        stats.repeats += 1;
                        if let Some(at) = stamp {
                            stats.oldest_repeat =
                                Some(stats.oldest_repeat.map_or(at, |o| o.min(at)));
                        }
                    }
                    if old.updated_at() > stamp {
                        return;
                    }
                }
                let mut record = record.clone();
                // `accounts: None` means "not read on this page": keep stored links.
                if let (Record::Person(new), Some(Record::Person(old))) =
                    (&mut record, self.records.get(&key))
                {
                    if new.accounts.is_none() {
                        new.accounts = old.accounts.clone();
                    }
                }
                self.records.insert(key, record);
                stats.upserts += 1;
            }
            Change::Deleted { object, id, .. } => {
                self.records.remove(&(*object, id.0.clone()));
                stats.deletes += 1;
            }
            Change::Merged { object, loser, .. } => {
                self.records.remove(&(*object, loser.0.clone()));
                stats.deletes += 1;
            }
        }
    }

    fn fingerprints(&self, object: ObjectKind) -> BTreeMap<String, Fingerprint> {
        self.records
            .iter()
            .filter(|((o, _), _)| *o == object)
            .map(|((_, id), r)| (id.clone(), Fingerprint::of(r)))
            .collect()
    }
}

/// Pages through `object` from the mirror's stored cursor (none: full sync) until the
/// connector says `done`, storing the cursor after every page. With
/// `interrupt_after_first_page`, the closure runs once after the first page (to expire
/// sessions, say) before paging on.
pub async fn sync_object<C: Crm, F, Fut>(
    crm: &C,
    mirror: &mut Mirror,
    object: ObjectKind,
    options: &Options,
    mut interrupt_after_first_page: Option<F>,
) -> Result<SyncStats, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut stats = SyncStats::default();
    loop {
        if stats.pages >= options.max_pages {
            return Err(fail(
                "sync",
                format!("{object}: no `done` after {} pages", stats.pages),
            ));
        }
        // The cursor goes through its text form, exactly as a store keeps it.
        let cursor = mirror.cursors.get(&object).cloned().map(Cursor);
        let page = crm.changes(object, cursor.as_ref()).await.map_err(|e| {
            fail(
                "sync",
                format!("{object}: page {} failed: {e}", stats.pages + 1),
            )
        })?;
        stats.pages += 1;
        stats.calls += u64::from(page.calls);
        for change in &page.changes {
            if change.object() != object {
                return Err(fail(
                    "sync",
                    format!("asked for {object}, got a {} change", change.object()),
                ));
            }
            mirror.apply(change, &mut stats);
        }
        mirror.cursors.insert(object, page.cursor.0.clone());
        if page.done {
            return Ok(stats);
        }
        if stats.pages == 1 {
            if let Some(f) = interrupt_after_first_page.as_mut() {
                f().await
                    .map_err(|e| fail("sync", format!("org control failed mid-sync: {e}")))?;
            }
        }
    }
}

/// No interruption, for [`sync_object`].
pub type NoInterrupt = fn() -> std::future::Ready<Result<(), String>>;

/// [`sync_object`] without an interruption: pages until `done`.
pub async fn sync_until_done<C: Crm>(
    crm: &C,
    mirror: &mut Mirror,
    object: ObjectKind,
    options: &Options,
) -> Result<SyncStats, Failure> {
    sync_object(crm, mirror, object, options, None::<NoInterrupt>).await
}

/// Compares the mirror's view of `object` with the org's.
pub async fn compare<O: OrgControl>(
    check: &'static str,
    mirror: &Mirror,
    org: &O,
    object: ObjectKind,
) -> Result<(), Failure> {
    let expected: BTreeMap<String, Fingerprint> = org
        .expected(object)
        .await
        .map_err(|e| fail(check, format!("org state of {object}: {e}")))?
        .iter()
        .map(|r| (r.id().to_owned(), Fingerprint::of(r)))
        .collect();
    let mut got = mirror.fingerprints(object);
    let mut problems = Vec::new();
    for (id, want) in &expected {
        match got.remove(id) {
            None => problems.push(format!("{object} {id} missing from the mirror")),
            Some(mut have) => {
                if want.updated_at.is_none() {
                    have.updated_at = None;
                }
                if &have != want {
                    problems.push(format!(
                        "{object} {id} differs: mirror {have:?} vs org {want:?}"
                    ));
                }
            }
        }
    }
    for id in got.keys() {
        problems.push(format!(
            "{object} {id} is in the mirror but not live in the org"
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    let total = problems.len();
    problems.truncate(8);
    Err(fail(
        check,
        format!(
            "{total} differences in {object} ({} in the org); first: {}",
            expected.len(),
            problems.join("; ")
        ),
    ))
}

/// Full sync of every object; the mirror must equal the org.
pub async fn check_full_sync<C: Crm, O: OrgControl>(
    crm: &C,
    org: &O,
    options: &Options,
) -> Result<Mirror, Failure> {
    let mut mirror = Mirror::default();
    for object in crm.objects() {
        sync_until_done(crm, &mut mirror, *object, options).await?;
        compare("full_sync", &mirror, org, *object).await?;
    }
    Ok(mirror)
}

/// Random human edits, then an incremental pass per object from the stored cursors:
/// the mirror must equal the org again.
pub async fn check_incremental_after_edits<C: Crm, O: OrgControl>(
    crm: &C,
    org: &O,
    mirror: &mut Mirror,
    options: &Options,
) -> Result<(), Failure> {
    org.random_edits(options.seed, options.edits)
        .await
        .map_err(|e| fail("incremental", format!("random edits: {e}")))?;
    for object in crm.objects() {
        sync_until_done(crm, mirror, *object, options).await?;
        compare("incremental", mirror, org, *object).await?;
    }
    Ok(())
}

/// A process restart is a fresh connector reading the stored cursor text. Both
/// restart points must resume without loss and re-read at most the overlap window:
/// in the middle of a full sync, and after a finished pass with nothing changed.
pub async fn check_restart_resumes<C: Crm, O: OrgControl>(
    crm: &C,
    org: &O,
    options: &Options,
) -> Result<(), Failure> {
    let object = options.person_object;
    let overlap = chrono::Duration::from_std(options.overlap).unwrap_or(chrono::Duration::zero());
    // Mid-sync: one page, "crash", resume from the stored text.
    let mut mirror = Mirror::default();
    let first = crm
        .changes(object, None)
        .await
        .map_err(|e| fail("restart", format!("first page: {e}")))?;
    let mut stats = SyncStats::default();
    for change in &first.changes {
        mirror.apply(change, &mut stats);
    }
    let high_before = mirror.records.values().filter_map(Record::updated_at).max();
    mirror.cursors.insert(object, first.cursor.0.clone());
    if !first.done {
        let resumed = sync_until_done(crm, &mut mirror, object, options).await?;
        if let (Some(oldest), Some(high)) = (resumed.oldest_repeat, high_before) {
            if oldest < high - overlap {
                return Err(fail(
                    "restart",
                    format!(
                        "resuming mid-sync re-read a record stamped {oldest}, more than the overlap before the resume point {high}"
                    ),
                ));
            }
        }
    }
    compare("restart", &mirror, org, object).await?;
    // Idle: a finished pass, then another from the stored cursor with no edits.
    let high = mirror.records.values().filter_map(Record::updated_at).max();
    let again = sync_until_done(crm, &mut mirror, object, options).await?;
    if let (Some(oldest), Some(high)) = (again.oldest_repeat, high) {
        if oldest < high - overlap {
            return Err(fail(
                "restart",
                format!(
                    "an idle pass re-read a record stamped {oldest}, more than the overlap before the watermark {high}"
                ),
            ));
        }
    }
    compare("restart", &mirror, org, object).await
}

/// Many records sharing one stamp, more than a page of them, are all mirrored by the
/// next incremental pass (the page boundary falls inside the shared stamp).
pub async fn check_shared_stamp_across_pages<C: Crm, O: OrgControl>(
    crm: &C,
    org: &O,
    mirror: &mut Mirror,
    options: &Options,
) -> Result<(), Failure> {
    let object = options.person_object;
    let count = options.page_size + options.page_size / 2 + 1;
    let stamped = org
        .bulk_stamp(object, count)
        .await
        .map_err(|e| fail("shared_stamp", format!("bulk stamp: {e}")))?;
    if stamped.len() < count {
        return Err(fail(
            "shared_stamp",
            format!(
                "the org stamped {} records, {count} were asked for",
                stamped.len()
            ),
        ));
    }
    sync_until_done(crm, mirror, object, options).await?;
    // `compare` checks every record's stamp, so each of the stamped records must have
    // arrived with the shared stamp.
    compare("shared_stamp", mirror, org, object).await
}

/// A mixed batch — good changes, inactive target owners, deleted records — comes back
/// with one outcome per change in input order, and the good ones are in the org.
pub async fn check_write_outcomes<C: Crm, O: OrgControl>(
    crm: &C,
    org: &O,
    object: ObjectKind,
) -> Result<(), Failure> {
    let fixture = org
        .write_fixture(object)
        .await
        .map_err(|e| fail("write_outcomes", format!("fixture: {e}")))?;
    if fixture.good.is_empty() || fixture.inactive_owner.is_empty() || fixture.deleted.is_empty() {
        return Err(fail(
            "write_outcomes",
            "the fixture needs at least one good, one inactive-owner and one deleted change",
        ));
    }
    // Interleave so that a connector correlating by anything but position shows it.
    let mut batch = Vec::new();
    let mut want = Vec::new();
    let longest = fixture
        .good
        .len()
        .max(fixture.inactive_owner.len())
        .max(fixture.deleted.len());
    for i in 0..longest {
        if let Some(c) = fixture.inactive_owner.get(i) {
            batch.push(c.clone());
            want.push(Some(RejectKind::InactiveOwner));
        }
        if let Some(c) = fixture.good.get(i) {
            batch.push(c.clone());
            want.push(None);
        }
        if let Some(c) = fixture.deleted.get(i) {
            batch.push(c.clone());
            want.push(Some(RejectKind::NotFound));
        }
    }
    let outcomes = crm
        .apply(object, &batch)
        .await
        .map_err(|e| fail("write_outcomes", format!("apply failed as a whole: {e}")))?;
    if outcomes.len() != batch.len() {
        return Err(fail(
            "write_outcomes",
            format!("{} outcomes for {} changes", outcomes.len(), batch.len()),
        ));
    }
    for ((change, outcome), want) in batch.iter().zip(&outcomes).zip(&want) {
        let ok = match (want, outcome) {
            (None, WriteOutcome::Applied) => true,
            (Some(kind), WriteOutcome::Rejected { kind: got, .. }) => kind == got,
            _ => false,
        };
        if !ok {
            return Err(fail(
                "write_outcomes",
                format!(
                    "{} -> {}: expected {want:?}, got {outcome:?}",
                    change.id, change.to
                ),
            ));
        }
    }
    for change in &fixture.good {
        let owner = org
            .owner_of(object, &change.id)
            .await
            .map_err(|e| fail("write_outcomes", format!("org owner of {}: {e}", change.id)))?;
        if owner.as_ref() != Some(&change.to) {
            return Err(fail(
                "write_outcomes",
                format!(
                    "{} was reported applied but the org holds owner {owner:?}, not {}",
                    change.id, change.to
                ),
            ));
        }
    }
    let ids: Vec<RecordId> = fixture
        .good
        .iter()
        .chain(&fixture.deleted)
        .map(|c| c.id.clone())
        .collect();
    let current = crm
        .current_owners(object, &ids)
        .await
        .map_err(|e| fail("write_outcomes", format!("current_owners: {e}")))?;
    let current: BTreeMap<&RecordId, Option<&OwnerId>> = current
        .iter()
        .map(|c| (&c.id, c.owner_id.as_ref()))
        .collect();
    for change in &fixture.good {
        if current.get(&change.id) != Some(&Some(&change.to)) {
            return Err(fail(
                "write_outcomes",
                format!("current_owners disagrees with the write for {}", change.id),
            ));
        }
    }
    for change in &fixture.deleted {
        if current.contains_key(&change.id) {
            return Err(fail(
                "write_outcomes",
                format!("current_owners returned deleted record {}", change.id),
            ));
        }
    }
    Ok(())
}

/// Sessions expire in the middle of a full sync: the sync finishes without an error
/// and the mirror equals the org.
pub async fn check_auth_expiry_mid_run<C: Crm, O: OrgControl>(
    crm: &C,
    org: &O,
    options: &Options,
) -> Result<(), Failure> {
    let object = options.person_object;
    let mut mirror = Mirror::default();
    sync_object(
        crm,
        &mut mirror,
        object,
        options,
        Some(|| org.expire_sessions()),
    )
    .await?;
    compare("auth_expiry", &mirror, org, object).await
}

/// With the daily allocation gone, a call fails with [`ErrorKind::QuotaExhausted`]
/// saying when it can resume — not a generic or auth error, and not a hang.
pub async fn check_quota_exhaustion<C: Crm, O: OrgControl>(
    crm: &C,
    org: &O,
    mirror: &Mirror,
    options: &Options,
) -> Result<(), Failure> {
    let object = options.person_object;
    org.exhaust_quota()
        .await
        .map_err(|e| fail("quota", format!("exhaust: {e}")))?;
    let cursor = mirror.cursors.get(&object).cloned().map(Cursor);
    let result = crm.changes(object, cursor.as_ref()).await;
    let restored = org.restore_quota().await;
    let err = match result {
        Ok(_) => {
            return Err(fail(
                "quota",
                "a sync page succeeded with the daily allocation exhausted",
            ));
        }
        Err(e) => e,
    };
    if err.kind != ErrorKind::QuotaExhausted {
        return Err(fail(
            "quota",
            format!("expected quota_exhausted, got {err}"),
        ));
    }
    match err.resume_at {
        Some(at) if at > Utc::now() - chrono::Duration::seconds(5) => {}
        other => {
            return Err(fail(
                "quota",
                format!("resume_at must say when to resume, got {other:?}"),
            ));
        }
    }
    restored.map_err(|e| fail("quota", format!("restore: {e}")))
}

/// What [`run`] did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub passed: Vec<&'static str>,
    /// Records per object in the mirror after the full sync.
    pub mirrored: BTreeMap<ObjectKind, usize>,
}

/// Runs every check in an order that keeps them independent: quota exhaustion last,
/// because a connector may rightly keep refusing calls until its estimate passes.
pub async fn run<C: Crm, O: OrgControl>(
    crm: &C,
    org: &O,
    options: &Options,
) -> Result<Report, Failure> {
    let mut report = Report::default();
    let mut mirror = check_full_sync(crm, org, options).await?;
    for object in crm.objects() {
        let n = mirror.records.keys().filter(|(o, _)| o == object).count();
        report.mirrored.insert(*object, n);
    }
    report.passed.push("full_sync");
    check_incremental_after_edits(crm, org, &mut mirror, options).await?;
    report.passed.push("incremental");
    check_shared_stamp_across_pages(crm, org, &mut mirror, options).await?;
    report.passed.push("shared_stamp");
    check_restart_resumes(crm, org, options).await?;
    report.passed.push("restart");
    check_auth_expiry_mid_run(crm, org, options).await?;
    report.passed.push("auth_expiry");
    check_write_outcomes(crm, org, options.person_object).await?;
    report.passed.push("write_outcomes");
    check_quota_exhaustion(crm, org, &mirror, options).await?;
    report.passed.push("quota");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountRecord, RecordId};
    use chrono::TimeZone;

    fn account(id: &str, owner: &str, second: u32) -> Change {
        Change::Upsert(Record::Account(AccountRecord {
            id: RecordId::new(id),
            name: Some("Acme".into()),
            domain: None,
            website: None,
            extra_domains: Vec::new(),
            country: None,
            state: None,
            parent_id: None,
            owner_id: Some(OwnerId::new(owner)),
            employees: None,
            industry: None,
            created_at: None,
            updated_at: Utc.with_ymd_and_hms(2025, 3, 4, 9, 0, second).unwrap(),
            fields: Default::default(),
            raw: serde_json::Value::Null,
        }))
    }

    fn owner(mirror: &Mirror, id: &str) -> Option<String> {
        mirror
            .records
            .get(&(ObjectKind::Account, id.to_owned()))
            .map(|r| Fingerprint::of(r).owner_id.unwrap_or_default())
    }

    #[test]
    fn an_older_upsert_never_overwrites_a_newer_one() {
        let mut mirror = Mirror::default();
        let mut stats = SyncStats::default();
        mirror.apply(&account("a", "new", 5), &mut stats);
        mirror.apply(&account("a", "old", 4), &mut stats);
        assert_eq!(owner(&mirror, "a").as_deref(), Some("new"));
    }

    #[test]
    fn repeats_are_counted_with_their_oldest_stamp() {
        let mut mirror = Mirror::default();
        let mut stats = SyncStats::default();
        mirror.apply(&account("a", "x", 5), &mut stats);
        mirror.apply(&account("b", "x", 3), &mut stats);
        mirror.apply(&account("a", "x", 5), &mut stats);
        mirror.apply(&account("b", "x", 3), &mut stats);
        assert_eq!(stats.repeats, 2);
        assert_eq!(stats.oldest_repeat.map(|t| t.timestamp() % 60), Some(3));
    }

    #[test]
    fn deletes_and_merge_losers_leave_the_mirror() {
        let mut mirror = Mirror::default();
        let mut stats = SyncStats::default();
        mirror.apply(&account("a", "x", 1), &mut stats);
        mirror.apply(&account("b", "x", 1), &mut stats);
        mirror.apply(
            &Change::Deleted {
                object: ObjectKind::Account,
                id: RecordId::new("a"),
                at: None,
                purge: false,
            },
            &mut stats,
        );
        mirror.apply(
            &Change::Merged {
                object: ObjectKind::Account,
                loser: RecordId::new("b"),
                winner: RecordId::new("c"),
                at: None,
            },
            &mut stats,
        );
        assert!(mirror.records.is_empty());
        assert_eq!(stats.deletes, 2);
    }
}
