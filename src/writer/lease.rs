//! The run lease, process side: who this process is, whether a holder on this machine
//! is still alive, and the heartbeat that keeps a lease while the writer runs.
//!
//! A holder is `host:pid:start:machine:n`: the host name, the process id, the process's
//! start time (clock ticks since boot, from `/proc`), a machine key (a hash of the boot
//! id and the pid namespace, so two containers that share a host name are told apart),
//! and a per-process counter (two writers in one process are two holders).
//!
//! A lease normally ends when its holder releases it or lets it lapse (TTL, renewed
//! every `lease_renew`). After a `kill -9` nobody releases it; rather than make the
//! restarted command wait out the TTL, a holder on *this* machine whose process is
//! provably gone (no such pid, a zombie, or the pid now belongs to a process that
//! started at another time) is replaced at once. Anything uncertain (another host,
//! another boot, no `/proc`) waits for expiry.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::WriterError;
use crate::store::{LeaseAttempt, RunLease, Store};

/// A parsed holder string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) host: String,
    pub(crate) pid: u32,
    /// Process start time in clock ticks since boot; 0 when unknown.
    pub(crate) start: u64,
    /// Boot id + pid namespace hash; `-` when unknown.
    pub(crate) machine: String,
    pub(crate) n: u64,
}

impl Holder {
    pub(crate) fn parse(s: &str) -> Option<Holder> {
        let mut parts = s.rsplitn(5, ':');
        let n = parts.next()?.parse().ok()?;
        let machine = parts.next()?.to_owned();
        let start = parts.next()?.parse().ok()?;
        let pid = parts.next()?.parse().ok()?;
        let host = parts.next()?.to_owned();
        Some(Holder {
            host,
            pid,
            start,
            machine,
            n,
        })
    }

    fn encode(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}",
            self.host, self.pid, self.start, self.machine, self.n
        )
    }
}

/// "leadroute process 1234 on host vm" for messages; the raw string if unparsable.
pub(crate) fn describe(holder: &str) -> String {
    match Holder::parse(holder) {
        Some(h) => format!("leadroute process {} on host {}", h.pid, h.host),
        None => format!("holder {holder:?}"),
    }
}

/// This process, without the per-lease counter.
fn this_process() -> &'static Holder {
    static ME: OnceLock<Holder> = OnceLock::new();
    ME.get_or_init(|| {
        let pid = std::process::id();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().replace(':', "_"))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown-host".to_owned());
        Holder {
            host,
            pid,
            start: proc_stat(pid).map_or(0, |(_, start)| start),
            machine: machine_key().unwrap_or_else(|| "-".to_owned()),
            n: 0,
        }
    })
}

/// A fresh holder string for one lease of this process.
pub(crate) fn new_holder() -> String {
    static N: AtomicU64 = AtomicU64::new(1);
    let mut me = this_process().clone();
    me.n = N.fetch_add(1, Ordering::Relaxed);
    me.encode()
}

/// The boot id and pid namespace, hashed: equal only for processes that can see each
/// other's pids.
fn machine_key() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let digest = Sha256::digest(format!("{}|{}", boot.trim(), ns.display()).as_bytes());
    Some(digest[..6].iter().map(|b| format!("{b:02x}")).collect())
}

/// State (`R`, `S`, `Z`, …) and start time (ticks since boot) of `pid`, from
/// `/proc/<pid>/stat`; `None` when there is no such process (or no `/proc`).
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: parse after it.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?; // field 3
    let start = fields.nth(18)?.parse().ok()?; // field 22
    Some((state, start))
}

/// Whether `holder` is certainly gone: a process of this machine (same host name and
/// machine key) whose pid no longer exists, is a zombie, or was reused by a process
/// started at another time. Never true for holders elsewhere or when unsure.
pub(crate) fn holder_is_dead(holder: &str) -> bool {
    let me = this_process();
    let Some(h) = Holder::parse(holder) else {
        return false;
    };
    if me.machine == "-" || h.machine != me.machine || h.host != me.host || h.start == 0 {
        return false;
    }
    if h.pid == me.pid && h.start == me.start {
        // This very process (another writer in it): alive by definition.
        return false;
    }
    match proc_stat(h.pid) {
        None => std::path::Path::new("/proc/self/stat").exists(),
        Some((state, start)) => matches!(state, 'Z' | 'X') || start != h.start,
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The refusal when another live process holds the lease.
pub(crate) fn held_error(run: &str, lease: &RunLease) -> WriterError {
    WriterError::LeaseHeld {
        run: run.to_owned(),
        holder: describe(&lease.holder),
        since: lease
            .acquired_at
            .map_or_else(|| "an unknown time".to_owned(), rfc3339),
        expires: rfc3339(lease.expires_at),
    }
}

/// A held lease with its heartbeat. Dropping it stops the heartbeat (the lease then
/// lapses); [`RunLeaseGuard::release`] clears it at once.
pub(crate) struct RunLeaseGuard {
    store: Store,
    run: String,
    holder: String,
    lost: Arc<Mutex<Option<String>>>,
    stopped: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl RunLeaseGuard {
    /// Takes `run`'s lease (replacing a provably dead holder on this machine) and
    /// starts renewing it every `renew`; refuses with [`WriterError::LeaseHeld`] while
    /// another process holds it. If the lease is lost while held (another process took
    /// it after a stall, or it could not be renewed before it would lapse), `fence` is
    /// set (the writer makes no further CRM call) and `on_lost` cancelled (it stops).
    pub(crate) async fn acquire(
        store: &Store,
        run: &str,
        ttl: Duration,
        renew: Duration,
        on_lost: CancellationToken,
        fence: Arc<AtomicBool>,
    ) -> Result<RunLeaseGuard, WriterError> {
        let holder = new_holder();
        let mut attempt = store.run_lease_acquire(run, &holder, ttl).await?;
        if let LeaseAttempt::Held(lease) = &attempt {
            if holder_is_dead(&lease.holder) {
                if store
                    .run_lease_take_over(run, &holder, &lease.holder, ttl)
                    .await?
                {
                    info!(
                        run_id = run,
                        previous = %describe(&lease.holder),
                        "took over the lease of a process that is gone"
                    );
                    attempt = LeaseAttempt::Acquired;
                } else {
                    attempt = store.run_lease_acquire(run, &holder, ttl).await?;
                }
            }
        }
        match attempt {
            LeaseAttempt::Acquired => {}
            LeaseAttempt::Held(lease) => return Err(held_error(run, &lease)),
            LeaseAttempt::UnknownRun => return Err(WriterError::UnknownRun(run.to_owned())),
        }
        let lost = Arc::new(Mutex::new(None));
        let stopped = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(heartbeat(
            store.clone(),
            run.to_owned(),
            holder.clone(),
            ttl,
            renew,
            lost.clone(),
            stopped.clone(),
            on_lost,
            fence,
        ));
        Ok(RunLeaseGuard {
            store: store.clone(),
            run: run.to_owned(),
            holder,
            lost,
            stopped,
            task,
        })
    }

    /// Why the lease was lost, if it was.
    pub(crate) fn lost(&self) -> Option<String> {
        self.lost.lock().ok().and_then(|l| l.clone())
    }

    /// Stops the heartbeat and clears the lease (if it is still ours).
    pub(crate) async fn release(self) -> Result<(), WriterError> {
        self.stopped.store(true, Ordering::SeqCst);
        self.task.abort();
        self.store
            .run_lease_release(&self.run, &self.holder)
            .await?;
        Ok(())
    }
}

impl Drop for RunLeaseGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[allow(clippy::too_many_arguments)]
async fn heartbeat(
    store: Store,
    run: String,
    holder: String,
    ttl: Duration,
    renew: Duration,
    lost: Arc<Mutex<Option<String>>>,
    stopped: Arc<AtomicBool>,
    on_lost: CancellationToken,
    fence: Arc<AtomicBool>,
) {
    let mut renewed = Instant::now();
    // Give up a little before the lease could lapse, so no other process can take it
    // while this one still believes it holds it.
    let give_up = ttl.saturating_sub(renew.min(ttl / 3));
    let lose = |why: String| {
        fence.store(true, Ordering::SeqCst);
        warn!(run_id = %run, "{why}");
        if let Ok(mut slot) = lost.lock() {
            *slot = Some(why);
        }
        on_lost.cancel();
    };
    loop {
        tokio::time::sleep(renew).await;
        if stopped.load(Ordering::SeqCst) {
            return;
        }
        // A store that hangs (a SQLite busy timeout) counts as a failed renewal, so the
        // give-up deadline holds even then.
        let budget = give_up
            .saturating_sub(renewed.elapsed())
            .max(Duration::from_millis(1));
        let attempt = tokio::time::timeout(budget, store.run_lease_renew(&run, &holder, ttl))
            .await
            .unwrap_or_else(|_| {
                Err(crate::store::JournalError::Corrupt(
                    "the store did not answer in time".to_owned(),
                ))
            });
        match attempt {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => {
                let now = store.run_lease(&run).await.ok().flatten();
                lose(format!(
                    "lost the lease of run {run}: it lapsed and {} took it",
                    now.map_or_else(|| "another process".to_owned(), |l| describe(&l.holder))
                ));
                return;
            }
            Err(err) if renewed.elapsed() >= give_up => {
                lose(format!(
                    "could not renew the lease of run {run} for {:.0} s ({err}); stopping \
                     before it lapses",
                    renewed.elapsed().as_secs_f64()
                ));
                return;
            }
            Err(err) => {
                warn!(run_id = %run, error = %err, "renewing the run lease failed; retrying")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_round_trip_and_describe_themselves() {
        let me = new_holder();
        let parsed = Holder::parse(&me).unwrap();
        assert_eq!(parsed.pid, std::process::id());
        assert_eq!(parsed.encode(), me);
        assert_ne!(
            new_holder(),
            me,
            "two leases in one process are two holders"
        );
        assert!(describe(&me).contains(&format!("process {}", std::process::id())));
        assert_eq!(describe("junk"), "holder \"junk\"");
    }

    #[test]
    fn only_a_provably_dead_process_of_this_machine_counts_as_dead() {
        let me = this_process().clone();
        if me.machine == "-" || me.start == 0 {
            eprintln!("no /proc here: dead-holder detection is off, leases wait for expiry");
            return;
        }
        // This process, through another writer: alive.
        assert!(!holder_is_dead(&new_holder()));
        // A child that ran and was reaped: its pid is gone.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = proc_stat(pid).unwrap().1;
        let child_holder = Holder {
            pid,
            start,
            n: 1,
            ..me.clone()
        };
        assert!(!holder_is_dead(&child_holder.encode()), "running: alive");
        let reused = Holder {
            start: start + 1,
            ..child_holder.clone()
        };
        assert!(
            holder_is_dead(&reused.encode()),
            "the pid belongs to a process started at another time"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(holder_is_dead(&child_holder.encode()), "killed and reaped");
        // Elsewhere or unknown: never presumed dead.
        let other_host = Holder {
            host: "elsewhere".into(),
            ..child_holder.clone()
        };
        assert!(!holder_is_dead(&other_host.encode()));
        let other_boot = Holder {
            machine: "000000000000".into(),
            ..child_holder.clone()
        };
        assert!(!holder_is_dead(&other_boot.encode()));
        assert!(!holder_is_dead("not a holder"));
    }

    #[tokio::test]
    async fn a_lease_that_cannot_be_renewed_stops_the_writer_before_it_could_lapse() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let run = crate::store::NewRun {
            run_id: "r1",
            crm: crate::domain::CrmKind::Hubspot,
            kind: "apply",
            parent_run: None,
            policy_version: "v",
        };
        store
            .journal_create_run(&run, &[], Utc::now())
            .await
            .unwrap();
        let cancel = CancellationToken::new();
        let fence = Arc::new(AtomicBool::new(false));
        let ttl = Duration::from_millis(2_000);
        let guard = RunLeaseGuard::acquire(
            &store,
            "r1",
            ttl,
            Duration::from_millis(50),
            cancel.clone(),
            fence.clone(),
        )
        .await
        .unwrap();
        // Renewals keep it well past the TTL.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!(guard.lost(), None);
        assert!(!cancel.is_cancelled());
        // The store goes away: the writer is fenced and stopped before the TTL ends.
        let cut = Instant::now();
        store.close().await;
        tokio::time::timeout(ttl, cancel.cancelled())
            .await
            .expect("stopped before the lease could lapse");
        assert!(cut.elapsed() < ttl);
        assert!(fence.load(Ordering::SeqCst));
        let why = guard.lost().expect("the loss is explained");
        assert!(why.contains("could not renew the lease of run r1"), "{why}");
    }
}
