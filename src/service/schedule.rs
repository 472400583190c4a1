//! The sidecar's scheduled jobs: cron expressions (with seconds, as the `cron` crate
//! reads them) evaluated in a configured time zone, so "06:00 on weekdays" means 06:00
//! in Berlin across DST changes.
//!
//! The rule for missed runs: each job's last start is stored (`Store::schedule_*`). At
//! every wake-up a job is due when a scheduled instant lies after its last start and at
//! or before now; it then runs ONCE, however many instants it missed while no process
//! was up. A job that never ran is armed at first start (its last start is taken as
//! that moment), so a fresh install does not fire every job at once.
//!
//! Time comes from the caller: the pure part takes `now`, and [`run`] reads a
//! [`Clock`] and sleeps with tokio's timer, so tests drive it with paused time.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::clock::Clock;
use crate::store::Store;

/// What a schedule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Job {
    /// The drift report in every format, written to `[drift] out_dir`.
    DriftReport,
    /// A full re-plan of the org (the safety net under incremental decisions).
    FullReplan,
    /// A full sync, catching changes whose webhooks the CRM never delivered.
    FullSync,
}

impl Job {
    pub const ALL: [Job; 3] = [Job::DriftReport, Job::FullReplan, Job::FullSync];

    pub fn as_str(self) -> &'static str {
        match self {
            Job::DriftReport => "drift_report",
            Job::FullReplan => "full_replan",
            Job::FullSync => "full_sync",
        }
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One job on a cron schedule in a time zone.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub job: Job,
    cron: cron::Schedule,
    tz: Tz,
}

impl Scheduled {
    /// Parses `expr` (sec min hour day-of-month month day-of-week [year]). The error is
    /// a sentence for a config issue.
    pub fn new(job: Job, expr: &str, tz: Tz) -> Result<Self, String> {
        let cron = cron::Schedule::from_str(expr)
            .map_err(|e| format!("{expr:?} is not a cron expression ({e})"))?;
        if cron.after(&Utc::now().with_timezone(&tz)).next().is_none() {
            return Err(format!("{expr:?} never fires after today"));
        }
        Ok(Scheduled { job, cron, tz })
    }

    /// The first scheduled instant strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .after(&t.with_timezone(&self.tz))
            .next()
            .map(|at| at.with_timezone(&Utc))
    }

    /// Whether a scheduled instant lies in `(last, now]`: the job is due.
    pub fn is_due(&self, last: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.next_after(last).is_some_and(|at| at <= now)
    }
}

/// How one job's run ended, as stored and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
        }
    }
}

/// Where each job's last start is kept: the store in production (`Store::schedule_*`),
/// a map in tests that run under paused time (the store's pool has timers of its own).
pub trait RunLog: Send + Sync {
    fn last_run(
        &self,
        job: Job,
    ) -> impl Future<Output = anyhow::Result<Option<DateTime<Utc>>>> + Send;
    fn record_run(
        &self,
        job: Job,
        at: DateTime<Utc>,
        outcome: &'static str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The store's schedule table, for one org.
#[derive(Debug, Clone)]
pub struct StoreLog {
    pub store: Store,
    pub org: crate::domain::OrgId,
}

impl RunLog for StoreLog {
    async fn last_run(&self, job: Job) -> anyhow::Result<Option<DateTime<Utc>>> {
        Ok(self
            .store
            .schedule_last_run(&self.org, job.as_str())
            .await?)
    }

    async fn record_run(
        &self,
        job: Job,
        at: DateTime<Utc>,
        outcome: &'static str,
    ) -> anyhow::Result<()> {
        Ok(self
            .store
            .schedule_record_run(&self.org, job.as_str(), at, outcome)
            .await?)
    }
}

/// Longest single sleep; the schedule is re-read after it (a clock jump or suspend is
/// noticed within this time).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Runs `jobs` on their schedules until `cancel` fires: each due job is awaited in
/// turn through `run_job` (which reports success or failure; a failure is logged and
/// the job waits for its next instant, it is not retried in a loop). Last starts are
/// kept in `log`. A log that fails is retried at the next wake-up.
pub async fn run<F, Fut>(
    jobs: &[Scheduled],
    log: &impl RunLog,
    clock: &dyn Clock,
    cancel: &CancellationToken,
    mut run_job: F,
) where
    F: FnMut(Job) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    if jobs.is_empty() {
        return;
    }
    let mut last: Vec<Option<DateTime<Utc>>> = vec![None; jobs.len()];
    loop {
        let now = clock.now();
        let mut next_wake: Option<DateTime<Utc>> = None;
        for (i, sched) in jobs.iter().enumerate() {
            if cancel.is_cancelled() {
                return;
            }
            let previous = match last[i] {
                Some(at) => at,
                None => match log.last_run(sched.job).await {
                    Ok(Some(at)) => at,
                    Ok(None) => {
                        // Armed now: the first instant after this start is the first run.
                        if let Err(err) = log.record_run(sched.job, now, "armed").await {
                            warn!(job = %sched.job, error = format!("{err:#}"), "could not store a schedule; retrying later");
                            continue;
                        }
                        now
                    }
                    Err(err) => {
                        warn!(job = %sched.job, error = format!("{err:#}"), "could not read a schedule; retrying later");
                        continue;
                    }
                },
            };
            last[i] = Some(previous);
            if sched.is_due(previous, now) {
                info!(job = %sched.job, "scheduled job starting");
                let outcome = match run_job(sched.job).await {
                    Ok(()) => Outcome::Ok,
                    Err(err) => {
                        warn!(job = %sched.job, error = format!("{err:#}"), "scheduled job failed; it runs again at its next time");
                        Outcome::Failed
                    }
                };
                last[i] = Some(now);
                if let Err(err) = log.record_run(sched.job, now, outcome.as_str()).await {
                    warn!(job = %sched.job, error = format!("{err:#}"), "could not store a schedule's run");
                }
            }
            let after = last[i].unwrap_or(now);
            if let Some(at) = sched.next_after(after.max(now)) {
                next_wake = Some(next_wake.map_or(at, |w| w.min(at)));
            }
        }
        let now = clock.now();
        let wait = next_wake
            .and_then(|at| (at - now).to_std().ok())
            .unwrap_or(Duration::ZERO)
            .min(MAX_SLEEP)
            // Instants fire on whole seconds; a millisecond past them is enough.
            .saturating_add(Duration::from_millis(1));
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use chrono::TimeZone as _;

    use super::*;
    use crate::service::clock::TokioClock;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn daily_six(tz: Tz) -> Scheduled {
        Scheduled::new(Job::DriftReport, "0 0 6 * * *", tz).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn next_instant_is_local_time_across_dst() {
        let s = daily_six(chrono_tz::Europe::Berlin);
        // Winter: 06:00 CET = 05:00 UTC.
        assert_eq!(
            s.next_after(at("2026-03-28T12:00:00Z")),
            Some(at("2026-03-29T04:00:00Z")),
            "29 March 2026 is the spring change: 06:00 CEST = 04:00 UTC"
        );
        assert_eq!(
            s.next_after(at("2026-03-27T12:00:00Z")),
            Some(at("2026-03-28T05:00:00Z"))
        );
        // Autumn change on 25 October 2026.
        assert_eq!(
            s.next_after(at("2026-10-24T12:00:00Z")),
            Some(at("2026-10-25T05:00:00Z"))
        );
        let ny = daily_six(chrono_tz::America::New_York);
        assert_eq!(
            ny.next_after(at("2026-03-08T00:00:00Z")),
            Some(at("2026-03-08T10:00:00Z")),
            "8 March 2026: EDT starts, 06:00 = 10:00 UTC"
        );
    }

    #[test]
    fn due_only_when_an_instant_lies_between_last_run_and_now() {
        let s = daily_six(chrono_tz::UTC);
        let last = at("2026-12-07T06:00:00Z");
        assert!(!s.is_due(last, at("2026-12-08T05:59:59Z")));
        assert!(s.is_due(last, at("2026-12-08T06:00:00Z")));
        // Three days down: still one run (is_due is a yes/no, run() runs it once).
        assert!(s.is_due(last, at("2026-12-11T09:00:00Z")));
    }

    #[test]
    fn bad_expressions_are_refused_with_the_expression() {
        let err = Scheduled::new(Job::FullSync, "every night", chrono_tz::UTC)
            .err()
            .unwrap_or_default();
        assert!(err.contains("\"every night\""), "{err}");
        let err = Scheduled::new(Job::FullSync, "0 0 0 1 1 * 2001", chrono_tz::UTC)
            .err()
            .unwrap_or_default();
        assert!(err.contains("never fires"), "{err}");
    }

    /// The run log of the paused-time tests.
    #[derive(Default)]
    struct MemLog(Mutex<std::collections::HashMap<Job, DateTime<Utc>>>);

    impl RunLog for MemLog {
        async fn last_run(&self, job: Job) -> anyhow::Result<Option<DateTime<Utc>>> {
            Ok(self
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&job)
                .copied())
        }

        async fn record_run(
            &self,
            job: Job,
            at: DateTime<Utc>,
            _outcome: &'static str,
        ) -> anyhow::Result<()> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(job, at);
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_store_keeps_last_runs_per_org() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = Store::open(&url).await.unwrap_or_else(|e| panic!("{e}"));
        let log = StoreLog {
            store: store.clone(),
            org: crate::domain::OrgId::new("north").unwrap(),
        };
        assert_eq!(log.last_run(Job::FullSync).await.ok().flatten(), None);
        let t1 = at("2026-12-07T06:00:00Z");
        let t2 = at("2026-12-08T06:00:00Z");
        log.record_run(Job::FullSync, t1, "ok")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        log.record_run(Job::FullSync, t2, "failed")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(log.last_run(Job::FullSync).await.ok().flatten(), Some(t2));
        assert_eq!(log.last_run(Job::DriftReport).await.ok().flatten(), None);
        let other = StoreLog {
            store,
            org: crate::domain::OrgId::new("south").unwrap(),
        };
        assert_eq!(other.last_run(Job::FullSync).await.ok().flatten(), None);
    }

    type Log = Arc<Mutex<Vec<(Job, DateTime<Utc>)>>>;

    /// Runs the scheduler under paused time for `span`, recording each job start.
    async fn drive(
        store: &MemLog,
        jobs: Vec<Scheduled>,
        start: DateTime<Utc>,
        span: Duration,
        log: &Log,
        fail: bool,
    ) {
        let clock = TokioClock::starting_at(start);
        let cancel = CancellationToken::new();
        let stopper = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep(span).await;
                cancel.cancel();
            })
        };
        let log2 = Arc::clone(log);
        run(&jobs, store, &clock, &cancel, move |job| {
            let log = Arc::clone(&log2);
            let now = clock.now();
            async move {
                log.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((job, now));
                if fail {
                    anyhow::bail!("the job failed");
                }
                Ok(())
            }
        })
        .await;
        stopper.await.unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test(start_paused = true)]
    async fn schedules_fire_on_time_under_paused_time() {
        let store = MemLog::default();
        let log: Log = Arc::default();
        let jobs = vec![
            Scheduled::new(Job::DriftReport, "0 0 6 * * *", chrono_tz::Europe::Berlin)
                .unwrap_or_else(|e| panic!("{e}")),
            Scheduled::new(Job::FullSync, "0 0 * * * *", chrono_tz::UTC)
                .unwrap_or_else(|e| panic!("{e}")),
        ];
        // Three days from a Monday 00:30 UTC.
        drive(
            &store,
            jobs,
            at("2026-12-07T00:30:00Z"),
            Duration::from_secs(3 * 86_400),
            &log,
            false,
        )
        .await;
        let log = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let drift: Vec<_> = log.iter().filter(|(j, _)| *j == Job::DriftReport).collect();
        assert_eq!(drift.len(), 3, "{drift:?}");
        // 06:00 in Berlin in December is 05:00 UTC, and it fires within a second.
        for (i, (_, when)) in drift.iter().enumerate() {
            let due = Utc
                .with_ymd_and_hms(2026, 12, 7 + u32::try_from(i).unwrap_or(0), 5, 0, 0)
                .single()
                .unwrap_or_else(|| panic!("date"));
            let late = *when - due;
            assert!(
                late >= chrono::Duration::zero() && late < chrono::Duration::seconds(1),
                "drift report {i} ran at {when}, due {due}"
            );
        }
        let hourly = log.iter().filter(|(j, _)| *j == Job::FullSync).count();
        assert_eq!(hourly, 72, "one full sync per hour for 3 days");
        assert_eq!(
            store.last_run(Job::DriftReport).await.ok().flatten(),
            Some(drift[2].1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_missed_run_runs_once_at_start_and_a_fresh_store_is_only_armed() {
        let store = MemLog::default();
        let log: Log = Arc::default();
        let jobs = || {
            vec![
                Scheduled::new(Job::DriftReport, "0 0 6 * * *", chrono_tz::UTC)
                    .unwrap_or_else(|e| panic!("{e}")),
            ]
        };
        // First start at 07:00: nothing is due (armed), it runs the next morning.
        drive(
            &store,
            jobs(),
            at("2026-12-07T07:00:00Z"),
            Duration::from_secs(3600),
            &log,
            false,
        )
        .await;
        assert!(log.lock().unwrap_or_else(|e| e.into_inner()).is_empty());
        // The process was down for three mornings; at the next start it runs once.
        drive(
            &store,
            jobs(),
            at("2026-12-10T12:00:00Z"),
            Duration::from_secs(3600),
            &log,
            false,
        )
        .await;
        let runs = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(runs, vec![(Job::DriftReport, at("2026-12-10T12:00:00Z"))]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_job_waits_for_its_next_instant() {
        let store = MemLog::default();
        let log: Log = Arc::default();
        let jobs = vec![
            Scheduled::new(Job::FullReplan, "0 */10 * * * *", chrono_tz::UTC)
                .unwrap_or_else(|e| panic!("{e}")),
        ];
        drive(
            &store,
            jobs,
            at("2026-12-07T00:00:30Z"),
            Duration::from_secs(3600),
            &log,
            true,
        )
        .await;
        assert_eq!(log.lock().unwrap_or_else(|e| e.into_inner()).len(), 6);
    }
}
