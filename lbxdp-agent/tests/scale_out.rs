//! Scale-out (issue 15): several lbxdp nodes behind a router that spreads
//! the VIP over them by ECMP, each announcing it by BGP with bird2 while it
//! can serve it (the ECMP testbed, lbxdp-testbed's `ecmp` module). Each node
//! runs `lbxdp-agent --announce-table 100 --maglev-seed 7` with the same
//! haproxy.cfg (only its stats socket differs). Needs root and bird2; skips
//! loudly without them.
//!
//! The failover tests print lines starting `FAILOVER` and `SURVIVAL` with
//! what they measured, for the note.
mod common;

use std::{
    io::{Read as _, Write as _},
    net::Ipv4Addr,
    path::PathBuf,
    process::{Child, Stdio},
    sync::atomic::{AtomicBool, AtomicU16, Ordering},
    time::{Duration, Instant},
};

use common::{Agent, clients::tally};
use lbxdp_testbed::{
    Host, Layout, Testbed, Topology,
    ecmp::{ANNOUNCE_TABLE, HOLD_TIME, Routing, VIP},
};

/// Every node's `--maglev-seed`: the same on all, so they pick alike.
const SEED: &str = "7";

/// The echo frontend's port: each server's socat says its name, then echoes.
const ECHO_PORT: u16 = 7000;

/// The scale-out testbed with an agent on every node.
struct Cluster {
    /// Dropped before the testbed (fields drop in order); None once stopped.
    agents: Vec<Option<Agent>>,
    tb: Testbed,
    nat: &'static str,
}

impl Cluster {
    /// `nodes` nodes and `servers` servers (nginx on 80, the echo server on
    /// 7000), bird2 everywhere, and the agents with `--nat nat`; returns
    /// once the router has a next hop per node. None (after a loud message)
    /// without root or bird2.
    fn start(test: &str, nodes: usize, servers: usize, nat: &'static str, routing: Routing) -> Option<Cluster> {
        if common::skip_without_root(test) {
            return None;
        }
        if !std::path::Path::new("/usr/sbin/bird").exists() {
            eprintln!("\n!!! SKIPPED {test}: /usr/sbin/bird is missing (`cargo xtask setup` installs bird2). !!!\n");
            return None;
        }
        let mut tb = Testbed::build(&Topology {
            layout: Layout::Ecmp { nodes },
            backends: servers,
            nginx: true,
            default_offloads: false,
        })
        .expect("ECMP testbed");
        for b in tb.backends.clone() {
            let child = tb
                .command(&b, "socat")
                .args([
                    format!("TCP-LISTEN:{ECHO_PORT},fork,reuseaddr"),
                    format!("SYSTEM:echo {}; exec cat", b.name),
                ])
                .spawn()
                .expect("socat echo server");
            tb.adopt(child);
            if nat == "dsr" {
                tb.add_vip_to_lo(&b, VIP.into()).expect("the VIP on the server's lo");
            }
        }
        tb.start_routing(routing).expect("bird2");
        let mut cluster = Cluster {
            agents: Vec::new(),
            tb,
            nat,
        };
        cluster.write_configs(&vec![1; servers]);
        for i in 0..nodes {
            let agent = cluster.start_agent(i);
            cluster.agents.push(Some(agent));
        }
        cluster
            .tb
            .wait_next_hops(VIP, nodes, Duration::from_secs(20))
            .expect("a next hop per node");
        Some(cluster)
    }

    fn node(&self, i: usize) -> Host {
        self.tb.nodes[i].clone()
    }

    fn config_path(&self, i: usize) -> PathBuf {
        self.tb.dir().join(format!("haproxy-lb{}.cfg", i + 1))
    }

    fn stats_socket(&self, i: usize) -> PathBuf {
        self.tb.dir().join(format!("lb{}.sock", i + 1))
    }

    /// Writes every node's haproxy.cfg: the same frontends and servers with
    /// `weights`, and a stats socket of its own.
    fn write_configs(&self, weights: &[u32]) {
        for i in 0..self.tb.nodes.len() {
            let mut cfg = format!(
                "global\n    stats socket {} level admin\n\n\
                 defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n\
                 frontend web\n    bind {VIP}:80\n    default_backend pool\n\n\
                 frontend echo\n    bind {VIP}:{ECHO_PORT}\n    default_backend echo\n\nbackend pool\n",
                self.stats_socket(i).display()
            );
            for (b, w) in self.tb.backends.iter().zip(weights) {
                cfg.push_str(&format!(
                    "    server {} {}:80 check inter 500 fall 1 rise 1 weight {w}\n",
                    b.name,
                    b.v4()
                ));
            }
            cfg.push_str("\nbackend echo\n");
            for (b, w) in self.tb.backends.iter().zip(weights) {
                cfg.push_str(&format!("    server {} {}:{ECHO_PORT} weight {w}\n", b.name, b.v4()));
            }
            std::fs::write(self.config_path(i), cfg).expect("writing haproxy.cfg");
        }
    }

    /// Starts node `i`'s agent as the README says a node runs it; returns once it balances.
    fn start_agent(&self, i: usize) -> Agent {
        let cfg = self.config_path(i).to_string_lossy().into_owned();
        let table = ANNOUNCE_TABLE.to_string();
        let args = [
            "-f",
            &cfg,
            "-i",
            "eth0",
            "--stats-interval",
            "0",
            "--announce-table",
            &table,
            "--maglev-seed",
            SEED,
            "--nat",
            self.nat,
        ];
        let mut agent = Agent::start_in(&self.tb, &self.node(i), &args);
        agent.wait_for("balancing", Duration::from_secs(30));
        agent
    }

    fn agent(&mut self, i: usize) -> &mut Agent {
        self.agents[i].as_mut().expect("agent running")
    }

    /// Stops every agent still running; their reports by node index.
    fn stop_all(&mut self) -> Vec<serde_json::Value> {
        self.agents
            .iter_mut()
            .filter_map(Option::take)
            .map(Agent::stop)
            .collect()
    }

    fn url(&self) -> String {
        format!("http://{VIP}/")
    }
}

/// A frontend's `new_flows` in an agent's report.
fn new_flows(report: &serde_json::Value, frontend: &str) -> u64 {
    report["frontends"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == frontend))
        .and_then(|f| f["new_flows"].as_u64())
        .unwrap_or_else(|| panic!("no new_flows for {frontend} in {report}"))
}

#[test]
fn new_flows_spread_over_every_node() {
    const REQUESTS: usize = 300;
    let Some(mut c) = Cluster::start("new_flows_spread_over_every_node", 3, 3, "full", Routing::default()) else {
        return;
    };
    let t = tally(&c.tb, &c.tb.client, &c.url(), REQUESTS);
    let names: Vec<String> = c.tb.backends.iter().map(|b| b.name.clone()).collect();
    assert_eq!(t.values().sum::<usize>(), REQUESTS, "every request answered: {t:?}");
    assert!(
        t.keys().all(|k| names.contains(k)),
        "only servers' names came back: {t:?}"
    );
    let reports = c.stop_all();
    let per_node: Vec<u64> = reports.iter().map(|r| new_flows(r, "web")).collect();
    eprintln!("SPREAD {REQUESTS} connections: by server {t:?}, new flows by node {per_node:?}");
    assert_eq!(
        per_node.iter().sum::<u64>(),
        REQUESTS as u64,
        "each connection is one node's new flow"
    );
    // Each connection's node is a fair three-way coin toss: 100 expected,
    // and 40 is more than 7 standard deviations (8.2) below.
    for (i, n) in per_node.iter().enumerate() {
        assert!(
            *n >= 40,
            "node lb{} got {n} of {REQUESTS} new flows: {per_node:?}",
            i + 1
        );
    }
}

/// How a node fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// Its agent stops (SIGTERM): it withdraws the VIP's route from table
    /// 100, and bird2 withdraws it from the router by a BGP update.
    AgentStop,
    /// Its bird2 stops: the BGP session closes with a notification.
    BirdStop,
    /// Its eth0 goes down: the router notices only when the BGP hold time
    /// (or BFD's detection time) runs out.
    LinkDown,
}

impl Failure {
    fn name(self) -> &'static str {
        match self {
            Failure::AgentStop => "agent stopped",
            Failure::BirdStop => "bird2 stopped",
            Failure::LinkDown => "link down",
        }
    }
}

/// Fails node `node` the `kind` way; the stopped agent's report. (The
/// testbed and the agents are passed apart so that clients can use the
/// testbed meanwhile.)
fn fail(tb: &Testbed, agents: &mut [Option<Agent>], node: usize, kind: Failure) -> Option<serde_json::Value> {
    let host = tb.nodes[node].clone();
    match kind {
        Failure::AgentStop => return Some(agents[node].take().expect("agent running").stop()),
        Failure::BirdStop => tb.stop_bird(&host).expect("stopping bird"),
        Failure::LinkDown => tb.set_link(&host, "eth0", false).expect("link down"),
    }
    None
}

/// One request of the probing loop.
struct Probe {
    /// When it started, from the loop's epoch.
    at: Duration,
    /// How long it took (a failed connect: the 0.5 s timeout).
    took: Duration,
    ok: bool,
    /// The body, or curl's error.
    answer: String,
}

/// Requests to `url` from the client, each a new curl (a new connection,
/// so a new ECMP hash) with a 0.5 s connect timeout (one SYN, no
/// retransmit: a node that is gone fails it), until `stop` or `limit`. A
/// connected request has 2 s in all: a node that answered the handshake is
/// there, and a slow answer on a busy machine is no failover.
fn probe_loop(tb: &Testbed, url: &str, epoch: Instant, stop: &AtomicBool, limit: Duration) -> Vec<Probe> {
    let mut probes = Vec::new();
    while !stop.load(Ordering::Relaxed) && epoch.elapsed() < limit {
        let at = epoch.elapsed();
        // Each request from a port of its own, so that a failure can say
        // which node the router sent it to.
        let port = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        let out = tb
            .command(&tb.client, "curl")
            .args(["--local-port", &port.to_string()])
            .args([
                "-sS",
                "--connect-timeout",
                "0.5",
                "--max-time",
                "2",
                "-H",
                "Connection: close",
                url,
            ])
            .output_timeout(Duration::from_secs(4));
        let (ok, answer) = match out {
            Ok(o) if o.status.success() => (true, String::from_utf8_lossy(&o.stdout).trim().to_string()),
            Ok(o) => (false, String::from_utf8_lossy(&o.stderr).trim().to_string()),
            Err(e) => (false, format!("{e:#}")),
        };
        let answer = if ok {
            answer
        } else {
            format!("[via {}] {answer}", ecmp_hop(tb, port, 80))
        };
        probes.push(Probe {
            at,
            took: epoch.elapsed() - at,
            ok,
            answer,
        });
    }
    probes
}

/// The client port of the next probing request: a fresh one each time,
/// below the ephemeral range (32768 up) that the client's other
/// connections take theirs from.
static NEXT_PORT: AtomicU16 = AtomicU16::new(20000);

/// What the running agents logged about their servers' health, for
/// failure messages: a request that fails where none should may follow a
/// check that failed.
fn health_events(agents: &mut [Option<Agent>]) -> Vec<String> {
    agents
        .iter_mut()
        .enumerate()
        .filter_map(|(i, a)| a.as_mut().map(|a| (i, a.log())))
        .flat_map(|(i, log)| {
            log.lines()
                .filter(|l| l.contains(" is DOWN") || l.contains(" is UP"))
                .map(|l| format!("lb{}: {l}", i + 1))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What one failover measured; times from the failure.
struct Failover {
    /// When the router's route lost the node's next hop.
    route_gone: Duration,
    /// When the last request that failed started and ended, in seconds
    /// (negative: before the failure; None: none failed).
    last_failure: Option<(f64, f64)>,
    failed: usize,
    requests: usize,
}

/// Fails node `node` the `kind` way while two loops of requests run, and
/// measures how long the router kept its next hop and until when requests
/// failed. Asserts that nothing failed before, that the next hop went
/// within `bound`, that every request from a second after that succeeded
/// and that every answer came from a server.
fn failover(c: &mut Cluster, node: usize, kind: Failure, bound: Duration, how: &str) -> Failover {
    let label = format!("{} ({how})", kind.name());
    let Cluster { agents, tb, .. } = c;
    let tb: &Testbed = tb;
    let hops_before = tb.next_hops(VIP).expect("next hops");
    let failed_addr = tb.nodes[node].v4();
    assert!(hops_before.contains(&failed_addr), "{label}: {hops_before:?}");
    let url = format!("http://{VIP}/");
    let names: Vec<String> = tb.backends.iter().map(|b| b.name.clone()).collect();
    let stop = AtomicBool::new(false);
    let epoch = Instant::now();
    let (t0, route_gone, probes) = std::thread::scope(|s| {
        let loops: Vec<_> = (0..2)
            .map(|_| s.spawn(|| probe_loop(tb, &url, epoch, &stop, Duration::from_secs(40))))
            .collect();
        // Requests before the failure: all must succeed.
        std::thread::sleep(Duration::from_secs(1));
        let t0 = epoch.elapsed();
        // Watched from the failure on: stopping an agent takes a moment of
        // its own, during which the route may already go.
        let watch = s.spawn(|| tb.wait_next_hop_gone(VIP, failed_addr, bound));
        fail(tb, agents, node, kind);
        let route_gone = watch.join().expect("watching the route");
        // Then two seconds through the others.
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        let probes: Vec<Probe> = loops.into_iter().flat_map(|l| l.join().expect("probe loop")).collect();
        (t0, route_gone.unwrap_or_else(|e| panic!("{label}: {e:#}")), probes)
    });
    tb.wait_next_hops(VIP, hops_before.len() - 1, Duration::ZERO)
        .unwrap_or_else(|e| panic!("{label}: only the failed node's next hop is gone: {e:#}"));
    // A request still under way at the failure counts with those after it.
    let before: Vec<&Probe> = probes.iter().filter(|p| p.at + p.took <= t0).collect();
    let after: Vec<&Probe> = probes.iter().filter(|p| p.at + p.took > t0).collect();
    let secs = |d: Duration| d.as_secs_f64() - t0.as_secs_f64();
    let bad = |p: &&&Probe| !p.ok;
    assert!(
        before.iter().all(|p| p.ok),
        "{label}: requests failed before the failure: {:?}; the nodes' health events: {:?}",
        before
            .iter()
            .filter(bad)
            .map(|p| format!("{:.2} s: {}", p.at.as_secs_f64(), p.answer))
            .collect::<Vec<_>>(),
        health_events(agents)
    );
    for p in probes.iter().filter(|p| p.ok) {
        assert!(
            names.contains(&p.answer),
            "{label}: answer {:?} is no server's",
            p.answer
        );
    }
    let settled = route_gone + Duration::from_secs(1);
    let late: Vec<String> = after
        .iter()
        .filter(|p| !p.ok && p.at.saturating_sub(t0) >= settled)
        .map(|p| format!("{:.2} s: {}", secs(p.at), p.answer))
        .collect();
    assert!(
        late.is_empty(),
        "{label}: requests failed more than 1 s after the route was gone ({:.2} s): {late:?}",
        route_gone.as_secs_f64()
    );
    assert!(
        after.iter().filter(|p| p.at.saturating_sub(t0) >= settled).count() >= 5,
        "{label}: too few requests after the route was gone to tell"
    );
    let f = Failover {
        route_gone,
        last_failure: after
            .iter()
            .filter(|p| !p.ok)
            .map(|p| (secs(p.at), secs(p.at + p.took)))
            .max_by(|a, b| a.0.total_cmp(&b.0)),
        failed: after.iter().filter(bad).count(),
        requests: after.len(),
    };
    eprintln!(
        "FAILOVER {label}: the router dropped the next hop {:.2} s after the failure; the last failed request \
         {} ({} of {} requests from the failure on failed, {} nodes before)",
        f.route_gone.as_secs_f64(),
        f.last_failure
            .map(|(a, b)| format!("started {a:.2} s and ended {b:.2} s after it"))
            .unwrap_or_else(|| "- none failed".into()),
        f.failed,
        f.requests,
        hops_before.len(),
    );
    f
}

/// Agent stop (withdrawal by BGP update), then a link down (hold time), without BFD.
#[test]
fn a_failed_node_is_routed_around_within_the_hold_time() {
    let Some(mut c) = Cluster::start(
        "a_failed_node_is_routed_around_within_the_hold_time",
        3,
        3,
        "full",
        Routing::default(),
    ) else {
        return;
    };
    let margin = Duration::from_secs(2);
    let stopped = failover(&mut c, 2, Failure::AgentStop, HOLD_TIME + margin, "BGP withdraw");
    let down = failover(&mut c, 1, Failure::LinkDown, HOLD_TIME + margin, "hold time 3 s");
    // A withdrawal needs no timer; a silent node waits out the hold time.
    assert!(
        down.route_gone > stopped.route_gone,
        "link down {:?} vs agent stop {:?}",
        down.route_gone,
        stopped.route_gone
    );
    assert!(
        down.failed > 0,
        "requests to the silent node failed until the hold time ran out"
    );
}

/// With BFD: a link down is noticed in BFD's detection time, well inside
/// the hold time; then bird2 stopping on another node.
#[test]
fn with_bfd_a_dead_link_is_routed_around_in_a_fraction_of_the_hold_time() {
    let Some(mut c) = Cluster::start(
        "with_bfd_a_dead_link_is_routed_around_in_a_fraction_of_the_hold_time",
        3,
        3,
        "full",
        Routing { bfd: true },
    ) else {
        return;
    };
    let router = c.tb.router().expect("router").clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sessions = c.tb.birdc(&router, &["show", "bfd", "sessions"]).expect("birdc");
        if sessions.matches(" Up ").count() == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "BFD sessions not up:\n{sessions}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // BFD detects in 0.3 s; the bound is well under the 3 s hold time.
    failover(&mut c, 2, Failure::LinkDown, Duration::from_secs(2), "BFD 100 ms x 3");
    failover(&mut c, 1, Failure::BirdStop, HOLD_TIME, "BGP notification");
}

/// Lines each long flow sends, one per 100 ms: 8 s.
const FLOW_LINES: usize = 80;

/// A long-lived TCP flow from the client to the echo frontend: socat with a
/// fixed source port (so the router's hash for it can be asked), fed a line
/// every 100 ms.
struct LongFlow {
    sport: u16,
    child: Child,
    out: std::thread::JoinHandle<Vec<u8>>,
}

fn start_flow(tb: &Testbed, sport: u16) -> LongFlow {
    let mut child = tb
        .command(&tb.client, "socat")
        .args([
            "-t".to_string(),
            "5".to_string(),
            "-".to_string(),
            format!("TCP:{VIP}:{ECHO_PORT},sourceport={sport}"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat client");
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Ends on its own, or at the first write after socat is gone (EPIPE).
    std::thread::spawn(move || {
        for i in 1..=FLOW_LINES {
            if stdin.write_all(format!("line {i}\n").as_bytes()).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let mut stdout = child.stdout.take().expect("piped stdout");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    LongFlow { sport, child, out }
}

/// How a long flow ended.
struct FlowEnd {
    /// The server that answered (the echo server's first line).
    server: String,
    /// socat exited 0 and everything sent came back, in order, after the banner.
    byte_exact: bool,
}

/// Waits for the flows until `deadline`, kills those still hanging then.
fn finish_flows(flows: Vec<LongFlow>, deadline: Instant) -> Vec<FlowEnd> {
    let sent: String = (1..=FLOW_LINES).map(|i| format!("line {i}\n")).collect();
    flows
        .into_iter()
        .map(|mut f| {
            let status = loop {
                if let Some(status) = f.child.try_wait().expect("waiting for socat") {
                    break Some(status);
                }
                if Instant::now() > deadline {
                    let _ = f.child.kill();
                    let _ = f.child.wait();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let out = String::from_utf8_lossy(&f.out.join().unwrap_or_default()).into_owned();
            let server = out.lines().next().unwrap_or_default().to_string();
            FlowEnd {
                byte_exact: status.is_some_and(|s| s.success()) && out == format!("{server}\n{sent}"),
                server,
            }
        })
        .collect()
}

/// The router's next hop now for a client flow from `sport` to the VIP's
/// `dport`: `ip route get` with the ports, which the kernel hashes as it
/// does the flow's packets (the testbed's hash policy 3 reads them from the
/// headers).
fn ecmp_hop(tb: &Testbed, sport: u16, dport: u16) -> Ipv4Addr {
    let router = tb.router().expect("router");
    let out = tb
        .command(router, "ip")
        .args([
            "-4",
            "route",
            "get",
            &VIP.to_string(),
            "from",
            &tb.client.v4().to_string(),
        ])
        .args(["iif", "eth0", "ipproto", "tcp", "sport", &sport.to_string()])
        .args(["dport", &dport.to_string()])
        .output_timeout(Duration::from_secs(5))
        .expect("ip route get");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "via")
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no next hop in {text:?} ({})", String::from_utf8_lossy(&out.stderr)))
}

/// A long flow's end, and the node the router sent it to before and after the failure.
struct Moved {
    end: FlowEnd,
    before: Ipv4Addr,
    after: Ipv4Addr,
}

/// Twelve long flows through three nodes; the node that carries the most
/// fails the `kind` way (its agent stops: the router's route loses it at
/// once; its link goes down: after the hold time, while the flows'
/// segments to it are lost and retransmitted). The flows it carried move to
/// the others, and so do some of the others' (the kernel's hash-threshold
/// ECMP re-splits the hash space). Returns the flows and the failed node's
/// address.
fn long_flows_through_a_failed_node(nat: &'static str, kind: Failure) -> Option<(Vec<Moved>, Ipv4Addr)> {
    const FLOWS: u16 = 12;
    let test = format!("long_flows_through_a_failed_node_{nat}_{kind:?}");
    let mut c = Cluster::start(&test, 3, 3, nat, Routing::default())?;
    let started = Instant::now();
    let flows: Vec<LongFlow> = (0..FLOWS).map(|k| start_flow(&c.tb, 41001 + k)).collect();
    std::thread::sleep(Duration::from_millis(1500));
    let before: Vec<Ipv4Addr> = flows.iter().map(|f| ecmp_hop(&c.tb, f.sport, ECHO_PORT)).collect();
    let node = (0..c.tb.nodes.len())
        .max_by_key(|&i| before.iter().filter(|h| **h == c.tb.nodes[i].v4()).count())
        .expect("nodes");
    let failed = c.tb.nodes[node].v4();
    let Cluster { agents, tb, .. } = &mut c;
    let report = fail(tb, agents, node, kind);
    c.tb.wait_next_hops(VIP, 2, HOLD_TIME + Duration::from_secs(2))
        .expect("the failed node's next hop gone");
    let after: Vec<Ipv4Addr> = flows.iter().map(|f| ecmp_hop(&c.tb, f.sport, ECHO_PORT)).collect();
    // The flows' own 8 s, and time for a moved flow's retransmits (backing
    // off up to 3.2 s apart while the hold time runs).
    let ends = finish_flows(flows, started + Duration::from_millis(FLOW_LINES as u64 * 100 + 8000));
    let names: Vec<String> = c.tb.backends.iter().map(|b| b.name.clone()).collect();
    for e in &ends {
        assert!(names.contains(&e.server), "flow answered by {:?}", e.server);
    }
    // The router's hash, as `ip route get` tells it, is where the flows
    // went: each node saw as new flows those predicted for it at first and,
    // with DSR, the ones that moved to it (their first segment there is
    // mid-flow; full NAT drops those).
    let mut reports: Vec<(Ipv4Addr, serde_json::Value)> = report.map(|r| (failed, r)).into_iter().collect();
    for (i, a) in c.agents.iter_mut().enumerate() {
        if let Some(a) = a.take() {
            reports.push((c.tb.nodes[i].v4(), a.stop()));
        }
    }
    for (addr, r) in &reports {
        let first = before.iter().filter(|h| *h == addr).count();
        let moved_in = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| *a == addr && *b != addr)
            .count();
        let predicted = (first + if nat == "dsr" { moved_in } else { 0 }) as u64;
        assert_eq!(
            new_flows(r, "echo"),
            predicted,
            "node {addr}: flows went to {before:?}, then {after:?}"
        );
    }
    let flows = ends
        .into_iter()
        .zip(before)
        .zip(after)
        .map(|((end, before), after)| Moved { end, before, after })
        .collect();
    Some((flows, failed))
}

/// The survival share by where a flow went, printed as `SURVIVAL ...`;
/// returns (on the failed node, moved between others, stayed) as (survived, of).
fn survival(nat: &str, kind: Failure, flows: &[Moved], failed: Ipv4Addr) -> [(usize, usize); 3] {
    let share = |pick: &dyn Fn(&Moved) -> bool| {
        let of: Vec<_> = flows.iter().filter(|f| pick(f)).collect();
        (of.iter().filter(|f| f.end.byte_exact).count(), of.len())
    };
    let on_failed = share(&|f| f.before == failed);
    let moved = share(&|f| f.before != failed && f.before != f.after);
    let stayed = share(&|f| f.before == f.after);
    let all = share(&|_| true);
    eprintln!(
        "SURVIVAL nat={nat}, {}: {}/{} long flows survived a node's failure byte-exact; on the failed node {}/{}, \
         moved by the re-hash between the others {}/{}, stayed on their node {}/{}",
        kind.name(),
        all.0,
        all.1,
        on_failed.0,
        on_failed.1,
        moved.0,
        moved.1,
        stayed.0,
        stayed.1
    );
    [on_failed, moved, stayed]
}

/// Full NAT: a flow's NAT state lives on its node, so the flows that move
/// to another node break (as with HAProxy); those that stay survive.
#[test]
fn long_flows_through_a_failed_node_break_with_full_nat() {
    let kind = Failure::AgentStop;
    let Some((flows, failed)) = long_flows_through_a_failed_node("full", kind) else {
        return;
    };
    let [on_failed, moved, stayed] = survival("full", kind, &flows, failed);
    assert!(on_failed.1 > 0, "a flow went through the failed node");
    assert_eq!(on_failed.0, 0, "no flow of the failed node survived on another node");
    assert_eq!(moved.0, 0, "no flow that moved between nodes survived");
    assert_eq!(stayed.0, stayed.1, "every flow that stayed on its node survived");
}

/// Direct server return: no node holds state a flow needs, and every node
/// picks the same server, so every flow survives, byte-exact: when the
/// node's agent stops, and when its link goes down.
#[test]
fn long_flows_through_a_failed_node_survive_with_dsr() {
    dsr_flows_survive(Failure::AgentStop);
}

#[test]
fn long_flows_through_a_dead_link_survive_with_dsr() {
    dsr_flows_survive(Failure::LinkDown);
}

fn dsr_flows_survive(kind: Failure) {
    let Some((flows, failed)) = long_flows_through_a_failed_node("dsr", kind) else {
        return;
    };
    let [on_failed, _, _] = survival("dsr", kind, &flows, failed);
    assert!(on_failed.1 > 0, "a flow went through the failed node");
    let broken: Vec<&str> = flows
        .iter()
        .filter(|f| !f.end.byte_exact)
        .map(|f| f.end.server.as_str())
        .collect();
    assert!(broken.is_empty(), "flows broke (their servers: {broken:?})");
}

/// A `show stat` field of `proxy`/`server` on node `i`'s stats socket.
fn stat_field(c: &Cluster, i: usize, proxy: &str, server: &str, field: &str) -> String {
    let stat = common::clients::socat(&c.tb, &c.node(i), &c.stats_socket(i), "show stat");
    let mut lines = stat.lines();
    let header: Vec<&str> = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .unwrap_or_else(|| panic!("no header in {stat}"))
        .split(',')
        .collect();
    let col = header
        .iter()
        .position(|h| *h == field)
        .unwrap_or_else(|| panic!("no {field} column"));
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|r| r.first() == Some(&proxy) && r.get(1) == Some(&server))
        .and_then(|r| r.get(col).map(|v| v.to_string()))
        .unwrap_or_else(|| panic!("no {proxy}/{server} row in {stat}"))
}

/// Every node checks the servers itself, and all come to the same view: a
/// stopped nginx is DOWN on each node, and no request lands on it whichever
/// node the router picks.
#[test]
fn a_server_down_is_removed_on_every_node_alike() {
    const REQUESTS: usize = 150;
    let Some(mut c) = Cluster::start(
        "a_server_down_is_removed_on_every_node_alike",
        3,
        3,
        "full",
        Routing::default(),
    ) else {
        return;
    };
    let t = tally(&c.tb, &c.tb.client, &c.url(), REQUESTS);
    assert!(t.get("web2").is_some_and(|n| *n > 0), "web2 serves while up: {t:?}");
    let web2 = c.tb.backends[1].clone();
    c.tb.stop_nginx(&web2, 80).expect("stop web2's nginx");
    for i in 0..c.tb.nodes.len() {
        c.agent(i).wait_for("Server pool/web2 is DOWN", Duration::from_secs(10));
    }
    for i in 0..c.tb.nodes.len() {
        let status = stat_field(&c, i, "pool", "web2", "status");
        assert!(status.starts_with("DOWN"), "lb{}: web2 is {status}", i + 1);
        for up in ["web1", "web3"] {
            let status = stat_field(&c, i, "pool", up, "status");
            assert!(status.starts_with("UP"), "lb{}: {up} is {status}", i + 1);
        }
    }
    let t = tally(&c.tb, &c.tb.client, &c.url(), REQUESTS);
    eprintln!("with web2 down: {t:?}");
    assert_eq!(t.values().sum::<usize>(), REQUESTS, "every request answered: {t:?}");
    assert_eq!(
        t.get("web2"),
        None,
        "no request lands on the server that is down: {t:?}"
    );
    let reports = c.stop_all();
    for (i, r) in reports.iter().enumerate() {
        assert!(new_flows(r, "web") > 0, "lb{} took part: {r}", i + 1);
    }
}

/// A weight change, written to every node's config and reloaded with
/// SIGHUP on each: established flows stay on their servers (byte-exact to
/// the end: each node's flow entry holds the server, with full NAT and with
/// DSR), and new connections follow the new weights on every node.
#[test]
fn a_weight_change_reloaded_on_every_node_keeps_flows_on_their_servers() {
    weight_change_keeps_flows("full");
}

#[test]
fn a_weight_change_reloaded_on_every_node_keeps_dsr_flows_on_their_servers() {
    weight_change_keeps_flows("dsr");
}

fn weight_change_keeps_flows(nat: &'static str) {
    const REQUESTS: usize = 200;
    let test = format!("a_weight_change_reloaded_on_every_node_keeps_flows_on_their_servers_{nat}");
    let Some(mut c) = Cluster::start(&test, 3, 3, nat, Routing::default()) else {
        return;
    };
    let started = Instant::now();
    let flows: Vec<LongFlow> = (0..9).map(|k| start_flow(&c.tb, 42001 + k)).collect();
    std::thread::sleep(Duration::from_secs(1));
    c.write_configs(&[1, 1, 4]);
    for i in 0..c.tb.nodes.len() {
        let agent = c.agent(i);
        agent.signal(nix::sys::signal::Signal::SIGHUP);
        let line = agent.wait_for("SIGHUP:", Duration::from_secs(10));
        assert!(!line.contains("reload failed"), "lb{}: {line}", i + 1);
    }
    for i in 0..c.tb.nodes.len() {
        assert_eq!(stat_field(&c, i, "pool", "web3", "weight"), "4", "lb{}", i + 1);
    }
    let t = tally(&c.tb, &c.tb.client, &c.url(), REQUESTS);
    let ends = finish_flows(flows, started + Duration::from_millis(FLOW_LINES as u64 * 100 + 5000));
    let servers: Vec<&str> = ends.iter().map(|e| e.server.as_str()).collect();
    eprintln!("nat {nat}, after the reload: new connections {t:?}; the long flows' servers {servers:?}");
    assert!(
        ends.iter().all(|e| e.byte_exact),
        "every established flow kept its server to the end: {:?}",
        ends.iter()
            .map(|e| (e.server.as_str(), e.byte_exact))
            .collect::<Vec<_>>()
    );
    // Weights 1, 1, 4: web3 expects 133 of 200, the others 67 together
    // (a standard deviation of 6.7).
    let web3 = t.get("web3").copied().unwrap_or(0);
    assert_eq!(t.values().sum::<usize>(), REQUESTS, "{t:?}");
    assert!(web3 > REQUESTS - web3, "new connections follow the new weights: {t:?}");
}
