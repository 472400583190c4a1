//! Form-fill streams shared by both simulators (`POST /__sim/stream`): N new
//! records per second for T seconds, each created through the simulator's own
//! public create path (so webhooks and outbound messages fire), with the id and
//! creation instant of every record kept for `GET /__sim/stream/{id}`.
//!
//! Timing: one tokio interval whose period is `1 s / per_second`, started at
//! the request, so the k-th record is due at `start + k × period` whatever the
//! previous creates cost (no drift); late ticks are caught up at once. A stream
//! stops early when its simulator shuts down.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};

/// Most records per second a stream may ask for.
pub(crate) const MAX_PER_SECOND: u32 = 1_000;
/// Longest stream, in seconds.
pub(crate) const MAX_SECONDS: u32 = 3_600;
/// Creation errors kept in a stream's report (the count covers all of them).
const MAX_KEPT_ERRORS: usize = 20;

/// `POST /__sim/stream` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamRequest {
    /// New records per second (1–1,000).
    pub(crate) per_second: u32,
    /// For how many seconds (1–3,600).
    pub(crate) seconds: u32,
    /// Object to create; each simulator names its default and accepted values.
    #[serde(default)]
    pub(crate) object: Option<String>,
    /// Seed of the generated form fills (default: the simulator's seed plus the stream id).
    #[serde(default)]
    pub(crate) seed: Option<u64>,
}

impl StreamRequest {
    /// Parses and bounds-checks a request body; `Err` is the message for a 400.
    pub(crate) fn parse(body: &[u8]) -> Result<StreamRequest, String> {
        let request: StreamRequest = serde_json::from_slice(body).map_err(|e| {
            format!("expected {{\"per_second\": N, \"seconds\": T, \"object\": \"…\"}}: {e}")
        })?;
        if !(1..=MAX_PER_SECOND).contains(&request.per_second) {
            return Err(format!(
                "per_second must be between 1 and {MAX_PER_SECOND}, got {}",
                request.per_second
            ));
        }
        if !(1..=MAX_SECONDS).contains(&request.seconds) {
            return Err(format!(
                "seconds must be between 1 and {MAX_SECONDS}, got {}",
                request.seconds
            ));
        }
        Ok(request)
    }

    /// Records the stream will create.
    pub(crate) fn planned(&self) -> u64 {
        u64::from(self.per_second) * u64::from(self.seconds)
    }
}

/// One created record.
#[derive(Debug, Clone)]
struct Created {
    id: String,
    at_ms: i64,
}

/// Progress of one stream.
#[derive(Debug)]
pub(crate) struct StreamState {
    id: u64,
    object: String,
    per_second: u32,
    seconds: u32,
    started_at_ms: i64,
    created: Vec<Created>,
    failed: u64,
    errors: Vec<String>,
    done: bool,
    stopped: bool,
}

impl StreamState {
    fn report(&self) -> Value {
        let planned = u64::from(self.per_second) * u64::from(self.seconds);
        json!({
            "id": self.id.to_string(),
            "object": self.object,
            "per_second": self.per_second,
            "seconds": self.seconds,
            "planned": planned,
            "created": self.created.len(),
            "failed": self.failed,
            "errors": self.errors,
            "done": self.done,
            "stopped_early": self.stopped,
            "started_at": iso(self.started_at_ms),
            "started_at_ms": self.started_at_ms,
            "records": self.created.iter().map(|c| json!({
                "id": c.id,
                "created_at": iso(c.at_ms),
                "created_at_ms": c.at_ms,
            })).collect::<Vec<_>>(),
        })
    }
}

/// A simulator's streams, by id.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    next_id: u64,
    by_id: BTreeMap<u64, Arc<Mutex<StreamState>>>,
}

impl Streams {
    /// Registers a new stream and returns its id and state handle.
    pub(crate) fn open(
        &mut self,
        object: &str,
        request: &StreamRequest,
    ) -> (u64, Arc<Mutex<StreamState>>) {
        self.next_id += 1;
        let id = self.next_id;
        let state = Arc::new(Mutex::new(StreamState {
            id,
            object: object.to_owned(),
            per_second: request.per_second,
            seconds: request.seconds,
            started_at_ms: now_ms(),
            created: Vec::new(),
            failed: 0,
            errors: Vec::new(),
            done: false,
            stopped: false,
        }));
        self.by_id.insert(id, state.clone());
        (id, state)
    }

    /// The report of stream `id` (`None` for an unknown id).
    pub(crate) fn report(&self, id: &str) -> Option<Value> {
        let id = id.trim().parse::<u64>().ok()?;
        self.by_id.get(&id).map(|s| s.lock().report())
    }

    /// Every stream's report without its records (for listing).
    pub(crate) fn summaries(&self) -> Value {
        Value::Array(
            self.by_id
                .values()
                .map(|s| {
                    let mut r = s.lock().report();
                    if let Some(map) = r.as_object_mut() {
                        map.remove("records");
                    }
                    r
                })
                .collect(),
        )
    }
}

/// The answer to `POST /__sim/stream`: the stream id and where to follow it.
pub(crate) fn accepted(id: u64, object: &str, request: &StreamRequest) -> Value {
    json!({
        "id": id.to_string(),
        "object": object,
        "per_second": request.per_second,
        "seconds": request.seconds,
        "planned": request.planned(),
        "status_url": format!("/__sim/stream/{id}"),
    })
}

/// Plays a stream: calls `create(k)` for k = 0, 1, … at `per_second` a second
/// until `seconds` have passed or `stop` resolves. `create` answers the new
/// record's id or an error message.
pub(crate) async fn play<F>(
    state: Arc<Mutex<StreamState>>,
    request: StreamRequest,
    stop: impl Future<Output = ()>,
    mut create: F,
) where
    F: FnMut(u64) -> Result<String, String>,
{
    let planned = request.planned();
    let period = Duration::from_secs(1) / request.per_second;
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    tokio::pin!(stop);
    for k in 0..planned {
        // Stop wins over a due tick: nothing is created once the simulator stops.
        tokio::select! {
            biased;
            () = &mut stop => {
                state.lock().stopped = true;
                break;
            }
            _ = ticks.tick() => {}
        }
        let result = create(k);
        let at_ms = now_ms();
        let mut s = state.lock();
        match result {
            Ok(id) => s.created.push(Created { id, at_ms }),
            Err(message) => {
                s.failed += 1;
                if s.errors.len() < MAX_KEPT_ERRORS {
                    s.errors.push(message);
                }
            }
        }
    }
    state.lock().done = true;
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_out_of_bounds_are_refused_with_the_allowed_range() {
        let err = StreamRequest::parse(br#"{"per_second":0,"seconds":5}"#).unwrap_err();
        assert!(err.contains("between 1 and 1000"), "{err}");
        let err = StreamRequest::parse(br#"{"per_second":5,"seconds":99999}"#).unwrap_err();
        assert!(err.contains("between 1 and 3600"), "{err}");
        assert!(StreamRequest::parse(b"nope").is_err());
        let ok =
            StreamRequest::parse(br#"{"per_second":5,"seconds":60,"object":"contacts"}"#).unwrap();
        assert_eq!(ok.planned(), 300);
    }

    #[tokio::test]
    async fn a_stream_creates_per_second_times_seconds_records_spread_over_each_second() {
        let mut streams = Streams::default();
        let request = StreamRequest::parse(br#"{"per_second":20,"seconds":1}"#).unwrap();
        let (_, state) = streams.open("contacts", &request);
        let start = tokio::time::Instant::now();
        let mut due = Vec::new();
        play(state.clone(), request, std::future::pending(), |k| {
            due.push(start.elapsed());
            Ok(format!("r{k}"))
        })
        .await;
        assert_eq!(due.len(), 20);
        // Record k is due at k × 50 ms: spread over the second, and no drift
        // (never early; late only by scheduling noise, caught up at once).
        for (k, at) in due.iter().enumerate() {
            let planned = Duration::from_millis(50) * k as u32;
            assert!(*at >= planned, "record {k} at {at:?}, before {planned:?}");
            assert!(
                *at < planned + Duration::from_millis(500),
                "record {k} at {at:?}, long after {planned:?}"
            );
        }
        let report = streams.report("1").unwrap();
        assert_eq!(report["created"], 20);
        assert_eq!(report["done"], true);
        assert_eq!(report["records"][19]["id"], "r19");
    }

    #[tokio::test]
    async fn a_stream_stops_when_its_simulator_stops() {
        let mut streams = Streams::default();
        let request = StreamRequest::parse(br#"{"per_second":100,"seconds":60}"#).unwrap();
        let (_, state) = streams.open("leads", &request);
        let stop = tokio::time::sleep(Duration::from_millis(105));
        play(state.clone(), request, stop, |k| Ok(k.to_string())).await;
        let report = state.lock().report();
        let created = report["created"].as_u64().unwrap();
        // About 11 at 100/s in 105 ms; a loaded machine may catch up a few late ticks.
        assert!(
            (1..=40).contains(&created),
            "{created} records in 105 ms at 100/s"
        );
        assert_eq!(report["stopped_early"], true);
        assert_eq!(report["done"], true);
    }
}
