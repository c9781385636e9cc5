//! What the XDP program itself costs per packet under BPF_PROG_TEST_RUN, and
//! how long a 10,000-server configuration takes to parse: the agent's
//! benches `program` and `parse` (see their heads for the method), run
//! once, their JSON lines read back into [`ProgramCosts`].
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cargo_bench::cargo_bench;
use crate::util::step;

/// Both benches, compile included.
const PROGRAM_WITHIN: Duration = Duration::from_secs(600);
/// The issue's target for an established flow's packet.
const HIT_TARGET_NS: f64 = 100.0;

/// One case: a kind of packet in one family.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PacketCost {
    /// syn-new-flow, established-hit, reply or non-vip.
    pub case: String,
    /// ipv4 or ipv6.
    pub family: String,
    /// The XDP action every timed run returned.
    pub action: String,
    /// Nanoseconds per packet, the test run's overhead taken out.
    pub ns: f64,
    /// The mean of single runs, overhead included.
    pub single_ns: f64,
    /// A single run's overhead, measured on the non-VIP packet.
    pub overhead_ns: f64,
    /// "repeat" (the kernel's mean over `repeat` runs) or single runs minus the overhead.
    pub method: String,
    pub repeat: u32,
    pub runs_per_batch: u64,
    pub batches: u64,
    /// bpf_stats' run_time_ns / run_cnt over a pass of the same case, if
    /// the kernel turned statistics on.
    pub stats_ns: Option<f64>,
}

/// What `cargo xtask bench` records about the program and the parser.
#[derive(Clone, Debug, Serialize)]
pub struct ProgramCosts {
    pub cases: Vec<PacketCost>,
    /// `config::parse_str` of 10,000 servers (100 frontends and backends), median.
    pub parse_10k_ms: f64,
    /// `config_files::load` of the same file (read, parse, checks), median.
    pub load_10k_ms: f64,
    pub parse_servers: u64,
    pub parse_bytes: u64,
    /// The target for `established-hit`, in ns per packet.
    pub hit_target_ns: f64,
    /// True for a `--quick` run: figures that mean nothing.
    pub quick: bool,
}

impl ProgramCosts {
    /// The docs' workload: a row per case and family (`established-v4`, ...).
    pub(super) fn workload(&self) -> super::results::Workload {
        let how = "BPF_PROG_TEST_RUN on the loaded program, the test run's own overhead taken out \
                   (`cargo bench -p lbxdp-agent --bench program`).";
        let mut w = super::results::Workload::new("prog_ns", "The program alone, ns per packet", "ns", false, how);
        for c in &self.cases {
            let case = c.case.trim_end_matches("-hit").trim_end_matches("-new-flow");
            let family = if c.family == "ipv6" { "v6" } else { "v4" };
            w = w.row(&format!("{case}-{family}"), vec![Some(c.ns)]);
        }
        w
    }

    /// An established flow's packet, worst of the two families.
    pub fn hit_ns(&self) -> Option<f64> {
        self.cases
            .iter()
            .filter(|c| c.case == "established-hit")
            .map(|c| c.ns)
            .max_by(f64::total_cmp)
    }
}

/// Runs both benches (`quick`: a few repetitions, a smoke test that times
/// nothing), prints a table and returns the figures.
pub(super) fn program_costs(quick: bool) -> anyhow::Result<ProgramCosts> {
    step("bench: the XDP program alone under BPF_PROG_TEST_RUN, and the parse of 10,000 servers");
    let args: &[&str] = if quick { &["--quick"] } else { &[] };
    let lines = cargo_bench(&["program", "parse"], args, PROGRAM_WITHIN, quick)?;
    let costs = read(&lines, quick)?;
    print_table(&costs);
    Ok(costs)
}

fn read(lines: &[String], quick: bool) -> anyhow::Result<ProgramCosts> {
    let mut cases = Vec::new();
    let mut parse = None;
    for l in lines.iter().filter(|l| l.starts_with('{')) {
        let v: Value = serde_json::from_str(l).with_context(|| format!("a bench line: {l}"))?;
        match v.get("kind").and_then(Value::as_str) {
            Some("packet") => cases.push(serde_json::from_value(v).with_context(|| format!("a packet line: {l}"))?),
            Some("parse") => parse = Some(v),
            _ => {}
        }
    }
    if cases.is_empty() {
        bail!("the program bench printed no case (it needs root and the XDP object)");
    }
    let parse = parse.context("the parse bench printed no figure")?;
    let f = |k: &str| parse.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let n = |k: &str| parse.get(k).and_then(Value::as_u64).unwrap_or(0);
    Ok(ProgramCosts {
        cases,
        parse_10k_ms: f("parse_ms"),
        load_10k_ms: f("load_ms"),
        parse_servers: n("servers"),
        parse_bytes: n("bytes"),
        hit_target_ns: HIT_TARGET_NS,
        quick,
    })
}

fn print_table(c: &ProgramCosts) {
    println!(
        "    {:<16} {:<5} {:<9} {:>9} {:>12} {:>10} {:>10}",
        "packet", "", "action", "ns/pkt", "single runs", "overhead", "bpf_stats"
    );
    for p in &c.cases {
        println!(
            "    {:<16} {:<5} {:<9} {:>9.1} {:>12.1} {:>10.1} {:>10}",
            p.case,
            p.family,
            p.action.trim_start_matches("XDP_"),
            p.ns,
            p.single_ns,
            p.overhead_ns,
            p.stats_ns.map_or("-".to_string(), |s| format!("{s:.1}"))
        );
    }
    if let Some(hit) = c.hit_ns() {
        println!(
            "    established-flow hit: {hit:.1} ns per packet (target < {:.0} ns): {}",
            c.hit_target_ns,
            if c.quick {
                "quick run, not judged"
            } else if hit < c.hit_target_ns {
                "met"
            } else {
                "MISSED"
            }
        );
    }
    println!(
        "    parse of {} servers ({} KiB): config::parse_str {:.1} ms, config_files::load {:.1} ms",
        c.parse_servers,
        c.parse_bytes / 1024,
        c.parse_10k_ms,
        c.load_10k_ms
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as the benches print them (cargo's own lines are on stderr).
    const LINES: [&str; 3] = [
        r#"{"bytes":582359,"kind":"parse","load_ms":37.9,"parse_ms":47.0,"runs":15,"servers":10000}"#,
        r#"{"action":"XDP_TX","batches":9,"case":"established-hit","family":"ipv4","kind":"packet","method":"single runs minus the overhead","ns":321.9,"overhead_ns":33.8,"repeat":1,"runs_per_batch":2000,"single_ns":355.7,"stats_ns":333.5}"#,
        r#"{"action":"XDP_PASS","batches":9,"case":"non-vip","family":"ipv6","kind":"packet","method":"repeat","ns":72.0,"overhead_ns":76.7,"repeat":1000000,"runs_per_batch":2000,"single_ns":148.7,"stats_ns":null}"#,
    ];

    #[test]
    fn the_benches_lines_are_read_back() {
        let lines: Vec<String> = LINES.iter().map(|l| l.to_string()).collect();
        let c = read(&lines, false).expect("the lines read back");
        assert_eq!(c.cases.len(), 2);
        assert_eq!(c.hit_ns(), Some(321.9));
        assert_eq!(c.cases[1].stats_ns, None);
        assert_eq!((c.parse_servers, c.parse_10k_ms, c.load_10k_ms), (10000, 47.0, 37.9));
        let json = serde_json::to_value(&c).expect("serializable");
        assert_eq!(json["cases"][0]["case"], "established-hit");
    }

    #[test]
    fn no_case_is_an_error() {
        let lines = vec![LINES[0].to_string(), "some other line".to_string()];
        assert!(read(&lines, false).is_err());
    }
}
