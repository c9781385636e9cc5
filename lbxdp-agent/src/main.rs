//! `lbxdp-agent`: runs the lbxdp XDP program on an interface.
use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::Parser;
use lbxdp_agent::{
    datapath::{Datapath, XdpModeArg},
    logging,
};
use serde::Serialize;
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
};
use tracing::{info, warn};

#[derive(Parser, Debug)]
#[command(
    name = "lbxdp-agent",
    version,
    about = "An XDP layer-4 load balancer driven by haproxy.cfg"
)]
struct Cli {
    /// Configuration file (haproxy.cfg syntax); may be given more than once.
    #[arg(short = 'f', value_name = "FILE")]
    config: Vec<PathBuf>,
    /// Interface to attach the XDP program to.
    #[arg(short = 'i', long, value_name = "IFACE")]
    iface: Option<String>,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t)]
    xdp_mode: XdpModeArg,
    /// Log the counters this often, in seconds (0: only at exit).
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    stats_interval: u64,
    /// Debug logging, including the XDP program's own debug records.
    #[arg(short = 'v', long)]
    verbose: bool,
}

/// Printed on stdout as one JSON line when the agent stops.
#[derive(Serialize)]
struct FinalReport<'a> {
    iface: &'a str,
    mode: &'static str,
    counters: lbxdp_agent::datapath::ProtoCounters,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lbxdp-agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    for path in &cli.config {
        // The parser arrives with the haproxy.cfg issue; until then the file must
        // at least exist and be readable, so a typo in -f fails now, not later.
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        info!(
            "{}: {} lines read (not yet interpreted: balancing arrives in a later release)",
            path.display(),
            text.lines().count()
        );
    }
    let iface = cli
        .iface
        .as_deref()
        .context("--iface IFACE is required: the interface to attach XDP to")?;

    let mut dp = Datapath::attach(iface, cli.xdp_mode, cli.verbose)?;
    info!("attached lbxdp to {iface} in {} mode", dp.mode().as_str());

    let logger = match dp.logger() {
        // SAFETY: the logger owns its ring buffer's fd, which stays open and the
        // same until the logger drops, and the logger drops only with the AsyncFd.
        // aya-log's EbpfLogger is meant to be polled this way.
        Some(l) => Some(
            unsafe { AsyncFd::register_with_interest(l, Interest::READABLE) }
                .map_err(|e| anyhow::anyhow!("polling the eBPF log buffer: {e}"))?,
        ),
        None => None,
    };
    let log_task = logger.map(|mut fd| {
        tokio::spawn(async move {
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
        })
    });

    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let period = Duration::from_secs(cli.stats_interval.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = sigint.recv() => { info!("SIGINT: stopping"); break; }
            _ = sigterm.recv() => { info!("SIGTERM: stopping"); break; }
            _ = ticker.tick(), if cli.stats_interval > 0 => {
                match dp.counters() {
                    Ok(c) => info!("counters: {}", c.summary()),
                    Err(e) => warn!("reading counters: {e}"),
                }
            }
        }
    }

    let counters = dp.counters()?;
    let report = FinalReport {
        iface,
        mode: dp.mode().as_str(),
        counters,
    };
    println!("{}", serde_json::to_string(&report)?);
    if let Some(t) = log_task {
        t.abort();
    }
    dp.detach()?;
    Ok(())
}
