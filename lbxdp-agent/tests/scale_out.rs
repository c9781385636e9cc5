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

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use common::Agent;
use lbxdp_testbed::{
    Host, Layout, Testbed, Topology,
    ecmp::{ANNOUNCE_TABLE, Routing, VIP},
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
                tb.add_vip_to_lo(&b, VIP).expect("the VIP on the server's lo");
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

/// `n` requests from the client, each on a new connection (so a new source
/// port, which the router hashes), from one curl; tallied by answer.
fn tally(tb: &Testbed, url: &str, n: usize) -> BTreeMap<String, usize> {
    let out = tb
        .command(&tb.client, "curl")
        .args(["-sS", "--max-time", "60", "-H", "Connection: close"])
        .args(std::iter::repeat_n(url, n))
        .output_timeout(Duration::from_secs(90))
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {url} x{n}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut t = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        *t.entry(line.to_string()).or_default() += 1;
    }
    t
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
    let t = tally(&c.tb, &c.url(), REQUESTS);
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
