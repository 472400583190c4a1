//! `leadroute exceptions`.

use super::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args, _global: &GlobalArgs) -> anyhow::Result<()> {
    anyhow::bail!("`leadroute exceptions` is not built yet (tracked in issue 5)")
}
