//! `lbxdp-agent`: balances the frontends of an haproxy.cfg with XDP.
use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Parser, ValueEnum as _};
use lbxdp_agent::{
    balancer,
    config::{Config, Severity},
    config_files,
    datapath::{NatMode, XdpModeArg},
    logging, master, proxy_mode, runtime,
};
use lbxdp_common::{XDP_PASS_PROGRAM, XDP_TX_FLOOR_PROGRAM};
use tracing::{info, warn};

#[derive(Parser, Debug)]
#[command(
    name = "lbxdp-agent",
    version,
    about = "An XDP layer-4 load balancer driven by haproxy.cfg"
)]
struct Cli {
    /// Configuration file or directory of *.cfg files (haproxy.cfg syntax); may be given more than once.
    #[arg(short = 'f', value_name = "FILE")]
    config: Vec<PathBuf>,
    /// auto: XDP, or the userspace proxy when XDP can't run here; xdp: XDP or
    /// fail; proxy: the userspace proxy.
    #[arg(long, value_enum, default_value_t)]
    mode: Mode,
    /// Check mode, as `haproxy -c`: parse the configuration, print its diagnostics, exit 0 if valid, else 1.
    #[arg(short = 'c')]
    check: bool,
    /// Interface to attach the XDP program to; repeat it for a two-arm LB
    /// (clients on one interface, servers on another).
    #[arg(short = 'i', long, value_name = "IFACE")]
    iface: Vec<String>,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t)]
    xdp_mode: XdpModeArg,
    /// How traffic reaches the servers: full NAT (servers need no change),
    /// destination NAT (servers see client addresses and route replies via the
    /// LB), or direct server return (only the MAC changes: servers on the LB's
    /// segment hold the VIP on `lo` and answer clients themselves).
    #[arg(long, value_enum, default_value_t)]
    nat: NatMode,
    /// Maglev table size per backend (a prime).
    #[arg(long, default_value_t = lbxdp_agent::maglev::DEFAULT_TABLE_SIZE, value_name = "N")]
    maglev_size: u32,
    /// Seed of the Maglev tables' hashes. LB nodes that share a VIP behind an
    /// ECMP route need the same seed (and config) to send a flow to the same
    /// server; 0 keeps lbxdp's fixed tables.
    #[arg(long, default_value_t = 0, value_name = "N")]
    maglev_seed: u64,
    /// Announce each VIP as a host route in this kernel routing table while
    /// its backend has a usable server (XDP mode): a routing daemon such as
    /// bird2 exports the table by BGP, so a router's ECMP spreads the VIP
    /// over the nodes that serve it. Withdrawn when the agent stops.
    #[arg(long, value_name = "TABLE")]
    announce_table: Option<u32>,
    /// Flows the connection table remembers (least recently used ones go first).
    #[arg(long, default_value_t = lbxdp_common::DEFAULT_MAX_FLOWS, value_name = "N")]
    max_flows: u32,
    /// Log the counters this often, in seconds (default: 5 with -v, else only
    /// at exit).
    #[arg(long, value_name = "SECS")]
    stats_interval: Option<u64>,
    /// Attach a program that passes everything, and nothing else: for the far
    /// end of a veth, where native XDP_TX delivers only if that end runs XDP.
    #[arg(long)]
    xdp_pass: bool,
    /// For `cargo xtask bench`: attach a program that swaps MACs and bounces
    /// every frame (XDP_TX), the floor any XDP balancer stands on.
    #[arg(long, hide = true, conflicts_with = "xdp_pass")]
    xdp_tx_floor: bool,
    /// Names the pinned datapath under /sys/fs/bpf/lbxdp/ (default: this
    /// network namespace, "net<inode>").
    #[arg(long, value_name = "NAME")]
    instance: Option<String>,
    /// Detach and remove the datapath a killed agent left pinned (with the
    /// VIPs, neighbour entries and port reservation it added), then exit.
    #[arg(long)]
    detach: bool,
    /// Write the pid to this file (overrides the global section's `pidfile`).
    #[arg(short = 'p', value_name = "FILE")]
    pidfile: Option<PathBuf>,
    /// Quiet, as HAProxy's -q: with -c, only the alerts of a bad
    /// configuration are printed (no warnings, no verdict line).
    #[arg(short = 'q')]
    quiet: bool,
    /// Go to the background once serving, as `daemon` in the global section
    /// (HAProxy's -D); the command returns when the agent serves, or fails
    /// with its error.
    #[arg(short = 'D')]
    daemon: bool,
    /// Stay in the foreground whatever `daemon` says (HAProxy's -db).
    #[arg(long)]
    foreground: bool,
    /// Master-worker mode (HAProxy's -W and -Ws, `master-worker` in the
    /// global section): a master process runs the agent as a worker, reloads
    /// it on SIGUSR2 or the master CLI's `reload` by starting a new worker
    /// that takes over, and serves the master CLI (-S).
    #[arg(short = 'W')]
    master_worker: bool,
    /// The master CLI's socket: `/path`, `unix@/path` or `ipv4@ADDR:PORT`,
    /// optionally followed by `,mode,0600`-style options (HAProxy's -S).
    #[arg(short = 'S', value_name = "ADDR")]
    master_cli: Vec<String>,
    /// Take over from these agents once serving, then tell them to finish
    /// their sessions and exit (SIGUSR1) (HAProxy's -sf PID...).
    #[arg(long, num_args = 1.., value_name = "PID")]
    soft_stop: Vec<i32>,
    /// Take over from these agents once serving, then stop them at once
    /// (SIGTERM) (HAProxy's -st PID...).
    #[arg(long, num_args = 1.., value_name = "PID")]
    hard_stop: Vec<i32>,
    /// HAProxy's -x (listening sockets fetched from the old process): not
    /// needed, an agent that takes over binds its listeners beside the old
    /// one's (SO_REUSEPORT) and the kernel moves the old one's queued
    /// connections over when it closes them. Accepted, with a note.
    #[arg(short = 'x', value_name = "SOCKET")]
    sockets_from: Option<PathBuf>,
    /// Debug logging, including the XDP program's own debug records.
    #[arg(short = 'v', long)]
    verbose: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    #[default]
    Auto,
    Xdp,
    Proxy,
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(lbxdp_agent::cli_args::haproxy_style(std::env::args_os()));
    if cli.check {
        // No logging set-up, root or interface: this is only the parser.
        return check(&cli.config, cli.quiet);
    }
    lbxdp_agent::daemon::new_session();
    logging::init(cli.verbose);
    match start(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lbxdp-agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The config is read before the runtime exists: `nbthread` sizes it.
fn start(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = if cli.xdp_pass || cli.xdp_tx_floor || cli.detach {
        None
    } else {
        load_config(&cli.config)?
    };
    let daemon = cli.daemon || config.as_ref().is_some_and(|c| c.global.daemon);
    if daemon && !cli.foreground && !lbxdp_agent::daemon::is_daemon() {
        return lbxdp_agent::daemon::start_in_background();
    }
    if !cli.xdp_pass && !cli.xdp_tx_floor && !cli.detach && master::wanted(cli.master_worker, config.as_ref()) {
        let opts = master::Options {
            config_paths: cli.config.clone(),
            master_cli: cli.master_cli.clone(),
            pidfile: cli.pidfile.clone(),
        };
        return master::run(opts, config.as_ref());
    }
    let threads = config.as_ref().map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        lbxdp_agent::proxy::worker_threads,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(run(cli, config))?;
    Ok(ExitCode::SUCCESS)
}

/// `-c`: diagnostics on stderr in HAProxy's format, the verdict on stdout.
/// The verdict is HAProxy's: what the agent would refuse to run (TLS, ...)
/// is a warning here, not an error.
fn check(paths: &[PathBuf], quiet: bool) -> ExitCode {
    if paths.is_empty() {
        eprintln!("[ALERT] no configuration file: use -f FILE");
        return ExitCode::FAILURE;
    }
    match config_files::check(paths) {
        Ok(loaded) => {
            for d in loaded.diags.iter().filter(|d| !quiet || d.severity == Severity::Alert) {
                eprintln!("{d}");
            }
            match &loaded.config {
                // HAProxy's verdict and exit code for a file without a `bind`.
                Some(c) if c.listeners == 0 => {
                    if !quiet {
                        println!("Configuration file has no error but will not start (no listener) => exit(2).");
                    }
                    ExitCode::from(2)
                }
                Some(_) => {
                    if !quiet {
                        println!("Configuration file is valid");
                    }
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("[ALERT] Fatal errors found in configuration.");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("[ALERT] {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads -f for the running agent; alerts stop it, warnings are logged. A
/// configuration that asks for what lbxdp doesn't do (TLS, ...) stops it
/// here, before anything is loaded, attached or bound.
fn load_config(paths: &[PathBuf]) -> anyhow::Result<Option<Config>> {
    if paths.is_empty() {
        return Ok(None);
    }
    let loaded = config_files::load(paths)?;
    // A daemon's warnings and summary were said by the process that started
    // it, which read the same files (and relays this one's output until it
    // serves).
    let said = lbxdp_agent::daemon::is_daemon();
    for d in &loaded.diags {
        match d.severity {
            Severity::Warning if said => {}
            Severity::Warning => warn!("{d}"),
            Severity::Alert => eprintln!("{d}"),
        }
    }
    if loaded.refused {
        anyhow::bail!(
            "refusing to start: the configuration asks for what lbxdp doesn't do yet (see the [ALERT] lines above)"
        );
    }
    let config = loaded
        .config
        .context("the configuration has errors (see the [ALERT] lines)")?;
    if !said {
        for fe in &config.frontends {
            let binds: Vec<String> = fe
                .binds
                .iter()
                .map(|b| {
                    let ip = b.addr.ip.map(|ip| ip.to_string()).unwrap_or_else(|| "*".into());
                    let (lo, hi) = (b.addr.ports.start(), b.addr.ports.end());
                    if lo == hi {
                        format!("{ip}:{lo}")
                    } else {
                        format!("{ip}:{lo}-{hi}")
                    }
                })
                .collect();
            let backend = fe.backend.as_deref().unwrap_or("(none)");
            let servers = fe
                .backend
                .as_deref()
                .and_then(|b| config.backend(b))
                .map_or(0, |b| b.servers.len());
            info!(
                "frontend {}: {} -> backend {backend} ({servers} servers)",
                fe.name,
                binds.join(", ")
            );
        }
        info!(
            "configuration: {} frontends, {} backends",
            config.frontends.len(),
            config.backends.len()
        );
    }
    Ok(Some(config))
}

async fn run(cli: Cli, config: Option<Config>) -> anyhow::Result<()> {
    if cli.xdp_pass {
        return balancer::run_pass(&cli.iface, cli.xdp_mode, XDP_PASS_PROGRAM).await;
    }
    if cli.xdp_tx_floor {
        return balancer::run_pass(&cli.iface, cli.xdp_mode, XDP_TX_FLOOR_PROGRAM).await;
    }
    if cli.detach {
        return balancer::detach_pinned(cli.instance.as_deref()).await;
    }
    // A master's worker leaves the pidfile to the master, as HAProxy's do.
    let pidfile = cli
        .pidfile
        .clone()
        .or_else(|| {
            config
                .as_ref()
                .and_then(|c| c.global.pidfile.clone())
                .map(PathBuf::from)
        })
        .filter(|_| !master::is_worker());
    let _pidfile = match &pidfile {
        Some(p) => Some(lbxdp_agent::pidfile::PidFile::write(p)?),
        None => None,
    };
    let predecessors = lbxdp_agent::takeover::Predecessors {
        soft: cli.soft_stop.clone(),
        hard: cli.hard_stop.clone(),
    };
    if let Some(s) = &cli.sockets_from {
        info!(
            "-x {}: not needed; the listeners are bound beside the old agent's (SO_REUSEPORT) and the kernel moves \
             its queued connections over",
            s.display()
        );
    }
    // The runtime API's sockets are bound now, as root, before either
    // engine drops privileges; they serve once the agent loop runs.
    let mut runtime = match &config {
        Some(c) => Some(runtime::start(c, predecessors).await?),
        None => None,
    };
    // The proxy connects to servers from its own address: a NAT mode other
    // than full would be silently something else there.
    let nat_refused = || {
        anyhow::anyhow!(
            "--nat {}: only the XDP datapath does it; the userspace proxy connects to the servers from its own              address (full NAT)",
            cli.nat
                .to_possible_value()
                .map_or_else(String::new, |v| v.get_name().to_string())
        )
    };
    if cli.mode == Mode::Proxy {
        if cli.nat != NatMode::Full {
            return Err(nat_refused());
        }
        let config = config.context("--mode proxy needs a configuration (-f)")?;
        let rt = runtime.take().context("no runtime API")?;
        let report = proxy_mode::run(config, &cli.config, rt).await?;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let opts = balancer::Options {
        config_paths: cli.config.clone(),
        ifaces: cli.iface.clone(),
        xdp_mode: cli.xdp_mode,
        nat: cli.nat,
        table_size: cli.maglev_size,
        maglev_seed: cli.maglev_seed,
        announce_table: cli.announce_table,
        flows: cli.max_flows,
        kernel_debug: cli.verbose,
        stats_interval: cli.stats_interval.unwrap_or(if cli.verbose { 5 } else { 0 }),
        instance: cli.instance.clone(),
    };
    match balancer::run(config.as_ref(), &opts, &mut runtime).await {
        Ok(report) => println!("{}", serde_json::to_string(&report)?),
        Err(e) if cli.mode == Mode::Auto && config.is_some() && proxy_mode::xdp_unavailable(&e) => {
            if cli.nat != NatMode::Full {
                return Err(e.context(nat_refused()));
            }
            warn!("XDP is unavailable here ({e:#}); falling back to the userspace proxy");
            let config = config.context("no configuration")?;
            let rt = runtime.take().context("no runtime API")?;
            let report = proxy_mode::run(config, &cli.config, rt).await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Err(e) => return Err(e),
    }
    Ok(())
}
