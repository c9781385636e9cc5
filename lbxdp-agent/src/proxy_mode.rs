//! Serving a config with the userspace proxy, behind the same agent loop
//! as XDP: the health checks feed it, SIGHUP reloads, the runtime API
//! reads its counters.
use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use tracing::{info, warn};

use crate::{
    config::Config,
    health::{Monitor, Snapshot, effective_weights, recalls_backups},
    proxy::{self, SharedAvailability},
    stats::{BackendCounters, Counters, FrontendCounters, ServerCounters},
    takeover::Stop,
};

/// Pushes each server's health and effective weight (the backup rule
/// applied, in `health::effective_weights`), and whether the backups are
/// recalled (`health::recalls_backups`), into the proxy's availability map.
fn push(avail: &SharedAvailability, config: &Config, snapshot: &Snapshot) {
    for be in &config.backends {
        let weights = effective_weights(be, snapshot);
        avail.set_recall(&be.name, recalls_backups(be, &weights));
        for (s, w) in be.servers.iter().zip(weights) {
            let up = snapshot
                .get(&crate::health::ServerId::new(&be.name, &s.name))
                .map_or(!s.disabled, |st| st.is_up());
            avail.set(&be.name, &s.name, up, w);
        }
    }
}

struct ProxyEngine {
    proxy: proxy::Proxy,
    avail: std::sync::Arc<SharedAvailability>,
}

impl crate::engine::Engine for ProxyEngine {
    /// The proxy's own reload is transactional (a bind error keeps the old
    /// listeners), so it is done when preparing.
    type Prepared = ();

    fn apply_health(&mut self, config: &Config, snapshot: &Snapshot) -> anyhow::Result<()> {
        push(&self.avail, config, snapshot);
        Ok(())
    }

    async fn prepare(&mut self, config: &Config) -> anyhow::Result<()> {
        Ok(self.proxy.reload(config).await?)
    }

    async fn commit(&mut self, (): (), config: &Config, snapshot: &Snapshot) -> anyhow::Result<()> {
        push(&self.avail, config, snapshot);
        Ok(())
    }

    fn counters(&self) -> anyhow::Result<Counters> {
        let p = self.proxy.stats();
        let mut c = Counters {
            current_conns: Some(p.actconn),
            cum_conns: Some(p.cum_conns),
            ..Default::default()
        };
        for f in &p.frontends {
            c.frontends.insert(
                f.name.clone(),
                FrontendCounters {
                    scur: Some(f.scur),
                    smax: Some(f.smax),
                    stot: Some(f.stot),
                    bin: Some(f.bin),
                    bout: Some(f.bout),
                    dreq: Some(f.denied),
                    dcon: Some(f.denied_conn),
                    ereq: Some(f.accept_errors),
                    ..Default::default()
                },
            );
        }
        for b in &p.backends {
            c.backends.insert(
                b.name.clone(),
                BackendCounters {
                    qcur: Some(b.qcur),
                    nosrv: Some(b.nosrv),
                    ..Default::default()
                },
            );
            for s in &b.servers {
                c.servers.insert(
                    (b.name.clone(), s.name.clone()),
                    ServerCounters {
                        qcur: Some(s.qcur),
                        scur: Some(s.scur),
                        smax: Some(s.smax),
                        stot: Some(s.stot),
                        lbtot: Some(s.stot),
                        bin: Some(s.bin),
                        bout: Some(s.bout),
                        econ: Some(s.econ),
                        wretr: Some(s.wretr),
                        wredis: Some(s.wredis),
                        cli_abrt: Some(s.cli_abrt),
                        srv_abrt: Some(s.srv_abrt),
                        ..Default::default()
                    },
                );
            }
        }
        Ok(c)
    }

    fn sessions(&self) -> String {
        self.proxy.show_sess()
    }

    fn stick_tables(&self, name: Option<&str>) -> anyhow::Result<Vec<crate::stick::Dump>> {
        Ok(self.proxy.stick_dump(name))
    }

    fn clear_stick_table(&mut self, name: &str, select: &crate::stick::Select) -> anyhow::Result<usize> {
        self.proxy
            .stick_clear(name, select)
            .ok_or_else(|| anyhow::anyhow!("No such table"))
    }

    /// The rules hold the configuration's own sets, already changed.
    fn update_acl_list(
        &mut self,
        _: &crate::config::patref::ExprAt,
        _: &[(std::net::IpAddr, u8)],
        _: &[(std::net::IpAddr, u8)],
    ) -> anyhow::Result<()> {
        Ok(())
    }

    fn takes_masks(&self) -> bool {
        true
    }

    fn log_counters(&self) {
        match serde_json::to_string(&self.proxy.stats()) {
            Ok(s) => info!("stats: {s}"),
            Err(e) => warn!("stats: {e}"),
        }
    }

    fn final_extra(&self) -> serde_json::Value {
        serde_json::json!({ "mode": "proxy", "proxy": self.proxy.stats() })
    }
}

pub async fn run(
    config: Config,
    paths: &[PathBuf],
    runtime: crate::agent::Runtime,
) -> anyhow::Result<serde_json::Value> {
    raise_nofile();
    warn_unapplied_source(&config);
    // Checked before anything is bound: a user that doesn't exist stops here.
    let drop_to = crate::privileges::target(&config.global)?;
    let paths = &crate::privileges::absolute(paths);
    migrate_requests();
    let monitor = Monitor::start(&config).0;
    let avail = SharedAvailability::from_config(&config);
    push(&avail, &config, &monitor.snapshot());
    let p = proxy::start(&config, avail.clone())
        .await
        .context("starting the proxy")?;
    for (frontend, addr) in p.listen_addrs() {
        info!("proxy: frontend {frontend} listening on {addr}");
    }
    // Listening: become the configured user. Reloads bind on this thread,
    // which keeps CAP_NET_BIND_SERVICE; the session threads need none.
    if let Some(t) = &drop_to {
        let mut reachable = crate::privileges::config_dirs(paths);
        reachable.extend(crate::privileges::pattern_dirs(&config));
        crate::privileges::drop_to(t, &reachable)?;
    }
    info!(
        "balancing {} frontend(s) with the userspace proxy",
        config.frontends.iter().filter(|f| f.stats_page.is_none()).count()
    );
    let opts = crate::agent::Options {
        config_paths: paths.to_vec(),
        stats_interval: 0,
    };
    let engine = ProxyEngine { proxy: p, avail };
    let hard_stop_after = config.global.hard_stop_after;
    let (engine, report, stop) = crate::agent::serve(engine, config, monitor, runtime, &opts).await?;
    match stop {
        Stop::Hard => engine.proxy.shutdown().await,
        Stop::Soft => {
            // HAProxy waits for the sessions as long as they last unless
            // `hard-stop-after` says otherwise; a year is that, bounded.
            let grace = hard_stop_after.unwrap_or(Duration::from_secs(365 * 24 * 3600));
            engine.proxy.drain(grace).await;
            info!("soft stop: the last session ended (or hard-stop-after passed)");
        }
    }
    Ok(report)
}

/// Every listener shares its address (SO_REUSEPORT) with the listeners of
/// an agent that takes over (-sf, a master's reload). When the old agent
/// closes its own, the connections still queued on them would be reset;
/// with `tcp_migrate_req` the kernel hands them to the new agent's instead.
/// HAProxy passes the listening sockets themselves (-x) for the same end.
/// Turned on for the network namespace and left on: it only changes what
/// happens to a closing SO_REUSEPORT listener's queue.
fn migrate_requests() {
    const PATH: &str = "/proc/sys/net/ipv4/tcp_migrate_req";
    match std::fs::read_to_string(PATH) {
        Ok(v) if v.trim() == "1" => {}
        Ok(_) => match std::fs::write(PATH, "1") {
            Ok(()) => info!(
                "net.ipv4.tcp_migrate_req set to 1: a takeover (-sf, reload under -W) moves the old agent's queued \
                 connections to the new one instead of resetting them"
            ),
            Err(e) => warn!("{PATH}: {e}; a takeover may reset connections queued on the old agent"),
        },
        Err(e) => warn!("{PATH}: {e}; a takeover may reset connections queued on the old agent"),
    }
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
