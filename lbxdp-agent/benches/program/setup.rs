//! The balancer the program is timed in: loaded (not attached) in a network
//! namespace of its own, programmed as the agent would for one IPv4 and one
//! IPv6 frontend in full NAT, with a route and a neighbour entry for every
//! server and client, so bpf_fib_lookup succeeds as on a live one-arm LB.
use std::{net::IpAddr, process::Command};

use anyhow::{Context as _, bail};
use lbxdp_agent::datapath::{Datapath, NatMode, Sizes, plan::PlanServer};
use lbxdp_common::{Settings, XDP_PROGRAM};
use lbxdp_testbed::frames::{
    CLIENT4, CLIENT6, LB_MAC, SERVER_PORT, SERVERS4, SERVERS6, SNAT4, SNAT6, VIP_PORT, VIP4, VIP6,
};

pub const TABLE: u32 = 251;
/// The LB's interface: its address is the full-NAT source, and the frames
/// come in on it, so the FIB sends them back out of it (XDP_TX, one-arm).
pub const LB_IF: &str = "v0";
/// Room for every SYN the bench makes, per CPU (the flow tables keep a
/// free list per CPU), so none of them evicts.
const FLOWS: u32 = 1 << 17;

/// One family's addresses.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    pub name: &'static str,
    pub vip: IpAddr,
    /// The LB's own address: full NAT's source, and where a non-VIP packet goes.
    pub lb: IpAddr,
    pub client: IpAddr,
    pub servers: [IpAddr; 2],
    prefix: &'static str,
    pub frontend: u32,
}

pub const V4: Family = Family {
    name: "ipv4",
    vip: IpAddr::V4(VIP4),
    lb: IpAddr::V4(SNAT4),
    client: IpAddr::V4(CLIENT4),
    servers: [IpAddr::V4(SERVERS4[0]), IpAddr::V4(SERVERS4[1])],
    prefix: "15",
    frontend: 0,
};

pub const V6: Family = Family {
    name: "ipv6",
    vip: IpAddr::V6(VIP6),
    lb: IpAddr::V6(SNAT6),
    client: IpAddr::V6(CLIENT6),
    servers: [IpAddr::V6(SERVERS6[0]), IpAddr::V6(SERVERS6[1])],
    prefix: "48",
    frontend: 1,
};

fn ip(args: &str) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!("ip {args}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn sysctl(path: &str, value: &str) -> anyhow::Result<()> {
    std::fs::write(format!("/proc/sys/{path}"), value).with_context(|| format!("writing {path}"))
}

/// The calling thread's namespace (fresh, see `main`): a veth whose `v0` end
/// is the LB, forwarding on, and permanent neighbour entries for the servers
/// and the fixed clients. Random clients (the SYN case) need none: their
/// SYNs go to the servers. Returns `v0`'s ifindex.
pub fn network() -> anyhow::Result<u32> {
    ip(&format!("link add {LB_IF} type veth peer name v1"))?;
    // The MAC the fixture frames are addressed to.
    let mac = LB_MAC.map(|b| format!("{b:02x}")).join(":");
    ip(&format!("link set {LB_IF} address {mac}"))?;
    ip(&format!("link set {LB_IF} up"))?;
    ip("link set v1 up")?;
    // After the link exists: "all" reaches every interface there is.
    sysctl("net/ipv4/conf/all/forwarding", "1")?;
    sysctl("net/ipv6/conf/all/forwarding", "1")?;
    for (n, f) in [V4, V6].iter().enumerate() {
        let (fam, nodad) = if n == 0 { ("-4", "") } else { ("-6", " nodad") };
        ip(&format!("{fam} addr add {}/{} dev {LB_IF}{nodad}", f.lb, f.prefix))?;
        for (i, peer) in f.servers.iter().chain([&f.client]).enumerate() {
            ip(&format!(
                "{fam} neigh replace {peer} lladdr 02:00:00:00:01:{i:02x} dev {LB_IF} nud permanent"
            ))?;
        }
    }
    nix::net::if_::if_nametoindex(LB_IF).context("v0's ifindex")
}

/// The program loaded and programmed: frontend 0 = the IPv4 VIP:80 -> two
/// IPv4 servers, frontend 1 = the IPv6 VIP:80 -> two IPv6 servers, full NAT.
pub fn balancer() -> anyhow::Result<Datapath> {
    let sizes = Sizes {
        backends: 2,
        servers: 4,
        table_size: TABLE,
        flows: FLOWS,
        ..Sizes::default()
    };
    let mut dp = Datapath::load(sizes, false, XDP_PROGRAM).context("loading the XDP object")?;
    dp.set_settings(&Settings::with_default_timeouts(TABLE))?;
    // As the agent's watch does at start: flows may keep their next hops.
    // Nothing changes the routes meanwhile, so a generation lasts the run.
    dp.fib_generation()?.bump()?;
    for (backend, f) in [V4, V6].iter().enumerate() {
        let servers: Vec<PlanServer> = f
            .servers
            .iter()
            .enumerate()
            .map(|(i, addr)| PlanServer {
                id: backend as u32 * 2 + i as u32,
                name: format!("{}-s{i}", f.name),
                addr: *addr,
                port: SERVER_PORT,
                weight: 1,
                backup: false,
                disabled: false,
                source: None,
            })
            .collect();
        for s in &servers {
            dp.set_server(s, f.lb, true)?;
        }
        let weights: Vec<u32> = servers.iter().map(|s| s.weight).collect();
        dp.set_maglev(backend as u32, &servers, &weights)?;
        dp.add_frontend(f.vip, VIP_PORT, f.frontend, backend as u32, NatMode::Full, false)?;
    }
    Ok(dp)
}
