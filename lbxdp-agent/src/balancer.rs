//! The XDP balancer's life: plan the maps from the config, load and attach
//! the program, program the maps, report counters, and undo it all on exit.
use std::{collections::HashMap, net::IpAddr, time::Duration};

use crate::datapath::OpenFlows;
use anyhow::{Context as _, bail};
use lbxdp_common::{
    FrontendStats, MAX_STICK_TABLES, Rules, STICK_KEY_IPV6, STORE_CONN_CNT, STORE_CONN_CUR, STORE_GPC0, ServerStats,
    Settings, StickKey as StickMapKey, StickTableConf, XDP_PROGRAM,
};
use serde::Serialize;
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
};
use tracing::{info, warn};

use crate::{
    config::{
        Config,
        stick::{StickKey, StickTable},
    },
    datapath::{
        Datapath, NatMode, ProtoCounters, Sizes, XdpModeArg,
        net::{HostNet, IfAddr, in_subnet, snat_for},
        pin,
        plan::{self, Plan},
        ports::NatPorts,
        rules::PlanRules,
    },
    handover::{self, Handover},
    health::{Monitor, ServerId, ServerState, Snapshot, effective_weights, recalls_backups},
    privileges,
    stats::{Counters, FrontendCounters, ServerCounters, XdpCounters},
};

#[derive(Debug, Clone)]
pub struct Options {
    /// The -f paths, read again on SIGHUP.
    pub config_paths: Vec<std::path::PathBuf>,
    pub ifaces: Vec<String>,
    pub xdp_mode: XdpModeArg,
    pub nat: NatMode,
    pub table_size: u32,
    /// `--maglev-seed`.
    pub maglev_seed: u64,
    /// `--announce-table`: the routing table VIPs are announced in.
    pub announce_table: Option<u32>,
    pub flows: u32,
    pub kernel_debug: bool,
    /// Seconds between counter logs; 0: only at exit.
    pub stats_interval: u64,
    /// Names the pinned datapath (default: the network namespace).
    pub instance: Option<String>,
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
    #[serde(flatten)]
    pub stats: FrontendStats,
}

#[derive(Serialize)]
pub struct ServerReport {
    pub backend: String,
    pub name: String,
    pub addr: String,
    #[serde(flatten)]
    pub stats: ServerStats,
}

/// `Backend::ids` for an address family the backend has no server of.
const NO_TABLE: u32 = u32::MAX;

/// The most stick table entries the XDP datapath keeps (about 100 bytes each).
const MAX_STICK_ENTRIES: u32 = 1 << 22;

/// Below this many Maglev slots per server a backend's shares get coarse.
const MIN_SLOTS_PER_SERVER: u32 = 100;

/// The address families (0: IPv4, 1: IPv6) a backend has servers of.
fn families(be: &plan::PlanBackend) -> impl Iterator<Item = usize> + '_ {
    (0..2).filter(|f| be.servers.iter().any(|s| plan::family_index(s.addr) == *f))
}

/// Slots reserved in the maps beyond twice the first config's needs.
const MIN_BACKEND_SLOTS: u32 = 16;
const MIN_SERVER_SLOTS: u32 = 256;

/// Ids that stay with their names across reloads: a pinned flow names its
/// server by id, and the counters are kept by id.
#[derive(Default, Clone)]
struct Ids {
    backends: HashMap<(String, usize), u32>,
    /// By backend, name and address: a server whose address changed gets a
    /// new id, so the flows still on its old address keep going there.
    servers: HashMap<(String, String, IpAddr, u16), u32>,
    frontends: HashMap<String, u32>,
}

fn id_for<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: K, limit: u32, what: &str) -> anyhow::Result<u32> {
    let next = map.len() as u32;
    if let Some(id) = map.get(&key) {
        return Ok(*id);
    }
    if next >= limit {
        bail!("more than {limit} {what} since start: restart lbxdp-agent to resize its maps");
    }
    map.insert(key, next);
    Ok(next)
}

/// What the datapath holds now.
struct Live {
    plan: Plan,
    config: Config,
    ids: Ids,
    vips: Vec<(IpAddr, u16)>,
    /// Per server id: the full-NAT source towards it, and whether the
    /// datapath has it up (its flows stay) or down (its flows rehash).
    snat: HashMap<u32, IpAddr>,
    up: HashMap<u32, bool>,
    /// Per backend: the weights its tables were last built with.
    weights: HashMap<String, Vec<u32>>,
    /// Addresses that left the config at the last reload: their managed
    /// neighbour entries go at the next one.
    draining: Vec<IpAddr>,
    /// Set once the datapath is pinned: the handover is kept up to date.
    handover: Option<Handing>,
    /// The address sets (`NETS`) the frontends' rules use now, and the next
    /// set's id: a reload writes new sets, then its rules, then drops the old.
    sets: Vec<u32>,
    next_set: u32,
    /// Whether sets left in adopted maps by an earlier agent were looked for.
    sets_swept: bool,
    /// Per frontend id with rules: its sets and the rules last written.
    rules: HashMap<u32, (Vec<u32>, Rules)>,
    /// Stick tables' indices in `STICK_TABLES`, by name, kept over reloads
    /// (their entries are keyed by it).
    tables: HashMap<String, u32>,
}

/// Runs the program on `ifaces` until SIGINT/SIGTERM; with a config, it
/// balances, and SIGHUP reloads the config (a bad one leaves the old running).
pub async fn run(
    config: Option<&Config>,
    opts: &Options,
    runtime: &mut Option<crate::agent::Runtime>,
) -> anyhow::Result<serde_json::Value> {
    // Without a runtime (no config), the signals are still caught from the
    // start, so a SIGTERM during set-up still detaches and cleans up.
    let early_signals = match runtime {
        Some(_) => None,
        None => Some(crate::signals::Signals::install()?),
    };
    let ifaces = if !opts.ifaces.is_empty() {
        opts.ifaces.clone()
    } else if let Some(c) = config {
        let binds: Vec<_> = c
            .frontends
            .iter()
            // Stats pages are served by the agent's own sockets, not by XDP.
            .filter(|f| f.stats_page.is_none())
            .flat_map(|f| &f.binds)
            .map(|b| (b.addr.ip, b.interface.clone()))
            .collect();
        let found = crate::datapath::net::interfaces_for(&binds).await?;
        info!("serving on {} (from the bind lines; -i overrides)", found.join(", "));
        found
    } else {
        bail!("--iface IFACE is required: the interface(s) to attach XDP to");
    };
    // Absolute, so that a reload finds them from inside a chroot too.
    let config_paths = privileges::absolute(&opts.config_paths);
    let opts = &Options {
        ifaces,
        config_paths,
        ..opts.clone()
    };
    crate::proxy_mode::raise_nofile();
    // Checked before anything is loaded: a user that doesn't exist stops here.
    let drop_to = match config {
        Some(c) => privileges::target(&c.global)?,
        None => None,
    };
    // A datapath an earlier agent pinned and left, if any (see `pin.rs`).
    let instance = match &opts.instance {
        Some(i) => i.clone(),
        None => pin::default_instance()?,
    };
    let (pin_dir, hand_dir) = (pin::dir(&instance), handover::dir(&instance));
    let pinnable = config.is_some()
        && match pin::ensure_bpffs() {
            Ok(()) => true,
            Err(e) => {
                warn!("{e:#}: the datapath will not outlive the agent");
                false
            }
        };
    let previous = if pinnable {
        Handover::read(&hand_dir).unwrap_or_else(|e| {
            warn!("ignoring the last agent's handover: {e:#}");
            None
        })
    } else {
        None
    };
    let mut nets = Vec::new();
    let mut local: Vec<(usize, IfAddr)> = Vec::new();
    for (i, iface) in opts.ifaces.iter().enumerate() {
        let ifindex = nix::net::if_::if_nametoindex(iface.as_str())
            .map_err(|_| crate::datapath::DatapathError::NoSuchInterface(iface.clone()))?;
        let mut net = HostNet::open(iface, ifindex)?;
        // The VIPs and neighbours the last agent added become ours to remove.
        if let Some(h) = &previous {
            h.give_to(&mut net);
        }
        let added: Vec<IpAddr> = net.added().0.iter().map(|a| a.addr).collect();
        local.extend(
            net.addresses()
                .await?
                .into_iter()
                .filter(|a| !added.contains(&a.addr))
                .map(|a| (i, a)),
        );
        nets.push((net, ifindex));
    }
    let plan = match config {
        Some(c) => Some(plan_for(c, &local, opts)?),
        None => None,
    };
    // Room to grow on reload: map sizes are fixed once the object is loaded.
    let sizes = match &plan {
        Some(p) => Sizes {
            // A table per address family a backend has servers of (an
            // IPv4-only backend costs one, not two), twice over for reloads.
            backends: (2 * p.backends.iter().map(|b| families(b).count() as u32).sum::<u32>()).max(MIN_BACKEND_SLOTS),
            servers: (2 * p.backends.iter().map(|b| b.servers.len() as u32).sum::<u32>()).max(MIN_SERVER_SLOTS),
            table_size: opts.table_size,
            maglev_seed: opts.maglev_seed,
            flows: opts.flows,
            vips: (2 * p.frontends.iter().map(|f| f.vips.len() as u32).sum::<u32>())
                .max(lbxdp_common::DEFAULT_MAX_FRONTENDS / 2),
            frontends: (2 * p.frontends.len() as u32).max(lbxdp_common::DEFAULT_MAX_FRONTENDS),
            // The tables' sizes, all in one LRU map.
            stick: p
                .tables
                .iter()
                .map(|t| t.size)
                .fold(0u32, u32::saturating_add)
                .clamp(lbxdp_common::DEFAULT_MAX_STICK, MAX_STICK_ENTRIES),
        },
        None => Sizes::default(),
    };

    let adopted = match &previous {
        Some(h) => {
            let pinned: std::collections::BTreeSet<&str> = h.datapath.links.iter().map(|l| l.0.as_str()).collect();
            let asked: std::collections::BTreeSet<&str> = opts.ifaces.iter().map(String::as_str).collect();
            let tried = if pinned != asked {
                Err(anyhow::anyhow!(
                    "it is attached to {}, not to {}",
                    h.datapath
                        .links
                        .iter()
                        .map(|l| l.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    opts.ifaces.join(", ")
                ))
            } else {
                Datapath::adopt(&pin_dir, &h.datapath).map_err(anyhow::Error::from)
            };
            match tried {
                Ok(dp) => Some(dp),
                Err(e) => {
                    warn!(
                        "not adopting the datapath pinned under {} ({e:#}): replacing it",
                        pin_dir.display()
                    );
                    pin::remove(&pin_dir)?;
                    None
                }
            }
        }
        None => {
            // Pins without a handover (an agent killed while starting): stale.
            pin::remove(&pin_dir)?;
            None
        }
    };
    let adopting = adopted.is_some();
    let mut dp = match adopted {
        Some(dp) => dp,
        None => Datapath::load(sizes, opts.kernel_debug, XDP_PROGRAM)?,
    };
    // Lets flows keep their next hops between route and neighbour changes.
    // Without it the program looks every packet's up, as it did before.
    let _fib_watch = match dp.fib_generation().and_then(|g| g.watch()) {
        Ok(w) => Some(w),
        Err(e) => {
            warn!("next hops will be looked up for every packet: {e}");
            None
        }
    };
    for (net, ifindex) in &mut nets {
        dp.add_tx_port(*ifindex)?;
        if plan.is_some() {
            net.enable_forwarding()?;
        }
    }
    let mut host = Host { nets, local };
    // Held (and released on exit) for as long as the datapath NATs.
    let nat_ports = (plan.is_some() && opts.nat == NatMode::Full)
        .then(|| NatPorts::reserve(previous.as_ref().and_then(|h| h.reserved_ports_before.clone())));
    let mut live_started = false;
    // The announcer's task, once the balancer serves (see `announce`).
    let mut announcing: Option<tokio::task::JoinHandle<crate::announce::Announcer>> = None;
    let result = async {
        // The maps are filled before the program sees a packet: attached
        // first, it would hand the VIP's first connections to the stack,
        // which resets them.
        let mut live = None;
        if let Some(p) = plan {
            let mut settings = Settings::with_default_timeouts(opts.table_size);
            if let Some(ports) = &nat_ports {
                (settings.nat_port_first, settings.nat_port_count) = ports.first_count();
            }
            dp.set_settings(&settings)?;
            let Some(c) = config else {
                bail!("a plan without a config");
            };
            let started = Monitor::start(c).0;
            let mut l = Live {
                plan: p.clone(),
                config: c.clone(),
                ids: previous.as_ref().filter(|_| adopting).map(|h| Ids::from(&h.ids)).unwrap_or_default(),
                vips: previous
                    .as_ref()
                    .filter(|_| adopting)
                    .map(|h| h.frontends.clone())
                    .unwrap_or_default(),
                snat: HashMap::new(),
                up: HashMap::new(),
                weights: HashMap::new(),
                draining: Vec::new(),
                handover: None,
                sets: Vec::new(),
                next_set: 0,
                sets_swept: false,
                rules: HashMap::new(),
                tables: HashMap::new(),
            };
            let prep = prepare(&dp, p, &host, &l, opts)?;
            apply(&mut dp, prep, &mut host, &mut l, opts, &started.snapshot()).await?;
            live = Some((l, started, settings));
        }
        if adopting {
            for (iface, mode) in dp.attachments() {
                info!(
                    "attached lbxdp to {iface} in {} mode (adopted from {}: its flows and tables kept)",
                    mode.as_str(),
                    pin_dir.display()
                );
            }
        } else {
            for (iface, (net, _)) in opts.ifaces.iter().zip(&host.nets) {
                let asked = auto_mode_for_veth(opts.xdp_mode, iface, net).await;
                let mode = dp.attach_to(iface, asked)?;
                info!("attached lbxdp to {iface} in {} mode", mode.as_str());
            }
        }
        if let Some((l, _, _)) = live.as_mut()
            && pinnable
        {
            match dp.pin(&pin_dir) {
                Ok(()) => {
                    l.handover = Some(Handing {
                        dir: hand_dir.clone(),
                        ports_before: nat_ports.as_ref().and_then(|p| p.before().map(str::to_string)),
                        announce_table: opts.announce_table,
                    });
                    write_handover(&dp, l, &host);
                    if !adopting {
                        info!(
                            "datapath pinned under {}: it keeps forwarding if the agent dies (lbxdp-agent --detach removes it)",
                            pin_dir.display()
                        );
                    }
                }
                Err(e) => {
                    warn!("pinning the datapath: {e:#}; it will not outlive the agent");
                    // What got pinned before the failure would outlive us for nothing.
                    if let Err(e) = pin::remove(&pin_dir) {
                        warn!("{e}");
                    }
                }
            }
        }
        // Everything that needed root is done: become the configured user.
        if let Some(t) = &drop_to {
            for dir in [&pin_dir, &hand_dir] {
                privileges::hand_over(dir, t)?;
            }
            let mut reachable = privileges::config_dirs(&opts.config_paths);
            reachable.extend(config.map(privileges::pattern_dirs).unwrap_or_default());
            reachable.extend([pin_dir.clone(), hand_dir.clone()].into_iter().filter(|d| d.is_dir()));
            privileges::drop_to(t, &reachable)?;
        }
        if let Some((l, _, _)) = &live {
            info!(
                "balancing {} frontend(s) over {} backend(s)",
                l.plan.frontends.len(),
                l.plan.backends.len()
            );
        }
        live_started = true;
        match (live, runtime.take()) {
            (Some((live, monitor, settings)), Some(rt)) => {
                let config = live.config.clone();
                let announce = match (opts.announce_table, host.nets.first()) {
                    (Some(table), Some((net, _))) => {
                        let (tx, task) = crate::announce::spawn(crate::announce::Announcer::open(table, net.ifindex())?);
                        announcing = Some(task);
                        Some(tx)
                    }
                    _ => None,
                };
                let engine = XdpEngine {
                    log_task: spawn_logger(&mut dp)?,
                    settings,
                    open_flows: std::sync::Mutex::new(None),
                    dp: &mut dp,
                    live,
                    host: &mut host,
                    opts,
                    announce,
                };
                engine.publish(&config, &monitor.snapshot());
                let agent_opts = crate::agent::Options {
                    config_paths: opts.config_paths.clone(),
                    stats_interval: opts.stats_interval,
                };
                // A soft stop has no sessions to wait for here: the flows
                // are the kernel's, and stay with the datapath (ours to
                // detach, or the successor's to keep serving).
                let (engine, report, _stop) = crate::agent::serve(engine, config, monitor, rt, &agent_opts).await?;
                drop(engine);
                Ok(report)
            }
            (_, rt) => {
                let sig = match (early_signals, rt) {
                    (Some(s), _) => s,
                    (None, Some(rt)) => rt.signals,
                    (None, None) => crate::signals::Signals::install()?,
                };
                serve_plain(&mut dp, opts, sig).await
            }
        }
    }
    .await;
    let out = match handover::successor(&hand_dir) {
        // Taken over: the links, maps, VIPs, neighbour entries, sysctls and
        // port reservation serve the successor now, which undoes them when
        // it stops; this agent leaves as if it had been killed.
        Some(pid) => {
            info!("the datapath serves pid {pid} now: leaving it attached, pinned and configured");
            if let Some(mut ports) = nat_ports {
                ports.keep();
            }
            result
        }
        None => {
            // The routes go first: the router stops sending before the
            // datapath does.
            if let Some(task) = announcing
                && let Ok(a) = task.await
                && a.withdraw_all().await > 0
            {
                // The routing daemon and the router need a moment to act on
                // the withdrawal (tens of ms here: docs/scale-out.md); what
                // the router sends meanwhile still finds the datapath.
                tokio::time::sleep(WITHDRAW_GRACE).await;
            }
            for (net, _) in &mut host.nets {
                net.cleanup().await;
            }
            let detached = dp.detach();
            handover::remove(&hand_dir);
            drop(nat_ports);
            result.and_then(|r| detached.map(|()| r).map_err(anyhow::Error::from))
        }
    };
    if live_started {
        out.map_err(|e| e.context(Served))
    } else {
        out
    }
}

/// Marks an error that came after the XDP balancer served: auto mode must
/// not fall back to the proxy then.
#[derive(Debug)]
pub struct Served;

impl std::fmt::Display for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the XDP balancer stopped")
    }
}

/// Where the handover goes, once the datapath is pinned.
struct Handing {
    dir: std::path::PathBuf,
    ports_before: Option<String>,
    announce_table: Option<u32>,
}

/// Writes what the next agent needs to adopt the pinned datapath; called
/// after every change to it.
fn save_handover(dp: &Datapath, live: &Live, host: &Host) {
    let Some(h) = &live.handover else { return };
    // An agent that took over owns the handover now; this one, on its way
    // out, must not write its own view over the successor's.
    if let Some(pid) = handover::successor(&h.dir) {
        info!("not writing the handover: pid {pid} took the datapath over");
        return;
    }
    write_handover(dp, live, host);
}

/// Writes the handover as this agent's: the first write after pinning
/// claims the datapath (over a predecessor still running, in a takeover).
fn write_handover(dp: &Datapath, live: &Live, host: &Host) {
    let Some(h) = &live.handover else { return };
    let mut vips = Vec::new();
    let mut neighbours = Vec::new();
    let mut sysctls = Vec::new();
    for (net, _) in &host.nets {
        sysctls.extend(net.saved_sysctls());
        let (v, n) = net.added();
        vips.extend(v.iter().map(|a| (net.name().to_string(), a.addr, a.prefix)));
        neighbours.extend(n.iter().map(|ip| (net.name().to_string(), *ip)));
    }
    let state = Handover {
        owner: std::process::id(),
        datapath: dp.pinned(),
        ids: handover::Ids::from(&live.ids),
        frontends: live.vips.clone(),
        vips,
        neighbours,
        reserved_ports_before: h.ports_before.clone(),
        sysctls,
        announce_table: h.announce_table,
    };
    if let Err(e) = state.write(&h.dir) {
        warn!("writing the handover for the next agent: {e:#}");
    }
}

impl From<&Ids> for handover::Ids {
    fn from(ids: &Ids) -> Self {
        Self {
            backends: ids.backends.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            servers: ids.servers.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            frontends: ids.frontends.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }
}

impl From<&handover::Ids> for Ids {
    fn from(ids: &handover::Ids) -> Self {
        Self {
            backends: ids.backends.iter().cloned().collect(),
            servers: ids.servers.iter().cloned().collect(),
            frontends: ids.frontends.iter().cloned().collect(),
        }
    }
}

/// `--xdp-mode auto` on a veth means generic. Native XDP_TX or a redirect
/// into a veth delivers only when the peer runs an XDP program, and a frame
/// that a namespace made with checksum offload on leaves native XDP with its
/// checksum half done: either way every balanced packet would vanish without
/// an error. Generic mode has neither trap (and on veth it is no slower).
/// `--xdp-mode native` still forces native for those who set the peer up.
async fn auto_mode_for_veth(asked: XdpModeArg, iface: &str, net: &HostNet) -> XdpModeArg {
    if asked != XdpModeArg::Auto {
        return asked;
    }
    match net.is_veth().await {
        Ok(true) => {
            info!(
                "{iface} is a veth: generic XDP mode (native mode on a veth delivers only when the peer runs XDP \
                 and the senders' checksums are complete; --xdp-mode native forces it)"
            );
            XdpModeArg::Generic
        }
        Ok(false) => asked,
        Err(e) => {
            warn!("{iface}: can't tell whether it is a veth ({e}); trying native mode first");
            asked
        }
    }
}

/// The LB host's interfaces and their addresses.
struct Host {
    nets: Vec<(HostNet, u32)>,
    local: Vec<(usize, IfAddr)>,
}

/// A plan checked against everything that can refuse it (map room, NAT
/// sources), with its ids assigned: nothing has been written yet.
struct Prepared {
    plan: Plan,
    ids: Ids,
    snat: HashMap<u32, IpAddr>,
}

/// Validates and plans a config's datapath before the first map write, so
/// a refused reload leaves everything as it was.
/// The config's plan on this host, and what `--nat dsr` asks of it.
fn plan_for(config: &Config, local: &[(usize, IfAddr)], opts: &Options) -> anyhow::Result<Plan> {
    let ips: Vec<IpAddr> = local.iter().map(|(_, a)| a.addr).collect();
    let p = plan::plan(config, &ips)?;
    if opts.nat == NatMode::Dsr {
        let addrs: Vec<IfAddr> = local.iter().map(|(_, a)| *a).collect();
        crate::datapath::check_dsr(config, &p, &addrs, &opts.ifaces)?;
    }
    Ok(p)
}

fn prepare(dp: &Datapath, mut p: Plan, host: &Host, live: &Live, opts: &Options) -> anyhow::Result<Prepared> {
    let (max_backends, max_servers) = (dp.sizes().backends, dp.sizes().servers);
    let mut ids = live.ids.clone();
    for be in &mut p.backends {
        let fams: Vec<usize> = families(be).collect();
        for fam in 0..2 {
            be.ids[fam] = if fams.contains(&fam) {
                id_for(
                    &mut ids.backends,
                    (be.name.clone(), fam),
                    max_backends,
                    "backend tables",
                )?
            } else {
                NO_TABLE
            };
        }
        for s in &mut be.servers {
            s.id = id_for(
                &mut ids.servers,
                (be.name.clone(), s.name.clone(), s.addr, s.port),
                max_servers,
                "servers",
            )?;
        }
    }
    for fe in &mut p.frontends {
        fe.id = id_for(&mut ids.frontends, fe.name.clone(), dp.sizes().frontends, "frontends")?;
    }
    let vips = p.frontends.iter().map(|f| f.vips.len() as u32).sum::<u32>();
    if vips > dp.sizes().vips {
        bail!(
            "{vips} VIP ports (bind addresses x ports) need more room than the {} the maps were sized for at start: \
             restart lbxdp-agent to resize them",
            dp.sizes().vips
        );
    }
    let addrs: Vec<IfAddr> = host.local.iter().map(|(_, a)| *a).collect();
    let mut snat = HashMap::new();
    for be in &p.backends {
        for s in &be.servers {
            let src = match (opts.nat, s.source) {
                // `source ADDR`: a dedicated address, which the LB must own
                // (the servers' replies come back to it).
                (NatMode::Full, Some(src)) => {
                    if src.is_ipv4() != s.addr.is_ipv4() || !addrs.iter().any(|a| a.addr == src) {
                        bail!(
                            "server {}/{} ({}): source {src} is not an address of {} of the server's family",
                            be.name,
                            s.name,
                            s.addr,
                            opts.ifaces.join(", ")
                        );
                    }
                    src
                }
                (NatMode::Full, None) => snat_for(s.addr, &addrs).with_context(|| {
                    format!(
                        "server {}/{} ({}): the LB has no address of its family",
                        be.name, s.name, s.addr
                    )
                })?,
                (NatMode::Dnat, _) => s.addr,
                (NatMode::Dsr, _) => s.addr,
            };
            snat.insert(s.id, src);
        }
    }
    Ok(Prepared { plan: p, ids, snat })
}

/// Makes the datapath hold a prepared plan, its servers as the health checks
/// see them. Servers gone from the config (or from an old address) drain; a
/// kept server whose NAT source changed is rewritten; each backend's new
/// table goes in with one flip.
async fn apply(
    dp: &mut Datapath,
    prep: Prepared,
    host: &mut Host,
    live: &mut Live,
    opts: &Options,
    snapshot: &Snapshot,
) -> anyhow::Result<()> {
    let Prepared { plan: p, ids, snat } = prep;
    live.ids = ids;
    for note in &p.notes {
        info!("{note}");
    }
    for what in &p.unapplied {
        warn!("{what}");
    }
    let addrs: Vec<IfAddr> = host.local.iter().map(|(_, a)| *a).collect();
    for be in &p.backends {
        for s in &be.servers {
            // A server keeps its id only while its address and port stay (see
            // `Ids`), so a new address is a new id, which the health sync
            // below writes anyway; what else can change is its NAT source.
            if let Some(old) = live.snat.get(&s.id)
                && let Some(new) = snat.get(&s.id)
                && old != new
            {
                // Not in `up`: the health sync below writes it again.
                live.up.remove(&s.id);
                info!("server {}/{}: full-NAT source {old} -> {new}", be.name, s.name);
            }
            // The neighbour lives on the interface whose subnet holds the server.
            if let Some((i, _)) = host.local.iter().find(|(_, a)| in_subnet(s.addr, a))
                && let Some((net, _)) = host.nets.get_mut(*i)
            {
                net.manage_neighbour(s.addr).await?;
            }
        }
    }
    // Neighbour entries of addresses no server has any more go one reload
    // later: the flows draining to them need the entry until they end.
    let in_use = |a: &IpAddr| p.backends.iter().flat_map(|b| &b.servers).any(|s| s.addr == *a);
    for addr in std::mem::take(&mut live.draining).into_iter().filter(|a| !in_use(a)) {
        for (net, _) in host.nets.iter_mut() {
            net.forget_neighbour(addr).await;
        }
    }
    live.draining = live
        .plan
        .backends
        .iter()
        .flat_map(|b| &b.servers)
        .map(|s| s.addr)
        .filter(|a| !in_use(a))
        .collect();
    live.snat = snat;
    for be in &p.backends {
        let n = be.servers.len() as u32;
        if n > 0 && opts.table_size / n < MIN_SLOTS_PER_SERVER {
            warn!(
                "backend {}: {n} servers share {} Maglev slots, fewer than {MIN_SLOTS_PER_SERVER} each, so their \
                 shares of new connections are coarse: raise --maglev-size (a prime)",
                be.name, opts.table_size
            );
        }
    }
    // Servers and tables follow the health snapshot (new servers start as
    // HAProxy starts them); every backend's tables are rebuilt once here.
    live.weights.clear();
    live.up
        .retain(|id, _| p.backends.iter().any(|b| b.servers.iter().any(|s| s.id == *id)));
    sync_health(
        dp,
        &p,
        &live.config,
        snapshot,
        &live.snat,
        &mut live.up,
        &mut live.weights,
    )?;
    // A removed server (or a server's old address) drains, as HAProxy's old
    // process lets its sessions finish on a reload: no table sends it new
    // flows any more, and the flows it has keep going until they end.
    for old_be in &live.plan.backends {
        for old in &old_be.servers {
            let kept = p.backends.iter().flat_map(|b| &b.servers).any(|s| s.id == old.id);
            if kept {
                continue;
            }
            let moved = p
                .backends
                .iter()
                .filter(|b| b.name == old_be.name)
                .flat_map(|b| &b.servers)
                .find(|s| s.name == old.name);
            match moved {
                Some(s) => info!(
                    "server {}/{}: now {}; its flows to {} drain",
                    old_be.name,
                    old.name,
                    sockaddr(s.addr, s.port),
                    sockaddr(old.addr, old.port)
                ),
                None => info!(
                    "server {}/{} ({}) left the configuration: its flows drain, new ones go to the others",
                    old_be.name,
                    old.name,
                    sockaddr(old.addr, old.port)
                ),
            }
        }
    }
    // Rules go in before the frontends that point to them, and the address
    // sets before the rules; the sets the old rules used go last.
    if !live.sets_swept {
        live.sets = dp.net_sets()?;
        live.next_set = live.sets.iter().max().map_or(0, |m| m.wrapping_add(1));
        live.sets_swept = true;
    }
    let old_sets = std::mem::take(&mut live.sets);
    live.rules.clear();
    for t in &p.tables {
        let id = id_for(&mut live.tables, t.name.clone(), MAX_STICK_TABLES, "stick tables")?;
        dp.set_stick_table(id, &stick_conf(t))?;
    }
    for fe in &p.frontends {
        let Some(r) = &fe.rules else { continue };
        let mut sets = Vec::new();
        for list in &r.lists {
            let set = live.next_set;
            live.next_set = live.next_set.wrapping_add(1);
            dp.add_nets(set, list)?;
            sets.push(set);
            live.sets.push(set);
        }
        let value = rules_value(&p, r, &sets, &live.config, snapshot, &live.tables);
        dp.set_rules(fe.id, &value)?;
        live.rules.insert(fe.id, (sets, value));
    }
    let mut vips = Vec::new();
    for fe in &p.frontends {
        let be = &p.backends[fe.backend as usize];
        for &(vip, port) in &fe.vips {
            dp.add_frontend(
                vip,
                port,
                fe.id,
                be.ids[plan::family_index(vip)],
                opts.nat,
                fe.rules.is_some(),
            )?;
            vips.push((vip, port));
            if let Some((net, _)) = host.nets.first_mut() {
                net.ensure_vip(vip, &addrs).await?;
            }
        }
        let shown: Vec<String> = fe.vips.iter().map(|(ip, port)| sockaddr(*ip, *port)).collect();
        let servers: Vec<String> = be
            .servers
            .iter()
            .map(|s| format!("{}={} w{}", s.name, sockaddr(s.addr, s.port), s.weight))
            .collect();
        let nat = match opts.nat {
            NatMode::Full => "full NAT",
            NatMode::Dnat => "destination NAT",
            NatMode::Dsr => "direct server return",
        };
        info!(
            "frontend {}: {} -> backend {} [{}], {nat}, Maglev M={}",
            fe.name,
            shown.join(" "),
            be.name,
            servers.join(", "),
            opts.table_size
        );
    }
    for old in &live.vips {
        if !vips.contains(old) {
            dp.remove_frontend(old.0, old.1)?;
            if !vips.iter().any(|(ip, _)| *ip == old.0)
                && let Some((net, _)) = host.nets.first_mut()
            {
                net.remove_vip(old.0).await;
            }
        }
    }
    dp.remove_net_sets(&old_sets)?;
    for (net, _) in host.nets.iter() {
        net.wait_neighbours(Duration::from_secs(2)).await;
    }
    live.vips = vips;
    live.plan = p;
    Ok(())
}

/// A frontend's rules as the program takes them, `nbsrv` as the snapshot has it.
fn rules_value(
    p: &Plan,
    r: &PlanRules,
    sets: &[u32],
    config: &Config,
    snapshot: &Snapshot,
    tables: &HashMap<String, u32>,
) -> Rules {
    r.to_map(
        |i| p.backends.get(i).map_or([NO_TABLE; 2], |b| b.ids),
        sets,
        |name| config.backend(name).map_or(0, |b| crate::health::nbsrv(b, snapshot)),
        // The configuration resolved every table name; apply gave each an id.
        |name| tables.get(name).copied().unwrap_or(MAX_STICK_TABLES),
    )
}

/// A table's settings as the program reads them.
fn stick_conf(t: &StickTable) -> StickTableConf {
    let s = &t.store;
    StickTableConf {
        expire_ms: t.expire_ms.unwrap_or(0),
        conn_rate_ms: s.conn_rate.unwrap_or(0),
        gpc0_rate_ms: s.gpc0_rate.unwrap_or(0),
        flags: if s.conn_cur { STORE_CONN_CUR } else { 0 }
            | if s.conn_cnt { STORE_CONN_CNT } else { 0 }
            | if s.gpc0 { STORE_GPC0 } else { 0 }
            | if t.key == StickKey::Ipv6 { STICK_KEY_IPV6 } else { 0 },
    }
}

/// The coarse monotonic clock in ms, which the program's stick tables count in.
fn coarse_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC_COARSE)
        .map_or(0, |t| t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
}

/// The program's stick tables as `show table` reads them: `now` is the
/// program's clock, an entry's users are its open connections (conn_cur).
fn stick_dumps(dp: &Datapath, live: &Live, name: Option<&str>) -> anyhow::Result<Vec<crate::stick::Dump>> {
    let now = coarse_ms();
    let tick = now as u32;
    let all = dp.stick_entries()?;
    let mut out = Vec::new();
    for t in live.plan.tables.iter().filter(|t| name.is_none_or(|n| n == t.name)) {
        let Some(&id) = live.tables.get(&t.name) else { continue };
        let mut entries: Vec<(IpAddr, crate::stick::Entry)> = all
            .iter()
            .filter(|(k, _)| k.table == id)
            .filter_map(|(k, e)| {
                let age = u64::from(tick.wrapping_sub(e.touched_ms));
                let expire = t.expire_ms.map(u64::from);
                if expire.is_some_and(|x| age > x) {
                    return None;
                }
                let v6 = std::net::Ipv6Addr::from(k.addr);
                let key = match (t.key, v6.to_ipv4_mapped()) {
                    (StickKey::Ipv4, Some(v4)) => IpAddr::V4(v4),
                    _ => IpAddr::V6(v6),
                };
                let entry = crate::stick::Entry {
                    gpc0: e.gpc0,
                    gpc0_rate: e.gpc0_rate,
                    conn_cnt: e.conn_cnt,
                    conn_rate: e.conn_rate,
                    conn_cur: e.conn_cur,
                    refs: e.conn_cur,
                    expire: (now - age.min(now)) + expire.unwrap_or(0),
                    id: u64::from_be_bytes(k.addr[8..].try_into().unwrap_or_default()) ^ u64::from(id),
                    ..Default::default()
                };
                Some((key, entry))
            })
            .collect();
        entries.sort_by_key(|(k, _)| *k);
        out.push(crate::stick::Dump {
            name: t.name.clone(),
            key: t.key,
            size: t.size,
            store: t.store,
            entries,
            now,
        });
    }
    Ok(out)
}

/// Rewrites the rules of frontends whose conditions count servers
/// (`nbsrv`) when the count moved them: the agent's half of a failover
/// such as `use_backend spare if { nbsrv(main) lt 1 }`.
fn sync_rules(dp: &mut Datapath, live: &mut Live, config: &Config, snapshot: &Snapshot) -> anyhow::Result<()> {
    for fe in &live.plan.frontends {
        let Some(r) = fe.rules.as_ref().filter(|r| r.uses_nbsrv()) else {
            continue;
        };
        let Some((sets, written)) = live.rules.get_mut(&fe.id) else {
            continue;
        };
        let value = rules_value(&live.plan, r, sets, config, snapshot, &live.tables);
        if value != *written {
            dp.set_rules(fe.id, &value)?;
            info!("frontend {}: rules rewritten for the servers' new state", fe.name);
            *written = value;
        }
    }
    Ok(())
}

/// The datapath's view of a server: up keeps its flows where they are,
/// down makes them rehash on their next packet (for TCP the client then
/// gets a reset from the new server, as with HAProxy's `on-marked-down
/// shutdown-sessions`; a kernel datapath can't keep a flow on a dead server).
/// Maintenance set at runtime keeps the flows, as HAProxy keeps the sessions
/// of a server put in MAINT: the operator takes it out of new traffic only.
fn datapath_up(state: Option<&ServerState>, server: &crate::config::Server) -> bool {
    state.map_or(!server.disabled, |st| {
        st.is_up() || (st.status == crate::health::Status::Maint && !server.disabled)
    })
}

/// Brings servers' up/down flags and the backends' tables in line with a
/// health snapshot; a backend's tables are rebuilt only when its weights
/// changed, and each rebuild fills the idle copy and flips.
fn sync_health(
    dp: &mut Datapath,
    p: &Plan,
    config: &Config,
    snapshot: &Snapshot,
    snat: &HashMap<u32, IpAddr>,
    up: &mut HashMap<u32, bool>,
    weights: &mut HashMap<String, Vec<u32>>,
) -> anyhow::Result<()> {
    for be in &p.backends {
        let Some(cfg) = config.backend(&be.name) else { continue };
        let w = effective_weights(cfg, snapshot);
        // `on-marked-up shutdown-backup-sessions`: once such a server is
        // back, the backups' flows move too, not only new ones.
        let recall_backups = recalls_backups(cfg, &w);
        // Order matters while packets flow: a server comes up before a table
        // can send to it, and goes down only once no table does, so no new
        // flow is dropped for picking a server flagged down.
        let mut flips = Vec::new();
        for (s, c) in be.servers.iter().zip(&cfg.servers) {
            let state = snapshot.get(&ServerId::new(&be.name, &s.name));
            let is_up = datapath_up(state, c) && !(c.backup && recall_backups);
            if up.get(&s.id) != Some(&is_up) {
                flips.push((s, is_up));
            }
        }
        let mut flag = |dp: &mut Datapath, going_up: bool| -> anyhow::Result<()> {
            for (s, is_up) in flips.iter().filter(|(_, u)| *u == going_up) {
                let src = snat.get(&s.id).copied().unwrap_or(s.addr);
                dp.set_server(s, src, *is_up)?;
                up.insert(s.id, *is_up);
            }
            Ok(())
        };
        flag(dp, true)?;
        if weights.get(&be.name) == Some(&w) {
            flag(dp, false)?;
            continue;
        }
        let started = std::time::Instant::now();
        for (fam, id) in be.ids.iter().enumerate().filter(|(_, id)| **id != NO_TABLE) {
            let weights: Vec<u32> = be
                .servers
                .iter()
                .zip(&w)
                .map(|(s, w)| if plan::family_index(s.addr) == fam { *w } else { 0 })
                .collect();
            dp.set_maglev(*id, &be.servers, &weights)?;
        }
        flag(dp, false)?;
        info!(
            "backend {}: tables rebuilt for weights {:?} in {:.1} ms",
            be.name,
            w,
            started.elapsed().as_secs_f64() * 1000.0
        );
        weights.insert(be.name.clone(), w);
    }
    Ok(())
}

fn sockaddr(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

/// Without a configuration (`-i` only): the program counts packets and
/// passes them; counters every interval until a signal (SIGUSR1 too) stops it.
async fn serve_plain(
    dp: &mut Datapath,
    opts: &Options,
    mut sig: crate::signals::Signals,
) -> anyhow::Result<serde_json::Value> {
    let log_task = spawn_logger(dp)?;
    let period = Duration::from_secs(opts.stats_interval.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = sig.interrupt.recv() => { info!("SIGINT: stopping"); break; }
            _ = sig.terminate.recv() => { info!("SIGTERM: stopping"); break; }
            _ = sig.usr1.recv() => { info!("SIGUSR1: stopping"); break; }
            _ = ticker.tick(), if opts.stats_interval > 0 => log_stats(dp, None),
            _ = sig.hangup.recv() => warn!("SIGHUP: no configuration to reload (started without -f)"),
        }
    }
    if let Some(t) = log_task {
        t.abort();
    }
    Ok(serde_json::to_value(report(dp, None)?)?)
}

fn log_stats(dp: &Datapath, plan: Option<&Plan>) {
    match dp.counters() {
        Ok(c) => info!("counters: {}", c.summary()),
        Err(e) => warn!("reading counters: {e}"),
    }
    let Some(p) = plan else { return };
    match report(dp, Some(p)) {
        Ok(r) => {
            for fe in &r.frontends {
                let f = &fe.stats;
                info!(
                    "frontend {}: {} pkts {} bytes {} flows; dropped: no server {}, no port {}, no flow {}, no neighbour {}",
                    fe.name,
                    f.packets,
                    f.bytes,
                    f.new_flows,
                    f.drop_no_server,
                    f.drop_no_port,
                    f.drop_no_flow,
                    f.drop_no_neigh
                );
            }
            let row = |name: &str, addr: &str, cells: [String; 5]| {
                let [a, b, c, d, e] = cells;
                info!("{name:<24} {addr:>22} {a:>10} {b:>12} {c:>10} {d:>12} {e:>8}");
            };
            let heads = ["pkts in", "bytes in", "pkts out", "bytes out", "flows"].map(String::from);
            row("server", "address", heads);
            for s in &r.servers {
                let t = &s.stats;
                let cells = [t.packets_in, t.bytes_in, t.packets_out, t.bytes_out, t.new_flows].map(|n| n.to_string());
                row(&format!("{}/{}", s.backend, s.name), &s.addr, cells);
            }
        }
        Err(e) => warn!("reading counters: {e}"),
    }
}

fn report(dp: &Datapath, plan: Option<&Plan>) -> anyhow::Result<FinalReport> {
    let counters = dp.counters()?;
    let (mut frontends, mut servers) = (Vec::new(), Vec::new());
    if let Some(p) = plan {
        let count = p.frontends.iter().map(|f| f.id + 1).max().unwrap_or(0);
        let fstats = dp.frontend_stats(count)?;
        for fe in &p.frontends {
            let stats = fstats.get(fe.id as usize).copied().unwrap_or_default();
            frontends.push(FrontendReport {
                name: fe.name.clone(),
                stats,
            });
        }
        let count = p
            .backends
            .iter()
            .flat_map(|b| &b.servers)
            .map(|s| s.id + 1)
            .max()
            .unwrap_or(0);
        let sstats = dp.server_stats(count)?;
        for be in &p.backends {
            for s in &be.servers {
                servers.push(ServerReport {
                    backend: be.name.clone(),
                    name: s.name.clone(),
                    addr: sockaddr(s.addr, s.port),
                    stats: sstats.get(s.id as usize).copied().unwrap_or_default(),
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

/// How long a stopping agent keeps its datapath after withdrawing its
/// routes. A fabric slower than one LAN wants the drain docs/scale-out.md
/// describes (withdraw with birdc, then stop).
const WITHDRAW_GRACE: Duration = Duration::from_millis(300);

/// `--detach`: removes what a killed agent left pinned in this network
/// namespace: the routes it announced (first, so the router stops sending),
/// the links (which detaches XDP), the maps, the VIPs and neighbour entries
/// it added, and its port reservation.
pub async fn detach_pinned(instance: Option<&str>) -> anyhow::Result<()> {
    let instance = match instance {
        Some(i) => i.to_string(),
        None => pin::default_instance()?,
    };
    let (pin_dir, hand_dir) = (pin::dir(&instance), handover::dir(&instance));
    let previous = Handover::read(&hand_dir)?;
    if previous.is_none() && !pin_dir.exists() {
        info!("nothing pinned for instance {instance}");
        return Ok(());
    }
    if let Some(h) = &previous
        && let Some(table) = h.announce_table
        && let Some(ifindex) = h
            .datapath
            .links
            .first()
            .and_then(|l| nix::net::if_::if_nametoindex(l.0.as_str()).ok())
    {
        crate::announce::sweep(table, ifindex).await?;
    }
    pin::remove(&pin_dir)?;
    if let Some(h) = previous {
        let mut ifaces: Vec<&str> = h.datapath.links.iter().map(|l| l.0.as_str()).collect();
        ifaces.extend(h.vips.iter().map(|v| v.0.as_str()));
        ifaces.sort_unstable();
        ifaces.dedup();
        for iface in ifaces {
            let Ok(ifindex) = nix::net::if_::if_nametoindex(iface) else {
                continue;
            };
            let mut net = HostNet::open(iface, ifindex)?;
            h.give_to(&mut net);
            net.cleanup().await;
        }
        if let Some(before) = h.reserved_ports_before {
            NatPorts::restore(&before);
        }
    }
    handover::remove(&hand_dir);
    info!("detached and removed the datapath pinned under {}", pin_dir.display());
    Ok(())
}

/// `--xdp-pass`: an XDP program that passes everything, for the far end of
/// a veth pair (native XDP_TX into a veth delivers only when the peer runs
/// XDP); `--xdp-tx-floor`: the bench's MAC-swapping XDP_TX program. Either
/// stays attached until SIGINT or SIGTERM.
pub async fn run_pass(ifaces: &[String], mode: XdpModeArg, program: &'static str) -> anyhow::Result<()> {
    let mut dp = Datapath::load(Sizes::default(), false, program)?;
    for iface in ifaces {
        let m = dp.attach_to(iface, mode)?;
        info!("attached {program} to {iface} in {} mode", m.as_str());
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

/// A frontend's dropped packets by reason, as lbxdp's metrics name them.
fn drop_reasons(f: &FrontendStats) -> [(&'static str, u64); 6] {
    [
        ("no_server", f.drop_no_server),
        ("no_port", f.drop_no_port),
        ("no_flow", f.drop_no_flow),
        ("no_neighbour", f.drop_no_neigh),
        ("too_big", f.drop_too_big),
        ("flow_table_full", f.drop_table_full),
    ]
}

/// The XDP datapath behind the agent loop.
struct XdpEngine<'a> {
    dp: &'a mut Datapath,
    live: Live,
    host: &'a mut Host,
    opts: &'a Options,
    log_task: Option<tokio::task::JoinHandle<()>>,
    settings: Settings,
    /// The last count of open flows, and when it was made: walking the flow
    /// table is kept to once a second however often the stats are asked for.
    open_flows: std::sync::Mutex<Option<(std::time::Instant, Option<OpenFlows>)>>,
    /// The VIPs to announce (`--announce-table`).
    announce: Option<tokio::sync::watch::Sender<std::collections::BTreeSet<IpAddr>>>,
}

/// How many flow entries a count of open flows walks at most (a few hundred ms).
const OPEN_FLOWS_WALK: usize = 262_144;

impl XdpEngine<'_> {
    /// Announces the VIPs of frontends whose backend has a usable server
    /// (HAProxy's `nbsrv`), and withdraws the others.
    fn publish(&self, config: &Config, snapshot: &Snapshot) {
        let Some(tx) = &self.announce else { return };
        let plan = &self.live.plan;
        let wanted: std::collections::BTreeSet<IpAddr> = plan
            .frontends
            .iter()
            .filter(|fe| {
                plan.backends
                    .get(fe.backend as usize)
                    .and_then(|b| config.backend(&b.name))
                    .is_some_and(|b| crate::health::nbsrv(b, snapshot) > 0)
            })
            .flat_map(|fe| fe.vips.iter().map(|(ip, _)| *ip))
            .collect();
        tx.send_if_modified(|now| {
            let changed = *now != wanted;
            *now = wanted;
            changed
        });
    }

    fn open_flows(&self) -> Option<OpenFlows> {
        let Ok(mut cached) = self.open_flows.lock() else {
            return None;
        };
        if let Some((at, flows)) = cached.as_ref()
            && at.elapsed() < Duration::from_secs(1)
        {
            return flows.clone();
        }
        let flows = self.dp.open_flows(&self.settings, OPEN_FLOWS_WALK).unwrap_or_else(|e| {
            warn!("counting open flows: {e}");
            None
        });
        *cached = Some((std::time::Instant::now(), flows.clone()));
        flows
    }
}

impl Drop for XdpEngine<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.log_task.take() {
            t.abort();
        }
    }
}

impl crate::engine::Engine for XdpEngine<'_> {
    type Prepared = Prepared;

    fn apply_health(&mut self, config: &Config, snapshot: &Snapshot) -> anyhow::Result<()> {
        let Live {
            plan,
            snat,
            up,
            weights,
            ..
        } = &mut self.live;
        sync_health(self.dp, plan, config, snapshot, snat, up, weights)?;
        sync_rules(self.dp, &mut self.live, config, snapshot)?;
        self.publish(config, snapshot);
        Ok(())
    }

    async fn prepare(&mut self, config: &Config) -> anyhow::Result<Prepared> {
        let p = plan_for(config, &self.host.local, self.opts)?;
        prepare(self.dp, p, self.host, &self.live, self.opts)
    }

    async fn commit(&mut self, prepared: Prepared, config: &Config, snapshot: &Snapshot) -> anyhow::Result<()> {
        self.live.config = config.clone();
        apply(self.dp, prepared, self.host, &mut self.live, self.opts, snapshot).await?;
        save_handover(self.dp, &self.live, self.host);
        self.publish(config, snapshot);
        Ok(())
    }

    fn counters(&self) -> anyhow::Result<Counters> {
        // `report` lists frontends and servers in the plan's order: zipped
        // with the plan, each row has its ids and backend without a search.
        let r = report(self.dp, Some(&self.live.plan))?;
        let plan = &self.live.plan;
        let open = self.open_flows();
        let mut c = Counters::default();
        let (mut dropped, mut forwarded) = (drop_reasons(&FrontendStats::default()), 0);
        for (pf, fe) in plan.frontends.iter().zip(&r.frontends) {
            let f = &fe.stats;
            let reasons = drop_reasons(f);
            let drops: u64 = reasons.iter().map(|(_, n)| n).sum();
            for (sum, (_, n)) in dropped.iter_mut().zip(reasons) {
                sum.1 += n;
            }
            c.frontends.insert(
                fe.name.clone(),
                FrontendCounters {
                    scur: open.as_ref().map(|o| o.by_frontend.get(&pf.id).copied().unwrap_or(0)),
                    stot: Some(f.new_flows),
                    bin: Some(f.bytes),
                    ereq: Some(drops),
                    dcon: Some(f.denied_conn),
                    dreq: Some(f.denied_silent),
                    ..Default::default()
                },
            );
            forwarded += f.packets.saturating_sub(drops + f.denied_conn + f.denied_silent);
            if let Some(be) = plan.backends.get(pf.backend as usize) {
                let b = c.backends.entry(be.name.clone()).or_default();
                b.nosrv = Some(b.nosrv.unwrap_or(0) + f.drop_no_server);
            }
        }
        let mut replies = 0;
        for (ps, s) in plan.backends.iter().flat_map(|b| &b.servers).zip(&r.servers) {
            let t = &s.stats;
            replies += t.packets_out;
            c.servers.insert(
                (s.backend.clone(), s.name.clone()),
                ServerCounters {
                    scur: open.as_ref().map(|o| o.by_server.get(&ps.id).copied().unwrap_or(0)),
                    stot: Some(t.new_flows),
                    lbtot: Some(t.new_flows),
                    bin: Some(t.bytes_in),
                    bout: Some(t.bytes_out),
                    ..Default::default()
                },
            );
        }
        c.cum_conns = Some(r.frontends.iter().map(|f| f.stats.new_flows).sum());
        c.current_conns = open.as_ref().map(|o| o.by_frontend.values().sum());
        c.xdp = Some(XdpCounters {
            actions: vec![
                ("forwarded", forwarded + replies),
                ("dropped", dropped.iter().map(|d| d.1).sum()),
                ("passed", r.frontends.iter().map(|f| f.stats.passed).sum()),
            ],
            drops: dropped.to_vec(),
            protocols: r.counters.0.iter().map(|(k, v)| (*k, v.packets)).collect(),
        });
        Ok(c)
    }

    fn sessions(&self) -> String {
        "XDP mode keeps flows in the kernel's flow table, not sessions: 'show stat' counts them.\n".into()
    }

    fn stick_tables(&self, name: Option<&str>) -> anyhow::Result<Vec<crate::stick::Dump>> {
        stick_dumps(self.dp, &self.live, name)
    }

    /// The LPM set of each list the line feeds in the frontend's rules:
    /// what left goes, then what came is added (see `nets_change`).
    fn update_acl_list(
        &mut self,
        at: &crate::config::patref::ExprAt,
        old: &[(IpAddr, u8)],
        new: &[(IpAddr, u8)],
    ) -> anyhow::Result<()> {
        let Some(fe) = self.live.plan.frontends.iter().find(|f| f.name == at.proxy) else {
            return Ok(());
        };
        let (Some(rules), Some((sets, _))) = (&fe.rules, self.live.rules.get(&fe.id)) else {
            return Ok(());
        };
        let (gone, came) = crate::datapath::nets_change(old, new);
        for (list, _) in rules
            .origins
            .iter()
            .enumerate()
            .filter(|(_, o)| **o == (at.acl, at.expr))
        {
            let Some(&set) = sets.get(list) else { continue };
            self.dp.remove_nets(set, &gone)?;
            self.dp.add_nets(set, &came)?;
        }
        Ok(())
    }

    /// The program looks addresses up by longest prefix.
    fn takes_masks(&self) -> bool {
        false
    }

    fn clear_stick_table(&mut self, name: &str, select: &crate::stick::Select) -> anyhow::Result<usize> {
        let Some(dump) = stick_dumps(self.dp, &self.live, Some(name))?.pop() else {
            anyhow::bail!("No such table");
        };
        let Some(&id) = self.live.tables.get(name) else {
            anyhow::bail!("No such table");
        };
        let picked = dump
            .entries
            .iter()
            .filter(|(k, e)| select.picks(&dump.store, *k, e, dump.now));
        // An entry open connections count in stays, as HAProxy keeps one in use.
        let (busy, gone): (Vec<_>, Vec<_>) = picked.partition(|(_, e)| e.refs > 0);
        let keys: Vec<StickMapKey> = gone
            .iter()
            .map(|(k, _)| StickMapKey {
                table: id,
                addr: match k {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                    IpAddr::V6(v6) => v6.octets(),
                },
            })
            .collect();
        self.dp.remove_stick(&keys)?;
        Ok(busy.len())
    }

    fn log_counters(&self) {
        log_stats(self.dp, Some(&self.live.plan));
    }

    fn final_extra(&self) -> serde_json::Value {
        match report(self.dp, Some(&self.live.plan)).map(serde_json::to_value) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => serde_json::json!({ "error": e.to_string() }),
            Err(e) => serde_json::json!({ "error": format!("{e:#}") }),
        }
    }
}
