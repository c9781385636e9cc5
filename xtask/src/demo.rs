//! `cargo xtask run`: the demo on an embedded default, or the agent on a real
//! interface with `cargo xtask run -- -f my.cfg --iface eth1`.
use std::{
    collections::BTreeMap,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::Args;
use lbxdp_testbed::{Layout, Testbed, Topology};

use crate::{
    agent::{self, Agent, AgentRun, curl, haproxy_cfg},
    build::{self, BuildArgs},
    util::{self, step},
};

#[derive(Args, Default)]
pub struct RunArgs {
    /// The scale-out demo instead: a router doing ECMP over three LB nodes
    /// (bird2, direct server return), one of which stops.
    #[arg(long)]
    pub scale_out: bool,
    /// Arguments for lbxdp-agent (after `--`). With none, run the namespace demo.
    #[arg(last = true)]
    pub agent_args: Vec<String>,
}

const BACKENDS: usize = 3;
const PINGS: u32 = 3;
const CURLS: u32 = 30;

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    if args.scale_out && !args.agent_args.is_empty() {
        bail!("--scale-out runs a namespace demo of its own: it takes no agent arguments");
    }
    let agent = build::build(&BuildArgs::default())?;
    if args.scale_out {
        return crate::scale_out::run(&agent);
    }
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
        default_offloads: false,
    })?;
    let vip = tb.lb.v4();
    println!("    namespaces {}-*: client {}, lb {vip}", tb.prefix(), tb.client.v4());
    for b in &tb.backends {
        println!("    {} {} (nginx)", b.name, b.v4());
    }

    let cfg = tb.dir().join("haproxy.cfg");
    let sock = tb.dir().join("stats.sock");
    let text = demo_cfg(&tb, &sock.display().to_string());
    std::fs::write(&cfg, &text).context("writing haproxy.cfg")?;
    println!("    config {}:\n{}", cfg.display(), indent(&text));

    step("demo: an XDP pass program on the bridge port facing the lb (native XDP_TX into a veth needs one)");
    let mut tb = tb;
    tb.attach_peer_pass(&agent, &tb.lb.clone())?;

    step("demo: lbxdp-agent on the lb's eth0");
    let agent_bin = agent;
    let mut agent = Agent::start(
        &tb,
        AgentRun {
            bin: &agent_bin,
            cfg: &cfg,
            args: &[],
            report: tb.dir().join("agent-report.json"),
            log: None,
        },
    )?;

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
    println!(
        "    curl http://{vip}/ x{CURLS} (through XDP) -> {:?}",
        spread(&tb, CURLS)
    );

    let web2 = tb.backends[1].clone();
    step("demo: web2's nginx stops; its health checks fail and it leaves the Maglev table");
    let stopped = Instant::now();
    tb.stop_nginx(&web2, 80)?;
    let seen = wait_for_spread(&tb, |a| {
        !a.contains_key("web2") && !a.keys().any(|k| k.starts_with("error"))
    })?;
    println!(
        "    {:.1} s after the stop: curl x{SAMPLE} -> {seen:?}",
        stopped.elapsed().as_secs_f64()
    );
    step("demo: web2's nginx starts again; two passing checks bring it back");
    let started = Instant::now();
    tb.start_nginx(&web2, "web2", 80)?;
    let seen = wait_for_spread(&tb, |a| a.contains_key("web2"))?;
    println!(
        "    {:.1} s after the start: curl x{SAMPLE} -> {seen:?}",
        started.elapsed().as_secs_f64()
    );

    step("demo: the runtime API, as HAProxy's users read it");
    let page = format!("http://{vip}:{STATS_PORT}/stats");
    let html = curl(&tb, &page)?;
    println!(
        "    curl {page} (from the client) -> {} bytes of HTML, {} server rows",
        html.len(),
        tb.backends.iter().filter(|b| html.contains(b.name.as_str())).count()
    );
    let metrics = curl(&tb, &format!("http://{vip}:{STATS_PORT}/metrics"))?;
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("haproxy_server_status"))
        .take(6)
    {
        println!("    /metrics: {line}");
    }
    let stat = socat(&sock, "show stat")?;
    println!("    echo 'show stat' | socat - UNIX-CONNECT:{}", sock.display());
    for line in stat.lines() {
        println!("      {line}");
    }
    println!(
        "    the stats page: {page} (from the client namespace {}-client)",
        tb.prefix()
    );

    step("demo: seamless upgrade, as `haproxy -sf`: a new agent takes over under wrk load");
    let old_pid = agent.pid().context("the agent is not running")?.to_string();
    let url = format!("http://{vip}/");
    let (wrk, new_agent) = std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            tb.command(&tb.client, "wrk")
                .args([
                    "-t1",
                    "-c32",
                    "-d6s",
                    "--timeout",
                    "2s",
                    "-H",
                    "Connection: close",
                    &url,
                ])
                .output_timeout(Duration::from_secs(30))
        });
        std::thread::sleep(Duration::from_secs(2));
        let new_agent = Agent::start_until(
            &tb,
            AgentRun {
                bin: &agent_bin,
                cfg: &cfg,
                args: &["-sf", &old_pid],
                report: tb.dir().join("agent-report-new.json"),
                log: Some(tb.dir().join("agent-new.log")),
            },
            agent::Ready::LogLine("balancing"),
        );
        let wrk = load.join().map_err(|_| anyhow::anyhow!("the wrk thread panicked"));
        (wrk, new_agent)
    });
    let mut new_agent = new_agent?;
    let wrk = wrk??;
    let text = String::from_utf8_lossy(&wrk.stdout);
    let errors = text
        .lines()
        .find(|l| l.contains("Socket errors"))
        .unwrap_or("  Socket errors: none");
    let requests = text.lines().find(|l| l.contains("requests in")).unwrap_or_default();
    let status = agent.wait_exit(Duration::from_secs(10))?;
    println!("    lbxdp-agent -f {} -i eth0 -sf {old_pid}", cfg.display());
    println!("    wrk across the upgrade:{requests}; {}", errors.trim());
    println!(
        "    the old agent (pid {old_pid}) exited with {status}, leaving the datapath to pid {}",
        new_agent.pid().unwrap_or_default()
    );
    let mut agent = {
        new_agent.check_running()?;
        new_agent
    };

    step("demo: stopping the agent (SIGTERM)");
    let (status, report) = agent.stop()?;
    println!(
        "    agent exited with {status}; XDP still attached: {}",
        tb.xdp_attached(&tb.lb, "eth0")?
    );
    let report = agent::parse_report(&report)?;
    println!("    XDP mode: {}", report["mode"]);
    println!("    per-server counters:");
    agent::print_servers(&report);
    println!("    frontends: {}", report["frontends"]);
    println!("    per-protocol counters on eth0: {}", report["counters"]);
    step("demo: done; tearing the testbed down");
    Ok(())
}

/// Requests per sample while waiting for the health checks.
const SAMPLE: u32 = 12;

/// `n` requests to the VIP on new connections, tallied by answer.
fn spread(tb: &Testbed, n: u32) -> BTreeMap<String, u32> {
    let mut answers = BTreeMap::new();
    for _ in 0..n {
        let who = curl(tb, &format!("http://{}/", tb.lb.v4())).unwrap_or_else(|e| format!("error: {e}"));
        *answers.entry(who.trim().to_string()).or_default() += 1;
    }
    answers
}

/// Samples until `done` holds (bounded: the seed's checks need up to 2 x 2 s).
fn wait_for_spread(
    tb: &Testbed,
    done: impl Fn(&BTreeMap<String, u32>) -> bool,
) -> anyhow::Result<BTreeMap<String, u32>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = spread(tb, SAMPLE);
        if done(&a) {
            return Ok(a);
        }
        if Instant::now() > deadline {
            bail!("the health checks did not act within 20 s: last sample {a:?}");
        }
    }
}

/// Where the demo's stats page listens on the LB.
const STATS_PORT: u16 = 8404;

/// The demo's haproxy.cfg: the balanced web frontend, a stats socket, and a
/// stats page with the Prometheus exporter, as an HAProxy user writes them.
fn demo_cfg(tb: &Testbed, sock: &str) -> String {
    let mut s = haproxy_cfg(tb).replacen(
        "global\n",
        &format!("global\n    stats socket {sock} mode 600 level admin\n"),
        1,
    );
    s.push_str(&format!(
        "\nfrontend stats\n    mode http\n    bind {}:{STATS_PORT}\n    stats enable\n    stats uri /stats\n    \
         stats refresh 5s\n    stats admin if TRUE\n    \
         http-request use-service prometheus-exporter if {{ path /metrics }}\n",
        tb.lb.v4()
    ));
    s
}

/// One command on the stats socket with socat, as HAProxy's users script it.
pub fn socat(sock: &std::path::Path, command: &str) -> anyhow::Result<String> {
    use std::io::Write as _;
    let mut child = Command::new("timeout")
        .args(["5", "socat", "-", &format!("UNIX-CONNECT:{}", sock.display())])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting socat")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(format!("{command}\n").as_bytes())?;
    }
    let out = child.wait_with_output().context("waiting for socat")?;
    if !out.status.success() {
        bail!("socat {}: {}", sock.display(), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("      {l}")).collect::<Vec<_>>().join("\n")
}
