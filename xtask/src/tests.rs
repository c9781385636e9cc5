#[derive(clap::Args, Default)]
pub struct TestArgs {}
pub fn test(_: &TestArgs) -> anyhow::Result<()> { anyhow::bail!("todo") }
