//! Writing the balancer's maps from a plan, and reading its counters back.
use std::net::IpAddr;

use aya::maps::{
    Array, DevMapHash, HashMap, MapData, PerCpuArray,
    lpm_trie::{Key, LpmTrie},
};
use lbxdp_common::{
    BACKENDS_MAP, BackendMeta, FAMILY_V4, FAMILY_V6, FRONTEND_DNAT, FRONTEND_DSR, FRONTEND_PORT_WORDS,
    FRONTEND_PORTS_MAP, FRONTEND_RULES, FRONTEND_STATS_MAP, FRONTENDS_MAP, Frontend, FrontendKey, FrontendStats,
    MAGLEV_CHUNK, MAGLEV_MAP, MaglevChunk, NET_SET_BITS, NETS_MAP, NO_SERVER, NetKey, PROTO_TCP, PROTO_UDP, RULES_MAP,
    Rules, SERVER_STATS_MAP, SERVER_UP, SERVERS_MAP, SETTINGS_MAP, STICK_MAP, STICK_TABLES_MAP, Server, ServerStats,
    Settings, StickEntry, StickKey, StickTableConf, TX_PORTS_MAP,
};

use super::{Datapath, DatapathError, error::chain, plan::PlanServer};

fn other(e: impl std::error::Error + 'static) -> DatapathError {
    DatapathError::Other(chain(&e))
}

/// 16 bytes in network order, IPv4 in the first 4, and our family tag.
pub fn addr_bytes(ip: IpAddr) -> ([u8; 16], u8) {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(a) => {
            out[..4].copy_from_slice(&a.octets());
            (out, FAMILY_V4)
        }
        IpAddr::V6(a) => (a.octets(), FAMILY_V6),
    }
}

/// A network's key in `NETS`: IPv4 as mapped IPv6, as the program looks
/// addresses up (see `NetKey`).
fn net_key(set: u32, ip: IpAddr, len: u8) -> Key<NetKey> {
    let (addr, bits) = match ip {
        IpAddr::V4(a) => (a.to_ipv6_mapped().octets(), 96 + u32::from(len.min(32))),
        IpAddr::V6(a) => (a.octets(), u32::from(len.min(128))),
    };
    Key::new(
        NET_SET_BITS + bits,
        NetKey {
            set: set.to_be_bytes(),
            addr,
        },
    )
}

/// Networks (address, prefix length).
pub type NetList = Vec<(IpAddr, u8)>;

/// What an address set loses and gains when its networks go from `old`
/// to `new`, compared as the trie holds them (bits past the prefix
/// cleared): a network two entries share (`10.0.0.1/8`, `10.0.0.0/8`) is
/// one key, which stays while one of them does.
pub fn nets_change(old: &[(IpAddr, u8)], new: &[(IpAddr, u8)]) -> (NetList, NetList) {
    let masked = |nets: &[(IpAddr, u8)]| -> std::collections::BTreeSet<(IpAddr, u8)> {
        nets.iter()
            .map(|&(ip, len)| match ip {
                IpAddr::V4(a) => {
                    let len = len.min(32);
                    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                    (IpAddr::from(std::net::Ipv4Addr::from(u32::from(a) & mask)), len)
                }
                IpAddr::V6(a) => {
                    let len = len.min(128);
                    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                    (IpAddr::from(std::net::Ipv6Addr::from(u128::from(a) & mask)), len)
                }
            })
            .collect()
    };
    let (old, new) = (masked(old), masked(new));
    (
        old.difference(&new).copied().collect(),
        new.difference(&old).copied().collect(),
    )
}

/// `FRONTEND_PORTS`' word and bit for a port.
fn port_bit(port: u16) -> (u32, u64) {
    let (word, bit) = (u32::from(port >> 6), 1u64 << (port & 63));
    debug_assert!(word < FRONTEND_PORT_WORDS);
    (word, bit)
}

/// How the VIP's traffic reaches the servers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum NatMode {
    /// Full NAT: the servers see the LB's address and need no change (HAProxy's way).
    #[default]
    Full,
    /// Destination NAT only: the servers see the client's address and must
    /// route their replies through the LB.
    Dnat,
    /// Direct server return: only the destination MAC changes; each server
    /// holds the VIP on `lo` (arp_ignore=1, arp_announce=2), listens on the
    /// frontend's port, sits on the LB's segment and answers clients itself.
    Dsr,
}

impl Datapath {
    fn array<V: aya::Pod>(&mut self, name: &str) -> Result<Array<&mut MapData, V>, DatapathError> {
        Array::try_from(self.map_mut(name)?).map_err(other)
    }

    pub fn set_settings(&mut self, s: &Settings) -> Result<(), DatapathError> {
        let mut settings = *s;
        settings.table_size = self.sizes.table_size;
        self.array::<Settings>(SETTINGS_MAP)?.set(0, settings, 0).map_err(other)
    }

    /// Writes one server; `snat` is the LB's address towards it.
    pub fn set_server(&mut self, s: &PlanServer, snat: IpAddr, up: bool) -> Result<(), DatapathError> {
        let (addr, family) = addr_bytes(s.addr);
        let (snat, _) = addr_bytes(snat);
        let value = Server {
            addr,
            snat,
            port: s.port.to_be(),
            family,
            flags: if up { SERVER_UP } else { 0 },
        };
        self.array::<Server>(SERVERS_MAP)?.set(s.id, value, 0).map_err(other)
    }

    /// A frontend takes both TCP and UDP on its (VIP, port): `mode tcp` in
    /// HAProxy is TCP only, but a layer-4 balancer is asked for UDP too.
    pub fn add_frontend(
        &mut self,
        vip: IpAddr,
        port: u16,
        id: u32,
        backend: u32,
        nat: NatMode,
        rules: bool,
    ) -> Result<(), DatapathError> {
        let (addr, family) = addr_bytes(vip);
        let flags = match nat {
            NatMode::Full => 0,
            NatMode::Dnat => FRONTEND_DNAT,
            NatMode::Dsr => FRONTEND_DSR,
        } | if rules { FRONTEND_RULES } else { 0 };
        // The port's bit first: without it the program doesn't look for the frontend.
        let mut ports = self.array::<u64>(FRONTEND_PORTS_MAP)?;
        let (word, bit) = port_bit(port);
        let had = ports.get(&word, 0).map_err(other)?;
        ports.set(word, had | bit, 0).map_err(other)?;
        let mut map: HashMap<&mut MapData, FrontendKey, Frontend> =
            HashMap::try_from(self.map_mut(FRONTENDS_MAP)?).map_err(other)?;
        for proto in [PROTO_TCP, PROTO_UDP] {
            let key = FrontendKey {
                addr,
                port: port.to_be(),
                proto,
                family,
            };
            map.insert(key, Frontend { id, backend, flags }, 0).map_err(other)?;
        }
        Ok(())
    }

    /// A frontend's rules, written before its `FRONTEND_RULES` flag.
    pub fn set_rules(&mut self, frontend: u32, rules: &Rules) -> Result<(), DatapathError> {
        self.array::<Rules>(RULES_MAP)?.set(frontend, *rules, 0).map_err(other)
    }

    fn nets(&mut self) -> Result<LpmTrie<&mut MapData, NetKey, u8>, DatapathError> {
        LpmTrie::try_from(self.map_mut(NETS_MAP)?).map_err(other)
    }

    /// Puts `nets` in address set `set`.
    pub fn add_nets(&mut self, set: u32, nets: &[(IpAddr, u8)]) -> Result<(), DatapathError> {
        let mut map = self.nets()?;
        for &(ip, len) in nets {
            map.insert(&net_key(set, ip, len), 1, 0).map_err(other)?;
        }
        Ok(())
    }

    /// Takes `nets` out of address set `set`; one not there is fine (a
    /// pattern that two entries of a list share goes once).
    pub fn remove_nets(&mut self, set: u32, nets: &[(IpAddr, u8)]) -> Result<(), DatapathError> {
        let mut map = self.nets()?;
        for &(ip, len) in nets {
            let _ = map.remove(&net_key(set, ip, len));
        }
        Ok(())
    }

    /// A stick table's settings, at its index.
    pub fn set_stick_table(&mut self, id: u32, conf: &StickTableConf) -> Result<(), DatapathError> {
        self.array::<StickTableConf>(STICK_TABLES_MAP)?
            .set(id, *conf, 0)
            .map_err(other)
    }

    /// Every stick table entry (all tables).
    pub fn stick_entries(&self) -> Result<Vec<(StickKey, StickEntry)>, DatapathError> {
        let map: HashMap<&MapData, StickKey, StickEntry> = HashMap::try_from(self.map(STICK_MAP)?).map_err(other)?;
        Ok(map.iter().filter_map(Result::ok).collect())
    }

    /// Removes stick table entries; one already gone is fine.
    pub fn remove_stick(&mut self, keys: &[StickKey]) -> Result<(), DatapathError> {
        let mut map: HashMap<&mut MapData, StickKey, StickEntry> =
            HashMap::try_from(self.map_mut(STICK_MAP)?).map_err(other)?;
        for k in keys {
            let _ = map.remove(k);
        }
        Ok(())
    }

    /// The address sets `NETS` holds entries of.
    pub fn net_sets(&mut self) -> Result<Vec<u32>, DatapathError> {
        let mut sets: Vec<u32> = self
            .nets()?
            .keys()
            .filter_map(Result::ok)
            .map(|k| u32::from_be_bytes(k.data().set))
            .collect();
        sets.sort_unstable();
        sets.dedup();
        Ok(sets)
    }

    /// Removes every entry of address sets `sets`.
    pub fn remove_net_sets(&mut self, sets: &[u32]) -> Result<(), DatapathError> {
        if sets.is_empty() {
            return Ok(());
        }
        let mut map = self.nets()?;
        let gone: Vec<Key<NetKey>> = map
            .keys()
            .filter_map(Result::ok)
            .filter(|k| sets.contains(&u32::from_be_bytes(k.data().set)))
            .collect();
        for k in gone {
            let _ = map.remove(&k);
        }
        Ok(())
    }

    pub fn remove_frontend(&mut self, vip: IpAddr, port: u16) -> Result<(), DatapathError> {
        let (addr, family) = addr_bytes(vip);
        let mut map: HashMap<&mut MapData, FrontendKey, Frontend> =
            HashMap::try_from(self.map_mut(FRONTENDS_MAP)?).map_err(other)?;
        for proto in [PROTO_TCP, PROTO_UDP] {
            // Already gone is fine: the goal is that it is not there.
            let _ = map.remove(&FrontendKey {
                addr,
                port: port.to_be(),
                proto,
                family,
            });
        }
        // The port's bit goes when no frontend is left on it (another VIP may share it).
        let still = map.keys().filter_map(Result::ok).any(|k| k.port == port.to_be());
        if !still {
            let mut ports = self.array::<u64>(FRONTEND_PORTS_MAP)?;
            let (word, bit) = port_bit(port);
            let had = ports.get(&word, 0).map_err(other)?;
            ports.set(word, had & !bit, 0).map_err(other)?;
        }
        Ok(())
    }

    /// Builds the Maglev table of `servers` weighted by `weights` (one per
    /// server; 0 leaves a server out) and installs it as `backend`'s.
    pub fn set_maglev(&mut self, backend: u32, servers: &[PlanServer], weights: &[u32]) -> Result<(), DatapathError> {
        let members: Vec<crate::maglev::Member<'_>> = servers
            .iter()
            .zip(weights)
            .map(|(s, &weight)| crate::maglev::Member { id: &s.name, weight })
            .collect();
        let table = crate::maglev::build_seeded(&members, self.sizes.table_size, self.sizes.maglev_seed)
            .map_err(|e| DatapathError::Other(format!("backend table {backend}: {e}")))?;
        self.set_table(backend, &to_server_ids(&table, servers))
    }

    /// Installs a backend's Maglev table (slot -> server id, or NO_SERVER):
    /// fills the copy that packets don't read, then flips to it in one update.
    pub fn set_table(&mut self, backend: u32, table: &[u32]) -> Result<(), DatapathError> {
        let size = self.sizes.table_size;
        if table.len() != size as usize {
            return Err(DatapathError::Other(format!(
                "a Maglev table of {} slots, expected {size}",
                table.len()
            )));
        }
        let meta = self
            .array::<BackendMeta>(BACKENDS_MAP)?
            .get(&backend, 0)
            .map_err(other)?;
        let next = if meta.ready == 0 { 0 } else { 1 - (meta.active & 1) };
        let mut maglev = self.array::<MaglevChunk>(MAGLEV_MAP)?;
        let (base, _) = lbxdp_common::maglev_slot(backend, next, size, 0);
        for (i, slots) in table.chunks(MAGLEV_CHUNK as usize).enumerate() {
            let mut chunk = MaglevChunk([NO_SERVER; MAGLEV_CHUNK as usize]);
            chunk.0[..slots.len()].copy_from_slice(slots);
            maglev.set(base + i as u32, chunk, 0).map_err(other)?;
        }
        self.array::<BackendMeta>(BACKENDS_MAP)?
            .set(backend, BackendMeta { active: next, ready: 1 }, 0)
            .map_err(other)
    }

    /// Lets the program redirect to `ifindex` (two-arm: in on one interface, out on another).
    pub fn add_tx_port(&mut self, ifindex: u32) -> Result<(), DatapathError> {
        let mut map: DevMapHash<&mut MapData> = DevMapHash::try_from(self.map_mut(TX_PORTS_MAP)?).map_err(other)?;
        map.insert(ifindex, ifindex, None, 0).map_err(other)
    }

    /// Per-server counters summed over CPUs, indexed by server id.
    pub fn server_stats(&self, count: u32) -> Result<Vec<ServerStats>, DatapathError> {
        let map = self.map(SERVER_STATS_MAP)?;
        let arr: PerCpuArray<_, ServerStats> = PerCpuArray::try_from(map).map_err(other)?;
        (0..count)
            .map(|i| {
                let v = arr.get(&i, 0).map_err(other)?;
                Ok(v.iter().fold(ServerStats::default(), |mut a, s| {
                    a.packets_in += s.packets_in;
                    a.bytes_in += s.bytes_in;
                    a.packets_out += s.packets_out;
                    a.bytes_out += s.bytes_out;
                    a.new_flows += s.new_flows;
                    a
                }))
            })
            .collect()
    }

    /// Per-frontend counters summed over CPUs, indexed by frontend id.
    pub fn frontend_stats(&self, count: u32) -> Result<Vec<FrontendStats>, DatapathError> {
        let map = self.map(FRONTEND_STATS_MAP)?;
        let arr: PerCpuArray<_, FrontendStats> = PerCpuArray::try_from(map).map_err(other)?;
        (0..count)
            .map(|i| {
                let v = arr.get(&i, 0).map_err(other)?;
                Ok(v.iter().fold(FrontendStats::default(), |mut a, s| {
                    a.packets += s.packets;
                    a.bytes += s.bytes;
                    a.new_flows += s.new_flows;
                    a.drop_no_server += s.drop_no_server;
                    a.drop_no_port += s.drop_no_port;
                    a.drop_no_flow += s.drop_no_flow;
                    a.drop_table_full += s.drop_table_full;
                    a.denied_conn += s.denied_conn;
                    a.denied_silent += s.denied_silent;
                    a.drop_no_neigh += s.drop_no_neigh;
                    a.drop_too_big += s.drop_too_big;
                    a.icmp_errors += s.icmp_errors;
                    a.passed += s.passed;
                    a
                }))
            })
            .collect()
    }
}

/// Turns a Maglev table of member indices into one of server ids.
fn to_server_ids(table: &[u32], servers: &[PlanServer]) -> Vec<u32> {
    table
        .iter()
        .map(|&i| servers.get(i as usize).map_or(NO_SERVER, |s| s.id))
        .collect()
}

/// Open flows by server id and by frontend id, as the flow table holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenFlows {
    pub by_server: std::collections::HashMap<u32, u64>,
    pub by_frontend: std::collections::HashMap<u32, u64>,
}

impl Datapath {
    /// Counts the flows that are open now: established (not half-open, no
    /// FIN or RST seen) and not idle past their protocol's timeout. The
    /// table is an LRU, so a flow evicted under pressure is no longer
    /// counted, which is also when the datapath forgets it. None when the
    /// table holds more than `limit` entries: walking it would hold the
    /// agent loop too long, so the count is left unknown.
    pub fn open_flows(&self, settings: &Settings, limit: usize) -> Result<Option<OpenFlows>, DatapathError> {
        use lbxdp_common::{FLOW_CLOSING, FLOW_HALF_OPEN, FLOWS_MAP, Flow, FlowKey};
        let map: HashMap<&MapData, FlowKey, Flow> = HashMap::try_from(self.map(FLOWS_MAP)?).map_err(other)?;
        // The program stamps flows with bpf_ktime_get_ns(): CLOCK_MONOTONIC.
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_err(other)?;
        let now_ns = u64::try_from(std::time::Duration::from(now).as_nanos()).unwrap_or(u64::MAX);
        let mut out = OpenFlows::default();
        for (n, entry) in map.iter().enumerate() {
            if n >= limit {
                return Ok(None);
            }
            // An entry the LRU evicted between two steps of the walk is skipped.
            let Ok((key, flow)) = entry else { continue };
            let timeout = if key.proto == PROTO_UDP {
                settings.udp_timeout_ns
            } else {
                settings.tcp_timeout_ns
            };
            if flow.flags & (FLOW_CLOSING | FLOW_HALF_OPEN) != 0 || now_ns.saturating_sub(flow.seen_ns) > timeout {
                continue;
            }
            *out.by_server.entry(flow.server).or_default() += 1;
            *out.by_frontend.entry(flow.frontend).or_default() += 1;
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> (IpAddr, u8) {
        let (ip, len) = s.split_once('/').unwrap_or((s, "128"));
        (
            ip.parse().unwrap_or_else(|e| panic!("{s}: {e}")),
            len.parse().unwrap_or(0),
        )
    }

    #[test]
    fn a_set_changes_by_masked_keys() {
        let old = [net("10.0.0.1/8"), net("192.0.2.7/32"), net("2001:db8::1/32")];
        let new = [net("10.0.0.0/8"), net("198.51.100.0/24")];
        let (gone, came) = nets_change(&old, &new);
        assert_eq!(gone, [net("192.0.2.7/32"), net("2001:db8::/32")]);
        assert_eq!(came, [net("198.51.100.0/24")]);
        assert_eq!(nets_change(&new, &new), (vec![], vec![]));
        assert_eq!(nets_change(&[net("0.0.0.0/0")], &[]).0, [net("0.0.0.0/0")]);
    }
}
