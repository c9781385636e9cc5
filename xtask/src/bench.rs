//! `cargo xtask bench`: what a request costs through each way to the servers,
//! measured side by side in one run: straight to one backend (`direct`), the
//! agent's XDP datapath (`xdp-native`), the agent's userspace TCP proxy
//! (`proxy`), and HAProxy itself in `mode tcp` on the same haproxy.cfg
//! (`haproxy`).
//!
//! First the Maglev rebuild micro-benchmark (`cargo bench --bench maglev`).
//! Then one namespace testbed (one-arm, 3 nginx backends, an iperf3 server on
//! web1) serves every scenario; wrk and iperf3 run in the client's namespace.
//! The scenarios are interleaved in rounds (keep-alive over every path, then
//! `Connection: close` over every path, then one iperf3 stream over every
//! path; the order of the paths rotates every round) so that the machine's
//! noise hits them all alike, and the results are medians over rounds and
//! ratios of medians. Every run through the VIP has its own, freshly started
//! balancer (agent or haproxy) that must answer a request before the run and
//! is stopped after it, so each run has its own counters from the agent's
//! JSON report.
use std::{
    fs::File,
    io::Read,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, bail};
use clap::Args;
use lbxdp_testbed::{Layout, Testbed, Topology};
use serde_json::{Value, json};

use crate::{
    agent::{self, Agent, AgentRun, Ready},
    build::{self, BuildArgs},
    util::{self, step},
};

#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub duration: u64,
    /// wrk's open connections (-c).
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub connections: u32,
    /// wrk's threads (-t).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub threads: u32,
    /// Rounds; each runs every scenario once.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub rounds: u32,
    /// wrk's per-request timeout (--timeout), in seconds.
    #[arg(long, default_value_t = 2, value_name = "SECS")]
    pub timeout: u64,
    /// The paths to measure, comma-separated: direct, xdp (native XDP),
    /// xdp-generic, proxy (the agent's userspace proxy), haproxy.
    #[arg(long, default_value = "direct,xdp,proxy,haproxy", value_name = "LIST")]
    pub paths: String,
    /// Also measure the agent in generic (skb) XDP mode (as `--paths ...,xdp-generic`).
    #[arg(long)]
    pub generic: bool,
    /// Seconds per iperf3 run (one TCP stream); 0 skips iperf3.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub iperf_secs: u64,
    /// Skip the Maglev rebuild micro-benchmark.
    #[arg(long)]
    pub no_maglev: bool,
    /// Where to write the results as JSON [default: target/bench/latest.json].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

impl BenchArgs {
    fn check(&self) -> anyhow::Result<Vec<Route>> {
        if !(1..=300).contains(&self.duration) {
            bail!("--duration is 1..=300 seconds, not {}", self.duration);
        }
        if !(1..=20).contains(&self.rounds) {
            bail!("--rounds is 1..=20, not {}", self.rounds);
        }
        if !(1..=64).contains(&self.threads) {
            bail!("--threads is 1..=64, not {}", self.threads);
        }
        if self.connections < self.threads || self.connections > 10_000 {
            bail!(
                "--connections is {}..=10000 (at least one per thread), not {}",
                self.threads,
                self.connections
            );
        }
        if !(1..=60).contains(&self.timeout) {
            bail!("--timeout is 1..=60 seconds, not {}", self.timeout);
        }
        if self.iperf_secs > 60 {
            bail!("--iperf-secs is 0..=60 seconds, not {}", self.iperf_secs);
        }
        parse_paths(&self.paths, self.generic)
    }
}

const BACKENDS: usize = 3;
/// Above this machine-wide CPU use (%) just before a run, warn about noise.
const BUSY_BEFORE: f64 = 15.0;
/// Above this CPU use (% of all cores) by processes outside the testbed during a run, warn about noise.
const OTHERS_DURING: f64 = 5.0;
/// The iperf3 server's port on web1, and the VIP's second frontend.
const IPERF_PORT: u16 = 5201;
/// How long a balancer has to answer its first request.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// How long haproxy may take to stop after SIGTERM.
const HAPROXY_STOP_WITHIN: Duration = Duration::from_secs(5);
/// The Maglev micro-benchmark, compile included.
const MAGLEV_WITHIN: Duration = Duration::from_secs(600);

/// Which way the traffic goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// Straight to one backend (web1), no balancer on the way.
    Direct,
    /// To the VIP, through the agent in native XDP mode.
    XdpNative,
    /// To the VIP, through the agent in generic (skb) XDP mode.
    XdpGeneric,
    /// To the VIP, through the agent's userspace TCP proxy (`--mode proxy`).
    Proxy,
    /// To the VIP, through HAProxy (`haproxy -db -f` the same haproxy.cfg).
    Haproxy,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::XdpNative => "xdp-native",
            Self::XdpGeneric => "xdp-generic",
            Self::Proxy => "proxy",
            Self::Haproxy => "haproxy",
        }
    }

    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "direct" => Self::Direct,
            "xdp" | "xdp-native" | "native" => Self::XdpNative,
            "xdp-generic" | "generic" => Self::XdpGeneric,
            "proxy" => Self::Proxy,
            "haproxy" => Self::Haproxy,
            _ => bail!("unknown path {s:?} (direct, xdp, xdp-generic, proxy, haproxy)"),
        })
    }
}

/// `--paths` (and `--generic`), in order, without repeats.
fn parse_paths(list: &str, generic: bool) -> anyhow::Result<Vec<Route>> {
    let mut paths = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let path = Route::parse(word).context("--paths")?;
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    if generic && !paths.contains(&Route::XdpGeneric) {
        paths.push(Route::XdpGeneric);
    }
    if paths.is_empty() {
        bail!("--paths names no path");
    }
    Ok(paths)
}

/// The paths in the order of a round: rotated by one every round, so that no
/// path always runs first (after a quiet pause) or last.
fn round_order(paths: &[Route], round: u32) -> Vec<Route> {
    let mut order = paths.to_vec();
    if !order.is_empty() {
        let n = (round.saturating_sub(1) as usize) % order.len();
        order.rotate_left(n);
    }
    order
}

/// Whether wrk keeps its connections or opens one per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conn {
    KeepAlive,
    Close,
}

impl Conn {
    const ALL: [Self; 2] = [Self::KeepAlive, Self::Close];

    fn name(self) -> &'static str {
        match self {
            Self::KeepAlive => "keepalive",
            Self::Close => "close",
        }
    }
}

/// What wrk printed, parsed.
#[derive(Clone, Debug, Default, PartialEq)]
struct Wrk {
    rps: f64,
    requests: u64,
    lat_avg_ms: f64,
    lat_p99_ms: f64,
    /// connect, read, write, timeout.
    socket_errors: [u64; 4],
    non_2xx: u64,
}

impl Wrk {
    fn errors(&self) -> u64 {
        self.socket_errors.iter().sum::<u64>() + self.non_2xx
    }
}

/// What iperf3 -J printed, parsed.
#[derive(Clone, Debug, Default, PartialEq)]
struct Iperf {
    /// end.sum_received.bits_per_second.
    bps: f64,
    /// end.sum_sent.retransmits.
    retransmits: u64,
    /// The client's (sender's) and the server's (receiver's) CPU use, in %.
    sender_cpu: f64,
    receiver_cpu: f64,
}

/// The machine's CPUs around one run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Cpu {
    /// Busy in the half second before the run (others' load), in % of all cores.
    before: f64,
    /// Busy during the run, in % of all cores, and softirq alone.
    busy: f64,
    softirq: f64,
    /// User processes outside this testbed during the run (someone's build or
    /// tests), in % of all cores.
    others: f64,
    /// The processes in the LB's namespace (the agent, haproxy) during the run, in cores.
    lb_cores: f64,
}

impl Cpu {
    /// Whether something outside the benchmark competed for the CPUs.
    fn noisy(&self) -> bool {
        self.before > BUSY_BEFORE || self.others > OTHERS_DURING
    }

    /// For the progress lines.
    fn note(&self, path: Route) -> String {
        let mut s = format!("cpu {:>3.0}% (softirq {:>2.0}%", self.busy, self.softirq);
        if path != Route::Direct {
            s.push_str(&format!(", lb {:.2} cores", self.lb_cores));
        }
        if self.others > OTHERS_DURING {
            s.push_str(&format!(", OTHERS {:.0}%", self.others));
        }
        s.push(')');
        s
    }
}

/// What one run measured.
enum Measured {
    Wrk(Conn, Wrk),
    Iperf(Iperf),
}

/// One bounded run (wrk or iperf3) and what surrounded it.
struct Run {
    round: u32,
    path: Route,
    measured: Measured,
    cpu: Cpu,
    /// The balancer's JSON report (the agent's; for haproxy, its log's warnings).
    report: Option<Value>,
}

impl Run {
    fn wrk(&self, conn: Conn) -> Option<&Wrk> {
        match &self.measured {
            Measured::Wrk(c, w) if *c == conn => Some(w),
            _ => None,
        }
    }

    fn iperf(&self) -> Option<&Iperf> {
        match &self.measured {
            Measured::Iperf(i) => Some(i),
            Measured::Wrk(..) => None,
        }
    }
}

pub fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    let paths = args.check()?;
    if !util::is_root() {
        bail!("the benchmark builds network namespaces and loads XDP: run it as root (sudo cargo xtask bench)");
    }
    let started = Instant::now();
    let bin = build::build(&BuildArgs::default())?;

    let maglev = if args.no_maglev { Vec::new() } else { maglev_bench()? };

    step(&format!(
        "bench: testbed (client, lb, {BACKENDS} nginx backends on one bridge; iperf3 server on web1:{IPERF_PORT})"
    ));
    let mut tb = Testbed::build(&Topology {
        layout: Layout::OneArm,
        backends: BACKENDS,
        nginx: true,
    })?;
    let cfg = tb.dir().join("haproxy.cfg");
    std::fs::write(&cfg, agent::haproxy_cfg_with_iperf(&tb, IPERF_PORT)).context("writing haproxy.cfg")?;
    tb.attach_peer_pass(&bin, &tb.lb.clone())?;
    tune_client(&tb)?;
    if args.iperf_secs > 0 {
        start_iperf_server(&mut tb)?;
    }

    let wrk_line = format!(
        "wrk -t{} -c{} -d{}s --timeout {}s --latency",
        args.threads, args.connections, args.duration, args.timeout
    );
    let iperf_line = format!("iperf3 -c TARGET -p {IPERF_PORT} -t {} -J", args.iperf_secs);
    let wrk_runs = args.rounds as usize * Conn::ALL.len() * paths.len();
    let iperf_runs = if args.iperf_secs > 0 {
        args.rounds as usize * paths.len()
    } else {
        0
    };
    step(&format!(
        "bench: {wrk_runs} runs of `{wrk_line}`{} from the client over {} ({} round(s); direct = {}, the rest = VIP {}), ~{} s",
        if iperf_runs > 0 {
            format!(" and {iperf_runs} of `{iperf_line}`")
        } else {
            String::new()
        },
        paths.iter().map(|p| p.name()).collect::<Vec<_>>().join(", "),
        args.rounds,
        tb.backends[0].v4(),
        tb.lb.v4(),
        wrk_runs as u64 * (args.duration + 2) + iperf_runs as u64 * (args.iperf_secs + 2)
    ));
    let bed = Bed {
        tb: &tb,
        bin: &bin,
        cfg: &cfg,
        args,
        ns: Namespaces::of(&tb)?,
    };
    let mut runs = Vec::with_capacity(wrk_runs + iperf_runs);
    for round in 1..=args.rounds {
        let order = round_order(&paths, round);
        for conn in Conn::ALL {
            for &path in &order {
                let run = run_wrk(&bed, round, path, conn)
                    .with_context(|| format!("round {round}, {} {}", conn.name(), path.name()))?;
                let w = run.wrk(conn).cloned().unwrap_or_default();
                println!(
                    "    round {round}/{} {:<9} {:<11} {:>9.0} req/s  avg {:>8}  p99 {:>8}  errors {:>5}  {}{}",
                    args.rounds,
                    conn.name(),
                    path.name(),
                    w.rps,
                    ms(w.lat_avg_ms),
                    ms(w.lat_p99_ms),
                    w.errors(),
                    run.cpu.note(path),
                    run.report.as_ref().map(report_note).unwrap_or_default()
                );
                note_busy(&run);
                runs.push(run);
            }
        }
        if args.iperf_secs > 0 {
            for &path in &order {
                let run =
                    run_iperf(&bed, round, path).with_context(|| format!("round {round}, iperf3 {}", path.name()))?;
                let i = run.iperf().cloned().unwrap_or_default();
                println!(
                    "    round {round}/{} {:<9} {:<11} {:>9.2} Gbit/s  retransmits {:>5}  iperf3 cpu: sender {:>3.0}% receiver {:>3.0}%  {}{}",
                    args.rounds,
                    "iperf3",
                    path.name(),
                    i.bps / 1e9,
                    i.retransmits,
                    i.sender_cpu,
                    i.receiver_cpu,
                    run.cpu.note(path),
                    run.report.as_ref().map(report_note).unwrap_or_default()
                );
                note_busy(&run);
                runs.push(run);
            }
        }
    }

    let results = summarize(args, &wrk_line, &iperf_line, &paths, &runs, &maglev, started.elapsed());
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| util::target_dir().join("bench/latest.json"));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&results)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("    results: {}", out.display());
    step(&format!(
        "bench: done in {:.0?}; tearing the testbed down",
        started.elapsed()
    ));
    Ok(())
}

fn note_busy(run: &Run) {
    if run.cpu.before > BUSY_BEFORE {
        println!(
            "      (this run started with the CPUs {:.0}% busy: something else is running; expect noise)",
            run.cpu.before
        );
    }
    if run.cpu.others > OTHERS_DURING {
        println!(
            "      (processes outside the testbed used {:.0}% of the CPUs during this run; expect noise)",
            run.cpu.others
        );
    }
}

/// `cargo bench -p lbxdp-agent --bench maglev` (bounded), echoing and
/// returning the lines it printed; cargo's own output shows only on failure.
fn maglev_bench() -> anyhow::Result<Vec<String>> {
    step("bench: Maglev rebuild micro-benchmark (cargo bench -p lbxdp-agent --bench maglev)");
    let mut cmd = util::cargo();
    cmd.args(["bench", "--locked", "-p", "lbxdp-agent", "--bench", "maglev"])
        .env("LBXDP_EBPF_OBJECT", build::ebpf_object())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    println!(
        "    $ LBXDP_EBPF_OBJECT={} {}",
        build::ebpf_object().display(),
        util::show(&cmd)
    );
    let t = Instant::now();
    let mut child = cmd.spawn().context("starting cargo bench")?;
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if t.elapsed() > MAGLEV_WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            bail!("cargo bench ran longer than {MAGLEV_WITHIN:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        String::from_utf8_lossy(&h.and_then(|h| h.join().ok()).unwrap_or_default()).into_owned()
    };
    let (stdout, stderr) = (join(stdout), join(stderr));
    if !status.success() {
        bail!("`{}` failed: {status}\n{stdout}{stderr}", util::show(&cmd));
    }
    let lines: Vec<String> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    for l in &lines {
        println!("    {l}");
    }
    println!("    [took {:.1?}, compile included]", t.elapsed());
    Ok(lines)
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// The client's kernel as a load generator's: wrk closes its end first through
/// a proxy (haproxy, the agent's proxy), so every such request leaves a
/// TIME_WAIT socket to the VIP on the client for 60 s. Without reuse, some
/// 14,000 of them made the next run to the VIP burn both cores in connect()'s
/// port search (the XDP `close` run fell from ~13k to ~2k req/s whenever it
/// followed the proxies' `close` runs). The same settings hold for every path.
const CLIENT_SYSCTLS: [(&str, &str); 2] = [
    ("net.ipv4.tcp_tw_reuse", "1"),
    ("net.ipv4.ip_local_port_range", "1024 65535"),
];

fn tune_client(tb: &Testbed) -> anyhow::Result<()> {
    let shown: Vec<String> = CLIENT_SYSCTLS.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("    client sysctls: {}", shown.join(", "));
    tb.in_netns(&tb.client, || {
        for (key, value) in CLIENT_SYSCTLS {
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            std::fs::write(&path, value).with_context(|| format!("sysctl {key}={value} in the client"))?;
        }
        Ok(())
    })
}

/// An iperf3 server on web1 for the whole bench, kept with the testbed (which
/// ends it); returns once it listens. No probe connects to it: a bare connect
/// is a broken test to iperf3. `--rcv-timeout` frees it from a dead client.
fn start_iperf_server(tb: &mut Testbed) -> anyhow::Result<()> {
    let web1 = tb.backends[0].clone();
    let log = File::create(tb.dir().join("iperf3-server.log")).context("creating the iperf3 log")?;
    let child = tb
        .command(&web1, "iperf3")
        .args(["-s", "-p", &IPERF_PORT.to_string(), "--rcv-timeout", "5000"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting iperf3 (`cargo xtask setup` installs it)")?;
    tb.adopt(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = tb
            .command(&web1, "ss")
            .args(["-Hltn", &format!("sport = :{IPERF_PORT}")])
            .output_timeout(Duration::from_secs(5))?;
        if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(tb.dir().join("iperf3-server.log")).unwrap_or_default();
            bail!("the iperf3 server on {} did not listen within 10 s:\n{log}", web1.name);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// HAProxy in the LB's namespace, in the foreground (`-db`); killed by pid if
/// the caller fails half-way.
struct Haproxy {
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

/// The balancer of one run: none (direct), the agent, or haproxy.
enum Lb {
    None,
    Agent(Agent),
    Haproxy(Haproxy),
}

impl Lb {
    /// Starts a fresh balancer for `path` (bounded: the agent until it is
    /// attached or listening; haproxy is only spawned, `wait_answers` follows).
    fn start(tb: &Testbed, bin: &Path, cfg: &Path, path: Route, tag: &str) -> anyhow::Result<Self> {
        let agent = |args: &[&str], ready: Ready<'_>| -> anyhow::Result<Self> {
            let run = AgentRun {
                bin,
                cfg,
                args,
                report: tb.dir().join(format!("agent-{tag}.json")),
                log: Some(tb.dir().join(format!("agent-{tag}.log"))),
            };
            Ok(Self::Agent(Agent::start_until(tb, run, ready)?))
        };
        match path {
            Route::Direct => Ok(Self::None),
            Route::XdpNative => agent(&["--mode", "xdp", "--xdp-mode", "native"], Ready::XdpAttached),
            Route::XdpGeneric => agent(&["--mode", "xdp", "--xdp-mode", "generic"], Ready::XdpAttached),
            Route::Proxy => agent(&["--mode", "proxy"], Ready::LogLine("with the userspace proxy")),
            Route::Haproxy => Ok(Self::Haproxy(Haproxy::start(
                tb,
                cfg,
                tb.dir().join(format!("haproxy-{tag}.log")),
            )?)),
        }
    }

    fn check_running(&mut self) -> anyhow::Result<()> {
        match self {
            Self::None => Ok(()),
            Self::Agent(a) => a.check_running(),
            Self::Haproxy(h) => h.check_running(),
        }
    }

    /// Stops the balancer and returns its report.
    fn stop(&mut self) -> anyhow::Result<Option<Value>> {
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
        }
    }
}

/// The testbed's namespaces as /proc/PID/ns/net links show them: the LB's,
/// and all of them.
struct Namespaces {
    lb: String,
    all: Vec<String>,
}

impl Namespaces {
    fn of(tb: &Testbed) -> anyhow::Result<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let link = |name: &str| -> anyhow::Result<String> {
            let path = Path::new("/run/netns").join(name);
            let ino = std::fs::metadata(&path)
                .with_context(|| format!("stat {}", path.display()))?
                .ino();
            Ok(format!("net:[{ino}]"))
        };
        Ok(Self {
            lb: link(&tb.lb.netns)?,
            all: tb.namespaces().iter().map(|n| link(n)).collect::<anyhow::Result<_>>()?,
        })
    }
}

/// Runs `f` and measures the machine's CPU around it.
fn with_cpu<T>(ns: &Namespaces, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, Cpu)> {
    // The machine before the run: what else (builds, tests) is using the CPUs.
    let idle_from = cpu_times()?;
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_times()?;
    let procs_before = proc_times();
    let (cpu_before, _) = cpu_use(&idle_from, &before);
    let value = f()?;
    let procs_after = proc_times();
    let after = cpu_times()?;
    let (busy, softirq) = cpu_use(&before, &after);
    let total: u64 = (0..8)
        .map(|i| after.get(i).unwrap_or(&0).saturating_sub(*before.get(i).unwrap_or(&0)))
        .sum();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let (lb, others) = proc_delta(&procs_before, &procs_after, ns, std::process::id());
    let share = |ticks: u64| {
        if total == 0 {
            f64::NAN
        } else {
            ticks as f64 / total as f64
        }
    };
    Ok((
        value,
        Cpu {
            before: cpu_before,
            busy,
            softirq,
            others: 100.0 * share(others),
            lb_cores: cpus * share(lb),
        },
    ))
}

/// CPU ticks (user + system, reaped children's included) of every user-space
/// process by pid, with its network namespace link.
fn proc_times() -> std::collections::HashMap<u32, (String, u64)> {
    /// /proc/PID/stat's flags: a kernel thread.
    const PF_KTHREAD: u64 = 0x0020_0000;
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name in parentheses: field 3 (state) is [0].
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<u64> = rest
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        // flags is field 9, utime..cstime are fields 14..=17.
        if f.len() < 14 || f[5] & PF_KTHREAD != 0 {
            continue;
        }
        let ticks = f[10..14].iter().sum();
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/net"))
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.insert(pid, (ns, ticks));
    }
    out
}

/// Ticks between two snapshots: (processes in the LB's namespace, processes
/// outside the testbed but this one). Processes that started in between count
/// whole; ones that ended in between count in their parent's reaped time.
fn proc_delta(
    before: &std::collections::HashMap<u32, (String, u64)>,
    after: &std::collections::HashMap<u32, (String, u64)>,
    ns: &Namespaces,
    me: u32,
) -> (u64, u64) {
    let (mut lb, mut others) = (0, 0);
    for (pid, (link, ticks)) in after {
        let d = ticks.saturating_sub(before.get(pid).map_or(0, |(_, t)| *t));
        if *link == ns.lb {
            lb += d;
        } else if *pid != me && !ns.all.contains(link) {
            others += d;
        }
    }
    (lb, others)
}

/// What every run needs.
struct Bed<'a> {
    tb: &'a Testbed,
    bin: &'a Path,
    cfg: &'a Path,
    args: &'a BenchArgs,
    ns: Namespaces,
}

/// One bounded wrk run of a scenario, with a fresh balancer around it.
fn run_wrk(bed: &Bed<'_>, round: u32, path: Route, conn: Conn) -> anyhow::Result<Run> {
    let Bed { tb, bin, cfg, args, ns } = bed;
    let tag = format!("r{round}-{}-{}", conn.name(), path.name());
    let url = match path {
        Route::Direct => format!("http://{}/", tb.backends[0].v4()),
        _ => format!("http://{}/", tb.lb.v4()),
    };
    let mut lb = Lb::start(tb, bin, cfg, path, &tag)?;
    // One answer first: a broken path fails here in seconds, not after a whole
    // run. The agent attaches before it fills its maps, so the VIP may refuse
    // connections for a moment after the attach.
    wait_answers(tb, &url, ANSWER_WITHIN, &mut lb)?;

    let mut cmd = tb.command(&tb.client, "wrk");
    cmd.arg(format!("-t{}", args.threads))
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{}s", args.duration))
        .arg("--timeout")
        .arg(format!("{}s", args.timeout))
        .arg("--latency");
    if conn == Conn::Close {
        cmd.args(["-H", "Connection: close"]);
    }
    cmd.arg(&url);
    let (out, cpu) = with_cpu(ns, || {
        cmd.output_timeout(Duration::from_secs(args.duration + args.timeout + 30))
            .context("running wrk (`cargo xtask setup` installs it)")
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "`{}` failed: {}\n{stdout}{}",
            cmd.show(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let wrk = parse_wrk(&stdout).with_context(|| format!("parsing wrk's output:\n{stdout}"))?;
    let report = lb.stop()?;
    Ok(Run {
        round,
        path,
        measured: Measured::Wrk(conn, wrk),
        cpu,
        report,
    })
}

/// One bounded iperf3 run (one TCP stream, client to server), with a fresh
/// balancer around it.
fn run_iperf(bed: &Bed<'_>, round: u32, path: Route) -> anyhow::Result<Run> {
    let Bed { tb, bin, cfg, args, ns } = bed;
    let tag = format!("r{round}-iperf3-{}", path.name());
    let target = match path {
        Route::Direct => tb.backends[0].v4(),
        _ => tb.lb.v4(),
    };
    let mut lb = Lb::start(tb, bin, cfg, path, &tag)?;
    // The balancer answers HTTP on the same VIP first: it is up, with both frontends.
    wait_answers(tb, &format!("http://{target}/"), ANSWER_WITHIN, &mut lb)?;
    let (iperf, cpu) = with_cpu(ns, || iperf_client(tb, target, args.iperf_secs))?;
    let report = lb.stop()?;
    Ok(Run {
        round,
        path,
        measured: Measured::Iperf(iperf),
        cpu,
        report,
    })
}

/// `iperf3 -c target -J` from the client (bounded). Errors before the test
/// started (refused, server still busy with the last one) are retried for a
/// few seconds; anything else fails.
fn iperf_client(tb: &Testbed, target: Ipv4Addr, secs: u64) -> anyhow::Result<Iperf> {
    let deadline = Instant::now() + ANSWER_WITHIN;
    loop {
        let mut cmd = tb.command(&tb.client, "iperf3");
        cmd.args(["-c", &target.to_string(), "-p", &IPERF_PORT.to_string()])
            .args(["-t", &secs.to_string(), "-J", "--connect-timeout", "3000"]);
        let out = cmd
            .output_timeout(Duration::from_secs(secs + 30))
            .context("running iperf3 (`cargo xtask setup` installs it)")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let why = match parse_iperf(&stdout) {
            Ok(i) if out.status.success() => return Ok(i),
            Ok(_) => format!("exit status {}", out.status),
            Err(e) => format!("{e:#}"),
        };
        let early = why.contains("unable to connect") || why.contains("busy");
        if !early || Instant::now() > deadline {
            bail!(
                "`{}` failed: {why}\n{}",
                cmd.show(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Parses `iperf3 -J` (client side).
fn parse_iperf(out: &str) -> anyhow::Result<Iperf> {
    let v: Value = serde_json::from_str(out.trim()).context("iperf3's JSON")?;
    if let Some(e) = v["error"].as_str() {
        bail!("iperf3: {e}");
    }
    let end = &v["end"];
    Ok(Iperf {
        bps: end["sum_received"]["bits_per_second"]
            .as_f64()
            .context("no end.sum_received.bits_per_second")?,
        retransmits: end["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
        sender_cpu: end["cpu_utilization_percent"]["host_total"]
            .as_f64()
            .unwrap_or(f64::NAN),
        receiver_cpu: end["cpu_utilization_percent"]["remote_total"]
            .as_f64()
            .unwrap_or(f64::NAN),
    })
}

/// Retries one GET from the client (bounded) until `url` answers; fails
/// early if the balancer exits.
fn wait_answers(tb: &Testbed, url: &str, within: Duration, lb: &mut Lb) -> anyhow::Result<()> {
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

/// Servers and their connections from a report: new flows (XDP) or sessions
/// (`stot`, proxy); servers of the iperf3 backend as `backend/name`.
fn server_counts(report: &Value) -> Vec<(String, u64)> {
    let key = |backend: &str, name: &str| {
        if backend.is_empty() || backend == "nginx-servers" {
            name.to_string()
        } else {
            format!("{backend}/{name}")
        }
    };
    if report["mode"] == "proxy" {
        report["proxy"]["backends"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|b| {
                let backend = b["name"].as_str().unwrap_or("");
                b["servers"].as_array().into_iter().flatten().map(move |s| {
                    (
                        key(backend, s["name"].as_str().unwrap_or("?")),
                        s["stot"].as_u64().unwrap_or(0),
                    )
                })
            })
            .collect()
    } else {
        report["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    key(s["backend"].as_str().unwrap_or(""), s["name"].as_str().unwrap_or("?")),
                    s["new_flows"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }
}

/// A one-line note on a run's balancer report, for the progress line.
fn report_note(report: &Value) -> String {
    let mode = report["mode"].as_str().unwrap_or("?");
    if mode == "haproxy" {
        let n = report["log_alerts_warnings"].as_array().map_or(0, Vec::len);
        return if n > 0 {
            format!("  haproxy: {n} ALERT/WARNING log line(s)")
        } else {
            String::new()
        };
    }
    let counts: Vec<String> = server_counts(report)
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    let mut note = format!(
        "  {} {}",
        if mode == "proxy" { "sessions" } else { "flows" },
        counts.join(" ")
    );
    let problems = problems(report);
    if problems.iter().any(|(_, n)| *n > 0) {
        let d: Vec<String> = problems
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        note.push_str(&format!(
            ", {} {}",
            if mode == "proxy" { "problems" } else { "DROPS" },
            d.join(" ")
        ));
    }
    note
}

const DROP_KINDS: [&str; 5] = [
    "drop_no_server",
    "drop_no_port",
    "drop_table_full",
    "drop_no_neigh",
    "passed",
];

/// The proxy's counters of trouble, as (name, where it is summed from).
const PROXY_SERVER_PROBLEMS: [&str; 5] = ["econ", "wretr", "cli_abrt", "srv_abrt", "killed"];
const PROXY_BACKEND_PROBLEMS: [&str; 2] = ["nosrv", "queue_timeouts"];
const PROXY_FRONTEND_PROBLEMS: [&str; 2] = ["denied", "accept_errors"];

/// A report's trouble counters: XDP frontends' drops (and passes), the
/// proxy's errors and aborts, haproxy's ALERT/WARNING log lines.
fn problems(report: &Value) -> Vec<(&'static str, u64)> {
    let sum = |list: &Value, k: &str| -> u64 {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|x| x[k].as_u64().unwrap_or(0))
            .sum()
    };
    match report["mode"].as_str() {
        Some("haproxy") => vec![(
            "log_alerts_warnings",
            report["log_alerts_warnings"].as_array().map_or(0, |a| a.len() as u64),
        )],
        Some("proxy") => {
            let p = &report["proxy"];
            let servers: Vec<Value> = p["backends"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|b| b["servers"].as_array().cloned().unwrap_or_default())
                .collect();
            let servers = Value::Array(servers);
            PROXY_SERVER_PROBLEMS
                .iter()
                .map(|&k| (k, sum(&servers, k)))
                .chain(PROXY_BACKEND_PROBLEMS.iter().map(|&k| (k, sum(&p["backends"], k))))
                .chain(PROXY_FRONTEND_PROBLEMS.iter().map(|&k| (k, sum(&p["frontends"], k))))
                .collect()
        }
        _ => DROP_KINDS.iter().map(|&k| (k, sum(&report["frontends"], k))).collect(),
    }
}

/// Medians of one path over the rounds.
struct PathSummary {
    path: Route,
    close_rps: f64,
    close_p99_ms: f64,
    keepalive_rps: f64,
    keepalive_p99_ms: f64,
    iperf_gbps: f64,
}

impl PathSummary {
    fn of(path: Route, runs: &[Run]) -> Self {
        let mine = || runs.iter().filter(move |r| r.path == path);
        let wrk = |conn: Conn, f: fn(&Wrk) -> f64| median(mine().filter_map(|r| r.wrk(conn)).map(f).collect());
        Self {
            path,
            close_rps: wrk(Conn::Close, |w| w.rps),
            close_p99_ms: wrk(Conn::Close, |w| w.lat_p99_ms),
            keepalive_rps: wrk(Conn::KeepAlive, |w| w.rps),
            keepalive_p99_ms: wrk(Conn::KeepAlive, |w| w.lat_p99_ms),
            iperf_gbps: median(mine().filter_map(Run::iperf).map(|i| i.bps / 1e9).collect()),
        }
    }

    fn json(&self) -> Value {
        json!({
            "path": self.path.name(),
            "close_rps": nan_null(self.close_rps),
            "close_p99_ms": nan_null(self.close_p99_ms),
            "keepalive_rps": nan_null(self.keepalive_rps),
            "keepalive_p99_ms": nan_null(self.keepalive_p99_ms),
            "iperf3_gbps": nan_null(self.iperf_gbps),
        })
    }
}

/// NaN (nothing measured) as JSON null.
fn nan_null(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

/// The ratios the comparison shows, numerator / denominator, where both were measured.
const RATIOS: [(Route, Route); 7] = [
    (Route::Proxy, Route::Haproxy),
    (Route::XdpNative, Route::Haproxy),
    (Route::XdpNative, Route::Direct),
    (Route::Proxy, Route::Direct),
    (Route::Haproxy, Route::Direct),
    (Route::XdpGeneric, Route::Direct),
    (Route::XdpNative, Route::Proxy),
];

/// Prints the summary tables and returns the JSON results.
fn summarize(
    args: &BenchArgs,
    wrk_line: &str,
    iperf_line: &str,
    paths: &[Route],
    runs: &[Run],
    maglev: &[String],
    took: Duration,
) -> Value {
    step(&format!(
        "bench: results ({wrk_line}; {} round(s), medians over rounds)",
        args.rounds
    ));
    println!(
        "    {:<9} {:<11} {:>12}  {:<28} {:>9} {:>9} {:>7} {:>9} {:>9}",
        "conn", "path", "median req/s", "per round (req/s)", "avg lat", "p99 lat", "errors", "cpu busy", "lb cores"
    );
    let mut scenarios = Vec::new();
    for conn in Conn::ALL {
        for &path in paths {
            let mine: Vec<(&Run, &Wrk)> = runs
                .iter()
                .filter(|r| r.path == path)
                .filter_map(|r| r.wrk(conn).map(|w| (r, w)))
                .collect();
            let rps: Vec<f64> = mine.iter().map(|(_, w)| w.rps).collect();
            let per_round: Vec<String> = rps.iter().map(|v| format!("{v:.0}")).collect();
            let errors: u64 = mine.iter().map(|(_, w)| w.errors()).sum();
            let lat_avg = median(mine.iter().map(|(_, w)| w.lat_avg_ms).collect());
            let lat_p99 = median(mine.iter().map(|(_, w)| w.lat_p99_ms).collect());
            let cpu = median(mine.iter().map(|(r, _)| r.cpu.busy).collect());
            let lb = median(mine.iter().map(|(r, _)| r.cpu.lb_cores).collect());
            println!(
                "    {:<9} {:<11} {:>12.0}  {:<28} {:>9} {:>9} {:>7} {:>8.0}% {:>9}",
                conn.name(),
                path.name(),
                median(rps.clone()),
                per_round.join(" "),
                ms(lat_avg),
                ms(lat_p99),
                errors,
                cpu,
                cores(path, lb)
            );
            scenarios.push(json!({
                "conn": conn.name(),
                "path": path.name(),
                "median_rps": median(rps),
                "median_latency_avg_ms": lat_avg,
                "median_latency_p99_ms": lat_p99,
                "errors": errors,
                "median_cpu_busy_pct": cpu,
                "median_lb_cpu_cores": nan_null(lb),
                "runs": mine.iter().map(|(r, _)| run_json(r)).collect::<Vec<_>>(),
            }));
        }
    }

    let mut iperf = Vec::new();
    if runs.iter().any(|r| r.iperf().is_some()) {
        println!("    {iperf_line} (one stream; TARGET = web1 for direct, else the VIP):");
        println!(
            "    {:<11} {:>13}  {:<24} {:>11} {:>15} {:>17} {:>9} {:>9}",
            "path",
            "median Gbit/s",
            "per round (Gbit/s)",
            "retransmits",
            "sender cpu",
            "receiver cpu",
            "cpu busy",
            "lb cores"
        );
        for &path in paths {
            let mine: Vec<(&Run, &Iperf)> = runs
                .iter()
                .filter(|r| r.path == path)
                .filter_map(|r| r.iperf().map(|i| (r, i)))
                .collect();
            let gbps: Vec<f64> = mine.iter().map(|(_, i)| i.bps / 1e9).collect();
            let per_round: Vec<String> = gbps.iter().map(|v| format!("{v:.2}")).collect();
            let retr: u64 = mine.iter().map(|(_, i)| i.retransmits).sum();
            let sender = median(mine.iter().map(|(_, i)| i.sender_cpu).collect());
            let receiver = median(mine.iter().map(|(_, i)| i.receiver_cpu).collect());
            let cpu = median(mine.iter().map(|(r, _)| r.cpu.busy).collect());
            let lb = median(mine.iter().map(|(r, _)| r.cpu.lb_cores).collect());
            println!(
                "    {:<11} {:>13.2}  {:<24} {:>11} {:>14.0}% {:>16.0}% {:>8.0}% {:>9}",
                path.name(),
                median(gbps.clone()),
                per_round.join(" "),
                retr,
                sender,
                receiver,
                cpu,
                cores(path, lb)
            );
            iperf.push(json!({
                "path": path.name(),
                "median_gbps": nan_null(median(gbps)),
                "retransmits": retr,
                "median_sender_cpu_pct": nan_null(sender),
                "median_receiver_cpu_pct": nan_null(receiver),
                "median_cpu_busy_pct": nan_null(cpu),
                "median_lb_cpu_cores": nan_null(lb),
                "runs": mine.iter().map(|(r, _)| run_json(r)).collect::<Vec<_>>(),
            }));
        }
    }

    println!("    ratios to direct (ratio of the medians; in brackets, each round's own ratio):");
    let mut ratios = Vec::new();
    for conn in Conn::ALL {
        let rps = |path: Route| -> Vec<(u32, f64)> {
            runs.iter()
                .filter(|r| r.path == path)
                .filter_map(|r| r.wrk(conn).map(|w| (r.round, w.rps)))
                .collect()
        };
        let direct = rps(Route::Direct);
        if direct.is_empty() {
            break;
        }
        let direct_median = median(direct.iter().map(|&(_, v)| v).collect());
        for &path in paths.iter().filter(|p| **p != Route::Direct) {
            let via = rps(path);
            let ratio = median(via.iter().map(|&(_, v)| v).collect()) / direct_median;
            let per_round: Vec<f64> = via
                .iter()
                .filter_map(|&(round, v)| direct.iter().find(|(r, _)| *r == round).map(|&(_, d)| v / d))
                .collect();
            let shown: Vec<String> = per_round.iter().map(|v| format!("{v:.2}")).collect();
            println!(
                "      {:<9} {:<20} {:.2}  [{}]",
                conn.name(),
                format!("{}/direct", path.name()),
                ratio,
                shown.join(" ")
            );
            ratios.push(json!({
                "conn": conn.name(),
                "path": path.name(),
                "ratio_of_medians": ratio,
                "per_round": per_round,
            }));
        }
    }

    println!(
        "    the balancers' counters, summed over rounds (connections per server: XDP new flows, proxy sessions):"
    );
    let mut balancers = Vec::new();
    let kinds: Vec<(&str, Option<Conn>)> = Conn::ALL
        .iter()
        .map(|&c| (c.name(), Some(c)))
        .chain(runs.iter().any(|r| r.iperf().is_some()).then_some(("iperf3", None)))
        .collect();
    for &(kind, conn) in &kinds {
        for &path in paths.iter().filter(|p| **p != Route::Direct) {
            let mine: Vec<&Run> = runs
                .iter()
                .filter(|r| r.path == path)
                .filter(|r| match conn {
                    Some(c) => r.wrk(c).is_some(),
                    None => r.iperf().is_some(),
                })
                .collect();
            let reports: Vec<&Value> = mine.iter().filter_map(|r| r.report.as_ref()).collect();
            let mode = reports.first().map(|r| r["mode"].clone()).unwrap_or(Value::Null);
            let mut servers: Vec<(String, u64)> = Vec::new();
            let mut trouble: Vec<(&str, u64)> = Vec::new();
            for r in &reports {
                for (name, n) in server_counts(r) {
                    match servers.iter_mut().find(|(k, _)| *k == name) {
                        Some((_, total)) => *total += n,
                        None => servers.push((name, n)),
                    }
                }
                for (k, n) in problems(r) {
                    match trouble.iter_mut().find(|(t, _)| *t == k) {
                        Some((_, total)) => *total += n,
                        None => trouble.push((k, n)),
                    }
                }
            }
            let requests: u64 = mine
                .iter()
                .filter_map(|r| conn.and_then(|c| r.wrk(c)))
                .map(|w| w.requests)
                .sum();
            let shown: Vec<String> = servers
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let troubled: Vec<String> = trouble.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!(
                "      {:<9} {:<11} mode {}; {}{}; {}",
                kind,
                path.name(),
                mode.as_str().unwrap_or("?"),
                if shown.is_empty() { "-".into() } else { shown.join(", ") },
                if conn.is_some() {
                    format!(" for {requests} requests")
                } else {
                    String::new()
                },
                troubled.join(", ")
            );
            balancers.push(json!({
                "workload": kind,
                "path": path.name(),
                "mode": mode,
                "requests": requests,
                "connections_per_server": servers.iter().map(|(k, n)| (k.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
                "problems": trouble.iter().map(|(k, n)| (k.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            }));
        }
    }

    let comparison = compare(paths, runs);

    if !maglev.is_empty() {
        println!("    Maglev rebuild (cargo bench -p lbxdp-agent --bench maglev):");
        for l in maglev {
            println!("      {l}");
        }
    }

    let noisy = runs.iter().filter(|r| r.cpu.noisy()).count();
    if noisy > 0 {
        println!(
            "    NOTE: in {noisy} of {} runs something outside the benchmark used the CPUs (over {BUSY_BEFORE}% \
             busy just before, or over {OTHERS_DURING}% during): the figures are noisy; rerun on a quiet machine",
            runs.len()
        );
    }
    json!({
        "noisy_runs": noisy,
        "started_unix": SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() - took.as_secs())
            .unwrap_or(0),
        "took_s": took.as_secs_f64(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "wrk": wrk_line,
        "iperf3": if args.iperf_secs > 0 { json!(iperf_line) } else { Value::Null },
        "rounds": args.rounds,
        "backends": BACKENDS,
        "paths": paths.iter().map(|p| p.name()).collect::<Vec<_>>(),
        "direct_target": "web1 (one nginx, 1 worker; iperf3 server on web1)",
        "client_sysctls": CLIENT_SYSCTLS.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "comparison": comparison,
        "scenarios": scenarios,
        "iperf3_runs": iperf,
        "ratios_to_direct": ratios,
        "balancers": balancers,
        "maglev": maglev,
    })
}

/// The side-by-side table (medians per path) and the ratios between paths.
fn compare(paths: &[Route], runs: &[Run]) -> Value {
    let sums: Vec<PathSummary> = paths.iter().map(|&p| PathSummary::of(p, runs)).collect();
    let gbps = |v: f64| if v.is_nan() { "-".to_string() } else { format!("{v:.2}") };
    let rps = |v: f64| if v.is_nan() { "-".to_string() } else { format!("{v:.0}") };
    step("bench: side by side (medians over rounds)");
    println!(
        "    {:<11} {:>12} {:>10} {:>16} {:>14} {:>15}",
        "path", "close req/s", "close p99", "keep-alive req/s", "keep-alive p99", "iperf3 Gbit/s"
    );
    for s in &sums {
        println!(
            "    {:<11} {:>12} {:>10} {:>16} {:>14} {:>15}",
            s.path.name(),
            rps(s.close_rps),
            ms(s.close_p99_ms),
            rps(s.keepalive_rps),
            ms(s.keepalive_p99_ms),
            gbps(s.iperf_gbps)
        );
    }
    println!("    ratios of the medians (req/s and Gbit/s: higher is better; p99: lower is better):");
    println!(
        "    {:<24} {:>12} {:>10} {:>16} {:>14} {:>15}",
        "", "close req/s", "close p99", "keep-alive req/s", "keep-alive p99", "iperf3 Gbit/s"
    );
    let ratio = |a: f64, b: f64| a / b;
    let shown = |v: f64| {
        if v.is_finite() {
            format!("{v:.2}")
        } else {
            "-".to_string()
        }
    };
    let mut ratios = Vec::new();
    for (num, den) in RATIOS {
        let (Some(n), Some(d)) = (sums.iter().find(|s| s.path == num), sums.iter().find(|s| s.path == den)) else {
            continue;
        };
        let r = [
            ratio(n.close_rps, d.close_rps),
            ratio(n.close_p99_ms, d.close_p99_ms),
            ratio(n.keepalive_rps, d.keepalive_rps),
            ratio(n.keepalive_p99_ms, d.keepalive_p99_ms),
            ratio(n.iperf_gbps, d.iperf_gbps),
        ];
        println!(
            "    {:<24} {:>12} {:>10} {:>16} {:>14} {:>15}",
            format!("{}/{}", num.name(), den.name()),
            shown(r[0]),
            shown(r[1]),
            shown(r[2]),
            shown(r[3]),
            shown(r[4])
        );
        ratios.push(json!({
            "ratio": format!("{}/{}", num.name(), den.name()),
            "close_rps": nan_null(r[0]),
            "close_p99_ms": nan_null(r[1]),
            "keepalive_rps": nan_null(r[2]),
            "keepalive_p99_ms": nan_null(r[3]),
            "iperf3_gbps": nan_null(r[4]),
        }));
    }
    json!({
        "paths": sums.iter().map(PathSummary::json).collect::<Vec<_>>(),
        "ratios": ratios,
    })
}

/// The balancer's CPU, in cores, for the tables ("-" for direct).
fn cores(path: Route, v: f64) -> String {
    if path == Route::Direct || v.is_nan() {
        "-".into()
    } else {
        format!("{v:.2}")
    }
}

fn run_json(r: &Run) -> Value {
    let mut v = json!({
        "round": r.round,
        "cpu_busy_before_pct": nan_null(r.cpu.before),
        "cpu_busy_pct": nan_null(r.cpu.busy),
        "cpu_softirq_pct": nan_null(r.cpu.softirq),
        "cpu_others_pct": nan_null(r.cpu.others),
        "lb_cpu_cores": nan_null(r.cpu.lb_cores),
        "report": r.report,
    });
    match &r.measured {
        Measured::Wrk(_, w) => {
            v["rps"] = json!(w.rps);
            v["requests"] = json!(w.requests);
            v["latency_avg_ms"] = json!(w.lat_avg_ms);
            v["latency_p99_ms"] = json!(w.lat_p99_ms);
            v["socket_errors"] = json!({
                "connect": w.socket_errors[0],
                "read": w.socket_errors[1],
                "write": w.socket_errors[2],
                "timeout": w.socket_errors[3],
            });
            v["non_2xx"] = json!(w.non_2xx);
        }
        Measured::Iperf(i) => {
            v["gbps"] = json!(i.bps / 1e9);
            v["retransmits"] = json!(i.retransmits);
            v["sender_cpu_pct"] = nan_null(i.sender_cpu);
            v["receiver_cpu_pct"] = nan_null(i.receiver_cpu);
        }
    }
    v
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v < 1.0 {
        format!("{:.0}us", v * 1000.0)
    } else {
        format!("{v:.2}ms")
    }
}

/// Parses wrk's report (run with --latency).
fn parse_wrk(out: &str) -> anyhow::Result<Wrk> {
    let mut w = Wrk {
        lat_avg_ms: f64::NAN,
        lat_p99_ms: f64::NAN,
        ..Wrk::default()
    };
    let mut saw_rps = false;
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            w.rps = v.trim().parse().with_context(|| format!("{line:?}"))?;
            saw_rps = true;
        } else if words.first() == Some(&"Latency") && words.len() > 1 && words[1] != "Distribution" {
            w.lat_avg_ms = parse_time_ms(words[1])?;
        } else if words.first() == Some(&"99%") && words.len() > 1 {
            w.lat_p99_ms = parse_time_ms(words[1])?;
        } else if words.len() > 2 && words[1] == "requests" && words[2] == "in" {
            w.requests = words[0].parse().with_context(|| format!("{line:?}"))?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for (i, part) in rest.split(',').enumerate().take(4) {
                let n = part.split_whitespace().nth(1).unwrap_or("0");
                w.socket_errors[i] = n.parse().with_context(|| format!("{line:?}"))?;
            }
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            w.non_2xx = v.trim().parse().with_context(|| format!("{line:?}"))?;
        }
    }
    if !saw_rps {
        bail!("no \"Requests/sec:\" line");
    }
    Ok(w)
}

/// wrk's times ("812.00us", "1.23ms", "2.00s", "1.00m") in milliseconds.
fn parse_time_ms(s: &str) -> anyhow::Result<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().with_context(|| format!("time {s:?}"))?;
    let scale = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => bail!("time {s:?}: unknown unit"),
    };
    Ok(num * scale)
}

/// The first line of /proc/stat: jiffies per state, summed over CPUs.
fn cpu_times() -> anyhow::Result<Vec<u64>> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().next().unwrap_or_default();
    Ok(line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect())
}

/// Busy and softirq shares of all CPUs between two samples, in %.
fn cpu_use(before: &[u64], after: &[u64]) -> (f64, f64) {
    let d = |i: usize| after.get(i).unwrap_or(&0).saturating_sub(*before.get(i).unwrap_or(&0)) as f64;
    // user nice system idle iowait irq softirq steal (guest time is in user already).
    let total: f64 = (0..8).map(d).sum();
    if total == 0.0 {
        return (f64::NAN, f64::NAN);
    }
    (100.0 * (total - d(3) - d(4)) / total, 100.0 * d(6) / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 10s test @ http://198.18.0.101/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms  456.00us  10.00ms   80.00%
    Req/Sec    10.00k     1.00k   12.00k    70.00%
  Latency Distribution
     50%    1.00ms
     75%    1.50ms
     90%    2.00ms
     99%  812.00us
  200000 requests in 10.00s, 30.00MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 5
Requests/sec:  20000.50
Transfer/sec:      3.00MB
";

    #[test]
    fn parses_wrk_output() {
        let w = parse_wrk(WRK).unwrap();
        assert_eq!(w.rps, 20000.5);
        assert_eq!(w.requests, 200_000);
        assert_eq!(w.lat_avg_ms, 1.23);
        assert!((w.lat_p99_ms - 0.812).abs() < 1e-9);
        assert_eq!(w.socket_errors, [1, 2, 3, 4]);
        assert_eq!(w.non_2xx, 5);
        assert_eq!(w.errors(), 15);
    }

    #[test]
    fn wrk_output_without_rate_is_an_error() {
        assert!(parse_wrk("unable to connect to 198.18.0.2:80 Connection refused").is_err());
    }

    #[test]
    fn times_and_medians() {
        assert_eq!(parse_time_ms("2.00s").unwrap(), 2000.0);
        assert_eq!(parse_time_ms("1.50m").unwrap(), 90_000.0);
        assert!(parse_time_ms("3.0x").is_err());
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }

    #[test]
    fn parses_iperf_json() {
        let out = r#"{"start": {}, "end": {"sum_sent": {"bits_per_second": 2.1e10, "retransmits": 7},
            "sum_received": {"bits_per_second": 2.0e10},
            "cpu_utilization_percent": {"host_total": 55.5, "remote_total": 80.25}}}"#;
        let i = parse_iperf(out).unwrap();
        assert_eq!(i.bps, 2.0e10);
        assert_eq!(i.retransmits, 7);
        assert_eq!(i.sender_cpu, 55.5);
        assert_eq!(i.receiver_cpu, 80.25);
        let err =
            parse_iperf(r#"{"start": {}, "end": {}, "error": "unable to connect to server: Connection refused"}"#);
        assert!(format!("{:#}", err.unwrap_err()).contains("unable to connect"));
        assert!(parse_iperf("iperf3: error").is_err());
    }

    #[test]
    fn paths_and_their_order() {
        let all = parse_paths("direct,xdp,proxy,haproxy", false).unwrap();
        assert_eq!(all, [Route::Direct, Route::XdpNative, Route::Proxy, Route::Haproxy]);
        assert_eq!(
            parse_paths(" haproxy, xdp-native,xdp ", true).unwrap(),
            [Route::Haproxy, Route::XdpNative, Route::XdpGeneric]
        );
        assert!(parse_paths("direct,nginx", false).is_err());
        assert!(parse_paths(",", false).is_err());
        assert_eq!(round_order(&all, 1), all);
        assert_eq!(
            round_order(&all, 2),
            [Route::XdpNative, Route::Proxy, Route::Haproxy, Route::Direct]
        );
        assert_eq!(round_order(&all, 5), all);
    }

    #[test]
    fn counters_from_reports() {
        let xdp = json!({"mode": "native",
            "frontends": [{"name": "web", "drop_no_server": 1}, {"name": "iperf", "drop_no_server": 2}],
            "servers": [{"backend": "nginx-servers", "name": "web1", "new_flows": 10},
                        {"backend": "iperf-server", "name": "web1", "new_flows": 2}]});
        assert_eq!(
            server_counts(&xdp),
            [("web1".to_string(), 10), ("iperf-server/web1".to_string(), 2)]
        );
        assert_eq!(problems(&xdp)[0], ("drop_no_server", 3));
        let proxy = json!({"mode": "proxy", "proxy": {
            "frontends": [{"name": "web", "denied": 4}],
            "backends": [{"name": "nginx-servers", "nosrv": 1,
                          "servers": [{"name": "web2", "stot": 5, "econ": 3}]}]}});
        assert_eq!(server_counts(&proxy), [("web2".to_string(), 5)]);
        let p = problems(&proxy);
        assert!(p.contains(&("econ", 3)) && p.contains(&("nosrv", 1)) && p.contains(&("denied", 4)));
        assert!(report_note(&proxy).contains("sessions web2=5"));
        let ha = json!({"mode": "haproxy", "log_alerts_warnings": ["[WARNING] x"]});
        assert_eq!(problems(&ha), [("log_alerts_warnings", 1)]);
    }

    #[test]
    fn process_ticks_by_namespace() {
        let ns = Namespaces {
            lb: "net:[2]".into(),
            all: vec!["net:[2]".into(), "net:[3]".into()],
        };
        let snap = |v: &[(u32, &str, u64)]| -> std::collections::HashMap<u32, (String, u64)> {
            v.iter().map(|&(pid, l, t)| (pid, (l.to_string(), t))).collect()
        };
        let before = snap(&[
            (10, "net:[2]", 100),
            (11, "net:[1]", 50),
            (12, "net:[3]", 5),
            (99, "net:[1]", 7),
        ]);
        // 13 started during the run, 12 (a testbed backend) doesn't count, 99 is this process.
        let after = snap(&[
            (10, "net:[2]", 130),
            (11, "net:[1]", 60),
            (12, "net:[3]", 500),
            (13, "net:[1]", 4),
            (99, "net:[1]", 70),
        ]);
        assert_eq!(proc_delta(&before, &after, &ns, 99), (30, 14));
        let me = proc_times();
        assert!(me.contains_key(&std::process::id()));
        assert!(!me.contains_key(&2), "kthreadd is a kernel thread");
    }

    #[test]
    fn cpu_shares() {
        let (busy, soft) = cpu_use(&[0; 10], &[10, 0, 20, 50, 0, 0, 20, 0, 0, 0]);
        assert_eq!(busy, 50.0);
        assert_eq!(soft, 20.0);
    }
}
