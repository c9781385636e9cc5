//! Legitimate new connections under a spoofed SYN flood (`--flood-secs`,
//! `--flood-only`): for each of two haproxy.cfg rule sets and each path, a
//! freshly started balancer, a wrk run of `Connection: close` from the
//! client, then, the testbed's TIME_WAIT drained, the
//! same wrk run while trafgen floods the VIP with SYNs from spoofed sources
//! (bounded: `--flood-rate` packets/s for the run's seconds and one more).
//! The figure is the second rate as a share of the first, with the CPU of
//! both runs.
//!
//! The client is tuned as in the bench's rounds (`tcp_tw_reuse`, the wide
//! port range) unless `--flood-default-client`: behind a proxy the client
//! closes first, and with Linux's defaults one client address runs out of
//! the even half of its port range (14,116 ports in TIME_WAIT, see the
//! sustained runs) after 1.4 s at 10,000 connections/s. From then on the
//! rate is the client's port search, and a run slowed by the flood reaches
//! that cliff later: the share would hide the flood's cost.
//!
//! The rule sets (the issue's): a blocklist of the flood's prefix
//! (`acl blocked src -f blocklist.lst`, `tcp-request connection reject if
//! blocked`), and a stick table that rejects a source past
//! `sc0_conn_rate gt 100`, the flood from four sources; the legitimate
//! client's network is `accept`ed before the tracking, as a user would
//! exempt his own. The flood's sources are 198.19.0.0/16 (testbed space);
//! the LB routes them back to the client, whose kernel drops what comes back.
//! lbxdp in XDP mode decides on each SYN; HAProxy and lbxdp's proxy never see
//! a spoofed SYN as a connection (the kernel answers it with a SYN cookie,
//! and the handshake never completes), so their rules cost the flood
//! nothing and save nothing: the kernel's SYN handling is what they have.
//! `show stat` on the balancer's admin socket says how many connections it
//! denied (`dcon`, and `dreq` for a `silent-drop`, as HAProxy counts it).
use std::{
    io::{Read as _, Write as _},
    os::unix::net::UnixStream,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use lbxdp_testbed::{Host, Testbed};
use serde::{Deserialize, Serialize};

use super::{
    Bed,
    balancer::{ANSWER_WITHIN, Lb, drain_time_wait, wait_answers},
    client::{CLIENT_SYSCTLS, retune_client, set_client},
    cpu::{Cpu, with_cpu},
    results::median,
    route::{Route, round_order},
    wrk::{Conn, Wrk, run, url, wrk_command},
};
use crate::{agent, util::step};

/// The flood's sources: testbed space (198.18.0.0/15) that no host has.
pub(super) const FLOOD_NET: &str = "198.19.0.0/16";
/// `reject if { sc0_conn_rate gt RATE_LIMIT }` over 10 s.
const RATE_LIMIT: u64 = 100;

/// The haproxy.cfg rules a flood meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rules {
    Blocklist,
    RateLimit,
}

impl Rules {
    pub(super) const ALL: [Self; 2] = [Self::Blocklist, Self::RateLimit];

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Blocklist => "blocklist",
            Self::RateLimit => "rate-limit",
        }
    }

    pub(super) fn by_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The frontend's rules, as the config has them.
    fn frontend(self, tb: &Testbed, list: &Path) -> String {
        match self {
            Self::Blocklist => format!(
                "    acl blocked src -f {}\n    tcp-request connection reject if blocked\n",
                list.display()
            ),
            Self::RateLimit => format!(
                "    stick-table type ip size 100k expire 30s store conn_rate(10s)\n\
                 \x20   acl trusted src {}/24\n\
                 \x20   tcp-request connection accept if trusted\n\
                 \x20   tcp-request connection track-sc0 src\n\
                 \x20   tcp-request connection reject if {{ sc0_conn_rate gt {RATE_LIMIT} }}\n",
                tb.client.v4()
            ),
        }
    }

    /// The flood's source address in trafgen's bytes: the whole /16 at
    /// random, or four sources in turn.
    fn sources(self) -> &'static str {
        match self {
            Self::Blocklist => "198, 19, drnd(1), drnd(1)",
            Self::RateLimit => "198, 19, 0, dinc(1, 4)",
        }
    }

    /// For the docs: the rules and the flood's sources.
    pub(super) fn describe(self) -> String {
        match self {
            Self::Blocklist => format!(
                "`acl blocked src -f blocklist.lst` (the file holds `{FLOOD_NET}`) and \
                 `tcp-request connection reject if blocked`; the flood from random sources in {FLOOD_NET}"
            ),
            Self::RateLimit => format!(
                "`stick-table type ip size 100k expire 30s store conn_rate(10s)`, `tcp-request connection accept \
                 if {{ src CLIENT/24 }}` (the legitimate client's network, exempt), `tcp-request connection \
                 track-sc0 src` and `tcp-request connection reject if {{ sc0_conn_rate gt {RATE_LIMIT} }}`; the \
                 flood from four sources, 198.19.0.1-4"
            ),
        }
    }
}

/// One path under one rule set, as results.json and the docs have it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct FloodRow {
    pub(super) rules: String,
    pub(super) path: String,
    /// Legitimate new connections/s without the flood, and during it.
    pub(super) base_rps: Option<f64>,
    pub(super) flood_rps: Option<f64>,
    /// wrk's socket errors and non-2xx answers, without and during.
    pub(super) base_errors: u64,
    pub(super) flood_errors: u64,
    /// The processes in the LB's namespace, in cores, without and during.
    pub(super) base_lb_cores: Option<f64>,
    pub(super) flood_lb_cores: Option<f64>,
    /// Softirq time of the whole machine (every namespace's packets, the
    /// flood's way through the client's veth and the bridge included), in cores.
    pub(super) base_softirq_cores: Option<f64>,
    pub(super) flood_softirq_cores: Option<f64>,
    /// The XDP program's own time during the flood run (bpf_stats), in CPU-ms per second.
    pub(super) flood_prog_ms_per_s: Option<f64>,
    /// SYNs trafgen sent (its own count).
    pub(super) flood_sent: Option<u64>,
    /// Connections the balancer denied over both runs (`show stat`: dcon + dreq).
    pub(super) denied: Option<u64>,
    /// Why the path has no figures (the balancer refused the config, a tool
    /// failed), or, with figures, why a round has none.
    pub(super) not_run: Option<String>,
    /// Each round's share (`--flood-rounds`); the row's figures are medians over them.
    pub(super) shares: Vec<f64>,
}

impl FloodRow {
    /// The rate during the flood as a share of the rate without it: the
    /// median of the rounds' (each pair runs back to back, so a pair's ratio
    /// cancels the machine's drift between rounds).
    pub(super) fn share(&self) -> Option<f64> {
        if let Some(m) = median(self.shares.clone()) {
            return Some(m);
        }
        match (self.base_rps, self.flood_rps) {
            (Some(b), Some(f)) if b > 0.0 => Some(f / b),
            _ => None,
        }
    }
}

/// The flood section of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Flood {
    /// When it ran and on what commit: `--flood-only` adds it to an earlier run's results.
    pub(super) started_unix: u64,
    pub(super) commit: String,
    pub(super) took_s: f64,
    /// Each wrk run's seconds, and the flood's packets/s.
    pub(super) secs: u64,
    pub(super) rate_pps: u64,
    /// Rounds per path and rule set; figures are medians over them.
    pub(super) rounds: u32,
    pub(super) quick: bool,
    /// The client's sysctls, in words.
    pub(super) client: String,
    /// The tools as each run called them.
    pub(super) commands: Vec<String>,
    pub(super) rows: Vec<FloodRow>,
}

impl Flood {
    /// The smoke test's check: every path under every rule set gave both rates.
    pub(super) fn check_ran(&self) -> anyhow::Result<()> {
        if self.rows.is_empty() {
            bail!("the flood section measured nothing");
        }
        for r in &self.rows {
            if let Some(why) = &r.not_run {
                bail!("flood, {} through {}: not run: {why}", r.rules, r.path);
            }
            if r.share().is_none_or(|s| !s.is_finite()) {
                bail!("flood, {} through {}: no rates: {r:?}", r.rules, r.path);
            }
        }
        Ok(())
    }
}

/// The flood section over `paths` on the one-arm testbed; a path that
/// can't run (XDP refusing rules it doesn't enforce) gets a row saying why.
pub(super) fn run_flood(bed: &Bed<'_>, paths: &[Route]) -> anyhow::Result<Flood> {
    let args = bed.args;
    let side = &bed.one;
    let tb = side.tb;
    let started = Instant::now();
    let secs = args.flood_secs;
    let client = if args.flood_default_client {
        format!("{}, as Linux sets them", side.client_defaults.show())
    } else {
        format!("{}, the rounds' tuning", client_sysctls())
    };
    step(&format!(
        "bench: under a spoofed SYN flood ({} pkt/s from trafgen, {FLOOD_NET}), {secs} s wrk runs without and \
         with it, per path and rule set; client sysctls {client}",
        args.flood_rate,
    ));
    // Whatever comes back to the flood's sources goes to the client, which drops it.
    ip(
        tb,
        &tb.lb,
        &["route", "replace", FLOOD_NET, "via", &tb.client.v4().to_string()],
    )?;
    let list = tb.dir().join("blocklist.lst");
    std::fs::write(&list, format!("# the flood's sources\n{FLOOD_NET}\n")).context("writing blocklist.lst")?;
    if args.flood_default_client {
        set_client(tb, side.client_defaults.defaults())?;
    }
    let mut runs: Vec<FloodRow> = Vec::new();
    for round in 1..=args.flood_rounds {
        for rules in Rules::ALL {
            for path in round_order(paths, round) {
                let row = match one(bed, rules, path, &list) {
                    Ok(row) => row,
                    Err(e) => FloodRow {
                        rules: rules.name().into(),
                        path: path.name().into(),
                        not_run: Some(format!("{e:#}")),
                        ..FloodRow::default()
                    },
                };
                print!("    {round}/{} ", args.flood_rounds);
                print_row(&row);
                runs.push(row);
            }
        }
    }
    let mut rows = Vec::new();
    for rules in Rules::ALL {
        for path in paths {
            let mine: Vec<&FloodRow> = runs
                .iter()
                .filter(|r| r.rules == rules.name() && r.path == path.name())
                .collect();
            rows.extend(merge(&mine));
        }
    }
    if args.flood_default_client {
        retune_client(tb)?;
    }
    let trafgen = trafgen_command(Path::new("syn.trafgen"), secs, args.flood_rate);
    Ok(Flood {
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        commit: String::new(),
        took_s: started.elapsed().as_secs_f64(),
        secs,
        rate_pps: args.flood_rate,
        rounds: args.flood_rounds,
        quick: args.quick,
        client,
        commands: vec![
            format!(
                "wrk -t{} -c{} -d{secs}s --timeout {}s --latency -H 'Connection: close' http://VIP/  \
                 # without, then with the flood",
                args.threads, args.connections, args.timeout
            ),
            format!("timeout {}  # beside the second wrk run", trafgen.join(" ")),
        ],
        rows,
    })
}

fn print_row(r: &FloodRow) {
    let opt = |v: Option<f64>, scale: f64| v.map_or("-".into(), |v| format!("{:.0}", v * scale));
    let cores = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
    match &r.not_run {
        Some(why) => println!("    {:<10} {:<11} NOT RUN: {}", r.rules, r.path, reason(why)),
        None => println!(
            "    {:<10} {:<11} {:>7} req/s without, {:>7} with the flood ({:>3}%); errors {}/{}; lb {}/{} cores, \
             softirq {}/{} cores; {} SYNs sent, {} denied",
            r.rules,
            r.path,
            opt(r.base_rps, 1.0),
            opt(r.flood_rps, 1.0),
            opt(r.share(), 100.0),
            r.base_errors,
            r.flood_errors,
            cores(r.base_lb_cores),
            cores(r.flood_lb_cores),
            cores(r.base_softirq_cores),
            cores(r.flood_softirq_cores),
            r.flood_sent.map_or("?".into(), |n| n.to_string()),
            r.denied.map_or("?".into(), |n| n.to_string()),
        ),
    }
}

/// One row from a path's rounds under one rule set: medians of what the
/// rounds that ran measured, their errors summed; none without rounds. A
/// path none of whose rounds ran keeps the first one's reason.
fn merge(runs: &[&FloodRow]) -> Option<FloodRow> {
    let first = runs.first()?;
    let ok: Vec<&&FloodRow> = runs.iter().filter(|r| r.not_run.is_none()).collect();
    if ok.is_empty() {
        return Some((*first).clone());
    }
    let med = |f: fn(&FloodRow) -> Option<f64>| median(ok.iter().filter_map(|r| f(r)).collect());
    let med_u = |f: fn(&FloodRow) -> Option<u64>| {
        median(ok.iter().filter_map(|r| f(r)).map(|v| v as f64).collect()).map(|v| v.round() as u64)
    };
    if let Some(why) = runs.iter().find_map(|r| r.not_run.as_ref()) {
        // Figures from the rounds that ran; why the others didn't is in their progress lines.
        println!(
            "    flood, {} through {}: a round didn't run: {}",
            first.rules,
            first.path,
            reason(why)
        );
    }
    Some(FloodRow {
        rules: first.rules.clone(),
        path: first.path.clone(),
        base_rps: med(|r| r.base_rps),
        flood_rps: med(|r| r.flood_rps),
        base_errors: ok.iter().map(|r| r.base_errors).sum(),
        flood_errors: ok.iter().map(|r| r.flood_errors).sum(),
        base_lb_cores: med(|r| r.base_lb_cores),
        flood_lb_cores: med(|r| r.flood_lb_cores),
        base_softirq_cores: med(|r| r.base_softirq_cores),
        flood_softirq_cores: med(|r| r.flood_softirq_cores),
        flood_prog_ms_per_s: med(|r| r.flood_prog_ms_per_s),
        flood_sent: med_u(|r| r.flood_sent),
        denied: med_u(|r| r.denied),
        not_run: None,
        shares: ok.iter().filter_map(|r| r.share()).collect(),
    })
}

/// One path under one rule set: a fresh balancer, wrk alone, then wrk beside the flood.
fn one(bed: &Bed<'_>, rules: Rules, path: Route, list: &Path) -> anyhow::Result<FloodRow> {
    let side = &bed.one;
    let (tb, args) = (side.tb, bed.args);
    let secs = args.flood_secs;
    let tag = format!("flood-{}-{}", rules.name(), path.name());
    let admin = tb.dir().join(format!("{tag}.sock"));
    let cfg = tb.dir().join(format!("{tag}.cfg"));
    std::fs::write(&cfg, config(tb, rules, &admin, list)?).with_context(|| format!("writing {}", cfg.display()))?;
    let conf = tb.dir().join(format!("{tag}.trafgen"));
    std::fs::write(&conf, syn_packet(tb, rules.sources())?).with_context(|| format!("writing {}", conf.display()))?;
    let url = url(tb, path);
    let wrk_limit = secs + args.timeout + 30;

    drain_time_wait(tb)?;
    let mut lb = Lb::start(tb, bed.bin, &cfg, path, &tag)?;
    wait_answers(tb, &url, ANSWER_WITHIN, &mut lb)?;
    let (base, base_cpu) = with_cpu(&side.ns, || {
        run(&mut wrk_command(tb, args, &url, secs, Conn::Close, None), wrk_limit)
    })?;
    drain_time_wait(tb)?;
    let ((flood, sent), flood_cpu) = with_cpu(&side.ns, || {
        let mut trafgen = tb.command(&tb.client, "timeout");
        trafgen
            .args(trafgen_command(&conf, secs, args.flood_rate))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let show = trafgen.show();
        let child = trafgen
            .spawn()
            .context("starting trafgen (`cargo xtask setup` installs netsniff-ng)")?;
        let wrk = run(&mut wrk_command(tb, args, &url, secs, Conn::Close, None), wrk_limit);
        // timeout(1) ends trafgen a second after wrk's run (SIGINT, then
        // SIGKILL): this wait is bounded.
        let out = child.wait_with_output().context("waiting for trafgen")?;
        if !(out.status.success() || out.status.code() == Some(124)) {
            bail!(
                "`{show}` failed: {}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((wrk?, packets_sent(&text)))
    })?;
    let denied = denied(&admin);
    lb.stop()?;
    Ok(row(rules, path, (&base, &base_cpu), (&flood, &flood_cpu), sent, denied))
}

fn row(
    rules: Rules,
    path: Route,
    (base, base_cpu): (&Wrk, &Cpu),
    (flood, flood_cpu): (&Wrk, &Cpu),
    sent: Option<u64>,
    denied: anyhow::Result<u64>,
) -> FloodRow {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let softirq = |c: &Cpu| Some(c.softirq * cpus / 100.0).filter(|v| v.is_finite());
    let secs = |w: &Wrk| (w.rps > 0.0).then(|| w.requests as f64 / w.rps);
    FloodRow {
        rules: rules.name().into(),
        path: path.name().into(),
        base_rps: Some(base.rps),
        flood_rps: Some(flood.rps),
        base_errors: base.errors(),
        flood_errors: flood.errors(),
        base_lb_cores: Some(base_cpu.lb_cores).filter(|v| v.is_finite()),
        flood_lb_cores: Some(flood_cpu.lb_cores).filter(|v| v.is_finite()),
        base_softirq_cores: softirq(base_cpu),
        flood_softirq_cores: softirq(flood_cpu),
        flood_prog_ms_per_s: (path.runs_lbxdp() && flood_cpu.prog.runs > 0)
            .then(|| secs(flood).map(|s| flood_cpu.prog.run_time.as_secs_f64() * 1000.0 / s))
            .flatten(),
        flood_sent: sent,
        denied: denied.ok(),
        not_run: None,
        shares: Vec::new(),
    }
}

/// An error's gist in one line: the balancer's own error line when its
/// log is quoted (an agent refusing the config says why there), else the
/// first line.
pub(super) fn reason(error: &str) -> String {
    let line = error
        .lines()
        .rev()
        .find(|l| l.contains("error:") || l.contains("[ALERT]"))
        .or_else(|| error.lines().next())
        .unwrap_or_default()
        .trim();
    match line.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_string(),
    }
}

fn client_sysctls() -> String {
    CLIENT_SYSCTLS
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// trafgen's arguments after `timeout`: SIGINT a second after the wrk run,
/// SIGKILL 5 s later; at most `rate` packets/s for that long.
fn trafgen_command(conf: &Path, secs: u64, rate: u64) -> Vec<String> {
    let limit = secs + 1;
    [
        "-k",
        "5",
        "-s",
        "INT",
        &limit.to_string(),
        "trafgen",
        "--dev",
        "eth0",
        "--conf",
        &conf.to_string_lossy(),
        "-n",
        &(rate * limit).to_string(),
        "-b",
        &format!("{rate}pps"),
        "-P",
        "1",
        "-C",
        "--no-sock-mem",
        "--notouch-irq",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// trafgen's count of what it sent: its `N packets outgoing` line.
fn packets_sent(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.trim()
            .strip_suffix("packets outgoing")
            .and_then(|n| n.trim().parse().ok())
    })
}

/// The bench's haproxy.cfg with an admin socket and `rules` in its frontend.
fn config(tb: &Testbed, rules: Rules, admin: &Path, list: &Path) -> anyhow::Result<String> {
    let base = agent::haproxy_cfg(tb);
    let anchor = "    default_backend";
    if !base.starts_with("global\n") || !base.contains(anchor) {
        bail!("the bench's haproxy.cfg changed shape; the flood's rules have nowhere to go:\n{base}");
    }
    Ok(base
        .replacen(
            "global\n",
            &format!("global\n    stats socket {} mode 600 level admin\n", admin.display()),
            1,
        )
        .replacen(anchor, &format!("{}{anchor}", rules.frontend(tb, list)), 1))
}

/// A trafgen packet: a TCP SYN from `sources` (four bytes in trafgen's
/// syntax) and a random port to the VIP's port 80, from the client's MAC to
/// the LB's, checksums filled in.
fn syn_packet(tb: &Testbed, sources: &str) -> anyhow::Result<String> {
    let bytes = |m: &str| m.split(':').map(|b| format!("0x{b}")).collect::<Vec<_>>().join(", ");
    let [a, b, c, d] = tb.lb.v4().octets();
    Ok(format!(
        "{{\n  {}, {}, 0x08, 0x00,\n\
         0x45, 0x00, const16(40), drnd(2), 0x40, 0x00, 64, 6, csumip(14, 33),\n\
         {sources}, {a}, {b}, {c}, {d},\n\
         drnd(2), const16(80), drnd(4), const32(0), 0x50, 0x02, const16(512), csumtcp(14, 34), const16(0)\n}}\n",
        bytes(&mac(tb, &tb.lb)?),
        bytes(&mac(tb, &tb.client)?),
    ))
}

fn mac(tb: &Testbed, host: &Host) -> anyhow::Result<String> {
    let out = tb
        .command(host, "ip")
        .args(["-j", "link", "show", "dev", "eth0"])
        .output_timeout(Duration::from_secs(5))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("ip -j link")?;
    v[0]["address"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no MAC address for {}'s eth0", host.name))
}

fn ip(tb: &Testbed, host: &Host, args: &[&str]) -> anyhow::Result<()> {
    let out = tb
        .command(host, "ip")
        .args(args)
        .output_timeout(Duration::from_secs(5))?;
    if !out.status.success() {
        bail!(
            "ip {} in {}: {}",
            args.join(" "),
            host.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// What the balancer's frontend `web` denied, from `show stat` on its admin
/// socket (a path socket: reachable from any namespace).
fn denied(admin: &Path) -> anyhow::Result<u64> {
    let mut s = UnixStream::connect(admin).with_context(|| format!("connecting to {}", admin.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"show stat\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    denied_in(&text).with_context(|| format!("no frontend web's dcon in `show stat`:\n{text}"))
}

/// dcon + dreq of `web,FRONTEND` in `show stat`'s CSV (HAProxy counts a
/// connection `reject` in dcon, a `silent-drop` in dreq).
fn denied_in(csv: &str) -> Option<u64> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next()?.strip_prefix("# ")?.split(',').collect();
    let row: Vec<&str> = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|r| r.first() == Some(&"web") && r.get(1) == Some(&"FRONTEND"))?;
    let cell = |name: &str| -> Option<u64> {
        let i = header.iter().position(|h| *h == name)?;
        Some(row.get(i)?.parse().unwrap_or(0))
    };
    Some(cell("dcon")? + cell("dreq").unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_tools_print() {
        let stat = "# pxname,svname,dreq,dresp,stot,dcon\nweb,FRONTEND,2,0,10,140000\nbe,BACKEND,,,10,\n";
        assert_eq!(denied_in(stat), Some(140_002));
        assert_eq!(denied_in("# pxname,svname,stot\nweb,FRONTEND,1\n"), None);
        let trafgen = "\n    300000 packets outgoing\n  18000000 bytes outgoing\n";
        assert_eq!(packets_sent(trafgen), Some(300_000));
        assert_eq!(packets_sent("nothing"), None);
        let cmd = trafgen_command(Path::new("x.trafgen"), 3, 1000);
        assert_eq!(cmd[4], "4", "SIGINT a second after wrk's run");
        assert_eq!(cmd[cmd.iter().position(|a| a == "-n").unwrap() + 1], "4000");
    }

    #[test]
    fn shares_and_the_smoke_check() {
        let mut r = FloodRow {
            base_rps: Some(1000.0),
            flood_rps: Some(900.0),
            ..FloodRow::default()
        };
        assert_eq!(r.share(), Some(0.9));
        let mut f = Flood {
            rows: vec![r.clone()],
            ..Flood::default()
        };
        f.check_ran().unwrap();
        r.not_run = Some("refused".into());
        f.rows.push(r);
        assert!(f.check_ran().is_err());
        assert!(Flood::default().check_ran().is_err());
        assert_eq!(FloodRow::default().share(), None);
        let run = |base: f64, flood: f64| FloodRow {
            base_rps: Some(base),
            flood_rps: Some(flood),
            denied: Some(10),
            ..FloodRow::default()
        };
        let (a, b, c) = (run(1000.0, 500.0), run(2000.0, 1800.0), run(800.0, 640.0));
        let m = merge(&[&a, &b, &c]).unwrap();
        assert_eq!(
            (m.base_rps, m.flood_rps, m.denied),
            (Some(1000.0), Some(640.0), Some(10))
        );
        assert_eq!(m.shares, [0.5, 0.9, 0.8]);
        assert_eq!(m.share(), Some(0.8), "the median of the rounds' shares");
        let refused = FloodRow {
            not_run: Some("refused".into()),
            ..FloodRow::default()
        };
        assert_eq!(
            merge(&[&refused, &refused]).unwrap().not_run.as_deref(),
            Some("refused")
        );
        assert_eq!(merge(&[&refused, &a]).unwrap().share(), Some(0.5));
        assert!(merge(&[]).is_none());
        let err = "the agent exited early: exit status: 1; its log ends:\nINFO x\nlbxdp-agent: error: refused\n";
        assert_eq!(reason(err), "lbxdp-agent: error: refused");
        assert_eq!(reason("wrk failed\nmore"), "wrk failed");
    }
}
