//! `leadroute sim hubspot|salesforce --port P [--seed N] [--contacts N] [--accounts N]
//! [--owners N] [--token T]`: a standalone CRM API simulator with a generated org, for
//! trying leadroute and for outside tools. Runs until Ctrl-C.
//!
//! To drive a standalone sidecar: `leadroute sim hubspot --webhook-url URL
//! --webhook-secret SECRET` sends signed webhook batches (the secret is the app's
//! client secret, which signs them), `leadroute sim salesforce --outbound-url URL`
//! sends outbound messages; `POST /__sim/stream` on either plays a stream of form fills.

use std::io::Write;

use super::GlobalArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimKind {
    Hubspot,
    Salesforce,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which API to simulate.
    #[arg(value_enum)]
    pub crm: SimKind,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 4010)]
    pub port: u16,
    /// Seed of the generated org (same seed, same org).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Contacts to generate.
    #[arg(long)]
    pub contacts: Option<usize>,
    /// Companies / accounts to generate.
    #[arg(long)]
    pub accounts: Option<usize>,
    /// Owners (users) to generate.
    #[arg(long)]
    pub owners: Option<usize>,
    /// Leads to generate (Salesforce only).
    #[arg(long)]
    pub leads: Option<usize>,
    /// The access token the simulator accepts (default: its built-in one).
    #[arg(long)]
    pub token: Option<String>,
    /// HubSpot only: where to POST signed webhook batches (e.g. the sidecar's
    /// `/webhooks/hubspot`).
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
    /// HubSpot only: the app's client secret, which signs webhooks (v1 and v3);
    /// give the sidecar the same one.
    #[arg(long, value_name = "SECRET")]
    pub webhook_secret: Option<String>,
    /// Salesforce only: where outbound messages (SOAP notifications) are POSTed
    /// (e.g. the sidecar's `/webhooks/salesforce`).
    #[arg(long, value_name = "URL")]
    pub outbound_url: Option<String>,
}

/// Checks a delivery URL given on the command line.
fn delivery_url(flag: &str, text: &str) -> anyhow::Result<String> {
    match url::Url::parse(text) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {
            Ok(text.to_owned())
        }
        Ok(_) => anyhow::bail!(
            "{flag} {text:?}: not an http(s) URL with a host; give e.g. http://127.0.0.1:8080/webhooks/..."
        ),
        Err(err) => {
            anyhow::bail!("{flag} {text:?}: {err}; give e.g. http://127.0.0.1:8080/webhooks/...")
        }
    }
}

pub async fn run(args: Args, _global: &GlobalArgs) -> anyhow::Result<()> {
    match args.crm {
        SimKind::Hubspot => hubspot(args).await,
        SimKind::Salesforce => salesforce(args).await,
    }
}

async fn salesforce(args: Args) -> anyhow::Result<()> {
    if args.webhook_url.is_some() || args.webhook_secret.is_some() {
        anyhow::bail!(
            "--webhook-url and --webhook-secret apply to HubSpot only; Salesforce sends outbound messages (--outbound-url)"
        );
    }
    let outbound_url = args
        .outbound_url
        .as_deref()
        .map(|u| delivery_url("--outbound-url", u))
        .transpose()?;
    let mut config = leadroute_sim::salesforce::SalesforceSimConfig {
        port: args.port,
        seed: args.seed,
        ..Default::default()
    };
    if let Some(n) = args.contacts {
        config.contacts = n;
    }
    if let Some(n) = args.leads {
        config.leads = n;
    }
    if let Some(n) = args.accounts {
        config.accounts = n;
    }
    if let Some(n) = args.owners {
        config.users = n;
    }
    if let Some(token) = args.token {
        config.pre_issued_token = Some(token);
    }
    config.outbound_url = outbound_url.clone();
    let (client_id, client_secret, refresh_token) = (
        config.client_id.clone(),
        config.client_secret.clone(),
        config.refresh_token.clone(),
    );
    let sim = leadroute_sim::salesforce::spawn(config)
        .await
        .map_err(|err| anyhow::anyhow!("starting the Salesforce simulator on 127.0.0.1:{}: {err}; pick another --port (0 = any free one)", args.port))?;
    let state = sim.state();
    let base = sim.base_url();
    let token = sim.token();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Salesforce simulator listening on {base} (login and instance URL)"
    )?;
    writeln!(
        out,
        "  org {} (seed {}): {} leads, {} contacts, {} accounts, {} users, {} groups",
        sim.org_id(),
        args.seed,
        state.leads.len(),
        state.contacts.len(),
        state.accounts.len(),
        state.users.len(),
        state.groups.len()
    )?;
    writeln!(out, "  session token: {token}")?;
    writeln!(
        out,
        "  OAuth: client_id {client_id}, client_secret {client_secret}, refresh_token {refresh_token}"
    )?;
    match &outbound_url {
        Some(url) => writeln!(
            out,
            "  outbound messages: POST {url} (Lead, Contact, Account changes; org {})",
            sim.org_id()
        )?,
        None => writeln!(
            out,
            "  outbound messages: off (--outbound-url URL turns them on)"
        )?,
    }
    writeln!(
        out,
        "  control: {base}/__sim/stats, /__sim/state, /__sim/faults, /__sim/mutate, /__sim/reset, /__sim/stream"
    )?;
    writeln!(
        out,
        "  form fills: curl -X POST {base}/__sim/stream -d '{{\"per_second\":5,\"seconds\":60,\"object\":\"Lead\"}}'"
    )?;
    writeln!(out)?;
    writeln!(out, "Point leadroute at it:")?;
    writeln!(
        out,
        "  LEADROUTE_CRM_KIND=salesforce LEADROUTE_CRM_BASE_URL={base} LEADROUTE_CRM_TOKEN='{token}' leadroute sync --once"
    )?;
    writeln!(out)?;
    writeln!(out, "Ctrl-C stops it.")?;
    out.flush()?;
    drop(out);
    super::sync::shutdown_signal().await;
    sim.shutdown().await;
    Ok(())
}

async fn hubspot(args: Args) -> anyhow::Result<()> {
    if args.leads.is_some() {
        anyhow::bail!("--leads applies to Salesforce only; HubSpot has contacts (--contacts)");
    }
    if args.outbound_url.is_some() {
        anyhow::bail!(
            "--outbound-url applies to Salesforce only; HubSpot sends webhooks (--webhook-url, --webhook-secret)"
        );
    }
    let webhook_url = args
        .webhook_url
        .as_deref()
        .map(|u| delivery_url("--webhook-url", u))
        .transpose()?;
    if args.webhook_secret.as_deref().is_some_and(str::is_empty) {
        anyhow::bail!(
            "--webhook-secret is empty; give the app secret the sidecar checks signatures with"
        );
    }
    let mut config = leadroute_sim::hubspot::HubSpotSimConfig {
        port: args.port,
        seed: args.seed,
        ..Default::default()
    };
    if let Some(n) = args.contacts {
        config.contacts = n;
    }
    if let Some(n) = args.accounts {
        config.companies = n;
    }
    if let Some(n) = args.owners {
        config.owners = n;
    }
    if let Some(token) = args.token {
        config.token = token;
    }
    // HubSpot signs webhooks with the app's client secret.
    if let Some(secret) = args.webhook_secret {
        config.client_secret = secret;
    }
    config.webhook_url = webhook_url.clone();
    let secret = config.client_secret.clone();
    let sim = leadroute_sim::hubspot::spawn(config)
        .await
        .map_err(|err| anyhow::anyhow!("starting the HubSpot simulator on 127.0.0.1:{}: {err}; pick another --port (0 = any free one)", args.port))?;
    let state = sim.state();
    let base = sim.base_url();
    let mut out = std::io::stdout().lock();
    writeln!(out, "HubSpot simulator listening on {base}")?;
    writeln!(
        out,
        "  org (seed {}): {} contacts, {} companies, {} owners",
        args.seed,
        state.contacts.len(),
        state.companies.len(),
        state.owners.len()
    )?;
    writeln!(out, "  token: {}", sim.token())?;
    match &webhook_url {
        Some(url) => writeln!(
            out,
            "  webhooks: POST {url}, signed v1 and v3 with secret {secret}"
        )?,
        None => writeln!(
            out,
            "  webhooks: off (--webhook-url URL --webhook-secret SECRET turns them on); secret {secret}"
        )?,
    }
    writeln!(
        out,
        "  control: {base}/__sim/stats, /__sim/state, /__sim/faults, /__sim/mutate, /__sim/reset, /__sim/stream"
    )?;
    writeln!(
        out,
        "  form fills: curl -X POST {base}/__sim/stream -d '{{\"per_second\":5,\"seconds\":60,\"object\":\"contacts\"}}'"
    )?;
    writeln!(out)?;
    writeln!(out, "Point leadroute at it:")?;
    writeln!(
        out,
        "  LEADROUTE_CRM_BASE_URL={base} LEADROUTE_CRM_TOKEN={} leadroute sync --once",
        sim.token()
    )?;
    if webhook_url.is_some() {
        writeln!(
            out,
            "  (the sidecar checks webhook signatures with LEADROUTE_WEBHOOK_SECRET={secret})"
        )?;
    }
    writeln!(out)?;
    writeln!(out, "Ctrl-C stops it.")?;
    out.flush()?;
    drop(out);
    super::sync::shutdown_signal().await;
    sim.shutdown().await;
    Ok(())
}
