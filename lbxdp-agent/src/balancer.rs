//! The XDP balancer's life: plan the maps from the config, load and attach
//! the program, program the maps, report counters, and undo it all on exit.
use std::{net::IpAddr, time::Duration};

use anyhow::{Context as _, bail};
use lbxdp_common::{FrontendStats, ServerStats, Settings, XDP_PASS_PROGRAM, XDP_PROGRAM};
use serde::Serialize;
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
};
use tracing::{info, warn};

use crate::{
    config::Config,
    datapath::{
        Datapath, NatMode, ProtoCounters, Sizes, XdpModeArg,
        net::{HostNet, IfAddr, in_subnet, snat_for},
        plan::{self, Plan},
        to_server_ids,
    },
    maglev,
};

#[derive(Debug, Clone)]
pub struct Options {
    pub ifaces: Vec<String>,
    pub xdp_mode: XdpModeArg,
    pub nat: NatMode,
    pub table_size: u32,
    pub flows: u32,
    pub kernel_debug: bool,
    /// Seconds between counter logs; 0: only on SIGUSR1 and at exit.
    pub stats_interval: u64,
}

/// Printed on stdout as one JSON line when the agent stops.
#[derive(Serialize)]
pub struct FinalReport {
    pub iface: String,
    pub mode: &'static str,
    pub counters: ProtoCounters,
    pub frontends: Vec<FrontendReport>,
    pub servers: Vec<ServerReport>,
}

#[derive(Serialize)]
pub struct FrontendReport {
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
    pub drop_no_server: u64,
    pub drop_no_port: u64,
    pub drop_table_full: u64,
    pub drop_no_neigh: u64,
    pub passed: u64,
}

#[derive(Serialize)]
pub struct ServerReport {
    pub backend: String,
    pub name: String,
    pub addr: String,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub new_flows: u64,
}

/// Runs the program on `ifaces` until SIGINT/SIGTERM; with a config, it balances.
pub async fn run(config: Option<&Config>, opts: &Options) -> anyhow::Result<FinalReport> {
    if opts.ifaces.is_empty() {
        bail!("--iface IFACE is required: the interface(s) to attach XDP to");
    }
    let mut nets = Vec::new();
    let mut local: Vec<(usize, IfAddr)> = Vec::new();
    for (i, iface) in opts.ifaces.iter().enumerate() {
        let ifindex = nix::net::if_::if_nametoindex(iface.as_str())
            .map_err(|_| crate::datapath::DatapathError::NoSuchInterface(iface.clone()))?;
        let net = HostNet::open(iface, ifindex)?;
        local.extend(net.addresses().await?.into_iter().map(|a| (i, a)));
        nets.push((net, ifindex));
    }
    let local_ips: Vec<IpAddr> = local.iter().map(|(_, a)| a.addr).collect();
    let plan = match config {
        Some(c) => Some(plan::plan(c, &local_ips)?),
        None => None,
    };
    let sizes = match &plan {
        Some(p) => Sizes {
            backends: p.backends.len() as u32,
            servers: p.backends.iter().map(|b| b.servers.len() as u32).sum(),
            table_size: opts.table_size,
            flows: opts.flows,
        },
        None => Sizes::default(),
    };
    if let Some(p) = &plan {
        let biggest = p.backends.iter().map(|b| b.servers.len()).max().unwrap_or(0);
        maglev::check_size(opts.table_size, biggest).context("--maglev-size")?;
    }

    let mut dp = Datapath::load(sizes, opts.kernel_debug, XDP_PROGRAM)?;
    for ((net, ifindex), iface) in nets.iter().zip(&opts.ifaces) {
        let mode = dp.attach_to(iface, opts.xdp_mode)?;
        info!("attached lbxdp to {iface} in {} mode", mode.as_str());
        dp.add_tx_port(*ifindex)?;
        if plan.is_some() {
            net.enable_forwarding()?;
        }
    }
    let result = async {
        if let Some(p) = &plan {
            program(&mut dp, p, &mut nets, &local, opts).await?;
        }
        serve(&mut dp, plan.as_ref(), opts).await
    }
    .await;
    for (net, _) in &mut nets {
        net.cleanup().await;
    }
    dp.detach()?;
    result
}

/// Fills the maps from the plan, all servers up (health checks come later).
async fn program(
    dp: &mut Datapath,
    p: &Plan,
    nets: &mut [(HostNet, u32)],
    local: &[(usize, IfAddr)],
    opts: &Options,
) -> anyhow::Result<()> {
    for note in &p.notes {
        info!("{note}");
    }
    let secs = Duration::from_secs;
    dp.set_settings(&Settings {
        table_size: opts.table_size,
        pad: 0,
        tcp_timeout_ns: secs(3600).as_nanos() as u64,
        closing_timeout_ns: secs(10).as_nanos() as u64,
        udp_timeout_ns: secs(30).as_nanos() as u64,
    })?;
    let addrs: Vec<IfAddr> = local.iter().map(|(_, a)| *a).collect();
    for be in &p.backends {
        for s in &be.servers {
            let snat = match opts.nat {
                NatMode::Full => snat_for(s.addr, &addrs).with_context(|| {
                    format!(
                        "server {}/{} ({}): the LB has no address of its family",
                        be.name, s.name, s.addr
                    )
                })?,
                NatMode::Dnat => s.addr,
            };
            dp.set_server(s, snat, !s.disabled)?;
            // The neighbour lives on the interface whose subnet holds the server.
            if let Some((i, _)) = local.iter().find(|(_, a)| in_subnet(s.addr, a))
                && let Some((net, _)) = nets.get_mut(*i)
            {
                net.manage_neighbour(s.addr).await?;
            }
        }
        let members = plan::members(be, &|_| true);
        let table = maglev::build(&members, opts.table_size)?;
        let ids = to_server_ids(&table, &be.servers);
        let backend = p.backends.iter().position(|b| b.name == be.name).unwrap_or_default() as u32;
        dp.set_table(backend, &ids)?;
    }
    for fe in &p.frontends {
        for &(vip, port) in &fe.vips {
            dp.add_frontend(vip, port, fe.id, fe.backend, opts.nat)?;
            if let Some((net, _)) = nets.first_mut() {
                net.ensure_vip(vip, &addrs).await?;
            }
        }
        let be = &p.backends[fe.backend as usize];
        let vips: Vec<String> = fe.vips.iter().map(|(ip, port)| sockaddr(*ip, *port)).collect();
        let servers: Vec<String> = be
            .servers
            .iter()
            .map(|s| format!("{}={} w{}", s.name, sockaddr(s.addr, s.port), s.weight))
            .collect();
        info!(
            "frontend {}: {} -> backend {} [{}], {} NAT, Maglev M={}",
            fe.name,
            vips.join(" "),
            be.name,
            servers.join(", "),
            match opts.nat {
                NatMode::Full => "full",
                NatMode::Dnat => "destination",
            },
            opts.table_size
        );
    }
    for (net, _) in nets.iter() {
        net.wait_neighbours(Duration::from_secs(2)).await;
    }
    Ok(())
}

fn sockaddr(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

/// Waits for a signal, logging counters on SIGUSR1 (and every interval).
async fn serve(dp: &mut Datapath, plan: Option<&Plan>, opts: &Options) -> anyhow::Result<FinalReport> {
    let log_task = spawn_logger(dp)?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigusr1 = signal(SignalKind::user_defined1()).context("installing SIGUSR1 handler")?;
    let period = Duration::from_secs(opts.stats_interval.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = sigint.recv() => { info!("SIGINT: stopping"); break; }
            _ = sigterm.recv() => { info!("SIGTERM: stopping"); break; }
            _ = sigusr1.recv() => log_stats(dp, plan),
            _ = ticker.tick(), if opts.stats_interval > 0 => log_stats(dp, plan),
        }
    }
    if let Some(t) = log_task {
        t.abort();
    }
    report(dp, plan)
}

fn log_stats(dp: &Datapath, plan: Option<&Plan>) {
    match dp.counters() {
        Ok(c) => info!("counters: {}", c.summary()),
        Err(e) => warn!("reading counters: {e}"),
    }
    let Some(p) = plan else { return };
    match report(dp, Some(p)) {
        Ok(r) => {
            for f in &r.frontends {
                info!(
                    "frontend {}: {} pkts {} bytes {} flows; dropped: no server {}, no port {}, no neighbour {}",
                    f.name, f.packets, f.bytes, f.new_flows, f.drop_no_server, f.drop_no_port, f.drop_no_neigh
                );
            }
            info!(
                "{:<24} {:>22} {:>10} {:>12} {:>10} {:>12} {:>8}",
                "server", "address", "pkts in", "bytes in", "pkts out", "bytes out", "flows"
            );
            for s in &r.servers {
                info!(
                    "{:<24} {:>22} {:>10} {:>12} {:>10} {:>12} {:>8}",
                    format!("{}/{}", s.backend, s.name),
                    s.addr,
                    s.packets_in,
                    s.bytes_in,
                    s.packets_out,
                    s.bytes_out,
                    s.new_flows
                );
            }
        }
        Err(e) => warn!("reading counters: {e}"),
    }
}

fn report(dp: &Datapath, plan: Option<&Plan>) -> anyhow::Result<FinalReport> {
    let counters = dp.counters()?;
    let (mut frontends, mut servers) = (Vec::new(), Vec::new());
    if let Some(p) = plan {
        let fstats = dp.frontend_stats(p.frontends.len() as u32)?;
        for (fe, s) in p.frontends.iter().zip(fstats) {
            let FrontendStats {
                packets,
                bytes,
                new_flows,
                drop_no_server,
                drop_no_port,
                drop_table_full,
                drop_no_neigh,
                passed,
            } = s;
            frontends.push(FrontendReport {
                name: fe.name.clone(),
                packets,
                bytes,
                new_flows,
                drop_no_server,
                drop_no_port,
                drop_table_full,
                drop_no_neigh,
                passed,
            });
        }
        let total = p.backends.iter().map(|b| b.servers.len() as u32).sum();
        let sstats = dp.server_stats(total)?;
        for be in &p.backends {
            for s in &be.servers {
                let ServerStats {
                    packets_in,
                    bytes_in,
                    packets_out,
                    bytes_out,
                    new_flows,
                } = sstats.get(s.id as usize).copied().unwrap_or_default();
                servers.push(ServerReport {
                    backend: be.name.clone(),
                    name: s.name.clone(),
                    addr: sockaddr(s.addr, s.port),
                    packets_in,
                    bytes_in,
                    packets_out,
                    bytes_out,
                    new_flows,
                });
            }
        }
    }
    Ok(FinalReport {
        iface: dp.iface(),
        mode: dp.mode().as_str(),
        counters,
        frontends,
        servers,
    })
}

/// Polls the program's aya-log ring buffer, if it kept any log statements.
fn spawn_logger(dp: &mut Datapath) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(logger) = dp.logger() else {
        return Ok(None);
    };
    // SAFETY: the logger owns its ring buffer's fd, which stays open and the
    // same until the logger drops, and the logger drops only with the AsyncFd.
    // aya-log's EbpfLogger is meant to be polled this way.
    let mut fd = unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("polling the eBPF log buffer: {e}"))?;
    Ok(Some(tokio::spawn(async move {
        loop {
            match fd.readable_mut().await {
                Ok(mut guard) => {
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                }
                Err(e) => {
                    warn!("eBPF log buffer: {e}");
                    break;
                }
            }
        }
    })))
}

/// `--xdp-pass`: an XDP program that passes everything, for the far end of
/// a veth pair (native XDP_TX into a veth delivers only when the peer runs XDP).
pub async fn run_pass(ifaces: &[String], mode: XdpModeArg) -> anyhow::Result<()> {
    let mut dp = Datapath::load(Sizes::default(), false, XDP_PASS_PROGRAM)?;
    for iface in ifaces {
        let m = dp.attach_to(iface, mode)?;
        info!("attached {XDP_PASS_PROGRAM} to {iface} in {} mode", m.as_str());
    }
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    tokio::select! {
        _ = sigint.recv() => {}
        _ = sigterm.recv() => {}
    }
    dp.detach()?;
    Ok(())
}
