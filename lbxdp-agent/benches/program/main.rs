//! What the XDP program itself costs per packet, as the kernel times it
//! under BPF_PROG_TEST_RUN (the way Katran's tester does): a SYN that creates
//! a flow, an established flow's packet (client to server), a server's reply
//! (full NAT back to the client), and a packet to the LB itself (no VIP),
//! in IPv4 and IPv6. Every run's XDP action is checked: a figure for a packet
//! that took another branch would be worthless.
//!
//! The FIB generation is set as the agent's watch sets it, so an
//! established flow's packet and a reply use their flow's cached next hop
//! (as every packet of a flow after its second does); a SYN's packet goes
//! through bpf_fib_lookup.
//!
//! How each figure is got, because `repeat` is honest for one case only: the
//! kernel copies the frame in once and every repetition sees it as the
//! previous one left it. A packet to no VIP comes out as it went in, so its
//! repeated run is that packet over and over: its figure is the kernel's
//! mean over `repeat` runs. A balanced packet comes out rewritten (to a
//! server, or to the client), and the next repetition would time a packet to
//! no VIP; a SYN's repetitions would find the flow the first one made. Those
//! are timed one run per syscall (a fresh copy of the frame each time, and a
//! new client for each SYN), and each such figure carries the cost of a
//! single-run test run around the program (the timer's clock reads, the
//! call that isn't through the XDP dispatcher): that overhead is measured on
//! the non-VIP packet (single runs minus repeated runs) and subtracted, and
//! both figures are printed. With BPF run-time statistics on (held by this
//! process, off again when it exits) the kernel's own per-run figure,
//! bpf_stats' run_time_ns / run_cnt, is printed alongside.
//!
//! One JSON line per case on stdout, a readable line per case on stderr.
//! Needs root (a network namespace, loading the object); `--quick` runs a
//! few repetitions only, to see that it works; `--spin CASE` runs one IPv4
//! case for 3 s and prints nothing, for `perf record`. Run by `cargo xtask
//! bench`.
mod setup;

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use anyhow::{Context as _, anyhow, ensure};
use lbxdp_agent::datapath::{Datapath, TestRunOutcome};
use serde_json::{Value, json};

use lbxdp_testbed::frames::{CLIENT_PORT, SERVER_PORT, TCP_ACK, TCP_SYN, VIP_PORT, dissect, tcp_frame};

use self::setup::{Family, V4, V6};

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

/// How much to measure.
#[derive(Clone, Copy)]
struct Plan {
    /// Repetitions of the non-VIP packet in one test run.
    repeat: u32,
    /// Batches per figure; the figure is the median of the batches' means.
    batches: usize,
    /// Single runs per batch.
    runs: usize,
}

const FULL: Plan = Plan {
    repeat: 1_000_000,
    batches: 9,
    runs: 2_000,
};
const QUICK: Plan = Plan {
    repeat: 1_000,
    batches: 2,
    runs: 20,
};
/// The SYNs' clients start above the fixed client's address (198.19.0.10).
const FIRST_SYN: u32 = 256;
/// How long `--spin` runs one case.
const SPIN_FOR: Duration = Duration::from_secs(3);
/// A figure stops taking batches after this long (it has at least one).
const FIGURE_WITHIN: Duration = Duration::from_secs(10);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--spin CASE`: that IPv4 case alone for a few seconds, under `perf record`.
    let spin = args
        .iter()
        .position(|a| a == "--spin")
        .map(|i| args.get(i + 1).cloned().unwrap_or_default());
    if let Err(why) = lbxdp_testbed::require_root() {
        eprintln!("!!! SKIPPED the program's costs: {why} (a network namespace, loading the XDP object) !!!");
        return Ok(());
    }
    let plan = if quick { QUICK } else { FULL };
    // The namespace goes with the thread: nothing is left on the host.
    let lines = std::thread::spawn(move || -> anyhow::Result<Vec<Value>> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
        pin_to_one_cpu();
        let ifindex = setup::network()?;
        let dp = setup::balancer()?;
        let mut bench = Bench {
            dp: &dp,
            ifindex,
            plan,
            syns: FIRST_SYN,
        };
        match spin {
            Some(case) => bench.spin(&case).map(|()| Vec::new()),
            None => bench.all(),
        }
    })
    .join()
    .map_err(|_| anyhow!("the measuring thread panicked"))??;
    for l in lines {
        println!("{l}");
    }
    Ok(())
}

/// Keeps every run on one CPU: its caches stay warm, and the flow tables'
/// per-CPU free lists are the same from one run to the next.
fn pin_to_one_cpu() {
    use nix::{
        sched::{CpuSet, sched_getaffinity, sched_setaffinity},
        unistd::Pid,
    };
    let me = Pid::from_raw(0);
    let pinned = sched_getaffinity(me).and_then(|allowed| {
        let cpu = (0..CpuSet::count())
            .rev()
            .find(|&c| allowed.is_set(c).unwrap_or(false))
            .unwrap_or(0);
        let mut one = CpuSet::new();
        one.set(cpu)?;
        sched_setaffinity(me, &one)
    });
    if let Err(e) = pinned {
        eprintln!("program: not pinned to one CPU ({e}): runs may move between CPUs");
    }
}

fn action_name(a: u32) -> &'static str {
    match a {
        0 => "XDP_ABORTED",
        1 => "XDP_DROP",
        XDP_PASS => "XDP_PASS",
        XDP_TX => "XDP_TX",
        4 => "XDP_REDIRECT",
        _ => "unknown",
    }
}

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The frames of one family's cases.
struct Cases {
    family: Family,
    non_vip: Vec<u8>,
    hit: Vec<u8>,
    reply: Vec<u8>,
}

/// One case's figures, before it is printed.
struct Figure {
    /// The cost per packet, overhead taken out.
    ns: f64,
    /// Single runs' mean (for the non-VIP packet, its calibration).
    single_ns: f64,
    runs: usize,
    stats_ns: Option<f64>,
}

struct Bench<'a> {
    dp: &'a Datapath,
    ifindex: u32,
    plan: Plan,
    /// SYNs made so far: each comes from a client of its own.
    syns: u32,
}

impl Bench<'_> {
    fn all(&mut self) -> anyhow::Result<Vec<Value>> {
        let cases = [self.cases(V4)?, self.cases(V6)?];
        // Figures first, with statistics off: they cost two clock reads a run.
        let mut figures = Vec::new();
        for c in &cases {
            // Warm caches and the flow entries up before the first figure.
            self.repeated(&c.non_vip, self.plan.repeat / 10 + 1)?;
            let non_vip = self.median_of(|b| b.repeated(&c.non_vip, b.plan.repeat))?;
            let single = self.median_of(|b| b.singles(&mut || c.non_vip.clone(), XDP_PASS, "non-VIP"))?;
            let overhead = single - non_vip;
            let fe = c.family.frontend as usize;
            let before = self.new_flows(fe)?;
            let hit = self.median_of(|b| b.singles(&mut || c.hit.clone(), XDP_TX, "established hit"))?;
            let reply = self.median_of(|b| b.singles(&mut || c.reply.clone(), XDP_TX, "reply"))?;
            ensure!(
                self.new_flows(fe)? == before,
                "{}: an established flow's packets made new flows",
                c.family.name
            );
            let syns_before = self.syns;
            let family = c.family;
            let syn = self.median_of(|b| b.syns(family))?;
            let made = u64::from(self.syns - syns_before);
            ensure!(
                self.new_flows(fe)? - before == made,
                "{}: {made} SYNs did not make as many flows",
                family.name
            );
            let runs = self.plan.runs;
            for (case, action, ns, single) in [
                ("syn-new-flow", XDP_TX, syn - overhead, syn),
                ("established-hit", XDP_TX, hit - overhead, hit),
                ("reply", XDP_TX, reply - overhead, reply),
                ("non-vip", XDP_PASS, non_vip, single),
            ] {
                figures.push((
                    c,
                    case,
                    action,
                    overhead,
                    Figure {
                        ns,
                        single_ns: single,
                        runs,
                        stats_ns: None,
                    },
                ));
            }
        }
        self.with_stats(&mut figures);
        Ok(figures
            .into_iter()
            .map(|(c, case, action, overhead, f)| {
                let (method, repeat) = if case == "non-vip" {
                    ("repeat", self.plan.repeat)
                } else {
                    ("single runs minus the overhead", 1)
                };
                eprintln!(
                    "program: {:<16} {:<4} {:<8} {:>7.1} ns  (single runs {:>7.1} ns; overhead {:>5.1} ns; bpf_stats {})",
                    case,
                    c.family.name,
                    action_name(action),
                    f.ns,
                    f.single_ns,
                    overhead,
                    f.stats_ns.map_or("off".to_string(), |s| format!("{s:.1} ns"))
                );
                json!({
                    "kind": "packet",
                    "case": case,
                    "family": c.family.name,
                    "action": action_name(action),
                    "ns": f.ns,
                    "single_ns": f.single_ns,
                    "overhead_ns": overhead,
                    "method": method,
                    "repeat": repeat,
                    "runs_per_batch": f.runs,
                    "batches": self.plan.batches,
                    "stats_ns": f.stats_ns,
                })
            })
            .collect())
    }

    /// One IPv4 case's single runs over and over for `SPIN_FOR`, so that a
    /// profiler sees that path alone.
    fn spin(&mut self, case: &str) -> anyhow::Result<()> {
        let c = self.cases(V4)?;
        let t = Instant::now();
        while t.elapsed() < SPIN_FOR {
            match case {
                "syn-new-flow" => self.syns(V4).map(|_| ())?,
                "established-hit" => self.singles(&mut || c.hit.clone(), XDP_TX, case).map(|_| ())?,
                "reply" => self.singles(&mut || c.reply.clone(), XDP_TX, case).map(|_| ())?,
                "non-vip" => self.singles(&mut || c.non_vip.clone(), XDP_PASS, case).map(|_| ())?,
                _ => anyhow::bail!("--spin takes syn-new-flow, established-hit, reply or non-vip, not {case:?}"),
            }
        }
        Ok(())
    }

    /// bpf_stats' figure for every case, while this process holds the
    /// statistics on; left out (None) if the kernel won't turn them on.
    fn with_stats(&mut self, figures: &mut [(&Cases, &str, u32, f64, Figure)]) {
        let _on = match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
            Ok(fd) => fd,
            Err(e) => {
                eprintln!("program: no bpf_stats figures: BPF_ENABLE_STATS: {e}");
                return;
            }
        };
        for (c, case, _, _, f) in figures.iter_mut() {
            let family = c.family;
            let before = self.dp.run_stats();
            let ran = match *case {
                "syn-new-flow" => self.syns(family).map(|_| ()),
                "established-hit" => self
                    .singles(&mut || c.hit.clone(), XDP_TX, "established hit")
                    .map(|_| ()),
                "reply" => self.singles(&mut || c.reply.clone(), XDP_TX, "reply").map(|_| ()),
                _ => self.repeated(&c.non_vip, self.plan.repeat).map(|_| ()),
            };
            let after = self.dp.run_stats();
            match (ran, before, after) {
                (Ok(()), Ok((n0, t0)), Ok((n1, t1))) if n1 > n0 => {
                    f.stats_ns = Some(ns(t1.saturating_sub(t0)) / (n1 - n0) as f64);
                }
                (ran, before, after) => {
                    eprintln!("program: no bpf_stats figure for {case}: {ran:?} {before:?} {after:?}");
                }
            }
        }
    }

    /// The median of the batches' figures, taking batches until there are
    /// enough or the time is up.
    fn median_of(&mut self, mut batch: impl FnMut(&mut Self) -> anyhow::Result<f64>) -> anyhow::Result<f64> {
        let t = Instant::now();
        let mut figures = Vec::with_capacity(self.plan.batches);
        while figures.len() < self.plan.batches && (figures.is_empty() || t.elapsed() < FIGURE_WITHIN) {
            figures.push(batch(self)?);
        }
        Ok(median(figures))
    }

    fn run(&self, frame: &[u8], repeat: u32, want: u32, what: &str) -> anyhow::Result<TestRunOutcome> {
        let out = self
            .dp
            .test_run_repeat(frame, repeat, self.ifindex)
            .with_context(|| format!("test run of {what}"))?;
        ensure!(
            out.action == want,
            "{what}: {} instead of {}",
            action_name(out.action),
            action_name(want)
        );
        Ok(out)
    }

    /// The kernel's mean over `repeat` runs of a frame the program leaves
    /// as it found it (checked, so every repetition took the same path).
    fn repeated(&self, frame: &[u8], repeat: u32) -> anyhow::Result<f64> {
        let out = self.run(frame, repeat, XDP_PASS, "non-VIP (repeated)")?;
        ensure!(out.frame == frame, "the non-VIP packet came out changed");
        Ok(ns(out.mean))
    }

    /// The mean of a batch of single runs, a frame from `next` each.
    fn singles(&self, next: &mut dyn FnMut() -> Vec<u8>, want: u32, what: &str) -> anyhow::Result<f64> {
        let mut total = Duration::ZERO;
        for _ in 0..self.plan.runs {
            total += self.run(&next(), 1, want, what)?.mean;
        }
        Ok(ns(total) / self.plan.runs as f64)
    }

    /// A batch of SYNs, each from a new client (address and port).
    fn syns(&mut self, family: Family) -> anyhow::Result<f64> {
        let runs = self.plan.runs;
        let mut total = Duration::ZERO;
        for _ in 0..runs {
            self.syns += 1;
            let frame = syn_from(family, self.syns);
            total += self.run(&frame, 1, XDP_TX, "SYN")?.mean;
        }
        Ok(ns(total) / runs as f64)
    }

    fn new_flows(&self, frontend: usize) -> anyhow::Result<u64> {
        let stats = self.dp.frontend_stats(2)?;
        Ok(stats.get(frontend).map_or(0, |s| s.new_flows))
    }

    /// One established flow (SYN, the server's SYN-ACK, the client's ACK)
    /// and the frames of the family's cases, each run once and checked.
    fn cases(&self, family: Family) -> anyhow::Result<Cases> {
        let name = family.name;
        let cport = CLIENT_PORT;
        let client = (family.client, cport);
        let syn = tcp_frame(family.client, cport, family.vip, VIP_PORT, TCP_SYN);
        let out = self.run(&syn, 1, XDP_TX, "the handshake's SYN")?;
        let ((snat, nat_port), (server, sport)) = dissect(&out.frame).context("the SYN as sent")?.endpoints();
        ensure!(
            snat == family.lb && sport == SERVER_PORT && family.servers.contains(&server),
            "{name}: the SYN went out as {snat}:{nat_port} -> {server}:{sport}"
        );
        let to_client = |frame: &[u8], what: &str| -> anyhow::Result<()> {
            let out = self.run(frame, 1, XDP_TX, what)?;
            let seen = dissect(&out.frame).context("a reply as sent")?.endpoints();
            ensure!(
                seen == ((family.vip, VIP_PORT), client),
                "{name}: {what} went out as {seen:?}"
            );
            Ok(())
        };
        to_client(
            &tcp_frame(server, SERVER_PORT, snat, nat_port, TCP_SYN | TCP_ACK),
            "the SYN-ACK",
        )?;
        let hit = tcp_frame(family.client, cport, family.vip, VIP_PORT, TCP_ACK);
        let out = self.run(&hit, 1, XDP_TX, "the client's ACK")?;
        let seen = dissect(&out.frame).context("the ACK as sent")?.endpoints();
        ensure!(
            seen == ((snat, nat_port), (server, SERVER_PORT)),
            "{name}: the client's ACK went out as {seen:?}"
        );
        let reply = tcp_frame(server, SERVER_PORT, snat, nat_port, TCP_ACK);
        to_client(&reply, "the server's ACK")?;
        let non_vip = tcp_frame(family.client, cport + 1, family.lb, 22, TCP_ACK);
        Ok(Cases {
            family,
            non_vip,
            hit,
            reply,
        })
    }
}

/// The `n`th SYN's frame: client address `n` in the clients' range, and a
/// port spread over Linux's ephemeral range (so NAT ports are claimed as
/// from many real clients, colliding more as the table fills).
fn syn_from(family: Family, n: u32) -> Vec<u8> {
    let h = n.wrapping_mul(0x9e37_79b9).rotate_left(13) ^ n;
    let port = 32768 + (h % 28232) as u16;
    let client = match family.client {
        IpAddr::V4(_) => IpAddr::from([198, 19, (n >> 8) as u8, n as u8]),
        IpAddr::V6(c) => {
            let mut o = c.octets();
            o[12..16].copy_from_slice(&n.to_be_bytes());
            IpAddr::from(o)
        }
    };
    tcp_frame(client, port, family.vip, VIP_PORT, TCP_SYN)
}
