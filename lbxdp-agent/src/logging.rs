//! Logs go to stderr through tracing; `log` records (aya, aya-log's forwarded
//! kernel records) are bridged in by tracing-subscriber's `tracing-log` feature.
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `verbose` raises the default level to debug; RUST_LOG, when set, wins.
pub fn init(verbose: bool) {
    let default = if verbose { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
