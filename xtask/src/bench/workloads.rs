//! The workloads and latency curves the docs show, built from the runs: one
//! `Workload` per measured quantity, a row per path. A new workload is one
//! more entry in `workloads` (or a `Workload` built elsewhere and pushed).
use super::{
    BenchArgs, Run,
    report::{close_cost, close_program_cost, close_program_packets, iperf_cost},
    results::{Latency, Workload, median},
    route::Route,
    sustained::Sustained,
    wrk::Conn,
};

/// The prefix of the two-arm (DNAT) paths' workload keys and latency curves:
/// they are compared among themselves, on their own testbed.
pub(super) const DNAT: &str = "dnat";

pub(super) fn workloads(
    rounds: u32,
    wrk_line: &str,
    iperf_line: &str,
    parallel: u32,
    paths: &[Route],
    runs: &[Run],
) -> Vec<Workload> {
    let medians = format!("medians of {rounds} round(s)");
    let wrk = |conn: Conn| {
        let header = match conn {
            Conn::Close => " -H 'Connection: close'",
            Conn::KeepAlive => "",
        };
        format!("`{wrk_line}{header}`, {medians}.")
    };
    let (two, one): (Vec<Route>, Vec<Route>) = paths.iter().partition(|p| p.two_arm());
    let paths = &one[..];
    let mut w = vec![
        Workload::new("close_rps", "New connections/s", "req/s", true, &wrk(Conn::Close)).rows_by_path(
            paths,
            runs,
            |r| r.wrk(Conn::Close).map(|w| w.rps),
        ),
        Workload::new(
            "close_p99_ms",
            "p99 latency, new connections",
            "ms",
            false,
            &wrk(Conn::Close),
        )
        .rows_by_path(paths, runs, |r| r.wrk(Conn::Close).map(|w| w.lat_p99_ms)),
        Workload::new(
            "keepalive_rps",
            "Keep-alive requests/s",
            "req/s",
            true,
            &wrk(Conn::KeepAlive),
        )
        .rows_by_path(paths, runs, |r| r.wrk(Conn::KeepAlive).map(|w| w.rps)),
        Workload::new(
            "keepalive_p99_ms",
            "p99 latency, keep-alive",
            "ms",
            false,
            &wrk(Conn::KeepAlive),
        )
        .rows_by_path(paths, runs, |r| r.wrk(Conn::KeepAlive).map(|w| w.lat_p99_ms)),
        Workload::new(
            "iperf3_gbps",
            "One TCP stream, iperf3",
            "Gbit/s",
            true,
            &format!("`{iperf_line}`, {medians}."),
        )
        .rows_by_path(paths, runs, |r| r.iperf(1).map(|i| i.bps / 1e9)),
        Workload::new(
            "iperf3_parallel_gbps",
            &format!("{parallel} TCP streams, iperf3"),
            "Gbit/s",
            true,
            &format!("`{iperf_line} -P {parallel}`, {medians}."),
        )
        .rows_by_path(paths, runs, |r| r.iperf(parallel).map(|i| i.bps / 1e9)),
        Workload::new(
            "udp_pps",
            "64-byte UDP packets/s delivered to the servers",
            "pkt/s",
            true,
            &format!(
                "trafgen from the client, 16,384 flows to the VIP; delivered = the servers' rx packets \
                 (the XDP_TX floor: a program that only swaps MACs, what comes back to the client); {medians}."
            ),
        )
        .rows_by_path(paths, runs, |r| r.udp().map(|u| u.pps()))
        .rows_by_path(&[Route::TxFloor], runs, |r| r.udp().map(|u| u.pps())),
        Workload::new(
            "udp_loss_pct",
            "64-byte UDP: loss",
            "%",
            false,
            &format!("sent by trafgen but not delivered, {medians}."),
        )
        .rows_by_path(paths, runs, |r| r.udp().map(|u| u.loss_pct())),
        Workload::new(
            "cpu_per_conn",
            "CPU per 1,000 new connections (softirq + the LB's processes)",
            "CPU-ms",
            false,
            &format!(
                "machine-wide softirq and the LB namespace's process CPU time around each `Connection: close` \
                 run, per 1,000 connections (see report.rs, close_cost); {medians}."
            ),
        )
        .rows_by_path(paths, runs, close_cost),
        Workload::new(
            "xdp_program_per_conn",
            "The XDP program's own time per new connection (bpf_stats)",
            "µs",
            false,
            &format!(
                "the kernel's run_time_ns of the loaded `lbxdp` program over each `Connection: close` run, per \
                 connection (BPF statistics are on for the whole bench, which costs every XDP packet two clock \
                 reads); nftables' and the proxies' share of the CPU has no such counter; {medians}."
            ),
        )
        .rows_by_path(paths, runs, close_program_cost),
        Workload::new(
            "xdp_program_packets_per_conn",
            "Packets through the XDP program per new connection (both directions)",
            "packets",
            false,
            &format!("bpf_stats' run_cnt over each `Connection: close` run, per connection; {medians}."),
        )
        .rows_by_path(paths, runs, close_program_packets),
        Workload::new(
            "cpu_per_gbit",
            "CPU per Gbit, one iperf3 stream",
            "CPU-ms",
            false,
            &format!("as above, per Gbit received; {medians}."),
        )
        .rows_by_path(paths, runs, |r| iperf_cost(r, 1)),
    ];
    let dnat = |key: &str, title: &str, unit: &str, higher: bool, how: &str| {
        Workload::new(
            &format!("{DNAT}_{key}"),
            &format!("{title}, two-arm DNAT"),
            unit,
            higher,
            &format!(
                "On the two-arm testbed (the LB routes between the client's and the servers' segments; destination NAT only, the servers see the client): {how}"
            ),
        )
    };
    w.extend([
        dnat("close_rps", "New connections/s", "req/s", true, &wrk(Conn::Close))
            .rows_by_path(&two, runs, |r| r.wrk(Conn::Close).map(|w| w.rps)),
        dnat(
            "close_p99_ms",
            "p99 latency, new connections",
            "ms",
            false,
            &wrk(Conn::Close),
        )
        .rows_by_path(&two, runs, |r| r.wrk(Conn::Close).map(|w| w.lat_p99_ms)),
        dnat(
            "keepalive_rps",
            "Keep-alive requests/s",
            "req/s",
            true,
            &wrk(Conn::KeepAlive),
        )
        .rows_by_path(&two, runs, |r| r.wrk(Conn::KeepAlive).map(|w| w.rps)),
        dnat(
            "keepalive_p99_ms",
            "p99 latency, keep-alive",
            "ms",
            false,
            &wrk(Conn::KeepAlive),
        )
        .rows_by_path(&two, runs, |r| r.wrk(Conn::KeepAlive).map(|w| w.lat_p99_ms)),
        dnat(
            "udp_pps",
            "64-byte UDP packets/s delivered to the servers",
            "pkt/s",
            true,
            &format!("trafgen as above, to the VIP; {medians}."),
        )
        .rows_by_path(&two, runs, |r| r.udp().map(|u| u.pps())),
        dnat(
            "cpu_per_conn",
            "CPU per 1,000 new connections",
            "CPU-ms",
            false,
            &format!("as in the one-arm workload; {medians}."),
        )
        .rows_by_path(&two, runs, close_cost),
    ]);
    w.retain(|w| !w.rows.is_empty());
    w
}

/// The sustained runs' workloads: the whole run's rate, and its slowest
/// slice (where a collapse shows), one round.
pub(super) fn sustained(args: &BenchArgs, client: &str, runs: &[&Sustained]) -> Vec<Workload> {
    if runs.is_empty() {
        return Vec::new();
    }
    let secs = args.sustained_slices() * args.sustained_slice;
    let how = format!(
        "`wrk -t{} -c{} --timeout {}s -H 'Connection: close'` for {secs} s in back-to-back slices of {} s, one \
         balancer for the whole run, the client with Linux's defaults ({client}); one round.",
        args.threads, args.connections, args.timeout, args.sustained_slice
    );
    let row = |w: Workload, f: fn(&Sustained) -> Option<f64>| runs.iter().fold(w, |w, s| w.row(&s.path, vec![f(s)]));
    vec![
        row(
            Workload::new(
                "sustained_rps",
                &format!("Sustained new connections/s over {secs} s, default client"),
                "req/s",
                true,
                &how,
            ),
            Sustained::rps,
        ),
        row(
            Workload::new(
                "sustained_min_slice_rps",
                &format!("Slowest {} s slice of the sustained run", args.sustained_slice),
                "req/s",
                true,
                "The same runs: the new connections/s of each one's slowest slice (a collapse shows here).",
            ),
            Sustained::min_slice,
        ),
    ]
}

/// wrk's percentiles per workload and path, each the median over rounds;
/// the two-arm paths' under their own workload (`dnat-close`).
pub(super) fn latency(paths: &[Route], runs: &[Run]) -> Vec<Latency> {
    let mut out = Vec::new();
    let (two, one): (Vec<Route>, Vec<Route>) = paths.iter().partition(|p| p.two_arm());
    for (paths, prefix) in [(one, ""), (two, "dnat-")] {
        out.extend(latency_of(&paths, runs, prefix));
    }
    out
}

fn latency_of(paths: &[Route], runs: &[Run], prefix: &str) -> Vec<Latency> {
    let mut out = Vec::new();
    for conn in Conn::ALL {
        for &path in paths {
            let mine: Vec<&[(f64, f64)]> = runs
                .iter()
                .filter(|r| r.path == path)
                .filter_map(|r| r.wrk(conn))
                .map(|w| w.percentiles.as_slice())
                .collect();
            let Some(first) = mine.first() else {
                continue;
            };
            let percentiles: Vec<(f64, f64)> = first
                .iter()
                .filter_map(|&(pct, _)| {
                    let at: Vec<f64> = mine
                        .iter()
                        .filter_map(|run| run.iter().find(|(p, _)| *p == pct).map(|&(_, ms)| ms))
                        .filter(|ms| ms.is_finite())
                        .collect();
                    median(at).map(|ms| (pct, ms))
                })
                .collect();
            out.push(Latency {
                workload: format!("{prefix}{}", conn.name()),
                path: path.name().into(),
                percentiles,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{
        super::{Measured, cpu::Cpu, iperf::Iperf, wrk::Wrk},
        *,
    };

    fn wrk_run(round: u32, path: Route, conn: Conn, rps: f64, p50: f64) -> Run {
        Run {
            round,
            path,
            measured: Measured::Wrk(
                conn,
                Wrk {
                    rps,
                    lat_p99_ms: p50 * 4.0,
                    percentiles: vec![(50.0, p50), (99.0, p50 * 4.0)],
                    ..Wrk::default()
                },
            ),
            cpu: Cpu::default(),
            report: None,
        }
    }

    #[test]
    fn workloads_and_latency_from_runs() {
        let paths = [Route::Direct, Route::Haproxy];
        let runs = vec![
            wrk_run(2, Route::Direct, Conn::Close, 300.0, 1.0),
            wrk_run(1, Route::Direct, Conn::Close, 100.0, 3.0),
            wrk_run(1, Route::Haproxy, Conn::Close, 50.0, 2.0),
            Run {
                round: 1,
                path: Route::Haproxy,
                measured: Measured::Iperf(
                    1,
                    Iperf {
                        bps: 2e9,
                        ..Iperf::default()
                    },
                ),
                cpu: Cpu::default(),
                report: None,
            },
        ];
        let w = workloads(2, "wrk -t1", "iperf3 -c TARGET", 8, &paths, &runs);
        let keys: Vec<&str> = w.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(
            keys,
            ["close_rps", "close_p99_ms", "iperf3_gbps"],
            "no keep-alive runs, no keep-alive rows"
        );
        assert_eq!(w[0].rows[0].rounds, [Some(100.0), Some(300.0)], "in round order");
        assert_eq!(w[0].get("direct"), Some(200.0));
        assert_eq!(w[0].how, "`wrk -t1 -H 'Connection: close'`, medians of 2 round(s).");
        assert_eq!(w[2].rows.len(), 1);
        assert_eq!(w[2].get("haproxy"), Some(2.0));
        let l = latency(&paths, &runs);
        assert_eq!(l.len(), 2);
        assert_eq!((l[0].workload.as_str(), l[0].path.as_str()), ("close", "direct"));
        assert_eq!(l[0].percentiles, [(50.0, 2.0), (99.0, 8.0)]);
        assert_eq!(l[1].percentiles, [(50.0, 2.0), (99.0, 8.0)]);
    }
}
