//! `cargo xtask run --scale-out`: three lbxdp nodes behind a bird2 router
//! doing ECMP, with direct server return (docs/scale-out.md). The router's
//! route to the VIP has a next hop per node; new connections spread over
//! the nodes (each agent's counters say how); one node's agent stops, the
//! router drops it, and requests keep succeeding through the other two.
//! Bounded at every step, and Ctrl-C cleans up (see `interrupt`).
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use lbxdp_testbed::{
    Host, Layout, Testbed, Topology,
    ecmp::{ANNOUNCE_TABLE, Routing, VIP},
};

use crate::{
    agent::{self, Agent, AgentRun, Ready},
    demo::socat,
    interrupt,
    util::{self, step},
};

const NODES: usize = 3;
const SERVERS: usize = 3;
/// Every node's `--maglev-seed`: the same on all, so they pick alike.
const SEED: &str = "1";
/// New connections per sample of the spread.
const REQUESTS: u32 = 60;
/// The node whose agent the demo stops (lb2).
const VICTIM: usize = 1;
/// Bounds of the requests made while the node stops.
const DURING_MAX: u32 = 300;
const DURING_WITHIN: Duration = Duration::from_secs(20);

pub fn run(bin: &Path) -> anyhow::Result<()> {
    if !util::is_root() {
        bail!("the demo builds network namespaces and loads XDP: run it as root (sudo cargo xtask run --scale-out)");
    }
    if !Path::new("/usr/sbin/bird").exists() {
        bail!("bird2 is missing (`cargo xtask setup` installs it)");
    }
    // From here on, Ctrl-C ends the demo through its guards.
    interrupt::catch()?;

    step(&format!(
        "scale-out: testbed (a client behind a router, {NODES} LB nodes and {SERVERS} nginx servers on one segment)"
    ));
    let tb = Testbed::build(&Topology {
        layout: Layout::Ecmp { nodes: NODES },
        backends: SERVERS,
        nginx: true,
        default_offloads: false,
    })?;
    let router = tb.router()?.clone();
    println!(
        "    namespaces {}-*: client {}, router {} / {}",
        tb.prefix(),
        tb.client.v4(),
        router.v4(),
        router.iface("eth1").map(|i| i.v4.to_string()).unwrap_or_default()
    );
    for n in &tb.nodes {
        println!("    {} {} (lbxdp + bird2)", n.name, n.v4());
    }
    for b in &tb.backends {
        println!("    {} {} (nginx)", b.name, b.v4());
    }
    println!("    VIP {VIP}");

    step("scale-out: direct server return: each server holds the VIP on lo (arp_ignore=1, arp_announce=2)");
    for b in &tb.backends {
        tb.add_vip_to_lo(b, VIP.into())?;
    }
    interrupt::check()?;

    step("scale-out: bird2 in the router (merge paths on) and in each node (exports kernel table 100 by BGP)");
    tb.start_routing(Routing::default())?;
    println!(
        "    configs: {} and {}",
        tb.dir().join("bird-router.conf").display(),
        tb.dir().join("bird-lb1.conf").display()
    );
    interrupt::check()?;

    let table = ANNOUNCE_TABLE.to_string();
    let args = ["--nat", "dsr", "--maglev-seed", SEED, "--announce-table", &table];
    step(&format!(
        "scale-out: lbxdp-agent on each node: -i eth0 {} (the same haproxy.cfg but for its stats socket)",
        args.join(" ")
    ));
    // Declared after the testbed: dropped (stopped) before it.
    let mut agents = Agents(Vec::new());
    for (i, node) in tb.nodes.iter().enumerate() {
        let cfg = tb.dir().join(format!("haproxy-{}.cfg", node.name));
        let text = node_cfg(&tb, &stats_socket(&tb, node));
        std::fs::write(&cfg, &text).context("writing haproxy.cfg")?;
        if i == 0 {
            println!("    {}:\n{}", cfg.display(), indent(&text));
        }
        let run = AgentRun {
            bin,
            cfg: &cfg,
            args: &args,
            report: tb.dir().join(format!("agent-{}.json", node.name)),
            log: Some(tb.dir().join(format!("agent-{}.log", node.name))),
        };
        agents
            .0
            .push(Some(Agent::start_on(&tb, node, run, Ready::LogLine("balancing"))?));
        interrupt::check()?;
    }

    step("scale-out: the router's route to the VIP: a next hop per node that announces it");
    tb.wait_next_hops(VIP, NODES, Duration::from_secs(20))?;
    show_route(&tb, &router)?;

    step(&format!(
        "scale-out: {REQUESTS} requests from the client, each on a new connection"
    ));
    sample(&tb, &[])?;

    let victim = tb.nodes[VICTIM].clone();
    step(&format!(
        "scale-out: {}'s agent stops (SIGTERM): it withdraws the VIP, then detaches; the client goes on connecting",
        victim.name
    ));
    let (gone, during) = stop_under_load(&tb, &victim, &mut agents.0[VICTIM])?;
    println!(
        "    the router dropped {} {:.0} ms after the SIGTERM",
        victim.name,
        gone.as_secs_f64() * 1000.0
    );
    println!(
        "    requests meanwhile (until 1 s after): {} answered, {} failed, the slowest in {:.2} s",
        during.answered,
        during.failed,
        during.slowest.as_secs_f64()
    );
    let log = std::fs::read_to_string(tb.dir().join(format!("agent-{}.log", victim.name))).unwrap_or_default();
    for line in log
        .lines()
        .filter(|l| l.contains("announce:") || l.contains("detached"))
    {
        println!("    {}'s log: {}", victim.name, line.trim());
    }
    show_route(&tb, &router)?;

    step(&format!(
        "scale-out: {REQUESTS} more requests: two nodes serve them all"
    ));
    sample(&tb, &[VICTIM])?;

    step("scale-out: stopping the other agents (each withdraws the VIP first)");
    for (node, agent) in tb.nodes.iter().zip(agents.0.iter_mut()) {
        if let Some(mut a) = agent.take() {
            let (status, _) = a.stop()?;
            println!("    {}: exited with {status}", node.name);
        }
    }
    println!("    the router's next hops to {VIP}: {:?}", tb.next_hops(VIP)?);
    step("scale-out: done; tearing the testbed down");
    Ok(())
}

/// The nodes' agents. Whatever ends the demo, they get a SIGTERM (bounded),
/// not the SIGKILL of [`Agent`]'s own drop: they withdraw the VIP and take
/// their pinned datapaths away with them.
struct Agents(Vec<Option<Agent>>);

impl Drop for Agents {
    fn drop(&mut self) {
        for mut agent in self.0.iter_mut().filter_map(Option::take) {
            let _ = agent.stop();
        }
    }
}

/// Node `node`'s stats socket (the hosts share one file system).
fn stats_socket(tb: &Testbed, node: &Host) -> PathBuf {
    tb.dir().join(format!("{}.sock", node.name))
}

/// Every node's haproxy.cfg: one frontend on the VIP, the servers with
/// their health checks; only the stats socket differs between nodes.
fn node_cfg(tb: &Testbed, sock: &Path) -> String {
    let mut s = format!(
        "global\n    stats socket {} mode 600 level admin\n\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend web\n    bind {VIP}:80\n    default_backend nginx-servers\n\n\
         backend nginx-servers\n    balance roundrobin\n",
        sock.display()
    );
    for b in &tb.backends {
        s.push_str(&format!(
            "    server {} {}:80 check inter 1000 fall 2 rise 2 weight 1\n",
            b.name,
            b.v4()
        ));
    }
    s
}

/// `ip -4 route show VIP` in the router, as an operator reads it.
fn show_route(tb: &Testbed, router: &Host) -> anyhow::Result<()> {
    let out = tb
        .command(router, "ip")
        .args(["-4", "route", "show", &VIP.to_string()])
        .output_timeout(Duration::from_secs(5))?;
    println!("    $ ip route show {VIP}    (in the router)");
    println!("{}", indent(String::from_utf8_lossy(&out.stdout).trim_end()));
    Ok(())
}

/// `REQUESTS` requests on new connections: the answers by server, and the
/// new connections each node counted (its frontend's `stot`). `stopped`
/// nodes have no agent to ask.
fn sample(tb: &Testbed, stopped: &[usize]) -> anyhow::Result<()> {
    let count = |i: usize| -> anyhow::Result<Option<u64>> {
        if stopped.contains(&i) {
            return Ok(None);
        }
        let csv = socat(&stats_socket(tb, &tb.nodes[i]), "show stat")?;
        frontend_sessions(&csv, "web")
            .map(Some)
            .with_context(|| format!("no frontend row in {}'s show stat:\n{csv}", tb.nodes[i].name))
    };
    let before = (0..tb.nodes.len()).map(count).collect::<anyhow::Result<Vec<_>>>()?;
    let mut answers: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..REQUESTS {
        interrupt::check()?;
        let who = agent::curl(tb, &format!("http://{VIP}/")).unwrap_or_else(|e| format!("error: {e}"));
        *answers.entry(who.trim().to_string()).or_default() += 1;
    }
    let after = (0..tb.nodes.len()).map(count).collect::<anyhow::Result<Vec<_>>>()?;
    println!("    answers by server: {answers:?}");
    let by_node: Vec<String> = tb
        .nodes
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(n, counts)| match counts {
            (Some(b), Some(a)) => format!("{} {}", n.name, a.saturating_sub(*b)),
            _ => format!("{} (stopped)", n.name),
        })
        .collect();
    println!(
        "    new connections by node (each agent's `show stat`, frontend stot): {}",
        by_node.join(", ")
    );
    Ok(())
}

/// What the client saw while a node stopped.
#[derive(Default)]
struct During {
    answered: u32,
    failed: u32,
    slowest: Duration,
}

/// Stops `agent` (node `victim`'s) while the client connects over and over
/// and a watcher times the router's reaction; the requests go on until a
/// second after the router dropped the node (bounded in count and time).
fn stop_under_load(tb: &Testbed, victim: &Host, agent: &mut Option<Agent>) -> anyhow::Result<(Duration, During)> {
    let mut agent = agent.take().context("the agent already stopped")?;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let load = s.spawn(|| {
            let mut seen = During::default();
            let start = Instant::now();
            for _ in 0..DURING_MAX {
                if done.load(Ordering::SeqCst) || start.elapsed() > DURING_WITHIN || interrupt::check().is_err() {
                    break;
                }
                let t = Instant::now();
                match agent::curl(tb, &format!("http://{VIP}/")) {
                    Ok(_) => seen.answered += 1,
                    Err(_) => seen.failed += 1,
                }
                seen.slowest = seen.slowest.max(t.elapsed());
            }
            seen
        });
        // Some requests before the stop, then the watcher, then the stop.
        if let Err(e) = interrupt::sleep(Duration::from_millis(500)) {
            done.store(true, Ordering::SeqCst);
            let _ = load.join();
            return Err(e);
        }
        let watcher = s.spawn(|| tb.wait_next_hop_gone(VIP, victim.v4(), Duration::from_secs(15)));
        let stopped = agent.stop().map(|_| ());
        let gone = watcher
            .join()
            .map_err(|_| anyhow::anyhow!("the watcher panicked"))
            .and_then(|r| r);
        let after = gone
            .as_ref()
            .map_or(Ok(()), |_| interrupt::sleep(Duration::from_secs(1)));
        done.store(true, Ordering::SeqCst);
        let seen = load.join().map_err(|_| anyhow::anyhow!("the load thread panicked"))?;
        stopped?;
        after?;
        Ok((gone?, seen))
    })
}

/// A frontend's `stot` (sessions since start; in XDP mode, its new flows)
/// in HAProxy's `show stat` CSV.
fn frontend_sessions(csv: &str, frontend: &str) -> Option<u64> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name);
    let (px, sv, stot) = (column("pxname")?, column("svname")?, column("stot")?);
    lines.find_map(|line| {
        let cells: Vec<&str> = line.split(',').collect();
        (cells.get(px) == Some(&frontend) && cells.get(sv) == Some(&"FRONTEND"))
            .then(|| cells.get(stot)?.parse().ok())
            .flatten()
    })
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("      {l}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frontends_sessions_from_show_stat() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin\n\
                   web,FRONTEND,,,0,3,2048,42,1000\n\
                   nginx-servers,web1,0,0,0,1,,14,300\n\
                   nginx-servers,BACKEND,0,0,0,1,,42,1000\n";
        assert_eq!(frontend_sessions(csv, "web"), Some(42));
        assert_eq!(frontend_sessions(csv, "nginx-servers"), None);
        assert_eq!(frontend_sessions("", "web"), None);
    }
}
