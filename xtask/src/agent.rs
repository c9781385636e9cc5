//! The agent in a namespace testbed, shared by the demo and the benchmark: the
//! haproxy.cfg it balances, a guard that starts it on the LB's eth0, waits
//! until XDP is attached, and stops it with SIGTERM for its JSON report, and
//! curl from the client.
use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use lbxdp_testbed::{Host, Testbed};

/// How long the agent may take to attach, and to stop after SIGTERM.
const ATTACH_WITHIN: Duration = Duration::from_secs(15);
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// The seed's shape: one TCP frontend on port 80, round robin over checked servers.
pub fn haproxy_cfg(tb: &Testbed) -> String {
    let mut s = format!(
        "global\n    maxconn 4096\n\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    \
         timeout server 30s\n\nfrontend web\n    bind {}:80\n    default_backend nginx-servers\n\n\
         backend nginx-servers\n    balance roundrobin\n",
        tb.lb.v4()
    );
    for b in &tb.backends {
        s.push_str(&format!(
            "    server {} {}:80 check inter 2000 fall 2 rise 2 weight 1\n",
            b.name,
            b.v4()
        ));
    }
    s
}

/// [`haproxy_cfg`] plus a second TCP frontend on the VIP's `port` whose backend
/// is web1 alone on the same port (an iperf3 server there), without health
/// checks: a check's bare connect would disturb iperf3's control protocol.
pub fn haproxy_cfg_with_iperf(tb: &Testbed, port: u16) -> String {
    let web1 = tb.backends.first().map(|b| (b.name.as_str(), b.v4()));
    let mut s = haproxy_cfg(tb);
    s.push_str(&format!(
        "\nfrontend iperf\n    bind {}:{port}\n    default_backend iperf-server\n\nbackend iperf-server\n",
        tb.lb.v4()
    ));
    if let Some((name, addr)) = web1 {
        s.push_str(&format!("    server {name} {addr}:{port}\n"));
    }
    s
}

/// When [`Agent::start_until`] considers the agent started.
#[derive(Clone, Copy, Debug)]
pub enum Ready<'a> {
    /// An XDP program is attached to the host's eth0 (XDP modes).
    XdpAttached,
    /// Its log (which must go to a file) has a line containing this text,
    /// e.g. "with the userspace proxy" for `--mode proxy`.
    LogLine(&'a str),
}

/// What to start: `bin -f cfg -i eth0 args...` in the LB's namespace.
pub struct AgentRun<'a> {
    pub bin: &'a Path,
    pub cfg: &'a Path,
    /// Extra agent arguments, e.g. `--xdp-mode generic`.
    pub args: &'a [&'a str],
    /// Where the agent's stdout (its JSON report) goes.
    pub report: PathBuf,
    /// Where its log (stderr) goes; `None`: this process's stderr.
    pub log: Option<PathBuf>,
}

/// A running agent; killed by pid if the caller fails half-way.
pub struct Agent {
    child: Option<Child>,
    /// The host it runs on.
    host: Host,
    report: PathBuf,
    log: Option<PathBuf>,
}

impl Agent {
    /// Starts the agent and returns once XDP is attached to the LB's eth0 (bounded).
    pub fn start(tb: &Testbed, run: AgentRun<'_>) -> anyhow::Result<Self> {
        Self::start_until(tb, run, Ready::XdpAttached)
    }

    /// Starts the agent and returns once it is `ready` (bounded).
    pub fn start_until(tb: &Testbed, run: AgentRun<'_>, ready: Ready<'_>) -> anyhow::Result<Self> {
        Self::start_on(tb, &tb.lb, run, ready)
    }

    /// As [`Agent::start_until`], on `host`'s eth0 (one LB node of several).
    pub fn start_on(tb: &Testbed, host: &Host, run: AgentRun<'_>, ready: Ready<'_>) -> anyhow::Result<Self> {
        if matches!(ready, Ready::LogLine(_)) && run.log.is_none() {
            bail!("waiting for a log line needs the agent's log in a file");
        }
        let stderr = match &run.log {
            Some(path) => Stdio::from(File::create(path).with_context(|| format!("creating {}", path.display()))?),
            None => Stdio::inherit(),
        };
        let child = tb
            .command(host, &run.bin.to_string_lossy())
            .arg("-f")
            .arg(run.cfg.to_string_lossy().as_ref())
            .args(["-i", "eth0"])
            .args(run.args)
            .stdout(Stdio::from(File::create(&run.report)?))
            .stderr(stderr)
            .spawn()?;
        let mut agent = Self {
            child: Some(child),
            host: host.clone(),
            report: run.report,
            log: run.log,
        };
        let deadline = Instant::now() + ATTACH_WITHIN;
        while !agent.is_ready(tb, ready)? {
            if Instant::now() > deadline {
                let what = match ready {
                    Ready::XdpAttached => "attach".to_string(),
                    Ready::LogLine(line) => format!("log {line:?}"),
                };
                bail!(
                    "the agent did not {what} within {} s{}",
                    ATTACH_WITHIN.as_secs(),
                    agent.log_tail()
                );
            }
            if let Some(status) = agent.try_wait()? {
                bail!("the agent exited early: {status}{}", agent.log_tail());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(agent)
    }

    fn is_ready(&self, tb: &Testbed, ready: Ready<'_>) -> anyhow::Result<bool> {
        match ready {
            Ready::XdpAttached => tb.xdp_attached(&self.host, "eth0"),
            Ready::LogLine(line) => Ok(self
                .log
                .as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .is_some_and(|text| text.contains(line))),
        }
    }

    /// The agent's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits (bounded) for the agent to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "the agent did not exit within {} s{}",
                    within.as_secs(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Fails (with the end of its log) if the agent has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        match self.try_wait()? {
            Some(status) => bail!("the agent exited: {status}{}", self.log_tail()),
            None => Ok(()),
        }
    }

    fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => Ok(c.try_wait()?),
            None => Ok(None),
        }
    }

    /// Stops the agent with SIGTERM (bounded) and returns its exit status and
    /// what it printed on stdout: its JSON report.
    pub fn stop(&mut self) -> anyhow::Result<(ExitStatus, String)> {
        let mut child = self.child.take().context("agent already stopped")?;
        let (status, killed) = lbxdp_testbed::terminate(&mut child, STOP_WITHIN)?;
        if killed {
            bail!(
                "the agent ignored SIGTERM for {} s and was killed{}",
                STOP_WITHIN.as_secs(),
                self.log_tail()
            );
        }
        let report = std::fs::read_to_string(&self.report)
            .with_context(|| format!("reading the agent's report {}", self.report.display()))?;
        Ok((status, report))
    }

    /// The end of the agent's log, for error messages (when it goes to a file).
    fn log_tail(&self) -> String {
        let Some(text) = self.log.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) else {
            return String::new();
        };
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "; its log ends:\n{}",
            lines[lines.len().saturating_sub(20)..].join("\n")
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One HTTP GET from the testbed's client (bounded), returning the body.
pub fn curl(tb: &Testbed, url: &str) -> anyhow::Result<String> {
    let out = tb
        .command(&tb.client, "curl")
        .args(["-sS", "--max-time", "3", url])
        .output_timeout(Duration::from_secs(10))?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The JSON line the agent prints when it stops.
pub fn parse_report(text: &str) -> anyhow::Result<serde_json::Value> {
    serde_json::from_str(text.trim()).context("the agent's JSON report")
}

/// The report's per-server counters as a table, indented by six spaces.
pub fn print_servers(report: &serde_json::Value) {
    println!(
        "      {:<8} {:>20} {:>8} {:>10} {:>9} {:>10} {:>6}",
        "server", "address", "pkts in", "bytes in", "pkts out", "bytes out", "flows"
    );
    for s in report["servers"].as_array().into_iter().flatten() {
        println!(
            "      {:<8} {:>20} {:>8} {:>10} {:>9} {:>10} {:>6}",
            s["name"].as_str().unwrap_or("?"),
            s["addr"].as_str().unwrap_or("?"),
            // A JSON value ignores width: pad its text.
            s["packets_in"].to_string(),
            s["bytes_in"].to_string(),
            s["packets_out"].to_string(),
            s["bytes_out"].to_string(),
            s["new_flows"].to_string()
        );
    }
}
