//! The lbxdp XDP program.
//!
//! First stage: parse Ethernet, IPv4 and IPv6 (with its extension headers) with
//! bounds checks the verifier can follow, count packets and bytes per protocol
//! in a per-CPU array, and pass everything on. The balancer builds on this parser.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::PerCpuArray,
    programs::XdpContext,
};
use aya_log_ebpf::debug;
use lbxdp_common::{Proto, ProtoStats};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
};

#[map(name = "PROTO_STATS")]
static PROTO_STATS: PerCpuArray<ProtoStats> = PerCpuArray::with_max_entries(Proto::COUNT, 0);

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ARP: u16 = 0x0806;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_DSTOPTS: u8 = 60;

/// How many IPv6 extension headers we walk before giving up; the loop is
/// unrolled, so this bounds the verifier's work too.
const MAX_IPV6_EXT: usize = 4;

#[xdp]
pub fn lbxdp(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let (l3, l4) = classify(&ctx);
    count(l3, len);
    if let Some(l4) = l4 {
        count(l4, len);
    }
    debug!(&ctx, "len {} {} {}", len, l3.name(), l4.map_or("-", |p| p.name()));
    xdp_action::XDP_PASS
}

#[inline(always)]
fn count(proto: Proto, len: u64) {
    if let Some(s) = PROTO_STATS.get_ptr_mut(proto as u32) {
        // SAFETY: the pointer is this CPU's slot of a per-CPU array; XDP runs
        // with preemption off, so nothing else writes it while we do.
        unsafe {
            (*s).packets += 1;
            (*s).bytes += len;
        }
    }
}

/// A pointer to a `T` at `offset` in the packet, or `None` if the packet is too short.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

/// The L3 and, where there is one we parse, the L4 protocol of the packet.
#[inline(always)]
fn classify(ctx: &XdpContext) -> (Proto, Option<Proto>) {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return (Proto::Malformed, None);
    };
    // SAFETY: ptr_at checked that the whole header lies inside the packet.
    let ether_type = u16::from_be(unsafe { (*eth).ether_type });
    match ether_type {
        ETH_P_IP => (Proto::Ipv4, Some(ipv4_l4(ctx, EthHdr::LEN))),
        ETH_P_IPV6 => (Proto::Ipv6, Some(ipv6_l4(ctx, EthHdr::LEN))),
        ETH_P_ARP => (Proto::Arp, None),
        _ => (Proto::OtherL3, None),
    }
}

#[inline(always)]
fn ipv4_l4(ctx: &XdpContext, off: usize) -> Proto {
    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, off) else {
        return Proto::Malformed;
    };
    // SAFETY: bounds checked by ptr_at.
    let (vihl, proto) = unsafe { ((*ip).vihl, (*ip).proto) };
    let ihl = usize::from(vihl & 0x0f) * 4;
    if ihl < Ipv4Hdr::LEN || ctx.data() + off + ihl > ctx.data_end() {
        return Proto::Malformed;
    }
    l4_proto(proto)
}

#[inline(always)]
fn ipv6_l4(ctx: &XdpContext, off: usize) -> Proto {
    let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, off) else {
        return Proto::Malformed;
    };
    // SAFETY: bounds checked by ptr_at.
    let mut next = unsafe { (*ip).next_hdr };
    let mut off = off + Ipv6Hdr::LEN;
    for _ in 0..MAX_IPV6_EXT {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                // Next header, then the length in 8-octet units not counting the first 8.
                let Some(ext) = ptr_at::<[u8; 2]>(ctx, off) else {
                    return Proto::Malformed;
                };
                // SAFETY: bounds checked by ptr_at.
                let [nh, len] = unsafe { *ext };
                next = nh;
                off += (usize::from(len) + 1) * 8;
            }
            IPPROTO_FRAGMENT => {
                let Some(ext) = ptr_at::<[u8; 2]>(ctx, off) else {
                    return Proto::Malformed;
                };
                // SAFETY: bounds checked by ptr_at.
                next = unsafe { (*ext)[0] };
                off += 8;
            }
            _ => return l4_proto(next),
        }
    }
    Proto::OtherL4
}

#[inline(always)]
fn l4_proto(proto: u8) -> Proto {
    match proto {
        IPPROTO_TCP => Proto::Tcp,
        IPPROTO_UDP => Proto::Udp,
        IPPROTO_ICMP => Proto::Icmp,
        IPPROTO_ICMPV6 => Proto::Icmpv6,
        _ => Proto::OtherL4,
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
