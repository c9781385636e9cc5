//! Serving a config with the userspace proxy: the health checks feed it the
//! same way they feed the XDP maps, SIGHUP reloads, SIGUSR1 logs the stats,
//! SIGTERM prints them as JSON and stops.
use std::path::PathBuf;

use anyhow::Context as _;
use serde::Serialize;
use tracing::{info, warn};

use crate::{
    config::Config,
    health::{Monitor, Snapshot},
    proxy::{self, ProxyStats, SharedAvailability},
};

/// Printed on stdout as one JSON line when the agent stops.
#[derive(Serialize)]
pub struct ProxyReport {
    pub mode: &'static str,
    pub proxy: ProxyStats,
}

/// Pushes each health snapshot into the proxy's availability map.
fn push(avail: &SharedAvailability, snapshot: &Snapshot) {
    for (id, state) in snapshot.iter() {
        avail.set(&id.backend, &id.server, state.takes_traffic(), state.weight);
    }
}

pub async fn run(config: Config, paths: &[PathBuf]) -> anyhow::Result<ProxyReport> {
    raise_nofile();
    warn_unapplied_source(&config);
    // Checked before anything is bound: a user that doesn't exist stops here.
    let drop_to = crate::privileges::target(&config.global)?;
    let paths = &crate::privileges::absolute(paths);
    let (mut monitor, mut health) = Monitor::start(&config);
    let avail = SharedAvailability::from_config(&config);
    push(&avail, &health.borrow_and_update());
    let mut p = proxy::start(&config, avail.clone())
        .await
        .context("starting the proxy")?;
    for (frontend, addr) in p.listen_addrs() {
        info!("proxy: frontend {frontend} listening on {addr}");
    }
    // Listening: become the configured user. Reloads bind on this thread,
    // which keeps CAP_NET_BIND_SERVICE; the session threads need none.
    if let Some(t) = &drop_to {
        crate::privileges::drop_to(t, &crate::privileges::config_dirs(paths))?;
    }
    info!(
        "balancing {} frontend(s) with the userspace proxy",
        config.frontends.len()
    );

    let mut sig = crate::signals::Signals::install()?;
    loop {
        tokio::select! {
            _ = sig.interrupt.recv() => { info!("SIGINT: stopping"); break; }
            _ = sig.terminate.recv() => { info!("SIGTERM: stopping"); break; }
            _ = sig.usr1.recv() => match serde_json::to_string(&p.stats()) {
                Ok(s) => info!("stats: {s}"),
                Err(e) => warn!("stats: {e}"),
            },
            Ok(()) = health.changed() => push(&avail, &health.borrow_and_update()),
            _ = sig.hangup.recv() => match reload(&mut p, &mut monitor, paths).await {
                Ok(()) => info!("SIGHUP: configuration reloaded"),
                Err(e) => warn!("SIGHUP: reload failed, the running configuration stays: {e:#}"),
            },
        }
    }
    let report = ProxyReport {
        mode: "proxy",
        proxy: p.stats(),
    };
    p.shutdown().await;
    monitor.stop();
    Ok(report)
}

async fn reload(p: &mut proxy::Proxy, monitor: &mut Monitor, paths: &[PathBuf]) -> anyhow::Result<()> {
    let loaded = crate::config_files::load(paths)?;
    for d in &loaded.diags {
        warn!("{d}");
    }
    let config = loaded
        .config
        .context("the new configuration has errors (see the [ALERT] lines)")?;
    p.reload(&config).await?;
    monitor.reload(&config);
    Ok(())
}

/// `source` is in the model for the XDP datapath; the proxy doesn't bind
/// its server connections to it (yet), so it says so rather than stay silent.
fn warn_unapplied_source(config: &Config) {
    let mut with_source = config
        .backends
        .iter()
        .flat_map(|b| b.servers.iter().filter(|s| s.source.is_some()));
    if let Some(first) = with_source.next() {
        warn!(
            "{}: 'source' is not applied by the userspace proxy ({} server(s)): it connects from the address \
             the kernel picks",
            first.origin,
            1 + with_source.count()
        );
    }
}

/// Whether an XDP failure should make `--mode auto` fall back to the proxy:
/// the kernel or the interface said no, or there is no interface to serve.
pub fn xdp_unavailable(e: &anyhow::Error) -> bool {
    use crate::datapath::{DatapathError, net::NetError, plan::PlanError};
    // Once XDP served, an error is the XDP balancer's, not a reason to start
    // something else in its place.
    if e.downcast_ref::<crate::balancer::Served>().is_some() {
        return false;
    }
    e.chain().any(|c| {
        c.downcast_ref::<DatapathError>()
            .is_some_and(|d| !matches!(d, DatapathError::NoSuchInterface(_)))
            || c.downcast_ref::<NetError>().is_some()
            // What XDP can't do but the proxy can (IPv4 to IPv6, port
            // offsets over several ports, wide ranges); with no frontend at
            // all there is nothing for the proxy either.
            || c.downcast_ref::<PlanError>().is_some_and(|p| !matches!(p, PlanError::Empty))
    })
}

/// Every session holds two sockets, and every health check one: allow as
/// many as the hard limit does (XDP mode too: its checks and sockets count).
pub(crate) fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        warn!("raising the open-file limit from {soft} to {hard}: {e}");
    }
}
