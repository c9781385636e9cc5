//! The results: the printed tables and ratios, and the JSON written out.
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::{
    BACKENDS, BenchArgs, Measured, Run,
    client::CLIENT_SYSCTLS,
    counters::{problems, server_counts},
    cpu::{BUSY_BEFORE, OTHERS_DURING},
    iperf::Iperf,
    route::Route,
    udp::Udp,
    workloads::{latency, workloads},
    wrk::{Conn, Wrk},
};
use crate::util::step;

/// What the balancer costs, per unit of work, in CPU-milliseconds: the run's
/// softirq time on all CPUs plus the CPU time of the processes in the LB's
/// namespace (from /proc/stat and /proc/PID/stat, in USER_HZ ticks, around
/// the run; see `Cpu::cost_s`), divided by the run's work: 1,000 new
/// connections (`Connection: close` runs; one connection per request), one
/// Gbit received (iperf3's `sum_received.bytes`), or a million UDP packets
/// delivered. The kernel doesn't split softirq time by namespace, and the
/// client's and servers' packet processing is in it too, so the path
/// `direct` (no balancer) has a cost of its own; the `lb_` figures subtract
/// direct's median from the path's, which leaves what the balancer added
/// (its softirq work such as XDP, bridge and veth hops, conntrack and NAT,
/// or TCP termination, plus its processes). With 2 cores shared by client,
/// LB and servers, and others' load on the machine, these are noisy; the
/// rounds' medians are what is reported.
pub(super) fn close_cost(r: &Run) -> Option<f64> {
    let w = r.wrk(Conn::Close)?;
    (w.requests > 0).then(|| r.cpu.cost_s() * 1e6 / w.requests as f64)
}

/// The XDP program's own time per new connection, in µs (bpf_stats over a
/// `Connection: close` run); None where no `lbxdp` program ran.
pub(super) fn close_program_cost(r: &Run) -> Option<f64> {
    per_close_connection(r, |p| p.run_time.as_secs_f64() * 1e6)
}

/// The XDP program's runs (packets) per new connection: both directions.
pub(super) fn close_program_packets(r: &Run) -> Option<f64> {
    per_close_connection(r, |p| p.runs as f64)
}

/// `of(the program's bpf_stats over the run)` per connection of a close run
/// through the agent's XDP program.
fn per_close_connection(r: &Run, of: impl Fn(&super::prog_time::ProgTime) -> f64) -> Option<f64> {
    let w = r.wrk(Conn::Close)?;
    (r.path.runs_lbxdp() && w.requests > 0 && r.cpu.prog.runs > 0).then(|| of(&r.cpu.prog) / w.requests as f64)
}

/// See [`close_cost`]: CPU-ms per Gbit received.
pub(super) fn iperf_cost(r: &Run, streams: u32) -> Option<f64> {
    let gbit = r.iperf(streams)?.bytes as f64 * 8.0 / 1e9;
    (gbit > 0.0).then(|| r.cpu.cost_s() * 1e3 / gbit)
}

/// See [`close_cost`]: CPU-ms per million UDP packets delivered.
pub(super) fn udp_cost(r: &Run) -> Option<f64> {
    let u = r.udp()?;
    (u.delivered > 0).then(|| r.cpu.cost_s() * 1e9 / u.delivered as f64)
}

/// Medians of one path over the rounds.
struct PathSummary {
    path: Route,
    close_rps: f64,
    close_p99_ms: f64,
    keepalive_rps: f64,
    keepalive_p99_ms: f64,
    iperf_gbps: f64,
    /// iperf3 with `--iperf-parallel` streams.
    parallel_gbps: f64,
    udp_pps: f64,
    udp_sent_pps: f64,
    udp_loss_pct: f64,
    /// CPU-ms per 1,000 connections, per Gbit (one and parallel streams), per
    /// million UDP packets: see [`close_cost`].
    close_cost: f64,
    iperf_cost: f64,
    parallel_cost: f64,
    udp_cost: f64,
}

impl PathSummary {
    fn of(path: Route, runs: &[Run], parallel: u32) -> Self {
        let mine = || runs.iter().filter(move |r| r.path == path);
        let wrk = |conn: Conn, f: fn(&Wrk) -> f64| median(mine().filter_map(|r| r.wrk(conn)).map(f).collect());
        let iperf = |n: u32| median(mine().filter_map(|r| r.iperf(n)).map(|i| i.bps / 1e9).collect());
        let udp = |f: fn(&Udp) -> f64| median(mine().filter_map(Run::udp).map(f).collect());
        let cost = |f: &dyn Fn(&Run) -> Option<f64>| median(mine().filter_map(f).collect());
        Self {
            path,
            close_rps: wrk(Conn::Close, |w| w.rps),
            close_p99_ms: wrk(Conn::Close, |w| w.lat_p99_ms),
            keepalive_rps: wrk(Conn::KeepAlive, |w| w.rps),
            keepalive_p99_ms: wrk(Conn::KeepAlive, |w| w.lat_p99_ms),
            iperf_gbps: iperf(1),
            parallel_gbps: if parallel > 1 { iperf(parallel) } else { f64::NAN },
            udp_pps: udp(Udp::pps),
            udp_sent_pps: udp(Udp::sent_pps),
            udp_loss_pct: udp(Udp::loss_pct),
            close_cost: cost(&close_cost),
            iperf_cost: cost(&|r| iperf_cost(r, 1)),
            parallel_cost: if parallel > 1 {
                cost(&|r| iperf_cost(r, parallel))
            } else {
                f64::NAN
            },
            udp_cost: cost(&udp_cost),
        }
    }

    /// What the balancer added to a cost: this path's minus direct's.
    fn lb(&self, direct: Option<&Self>, f: fn(&Self) -> f64) -> f64 {
        match direct {
            Some(d) if self.path != Route::Direct => f(self) - f(d),
            _ => f64::NAN,
        }
    }

    fn json(&self, direct: Option<&Self>, floor_pps: f64) -> Value {
        json!({
            "path": self.path.name(),
            "close_rps": nan_null(self.close_rps),
            "close_p99_ms": nan_null(self.close_p99_ms),
            "keepalive_rps": nan_null(self.keepalive_rps),
            "keepalive_p99_ms": nan_null(self.keepalive_p99_ms),
            "iperf3_gbps": nan_null(self.iperf_gbps),
            "iperf3_parallel_gbps": nan_null(self.parallel_gbps),
            "udp_pps": nan_null(self.udp_pps),
            "udp_sent_pps": nan_null(self.udp_sent_pps),
            "udp_loss_pct": nan_null(self.udp_loss_pct),
            "udp_of_tx_floor": nan_null(self.udp_pps / floor_pps),
            "close_cpu_ms_per_1k_conns": nan_null(self.close_cost),
            "close_lb_cpu_ms_per_1k_conns": nan_null(self.lb(direct, |s| s.close_cost)),
            "iperf3_cpu_ms_per_gbit": nan_null(self.iperf_cost),
            "iperf3_lb_cpu_ms_per_gbit": nan_null(self.lb(direct, |s| s.iperf_cost)),
            "iperf3_parallel_cpu_ms_per_gbit": nan_null(self.parallel_cost),
            "iperf3_parallel_lb_cpu_ms_per_gbit": nan_null(self.lb(direct, |s| s.parallel_cost)),
            "udp_cpu_ms_per_mpkt": nan_null(self.udp_cost),
            "udp_lb_cpu_ms_per_mpkt": nan_null(self.lb(direct, |s| s.udp_cost)),
        })
    }
}

/// NaN (nothing measured) as JSON null.
fn nan_null(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

/// The ratios the comparison shows, numerator / denominator, where both were measured.
const RATIOS: [(Route, Route); 14] = [
    (Route::XdpNative, Route::Nftables),
    (Route::XdpNative, Route::NftablesJhash),
    (Route::XdpGeneric, Route::Nftables),
    (Route::Nftables, Route::Haproxy),
    (Route::Nftables, Route::Direct),
    (Route::Proxy, Route::Haproxy),
    (Route::XdpNative, Route::Haproxy),
    (Route::XdpNative, Route::Direct),
    (Route::Proxy, Route::Direct),
    (Route::Haproxy, Route::Direct),
    (Route::XdpGeneric, Route::Direct),
    (Route::XdpNative, Route::Proxy),
    (Route::XdpGenericDnat, Route::NftablesDnat),
    (Route::XdpNativeDnat, Route::NftablesDnat),
];

/// Prints the summary tables and returns the JSON results.
pub(super) fn summarize(
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
    for n in iperf_streams(runs) {
        println!("    {iperf_line} (-P {n}; TARGET = web1 for direct, else the VIP):");
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
                .filter_map(|r| r.iperf(n).map(|i| (r, i)))
                .collect();
            if mine.is_empty() {
                // Not every path runs iperf3 (see mod.rs, iperf_paths).
                continue;
            }
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
                "streams": n,
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

    let udp = udp_table(args, paths, runs);

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
        // The two-arm paths have no direct of their own testbed.
        for &path in paths.iter().filter(|p| **p != Route::Direct && !p.two_arm()) {
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
    let kinds: Vec<(String, Workload)> = Conn::ALL
        .iter()
        .map(|&c| (c.name().to_string(), Workload::Wrk(c)))
        .chain(
            iperf_streams(runs)
                .into_iter()
                .map(|n| (format!("iperf3-P{n}"), Workload::Iperf(n))),
        )
        .chain(
            runs.iter()
                .any(|r| r.udp().is_some())
                .then(|| ("udp-64B".to_string(), Workload::Udp)),
        )
        .collect();
    for (kind, workload) in &kinds {
        let conn = match workload {
            Workload::Wrk(c) => Some(*c),
            _ => None,
        };
        for &path in paths.iter().filter(|p| **p != Route::Direct) {
            let mine: Vec<&Run> = runs
                .iter()
                .filter(|r| r.path == path)
                .filter(|r| match workload {
                    Workload::Wrk(c) => r.wrk(*c).is_some(),
                    Workload::Iperf(n) => r.iperf(*n).is_some(),
                    Workload::Udp => r.udp().is_some(),
                })
                .collect();
            if mine.is_empty() {
                continue;
            }
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
                "      {:<9} {:<11} mode {}; {}{}{}",
                kind,
                path.name(),
                mode.as_str().unwrap_or("?"),
                if shown.is_empty() { "-".into() } else { shown.join(", ") },
                if conn.is_some() {
                    format!(" for {requests} requests")
                } else {
                    String::new()
                },
                if troubled.is_empty() {
                    String::new()
                } else {
                    format!("; {}", troubled.join(", "))
                }
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

    let comparison = compare(paths, runs, args.iperf_parallel);

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
        "iperf3_parallel_streams": if args.iperf_parallel > 1 { json!(args.iperf_parallel) } else { Value::Null },
        "udp_runs": udp,
        "ratios_to_direct": ratios,
        "balancers": balancers,
        "maglev": maglev,
        // What the docs are written from (results::Published).
        "workloads": workloads(args.rounds, wrk_line, iperf_line, args.iperf_parallel, paths, runs),
        "latency": latency(paths, runs),
    })
}

/// A kind of run, for the balancers' counters.
#[derive(Clone, Copy)]
enum Workload {
    Wrk(Conn),
    Iperf(u32),
    Udp,
}

/// The iperf3 stream counts that were run, in order.
fn iperf_streams(runs: &[Run]) -> Vec<u32> {
    let mut n: Vec<u32> = runs
        .iter()
        .filter_map(|r| match r.measured {
            Measured::Iperf(n, _) => Some(n),
            _ => None,
        })
        .collect();
    n.sort_unstable();
    n.dedup();
    n
}

/// The UDP paths that ran (the XDP_TX floor last), as `paths` orders them.
fn udp_routes(paths: &[Route], runs: &[Run]) -> Vec<Route> {
    paths
        .iter()
        .copied()
        .chain([Route::TxFloor])
        .filter(|&p| runs.iter().any(|r| r.path == p && r.udp().is_some()))
        .collect()
}

/// The UDP table, printed, and its JSON.
fn udp_table(args: &BenchArgs, paths: &[Route], runs: &[Run]) -> Vec<Value> {
    let routes = udp_routes(paths, runs);
    if routes.is_empty() {
        return Vec::new();
    }
    println!(
        "    trafgen, 64-byte UDP for {} s from the client (to web1 for direct, else the LB; delivered = the servers' \
         eth0 rx, the client's for the XDP_TX floor):",
        args.udp_secs
    );
    println!(
        "    {:<14} {:>14} {:<30} {:>12} {:>8} {:>9} {:>11}",
        "path", "delivered/s", "per round (delivered/s)", "sent/s", "loss", "cpu busy", "ms/Mpkt"
    );
    let mut out = Vec::new();
    for path in routes {
        let mine: Vec<(&Run, &Udp)> = runs
            .iter()
            .filter(|r| r.path == path)
            .filter_map(|r| r.udp().map(|u| (r, u)))
            .collect();
        let pps: Vec<f64> = mine.iter().map(|(_, u)| u.pps()).collect();
        let per_round: Vec<String> = pps.iter().map(|v| format!("{v:.0}")).collect();
        let sent = median(mine.iter().map(|(_, u)| u.sent_pps()).collect());
        let loss = median(mine.iter().map(|(_, u)| u.loss_pct()).collect());
        let cpu = median(mine.iter().map(|(r, _)| r.cpu.busy).collect());
        let cost = median(mine.iter().filter_map(|(r, _)| udp_cost(r)).collect());
        println!(
            "    {:<14} {:>14.0} {:<30} {:>12.0} {:>7.1}% {:>8.0}% {:>11.1}",
            path.name(),
            median(pps.clone()),
            per_round.join(" "),
            sent,
            loss,
            cpu,
            cost
        );
        out.push(json!({
            "path": path.name(),
            "median_pps": nan_null(median(pps)),
            "median_sent_pps": nan_null(sent),
            "median_loss_pct": nan_null(loss),
            "median_cpu_busy_pct": nan_null(cpu),
            "median_cpu_ms_per_mpkt": nan_null(cost),
            "runs": mine.iter().map(|(r, _)| run_json(r)).collect::<Vec<_>>(),
        }));
    }
    out
}

/// One column of the side-by-side tables: header, JSON key of the ratio,
/// the figure, and its decimals.
type Column = (
    &'static str,
    &'static str,
    fn(&PathSummary, Option<&PathSummary>) -> f64,
    usize,
);

/// Rates and latencies (higher and lower is better, as the header says).
const SPEED: [Column; 8] = [
    ("close req/s", "close_rps", |s, _| s.close_rps, 0),
    ("close p99 ms", "close_p99_ms", |s, _| s.close_p99_ms, 2),
    ("keep-alive req/s", "keepalive_rps", |s, _| s.keepalive_rps, 0),
    ("k-a p99 ms", "keepalive_p99_ms", |s, _| s.keepalive_p99_ms, 2),
    ("iperf3 Gbit/s", "iperf3_gbps", |s, _| s.iperf_gbps, 2),
    ("-P Gbit/s", "iperf3_parallel_gbps", |s, _| s.parallel_gbps, 2),
    ("UDP pkt/s", "udp_pps", |s, _| s.udp_pps, 0),
    ("UDP loss %", "udp_loss_pct", |s, _| s.udp_loss_pct, 1),
];

/// CPU-ms per unit of work (see [`close_cost`]), in all and added by the
/// balancer (the path's minus direct's): lower is better.
const COST: [Column; 8] = [
    ("ms/1k conns", "close_cpu_per_conn", |s, _| s.close_cost, 1),
    ("lb ms/1k", "close_lb_cpu_per_conn", |s, d| s.lb(d, |x| x.close_cost), 1),
    ("ms/Gbit", "iperf3_cpu_per_gbit", |s, _| s.iperf_cost, 1),
    (
        "lb ms/Gbit",
        "iperf3_lb_cpu_per_gbit",
        |s, d| s.lb(d, |x| x.iperf_cost),
        1,
    ),
    ("-P ms/Gbit", "iperf3_parallel_cpu_per_gbit", |s, _| s.parallel_cost, 1),
    (
        "-P lb ms/Gbit",
        "iperf3_parallel_lb_cpu_per_gbit",
        |s, d| s.lb(d, |x| x.parallel_cost),
        1,
    ),
    ("UDP ms/Mpkt", "udp_cpu_per_mpkt", |s, _| s.udp_cost, 1),
    (
        "UDP lb ms/Mpkt",
        "udp_lb_cpu_per_mpkt",
        |s, d| s.lb(d, |x| x.udp_cost),
        1,
    ),
];

fn row(label: &str, cells: impl Iterator<Item = String>) {
    let cells: Vec<String> = cells.map(|c| format!(" {c:>16}")).collect();
    println!("    {label:<26}{}", cells.join(""));
}

fn cell(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "-".to_string()
    }
}

/// The side-by-side tables (medians per path) and the ratios between paths.
fn compare(paths: &[Route], runs: &[Run], parallel: u32) -> Value {
    let sums: Vec<PathSummary> = paths.iter().map(|&p| PathSummary::of(p, runs, parallel)).collect();
    let direct = sums.iter().find(|s| s.path == Route::Direct);
    let floor = median(
        runs.iter()
            .filter(|r| r.path == Route::TxFloor)
            .filter_map(Run::udp)
            .map(Udp::pps)
            .collect(),
    );
    let floor_sent = median(
        runs.iter()
            .filter(|r| r.path == Route::TxFloor)
            .filter_map(Run::udp)
            .map(Udp::sent_pps)
            .collect(),
    );
    step("bench: side by side (medians over rounds)");
    for (title, columns) in [
        ("rates and latencies", &SPEED),
        (
            "CPU-ms per 1,000 new connections (close), per Gbit (iperf3), per million UDP packets; \
             softirq + the LB's processes; lb = minus direct's",
            &COST,
        ),
    ] {
        println!("    {title}:");
        row("path", columns.iter().map(|c| c.0.to_string()));
        for s in &sums {
            row(s.path.name(), columns.iter().map(|c| cell((c.2)(s, direct), c.3)));
        }
    }
    if floor.is_finite() {
        println!(
            "    XDP_TX floor (MAC swap and XDP_TX on the LB's eth0): {floor:.0} pkt/s back at the client of \
             {floor_sent:.0} sent"
        );
        for s in sums.iter().filter(|s| s.udp_pps.is_finite()) {
            println!("      {:<16} UDP {:.2} of the floor", s.path.name(), s.udp_pps / floor);
        }
    }
    println!("    ratios of the medians (rates: higher is better; p99, loss and CPU: lower is better):");
    for columns in [&SPEED, &COST] {
        row("", columns.iter().map(|c| c.0.to_string()));
        for (num, den) in RATIOS {
            let (Some(n), Some(d)) = (sums.iter().find(|s| s.path == num), sums.iter().find(|s| s.path == den)) else {
                continue;
            };
            row(
                &format!("{}/{}", num.name(), den.name()),
                columns.iter().map(|c| cell((c.2)(n, direct) / (c.2)(d, direct), 2)),
            );
        }
    }
    let mut ratios = Vec::new();
    for (num, den) in RATIOS {
        let (Some(n), Some(d)) = (sums.iter().find(|s| s.path == num), sums.iter().find(|s| s.path == den)) else {
            continue;
        };
        let mut r = serde_json::Map::new();
        r.insert("ratio".into(), json!(format!("{}/{}", num.name(), den.name())));
        for c in SPEED.iter().chain(&COST) {
            r.insert(c.1.into(), nan_null((c.2)(n, direct) / (c.2)(d, direct)));
        }
        ratios.push(Value::Object(r));
    }
    json!({
        "paths": sums.iter().map(|s| s.json(direct, floor)).collect::<Vec<_>>(),
        "ratios": ratios,
        "xdp_tx_floor_pps": nan_null(floor),
        "xdp_tx_floor_sent_pps": nan_null(floor_sent),
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
        "cpu_softirq_s": nan_null(r.cpu.softirq_s),
        "lb_cpu_s": nan_null(r.cpu.lb_s),
        "xdp_program_s": r.cpu.prog.run_time.as_secs_f64(),
        "xdp_program_runs": r.cpu.prog.runs,
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
        Measured::Iperf(n, i) => {
            v["streams"] = json!(n);
            v["gbps"] = json!(i.bps / 1e9);
            v["bytes"] = json!(i.bytes);
            v["retransmits"] = json!(i.retransmits);
            v["sender_cpu_pct"] = nan_null(i.sender_cpu);
            v["receiver_cpu_pct"] = nan_null(i.receiver_cpu);
        }
        Measured::Udp(u) => {
            v["sent"] = json!(u.sent);
            v["delivered"] = json!(u.delivered);
            v["secs"] = json!(u.secs);
            v["pps"] = nan_null(u.pps());
            v["loss_pct"] = nan_null(u.loss_pct());
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

pub(super) fn ms(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v < 1.0 {
        format!("{:.0}us", v * 1000.0)
    } else {
        format!("{v:.2}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }
}
