//! Helpers shared by the agent's integration tests.
#![allow(dead_code)]

pub mod clients;
pub mod rsyslog;
pub mod runtime;

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use lbxdp_testbed::{Layout, Testbed, Topology};

pub fn agent_bin() -> &'static str {
    env!("CARGO_BIN_EXE_lbxdp-agent")
}

/// True (and a loud message) when the test can't run here. CI runs as root.
pub fn skip_without_root(test: &str) -> bool {
    match lbxdp_testbed::require_root() {
        Ok(()) => false,
        Err(why) => {
            eprintln!("\n!!! SKIPPED {test}: {why}. Integration tests need root (network namespaces, XDP). !!!\n");
            true
        }
    }
}

/// The testbed for `test`, or None (after a loud message) without root.
/// Its hosts send complete checksums (see `plain_testbed` for Linux's defaults).
pub fn testbed(test: &str, layout: Layout, backends: usize, nginx: bool) -> Option<Testbed> {
    build(test, layout, backends, nginx, false)
}

/// A testbed left as a user's veths are: TX checksum offload on, and no
/// XDP program on the LB's peers unless the test adds one.
pub fn plain_testbed(test: &str, layout: Layout, backends: usize) -> Option<Testbed> {
    build(test, layout, backends, true, true)
}

fn build(test: &str, layout: Layout, backends: usize, nginx: bool, default_offloads: bool) -> Option<Testbed> {
    if skip_without_root(test) {
        return None;
    }
    Some(
        Testbed::build(&Topology {
            layout,
            backends,
            nginx,
            default_offloads,
        })
        .expect("testbed"),
    )
}

/// A TCP echo server (socat) on `port` of every backend, for long-lived
/// flows; the testbed ends them when it drops.
pub fn start_echo_servers(tb: &mut Testbed, port: u16) {
    for b in tb.backends.clone() {
        let child = tb
            .command(&b, "socat")
            .args([format!("TCP-LISTEN:{port},fork,reuseaddr"), "EXEC:cat".to_string()])
            .spawn()
            .expect("socat echo server");
        tb.adopt(child);
    }
}

/// The agent running in the LB's namespace; killed by pid if the test fails first.
pub struct Agent {
    child: Option<Child>,
    stderr: mpsc::Receiver<String>,
    stderr_log: Vec<String>,
}

impl Agent {
    pub fn start(tb: &Testbed, args: &[&str]) -> Self {
        Self::start_program(tb, agent_bin(), args)
    }

    /// The agent in `host`'s namespace (an ECMP testbed's node).
    pub fn start_in(tb: &Testbed, host: &lbxdp_testbed::Host, args: &[&str]) -> Self {
        Self::spawn(tb, host, agent_bin(), args)
    }

    /// The agent through a wrapper (e.g. `setpriv ... lbxdp-agent ...`).
    pub fn start_program(tb: &Testbed, program: &str, args: &[&str]) -> Self {
        Self::spawn(tb, &tb.lb, program, args)
    }

    fn spawn(tb: &Testbed, host: &lbxdp_testbed::Host, program: &str, args: &[&str]) -> Self {
        let mut child = tb
            .command(host, program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting lbxdp-agent");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child: Some(child),
            stderr: rx,
            stderr_log: Vec::new(),
        }
    }

    /// Waits (bounded) for a stderr line containing `needle`.
    pub fn wait_for(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.stderr_log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "agent never logged {needle:?}; stderr so far:\n{}",
                    self.stderr_log.join("\n")
                ),
            }
        }
    }

    /// Waits (bounded) until every needle showed up in some stderr line logged from now on, in any order.
    pub fn wait_for_all(&mut self, needles: &[&str], within: Duration) {
        self.wait_for_missing(needles.to_vec(), within);
    }

    /// Like `wait_for_all`, but lines logged since the start count too: a check can fail before the
    /// agent says it is balancing, and `start` has read those lines already.
    pub fn wait_for_all_since_start(&mut self, needles: &[&str], within: Duration) {
        let missing = needles
            .iter()
            .copied()
            .filter(|n| !self.stderr_log.iter().any(|l| l.contains(n)))
            .collect();
        self.wait_for_missing(missing, within);
    }

    fn wait_for_missing(&mut self, mut missing: Vec<&str>, within: Duration) {
        let deadline = Instant::now() + within;
        while !missing.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    missing.retain(|n| !line.contains(n));
                    self.stderr_log.push(line);
                }
                Err(_) => panic!(
                    "agent never logged {missing:?}; stderr so far:\n{}",
                    self.stderr_log.join("\n")
                ),
            }
        }
    }

    /// Everything the agent logged so far, for failure messages.
    pub fn log(&mut self) -> String {
        while let Ok(line) = self.stderr.try_recv() {
            self.stderr_log.push(line);
        }
        self.stderr_log.join("\n")
    }

    /// Sends a signal (SIGHUP to reload, SIGUSR1 for the counters).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let child = self.child.as_ref().expect("agent running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, sig).expect("signalling the agent");
    }

    /// The XDP mode from the agent's "attached ... in MODE mode" line.
    pub fn attached_mode(&mut self) -> String {
        let line = self.wait_for("attached lbxdp to", Duration::from_secs(15));
        line.split(" in ")
            .last()
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_default()
            .to_string()
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("agent running").id()
    }

    /// Waits (bounded) for the agent to exit by itself; its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().expect("agent running");
        loop {
            if let Some(status) = child.try_wait().expect("waiting for the agent") {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                panic!("the agent did not exit within {within:?}; stderr:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the agent still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGKILL, as a crash or the OOM killer would end it; waits for it.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL to the agent");
            child.wait().expect("reaping the agent");
        }
    }

    /// SIGTERM, wait (bounded) and return the JSON report from stdout.
    pub fn stop(mut self) -> serde_json::Value {
        let mut child = self.child.take().expect("agent running");
        let (status, killed) =
            lbxdp_testbed::terminate(&mut child, Duration::from_secs(10)).expect("stopping the agent");
        if killed {
            while let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(200)) {
                self.stderr_log.push(line);
            }
            panic!(
                "agent did not exit within 10 s of SIGTERM; stderr:\n{}",
                self.stderr_log.join("\n")
            );
        }
        let mut out = String::new();
        child
            .stdout
            .take()
            .expect("piped stdout")
            .read_to_string(&mut out)
            .expect("reading stdout");
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(200)) {
            self.stderr_log.push(line);
        }
        assert!(
            status.success(),
            "agent exited with {status}; stderr:\n{}",
            self.stderr_log.join("\n")
        );
        let last = out.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| panic!("agent's report {last:?} is not JSON: {e}"))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Writes `cfg` as the testbed's haproxy.cfg, puts the pass program on the
/// LB's bridge ports (native redirect into a veth needs one on its peer) if
/// they lack it, and starts the agent in native XDP mode on eth0 (unless
/// `extra` names interfaces) with `extra`; returns once it is balancing.
pub fn start_balancing(tb: &mut Testbed, cfg: &str, extra: &[&str]) -> Agent {
    let path = tb.dir().join("haproxy.cfg");
    std::fs::write(&path, cfg).expect("writing haproxy.cfg");
    if !tb
        .peer_ports(&tb.lb)
        .iter()
        .all(|p| tb.switch_xdp_attached(p).unwrap_or(false))
    {
        tb.attach_peer_pass(std::path::Path::new(agent_bin()), &tb.lb.clone())
            .expect("pass program on the LB's peers");
    }
    let path = path.to_string_lossy().into_owned();
    let mut args = vec!["-f", path.as_str(), "--xdp-mode", "native", "--stats-interval", "0"];
    args.extend_from_slice(extra);
    if !extra.contains(&"-i") {
        args.extend_from_slice(&["-i", "eth0"]);
    }
    let mut agent = Agent::start(tb, &args);
    agent.wait_for("balancing", Duration::from_secs(30));
    agent
}

/// The testbed's usual haproxy.cfg: one frontend on the LB's address, port
/// 80, over every backend's nginx; `server_opts` ends each server line
/// (say "check inter 2000 fall 2 rise 2").
pub fn web_config(tb: &Testbed, server_opts: &str) -> String {
    let mut s = format!(
        "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend web\n    bind {}:80\n    default_backend pool\n\nbackend pool\n",
        tb.lb.v4()
    );
    for b in &tb.backends {
        s.push_str(&format!("    server {} {}:80 {server_opts}\n", b.name, b.v4()));
    }
    s
}

/// Writes `cfg` as the testbed's haproxy.cfg; returns its path.
pub fn write_config(tb: &Testbed, cfg: &str) -> String {
    let path = tb.dir().join("haproxy.cfg");
    std::fs::write(&path, cfg).expect("writing haproxy.cfg");
    path.to_string_lossy().into_owned()
}

/// The agent on `cfg` with its default flags (as a user starts it) on the
/// LB's eth0; returns once it is balancing.
pub fn start_default(tb: &Testbed, cfg: &str) -> Agent {
    let path = write_config(tb, cfg);
    let mut agent = Agent::start(tb, &["-f", &path, "-i", "eth0", "--stats-interval", "0"]);
    agent.wait_for("balancing", Duration::from_secs(30));
    agent
}

/// What a wrk run reported.
pub struct Wrk {
    pub rate: f64,
    /// The counts of wrk's "Socket errors" line (0 without one).
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
    /// Its whole output.
    pub text: String,
}

impl Wrk {
    pub fn socket_errors(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout
    }
}

/// One bounded wrk run of `Connection: close` requests to `url` from the
/// client, as a user runs it: `threads` threads, 32 connections, 2 s timeout.
pub fn wrk_close(tb: &Testbed, url: &str, secs: u64, threads: u32) -> Wrk {
    let out = tb
        .command(&tb.client, "wrk")
        .args([
            &format!("-t{threads}"),
            "-c32",
            &format!("-d{secs}s"),
            "--timeout",
            "2s",
            "-H",
            "Connection: close",
            url,
        ])
        .output_timeout(Duration::from_secs(secs + 30))
        .expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output: {text}"));
    // "  Socket errors: connect 0, read 1, write 0, timeout 0"
    let errors = text.lines().find(|l| l.contains("Socket errors")).unwrap_or_default();
    let field = |key: &str| -> u64 {
        errors
            .split(key)
            .nth(1)
            .and_then(|r| r.trim().split([',', ' ']).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Wrk {
        rate,
        connect: field("connect"),
        read: field("read"),
        write: field("write"),
        timeout: field("timeout"),
        text,
    }
}
