//! `leadroute backfill`: plan ownership for every existing record and apply it with a
//! progress bar. Resumable: an unfinished backfill run in the journal is continued
//! (finished batches are never redone) instead of planning afresh.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::sync::Arc;

use anyhow::Context as _;
use chrono::Utc;
use leadroute_crm::{Crm, ObjectKind};

use super::GlobalArgs;
use super::apply::{AppEnv, load_env};
use super::apply::{
    cancel_on_ctrl_c, confirm, finish, finish_commit, load_policy, plan_from_mirror,
    writer_settings,
};
use crate::app::{self, CrmTask};
use crate::reconcile::{Ledger, Plan};
use crate::service::commit::commit_plan;
use crate::store::RunStatus;
use crate::writer::{
    ApplyReport, BarProgress, NoProgress, Progress, RunId, RunSpec, Writer, summarize,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only these objects (contact, lead, account); repeat or comma-separate.
    #[arg(long, value_delimiter = ',', value_name = "OBJECT")]
    pub object: Vec<ObjectKind>,
    /// Show the plan summary and cost, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply without asking. Required when stdin is not a terminal.
    #[arg(long)]
    pub yes: bool,
    /// Plan afresh even if an unfinished backfill run exists (that run is closed as
    /// superseded; its unsent changes stay resumable with `leadroute apply --resume RUN`).
    /// Without it, an unfinished run is resumed (on a terminal: asked, `[Y/n/fresh]`).
    #[arg(long)]
    pub restart: bool,
    /// Salesforce: conditional writes (If-Unmodified-Since).
    #[arg(long)]
    pub strict: bool,
}

pub async fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let env = load_env(global).await?;
    app::with_crm(&env.config.clone(), BackfillJob { args, env }).await
}

struct BackfillJob {
    args: Args,
    env: AppEnv,
}

impl CrmTask for BackfillJob {
    type Output = ();

    async fn run<C: Crm>(self, crm: Arc<C>) -> anyhow::Result<()> {
        let BackfillJob { args, env } = self;
        let writer = Writer::new(crm, env.store.clone(), writer_settings(&env, args.strict))
            .with_org(env.config.org.clone())
            .with_cancel(cancel_on_ctrl_c());
        if !args.dry_run
            && let Some(run) = env
                .store
                .journal_unfinished_run(writer.org(), "backfill")
                .await?
        {
            let id = RunId::new(run.run_id.clone());
            let counts = env.store.journal_counts(&run.run_id).await?;
            let age = age_text(Utc::now().signed_duration_since(run.created_at));
            let stopped = run
                .message
                .as_deref()
                .map(|m| format!("; it stopped: {m}"))
                .unwrap_or_default();
            if counts.pending == 0 {
                // Stopped after its last change (a Ctrl-C at the very end): close it and
                // go on with a fresh backfill in this same command.
                writer.resume(&id, &NoProgress).await?;
                eprintln!(
                    "closed backfill run {id} started {age} ago: all {} changes were done \
                     ({}); planning a fresh backfill",
                    counts.total,
                    run.status.as_str()
                );
            } else {
                let what = format!(
                    "backfill run {id} started {age} ago ({} of {} done{stopped}); its plan is \
                     {age} old",
                    counts.done(),
                    counts.total
                );
                let choice = if args.restart {
                    ResumeChoice::Fresh
                } else {
                    ask_resume(args.yes, &what)?
                };
                match choice {
                    ResumeChoice::Resume => {
                        eprintln!("resuming {what}");
                        let report = writer.resume(&id, &BarProgress::new()).await?;
                        return finish(&report, "leadroute backfill");
                    }
                    ResumeChoice::Stop => {
                        println!(
                            "nothing done; the run stays resumable (`leadroute backfill`, or \
                             `leadroute backfill --restart` to plan afresh)"
                        );
                        return Ok(());
                    }
                    ResumeChoice::Fresh => {
                        let note = format!(
                            "superseded by a fresh backfill; its {} unfinished changes stay \
                             resumable with `leadroute apply --resume {id}`",
                            counts.pending
                        );
                        env.store
                            .journal_set_run_status(
                                id.as_str(),
                                RunStatus::Completed,
                                Some(&note),
                                None,
                                Utc::now(),
                            )
                            .await?;
                        eprintln!("not resuming {what}; planning a fresh backfill");
                    }
                }
            }
        }
        let policy = load_policy(&env)?;
        let objects = (!args.object.is_empty()).then_some(args.object.as_slice());
        // The pools in force from before the plan's picks (recorded once committing).
        let roster_at = Utc::now();
        let (plan, mut ledger) = plan_from_mirror(&env, &policy, objects).await?;
        let mut summary = summarize(&writer, &plan, Some(&policy));
        let owners = env.store.owners(writer.org()).await.unwrap_or_default();
        summary.name_owners(
            &plan,
            &crate::reconcile::OwnerNames::new(Some(&policy), &owners),
        );
        println!("{summary}");
        if args.dry_run {
            println!("dry run: nothing written");
            return Ok(());
        }
        crate::analytics::load::record_roster(&env.store, writer.org(), &policy, roster_at).await;
        if plan.changes.is_empty() {
            // Nothing to write to the CRM, but the plan's exceptions still belong in
            // the queue (queueing them asks for no confirmation: the CRM is untouched).
            let spec = backfill_spec();
            let committed = commit_plan(
                &writer,
                &plan,
                Some(&mut ledger),
                &spec,
                &BarProgress::new(),
            )
            .await?;
            finish_commit(&committed, "leadroute backfill")?;
            println!("every record already has its desired owner");
            return Ok(());
        }
        if !confirm(
            args.yes,
            &format!("backfill {} owner changes?", plan.changes.len()),
        )? {
            println!("not applied");
            return Ok(());
        }
        let spec = backfill_spec();
        let committed = commit_plan(
            &writer,
            &plan,
            Some(&mut ledger),
            &spec,
            &BarProgress::new(),
        )
        .await?;
        finish_commit(&committed, "leadroute backfill")
    }
}

/// What to do with an unfinished backfill run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResumeChoice {
    Resume,
    Stop,
    Fresh,
}

/// On a terminal asks `resume? [Y/n/fresh]` about the run `what` describes; otherwise
/// (or with `--yes`) resumes.
fn ask_resume(yes: bool, what: &str) -> anyhow::Result<ResumeChoice> {
    if yes || !std::io::stdin().is_terminal() {
        return Ok(ResumeChoice::Resume);
    }
    println!("unfinished {what}");
    print!("resume? [Y/n/fresh] ");
    std::io::stdout().flush().context("writing the prompt")?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    Ok(parse_resume_answer(&answer))
}

fn parse_resume_answer(answer: &str) -> ResumeChoice {
    match answer.trim().to_ascii_lowercase().as_str() {
        "" | "y" | "yes" => ResumeChoice::Resume,
        "f" | "fresh" => ResumeChoice::Fresh,
        _ => ResumeChoice::Stop,
    }
}

/// "4 minutes", "3 hours", "2 days".
fn age_text(age: chrono::Duration) -> String {
    let minutes = age.num_minutes().max(0);
    match minutes {
        0..=1 => "1 minute".to_owned(),
        2..=119 => format!("{minutes} minutes"),
        120..=2879 => format!("{} hours", minutes / 60),
        _ => format!("{} days", minutes / 1440),
    }
}

/// A new `backfill` run.
fn backfill_spec() -> RunSpec {
    RunSpec {
        id: RunId::generate(Utc::now()),
        kind: "backfill".to_owned(),
        parent: None,
    }
}

/// Commits to the plan as a new `backfill` run through the shared commit path
/// ([`commit_plan`]: ledger, exceptions, changes). The demo uses this.
pub(crate) async fn start_backfill<C: Crm>(
    writer: &Writer<C>,
    _env: &AppEnv,
    plan: &Plan,
    ledger: &mut Ledger,
    progress: &dyn Progress,
) -> anyhow::Result<ApplyReport> {
    let spec = backfill_spec();
    let committed = commit_plan(writer, plan, Some(ledger), &spec, progress).await?;
    match committed.report {
        Some(report) => Ok(report),
        // No owner changes: an empty run, so the caller still gets a report.
        None => Ok(writer.apply_run(plan, &spec, progress).await?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_prompt_defaults_to_resume_and_understands_fresh() {
        assert_eq!(parse_resume_answer("\n"), ResumeChoice::Resume);
        assert_eq!(parse_resume_answer("Y\n"), ResumeChoice::Resume);
        assert_eq!(parse_resume_answer("fresh\n"), ResumeChoice::Fresh);
        assert_eq!(parse_resume_answer("n\n"), ResumeChoice::Stop);
        assert_eq!(age_text(chrono::Duration::minutes(90)), "90 minutes");
        assert_eq!(age_text(chrono::Duration::hours(50)), "2 days");
    }
}
