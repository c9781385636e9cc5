//! Address and port rewriting with incremental checksum updates.
use aya_ebpf::programs::XdpContext;
use lbxdp_common::{FAMILY_V4, PROTO_UDP};

use crate::{
    copy, csum,
    parse::{Packet, ptr_at_mut},
};

const ETH_LEN: usize = 14;

/// The new source and destination of a packet.
#[repr(C, align(4))]
pub struct Rewrite {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
}

/// Rewrites addresses and ports in place; `p` is updated to match. Returns
/// false if the packet turned out too short (it was parsed, so that would be
/// a bug, and the caller aborts).
#[inline(never)]
pub fn rewrite(ctx: &XdpContext, p: &mut Packet, rw: &Rewrite) -> bool {
    // The offset came back from a map, where the verifier forgets its range: bound it again.
    let l4_off = p.l4_off & 0xff;
    let csum_off = if p.proto == PROTO_UDP { l4_off + 6 } else { l4_off + 16 };
    let Some(l4_csum) = ptr_at_mut::<[u8; 2]>(ctx, csum_off) else {
        return false;
    };
    let Some(ports) = ptr_at_mut::<[u16; 2]>(ctx, l4_off) else {
        return false;
    };
    // SAFETY: every pointer here was bounds-checked by ptr_at_mut.
    unsafe {
        let old_csum = u16::from_ne_bytes(*l4_csum);
        // An IPv4 UDP checksum of 0 means "none": keep it that way.
        let update_l4 = !(p.proto == PROTO_UDP && p.family == FAMILY_V4 && old_csum == 0);
        let mut c = old_csum;
        c = csum::replace16(c, p.sport, rw.sport);
        c = csum::replace16(c, p.dport, rw.dport);
        (*ports)[0] = rw.sport;
        (*ports)[1] = rw.dport;

        if p.family == FAMILY_V4 {
            let Some(ip) = ptr_at_mut::<[u8; 20]>(ctx, ETH_LEN) else {
                return false;
            };
            let ip = &mut *ip;
            let old_src = [p.src[0], p.src[1], p.src[2], p.src[3]];
            let old_dst = [p.dst[0], p.dst[1], p.dst[2], p.dst[3]];
            let new_src = [rw.src[0], rw.src[1], rw.src[2], rw.src[3]];
            let new_dst = [rw.dst[0], rw.dst[1], rw.dst[2], rw.dst[3]];
            let mut ipc = u16::from_ne_bytes([ip[10], ip[11]]);
            ipc = csum::replace_bytes(ipc, &old_src, &new_src);
            ipc = csum::replace_bytes(ipc, &old_dst, &new_dst);
            c = csum::replace_bytes(c, &old_src, &new_src);
            c = csum::replace_bytes(c, &old_dst, &new_dst);
            let ipc = ipc.to_ne_bytes();
            ip[10] = ipc[0];
            ip[11] = ipc[1];
            copy::bytes::<4>(&mut ip[12..16], &new_src);
            copy::bytes::<4>(&mut ip[16..20], &new_dst);
        } else {
            let Some(ip) = ptr_at_mut::<[u8; 40]>(ctx, ETH_LEN) else {
                return false;
            };
            let ip = &mut *ip;
            c = csum::replace_bytes(c, &p.src, &rw.src);
            c = csum::replace_bytes(c, &p.dst, &rw.dst);
            copy::bytes::<16>(&mut ip[8..24], &rw.src);
            copy::bytes::<16>(&mut ip[24..40], &rw.dst);
        }
        if update_l4 {
            // In UDP a computed 0 is sent as all ones (RFC 768).
            if p.proto == PROTO_UDP && c == 0 {
                c = 0xffff;
            }
            *l4_csum = c.to_ne_bytes();
        }
    }
    // SAFETY: fields of the scratch space (see `copy`).
    unsafe {
        copy::addr(&mut p.src, &rw.src);
        copy::addr(&mut p.dst, &rw.dst);
    }
    p.sport = rw.sport;
    p.dport = rw.dport;
    true
}
