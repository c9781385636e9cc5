//! Sustained new connections: `Connection: close` at full rate for a minute
//! from a client as Linux sets it up (no `tcp_tw_reuse`, the default port
//! range), through one balancer started once, read as back-to-back wrk runs
//! of one slice each (as lbxdp-agent/tests/xdp_load.rs reads its slices), so
//! that a collapse part-way (ports held in TIME_WAIT, a NAT table filling)
//! shows as slow slices, and the whole run as one rate with its errors.
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Bed,
    balancer::{ANSWER_WITHIN, Lb, client_time_wait, drain_time_wait, wait_answers},
    client::{retune_client, set_client},
    counters::problems,
    cpu::{Cpu, with_cpu},
    results::median,
    route::Route,
    wrk::{Conn, Wrk, run, url, wrk_command},
};
use crate::util::step;

/// One path's sustained run, as the docs show it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Sustained {
    pub(super) path: String,
    /// Each slice's length as asked of wrk, in seconds.
    pub(super) slice_secs: f64,
    /// Each slice's new connections/s, in order.
    pub(super) slices: Vec<f64>,
    /// Requests over the whole run, and the seconds wrk ran them in.
    pub(super) requests: u64,
    pub(super) secs: f64,
    pub(super) connect_errors: u64,
    pub(super) read_errors: u64,
    pub(super) write_errors: u64,
    pub(super) timeouts: u64,
    pub(super) non_2xx: u64,
    /// The client's sockets in TIME_WAIT after each slice: a client that
    /// closes first holds its port for 60 s, and once the even half of
    /// Linux's default range (which connect() takes first) is all held,
    /// every connect() scans for a port and the rate collapses.
    pub(super) client_time_wait: Vec<u64>,
}

impl Sustained {
    fn of(path: Route, slice_secs: u64, slices: &[Wrk]) -> Self {
        let sum = |i: usize| slices.iter().map(|w| w.socket_errors[i]).sum();
        Self {
            path: path.name().into(),
            slice_secs: slice_secs as f64,
            slices: slices.iter().map(|w| w.rps).collect(),
            requests: slices.iter().map(|w| w.requests).sum(),
            // wrk's own time per slice (requests over its rate); a slice
            // that completed nothing counts as its asked length.
            secs: slices
                .iter()
                .map(|w| {
                    if w.rps > 0.0 {
                        w.requests as f64 / w.rps
                    } else {
                        slice_secs as f64
                    }
                })
                .sum(),
            connect_errors: sum(0),
            read_errors: sum(1),
            write_errors: sum(2),
            timeouts: sum(3),
            non_2xx: slices.iter().map(|w| w.non_2xx).sum(),
            client_time_wait: Vec::new(),
        }
    }

    /// New connections/s over the whole run.
    pub(super) fn rps(&self) -> Option<f64> {
        (self.secs > 0.0).then(|| self.requests as f64 / self.secs)
    }

    pub(super) fn min_slice(&self) -> Option<f64> {
        self.slices.iter().copied().reduce(f64::min)
    }

    pub(super) fn median_slice(&self) -> Option<f64> {
        median(self.slices.clone())
    }

    pub(super) fn max_slice(&self) -> Option<f64> {
        self.slices.iter().copied().reduce(f64::max)
    }

    /// Socket errors of every kind.
    pub(super) fn errors(&self) -> u64 {
        self.connect_errors + self.read_errors + self.write_errors + self.timeouts
    }
}

/// One path's sustained run and what surrounded it.
pub(super) struct SustainedRun {
    pub(super) result: Sustained,
    pub(super) cpu: Cpu,
    pub(super) report: Option<Value>,
}

/// The sustained runs, one per path in `paths`, each with a fresh balancer
/// and every TIME_WAIT of the testbed drained before it.
pub(super) fn run_sustained(bed: &Bed<'_>, paths: &[Route]) -> anyhow::Result<Vec<SustainedRun>> {
    let args = bed.args;
    let slices = args.sustained_slices();
    if slices == 0 || paths.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for &path in paths {
        let side = bed.side(path)?;
        step(&format!(
            "bench: sustained {} s through {}: {slices} slices of {} s, client sysctls as Linux sets them ({})",
            slices * args.sustained_slice,
            path.name(),
            args.sustained_slice,
            side.client_defaults.show()
        ));
        set_client(side.tb, side.client_defaults.defaults())?;
        let run = one(bed, path, slices);
        // The other workloads' tuning comes back whatever happened.
        retune_client(side.tb)?;
        let run = run?;
        let s = &run.result;
        println!(
            "    {:<16} {:>9.0} req/s over {:.0} s; slices {}; client TIME_WAIT {}; errors: connect {} read {} \
             write {} timeout {} non-2xx {}{}",
            path.name(),
            s.rps().unwrap_or(f64::NAN),
            s.secs,
            s.slices.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(" "),
            s.client_time_wait
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            s.connect_errors,
            s.read_errors,
            s.write_errors,
            s.timeouts,
            s.non_2xx,
            run.report.as_ref().map(trouble).unwrap_or_default()
        );
        out.push(run);
    }
    Ok(out)
}

fn one(bed: &Bed<'_>, path: Route, slices: u64) -> anyhow::Result<SustainedRun> {
    let side = bed.side(path)?;
    let tb = side.tb;
    let args = bed.args;
    let url = url(tb, path);
    drain_time_wait(tb)?;
    let mut lb = Lb::start(tb, bed.bin, &side.cfg, path, &format!("sustained-{}", path.name()))?;
    wait_answers(tb, &url, ANSWER_WITHIN, &mut lb)?;
    let mut time_wait = Vec::new();
    let (wrks, cpu) = with_cpu(&side.ns, || {
        (0..slices)
            .map(|_| {
                let mut cmd = wrk_command(tb, args, &url, args.sustained_slice, Conn::Close, None);
                let w = run(&mut cmd, args.sustained_slice + args.timeout + 30)?;
                time_wait.push(client_time_wait(tb)?);
                Ok(w)
            })
            .collect::<anyhow::Result<Vec<Wrk>>>()
    })?;
    let report = lb.stop()?;
    let mut result = Sustained::of(path, args.sustained_slice, &wrks);
    result.client_time_wait = time_wait;
    Ok(SustainedRun { result, cpu, report })
}

/// The balancer's trouble counters that aren't zero, for the progress line.
fn trouble(report: &Value) -> String {
    let p: Vec<String> = problems(report)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    if p.is_empty() {
        String::new()
    } else {
        format!("; {}", p.join(" "))
    }
}

/// The summary table on stdout, and the runs' JSON (with CPU and reports).
pub(super) fn summarize(runs: &[SustainedRun]) -> Vec<Value> {
    if runs.is_empty() {
        return Vec::new();
    }
    step("bench: sustained new connections (default client; one round)");
    println!(
        "    {:<16} {:>11} {:>10} {:>12} {:>10} {:>9} {:>8} {:>8} {:>8}",
        "path", "whole req/s", "min slice", "median slice", "max slice", "connect", "r/w", "timeout", "non-2xx"
    );
    let opt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
    runs.iter()
        .map(|r| {
            let s = &r.result;
            println!(
                "    {:<16} {:>11} {:>10} {:>12} {:>10} {:>9} {:>8} {:>8} {:>8}",
                s.path,
                opt(s.rps()),
                opt(s.min_slice()),
                opt(s.median_slice()),
                opt(s.max_slice()),
                s.connect_errors,
                s.read_errors + s.write_errors,
                s.timeouts,
                s.non_2xx
            );
            json!({
                "path": s.path,
                "rps": s.rps(),
                "slices_rps": s.slices,
                "slice_secs": s.slice_secs,
                "requests": s.requests,
                "secs": s.secs,
                "socket_errors": {
                    "connect": s.connect_errors,
                    "read": s.read_errors,
                    "write": s.write_errors,
                    "timeout": s.timeouts,
                },
                "non_2xx": s.non_2xx,
                "client_time_wait": s.client_time_wait,
                "errors": s.errors(),
                "cpu_busy_pct": r.cpu.busy,
                "cpu_softirq_pct": r.cpu.softirq,
                "lb_cpu_cores": r.cpu.lb_cores,
                "cpu_noisy": r.cpu.noisy(),
                "report": r.report,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(rps: f64, requests: u64, connect: u64) -> Wrk {
        Wrk {
            rps,
            requests,
            socket_errors: [connect, 0, 0, 1],
            ..Wrk::default()
        }
    }

    #[test]
    fn a_run_from_its_slices() {
        let s = Sustained::of(
            Route::Haproxy,
            10,
            &[slice(1000.0, 10_000, 0), slice(50.0, 500, 7), slice(0.0, 0, 9)],
        );
        assert_eq!(s.path, "haproxy");
        assert_eq!(s.slices, [1000.0, 50.0, 0.0]);
        assert_eq!((s.requests, s.secs), (10_500, 30.0));
        assert_eq!(s.rps(), Some(350.0));
        assert_eq!(
            (s.min_slice(), s.median_slice(), s.max_slice()),
            (Some(0.0), Some(50.0), Some(1000.0))
        );
        assert_eq!((s.connect_errors, s.timeouts, s.errors()), (16, 3, 19));
        assert_eq!(Sustained::default().rps(), None);
    }
}
