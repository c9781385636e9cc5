//! `--write-docs`: docs/benchmarks.md and its plots (docs/bench/*.svg),
//! written from one run's results, fresh or saved (`--from FILE`).
use std::{fmt::Write as _, path::Path};

use anyhow::Context as _;

use super::{
    flood::{Flood, FloodRow, Rules},
    plots,
    results::{Latency, Published, Workload},
    sustained::Sustained,
    targets,
};

/// The paths the ratio columns compare against, when a workload has them
/// (the DNAT workloads have only their own nftables).
const REFERENCES: [(&str, &str); 3] = [
    ("haproxy", "HAProxy"),
    ("nftables", "nftables"),
    ("nftables-dnat", "nftables DNAT"),
];

/// The percentiles the latency tables show (the plots show them all).
const TABLE_PERCENTILES: [f64; 6] = [50.0, 75.0, 90.0, 99.0, 99.9, 99.99];

/// The sustained runs' plot.
const SUSTAINED_PLOT: &str = "sustained.svg";

/// The plots' folder, next to the markdown file.
const PLOT_DIR: &str = "bench";

/// A hand-written part (the analysis of missed targets) that a rerun keeps.
const NOTES_BEGIN: &str = "<!-- BEGIN NOTES: kept as written when the file is regenerated -->";
const NOTES_END: &str = "<!-- END NOTES -->";

/// Writes `md` and its plots in `bench/` beside it; returns the files written.
pub(super) fn write_docs(p: &Published, md: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let dir = md.parent().unwrap_or_else(|| Path::new("."));
    let plot_dir = dir.join(PLOT_DIR);
    std::fs::create_dir_all(&plot_dir).with_context(|| format!("creating {}", plot_dir.display()))?;
    let mut written = Vec::new();
    for w in &p.workloads {
        if let Some(name) = bar_file(w) {
            let file = plot_dir.join(name);
            plots::write(&file, &plots::bars(w)?)?;
            written.push(file);
        }
    }
    for (workload, curves) in latency_groups(p) {
        let file = plot_dir.join(cdf_file(&workload));
        plots::write(&file, &plots::cdf(&cdf_title(&workload), &curves)?)?;
        written.push(file);
    }
    if !p.sustained.is_empty() {
        let file = plot_dir.join(SUSTAINED_PLOT);
        let runs: Vec<&Sustained> = p.sustained.iter().collect();
        plots::write(&file, &plots::slices(&sustained_title(p), &runs)?)?;
        written.push(file);
    }
    let old = std::fs::read_to_string(md).unwrap_or_default();
    std::fs::write(md, render(p, kept_notes(&old))).with_context(|| format!("writing {}", md.display()))?;
    written.push(md.to_path_buf());
    Ok(written)
}

/// A workload's bar chart, if it has a figure to draw.
fn bar_file(w: &Workload) -> Option<String> {
    w.rows
        .iter()
        .any(|r| r.median.is_some())
        .then(|| format!("{}.svg", file_stem(&w.key)))
}

fn cdf_file(workload: &str) -> String {
    format!("latency-{}.svg", file_stem(workload))
}

fn cdf_title(workload: &str) -> String {
    format!("Latency CDF, wrk {} (medians over rounds)", conn_words(workload))
}

fn conn_words(workload: &str) -> &str {
    match workload {
        "close" => "with Connection: close",
        "keepalive" => "keep-alive",
        "dnat-close" => "with Connection: close, two-arm DNAT",
        "dnat-keepalive" => "keep-alive, two-arm DNAT",
        other => other,
    }
}

fn sustained_title(p: &Published) -> String {
    let secs = p
        .sustained
        .iter()
        .map(|s| s.slices.len() as f64 * s.slice_secs)
        .fold(0.0, f64::max);
    format!("Sustained new connections/s over {secs:.0} s, default client, per slice")
}

/// A key as a file name: nothing but [a-z0-9_-].
fn file_stem(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The latency curves by wrk workload, in the order they first appear.
fn latency_groups(p: &Published) -> Vec<(String, Vec<&Latency>)> {
    let mut groups: Vec<(String, Vec<&Latency>)> = Vec::new();
    for l in p.latency.iter().filter(|l| !l.percentiles.is_empty()) {
        match groups.iter_mut().find(|(w, _)| *w == l.workload) {
            Some((_, v)) => v.push(l),
            None => groups.push((l.workload.clone(), vec![l])),
        }
    }
    groups
}

/// The hand-written notes of an earlier version of the file, markers included.
fn kept_notes(old: &str) -> Option<&str> {
    let start = old.find(NOTES_BEGIN)?;
    let end = old[start..].find(NOTES_END)? + start + NOTES_END.len();
    Some(&old[start..end])
}

/// What each path is, for the docs.
fn about(path: &str) -> &'static str {
    match path {
        "direct" => "straight to one nginx backend (web1), no balancer on the way: the ceiling",
        "xdp-native" => "lbxdp's XDP program in native mode (full NAT on one arm; the veth peer runs XDP)",
        "xdp-generic" => "lbxdp's XDP program in generic (skb) mode: what `--xdp-mode auto` picks on a veth",
        "proxy" => "lbxdp-agent's userspace TCP proxy (`--mode proxy`)",
        "haproxy" => "HAProxy 2.6 in `mode tcp` on the same haproxy.cfg and `nbthread`",
        "nftables" => "the kernel's balancer without XDP: `dnat to numgen inc mod 3 map {...}` with SNAT",
        "nftables-jhash" => "the same nftables balancer with a `jhash` of the flow instead of round robin",
        "xdp-tx-floor" => "a program that only swaps MACs and sends the packet back (XDP_TX): this box's floor",
        "xdp-native-dnat" => {
            "lbxdp's XDP program in native mode with destination NAT only (`--nat dnat -i eth0 -i eth1`), on the \
             two-arm testbed: the servers see the client and reply through the LB"
        }
        "xdp-generic-dnat" => {
            "lbxdp's XDP program in generic (skb) mode, what `--xdp-mode auto` picks on a veth, with destination NAT \
             only (`--nat dnat -i eth0 -i eth1`), on the two-arm testbed: the servers see the client and reply \
             through the LB"
        }
        "nftables-dnat" => {
            "the kernel's DNAT without XDP on the two-arm testbed: `dnat to numgen inc mod 3 map {...}`, no SNAT"
        }
        _ => "",
    }
}

/// docs/benchmarks.md.
pub(super) fn render(p: &Published, notes: Option<&str>) -> String {
    let mut s = String::new();
    let mut line = |l: &str| {
        s.push_str(l);
        s.push('\n');
    };
    line("# Benchmarks");
    line("");
    line(
        "<!-- Written by `cargo xtask bench --write-docs` from one run's results.json (xtask/src/bench/docs.rs): \
         rerun it rather than edit this file; only the notes between the NOTES markers are kept. -->",
    );
    line("");
    if p.quick {
        line(
            "> **This is a `--quick` smoke run**: every part ran for a second or two to show that it works. \
             Its figures time nothing; don't quote them.",
        );
        line("");
    }
    line(&format!(
        "One run of `cargo xtask bench` at {} (commit `{}`), {:.0} s in all: {} round(s), the paths interleaved \
         in every round, medians over the rounds. The machine is shared with other people's work, so the figures \
         are noisy: compare the ratios of one run, not figures across runs.{}",
        utc(p.started_unix),
        or_unknown(&p.machine.commit),
        p.took_s,
        p.rounds,
        match p.noisy_runs {
            0 => String::new(),
            n => format!(" In {n} run(s) something outside the bench used the CPUs (see the results file)."),
        }
    ));
    line("");

    line("## The issue's targets");
    line("");
    line("| target | figure | measured | wanted | |");
    line("|---|---|---|---|---|");
    for c in targets::check(p) {
        line(&format!(
            "| {} | {} | {} | {} | {} |",
            c.what,
            c.figure,
            c.measured,
            c.wanted,
            c.status.word()
        ));
    }
    line("");
    line(
        "XDP is the mode `--xdp-mode auto` picks on this testbed's veth (generic), or native where generic \
         wasn't measured. \"Not measured\": this run had no such workload or path.",
    );
    line("");

    line("## Machine");
    line("");
    let m = &p.machine;
    line(&format!("- Kernel: `{}`", or_unknown(&m.kernel)));
    line(&format!(
        "- CPU: {}, {} core(s); memory {}",
        or_unknown(&m.cpu_model),
        m.cores,
        or_unknown(&m.memory)
    ));
    for t in &m.tools {
        line(&format!("- `{t}`"));
    }
    line(&format!("- {}", ipvs_note(m.ipvs, &m.ipvs_evidence)));
    line("");

    line("## How to reproduce");
    line("");
    line("As root, from the repository's root, on a quiet machine:");
    line("");
    line("```sh");
    line("cargo xtask setup");
    for c in &p.commands {
        line(c);
    }
    line("```");
    line("");
    line(
        "After the set-up, the bench as this run was started (`--write-docs` rewrote this file from its \
         `target/bench/results.json`; `cargo xtask bench --write-docs --from FILE` does so from a saved one); the \
         others are the tools as each run called them, from the client's namespace (TARGET: the VIP, or web1 for \
         `direct`).",
    );
    line("");

    line("## Paths");
    line("");
    let mut names: Vec<&str> = Vec::new();
    for w in &p.workloads {
        for r in &w.rows {
            if !names.contains(&r.name.as_str()) {
                names.push(&r.name);
            }
        }
    }
    for n in names.iter().filter(|n| !about(n).is_empty()) {
        line(&format!("- `{n}`: {}", about(n)));
    }
    line("");

    line("## Results");
    line("");
    line(
        "Ratios are of the medians: a path's figure over HAProxy's or nftables' in the same workload of the same \
         run (in the two-arm DNAT workloads, over nftables' DNAT). Above 1 is better where higher is better, below \
         1 where lower is.",
    );
    for w in &p.workloads {
        line("");
        line(workload_section(w).trim_end());
    }
    line("");

    if !p.sustained.is_empty() {
        line("## Sustained new connections");
        line("");
        line(
            "One round (a minute per path is the point of this workload, and the budget of the whole run allows \
             one): wrk with `Connection: close` in back-to-back slices through one balancer started once, from a \
             client with Linux's default sysctls (no `tcp_tw_reuse`, the default port range), every TIME_WAIT of \
             the testbed drained before each path. The whole run's rate is its requests over wrk's seconds; a \
             collapse part-way shows in the slowest slice and in the plot. Errors are wrk's socket errors summed \
             over the slices (connect errors include a client out of ports). The client's TIME_WAIT sockets \
             after each slice tell how often it closed first (each such socket holds its port for 60 s): \
             Linux hands connect() the even ports of its default range first, 14,116 of 28,232, and once those \
             are all in TIME_WAIT every connect() scans the range for a free port, and the rate collapses.",
        );
        line("");
        line(&format!("![{}]({PLOT_DIR}/{SUSTAINED_PLOT})", sustained_title(p)));
        line("");
        line(sustained_table(&p.sustained).trim_end());
        line("");
    }

    if let Some(f) = &p.flood {
        line("## Under a SYN flood");
        line("");
        line(flood_section(f).trim_end());
        line("");
    }

    let groups = latency_groups(p);
    if !groups.is_empty() {
        line("## Latency");
        line("");
        line(
            "The latency distribution of the keep-alive and `Connection: close` runs: each percentile the median \
             over rounds, from the bench's wrk script (`-s latency.lua`: a `done()` hook that prints \
             `latency:percentile(p)` for p = 1 to 99, 99.5, 99.9 and 99.99; xtask/src/bench/wrk.rs writes it), or \
             wrk's own four (`--latency`: 50, 75, 90, 99) in an older results file. The plots join them on a log \
             scale of ms; the tables show a few.",
        );
        for (workload, curves) in &groups {
            line("");
            line(&format!("### wrk, {}", conn_words(workload)));
            line("");
            line(&format!(
                "![{}]({PLOT_DIR}/{})",
                cdf_title(workload),
                cdf_file(workload)
            ));
            line("");
            line(latency_table(curves).trim_end());
        }
        line("");
    }

    if !p.maglev.is_empty() {
        line("## Maglev rebuild");
        line("");
        line("`cargo bench -p lbxdp-agent --bench maglev`, as it printed:");
        line("");
        line("```text");
        for l in &p.maglev {
            line(l);
        }
        line("```");
        line("");
    }

    line("## Notes");
    line("");
    line(notes.unwrap_or(&format!(
        "{NOTES_BEGIN}\n(Why each missed target is missed, with the profile that shows it, and what would fix it.)\n{NOTES_END}"
    )));
    line("");

    line("## Method");
    line("");
    line(
        "- One namespace testbed (client, load balancer, 3 nginx backends on a bridge, 198.18.0.0/15); every \
         run through the VIP has its own freshly started balancer, which must answer a request before the run and \
         is stopped after it.",
    );
    line(
        "- Rounds interleave the paths, and the order rotates every round, so that the machine's noise hits \
         them alike; figures are medians over rounds, and ratios are ratios of medians.",
    );
    line(
        "- CPU: the machine's busy and softirq time from `/proc/stat` around each run, and the balancer's \
         processes' time (utime + stime, children's included) from `/proc/PID/stat` of the processes in the \
         balancer's namespace. XDP's own work shows as softirq, not as a process's time.",
    );
    line(
        "- A run that started with the CPUs over 15% busy, or in which processes outside the testbed used over \
         5%, is counted as noisy in the results file.",
    );
    line(
        "- The client is tuned as a load generator for the rounds (`tcp_tw_reuse=1`, ports 1024-65535: through \
         a proxy the client closes first and would run out of ports); the sustained runs put Linux's defaults \
         back, as a user's client has them.",
    );
    line(
        "- DNAT (`xdp-*-dnat`, `nftables-dnat`) runs on a second testbed built for it, two-arm: the client on \
         198.18.1.0/24, the servers on 198.18.2.0/24 with the LB as their route back, in the same rounds as the \
         other paths (wrk and UDP; no iperf3). Its workloads compare DNAT paths with each other only: the hops \
         differ from the one-arm testbed's (the LB forwards between two segments).",
    );
    s
}

/// The sustained runs' table: the whole run, its slices and its errors.
fn sustained_table(runs: &[Sustained]) -> String {
    let opt = |v: Option<f64>| v.map_or("-".into(), figure);
    let mut s = String::from(
        "| path | whole run (req/s) | slowest slice | median slice | fastest slice | slowest / median | \
         connect errors | read/write errors | timeouts | non-2xx | slices (req/s) | client TIME_WAIT after each slice |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n",
    );
    for r in runs {
        let ratio = match (r.min_slice(), r.median_slice()) {
            (Some(lo), Some(mid)) if mid > 0.0 => format!("{:.2}", lo / mid),
            _ => "-".into(),
        };
        let slices: Vec<String> = r.slices.iter().map(|&v| figure(v)).collect();
        let tw: Vec<String> = r.client_time_wait.iter().map(u64::to_string).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {ratio} | {} | {} | {} | {} | {} | {} |",
            r.path,
            opt(r.rps()),
            opt(r.min_slice()),
            opt(r.median_slice()),
            opt(r.max_slice()),
            r.connect_errors,
            r.read_errors + r.write_errors,
            r.timeouts,
            r.non_2xx,
            slices.join(" "),
            if tw.is_empty() { "-".into() } else { tw.join(" ") }
        );
    }
    s
}

/// The flood section: how it ran, then per rule set the goal and a table.
fn flood_section(f: &Flood) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Measured {} (commit `{}`, {:.0} s, {} round(s)){}. For each rule set and path, a freshly started balancer with the \
         rules in its frontend; wrk with `Connection: close` for {} s from the client (sysctls: {}), \
         then (the testbed's TIME_WAIT drained) the same run while trafgen sends {} spoofed SYNs/s to the VIP \
         from the client's interface. The share is the second rate over the first; with several rounds, every \
         figure is the median over them (the share the median of the rounds' shares, which follow it in \
         parentheses). The client is tuned as for the rounds \
         unless the run says otherwise: with Linux's defaults, one client address behind a proxy runs out of the \
         even half of its ports within two seconds at these rates (see the sustained runs), and a run slowed by \
         the flood would reach that cliff later, hiding the flood's cost. Only XDP sees the flood's \
         SYNs as connections: HAProxy's and the proxy's kernel answers them with SYN cookies, and since no \
         spoofed handshake completes, their rules never run for them. CPU: the balancer's processes (the agent, \
         haproxy), and softirq time on the whole machine (the kernel doesn't split it by namespace: it holds the \
         flood's way through the client's veth and the bridge, and XDP's own work), in cores; the XDP program's \
         own time from bpf_stats. \"denied\": `show stat`'s dcon + dreq for the frontend over both runs.",
        utc(f.started_unix),
        or_unknown(&f.commit),
        f.took_s,
        f.rounds.max(1),
        if f.quick {
            " (**a `--quick` smoke run: these figures time nothing**)"
        } else {
            ""
        },
        f.secs,
        if f.client.is_empty() { "unknown" } else { &f.client },
        figure(f.rate_pps as f64),
    );
    s.push('\n');
    s.push_str("```sh\n");
    for c in &f.commands {
        let _ = writeln!(s, "{c}");
    }
    s.push_str("```\n");
    let count = |n: Option<u64>| match n {
        None => "-".to_string(),
        Some(n) if n < 100 => n.to_string(),
        Some(n) => figure(n as f64),
    };
    let mut rule_sets: Vec<&str> = Vec::new();
    for r in &f.rows {
        if !rule_sets.contains(&r.rules.as_str()) {
            rule_sets.push(&r.rules);
        }
    }
    for rules in rule_sets {
        let rows: Vec<&FloodRow> = f.rows.iter().filter(|r| r.rules == rules).collect();
        s.push('\n');
        let _ = writeln!(s, "### {rules}");
        s.push('\n');
        if let Some(r) = Rules::by_name(rules) {
            let _ = writeln!(s, "{}.", r.describe());
            s.push('\n');
        }
        let share = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| rows.iter().find(|r| r.path == *n).and_then(|r| r.share()))
        };
        let goal = match (share(&["xdp-generic", "xdp-native"]), share(&["haproxy"])) {
            (Some(x), Some(h)) => format!(
                "{:.0}% vs {:.0}%: {}",
                100.0 * x,
                100.0 * h,
                if x >= 0.9 && h < 0.9 { "met" } else { "**missed**" }
            ),
            _ => "not measured".into(),
        };
        let _ = writeln!(
            s,
            "The issue's goal, lbxdp XDP (generic, else native) keeps ≥ 90% of its rate while HAProxy doesn't: {goal}."
        );
        // The share hides that the paths start from different rates: what a
        // client gets during the flood, side by side, says it too.
        let during = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| rows.iter().find(|r| r.path == *n).and_then(|r| r.flood_rps))
        };
        if let (Some(x), Some(h)) = (during(&["xdp-generic", "xdp-native"]), during(&["haproxy"]))
            && h > 0.0
        {
            let _ = writeln!(
                s,
                "Legitimate new connections/s during the flood, lbxdp XDP (generic, else native) / HAProxy: {:.2}.",
                x / h
            );
        }
        s.push('\n');
        s.push_str(
            "| path | new conn/s, no flood | during the flood | share | wrk errors (no flood / flood) | LB processes, \
             cores (no flood / flood) | softirq, cores, whole machine (no flood / flood) | XDP program during the \
             flood, CPU-ms/s | SYNs sent | denied |\n\
             |---|---:|---:|---:|---|---|---|---:|---:|---:|\n",
        );
        let opt = |v: Option<f64>| v.map_or("-".into(), figure);
        let pair = |a: Option<f64>, b: Option<f64>| format!("{} / {}", opt(a), opt(b));
        for r in rows {
            if let Some(why) = &r.not_run {
                let why = super::flood::reason(why).replace('|', "\\|");
                let _ = writeln!(s, "| {} | not run: {why} | | | | | | | | |", r.path);
                continue;
            }
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} |",
                r.path,
                opt(r.base_rps),
                opt(r.flood_rps),
                share_cell(r),
                r.base_errors,
                r.flood_errors,
                pair(r.base_lb_cores, r.flood_lb_cores),
                pair(r.base_softirq_cores, r.flood_softirq_cores),
                opt(r.flood_prog_ms_per_s),
                count(r.flood_sent),
                count(r.denied),
            );
        }
    }
    s
}

/// A flood row's share, with each round's when there were several.
fn share_cell(r: &FloodRow) -> String {
    let Some(share) = r.share() else {
        return "-".into();
    };
    let mut s = format!("{:.0}%", 100.0 * share);
    if r.shares.len() > 1 {
        let each: Vec<String> = r.shares.iter().map(|v| format!("{:.0}", 100.0 * v)).collect();
        let _ = write!(s, " ({})", each.join(" "));
    }
    s
}

fn ipvs_note(ipvs: bool, evidence: &str) -> String {
    let evidence = if evidence.is_empty() {
        String::new()
    } else {
        format!(" ({evidence})")
    };
    if ipvs {
        format!(
            "IPVS: the kernel has `ip_vs`{evidence}, but the bench doesn't measure it: nftables stands for the \
             kernel's balancer."
        )
    } else {
        format!(
            "IPVS isn't built into this kernel{evidence}, so it is no peer here: nftables stands for the kernel's balancer."
        )
    }
}

/// One workload's heading, plot and table.
fn workload_section(w: &Workload) -> String {
    let mut s = String::new();
    let better = if w.higher_is_better {
        "higher is better"
    } else {
        "lower is better"
    };
    let _ = writeln!(s, "### {} ({}; {better})", w.title, w.unit);
    s.push('\n');
    if !w.how.is_empty() {
        let _ = writeln!(s, "{}", w.how);
        s.push('\n');
    }
    if let Some(file) = bar_file(w) {
        let _ = writeln!(s, "![{}]({PLOT_DIR}/{file})", w.title);
        s.push('\n');
    }
    s.push_str(&workload_table(w));
    s
}

/// The table of one workload: each path's median and rounds, and its ratios
/// to the references present.
fn workload_table(w: &Workload) -> String {
    let refs: Vec<(&str, &str, f64)> = REFERENCES
        .iter()
        .filter_map(|&(name, shown)| w.get(name).filter(|v| *v != 0.0).map(|v| (name, shown, v)))
        .collect();
    let mut s = format!("| path | median ({}) | rounds |", w.unit);
    for (_, shown, _) in &refs {
        let _ = write!(s, " vs {shown} |");
    }
    s.push_str("\n|---|---:|---|");
    for _ in &refs {
        s.push_str("---:|");
    }
    s.push('\n');
    for r in &w.rows {
        let rounds: Vec<String> = r.rounds.iter().map(|v| v.map_or("-".into(), figure)).collect();
        let _ = write!(
            s,
            "| {} | {} | {} |",
            r.name,
            r.median.map_or("-".into(), figure),
            rounds.join(" ")
        );
        for (_, _, reference) in &refs {
            let _ = write!(
                s,
                " {} |",
                r.median.map_or("-".into(), |v| format!("{:.2}×", v / reference))
            );
        }
        s.push('\n');
    }
    s
}

/// The latency curves' [`TABLE_PERCENTILES`] that any of them has.
fn latency_table(curves: &[&Latency]) -> String {
    let mut pcts: Vec<f64> = Vec::new();
    for c in curves {
        for &(p, _) in &c.percentiles {
            if !pcts.contains(&p) && TABLE_PERCENTILES.contains(&p) {
                pcts.push(p);
            }
        }
    }
    pcts.sort_by(f64::total_cmp);
    let mut s = String::from("| path |");
    for p in &pcts {
        let _ = write!(s, " p{p} (ms) |");
    }
    s.push_str("\n|---|");
    s.push_str(&"---:|".repeat(pcts.len()));
    s.push('\n');
    for c in curves {
        let _ = write!(s, "| {} |", c.path);
        for p in &pcts {
            let v = c.percentiles.iter().find(|(q, _)| q == p).map(|&(_, ms)| ms);
            let _ = write!(s, " {} |", v.map_or("-".into(), figure));
        }
        s.push('\n');
    }
    s
}

/// A figure as the tables show it: whole numbers with thousands separators
/// from 100 up, else three significant digits or so.
pub(super) fn figure(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 100.0 {
        let digits = format!("{:.0}", a);
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 { format!("-{out}") } else { out }
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.01 || a == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.2e}")
    }
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() { "unknown" } else { s }
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM UTC` (the civil calendar
/// from days, after Howard Hinnant's `civil_from_days`).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hh, mm) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::{super::results::fixture, *};

    #[test]
    fn tables_show_medians_rounds_and_ratios() {
        let p = fixture::published();
        let t = workload_table(p.workload("close_rps").unwrap());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "| path | median (req/s) | rounds | vs HAProxy | vs nftables |"
        );
        assert_eq!(lines[1], "|---|---:|---|---:|---:|");
        assert_eq!(lines[2], "| direct | 20,000 | 20,000 19,000 21,000 | 2.00× | 1.67× |");
        assert_eq!(lines[4], "| proxy | 9,000 | 9,000 - 9,000 | 0.90× | 0.75× |");
        assert_eq!(lines[5], "| haproxy | 10,000 | 10,000 10,000 10,000 | 1.00× | 0.83× |");
        // No HAProxy nor nftables in the UDP workload: no ratio columns.
        let t = workload_table(p.workload("udp_pps").unwrap());
        assert!(t.starts_with("| path | median (packets/s) | rounds |\n|---|---:|---|\n"));
        assert!(t.contains("| xdp-tx-floor | 3,000,000 | 3,000,000 |"));
        // Only HAProxy in the p99 workload.
        let t = workload_table(p.workload("close_p99_ms").unwrap());
        assert!(t.contains("| xdp-native | 4.00 | 4.00 | 0.80× |"), "{t}");
    }

    #[test]
    fn the_doc_has_its_sections_and_links_its_plots() {
        let p = fixture::published();
        let md = render(&p, None);
        for section in [
            "# Benchmarks",
            "## The issue's targets",
            "## Machine",
            "## How to reproduce",
            "## Paths",
            "## Results",
            "## Sustained new connections",
            "## Under a SYN flood",
            "### blocklist",
            "### rate-limit",
            "## Latency",
            "## Maglev rebuild",
            "## Notes",
            "## Method",
        ] {
            assert!(md.lines().any(|l| l == section), "no {section:?} in\n{md}");
        }
        for link in [
            "](bench/close_rps.svg)",
            "](bench/close_p99_ms.svg)",
            "](bench/udp_pps.svg)",
            "](bench/latency-close.svg)",
            "](bench/sustained.svg)",
        ] {
            assert!(md.contains(link), "no {link} in\n{md}");
        }
        assert!(md.contains("Linux 6.18.0-test"));
        assert!(md.contains("Test CPU @ 2.00GHz, 2 core(s)"));
        assert!(md.contains("IPVS isn't built into this kernel (/proc/config.gz: CONFIG_IP_VS is not set), so"));
        assert!(md.contains("sudo cargo xtask bench --rounds 3 --duration 5"));
        assert!(md.contains("| XDP ≥ 1.5× nftables' new connections/s | xdp-native/nftables in close_rps | 1.25× | ≥ 1.5× | **missed** |"));
        assert!(md.contains("| p50 (ms) | p75 (ms) | p90 (ms) | p99 (ms) |"));
        assert!(md.contains("| haproxy | 1.20 | 1.80 | 2.50 | 5.00 |"));
        assert!(md.contains("- `nftables`: the kernel's balancer"));
        assert!(
            md.contains("| haproxy | 3,260 | 380 | 400 | 9,000 | 0.95 | 120000 | 0 | 3 | 0 | 9,000 400 380 |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| xdp-generic | 10,000 | 9,500 | 95% | 0 / 0 | 0.01 / 0.01 | 0.50 / 0.90 | 40.0 | 400,000 | 399,000 |"
            ),
            "{md}"
        );
        assert!(md.contains("doesn't: 95% vs 25%: met."), "{md}");
        assert!(
            md.contains("| xdp-native | not run: the agent exited early: refused \\| rules |"),
            "{md}"
        );
        assert!(md.contains("doesn't: not measured."), "{md}");
        assert!(!md.contains("smoke run"));
        let quick = render(&Published { quick: true, ..p }, None);
        assert!(quick.contains("`--quick` smoke run"));
    }

    #[test]
    fn notes_survive_a_rewrite() {
        let p = fixture::published();
        let first = render(&p, None);
        let edited = first.replace(
            "(Why each missed target is missed, with the profile that shows it, and what would fix it.)",
            "The p99 is the veth's fault.",
        );
        let again = render(&p, kept_notes(&edited));
        assert!(again.contains(&format!("{NOTES_BEGIN}\nThe p99 is the veth's fault.\n{NOTES_END}")));
        assert_eq!(kept_notes("no markers"), None);
    }

    #[test]
    fn writes_the_doc_and_the_plots() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("benchmarks.md");
        let written = write_docs(&fixture::published(), &md).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|f| f.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "bench/close_rps.svg",
                "bench/close_p99_ms.svg",
                "bench/udp_pps.svg",
                "bench/latency-close.svg",
                "bench/sustained.svg",
                "benchmarks.md"
            ]
        );
        for f in &written[..5] {
            let svg = std::fs::read_to_string(f).unwrap();
            assert!(
                svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
                "{svg}"
            );
        }
        let bars = std::fs::read_to_string(&written[0]).unwrap();
        for path in ["direct", "xdp-native", "haproxy", "nftables"] {
            assert!(bars.contains(path), "{path} not labelled in\n{bars}");
        }
    }

    #[test]
    fn latency_tables_show_a_few_percentiles() {
        let many = Latency {
            workload: "dnat-close".into(),
            path: "nftables-dnat".into(),
            percentiles: super::super::wrk::script_percentiles()
                .into_iter()
                .map(|p| (p, p / 100.0))
                .collect(),
        };
        let t = latency_table(&[&many]);
        assert!(
            t.starts_with("| path | p50 (ms) | p75 (ms) | p90 (ms) | p99 (ms) | p99.9 (ms) | p99.99 (ms) |\n"),
            "{t}"
        );
        assert!(
            t.contains("| nftables-dnat | 0.50 | 0.75 | 0.90 | 0.99 | 1.00 | 1.00 |"),
            "{t}"
        );
        assert_eq!(
            cdf_title("dnat-close"),
            "Latency CDF, wrk with Connection: close, two-arm DNAT (medians over rounds)"
        );
    }

    #[test]
    fn figures_and_dates() {
        assert_eq!(figure(1_234_567.4), "1,234,567");
        assert_eq!(figure(123.0), "123");
        assert_eq!(figure(-1234.0), "-1,234");
        assert_eq!(figure(12.34), "12.3");
        assert_eq!(figure(0.8123), "0.81");
        assert_eq!(figure(0.0), "0.00");
        assert_eq!(figure(f64::NAN), "-");
        assert_eq!(file_stem("Close RPS/1"), "close_rps_1");
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_795_000_000), "2026-11-18 11:06 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
    }
}
