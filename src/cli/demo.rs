//! `leadroute demo [--crm hubspot|salesforce] [--contacts N]`: the whole job with no
//! setup. Starts a simulator in-process with a generated org, mirrors it into a fresh
//! SQLite file under `.leadroute/demo/`, lets "people" edit records, syncs again
//! incrementally and checks the mirror; then writes a routing policy fitted to the
//! org's owners, prints the drift summary and the plan, backfills it at the
//! simulator's rate limit through the same path as `leadroute backfill`, re-syncs to
//! show the org converged, and prints a closing summary with the commands to try next.
//! Last, unless `--sidecar-secs 0`, it runs the sidecar (`leadroute run`) in-process
//! while the simulator's web form creates leads, printing each routing as it happens
//! (`demo/sidecar.rs`). The config, policy and secrets it used are written next to the
//! demo database.

mod sidecar;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use leadroute_crm::{ApiUsage, Crm, CrmKind};

use super::GlobalArgs;
use super::apply::{AppEnv, cancel_on_ctrl_c, plan_from_mirror, writer_settings};
use super::backfill::start_backfill;
use super::sim::SimKind;
use super::sync::print_report;
use crate::config::Config;
use crate::domain::{OrgId, OrgRef, Snapshot};
use crate::mirror::Mirror;
use crate::reconcile::drift;
use crate::service::starter::toml_str;
use crate::store::Store;
use crate::writer::{BarProgress, Writer, summarize};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which CRM to simulate.
    #[arg(long, value_enum, default_value = "hubspot")]
    pub crm: SimKind,
    /// Contacts in the generated org (Salesforce: also as many leads).
    #[arg(long, default_value_t = 3_000)]
    pub contacts: usize,
    /// Seed of the generated org.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where the demo's SQLite file, config and policy go (recreated on each run).
    #[arg(long, default_value = ".leadroute/demo")]
    pub dir: PathBuf,
    /// Seconds of new leads for the sidecar phase (0 skips it).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=3_600))]
    pub sidecar_secs: u32,
}

pub async fn run(args: Args, _global: &GlobalArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    match args.crm {
        SimKind::Hubspot => hubspot(args, started).await,
        SimKind::Salesforce => salesforce(args, started).await,
    }
}

/// The files a demo run leaves behind, all absolute so the printed commands work from
/// any directory.
struct DemoFiles {
    dir: PathBuf,
    db: PathBuf,
    config: PathBuf,
    policy: PathBuf,
}

impl DemoFiles {
    /// `dir/<name>.db`, `dir/<name>.toml`, `dir/<name>-policy.toml`; the old database
    /// is removed so the numbers mean what they say.
    fn fresh(dir: &Path, name: &str) -> anyhow::Result<DemoFiles> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir =
            std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
        let db = dir.join(format!("{name}.db"));
        for suffix in ["", "-wal", "-shm"] {
            let path = PathBuf::from(format!("{}{suffix}", db.display()));
            if path.exists() {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing the old {}", path.display()))?;
            }
        }
        Ok(DemoFiles {
            config: dir.join(format!("{name}.toml")),
            policy: dir.join(format!("{name}-policy.toml")),
            db,
            dir,
        })
    }

    /// Writes a secret next to the config (simulator credentials, not real ones) and
    /// returns its file name for a `*_file` key.
    fn secret(&self, name: &str, value: &str) -> anyhow::Result<String> {
        let path = self.dir.join(name);
        std::fs::write(&path, value).with_context(|| format!("writing {}", path.display()))?;
        Ok(name.to_owned())
    }

    /// Writes the config (`[crm]` table given, store and policy added) and loads it
    /// without the process environment, so the demo ignores any LEADROUTE_* settings.
    fn write_config(&self, crm_table: &str) -> anyhow::Result<Config> {
        let text = format!(
            "# Written by `leadroute demo`. The simulator it names stopped with the demo;\n\
             # override crm.base_url (LEADROUTE_CRM_BASE_URL) to point at a running one.\n\
             {crm_table}\n[store]\nurl = {}\n\n[policy]\npath = {}\n",
            toml_str(&format!("sqlite://{}", self.db.display())),
            toml_str(&self.policy.display().to_string()),
        );
        std::fs::write(&self.config, text)
            .with_context(|| format!("writing {}", self.config.display()))?;
        Config::load(Some(&self.config), &|_| None).map_err(|err| anyhow::anyhow!("{err}"))
    }
}

/// What the simulator itself counted, for the closing summary.
struct SimCounts {
    calls: u64,
    refused: u64,
    refused_what: &'static str,
}

async fn salesforce(args: Args, started: Instant) -> anyhow::Result<()> {
    use leadroute_sim::salesforce::{Mutation, SalesforceSimConfig};

    let mut out = std::io::stdout().lock();
    let sim_config = SalesforceSimConfig {
        port: 0,
        seed: args.seed,
        contacts: args.contacts,
        leads: args.contacts,
        accounts: (args.contacts / 8).max(10),
        ..Default::default()
    };
    let (client_id, client_secret, refresh_token) = (
        sim_config.client_id.clone(),
        sim_config.client_secret.clone(),
        sim_config.refresh_token.clone(),
    );
    let accounts = sim_config.accounts;
    let sim = leadroute_sim::salesforce::spawn(sim_config)
        .await
        .context("starting the Salesforce simulator")?;
    // The org's live records (the generator merges and deletes some of what it makes),
    // so every total below adds up to what the org holds.
    let generated = sim.state();
    writeln!(
        out,
        "leadroute demo: a simulated Salesforce org at {} (seed {}, {} leads and {} contacts live of {} each generated)",
        sim.base_url(),
        args.seed,
        generated.leads.iter().filter(|l| !l.is_deleted).count(),
        generated.contacts.iter().filter(|c| !c.is_deleted).count(),
        args.contacts
    )?;
    drop(generated);
    let files = DemoFiles::fresh(&args.dir, "salesforce")?;
    let crm_table = format!(
        "[crm]\nkind = \"salesforce\"\nbase_url = {}\n\n[crm.oauth]\nclient_id = {}\nclient_secret_file = {}\nrefresh_token_file = {}\n\n[crm.salesforce]\nauth = \"refresh_token\"\n",
        toml_str(&sim.base_url()),
        toml_str(&client_id),
        toml_str(&files.secret("salesforce.client-secret", &client_secret)?),
        toml_str(&files.secret("salesforce.refresh-token", &refresh_token)?),
    );
    let config = files.write_config(&crm_table)?;
    let store = Store::open(&format!("sqlite://{}", files.db.display())).await?;
    let crm = Arc::new(crate::app::salesforce(&config)?);
    let mirror = Mirror::new(crm.clone(), store.clone()).with_progress(true);

    writeln!(
        out,
        "\n1. Full sync into {} (OAuth refresh-token flow)",
        files.db.display()
    )?;
    let full = mirror.sync_once(false).await.context("full sync")?;
    print_report(&mut out, &full)?;

    let edits = (args.contacts / 20).max(10);
    writeln!(
        out,
        "\n2. People edit {edits} leads and {edits} contacts in the org"
    )?;
    for object in ["Lead", "Contact"] {
        sim.mutate(Mutation::RandomEdits {
            object: object.to_owned(),
            count: edits,
            seed: args.seed + 1,
        })
        .map_err(|err| anyhow::anyhow!("simulated edits failed: {err}"))?;
    }
    // Edits in a burst are stamped ahead of the wall clock; let it catch up, as it
    // would between real people's edits.
    tokio::time::sleep(Duration::from_millis(2 * edits as u64 + 1_000)).await;
    writeln!(
        out,
        "\n3. Incremental sync (SystemModstamp with an overlap window)"
    )?;
    let incremental = mirror.sync_once(false).await.context("incremental sync")?;
    print_report(&mut out, &incremental)?;

    let state = sim.state();
    let counts = store
        .counts(&OrgId::default_for(CrmKind::Salesforce))
        .await?;
    let leads = state.leads.iter().filter(|l| !l.is_deleted).count() as u64;
    let contacts = state.contacts.iter().filter(|c| !c.is_deleted).count() as u64;
    let live_accounts = state.accounts.iter().filter(|a| !a.is_deleted).count() as u64;
    let matches =
        counts.leads == leads && counts.contacts == contacts && counts.accounts == live_accounts;
    writeln!(
        out,
        "\n4. The mirror {} the org: {} leads (org {leads}), {} contacts (org {contacts}), {} accounts (org {live_accounts}), {} users and queues",
        if matches { "matches" } else { "DOES NOT match" },
        counts.leads,
        counts.contacts,
        counts.accounts,
        counts.owners
    )?;
    if !matches {
        anyhow::bail!("the mirror does not match the simulator; this is a bug, please report it");
    }
    let env = AppEnv {
        config,
        store: store.clone(),
    };
    let done = converge(&mut out, &mirror, crm, &env, &files).await;
    let stats = sim.stats();
    // Salesforce does not count OAuth token calls against the API allocation, and
    // neither does leadroute: leave them out so the two figures compare.
    let sim_counts = SimCounts {
        calls: stats
            .calls
            .iter()
            .filter(|(endpoint, _)| !endpoint.contains("oauth2/token"))
            .map(|(_, n)| *n)
            .sum(),
        refused: stats.limit_rejections,
        refused_what: "refused for limits",
    };
    // The sidecar phase after the counts: its calls are its own (shown in /metrics).
    let done = match done {
        Ok(done) if args.sidecar_secs > 0 => {
            let feed = sidecar::Feed {
                set_webhook_url: Box::new(|url| sim.set_outbound_url(url)),
                route: "/webhooks/salesforce",
                start_stream: Box::new(|per_second, secs| {
                    sim.start_stream(per_second, secs, "Lead")
                }),
                stream_report: Box::new(|id| sim.stream_report(id)),
                noun: "leads",
                webhook_secret: None,
            };
            sidecar::run(
                &mut out,
                &env.config,
                crate::app::salesforce,
                &store,
                feed,
                args.sidecar_secs,
            )
            .await
            .map(|_| done)
        }
        other => other,
    };
    let standalone = format!(
        "sim salesforce --port 4020 --seed {} --contacts {} --leads {} --accounts {accounts}",
        args.seed, args.contacts, args.contacts
    );
    let result = done.and_then(|done| {
        closing(
            &mut out,
            &done,
            &sim_counts,
            &files,
            started,
            &standalone,
            "http://127.0.0.1:4020",
        )
    });
    out.flush()?;
    store.close().await;
    sim.shutdown().await;
    result
}

async fn hubspot(args: Args, started: Instant) -> anyhow::Result<()> {
    use leadroute_sim::hubspot::{HubSpotSimConfig, Mutation, ObjectType};

    let mut out = std::io::stdout().lock();
    let sim_config = HubSpotSimConfig {
        port: 0,
        seed: args.seed,
        contacts: args.contacts,
        companies: (args.contacts / 8).max(10),
        owners: 25,
        // The demo edits and re-syncs within seconds; the real index lag (and the
        // overlap window that covers it) is exercised by the integration tests.
        search_lag: Duration::ZERO,
        ..Default::default()
    };
    let companies = sim_config.companies;
    // The app's client secret signs the simulator's webhooks.
    let webhook_secret = sim_config.client_secret.clone();
    let sim = leadroute_sim::hubspot::spawn(sim_config)
        .await
        .context("starting the HubSpot simulator")?;
    writeln!(
        out,
        "leadroute demo: a simulated HubSpot portal at {} (seed {}, {} contacts)",
        sim.base_url(),
        args.seed,
        args.contacts
    )?;

    let files = DemoFiles::fresh(&args.dir, "hubspot")?;
    let crm_table = format!(
        "[crm]\nkind = \"hubspot\"\nbase_url = {}\ntier = \"professional\"\ntoken_file = {}\n",
        toml_str(&sim.base_url()),
        toml_str(&files.secret("hubspot.token", &sim.token())?),
    );
    let config = files.write_config(&crm_table)?;
    let store = Store::open(&format!("sqlite://{}", files.db.display())).await?;
    let crm = Arc::new(crate::app::hubspot(&config)?);
    let mirror = Mirror::new(crm.clone(), store.clone()).with_progress(true);

    writeln!(out, "\n1. Full sync into {}", files.db.display())?;
    let full = mirror.sync_once(false).await.context("full sync")?;
    print_report(&mut out, &full)?;

    let edits = (args.contacts / 20).max(10);
    writeln!(
        out,
        "\n2. {edits} people edit records in the CRM (owners, stages, fields); one merge; one archive"
    )?;
    sim.mutate(Mutation::RandomEdits {
        n: edits,
        seed: args.seed + 1,
    })
    .map_err(|err| anyhow::anyhow!("simulated edits failed: {err}"))?;
    // The simulator stamps each edit at least 1 ms after the previous one, so a burst
    // of edits is stamped ahead of the wall clock; an incremental sync started at once
    // would see them only on its next pass. People are slower: let the clock catch up.
    tokio::time::sleep(Duration::from_millis(edits as u64 + 1_000)).await;
    let state = sim.state();
    let live: Vec<u64> = state
        .contacts
        .iter()
        .filter(|c| !c.archived)
        .map(|c| c.id)
        .take(3)
        .collect();
    if let [a, b, c] = live[..] {
        sim.mutate(Mutation::Merge {
            object: ObjectType::Contacts,
            primary_id: a.to_string(),
            merged_id: b.to_string(),
        })
        .map_err(|err| anyhow::anyhow!("simulated merge failed: {err}"))?;
        sim.mutate(Mutation::Archive {
            object: ObjectType::Contacts,
            id: c.to_string(),
        })
        .map_err(|err| anyhow::anyhow!("simulated archive failed: {err}"))?;
    }

    writeln!(
        out,
        "\n3. Incremental sync (search on last-modified, overlap window, de-duplicated)"
    )?;
    let incremental = mirror.sync_once(false).await.context("incremental sync")?;
    print_report(&mut out, &incremental)?;

    let state = sim.state();
    let counts = store.counts(&OrgId::default_for(CrmKind::Hubspot)).await?;
    let live_contacts = state.contacts.iter().filter(|c| !c.archived).count() as u64;
    let live_companies = state.companies.iter().filter(|c| !c.archived).count() as u64;
    let matches = counts.contacts == live_contacts && counts.accounts == live_companies;
    writeln!(
        out,
        "\n4. The mirror {} the portal: {} contacts (portal {live_contacts}), {} companies (portal {live_companies}), {} owners, {} contact→company links, {} tombstones",
        if matches { "matches" } else { "DOES NOT match" },
        counts.contacts,
        counts.accounts,
        counts.owners,
        counts.links,
        counts.tombstones
    )?;
    if !matches {
        anyhow::bail!("the mirror does not match the simulator; this is a bug, please report it");
    }
    let env = AppEnv {
        config,
        store: store.clone(),
    };
    let done = converge(&mut out, &mirror, crm, &env, &files).await;
    let stats = sim.stats();
    let sim_counts = SimCounts {
        calls: stats.total_calls(),
        refused: stats.rate_limited,
        refused_what: "answered 429",
    };
    // The sidecar phase after the counts: its calls are its own (shown in /metrics).
    let done = match done {
        Ok(done) if args.sidecar_secs > 0 => {
            let feed = sidecar::Feed {
                set_webhook_url: Box::new(|url| sim.set_webhook_url(url)),
                route: "/webhooks/hubspot",
                start_stream: Box::new(|per_second, secs| {
                    sim.start_stream(per_second, secs, ObjectType::Contacts)
                }),
                stream_report: Box::new(|id| sim.stream_report(id)),
                noun: "leads",
                webhook_secret: Some(webhook_secret),
            };
            sidecar::run(
                &mut out,
                &env.config,
                crate::app::hubspot,
                &store,
                feed,
                args.sidecar_secs,
            )
            .await
            .map(|_| done)
        }
        other => other,
    };
    let standalone = format!(
        "sim hubspot --port 4010 --seed {} --contacts {} --accounts {companies} --owners 25",
        args.seed, args.contacts
    );
    let result = done.and_then(|done| {
        closing(
            &mut out,
            &done,
            &sim_counts,
            &files,
            started,
            &standalone,
            "http://127.0.0.1:4010",
        )
    });
    out.flush()?;
    store.close().await;
    sim.shutdown().await;
    result
}

/// What the CRM-neutral part of the demo did.
struct Converged {
    kind: CrmKind,
    records: u64,
    planned: usize,
    report: crate::writer::ApplyReport,
    min_writes: u64,
    batch_label: String,
    moved: Option<String>,
    left_after: usize,
    usage: ApiUsage,
}

/// Steps 5–8, the same for every CRM: a policy fitted to the mirrored owners, drift and
/// plan, the backfill (the `leadroute backfill` code path), and a re-sync that shows
/// nothing is left to do.
async fn converge<C: Crm>(
    out: &mut impl Write,
    mirror: &Mirror<C>,
    crm: Arc<C>,
    env: &AppEnv,
    files: &DemoFiles,
) -> anyhow::Result<Converged> {
    let kind = crm.kind();
    let snapshot = env
        .store
        .snapshot(&OrgRef::default_for(kind))
        .await
        .context("reading the mirror")?;
    let (text, reps) = demo_policy(&snapshot)?;
    std::fs::write(&files.policy, &text)
        .with_context(|| format!("writing {}", files.policy.display()))?;
    let policy = super::plan::load_policy(&files.policy)?;
    writeln!(
        out,
        "\n5. A routing policy fitted to the org's owners: {} ({reps} reps; territories EMEA / North America; account owner for matched accounts; exceptions for ambiguous matches and for unmatched records without a country)",
        files.policy.display()
    )?;

    let ledger = env
        .store
        .load_ledger(&OrgId::default_for(kind))
        .await
        .context("reading the assignment ledger")?;
    let report = drift::build(&snapshot, &policy, &ledger, Utc::now());
    writeln!(
        out,
        "\n6. Drift: {} of the {} records the policy routes already where it wants them ({} mirrored; categories overlap)",
        report.in_policy,
        report.records,
        snapshot.people.len()
    )?;
    for (category, count) in report.categories.iter().filter(|(_, n)| **n > 0) {
        writeln!(out, "   {category:<24} {count}")?;
    }
    // The pools in force from before the plan's picks, for `leadroute report fairness`.
    crate::analytics::load::record_roster(&env.store, &env.config.org, &policy, Utc::now()).await;
    let (plan, mut ledger) = plan_from_mirror(env, &policy, None).await?;
    let writer = Writer::new(crm.clone(), env.store.clone(), writer_settings(env, false))
        .with_cancel(cancel_on_ctrl_c());
    writeln!(out, "\n   The plan:")?;
    let mut summary = summarize(&writer, &plan, Some(&policy));
    summary.name_owners(
        &plan,
        &crate::reconcile::OwnerNames::new(Some(&policy), &snapshot.owners),
    );
    for line in summary.to_string().lines() {
        writeln!(out, "   {line}")?;
    }
    let moved = plan
        .changes
        .first()
        .map(|c| format!("{kind}:{}:{}", c.object, c.id));
    // Batches hold one object kind: the summary's minimum is per object.
    let (min_writes, batch) = (summary.write_calls, summary.batch);

    writeln!(
        out,
        "\n7. Backfill at the simulator's rate limit (journaled; compare-before-write)"
    )?;
    out.flush()?;
    let applied = start_backfill(&writer, env, &plan, &mut ledger, &BarProgress::new()).await?;
    for line in applied.to_string().lines() {
        writeln!(out, "   {line}")?;
    }
    if !applied.is_complete() {
        anyhow::bail!(
            "the backfill stopped before finishing: {}",
            applied
                .stopped
                .as_ref()
                .map_or("changes left pending", |s| s.message.as_str())
        );
    }

    writeln!(out, "\n8. Re-sync and re-plan: is the org converged?")?;
    let resync = mirror.sync_once(false).await.context("re-sync")?;
    print_report(out, &resync)?;
    let (after, _) = plan_from_mirror(env, &policy, None).await?;
    writeln!(
        out,
        "   {} owner changes left ({} rejected by the CRM and queued as exceptions); {} planned exceptions",
        after.changes.len(),
        applied.rejected + applied.failed,
        after.exceptions.len()
    )?;
    let records = env
        .store
        .snapshot(&OrgRef::default_for(kind))
        .await?
        .people
        .len() as u64;
    Ok(Converged {
        kind,
        records,
        planned: plan.changes.len(),
        report: applied,
        min_writes,
        batch_label: format!("batches of {batch}"),
        moved,
        left_after: after.changes.len(),
        usage: crm.usage(),
    })
}

/// The starter policy (`leadroute policy init`) for the org's active users.
fn demo_policy(snapshot: &Snapshot) -> anyhow::Result<(String, usize)> {
    Ok(crate::service::starter::starter_policy(
        &snapshot.owners,
        "leadroute demo",
    )?)
}

fn headroom(usage: &ApiUsage) -> String {
    let mut parts = Vec::new();
    if let (Some(left), Some(max)) = (usage.window_remaining, usage.window_max) {
        let window = usage
            .window
            .map(|w| format!(" per {} s", w.as_secs()))
            .unwrap_or_default();
        parts.push(format!("{left} of {max} calls left{window}"));
    }
    if let (Some(left), Some(max)) = (usage.daily_remaining, usage.daily_max) {
        parts.push(format!("{left} of {max} left today"));
    }
    if parts.is_empty() {
        "not reported".to_owned()
    } else {
        parts.join("; ")
    }
}

/// The closing summary and the commands to try next.
fn closing(
    out: &mut impl Write,
    done: &Converged,
    sim: &SimCounts,
    files: &DemoFiles,
    started: Instant,
    standalone: &str,
    standalone_url: &str,
) -> anyhow::Result<()> {
    let r = &done.report;
    // Changes the CRM rejected (validation rules and the like) wait in the exceptions
    // queue for a person; the plan keeps asking for them until one acts.
    let waiting = (r.rejected + r.failed) as usize;
    let converged = done.left_after <= waiting;
    writeln!(
        out,
        "\nDone in {:.1} s: the {} org is {}.",
        started.elapsed().as_secs_f64(),
        done.kind,
        if converged && done.left_after > 0 {
            "converged (the changes the CRM rejected wait in the exceptions queue)"
        } else if converged {
            "converged"
        } else {
            "NOT converged"
        }
    )?;
    writeln!(out, "  records mirrored     {}", done.records)?;
    writeln!(
        out,
        "  API calls            {} by leadroute ({} throttled, {} retried); the simulator counted {} ({} {})",
        done.usage.calls,
        done.usage.throttled,
        done.usage.retries,
        sim.calls,
        sim.refused,
        sim.refused_what
    )?;
    writeln!(
        out,
        "  changes              {} planned: {} applied, {} unchanged, {} skipped (owner changed since plan), {} rejected, {} failed",
        done.planned, r.applied, r.unchanged, r.skipped_changed, r.rejected, r.failed
    )?;
    writeln!(out, "  exceptions queued    {}", r.exceptions)?;
    // The minimum counts a bulk job's HTTP calls; count the run's the same way.
    let batch_calls = r.write_calls.saturating_sub(r.bulk_jobs);
    if r.bulk_jobs > 0 {
        let job_calls = r
            .bulk_jobs
            .saturating_mul(crate::writer::PlanSummary::BULK_JOB_CALLS);
        writeln!(
            out,
            "  write calls          {} ({} bulk jobs of {} calls each + {batch_calls} batch calls; minimum {}, {}) + {} compare reads",
            job_calls.saturating_add(batch_calls),
            r.bulk_jobs,
            crate::writer::PlanSummary::BULK_JOB_CALLS,
            done.min_writes,
            done.batch_label,
            r.read_calls
        )?;
    } else {
        writeln!(
            out,
            "  write calls          {} (minimum {}, {}) + {} compare reads",
            r.write_calls, done.min_writes, done.batch_label, r.read_calls
        )?;
    }
    writeln!(
        out,
        "  backfill time        {:.1} s",
        r.elapsed.as_secs_f64()
    )?;
    writeln!(out, "  rate-limit headroom  {}", headroom(&done.usage))?;
    writeln!(out, "\nFiles:")?;
    writeln!(out, "  config   {}", files.config.display())?;
    writeln!(out, "  database {}", files.db.display())?;
    writeln!(out, "  policy   {}", files.policy.display())?;
    let cfg = files.config.display();
    let lr = "cargo run --release --";
    writeln!(out, "\nTry next (they read the demo's database):")?;
    writeln!(
        out,
        "  {lr} plan --config {cfg}                 # converged: nothing left but exceptions"
    )?;
    if let Some(moved) = &done.moved {
        writeln!(
            out,
            "  {lr} explain {moved} --config {cfg}    # why this record moved"
        )?;
    }
    writeln!(
        out,
        "  {lr} drift --format html --out {} --config {cfg}",
        files.dir.join("drift").display()
    )?;
    writeln!(out, "  {lr} exceptions list --config {cfg}")?;
    writeln!(out, "  {lr} policy check {}", files.policy.display())?;
    writeln!(
        out,
        "Against a standalone simulator with the same org (it starts unconverged: a full sync repairs the mirror to it):"
    )?;
    writeln!(out, "  {lr} {standalone}      # in another terminal")?;
    // The standalone simulator accepts the same default credentials the demo's
    // config files hold, so only the base URL changes.
    writeln!(
        out,
        "  LEADROUTE_CRM_BASE_URL={standalone_url} {lr} sync --once --full --config {cfg}"
    )?;
    writeln!(
        out,
        "  LEADROUTE_CRM_BASE_URL={standalone_url} {lr} backfill --yes --config {cfg}"
    )?;
    writeln!(
        out,
        "  LEADROUTE_CRM_BASE_URL={standalone_url} {lr} rollback RUN --yes --config {cfg}   # RUN: the id the backfill printed (this demo's was {})",
        r.run_id
    )?;
    if !converged {
        anyhow::bail!(
            "{} owner changes are left after the backfill, {waiting} of them rejected by the CRM; this is a bug, please report it",
            done.left_after
        );
    }
    Ok(())
}
