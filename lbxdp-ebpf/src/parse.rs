//! Header parsing with bounds checks the verifier can follow.
use aya_ebpf::programs::XdpContext;
use lbxdp_common::{FAMILY_V4, FAMILY_V6, PROTO_TCP, PROTO_UDP, Proto};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
};

use crate::copy;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ARP: u16 = 0x0806;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_DSTOPTS: u8 = 60;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// How many IPv6 extension headers we walk before giving up; the loop is
/// unrolled, so this bounds the verifier's work too.
const MAX_IPV6_EXT: usize = 4;

/// A TCP or UDP packet we can balance. Addresses and ports are as on the
/// wire (network order), like the map keys. It lives in a per-CPU scratch
/// map, not on the 512-byte stack.
#[repr(C)]
pub struct Packet {
    pub family: u8,
    pub proto: u8,
    pub l4_off: usize,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    /// IP total length, host order (for the FIB's MTU check).
    pub ip_len: u16,
}

/// What the parser made of a frame: the balancer looks only at `Balanceable`.
pub enum Parsed {
    /// The parser filled in the `Packet`.
    Balanceable,
    /// Not something we balance; the protocol counters still want to know what it was.
    Other(Proto, Option<Proto>),
}

#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

#[inline(always)]
pub fn ptr_at_mut<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    ptr_at::<T>(ctx, offset).map(|p| p as *mut T)
}

#[inline(always)]
pub fn parse(ctx: &XdpContext, out: &mut Packet) -> Parsed {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return Parsed::Other(Proto::Malformed, None);
    };
    // SAFETY: ptr_at checked that the whole header lies inside the packet.
    let ether_type = u16::from_be(unsafe { (*eth).ether_type });
    match ether_type {
        ETH_P_IP => ipv4(ctx, EthHdr::LEN, out),
        ETH_P_IPV6 => ipv6(ctx, EthHdr::LEN, out),
        ETH_P_ARP => Parsed::Other(Proto::Arp, None),
        _ => Parsed::Other(Proto::OtherL3, None),
    }
}

#[inline(always)]
fn ipv4(ctx: &XdpContext, off: usize, out: &mut Packet) -> Parsed {
    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, off) else {
        return Parsed::Other(Proto::Ipv4, Some(Proto::Malformed));
    };
    // SAFETY: bounds checked by ptr_at.
    let (vihl, proto, frags, tot_len, src, dst) = unsafe {
        (
            (*ip).vihl,
            (*ip).proto,
            (*ip).frags,
            (*ip).tot_len,
            (*ip).src_addr,
            (*ip).dst_addr,
        )
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || ihl < Ipv4Hdr::LEN || ctx.data() + off + ihl > ctx.data_end() {
        return Parsed::Other(Proto::Ipv4, Some(Proto::Malformed));
    }
    // Any fragment, first or not: ports are missing or can't be trusted to
    // match the rest, so the stack reassembles (counted as other_l4).
    if u16::from_be_bytes(frags) & 0x3fff != 0 {
        return Parsed::Other(Proto::Ipv4, Some(Proto::OtherL4));
    }
    // SAFETY: fields of a `Packet` (see `copy`).
    unsafe {
        copy::v4_addr(&mut out.src, src);
        copy::v4_addr(&mut out.dst, dst);
    }
    out.family = FAMILY_V4;
    out.ip_len = u16::from_be_bytes(tot_len);
    l4(ctx, proto, off + ihl, out)
}

#[inline(always)]
fn ipv6(ctx: &XdpContext, off: usize, out: &mut Packet) -> Parsed {
    let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, off) else {
        return Parsed::Other(Proto::Ipv6, Some(Proto::Malformed));
    };
    // SAFETY: bounds checked by ptr_at.
    let (next, payload_len) = unsafe { ((*ip).next_hdr, (*ip).payload_len) };
    if next == PROTO_TCP || next == PROTO_UDP {
        // SAFETY: bounds checked by ptr_at.
        unsafe {
            copy::bytes::<16>(&mut out.src, &(*ip).src_addr);
            copy::bytes::<16>(&mut out.dst, &(*ip).dst_addr);
        }
        out.family = FAMILY_V6;
        out.ip_len = u16::from_be_bytes(payload_len).saturating_add(Ipv6Hdr::LEN as u16);
        return l4(ctx, next, off + Ipv6Hdr::LEN, out);
    }
    // Extension headers: walked for the counters only; we don't rewrite
    // packets that carry them, the stack gets them.
    let mut next = next;
    let mut off = off + Ipv6Hdr::LEN;
    for _ in 0..MAX_IPV6_EXT {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let Some(ext) = ptr_at::<[u8; 2]>(ctx, off) else {
                    return Parsed::Other(Proto::Ipv6, Some(Proto::Malformed));
                };
                // SAFETY: bounds checked by ptr_at.
                let [nh, len] = unsafe { *ext };
                next = nh;
                off += (usize::from(len) + 1) * 8;
            }
            IPPROTO_FRAGMENT => {
                let Some(ext) = ptr_at::<[u8; 2]>(ctx, off) else {
                    return Parsed::Other(Proto::Ipv6, Some(Proto::Malformed));
                };
                // SAFETY: bounds checked by ptr_at.
                next = unsafe { (*ext)[0] };
                off += 8;
            }
            _ => return Parsed::Other(Proto::Ipv6, Some(l4_proto(next))),
        }
    }
    Parsed::Other(Proto::Ipv6, Some(Proto::OtherL4))
}

#[inline(always)]
fn l4(ctx: &XdpContext, proto: u8, l4_off: usize, out: &mut Packet) -> Parsed {
    let l3 = if out.family == FAMILY_V4 {
        Proto::Ipv4
    } else {
        Proto::Ipv6
    };
    let (sport, dport, tcp_flags) = match proto {
        PROTO_TCP => {
            // Ports, then the flags byte at offset 13 of a 20-byte header.
            let Some(h) = ptr_at::<[u8; 20]>(ctx, l4_off) else {
                return Parsed::Other(l3, Some(Proto::Malformed));
            };
            // SAFETY: bounds checked by ptr_at.
            let h = unsafe { &*h };
            (
                u16::from_ne_bytes([h[0], h[1]]),
                u16::from_ne_bytes([h[2], h[3]]),
                h[13],
            )
        }
        PROTO_UDP => {
            let Some(h) = ptr_at::<[u8; 8]>(ctx, l4_off) else {
                return Parsed::Other(l3, Some(Proto::Malformed));
            };
            // SAFETY: bounds checked by ptr_at.
            let h = unsafe { &*h };
            (u16::from_ne_bytes([h[0], h[1]]), u16::from_ne_bytes([h[2], h[3]]), 0)
        }
        other => return Parsed::Other(l3, Some(l4_proto(other))),
    };
    out.proto = proto;
    out.l4_off = l4_off;
    out.sport = sport;
    out.dport = dport;
    out.tcp_flags = tcp_flags;
    Parsed::Balanceable
}

#[inline(always)]
pub fn l4_proto(proto: u8) -> Proto {
    match proto {
        PROTO_TCP => Proto::Tcp,
        PROTO_UDP => Proto::Udp,
        IPPROTO_ICMP => Proto::Icmp,
        IPPROTO_ICMPV6 => Proto::Icmpv6,
        _ => Proto::OtherL4,
    }
}
