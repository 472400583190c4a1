//! `leadroute explain <crm>:<object>:<id>`: one record's whole routing decision, then
//! its journey from the store (mirror arrival, webhook hints, journaled writes,
//! exceptions).

use std::path::PathBuf;

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use super::plan::Context;
use super::{GlobalArgs, out};
use crate::domain::RecordRef;
use crate::reconcile;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The record, e.g. hubspot:contact:123 or salesforce:lead:00Q…
    pub record: RecordRef,
    /// Policy file (default: `[policy] path` from the config).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Print the decision (with a `history` field) as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Evaluate as of this instant (RFC 3339) instead of now.
    #[arg(long)]
    pub now: Option<DateTime<Utc>>,
}

pub async fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    // The record's first segment names its org (or, where unambiguous, its CRM kind).
    let all =
        crate::service::load::config_all(global.config.as_deref(), crate::config::Needs::Mirror)?;
    let org = crate::domain::resolve_org(args.record.org.as_str(), &all.org_refs())
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.record))?;
    if let Some(flag) = global.org.as_deref()
        && flag != org.as_str()
    {
        anyhow::bail!(
            "{} is a record of org {org}, but --org {flag} was given; drop --org or name the record as {flag}:{}:{}",
            args.record,
            args.record.object,
            args.record.id
        );
    }
    let mut global = global.clone();
    global.org = Some(org.to_string());
    let ctx = Context::load(&global, args.policy.as_deref()).await?;
    let now = args.now.unwrap_or_else(Utc::now);
    let (snapshot, ledger) = ctx.mirror().await?;
    let history = ctx
        .store
        .record_history(&ctx.org_ref.name, args.record.object, &args.record.id)
        .await
        .with_context(|| format!("reading the history of {}", args.record))?;
    let org = ctx.org_ref.name.as_str();
    let sla_timers = ctx
        .store
        .sla_timers(org, None, Some((args.record.object, &args.record.id)), 50)
        .await
        .with_context(|| format!("reading the SLA timers of {}", args.record))?;
    let sla_events = ctx
        .store
        .sla_events(org, &[], None, Some((args.record.object, &args.record.id)))
        .await
        .with_context(|| format!("reading the SLA events of {}", args.record))?;
    let Some(decision) = reconcile::explain(
        &snapshot,
        &ctx.policy,
        &ledger,
        now,
        args.record.object,
        &args.record.id,
    ) else {
        if !history.writes.is_empty() || !history.exceptions.is_empty() {
            // Gone from the mirror, but what leadroute did to it is still journaled.
            out::print(format_args!(
                "{}{}",
                args.record,
                reconcile::explain::render_history(&history, &ctx.policy)
            ))?;
        }
        anyhow::bail!(
            "{} is not in the mirror (deleted, merged, or not synced yet); run `leadroute sync`",
            args.record
        );
    };
    if args.json {
        let mut value = serde_json::to_value(&decision)?;
        if let Some(object) = value.as_object_mut() {
            object.insert("history".to_owned(), serde_json::to_value(&history)?);
            object.insert(
                "sla".to_owned(),
                serde_json::json!({ "timers": sla_timers, "events": sla_events }),
            );
        }
        out::println(serde_json::to_string_pretty(&value)?)?;
    } else {
        out::print(format_args!(
            "{}{}{}",
            reconcile::explain::render(&args.record.to_string(), &decision, &ctx.policy),
            reconcile::explain::render_history(&history, &ctx.policy),
            super::sla::render_record(&sla_timers, &sla_events, &ctx.policy)
        ))?;
    }
    Ok(())
}
