//! Copies and clears of addresses a word at a time.
//!
//! Plain array copies don't stay plain in this program: LLVM turns chains
//! of them into memmove and clears into memset, the BPF backend leaves
//! those as calls, and the linker's fallbacks move one byte per loop round
//! (16 rounds for an address, 64 to clear a FIB query). Before these
//! helpers that was the largest single cost of an established flow's packet
//! (docs/benchmarks.md). Volatile accesses keep LLVM from fusing the words
//! back into such a call.
//!
//! The word versions need 4-byte alignment, which the types guarantee: the
//! map types are `align(4)` or wider with addresses at offsets that are
//! multiples of 4 (checked at compile time below), and so is the scratch
//! space. Packet memory has no such guarantee, so copies to and from it go
//! byte by byte (still without a call or a loop).
use core::ptr::{read_volatile, write_volatile};

use lbxdp_common::{FlowKey, FrontendKey, Reply, Server, StickKey};

use crate::{Scratch, nat::Rewrite, parse::Packet};

pub type Addr = [u8; 16];

/// Copies an address between this program's own (aligned) structures.
///
/// # Safety
/// Both must be 4-byte aligned: fields of the types checked below, or of
/// map values and scratch space of those types.
#[inline(always)]
pub unsafe fn addr(dst: &mut Addr, src: &Addr) {
    // SAFETY: the caller guarantees alignment; an address is 4 words.
    unsafe { words(dst, src) }
}

/// Sets an IPv4 address: the first word, then zeros.
///
/// # Safety
/// As for [`addr`].
#[inline(always)]
pub unsafe fn v4_addr(dst: &mut Addr, v4: [u8; 4]) {
    let d = dst.as_mut_ptr() as *mut u32;
    // SAFETY: as for `addr`.
    unsafe {
        write_volatile(d, u32::from_ne_bytes(v4));
        write_volatile(d.add(1), 0);
        write_volatile(d.add(2), 0);
        write_volatile(d.add(3), 0);
    }
}

/// Sets an address to an IPv4 one's mapped IPv6 form (`::ffff:a.b.c.d`),
/// `v4` holding it in its first word.
///
/// # Safety
/// As for [`addr`].
#[inline(always)]
pub unsafe fn mapped(dst: &mut Addr, v4: &Addr) {
    let d = dst.as_mut_ptr() as *mut u32;
    let s = v4.as_ptr() as *const u32;
    // SAFETY: as for `addr`.
    unsafe {
        write_volatile(d, 0);
        write_volatile(d.add(1), 0);
        write_volatile(d.add(2), u32::from_ne_bytes([0, 0, 0xff, 0xff]));
        write_volatile(d.add(3), read_volatile(s));
    }
}

/// Copies `N` bytes into or out of the packet, a byte at a time: packet
/// memory has no alignment the program may count on. Both sides are at
/// least `N` long (the bounds are constants, checked at compile time once
/// inlined).
#[inline(always)]
pub fn bytes<const N: usize>(dst: &mut [u8], src: &[u8]) {
    let mut i = 0;
    while i < N && i < dst.len() && i < src.len() {
        // SAFETY: both indices are in bounds (checked by the loop).
        unsafe { write_volatile(dst.as_mut_ptr().add(i), read_volatile(src.as_ptr().add(i))) };
        i += 1;
    }
}

/// Clears a `T` a 4-byte word at a time.
///
/// # Safety
/// `T` must be plain old data, 4-byte aligned and a multiple of 4 long.
#[inline(always)]
pub unsafe fn clear_words<T>(v: &mut T) {
    let d = v as *mut T as *mut u32;
    let mut i = 0;
    while i < core::mem::size_of::<T>() / 4 {
        // SAFETY: in bounds of `v`, aligned by the caller's guarantee.
        unsafe { write_volatile(d.add(i), 0) };
        i += 1;
    }
}

/// Copies a `T` a 4-byte word at a time.
///
/// # Safety
/// As for [`clear_words`].
#[inline(always)]
pub unsafe fn words<T>(dst: &mut T, src: &T) {
    let d = dst as *mut T as *mut u32;
    let s = src as *const T as *const u32;
    let mut i = 0;
    while i < core::mem::size_of::<T>() / 4 {
        // SAFETY: in bounds of both, aligned by the caller's guarantee.
        unsafe { write_volatile(d.add(i), read_volatile(s.add(i))) };
        i += 1;
    }
}

macro_rules! aligned_addrs {
    ($($t:ty: $($f:ident),+;)+) => {
        const _: () = {
            $(
                assert!(core::mem::align_of::<$t>() >= 4);
                assert!(core::mem::size_of::<$t>() % 4 == 0);
                $(assert!(core::mem::offset_of!($t, $f) % 4 == 0);)+
            )+
        };
    };
}

// What `addr`, `clear_addr` and `words` rely on.
aligned_addrs! {
    FlowKey: src, dst;
    FrontendKey: addr;
    Reply: client, vip;
    Server: addr, snat;
    StickKey: addr;
    Packet: src, dst;
    Rewrite: src, dst;
    Scratch: p, fkey, key, rkey, reply, flow, rw, old, new, fib, skey, sentry;
    crate::icmp::IcmpNat: outer_src, outer_dst, inner_src, inner_dst;
}
