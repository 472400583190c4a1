//! `leadroute demo [--crm hubspot|salesforce] [--contacts N]`: no setup. Starts a
//! simulator in-process with a generated org, mirrors it into a fresh SQLite file under
//! `.leadroute/demo/`, lets "people" edit records, syncs again incrementally, checks the
//! mirror against the simulator, and prints what happened and what to try next.
//!
//! Later capabilities (plan, apply, drift) add their steps after the mirror step.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use leadroute_crm::CrmKind;

use super::GlobalArgs;
use super::sim::SimKind;
use super::sync::print_report;
use crate::config::Config;
use crate::mirror::Mirror;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which CRM to simulate.
    #[arg(long, value_enum, default_value = "hubspot")]
    pub crm: SimKind,
    /// Contacts in the generated org.
    #[arg(long, default_value_t = 5_000)]
    pub contacts: usize,
    /// Seed of the generated org.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where the demo's SQLite file goes (recreated on each run).
    #[arg(long, default_value = ".leadroute/demo")]
    pub dir: PathBuf,
}

pub async fn run(args: Args, _global: &GlobalArgs) -> anyhow::Result<()> {
    match args.crm {
        SimKind::Hubspot => hubspot(args).await,
        SimKind::Salesforce => salesforce(args).await,
    }
}

/// A fresh SQLite file for the demo: `dir/name`, old copies removed.
fn fresh_db(dir: &std::path::Path, name: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let db = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the old {}", path.display()))?;
        }
    }
    Ok(db)
}

async fn salesforce(args: Args) -> anyhow::Result<()> {
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
    let sim = leadroute_sim::salesforce::spawn(sim_config)
        .await
        .context("starting the Salesforce simulator")?;
    writeln!(
        out,
        "leadroute demo: a simulated Salesforce org at {} (seed {}, {} leads, {} contacts)",
        sim.base_url(),
        args.seed,
        args.contacts,
        args.contacts
    )?;
    let db = fresh_db(&args.dir, "salesforce.db")?;
    let config_text = format!(
        "[crm]\nkind = \"salesforce\"\nbase_url = \"{}\"\n[crm.oauth]\nclient_id = \"{client_id}\"\n[crm.salesforce]\nauth = \"refresh_token\"\n[store]\nurl = \"sqlite://{}\"\n",
        sim.base_url(),
        db.display()
    );
    let config = Config::from_toml(&config_text, "(demo)", &|name| match name {
        "LEADROUTE_CRM_CLIENT_SECRET" => Some(client_secret.clone()),
        "LEADROUTE_CRM_REFRESH_TOKEN" => Some(refresh_token.clone()),
        _ => None,
    })
    .map_err(|err| anyhow::anyhow!("{err}"))?;
    let store = Store::open(&format!("sqlite://{}", db.display())).await?;
    let crm = Arc::new(crate::app::salesforce(&config)?);
    let mirror = Mirror::new(crm, store.clone()).with_progress(true);

    writeln!(
        out,
        "\n1. Full sync into {} (OAuth refresh-token flow)",
        db.display()
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
    writeln!(
        out,
        "\n3. Incremental sync (SystemModstamp with an overlap window)"
    )?;
    let incremental = mirror.sync_once(false).await.context("incremental sync")?;
    print_report(&mut out, &incremental)?;

    let state = sim.state();
    let counts = store.counts(CrmKind::Salesforce).await?;
    let leads = state.leads.iter().filter(|l| !l.is_deleted).count() as u64;
    let contacts = state.contacts.iter().filter(|c| !c.is_deleted).count() as u64;
    let accounts = state.accounts.iter().filter(|a| !a.is_deleted).count() as u64;
    let matches =
        counts.leads == leads && counts.contacts == contacts && counts.accounts == accounts;
    writeln!(
        out,
        "\n4. The mirror {} the org: {} leads (org {leads}), {} contacts (org {contacts}), {} accounts (org {accounts}), {} users and queues",
        if matches { "matches" } else { "DOES NOT match" },
        counts.leads,
        counts.contacts,
        counts.accounts,
        counts.owners
    )?;
    writeln!(out, "\nTry next:")?;
    writeln!(out, "  cargo run --release -- sim salesforce --port 4020")?;
    writeln!(
        out,
        "  cargo run --release -- demo            # the HubSpot demo"
    )?;
    out.flush()?;
    store.close().await;
    sim.shutdown().await;
    if !matches {
        anyhow::bail!("the mirror does not match the simulator; this is a bug, please report it");
    }
    Ok(())
}

async fn hubspot(args: Args) -> anyhow::Result<()> {
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

    // A fresh store each run, so the numbers mean what they say.
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let db = args.dir.join("leadroute.db");
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the old {}", path.display()))?;
        }
    }
    let config_text = format!(
        "[crm]\nkind = \"hubspot\"\nbase_url = \"{}\"\ntier = \"professional\"\n[store]\nurl = \"sqlite://{}\"\n",
        sim.base_url(),
        db.display()
    );
    let token = sim.token();
    let config = Config::from_toml(&config_text, "(demo)", &|name| {
        (name == "LEADROUTE_CRM_TOKEN").then(|| token.clone())
    })
    .map_err(|err| anyhow::anyhow!("{err}"))?;
    let store = Store::open(&format!("sqlite://{}", db.display())).await?;
    let crm = Arc::new(crate::app::hubspot(&config)?);
    let mirror = Mirror::new(crm, store.clone()).with_progress(true);

    writeln!(out, "\n1. Full sync into {}", db.display())?;
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
    let counts = store.counts(CrmKind::Hubspot).await?;
    let live_contacts = state.contacts.iter().filter(|c| !c.archived).count() as u64;
    let live_companies = state.companies.iter().filter(|c| !c.archived).count() as u64;
    let verdict = if counts.contacts == live_contacts && counts.accounts == live_companies {
        "matches"
    } else {
        "DOES NOT match"
    };
    writeln!(
        out,
        "\n4. The mirror {verdict} the portal: {} contacts (portal {live_contacts}), {} companies (portal {live_companies}), {} owners, {} contact→company links, {} tombstones",
        counts.contacts, counts.accounts, counts.owners, counts.links, counts.tombstones
    )?;
    let stats = sim.stats();
    writeln!(
        out,
        "   simulator saw {} API calls ({} answered 429)",
        stats.total_calls(),
        stats.rate_limited
    )?;

    writeln!(out, "\nTry next:")?;
    writeln!(
        out,
        "  sqlite3 {} 'SELECT object, COUNT(*) FROM people GROUP BY object'",
        db.display()
    )?;
    writeln!(
        out,
        "  cargo run --release -- sim hubspot --port 4010          # a simulator that stays up"
    )?;
    writeln!(
        out,
        "  LEADROUTE_CRM_BASE_URL=http://127.0.0.1:4010 LEADROUTE_CRM_TOKEN={} cargo run --release -- sync --once",
        sim.token()
    )?;
    writeln!(out, "  cargo run --release -- sync --help")?;
    out.flush()?;
    store.close().await;
    sim.shutdown().await;
    if verdict != "matches" {
        anyhow::bail!("the mirror does not match the simulator; this is a bug, please report it");
    }
    Ok(())
}
