//! The scale-out testbed's routing ([`Layout::Ecmp`](crate::Layout::Ecmp)):
//! bird2 in the router and in every LB node, the router's view of the VIP,
//! and the ways a node fails.
//!
//! ```text
//!  client 198.18.1.10 ── router eth0 198.18.1.1
//!                        router eth1 198.18.0.1 ── lb1 .2, lb2 .3, ...   (bird2: BGP to the router)
//!                                               └─ web1 .101, web2 .102, ...
//! ```
//!
//! Each node runs the README's node config: bird2 learns the routes that
//! `lbxdp-agent --announce-table 100` keeps in kernel table 100 and exports
//! them by BGP (AS 65001, the same on every node, so the paths are equal) to
//! the router (AS 65000), whose kernel protocol merges the equal paths into
//! one multipath route (`merge paths on`). Timers are short: hold time 3 s,
//! keepalive 1 s; with [`Routing::bfd`] BFD at 100 ms × 3 too.
//!
//! A test or demo runs:
//! 1. `Testbed::build(&Topology { layout: Layout::Ecmp { nodes: 3 }, backends: 3, .. })`;
//! 2. [`Testbed::start_routing`];
//! 3. in each node, `lbxdp-agent -f CFG -i eth0 --announce-table 100 --maglev-seed S`
//!    with frontends bound to [`VIP`];
//! 4. [`Testbed::wait_next_hops`]`(VIP, nodes, ..)`: the client reaches the VIP through every node.
//!
//! and fails a node with [`Testbed::stop_bird`], [`Testbed::set_link`] or by
//! stopping its agent, timing the router with [`Testbed::wait_next_hop_gone`].
//! For direct server return, [`Testbed::add_vip_to_lo`] on each server.
//! Each node's agent needs a config of its own only if it names files
//! (stats socket, pidfile): the testbed's hosts share one file system.
//!
//! The router hashes multipath routes on the 5-tuple read from the headers
//! (`fib_multipath_hash_policy=3`, fields 0x37), not with policy 1, which
//! over veths reuses the client socket's own hash (TCP changes it at each
//! retransmission timeout, so a flow would hop nodes). `ip route get VIP
//! from CLIENT iif eth0 ipproto tcp sport P dport Q` in the router tells
//! which node a flow goes to. The nodes' bridge ports don't flood unknown
//! unicast, as a NIC drops other hosts' frames before XDP sees them: a
//! failed node's frames would otherwise reach the other nodes' XDP.
use std::{
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{Host, Testbed, links, procs::terminate};

/// The most nodes an ECMP testbed has (their addresses are 198.18.0.2 up to .51).
pub const MAX_NODES: usize = 50;

/// The VIP the nodes serve: outside every connected subnet, so the client
/// reaches it only through the route the router learns by BGP.
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 1);

/// The kernel routing table a node's agent fills (`--announce-table`) and its bird2 exports.
pub const ANNOUNCE_TABLE: u32 = 100;

pub const ROUTER_AS: u32 = 65000;
/// Every node's AS: equal AS paths are what lets the router merge them.
pub const NODE_AS: u32 = 65001;

/// The BGP hold time of every session: a node that goes silent is dropped
/// by the router after at most this long (without BFD).
pub const HOLD_TIME: Duration = Duration::from_secs(3);

/// How the sessions are run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Routing {
    /// BFD on every BGP session (100 ms intervals, multiplier 3): a silent
    /// node's session goes down after about 0.3 s instead of the hold time.
    pub bfd: bool,
}

/// BFD's timers, as bird2 writes them.
const BFD: &str = "protocol bfd { interface \"eth*\" { min rx interval 100 ms; min tx interval 100 ms; \
                   multiplier 3; }; }\n";

/// The options both ends of a session share. Graceful restart is off: a
/// failed node's routes must go at once, not stay as stale routes while
/// the router waits for it to come back.
fn session_opts(routing: Routing) -> String {
    let secs = HOLD_TIME.as_secs();
    format!(
        "hold time {secs}; keepalive time 1; connect retry time 1; error wait time 1, 5; graceful restart off;{}",
        if routing.bfd { " bfd on;" } else { "" }
    )
}

/// The router's bird2 config: a session per node, whose routes it imports
/// and merges into one multipath route in the main table.
pub fn router_config(router: Ipv4Addr, nodes: &[(String, Ipv4Addr)], routing: Routing) -> String {
    let mut s = format!(
        "router id {router};\nlog stderr all;\nprotocol device {{ scan time 1; }}\n\
         protocol kernel {{ ipv4 {{ import none; export all; }}; merge paths on; }}\n"
    );
    if routing.bfd {
        s.push_str(BFD);
    }
    for (name, addr) in nodes {
        s.push_str(&format!(
            "protocol bgp {name} {{ local {router} as {ROUTER_AS}; neighbor {addr} as {NODE_AS}; {} \
             ipv4 {{ import all; export none; }}; }}\n",
            session_opts(routing)
        ));
    }
    s
}

/// A node's bird2 config: the README's, with the testbed's addresses and
/// short timers.
pub fn node_config(node: Ipv4Addr, router: Ipv4Addr, routing: Routing) -> String {
    let mut s = format!(
        "router id {node};\nlog stderr all;\nipv4 table vips;\nprotocol device {{ scan time 1; }}\n\
         protocol kernel lbxdp {{ ipv4 {{ table vips; import all; export none; }}; \
         kernel table {ANNOUNCE_TABLE}; learn; scan time 1; }}\n\
         protocol bgp upstream {{ local {node} as {NODE_AS}; neighbor {router} as {ROUTER_AS}; {} \
         ipv4 {{ table vips; import none; export all; }}; }}\n",
        session_opts(routing)
    );
    if routing.bfd {
        s.push_str(BFD);
    }
    s
}

impl Testbed {
    /// The ECMP layout's router; an error in the other layouts.
    pub fn router(&self) -> anyhow::Result<&Host> {
        self.router
            .as_ref()
            .context("this testbed has no router (only Layout::Ecmp has one)")
    }

    /// The router's address on the nodes' segment (eth1), their BGP peer and gateway.
    fn router_inside(&self) -> anyhow::Result<Ipv4Addr> {
        Ok(self.router()?.iface("eth1").context("the router has no eth1")?.v4)
    }

    /// Starts bird2 in the router and in every node. Sessions come up
    /// within a second or two; the VIP's next hops appear as the nodes'
    /// agents announce it (see [`Testbed::wait_next_hops`]).
    pub fn start_routing(&self, routing: Routing) -> anyhow::Result<()> {
        self.start_bird(self.router()?, routing)?;
        for node in &self.nodes {
            self.start_bird(node, routing)?;
        }
        Ok(())
    }

    /// Starts bird2 in `host` (the router or a node) with its config;
    /// returns once its control socket answers. Its config, socket and log
    /// (`bird-HOST.conf`, `.ctl`, `.log`) are in [`Testbed::dir`].
    pub fn start_bird(&self, host: &Host, routing: Routing) -> anyhow::Result<()> {
        let router = self.router()?;
        let conf = if host.name == router.name {
            let nodes: Vec<(String, Ipv4Addr)> = self.nodes.iter().map(|n| (n.name.clone(), n.v4())).collect();
            router_config(self.router_inside()?, &nodes, routing)
        } else if self.nodes.iter().any(|n| n.name == host.name) {
            node_config(host.v4(), self.router_inside()?, routing)
        } else {
            bail!("{} is neither the router nor a node", host.name);
        };
        self.start_bird_with(host, &conf)
    }

    /// Starts bird2 in any `host` with the config `conf`, as `start_bird`
    /// does (stopped with `stop_bird`, asked with `birdc`, killed on drop).
    pub fn start_bird_with(&self, host: &Host, conf: &str) -> anyhow::Result<()> {
        let path = self.dir().join(format!("bird-{}.conf", host.name));
        std::fs::write(&path, conf).with_context(|| format!("writing {}", path.display()))?;
        let sock = self.bird_socket(host);
        let _ = std::fs::remove_file(&sock);
        let log_path = self.dir().join(format!("bird-{}.log", host.name));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .context("bird log")?;
        let mut child = self
            .command(host, "bird")
            .args(["-f", "-c"])
            .arg(&path)
            .arg("-s")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting bird (`cargo xtask setup` installs bird2)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.birdc(host, &["show", "status"]).is_err() {
            if child.try_wait()?.is_some() || Instant::now() > deadline {
                let _ = terminate(&mut child, Duration::from_secs(2));
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("bird in {} did not come up:\n{log}", host.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let old = self
            .birds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host.name.clone(), child);
        if let Some(mut old) = old {
            let _ = terminate(&mut old, Duration::from_secs(5));
        }
        Ok(())
    }

    /// Stops `host`'s bird2 (SIGTERM, bounded): its sessions close with a
    /// BGP notification, so the router drops its routes at once.
    pub fn stop_bird(&self, host: &Host) -> anyhow::Result<()> {
        let child = self.birds.lock().unwrap_or_else(|e| e.into_inner()).remove(&host.name);
        let mut child = child.with_context(|| format!("no bird running in {}", host.name))?;
        terminate(&mut child, Duration::from_secs(5))?;
        Ok(())
    }

    /// The control socket of `host`'s bird2.
    pub fn bird_socket(&self, host: &Host) -> PathBuf {
        self.dir().join(format!("bird-{}.ctl", host.name))
    }

    /// `birdc ARGS` on `host`'s bird2 (bounded); its output.
    pub fn birdc(&self, host: &Host, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .command(host, "birdc")
            .arg("-s")
            .arg(self.bird_socket(host))
            .args(args)
            .output_timeout(Duration::from_secs(5))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // birdc exits 0 even when it can't connect; it says so instead.
        if !out.status.success() || text.contains("Unable to connect") {
            bail!(
                "birdc {args:?} in {}: {text}{}",
                host.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(text)
    }

    /// The next hops (gateways) of the router's route to `dest`/32, sorted;
    /// empty when it has none.
    pub fn next_hops(&self, dest: Ipv4Addr) -> anyhow::Result<Vec<Ipv4Addr>> {
        let router = self.router()?;
        links::with_netlink(
            self.netns(router)?,
            |h| async move { links::gateways(&h, dest, 32).await },
        )
    }

    /// Polls (every 20 ms, bounded by `within`) until the router's route to
    /// `dest` has exactly `count` next hops; how long that took. The error
    /// tells what the router's bird2 shows.
    pub fn wait_next_hops(&self, dest: Ipv4Addr, count: usize, within: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            let hops = self.next_hops(dest)?;
            if hops.len() == count {
                return Ok(start.elapsed());
            }
            if start.elapsed() > within {
                let router = self.router()?;
                let protocols = self.birdc(router, &["show", "protocols"]).unwrap_or_default();
                let routes = self.birdc(router, &["show", "route", "all"]).unwrap_or_default();
                bail!(
                    "the router's route to {dest} has next hops {hops:?}, not {count} of them, after {within:?}; \
                     its bird2 shows:\n{protocols}\n{routes}"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls (every 10 ms, bounded by `within`) until `hop` is no longer a
    /// next hop of the router's route to `dest`; how long that took from the
    /// call. Start it as a node fails (on a thread of its own if failing
    /// the node takes a while) to time the router's reaction.
    pub fn wait_next_hop_gone(&self, dest: Ipv4Addr, hop: Ipv4Addr, within: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            let hops = self.next_hops(dest)?;
            if !hops.contains(&hop) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > within {
                let router = self.router()?;
                let protocols = self.birdc(router, &["show", "protocols"]).unwrap_or_default();
                bail!(
                    "{hop} is still a next hop to {dest} after {within:?} ({hops:?}); the router's bird2:\n{protocols}"
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sets `iface` of `host` administratively up or down (a cable pulled:
    /// the host's peers notice only when its BGP session or BFD times out).
    pub fn set_link(&self, host: &Host, iface: &str, up: bool) -> anyhow::Result<()> {
        let iface = iface.to_string();
        links::with_netlink(
            self.netns(host)?,
            |h| async move { links::set_state(&h, &iface, up).await },
        )
    }

    /// What a server needs for direct server return: `vip`/32 on its `lo`
    /// (it accepts the frames a node sends on unchanged, and answers from
    /// the VIP), `arp_ignore=1` (it doesn't answer ARP for the VIP, which
    /// only the router's route points at) and `arp_announce=2` (its ARP
    /// requests carry its own address, not the VIP). Full NAT needs none of it.
    /// An IPv6 `vip` gets /128 (IPv6 answers neighbour solicitations only
    /// for the receiving interface's addresses: `lo`'s need no sysctl).
    pub fn add_vip_to_lo(&self, host: &Host, vip: IpAddr) -> anyhow::Result<()> {
        let ns = self.netns(host)?;
        ns.sysctl("net.ipv4.conf.all.arp_ignore", "1")?;
        ns.sysctl("net.ipv4.conf.all.arp_announce", "2")?;
        let prefix = if vip.is_ipv4() { 32 } else { 128 };
        links::with_netlink(ns, |h| async move { links::add_address(&h, "lo", vip, prefix).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_name_every_node_and_share_the_timers() {
        let nodes = vec![
            ("lb1".to_string(), Ipv4Addr::new(198, 18, 0, 2)),
            ("lb2".to_string(), Ipv4Addr::new(198, 18, 0, 3)),
        ];
        let r = router_config(Ipv4Addr::new(198, 18, 0, 1), &nodes, Routing { bfd: true });
        assert!(r.contains("merge paths on"), "{r}");
        assert!(r.contains("protocol bgp lb2 { local 198.18.0.1 as 65000; neighbor 198.18.0.3 as 65001;"));
        assert_eq!(r.matches("hold time 3; keepalive time 1;").count(), 2, "{r}");
        assert_eq!(r.matches("bfd on;").count(), 2, "{r}");
        let n = node_config(
            Ipv4Addr::new(198, 18, 0, 2),
            Ipv4Addr::new(198, 18, 0, 1),
            Routing::default(),
        );
        assert!(n.contains("kernel table 100; learn;"), "{n}");
        assert!(!n.contains("bfd"), "{n}");
    }
}
