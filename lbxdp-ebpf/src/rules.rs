//! A frontend's connection rules (`lbxdp_common::Rules`, compiled by the
//! agent from `tcp-request connection` and `use_backend`), decided on a new
//! flow's first packet, and the RST that `reject` answers a SYN with.
use core::ptr::write_volatile;

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_xdp_adjust_tail,
    macros::map,
    maps::{Array, LpmTrie, lpm_trie::Key},
    programs::XdpContext,
};
use lbxdp_common::{
    DEFAULT_MAX_FRONTENDS, DEFAULT_MAX_NETS, EXPR_ALWAYS, EXPR_DST_NET, EXPR_DST_PORT, EXPR_SRC_NET, EXPR_SRC_PORT,
    FAMILY_V4, MAX_RULE_ACLS, MAX_RULE_EXPRS, MAX_RULE_SUITES, MAX_RULES, MAX_STICK_TABLES, NET_SET_BITS, NetKey,
    RULE_ACCEPT, RULE_INC_GPC0, RULE_REJECT, RULE_SILENT_DROP, RULE_TRACK, RULE_USE_BACKEND, Rule, RuleExpr,
    STICK_SLOTS,
};
use network_types::eth::EthHdr;

use crate::{Scratch, copy, csum::fold, parse::ptr_at_mut, stick};

#[map(name = "RULES")]
static RULES: Array<lbxdp_common::Rules> = Array::with_max_entries(DEFAULT_MAX_FRONTENDS, 0);
/// Every frontend's address lists, one LPM trie keyed by (set, address).
#[map(name = "NETS")]
static NETS: LpmTrie<NetKey, u8> = LpmTrie::with_max_entries(DEFAULT_MAX_NETS, 0);

/// What `decide` says, packed into one register: a `RULE_*` action in the
/// low byte, the `BACKENDS` index for `RULE_USE_BACKEND` above.
#[inline(always)]
pub fn action(v: u64) -> u8 {
    v as u8
}

#[inline(always)]
pub fn backend(v: u64) -> u32 {
    (v >> 32) as u32
}

/// The LPM key of a packet's address in `NETS` (see `NetKey`).
pub type NetLookup = Key<NetKey>;

/// The frontend's rules on this packet (a new flow's first, in `s.key`):
/// the first `tcp-request connection` rule that applies decides (none:
/// accept), `track-sc` and `sc-inc-gpc0` rules on the way count and go on;
/// then the first `use_backend` rule that applies picks the backend (none:
/// the frontend's own, `RULE_ACCEPT`). `count`: a SYN retransmit tracks
/// without counting again. The tables tracked are left in `s.tracked`.
#[inline(never)]
pub fn decide(s: &mut Scratch, frontend: u32, count: bool, now_ms: u32) -> u64 {
    let Some(r) = RULES.get(frontend) else {
        return u64::from(RULE_ACCEPT);
    };
    // The expressions that don't read stick counters, once; those that do
    // read a cache (`stick::Values`) that tracking fills, so the verifier
    // sees no map lookup in the loops below.
    let mut fixed = 0u32;
    for (i, e) in r.expr.iter().enumerate() {
        if i as u32 >= r.exprs {
            break;
        }
        if r.stick & (1 << i) == 0 && expr(s, e) {
            fixed |= 1 << i;
        }
    }
    if r.stick != 0 {
        stick::start(s, r, now_ms);
    }
    let fixed = launder(s, fixed);
    let mut acls = acls_now(s, r, fixed);
    let v6 = s.p.family != FAMILY_V4;
    // An accepting rule ends the connection rules, not the `use_backend` ones.
    let mut accepted = false;
    for (i, rule) in r.rule.iter().enumerate() {
        let i = i as u32;
        if i >= r.rules {
            break;
        }
        if (i < r.tcp && accepted) || !holds(rule, acls) {
            continue;
        }
        if i < r.tcp {
            let slot = usize::from(rule.pad) & 3;
            match rule.action {
                RULE_REJECT | RULE_SILENT_DROP => return u64::from(rule.action),
                RULE_TRACK | RULE_INC_GPC0 if slot < STICK_SLOTS => {
                    if rule.action == RULE_INC_GPC0 {
                        if s.tracked[slot] != 0 {
                            stick::inc_gpc0(s, u32::from(s.tracked[slot]) - 1, now_ms);
                        }
                    } else if s.tracked[slot] == 0 {
                        let table = rule.backend[0];
                        if table < MAX_STICK_TABLES && stick::track(s, table, count, now_ms) {
                            s.tracked[slot] = (table + 1) as u8;
                        }
                    }
                    stick::values(s, slot, now_ms);
                    acls = launder(s, lbxdp_acls(s, r, fixed));
                }
                RULE_ACCEPT => accepted = true,
                _ => {}
            }
        } else if rule.action == RULE_USE_BACKEND {
            let be = if v6 { rule.backend[1] } else { rule.backend[0] };
            return (u64::from(be) << 32) | u64::from(RULE_USE_BACKEND);
        }
    }
    u64::from(RULE_ACCEPT)
}

/// The ACLs that hold now: the fixed expressions' and the stick counters'.
#[inline(always)]
fn acls_now(s: &mut Scratch, r: &lbxdp_common::Rules, fixed: u32) -> u32 {
    let acls = lbxdp_acls(s, r, fixed);
    launder(s, acls)
}

/// The ACLs that hold, given the fixed expressions' truth: a global
/// function (not `static`), which the verifier checks once on its own
/// rather than at each of the up to 16 places the rules call it. It only
/// reads memory, as such a function must.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn lbxdp_acls(s: *const Scratch, r: *const lbxdp_common::Rules, fixed: u32) -> u32 {
    if s.is_null() || r.is_null() {
        return 0;
    }
    // SAFETY: the callers pass the scratch space and a RULES value.
    let (s, r) = unsafe { (&*s, &*r) };
    let stick = if r.stick == 0 { 0 } else { stick_truth(s, r) };
    acl_bits(r, fixed | stick)
}

/// `v`, by way of the scratch space, where the verifier stops knowing it.
/// Bit masks built by branches are exact constants on each path it walks,
/// and a branch they decide would make it tell those paths apart, one per
/// combination of bits, which is more paths than it allows. Read back from
/// memory, a mask is just some value, and the paths merge.
#[inline(always)]
fn launder(s: &mut Scratch, v: u32) -> u32 {
    // SAFETY: a field of the scratch space.
    unsafe {
        write_volatile(&mut s.launder, v);
        core::ptr::read_volatile(&s.launder)
    }
}

#[inline(always)]
fn acl_bits(r: &lbxdp_common::Rules, truth: u32) -> u32 {
    let mut acls = 0u32;
    for (i, mask) in r.acl.iter().enumerate() {
        if i as u32 >= r.acls {
            break;
        }
        if truth & mask != 0 {
            acls |= 1 << i;
        }
    }
    acls
}

/// A condition: any suite whose ACLs all hold (or don't, negated); inverted by `unless`.
#[inline(always)]
fn holds(rule: &Rule, acls: u32) -> bool {
    let mut met = false;
    for (i, suite) in rule.suite.iter().enumerate() {
        if i >= MAX_RULE_SUITES || i >= usize::from(rule.suites) {
            break;
        }
        if acls & suite.pos == suite.pos && acls & suite.neg == 0 {
            met = true;
        }
    }
    met != (rule.unless != 0)
}

#[inline(always)]
fn expr(s: &mut Scratch, e: &RuleExpr) -> bool {
    match e.kind {
        EXPR_ALWAYS => true,
        EXPR_SRC_NET => in_set(s, e.set, true),
        EXPR_DST_NET => in_set(s, e.set, false),
        EXPR_SRC_PORT => in_range(s.p.sport, e),
        EXPR_DST_PORT => in_range(s.p.dport, e),
        _ => false,
    }
}

/// The stick counter expressions that hold now (bits of `r.expr`), from
/// the cache: a failed fetch never matches.
#[inline(always)]
fn stick_truth(s: &Scratch, r: &lbxdp_common::Rules) -> u32 {
    let mut truth = 0u32;
    for (i, e) in r.expr.iter().enumerate() {
        if i as u32 >= r.exprs {
            break;
        }
        if r.stick & (1 << i) == 0 {
            continue;
        }
        let v = stick::cached(s, i, e);
        if v != stick::FAILED && v >= u64::from(e.low) && v <= u64::from(e.high) {
            truth |= 1 << i;
        }
    }
    truth
}

#[inline(always)]
fn in_range(port: u16, e: &RuleExpr) -> bool {
    let p = u32::from(u16::from_be(port));
    p >= e.low && p <= e.high
}

/// Whether the packet's source (or destination) is in address set `set`.
#[inline(never)]
fn in_set(s: &mut Scratch, set: u32, src: bool) -> bool {
    let k = &mut s.nkey;
    k.prefix_len = NET_SET_BITS + 128;
    let a = if src { &s.p.src } else { &s.p.dst };
    k.data.set = set.to_be_bytes();
    let out = &mut k.data.addr;
    if s.p.family == FAMILY_V4 {
        // ::ffff:a.b.c.d, as the agent writes IPv4 networks.
        let mut i = 0;
        while i < 10 {
            // SAFETY: in bounds (i < 10 < 16).
            unsafe { write_volatile(out.as_mut_ptr().add(i), 0) };
            i += 1;
        }
        // SAFETY: as above.
        unsafe {
            write_volatile(out.as_mut_ptr().add(10), 0xff);
            write_volatile(out.as_mut_ptr().add(11), 0xff);
        }
        copy::bytes::<4>(&mut out[12..], &a[..4]);
    } else {
        copy::bytes::<16>(out, a);
    }
    NETS.get(&s.nkey).is_some()
}

const TCP_RST_ACK: u8 = 0x14;

/// Turns a client's SYN into the RST that refuses it (RFC 9293: sequence 0,
/// acknowledging the SYN and its data) and sends it back out of the
/// interface it came in on, to the hop it came from. An IPv4 header with
/// options is dropped instead: a reject with no answer is still a reject.
#[inline(never)]
pub fn reset(ctx: &XdpContext, s: &mut Scratch) -> u32 {
    let l4 = s.p.l4_off & 0xff;
    let v4 = s.p.family == FAMILY_V4;
    if v4 && l4 != EthHdr::LEN + 20 {
        return xdp_action::XDP_DROP;
    }
    let Some(tcp) = ptr_at_mut::<[u8; 20]>(ctx, l4) else {
        return xdp_action::XDP_DROP;
    };
    // SAFETY: bounds checked by ptr_at_mut.
    let (seq, doff) = unsafe {
        let t = &*tcp;
        (u32::from_be_bytes([t[4], t[5], t[6], t[7]]), u32::from(t[12] >> 4) * 4)
    };
    let l3_len = if v4 { 20 } else { 40 };
    let payload = u32::from(s.p.ip_len).saturating_sub(l3_len + doff);
    let ack = seq.wrapping_add(1).wrapping_add(payload);
    // Down to Ethernet, IP and a bare TCP header: the SYN's options and any
    // data (or padding) go.
    let have = (ctx.data_end() - ctx.data()) as i32;
    let want = (l4 + 20) as i32;
    // SAFETY: a helper on this program's own packet; it only shrinks it.
    if have > want && unsafe { bpf_xdp_adjust_tail(ctx.ctx, want - have) } != 0 {
        return xdp_action::XDP_DROP;
    }
    let Some(eth) = ptr_at_mut::<[u8; 12]>(ctx, 0) else {
        return xdp_action::XDP_DROP;
    };
    let Some(tcp) = ptr_at_mut::<[u8; 20]>(ctx, l4) else {
        return xdp_action::XDP_DROP;
    };
    // SAFETY: every pointer here was bounds-checked by ptr_at_mut, after the
    // packet was shrunk.
    unsafe {
        let eth = &mut *eth;
        let mut i = 0;
        while i < 6 {
            eth.swap(i, i + 6);
            i += 1;
        }
        let mut sum = 0u32;
        if v4 {
            let Some(ip) = ptr_at_mut::<[u8; 20]>(ctx, EthHdr::LEN) else {
                return xdp_action::XDP_DROP;
            };
            let ip = &mut *ip;
            swap_addrs::<4>(ip, 12, 16);
            ip[2..4].copy_from_slice(&40u16.to_be_bytes());
            // A new datagram: no id, don't fragment, a fresh TTL.
            ip[4] = 0;
            ip[5] = 0;
            ip[6] = 0x40;
            ip[7] = 0;
            ip[8] = 64;
            ip[10] = 0;
            ip[11] = 0;
            let c = !fold(add_words(0, &ip[..]));
            ip[10..12].copy_from_slice(&c.to_ne_bytes());
            sum = add_words(sum, &ip[12..20]);
        } else {
            let Some(ip) = ptr_at_mut::<[u8; 40]>(ctx, EthHdr::LEN) else {
                return xdp_action::XDP_DROP;
            };
            let ip = &mut *ip;
            swap_addrs::<16>(ip, 8, 24);
            ip[4..6].copy_from_slice(&20u16.to_be_bytes());
            ip[7] = 64;
            sum = add_words(sum, &ip[8..40]);
        }
        // The pseudo header's protocol and TCP length.
        sum += u32::from(u16::from_ne_bytes([0, 6])) + u32::from(u16::from_ne_bytes([0, 20]));
        let t = &mut *tcp;
        t.swap(0, 2);
        t.swap(1, 3);
        zero(&mut t[4..8]);
        t[8..12].copy_from_slice(&ack.to_be_bytes());
        t[12] = 0x50;
        t[13] = TCP_RST_ACK;
        zero(&mut t[14..20]);
        let c = !fold(add_words(sum, &t[..]));
        t[16..18].copy_from_slice(&c.to_ne_bytes());
    }
    xdp_action::XDP_TX
}

/// Clears bytes one at a time: LLVM makes a `memset` call of a plain
/// fill, which the BPF backend leaves as a slow loop (see `copy`).
#[inline(always)]
fn zero(b: &mut [u8]) {
    let mut i = 0;
    while i < b.len() {
        // SAFETY: in bounds (checked by the loop).
        unsafe { write_volatile(b.as_mut_ptr().add(i), 0) };
        i += 1;
    }
}

#[inline(always)]
fn swap_addrs<const N: usize>(h: &mut [u8], a: usize, b: usize) {
    let mut i = 0;
    while i < N && a + i < h.len() && b + i < h.len() {
        h.swap(a + i, b + i);
        i += 1;
    }
}

/// Adds `b`'s 16-bit words (memory order, see `csum`) to a ones'-complement sum.
#[inline(always)]
fn add_words(mut sum: u32, b: &[u8]) -> u32 {
    let mut i = 0;
    while i + 1 < b.len() {
        sum += u32::from(u16::from_ne_bytes([b[i], b[i + 1]]));
        i += 2;
    }
    sum
}

const _: () = {
    assert!(MAX_RULE_EXPRS <= 32 && MAX_RULE_ACLS <= 32 && MAX_RULES <= 32);
};
