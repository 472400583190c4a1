//! The fleet: which orgs this process leads when several processes share one store.
//!
//! Every process runs one [`Fleet`] over the configured orgs. It keeps a membership
//! lease (`member:<capacity>:<holder>`) so the others can count live processes, and takes
//! org leases (`org:<name>`, the named leases of `store::leases`: holder, epoch, expiry
//! judged by the database's clock) up to its quota. For each org it leads it calls an
//! [`OrgRunner`] to start that org's pipeline with the lease's epoch (the fencing token
//! its writes carry), and to stop it gracefully before the lease is handed back.
//!
//! Quotas are computed by every process from the same view, so they agree without
//! talking to each other (`quotas`): `n` orgs are spread over the live members as
//! evenly as their capacities (`service.max_orgs`) allow, each getting
//! `floor(n / members)` or one more (never more than `ceil(n / members)`), the extra ones
//! going to those that already hold more so a join or a leave moves as few orgs as
//! possible. A process over its quota stops its extra orgs and then releases their
//! leases; a process under it takes free or lapsed ones, each preferring its own
//! rendezvous order of the orgs, so processes starting together do not all race for the
//! same one. Races are settled by the leases' compare-and-set: an org is never led by
//! two processes (and a deposed one's late batch is refused by the epoch fence).
//!
//! Traffic: one statement per tick (every `ttl / 3`) renews every lease this process has
//! (`Store::leases_renew_held`), one reads the view (`Store::leases_live`), whatever
//! the number of orgs; taking a lease costs two, handing one back one. A process that
//! sees a lease about to lapse wakes at its expiry instead of the next tick, so the orgs
//! of a process that died are led again within the TTL plus a few milliseconds.
//!
//! A process that cannot renew (store down) stops its orgs once its last confirmed
//! renewal could lapse, measured locally from before that renewal was sent, so it stops
//! writing before anyone else can have taken over. On shutdown it stops every org (the
//! leases are still renewed meanwhile), releases their leases, then its membership.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::store::{Lease, LeaseGrab, Store, StoreError};

/// Lease names of orgs start with this.
pub const ORG_PREFIX: &str = "org:";
/// Lease names of fleet members start with this.
pub const MEMBER_PREFIX: &str = "member:";
/// Membership rows released or lapsed this long ago are deleted at start.
const FORGET_MEMBERS_AFTER: Duration = Duration::from_secs(3_600);
/// How long a process that just joined waits before taking orgs (at most a tick).
const JOIN_PAUSE: Duration = Duration::from_millis(500);
/// Wake this long after a lease is due to lapse, so the database agrees it has.
const LAPSE_MARGIN: Duration = Duration::from_millis(25);

/// The lease name of org `name`.
pub fn org_lease(name: &str) -> String {
    format!("{ORG_PREFIX}{name}")
}

fn member_lease(capacity: usize, holder: &str) -> String {
    format!("{MEMBER_PREFIX}{capacity}:{holder}")
}

/// `(capacity, holder)` of a membership lease name.
fn parse_member(name: &str) -> Option<(usize, &str)> {
    let (capacity, holder) = name.strip_prefix(MEMBER_PREFIX)?.split_once(':')?;
    Some((capacity.parse().ok()?, holder))
}

/// One org led by this process under one lease epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub org: String,
    /// The org's lease name (`org:<name>`): with `holder` and `epoch`, the fence.
    pub lease: String,
    pub holder: String,
    pub epoch: i64,
}

/// Starts and stops org pipelines for a [`Fleet`]. Implemented by the service's
/// per-org handle; tests use a recorder.
pub trait OrgRunner: Send + Sync + 'static {
    /// Starts leading `term.org`, fenced with `term.epoch`; returns once started. An
    /// error hands the lease back, so another process (or a later tick) tries.
    fn start(&self, term: Term) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Stops leading `org` gracefully: returns once its pipeline makes no further CRM
    /// call (the in-flight batch finished and journaled). The fleet releases the lease
    /// only after this returns.
    fn stop(&self, org: &str) -> impl Future<Output = ()> + Send;
}

/// What a fleet is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// The orgs to spread (configured names).
    pub orgs: Vec<String>,
    /// The most orgs this process leads at once (`service.max_orgs`).
    pub capacity: usize,
    /// How long a lease binds without renewal (`service.lease_ttl_secs`).
    pub ttl: Duration,
    /// How often leases are renewed and the view read: a third of the TTL.
    pub every: Duration,
}

impl FleetConfig {
    pub fn new(orgs: Vec<String>, capacity: usize, ttl: Duration) -> Self {
        let mut orgs = orgs;
        orgs.sort();
        orgs.dedup();
        FleetConfig {
            orgs,
            capacity,
            ttl,
            every: (ttl / 3).max(Duration::from_millis(100)),
        }
    }
}

/// Where a fleet stands, published on a watch channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetState {
    /// Live members seen at the last tick, this process included.
    pub members: usize,
    /// The orgs this process leads, with their epochs.
    pub leading: BTreeMap<String, i64>,
    /// The last store error, until a tick succeeds.
    pub error: Option<String>,
}

/// Counters of a fleet's store traffic (all of them lease statements).
#[derive(Debug, Default)]
pub struct FleetStats {
    statements: AtomicU64,
    ticks: AtomicU64,
    taken: AtomicU64,
    handed_back: AtomicU64,
    unled: AtomicU64,
}

impl FleetStats {
    /// Lease statements sent so far.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }
    /// Ticks (renew + view) so far.
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }
    /// Org leases taken so far.
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }
    /// Org leases handed back (released after a graceful stop) so far.
    pub fn handed_back(&self) -> u64 {
        self.handed_back.load(Ordering::Relaxed)
    }
    /// Orgs the live members have no capacity for, at the last tick.
    pub fn unled(&self) -> u64 {
        self.unled.load(Ordering::Relaxed)
    }
    fn add(&self, statements: u64) {
        self.statements.fetch_add(statements, Ordering::Relaxed);
    }
}

/// One live member as every process sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) holder: String,
    pub(crate) capacity: usize,
    /// Configured orgs it holds a live lease of.
    pub(crate) count: usize,
}

/// Each member's quota of `n` orgs: the largest level `L` with `Σ min(cap, L) ≤ n`
/// gives everyone `min(cap, L)`; the remainder goes one each to members with room,
/// those holding the most first (then by holder), so rebalancing moves few orgs. The
/// quotas sum to `min(n, Σ cap)` and none exceeds `ceil(n / members)`.
pub(crate) fn quotas(n: usize, members: &[Member]) -> BTreeMap<String, usize> {
    let total = |level: usize| -> usize {
        members
            .iter()
            .map(|m| m.capacity.min(level))
            .fold(0usize, usize::saturating_add)
    };
    let mut level = 0;
    while level < n && total(level + 1) <= n {
        level += 1;
    }
    let mut out: BTreeMap<String, usize> = members
        .iter()
        .map(|m| (m.holder.clone(), m.capacity.min(level)))
        .collect();
    let mut left = n.saturating_sub(total(level));
    let mut roomy: Vec<&Member> = members.iter().filter(|m| m.capacity > level).collect();
    roomy.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.holder.cmp(&b.holder)));
    for m in roomy {
        if left == 0 {
            break;
        }
        if let Some(q) = out.get_mut(&m.holder) {
            *q += 1;
            left -= 1;
        }
    }
    out
}

/// This process's preference for `org` (rendezvous hashing): processes prefer different
/// orgs, so a crowd starting together does not race for the same lease.
fn preference(org: &str, holder: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (org, holder).hash(&mut h);
    h.finish()
}

/// What one tick decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Moves {
    /// Orgs to stop and hand back (over quota), least preferred first.
    pub(crate) release: Vec<String>,
    /// Free orgs to try, most preferred first, until `want` are taken.
    pub(crate) candidates: Vec<String>,
    pub(crate) want: usize,
    pub(crate) quota: usize,
    pub(crate) members: usize,
    /// Orgs no live member has room for (the capacities sum to less than the orgs).
    pub(crate) unled: usize,
}

/// The pure decision of one tick, from the view: `leases` (org and member leases as
/// read), `mine` (orgs this process leads), `busy` (orgs it is stopping).
pub(crate) fn plan(
    config: &FleetConfig,
    me: &str,
    leases: &[Lease],
    mine: &BTreeSet<String>,
    busy: &BTreeSet<String>,
) -> Moves {
    let mut holders: BTreeMap<&str, &str> = BTreeMap::new();
    let mut members: BTreeMap<&str, usize> = BTreeMap::new();
    for lease in leases {
        let Some(holder) = lease.live_holder() else {
            continue;
        };
        if let Some(org) = lease.name.strip_prefix(ORG_PREFIX) {
            holders.insert(org, holder);
        } else if let Some((capacity, of)) = parse_member(&lease.name) {
            if of == holder {
                members.insert(holder, capacity);
            }
        }
    }
    members.entry(me).or_insert(config.capacity);
    let configured: BTreeSet<&str> = config.orgs.iter().map(String::as_str).collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (org, holder) in &holders {
        if configured.contains(org) {
            *counts.entry(holder).or_default() += 1;
        }
    }
    let list: Vec<Member> = members
        .iter()
        .map(|(holder, capacity)| Member {
            holder: (*holder).to_owned(),
            capacity: *capacity,
            count: counts.get(holder).copied().unwrap_or(0),
        })
        .collect();
    let all = quotas(config.orgs.len(), &list);
    let quota = all.get(me).copied().unwrap_or(0);
    let mut moves = Moves {
        quota,
        members: list.len(),
        unled: config.orgs.len().saturating_sub(all.values().sum()),
        ..Moves::default()
    };
    if mine.len() > quota {
        let mut held: Vec<&String> = mine.iter().collect();
        held.sort_by_key(|org| preference(org, me));
        moves.release = held.into_iter().take(mine.len() - quota).cloned().collect();
    } else if mine.len() < quota {
        moves.want = quota - mine.len();
        let mut free: Vec<&String> = config
            .orgs
            .iter()
            .filter(|org| !holders.contains_key(org.as_str()))
            .filter(|org| !mine.contains(*org) && !busy.contains(*org))
            .collect();
        free.sort_by_key(|org| std::cmp::Reverse(preference(org, me)));
        moves.candidates = free.into_iter().cloned().collect();
    }
    moves
}

/// When to look again: at the next tick, or just after the soonest lapse of a lease
/// someone else holds (a process that stopped renewing), whichever comes first.
fn next_wake(every: Duration, me: &str, leases: &[Lease]) -> Duration {
    leases
        .iter()
        .filter(|l| l.holder.as_deref().is_some_and(|h| h != me))
        .filter_map(|l| l.left_ms)
        .filter_map(|left| u64::try_from(left).ok())
        .map(|left| Duration::from_millis(left) + LAPSE_MARGIN)
        .fold(every, Duration::min)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Leading {
        epoch: i64,
    },
    /// Being stopped; its lease is released afterwards when `release` (it is still
    /// ours), else only forgotten (it was lost).
    Stopping {
        epoch: i64,
        release: bool,
    },
}

/// The orgs-to-processes fleet of one process. See the module docs.
pub struct Fleet<R: OrgRunner> {
    store: Store,
    runner: Arc<R>,
    config: FleetConfig,
    holder: String,
    stats: Arc<FleetStats>,
}

impl<R: OrgRunner> Fleet<R> {
    pub fn new(store: Store, runner: Arc<R>, config: FleetConfig) -> Self {
        Self::with_holder(store, runner, config, crate::writer::lease::new_holder())
    }

    /// A fleet with a given holder identity (unique per process and fleet).
    pub fn with_holder(store: Store, runner: Arc<R>, config: FleetConfig, holder: String) -> Self {
        Fleet {
            store,
            runner,
            config,
            holder,
            stats: Arc::new(FleetStats::default()),
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    pub fn stats(&self) -> Arc<FleetStats> {
        Arc::clone(&self.stats)
    }

    /// Runs the fleet until `cancel` fires, then stops every org it leads, releases
    /// their leases and its membership. The state is published on the returned channel.
    pub fn run(
        self,
        cancel: CancellationToken,
    ) -> (watch::Receiver<FleetState>, impl Future<Output = ()> + Send) {
        let (tx, rx) = watch::channel(FleetState::default());
        (rx, self.drive(tx, cancel))
    }

    async fn drive(self, tx: watch::Sender<FleetState>, cancel: CancellationToken) {
        let me = self.holder.clone();
        let member = member_lease(self.config.capacity, &me);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
        let mut slots: BTreeMap<String, Slot> = BTreeMap::new();
        let mut member_epoch: Option<i64> = None;
        let mut confirmed: Option<Instant> = None;
        let mut stopping_all = false;
        let mut members = 0;
        let mut error: Option<String>;
        self.stats.add(1);
        if let Err(err) = self
            .store
            .leases_forget(MEMBER_PREFIX, FORGET_MEMBERS_AFTER)
            .await
        {
            warn!(error = %err, "could not clear old fleet membership rows");
        }
        info!(holder = %me, orgs = self.config.orgs.len(), capacity = self.config.capacity, "joining the fleet");
        loop {
            if cancel.is_cancelled() && !stopping_all {
                stopping_all = true;
                for (org, slot) in &mut slots {
                    if let Slot::Leading { epoch } = *slot {
                        *slot = Slot::Stopping {
                            epoch,
                            release: true,
                        };
                        self.spawn_stop(org, &done_tx);
                    }
                }
            }
            if stopping_all && slots.is_empty() {
                break;
            }
            let wake = match self
                .tick(
                    &me,
                    &member,
                    &mut slots,
                    &mut member_epoch,
                    &mut confirmed,
                    stopping_all,
                    &done_tx,
                )
                .await
            {
                Ok((wake, seen)) => {
                    members = seen.unwrap_or(members);
                    error = None;
                    wake
                }
                Err(err) => {
                    warn!(error = %err, "fleet: the store did not answer; retrying");
                    error = Some(err.to_string());
                    self.config.every
                }
            };
            publish(&tx, &slots, members, error.clone());
            tokio::select! {
                () = cancel.cancelled(), if !stopping_all => {}
                Some(org) = done_rx.recv() => self.stopped(&org, &mut slots).await,
                () = tokio::time::sleep(wake) => {}
            }
            // Collect every other stop that finished meanwhile.
            while let Ok(org) = done_rx.try_recv() {
                self.stopped(&org, &mut slots).await;
            }
            publish(&tx, &slots, members, error.clone());
        }
        if let Some(epoch) = member_epoch {
            self.stats.add(1);
            if let Err(err) = self.store.lease_release(&member, &me, epoch).await {
                warn!(error = %err, "could not release the fleet membership; it lapses after its TTL");
            }
        }
        info!(holder = %me, "left the fleet");
        tx.send_replace(FleetState::default());
    }

    fn spawn_stop(&self, org: &str, done: &mpsc::UnboundedSender<String>) {
        let runner = Arc::clone(&self.runner);
        let done = done.clone();
        let org = org.to_owned();
        tokio::spawn(async move {
            runner.stop(&org).await;
            let _ = done.send(org);
        });
    }

    /// An org's pipeline stopped: hand its lease back if it is still ours.
    async fn stopped(&self, org: &str, slots: &mut BTreeMap<String, Slot>) {
        let Some(Slot::Stopping { epoch, release }) = slots.get(org).copied() else {
            return;
        };
        slots.remove(org);
        if release {
            self.stats.add(1);
            self.stats.handed_back.fetch_add(1, Ordering::Relaxed);
            match self
                .store
                .lease_release(&org_lease(org), &self.holder, epoch)
                .await
            {
                Ok(_) => info!(org, epoch, "org handed back"),
                Err(err) => {
                    warn!(org, error = %err, "could not release the org's lease; it lapses after its TTL")
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn tick(
        &self,
        me: &str,
        member: &str,
        slots: &mut BTreeMap<String, Slot>,
        member_epoch: &mut Option<i64>,
        confirmed: &mut Option<Instant>,
        stopping_all: bool,
        done: &mpsc::UnboundedSender<String>,
    ) -> Result<(Duration, Option<usize>), StoreError> {
        let ttl = self.config.ttl;
        self.stats.ticks.fetch_add(1, Ordering::Relaxed);
        // 1. Renew everything we hold in one statement; learn what we lost.
        let sent = Instant::now();
        self.stats.add(1);
        // A store that hangs counts as a failed renewal, so the stop below still comes
        // before the leases could lapse.
        let renewal =
            tokio::time::timeout(self.config.every, self.store.leases_renew_held(me, ttl))
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Query {
                        context: "renewing leases (no answer within a tick)",
                        source: sqlx::Error::PoolTimedOut,
                    })
                });
        let renewed = match renewal {
            Ok(renewed) => renewed,
            Err(err) => {
                if confirmed.is_some_and(|at| Instant::now() + self.config.every >= at + ttl) {
                    warn!(error = %err, "cannot renew the org leases before they lapse; stopping every org");
                    *confirmed = None;
                    *member_epoch = None;
                    for (org, slot) in slots.iter_mut() {
                        if let Slot::Leading { epoch } = *slot {
                            *slot = Slot::Stopping {
                                epoch,
                                release: false,
                            };
                            self.spawn_stop(org, done);
                        }
                    }
                }
                return Err(err);
            }
        };
        *confirmed = Some(sent);
        let renewed: BTreeMap<String, i64> = renewed.into_iter().collect();
        if member_epoch.is_some_and(|epoch| renewed.get(member) != Some(&epoch)) {
            *member_epoch = None;
        }
        for (org, slot) in slots.iter_mut() {
            let (epoch, leading) = match *slot {
                Slot::Leading { epoch } => (epoch, true),
                Slot::Stopping {
                    epoch,
                    release: true,
                } => (epoch, false),
                Slot::Stopping { release: false, .. } => continue,
            };
            if renewed.get(&org_lease(org)) == Some(&epoch) {
                continue;
            }
            warn!(org = %org, epoch, "org lease lost to another process; stopping its pipeline");
            *slot = Slot::Stopping {
                epoch,
                release: false,
            };
            if leading {
                self.spawn_stop(org, done);
            }
        }
        if stopping_all {
            return Ok((self.config.every, None));
        }
        // 2. Be a member. A process that just joined takes no org in the same tick:
        //    processes started together then see each other before taking any, instead
        //    of the first taking everything and handing most of it back.
        if member_epoch.is_none() {
            self.stats.add(2);
            if let LeaseGrab::Held { epoch, .. } = self.store.lease_acquire(member, me, ttl).await?
            {
                *member_epoch = Some(epoch);
            }
            return Ok((JOIN_PAUSE.min(self.config.every), None));
        }
        // 3. Look, decide, move.
        self.stats.add(1);
        let leases = self.store.leases_live(&[ORG_PREFIX, MEMBER_PREFIX]).await?;
        let mine: BTreeSet<String> = slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Leading { .. }))
            .map(|(org, _)| org.clone())
            .collect();
        let busy: BTreeSet<String> = slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Stopping { .. }))
            .map(|(org, _)| org.clone())
            .collect();
        let moves = plan(&self.config, me, &leases, &mine, &busy);
        let unled = u64::try_from(moves.unled).unwrap_or(u64::MAX);
        if self.stats.unled.swap(unled, Ordering::Relaxed) != unled && unled > 0 {
            warn!(
                unled,
                orgs = self.config.orgs.len(),
                members = moves.members,
                "the running processes have room for fewer orgs than are configured: raise service.max_orgs or start another process"
            );
        }
        for org in &moves.release {
            if let Some(slot) = slots.get_mut(org) {
                if let Slot::Leading { epoch } = *slot {
                    info!(org = %org, epoch, quota = moves.quota, members = moves.members, "over this process's share: handing the org back");
                    *slot = Slot::Stopping {
                        epoch,
                        release: true,
                    };
                    self.spawn_stop(org, done);
                }
            }
        }
        let mut want = moves.want;
        for org in &moves.candidates {
            if want == 0 {
                break;
            }
            let lease = org_lease(org);
            self.stats.add(2);
            let LeaseGrab::Held { epoch, .. } = self.store.lease_acquire(&lease, me, ttl).await?
            else {
                continue;
            };
            self.stats.taken.fetch_add(1, Ordering::Relaxed);
            let term = Term {
                org: org.clone(),
                lease: lease.clone(),
                holder: me.to_owned(),
                epoch,
            };
            match self.runner.start(term).await {
                Ok(()) => {
                    info!(org = %org, epoch, quota = moves.quota, members = moves.members, "leading the org");
                    slots.insert(org.clone(), Slot::Leading { epoch });
                    want -= 1;
                }
                Err(err) => {
                    warn!(org = %org, error = format!("{err:#}"), "could not start the org's pipeline; handing the lease back");
                    self.stats.add(1);
                    self.store.lease_release(&lease, me, epoch).await?;
                }
            }
        }
        let wake = if slots.len() < self.config.capacity {
            next_wake(self.config.every, me, &leases)
        } else {
            self.config.every
        };
        Ok((wake, Some(moves.members)))
    }
}

fn publish(
    tx: &watch::Sender<FleetState>,
    slots: &BTreeMap<String, Slot>,
    members: usize,
    error: Option<String>,
) {
    let leading: BTreeMap<String, i64> = slots
        .iter()
        .filter_map(|(org, s)| match s {
            Slot::Leading { epoch } => Some((org.clone(), *epoch)),
            Slot::Stopping { .. } => None,
        })
        .collect();
    tx.send_if_modified(|state| {
        let next = FleetState {
            members,
            leading,
            error,
        };
        if *state == next {
            false
        } else {
            *state = next;
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn member(holder: &str, capacity: usize, count: usize) -> Member {
        Member {
            holder: holder.to_owned(),
            capacity,
            count,
        }
    }

    fn quota_list(n: usize, members: &[Member]) -> Vec<usize> {
        let q = quotas(n, members);
        members.iter().map(|m| q[&m.holder]).collect()
    }

    #[test]
    fn quotas_spread_orgs_evenly_within_capacities_and_keep_what_is_held() {
        // Six orgs over three: two each.
        let three = [member("a", 99, 0), member("b", 99, 0), member("c", 99, 0)];
        assert_eq!(quota_list(6, &three), [2, 2, 2]);
        // A fourth joins: the two extra orgs stay with processes that hold them, the
        // newcomer gets one, and one process gives one back (one move, not two).
        let four = [
            member("a", 99, 2),
            member("b", 99, 2),
            member("c", 99, 2),
            member("d", 99, 0),
        ];
        assert_eq!(quota_list(6, &four), [2, 2, 1, 1]);
        // One dies: three each, never above ceil(n / members).
        assert_eq!(
            quota_list(6, &[member("a", 99, 2), member("b", 99, 2)]),
            [3, 3]
        );
        // Capacities bound a share; the rest goes to those with room.
        let capped = [member("a", 1, 0), member("b", 99, 0), member("c", 99, 0)];
        assert_eq!(quota_list(6, &capped), [1, 3, 2]);
        // Too little capacity: everyone full, the rest unled (and logged by the fleet).
        assert_eq!(
            quota_list(6, &[member("a", 2, 0), member("b", 1, 0)]),
            [2, 1]
        );
        // 20 orgs over 2, and over 3.
        assert_eq!(
            quota_list(20, &[member("a", 99, 0), member("b", 99, 0)]),
            [10, 10]
        );
        let q = quota_list(20, &three);
        assert_eq!((q.iter().sum::<usize>(), *q.iter().max().unwrap()), (20, 7));
        assert!(quotas(3, &[]).is_empty());
    }

    fn live(name: &str, holder: Option<&str>, left_ms: Option<i64>) -> Lease {
        Lease {
            name: name.to_owned(),
            holder: holder.map(str::to_owned),
            epoch: 1,
            expires_at: None,
            acquired_at: None,
            left_ms,
        }
    }

    fn orgs(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_tick_takes_free_orgs_up_to_the_share_and_hands_back_extras() {
        let config = FleetConfig::new(
            ["o1", "o2", "o3", "o4"].map(String::from).to_vec(),
            10,
            Duration::from_secs(3),
        );
        assert_eq!(config.every, Duration::from_secs(1));
        let view = [
            live("member:10:me", Some("me"), Some(3_000)),
            live("member:10:other", Some("other"), Some(3_000)),
            live("org:o1", Some("other"), Some(3_000)),
            // Lapsed: free to take.
            live("org:o2", Some("dead"), Some(-5)),
            live("org:o3", None, None),
        ];
        let moves = plan(&config, "me", &view, &BTreeSet::new(), &BTreeSet::new());
        assert_eq!((moves.quota, moves.members, moves.want), (2, 2, 2));
        assert_eq!(moves.unled, 0);
        let mut candidates = moves.candidates.clone();
        candidates.sort();
        assert_eq!(
            candidates,
            ["o2", "o3", "o4"],
            "free, lapsed or never taken"
        );
        // Holding three with a share of two: the least preferred goes back.
        let mine = orgs(&["o2", "o3", "o4"]);
        let moves = plan(&config, "me", &view, &mine, &BTreeSet::new());
        assert_eq!(moves.release.len(), 1);
        assert!(mine.contains(&moves.release[0]));
        assert!(moves.candidates.is_empty());
        // An org being stopped is not taken again meanwhile.
        let moves = plan(&config, "me", &view, &orgs(&["o4"]), &orgs(&["o3"]));
        assert_eq!(moves.candidates, ["o2"]);
        // Alone, with capacity 1: one org.
        let solo = FleetConfig {
            capacity: 1,
            ..config.clone()
        };
        let moves = plan(&solo, "me", &[], &BTreeSet::new(), &BTreeSet::new());
        assert_eq!((moves.quota, moves.members, moves.want), (1, 1, 1));
        assert_eq!(moves.unled, 3, "four orgs, room for one: said, not hidden");
        // A process wakes just after the soonest lapse of someone else's lease.
        let wake = next_wake(
            config.every,
            "me",
            &[
                live("org:o1", Some("other"), Some(400)),
                live("org:o2", Some("me"), Some(10)),
            ],
        );
        assert_eq!(wake, Duration::from_millis(400) + LAPSE_MARGIN);
        assert_eq!(next_wake(config.every, "me", &view), config.every);
    }

    /// Which runner leads which org; a second start of a running org is recorded.
    #[derive(Default)]
    struct Board {
        running: Mutex<BTreeMap<String, String>>,
        doubles: Mutex<Vec<String>>,
        stops: AtomicU64,
    }

    struct Recorder {
        id: String,
        board: Arc<Board>,
    }

    impl OrgRunner for Recorder {
        async fn start(&self, term: Term) -> anyhow::Result<()> {
            assert_eq!(term.lease, org_lease(&term.org));
            let mut running = self.board.running.lock().unwrap();
            if let Some(other) = running.insert(term.org.clone(), self.id.clone()) {
                self.board.doubles.lock().unwrap().push(format!(
                    "{} started by {} while {other} ran it",
                    term.org, self.id
                ));
            }
            Ok(())
        }

        async fn stop(&self, org: &str) {
            // A graceful stop takes a moment (the batch in flight).
            tokio::time::sleep(Duration::from_millis(30)).await;
            self.board.stops.fetch_add(1, Ordering::Relaxed);
            let mut running = self.board.running.lock().unwrap();
            if running.get(org) == Some(&self.id) {
                running.remove(org);
            }
        }
    }

    fn per_runner(board: &Board) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for id in board.running.lock().unwrap().values() {
            *out.entry(id.clone()).or_default() += 1;
        }
        out
    }

    async fn until(what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn fleets_share_the_orgs_hand_back_on_join_and_release_on_shutdown() {
        for ts in crate::store::test_stores::all().await {
            let store = ts.store.clone();
            let board = Arc::new(Board::default());
            let config = FleetConfig::new(
                (1..=4).map(|i| format!("o{i}")).collect(),
                10,
                Duration::from_millis(600),
            );
            let start = |id: &str| {
                let runner = Arc::new(Recorder {
                    id: id.to_owned(),
                    board: Arc::clone(&board),
                });
                let fleet =
                    Fleet::with_holder(store.clone(), runner, config.clone(), id.to_owned());
                let stats = fleet.stats();
                let cancel = CancellationToken::new();
                let (state, task) = fleet.run(cancel.clone());
                (cancel, state, stats, tokio::spawn(task))
            };
            // Alone, A leads all four.
            let (cancel_a, state_a, stats_a, task_a) = start("a");
            until("a leads all", || per_runner(&board).get("a") == Some(&4)).await;
            assert_eq!(state_a.borrow().leading.len(), 4);
            // B joins: A hands two back gracefully (stopped, then released), B takes them.
            let (cancel_b, _state_b, _, task_b) = start("b");
            until("two each", || {
                per_runner(&board) == BTreeMap::from([("a".into(), 2), ("b".into(), 2)])
            })
            .await;
            assert_eq!(stats_a.handed_back(), 2);
            // A shuts down: its orgs are stopped, released, and B leads all four at once
            // (well before A's leases could have lapsed).
            cancel_a.cancel();
            task_a.await.unwrap();
            let leases = store.leases(ORG_PREFIX).await.unwrap();
            assert!(
                leases.iter().all(|l| l.holder.as_deref() != Some("a")),
                "{leases:?}"
            );
            until("b leads all", || per_runner(&board).get("b") == Some(&4)).await;
            assert!(
                board.doubles.lock().unwrap().is_empty(),
                "{:?}",
                board.doubles
            );
            // A few ticks cost a few statements, whatever the orgs: renew + view.
            let ticks = stats_a.ticks();
            assert!(
                ticks > 0 && stats_a.statements() < ticks * 2 + 40,
                "{} statements over {ticks} ticks",
                stats_a.statements()
            );
            cancel_b.cancel();
            task_b.await.unwrap();
            assert!(board.running.lock().unwrap().is_empty());
            let all = store.leases("").await.unwrap();
            assert!(
                all.iter().all(|l| l.holder.is_none()),
                "all released: {all:?}"
            );
            ts.drop().await;
        }
    }

    #[tokio::test]
    async fn a_fleet_that_cannot_renew_stops_its_orgs_before_its_leases_could_lapse() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = Store::open(&url).await.unwrap();
        let board = Arc::new(Board::default());
        let ttl = Duration::from_millis(1_500);
        let config = FleetConfig::new(vec!["o1".into(), "o2".into()], 10, ttl);
        let runner = Arc::new(Recorder {
            id: "a".into(),
            board: Arc::clone(&board),
        });
        let fleet = Fleet::with_holder(store.clone(), runner, config, "a".into());
        let cancel = CancellationToken::new();
        let (state, task) = fleet.run(cancel.clone());
        let task = tokio::spawn(task);
        until("a leads both", || per_runner(&board).get("a") == Some(&2)).await;
        // The store goes away: both pipelines are stopped within the TTL of the last
        // renewal, so no other process can have taken an org while they still ran.
        let cut = Instant::now();
        store.close().await;
        until("both stopped", || board.running.lock().unwrap().is_empty()).await;
        assert!(cut.elapsed() < ttl, "stopped after {:?}", cut.elapsed());
        assert!(state.borrow().leading.is_empty());
        assert!(state.borrow().error.is_some(), "the store error is shown");
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_fleet_whose_org_lease_was_taken_stops_that_org_without_releasing_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = Store::open(&url).await.unwrap();
        let board = Arc::new(Board::default());
        let config = FleetConfig::new(vec!["o1".into()], 10, Duration::from_millis(900));
        let runner = Arc::new(Recorder {
            id: "a".into(),
            board: Arc::clone(&board),
        });
        let fleet = Fleet::with_holder(store.clone(), runner, config, "a".into());
        let cancel = CancellationToken::new();
        let (state, task) = fleet.run(cancel.clone());
        let task = tokio::spawn(task);
        until("a leads o1", || per_runner(&board).get("a") == Some(&1)).await;
        // As if A had been frozen past the TTL: its lease lapses and C takes it (again
        // if A's renewal slipped in between).
        let epoch = state.borrow().leading.get("o1").copied().unwrap();
        let mut taken = false;
        for _ in 0..10 {
            assert!(
                store
                    .lease_renew("org:o1", "a", epoch, Duration::ZERO)
                    .await
                    .unwrap()
            );
            let grab = store
                .lease_acquire("org:o1", "c", Duration::from_secs(60))
                .await
                .unwrap();
            if matches!(grab, LeaseGrab::Held { .. }) {
                taken = true;
                break;
            }
        }
        assert!(taken);
        // A learns it at its next renewal and stops the org's pipeline.
        until("a stopped o1", || board.running.lock().unwrap().is_empty()).await;
        assert!(state.borrow().leading.is_empty());
        cancel.cancel();
        task.await.unwrap();
        let lease = store.lease("org:o1").await.unwrap().unwrap();
        assert_eq!(
            (lease.holder.as_deref(), lease.epoch),
            (Some("c"), epoch + 1),
            "A's shutdown left C's lease alone"
        );
    }
}
