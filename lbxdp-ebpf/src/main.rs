//! The lbxdp XDP program: a layer-4 balancer.
//!
//! A TCP or UDP packet to a frontend (VIP, port) is pinned to a server by the
//! flow table, or by the backend's Maglev table for a new flow; it is then
//! rewritten (full NAT by default, DNAT per frontend; with direct server
//! return only the destination MAC changes) and sent on with
//! bpf_fib_lookup and XDP_TX or the devmap. A server's reply is found in the
//! reply table and rewritten back to come from the VIP. Everything else goes
//! to the stack untouched, so the LB host stays reachable.
#![no_std]
#![no_main]

mod copy;
mod csum;
mod fib;
mod icmp;
mod nat;
mod parse;
mod rules;
mod stick;

use aya_ebpf::{
    bindings::bpf_fib_lookup,
    bindings::{BPF_ANY, BPF_NOEXIST, xdp_action},
    helpers::bpf_ktime_get_coarse_ns,
    macros::{map, xdp},
    maps::{Array, DevMapHash, HashMap, LruHashMap, PerCpuArray},
    programs::XdpContext,
};
use aya_log_ebpf::debug;
use lbxdp_common::{
    BackendMeta, DEFAULT_MAX_BACKENDS, DEFAULT_MAX_FLOWS, DEFAULT_MAX_FRONTENDS, DEFAULT_MAX_SERVERS, FLOW_CLOSING,
    FLOW_DNAT, FLOW_DSR, FLOW_HALF_OPEN, FLOW_SYN_ACKED, FRONTEND_DNAT, FRONTEND_DSR, FRONTEND_PORT_WORDS,
    FRONTEND_RULES, Flow, FlowKey, Frontend, FrontendKey, FrontendStats, MAGLEV_CHUNK, MaglevChunk, NO_SERVER, NextHop,
    PROTO_TCP, PROTO_UDP, Proto, ProtoStats, RULE_REJECT, RULE_SILENT_DROP, RULE_USE_BACKEND, Reply, SERVER_UP, Server,
    ServerStats, Settings, maglev_slot,
};

use crate::{
    fib::Verdict,
    nat::Rewrite,
    parse::{Packet, Parsed, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
};

#[map(name = "PROTO_STATS")]
static PROTO_STATS: PerCpuArray<ProtoStats> = PerCpuArray::with_max_entries(Proto::COUNT, 0);
#[map(name = "FRONTENDS")]
static FRONTENDS: HashMap<FrontendKey, Frontend> = HashMap::with_max_entries(DEFAULT_MAX_FRONTENDS, 0);
/// A bit per port some frontend listens on: packets to other ports (the
/// servers' replies, the host's own traffic) skip the `FRONTENDS` lookup.
#[map(name = "FRONTEND_PORTS")]
static FRONTEND_PORTS: Array<u64> = Array::with_max_entries(FRONTEND_PORT_WORDS, 0);
#[map(name = "BACKENDS")]
static BACKENDS: Array<BackendMeta> = Array::with_max_entries(DEFAULT_MAX_BACKENDS, 0);
/// Resized by the agent to backends x 2 copies x chunks per table.
#[map(name = "MAGLEV")]
static MAGLEV: Array<MaglevChunk> = Array::with_max_entries(2 * 65, 0);
#[map(name = "SERVERS")]
static SERVERS: Array<Server> = Array::with_max_entries(DEFAULT_MAX_SERVERS, 0);
/// Per-CPU LRU lists: new flows don't contend on one global list lock,
/// which is what every short connection pays for otherwise.
const BPF_F_NO_COMMON_LRU: u32 = 1 << 1;
#[map(name = "FLOWS")]
static FLOWS: LruHashMap<FlowKey, Flow> = LruHashMap::with_max_entries(DEFAULT_MAX_FLOWS, BPF_F_NO_COMMON_LRU);
#[map(name = "REPLIES")]
static REPLIES: LruHashMap<FlowKey, Reply> = LruHashMap::with_max_entries(DEFAULT_MAX_FLOWS, BPF_F_NO_COMMON_LRU);
#[map(name = "SETTINGS")]
static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);
#[map(name = "SERVER_STATS")]
static SERVER_STATS: PerCpuArray<ServerStats> = PerCpuArray::with_max_entries(DEFAULT_MAX_SERVERS, 0);
#[map(name = "FRONTEND_STATS")]
static FRONTEND_STATS: PerCpuArray<FrontendStats> = PerCpuArray::with_max_entries(DEFAULT_MAX_FRONTENDS, 0);
#[map(name = "TX_PORTS")]
pub(crate) static TX_PORTS: DevMapHash = DevMapHash::with_max_entries(64, 0);
/// The generation of the kernel's routes and neighbours: a flow's cached
/// next hop (`NextHop`) is good while its `generation` is this.
#[map(name = "FIB_GEN")]
pub(crate) static FIB_GEN: Array<u32> = Array::with_max_entries(1, 0);

/// Source ports tried for a new full-NAT flow: the client's own shifted into
/// the NAT range, then these many hashed ones.
const PORT_TRIES: u32 = 8;
/// A half-open holder older than this yields its port to a new SYN: a
/// handshake that is going to complete has done so by then on any LAN, and
/// a spoofed SYN flood must not keep legitimate SYNs from every port. (A
/// client whose handshake takes longer loses only when its port is
/// contended, and its SYN retransmit then claims another.)
const HALF_OPEN_YIELD_NS: u64 = 250_000_000;
/// How long a closed flow's (LB address, port) stays reserved for it: the
/// server holds TIME_WAIT that long (Linux: 60 s), and a new connection from
/// another client on that port would stall there.
const TIME_WAIT_NS: u64 = 60_000_000_000;

/// Per-CPU working memory: the verifier allows 512 bytes of stack for the
/// whole call chain, and keys and values of 40-60 bytes add up fast.
#[repr(C)]
pub struct Scratch {
    pub p: Packet,
    pub fkey: FrontendKey,
    pub key: FlowKey,
    pub rkey: FlowKey,
    pub reply: Reply,
    pub flow: Flow,
    pub rw: Rewrite,
    /// An ICMP error's addresses as they came and as they leave.
    pub old: icmp::IcmpNat,
    pub new: icmp::IcmpNat,
    pub fib: bpf_fib_lookup,
    /// A packet's address as `NETS` looks it up.
    pub nkey: rules::NetLookup,
    /// A client's stick table key, and a new entry.
    pub skey: lbxdp_common::StickKey,
    pub sentry: lbxdp_common::StickEntry,
    /// The stick tables (index + 1) the rules tracked the new flow in, per slot.
    pub tracked: [u8; 4],
    /// What the rules read of stick counters (see `stick::cached`).
    pub sc: [stick::Values; 4],
    pub src_val: [u32; lbxdp_common::MAX_RULE_EXPRS],
    pub src_ok: u32,
    /// The client's address fits a `type ip` table.
    pub v4ish: u8,
    /// See `rules::launder`.
    pub launder: u32,
}

#[map(name = "SCRATCH")]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

#[xdp]
pub fn lbxdp(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: this CPU's slot of a per-CPU array, used by this program run
    // only (XDP runs with preemption off and does not nest).
    let s = unsafe { &mut *s };
    match parse::parse(&ctx, &mut s.p) {
        Parsed::Other(l3, l4) => {
            count(l3, len);
            if let Some(l4) = l4 {
                count(l4, len);
            }
            match (l3, l4) {
                (Proto::Ipv4, Some(Proto::Icmp)) => icmp::handle(&ctx, s, false).unwrap_or(xdp_action::XDP_PASS),
                (Proto::Ipv6, Some(Proto::Icmpv6)) => icmp::handle(&ctx, s, true).unwrap_or(xdp_action::XDP_PASS),
                _ => xdp_action::XDP_PASS,
            }
        }
        Parsed::Balanceable => {
            count(
                if s.p.family == lbxdp_common::FAMILY_V4 {
                    Proto::Ipv4
                } else {
                    Proto::Ipv6
                },
                len,
            );
            count(if s.p.proto == PROTO_TCP { Proto::Tcp } else { Proto::Udp }, len);
            balance(&ctx, s, len)
        }
    }
}

/// The far end of a veth runs this: native XDP_TX and redirects into a veth
/// deliver only when its peer has an XDP program.
#[xdp]
pub fn lbxdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The XDP_TX floor of a box, for `cargo xtask bench`: swaps the Ethernet
/// addresses and bounces every frame back out of the interface it came in
/// on. No balancer that answers with XDP_TX can move packets faster than
/// this on the same machine, so the bench reports its own rate against it.
#[xdp]
pub fn lbxdp_tx_floor(ctx: XdpContext) -> u32 {
    let Some(eth) = parse::ptr_at_mut::<network_types::eth::EthHdr>(&ctx, 0) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: ptr_at_mut checked that the whole header lies inside the packet.
    unsafe {
        let dst = (*eth).dst_addr;
        (*eth).dst_addr = (*eth).src_addr;
        (*eth).src_addr = dst;
    }
    xdp_action::XDP_TX
}

#[inline(always)]
fn count(proto: Proto, len: u64) {
    if let Some(s) = PROTO_STATS.get_ptr_mut(proto as u32) {
        // SAFETY: this CPU's slot of a per-CPU array; XDP runs with
        // preemption off, so nothing else writes it meanwhile.
        unsafe {
            (*s).packets += 1;
            (*s).bytes += len;
        }
    }
}

#[inline(always)]
fn balance(ctx: &XdpContext, s: &mut Scratch, len: u64) -> u32 {
    if frontend_port(s.p.dport) {
        // An established flow's segment: one lookup, the flow's, and out.
        if s.p.proto == PROTO_TCP && s.p.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST) == 0 {
            set_flow_key(&mut s.key, &s.p);
            if let Some(f) = FLOWS.get_ptr_mut(&s.key) {
                let action = established(ctx, s, f, len);
                if action != NOT_ESTABLISHED {
                    return action;
                }
            }
        }
        // Built in place: a key on the stack costs a copy (see `copy`).
        // SAFETY: fields of the scratch space (see `copy`).
        unsafe { copy::addr(&mut s.fkey.addr, &s.p.dst) };
        s.fkey.port = s.p.dport;
        s.fkey.proto = s.p.proto;
        s.fkey.family = s.p.family;
        // SAFETY: a map value we only read; the agent replaces frontends whole.
        if let Some(fe) = unsafe { FRONTENDS.get(&s.fkey) } {
            return to_server(ctx, s, fe, len);
        }
    }
    set_flow_key(&mut s.rkey, &s.p);
    if let Some(r) = REPLIES.get_ptr_mut(&s.rkey) {
        return to_client(ctx, s, r, len);
    }
    xdp_action::XDP_PASS
}

/// Whether some frontend listens on `port` (network order).
#[inline(always)]
fn frontend_port(port: u16) -> bool {
    let port = u16::from_be(port);
    FRONTEND_PORTS
        .get(u32::from(port >> 6))
        .is_some_and(|w| w & (1u64 << (port & 63)) != 0)
}

/// Not an XDP action: `established` leaves the packet to `to_server`.
const NOT_ESTABLISHED: u32 = u32::MAX;

/// A client's segment on a live, confirmed flow whose server is up (no
/// SYN, FIN or RST): forwarded on what the flow entry holds, without the
/// frontend's lookup; a flow outlives a reload that drops its frontend, as
/// HAProxy's old process finishes its sessions. Anything else (a half-open
/// or closing flow, an expired one, a server gone down) goes the long way,
/// through `to_server`, which knows all of that.
#[inline(never)]
fn established(ctx: &XdpContext, s: &mut Scratch, f: *mut Flow, len: u64) -> u32 {
    // SAFETY: a value of our LRU map (see `to_server`).
    let f = unsafe { &mut *f };
    let Some(settings) = SETTINGS.get(0) else {
        return NOT_ESTABLISHED;
    };
    let now = now();
    if f.flags & (FLOW_CLOSING | FLOW_HALF_OPEN) != 0 || expired(f.flags, f.seen_ns, now, PROTO_TCP, settings) {
        return NOT_ESTABLISHED;
    }
    let Some(server) = SERVERS
        .get(f.server)
        .filter(|sv| sv.flags & SERVER_UP != 0 && sv.family == s.p.family)
    else {
        return NOT_ESTABLISHED;
    };
    let Some(fs) = frontend_stats(f.frontend) else {
        return NOT_ESTABLISHED;
    };
    fs.packets += 1;
    fs.bytes += len;
    f.seen_ns = now;
    let leg = Leg {
        server_id: f.server,
        nat_port: f.nat_port,
        dnat: f.flags & FLOW_DNAT != 0,
        dsr: f.flags & FLOW_DSR != 0,
        nh: &mut f.nh,
    };
    out_to_server(ctx, s, fs, server, leg, len)
}

/// Where a client's packet goes: the flow's server, its source port
/// there, whether the client's address stays (DNAT), whether the packet
/// goes as it is (DSR), and the flow's next-hop cache (or null).
struct Leg {
    server_id: u32,
    nat_port: u16,
    dnat: bool,
    dsr: bool,
    nh: *mut NextHop,
}

/// The last leg towards a server, for `established` and `to_server` alike:
/// the rewrite (the source is the client's own address in DNAT, else the
/// LB's towards the server), the server's counters, and the send.
#[inline(always)]
fn out_to_server(
    ctx: &XdpContext,
    s: &mut Scratch,
    fs: &mut FrontendStats,
    server: &Server,
    leg: Leg,
    len: u64,
) -> u32 {
    if leg.dsr {
        // The frame goes as it came, to the server's MAC: the FIB is asked
        // for the server's address (only `s.p` says so, not the packet).
        // SAFETY: fields of the scratch space and of a map value (see `copy`).
        unsafe { copy::addr(&mut s.p.dst, &server.addr) };
    } else {
        // SAFETY: as above.
        unsafe {
            copy::addr(&mut s.rw.src, if leg.dnat { &s.p.src } else { &server.snat });
            copy::addr(&mut s.rw.dst, &server.addr);
        }
        s.rw.sport = leg.nat_port;
        s.rw.dport = server.port;
        if !nat::rewrite(ctx, &mut s.p, &s.rw) {
            return xdp_action::XDP_ABORTED;
        }
    }
    if let Some(ss) = server_stats(leg.server_id) {
        ss.packets_in += 1;
        ss.bytes_in += len;
    }
    send(ctx, s, fs, leg.nh)
}

#[inline(always)]
fn set_flow_key(k: &mut FlowKey, p: &Packet) {
    // SAFETY: fields of the scratch space (see `copy`).
    unsafe {
        copy::addr(&mut k.src, &p.src);
        copy::addr(&mut k.dst, &p.dst);
    }
    k.sport = p.sport;
    k.dport = p.dport;
    k.proto = p.proto;
    k.family = p.family;
    k.pad = [0; 2];
}

#[inline(always)]
fn frontend_stats(id: u32) -> Option<&'static mut FrontendStats> {
    // SAFETY: this CPU's slot of a per-CPU array (see `count`).
    FRONTEND_STATS.get_ptr_mut(id).map(|s| unsafe { &mut *s })
}

#[inline(always)]
fn server_stats(id: u32) -> Option<&'static mut ServerStats> {
    // SAFETY: as above.
    SERVER_STATS.get_ptr_mut(id).map(|s| unsafe { &mut *s })
}

// Not inlined: each of these gets its own stack frame, which keeps the
// chain of frames under the verifier's 512 bytes.

/// Client to server.
#[inline(never)]
fn to_server(ctx: &XdpContext, s: &mut Scratch, fe: &Frontend, len: u64) -> u32 {
    let Some(fs) = frontend_stats(fe.id) else {
        return xdp_action::XDP_PASS;
    };
    fs.packets += 1;
    fs.bytes += len;
    let Some(settings) = SETTINGS.get(0) else {
        fs.passed += 1;
        return xdp_action::XDP_PASS;
    };
    let now = now();
    set_flow_key(&mut s.key, &s.p);
    let tcp = s.p.proto == PROTO_TCP;
    let closing = tcp && s.p.tcp_flags & (TCP_FIN | TCP_RST) != 0;
    let syn = tcp && s.p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
    let dnat = fe.flags & FRONTEND_DNAT != 0;
    let dsr = fe.flags & FRONTEND_DSR != 0;

    let mut pinned = None;
    // The flow's cached next hop, if it has an entry that stays.
    let mut nh: *mut NextHop = core::ptr::null_mut();
    // A live entry exists for this 5-tuple (its server may be down).
    let mut known = false;
    // A half-open flow's first non-SYN: confirmed if the server's SYN-ACK went by.
    let mut confirm = false;
    // A SYN retransmit on a half-open flow re-claims its port: not a new flow.
    let mut retransmit = false;
    // Stick tables whose conn_cur this flow gives back: it is closing.
    let mut untrack = 0u32;
    if let Some(f) = FLOWS.get_ptr_mut(&s.key) {
        // SAFETY: a value of our LRU map; racing writers only touch the same
        // plain fields, and a torn `seen_ns` is harmless.
        let f = unsafe { &mut *f };
        if !expired(f.flags, f.seen_ns, now, s.p.proto, settings) {
            known = true;
            // A SYN on a closing or half-open flow starts it over (a reused
            // client port, or a SYN retransmit that must re-claim its port).
            let restart = syn && f.flags & (FLOW_CLOSING | FLOW_HALF_OPEN) != 0;
            retransmit = syn && f.flags & (FLOW_CLOSING | FLOW_HALF_OPEN) == FLOW_HALF_OPEN;
            if !restart && server_up(f.server) {
                // A half-open flow lives on its SYNs only: stray segments
                // for it don't keep it (or its NAT port) alive.
                if f.flags & FLOW_HALF_OPEN == 0 {
                    f.seen_ns = now;
                } else if f.flags & FLOW_DSR != 0 {
                    // The server's SYN-ACK doesn't come by here: the
                    // client's next segment is all the proof there is.
                    if !syn {
                        f.flags &= !FLOW_HALF_OPEN;
                        f.seen_ns = now;
                    }
                } else {
                    confirm = !syn;
                }
                if closing {
                    if f.flags & FLOW_CLOSING == 0 {
                        untrack = u32::from_ne_bytes(f.tracked);
                    }
                    f.flags |= FLOW_CLOSING;
                }
                pinned = Some((f.server, f.nat_port));
                nh = &mut f.nh;
            }
        }
    }
    if untrack != 0 {
        stick::release(s, untrack.to_ne_bytes(), now_ms(now));
    }
    let (server_id, nat_port) = match pinned {
        Some(x) => x,
        None => {
            // Full NAT: only a SYN gets a NAT port. Anything else without a
            // flow (spoofed, stray, or forgotten) would hold one for the idle
            // timeout; DNAT holds no port, so it may still pick up a flow,
            // and DSR must: a flow that another node began comes here when
            // the router's ECMP moves it, and Maglev finds its server.
            if tcp && !syn && !known && !dnat && !dsr {
                fs.drop_no_flow += 1;
                return xdp_action::XDP_DROP;
            }
            // The frontend's rules decide a new flow (and a SYN retransmit,
            // which may meet rules changed since its first SYN).
            let mut chosen = Frontend {
                id: fe.id,
                backend: fe.backend,
                flags: fe.flags,
            };
            s.tracked = [0; 4];
            if fe.flags & FRONTEND_RULES != 0 {
                let v = rules::decide(s, fe.id, !retransmit, now_ms(now));
                let refused = match rules::action(v) {
                    RULE_REJECT => {
                        fs.denied_conn += 1;
                        true
                    }
                    RULE_SILENT_DROP => {
                        fs.denied_silent += 1;
                        true
                    }
                    RULE_USE_BACKEND => {
                        chosen.backend = rules::backend(v);
                        false
                    }
                    _ => false,
                };
                if refused {
                    // The connection the rules counted never was.
                    if !retransmit {
                        stick::untrack(s, now_ms(now));
                    }
                    return if syn && rules::action(v) == RULE_REJECT {
                        rules::reset(ctx, s)
                    } else {
                        xdp_action::XDP_DROP
                    };
                }
            }
            match unpack(new_flow(s, &chosen, now)) {
                Ok(x) => {
                    if !retransmit {
                        fs.new_flows += 1;
                        if let Some(ss) = server_stats(x.0) {
                            ss.new_flows += 1;
                        }
                    }
                    x
                }
                Err(reason) => {
                    if !retransmit {
                        stick::untrack(s, now_ms(now));
                    }
                    match reason {
                        NewFlowError::NoServer => fs.drop_no_server += 1,
                        NewFlowError::NoPort => fs.drop_no_port += 1,
                        NewFlowError::TableFull => fs.drop_table_full += 1,
                    }
                    return xdp_action::XDP_DROP;
                }
            }
        }
    };
    let Some(server) = SERVERS.get(server_id).filter(|sv| sv.family == s.p.family) else {
        fs.drop_no_server += 1;
        return xdp_action::XDP_DROP;
    };
    // The reply entry follows what the client did: a FIN or RST closes it
    // too (else its port stays held), UDP keeps it fresh from both sides,
    // and a confirmed handshake makes it established.
    if (closing || confirm || !tcp) && !dsr {
        let op = if closing { SYNC_CLOSE } else { 0 }
            | if confirm { SYNC_CONFIRM } else { 0 }
            | if dnat { SYNC_DNAT } else { 0 };
        sync_reply(s, server, nat_port, op, now);
    }
    let leg = Leg {
        server_id,
        nat_port,
        dnat,
        dsr,
        nh,
    };
    out_to_server(ctx, s, fs, server, leg, len)
}

/// Server to client: the reply entry says who the client was.
#[inline(never)]
fn to_client(ctx: &XdpContext, s: &mut Scratch, r: *mut Reply, len: u64) -> u32 {
    // SAFETY: a value of our LRU map (see `to_server`).
    let r = unsafe { &mut *r };
    let Some(fs) = frontend_stats(r.frontend) else {
        return xdp_action::XDP_PASS;
    };
    let now = now();
    let tcp = s.p.proto == PROTO_TCP;
    if r.flags & FLOW_HALF_OPEN == 0 {
        r.seen_ns = now;
    } else if tcp && s.p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK {
        // Not refreshed: a server retransmitting SYN-ACKs to a spoofed
        // client must not keep the entry. The client's ACK confirms it.
        r.flags |= FLOW_SYN_ACKED;
    }
    let closing = tcp && s.p.tcp_flags & (TCP_FIN | TCP_RST) != 0;
    if closing || !tcp {
        if closing {
            r.flags |= FLOW_CLOSING;
        }
        // SAFETY: fields of the scratch space and of a map value (see `copy`).
        unsafe {
            copy::addr(&mut s.key.src, &r.client);
            copy::addr(&mut s.key.dst, &r.vip);
        }
        s.key.sport = r.client_port;
        s.key.dport = r.vip_port;
        s.key.proto = s.p.proto;
        s.key.family = s.p.family;
        s.key.pad = [0; 2];
        if let Some(f) = FLOWS.get_ptr_mut(&s.key) {
            // SAFETY: as above.
            let f = unsafe { &mut *f };
            if closing {
                let tracked = u32::from_ne_bytes(f.tracked);
                let first = f.flags & FLOW_CLOSING == 0;
                f.flags |= FLOW_CLOSING;
                if first && tracked != 0 {
                    stick::release(s, tracked.to_ne_bytes(), now_ms(now));
                }
            } else {
                // UDP: the server's packets keep the client's entry too.
                f.seen_ns = now;
            }
        }
    }
    if let Some(ss) = server_stats(r.server) {
        ss.packets_out += 1;
        ss.bytes_out += len;
    }
    let nh: *mut NextHop = &mut r.nh;
    // SAFETY: as above.
    unsafe {
        copy::addr(&mut s.rw.src, &r.vip);
        copy::addr(&mut s.rw.dst, &r.client);
    }
    s.rw.sport = r.vip_port;
    s.rw.dport = r.client_port;
    if !nat::rewrite(ctx, &mut s.p, &s.rw) {
        return xdp_action::XDP_ABORTED;
    }
    send(ctx, s, fs, nh)
}

/// Sends the rewritten packet on; `nh` is the flow's next-hop cache, or null.
#[inline(always)]
fn send(ctx: &XdpContext, s: &mut Scratch, fs: &mut FrontendStats, nh: *mut NextHop) -> u32 {
    match fib::forward(ctx, &s.p, &mut s.fib, nh) {
        Verdict::Action(a) => a,
        Verdict::NoNeighbour => {
            fs.drop_no_neigh += 1;
            // Counted, not logged: a flood of replies to spoofed clients would
            // flood the log too.
            debug!(ctx, "no neighbour entry for the next hop yet: dropped");
            xdp_action::XDP_DROP
        }
        Verdict::TooBig => {
            // Larger than the next hop's MTU: the sender learns the path MTU
            // from the ICMP error a router on its side sends, which we
            // translate; here it is counted and dropped.
            fs.drop_too_big += 1;
            xdp_action::XDP_DROP
        }
        Verdict::Pass => {
            fs.passed += 1;
            debug!(ctx, "no route for a balanced packet: passed to the stack");
            xdp_action::XDP_PASS
        }
    }
}

enum NewFlowError {
    NoServer,
    NoPort,
    TableFull,
}

/// The `REPLIES` key of client flow `flow` on `server`, leaving the LB from
/// `nat_port`: what the server's replies carry. In DNAT the server replies
/// to the client itself, through us as its gateway.
#[inline(always)]
fn set_reply_key(k: &mut FlowKey, flow: &FlowKey, server: &Server, nat_port: u16, dnat: bool) {
    // SAFETY: fields of the scratch space and of a map value (see `copy`).
    unsafe {
        copy::addr(&mut k.src, &server.addr);
        copy::addr(&mut k.dst, if dnat { &flow.src } else { &server.snat });
    }
    k.sport = server.port;
    k.dport = nat_port;
    k.proto = flow.proto;
    k.family = flow.family;
    k.pad = [0; 2];
}

const SYNC_CLOSE: u32 = 1;
const SYNC_CONFIRM: u32 = 2;
const SYNC_DNAT: u32 = 4;

/// The client side's news for the flow's reply entry (see `to_server`).
#[inline(never)]
fn sync_reply(s: &mut Scratch, server: &Server, nat_port: u16, op: u32, now: u64) {
    set_reply_key(&mut s.rkey, &s.key, server, nat_port, op & SYNC_DNAT != 0);
    let Some(r) = REPLIES.get_ptr_mut(&s.rkey) else {
        return;
    };
    // SAFETY: a value of our LRU map (see `to_server`).
    let r = unsafe { &mut *r };
    // The port may have passed to another client since: leave theirs alone.
    if r.client != s.key.src || r.client_port != s.key.sport || r.vip != s.key.dst || r.vip_port != s.key.dport {
        return;
    }
    if op & SYNC_CLOSE != 0 {
        r.flags |= FLOW_CLOSING;
    }
    if op & SYNC_CONFIRM != 0 {
        if r.flags & FLOW_SYN_ACKED == 0 {
            return;
        }
        r.flags &= !(FLOW_HALF_OPEN | FLOW_SYN_ACKED);
        if let Some(f) = FLOWS.get_ptr_mut(&s.key) {
            // SAFETY: as above.
            let f = unsafe { &mut *f };
            f.flags &= !FLOW_HALF_OPEN;
            f.seen_ns = now;
        }
    }
    r.seen_ns = now;
}

/// The time of this packet, read once. The coarse clock (the last tick's
/// time) is precise enough for timeouts of a quarter second and more, and
/// it costs no clock-source read: a third of the helpers' time in a flow
/// hit was `read_tsc` before.
#[inline(always)]
fn now() -> u64 {
    // SAFETY: a helper without arguments.
    unsafe { bpf_ktime_get_coarse_ns() }
}

/// Stick tables count in milliseconds (HAProxy's ticks), wrapping.
#[inline(always)]
fn now_ms(now_ns: u64) -> u32 {
    (now_ns / 1_000_000) as u32
}

#[inline(always)]
fn expired(flags: u16, seen_ns: u64, now: u64, proto: u8, s: &Settings) -> bool {
    let idle = now.saturating_sub(seen_ns);
    if flags & FLOW_CLOSING != 0 {
        return idle > s.closing_timeout_ns;
    }
    if flags & FLOW_HALF_OPEN != 0 {
        return idle > s.syn_timeout_ns;
    }
    idle > if proto == PROTO_UDP {
        s.udp_timeout_ns
    } else {
        s.tcp_timeout_ns
    }
}

#[inline(always)]
fn server_up(id: u32) -> bool {
    SERVERS.get(id).is_some_and(|s| s.flags & SERVER_UP != 0)
}

/// Picks the server from the Maglev table and a source port towards it, and
/// records both directions of the flow. Packed into one register (see
/// `pack`): a BPF function returns in r0 only.
#[inline(never)]
fn new_flow(s: &mut Scratch, fe: &Frontend, now: u64) -> u64 {
    pack(pick(s, fe, now))
}

const ERR_BIT: u64 = 1 << 63;

#[inline(always)]
fn pack(r: Result<(u32, u16), NewFlowError>) -> u64 {
    match r {
        Ok((server, port)) => (u64::from(server) << 16) | u64::from(port),
        Err(NewFlowError::NoServer) => ERR_BIT,
        Err(NewFlowError::NoPort) => ERR_BIT | 1,
        Err(NewFlowError::TableFull) => ERR_BIT | 2,
    }
}

#[inline(always)]
fn unpack(v: u64) -> Result<(u32, u16), NewFlowError> {
    if v & ERR_BIT == 0 {
        return Ok(((v >> 16) as u32, v as u16));
    }
    Err(match v & 3 {
        0 => NewFlowError::NoServer,
        1 => NewFlowError::NoPort,
        _ => NewFlowError::TableFull,
    })
}

#[inline(always)]
fn pick(s: &mut Scratch, fe: &Frontend, now: u64) -> Result<(u32, u16), NewFlowError> {
    let settings = SETTINGS.get(0).ok_or(NewFlowError::NoServer)?;
    let tcp = s.p.proto == PROTO_TCP;
    let closing = tcp && s.p.tcp_flags & (TCP_FIN | TCP_RST) != 0;
    let syn = tcp && s.p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
    let hash = flow_hash(&s.key);
    let (server_id, server) = maglev_pick(fe.backend, hash, s.p.family, settings).ok_or(NewFlowError::NoServer)?;
    // SAFETY: fields of the scratch space (see `copy`).
    unsafe {
        copy::addr(&mut s.reply.client, &s.p.src);
        copy::addr(&mut s.reply.vip, &s.p.dst);
    }
    s.reply.client_port = s.p.sport;
    s.reply.vip_port = s.p.dport;
    s.reply.server = server_id;
    s.reply.frontend = fe.id;
    s.reply.flags = if closing {
        FLOW_CLOSING
    } else if syn {
        FLOW_HALF_OPEN
    } else {
        0
    };
    s.reply.pad = 0;
    s.reply.seen_ns = now;
    s.reply.nh.generation = 0;
    let dnat = fe.flags & FRONTEND_DNAT != 0;
    let dsr = fe.flags & FRONTEND_DSR != 0;
    set_reply_key(&mut s.rkey, &s.key, server, s.p.sport, dnat);
    // DSR: the server's replies never come by, so there is nothing to find
    // them by; the flow entry only keeps the flow on its server through
    // table changes.
    let nat_port = if dsr {
        s.p.sport
    } else if dnat {
        REPLIES
            .insert(&s.rkey, &s.reply, BPF_ANY as u64)
            .map_err(|_| NewFlowError::TableFull)?;
        s.p.sport
    } else {
        claim_port(s, hash, now, settings)?
    };
    // Built in place, as the keys are; no next hop cached yet.
    s.flow.server = server_id;
    s.flow.frontend = fe.id;
    s.flow.nat_port = nat_port;
    s.flow.flags = s.reply.flags | if dnat { FLOW_DNAT } else { 0 } | if dsr { FLOW_DSR } else { 0 };
    s.flow.tracked = s.tracked;
    s.flow.seen_ns = now;
    s.flow.nh.generation = 0;
    FLOWS
        .insert(&s.key, &s.flow, BPF_ANY as u64)
        .map_err(|_| NewFlowError::TableFull)?;
    Ok((server_id, nat_port))
}

/// The server of `backend`'s live Maglev table for a flow `hash`, if it is
/// up and of the packet's `family`: a backend may mix IPv4 and IPv6
/// servers, and the table doesn't know the packet's family (rewriting
/// across families would garble the packet).
#[inline(always)]
pub(crate) fn maglev_pick(backend: u32, hash: u32, family: u8, settings: &Settings) -> Option<(u32, &'static Server)> {
    let meta = BACKENDS.get(backend)?;
    if meta.ready == 0 || settings.table_size == 0 {
        return None;
    }
    let (entry, index) = maglev_slot(backend, meta.active & 1, settings.table_size, hash);
    let chunk = MAGLEV.get(entry)?;
    let server_id = chunk.0[(index & (MAGLEV_CHUNK - 1)) as usize];
    if server_id == NO_SERVER {
        return None;
    }
    let server = SERVERS.get(server_id)?;
    if server.flags & SERVER_UP == 0 || server.family != family {
        return None;
    }
    Some((server_id, server))
}

/// Full NAT's source port, from `Settings`' NAT range (which the LB's own
/// kernel doesn't use for its sockets): the client's port shifted into the
/// range, so the same client flow comes back to the same port, then a few
/// rehashes. A port is free when no flow holds it, when its holder is this
/// very client flow again (the client's sequence numbers keep the server's
/// TIME_WAIT happy), when its holder is still half-open after
/// `HALF_OPEN_YIELD_NS`, or when its holder has been gone longer than the
/// server's TIME_WAIT.
#[inline(always)]
fn claim_port(s: &mut Scratch, hash: u32, now: u64, settings: &Settings) -> Result<u16, NewFlowError> {
    let first = u32::from(settings.nat_port_first);
    let count = u32::from(settings.nat_port_count);
    if count == 0 {
        return Err(NewFlowError::NoPort);
    }
    for i in 0..=PORT_TRIES {
        // First the client's own port, moved into the range: one client's
        // ports map one to one, so the server sees each client flow on its
        // own 4-tuple again and again (the client's timestamps then keep
        // rising on it, which is what lets the server's TIME_WAIT take the
        // next SYN), also after an agent restart forgot the table.
        let h = if i == 0 {
            u32::from(u16::from_be(s.reply.client_port))
        } else {
            hash.rotate_left(i * 5) ^ i.wrapping_mul(0x9e37_79b9)
        };
        s.rkey.dport = ((first + h % count) as u16).to_be();
        match REPLIES.get_ptr_mut(&s.rkey) {
            None => {
                if REPLIES.insert(&s.rkey, &s.reply, BPF_NOEXIST as u64).is_ok() {
                    return Ok(s.rkey.dport);
                }
            }
            Some(old) => {
                // SAFETY: a value of our LRU map (see `to_server`).
                let old = unsafe { &mut *old };
                let same = old.client == s.reply.client
                    && old.client_port == s.reply.client_port
                    && old.vip == s.reply.vip
                    && old.vip_port == s.reply.vip_port;
                let idle = now.saturating_sub(old.seen_ns);
                let gone = if old.flags & FLOW_HALF_OPEN != 0 {
                    idle > settings.syn_timeout_ns.min(HALF_OPEN_YIELD_NS)
                } else if old.flags & FLOW_CLOSING != 0 {
                    idle > TIME_WAIT_NS
                } else {
                    expired(old.flags, old.seen_ns, now, s.rkey.proto, settings) && idle > TIME_WAIT_NS
                };
                if same || gone {
                    // SAFETY: a map value and the scratch space, both `Reply`s (see `copy`).
                    unsafe { copy::words(old, &s.reply) };
                    return Ok(s.rkey.dport);
                }
            }
        }
    }
    Err(NewFlowError::NoPort)
}

/// A 32-bit hash of the 5-tuple (murmur3's mixing). It only has to spread
/// flows over the table; it never leaves this machine.
#[inline(always)]
pub(crate) fn flow_hash(k: &FlowKey) -> u32 {
    let mut h: u32 = 0x5bd1_e995 ^ u32::from(k.proto);
    let mut mix = |w: u32| {
        let mut x = w.wrapping_mul(0xcc9e_2d51);
        x = x.rotate_left(15).wrapping_mul(0x1b87_3593);
        h ^= x;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    };
    let mut i = 0;
    while i < 16 {
        mix(u32::from_ne_bytes([k.src[i], k.src[i + 1], k.src[i + 2], k.src[i + 3]]));
        mix(u32::from_ne_bytes([k.dst[i], k.dst[i + 1], k.dst[i + 2], k.dst[i + 3]]));
        i += 4;
    }
    mix(u32::from(k.sport) << 16 | u32::from(k.dport));
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
