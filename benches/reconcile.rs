//! Reconcile benchmark: 1,000,000 contacts against 100,000 accounts (200 owners) matched,
//! routed and planned from an in-memory snapshot, then an incremental re-plan.
//!
//! Run: `CARGO_TARGET_DIR=/work/target cargo bench --bench reconcile`
//! (`-- --people N --accounts N` for other sizes). Prints wall time per phase,
//! throughput, peak memory (VmHWM) and both as ratios of the product targets
//! (a few seconds, well under 2 GiB on 2 cores).

use std::time::Instant;

use chrono::Duration;
use leadroute::policy;
use leadroute::reconcile::matching::{Matcher, MatcherConfig};
use leadroute::reconcile::{self, Dirty, Ledger, Reconciler, synth};

/// Peak resident set size in bytes, from /proc/self/status (Linux only).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// SHA-256 of the plan's JSON, streamed (the text itself would be hundreds of MiB).
fn plan_digest(plan: &reconcile::Plan) -> String {
    use sha2::Digest as _;
    struct Sink(sha2::Sha256);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut sink = Sink(sha2::Sha256::new());
    if let Err(e) = serde_json::to_writer(&mut sink, plan) {
        return format!("(could not serialize the plan: {e})");
    }
    let bytes = sink.0.finalize();
    bytes[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// CPU time used so far by the whole process and by the calling thread, in seconds
/// (utime + stime from /proc; Linux only). On a shared machine wall time depends on
/// the others' load, CPU time much less.
fn cpu_secs() -> (f64, f64) {
    let read = |path: &str| -> Option<f64> {
        let stat = std::fs::read_to_string(path).ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) / 100.0)
    };
    (
        read("/proc/self/stat").unwrap_or(0.0),
        read("/proc/thread-self/stat").unwrap_or(0.0),
    )
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(default)
}

fn main() {
    let people = arg("--people", 1_000_000);
    let accounts = arg("--accounts", 100_000);
    let owners = arg("--owners", 200);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "reconcile benchmark: {people} contacts, {accounts} accounts, {owners} owners, {cores} cores"
    );

    let t = Instant::now();
    let snapshot = synth::org(
        42,
        synth::OrgSize {
            owners,
            accounts,
            people,
        },
    );
    let (policy, _) = match policy::parse("synthetic.toml", &synth::policy_text(owners)) {
        Ok(p) => p,
        Err(issues) => {
            for i in issues {
                eprintln!("{i}");
            }
            std::process::exit(1);
        }
    };
    let gen_secs = t.elapsed().as_secs_f64();
    let rss_after_gen = peak_rss().unwrap_or(0);
    println!(
        "  generate snapshot          {gen_secs:>7.2} s   (not counted; peak RSS so far {:.0} MiB)",
        rss_after_gen as f64 / 1048576.0
    );

    let now = synth::base_time();
    let t = Instant::now();
    let matcher = Matcher::new(
        &snapshot.accounts,
        &snapshot.owners,
        &MatcherConfig::default(),
    );
    let index_secs = t.elapsed().as_secs_f64();
    println!("  build matcher index        {index_secs:>7.2} s");

    // Matching alone (both cores), to show how the plan time splits.
    let t = Instant::now();
    let matched = std::thread::scope(|scope| {
        let per = snapshot.people.len().div_ceil(cores.max(1));
        let handles: Vec<_> = snapshot
            .people
            .chunks(per.max(1))
            .map(|chunk| {
                let matcher = &matcher;
                scope.spawn(move || {
                    chunk
                        .iter()
                        .filter(|p| matcher.match_person(p).account_id.is_some())
                        .count()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(0))
            .sum::<usize>()
    });
    let match_secs = t.elapsed().as_secs_f64();
    println!(
        "  match only (all cores)     {match_secs:>7.2} s   {matched} matched (included again below)"
    );

    let t = Instant::now();
    let (cpu0, own0) = cpu_secs();
    let mut ledger = Ledger::default();
    let plan = reconcile::plan_with(&snapshot, &policy, &matcher, &mut ledger, now);
    let plan_secs = t.elapsed().as_secs_f64();
    let (cpu1, own1) = cpu_secs();
    println!(
        "  match + route + plan       {plan_secs:>7.2} s   {} changes, {} exceptions",
        plan.changes.len(),
        plan.exceptions.len()
    );
    println!(
        "    cpu time of the plan     {:>7.2} s   all threads; {:.2} s on the routing (calling) thread",
        cpu1 - cpu0,
        own1 - own0
    );
    drop(matcher);

    let plan_peak = peak_rss().unwrap_or(0);
    // A digest of the whole plan (not timed): any change to what is planned, in any
    // field or order, shows here, so a speed-up can be checked to plan the same.
    println!(
        "  plan digest (SHA-256 of the plan JSON)  {}",
        plan_digest(&plan)
    );
    drop(plan);
    drop(ledger);
    let total = index_secs + plan_secs;
    let throughput = people as f64 / total;
    println!(
        "  total (index + plan)       {total:>7.2} s   {:.0} contacts/s ({:.0} per core)",
        throughput,
        throughput / cores as f64
    );

    // Incremental: after applying the plan, 1,000 records change; re-plan only those.
    let mut snapshot = snapshot;
    let mut reconciler = Reconciler::default();
    let mut ledger = Ledger::default();
    let t = Instant::now();
    let full = reconciler.full(&snapshot, &policy, &mut ledger, now);
    let full_secs = t.elapsed().as_secs_f64();
    synth::apply(&mut snapshot, &full);
    let mut dirty = Dirty::default();
    for c in &full.changes {
        dirty.people.insert((c.object, c.id.clone()));
    }
    for p in snapshot.people.iter_mut().step_by((people / 1000).max(1)) {
        p.country = Some("SG".into());
        dirty.people.insert((p.object, p.id.clone()));
    }
    let t = Instant::now();
    let again = reconciler.replan(
        &snapshot,
        &policy,
        &mut ledger,
        now + Duration::minutes(1),
        &dirty,
    );
    let incr_secs = t.elapsed().as_secs_f64();
    println!(
        "  incremental re-plan        {incr_secs:>7.2} s   {} dirty records after a full pass of {full_secs:.2} s; {} changes",
        dirty.people.len(),
        again.changes.len()
    );
    println!(
        "  re-plan digest                          {}",
        plan_digest(&again)
    );

    let peak = peak_rss().unwrap_or(0);
    println!(
        "  peak memory (VmHWM)        {:>7.0} MiB after the full plan (snapshot included); {:.0} MiB after the incremental pass",
        plan_peak as f64 / 1048576.0,
        peak as f64 / 1048576.0
    );
    println!(
        "ratios: wall {:.2} of a 5 s budget; memory {:.2} of a 2 GiB budget (full plan)",
        total / 5.0,
        plan_peak as f64 / (2.0 * 1073741824.0)
    );
}
