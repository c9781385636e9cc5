#[derive(clap::Args, Default)]
pub struct RunArgs {}
pub fn run(_: &RunArgs) -> anyhow::Result<()> { anyhow::bail!("todo") }
