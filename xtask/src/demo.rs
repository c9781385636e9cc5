//! `cargo xtask run`: the demo on an embedded default, or the agent on a real
//! interface with `cargo xtask run -- -f my.cfg --iface eth1`.
use std::{
    fs::File,
    io::Read as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::Args;
use lbxdp_testbed::{Layout, Testbed, Topology};

use crate::{
    build::{self, BuildArgs},
    util::{self, step},
};

#[derive(Args, Default)]
pub struct RunArgs {
    /// Arguments for lbxdp-agent (after `--`). With none, run the namespace demo.
    #[arg(last = true)]
    pub agent_args: Vec<String>,
}

const BACKENDS: usize = 3;
const PINGS: u32 = 3;
const CURLS: u32 = 30;

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let agent = build::build(&BuildArgs::default())?;
    if !args.agent_args.is_empty() {
        // The "Linux NICs" use: the agent in this namespace, on the interface the
        // user names. Ctrl-C reaches the agent too (same process group).
        step(&format!("run: {} {}", agent.display(), args.agent_args.join(" ")));
        let status = Command::new(&agent)
            .args(&args.agent_args)
            .status()
            .context("starting lbxdp-agent")?;
        if !status.success() {
            bail!("lbxdp-agent exited with {status}");
        }
        return Ok(());
    }
    if !util::is_root() {
        bail!("the demo builds network namespaces and loads XDP: run it as root (sudo cargo xtask run)");
    }

    step(&format!(
        "demo: testbed (client, lb, {BACKENDS} nginx backends on one bridge)"
    ));
    let tb = Testbed::build(&Topology {
        layout: Layout::OneArm,
        backends: BACKENDS,
        nginx: true,
    })?;
    let vip = tb.lb.v4();
    println!("    namespaces {}-*: client {}, lb {vip}", tb.prefix(), tb.client.v4());
    for b in &tb.backends {
        println!("    {} {} (nginx)", b.name, b.v4());
    }

    let cfg = tb.dir().join("haproxy.cfg");
    std::fs::write(&cfg, haproxy_cfg(&tb)).context("writing haproxy.cfg")?;
    println!("    config {}:\n{}", cfg.display(), indent(&haproxy_cfg(&tb)));

    step("demo: an XDP pass program on the bridge port facing the lb (native XDP_TX into a veth needs one)");
    let mut tb = tb;
    tb.attach_peer_pass(&agent, &tb.lb.clone())?;

    step("demo: lbxdp-agent on the lb's eth0");
    let report_path = tb.dir().join("agent-report.json");
    let child = tb
        .command(&tb.lb, &agent.to_string_lossy())
        .arg("-f")
        .arg(cfg.to_string_lossy().as_ref())
        .args(["-i", "eth0"])
        .stdout(Stdio::from(File::create(&report_path)?))
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut agent = AgentGuard(Some(child));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !tb.xdp_attached(&tb.lb, "eth0")? {
        if Instant::now() > deadline {
            bail!("the agent did not attach within 15 s");
        }
        if let Some(status) = agent.try_wait()? {
            bail!("the agent exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    step("demo: traffic from the client");
    for b in &tb.backends {
        let body = curl(&tb, &format!("http://{}/", b.v4()))?;
        println!("    curl {} (direct) -> {}", b.v4(), body.trim());
    }
    let out = tb
        .command(&tb.client, "ping")
        .args(["-q", "-c", &PINGS.to_string(), "-i", "0.2", "-W", "2", &vip.to_string()])
        .output_timeout(Duration::from_secs(15))?;
    println!(
        "    ping -c {PINGS} {vip} -> {}",
        if out.status.success() { "ok" } else { "failed" }
    );
    let mut answers: std::collections::BTreeMap<String, u32> = std::collections::BTreeMap::new();
    for _ in 0..CURLS {
        let who = curl(&tb, &format!("http://{vip}/")).unwrap_or_else(|e| format!("error: {e}"));
        *answers.entry(who.trim().to_string()).or_default() += 1;
    }
    println!("    curl http://{vip}/ x{CURLS} (through XDP) -> {answers:?}");

    step("demo: stopping the agent (SIGTERM)");
    let status = agent.terminate()?;
    let mut report = String::new();
    File::open(&report_path)?.read_to_string(&mut report)?;
    println!(
        "    agent exited with {status}; XDP still attached: {}",
        tb.xdp_attached(&tb.lb, "eth0")?
    );
    let report: serde_json::Value = serde_json::from_str(report.trim()).context("the agent's JSON report")?;
    println!("    XDP mode: {}", report["mode"]);
    println!("    per-server counters:");
    println!(
        "      {:<8} {:>20} {:>8} {:>10} {:>9} {:>10} {:>6}",
        "server", "address", "pkts in", "bytes in", "pkts out", "bytes out", "flows"
    );
    for s in report["servers"].as_array().into_iter().flatten() {
        println!(
            "      {:<8} {:>20} {:>8} {:>10} {:>9} {:>10} {:>6}",
            s["name"].as_str().unwrap_or("?"),
            s["addr"].as_str().unwrap_or("?"),
            s["packets_in"],
            s["bytes_in"],
            s["packets_out"],
            s["bytes_out"],
            s["new_flows"]
        );
    }
    println!("    frontends: {}", report["frontends"]);
    println!("    per-protocol counters on eth0: {}", report["counters"]);
    step("demo: done; tearing the testbed down");
    Ok(())
}

fn curl(tb: &Testbed, url: &str) -> anyhow::Result<String> {
    let out = tb
        .command(&tb.client, "curl")
        .args(["-sS", "--max-time", "3", url])
        .output_timeout(Duration::from_secs(10))?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The seed's shape: one TCP frontend on port 80, round robin over checked servers.
fn haproxy_cfg(tb: &Testbed) -> String {
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

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("      {l}")).collect::<Vec<_>>().join("\n")
}

/// Kills the agent by pid if the demo fails half-way.
struct AgentGuard(Option<std::process::Child>);

impl AgentGuard {
    fn try_wait(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        match self.0.as_mut() {
            Some(c) => Ok(c.try_wait()?),
            None => Ok(None),
        }
    }

    fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let mut child = self.0.take().context("agent already stopped")?;
        let (status, killed) = lbxdp_testbed::terminate(&mut child, Duration::from_secs(10))?;
        if killed {
            bail!("the agent ignored SIGTERM for 10 s and was killed");
        }
        Ok(status)
    }
}

impl Drop for AgentGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
