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
    workloads::{latency, workloads},
    wrk::{Conn, Wrk},
};
use crate::util::step;

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
        // What the docs are written from (results::Published).
        "workloads": workloads(args.rounds, wrk_line, iperf_line, paths, runs),
        "latency": latency(paths, runs),
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
