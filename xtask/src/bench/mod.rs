//! `cargo xtask bench`: what a request costs through each way to the servers,
//! measured side by side in one run: straight to one backend (`direct`), the
//! agent's XDP datapath (`xdp-native`), the agent's userspace TCP proxy
//! (`proxy`), HAProxy itself in `mode tcp` on the same haproxy.cfg
//! (`haproxy`), and the kernel's own balancer, nftables full NAT with round
//! robin (`nftables`) or a hash of the client's address and port
//! (`nftables-jhash`).
//!
//! First the Maglev rebuild micro-benchmark (`cargo bench --bench maglev`).
//! Then one namespace testbed (one-arm, 3 nginx backends, an iperf3 server on
//! web1) serves every scenario; wrk and iperf3 run in the client's namespace.
//! The scenarios are interleaved in rounds (keep-alive over every path, then
//! `Connection: close` over every path, then iperf3 with one stream and with
//! `--iperf-parallel` streams over every path, then 64-byte UDP packets from
//! trafgen over every path that carries UDP and the XDP_TX floor; the order
//! of the paths rotates every round) so that the machine's
//! noise hits them all alike, and the results are medians over rounds and
//! ratios of medians. Every run through the VIP has its own, freshly started
//! balancer (agent or haproxy) that must answer a request before the run and
//! is stopped after it, so each run has its own counters from the agent's
//! JSON report. The DNAT paths (`xdp-generic-dnat`, `nftables-dnat`) run in
//! the same rounds on a second, two-arm testbed (the LB routes between the
//! client's and the servers' segments, as DNAT needs), built only when
//! `--paths` names one. After the rounds, one round of sustained new
//! connections (`--sustained-secs`, in slices) from a client with Linux's
//! default sysctls over `--sustained-paths`.
//!
//! The results go to `target/bench/results.json`; `--write-docs` writes
//! `docs/benchmarks.md` and its plots from them (`--from FILE`: from a saved
//! run, measuring nothing). `--quick` runs every part for a second or two: a
//! smoke test that times nothing (`cargo xtask test` runs it).
mod balancer;
mod cargo_bench;
mod client;
mod counters;
mod cpu;
mod docs;
mod flood;
mod iperf;
mod machine;
mod maglev;
mod nft;
mod plots;
mod prog_time;
mod program;
mod report;
mod results;
mod route;
mod sustained;
mod targets;
mod udp;
mod workloads;
mod wrk;

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context as _, bail};
use clap::{Args, Parser};
use lbxdp_testbed::{Layout, Testbed, Topology};
use serde_json::{Value, json};

use self::{
    client::{Sysctls, tune_client},
    counters::report_note,
    cpu::{BUSY_BEFORE, Cpu, Namespaces, OTHERS_DURING},
    iperf::{IPERF_PORT, Iperf, run_iperf, start_iperf_server},
    machine::this_machine,
    maglev::maglev_bench,
    report::{ms, summarize},
    results::Published,
    route::{Route, parse_paths, round_order},
    sustained::run_sustained,
    udp::{Udp, carries_udp, run_udp},
    wrk::{Conn, Wrk, run_wrk},
};
use crate::{
    agent,
    build::{self, BuildArgs},
    util::{self, step},
};

#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Seconds per wrk run.
    #[arg(long, default_value_t = DURATION, value_name = "SECS")]
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
    /// xdp-generic, proxy (the agent's userspace proxy), haproxy, nftables,
    /// nftables-jhash; on a two-arm testbed, xdp-dnat (native),
    /// xdp-generic-dnat and nftables-dnat (destination NAT only).
    #[arg(
        long,
        default_value = "direct,xdp,proxy,haproxy,nftables,nftables-jhash,xdp-generic-dnat,nftables-dnat",
        value_name = "LIST"
    )]
    pub paths: String,
    /// Also measure the agent in generic (skb) XDP mode (as `--paths ...,xdp-generic`).
    #[arg(long)]
    pub generic: bool,
    /// Seconds per iperf3 run (one stream, then `--iperf-parallel`); 0 skips iperf3.
    #[arg(long, default_value_t = IPERF_SECS, value_name = "SECS")]
    pub iperf_secs: u64,
    /// Streams of the second iperf3 run per path (`-P`); 0 or 1 skips it.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub iperf_parallel: u32,
    /// Seconds per trafgen run (64-byte UDP through the VIP, and the XDP_TX
    /// floor); 0 skips them.
    #[arg(long, default_value_t = UDP_SECS, value_name = "SECS")]
    pub udp_secs: u64,
    /// Seconds of sustained new connections per path (wrk `Connection:
    /// close`, the client with Linux's default sysctls, one round); 0 skips them.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub sustained_secs: u64,
    /// The sustained runs' slices: back-to-back wrk runs of this many seconds.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub sustained_slice: u64,
    /// The paths of the sustained runs (names as in --paths; any of them,
    /// whether --paths has it or not).
    #[arg(long, default_value = "xdp-generic,proxy,haproxy,nftables", value_name = "LIST")]
    pub sustained_paths: String,
    /// Seconds of each wrk run of the flood section (legitimate new
    /// connections without, then during a spoofed SYN flood, per path and
    /// rule set); 0 skips it.
    #[arg(long, default_value_t = FLOOD_SECS, value_name = "SECS")]
    pub flood_secs: u64,
    /// The flood section's paths (names as in --paths).
    #[arg(long, default_value = "xdp-native,xdp-generic,proxy,haproxy", value_name = "LIST")]
    pub flood_paths: String,
    /// Rounds of the flood section (each path and rule set once per round);
    /// its figures are medians over them.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub flood_rounds: u32,
    /// The flood's SYNs per second (trafgen).
    #[arg(long, default_value_t = 100_000, value_name = "PPS")]
    pub flood_rate: u64,
    /// The flood section's client with Linux's default sysctls instead of
    /// the rounds' tuning (behind a proxy it runs out of ports within two
    /// seconds, and the share then measures its port search).
    #[arg(long)]
    pub flood_default_client: bool,
    /// Only the flood section. Its results go to `--out` [default:
    /// target/bench/flood.json]; with --write-docs they replace the flood
    /// section of the results beside the docs (docs/bench/results.json) and
    /// the docs are written again from those.
    #[arg(long, conflicts_with = "from")]
    pub flood_only: bool,
    /// Skip the Maglev rebuild micro-benchmark.
    #[arg(long)]
    pub no_maglev: bool,
    /// Where to write the results as JSON [default: target/bench/results.json].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Every part for a second or two (1 round, 1 s runs): a smoke test that
    /// times nothing, and checks only that each part ran and gave numbers.
    #[arg(long)]
    pub quick: bool,
    /// Also write the docs (docs/benchmarks.md and its plots in docs/bench/) from the results.
    #[arg(long)]
    pub write_docs: bool,
    /// With --write-docs: write them from this saved results file, measuring nothing.
    #[arg(long, value_name = "FILE", requires = "write_docs")]
    pub from: Option<PathBuf>,
    /// With --write-docs: the markdown file to write (plots go in `bench/` beside it)
    /// [default: docs/benchmarks.md].
    #[arg(long, value_name = "FILE", requires = "write_docs")]
    pub docs: Option<PathBuf>,
}

impl BenchArgs {
    /// The arguments a run uses: `--quick` makes every part last a second or
    /// two (other parts read `quick` for their own bounds).
    fn effective(&self) -> Self {
        let mut a = self.clone();
        if a.quick {
            a.rounds = 1;
            a.duration = 1;
            a.iperf_secs = a.iperf_secs.min(1);
            a.udp_secs = a.udp_secs.min(1);
            a.iperf_parallel = a.iperf_parallel.min(2);
            a.sustained_secs = a.sustained_secs.min(2);
            a.sustained_slice = 1;
            a.flood_secs = a.flood_secs.min(1);
        }
        a
    }

    /// How many slices a sustained run has (0: no sustained runs).
    fn sustained_slices(&self) -> u64 {
        match self.sustained_secs {
            0 => 0,
            secs => (secs / self.sustained_slice.max(1)).max(1),
        }
    }

    /// The sustained runs' paths ([] when they are skipped).
    fn sustained(&self) -> anyhow::Result<Vec<Route>> {
        if self.sustained_secs == 0 {
            return Ok(Vec::new());
        }
        parse_paths(&self.sustained_paths, false).context("--sustained-paths")
    }

    /// The markdown file `--write-docs` writes. A quick run's figures mean
    /// nothing: they never go to docs/ unless another file is named.
    fn docs_file(&self, quick: bool) -> anyhow::Result<PathBuf> {
        match &self.docs {
            Some(f) => Ok(f.clone()),
            None if quick => {
                bail!("a --quick run times nothing: its docs don't replace docs/benchmarks.md (name a file: --docs)")
            }
            None => Ok(util::root().join("docs/benchmarks.md")),
        }
    }

    /// The flood section's paths ([] when it is skipped).
    fn flood(&self) -> anyhow::Result<Vec<Route>> {
        if self.flood_secs == 0 {
            return Ok(Vec::new());
        }
        let paths = parse_paths(&self.flood_paths, false).context("--flood-paths")?;
        if let Some(p) = paths.iter().find(|p| p.two_arm() || **p == Route::Direct) {
            bail!("--flood-paths: {} has no haproxy.cfg rules to meet the flood", p.name());
        }
        Ok(paths)
    }

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
        if self.iperf_parallel > 128 {
            bail!("--iperf-parallel is 0..=128 streams, not {}", self.iperf_parallel);
        }
        if self.udp_secs > 60 {
            bail!("--udp-secs is 0..=60 seconds, not {}", self.udp_secs);
        }
        if self.sustained_secs > 600 {
            bail!("--sustained-secs is 0..=600 seconds, not {}", self.sustained_secs);
        }
        if !(1..=60).contains(&self.sustained_slice) {
            bail!("--sustained-slice is 1..=60 seconds, not {}", self.sustained_slice);
        }
        if self.flood_secs > 60 {
            bail!("--flood-secs is 0..=60 seconds, not {}", self.flood_secs);
        }
        if !(1..=10).contains(&self.flood_rounds) {
            bail!("--flood-rounds is 1..=10, not {}", self.flood_rounds);
        }
        if !(1_000..=5_000_000).contains(&self.flood_rate) {
            bail!("--flood-rate is 1000..=5000000 packets/s, not {}", self.flood_rate);
        }
        self.flood()?;
        if self.sustained_secs > 0 && self.sustained_secs < self.sustained_slice {
            bail!(
                "--sustained-secs is 0 or at least one slice ({} s), not {}",
                self.sustained_slice,
                self.sustained_secs
            );
        }
        parse_paths(&self.paths, self.generic)
    }
}

const BACKENDS: usize = 3;
/// The default seconds of a wrk, an iperf3 and a trafgen run: short enough
/// that the whole default run (`--generic`, 3 rounds, the sustained minute
/// per path) stays under 14 minutes (see [`plan`]; a test holds it there).
const DURATION: u64 = 4;
const IPERF_SECS: u64 = 2;
const UDP_SECS: u64 = 2;
const FLOOD_SECS: u64 = 3;
/// What a run costs beyond its measured seconds: starting and stopping the
/// balancer, its first answer, draining TIME_WAIT, the CPU sample before it
/// (a one-round `--generic` run of 38 runs took 125 s for 94 s measured,
/// the program bench and the testbeds included).
const RUN_OVERHEAD_S: u64 = 1;
/// Building (when nothing changed), the Maglev micro-benchmark with its
/// compile, the program's, the testbeds.
const FIXED_S: u64 = 60;

/// What one run measured.
enum Measured {
    Wrk(Conn, Wrk),
    /// iperf3 with this many parallel streams.
    Iperf(u32, Iperf),
    Udp(Udp),
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

    fn iperf(&self, streams: u32) -> Option<&Iperf> {
        match &self.measured {
            Measured::Iperf(n, i) if *n == streams => Some(i),
            _ => None,
        }
    }

    fn udp(&self) -> Option<&Udp> {
        match &self.measured {
            Measured::Udp(u) => Some(u),
            _ => None,
        }
    }
}

pub fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    if let Some(from) = &args.from {
        let text = std::fs::read_to_string(from).with_context(|| format!("reading {}", from.display()))?;
        let results: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", from.display()))?;
        return write_docs(args, &Published::from_json(&results)?);
    }
    let invocation = invocation(args);
    let args = &args.effective();
    let paths = args.check()?;
    if args.flood_only {
        return flood_only(args, invocation);
    }
    if args.write_docs {
        // Fail before a long run, not after it.
        args.docs_file(args.quick)?;
    }
    if !util::is_root() {
        bail!("the benchmark builds network namespaces and loads XDP: run it as root (sudo cargo xtask bench)");
    }
    let started = Instant::now();
    let bin = build::build(&BuildArgs::default())?;

    let maglev = if args.no_maglev {
        Vec::new()
    } else {
        maglev_bench(args.quick)?
    };
    let program = program::program_costs(args.quick)?;
    // The XDP program's own time per run (see prog_time); off again when the
    // bench exits. After the program's costs: they time the program without it.
    let _bpf_stats = prog_time::enable();

    let sustained_paths = args.sustained()?;
    let streams = iperf_streams(args);
    let iperf_paths = iperf_paths(&paths);
    let udp_paths = udp_paths(args, &paths);
    let flood_paths = args.flood()?;
    let Plan {
        wrk_runs,
        iperf_runs,
        udp_runs,
        flood_runs,
        secs: planned,
    } = plan(args, &paths, sustained_paths.len());
    step(&format!(
        "bench: planned {planned} s (~{:.0} min): {wrk_runs} wrk runs of {} s, {iperf_runs} iperf3 runs of {} s, \
         {udp_runs} trafgen runs of {} s, {} sustained run(s) of {} s, {flood_runs} flood wrk runs of {} s, each \
         run ~{RUN_OVERHEAD_S} s more",
        planned as f64 / 60.0,
        args.duration,
        args.iperf_secs,
        args.udp_secs,
        sustained_paths.len(),
        args.sustained_slices() * args.sustained_slice,
        args.flood_secs,
    ));

    step(&format!(
        "bench: testbed (client, lb, {BACKENDS} nginx backends on one bridge; iperf3 server on web1:{IPERF_PORT})"
    ));
    let mut tb = Testbed::build(&Topology {
        layout: Layout::OneArm,
        backends: BACKENDS,
        nginx: true,
        default_offloads: false,
    })?;
    let cfg = tb.dir().join("haproxy.cfg");
    std::fs::write(&cfg, agent::haproxy_cfg_with_iperf(&tb, IPERF_PORT)).context("writing haproxy.cfg")?;
    tb.attach_peer_pass(&bin, &tb.lb.clone())?;
    let client_defaults = tune_client(&tb)?;
    let machine = this_machine(&tb);
    if args.iperf_secs > 0 {
        start_iperf_server(&mut tb)?;
    }
    let two_arm = if paths.iter().chain(&sustained_paths).any(|p| p.two_arm()) {
        step(&format!(
            "bench: two-arm testbed for DNAT (client on 198.18.1.0/24, {BACKENDS} nginx backends on 198.18.2.0/24, \
             the LB between them)"
        ));
        let mut two = Testbed::build(&Topology {
            layout: Layout::TwoArm,
            backends: BACKENDS,
            nginx: true,
            default_offloads: false,
        })?;
        let cfg = two.dir().join("haproxy.cfg");
        std::fs::write(&cfg, agent::haproxy_cfg(&two)).context("writing the two-arm haproxy.cfg")?;
        // Both of the LB's ports: native XDP redirects between them.
        two.attach_peer_pass(&bin, &two.lb.clone())?;
        let defaults = tune_client(&two)?;
        Some((two, cfg, defaults))
    } else {
        None
    };

    let wrk_line = format!(
        "wrk -t{} -c{} -d{}s --timeout {}s --latency -s latency.lua",
        args.threads, args.connections, args.duration, args.timeout
    );
    let iperf_line = format!("iperf3 -c TARGET -p {IPERF_PORT} -t {} -J [-P N]", args.iperf_secs);
    step(&format!(
        "bench: {wrk_runs} runs of `{wrk_line}`{}{} from the client over {} ({} round(s); direct = {}, the rest = VIP {}{})",
        if iperf_runs > 0 {
            format!(", {iperf_runs} of `{iperf_line}` (P = {streams:?})")
        } else {
            String::new()
        },
        if udp_runs > 0 {
            format!(", {udp_runs} of trafgen for {} s", args.udp_secs)
        } else {
            String::new()
        },
        paths.iter().map(|p| p.name()).collect::<Vec<_>>().join(", "),
        args.rounds,
        tb.backends[0].v4(),
        tb.lb.v4(),
        match &two_arm {
            Some((two, _, _)) => format!("; DNAT paths: VIP {} on the two-arm testbed", two.lb.v4()),
            None => String::new(),
        },
    ));
    let bed = Bed {
        one: Side::new(&tb, cfg, client_defaults)?,
        two: match &two_arm {
            Some((two, cfg, defaults)) => Some(Side::new(two, cfg.clone(), defaults.clone())?),
            None => None,
        },
        bin: &bin,
        args,
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
        for &n in &streams {
            for &path in order.iter().filter(|p| iperf_paths.contains(p)) {
                let run = run_iperf(&bed, round, path, n)
                    .with_context(|| format!("round {round}, iperf3 -P {n} {}", path.name()))?;
                let i = run.iperf(n).cloned().unwrap_or_default();
                println!(
                    "    round {round}/{} {:<9} {:<11} {:>9.2} Gbit/s  retransmits {:>5}  iperf3 cpu: sender {:>3.0}% receiver {:>3.0}%  {}{}",
                    args.rounds,
                    format!("iperf3-P{n}"),
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
        for &path in &round_order(&udp_paths, round) {
            let run = run_udp(&bed, round, path).with_context(|| format!("round {round}, udp {}", path.name()))?;
            let u = run.udp().cloned().unwrap_or_default();
            println!(
                "    round {round}/{} {:<9} {:<11} {:>9.0} pkt/s delivered of {:>9.0} sent (loss {:>5.1}%)  {}{}",
                args.rounds,
                "udp-64B",
                path.name(),
                u.pps(),
                u.sent_pps(),
                u.loss_pct(),
                run.cpu.note(path),
                run.report.as_ref().map(report_note).unwrap_or_default()
            );
            note_busy(&run);
            runs.push(run);
        }
    }

    let sustained = run_sustained(&bed, &sustained_paths)?;
    let flood = if flood_paths.is_empty() {
        None
    } else {
        let mut f = flood::run_flood(&bed, &flood_paths)?;
        f.commit = machine.commit.clone();
        Some(f)
    };

    let mut results = summarize(args, &wrk_line, &iperf_line, &paths, &runs, &maglev, started.elapsed());
    results["sustained_runs"] = json!(sustained::summarize(&sustained));
    let published_sustained: Vec<&sustained::Sustained> = sustained.iter().map(|r| &r.result).collect();
    results["sustained"] = serde_json::to_value(&published_sustained)?;
    results["program"] = serde_json::to_value(&program)?;
    if let Some(w) = results["workloads"].as_array_mut() {
        for s in workloads::sustained(args, &client_line(&bed), &published_sustained) {
            w.push(serde_json::to_value(s)?);
        }
        w.push(serde_json::to_value(program.workload())?);
    }
    if let Some(f) = &flood {
        results["flood"] = serde_json::to_value(f)?;
    }
    results["quick"] = json!(args.quick);
    results["machine"] = serde_json::to_value(&machine)?;
    let mut commands = vec![
        invocation,
        format!("{wrk_line} [-H 'Connection: close'] http://TARGET/"),
    ];
    if !sustained.is_empty() {
        commands.push(format!(
            "wrk -t{} -c{} -d{}s --timeout {}s --latency -H 'Connection: close' http://VIP/  \
             # {} times back to back, per sustained path",
            args.threads,
            args.connections,
            args.sustained_slice,
            args.timeout,
            args.sustained_slices()
        ));
    }
    if args.iperf_secs > 0 {
        commands.push(iperf_line.clone());
    }
    if !maglev.is_empty() {
        commands.push("cargo bench -p lbxdp-agent --bench maglev".into());
    }
    results["commands"] = json!(commands);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| util::target_dir().join("bench/results.json"));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&results)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("    results: {}", out.display());
    let published = Published::from_json(&results)?;
    if args.quick {
        let names: Vec<&str> = paths.iter().map(|p| p.name()).collect();
        published.check_ran(&names).context("the --quick smoke run")?;
        let names: Vec<&str> = sustained_paths.iter().map(|p| p.name()).collect();
        published.check_sustained(&names).context("the --quick smoke run")?;
        if let Some(f) = &published.flood {
            f.check_ran().context("the --quick smoke run")?;
        }
        println!("    --quick: every part ran and gave numbers (nothing was timed)");
    }
    if args.write_docs {
        write_docs(args, &published)?;
    }
    step(&format!(
        "bench: done in {:.0?}; tearing the testbed down",
        started.elapsed()
    ));
    Ok(())
}

/// `--flood-only`: the flood section alone, on a testbed of its own; with
/// `--write-docs`, its results replace the flood section of the results
/// beside the docs, and the docs are written again from them.
fn flood_only(args: &BenchArgs, invocation: String) -> anyhow::Result<()> {
    let paths = args.flood()?;
    if paths.is_empty() {
        bail!("--flood-only with --flood-secs 0 measures nothing");
    }
    let base_file = if args.write_docs {
        let md = args.docs_file(args.quick)?;
        let file = md.parent().unwrap_or_else(|| Path::new(".")).join("bench/results.json");
        if !file.exists() {
            bail!(
                "--flood-only --write-docs adds to the results the docs were written from, and {} is missing \
                 (run the whole bench with --write-docs first)",
                file.display()
            );
        }
        Some(file)
    } else {
        None
    };
    if !util::is_root() {
        bail!("the benchmark builds network namespaces and loads XDP: run it as root (sudo cargo xtask bench)");
    }
    let bin = build::build(&BuildArgs::default())?;
    let _bpf_stats = prog_time::enable();
    step(&format!(
        "bench: testbed (client, lb, {BACKENDS} nginx backends on one bridge)"
    ));
    let mut tb = Testbed::build(&Topology {
        layout: Layout::OneArm,
        backends: BACKENDS,
        nginx: true,
        default_offloads: false,
    })?;
    let cfg = tb.dir().join("haproxy.cfg");
    std::fs::write(&cfg, agent::haproxy_cfg(&tb)).context("writing haproxy.cfg")?;
    // Native XDP's verdicts (RSTs, answers) leave through the veth: its peer needs a program.
    tb.attach_peer_pass(&bin, &tb.lb.clone())?;
    let client_defaults = tune_client(&tb)?;
    let machine = this_machine(&tb);
    let bed = Bed {
        one: Side::new(&tb, cfg, client_defaults)?,
        two: None,
        bin: &bin,
        args,
    };
    let mut f = flood::run_flood(&bed, &paths)?;
    f.commit = machine.commit.clone();
    f.commands.insert(0, invocation);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| util::target_dir().join("bench/flood.json"));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let results = json!({ "flood": f, "machine": machine });
    std::fs::write(&out, serde_json::to_string_pretty(&results)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("    results: {}", out.display());
    if args.quick {
        f.check_ran().context("the --quick smoke run")?;
    }
    if let Some(file) = base_file {
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let mut base: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        base["flood"] = serde_json::to_value(&f)?;
        std::fs::write(&file, serde_json::to_string_pretty(&base)? + "\n")
            .with_context(|| format!("writing {}", file.display()))?;
        println!("    the flood section of {} replaced", file.display());
        write_docs(args, &Published::from_json(&base)?)?;
    }
    Ok(())
}

/// `cargo xtask test`'s smoke run: `--quick --write-docs`, with the results
/// and the docs in `dir` (never docs/).
pub fn smoke(dir: &Path) -> anyhow::Result<()> {
    let argv: [std::ffi::OsString; 7] = [
        "bench".into(),
        "--quick".into(),
        "--write-docs".into(),
        "--out".into(),
        dir.join("results.json").into_os_string(),
        "--docs".into(),
        dir.join("benchmarks.md").into_os_string(),
    ];
    bench(&BenchCli::try_parse_from(argv)?.bench)
}

/// `BenchArgs` from a command line of xtask's own (the smoke run's), so that
/// every option not given takes its default.
#[derive(Parser)]
struct BenchCli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn write_docs(args: &BenchArgs, published: &Published) -> anyhow::Result<()> {
    if published.workloads.is_empty() {
        bail!("the results hold no workloads (written by an older bench?): nothing to write docs from");
    }
    let md = args.docs_file(published.quick)?;
    step(&format!("bench: writing {} and its plots", md.display()));
    for f in docs::write_docs(published, &md)? {
        println!("    {}", f.display());
    }
    Ok(())
}

/// How this run was started, for the docs: this process's own arguments when
/// it is `cargo xtask bench`, else (the smoke test) the equivalent.
fn invocation(args: &BenchArgs) -> String {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("bench") {
        return format!("cargo xtask {}", argv.join(" "));
    }
    format!(
        "cargo xtask bench --duration {} --connections {} --threads {} --rounds {} --timeout {} --paths {}{} \
         --iperf-secs {} --sustained-secs {} --sustained-slice {} --sustained-paths {} --flood-secs {} \
         --flood-paths {} --flood-rounds {} --flood-rate {}{}{}{}",
        args.duration,
        args.connections,
        args.threads,
        args.rounds,
        args.timeout,
        args.paths,
        if args.generic { " --generic" } else { "" },
        args.iperf_secs,
        args.sustained_secs,
        args.sustained_slice,
        args.sustained_paths,
        args.flood_secs,
        args.flood_paths,
        args.flood_rounds,
        args.flood_rate,
        if args.flood_default_client {
            " --flood-default-client"
        } else {
            ""
        },
        if args.no_maglev { " --no-maglev" } else { "" },
        if args.quick { " --quick" } else { "" },
    )
}

/// The iperf3 runs of a round, by streams: one, then `--iperf-parallel`.
fn iperf_streams(args: &BenchArgs) -> Vec<u32> {
    match (args.iperf_secs, args.iperf_parallel) {
        (0, _) => Vec::new(),
        (_, 0 | 1) => vec![1],
        (_, n) => vec![1, n],
    }
}

/// The iperf3 runs' paths: not the two-arm ones (the DNAT workloads are
/// wrk's and UDP's), and not nftables-jhash, whose iperf3 rule is
/// nftables' own (the iperf3 port goes to web1 alone either way).
fn iperf_paths(paths: &[Route]) -> Vec<Route> {
    paths
        .iter()
        .copied()
        .filter(|p| !p.two_arm() && *p != Route::NftablesJhash)
        .collect()
}

/// The runs of the whole bench, and its planned seconds (printed at its start).
struct Plan {
    wrk_runs: usize,
    iperf_runs: usize,
    udp_runs: usize,
    /// wrk runs of the flood section (each path and rule set: without, then with the flood).
    flood_runs: usize,
    secs: u64,
}

fn plan(args: &BenchArgs, paths: &[Route], sustained: usize) -> Plan {
    let rounds = args.rounds as usize;
    let wrk_runs = rounds * Conn::ALL.len() * paths.len();
    let iperf_runs = rounds * iperf_streams(args).len() * iperf_paths(paths).len();
    let udp_runs = rounds * udp_paths(args, paths).len();
    let flood_runs = args.flood().map_or(0, |p| p.len()) * flood::Rules::ALL.len() * 2 * args.flood_rounds as usize;
    let per = |runs: usize, secs: u64| runs as u64 * (secs + RUN_OVERHEAD_S);
    Plan {
        wrk_runs,
        iperf_runs,
        udp_runs,
        flood_runs,
        secs: FIXED_S
            + per(flood_runs, args.flood_secs)
            + per(wrk_runs, args.duration)
            + per(iperf_runs, args.iperf_secs)
            + per(udp_runs, args.udp_secs)
            + per(sustained, args.sustained_slices() * args.sustained_slice),
    }
}

/// The sustained runs' client sysctls, for their workloads' description.
fn client_line(bed: &Bed<'_>) -> String {
    bed.one.client_defaults.show()
}

/// The UDP runs of a round: the paths that carry UDP, then the XDP_TX floor
/// (which needs native XDP, as `xdp-native` does).
fn udp_paths(args: &BenchArgs, paths: &[Route]) -> Vec<Route> {
    if args.udp_secs == 0 {
        return Vec::new();
    }
    let mut v: Vec<Route> = paths.iter().copied().filter(|&p| carries_udp(p)).collect();
    v.push(Route::TxFloor);
    v
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

/// One testbed and what a run on it needs.
struct Side<'a> {
    tb: &'a Testbed,
    cfg: PathBuf,
    ns: Namespaces,
    /// wrk's latency script, in the testbed's directory.
    script: PathBuf,
    /// The client's sysctls before the tuning: Linux's defaults, for the sustained runs.
    client_defaults: Sysctls,
}

impl<'a> Side<'a> {
    fn new(tb: &'a Testbed, cfg: PathBuf, client_defaults: Sysctls) -> anyhow::Result<Self> {
        Ok(Self {
            tb,
            cfg,
            ns: Namespaces::of(tb)?,
            script: wrk::write_script(tb.dir())?,
            client_defaults,
        })
    }
}

/// What every run needs: the one-arm testbed, and the two-arm one when a
/// path needs it.
struct Bed<'a> {
    one: Side<'a>,
    two: Option<Side<'a>>,
    bin: &'a Path,
    args: &'a BenchArgs,
}

impl Bed<'_> {
    /// The testbed a path runs on.
    fn side(&self, path: Route) -> anyhow::Result<&Side<'_>> {
        if !path.two_arm() {
            return Ok(&self.one);
        }
        self.two
            .as_ref()
            .with_context(|| format!("{} needs the two-arm testbed, which wasn't built", path.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_docs_from_a_saved_results_file() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("results.json");
        std::fs::write(&from, results::fixture::RESULTS).unwrap();
        let md = dir.path().join("out/benchmarks.md");
        let argv = [
            "bench",
            "--write-docs",
            "--from",
            from.to_str().unwrap(),
            "--docs",
            md.to_str().unwrap(),
        ];
        bench(&BenchCli::try_parse_from(argv).unwrap().bench).unwrap();
        assert!(std::fs::read_to_string(&md).unwrap().contains("\n## Results\n"));
        assert!(dir.path().join("out/bench/close_rps.svg").exists());
        // A file without workloads writes nothing.
        std::fs::write(&from, "{}").unwrap();
        assert!(bench(&BenchCli::try_parse_from(argv).unwrap().bench).is_err());
    }

    #[test]
    fn quick_runs_are_short_and_keep_off_docs() {
        assert!(
            BenchCli::try_parse_from(["bench", "--from", "x.json"]).is_err(),
            "--from needs --write-docs"
        );
        let quick = BenchCli::try_parse_from(["bench", "--quick", "--write-docs"])
            .unwrap()
            .bench;
        let q = quick.effective();
        assert_eq!((q.rounds, q.duration, q.iperf_secs), (1, 1, 1));
        assert!(quick.docs_file(true).is_err());
        let full = BenchCli::try_parse_from(["bench", "--write-docs"]).unwrap().bench;
        assert_eq!(full.effective().rounds, 3);
        assert!(full.docs_file(false).unwrap().ends_with("docs/benchmarks.md"));
        assert_eq!((q.sustained_slices(), q.sustained_slice), (2, 1));
        assert_eq!(full.sustained_slices(), 6);
        assert_eq!(full.sustained().unwrap().len(), 4);
    }

    #[test]
    fn the_default_run_is_planned_under_14_minutes() {
        let a = BenchCli::try_parse_from(["bench", "--generic", "--write-docs"])
            .unwrap()
            .bench
            .effective();
        let paths = a.check().unwrap();
        assert_eq!(paths.len(), 9);
        let p = plan(&a, &paths, a.sustained().unwrap().len());
        // 9 paths x 2 wrk workloads; iperf3 over 6 of them (not jhash, not
        // DNAT) x 2; UDP over 7 and the floor; 3 rounds.
        assert_eq!((p.wrk_runs, p.iperf_runs, p.udp_runs), (54, 36, 24));
        // The flood section: 4 paths x 2 rule sets x (without, with the flood).
        assert_eq!(p.flood_runs, 16);
        assert!(p.secs < 14 * 60, "planned {} s", p.secs);
        let no_flood = BenchCli::try_parse_from(["bench", "--flood-secs", "0"]).unwrap().bench;
        assert!(no_flood.flood().unwrap().is_empty());
        let direct = BenchCli::try_parse_from(["bench", "--flood-paths", "direct"])
            .unwrap()
            .bench;
        assert!(direct.check().is_err(), "no rules to meet the flood without a balancer");
        let short = BenchCli::try_parse_from(["bench", "--sustained-secs", "5"])
            .unwrap()
            .bench;
        assert!(short.check().is_err(), "less than one 10 s slice");
        let none = BenchCli::try_parse_from(["bench", "--sustained-secs", "0"])
            .unwrap()
            .bench;
        assert!(none.sustained().unwrap().is_empty());
        assert_eq!(none.sustained_slices(), 0);
    }
}
