//! HAProxy's runtime API: the stats socket and the stats page's actions.
pub mod command;

pub use command::{AdminState, Command, ForcedHealth, Request, StatFilter, Weight};

/// TEMPORARY until the listeners land (same session): the loop's channel only.
pub async fn start(_config: &crate::config::Config) -> anyhow::Result<crate::agent::Runtime> {
    let (_tx, rx) = tokio::sync::mpsc::channel(crate::agent::REQUEST_QUEUE);
    Ok(crate::agent::Runtime {
        requests: rx,
        on_reload: Box::new(|_| {}),
    })
}
