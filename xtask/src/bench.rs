//! `cargo xtask bench`: HTTP requests per second through the XDP balancer
//! compared with straight to one backend, measured side by side in one run.
//!
//! One namespace testbed (one-arm, 3 nginx backends) serves every scenario;
//! wrk runs in the client's namespace. The scenarios are interleaved in rounds
//! (keep-alive: direct, XDP; then `Connection: close`: direct, XDP; the order
//! of the paths flips every round) so that the machine's noise hits them all
//! alike, and the result is a ratio of medians: XDP / direct. The agent is
//! started for each XDP run and stopped after it, so each run has its own
//! counters (flows per server, drops) from the agent's JSON report.
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, bail};
use clap::Args;
use lbxdp_testbed::{Layout, Testbed, Topology};
use serde_json::{Value, json};

use crate::{
    agent::{self, Agent, AgentRun},
    build::{self, BuildArgs},
    util::{self, step},
};

#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
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
    /// Also measure the agent in generic (skb) XDP mode.
    #[arg(long)]
    pub generic: bool,
    /// Where to write the results as JSON [default: target/bench/latest.json].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

impl BenchArgs {
    fn check(&self) -> anyhow::Result<()> {
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
        Ok(())
    }
}

const BACKENDS: usize = 3;
/// Above this machine-wide CPU use (%) just before a run, warn about noise.
const BUSY_BEFORE: f64 = 15.0;

/// Which way the requests go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// Straight to one backend (web1), no balancer on the way.
    Direct,
    /// To the VIP, through the agent in this XDP mode.
    Xdp(&'static str),
}

impl Route {
    fn name(self) -> String {
        match self {
            Self::Direct => "direct".into(),
            Self::Xdp(mode) => format!("xdp-{mode}"),
        }
    }
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

/// One wrk run and what surrounded it.
struct Run {
    round: u32,
    path: Route,
    conn: Conn,
    wrk: Wrk,
    /// Machine-wide CPU use in the half second before the run (others' load), in %.
    cpu_before: f64,
    /// Machine-wide CPU use during the run, in % of all cores: busy, and softirq alone.
    cpu_busy: f64,
    cpu_softirq: f64,
    /// The agent's JSON report (XDP runs only).
    report: Option<Value>,
}

pub fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    args.check()?;
    if !util::is_root() {
        bail!("the benchmark builds network namespaces and loads XDP: run it as root (sudo cargo xtask bench)");
    }
    let started = Instant::now();
    let bin = build::build(&BuildArgs::default())?;

    step(&format!(
        "bench: testbed (client, lb, {BACKENDS} nginx backends on one bridge)"
    ));
    let mut tb = Testbed::build(&Topology {
        layout: Layout::OneArm,
        backends: BACKENDS,
        nginx: true,
    })?;
    let cfg = tb.dir().join("haproxy.cfg");
    std::fs::write(&cfg, agent::haproxy_cfg(&tb)).context("writing haproxy.cfg")?;
    tb.attach_peer_pass(&bin, &tb.lb.clone())?;

    let mut paths = vec![Route::Direct, Route::Xdp("native")];
    if args.generic {
        paths.push(Route::Xdp("generic"));
    }
    let wrk_line = format!(
        "wrk -t{} -c{} -d{}s --timeout {}s --latency",
        args.threads, args.connections, args.duration, args.timeout
    );
    let total = args.rounds as usize * Conn::ALL.len() * paths.len();
    step(&format!(
        "bench: {total} runs of `{wrk_line}` from the client ({} round(s); direct = http://{}/, xdp = http://{}/), ~{} s",
        args.rounds,
        tb.backends[0].v4(),
        tb.lb.v4(),
        total as u64 * (args.duration + 2)
    ));
    let mut runs = Vec::with_capacity(total);
    for round in 1..=args.rounds {
        for conn in Conn::ALL {
            let mut order = paths.clone();
            if round % 2 == 0 {
                order.reverse();
            }
            for path in order {
                let run = run_one(&tb, &bin, &cfg, args, round, path, conn)
                    .with_context(|| format!("round {round}, {} {}", conn.name(), path.name()))?;
                println!(
                    "    round {round}/{} {:<9} {:<12} {:>9.0} req/s  avg {:>8}  p99 {:>8}  errors {:>5}  cpu {:>3.0}% (softirq {:>2.0}%){}",
                    args.rounds,
                    conn.name(),
                    path.name(),
                    run.wrk.rps,
                    ms(run.wrk.lat_avg_ms),
                    ms(run.wrk.lat_p99_ms),
                    run.wrk.errors(),
                    run.cpu_busy,
                    run.cpu_softirq,
                    run.report.as_ref().map(agent_note).unwrap_or_default()
                );
                if run.cpu_before > BUSY_BEFORE {
                    println!(
                        "      (this run started with the CPUs {:.0}% busy: something else is running; expect noise)",
                        run.cpu_before
                    );
                }
                runs.push(run);
            }
        }
    }

    let results = summarize(args, &wrk_line, &paths, &runs, started.elapsed());
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

/// One bounded wrk run of a scenario; for XDP, with a fresh agent around it.
fn run_one(
    tb: &Testbed,
    bin: &Path,
    cfg: &Path,
    args: &BenchArgs,
    round: u32,
    path: Route,
    conn: Conn,
) -> anyhow::Result<Run> {
    let tag = format!("r{round}-{}-{}", conn.name(), path.name());
    let (url, mut agent) = match path {
        Route::Direct => (format!("http://{}/", tb.backends[0].v4()), None),
        Route::Xdp(mode) => {
            let agent = Agent::start(
                tb,
                AgentRun {
                    bin,
                    cfg,
                    args: &["--xdp-mode", mode],
                    report: tb.dir().join(format!("agent-{tag}.json")),
                    log: Some(tb.dir().join(format!("agent-{tag}.log"))),
                },
            )?;
            (format!("http://{}/", tb.lb.v4()), Some(agent))
        }
    };
    // One answer first: a broken path fails here in seconds, not after a whole
    // run. The agent attaches before it fills its maps, so the VIP may refuse
    // connections for a moment after the attach.
    wait_answers(tb, &url, Duration::from_secs(10))?;

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
    // The machine before the run: what else (builds, tests) is using the CPUs.
    let idle_from = cpu_times()?;
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_times()?;
    let (cpu_before, _) = cpu_use(&idle_from, &before);
    let out = cmd
        .output_timeout(Duration::from_secs(args.duration + args.timeout + 30))
        .context("running wrk (`cargo xtask setup` installs it)")?;
    let after = cpu_times()?;
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
    let (cpu_busy, cpu_softirq) = cpu_use(&before, &after);

    let report = match agent.as_mut() {
        Some(agent) => {
            let (status, text) = agent.stop()?;
            if !status.success() {
                bail!("the agent exited with {status}");
            }
            Some(agent::parse_report(&text)?)
        }
        None => None,
    };
    Ok(Run {
        round,
        path,
        conn,
        wrk,
        cpu_before,
        cpu_busy,
        cpu_softirq,
        report,
    })
}

/// Retries one GET from the client (bounded) until `url` answers.
fn wait_answers(tb: &Testbed, url: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        match agent::curl(tb, url) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(e).with_context(|| format!("{url} did not answer within {within:?}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Flows and drops from an agent report, for the progress line.
fn agent_note(report: &Value) -> String {
    let flows: Vec<String> = report["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("{}={}", s["name"].as_str().unwrap_or("?"), s["new_flows"]))
        .collect();
    let drops = frontend_drops(report);
    let mut note = format!(
        "  mode {}, flows {}",
        report["mode"].as_str().unwrap_or("?"),
        flows.join(" ")
    );
    if drops.iter().any(|(_, n)| *n > 0) {
        let d: Vec<String> = drops.iter().map(|(k, n)| format!("{k}={n}")).collect();
        note.push_str(&format!(", DROPS {}", d.join(" ")));
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

/// The frontends' drop (and pass) counters, summed over frontends.
fn frontend_drops(report: &Value) -> Vec<(&'static str, u64)> {
    DROP_KINDS
        .iter()
        .map(|&k| {
            let n = report["frontends"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| f[k].as_u64().unwrap_or(0))
                .sum();
            (k, n)
        })
        .collect()
}

/// Prints the summary table and returns the JSON results.
fn summarize(args: &BenchArgs, wrk_line: &str, paths: &[Route], runs: &[Run], took: Duration) -> Value {
    step(&format!(
        "bench: results ({wrk_line}; {} round(s), medians over rounds)",
        args.rounds
    ));
    println!(
        "    {:<9} {:<12} {:>12}  {:<28} {:>9} {:>9} {:>7} {:>9}",
        "conn", "path", "median req/s", "per round (req/s)", "avg lat", "p99 lat", "errors", "cpu busy"
    );
    let mut scenarios = Vec::new();
    for conn in Conn::ALL {
        for &path in paths {
            let mine: Vec<&Run> = runs.iter().filter(|r| r.path == path && r.conn == conn).collect();
            let rps: Vec<f64> = mine.iter().map(|r| r.wrk.rps).collect();
            let per_round: Vec<String> = rps.iter().map(|v| format!("{v:.0}")).collect();
            let errors: u64 = mine.iter().map(|r| r.wrk.errors()).sum();
            let lat_avg = median(mine.iter().map(|r| r.wrk.lat_avg_ms).collect());
            let lat_p99 = median(mine.iter().map(|r| r.wrk.lat_p99_ms).collect());
            let cpu = median(mine.iter().map(|r| r.cpu_busy).collect());
            println!(
                "    {:<9} {:<12} {:>12.0}  {:<28} {:>9} {:>9} {:>7} {:>8.0}%",
                conn.name(),
                path.name(),
                median(rps.clone()),
                per_round.join(" "),
                ms(lat_avg),
                ms(lat_p99),
                errors,
                cpu
            );
            scenarios.push(json!({
                "conn": conn.name(),
                "path": path.name(),
                "median_rps": median(rps),
                "median_latency_avg_ms": lat_avg,
                "median_latency_p99_ms": lat_p99,
                "errors": errors,
                "median_cpu_busy_pct": cpu,
                "runs": mine.iter().map(|r| run_json(r)).collect::<Vec<_>>(),
            }));
        }
    }

    println!("    ratios, XDP / direct (ratio of the medians; in brackets, each round's own ratio):");
    let mut ratios = Vec::new();
    for conn in Conn::ALL {
        let rps = |path: Route| -> Vec<(u32, f64)> {
            runs.iter()
                .filter(|r| r.path == path && r.conn == conn)
                .map(|r| (r.round, r.wrk.rps))
                .collect()
        };
        let direct = rps(Route::Direct);
        let direct_median = median(direct.iter().map(|&(_, v)| v).collect());
        for &path in paths.iter().filter(|p| **p != Route::Direct) {
            let xdp = rps(path);
            let ratio = median(xdp.iter().map(|&(_, v)| v).collect()) / direct_median;
            let per_round: Vec<f64> = xdp
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
                "xdp": path.name(),
                "ratio_of_medians": ratio,
                "per_round": per_round,
            }));
        }
    }

    println!("    the agent's counters, summed over rounds (flows = new flows per server):");
    let mut agents = Vec::new();
    for conn in Conn::ALL {
        for &path in paths.iter().filter(|p| **p != Route::Direct) {
            let reports: Vec<&Value> = runs
                .iter()
                .filter(|r| r.path == path && r.conn == conn)
                .filter_map(|r| r.report.as_ref())
                .collect();
            let mode = reports.first().map(|r| r["mode"].clone()).unwrap_or(Value::Null);
            let mut servers: Vec<(String, u64)> = Vec::new();
            for s in reports
                .iter()
                .flat_map(|r| r["servers"].as_array().into_iter().flatten())
            {
                let name = s["name"].as_str().unwrap_or("?").to_string();
                let n = s["new_flows"].as_u64().unwrap_or(0);
                match servers.iter_mut().find(|(k, _)| *k == name) {
                    Some((_, total)) => *total += n,
                    None => servers.push((name, n)),
                }
            }
            let drops: Vec<(&str, u64)> = DROP_KINDS
                .iter()
                .map(|&k| {
                    let n = reports
                        .iter()
                        .flat_map(|r| frontend_drops(r))
                        .filter(|(kind, _)| *kind == k)
                        .map(|(_, n)| n)
                        .sum();
                    (k, n)
                })
                .collect();
            let requests: u64 = runs
                .iter()
                .filter(|r| r.path == path && r.conn == conn)
                .map(|r| r.wrk.requests)
                .sum();
            let flows: u64 = servers.iter().map(|(_, n)| n).sum();
            let shown: Vec<String> = servers.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let dropped: Vec<String> = drops.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!(
                "      {:<9} {:<12} mode {}; flows {} ({}) for {} requests; {}",
                conn.name(),
                path.name(),
                mode.as_str().unwrap_or("?"),
                flows,
                shown.join(", "),
                requests,
                dropped.join(", ")
            );
            agents.push(json!({
                "conn": conn.name(),
                "path": path.name(),
                "mode": mode,
                "requests": requests,
                "new_flows_per_server": servers.iter().map(|(k, n)| (k.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
                "frontend_drops": drops.iter().map(|(k, n)| (k.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            }));
        }
    }

    let noisy = runs.iter().filter(|r| r.cpu_before > BUSY_BEFORE).count();
    if noisy > 0 {
        println!(
            "    NOTE: {noisy} of {} runs started with the CPUs over {BUSY_BEFORE}% busy (something else running): \
             the figures are noisy; rerun on a quiet machine",
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
        "rounds": args.rounds,
        "backends": BACKENDS,
        "direct_target": "web1 (one nginx, 1 worker)",
        "scenarios": scenarios,
        "ratios": ratios,
        "agent": agents,
    })
}

fn run_json(r: &Run) -> Value {
    json!({
        "round": r.round,
        "rps": r.wrk.rps,
        "requests": r.wrk.requests,
        "latency_avg_ms": r.wrk.lat_avg_ms,
        "latency_p99_ms": r.wrk.lat_p99_ms,
        "socket_errors": {
            "connect": r.wrk.socket_errors[0],
            "read": r.wrk.socket_errors[1],
            "write": r.wrk.socket_errors[2],
            "timeout": r.wrk.socket_errors[3],
        },
        "non_2xx": r.wrk.non_2xx,
        "cpu_busy_before_pct": r.cpu_before,
        "cpu_busy_pct": r.cpu_busy,
        "cpu_softirq_pct": r.cpu_softirq,
        "agent_report": r.report,
    })
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
    fn cpu_shares() {
        let (busy, soft) = cpu_use(&[0; 10], &[10, 0, 20, 50, 0, 0, 20, 0, 0, 0]);
        assert_eq!(busy, 50.0);
        assert_eq!(soft, 20.0);
    }
}
