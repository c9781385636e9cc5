//! The balancer's maps: frontends, Maglev tables, servers, flows and counters.
//!
//! Addresses are 16 bytes in network order; an IPv4 address fills the first 4
//! and leaves the rest zero, with `family` telling which. Ports are in network
//! order too, as they sit in the packet, so the program never swaps bytes.

/// `family` values (ours, not AF_*: they only tag our own keys).
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// Key of `FRONTENDS`: what a client connects to.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FrontendKey {
    pub addr: [u8; 16],
    pub port: u16,
    pub proto: u8,
    pub family: u8,
}

/// Value of `FRONTENDS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Frontend {
    /// Index into `FRONTEND_STATS`.
    pub id: u32,
    /// Index into `BACKENDS`; its Maglev tables are in `MAGLEV`.
    pub backend: u32,
    /// `FRONTEND_*` flags.
    pub flags: u32,
}

/// Rewrite only the destination (the servers see the client's address and
/// must route replies back through the LB). Without it: full NAT.
pub const FRONTEND_DNAT: u32 = 1;
/// The frontend has connection rules: `RULES` at its id decides its new flows.
pub const FRONTEND_RULES: u32 = 2;
/// Direct server return: only the destination MAC changes (to the server's,
/// which holds the VIP on a loopback), and the server answers the client
/// itself. No NAT state, so any node behind one ECMP route can forward any
/// packet of a flow, by Maglev if it has no flow entry.
pub const FRONTEND_DSR: u32 = 4;

/// Value of `BACKENDS`: which of the two Maglev tables is live. The agent
/// fills the other one, then flips `active` in one map update, so a packet
/// never sees a half-written table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendMeta {
    pub active: u32,
    /// 0 while the backend has no table yet.
    pub ready: u32,
}

/// Slots per `MAGLEV` entry. A table goes into the map in chunks of this
/// many slots, so writing one takes tens of syscalls, not tens of thousands.
pub const MAGLEV_CHUNK: u32 = 1024;

/// A value of `MAGLEV`: `MAGLEV_CHUNK` slots, each a server index or `NO_SERVER`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaglevChunk(pub [u32; MAGLEV_CHUNK as usize]);

/// Entries of `MAGLEV` per table copy.
pub const fn maglev_chunks(table_size: u32) -> u32 {
    table_size.div_ceil(MAGLEV_CHUNK)
}

/// Where slot `hash % table_size` of a backend's table copy lives: the
/// `MAGLEV` entry, and the index in its chunk. Copies are laid out
/// `(backend * 2 + copy) * chunks` entries apart.
pub const fn maglev_slot(backend: u32, copy: u32, table_size: u32, hash: u32) -> (u32, u32) {
    let slot = hash % table_size;
    (
        (backend * 2 + copy) * maglev_chunks(table_size) + slot / MAGLEV_CHUNK,
        slot % MAGLEV_CHUNK,
    )
}

pub const NO_SERVER: u32 = u32::MAX;

/// Value of `SERVERS`.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Server {
    pub addr: [u8; 16],
    /// The LB's own address towards this server: the source of full NAT.
    pub snat: [u8; 16],
    pub port: u16,
    pub family: u8,
    /// `SERVER_*` flags.
    pub flags: u8,
}

/// The server takes traffic. Without it, flows that were on it are rehashed.
pub const SERVER_UP: u8 = 1;

/// Key of `FLOWS` (client to VIP) and `REPLIES` (server to LB).
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub family: u8,
    pub pad: [u8; 2],
}

/// Value of `FLOWS`: the server a client flow is pinned to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    pub server: u32,
    pub frontend: u32,
    /// The source port towards the server.
    pub nat_port: u16,
    /// `FLOW_*` flags.
    pub flags: u16,
    /// The stick tables (`STICK_TABLES` index + 1, 0 for none) its
    /// `track-sc0..2` counted it in: their `conn_cur` drops when it closes.
    pub tracked: [u8; 4],
    /// bpf_ktime_get_coarse_ns() of the last packet.
    pub seen_ns: u64,
    /// Where the flow's packets to the server leave.
    pub nh: NextHop,
}

/// A flow's next hop as `bpf_fib_lookup` last gave it, so that an
/// established flow's packets skip the FIB. Valid while `generation` equals
/// `FIB_GEN`'s, which the agent bumps on every change of routes,
/// neighbours, links or addresses (and once a second besides); 0 never is.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NextHop {
    pub generation: u32,
    pub ifindex: u32,
    /// The longest IP packet (total length) the lookup has passed: a longer
    /// one goes through the FIB again, for its MTU check.
    pub max_len: u16,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    pub pad: u16,
}

/// A FIN or RST went by: the entry expires after `Settings::closing_timeout_ns`.
pub const FLOW_CLOSING: u16 = 1;
/// Made by a client's SYN and not confirmed yet: the entry (and the NAT port
/// it holds) is forgotten after `Settings::syn_timeout_ns` unless the server
/// answers with a SYN-ACK and the client then acknowledges it. A spoofed SYN
/// flood therefore holds state for seconds, not for the idle timeout.
pub const FLOW_HALF_OPEN: u16 = 2;
/// On a `REPLIES` entry: the server's SYN-ACK went by, so the client's next
/// non-SYN packet confirms the flow.
pub const FLOW_SYN_ACKED: u16 = 4;
/// On a `FLOWS` entry: the frontend did DNAT when the flow began, so its
/// packets keep the client's address (an established flow's packets don't
/// look the frontend up).
pub const FLOW_DNAT: u16 = 8;
/// On a `FLOWS` entry: the frontend did direct server return when the flow
/// began (`FRONTEND_DSR`): no rewrite, no `REPLIES` entry.
pub const FLOW_DSR: u16 = 16;

/// Value of `REPLIES`: how to turn a server's reply back into the VIP's.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub client: [u8; 16],
    pub vip: [u8; 16],
    pub client_port: u16,
    pub vip_port: u16,
    pub server: u32,
    pub frontend: u32,
    pub flags: u16,
    pub pad: u16,
    pub seen_ns: u64,
    /// Where the server's replies leave, towards the client.
    pub nh: NextHop,
}

/// Slot 0 of `SETTINGS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Maglev table size M (a prime); `MAGLEV` holds 2 x M slots per backend.
    pub table_size: u32,
    pub pad: u32,
    /// Idle TCP flows are forgotten after this (the LRU may evict sooner).
    pub tcp_timeout_ns: u64,
    /// After a FIN or RST.
    pub closing_timeout_ns: u64,
    pub udp_timeout_ns: u64,
    /// A half-open flow (`FLOW_HALF_OPEN`) is forgotten after this.
    pub syn_timeout_ns: u64,
    /// Full NAT's source ports towards the servers, in host order: a range
    /// the LB's own kernel doesn't pick ephemeral ports from, so a NATed
    /// flow and a local socket (a health check) never share a 4-tuple.
    pub nat_port_first: u16,
    pub nat_port_count: u16,
    pub pad2: u32,
}

/// The NAT port range when the agent doesn't set one: below Linux's default
/// ephemeral range (32768-60999).
pub const DEFAULT_NAT_PORT_FIRST: u16 = 1024;
pub const DEFAULT_NAT_PORT_COUNT: u16 = 32768 - 1024;

impl Settings {
    /// The agent's timeouts: an idle TCP flow is kept an hour (the LRU may
    /// evict it sooner), a closing one 10 s, an idle UDP one 30 s, a
    /// half-open one 2 s (a client retransmits its SYN after 1 s and 3 s,
    /// and each SYN renews it).
    pub const fn with_default_timeouts(table_size: u32) -> Self {
        const SEC: u64 = 1_000_000_000;
        Settings {
            table_size,
            pad: 0,
            tcp_timeout_ns: 3600 * SEC,
            closing_timeout_ns: 10 * SEC,
            udp_timeout_ns: 30 * SEC,
            syn_timeout_ns: 2 * SEC,
            nat_port_first: DEFAULT_NAT_PORT_FIRST,
            nat_port_count: DEFAULT_NAT_PORT_COUNT,
            pad2: 0,
        }
    }
}

/// Per server, per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize))]
pub struct ServerStats {
    /// Client to server.
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Server to client.
    pub packets_out: u64,
    pub bytes_out: u64,
    pub new_flows: u64,
}

/// Per frontend, per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize))]
pub struct FrontendStats {
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
    /// The backend has no server (all down, or weight 0).
    pub drop_no_server: u64,
    /// No free source port towards the server.
    pub drop_no_port: u64,
    /// Full NAT, TCP: a packet other than a SYN with no flow of its own (a
    /// stray or spoofed segment, or a flow forgotten): it gets no NAT port.
    pub drop_no_flow: u64,
    /// The flow table refused an insert.
    pub drop_table_full: u64,
    /// New flows a `tcp-request connection reject` rule refused (HAProxy's `dcon`).
    pub denied_conn: u64,
    /// First packets a `tcp-request connection silent-drop` rule dropped
    /// (HAProxy counts those connections in `dreq`). A client's SYN
    /// retransmits count again: the program keeps no state for them.
    pub denied_silent: u64,
    /// The next hop's MAC is not known yet (the agent keeps servers' neighbours resolved).
    pub drop_no_neigh: u64,
    /// Larger than the next hop's MTU (the FIB said so): dropped.
    pub drop_too_big: u64,
    /// ICMP errors about this frontend's flows, translated and sent on.
    pub icmp_errors: u64,
    /// Rewritten, but the FIB found no route (or the devmap refused the
    /// interface): handed to the stack. Fragments and malformed packets never
    /// reach a frontend; the per-protocol counters count those.
    pub passed: u64,
}

pub const FRONTENDS_MAP: &str = "FRONTENDS";
pub const BACKENDS_MAP: &str = "BACKENDS";
pub const MAGLEV_MAP: &str = "MAGLEV";
pub const SERVERS_MAP: &str = "SERVERS";
pub const FLOWS_MAP: &str = "FLOWS";
pub const REPLIES_MAP: &str = "REPLIES";
pub const SETTINGS_MAP: &str = "SETTINGS";
pub const SERVER_STATS_MAP: &str = "SERVER_STATS";
pub const FRONTEND_STATS_MAP: &str = "FRONTEND_STATS";
pub const TX_PORTS_MAP: &str = "TX_PORTS";
/// One `u32`: the generation of the kernel's routes and neighbours (see `NextHop`).
pub const FIB_GEN_MAP: &str = "FIB_GEN";
/// A bit per port (host order): some frontend listens on it. A packet to
/// another port skips the `FRONTENDS` lookup.
pub const FRONTEND_PORTS_MAP: &str = "FRONTEND_PORTS";
/// Entries of `FRONTEND_PORTS`: 65,536 bits in u64 words.
pub const FRONTEND_PORT_WORDS: u32 = 65536 / 64;
/// The program for the far end of a veth: native XDP_TX into a veth delivers
/// only when the peer runs an XDP program too.
pub const XDP_PASS_PROGRAM: &str = "lbxdp_pass";
/// The bench's XDP_TX floor: swaps MACs and bounces every frame (`--xdp-tx-floor`).
pub const XDP_TX_FLOOR_PROGRAM: &str = "lbxdp_tx_floor";

/// Sizes the object declares; the agent resizes per config at load time.
pub const DEFAULT_MAX_FRONTENDS: u32 = 1024;
pub const DEFAULT_MAX_BACKENDS: u32 = 256;
pub const DEFAULT_MAX_SERVERS: u32 = 4096;
pub const DEFAULT_MAX_FLOWS: u32 = 1 << 20;
