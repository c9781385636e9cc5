//! ICMP errors about balanced flows, rewritten as the flow's NAT would
//! rewrite it (outer header, the quoted inner header, and their checksums),
//! as Linux's conntrack and Katran do, so that path-MTU discovery and
//! unreachable errors work through full NAT:
//! - an error about a packet we sent to a server (from the server or a router
//!   on its side) goes to the client as if about the client's packet to the
//!   VIP, from the VIP;
//! - an error about a packet we sent to a client goes to the server as if
//!   about the server's own packet, from the LB's address towards it.
//!
//! With direct server return the server's packets never pass the node, and
//! the errors about them (a router's "fragmentation needed" about a reply
//! that left the server from the VIP) come to the VIP, that is to some node:
//! such an error goes on unchanged to the server of the flow it quotes, the
//! node's flow entry's or, on a node that has none (ECMP spread the flow
//! elsewhere), the one Maglev gives, which is the same on every node. This
//! is the problem Cloudflare's pmtud solved by broadcasting; here the
//! consistent hash makes it a lookup.
//!
//! ICMPv4 destination-unreachable (fragmentation-needed among them) and
//! time-exceeded, ICMPv6 destination-unreachable, packet-too-big and
//! time-exceeded. Only the plain layouts (no IPv4 options, no IPv6
//! extension headers, outer or inner) are rewritten; the quoted inner TCP/UDP
//! checksum is left as it is (the quote is truncated, and no receiver checks it).
use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use lbxdp_common::{FAMILY_V4, FAMILY_V6, FLOW_DSR, FRONTEND_DNAT, FRONTEND_DSR, FrontendKey, PROTO_TCP, PROTO_UDP};

use crate::{
    FLOWS, FRONTENDS, REPLIES, SERVERS, SETTINGS, Scratch, copy, csum, flow_hash, frontend_stats, maglev_pick,
    parse::{ptr_at, ptr_at_mut},
    send,
};

const ETH: usize = 14;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;

/// The addresses and ports of an ICMP error as they are and as they become.
#[repr(C)]
pub struct IcmpNat {
    pub outer_src: [u8; 16],
    pub outer_dst: [u8; 16],
    pub inner_src: [u8; 16],
    pub inner_dst: [u8; 16],
    pub inner_sport: u16,
    pub inner_dport: u16,
    pub proto: u8,
    pub frontend: u32,
    /// For `Found::AsIs`: the server the error goes to.
    pub server: u32,
}

/// What `translate` found of the quoted packet's flow.
#[derive(PartialEq, Eq)]
enum Found {
    NotOurs,
    /// A NATed flow's: rewrite as `s.new` says.
    Rewrite,
    /// A DSR flow's: unchanged, to server `s.new.server`.
    AsIs,
}

/// An ICMP error about one of our flows: rewritten and sent on (Some), or
/// not ours (None: the stack gets it).
#[inline(never)]
pub fn handle(ctx: &XdpContext, s: &mut Scratch, v6: bool) -> Option<u32> {
    let found = if v6 { read_v6(ctx, s) } else { read_v4(ctx, s) };
    if !found {
        return None;
    }
    let family = if v6 { FAMILY_V6 } else { FAMILY_V4 };
    match translate(s, family) {
        Found::NotOurs => return None,
        Found::AsIs => {
            let fs = frontend_stats(s.new.frontend)?;
            let server = SERVERS.get(s.new.server)?;
            s.p.family = family;
            s.p.proto = if v6 { IPPROTO_ICMPV6 } else { IPPROTO_ICMP };
            // SAFETY: fields of the scratch space or a map value (see `copy`).
            unsafe {
                copy::addr(&mut s.p.src, &s.old.outer_src);
                // Only the FIB is asked for the server (see `out_to_server`).
                copy::addr(&mut s.p.dst, &server.addr);
            }
            s.p.sport = 0;
            s.p.dport = 0;
            fs.icmp_errors += 1;
            return Some(send(ctx, s, fs, core::ptr::null_mut()));
        }
        Found::Rewrite => {}
    }
    // Before the rewrite: a packet handed to the stack must be the one that came.
    let fs = frontend_stats(s.new.frontend)?;
    let ok = if v6 { write_v6(ctx, s) } else { write_v4(ctx, s) };
    if !ok {
        return Some(xdp_action::XDP_ABORTED);
    }
    fs.icmp_errors += 1;
    Some(send(ctx, s, fs, core::ptr::null_mut()))
}

/// ICMPv4 destination-unreachable or time-exceeded, quoting TCP or UDP.
#[inline(always)]
fn read_v4(ctx: &XdpContext, s: &mut Scratch) -> bool {
    // Outer IPv4 (no options), ICMP header, inner IPv4 (no options), 8 bytes of L4.
    let Some(h) = ptr_at::<[u8; 56]>(ctx, ETH) else {
        return false;
    };
    // SAFETY: bounds checked by ptr_at.
    let h = unsafe { &*h };
    let icmp_type = h[20];
    if h[0] != 0x45 || h[9] != IPPROTO_ICMP || (h[6] & 0x3f) != 0 || h[7] != 0 || (icmp_type != 3 && icmp_type != 11) {
        return false;
    }
    let inner = 28;
    if h[inner] != 0x45 || (h[inner + 9] != PROTO_TCP && h[inner + 9] != PROTO_UDP) {
        return false;
    }
    let o = &mut s.old;
    let a4 = |i: usize| [h[i], h[i + 1], h[i + 2], h[i + 3]];
    // SAFETY: fields of the scratch space (see `copy`).
    unsafe {
        copy::v4_addr(&mut o.outer_src, a4(12));
        copy::v4_addr(&mut o.outer_dst, a4(16));
        copy::v4_addr(&mut o.inner_src, a4(inner + 12));
        copy::v4_addr(&mut o.inner_dst, a4(inner + 16));
    }
    o.inner_sport = u16::from_ne_bytes([h[inner + 20], h[inner + 21]]);
    o.inner_dport = u16::from_ne_bytes([h[inner + 22], h[inner + 23]]);
    o.proto = h[inner + 9];
    o.frontend = 0;
    s.p.ip_len = u16::from_be_bytes([h[2], h[3]]);
    true
}

/// ICMPv6 destination-unreachable, packet-too-big or time-exceeded.
#[inline(always)]
fn read_v6(ctx: &XdpContext, s: &mut Scratch) -> bool {
    // Outer IPv6, ICMPv6 header, inner IPv6, 8 bytes of L4.
    let Some(h) = ptr_at::<[u8; 96]>(ctx, ETH) else {
        return false;
    };
    // SAFETY: bounds checked by ptr_at.
    let h = unsafe { &*h };
    let icmp_type = h[40];
    if h[6] != IPPROTO_ICMPV6 || !(1..=3).contains(&icmp_type) {
        return false;
    }
    let inner = 48;
    if h[inner + 6] != PROTO_TCP && h[inner + 6] != PROTO_UDP {
        return false;
    }
    let o = &mut s.old;
    copy::bytes::<16>(&mut o.outer_src, &h[8..]);
    copy::bytes::<16>(&mut o.outer_dst, &h[24..]);
    copy::bytes::<16>(&mut o.inner_src, &h[inner + 8..]);
    copy::bytes::<16>(&mut o.inner_dst, &h[inner + 24..]);
    o.inner_sport = u16::from_ne_bytes([h[inner + 40], h[inner + 41]]);
    o.inner_dport = u16::from_ne_bytes([h[inner + 42], h[inner + 43]]);
    o.proto = h[inner + 6];
    o.frontend = 0;
    s.p.ip_len = u16::from_be_bytes([h[4], h[5]]).saturating_add(40);
    true
}

/// Finds the flow the quoted packet belongs to and fills `s.new`.
#[inline(always)]
fn translate(s: &mut Scratch, family: u8) -> Found {
    // A packet we sent to a server: its reply entry is keyed the other way round.
    // SAFETY: fields of the scratch space or a map value (see `copy`).
    unsafe { copy::addr(&mut s.rkey.src, &s.old.inner_dst) };
    // SAFETY: fields of the scratch space or a map value (see `copy`).
    unsafe { copy::addr(&mut s.rkey.dst, &s.old.inner_src) };
    s.rkey.sport = s.old.inner_dport;
    s.rkey.dport = s.old.inner_sport;
    s.rkey.proto = s.old.proto;
    s.rkey.family = family;
    s.rkey.pad = [0; 2];
    // SAFETY: a map value we only read.
    if let Some(r) = unsafe { REPLIES.get(&s.rkey) } {
        // SAFETY: fields of the scratch space or a map value (see `copy`).
        unsafe { copy::addr(&mut s.new.outer_src, &r.vip) };
        // SAFETY: fields of the scratch space or a map value (see `copy`).
        unsafe { copy::addr(&mut s.new.outer_dst, &r.client) };
        // SAFETY: fields of the scratch space or a map value (see `copy`).
        unsafe { copy::addr(&mut s.new.inner_src, &r.client) };
        s.new.inner_sport = r.client_port;
        // SAFETY: fields of the scratch space or a map value (see `copy`).
        unsafe { copy::addr(&mut s.new.inner_dst, &r.vip) };
        s.new.inner_dport = r.vip_port;
        s.new.frontend = r.frontend;
        return Found::Rewrite;
    }
    // A packet we sent to a client: the client's flow entry, keyed as its packets come.
    // SAFETY: fields of the scratch space or a map value (see `copy`).
    unsafe { copy::addr(&mut s.key.src, &s.old.inner_dst) };
    // SAFETY: fields of the scratch space or a map value (see `copy`).
    unsafe { copy::addr(&mut s.key.dst, &s.old.inner_src) };
    s.key.sport = s.old.inner_dport;
    s.key.dport = s.old.inner_sport;
    s.key.proto = s.old.proto;
    s.key.family = family;
    s.key.pad = [0; 2];
    let fkey = FrontendKey {
        addr: s.old.inner_src,
        port: s.old.inner_sport,
        proto: s.old.proto,
        family,
    };
    // SAFETY: as above.
    let Some(f) = (unsafe { FLOWS.get(&s.key) }) else {
        return dsr_by_maglev(s, &fkey);
    };
    if f.flags & FLOW_DSR != 0 {
        s.new.server = f.server;
        s.new.frontend = f.frontend;
        return Found::AsIs;
    }
    let Some(server) = SERVERS.get(f.server) else {
        return Found::NotOurs;
    };
    // SAFETY: as above.
    let dnat = unsafe { FRONTENDS.get(&fkey) }.is_some_and(|fe| fe.flags & FRONTEND_DNAT != 0);
    // SAFETY: fields of the scratch space or a map value (see `copy`).
    unsafe { copy::addr(&mut s.new.outer_dst, &server.addr) };
    // SAFETY: fields of the scratch space or a map value (see `copy`).
    unsafe { copy::addr(&mut s.new.inner_src, &server.addr) };
    s.new.inner_sport = server.port;
    if dnat {
        // The server sent it to the client itself.
        // SAFETY: fields of the scratch space or a map value (see `copy`).
        unsafe { copy::addr(&mut s.new.outer_src, &s.old.outer_src) };
        // SAFETY: fields of the scratch space or a map value (see `copy`).
        unsafe { copy::addr(&mut s.new.inner_dst, &s.old.inner_dst) };
        s.new.inner_dport = s.old.inner_dport;
    } else {
        // SAFETY: fields of the scratch space or a map value (see `copy`).
        unsafe { copy::addr(&mut s.new.outer_src, &server.snat) };
        // SAFETY: fields of the scratch space or a map value (see `copy`).
        unsafe { copy::addr(&mut s.new.inner_dst, &server.snat) };
        s.new.inner_dport = f.nat_port;
    }
    s.new.frontend = f.frontend;
    Found::Rewrite
}

/// An error about a DSR frontend's flow this node has no entry for: the
/// flow's server is the one Maglev gives its client's 5-tuple (`s.key`).
#[inline(always)]
fn dsr_by_maglev(s: &mut Scratch, fkey: &FrontendKey) -> Found {
    // SAFETY: a map value we only read.
    let Some(fe) = (unsafe { FRONTENDS.get(fkey) }) else {
        return Found::NotOurs;
    };
    let Some(settings) = SETTINGS.get(0) else {
        return Found::NotOurs;
    };
    if fe.flags & FRONTEND_DSR == 0 {
        return Found::NotOurs;
    }
    match maglev_pick(fe.backend, flow_hash(&s.key), fkey.family, settings) {
        Some((id, _)) => {
            s.new.server = id;
            s.new.frontend = fe.id;
            Found::AsIs
        }
        None => Found::NotOurs,
    }
}

#[inline(always)]
fn v4(a: &[u8; 16]) -> [u8; 4] {
    [a[0], a[1], a[2], a[3]]
}

#[inline(always)]
fn write_v4(ctx: &XdpContext, s: &mut Scratch) -> bool {
    let Some(h) = ptr_at_mut::<[u8; 56]>(ctx, ETH) else {
        return false;
    };
    // SAFETY: bounds checked by ptr_at_mut.
    let h = unsafe { &mut *h };
    let (o, n) = (&s.old, &s.new);
    let inner = 28;
    // The inner header and its checksum.
    let old_inner_csum = u16::from_ne_bytes([h[inner + 10], h[inner + 11]]);
    let mut ic = old_inner_csum;
    ic = csum::replace_bytes(ic, &v4(&o.inner_src), &v4(&n.inner_src));
    ic = csum::replace_bytes(ic, &v4(&o.inner_dst), &v4(&n.inner_dst));
    h[inner + 12..inner + 16].copy_from_slice(&v4(&n.inner_src));
    h[inner + 16..inner + 20].copy_from_slice(&v4(&n.inner_dst));
    h[inner + 20..inner + 22].copy_from_slice(&n.inner_sport.to_ne_bytes());
    h[inner + 22..inner + 24].copy_from_slice(&n.inner_dport.to_ne_bytes());
    h[inner + 10..inner + 12].copy_from_slice(&ic.to_ne_bytes());
    // The ICMP checksum covers the quote: every changed word of it.
    let mut c = u16::from_ne_bytes([h[22], h[23]]);
    c = csum::replace_bytes(c, &v4(&o.inner_src), &v4(&n.inner_src));
    c = csum::replace_bytes(c, &v4(&o.inner_dst), &v4(&n.inner_dst));
    c = csum::replace16(c, o.inner_sport, n.inner_sport);
    c = csum::replace16(c, o.inner_dport, n.inner_dport);
    c = csum::replace16(c, old_inner_csum, ic);
    h[22..24].copy_from_slice(&c.to_ne_bytes());
    // The outer header.
    let mut oc = u16::from_ne_bytes([h[10], h[11]]);
    oc = csum::replace_bytes(oc, &v4(&o.outer_src), &v4(&n.outer_src));
    oc = csum::replace_bytes(oc, &v4(&o.outer_dst), &v4(&n.outer_dst));
    h[12..16].copy_from_slice(&v4(&n.outer_src));
    h[16..20].copy_from_slice(&v4(&n.outer_dst));
    h[10..12].copy_from_slice(&oc.to_ne_bytes());
    set_route(s, FAMILY_V4, IPPROTO_ICMP);
    true
}

#[inline(always)]
fn write_v6(ctx: &XdpContext, s: &mut Scratch) -> bool {
    let Some(h) = ptr_at_mut::<[u8; 96]>(ctx, ETH) else {
        return false;
    };
    // SAFETY: bounds checked by ptr_at_mut.
    let h = unsafe { &mut *h };
    let (o, n) = (&s.old, &s.new);
    let inner = 48;
    // ICMPv6's checksum covers a pseudo-header with the outer addresses too.
    let mut c = u16::from_ne_bytes([h[42], h[43]]);
    c = csum::replace_bytes(c, &o.outer_src, &n.outer_src);
    c = csum::replace_bytes(c, &o.outer_dst, &n.outer_dst);
    c = csum::replace_bytes(c, &o.inner_src, &n.inner_src);
    c = csum::replace_bytes(c, &o.inner_dst, &n.inner_dst);
    c = csum::replace16(c, o.inner_sport, n.inner_sport);
    c = csum::replace16(c, o.inner_dport, n.inner_dport);
    h[42..44].copy_from_slice(&c.to_ne_bytes());
    copy::bytes::<16>(&mut h[8..24], &n.outer_src);
    copy::bytes::<16>(&mut h[24..40], &n.outer_dst);
    copy::bytes::<16>(&mut h[inner + 8..inner + 24], &n.inner_src);
    copy::bytes::<16>(&mut h[inner + 24..inner + 40], &n.inner_dst);
    h[inner + 40..inner + 42].copy_from_slice(&n.inner_sport.to_ne_bytes());
    h[inner + 42..inner + 44].copy_from_slice(&n.inner_dport.to_ne_bytes());
    set_route(s, FAMILY_V6, IPPROTO_ICMPV6);
    true
}

/// What the FIB lookup needs of the rewritten packet.
#[inline(always)]
fn set_route(s: &mut Scratch, family: u8, proto: u8) {
    s.p.family = family;
    s.p.proto = proto;
    // SAFETY: fields of the scratch space or a map value (see `copy`).
    unsafe { copy::addr(&mut s.p.src, &s.new.outer_src) };
    // SAFETY: fields of the scratch space or a map value (see `copy`).
    unsafe { copy::addr(&mut s.p.dst, &s.new.outer_dst) };
    s.p.sport = 0;
    s.p.dport = 0;
}
