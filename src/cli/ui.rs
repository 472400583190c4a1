//! `leadroute ui [--listen ADDR]`: the web console over the store, without running the
//! pipeline (the sidecar, `leadroute run`, serves the same console on its listener);
//! `leadroute ui passwd USER` prints a `[[ui.users]]` entry with an argon2 hash.

use std::io::{BufRead as _, IsTerminal as _};
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use leadroute_crm::Crm;

use super::GlobalArgs;
use super::apply::{AppEnv, load_env};
use crate::app::{self, CrmTask};
use crate::console::{self, ConsoleOptions, ConsoleState, auth};
use crate::service::clock::SystemClock;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Address to serve on (default: `ui.listen`, else 127.0.0.1:8088). Cookies are
    /// `Secure` unless it is a loopback address: serve other addresses behind HTTPS.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print a `[[ui.users]]` entry for USER; the password is read from stdin (one
    /// line), never from the command line.
    Passwd {
        /// The user's login name.
        user: String,
        /// The role: viewer (reads), operator (also resolves, retries, rolls back) or admin.
        #[arg(long, default_value = "operator")]
        role: String,
    },
}

pub async fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    if let Some(Command::Passwd { user, role }) = args.command {
        return passwd(&user, &role);
    }
    let env = load_env(global).await?;
    app::with_crm(
        &env.config.clone(),
        UiTask {
            listen: args.listen,
            env,
        },
    )
    .await
}

fn passwd(user: &str, role: &str) -> anyhow::Result<()> {
    if crate::config::UiRole::parse(role).is_none() {
        anyhow::bail!("--role {role:?}: write viewer, operator or admin");
    }
    if std::io::stdin().is_terminal() {
        eprintln!("password for {user} (echoed; pipe it in to keep it off the screen):");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.chars().count() < 8 {
        anyhow::bail!("the password is shorter than 8 characters; choose a longer one");
    }
    let hash = auth::hash_password(password).map_err(anyhow::Error::msg)?;
    println!("[[ui.users]]\nname = {user:?}\nrole = {role:?}\npassword_hash = {hash:?}");
    Ok(())
}

struct UiTask {
    listen: Option<SocketAddr>,
    env: AppEnv,
}

impl CrmTask for UiTask {
    type Output = ();

    async fn run<C: Crm>(self, crm: Arc<C>) -> anyhow::Result<()> {
        let UiTask { listen, env } = self;
        let addr = listen.unwrap_or(env.config.ui.listen);
        let state = ConsoleState::new(
            crm,
            env.store.clone(),
            env.config.clone(),
            Arc::new(SystemClock),
            ConsoleOptions {
                admin_password: std::env::var(auth::ADMIN_PASSWORD_ENV).ok(),
                status: None,
                secure_cookies: !addr.ip().is_loopback(),
            },
        )?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr} for the console (--listen or ui.listen)"))?;
        let bound = listener.local_addr().context("the console's address")?;
        eprintln!("leadroute ui: serving the console on http://{bound}/ (Ctrl-C stops)");
        let cancel = tokio_util::sync::CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.cancel();
        });
        crate::web::serve(listener, console::router(state), cancel)
            .await
            .context("serving the console")
    }
}
