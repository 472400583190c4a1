//! `leadroute run`.

use super::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args, _global: &GlobalArgs) -> anyhow::Result<()> {
    anyhow::bail!("`leadroute run` is not built yet (tracked in issue O1 (not yet filed))")
}
