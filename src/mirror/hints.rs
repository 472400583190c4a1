//! The hint processor: drains the webhook inbox by refetching the hinted records and
//! storing what the CRM says now.
//!
//! Hints are never trusted as data. Duplicates and out-of-order deliveries are harmless
//! because the refetched state and the store's `updated_at` guard decide what is kept.

use std::collections::BTreeMap;

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
                self.store.finish_hints(&seqs, self.now()).await?;
                report.processed += seqs.len();
                continue;
            }
            match self.crm.fetch(object, &ids).await {
                Ok(changes) => {
                    let stats = self
                        .store
                        .apply_changes(&self.org, object, &changes, None)
                        .await?;
                    self.store.finish_hints(&seqs, self.now()).await?;
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

    /// How long to wait before refetching so a burst goes in full batches: `None` to
    /// refetch now. The hints waiting give the arrival rate (their count over the spread
    /// of their arrival times); when that rate fills a batch of `batch` before the oldest
    /// has waited `max`, wait for it. A trickle (one hint, or a rate too slow to fill a
    /// batch in time) is refetched at once.
    pub async fn hint_gather(
        &self,
        batch: usize,
        max: std::time::Duration,
    ) -> Result<Option<std::time::Duration>, MirrorError> {
        let items = self.store.pending_hints(&self.org, batch).await?;
        let n = items.len();
        if n < 2 || n >= batch {
            return Ok(None);
        }
        let (Some(oldest), Some(newest)) = (
            items.iter().map(|i| i.received_at).min(),
            items.iter().map(|i| i.received_at).max(),
        ) else {
            return Ok(None);
        };
        Ok(gather_wait(n, batch, oldest, newest, self.now(), max))
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

/// [`Mirror::hint_gather`]'s arithmetic: `n` hints waiting, arrived from `oldest` to
/// `newest`; `None` to refetch now, else how long until a batch is full at that rate.
fn gather_wait(
    n: usize,
    batch: usize,
    oldest: chrono::DateTime<chrono::Utc>,
    newest: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
    max: std::time::Duration,
) -> Option<std::time::Duration> {
    if n < 2 || n >= batch {
        return None;
    }
    let spread = (newest - oldest).to_std().unwrap_or_default();
    let age = (now - oldest).to_std().unwrap_or_default();
    if spread.is_zero() || age >= max {
        return None;
    }
    // n - 1 arrivals over the spread; the rest of the batch at that rate.
    let per_hint = spread.as_secs_f64() / (n - 1) as f64;
    let fill = std::time::Duration::from_secs_f64(per_hint * (batch - n) as f64);
    (age + fill <= max).then_some(fill)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use std::time::Duration;

    #[test]
    fn a_burst_waits_for_a_full_batch_and_a_trickle_is_refetched_at_once() {
        let t0 = Utc.timestamp_millis_opt(1_000_000).unwrap();
        let ms = |n: i64| t0 + chrono::Duration::milliseconds(n);
        let max = Duration::from_millis(400);
        // An import: 10 hints in 27 ms (about 333 a second): 90 more take about 270 ms.
        let wait = gather_wait(10, 100, t0, ms(27), ms(30), max).unwrap();
        assert!((260..=280).contains(&wait.as_millis()), "{wait:?}");
        // A full batch, a lone hint, or hints of one delivery: at once.
        assert_eq!(gather_wait(100, 100, t0, ms(27), ms(30), max), None);
        assert_eq!(gather_wait(1, 100, t0, t0, ms(5), max), None);
        assert_eq!(gather_wait(3, 100, t0, t0, ms(5), max), None);
        // 20 leads a second: a batch would take seconds, so no waiting.
        assert_eq!(gather_wait(2, 100, t0, ms(50), ms(60), max), None);
        // Waited long enough already.
        assert_eq!(gather_wait(50, 100, t0, ms(150), ms(400), max), None);
    }
}
