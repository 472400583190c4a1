//! The hint processor: drains the webhook inbox by refetching the hinted records and
//! storing what the CRM says now.
//!
//! Hints are never trusted as data. Duplicates and out-of-order deliveries are harmless
//! because the refetched state and the store's `updated_at` guard decide what is kept.

use std::collections::BTreeMap;

use chrono::Utc;
use leadroute_crm::{Crm, ObjectKind, RecordId};
use tracing::{debug, warn};

use super::{Mirror, MirrorError};
use crate::store::ApplyStats;

/// What one drain of the inbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HintReport {
    /// Inbox rows handled (done).
    pub processed: usize,
    /// Distinct records refetched.
    pub refetched: usize,
    pub stored: ApplyStats,
}

impl<C: Crm> Mirror<C> {
    /// Takes up to `batch` pending hints, refetches their records (one `fetch` per
    /// object kind), stores the result and marks the hints done. On a CRM error the
    /// hints stay pending with an attempt counted, and the error is returned.
    pub async fn process_hints(&self, batch: usize) -> Result<HintReport, MirrorError> {
        let items = self.store.pending_hints(&self.org, batch).await?;
        let mut report = HintReport::default();
        if items.is_empty() {
            return Ok(report);
        }
        let mut by_object: BTreeMap<ObjectKind, (Vec<RecordId>, Vec<i64>)> = BTreeMap::new();
        for item in &items {
            let (ids, seqs) = by_object.entry(item.object).or_default();
            if !ids.contains(&item.id) {
                ids.push(item.id.clone());
            }
            seqs.push(item.seq);
        }
        for (object, (ids, seqs)) in by_object {
            if !self.crm.objects().contains(&object) {
                // A hint for something this CRM does not mirror (a connector bug or a
                // newer subscription): nothing to refetch.
                warn!(%object, "webhook hint for an object this CRM does not mirror; dropping it");
                self.store.finish_hints(&seqs, Utc::now()).await?;
                report.processed += seqs.len();
                continue;
            }
            match self.crm.fetch(object, &ids).await {
                Ok(changes) => {
                    let stats = self
                        .store
                        .apply_changes(&self.org, object, &changes, None)
                        .await?;
                    self.store.finish_hints(&seqs, Utc::now()).await?;
                    // Seen when the webhook arrived, not when the refetch landed.
                    let received = items
                        .iter()
                        .filter(|i| i.object == object)
                        .map(|i| i.received_at)
                        .min();
                    self.report_touched_since(&changes, received).await;
                    debug!(%object, records = ids.len(), upserted = stats.upserted, "hints refetched");
                    report.processed += seqs.len();
                    report.refetched += ids.len();
                    report.stored += stats;
                }
                Err(source) => {
                    self.store
                        .fail_hints(&seqs, &super::error_chain(&source))
                        .await?;
                    return Err(MirrorError::Refetch { object, source });
                }
            }
        }
        Ok(report)
    }

    /// Drains the inbox completely (until no pending hints remain).
    pub async fn drain_hints(&self, batch: usize) -> Result<HintReport, MirrorError> {
        let mut total = HintReport::default();
        loop {
            let report = self.process_hints(batch).await?;
            if report.processed == 0 {
                return Ok(total);
            }
            total.processed += report.processed;
            total.refetched += report.refetched;
            total.stored += report.stored;
        }
    }
}
