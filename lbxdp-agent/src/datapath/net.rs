//! The LB host's side of the datapath, over netlink: its addresses (for
//! wildcard binds and the full-NAT source), the VIPs it must answer ARP/ND
//! for, and neighbour entries for the servers that the kernel keeps resolved
//! (bpf_fib_lookup only reports a missing neighbour, it doesn't resolve it).
use std::net::IpAddr;

use futures::TryStreamExt as _;
use netlink_packet_route::{
    AddressFamily,
    address::{AddressAttribute, AddressFlags, AddressScope, CacheInfo},
    neighbour::{NeighbourAttribute, NeighbourExtFlags, NeighbourState},
};
use rtnetlink::Handle;
use tracing::{debug, info, warn};

use super::sysctl::Saved;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("netlink: {0}")]
    Netlink(String),
    #[error("{what}: {source}")]
    Sysctl { what: String, source: std::io::Error },
}

fn nl(e: impl std::fmt::Display) -> NetError {
    NetError::Netlink(e.to_string())
}

/// An address of the interface, with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// Netlink for one interface; undoes what it added when dropped via `cleanup`.
pub struct HostNet {
    handle: Handle,
    conn: tokio::task::JoinHandle<()>,
    ifindex: u32,
    iface: String,
    added_vips: Vec<IfAddr>,
    added_neighbours: Vec<IpAddr>,
    /// Sysctls this agent (or the one it took over from) changed, with the
    /// values they had: put back on exit.
    saved_sysctls: Vec<Saved>,
}

impl HostNet {
    pub fn open(iface: &str, ifindex: u32) -> Result<Self, NetError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(nl)?;
        let conn = tokio::spawn(conn);
        Ok(Self {
            handle,
            conn,
            ifindex,
            iface: iface.to_string(),
            added_vips: Vec::new(),
            added_neighbours: Vec::new(),
            saved_sysctls: Vec::new(),
        })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The interface's global addresses (no link-local ones).
    pub async fn addresses(&self) -> Result<Vec<IfAddr>, NetError> {
        let mut out = Vec::new();
        let mut s = self
            .handle
            .address()
            .get()
            .set_link_index_filter(self.ifindex)
            .execute();
        while let Some(msg) = s.try_next().await.map_err(nl)? {
            if msg.header.scope != AddressScope::Universe {
                continue;
            }
            for attr in &msg.attributes {
                if let AddressAttribute::Address(addr) = attr {
                    out.push(IfAddr {
                        addr: *addr,
                        prefix: msg.header.prefix_len,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Takes over what a previous agent added (from its handover), so this
    /// one removes it when it stops.
    pub fn adopt(
        &mut self,
        vips: impl IntoIterator<Item = IfAddr>,
        neighbours: impl IntoIterator<Item = IpAddr>,
        sysctls: impl IntoIterator<Item = (String, String)>,
    ) {
        self.added_vips.extend(vips);
        self.added_neighbours.extend(neighbours);
        self.saved_sysctls
            .extend(sysctls.into_iter().map(|(path, old)| Saved::new(path, old)));
    }

    /// What this agent added, for the handover.
    pub fn added(&self) -> (&[IfAddr], &[IpAddr]) {
        (&self.added_vips, &self.added_neighbours)
    }

    /// The sysctls it changed and their old values, for the handover.
    pub fn saved_sysctls(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.saved_sysctls.iter().map(|s| (s.path.clone(), s.old.clone()))
    }

    pub fn name(&self) -> &str {
        &self.iface
    }

    /// True when the interface is one end of a veth pair.
    pub async fn is_veth(&self) -> Result<bool, NetError> {
        use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo};
        let mut s = self.handle.link().get().match_index(self.ifindex).execute();
        while let Some(msg) = s.try_next().await.map_err(nl)? {
            for attr in &msg.attributes {
                if let LinkAttribute::LinkInfo(infos) = attr
                    && infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::Veth)))
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// bpf_fib_lookup answers only for interfaces that forward.
    pub fn enable_forwarding(&mut self) -> Result<(), NetError> {
        for (path, value) in [
            (format!("/proc/sys/net/ipv4/conf/{}/forwarding", self.iface), "1"),
            (format!("/proc/sys/net/ipv6/conf/{}/forwarding", self.iface), "1"),
            // One-arm: replies leave by the interface they came in on, which
            // is not a reason to tell the servers about a better route.
            (format!("/proc/sys/net/ipv4/conf/{}/send_redirects", self.iface), "0"),
        ] {
            let old = std::fs::read_to_string(&path)
                .map(|v| v.trim().to_string())
                .unwrap_or_default();
            if old != value && !self.saved_sysctls.iter().any(|s| s.path == path) {
                self.saved_sysctls.push(Saved::new(path.clone(), old));
            }
            std::fs::write(&path, value).map_err(|source| NetError::Sysctl {
                what: path.clone(),
                source,
            })?;
        }
        debug!("{}: forwarding on (bpf_fib_lookup needs it)", self.iface);
        Ok(())
    }

    /// Adds a VIP that is not one of the host's addresses yet, so the host
    /// answers ARP/ND for it; removed again by `cleanup`.
    pub async fn ensure_vip(&mut self, vip: IpAddr, local: &[IfAddr]) -> Result<(), NetError> {
        if local.iter().any(|a| a.addr == vip) || self.added_vips.iter().any(|a| a.addr == vip) {
            return Ok(());
        }
        let prefix = if vip.is_ipv4() { 32 } else { 128 };
        let mut req = self.handle.address().add(self.ifindex, vip, prefix);
        if vip.is_ipv6() {
            // Deprecated (preferred lifetime 0, valid forever), as keepalived
            // and IPVS setups add IPv6 VIPs: the host still answers for it,
            // but never picks it as the source of its own connections. Else
            // source selection may (nothing prefers the interface's own
            // address over a /128 as it does in IPv4), and the health checks
            // then come from the VIP, which a DSR server holds itself and
            // drops as a martian. No duplicate address detection, which
            // would keep the VIP tentative (unanswered) for a second or more.
            let mut lifetimes = CacheInfo::default();
            lifetimes.ifa_preferred = 0;
            lifetimes.ifa_valid = u32::MAX;
            let attrs = &mut req.message_mut().attributes;
            attrs.push(AddressAttribute::CacheInfo(lifetimes));
            attrs.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        req.execute().await.map_err(nl)?;
        info!("{}: added VIP {vip}/{prefix}", self.iface);
        self.added_vips.push(IfAddr { addr: vip, prefix });
        Ok(())
    }

    /// A neighbour entry the kernel keeps resolved (NTF_EXT_MANAGED, Linux
    /// 5.16+), so the first packets to a server find its MAC.
    pub async fn manage_neighbour(&mut self, ip: IpAddr) -> Result<(), NetError> {
        if self.added_neighbours.contains(&ip) {
            return Ok(());
        }
        let mut req = self
            .handle
            .neighbours()
            .add(self.ifindex, ip)
            .state(NeighbourState::None)
            .replace();
        req.message_mut()
            .attributes
            .push(NeighbourAttribute::ExtFlags(NeighbourExtFlags::Managed));
        match req.execute().await {
            Ok(()) => {
                self.added_neighbours.push(ip);
                Ok(())
            }
            Err(e) => {
                warn!(
                    "{}: could not add a managed neighbour entry for {ip} ({e}); the first packets may be dropped until it resolves",
                    self.iface
                );
                Ok(())
            }
        }
    }

    /// Waits (bounded) until the neighbour entries resolved, to start with warm caches.
    pub async fn wait_neighbours(&self, within: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut pending = 0;
            let mut s = self.handle.neighbours().get().execute();
            while let Ok(Some(n)) = s.try_next().await {
                let dst = n.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::Destination(d) => Some(d.clone()),
                    _ => None,
                });
                let Some(dst) = dst else { continue };
                let ip = match dst {
                    netlink_packet_route::neighbour::NeighbourAddress::Inet(a) => IpAddr::V4(a),
                    netlink_packet_route::neighbour::NeighbourAddress::Inet6(a) => IpAddr::V6(a),
                    _ => continue,
                };
                if self.added_neighbours.contains(&ip)
                    && !matches!(
                        n.header.state,
                        NeighbourState::Reachable
                            | NeighbourState::Stale
                            | NeighbourState::Delay
                            | NeighbourState::Probe
                    )
                {
                    pending += 1;
                }
            }
            if pending == 0 || tokio::time::Instant::now() > deadline {
                if pending > 0 {
                    warn!("{}: {pending} server neighbour(s) not resolved yet", self.iface);
                }
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Removes the VIPs and neighbour entries this agent added, and puts
    /// back the sysctls it changed (forwarding, redirects).
    pub async fn cleanup(&mut self) {
        for saved in std::mem::take(&mut self.saved_sysctls) {
            saved.restore();
        }
        for a in std::mem::take(&mut self.added_vips) {
            self.del_vip(a.addr).await;
        }
        for ip in std::mem::take(&mut self.added_neighbours) {
            self.del_neighbour(ip).await;
        }
    }

    /// A VIP that no frontend serves any more leaves the interface, if this
    /// agent added it.
    pub async fn remove_vip(&mut self, vip: IpAddr) {
        if let Some(i) = self.added_vips.iter().position(|a| a.addr == vip) {
            self.added_vips.remove(i);
            self.del_vip(vip).await;
            info!("{}: removed VIP {vip}", self.iface);
        }
    }

    /// The managed neighbour entry of a server that is gone.
    pub async fn forget_neighbour(&mut self, ip: IpAddr) {
        if let Some(i) = self.added_neighbours.iter().position(|a| *a == ip) {
            self.added_neighbours.remove(i);
            self.del_neighbour(ip).await;
        }
    }

    async fn del_vip(&self, vip: IpAddr) {
        let mut s = self
            .handle
            .address()
            .get()
            .set_link_index_filter(self.ifindex)
            .set_address_filter(vip)
            .execute();
        if let Ok(Some(msg)) = s.try_next().await
            && let Err(e) = self.handle.address().del(msg).execute().await
        {
            warn!("{}: removing VIP {vip}: {e}", self.iface);
        }
    }

    async fn del_neighbour(&self, ip: IpAddr) {
        let mut msg = netlink_packet_route::neighbour::NeighbourMessage::default();
        msg.header.ifindex = self.ifindex;
        msg.header.family = if ip.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        msg.attributes.push(NeighbourAttribute::Destination(ip.into()));
        if let Err(e) = self.handle.neighbours().del(msg).execute().await {
            debug!("{}: removing the neighbour entry of {ip}: {e}", self.iface);
        }
    }
}

impl Drop for HostNet {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

/// The interfaces to serve when `-i` isn't given: each bind's `interface`,
/// else the interface that holds the bind address or whose subnet contains it.
/// Wildcard binds need `-i`: they could mean any interface.
pub async fn interfaces_for(binds: &[(Option<IpAddr>, Option<String>)]) -> Result<Vec<String>, NetError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(nl)?;
    let conn = tokio::spawn(conn);
    let mut links = std::collections::HashMap::new();
    let mut ls = handle.link().get().execute();
    while let Some(l) = ls.try_next().await.map_err(nl)? {
        let name = l.attributes.iter().find_map(|a| match a {
            netlink_packet_route::link::LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        });
        if let Some(name) = name {
            links.insert(l.header.index, name);
        }
    }
    let mut addrs = Vec::new();
    let mut s = handle.address().get().execute();
    while let Some(msg) = s.try_next().await.map_err(nl)? {
        for attr in &msg.attributes {
            if let AddressAttribute::Address(addr) = attr {
                addrs.push((
                    msg.header.index,
                    IfAddr {
                        addr: *addr,
                        prefix: msg.header.prefix_len,
                    },
                ));
            }
        }
    }
    conn.abort();
    let mut out: Vec<String> = Vec::new();
    for (ip, iface) in binds {
        let name = match (ip.filter(|ip| !ip.is_unspecified()), iface) {
            (_, Some(name)) => Some(name.clone()),
            (Some(ip), None) => addrs
                .iter()
                .find(|(_, a)| a.addr == ip)
                .or_else(|| addrs.iter().find(|(_, a)| !a.addr.is_loopback() && in_subnet(ip, a)))
                .and_then(|(idx, _)| links.get(idx).cloned()),
            (None, None) => None,
        };
        match name {
            Some(n) if !out.contains(&n) => out.push(n),
            Some(_) => {}
            None => {
                return Err(NetError::Netlink(format!(
                    "no interface for bind {}: give -i IFACE (or `interface` on the bind line)",
                    ip.map_or("*".to_string(), |ip| ip.to_string())
                )));
            }
        }
    }
    Ok(out)
}

/// The source address of full NAT towards `server`: an address of the LB in
/// the server's subnet, else the first of its family.
pub fn snat_for(server: IpAddr, local: &[IfAddr]) -> Option<IpAddr> {
    let same_family = || local.iter().filter(|a| a.addr.is_ipv4() == server.is_ipv4());
    same_family()
        .find(|a| in_subnet(server, a))
        .or_else(|| same_family().next())
        .map(|a| a.addr)
}

/// Whether `ip` is in the subnet of the interface address `net`.
pub fn in_subnet(ip: IpAddr, net: &IfAddr) -> bool {
    match (ip, net.addr) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(net.prefix.min(32))).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(net.prefix.min(128))).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str, prefix: u8) -> IfAddr {
        IfAddr {
            addr: s.parse().expect("address"),
            prefix,
        }
    }

    #[test]
    fn snat_prefers_the_servers_subnet() {
        let local = [a("198.18.1.1", 24), a("198.18.2.1", 24), a("fd00:198:18:2::1", 64)];
        assert_eq!(
            snat_for("198.18.2.7".parse().unwrap(), &local),
            Some("198.18.2.1".parse().unwrap())
        );
        assert_eq!(
            snat_for("198.19.0.1".parse().unwrap(), &local),
            Some("198.18.1.1".parse().unwrap())
        );
        assert_eq!(
            snat_for("fd00:198:18:9::1".parse().unwrap(), &local),
            Some("fd00:198:18:2::1".parse().unwrap())
        );
        assert_eq!(snat_for("fd00::1".parse().unwrap(), &local[..2]), None);
    }
}
