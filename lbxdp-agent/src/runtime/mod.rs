//! HAProxy's runtime API: the stats socket and the stats page's actions.
pub mod acl;
pub mod cli;
pub mod command;
pub mod http;
pub mod socket;

use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::watch;
use tracing::info;

use crate::config::{Config, StatsSocket};
pub use command::{AdminState, Command, ForcedHealth, Request, StatFilter, TableRequest, Weight};

/// Where a master process (-W) asks its worker to open an admin-level
/// runtime socket for it: the master CLI's `@1 <command>` goes there.
pub const WORKER_CLI_ENV: &str = "LBXDP_WORKER_CLI";

/// Binds every `stats socket` and every stats page of `config` (as root,
/// before privileges drop) and starts serving them; what they ask waits for
/// the agent loop, which takes the returned [`crate::agent::Runtime`].
/// With `predecessors`, another agent serves the same sockets and this one replaces
/// it (-sf/-st, a master's new worker), so a socket file that still answers
/// is replaced, as HAProxy does, instead of refused.
pub async fn start(
    config: &Config,
    predecessors: crate::takeover::Predecessors,
) -> anyhow::Result<crate::agent::Runtime> {
    let takeover = !predecessors.is_empty();
    // First: a SIGTERM that comes while the datapath is being set up is
    // kept for the loop (which then stops cleanly), not the default action
    // that would kill the agent with its VIPs and sysctls left behind.
    let signals = crate::signals::Signals::install()?;
    // Connected now, while NOTIFY_SOCKET's path is in sight (see notify.rs).
    let notifier = crate::notify::Notifier::from_env();
    let (tx, rx) = tokio::sync::mpsc::channel(crate::agent::REQUEST_QUEUE);
    let (config_tx, config_rx) = watch::channel(Arc::new(config.clone()));
    let mut tasks = Vec::new();
    let for_master = std::env::var_os(WORKER_CLI_ENV).map(|path| StatsSocket {
        mode: Some(0o600),
        ..StatsSocket::admin(path.to_string_lossy(), crate::config::Origin::new("master", 0))
    });
    for sock in config.global.stats_sockets.iter().chain(&for_master) {
        let l = socket::bind(sock, &config.global, takeover)
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
        predecessors,
    })
}

/// A TCP listener that another agent can share while one takes over from
/// the other (HAProxy binds every listener with SO_REUSEPORT for the same
/// reason).
pub(crate) fn listen_shared(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let sock = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }?;
    sock.set_reuseaddr(true)?;
    sock.set_reuseport(true)?;
    sock.bind(addr)?;
    sock.listen(1024)
}
