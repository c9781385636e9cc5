//! The part of `results.json` that the docs are written from: every workload
//! as a table of medians by path, the latency percentiles, the machine and
//! the commands. It is read back with serde, so `--write-docs --from FILE`
//! renders a saved run without measuring again; everything else in the file
//! (per-run details, counters) is ignored on the way back.
use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use super::{Run, machine::Machine, route::Route, sustained::Sustained};

/// What the docs show. Missing keys read as empty, so an older or partial
/// results file still renders.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Published {
    pub(super) machine: Machine,
    /// How to reproduce: the xtask command line, then each tool's.
    pub(super) commands: Vec<String>,
    /// A `--quick` smoke run: its figures mean nothing.
    pub(super) quick: bool,
    pub(super) rounds: u32,
    pub(super) noisy_runs: usize,
    pub(super) started_unix: u64,
    pub(super) took_s: f64,
    pub(super) workloads: Vec<Workload>,
    pub(super) latency: Vec<Latency>,
    /// The sustained runs, slice by slice.
    pub(super) sustained: Vec<Sustained>,
    /// The Maglev micro-benchmark's lines, as it printed them.
    pub(super) maglev: Vec<String>,
    /// Legitimate new connections under a spoofed SYN flood (it may come
    /// from a later `--flood-only` run than the rest).
    pub(super) flood: Option<super::flood::Flood>,
}

/// One measured quantity across paths (or, for the program alone, across
/// cases): the rows of one table and one bar chart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Workload {
    /// Stable name: the targets find workloads by it, and the plot's file is
    /// named after it (`close_rps` → `bench/close_rps.svg`).
    pub(super) key: String,
    pub(super) title: String,
    pub(super) unit: String,
    pub(super) higher_is_better: bool,
    /// How it was measured, in one line.
    pub(super) how: String,
    pub(super) rows: Vec<Row>,
}

/// One path's (or case's) figure: the median over rounds, and each round's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Row {
    pub(super) name: String,
    /// None: not measured (or nothing came out of it).
    pub(super) median: Option<f64>,
    pub(super) rounds: Vec<Option<f64>>,
}

/// wrk's latency distribution through one path: (percentile, ms), each the
/// median over rounds (many percentiles from the bench's wrk script; an
/// older results file has wrk's four).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Latency {
    /// The wrk workload (`close`, `keepalive`).
    pub(super) workload: String,
    pub(super) path: String,
    pub(super) percentiles: Vec<(f64, f64)>,
}

impl Workload {
    pub(super) fn new(key: &str, title: &str, unit: &str, higher_is_better: bool, how: &str) -> Self {
        Self {
            key: key.into(),
            title: title.into(),
            unit: unit.into(),
            higher_is_better,
            how: how.into(),
            rows: Vec::new(),
        }
    }

    /// Adds a row from its rounds' values (NaN or None: nothing measured).
    pub(super) fn row(mut self, name: &str, rounds: Vec<Option<f64>>) -> Self {
        let rounds: Vec<Option<f64>> = rounds.into_iter().map(|v| v.filter(|v| v.is_finite())).collect();
        let median = median(rounds.iter().flatten().copied().collect());
        self.rows.push(Row {
            name: name.into(),
            median,
            rounds,
        });
        self
    }

    /// One row per path, each from the runs of that path that `value` reads a
    /// figure from, in round order. Paths with no such run get no row.
    pub(super) fn rows_by_path(mut self, paths: &[Route], runs: &[Run], value: impl Fn(&Run) -> Option<f64>) -> Self {
        for &path in paths {
            let mut mine: Vec<(u32, Option<f64>)> = runs
                .iter()
                .filter(|r| r.path == path)
                .filter_map(|r| value(r).map(|v| (r.round, Some(v))))
                .collect();
            if mine.is_empty() {
                continue;
            }
            mine.sort_by_key(|&(round, _)| round);
            self = self.row(path.name(), mine.into_iter().map(|(_, v)| v).collect());
        }
        self
    }

    pub(super) fn get(&self, name: &str) -> Option<f64> {
        self.rows.iter().find(|r| r.name == name).and_then(|r| r.median)
    }
}

impl Published {
    pub(super) fn from_json(v: &serde_json::Value) -> anyhow::Result<Self> {
        serde_json::from_value(v.clone()).context("the results' published part (machine, workloads, latency)")
    }

    /// The smoke test's check on the sustained runs: each path ran and every
    /// slice gave a rate (a zero is a rate: a collapse is a result).
    pub(super) fn check_sustained(&self, paths: &[&str]) -> anyhow::Result<()> {
        for path in paths {
            let Some(s) = self.sustained.iter().find(|s| s.path == *path) else {
                bail!("no sustained run through {path}");
            };
            if s.slices.is_empty() || s.slices.iter().any(|v| !v.is_finite()) || s.rps().is_none() {
                bail!("the sustained run through {path} gave no rate: {s:?}");
            }
        }
        Ok(())
    }

    pub(super) fn workload(&self, key: &str) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.key == key)
    }

    /// The smoke test's check on a `--quick` run: every part ran and gave a
    /// number. Nothing about speed: a quick run times nothing.
    pub(super) fn check_ran(&self, paths: &[&str]) -> anyhow::Result<()> {
        if self.workloads.is_empty() {
            bail!("no workload was measured");
        }
        for w in &self.workloads {
            if !w.rows.iter().any(|r| r.median.is_some()) {
                bail!("workload {} gave no number on any path", w.key);
            }
        }
        for path in paths {
            let some = |w: &Workload| w.rows.iter().any(|r| r.name == *path && r.median.is_some());
            if !self.workloads.iter().any(some) {
                bail!("path {path} gave no number in any workload");
            }
        }
        for l in &self.latency {
            if l.percentiles.is_empty() || l.percentiles.iter().any(|(_, ms)| !ms.is_finite()) {
                bail!("no latency percentiles for {} through {}", l.workload, l.path);
            }
        }
        Ok(())
    }
}

/// The median of the values; None when there are none.
pub(super) fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[cfg(test)]
pub(super) mod fixture {
    //! A results file as a real (short) run writes it, for the docs' tests.
    use super::*;

    pub(in super::super) const RESULTS: &str = r#"{
      "noisy_runs": 1,
      "started_unix": 1795000000,
      "took_s": 412.5,
      "rounds": 3,
      "quick": false,
      "paths": ["direct", "xdp-native", "proxy", "haproxy", "nftables"],
      "machine": {
        "kernel": "Linux 6.18.0-test #1 SMP PREEMPT_DYNAMIC x86_64",
        "cpu_model": "Test CPU @ 2.00GHz",
        "cores": 2,
        "memory": "3.8 GiB",
        "ipvs": false,
        "ipvs_evidence": "/proc/config.gz: CONFIG_IP_VS is not set",
        "commit": "abc1234",
        "tools": ["HAProxy version 2.6.12", "nftables v1.0.6"]
      },
      "commands": [
        "sudo cargo xtask bench --rounds 3 --duration 5",
        "wrk -t2 -c64 -d5s --timeout 2s --latency [-H 'Connection: close'] http://TARGET/"
      ],
      "workloads": [
        {"key": "close_rps", "title": "New connections/s", "unit": "req/s", "higher_is_better": true,
         "how": "wrk -H 'Connection: close'",
         "rows": [
           {"name": "direct", "median": 20000.0, "rounds": [20000.0, 19000.0, 21000.0]},
           {"name": "xdp-native", "median": 15000.0, "rounds": [15000.0, 14000.0, 16000.0]},
           {"name": "proxy", "median": 9000.0, "rounds": [9000.0, null, 9000.0]},
           {"name": "haproxy", "median": 10000.0, "rounds": [10000.0, 10000.0, 10000.0]},
           {"name": "nftables", "median": 12000.0, "rounds": [12000.0, 12000.0, 12000.0]}
         ]},
        {"key": "close_p99_ms", "title": "p99 latency, new connections", "unit": "ms", "higher_is_better": false,
         "how": "wrk --latency",
         "rows": [
           {"name": "xdp-native", "median": 4.0, "rounds": [4.0]},
           {"name": "proxy", "median": 6.0, "rounds": [6.0]},
           {"name": "haproxy", "median": 5.0, "rounds": [5.0]}
         ]},
        {"key": "udp_pps", "title": "64-byte UDP packets/s", "unit": "packets/s", "higher_is_better": true,
         "how": "trafgen",
         "rows": [
           {"name": "xdp-native", "median": 2000000.0, "rounds": [2000000.0]},
           {"name": "xdp-tx-floor", "median": 3000000.0, "rounds": [3000000.0]}
         ]}
      ],
      "latency": [
        {"workload": "close", "path": "xdp-native", "percentiles": [[50, 1.0], [75, 1.5], [90, 2.0], [99, 4.0]]},
        {"workload": "close", "path": "haproxy", "percentiles": [[50, 1.2], [75, 1.8], [90, 2.5], [99, 5.0]]}
      ],
      "sustained": [
        {"path": "xdp-generic", "slice_secs": 10, "slices": [15000, 14000, 15500], "requests": 445000, "secs": 30.0},
        {"path": "haproxy", "slice_secs": 10, "slices": [9000, 400, 380], "requests": 97800, "secs": 30.0,
         "connect_errors": 120000, "timeouts": 3}
      ],
      "maglev": ["maglev build, 3 servers, M=65537: median 1.2ms"],
      "flood": {"started_unix": 1795000500, "commit": "def5678", "took_s": 80.0, "secs": 3, "rate_pps": 100000,
        "commands": ["cargo xtask bench --flood-only"],
        "rows": [
          {"rules": "blocklist", "path": "xdp-generic", "base_rps": 10000.0, "flood_rps": 9500.0,
           "base_lb_cores": 0.01, "flood_lb_cores": 0.01, "base_softirq_cores": 0.5, "flood_softirq_cores": 0.9,
           "flood_prog_ms_per_s": 40.0, "flood_sent": 400000, "denied": 399000},
          {"rules": "blocklist", "path": "haproxy", "base_rps": 8000.0, "flood_rps": 2000.0, "flood_errors": 12,
           "flood_sent": 400000, "denied": 0},
          {"rules": "rate-limit", "path": "xdp-native", "not_run": "the agent exited early: refused | rules"}
        ]},
      "scenarios": [{"ignored": true}]
    }"#;

    pub(in super::super) fn published() -> Published {
        let v: serde_json::Value = serde_json::from_str(RESULTS).unwrap();
        Published::from_json(&v).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_needs_and_ignores_the_rest() {
        let p = fixture::published();
        assert_eq!(p.machine.cores, 2);
        assert_eq!(p.workloads.len(), 3);
        assert_eq!(p.workload("close_rps").and_then(|w| w.get("haproxy")), Some(10000.0));
        assert_eq!(p.workloads[0].rows[2].rounds, [Some(9000.0), None, Some(9000.0)]);
        assert_eq!(p.latency[1].percentiles[3], (99.0, 5.0));
        assert_eq!(p.sustained[1].slices, [9000.0, 400.0, 380.0]);
        assert_eq!(p.sustained[1].connect_errors, 120_000);
        p.check_sustained(&["xdp-generic", "haproxy"]).unwrap();
        assert!(p.check_sustained(&["proxy"]).is_err());
        // Round trip: what is written reads back the same.
        let again = Published::from_json(&serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(again, p);
        // An empty file renders too (nothing in it).
        assert_eq!(
            Published::from_json(&serde_json::json!({})).unwrap(),
            Published::default()
        );
    }

    #[test]
    fn rows_take_medians_and_drop_nan() {
        let w = Workload::new("k", "t", "u", true, "h")
            .row("a", vec![Some(3.0), Some(f64::NAN), Some(1.0)])
            .row("b", vec![None]);
        assert_eq!(w.rows[0].median, Some(2.0));
        assert_eq!(w.rows[0].rounds, [Some(3.0), None, Some(1.0)]);
        assert_eq!(w.get("b"), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn the_smoke_check_wants_a_number_from_every_part() {
        let p = fixture::published();
        p.check_ran(&["direct", "haproxy"]).unwrap();
        assert!(p.check_ran(&["nftables-jhash"]).is_err());
        let mut empty = p.clone();
        empty.workloads[2].rows.iter_mut().for_each(|r| r.median = None);
        assert!(format!("{:#}", empty.check_ran(&[]).unwrap_err()).contains("udp_pps"));
        assert!(Published::default().check_ran(&[]).is_err());
    }
}
