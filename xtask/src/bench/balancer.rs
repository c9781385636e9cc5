//! The balancer of one run: started fresh before it (the agent or HAProxy),
//! asked to answer, and stopped after it for its report.
use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use lbxdp_testbed::Testbed;
use serde_json::{Value, json};

use super::{
    iperf::IPERF_PORT,
    nft::{Nft, Pick},
    route::Route,
};
use crate::agent::{self, Agent, AgentRun, Ready};

/// How long a balancer has to answer its first request.
pub(super) const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// How long haproxy may take to stop after SIGTERM.
const HAPROXY_STOP_WITHIN: Duration = Duration::from_secs(5);

/// HAProxy in the LB's namespace, in the foreground (`-db`); killed by pid if
/// the caller fails half-way.
pub(super) struct Haproxy {
    child: Option<Child>,
    log: PathBuf,
}

impl Haproxy {
    fn start(tb: &Testbed, cfg: &Path, log: PathBuf) -> anyhow::Result<Self> {
        let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = tb
            .command(&tb.lb, "haproxy")
            .arg("-db")
            .arg("-f")
            .arg(cfg)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("starting haproxy (`cargo xtask setup` installs it)")?;
        Ok(Self {
            child: Some(child),
            log,
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.as_mut().map(Child::try_wait).transpose()?.flatten() {
            bail!("haproxy exited: {status}; its log:\n{}", self.log());
        }
        Ok(())
    }

    /// SIGTERM (bounded); returns its log's ALERT and WARNING lines as a report.
    fn stop(&mut self) -> anyhow::Result<Value> {
        let mut child = self.child.take().context("haproxy already stopped")?;
        let (status, killed) = lbxdp_testbed::terminate(&mut child, HAPROXY_STOP_WITHIN)?;
        if killed {
            bail!(
                "haproxy ignored SIGTERM for {} s and was killed",
                HAPROXY_STOP_WITHIN.as_secs()
            );
        }
        let log = self.log();
        let notes: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("[ALERT]") || l.contains("[WARNING]"))
            .collect();
        Ok(json!({ "mode": "haproxy", "exit": status.to_string(), "log_alerts_warnings": notes }))
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The balancer of one run: none (direct), the agent, haproxy, nftables'
/// rules, or the XDP_TX floor program (the agent with `--xdp-tx-floor`).
pub(super) enum Lb<'a> {
    None,
    Agent(Agent),
    Haproxy(Haproxy),
    Nft(Nft<'a>),
    TxFloor(Agent),
}

impl<'a> Lb<'a> {
    /// Starts a fresh balancer for `path` (bounded: the agent until it is
    /// attached or listening; haproxy is only spawned, `wait_answers` follows).
    pub(super) fn start(tb: &'a Testbed, bin: &Path, cfg: &Path, path: Route, tag: &str) -> anyhow::Result<Self> {
        let agent = |args: &[&str], ready: Ready<'_>| -> anyhow::Result<Agent> {
            let run = AgentRun {
                bin,
                cfg,
                args,
                report: tb.dir().join(format!("agent-{tag}.json")),
                log: Some(tb.dir().join(format!("agent-{tag}.log"))),
            };
            Agent::start_until(tb, run, ready)
        };
        match path {
            Route::Direct => Ok(Self::None),
            Route::XdpNative => Ok(Self::Agent(agent(
                &["--mode", "xdp", "--xdp-mode", "native"],
                Ready::XdpAttached,
            )?)),
            Route::XdpGeneric => Ok(Self::Agent(agent(
                &["--mode", "xdp", "--xdp-mode", "generic"],
                Ready::XdpAttached,
            )?)),
            Route::Proxy => Ok(Self::Agent(agent(
                &["--mode", "proxy"],
                Ready::LogLine("with the userspace proxy"),
            )?)),
            Route::Haproxy => Ok(Self::Haproxy(Haproxy::start(
                tb,
                cfg,
                tb.dir().join(format!("haproxy-{tag}.log")),
            )?)),
            Route::Nftables => Ok(Self::Nft(Nft::install(tb, Pick::Numgen, IPERF_PORT, tag)?)),
            Route::NftablesJhash => Ok(Self::Nft(Nft::install(tb, Pick::Jhash, IPERF_PORT, tag)?)),
            // The agent adds `-i eth0` (the client's side); DNAT needs the
            // servers' side too, where their replies come in.
            Route::XdpNativeDnat => Ok(Self::Agent(agent(
                &["--mode", "xdp", "--xdp-mode", "native", "--nat", "dnat", "-i", "eth1"],
                Ready::XdpAttached,
            )?)),
            Route::XdpGenericDnat => Ok(Self::Agent(agent(
                &["--mode", "xdp", "--xdp-mode", "generic", "--nat", "dnat", "-i", "eth1"],
                Ready::XdpAttached,
            )?)),
            Route::NftablesDnat => Ok(Self::Nft(Nft::install(tb, Pick::NumgenDnat, IPERF_PORT, tag)?)),
            Route::TxFloor => Ok(Self::TxFloor(agent(
                &["--xdp-tx-floor", "--xdp-mode", "native"],
                Ready::XdpAttached,
            )?)),
        }
    }

    fn check_running(&mut self) -> anyhow::Result<()> {
        match self {
            Self::None | Self::Nft(_) => Ok(()),
            Self::Agent(a) | Self::TxFloor(a) => a.check_running(),
            Self::Haproxy(h) => h.check_running(),
        }
    }

    /// Stops the balancer and returns its report.
    pub(super) fn stop(&mut self) -> anyhow::Result<Option<Value>> {
        match self {
            Self::None => Ok(None),
            Self::Agent(a) => {
                let (status, text) = a.stop()?;
                if !status.success() {
                    bail!("the agent exited with {status}");
                }
                Ok(Some(agent::parse_report(&text)?))
            }
            Self::Haproxy(h) => Ok(Some(h.stop()?)),
            Self::Nft(n) => Ok(Some(n.stop()?)),
            Self::TxFloor(a) => {
                let (status, _) = a.stop()?;
                if !status.success() {
                    bail!("the XDP_TX floor program's agent exited with {status}");
                }
                Ok(Some(json!({ "mode": "xdp-tx-floor" })))
            }
        }
    }
}

/// Retries one GET from the client (bounded) until `url` answers; fails
/// early if the balancer exits.
pub(super) fn wait_answers(tb: &Testbed, url: &str, within: Duration, lb: &mut Lb<'_>) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        match agent::curl(tb, url) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(e).with_context(|| format!("{url} did not answer within {within:?}"));
            }
            Err(_) => {
                lb.check_running()?;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Ends the TIME_WAIT sockets of the servers and the LB (`ss -K`), before a
/// run. Every balancer here but DNAT reaches the servers from the LB's one
/// address, so a run's connections leave TIME_WAIT on the servers for 60 s
/// under (LB address, port) pairs that the next run's balancer may pick
/// again; its SYN then meets the old connection and waits for a 1 s
/// retransmit (nftables' masquerade keeps the client's port: its `close` run
/// fell from 13,500 to 1,650 req/s right after haproxy's). The rule
/// is a fresh testbed per run or the servers' TIME_WAIT drained: this drains.
/// The client's too: through a proxy the client closes first and keeps the
/// TIME_WAIT, and the sustained runs' default client (no reuse, 28,232
/// ports) would start with its ports held by the run before.
pub(super) fn drain_time_wait(tb: &Testbed) -> anyhow::Result<()> {
    for host in tb.backends.iter().chain([&tb.lb, &tb.client]) {
        time_wait(tb, host, true)?;
    }
    Ok(())
}

/// How many of the client's TCP sockets are in TIME_WAIT.
pub(super) fn client_time_wait(tb: &Testbed) -> anyhow::Result<u64> {
    time_wait(tb, &tb.client, false)
}

/// `ss [-K] -Htan state time-wait` in `host`'s namespace: the sockets it
/// listed (`kill`: and closed).
fn time_wait(tb: &Testbed, host: &lbxdp_testbed::Host, kill: bool) -> anyhow::Result<u64> {
    let mut cmd = tb.command(host, "ss");
    if kill {
        cmd.arg("-K");
    }
    let out = cmd
        .args(["-Htan", "state", "time-wait"])
        .output_timeout(Duration::from_secs(10))?;
    if !out.status.success() {
        bail!(
            "ss{} state time-wait in {}: {}",
            if kill { " -K" } else { "" },
            host.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().count() as u64)
}
