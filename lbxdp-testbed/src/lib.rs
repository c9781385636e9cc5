//! Network-namespace testbeds for lbxdp's tests, demo and benchmarks.
//!
//! A [`Testbed`] is built from a [`Topology`]: a client, a load-balancer host
//! and N backends, each in its own network namespace, joined by bridges that
//! live in a switch namespace of their own. Addresses come only from
//! 198.18.0.0/15 and fd00:198:18::/48, and no namespace has a route out.
//! Dropping the testbed ends every process in its namespaces and removes them,
//! also when a test panics; [`Testbed::build`] first sweeps namespaces left by
//! runs that crashed.
//!
//! [`Layout::Ecmp`] builds the scale-out testbed: a router running bird2
//! with ECMP in front of several LB nodes (see [`ecmp`] for its addresses
//! and the helpers that start bird2, read the router's next hops and fail a
//! node).
//!
//! [`frames`] holds the packet fixtures the XDP program is tested and timed
//! on through BPF_PROG_TEST_RUN.
mod command;
pub mod ecmp;
pub mod frames;
mod links;
mod netns;
mod nginx;
mod procs;

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
    process::{Child, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::{Context as _, bail};
pub use command::NsCommand;
use netns::Netns;
pub use procs::terminate;

/// How the hosts are wired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Client, LB and backends on one L2 segment (198.18.0.0/24, fd00:198:18::/64).
    OneArm,
    /// The client on 198.18.1.0/24, the backends on 198.18.2.0/24, and the LB
    /// between them (eth0 .1 in front, eth1 .1 behind) forwarding as a router.
    TwoArm,
    /// Scale-out: the client on 198.18.1.0/24 behind a `router` (eth0 .1 there,
    /// eth1 198.18.0.1 on the shared segment), and on the shared segment
    /// 198.18.0.0/24 the LB nodes lb1..lbN (.2..) and the backends (.101..),
    /// each with a default route via the router. The router forwards, hashes
    /// multipath routes on the 5-tuple, and learns the VIP from the nodes by
    /// BGP once [`Testbed::start_routing`] runs bird2 (see [`ecmp`]).
    Ecmp { nodes: usize },
}

#[derive(Clone, Debug)]
pub struct Topology {
    pub layout: Layout,
    /// Backend hosts web1..webN.
    pub backends: usize,
    /// Start nginx on port 80 in each backend, answering with the backend's name.
    pub nginx: bool,
    /// Leave the veths as Linux makes them (TX checksum offload on, as in
    /// containers) instead of making the hosts send complete checksums.
    pub default_offloads: bool,
}

/// One interface of a host, with its addresses.
#[derive(Clone, Debug)]
pub struct Iface {
    pub name: String,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
}

/// A host of the testbed: a namespace with one or two interfaces.
#[derive(Clone, Debug)]
pub struct Host {
    /// Its role: "client", "lb", "web1", ...
    pub name: String,
    /// The full namespace name (under /run/netns).
    pub netns: String,
    pub ifaces: Vec<Iface>,
}

impl Host {
    /// The address on eth0 (on the LB of a two-arm layout, the client side).
    pub fn v4(&self) -> Ipv4Addr {
        self.ifaces[0].v4
    }

    pub fn v6(&self) -> Ipv6Addr {
        self.ifaces[0].v6
    }

    pub fn iface(&self, name: &str) -> Option<&Iface> {
        self.ifaces.iter().find(|i| i.name == name)
    }
}

/// Fails (with the reason) when this process can't build testbeds.
pub fn require_root() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("not running as root".into());
    }
    Ok(())
}

static SEQ: AtomicU32 = AtomicU32::new(0);

pub struct Testbed {
    pub client: Host,
    /// The LB host; in the ECMP layout the first node (lb1).
    pub lb: Host,
    pub backends: Vec<Host>,
    /// The ECMP layout's router; None in the others.
    pub router: Option<Host>,
    /// The ECMP layout's LB nodes lb1..lbN; empty in the others.
    pub nodes: Vec<Host>,
    prefix: String,
    // Switch first, then hosts; removed in reverse.
    namespaces: Vec<Netns>,
    by_name: HashMap<String, usize>,
    children: Vec<Child>,
    /// nginx processes by (host, port), so a test can stop one and start it again.
    nginx: std::sync::Mutex<HashMap<(String, u16), Child>>,
    /// bird2 daemons by host name (ECMP layout), so a test can stop one.
    birds: std::sync::Mutex<HashMap<String, Child>>,
    dir: tempfile::TempDir,
}

impl Testbed {
    pub fn build(topo: &Topology) -> anyhow::Result<Self> {
        require_root().map_err(|why| anyhow::anyhow!("a testbed needs root: {why}"))?;
        if topo.backends == 0 || topo.backends > 100 {
            bail!("a testbed has 1..=100 backends, not {}", topo.backends);
        }
        if let Layout::Ecmp { nodes } = topo.layout
            && !(1..=ecmp::MAX_NODES).contains(&nodes)
        {
            bail!("an ECMP testbed has 1..={} nodes, not {nodes}", ecmp::MAX_NODES);
        }
        sweep_stale();
        let prefix = format!(
            "{}{}-{}",
            netns::PREFIX,
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()
            .context("creating a temp dir")?;
        let mut tb = Self {
            client: Host {
                name: String::new(),
                netns: String::new(),
                ifaces: Vec::new(),
            },
            lb: Host {
                name: String::new(),
                netns: String::new(),
                ifaces: Vec::new(),
            },
            backends: Vec::new(),
            router: None,
            nodes: Vec::new(),
            prefix,
            namespaces: Vec::new(),
            by_name: HashMap::new(),
            children: Vec::new(),
            nginx: std::sync::Mutex::new(HashMap::new()),
            birds: std::sync::Mutex::new(HashMap::new()),
            dir,
        };
        // From here on, Drop removes whatever was made if a step fails.
        tb.wire(topo)?;
        tb.warm_up()?;
        if topo.nginx {
            for b in tb.backends.clone() {
                tb.start_nginx(&b, &b.name, 80)?;
            }
        }
        Ok(tb)
    }

    fn wire(&mut self, topo: &Topology) -> anyhow::Result<()> {
        let (front, back) = match topo.layout {
            Layout::OneArm => (0u8, 0u8),
            Layout::TwoArm => (1, 2),
            Layout::Ecmp { .. } => (1, 0),
        };
        let addr = |seg: u8, host: u8| Iface {
            name: String::new(),
            v4: Ipv4Addr::new(198, 18, seg, host),
            v6: Ipv6Addr::new(0xfd00, 0x198, 0x18, u16::from(seg), 0, 0, 0, u16::from(host)),
        };
        let named = |name: &str, mut i: Iface| {
            i.name = name.to_string();
            i
        };
        let host = |role: &str, ifaces: Vec<Iface>| Host {
            name: role.to_string(),
            netns: format!("{}-{role}", self.prefix),
            ifaces,
        };
        self.client = host("client", vec![named("eth0", addr(front, 10))]);
        self.lb = match topo.layout {
            Layout::OneArm => host("lb", vec![named("eth0", addr(front, 2))]),
            Layout::TwoArm => host("lb", vec![named("eth0", addr(front, 1)), named("eth1", addr(back, 1))]),
            Layout::Ecmp { nodes } => {
                self.router = Some(host(
                    "router",
                    vec![named("eth0", addr(front, 1)), named("eth1", addr(back, 1))],
                ));
                self.nodes = (1..=nodes)
                    .map(|i| host(&format!("lb{i}"), vec![named("eth0", addr(back, 1 + i as u8))]))
                    .collect();
                self.nodes[0].clone()
            }
        };
        self.backends = (1..=topo.backends)
            .map(|i| host(&format!("web{i}"), vec![named("eth0", addr(back, 100 + i as u8))]))
            .collect();

        let switch = Netns::create(&format!("{}-sw", self.prefix))?;
        self.namespaces.push(switch);
        let hosts: Vec<Host> = self.hosts().into_iter().cloned().collect();
        for h in &hosts {
            let ns = Netns::create(&h.netns)?;
            // Before any interface arrives: new interfaces copy `default`, and
            // duplicate address detection would hold IPv6 back for a second or two.
            ns.sysctl("net.ipv6.conf.default.accept_dad", "0")?;
            ns.sysctl("net.ipv6.conf.all.accept_dad", "0")?;
            self.by_name.insert(h.netns.clone(), self.namespaces.len());
            self.namespaces.push(ns);
        }
        let switch = &self.namespaces[0];
        let bridges: Vec<u8> = if front == back { vec![front] } else { vec![front, back] };
        links::with_netlink(switch, |h| async move {
            for seg in &bridges {
                links::add_bridge(&h, &format!("br{seg}")).await?;
            }
            Ok(())
        })?;

        let segment_of = |iface: &Iface| iface.v4.octets()[2];
        for h in &hosts {
            let ns = &self.namespaces[self.by_name[&h.netns]];
            let router = self.router.as_ref().is_some_and(|r| r.name == h.name);
            if (h.name == "lb" && topo.layout == Layout::TwoArm) || router {
                ns.sysctl("net.ipv4.ip_forward", "1")?;
                ns.sysctl("net.ipv6.conf.all.forwarding", "1")?;
            }
            if router {
                // Multipath routes pick the next hop by a hash of the 5-tuple
                // read from the headers, as a ToR's ECMP does, so the client's
                // connections spread over every node. Not policy 1 (layer 4):
                // it takes the hash an skb already carries, and over veths
                // that is the client socket's own random hash, which TCP
                // changes at every retransmission timeout (net.core.txrehash),
                // so a flow would hop nodes on a retransmit, which no router
                // does. Policy 3 hashes the fields named (0x37: addresses,
                // protocol, ports) from the packet.
                for v in ["ipv4", "ipv6"] {
                    ns.sysctl(&format!("net.{v}.fib_multipath_hash_policy"), "3")?;
                    ns.sysctl(&format!("net.{v}.fib_multipath_hash_fields"), "0x0037")?;
                }
            }
            let ports: Vec<(String, u8)> = h
                .ifaces
                .iter()
                .map(|i| (format!("v{}-{}", segment_of(i), h.name), segment_of(i)))
                .collect();
            let routes = routes_for(h, topo.layout);
            links::with_netlink(ns, |nl| {
                let ifaces = h.ifaces.clone();
                let ports = ports.clone();
                async move {
                    links::set_up(&nl, "lo").await?;
                    for (iface, (port, _)) in ifaces.iter().zip(&ports) {
                        links::add_veth_to(&nl, &iface.name, port, switch).await?;
                        links::set_up(&nl, &iface.name).await?;
                        links::add_address(&nl, &iface.name, iface.v4.into(), 24).await?;
                        links::add_address(&nl, &iface.name, iface.v6.into(), 64).await?;
                    }
                    for (dest, prefix, via) in routes {
                        links::add_route(&nl, dest, prefix, via).await?;
                    }
                    Ok(())
                }
            })
            .with_context(|| format!("wiring {}", h.name))?;
            // A veth hands locally made packets over with the TCP/UDP checksum
            // only half done (CHECKSUM_PARTIAL), to be finished "by the NIC".
            // An XDP program in native mode rewrites and bounces the raw frame,
            // which then arrives with a bad checksum. Real NICs deliver complete
            // checksums, so make the hosts send them. This is an ethtool
            // setting, which rtnetlink can't change: hence the ethtool command.
            for iface in h.ifaces.iter().filter(|_| !topo.default_offloads) {
                let out = NsCommand::new(ns.shared_file(), ns.name(), "ethtool")
                    .args(["-K", &iface.name, "tx", "off"])
                    .output_timeout(Duration::from_secs(10))
                    .context("running ethtool (`cargo xtask setup` installs it)")?;
                if !out.status.success() {
                    bail!(
                        "ethtool -K {} tx off in {}: {}",
                        iface.name,
                        h.name,
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
            let node = self.nodes.iter().any(|n| n.name == h.name);
            links::with_netlink(switch, |nl| async move {
                for (port, seg) in &ports {
                    links::attach_to_bridge(&nl, port, &format!("br{seg}")).await?;
                    if node {
                        // A NIC drops frames for other MACs before XDP sees
                        // them; a veth doesn't. Without this, the bridge would
                        // flood a failed node's frames (its MAC forgotten with
                        // its port) to the other nodes, whose XDP programs
                        // would balance them as their own.
                        links::set_unicast_flood(&nl, port, false).await?;
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Every host pings every other host on its segments once, all at once.
    /// A fresh host's first ARP exchange on the bridge takes a 1 s retry
    /// (seen on this kernel; cause not found), which would otherwise land in
    /// the first request of a test.
    fn warm_up(&self) -> anyhow::Result<()> {
        let hosts = self.hosts();
        let mut pings = Vec::new();
        for from in &hosts {
            for to in &hosts {
                for (a, b) in from.ifaces.iter().flat_map(|a| to.ifaces.iter().map(move |b| (a, b))) {
                    if from.name == to.name || a.v4.octets()[2] != b.v4.octets()[2] {
                        continue;
                    }
                    let child = self
                        .command(from, "ping")
                        .args(["-q", "-c", "1", "-W", "3", &b.v4.to_string()])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()?;
                    pings.push(child);
                }
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for mut p in pings {
            while p.try_wait()?.is_none() {
                if std::time::Instant::now() > deadline {
                    let _ = p.kill();
                    let _ = p.wait();
                    bail!("warm-up pings did not finish within 10 s");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    /// Every host once: the client, the router, the LB (or the nodes), the backends.
    pub fn hosts(&self) -> Vec<&Host> {
        let lbs: Vec<&Host> = if self.nodes.is_empty() {
            vec![&self.lb]
        } else {
            self.nodes.iter().collect()
        };
        std::iter::once(&self.client)
            .chain(self.router.as_ref())
            .chain(lbs)
            .chain(&self.backends)
            .collect()
    }

    /// This testbed's namespace-name prefix (`lbxt-PID-SEQ`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespaces of this testbed (switch first), for checks and debugging.
    pub fn namespaces(&self) -> Vec<String> {
        self.namespaces.iter().map(|n| n.name().to_string()).collect()
    }

    /// A temp dir that lives as long as the testbed (configs, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn netns(&self, host: &Host) -> anyhow::Result<&Netns> {
        self.by_name
            .get(&host.netns)
            .map(|&i| &self.namespaces[i])
            .with_context(|| format!("{} is not a host of testbed {}", host.name, self.prefix))
    }

    /// A command to run inside `host`'s namespace. Whatever it starts is
    /// killed when the testbed drops, if the caller hasn't ended it before.
    pub fn command(&self, host: &Host, program: &str) -> NsCommand {
        match self.netns(host) {
            Ok(ns) => NsCommand::new(ns.shared_file(), ns.name(), program),
            // An unknown host is a bug in the test; fail when it runs, with a message.
            Err(_) => NsCommand::new(
                std::sync::Arc::new(
                    std::fs::File::open("/proc/self/ns/net").unwrap_or_else(|e| panic!("/proc/self/ns/net: {e}")),
                ),
                "??",
                format!("/nonexistent/{} is not in testbed {}", host.name, self.prefix),
            ),
        }
    }

    /// Runs `f` on a thread inside `host`'s namespace (sockets made there belong to it).
    pub fn in_netns<T: Send>(&self, host: &Host, f: impl FnOnce() -> anyhow::Result<T> + Send) -> anyhow::Result<T> {
        self.netns(host)?.run(f)
    }

    /// Starts nginx in `host`'s namespace on `port` (IPv4 and IPv6), answering
    /// every request with `body` and a newline; returns once it accepts.
    pub fn start_nginx(&self, host: &Host, body: &str, port: u16) -> anyhow::Result<()> {
        nginx::check_body(body)?;
        let tag = format!("{}-{port}", host.name);
        let conf = self.dir().join(format!("nginx-{tag}.conf"));
        std::fs::write(&conf, nginx::config(self.dir(), &tag, body, port)).context("writing nginx.conf")?;
        let err_log = self.dir().join(format!("nginx-{tag}.startup.err"));
        let mut child = self
            .command(host, "nginx")
            .arg("-e")
            .arg(&err_log)
            .arg("-p")
            .arg(self.dir())
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx (is the nginx package installed? `cargo xtask setup` installs it)")?;
        let addr = SocketAddr::new(host.v4().into(), port);
        let ready = self.in_netns(host, || nginx::wait_listening(addr, Duration::from_secs(10)));
        if let Err(e) = ready {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(self.dir().join(format!("nginx-{tag}.err"))).unwrap_or_default();
            let startup = std::fs::read_to_string(&err_log).unwrap_or_default();
            return Err(e).with_context(|| format!("nginx on {} did not come up:\n{startup}{log}", host.name));
        }
        self.nginx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((host.name.clone(), port), child);
        Ok(())
    }

    /// Stops the nginx that `start_nginx` started on `host` and `port` (SIGTERM,
    /// bounded wait): the backend goes away as a crashed or stopped server would.
    pub fn stop_nginx(&self, host: &Host, port: u16) -> anyhow::Result<()> {
        let child = self
            .nginx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(host.name.clone(), port));
        let mut child = child.with_context(|| format!("no nginx on {}:{port}", host.name))?;
        terminate(&mut child, Duration::from_secs(5))?;
        Ok(())
    }

    /// Keeps `child` with the testbed, so it is killed when the testbed drops.
    pub fn adopt(&mut self, child: Child) {
        self.children.push(child);
    }

    /// The bridge ports (in the switch namespace) that face `host`'s interfaces.
    /// Native XDP_TX or a redirect out of a veth delivers only when the other
    /// end runs an XDP program too, so tests attach a pass program there.
    pub fn peer_ports(&self, host: &Host) -> Vec<String> {
        host.ifaces
            .iter()
            .map(|i| format!("v{}-{}", i.v4.octets()[2], host.name))
            .collect()
    }

    /// A command in the switch namespace (where the bridges and peer ports are).
    pub fn switch_command(&self, program: &str) -> NsCommand {
        let sw = &self.namespaces[0];
        NsCommand::new(sw.shared_file(), sw.name(), program)
    }

    /// Runs `lbxdp-agent --xdp-pass` (at `agent`) on the switch ports that face
    /// `host`, and waits (bounded) until it is attached. The testbed ends it on drop.
    pub fn attach_peer_pass(&mut self, agent: &Path, host: &Host) -> anyhow::Result<()> {
        let ports = self.peer_ports(host);
        let mut cmd = self.switch_command(&agent.to_string_lossy());
        cmd.arg("--xdp-pass").arg("--xdp-mode").arg("native");
        for p in &ports {
            cmd.arg("-i").arg(p);
        }
        let log = std::fs::File::create(self.dir().join("xdp-pass.log"))?;
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn()?;
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if ports.iter().all(|p| self.switch_xdp_attached(p).unwrap_or(false)) {
                self.children.push(child);
                return Ok(());
            }
            let exited = child.try_wait()?;
            if exited.is_some() || std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(self.dir().join("xdp-pass.log")).unwrap_or_default();
                bail!("the pass program did not attach to {ports:?}: {log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether an XDP program is attached to a port in the switch namespace.
    pub fn switch_xdp_attached(&self, port: &str) -> anyhow::Result<bool> {
        let port = port.to_string();
        links::with_netlink(
            &self.namespaces[0],
            |h| async move { links::xdp_attached(&h, &port).await },
        )
    }

    /// Whether an XDP program is attached to `iface` in `host`'s namespace.
    pub fn xdp_attached(&self, host: &Host, iface: &str) -> anyhow::Result<bool> {
        let iface = iface.to_string();
        links::with_netlink(
            self.netns(host)?,
            |h| async move { links::xdp_attached(&h, &iface).await },
        )
    }
}

/// Two-arm hosts reach the other segment through the LB; one-arm hosts need
/// no routes; in the ECMP layout every host but the router has a default
/// route via the router.
fn routes_for(h: &Host, layout: Layout) -> Vec<(IpAddr, u8, IpAddr)> {
    if let Layout::Ecmp { .. } = layout {
        let seg = match h.name.as_str() {
            "router" => return Vec::new(),
            "client" => 1u16,
            _ => 0,
        };
        return vec![
            (
                Ipv4Addr::UNSPECIFIED.into(),
                0,
                Ipv4Addr::new(198, 18, seg as u8, 1).into(),
            ),
            (
                Ipv6Addr::UNSPECIFIED.into(),
                0,
                Ipv6Addr::new(0xfd00, 0x198, 0x18, seg, 0, 0, 0, 1).into(),
            ),
        ];
    }
    if layout == Layout::OneArm || h.name == "lb" {
        return Vec::new();
    }
    let (other, gw) = if h.name == "client" { (2u8, 1u8) } else { (1, 2) };
    vec![
        (
            Ipv4Addr::new(198, 18, other, 0).into(),
            24,
            Ipv4Addr::new(198, 18, gw, 1).into(),
        ),
        (
            Ipv6Addr::new(0xfd00, 0x198, 0x18, other.into(), 0, 0, 0, 0).into(),
            64,
            Ipv6Addr::new(0xfd00, 0x198, 0x18, gw.into(), 0, 0, 0, 1).into(),
        ),
    ]
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let nginx = std::mem::take(&mut *self.nginx.lock().unwrap_or_else(|e| e.into_inner()));
        let birds = std::mem::take(&mut *self.birds.lock().unwrap_or_else(|e| e.into_inner()));
        for mut c in self
            .children
            .drain(..)
            .chain(nginx.into_values())
            .chain(birds.into_values())
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        while let Some(ns) = self.namespaces.pop() {
            if let Ok(ino) = ns.inode() {
                procs::kill_all_in(ino);
                // What an agent killed in this namespace left pinned (its
                // default instance is named after the namespace): removing
                // the pins detaches its program and frees its maps.
                let _ = std::fs::remove_dir_all(format!("/sys/fs/bpf/lbxdp/net{ino}"));
                let _ = std::fs::remove_dir_all(format!("/run/lbxdp/net{ino}"));
            }
            let name = ns.name().to_string();
            drop(ns);
            if let Err(e) = netns::remove(&name) {
                eprintln!("lbxdp-testbed: removing namespace {name}: {e:#}");
            }
        }
    }
}

/// Removes namespaces (and their processes) left by testbed runs whose
/// process is gone: names are `lbxt-PID-...`, so a dead PID marks them stale.
/// Returns how many namespaces were removed.
pub fn sweep_stale() -> usize {
    let mut removed = 0;
    for name in netns::list(netns::PREFIX) {
        let Some(pid) = name.strip_prefix(netns::PREFIX).and_then(|r| r.split('-').next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = Path::new(netns::NETNS_DIR).join(&name);
        if let Ok(meta) = std::fs::metadata(&path) {
            procs::kill_all_in(std::os::unix::fs::MetadataExt::ino(&meta));
        }
        match netns::remove(&name) {
            Ok(()) => removed += 1,
            Err(e) => eprintln!("lbxdp-testbed: sweeping stale namespace {name}: {e:#}"),
        }
    }
    if removed > 0 {
        eprintln!("lbxdp-testbed: swept {removed} namespace(s) left by a crashed run");
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_namespaces_of_dead_runs_and_their_processes() {
        if let Err(why) = require_root() {
            eprintln!("\n!!! SKIPPED sweep test: {why}; it creates network namespaces. !!!\n");
            return;
        }
        // A pid that no process has: the run that "crashed".
        let dead = (4_000_000u32..)
            .find(|p| !Path::new(&format!("/proc/{p}")).exists())
            .expect("a free pid");
        let stale = format!("{}{dead}-0-web1", netns::PREFIX);
        let mine = format!("{}{}-999999-web1", netns::PREFIX, std::process::id());
        let ns = Netns::create(&stale).expect("stale namespace");
        let own = Netns::create(&mine).expect("own namespace");
        let sleeper = NsCommand::new(ns.shared_file(), &stale, "sleep")
            .arg("30")
            .spawn()
            .expect("sleep in ns");
        let ino = ns.inode().expect("inode");
        drop(ns);
        assert_eq!(procs::in_netns(ino), vec![sleeper.id() as i32]);

        let swept = sweep_stale();
        let mut sleeper = sleeper;
        let status = sleeper.wait().expect("reaping sleep");
        let left = netns::list(netns::PREFIX);
        let own_left = left.contains(&mine);
        drop(own);
        let _ = netns::remove(&mine);
        assert!(swept >= 1, "nothing swept");
        assert!(!left.contains(&stale), "stale namespace still there: {left:?}");
        assert!(own_left, "the sweep removed a live run's namespace");
        assert!(!status.success(), "the process in the stale namespace was not killed");
    }
}
