//! HAProxy's runtime API: the stats socket and the stats page's actions.
pub mod cli;
pub mod command;
pub mod http;
pub mod socket;

use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::watch;
use tracing::info;

use crate::config::Config;
pub use command::{AdminState, Command, ForcedHealth, Request, StatFilter, Weight};

/// Binds every `stats socket` and every stats page of `config` (as root,
/// before privileges drop) and starts serving them; what they ask waits for
/// the agent loop, which takes the returned [`crate::agent::Runtime`].
pub async fn start(config: &Config) -> anyhow::Result<crate::agent::Runtime> {
    // First: a SIGTERM that comes while the datapath is being set up is
    // kept for the loop (which then stops cleanly), not the default action
    // that would kill the agent with its VIPs and sysctls left behind.
    let signals = crate::signals::Signals::install()?;
    // Connected now, while NOTIFY_SOCKET's path is in sight (see notify.rs).
    let notifier = crate::notify::Notifier::from_env();
    let (tx, rx) = tokio::sync::mpsc::channel(crate::agent::REQUEST_QUEUE);
    let (config_tx, config_rx) = watch::channel(Arc::new(config.clone()));
    let mut tasks = Vec::new();
    for sock in &config.global.stats_sockets {
        let l = socket::bind(sock, &config.global)
            .await
            .with_context(|| format!("{}: stats socket {}", sock.origin, sock.address))?;
        info!("stats socket {} ready", sock.address);
        tasks.push(l.spawn(tx.clone(), config_rx.clone()));
    }
    for fe in config
        .frontends
        .iter()
        .filter(|f| f.stats_page.is_some() && !f.disabled)
    {
        let l = http::bind(fe)
            .await
            .with_context(|| format!("{}: stats page of {}", fe.origin, fe.name))?;
        for addr in l.local_addrs() {
            info!("{}: stats page on http://{addr}", fe.name);
        }
        tasks.push(l.spawn(tx.clone(), config_rx.clone()));
    }
    Ok(crate::agent::Runtime {
        requests: rx,
        on_reload: Box::new(move |c: &Config| {
            let _ = config_tx.send(Arc::new(c.clone()));
        }),
        listeners: tasks,
        signals,
        notifier,
    })
}
