//! Forwarding: the kernel's FIB gives the next hop and both MACs; the packet
//! leaves by XDP_TX on the interface it came in on, or by the devmap.
//!
//! A flow keeps the answer (`NextHop`) for its next packets: the lookup was
//! a fifth of an established flow's cost. The cache holds while `FIB_GEN`
//! stays the same; the agent bumps it when routes, neighbours, links or
//! addresses change, so a changed MAC or route is seen within the time a
//! netlink notification takes, and within a second at worst.
use aya_ebpf::{
    bindings::{bpf_fib_lookup, xdp_action},
    helpers::bpf_fib_lookup as fib_lookup,
    programs::XdpContext,
};
use network_types::eth::EthHdr;

use core::ptr::{read_volatile, write_volatile};

use lbxdp_common::NextHop;

use crate::{FIB_GEN, TX_PORTS, copy, parse::Packet};

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const BPF_FIB_LKUP_RET_SUCCESS: i64 = 0;
const BPF_FIB_LKUP_RET_NO_NEIGH: i64 = 7;
const BPF_FIB_LKUP_RET_FRAG_NEEDED: i64 = 8;

pub enum Verdict {
    Action(u32),
    NoNeighbour,
    /// Larger than the outgoing interface's MTU.
    TooBig,
    /// No route (or forwarding is off): the stack decides.
    Pass,
}

/// Routes the (already rewritten) packet to its new destination. `params`
/// is scratch space: the query is built there, not on the stack. `nh` is
/// the flow's next-hop cache in its map entry, or null for a packet
/// without one (a flow's first, an ICMP error).
#[inline(never)]
pub fn forward(ctx: &XdpContext, p: &Packet, params: &mut bpf_fib_lookup, nh: *mut NextHop) -> Verdict {
    let generation = FIB_GEN.get(0).copied().unwrap_or(0);
    if !nh.is_null() && generation != 0 {
        // SAFETY: a value of a flow map, live for this run of the program.
        if let Some(v) = cached(ctx, unsafe { &*nh }, generation, p.ip_len) {
            return v;
        }
    }
    // SAFETY: bpf_fib_lookup is plain old data of u32-aligned fields, a
    // multiple of 4 long (asserted below); all-zero is its documented initial state.
    unsafe { copy::clear_words(params) };
    params.l4_protocol = p.proto;
    params.sport = p.sport;
    params.dport = p.dport;
    params.__bindgen_anon_1.tot_len = p.ip_len;
    // SAFETY: reading the ingress ifindex from the context the kernel gave us.
    params.ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    if p.family == lbxdp_common::FAMILY_V4 {
        params.family = AF_INET;
        params.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes([p.src[0], p.src[1], p.src[2], p.src[3]]);
        params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes([p.dst[0], p.dst[1], p.dst[2], p.dst[3]]);
    } else {
        params.family = AF_INET6;
        params.__bindgen_anon_3.ipv6_src = words(&p.src);
        params.__bindgen_anon_4.ipv6_dst = words(&p.dst);
    }
    let size = core::mem::size_of::<bpf_fib_lookup>() as i32;
    // SAFETY: ctx.ctx is the live xdp_md and params a stack struct of the size we pass.
    let rc = unsafe { fib_lookup(ctx.ctx as *mut _, params, size, 0) };
    match rc {
        BPF_FIB_LKUP_RET_SUCCESS => {}
        BPF_FIB_LKUP_RET_NO_NEIGH => return Verdict::NoNeighbour,
        BPF_FIB_LKUP_RET_FRAG_NEEDED => return Verdict::TooBig,
        _ => return Verdict::Pass,
    }
    let Some(eth) = crate::parse::ptr_at_mut::<EthHdr>(ctx, 0) else {
        return Verdict::Action(xdp_action::XDP_ABORTED);
    };
    // SAFETY: bounds checked by ptr_at_mut.
    unsafe {
        copy::bytes::<6>(&mut (*eth).dst_addr, &params.dmac);
        copy::bytes::<6>(&mut (*eth).src_addr, &params.smac);
    }
    if !nh.is_null() && generation != 0 {
        // SAFETY: as above.
        keep(unsafe { &mut *nh }, params, generation, p.ip_len);
    }
    out(ctx, params.ifindex)
}

/// XDP_TX back out of the interface the packet came in on, else the devmap.
#[inline(always)]
fn out(ctx: &XdpContext, ifindex: u32) -> Verdict {
    // SAFETY: reading the ingress ifindex from the context the kernel gave us.
    if ifindex == unsafe { (*ctx.ctx).ingress_ifindex } {
        return Verdict::Action(xdp_action::XDP_TX);
    }
    match TX_PORTS.redirect(ifindex, 0) {
        Ok(a) => Verdict::Action(a),
        Err(_) => Verdict::Pass,
    }
}

/// The flow's cached next hop, if it is of this generation and has passed
/// a packet this long; the MACs are written into the frame. Two CPUs may
/// write one entry's cache at once (a flow's packets are spread): `generation` is
/// read before and after the rest, and a writer zeroes it first, so a
/// half-written cache is never used.
#[inline(always)]
fn cached(ctx: &XdpContext, c: &NextHop, generation: u32, len: u16) -> Option<Verdict> {
    // SAFETY: reads of plain fields of a map value (see above for why volatile).
    let (ifindex, max_len) = unsafe {
        if read_volatile(&c.generation) != generation {
            return None;
        }
        (read_volatile(&c.ifindex), read_volatile(&c.max_len))
    };
    if len > max_len {
        return None;
    }
    let eth = crate::parse::ptr_at_mut::<EthHdr>(ctx, 0)?;
    // SAFETY: bounds checked by ptr_at_mut; the cache as above.
    unsafe {
        copy::bytes::<6>(&mut (*eth).dst_addr, &c.dmac);
        copy::bytes::<6>(&mut (*eth).src_addr, &c.smac);
        if read_volatile(&c.generation) != generation {
            // Rewritten meanwhile: the full lookup writes the MACs again.
            return None;
        }
    }
    Some(out(ctx, ifindex))
}

/// Keeps a successful lookup's answer in the flow's cache.
#[inline(always)]
fn keep(c: &mut NextHop, params: &bpf_fib_lookup, generation: u32, len: u16) {
    // SAFETY: writes of plain fields of a map value, `generation` last (see `cached`).
    unsafe {
        let was = read_volatile(&c.generation);
        let max_len = if was == generation {
            read_volatile(&c.max_len).max(len)
        } else {
            len
        };
        write_volatile(&mut c.generation, 0);
        write_volatile(&mut c.ifindex, params.ifindex);
        write_volatile(&mut c.max_len, max_len);
        copy::bytes::<6>(&mut c.smac, &params.smac);
        copy::bytes::<6>(&mut c.dmac, &params.dmac);
        write_volatile(&mut c.generation, generation);
    }
}

#[inline(always)]
fn words(a: &[u8; 16]) -> [u32; 4] {
    [
        u32::from_ne_bytes([a[0], a[1], a[2], a[3]]),
        u32::from_ne_bytes([a[4], a[5], a[6], a[7]]),
        u32::from_ne_bytes([a[8], a[9], a[10], a[11]]),
        u32::from_ne_bytes([a[12], a[13], a[14], a[15]]),
    ]
}

const _: () = {
    assert!(core::mem::align_of::<bpf_fib_lookup>() >= 4);
    assert!(core::mem::size_of::<bpf_fib_lookup>() % 4 == 0);
};
