//! Forwarding: the kernel's FIB gives the next hop and both MACs; the packet
//! leaves by XDP_TX on the interface it came in on, or by the devmap.
use aya_ebpf::{
    bindings::{bpf_fib_lookup, xdp_action},
    helpers::bpf_fib_lookup as fib_lookup,
    programs::XdpContext,
};
use network_types::eth::EthHdr;

use crate::{TX_PORTS, copy, parse::Packet};

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
/// is scratch space: the query is built there, not on the stack.
#[inline(never)]
pub fn forward(ctx: &XdpContext, p: &Packet, params: &mut bpf_fib_lookup) -> Verdict {
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
    // SAFETY: as above.
    if params.ifindex == unsafe { (*ctx.ctx).ingress_ifindex } {
        return Verdict::Action(xdp_action::XDP_TX);
    }
    match TX_PORTS.redirect(params.ifindex, 0) {
        Ok(a) => Verdict::Action(a),
        Err(_) => Verdict::Pass,
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
