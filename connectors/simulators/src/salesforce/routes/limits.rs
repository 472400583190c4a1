//! `GET limits`: the org's limits with live `DailyApiRequests`.

use std::time::Instant;

use serde_json::{Value as Json, json};

use super::super::server::{Resp, Shared};

pub(crate) fn get(shared: &Shared) -> Resp {
    let (used, max) = {
        let mut allocation = shared.allocation.lock();
        (allocation.used(Instant::now()), allocation.limit)
    };
    let bulk_jobs = shared.bulk.lock().len() as u64;
    let fixed = |max: u64| json!({"Max": max, "Remaining": max});
    let mut out = serde_json::Map::new();
    out.insert("ConcurrentAsyncGetReportInstances".into(), fixed(200));
    out.insert("ConcurrentSyncReportRuns".into(), fixed(20));
    out.insert(
        "DailyApiRequests".into(),
        json!({"Max": max, "Remaining": max.saturating_sub(used)}),
    );
    out.insert("DailyAsyncApexExecutions".into(), fixed(250_000));
    out.insert("DailyBulkV2QueryJobs".into(), fixed(10_000));
    out.insert("DailyBulkApiRequests".into(), fixed(15_000));
    out.insert(
        "DailyBulkApiBatches".into(),
        json!({"Max": 15_000, "Remaining": 15_000u64.saturating_sub(bulk_jobs)}),
    );
    out.insert("DailyStreamingApiEvents".into(), fixed(1_000_000));
    out.insert("DataStorageMB".into(), fixed(5_120));
    out.insert("FileStorageMB".into(), fixed(20_480));
    out.insert("HourlyTimeBasedWorkflow".into(), fixed(1_000));
    out.insert("SingleEmail".into(), fixed(5_000));
    Resp::ok(Json::Object(out))
}
